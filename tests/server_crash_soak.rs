//! Crash soak of the real `anode` binary (issue #17, "Faults an operator meets", item 4): the
//! server follows a simulated node while the node mines, reorganises and churns its mempool,
//! and is killed with SIGKILL at random instants — during the initial sync, during reorgs,
//! while a new block is applied and flushed at the tip, during mempool refreshes — and
//! restarted after each kill. At the end the soaked server is brought to the final tip and
//! compared over the Electrum protocol with a fresh server that synced the same chain from an
//! empty database: every script's history, balance and unspent outputs, every header and the
//! tip. A difference, or a restart that fails, is a corruption; the target is none.
//!
//! The CI runs a few kills per engine; `scripts/crash-soak` runs 200 per engine in release
//! (docs/backends.md, "Crash safety"). Knobs: `ANODE_SOAK_KILLS` (kills per engine),
//! `ANODE_SOAK_ENGINES` (comma-separated), `ANODE_SOAK_BLOCKS` (initial chain length),
//! `ANODE_SOAK_SEED`, `ANODE_SOAK_VERBOSE` (a line per kill).

// The kills per phase and the corruptions per engine are the soak's report.
#![allow(clippy::print_stderr)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anode::daemon::hash_to_hex;
use anode::simulator::{serve, Auth, Simulator};
use anode::store_factory::available_engines;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use support::index::{regtest, runtime, simulator};

/// The server's reorg limit; the simulator's reorgs stay well inside it.
const REORG_LIMIT: u32 = 10;
const DEEPEST_REORG: u32 = 4;
/// How long a restarted server may take to catch up before the soak calls it stuck.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(120);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the server was doing when it was killed, read from its log after its death.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// the first sync of the database, before the index ever caught up
    InitialSync,
    /// catching up after a restart
    Resume,
    /// undoing blocks of a reorganisation or applying the new branch
    Reorg,
    /// applying a new block at the tip and its synced flush
    TipBlock,
    /// a mempool refresh
    MempoolRefresh,
    /// following the node with nothing in flight
    Idle,
}

impl Phase {
    fn describe(self) -> &'static str {
        match self {
            Phase::InitialSync => "initial sync",
            Phase::Resume => "catch-up after a restart",
            Phase::Reorg => "reorg (undo or new branch)",
            Phase::TipBlock => "new block at the tip (apply, synced flush)",
            Phase::MempoolRefresh => "mempool refresh",
            Phase::Idle => "idle at the tip",
        }
    }
}

/// The height of a `flush` log line, if the line is one and it was synced.
fn synced_flush_height(line: &str) -> Option<u32> {
    if !line.contains(": flush ") || !line.contains("synced=true") {
        return None;
    }
    field(line, "height")
}

fn field(line: &str, name: &str) -> Option<u32> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Replays a dead server's log: the last state it reached is where the kill landed.
fn phase_at_death(lines: &[String], ever_caught_up: bool) -> Phase {
    let mut caught_up = false;
    let (mut in_reorg, mut undone) = (false, false);
    let mut applying_to: Option<u32> = None;
    let mut refreshing = false;
    for line in lines {
        if line.contains("index caught up with the node") {
            caught_up = true;
        } else if line.contains("reorg: undoing blocks") {
            (in_reorg, undone) = (true, false);
        } else if line.contains("reorg: blocks undone") {
            undone = true;
        } else if line.contains("applying blocks") {
            applying_to = field(line, "to");
        } else if line.contains("refreshing the mempool") {
            refreshing = true;
        } else if line.contains("mempool refreshed") || line.contains("mempool refresh failed") {
            refreshing = false;
        } else if let Some(height) = synced_flush_height(line) {
            if applying_to.is_some_and(|to| height >= to) {
                applying_to = None;
                if in_reorg && undone {
                    in_reorg = false;
                }
            }
        }
    }
    if in_reorg {
        Phase::Reorg
    } else if !caught_up {
        if ever_caught_up {
            Phase::Resume
        } else {
            Phase::InitialSync
        }
    } else if applying_to.is_some() {
        Phase::TipBlock
    } else if refreshing {
        Phase::MempoolRefresh
    } else {
        Phase::Idle
    }
}

/// One `anode` server process with its log.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Server {
    fn start(node_url: &str, engine: &str, db: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_anode"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("COIN", "Bitcoin")
            .env("NET", "regtest")
            .env("DAEMON_URL", node_url)
            .env("DB_DIRECTORY", db)
            .env("DB_ENGINE", engine)
            .env("SERVICES", "tcp://127.0.0.1:0")
            .env("PEER_DISCOVERY", "off")
            .env("REORG_LIMIT", REORG_LIMIT.to_string())
            .env("CACHE_MB", "64")
            .env("DAEMON_POLL_INTERVAL_BLOCKS", "50")
            .env("DAEMON_POLL_INTERVAL_MEMPOOL", "100")
            // The comparison asks thousands of questions on one session.
            .env("PAD_TCP", "false")
            .env("COST_SOFT_LIMIT", "1000000000")
            .env("COST_HARD_LIMIT", "10000000000")
            // The sync's debug lines tell which phase a kill interrupted.
            .env("LOG_LEVEL", "info,anode::index::sync=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn anode");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Waits until a line after the first `from` lines contains one of `needles`; returns its
    /// index, or None if the process died or `within` passed.
    fn wait_for(&mut self, needles: &[&str], from: usize, within: Duration) -> Option<usize> {
        let wanted = |line: &str| needles.iter().any(|n| line.contains(n));
        if let Some(i) = self.log[from.min(self.log.len())..]
            .iter()
            .position(|l| wanted(l))
        {
            return Some(from + i);
        }
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = wanted(&line) && self.log.len() >= from;
                    self.log.push(line);
                    if hit {
                        return Some(self.log.len() - 1);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => return None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
        None
    }

    /// [`Server::wait_for`] in the soak: a process that exited by itself is a failed restart
    /// (Err), one that stays silent a stall (noted in `report`; the soak goes on).
    fn expect(
        &mut self,
        needles: &[&str],
        from: usize,
        restart: u32,
        report: &mut Report,
    ) -> Result<(), String> {
        if self.wait_for(needles, from, CATCH_UP_WITHIN).is_some() {
            return Ok(());
        }
        if let Some(failure) = self.exited() {
            return Err(format!("restart {restart}: {failure}"));
        }
        report.stalls.push(format!(
            "restart {restart}: none of {needles:?} within {CATCH_UP_WITHIN:?}"
        ));
        Ok(())
    }

    /// Takes in the lines logged so far without waiting.
    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
    }

    /// SIGKILL; returns the whole log (read to its end: everything written before the death).
    fn kill(mut self) -> Result<Vec<String>, String> {
        if let Some(status) = self.child.try_wait().expect("wait") {
            return Err(self.died(status));
        }
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
        self.log.extend(self.lines.iter());
        Ok(self.log)
    }

    /// Whether the process exited by itself (a failed restart).
    fn exited(&mut self) -> Option<String> {
        let status = self.child.try_wait().expect("wait")?;
        Some(self.died(status))
    }

    fn died(&mut self, status: std::process::ExitStatus) -> String {
        self.log.extend(self.lines.iter());
        let tail = self.log[self.log.len().saturating_sub(8)..].join("\n  ");
        format!("anode exited by itself ({status}); its last lines:\n  {tail}")
    }

    /// Where the Electrum TCP listener is.
    fn electrum_addr(&mut self) -> Option<SocketAddr> {
        let at = self.wait_for(&["listening"], 0, CATCH_UP_WITHIN)?;
        let line = &self.log[at];
        let addr = line[line.find(" addr=")? + 6..].split_whitespace().next()?;
        addr.parse().ok()
    }

    /// Stops it with SIGTERM, as an operator would.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A kill delay that tracks how long a phase lasts: it shrinks when kills land after the phase
/// ended and grows when they land inside, so most deliberate kills hit the phase.
struct Window {
    micros: f64,
}

impl Window {
    fn new(micros: f64) -> Window {
        Window { micros }
    }

    fn draw(&self, rng: &mut StdRng) -> Duration {
        Duration::from_micros(rng.gen_range(0..=self.micros as u64))
    }

    fn learn(&mut self, hit: bool) {
        self.micros = if hit {
            (self.micros * 1.2).min(2e6)
        } else {
            (self.micros * 0.6).max(100.0)
        };
    }
}

/// What the driver does to the node before a kill.
#[derive(Debug, Clone, Copy)]
enum Scenario {
    /// kill at a random instant after the start
    Anytime,
    Reorg,
    Mine,
    Mempool,
}

/// Every script the chain ever paid, as Electrum script hashes.
struct Scripts(BTreeSet<String>);

impl Scripts {
    fn note_txs(&mut self, sim: &Simulator, txids: &[anode_coins::Hash32]) {
        let coin = regtest();
        sim.with_chain(|c| {
            for txid in txids {
                if let Some(tx) = c.tx(txid) {
                    for out in &tx.outputs {
                        self.0.insert(hash_to_hex(&coin.script_hash(&out.script)));
                    }
                }
            }
        });
    }

    fn note_blocks(&mut self, sim: &Simulator, hashes: &[anode_coins::Hash32]) {
        let txids: Vec<_> = sim.with_chain(|c| {
            hashes
                .iter()
                .filter_map(|h| c.block_by_hash(h))
                .flat_map(|b| b.txids.clone())
                .collect()
        });
        self.note_txs(sim, &txids);
    }
}

/// Changes the node's mempool: new transactions, a chain of them, a replacement, an eviction.
fn churn_mempool(sim: &Simulator, rng: &mut StdRng, scripts: &mut Scripts) {
    let added = match rng.gen_range(0..4) {
        0 => sim.with_chain_mut(|c| c.add_mempool_chain(rng.gen_range(2..5))),
        1 => sim
            .with_chain_mut(|c| c.double_spend(None))
            .map(|(replacement, _)| vec![replacement]),
        2 => {
            let victim = sim.with_chain(|c| c.mempool().last().copied());
            if let Some(victim) = victim {
                sim.with_chain_mut(|c| c.drop_mempool_tx(&victim));
            }
            Ok(Vec::new())
        }
        _ => sim.with_chain_mut(|c| c.add_mempool_txs(rng.gen_range(1..6))),
    };
    // An empty mempool has nothing to replace: add to it instead.
    let added = added.or_else(|_| sim.with_chain_mut(|c| c.add_mempool_txs(3)));
    scripts.note_txs(sim, &added.unwrap_or_default());
}

fn mine(sim: &Simulator, n: u32, scripts: &mut Scripts) {
    let hashes = sim.mine(n).expect("mine");
    scripts.note_blocks(sim, &hashes);
}

fn reorg(sim: &Simulator, rng: &mut StdRng, scripts: &mut Scripts) {
    let depth = rng.gen_range(1..=DEEPEST_REORG);
    let new_blocks = depth + rng.gen_range(0..=2);
    let hashes = sim
        .with_chain_mut(|c| c.reorg(depth, new_blocks, rng.gen_bool(0.7)))
        .expect("reorg");
    scripts.note_blocks(sim, &hashes);
}

/// The soak's result for one engine.
#[derive(Default)]
struct Report {
    kills: BTreeMap<Phase, u32>,
    corruptions: Vec<String>,
    stalls: Vec<String>,
    scripts: usize,
    /// scripts with confirmed history and with mempool entries, on the fresh server: the
    /// comparison covers real answers, not empty ones
    with_history: usize,
    with_mempool: usize,
    final_height: u32,
}

fn soak(engine: &str, kills: u32, blocks: u32, seed: u64) -> Report {
    let rt = runtime();
    let sim = simulator(seed, blocks);
    let server = rt
        .block_on(serve(
            sim.clone(),
            "127.0.0.1:0".parse().expect("addr"),
            Auth::default(),
        ))
        .expect("serve the simulator");
    let url = server.url(&Auth::default());
    let mut scripts = Scripts(BTreeSet::new());
    let every_tx: Vec<_> = sim.with_chain(|c| c.all_txs().map(|(t, _)| *t).collect());
    scripts.note_txs(&sim, &every_tx);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("soaked");
    let mut report = Report::default();
    let mut ever_caught_up = false;
    let initial_kills = (kills / 5).max(2);
    let cycle = [
        Scenario::Reorg,
        Scenario::Mine,
        Scenario::Mempool,
        Scenario::Anytime,
    ];
    let mut windows: BTreeMap<&str, Window> = BTreeMap::new();
    windows.insert("initial", Window::new(50_000.0));
    windows.insert("anytime", Window::new(500_000.0));
    windows.insert("reorg", Window::new(10_000.0));
    windows.insert("mine", Window::new(3_000.0));
    windows.insert("mempool", Window::new(1_000.0));

    let verbose = std::env::var_os("ANODE_SOAK_VERBOSE").is_some();
    let mut killed = 0u32;
    let mut round = 0usize;
    while killed < kills {
        let mut anode = Server::start(&url, engine, &db);
        let scenario = if !ever_caught_up && killed < initial_kills {
            Scenario::Anytime
        } else {
            let s = cycle[round % cycle.len()];
            round += 1;
            s
        };
        let (window, target) = match scenario {
            Scenario::Anytime if !ever_caught_up => ("initial", None),
            Scenario::Anytime => ("anytime", None),
            Scenario::Reorg => ("reorg", Some(Phase::Reorg)),
            Scenario::Mine => ("mine", Some(Phase::TipBlock)),
            Scenario::Mempool => ("mempool", Some(Phase::MempoolRefresh)),
        };
        let waited = if let Scenario::Anytime = scenario {
            // The node moves on while the server (re)starts.
            if rng.gen_bool(0.5) {
                mine(&sim, 1, &mut scripts);
            }
            if rng.gen_bool(0.5) {
                churn_mempool(&sim, &mut rng, &mut scripts);
            }
            if ever_caught_up {
                Ok(())
            } else {
                // Count from the first block fetched, not from the process start.
                // A database flushed to the tip just before the last kill has nothing to
                // apply: it catches up at once.
                let started = ["applying blocks", "index caught up with the node"];
                anode.expect(&started, 0, killed, &mut report)
            }
        } else {
            anode
                .expect(&["index caught up with the node"], 0, killed, &mut report)
                .and_then(|()| {
                    anode.drain();
                    let from = anode.log.len();
                    let needle = match scenario {
                        Scenario::Reorg => {
                            reorg(&sim, &mut rng, &mut scripts);
                            "reorg: undoing blocks"
                        }
                        Scenario::Mine => {
                            mine(&sim, rng.gen_range(1..=3), &mut scripts);
                            "applying blocks"
                        }
                        _ => {
                            churn_mempool(&sim, &mut rng, &mut scripts);
                            "refreshing the mempool"
                        }
                    };
                    // Kill at a random instant after the server started on the change.
                    anode.expect(&[needle], from, killed, &mut report)
                })
        };
        if let Err(failure) = waited {
            report.corruptions.push(failure);
            return report;
        }
        let window_ref = windows.get_mut(window).expect("window");
        let delay = window_ref.draw(&mut rng);
        std::thread::sleep(delay);
        let log = match anode.kill() {
            Ok(log) => log,
            Err(failure) => {
                report
                    .corruptions
                    .push(format!("restart {killed}: {failure}"));
                return report;
            }
        };
        let phase = phase_at_death(&log, ever_caught_up);
        ever_caught_up |= log.iter().any(|l| l.contains("index caught up"));
        match target {
            Some(target) => window_ref.learn(phase == target),
            None if window == "initial" => window_ref.learn(phase == Phase::InitialSync),
            None => {}
        }
        if verbose {
            eprintln!("{engine} kill {killed}: {scenario:?}, {delay:?} after the cue: {phase:?}");
        }
        *report.kills.entry(phase).or_default() += 1;
        killed += 1;
    }

    // The last changes: a few blocks, a reorg and a mempool with chains of parents.
    mine(&sim, 2, &mut scripts);
    reorg(&sim, &mut rng, &mut scripts);
    for _ in 0..4 {
        churn_mempool(&sim, &mut rng, &mut scripts);
    }
    let mempool_chain = sim
        .with_chain_mut(|c| c.add_mempool_chain(3))
        .unwrap_or_default();
    scripts.note_txs(&sim, &mempool_chain);
    report.final_height = sim.with_chain(|c| c.height());
    report.scripts = scripts.0.len();

    let mut soaked = Server::start(&url, engine, &dir.path().join("soaked"));
    let mut fresh = Server::start(&url, engine, &dir.path().join("fresh"));
    let mut ready = Vec::new();
    for (name, server) in [("soaked", &mut soaked), ("fresh", &mut fresh)] {
        match settle(server, &sim) {
            Ok(client) => ready.push(client),
            Err(e) => report.corruptions.push(format!("{name} server: {e}")),
        }
    }
    if let [soaked_client, fresh_client] = &mut ready[..] {
        let compared = compare(soaked_client, fresh_client, &scripts, &sim);
        report.corruptions.extend(compared.differences);
        (report.with_history, report.with_mempool) = (compared.with_history, compared.with_mempool);
    }
    soaked.stop();
    fresh.stop();
    drop(server);
    report
}

/// Waits until `server` serves the simulator's tip and has refreshed its mempool twice since
/// (the node no longer changes); returns a client.
fn settle(server: &mut Server, sim: &Simulator) -> Result<Electrum, String> {
    let addr = match server.electrum_addr() {
        Some(addr) => addr,
        None => {
            return Err(server
                .exited()
                .unwrap_or_else(|| "no Electrum listener".into()))
        }
    };
    let mut client = Electrum::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let (height, header) = sim.with_chain(|c| {
        let h = c.height();
        (h, hex::encode(c.header_at(h).expect("tip header")))
    });
    let deadline = Instant::now() + CATCH_UP_WITHIN;
    loop {
        let tip = client.call("blockchain.headers.subscribe", json!([]));
        if tip["height"] == json!(height) && tip["hex"] == json!(header) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("never reached the tip {height}: serves {tip}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    server.drain();
    let from = server.log.len();
    let first = server
        .wait_for(&["mempool refreshed"], from, CATCH_UP_WITHIN)
        .ok_or("no mempool refresh")?;
    server
        .wait_for(&["mempool refreshed"], first + 1, CATCH_UP_WITHIN)
        .ok_or("no second mempool refresh")?;
    Ok(client)
}

struct Compared {
    differences: Vec<String>,
    with_history: usize,
    with_mempool: usize,
}

/// Every difference between the two servers' answers (`a` soaked, `b` fresh).
fn compare(a: &mut Electrum, b: &mut Electrum, scripts: &Scripts, sim: &Simulator) -> Compared {
    let mut differences = Vec::new();
    let (mut with_history, mut with_mempool) = (0, 0);
    let tip_a = a.call("blockchain.headers.subscribe", json!([]));
    let tip_b = b.call("blockchain.headers.subscribe", json!([]));
    if tip_a != tip_b {
        differences.push(format!("tip: soaked {tip_a}, fresh {tip_b}"));
    }
    let height = sim.with_chain(|c| c.height());
    let mut start = 0;
    while start <= height {
        let count = (height + 1 - start).min(2016);
        let params = json!([start, count]);
        let (ha, hb) = (
            a.call("blockchain.block.headers", params.clone()),
            b.call("blockchain.block.headers", params),
        );
        if ha != hb {
            differences.push(format!("headers {start}..{}: differ", start + count));
        }
        start += count;
    }
    let scripts: Vec<&String> = scripts.0.iter().collect();
    for chunk in scripts.chunks(100) {
        let calls: Vec<(&str, Value)> = chunk
            .iter()
            .flat_map(|s| {
                [
                    ("blockchain.scripthash.get_history", json!([s])),
                    ("blockchain.scripthash.get_balance", json!([s])),
                    ("blockchain.scripthash.listunspent", json!([s])),
                ]
            })
            .collect();
        let (ra, rb) = (a.batch(&calls), b.batch(&calls));
        for history in rb.iter().step_by(3).filter_map(Value::as_array) {
            let heights = || history.iter().filter_map(|e| e["height"].as_i64());
            with_history += usize::from(heights().any(|h| h > 0));
            with_mempool += usize::from(heights().any(|h| h <= 0));
        }
        for ((call, x), y) in calls.iter().zip(&ra).zip(&rb) {
            if x != y {
                differences.push(format!("{} {}: soaked {x}, fresh {y}", call.0, call.1[0]));
            }
        }
    }
    Compared {
        differences,
        with_history,
        with_mempool,
    }
}

/// A plain Electrum client over TCP: JSON lines, batches for throughput.
struct Electrum {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_id: u64,
}

impl Electrum {
    fn connect(addr: SocketAddr) -> std::io::Result<Electrum> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut client = Electrum {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            next_id: 0,
        };
        client.call("server.version", json!(["crash-soak", "1.4"]));
        Ok(client)
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("an answer");
        serde_json::from_str(&line).expect("a JSON answer")
    }

    /// The result, or the error object.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let request =
            json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params});
        writeln!(self.writer, "{request}").expect("send");
        let answer = self.read();
        answer.get("result").cloned().unwrap_or(answer)
    }

    /// Results (or error objects) in the order of `calls`.
    fn batch(&mut self, calls: &[(&str, Value)]) -> Vec<Value> {
        let first = self.next_id + 1;
        let requests: Vec<Value> = calls
            .iter()
            .map(|(method, params)| {
                self.next_id += 1;
                json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
            })
            .collect();
        writeln!(self.writer, "{}", Value::Array(requests)).expect("send");
        let answers = self.read();
        let mut by_id: BTreeMap<u64, Value> = BTreeMap::new();
        for answer in answers.as_array().expect("a batch answer") {
            let id = answer["id"].as_u64().expect("an id");
            let value = answer.get("result").cloned().unwrap_or(answer.clone());
            by_id.insert(id, value);
        }
        (first..=self.next_id)
            .map(|id| by_id.remove(&id).unwrap_or(Value::Null))
            .collect()
    }
}

#[test]
fn sigkill_the_running_server_at_random_instants_and_compare_with_a_clean_sync() {
    let kills: u32 = env_or("ANODE_SOAK_KILLS", 8);
    let blocks: u32 = env_or("ANODE_SOAK_BLOCKS", 300);
    let seed: u64 = env_or("ANODE_SOAK_SEED", 17);
    let engines: Vec<String> = match std::env::var("ANODE_SOAK_ENGINES") {
        Ok(list) if !list.is_empty() => list.split(',').map(str::to_string).collect(),
        _ => available_engines().iter().map(|e| e.to_string()).collect(),
    };
    let mut failed = Vec::new();
    for engine in &engines {
        let started = Instant::now();
        let report = soak(engine, kills, blocks, seed);
        let phases: Vec<String> = report
            .kills
            .iter()
            .map(|(phase, n)| format!("{}: {n}", phase.describe()))
            .collect();
        eprintln!(
            "{engine}: {} kills ({}) in {:.0?}; final height {}, {} scripts compared ({} with confirmed history, {} with mempool entries); corruptions: {}; stalls: {}",
            report.kills.values().sum::<u32>(),
            phases.join(", "),
            started.elapsed(),
            report.final_height,
            report.scripts,
            report.with_history,
            report.with_mempool,
            report.corruptions.len(),
            report.stalls.len(),
        );
        for line in report.corruptions.iter().chain(&report.stalls) {
            eprintln!("  {engine}: {line}");
        }
        // A comparison of empty answers would prove nothing.
        let hollow = report.with_history == 0 || report.with_mempool == 0;
        if hollow || !report.corruptions.is_empty() || !report.stalls.is_empty() {
            failed.push(engine.clone());
        }
    }
    assert!(
        failed.is_empty(),
        "corruptions, stalls or an empty comparison on {failed:?}"
    );
}

#[test]
fn a_kill_is_placed_in_the_phase_its_log_ends_in() {
    let lines = |text: &str| -> Vec<String> { text.lines().map(str::to_string).collect() };
    let sync = "INFO anode::index::writer: flush height=120 blocks=120 synced=false\n\
                DEBUG anode::index::sync: applying blocks from=121 to=300";
    assert_eq!(phase_at_death(&lines(sync), false), Phase::InitialSync);
    assert_eq!(phase_at_death(&lines(sync), true), Phase::Resume);
    let caught = "DEBUG anode::index::sync: applying blocks from=0 to=300\n\
                  INFO anode::index::writer: flush height=300 blocks=300 synced=true\n\
                  INFO anode::index::sync: index caught up with the node height=300";
    assert_eq!(phase_at_death(&lines(caught), false), Phase::Idle);
    let reorg = format!(
        "{caught}\nINFO anode::index::sync: reorg: undoing blocks fork=297 depth=3\n\
         INFO anode::index::sync: reorg: blocks undone fork=297 undone=3\n\
         DEBUG anode::index::sync: applying blocks from=298 to=301"
    );
    assert_eq!(phase_at_death(&lines(&reorg), true), Phase::Reorg);
    let reorg_done = format!(
        "{reorg}\nINFO anode::index::writer: flush height=301 blocks=4 synced=true\n\
         DEBUG anode::index::sync: refreshing the mempool"
    );
    assert_eq!(
        phase_at_death(&lines(&reorg_done), true),
        Phase::MempoolRefresh
    );
    let tip = format!("{caught}\nDEBUG anode::index::sync: applying blocks from=301 to=302");
    assert_eq!(phase_at_death(&lines(&tip), true), Phase::TipBlock);
}
