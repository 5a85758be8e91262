//! One engine's whole run, in its own process: build the chain, sync it, compact, then start
//! the anode stack over the synced index and run the query, storm, tip, reorg and mempool
//! workloads against it over TCP.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anode::daemon::{DaemonApi, RpcDaemon, RpcDaemonOptions};
use anode::simulator::{serve, Auth, Simulator};
use anyhow::{bail, Context};
use tokio::sync::mpsc;

use super::chain::{build_chain, targets_of_chain, Targets};
use super::client::{self, Event};
use super::plan::Plan;
use super::results::{ChainFacts, EngineResult, MempoolResult, ReorgResult, TipResult};
use super::{say, sync};

/// Options the stack runs with in the benchmarks. The per-session cost limits, session and
/// subscription caps, response size and timeouts are raised far above the defaults so that
/// the measurements show the server's speed, not its DoS protection; the node is polled every
/// 50 ms (the default is 5 s without ZMQ).
pub const BENCH_CONFIG: &[(&str, &str)] = &[
    ("network", "regtest"),
    ("services", "tcp://127.0.0.1:0"),
    ("poll_interval_blocks_ms", "50"),
    ("poll_interval_mempool_ms", "50"),
    ("pad_tcp", "false"),
    ("peer_discovery", "off"),
    ("max_sessions", "5000"),
    ("max_subs", "2000000"),
    ("max_session_subs", "50000"),
    ("max_send", "500000000"),
    ("max_recv", "50000000"),
    ("session_timeout", "3600"),
    ("request_timeout", "600"),
    ("cost_soft_limit", "1000000000"),
    ("cost_hard_limit", "10000000000"),
    ("initial_concurrent", "1000"),
    ("bandwidth_unit_cost", "1000000000"),
    ("reorg_limit", "200"),
];

/// The reorg limit the index keeps undo data for (must cover the deepest reorg measured).
const REORG_LIMIT: u32 = 200;

/// Runs everything for `engine`; phases that fail are recorded in `failures` and the run
/// goes on where it can.
/// The database goes under `dir`; the workload's targets are written to `targets_out` when
/// given (for `peer` runs against another server on the same chain).
pub fn run_engine(
    engine: &str,
    plan: &Plan,
    seed: u64,
    cache_mb: u64,
    dir: &Path,
    targets_out: Option<&Path>,
) -> anyhow::Result<EngineResult> {
    let coin = anode_coins::lookup("Bitcoin", "regtest").context("regtest")?;
    say(&format!(
        "[{engine}] building the chain ({} profile, seed {seed})",
        plan.name
    ));
    let (chain, facts) = build_chain(Arc::clone(&coin), seed, plan.txs, &plan.history_sizes)?;
    let mut cumulative = Vec::with_capacity(facts.blocks as usize);
    let mut total = 0u64;
    for h in 0..facts.blocks {
        total += chain.block(h).map_or(0, |b| b.txids.len() as u64);
        cumulative.push(total);
    }
    let targets = Arc::new(targets_of_chain(
        &chain,
        &plan.history_sizes,
        plan.storm_sessions * plan.storm_scripts,
    )?);
    if let Some(path) = targets_out {
        write_targets(path, &targets)?;
    }
    let sim = Simulator::new(chain);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("anode")
        .build()
        .context("server runtime")?;
    let sim_server = server_rt
        .block_on(serve(
            sim.clone(),
            "127.0.0.1:0".parse()?,
            Auth { user_pass: None },
        ))
        .context("starting the simulator's HTTP server")?;
    let daemon: Arc<dyn DaemonApi> = Arc::new(
        RpcDaemon::new(RpcDaemonOptions {
            urls: vec![format!("http://{}", sim_server.addr)],
            ..RpcDaemonOptions::default()
        })
        .context("daemon client")?,
    );
    let mut result = EngineResult {
        name: engine.to_string(),
        engine_version: engine_version(engine),
        chain: ChainFacts {
            history: targets.history.clone(),
            ..facts
        },
        ..EngineResult::default()
    };
    say(&format!(
        "[{engine}] chain: {} blocks, {} txs, of which a hot segment of {} blocks, {} txs \
         for history sizes {:?} (built in {:.1} s); get_history targets: {}; syncing",
        result.chain.blocks,
        result.chain.txs,
        result.chain.hot_blocks,
        result.chain.hot_txs,
        result.chain.hot_sizes,
        result.chain.build_seconds,
        result
            .chain
            .history
            .iter()
            .map(|t| format!("{} txs (wanted {})", t.txs, t.wanted))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let db_dir = dir.join("db");
    let synced = server_rt.block_on(sync::sync_engine(
        engine,
        &db_dir,
        Arc::clone(&coin),
        Arc::clone(&daemon),
        cache_mb,
        REORG_LIMIT,
        Arc::new(cumulative),
    ));
    match synced {
        Ok(s) => {
            say(&format!(
                "[{engine}] synced {} txs in {:.1} s ({:.0} tx/s); disk {} MB, after compaction {}",
                s.txs,
                s.seconds,
                s.tx_per_s,
                s.disk_after_sync >> 20,
                s.disk_after_compaction
                    .map_or("n/a".to_string(), |b| format!("{} MB", b >> 20))
            ));
            result.sync = Some(s);
        }
        Err(e) => {
            result.failures.push(format!("sync: {e:#}"));
            return Ok(result);
        }
    }

    let mut flags: Vec<(&str, String)> = BENCH_CONFIG
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    flags.push(("db_engine", engine.to_string()));
    flags.push(("cache_mb", cache_mb.to_string()));
    flags.push(("log_level", "warn".to_string()));
    let raw = anode::config::RawConfig::defaults().with_flags(flags);
    let config = anode::config::Config::from_raw(&raw).context("benchmark configuration")?;
    let stack = server_rt
        .block_on(anode::app::Stack::start(anode::app::StackOptions {
            config,
            coin: Arc::clone(&coin),
            daemon: Arc::clone(&daemon),
            db_dir: db_dir.clone(),
            log: None,
            progress_bar: false,
        }))
        .context("starting the stack over the synced index")?;
    let addr = stack
        .server
        .lock()
        .as_ref()
        .and_then(|s| s.local_addr(anode::config::ServiceKind::Tcp))
        .context("the stack has no TCP listener")?
        .to_string();
    say(&format!("[{engine}] stack listening on {addr}"));

    // Clients run on their own runtime, so the server's worker threads are its own.
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("clients")
        .build()
        .context("client runtime")?;
    let name = engine.to_string();
    match client_rt.block_on(client::run_queries(&addr, &targets, plan, |c| {
        say(&cell_line(&name, c))
    })) {
        Ok(cells) => result.queries = cells,
        Err(e) => result.failures.push(format!("queries: {e:#}")),
    }

    let storm_scripts = Arc::new(targets.storm.clone());
    let listeners = match client_rt.block_on(client::storm(
        &addr,
        &storm_scripts,
        plan.storm_sessions,
        plan.storm_scripts,
        plan.storm_batch,
    )) {
        Ok((storm, conns)) => {
            say(&format!(
                "[{engine}] storm: {} sessions x {} scripts: all statuses in {:.2} s",
                storm.sessions, storm.scripts_per_session, storm.seconds
            ));
            result.storm = Some(storm);
            conns
        }
        Err(e) => {
            result.failures.push(format!("storm: {e:#}"));
            Vec::new()
        }
    };
    let sessions = listeners.len();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let _guard = client_rt.enter();
    let listen_tasks: Vec<_> = listeners
        .into_iter()
        .map(|c| c.listen(events_tx.clone()))
        .collect();
    drop(events_tx);

    for &txs in &plan.tip_block_txs {
        match client_rt.block_on(tip_once(&sim, &stack, txs, sessions, &mut events)) {
            Ok(tip) => {
                say(&format!(
                    "[{engine}] block of {} txs: indexed in {:.3} s, {} sessions notified in {:.3} s",
                    tip.block_txs, tip.index_seconds, tip.notified_sessions, tip.all_headers_seconds
                ));
                result.tip.push(tip);
            }
            Err(e) => result.failures.push(format!("tip {txs}: {e:#}")),
        }
    }
    for &depth in &plan.reorg_depths {
        match client_rt.block_on(reorg_once(&sim, &stack, depth)) {
            Ok(reorg) => {
                say(&format!(
                    "[{engine}] reorg depth {depth}: new branch indexed in {:.3} s",
                    reorg.seconds
                ));
                result.reorg.push(reorg);
            }
            Err(e) => result.failures.push(format!("reorg {depth}: {e:#}")),
        }
        drain(&mut events);
    }
    for &txs in &plan.mempool_batches {
        match client_rt.block_on(mempool_once(&sim, &stack, txs)) {
            Ok(m) => {
                say(&format!(
                    "[{engine}] mempool: {} txs ingested in {:.3} s",
                    m.txs, m.seconds
                ));
                result.mempool.push(m);
            }
            Err(e) => result.failures.push(format!("mempool {txs}: {e:#}")),
        }
        drain(&mut events);
    }
    for task in listen_tasks {
        task.abort();
    }
    drop(events);
    server_rt.block_on(stack.shutdown());
    drop(stack);

    // The same index, served as an operator who changed nothing would serve it.
    match server_rt.block_on(super::fresh::start_anode_defaults(
        engine,
        Arc::clone(&coin),
        Arc::clone(&daemon),
        db_dir,
    )) {
        Ok(server) => {
            match client_rt.block_on(super::fresh::measure(
                &server.addrs,
                "localhost",
                super::fresh::CONNECTIONS,
            )) {
                Ok(rows) => {
                    for row in &rows {
                        say(&format!(
                            "[{engine}] fresh {} connection, default settings: second request \
                             p50 {:.2} ms p99 {:.2} ms",
                            row.transport, row.second_request.p50_ms, row.second_request.p99_ms
                        ));
                    }
                    result.fresh_connections = rows;
                }
                Err(e) => result.failures.push(format!("fresh connections: {e:#}")),
            }
            server_rt.block_on(server.stack.shutdown());
        }
        Err(e) => result.failures.push(format!("fresh connections: {e:#}")),
    }
    drop(sim_server);
    Ok(result)
}

/// A progress line for a finished query cell.
pub fn cell_line(name: &str, c: &super::results::QueryCell) -> String {
    if let Some(why) = &c.skipped {
        return format!("[{name}] {} x{}: skipped: {why}", c.label, c.sessions);
    }
    let errors = if c.errors > 0 {
        format!(
            " ({} errors, first: {})",
            c.errors,
            c.error_sample.as_deref().unwrap_or("?")
        )
    } else {
        String::new()
    };
    format!(
        "[{name}] {} x{}: {:.0}/s p50 {:.2} ms p99 {:.2} ms{errors}",
        c.label, c.sessions, c.per_s, c.latency.p50_ms, c.latency.p99_ms
    )
}

fn drain(events: &mut mpsc::UnboundedReceiver<Event>) {
    while events.try_recv().is_ok() {}
}

/// Engine library versions as resolved at build time.
fn engine_version(engine: &str) -> String {
    let crates = env!("ANODE_BENCH_ENGINE_CRATES");
    let names: &[&str] = match engine {
        "rocksdb" => &["rocksdb ", "librocksdb-sys "],
        "lmdb" => &["heed ", "lmdb-master-sys "],
        "sqlite" => &["rusqlite ", "libsqlite3-sys "],
        _ => &[],
    };
    crates
        .split(", ")
        .filter(|c| names.iter().any(|n| c.starts_with(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Polls `f` every 2 ms until it is true; the instant it became true.
async fn wait_until(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> bool,
) -> anyhow::Result<Instant> {
    let started = Instant::now();
    loop {
        if f() {
            return Ok(Instant::now());
        }
        if started.elapsed() > limit {
            bail!("{what}: not within {} s", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Mines one block of `txs` fresh transactions and measures until the index has it and every
/// listening session was told.
async fn tip_once(
    sim: &Simulator,
    stack: &Arc<anode::app::Stack>,
    txs: u32,
    sessions: usize,
    events: &mut mpsc::UnboundedReceiver<Event>,
) -> anyhow::Result<TipResult> {
    drain(events);
    let fresh = txs.saturating_sub(1);
    let hash = sim
        .with_chain_mut(|c| c.mine_block_of(fresh))
        .context("mining")?;
    let mined = Instant::now();
    let (height, block_txs) = sim.with_chain(|c| {
        (
            c.height(),
            c.block_by_hash(&hash).map_or(0, |b| b.txids.len()),
        )
    });
    let indexed = wait_until(
        "the index reaching the new block",
        Duration::from_secs(120),
        || stack.query.tip().height >= height,
    )
    .await?;
    let mut header_times = Vec::with_capacity(sessions);
    let mut scripts = 0u64;
    let mut last_script = mined;
    let deadline = mined + Duration::from_secs(120);
    while header_times.len() < sessions {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(Event::Header { height: h, at })) if h == u64::from(height) => {
                header_times.push(at.duration_since(mined).as_micros() as u64)
            }
            Ok(Some(Event::Script { at })) => {
                scripts += 1;
                last_script = last_script.max(at);
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    // Script notifications may trail the headers: collect until a second passes without one.
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
        if let Event::Script { at } = event {
            scripts += 1;
            last_script = last_script.max(at);
        }
    }
    header_times.sort_unstable();
    let secs = |micros: Option<&u64>| micros.map_or(0.0, |m| *m as f64 / 1e6);
    Ok(TipResult {
        block_txs,
        index_seconds: indexed.duration_since(mined).as_secs_f64(),
        sessions,
        notified_sessions: header_times.len(),
        first_header_seconds: secs(header_times.first()),
        median_header_seconds: secs(header_times.get(header_times.len() / 2)),
        all_headers_seconds: secs(header_times.last()),
        script_notifications: scripts,
        last_script_seconds: last_script.duration_since(mined).as_secs_f64(),
    })
}

/// Replaces the last `depth` blocks at the simulator with a branch one block longer.
async fn reorg_once(
    sim: &Simulator,
    stack: &Arc<anode::app::Stack>,
    depth: u32,
) -> anyhow::Result<ReorgResult> {
    let new_blocks = depth + 1;
    sim.with_chain_mut(|c| c.reorg(depth, new_blocks, true))
        .context("reorganising the simulator's chain")?;
    let started = Instant::now();
    let tip = sim.with_chain(|c| c.tip().hash);
    let done = wait_until(
        "the index reaching the new branch",
        Duration::from_secs(300),
        || stack.query.tip().hash == tip,
    )
    .await?;
    Ok(ReorgResult {
        depth,
        new_blocks,
        seconds: done.duration_since(started).as_secs_f64(),
    })
}

/// Adds `txs` transactions to the simulator's mempool and waits for the index to hold them.
async fn mempool_once(
    sim: &Simulator,
    stack: &Arc<anode::app::Stack>,
    txs: u32,
) -> anyhow::Result<MempoolResult> {
    let before = stack.query.mempool_size();
    let added = sim
        .with_chain_mut(|c| c.add_mempool_txs(txs))
        .context("adding mempool transactions")?
        .len();
    let started = Instant::now();
    let done = wait_until("the index's mempool", Duration::from_secs(600), || {
        stack.query.mempool_size() >= before + added
    })
    .await?;
    let seconds = done.duration_since(started).as_secs_f64();
    Ok(MempoolResult {
        txs: added,
        seconds,
        tx_per_s: added as f64 / seconds,
    })
}

/// Targets of the engine run's chain, for `peer` runs against a server on the same chain.
pub fn write_targets(path: &Path, targets: &Targets) -> anyhow::Result<()> {
    let text = serde_json::to_vec_pretty(targets).context("encoding targets")?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
