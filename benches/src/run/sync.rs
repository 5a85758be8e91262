//! The initial sync of one engine over the simulator's HTTP interface, with progress sampled
//! every half second, and the fetch+parse limit of the daemon side.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anode::daemon::{BlockFetcher, DaemonApi, FetcherOptions};
use anode::index::{self, IndexWriter, Indexer, Progress, SyncOptions, WriterOptions};
use anode::store_factory::Tuning;
use anode_coins::Coin;
use anyhow::Context;

use super::results::{FetchResult, SyncResult};
use super::say;

/// A field of `/proc/self/status` (`VmHWM:`, `VmRSS:`) in bytes.
pub fn proc_status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `write_bytes` of `/proc/self/io`: bytes this process caused to be sent to storage.
pub fn proc_write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Bytes of the files under `dir`.
pub fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    anode_store::marker::disk_usage(dir).with_context(|| format!("measuring {}", dir.display()))
}

/// Fetches and parses every block (no index): the most the indexer could be fed.
pub async fn fetch_only(
    daemon: Arc<dyn DaemonApi>,
    coin: Arc<dyn Coin>,
    tip: u32,
) -> anyhow::Result<(f64, u64)> {
    let started = Instant::now();
    let mut txs = 0u64;
    let mut rx = BlockFetcher::spawn(daemon, coin, 0, tip, FetcherOptions::default());
    while let Some(block) = rx.recv().await {
        txs += block.context("fetching a block")?.parsed.txs.len() as u64;
    }
    Ok((started.elapsed().as_secs_f64(), txs))
}

/// The fetch+parse limit as a result row.
pub async fn fetch_result(
    daemon: Arc<dyn DaemonApi>,
    coin: Arc<dyn Coin>,
    tip: u32,
    chain_build_seconds: f64,
) -> anyhow::Result<FetchResult> {
    let (seconds, txs) = fetch_only(daemon, coin, tip).await?;
    Ok(FetchResult {
        blocks: tip + 1,
        txs,
        seconds,
        tx_per_s: txs as f64 / seconds,
        chain_build_seconds,
    })
}

/// Syncs a fresh index of `engine` in `dir` from `daemon`, then compacts it. `cumulative_txs[h]`
/// is the number of transactions in blocks `0..=h`, to turn sampled heights into transactions.
#[allow(clippy::too_many_arguments)]
pub async fn sync_engine(
    engine: &str,
    dir: &Path,
    coin: Arc<dyn Coin>,
    daemon: Arc<dyn DaemonApi>,
    cache_mb: u64,
    reorg_limit: u32,
    cumulative_txs: Arc<Vec<u64>>,
) -> anyhow::Result<SyncResult> {
    let params = coin.params();
    let store =
        index::open_index_store(engine, dir, &params.coin, &params.net, Tuning { cache_mb })
            .with_context(|| format!("opening {engine} in {}", dir.display()))?;
    let writer = IndexWriter::open(
        Arc::clone(&store),
        Arc::clone(&coin),
        WriterOptions {
            reorg_limit,
            cache_bytes: (cache_mb as usize) << 20,
        },
    )
    .context("opening the index")?;
    let indexer = Arc::new(Indexer::new(
        writer,
        daemon,
        Arc::clone(&coin),
        reorg_limit,
        SyncOptions::default(),
    ));
    let baseline_rss = proc_status_bytes("VmRSS:");
    let written_before = proc_write_bytes();
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (indexer, stop, cumulative) = (
            Arc::clone(&indexer),
            Arc::clone(&stop),
            Arc::clone(&cumulative_txs),
        );
        let engine = engine.to_string();
        let dir = dir.to_path_buf();
        std::thread::spawn(move || {
            let mut samples = vec![(0.0, 0u32, 0u64)];
            let mut disk_peak = 0u64;
            let mut last_said = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                // The writer is locked during a flush: the sample is taken when it ends.
                let height = indexer.tip().map_or(0, |t| t.0);
                let at = started.elapsed().as_secs_f64();
                let txs = cumulative.get(height as usize).copied().unwrap_or(0);
                samples.push((at, height, txs));
                disk_peak = disk_peak.max(dir_bytes(&dir).unwrap_or(0));
                if last_said.elapsed() >= Duration::from_secs(5) {
                    last_said = Instant::now();
                    let total = cumulative.last().copied().unwrap_or(0);
                    say(&format!(
                        "[{engine}] sync: height {height}, {txs} of {total} txs, {at:.0} s"
                    ));
                }
            }
            (samples, disk_peak)
        })
    };
    let outcome = indexer.catch_up(&mut Progress::new(false)).await;
    let synced = outcome
        .context("initial sync")
        .and_then(|_| store.sync().context("syncing the store to disk"));
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (mut samples, disk_peak) = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("the progress sampler panicked"))?;
    synced?;
    let peak_rss = proc_status_bytes("VmHWM:");
    let write_bytes = proc_write_bytes().saturating_sub(written_before);
    let height = indexer.tip().map_or(0, |t| t.0);
    let txs = cumulative_txs.get(height as usize).copied().unwrap_or(0);
    // The sampler may wake once more after the sync ended: the curve stops at its end.
    samples.retain(|s| s.0 < seconds);
    samples.push((seconds, height, txs));
    drop(indexer);
    let disk_after_sync = dir_bytes(dir)?;
    let disk_peak = disk_peak.max(disk_after_sync);

    // Only RocksDB and SQLite implement `Store::compact` (compact_range on every column
    // family; VACUUM plus a WAL checkpoint). LMDB has no in-place compaction.
    let (disk_after_compaction, compaction_seconds, compaction_note) = match engine {
        "rocksdb" | "sqlite" => {
            let started = Instant::now();
            let store = Arc::clone(&store);
            tokio::task::spawn_blocking(move || store.compact())
                .await
                .context("compaction task")?
                .context("compacting")?;
            let seconds = started.elapsed().as_secs_f64();
            let note = if engine == "rocksdb" {
                "compact_range over every column family"
            } else {
                "VACUUM, then wal_checkpoint(TRUNCATE)"
            };
            (Some(dir_bytes(dir)?), Some(seconds), note.to_string())
        }
        _ => (
            None,
            None,
            "n/a: the engine has no in-place compaction (Store::compact is a no-op)".to_string(),
        ),
    };
    drop(store);
    let blocks = height + 1;
    Ok(SyncResult {
        blocks,
        txs,
        seconds,
        blocks_per_s: f64::from(blocks) / seconds,
        tx_per_s: txs as f64 / seconds,
        baseline_rss,
        peak_rss,
        write_bytes,
        disk_after_sync,
        disk_peak,
        disk_after_compaction,
        compaction_seconds,
        compaction_note,
        samples,
    })
}
