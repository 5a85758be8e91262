//! Queries on a big, cold index (`anode-bench cold`): p50 and p99 of `get_history`,
//! `get_balance`, `listunspent` and `get_merkle` for scripts and transactions drawn at random
//! from the whole chain, not the hot targets the `all` workloads pick. Each cell (one method at
//! one session count) gets targets of its own and starts with the OS page cache dropped (when
//! run as root), so its first reads come from the disk as an index far bigger than memory
//! serves them. Works against any Electrum server whose node RPC is reachable.
//!
//! A cell's latencies are also given for the scripts with at most [`ColdOptions::small_history`]
//! transactions (the target is a cold p99 of at most 20 ms for scripts with at most 100; see
//! docs/performance.md, "Cold queries on the 50M RocksDB index"): each script's history
//! length is read after its cell is timed.

use std::sync::Arc;
use std::time::Instant;

use anode::daemon::{hash_to_hex, DaemonApi};
use anode_coins::Coin;
use anyhow::Context;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::{open_sessions, Conn};
use super::results::Latency;
use super::say;

/// The methods measured, in the order their cells run.
pub const METHODS: &[&str] = &[
    "blockchain.scripthash.get_history",
    "blockchain.scripthash.get_balance",
    "blockchain.scripthash.listunspent",
    "blockchain.transaction.get_merkle",
];

/// Targets drawn from each block fetched: few, so that they spread over the whole chain.
const TARGETS_PER_BLOCK: usize = 3;

/// What `anode-bench cold` measures.
#[derive(Debug, Clone)]
pub struct ColdOptions {
    /// HOST:PORT of the Electrum server (plain TCP)
    pub server: String,
    /// RPC URL of the node whose chain the server indexes: targets are drawn from its blocks
    pub daemon_url: String,
    /// random targets per cell
    pub targets_per_cell: usize,
    /// session counts
    pub sessions: Vec<usize>,
    /// seed of the draw
    pub seed: u64,
    /// drop the OS page cache before each cell (needs root; skipped with a warning otherwise)
    pub drop_caches: bool,
    /// scripts with at most this many transactions are also reported on their own
    pub small_history: u64,
}

/// One method at one session count.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ColdCell {
    /// JSON-RPC method
    pub method: String,
    /// concurrent sessions, each working through its share of the targets one at a time
    pub sessions: usize,
    /// every request of the cell
    pub latency: Latency,
    /// requests on scripts with at most `small_history` transactions (`None` for get_merkle)
    pub small: Option<Latency>,
    /// answers that were errors (a history too large for the server's limit counts here)
    pub errors: u64,
    /// whether the page cache was dropped before the cell
    pub cache_dropped: bool,
}

/// A whole `anode-bench cold` run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ColdResult {
    /// the server measured
    pub server: String,
    /// the node's height when the targets were drawn
    pub tip_height: u32,
    /// random targets per cell
    pub targets_per_cell: usize,
    /// the small-history bound
    pub small_history: u64,
    /// cells in the order they ran
    pub cells: Vec<ColdCell>,
    /// seconds drawing the targets
    pub draw_seconds: f64,
}

/// A random output's script and the transaction that made it.
#[derive(Debug, Clone)]
struct Target {
    scripthash: String,
    txid: String,
    height: u32,
}

/// Draws `n` targets from random blocks of the node's chain (`TARGETS_PER_BLOCK` each).
async fn draw_targets(
    daemon: &dyn DaemonApi,
    coin: &Arc<dyn Coin>,
    n: usize,
    rng: &mut impl Rng,
) -> anyhow::Result<(u32, Vec<Target>)> {
    let tip = daemon.block_count().await.context("getblockcount")?;
    anyhow::ensure!(tip >= 1, "the node's chain has no block past genesis");
    let mut targets = Vec::with_capacity(n);
    let mut empty_blocks = 0u32;
    while targets.len() < n {
        let height = rng.gen_range(1..=tip);
        let hash = *daemon
            .block_hashes(height..height + 1)
            .await
            .context("getblockhash")?
            .first()
            .context("the node named no block")?;
        let raw = daemon
            .block(&hash)
            .await
            .with_context(|| format!("block {height}"))?;
        let block = coin
            .parse_block(&raw, Some(height))
            .with_context(|| format!("parsing block {height}"))?;
        let before = targets.len();
        for _ in 0..TARGETS_PER_BLOCK {
            // A node's block without transactions is malformed: it gives no target.
            if block.txs.is_empty() {
                break;
            }
            let tx = &block.txs[rng.gen_range(0..block.txs.len())];
            let spendable: Vec<&[u8]> = tx
                .outputs
                .iter()
                .map(|o| o.script.as_slice())
                .filter(|script| !coin.is_unspendable(script, height))
                .collect();
            if spendable.is_empty() {
                continue;
            }
            let script = spendable[rng.gen_range(0..spendable.len())];
            targets.push(Target {
                scripthash: hash_to_hex(&coin.script_hash(script)),
                txid: hash_to_hex(&tx.txid),
                height,
            });
        }
        if targets.len() == before {
            empty_blocks += 1;
            anyhow::ensure!(
                empty_blocks < 1_000,
                "1,000 blocks drawn without a spendable output"
            );
        }
    }
    targets.truncate(n);
    Ok((tip, targets))
}

/// Empties the OS page cache (dirty pages are written first); false when not allowed.
fn drop_page_cache() -> bool {
    let synced = std::process::Command::new("sync")
        .status()
        .is_ok_and(|s| s.success());
    synced && std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn params(method: &str, target: &Target) -> Value {
    if method == "blockchain.transaction.get_merkle" {
        json!([target.txid, target.height])
    } else {
        json!([target.scripthash])
    }
}

/// Times `method` on every target, `sessions` sessions at once; returns (target index,
/// microseconds, answered with a result) per request.
async fn time_cell(
    server: &str,
    method: &str,
    targets: &[Target],
    sessions: usize,
) -> anyhow::Result<Vec<(usize, u64, bool)>> {
    let conns = open_sessions(server, sessions).await?;
    let targets = Arc::new(targets.to_vec());
    let method = method.to_string();
    let mut tasks = Vec::with_capacity(conns.len());
    for (session, mut conn) in conns.into_iter().enumerate() {
        let (targets, method) = (Arc::clone(&targets), method.clone());
        tasks.push(tokio::spawn(async move {
            let mut timed = Vec::new();
            for i in (session..targets.len()).step_by(sessions) {
                let started = Instant::now();
                let answer = conn
                    .call_answer(&method, params(&method, &targets[i]))
                    .await?;
                timed.push((i, started.elapsed().as_micros() as u64, answer.ok));
            }
            anyhow::Ok(timed)
        }));
    }
    let mut all = Vec::with_capacity(targets.len());
    for task in tasks {
        all.extend(task.await.context("a session task")??);
    }
    Ok(all)
}

/// History lengths of `targets`' scripts (`None` where the server answered an error).
async fn history_lengths(conn: &mut Conn, targets: &[Target]) -> anyhow::Result<Vec<Option<u64>>> {
    let mut lengths = Vec::with_capacity(targets.len());
    for target in targets {
        let answer = conn
            .call_answer(
                "blockchain.scripthash.get_history",
                json!([target.scripthash]),
            )
            .await?;
        lengths.push(answer.items.filter(|_| answer.ok));
    }
    Ok(lengths)
}

/// Runs every cell: each method at each session count, on targets of its own.
pub async fn run_cold(
    options: &ColdOptions,
    daemon: &dyn DaemonApi,
    coin: Arc<dyn Coin>,
    mut on_cell: impl FnMut(&ColdCell),
) -> anyhow::Result<ColdResult> {
    anyhow::ensure!(options.targets_per_cell > 0, "no targets per cell");
    anyhow::ensure!(
        options.sessions.iter().all(|&s| s > 0),
        "a session count of 0"
    );
    let cells = METHODS.len() * options.sessions.len();
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let started = Instant::now();
    let (tip_height, targets) =
        draw_targets(daemon, &coin, cells * options.targets_per_cell, &mut rng).await?;
    let mut result = ColdResult {
        server: options.server.clone(),
        tip_height,
        targets_per_cell: options.targets_per_cell,
        small_history: options.small_history,
        cells: Vec::with_capacity(cells),
        draw_seconds: started.elapsed().as_secs_f64(),
    };
    let mut warned = false;
    let mut shares = targets.chunks(options.targets_per_cell);
    for &sessions in &options.sessions {
        for &method in METHODS {
            let share = shares.next().context("targets ran out")?;
            let cache_dropped = options.drop_caches && drop_page_cache();
            if options.drop_caches && !cache_dropped && !warned {
                say("cold: could not drop the page cache (not root?): cells start warm");
                warned = true;
            }
            let timed = time_cell(&options.server, method, share, sessions).await?;
            let lengths = if method == "blockchain.transaction.get_merkle" {
                None
            } else {
                let mut conn = Conn::open(&options.server).await?;
                Some(history_lengths(&mut conn, share).await?)
            };
            let micros: Vec<u64> = timed.iter().map(|(_, us, _)| *us).collect();
            let small = lengths.as_ref().map(|lengths| {
                Latency::of(
                    timed
                        .iter()
                        .filter(|(i, _, _)| lengths[*i].is_some_and(|n| n <= options.small_history))
                        .map(|(_, us, _)| *us)
                        .collect(),
                )
            });
            let cell = ColdCell {
                method: method.to_string(),
                sessions,
                latency: Latency::of(micros),
                small,
                errors: timed.iter().filter(|(_, _, ok)| !ok).count() as u64,
                cache_dropped,
            };
            on_cell(&cell);
            result.cells.push(cell);
        }
    }
    Ok(result)
}

/// The run as a Markdown table.
pub fn markdown(result: &ColdResult) -> String {
    let mut out = format!(
        "# Cold queries on {}\n\n{} random targets per cell, drawn from blocks 1..={} of the \
         node's chain; each cell starts with the page cache {}.\n\n\
         | method | sessions | requests | p50 ms | p99 ms | max ms | scripts ≤ {} txs | their p50 ms | their p99 ms | errors |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        result.server,
        result.targets_per_cell,
        result.tip_height,
        if result.cells.iter().all(|c| c.cache_dropped) {
            "dropped"
        } else {
            "**not** dropped (not run as root)"
        },
        result.small_history,
    );
    for c in &result.cells {
        let small = match &c.small {
            Some(s) => format!("{} | {:.2} | {:.2}", s.count, s.p50_ms, s.p99_ms),
            None => "— | — | —".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {} |\n",
            c.method.trim_start_matches("blockchain."),
            c.sessions,
            c.latency.count,
            c.latency.p50_ms,
            c.latency.p99_ms,
            c.latency.max_ms,
            small,
            c.errors
        ));
    }
    out
}
