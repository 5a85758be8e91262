//! A minimal Electrum client and the client-side workloads: queries at a given concurrency,
//! the wallet storm, and listeners for notifications. Works against any Electrum server over
//! plain TCP (newline-delimited JSON-RPC).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};

use super::chain::Targets;
use super::plan::Plan;
use super::results::{Latency, QueryCell, StormResult};

/// Longest wait for one answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(300);
/// Lines longer than this are answers (notifications are small); shorter ones are parsed.
const SMALL_LINE: usize = 16 * 1024;

/// One client session.
pub struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    line: Vec<u8>,
}

/// What a line from the server was.
enum Line {
    Answer { ok: bool },
    Notification(Value),
}

fn classify(line: &[u8]) -> anyhow::Result<Line> {
    if line.len() > SMALL_LINE {
        // A large line is an answer; an error answer is small.
        return Ok(Line::Answer { ok: true });
    }
    let value: Value = serde_json::from_slice(line).context("a line that is not JSON")?;
    if value.is_array() {
        return Ok(Line::Answer { ok: true });
    }
    if value.get("id").is_none() && value.get("method").is_some() {
        return Ok(Line::Notification(value));
    }
    Ok(Line::Answer {
        ok: value.get("error").is_none_or(Value::is_null),
    })
}

impl Conn {
    /// Connects and negotiates the protocol version (`server.version`, alone and first).
    pub async fn open(addr: &str) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        let (r, w) = stream.into_split();
        let mut conn = Conn {
            reader: BufReader::with_capacity(64 * 1024, r),
            writer: w,
            next_id: 0,
            line: Vec::with_capacity(4096),
        };
        if !conn
            .call("server.version", json!(["anode-bench", "1.4"]))
            .await?
        {
            bail!("server.version refused by {addr}");
        }
        Ok(conn)
    }

    async fn send(&mut self, body: &Value) -> anyhow::Result<()> {
        let mut text = serde_json::to_vec(body).context("encoding a request")?;
        text.push(b'\n');
        self.writer.write_all(&text).await.context("sending")?;
        Ok(())
    }

    async fn read_line(&mut self) -> anyhow::Result<()> {
        self.line.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.line)
            .await
            .context("reading")?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        Ok(())
    }

    /// Reads lines until an answer, skipping notifications. Returns whether it was a result.
    async fn answer(&mut self) -> anyhow::Result<bool> {
        loop {
            self.read_line().await?;
            if let Line::Answer { ok } = classify(&self.line)? {
                return Ok(ok);
            }
        }
    }

    /// One request; true when answered with a result, false for an error answer.
    pub async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<bool> {
        self.next_id += 1;
        let body =
            json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params});
        self.send(&body).await?;
        tokio::time::timeout(CALL_TIMEOUT, self.answer())
            .await
            .context("no answer in time")?
    }

    /// A batch of requests; returns (results, errors) counted from the batch answer.
    pub async fn batch(&mut self, calls: &[(&str, Value)]) -> anyhow::Result<(u64, u64)> {
        let body: Vec<Value> = calls
            .iter()
            .map(|(method, params)| {
                self.next_id += 1;
                json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
            })
            .collect();
        self.send(&Value::Array(body)).await?;
        let read = async {
            loop {
                self.read_line().await?;
                let value: Value =
                    serde_json::from_slice(&self.line).context("a line that is not JSON")?;
                if let Value::Array(items) = value {
                    let ok = items
                        .iter()
                        .filter(|i| i.get("error").is_none_or(Value::is_null))
                        .count() as u64;
                    return anyhow::Ok((ok, items.len() as u64 - ok));
                }
                if value.get("id").is_some() {
                    // A single error object answers a batch the server refused whole.
                    return Ok((0, calls.len() as u64));
                }
            }
        };
        tokio::time::timeout(CALL_TIMEOUT, read)
            .await
            .context("no batch answer in time")?
    }

    /// Turns the session into a listener: every notification goes to `events`, stamped with
    /// its arrival time. The task ends when the connection closes or `events` is dropped.
    pub fn listen(mut self, events: mpsc::UnboundedSender<Event>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if self.read_line().await.is_err() {
                    return;
                }
                let at = Instant::now();
                let Ok(Line::Notification(value)) = classify(&self.line) else {
                    continue;
                };
                let event = match value.get("method").and_then(Value::as_str) {
                    Some("blockchain.headers.subscribe") => Event::Header {
                        height: value["params"][0]["height"].as_u64().unwrap_or(0),
                        at,
                    },
                    Some("blockchain.scripthash.subscribe") => Event::Script { at },
                    _ => continue,
                };
                if events.send(event).is_err() {
                    return;
                }
            }
        })
    }
}

/// A notification a listener received.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// a new tip
    Header {
        /// its height
        height: u64,
        /// arrival
        at: Instant,
    },
    /// a script's status changed
    Script {
        /// arrival
        at: Instant,
    },
}

/// Opens `n` sessions, at most 100 connecting at once.
pub async fn open_sessions(addr: &str, n: usize) -> anyhow::Result<Vec<Conn>> {
    let gate = Arc::new(Semaphore::new(100));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (addr, gate) = (addr.to_string(), Arc::clone(&gate));
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            Conn::open(&addr).await
        }));
    }
    let mut conns = Vec::with_capacity(n);
    for task in tasks {
        conns.push(task.await.context("connect task")??);
    }
    Ok(conns)
}

/// A query workload: one method with arguments drawn from the targets.
#[derive(Debug, Clone)]
pub enum Query {
    /// `blockchain.headers.subscribe`
    HeadersSubscribe,
    /// `blockchain.block.header` at a random height
    BlockHeader,
    /// `blockchain.block.headers`, 2016 from a random height
    BlockHeaders,
    /// `blockchain.scripthash.get_history` of the n-th history target
    History(usize),
    /// `blockchain.scripthash.listunspent` of the n-th history target
    ListUnspent(usize),
    /// `blockchain.scripthash.get_balance` of the n-th history target
    Balance(usize),
    /// `blockchain.transaction.get` of a random confirmed transaction
    TxGet,
    /// `blockchain.transaction.get_merkle` of a random confirmed transaction
    TxMerkle,
}

impl Query {
    /// The workloads for `targets`: every method, `get_history` once per history target,
    /// `listunspent` and `get_balance` on the target closest to 1,000 transactions.
    pub fn all(targets: &Targets) -> Vec<Query> {
        let mut queries = vec![
            Query::HeadersSubscribe,
            Query::BlockHeader,
            Query::BlockHeaders,
        ];
        queries.extend((0..targets.history.len()).map(Query::History));
        let mid = targets
            .history
            .iter()
            .position(|t| t.wanted == 1000)
            .unwrap_or(targets.history.len().saturating_sub(1));
        if !targets.history.is_empty() {
            queries.push(Query::ListUnspent(mid));
            queries.push(Query::Balance(mid));
        }
        if !targets.confirmed.is_empty() {
            queries.push(Query::TxGet);
            queries.push(Query::TxMerkle);
        }
        queries
    }

    /// Table label.
    pub fn label(&self, targets: &Targets) -> String {
        let script = |i: usize| targets.history.get(i).map_or(0, |t| t.txs);
        match self {
            Query::HeadersSubscribe => "headers.subscribe".into(),
            Query::BlockHeader => "block.header".into(),
            Query::BlockHeaders => "block.headers (2016)".into(),
            Query::History(i) => format!("get_history ({} txs)", script(*i)),
            Query::ListUnspent(i) => format!("listunspent ({} txs)", script(*i)),
            Query::Balance(i) => format!("get_balance ({} txs)", script(*i)),
            Query::TxGet => "transaction.get".into(),
            Query::TxMerkle => "transaction.get_merkle".into(),
        }
    }

    fn request(&self, targets: &Targets, rng: &mut impl Rng) -> (&'static str, Value) {
        let tip = targets.tip_height;
        let script = |i: usize| json!([targets.history[i].scripthash]);
        let confirmed = |rng: &mut dyn rand::RngCore| {
            let n = targets.confirmed.len();
            &targets.confirmed[rng.gen_range(0..n)]
        };
        match self {
            Query::HeadersSubscribe => ("blockchain.headers.subscribe", json!([])),
            Query::BlockHeader => ("blockchain.block.header", json!([rng.gen_range(0..=tip)])),
            Query::BlockHeaders => {
                let start = rng.gen_range(0..=tip.saturating_sub(2015));
                ("blockchain.block.headers", json!([start, 2016]))
            }
            Query::History(i) => ("blockchain.scripthash.get_history", script(*i)),
            Query::ListUnspent(i) => ("blockchain.scripthash.listunspent", script(*i)),
            Query::Balance(i) => ("blockchain.scripthash.get_balance", script(*i)),
            Query::TxGet => {
                let (txid, _) = confirmed(rng);
                ("blockchain.transaction.get", json!([txid]))
            }
            Query::TxMerkle => {
                let (txid, height) = confirmed(rng);
                ("blockchain.transaction.get_merkle", json!([txid, height]))
            }
        }
    }
}

/// Runs `query` on every session in a closed loop for `seconds` (each session sends at least
/// one request). Returns the cell and the sessions still usable.
pub async fn run_cell(
    conns: Vec<Conn>,
    query: &Query,
    targets: &Arc<Targets>,
    seconds: f64,
) -> (QueryCell, Vec<Conn>) {
    let sessions = conns.len();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::with_capacity(sessions);
    for (i, mut conn) in conns.into_iter().enumerate() {
        let (query, targets) = (query.clone(), Arc::clone(targets));
        tasks.push(tokio::spawn(async move {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64);
            let mut micros = Vec::new();
            let mut errors = 0u64;
            loop {
                let (method, params) = query.request(&targets, &mut rng);
                let sent = Instant::now();
                match conn.call(method, params).await {
                    Ok(true) => micros.push(sent.elapsed().as_micros() as u64),
                    Ok(false) => errors += 1,
                    Err(_) => return (None, micros, errors + 1),
                }
                if Instant::now() >= deadline {
                    return (Some(conn), micros, errors);
                }
            }
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    let mut kept = Vec::with_capacity(sessions);
    for task in tasks {
        match task.await {
            Ok((conn, micros, e)) => {
                all.extend(micros);
                errors += e;
                kept.extend(conn);
            }
            Err(_) => errors += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let latency = Latency::of(all);
    let cell = QueryCell {
        label: query.label(targets),
        sessions,
        errors,
        seconds: elapsed,
        per_s: latency.count as f64 / elapsed,
        latency,
        skipped: None,
    };
    (cell, kept)
}

/// Every query at every concurrency of `plan`. `report` is told of each finished cell.
pub async fn run_queries(
    addr: &str,
    targets: &Arc<Targets>,
    plan: &Plan,
    mut report: impl FnMut(&QueryCell),
) -> anyhow::Result<Vec<QueryCell>> {
    let mut cells = Vec::new();
    let heaviest = targets
        .history
        .len()
        .checked_sub(1)
        .filter(|_| targets.history.len() >= 3);
    for &sessions in &plan.concurrency {
        let mut conns = open_sessions(addr, sessions)
            .await
            .with_context(|| format!("opening {sessions} sessions"))?;
        for query in Query::all(targets) {
            if let (Query::History(i), Some(limit)) = (&query, plan.heavy_history_max_sessions) {
                if Some(*i) == heaviest && sessions > limit {
                    let cell = QueryCell {
                        label: query.label(targets),
                        sessions,
                        skipped: Some(format!(
                            "not run above {limit} sessions in the {} profile: every session sends at least one request and each costs the server time in proportion to the history (see the rows with fewer sessions), so this cell alone would outlast the profile's time budget",
                            plan.name
                        )),
                        ..QueryCell::default()
                    };
                    report(&cell);
                    cells.push(cell);
                    continue;
                }
            }
            if conns.len() < sessions {
                let more = open_sessions(addr, sessions - conns.len()).await?;
                conns.extend(more);
            }
            let (cell, kept) = run_cell(conns, &query, targets, plan.cell_seconds).await;
            report(&cell);
            cells.push(cell);
            conns = kept;
        }
    }
    Ok(cells)
}

/// The wallet storm: `sessions` sessions connect at once, subscribe to headers, then each
/// subscribes `per_session` scripts in batches of `batch`, waiting for each batch's answer.
/// Returns the result and the sessions, still subscribed, for the tip measurements.
pub async fn storm(
    addr: &str,
    scripts: &Arc<Vec<String>>,
    sessions: usize,
    per_session: usize,
    batch: usize,
) -> anyhow::Result<(StormResult, Vec<Conn>)> {
    if scripts.is_empty() {
        bail!("no scripts for the storm");
    }
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(sessions);
    for s in 0..sessions {
        let (addr, scripts) = (addr.to_string(), Arc::clone(scripts));
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&addr).await?;
            conn.call("blockchain.headers.subscribe", json!([])).await?;
            let mut ok = 0;
            let mut errors = 0;
            let mine: Vec<&String> = (0..per_session)
                .map(|i| &scripts[(s * per_session + i) % scripts.len()])
                .collect();
            for chunk in mine.chunks(batch.max(1)) {
                let calls: Vec<(&str, Value)> = chunk
                    .iter()
                    .map(|h| ("blockchain.scripthash.subscribe", json!([h])))
                    .collect();
                let (o, e) = conn.batch(&calls).await?;
                ok += o;
                errors += e;
            }
            anyhow::Ok((conn, ok, errors, started.elapsed()))
        }));
    }
    let mut conns = Vec::with_capacity(sessions);
    let mut done = Vec::with_capacity(sessions);
    let (mut statuses, mut errors) = (0u64, 0u64);
    for task in tasks {
        match task.await {
            Ok(Ok((conn, ok, e, at))) => {
                conns.push(conn);
                statuses += ok;
                errors += e;
                done.push(at.as_micros() as u64);
            }
            Ok(Err(_)) | Err(_) => errors += 1,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let result = StormResult {
        sessions,
        scripts_per_session: per_session,
        batch,
        distinct_scripts: scripts.len().min(sessions * per_session),
        completed_sessions: done.len(),
        statuses,
        errors,
        seconds,
        statuses_per_s: statuses as f64 / seconds,
        session_done: Latency::of(done),
    };
    Ok((result, conns))
}
