//! `anode-bench hostile`: anode under hostile clients (issue #17, "Faults an operator meets").
//! anode runs as a child process on a simulated chain, so that its memory is its own; this
//! process opens, all from 127.0.0.1:
//!
//! * idle sessions: `server.version`, then nothing;
//! * slow readers: `server.version`, then many `blockchain.block.headers` of up to 2016
//!   headers, never reading an answer;
//! * slowloris clients: `server.version`, then a line that never ends, one byte a second;
//!
//! while a well-behaved wallet, connected before the attack, runs a fixed request mix at a
//! steady pace: once on the idle server, once under attack. The server's RSS is sampled
//! throughout; which sessions the server served, and which it dropped, is read from the
//! kernel's socket table (`/proc/net/tcp`), never by reading the sockets.
//!
//! The run is made twice: once with `MAX_SESSIONS` raised to admit every session, once at
//! the default (1,000), to show what refusal looks like. Both processes need more file
//! descriptors than the usual 1,024: the run raises its own limit (and so its child's) with
//! `prlimit`, which needs root to pass the hard limit.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anode::simulator::{serve, Auth, Profile, SimChain, Simulator};
use anyhow::{bail, Context};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::chain::{targets_of_chain, Targets};
use super::client::Conn;
use super::results::Latency;
use super::say;
use super::scale::{free_port, interrupt, spawn_in, status_kb, wait_for_port, KillOnDrop};

/// Options of `anode-bench hostile`.
#[derive(Debug, Clone)]
pub struct HostileOptions {
    /// storage engine of the server
    pub engine: String,
    /// the anode binary
    pub anode: PathBuf,
    /// where the databases go
    pub work: PathBuf,
    /// where the summary goes
    pub out: PathBuf,
    /// idle sessions
    pub idle: usize,
    /// slow readers
    pub slow_readers: usize,
    /// requests each slow reader sends
    pub slow_reader_requests: usize,
    /// slowloris clients
    pub slowloris: usize,
    /// seconds of each wallet measurement
    pub wallet_seconds: f64,
    /// the wallet's requests per second
    pub wallet_rate: f64,
    /// blocks of the simulated chain (2016 headers make a 322 kB answer)
    pub blocks: u32,
    /// `MAX_SESSIONS` of the first run (the second runs at the default)
    pub raised_max_sessions: usize,
    /// chain seed
    pub seed: u64,
}

/// How one kind of client fared.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// connections tried
    pub tried: usize,
    /// answered `server.version` (the server took the session)
    pub served: usize,
    /// connected, but `server.version` went unanswered within the wait: the server was not
    /// accepting (the session cap)
    pub unanswered: usize,
    /// the connection itself failed or timed out
    pub connect_failed: usize,
    /// served, then closed by the server before the end of the run
    pub dropped: usize,
}

/// One run's figures.
#[derive(Debug, Clone, Default)]
pub struct HostileRun {
    /// `MAX_SESSIONS` of the run
    pub max_sessions: usize,
    /// the wallet on the idle server
    pub wallet_idle: Latency,
    /// the wallet under attack
    pub wallet_attack: Latency,
    /// wallet requests that failed (error answers or a closed session)
    pub wallet_errors: u64,
    /// a new connection during the attack: milliseconds to its `server.version` answer, or
    /// `None` when none came within the wait
    pub fresh_connect_ms: Option<f64>,
    /// idle sessions
    pub idle: Outcome,
    /// slow readers
    pub slow: Outcome,
    /// slowloris clients
    pub slowloris: Outcome,
    /// server RSS before the attack, bytes
    pub rss_before: u64,
    /// server RSS once every attacker was connected, bytes
    pub rss_attacked: u64,
    /// server RSS at the end of the run, bytes
    pub rss_end: u64,
    /// the server's peak RSS (VmHWM), bytes
    pub peak_rss: u64,
    /// RSS over time: (seconds since the server started, bytes)
    pub rss_samples: Vec<(f64, u64)>,
    /// seconds from the first slow reader's requests to the last slow reader dropped, if all were
    pub slow_dropped_within: Option<f64>,
}

/// How long a connection may take to be answered before it counts as not served.
const ANSWER_WAIT: Duration = Duration::from_secs(3);
/// How long the run waits for the server to drop every slow reader (their answers fill the
/// socket buffers first, and the cost model slows them down on the way).
const SLOW_READER_WAIT: Duration = Duration::from_secs(150);
/// Connections opened at once.
const CONNECTING_AT_ONCE: usize = 500;
/// File descriptors both processes are given.
const NOFILE: u64 = 65_536;

/// `anode-bench hostile`: both runs, then `summary.md` in `out`; returns its path.
pub fn run_hostile(options: &HostileOptions) -> anyhow::Result<PathBuf> {
    let needed = (options.idle + options.slow_readers + options.slowloris) as u64 + 1000;
    let nofile = raise_nofile(needed)?;
    say(&format!("open-file limit: {nofile}"));
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    let coin = anode_coins::lookup("Bitcoin", "regtest").context("regtest")?;
    say(&format!(
        "building a chain of {} blocks (seed {})",
        options.blocks, options.seed
    ));
    let mut chain =
        SimChain::new(Arc::clone(&coin), Profile::tiny(), options.seed).context("new chain")?;
    chain
        .mine(options.blocks, true)
        .context("mining the chain")?;
    let targets = Arc::new(targets_of_chain(&chain, &[10, 100], 0)?);
    let sim = Simulator::new(chain);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("runtime")?;
    let sim_server = runtime
        .block_on(serve(sim, "127.0.0.1:0".parse()?, Auth { user_pass: None }))
        .context("starting the simulator's RPC server")?;
    let daemon_url = format!("http://{}/", sim_server.addr);

    let mut runs = Vec::new();
    for max_sessions in [options.raised_max_sessions, 1000] {
        say(&format!("run with MAX_SESSIONS={max_sessions}"));
        let run = run_once(options, &runtime, &daemon_url, &targets, max_sessions)?;
        say(&format!(
            "MAX_SESSIONS={max_sessions}: wallet p50/p99 idle {:.2}/{:.2} ms, under attack {:.2}/{:.2} ms; peak RSS {} MB",
            run.wallet_idle.p50_ms,
            run.wallet_idle.p99_ms,
            run.wallet_attack.p50_ms,
            run.wallet_attack.p99_ms,
            run.peak_rss >> 20
        ));
        let mut csv = String::from("seconds,rss_bytes\n");
        for (t, rss) in &run.rss_samples {
            let _ = writeln!(csv, "{t:.2},{rss}");
        }
        let csv_path = options
            .out
            .join(format!("rss-max-sessions-{max_sessions}.csv"));
        std::fs::write(&csv_path, csv)
            .with_context(|| format!("writing {}", csv_path.display()))?;
        runs.push(run);
    }
    let path = options.out.join("summary.md");
    std::fs::write(&path, markdown(options, &runs))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Raises this process's open-file limit with `prlimit` (children inherit it): to [`NOFILE`]
/// when allowed (root with CAP_SYS_RESOURCE), else the soft limit up to the hard one.
/// Returns the limit now in force.
fn raise_nofile(needed: u64) -> anyhow::Result<u64> {
    let set = |limit: u64| {
        std::process::Command::new("prlimit")
            .args([
                "--pid",
                &std::process::id().to_string(),
                &format!("--nofile={limit}:{limit}"),
            ])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if set(NOFILE) {
        return Ok(NOFILE);
    }
    let limits = std::fs::read_to_string("/proc/self/limits").context("/proc/self/limits")?;
    let hard = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|h| h.parse::<u64>().ok())
        .context("no open-file limit in /proc/self/limits")?;
    if hard < needed || !set(hard) {
        bail!(
            "{needed} open files are needed and the hard limit is {hard}: run as root \
             (CAP_SYS_RESOURCE) or raise it (ulimit -Hn)"
        );
    }
    Ok(hard)
}

fn run_once(
    options: &HostileOptions,
    runtime: &tokio::runtime::Runtime,
    daemon_url: &str,
    targets: &Arc<Targets>,
    max_sessions: usize,
) -> anyhow::Result<HostileRun> {
    let db = options
        .work
        .join(format!("hostile-{}-{max_sessions}", options.engine));
    let _ = std::fs::remove_dir_all(&db);
    let port = free_port()?;
    let env: Vec<(&str, String)> = vec![
        ("COIN", "Bitcoin".into()),
        ("NET", "regtest".into()),
        ("DAEMON_URL", daemon_url.to_string()),
        ("DB_DIRECTORY", db.display().to_string()),
        ("DB_ENGINE", options.engine.clone()),
        ("SERVICES", format!("tcp://127.0.0.1:{port}")),
        ("PEER_DISCOVERY", "off".into()),
        // Padding holds small answers up to a second: the wallet's latency would be the
        // padding timer's, on the idle server as under attack.
        ("PAD_TCP", "false".into()),
        ("MAX_SESSIONS", max_sessions.to_string()),
        ("NO_COLOR", "1".into()),
        ("RUST_LOG", "info".into()),
    ];
    let log = options
        .out
        .join(format!("anode-max-sessions-{max_sessions}.log"));
    let server = KillOnDrop(spawn_in(None, &options.anode, &env, &log, true)?);
    let pid = server.0.id();
    let started = Instant::now();
    wait_for_log(&log, "index caught up", Duration::from_secs(300), pid)?;
    wait_for_port(port, Duration::from_secs(60), Some(&server.0))?;
    let addr = format!("127.0.0.1:{port}");
    say(&format!("anode (pid {pid}) synced and listening on {addr}"));

    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (samples, sampling) = (Arc::clone(&samples), Arc::clone(&sampling));
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let (rss, _) = memory(pid);
                if let Ok(mut samples) = samples.lock() {
                    samples.push((started.elapsed().as_secs_f64(), rss));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };

    let mut run = HostileRun {
        max_sessions,
        ..HostileRun::default()
    };
    let result = runtime.block_on(attack(options, &addr, port, targets, pid, &mut run));
    run.rss_end = memory(pid).0;
    run.peak_rss = memory(pid).1;
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    if let Ok(mut samples) = samples.lock() {
        run.rss_samples = std::mem::take(&mut *samples);
    }
    interrupt(pid);
    let mut server = server;
    let _ = server.0.wait();
    let _ = std::fs::remove_dir_all(&db);
    result?;
    Ok(run)
}

async fn attack(
    options: &HostileOptions,
    addr: &str,
    port: u16,
    targets: &Arc<Targets>,
    pid: u32,
    run: &mut HostileRun,
) -> anyhow::Result<()> {
    // Both wallets connect before the attack: at the default session cap a wallet arriving
    // during it would not be served at all (measured separately below).
    let mut wallet_idle = Conn::open(addr).await.context("the wallet connects")?;
    let mut wallet_attack = Conn::open(addr).await.context("the wallet connects")?;
    say("wallet on the idle server");
    let (latency, errors) = wallet(&mut wallet_idle, targets, options, 1).await;
    run.wallet_idle = latency;
    run.wallet_errors += errors;
    drop(wallet_idle);
    run.rss_before = memory(pid).0;

    say(&format!("opening {} idle sessions", options.idle));
    let (idle, outcome) = open_many(addr, options.idle).await;
    run.idle = outcome;
    say(&format!("idle sessions: {:?}", run.idle));

    say(&format!(
        "opening {} slow readers, {} requests each",
        options.slow_readers, options.slow_reader_requests
    ));
    let (mut slow, outcome) = open_many(addr, options.slow_readers).await;
    run.slow = outcome;
    let slow_started = Instant::now();
    let tip = targets.tip_height;
    let requests = options.slow_reader_requests;
    let mut senders = Vec::with_capacity(slow.len());
    for (i, mut conn) in slow.drain(..).enumerate() {
        senders.push(tokio::spawn(async move {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64);
            for _ in 0..requests {
                let start = rng.gen_range(0..=tip.saturating_sub(2015));
                // Once the server stops reading the write blocks; a session dropped by the
                // server fails it. Either way the connection is kept, unread, to the end.
                let sent = tokio::time::timeout(
                    Duration::from_secs(5),
                    conn.send_only("blockchain.block.headers", json!([start, 2016])),
                )
                .await;
                if !matches!(sent, Ok(Ok(()))) {
                    break;
                }
            }
            conn
        }));
    }
    for sender in senders {
        slow.push(sender.await.context("a slow reader's task")?);
    }
    say(&format!("slow readers: {:?}", run.slow));

    say(&format!("opening {} slowloris clients", options.slowloris));
    let (loris, outcome) = open_many(addr, options.slowloris).await;
    run.slowloris = outcome;
    let trickling = Arc::new(AtomicBool::new(true));
    let trickle = {
        let trickling = Arc::clone(&trickling);
        let mut loris = loris;
        tokio::spawn(async move {
            let head = br#"{"jsonrpc":"2.0","id":2,"method":"server.ping","params":[0,""#;
            let mut at = 0usize;
            while trickling.load(Ordering::Relaxed) {
                // The line's head, then hex digits: a line that never ends.
                let byte = head.get(at).copied().unwrap_or(b'0');
                at += 1;
                for conn in loris.iter_mut() {
                    let _ = tokio::time::timeout(Duration::from_millis(10), conn.send_raw(&[byte]))
                        .await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            loris
        })
    };
    run.rss_attacked = memory(pid).0;

    say("a new connection during the attack");
    let connecting = Instant::now();
    run.fresh_connect_ms = match tokio::time::timeout(ANSWER_WAIT, Conn::open(addr)).await {
        Ok(Ok(_)) => Some(connecting.elapsed().as_secs_f64() * 1e3),
        _ => None,
    };

    say("wallet under attack");
    let (latency, errors) = wallet(&mut wallet_attack, targets, options, 2).await;
    run.wallet_attack = latency;
    run.wallet_errors += errors;

    // Slow readers are dropped once their socket took nothing for the slow-reader timeout
    // (20 s): wait for that (or up to SLOW_READER_WAIT), watching from the kernel's socket table.
    let slow_ports: Vec<u16> = slow.iter().filter_map(Conn::local_port).collect();
    let deadline = slow_started + SLOW_READER_WAIT;
    while !slow_ports.is_empty() {
        let table = socket_states(port);
        let open = slow_ports
            .iter()
            .filter(|p| table.get(p) == Some(&ESTABLISHED))
            .count();
        if open == 0 {
            run.slow_dropped_within = Some(slow_started.elapsed().as_secs_f64());
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    trickling.store(false, Ordering::Relaxed);
    let loris = trickle.await.context("the slowloris task")?;
    let table = socket_states(port);
    let dropped = |conns: &[Conn]| {
        conns
            .iter()
            .filter_map(Conn::local_port)
            .filter(|p| table.get(p) != Some(&ESTABLISHED))
            .count()
    };
    run.idle.dropped = dropped(&idle);
    run.slow.dropped = dropped(&slow);
    run.slowloris.dropped = dropped(&loris);
    Ok(())
}

/// Opens `n` sessions, [`CONNECTING_AT_ONCE`] at a time; returns those the server answered.
async fn open_many(addr: &str, n: usize) -> (Vec<Conn>, Outcome) {
    let gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (addr, gate) = (addr.to_string(), Arc::clone(&gate));
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            let connect = tokio::time::timeout(ANSWER_WAIT, tokio::net::TcpStream::connect(&addr));
            let Ok(Ok(stream)) = connect.await else {
                return Err(false);
            };
            match tokio::time::timeout(ANSWER_WAIT, Conn::negotiate(stream)).await {
                Ok(Ok(conn)) => Ok(conn),
                Ok(Err(_)) => Err(false),
                Err(_) => Err(true),
            }
        }));
    }
    let mut outcome = Outcome {
        tried: n,
        ..Outcome::default()
    };
    let mut conns = Vec::with_capacity(n);
    for task in tasks {
        match task.await {
            Ok(Ok(conn)) => {
                outcome.served += 1;
                conns.push(conn);
            }
            Ok(Err(true)) => outcome.unanswered += 1,
            _ => outcome.connect_failed += 1,
        }
    }
    (conns, outcome)
}

/// The wallet's request mix, at `options.wallet_rate` requests a second for
/// `options.wallet_seconds`: latencies of the answered requests, and the failures.
async fn wallet(
    conn: &mut Conn,
    targets: &Targets,
    options: &HostileOptions,
    seed: u64,
) -> (Latency, u64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let interval = Duration::from_secs_f64(1.0 / options.wallet_rate.max(0.1));
    let count = (options.wallet_seconds * options.wallet_rate).ceil() as usize;
    let mut micros = Vec::with_capacity(count);
    let mut errors = 0;
    let mut next = tokio::time::Instant::now();
    for i in 0..count {
        tokio::time::sleep_until(next).await;
        next += interval;
        let (method, params) = wallet_request(i, targets, &mut rng);
        let sent = Instant::now();
        match conn.call_answer(method, params).await {
            Ok(answer) if answer.ok => micros.push(sent.elapsed().as_micros() as u64),
            Ok(_) => errors += 1,
            Err(_) => {
                errors += (count - i) as u64;
                break;
            }
        }
    }
    (Latency::of(micros), errors)
}

/// What a wallet asks, in turn: balances, histories and coins of its scripts, headers and
/// transactions.
fn wallet_request(i: usize, targets: &Targets, rng: &mut impl Rng) -> (&'static str, Value) {
    let script = targets
        .history
        .get(rng.gen_range(0..targets.history.len().max(1)))
        .map_or_else(String::new, |t| t.scripthash.clone());
    match i % 5 {
        0 => ("blockchain.scripthash.get_balance", json!([script])),
        1 => ("blockchain.scripthash.get_history", json!([script])),
        2 => ("blockchain.scripthash.listunspent", json!([script])),
        3 => (
            "blockchain.block.header",
            json!([rng.gen_range(0..=targets.tip_height)]),
        ),
        _ => {
            let tx = targets
                .confirmed
                .get(rng.gen_range(0..targets.confirmed.len().max(1)))
                .map_or_else(String::new, |(txid, _)| txid.clone());
            ("blockchain.transaction.get", json!([tx]))
        }
    }
}

/// (VmRSS, VmHWM) of `pid`, bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    (
        status_kb(&status, "VmRSS:") * 1024,
        status_kb(&status, "VmHWM:") * 1024,
    )
}

/// The kernel's state code for an established TCP connection (`/proc/net/tcp`).
const ESTABLISHED: u8 = 1;

/// The TCP state of the server's side of every connection to `server_port`, by the client's
/// port. The server's side, because a server that closes a connection whose client never
/// reads leaves its FIN queued behind unread data: the client's side still looks established.
fn socket_states(server_port: u16) -> HashMap<u16, u8> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    parse_socket_table(&table, server_port)
}

fn parse_socket_table(table: &str, server_port: u16) -> HashMap<u16, u8> {
    let port_of = |field: &str| {
        field
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = port_of(fields.get(1)?)?;
            let remote = port_of(fields.get(2)?)?;
            let state = u8::from_str_radix(fields.get(3)?, 16).ok()?;
            (local == server_port && remote != 0).then_some((remote, state))
        })
        .collect()
}

/// Waits until `log` has a line containing `text`.
fn wait_for_log(log: &Path, text: &str, limit: Duration, pid: u32) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if std::fs::read_to_string(log).is_ok_and(|l| l.contains(text)) {
            return Ok(());
        }
        if !Path::new(&format!("/proc/{pid}")).exists() {
            bail!("anode exited: see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!("{text:?} not in {} within {limit:?}", log.display())
}

fn mb(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / (1u64 << 20) as f64)
}

/// The summary: the runs side by side.
pub fn markdown(options: &HostileOptions, runs: &[HostileRun]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Hostile clients\n\nanode ({} engine, defaults but `PAD_TCP=false` and `MAX_SESSIONS`) on a simulated chain of {} blocks; all clients on 127.0.0.1. Attack: {} idle sessions, {} slow readers ({} × `blockchain.block.headers` of 2016 headers each, never read), {} slowloris clients (a line that never ends, one byte a second). The wallet: {} requests a second for {} s (get_balance, get_history, listunspent, block.header, transaction.get in turn).\n",
        options.engine,
        options.blocks,
        options.idle,
        options.slow_readers,
        options.slow_reader_requests,
        options.slowloris,
        options.wallet_rate,
        options.wallet_seconds
    );
    let header: Vec<String> = runs
        .iter()
        .map(|r| format!("MAX_SESSIONS={}", r.max_sessions))
        .collect();
    let _ = writeln!(md, "| | {} |", header.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(runs.len()));
    let mut row = |name: &str, cell: &dyn Fn(&HostileRun) -> String| {
        let cells: Vec<String> = runs.iter().map(cell).collect();
        let _ = writeln!(md, "| {name} | {} |", cells.join(" | "));
    };
    row("wallet p50 / p99, idle server (ms)", &|r| {
        format!("{:.2} / {:.2}", r.wallet_idle.p50_ms, r.wallet_idle.p99_ms)
    });
    row("wallet p50 / p99, under attack (ms)", &|r| {
        format!(
            "{:.2} / {:.2}",
            r.wallet_attack.p50_ms, r.wallet_attack.p99_ms
        )
    });
    row("wallet p99 ratio (attack / idle)", &|r| {
        format!(
            "{:.2}",
            r.wallet_attack.p99_ms / r.wallet_idle.p99_ms.max(1e-9)
        )
    });
    row("wallet requests failed", &|r| r.wallet_errors.to_string());
    row(
        "new connection during the attack",
        &|r| match r.fresh_connect_ms {
            Some(ms) => format!("answered in {ms:.1} ms"),
            None => format!("unanswered after {} s", ANSWER_WAIT.as_secs()),
        },
    );
    for (name, pick) in [
        (
            "idle sessions",
            (|r: &HostileRun| r.idle.clone()) as fn(&HostileRun) -> Outcome,
        ),
        ("slow readers", |r: &HostileRun| r.slow.clone()),
        ("slowloris", |r: &HostileRun| r.slowloris.clone()),
    ] {
        row(
            &format!("{name}: served / unanswered / connect failed / dropped by the server"),
            &|r| {
                let o = pick(r);
                format!(
                    "{} / {} / {} / {}",
                    o.served, o.unanswered, o.connect_failed, o.dropped
                )
            },
        );
    }
    row("slow readers all dropped after (s)", &|r| {
        if r.slow.served == 0 {
            return "none served".into();
        }
        r.slow_dropped_within.map_or_else(
            || format!("not all within {} s", SLOW_READER_WAIT.as_secs()),
            |s| format!("{s:.0}"),
        )
    });
    row("server RSS before the attack (MB)", &|r| mb(r.rss_before));
    row("server RSS, attackers connected (MB)", &|r| {
        mb(r.rss_attacked)
    });
    row("server RSS at the end (MB)", &|r| mb(r.rss_end));
    row("server peak RSS, VmHWM (MB)", &|r| mb(r.peak_rss));
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_table_gives_the_servers_side_of_each_connection() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 20 4 30 10 -1\n\
   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 20 4 30 10 -1\n\
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1\n\
   3: 0100007F:1F90 0100007F:C351 04 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1\n";
        let states = parse_socket_table(table, 0x1F90);
        assert_eq!(states.len(), 2);
        assert_eq!(states.get(&0xC350), Some(&ESTABLISHED));
        // The server closed this one; its FIN waits behind data the client never read.
        assert_eq!(states.get(&0xC351), Some(&4));
    }
}
