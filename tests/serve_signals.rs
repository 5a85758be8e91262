//! `anode` stops cleanly on a signal during the initial sync: the blocks applied so far are
//! flushed, the process exits with success, and the next start resumes from the flushed tip
//! instead of starting over. Runs the real binary against `anode simulate`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BLOCKS: u32 = 1000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The child's stderr, line by line, on a channel.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line containing `needle`; returns it. Panics with the lines seen on timeout.
fn wait_for(lines: &mpsc::Receiver<String>, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!(
        "no line with {needle:?} within {within:?}; last lines:\n{}",
        seen[seen.len().saturating_sub(20)..].join("\n")
    );
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("anode did not exit within {within:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The Prometheus exposition at `addr`, fetched with a bare HTTP/1.0 request.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("metrics endpoint");
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .expect("request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("response");
    text
}

fn sample(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn server(node: &str, db: &std::path::Path, metrics: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_anode"))
        .env("METRICS_ADDR", metrics)
        .env("COIN", "Bitcoin")
        .env("NET", "regtest")
        .env("DAEMON_URL", node)
        .env("DB_DIRECTORY", db)
        .env("SERVICES", "tcp://127.0.0.1:0")
        .env("PEER_DISCOVERY", "off")
        // A small cache: the sync flushes often, so a signal finds flushed work to keep.
        .env("CACHE_MB", "60")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("anode")
}

/// `anode compact` on `db`, as an operator runs it.
fn compact(db: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_anode"))
        .arg("compact")
        .env("COIN", "Bitcoin")
        .env("NET", "regtest")
        .env("DB_DIRECTORY", db)
        .env("NO_COLOR", "1")
        .output()
        .expect("anode compact")
}

fn height_in(line: &str) -> Option<u32> {
    let at = line.find("height=")? + "height=".len();
    let digits: String = line[at..]
        .trim_start_matches("Some(")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[test]
fn a_signal_during_the_initial_sync_flushes_and_the_next_start_resumes() {
    let port = free_port();
    let mut node = Command::new(env!("CARGO_BIN_EXE_anode"))
        .args([
            "simulate",
            "--profile",
            "mainnet-like",
            "--network",
            "regtest",
        ])
        .args(["--blocks", &BLOCKS.to_string()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("anode simulate");
    let node_url = format!("http://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the simulator did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");

    let metrics = format!("127.0.0.1:{}", free_port());
    let mut first = server(&node_url, &db, &metrics);
    let lines = lines_of(&mut first);
    // The second flush: the sync is well under way and far from its end.
    wait_for(&lines, "flush", Duration::from_secs(120));
    wait_for(&lines, "flush", Duration::from_secs(60));
    // The metrics follow the initial sync, before any client is served.
    let names = [
        "anode_flushes_total",
        "anode_flushed_bytes_total",
        "anode_flush_duration_seconds_count",
        "anode_tip_height",
        "anode_daemon_height",
    ];
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let exposition = scrape(&metrics);
        let missing: Vec<_> = names
            .iter()
            .filter(|name| !sample(&exposition, name).is_some_and(|v| v > 0.0))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing:?} stay 0:\n{exposition}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    signal(&first, "INT");
    let status = wait_exit(&mut first, Duration::from_secs(60));
    let stopped = wait_for(&lines, "stopped", Duration::from_secs(5));
    assert!(
        status.success(),
        "exit status {status} after a signal during the sync"
    );
    assert!(stopped.contains("stopped"), "{stopped}");

    let mut second = server(&node_url, &db, &format!("127.0.0.1:{}", free_port()));
    let lines = lines_of(&mut second);
    let opened = wait_for(&lines, "index opened", Duration::from_secs(60));
    let resumed_from = height_in(&opened).unwrap_or(0);
    assert!(
        resumed_from > 0 && resumed_from < BLOCKS,
        "the second start should resume from the flushed tip: {opened}"
    );
    let caught_up = wait_for(&lines, "caught up", Duration::from_secs(180));
    assert_eq!(height_in(&caught_up), Some(BLOCKS), "{caught_up}");
    // `anode compact` refuses a database a running server holds...
    let busy = compact(&db);
    let stderr = String::from_utf8_lossy(&busy.stderr);
    assert!(
        !busy.status.success() && stderr.contains("in use"),
        "{stderr}"
    );
    signal(&second, "TERM");
    let status = wait_exit(&mut second, Duration::from_secs(60));
    assert!(status.success(), "exit status {status} after SIGTERM");

    // ...compacts it once the server is stopped, and the next start finds it whole.
    let done = compact(&db);
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success() && stdout.contains("compacted"),
        "{stdout}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let mut third = server(&node_url, &db, &format!("127.0.0.1:{}", free_port()));
    let lines = lines_of(&mut third);
    let opened = wait_for(&lines, "index opened", Duration::from_secs(60));
    assert_eq!(height_in(&opened), Some(BLOCKS), "{opened}");
    signal(&third, "TERM");
    let status = wait_exit(&mut third, Duration::from_secs(60));
    assert!(status.success(), "exit status {status} after SIGTERM");
    let nothing = compact(&dir.path().join("none"));
    assert!(
        String::from_utf8_lossy(&nothing.stderr).contains("holds no anode database"),
        "{}",
        String::from_utf8_lossy(&nothing.stderr)
    );
    let _ = node.kill();
    let _ = node.wait();
}

#[test]
fn an_occupied_port_is_reported_once() {
    // The binary's error report used to print the OS's "Address already in use" under each
    // of three headings (the error types repeat their source in their own text).
    let port = free_port();
    let mut node = Command::new(env!("CARGO_BIN_EXE_anode"))
        .args(["simulate", "--blocks", "5"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("anode simulate");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the simulator did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to occupy");
    let occupied = taken.local_addr().expect("address").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_anode"))
        .env("COIN", "Bitcoin")
        .env("NET", "regtest")
        .env("DAEMON_URL", format!("http://127.0.0.1:{port}/"))
        .env("DB_DIRECTORY", dir.path().join("db"))
        .env("SERVICES", format!("tcp://127.0.0.1:{occupied}"))
        .env("PEER_DISCOVERY", "off")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .output()
        .expect("anode");
    let _ = node.kill();
    let _ = node.wait();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let cause = std::io::Error::from(std::io::ErrorKind::AddrInUse).to_string();
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert_eq!(
        stderr.matches("Address already in use").count(),
        1,
        "{cause}: {stderr}"
    );
}
