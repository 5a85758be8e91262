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

/// Longest wait for one answer (the benchmark stack's `request_timeout`).
const CALL_TIMEOUT: Duration = Duration::from_secs(600);
/// Lines up to this long are kept whole and parsed (notifications, most answers); of a longer
/// one only this much of its start is kept, and the rest is scanned as it streams by.
const SMALL_LINE: usize = 16 * 1024;
/// Bytes kept of the end of a long line (where its `id` may be).
const TAIL: usize = 64;

/// One client session.
pub struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    /// the last line read, or the first [`SMALL_LINE`] bytes of a longer one
    line: Vec<u8>,
    /// the last [`TAIL`] bytes of the last line read
    tail: Vec<u8>,
}

/// An answer, as far as the client checks it. Answers longer than [`SMALL_LINE`] (a large
/// history is 10 MB of JSON) are not parsed: their id is read from their first or last bytes,
/// and the entries of an array result are counted by their opening braces as the line streams
/// by, so that a session never buffers a whole large answer and the client's cost stays well
/// below the server's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answer {
    /// a result rather than an error
    pub ok: bool,
    /// the answer's id, when one was found
    pub id: Option<u64>,
    /// entries of an array result
    pub items: Option<u64>,
}

/// What a line from the server was.
enum Line {
    Answer(Answer),
    Notification(Value),
}

/// What [`Conn::read_line`] saw of a line.
struct Scanned {
    /// its length, newline included
    len: usize,
    /// its `{` bytes
    braces: u64,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// The number after `"id":` in `bytes`, if any.
fn id_in(bytes: &[u8]) -> Option<u64> {
    let at = find(bytes, b"\"id\"")? + 4;
    let rest = &bytes[at..];
    let rest = &rest[rest.iter().position(|b| !matches!(b, b' ' | b':'))?..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// The answer a long line carries, from its start (`head`), its end (`tail`) and its braces.
fn long_answer(head: &[u8], tail: &[u8], braces: u64) -> Answer {
    let Some(at) = find(head, b"\"result\"") else {
        // An error answer is short; a long line without a result is not one we understand.
        return Answer {
            ok: false,
            id: id_in(head).or_else(|| id_in(tail)),
            items: None,
        };
    };
    let value = head[at + 8..]
        .iter()
        .copied()
        .filter(|b| !matches!(b, b' ' | b':' | b'\n' | b'\r' | b'\t'))
        .take(2)
        .collect::<Vec<u8>>();
    // An array of objects (history or UTXO entries): every `{` but the answer's own opens
    // one entry (hex strings and numbers hold none).
    let items = match value.as_slice() {
        [b'[', b'{' | b']'] => Some(braces.saturating_sub(1)),
        _ => None,
    };
    Answer {
        ok: true,
        id: id_in(head).or_else(|| id_in(tail)),
        items,
    }
}

fn classify(line: &[u8], tail: &[u8], scanned: &Scanned) -> anyhow::Result<Line> {
    if scanned.len > line.len() {
        return Ok(Line::Answer(long_answer(line, tail, scanned.braces)));
    }
    let value: Value = serde_json::from_slice(line).context("a line that is not JSON")?;
    if let Value::Array(items) = &value {
        return Ok(Line::Answer(Answer {
            ok: true,
            id: None,
            items: Some(items.len() as u64),
        }));
    }
    if value.get("id").is_none() && value.get("method").is_some() {
        return Ok(Line::Notification(value));
    }
    Ok(Line::Answer(Answer {
        ok: value.get("error").is_none_or(Value::is_null),
        id: value.get("id").and_then(Value::as_u64),
        items: value
            .get("result")
            .and_then(Value::as_array)
            .map(|a| a.len() as u64),
    }))
}

impl Conn {
    /// Connects and negotiates the protocol version (`server.version`, alone and first).
    pub async fn open(addr: &str) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        Conn::negotiate(stream).await
    }

    /// Negotiates the protocol version over a connection already made.
    pub async fn negotiate(stream: TcpStream) -> anyhow::Result<Conn> {
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        let (r, w) = stream.into_split();
        let mut conn = Conn {
            reader: BufReader::with_capacity(64 * 1024, r),
            writer: w,
            next_id: 0,
            line: Vec::with_capacity(4096),
            tail: Vec::with_capacity(TAIL),
        };
        if !conn
            .call("server.version", json!(["anode-bench", "1.4"]))
            .await?
        {
            bail!("server.version refused");
        }
        Ok(conn)
    }

    async fn send(&mut self, body: &Value) -> anyhow::Result<()> {
        let mut text = serde_json::to_vec(body).context("encoding a request")?;
        text.push(b'\n');
        self.writer.write_all(&text).await.context("sending")?;
        Ok(())
    }

    /// Sends a request and does not wait for its answer (a client that never reads).
    pub async fn send_only(&mut self, method: &str, params: Value) -> anyhow::Result<()> {
        self.next_id += 1;
        let body =
            json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params});
        self.send(&body).await
    }

    /// Writes `bytes` as they are: part of a line, for a client that trickles.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.writer.write_all(bytes).await.context("sending")
    }

    /// The session's local port, by which the kernel's socket table names it.
    pub fn local_port(&self) -> Option<u16> {
        self.writer.local_addr().ok().map(|a| a.port())
    }

    /// Reads one line: whole into `line` when it is at most [`SMALL_LINE`] bytes, else its
    /// first [`SMALL_LINE`] bytes into `line` and its last [`TAIL`] into `tail`, counting its
    /// `{` bytes as it streams through the read buffer.
    async fn read_line(&mut self) -> anyhow::Result<Scanned> {
        self.line.clear();
        self.tail.clear();
        let mut scanned = Scanned { len: 0, braces: 0 };
        loop {
            let buf = self.reader.fill_buf().await.context("reading")?;
            if buf.is_empty() {
                bail!("the server closed the connection");
            }
            let (chunk, done) = match memchr::memchr(b'\n', buf) {
                Some(i) => (&buf[..=i], true),
                None => (buf, false),
            };
            scanned.braces += chunk.iter().filter(|b| **b == b'{').count() as u64;
            let room = SMALL_LINE.saturating_sub(self.line.len()).min(chunk.len());
            self.line.extend_from_slice(&chunk[..room]);
            if chunk.len() >= TAIL {
                self.tail.clear();
                self.tail.extend_from_slice(&chunk[chunk.len() - TAIL..]);
            } else {
                self.tail.extend_from_slice(chunk);
                let extra = self.tail.len().saturating_sub(TAIL);
                self.tail.drain(..extra);
            }
            let n = chunk.len();
            scanned.len += n;
            self.reader.consume(n);
            if done {
                return Ok(scanned);
            }
        }
    }

    /// Reads a whole line, however long, into `line` (batch answers, which are parsed).
    async fn read_whole_line(&mut self) -> anyhow::Result<()> {
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

    /// Reads lines until an answer, skipping notifications.
    async fn answer(&mut self) -> anyhow::Result<Answer> {
        loop {
            let scanned = self.read_line().await?;
            if let Line::Answer(answer) = classify(&self.line, &self.tail, &scanned)? {
                return Ok(answer);
            }
        }
    }

    /// One request; true when answered with a result, false for an error answer.
    pub async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<bool> {
        Ok(self.call_answer(method, params).await?.ok)
    }

    /// One request and what its answer was; fails when the answer's id is not the request's.
    pub async fn call_answer(&mut self, method: &str, params: Value) -> anyhow::Result<Answer> {
        self.next_id += 1;
        let id = self.next_id;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send(&body).await?;
        let answer = tokio::time::timeout(CALL_TIMEOUT, self.answer())
            .await
            .context("no answer in time")??;
        match answer.id {
            Some(got) if got != id => bail!("{method}: the answer's id is {got}, not {id}"),
            None if answer.ok => bail!("{method}: an answer without an id"),
            _ => Ok(answer),
        }
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
                self.read_whole_line().await?;
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
                let Ok(scanned) = self.read_line().await else {
                    return;
                };
                let at = Instant::now();
                let Ok(Line::Notification(value)) = classify(&self.line, &self.tail, &scanned)
                else {
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
        let script = |i: usize| {
            targets.history.get(i).map_or_else(String::new, |t| {
                format!("{} txs, wanted {}", t.txs, t.wanted)
            })
        };
        match self {
            Query::HeadersSubscribe => "headers.subscribe".into(),
            Query::BlockHeader => "block.header".into(),
            Query::BlockHeaders => "block.headers (2016)".into(),
            Query::History(i) => format!("get_history ({})", script(*i)),
            Query::ListUnspent(i) => format!("listunspent ({})", script(*i)),
            Query::Balance(i) => format!("get_balance ({})", script(*i)),
            Query::TxGet => "transaction.get".into(),
            Query::TxMerkle => "transaction.get_merkle".into(),
        }
    }

    /// Entries a whole answer has at least: a `get_history` answer lists every transaction of
    /// the target's history (the chain does not change while the queries run).
    fn expected_items(&self, targets: &Targets) -> Option<u64> {
        match self {
            Query::History(i) => targets.history.get(*i).map(|t| t.txs),
            _ => None,
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
/// one request), or, when `once`, exactly one request per session, all sent at once. An error
/// answer, or a `get_history` answer with fewer entries than the script's history, counts as
/// an error. Returns the cell and the sessions still usable.
pub async fn run_cell(
    conns: Vec<Conn>,
    query: &Query,
    targets: &Arc<Targets>,
    seconds: f64,
    once: bool,
) -> (QueryCell, Vec<Conn>) {
    let sessions = conns.len();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let expected = query.expected_items(targets);
    let mut tasks = Vec::with_capacity(sessions);
    for (i, mut conn) in conns.into_iter().enumerate() {
        let (query, targets) = (query.clone(), Arc::clone(targets));
        tasks.push(tokio::spawn(async move {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64);
            let mut micros = Vec::new();
            let mut errors = 0u64;
            let mut sample: Option<String> = None;
            loop {
                let (method, params) = query.request(&targets, &mut rng);
                let sent = Instant::now();
                match conn.call_answer(method, params).await {
                    Ok(a) if a.ok && expected.is_none_or(|n| a.items.is_some_and(|g| g >= n)) => {
                        micros.push(sent.elapsed().as_micros() as u64)
                    }
                    Ok(a) => {
                        errors += 1;
                        sample.get_or_insert_with(|| match (a.ok, a.items, expected) {
                            (true, items, Some(n)) => {
                                format!("{items:?} entries in the answer, {n} expected")
                            }
                            _ => String::from_utf8_lossy(&conn.line[..conn.line.len().min(300)])
                                .trim_end()
                                .to_string(),
                        });
                    }
                    Err(e) => return (None, micros, errors + 1, Some(format!("{e:#}"))),
                }
                if once || Instant::now() >= deadline {
                    return (Some(conn), micros, errors, sample);
                }
            }
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    let mut kept = Vec::with_capacity(sessions);
    let mut error_sample = None;
    for task in tasks {
        match task.await {
            Ok((conn, micros, e, sample)) => {
                all.extend(micros);
                errors += e;
                kept.extend(conn);
                error_sample = error_sample.or(sample);
            }
            Err(e) => {
                errors += 1;
                error_sample = error_sample.or(Some(format!("a session's task: {e}")));
            }
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
        one_request_each: once,
        error_sample,
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
            let once = match (&query, plan.heavy_history_one_request_above) {
                (Query::History(i), Some(limit)) => Some(*i) == heaviest && sessions > limit,
                _ => false,
            };
            if conns.len() < sessions {
                let more = open_sessions(addr, sessions - conns.len()).await?;
                conns.extend(more);
            }
            let (cell, kept) = run_cell(conns, &query, targets, plan.cell_seconds, once).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A `get_history` answer of `n` entries, as a server writes it.
    fn history_answer(id: u64, n: u64) -> Vec<u8> {
        let entries: Vec<Value> = (0..n)
            .map(|i| json!({"tx_hash": format!("{i:064x}"), "height": 100 + i / 2000}))
            .collect();
        let mut line =
            serde_json::to_vec(&json!({"jsonrpc": "2.0", "result": entries, "id": id})).unwrap();
        line.push(b'\n');
        line
    }

    /// A server that answers every request line with the next of `answers`.
    async fn serve(answers: Vec<Vec<u8>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (r, mut w) = stream.into_split();
            let mut r = BufReader::new(r);
            let mut request = Vec::new();
            for answer in answers {
                request.clear();
                if r.read_until(b'\n', &mut request).await.unwrap_or(0) == 0 {
                    return;
                }
                w.write_all(&answer).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn long_answers_are_counted_not_parsed() {
        let version = b"{\"jsonrpc\":\"2.0\",\"result\":[\"x\",\"1.4\"],\"id\":1}\n".to_vec();
        let notification = b"{\"jsonrpc\":\"2.0\",\"method\":\"blockchain.headers.subscribe\",\"params\":[{\"height\":5}]}\n";
        let mut third = notification.to_vec();
        third.extend(history_answer(3, 100_000));
        let addr = serve(vec![
            version,
            history_answer(2, 10),
            third,
            history_answer(9, 50_000),
            b"{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":\"no\"},\"id\":5}\n".to_vec(),
        ])
        .await;
        let mut conn = Conn::open(&addr).await.unwrap();
        let small = conn.call_answer("m", json!([])).await.unwrap();
        assert_eq!(
            small,
            Answer {
                ok: true,
                id: Some(2),
                items: Some(10)
            }
        );
        let large = conn.call_answer("m", json!([])).await.unwrap();
        assert_eq!(
            large,
            Answer {
                ok: true,
                id: Some(3),
                items: Some(100_000)
            }
        );
        assert!(conn.line.len() <= SMALL_LINE && conn.line.capacity() < 2 * SMALL_LINE + 4096);
        let wrong = conn.call_answer("m", json!([])).await;
        assert!(wrong.is_err(), "an answer to another request: {wrong:?}");
        assert!(!conn.call("m", json!([])).await.unwrap());
    }

    /// What reading a 100,000-entry history costs the client: `cargo test -p anode-benches
    /// --release --all-features --lib -- --ignored --nocapture client_cost`.
    #[tokio::test]
    #[ignore]
    async fn client_cost_of_a_large_answer() {
        let line = history_answer(2, 100_000);
        let rounds = 20u32;
        let started = Instant::now();
        for _ in 0..rounds {
            let value: Value = serde_json::from_slice(&line).unwrap();
            assert_eq!(value["result"].as_array().map(Vec::len), Some(100_000));
        }
        let parse = started.elapsed() / rounds;
        let mut answers = vec![b"{\"jsonrpc\":\"2.0\",\"result\":[],\"id\":1}\n".to_vec()];
        answers.extend((0..rounds).map(|i| history_answer(u64::from(i) + 2, 100_000)));
        let addr = serve(answers).await;
        let mut conn = Conn::open(&addr).await.unwrap();
        let started = Instant::now();
        for _ in 0..rounds {
            let a = conn.call_answer("m", json!([])).await.unwrap();
            assert_eq!(a.items, Some(100_000));
        }
        let stream = started.elapsed() / rounds;
        crate::run::say(&format!(
            "{} bytes: serde_json::Value parse {parse:?}; streamed over TCP, id checked and \
             entries counted {stream:?} (the test server's write included)",
            line.len()
        ));
    }
}
