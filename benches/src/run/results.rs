//! What one benchmark run records: plain data, written as JSON by the child processes and read
//! back by the report.

use serde::{Deserialize, Serialize};

/// Latency figures of one set of requests, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    /// requests answered
    pub count: u64,
    /// median
    pub p50_ms: f64,
    /// 90th percentile
    pub p90_ms: f64,
    /// 99th percentile
    pub p99_ms: f64,
    /// slowest
    pub max_ms: f64,
    /// mean
    pub mean_ms: f64,
    /// the distribution: latency at quantiles 0.00, 0.02, ..., 1.00 (51 points)
    pub cdf_ms: Vec<f64>,
}

impl Latency {
    /// Figures of `micros` (latencies in microseconds; sorted here).
    pub fn of(mut micros: Vec<u64>) -> Latency {
        if micros.is_empty() {
            return Latency::default();
        }
        micros.sort_unstable();
        let n = micros.len();
        let at = |q: f64| micros[((q * (n - 1) as f64).round() as usize).min(n - 1)] as f64 / 1e3;
        Latency {
            count: n as u64,
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: micros[n - 1] as f64 / 1e3,
            mean_ms: micros.iter().sum::<u64>() as f64 / n as f64 / 1e3,
            cdf_ms: (0..=50).map(|i| at(f64::from(i) / 50.0)).collect(),
        }
    }
}

/// A progress sample of the initial sync: (seconds since the start, indexed height,
/// transactions indexed).
pub type Sample = (f64, u32, u64);

/// The initial sync of one engine.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncResult {
    /// blocks indexed (genesis included)
    pub blocks: u32,
    /// transactions indexed
    pub txs: u64,
    /// wall time of the sync, seconds
    pub seconds: f64,
    /// blocks per second over the whole sync
    pub blocks_per_s: f64,
    /// transactions per second over the whole sync
    pub tx_per_s: f64,
    /// the process's resident memory before the sync (the simulator's chain), bytes
    pub baseline_rss: u64,
    /// the process's peak resident memory at the end of the sync, bytes
    pub peak_rss: u64,
    /// bytes the process caused to be written to storage during the sync (`/proc/self/io`
    /// `write_bytes`)
    pub write_bytes: u64,
    /// bytes of the database directory after the sync
    pub disk_after_sync: u64,
    /// largest size of the database directory seen by the progress samples during the sync
    #[serde(default)]
    pub disk_peak: u64,
    /// bytes of the database directory after a full compaction, when the engine compacts
    pub disk_after_compaction: Option<u64>,
    /// seconds the compaction took
    pub compaction_seconds: Option<f64>,
    /// what the compaction was, or why there was none
    pub compaction_note: String,
    /// progress samples, every half second
    pub samples: Vec<Sample>,
}

/// Fetch and parse alone: what the daemon side can deliver.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FetchResult {
    /// blocks fetched
    pub blocks: u32,
    /// transactions parsed
    pub txs: u64,
    /// seconds
    pub seconds: f64,
    /// transactions per second
    pub tx_per_s: f64,
    /// seconds the simulator took to build the chain
    pub chain_build_seconds: f64,
}

/// One method under one concurrency.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QueryCell {
    /// the method and its argument's shape (e.g. `get_history (1,034 txs)`)
    pub label: String,
    /// concurrent sessions
    pub sessions: usize,
    /// requests that failed (error answers, timeouts, dropped connections)
    pub errors: u64,
    /// wall seconds from the first request to the last answer
    pub seconds: f64,
    /// answered requests per second
    pub per_s: f64,
    /// latencies of the answered requests
    pub latency: Latency,
    /// why the cell was not run, when it was not
    #[serde(default)]
    pub skipped: Option<String>,
    /// every session sent exactly one request (all at once) instead of a closed loop
    #[serde(default)]
    pub one_request_each: bool,
    /// the first error seen, when there were errors
    #[serde(default)]
    pub error_sample: Option<String>,
}

/// The wallet storm: many sessions subscribing many scripts each.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StormResult {
    /// sessions
    pub sessions: usize,
    /// scripts subscribed per session
    pub scripts_per_session: usize,
    /// subscriptions per batch request
    pub batch: usize,
    /// distinct scripts among all subscriptions
    pub distinct_scripts: usize,
    /// sessions that got every status back
    pub completed_sessions: usize,
    /// statuses returned
    pub statuses: u64,
    /// error answers or failed sessions
    pub errors: u64,
    /// seconds from the first connect until the last session had all its statuses
    pub seconds: f64,
    /// statuses per second over the storm
    pub statuses_per_s: f64,
    /// per session: seconds from the storm's start until its last status
    pub session_done: Latency,
}

/// A new block at the daemon, until the subscribed clients hear of it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TipResult {
    /// transactions in the block (coinbase included)
    pub block_txs: usize,
    /// seconds from the block's arrival at the daemon until the index's tip is the block
    pub index_seconds: f64,
    /// sessions subscribed to headers
    pub sessions: usize,
    /// sessions that received the header notification
    pub notified_sessions: usize,
    /// seconds until the first header notification arrived
    pub first_header_seconds: f64,
    /// seconds until half the sessions had theirs
    pub median_header_seconds: f64,
    /// seconds until the last session had its header notification
    pub all_headers_seconds: f64,
    /// script-hash notifications received for the block
    pub script_notifications: u64,
    /// seconds until the last of them
    pub last_script_seconds: f64,
}

/// Transactions added at the daemon's mempool, until the index reports them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MempoolResult {
    /// transactions added at the simulator
    pub txs: usize,
    /// seconds until the index's mempool held them all
    pub seconds: f64,
    /// transactions per second
    pub tx_per_s: f64,
}

/// A reorganisation at the daemon, until the index's tip is on the new branch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReorgResult {
    /// blocks replaced
    pub depth: u32,
    /// blocks of the new branch
    pub new_blocks: u32,
    /// seconds until the index's tip was the new branch's tip
    pub seconds: f64,
}

/// Facts about the chain and the scripts the queries use.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChainFacts {
    /// blocks, genesis included
    pub blocks: u32,
    /// transactions
    pub txs: u64,
    /// bytes of all blocks
    #[serde(default)]
    pub block_bytes: u64,
    /// seconds the simulator took to build it
    pub build_seconds: f64,
    /// blocks of the hot segment (scripts given a history of a wanted size)
    #[serde(default)]
    pub hot_blocks: u32,
    /// transactions of the hot segment, coinbases left out
    #[serde(default)]
    pub hot_txs: u64,
    /// the history sizes the hot segment made scripts for
    #[serde(default)]
    pub hot_sizes: Vec<u64>,
    /// the `get_history` targets: wanted size and the chosen script's actual history
    #[serde(default)]
    pub history: Vec<super::chain::HistoryTarget>,
}

/// Fresh connections on one transport, with the server's default settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FreshConnectionRow {
    /// tcp, ssl, ws or wss
    pub transport: String,
    /// connecting, with the TLS and WebSocket handshakes
    pub connect: Latency,
    /// `server.version`, from its write to its answer
    pub first_request: Latency,
    /// the request after it (`blockchain.headers.subscribe`)
    pub second_request: Latency,
    /// answers that were errors
    pub errors: u64,
}

/// Everything measured against one server: an engine of ours, or a peer server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EngineResult {
    /// engine name, or `peer HOST:PORT`
    pub name: String,
    /// engine library versions where known
    pub engine_version: String,
    /// the chain
    pub chain: ChainFacts,
    /// the initial sync (none in peer mode)
    pub sync: Option<SyncResult>,
    /// queries, every method at every concurrency
    pub queries: Vec<QueryCell>,
    /// the wallet storm
    pub storm: Option<StormResult>,
    /// new blocks
    pub tip: Vec<TipResult>,
    /// mempool ingest
    pub mempool: Vec<MempoolResult>,
    /// reorganisations
    pub reorg: Vec<ReorgResult>,
    /// fresh connections with default settings, per transport
    #[serde(default)]
    pub fresh_connections: Vec<FreshConnectionRow>,
    /// phases that failed, with the error
    pub failures: Vec<String>,
}
