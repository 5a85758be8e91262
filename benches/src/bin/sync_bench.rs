//! The initial-sync benchmark: builds a simulated chain of at least `--txs` transactions in
//! the chosen profile, then either only fetches and parses it (`--fetch-only`: the limit of what
//! the daemon side can deliver) or syncs it into a fresh index with `--engine`. Prints one JSON
//! line: blocks, transactions, seconds, rates, peak RSS, bytes on disk and the flushes' time.
//!
//! `--compute-only` measures the indexer without its storage engine: the writer's budget holds
//! the whole chain, so nothing is written or read back until the one flush at the end, whose
//! time is left out. What remains is fetching, parsing, hashing scripts and building the rows:
//! the ceiling of any engine on this machine.
//!
//! `--daemon URL` measures against a node instead (`--coin`, `--net`; default Bitcoin regtest):
//! the node's whole chain, from genesis, so that an operator can see whether their node or the
//! indexer is the slower side.
//!
//! One engine per process, so that peak RSS belongs to one run; `scripts/sync-bench` runs them
//! all and prints the table of docs/performance.md.

#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anode::daemon::{
    hide_credentials, BlockFetcher, DaemonApi, FetcherOptions, RpcDaemon, RpcDaemonOptions,
};
use anode::index::keys::read_tx_num;
use anode::index::schema::{TABLES, TX_COUNTS};
use anode::index::{IndexWriter, Indexer, Progress, SyncOptions, WriterOptions};
use anode::simulator::{serve, Auth, Profile, SimChain, SimDaemon, Simulator};
use anode::store_factory::{open_store, MemoryPlan, Tuning};
use anode_store::{Direction, KeyRange};
use anyhow::{bail, Context};
use clap::{Arg, ArgAction, Command};
use serde_json::json;

/// `VmHWM` or `VmRSS` of this process in bytes.
fn proc_status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn main() -> anyhow::Result<()> {
    let matches = Command::new("sync-bench")
        .about("Initial-sync benchmark over the chain simulator")
        .arg(Arg::new("engine").long("engine").help("storage engine (omit with --fetch-only)"))
        .arg(Arg::new("txs").long("txs").default_value("1000000").help("transactions in the chain, at least"))
        .arg(Arg::new("profile").long("profile").default_value("mainnet-like"))
        .arg(Arg::new("seed").long("seed").default_value("1"))
        .arg(Arg::new("cache-mb").long("cache-mb").default_value("1200"))
        .arg(Arg::new("dir").long("dir").help("where the database goes (default: a temporary directory)"))
        .arg(Arg::new("fetch-only").long("fetch-only").action(ArgAction::SetTrue))
        .arg(Arg::new("compute-only").long("compute-only").action(ArgAction::SetTrue).help("sync with a budget that holds the whole chain and leave the one final flush out of the time"))
        .arg(Arg::new("daemon").long("daemon").help("a node's RPC URL (http://user:pass@host:port) to sync from instead of the simulator"))
        .arg(Arg::new("patience").long("patience").default_value("30").help("seconds to keep retrying a node that does not answer (with --daemon)"))
        .arg(Arg::new("coin").long("coin").default_value("Bitcoin").help("the node's coin (with --daemon)"))
        .arg(Arg::new("net").long("net").default_value("regtest").help("the node's network (with --daemon)"))
        .arg(Arg::new("http").long("http").action(ArgAction::SetTrue).help("talk to the simulator over its HTTP JSON-RPC/REST listener, as to a node, instead of in process"))
        .get_matches();
    let txs: u64 = matches.get_one::<String>("txs").expect("default").parse()?;
    let seed: u64 = matches
        .get_one::<String>("seed")
        .expect("default")
        .parse()?;
    let compute_only = matches.get_flag("compute-only");
    let cache_mb: u64 = if compute_only {
        1 << 20
    } else {
        matches
            .get_one::<String>("cache-mb")
            .expect("default")
            .parse()?
    };
    let profile_name = matches.get_one::<String>("profile").expect("default");
    let profile = Profile::by_name(profile_name).context("unknown profile")?;
    let fetch_only = matches.get_flag("fetch-only");
    let engine = matches.get_one::<String>("engine").cloned();
    if engine.is_none() && !fetch_only {
        bail!("give --engine, or --fetch-only");
    }

    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let external = matches.get_one::<String>("daemon").cloned();
    let (coin, profile_name) = match &external {
        Some(_) => {
            let coin_name = matches.get_one::<String>("coin").expect("default");
            let net = matches.get_one::<String>("net").expect("default");
            (
                anode_coins::lookup(coin_name, net)?,
                format!("node: {coin_name} {net}"),
            )
        }
        None => (
            anode_coins::lookup("Bitcoin", "regtest")?,
            profile_name.clone(),
        ),
    };
    let built = Instant::now();
    let over_http = external.is_some() || matches.get_flag("http");
    let (daemon, _server, blocks): (Arc<dyn DaemonApi>, _, u32) = match &external {
        Some(url) => {
            let patience: u64 = matches
                .get_one::<String>("patience")
                .expect("default")
                .parse()
                .context("--patience takes whole seconds")?;
            // A benchmark should stop with the node's error rather than wait for ever, as the
            // server does for a node that restarts.
            let daemon = RpcDaemon::new(RpcDaemonOptions {
                urls: vec![url.clone()],
                retry: anode::daemon::RetryPolicy {
                    give_up_after: Some(std::time::Duration::from_secs(patience)),
                    ..anode::daemon::RetryPolicy::default()
                },
                ..RpcDaemonOptions::default()
            })?;
            let info = runtime.block_on(daemon.chain_info()).with_context(|| {
                format!("asking the node at {} for its chain", hide_credentials(url))
            })?;
            (Arc::new(daemon), None, info.blocks + 1)
        }
        None => {
            let mut chain = SimChain::new(Arc::clone(&coin), profile, seed)?;
            let mut total_txs = 0u64;
            while total_txs < txs {
                chain.mine(10, true)?;
                total_txs = (1..=chain.height())
                    .map(|h| chain.block(h).map_or(0, |b| b.txids.len() as u64))
                    .sum();
            }
            let blocks = chain.height() + 1;
            let sim = Simulator::new(chain);
            if over_http {
                let server = runtime.block_on(serve(
                    sim,
                    "127.0.0.1:0".parse()?,
                    Auth { user_pass: None },
                ))?;
                let daemon = RpcDaemon::new(RpcDaemonOptions {
                    urls: vec![format!("http://{}", server.addr)],
                    ..RpcDaemonOptions::default()
                })?;
                (Arc::new(daemon), Some(server), blocks)
            } else {
                (Arc::new(SimDaemon::new(sim)), None, blocks)
            }
        }
    };
    let chain_seconds = built.elapsed().as_secs_f64();
    let baseline_rss = proc_status_bytes("VmRSS:");

    let temp = tempfile::tempdir()?;
    let dir = matches
        .get_one::<String>("dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| temp.path().join("db"));
    let started = Instant::now();
    let mut disk_bytes = 0;
    let mut total_txs = 0u64;
    // (flushes, seconds of all of them, seconds of the last)
    let flushes = Arc::new(std::sync::Mutex::new((0u32, 0f64, 0f64)));
    if fetch_only {
        runtime.block_on(async {
            let mut rx = BlockFetcher::spawn(
                Arc::clone(&daemon),
                Arc::clone(&coin),
                0,
                blocks - 1,
                FetcherOptions::default(),
            );
            while let Some(block) = rx.recv().await {
                let block = block?;
                // Count what the index counts: the genesis coinbase only where the coin
                // indexes it.
                if block.height > 0 || coin.index_genesis_outputs() {
                    total_txs += block.parsed.txs.len() as u64;
                }
            }
            anyhow::Ok(())
        })?;
    } else {
        let engine = engine.clone().unwrap_or_default();
        let memory = MemoryPlan::new(&engine, cache_mb);
        let store = open_store(&engine, &dir, TABLES, Tuning { cache_mb })?;
        let writer = IndexWriter::open(
            Arc::clone(&store),
            Arc::clone(&coin),
            WriterOptions {
                reorg_limit: coin.params().reorg_limit,
                cache_bytes: (memory.writer_mb as usize) << 20,
            },
        )?;
        let indexer = Indexer::new(
            writer,
            daemon,
            Arc::clone(&coin),
            coin.params().reorg_limit,
            SyncOptions {
                fetcher: FetcherOptions {
                    budget_bytes: (memory.fetch_mb as usize) << 20,
                    ..FetcherOptions::default()
                },
                ..SyncOptions::default()
            },
        );
        let observed = Arc::clone(&flushes);
        indexer.set_flush_observer(Arc::new(move |report| {
            let mut flushes = observed.lock().unwrap_or_else(|p| p.into_inner());
            let seconds = report.elapsed.as_secs_f64();
            *flushes = (flushes.0 + 1, flushes.1 + seconds, seconds);
        }));
        runtime.block_on(indexer.catch_up(&mut Progress::new(false)))?;
        store.sync()?;
        disk_bytes = store.stats()?.disk_bytes;
        // The index's own count of the transactions it holds.
        let last_count = store
            .scan(TX_COUNTS, KeyRange::all(), Direction::Reverse)?
            .next()
            .transpose()?;
        total_txs = last_count
            .and_then(|(_, value)| read_tx_num(&value))
            .context("the index holds no tx count")?;
    }
    let (flush_count, flush_seconds, final_flush_seconds) =
        *flushes.lock().unwrap_or_else(|p| p.into_inner());
    let mut seconds = started.elapsed().as_secs_f64();
    if compute_only {
        seconds -= final_flush_seconds;
    }
    let mode = match (fetch_only, compute_only) {
        (true, _) => "fetch+parse",
        (false, true) => "compute-only",
        (false, false) => "sync",
    };
    let line = json!({
        "mode": mode,
        "engine": engine,
        "daemon": if over_http { "http" } else { "in-process" },
        "profile": profile_name,
        "blocks": blocks,
        "txs": total_txs,
        "cache_mb": cache_mb,
        "seconds": seconds,
        "blocks_per_s": f64::from(blocks) / seconds,
        "tx_per_s": total_txs as f64 / seconds,
        "chain_build_seconds": chain_seconds,
        "baseline_rss_mb": baseline_rss >> 20,
        "peak_rss_mb": proc_status_bytes("VmHWM:") >> 20,
        "disk_mb": disk_bytes >> 20,
        "flushes": flush_count,
        "flush_seconds": flush_seconds,
    });
    println!("{line}");
    Ok(())
}
