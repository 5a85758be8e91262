//! `anode-bench`: the end-to-end benchmark suite. For every storage engine compiled in, on the
//! simulator's `mainnet-like` chain of the chosen size: the initial sync (with a progress
//! curve, memory, bytes written, disk use before and after compaction), queries over TCP at
//! several concurrencies, a wallet storm, new-block and mempool latency, and reorganisations;
//! then a markdown report with SVG plots. `peer` runs the client-side workloads against any
//! Electrum server. `scale` syncs a chain directory of tens of millions of transactions per
//! engine inside a memory cgroup (see [`scale`]).
//!
//! Each engine runs in a child process of its own (`anode-bench engine ...`), so that peak
//! memory and bytes written belong to one engine; the parent only orchestrates and reports.

pub mod chain;
pub mod client;
pub mod cold;
pub mod engine;
pub mod fresh;
pub mod hostile;
pub mod machine;
pub mod plan;
pub mod report;
pub mod results;
pub mod scale;
pub mod sync;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anode::daemon::{DaemonApi, RpcDaemon, RpcDaemonOptions};
use anode::simulator::{serve, Auth, Simulator};
use anyhow::{bail, Context};

use plan::Plan;
use results::{ChainFacts, EngineResult, FetchResult};

/// Progress output: one line on stderr, stamped with the seconds since the process started.
pub fn say(message: &str) {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "[{:7.1}s] {message}", start.elapsed().as_secs_f64());
}

/// The engines this build has.
pub fn engines() -> Vec<&'static str> {
    anode::store_factory::available_engines()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_vec_pretty(value).context("encoding JSON")?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Options of `anode-bench all`.
pub struct AllOptions {
    /// the `anode-bench` binary, run once per engine
    pub exe: PathBuf,
    /// sizes
    pub plan: Plan,
    /// chain seed
    pub seed: u64,
    /// the index's memory budget
    pub cache_mb: u64,
    /// where the report goes
    pub out: PathBuf,
    /// engines to run (default: every one compiled in)
    pub engines: Vec<String>,
    /// where the databases go (default: the system's temporary directory)
    pub work_dir: Option<PathBuf>,
    /// the command line, for the report
    pub command: String,
}

/// `anode-bench all`: the fetch+parse limit, then every engine in its own process, then the
/// report. Returns the report's path.
pub fn run_all(options: &AllOptions) -> anyhow::Result<PathBuf> {
    let started = Instant::now();
    let machine = machine::Machine::detect();
    let raw = options.out.join("raw");
    std::fs::create_dir_all(&raw).with_context(|| format!("creating {}", raw.display()))?;
    let child = |args: &[String]| -> anyhow::Result<()> {
        let mut command = Command::new(&options.exe);
        command.args(args);
        if let Some(dir) = &options.work_dir {
            command.env("TMPDIR", dir);
        }
        let status = command
            .status()
            .with_context(|| format!("running {}", options.exe.display()))?;
        if !status.success() {
            bail!(
                "{} {} failed: {status}",
                options.exe.display(),
                args.join(" ")
            );
        }
        Ok(())
    };
    let common = |sub: &str| -> Vec<String> {
        vec![
            sub.to_string(),
            "--profile".into(),
            options.plan.name.into(),
            "--seed".into(),
            options.seed.to_string(),
        ]
    };

    say(&format!(
        "all --profile {}: engines {}; fetch+parse limit first",
        options.plan.name,
        options.engines.join(", ")
    ));
    let fetch_path = raw.join("fetch.json");
    let mut args = common("fetch");
    args.extend(["--result".into(), fetch_path.display().to_string()]);
    let fetch: Option<FetchResult> = match child(&args).and_then(|_| read_json(&fetch_path)) {
        Ok(f) => Some(f),
        Err(e) => {
            say(&format!("fetch+parse limit failed: {e:#}"));
            None
        }
    };
    let mut results = Vec::new();
    for (i, engine) in options.engines.iter().enumerate() {
        let path = raw.join(format!("{engine}.json"));
        let mut args = common("engine");
        args.extend([
            "--engine".into(),
            engine.clone(),
            "--cache-mb".into(),
            options.cache_mb.to_string(),
            "--result".into(),
            path.display().to_string(),
        ]);
        if i == 0 {
            args.extend([
                "--targets".into(),
                options.out.join("targets.json").display().to_string(),
            ]);
        }
        let result = child(&args).and_then(|_| read_json::<EngineResult>(&path));
        results.push(result.unwrap_or_else(|e| EngineResult {
            name: engine.clone(),
            failures: vec![format!("the engine's process: {e:#}")],
            ..EngineResult::default()
        }));
    }
    let info = report::RunInfo {
        command: options.command.clone(),
        profile: options.plan.name.to_string(),
        seed: Some(options.seed),
        cache_mb: Some(options.cache_mb),
        total_seconds: started.elapsed().as_secs_f64(),
        started_unix: machine::unix_now().saturating_sub(started.elapsed().as_secs()),
        machine,
        plan: options.plan.clone(),
        peer: false,
    };
    let path = report::write(&options.out, &info, fetch.as_ref(), &results)?;
    say(&format!(
        "report: {} ({:.0} s in all)",
        path.display(),
        info.total_seconds
    ));
    Ok(path)
}

/// `anode-bench fetch` (a child of `all`): builds the chain and measures fetch+parse alone.
pub fn child_fetch(plan: &Plan, seed: u64, result: &Path) -> anyhow::Result<()> {
    let coin = anode_coins::lookup("Bitcoin", "regtest").context("regtest")?;
    say("[fetch] building the chain");
    let (chain, facts) =
        chain::build_chain(Arc::clone(&coin), seed, plan.txs, &plan.history_sizes)?;
    say(&format!(
        "[fetch] chain: {} blocks, {} txs, of which a hot segment of {} blocks, {} txs for \
         history sizes {:?}; built in {:.1} s",
        facts.blocks,
        facts.txs,
        facts.hot_blocks,
        facts.hot_txs,
        facts.hot_sizes,
        facts.build_seconds
    ));
    let tip = chain.height();
    let runtime = tokio::runtime::Runtime::new().context("runtime")?;
    let sim = Simulator::new(chain);
    let server = runtime
        .block_on(serve(sim, "127.0.0.1:0".parse()?, Auth { user_pass: None }))
        .context("simulator HTTP server")?;
    let daemon: Arc<dyn DaemonApi> = Arc::new(RpcDaemon::new(RpcDaemonOptions {
        urls: vec![format!("http://{}", server.addr)],
        ..RpcDaemonOptions::default()
    })?);
    let fetched = runtime.block_on(sync::fetch_result(daemon, coin, tip, facts.build_seconds))?;
    say(&format!(
        "[fetch] {} blocks, {} txs fetched and parsed in {:.2} s ({:.0} tx/s)",
        fetched.blocks, fetched.txs, fetched.seconds, fetched.tx_per_s
    ));
    write_json(result, &fetched)
}

/// `anode-bench engine` (a child of `all`): one engine's whole run.
pub fn child_engine(
    engine: &str,
    plan: &Plan,
    seed: u64,
    cache_mb: u64,
    result: &Path,
    targets: Option<&Path>,
) -> anyhow::Result<()> {
    let work = tempfile::Builder::new()
        .prefix(&format!("anode-bench-{engine}-"))
        .tempdir()
        .context("temporary directory")?;
    let outcome = engine::run_engine(engine, plan, seed, cache_mb, work.path(), targets)?;
    write_json(result, &outcome)
}

/// Where `peer` takes its targets from.
pub enum TargetSource {
    /// a `targets.json` written by `all`
    File(PathBuf),
    /// the chain read from a node's RPC
    Daemon(String),
}

/// `anode-bench cold`: queries on random targets of the whole chain, each cell on a dropped
/// page cache; writes `cold.md` and `cold.json` into `out` and returns the Markdown's path.
pub fn run_cold_command(
    options: &cold::ColdOptions,
    coin: Arc<dyn anode_coins::Coin>,
    out: &Path,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("runtime")?;
    let daemon = RpcDaemon::new(RpcDaemonOptions {
        urls: vec![options.daemon_url.clone()],
        ..RpcDaemonOptions::default()
    })
    .context("daemon client")?;
    let result = runtime.block_on(cold::run_cold(options, &daemon, coin, |c| {
        say(&format!(
            "cold {} x{}: p50 {:.2} ms p99 {:.2} ms ({} errors)",
            c.method, c.sessions, c.latency.p50_ms, c.latency.p99_ms, c.errors
        ))
    }))?;
    write_json(&out.join("cold.json"), &result)?;
    let path = out.join("cold.md");
    std::fs::write(&path, cold::markdown(&result))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `anode-bench peer`: the query and storm workloads against any Electrum server.
pub fn run_peer(
    server: &str,
    source: &TargetSource,
    plan: &Plan,
    out: &Path,
    command: &str,
) -> anyhow::Result<PathBuf> {
    let started = Instant::now();
    let machine = machine::Machine::detect();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("runtime")?;
    let targets: chain::Targets = match source {
        TargetSource::File(path) => read_json(path)?,
        TargetSource::Daemon(url) => {
            let coin = anode_coins::lookup("Bitcoin", "regtest").context("regtest")?;
            let daemon = RpcDaemon::new(RpcDaemonOptions {
                urls: vec![url.clone()],
                ..RpcDaemonOptions::default()
            })
            .context("daemon client")?;
            say(&format!(
                "reading the chain from {}",
                anode::daemon::hide_credentials(url)
            ));
            runtime.block_on(chain::targets_of_daemon(
                &daemon,
                coin,
                &plan.history_sizes,
                plan.storm_sessions * plan.storm_scripts,
                |h, tip| {
                    if h % 1000 < 100 || h == tip {
                        say(&format!("  block {h} of {tip}"));
                    }
                },
            ))?
        }
    };
    write_json(&out.join("targets.json"), &targets)?;
    let targets = Arc::new(targets);
    let name = format!("peer {server}");
    let mut result = EngineResult {
        name: name.clone(),
        chain: ChainFacts {
            blocks: targets.tip_height + 1,
            txs: targets.txs,
            block_bytes: targets.block_bytes,
            build_seconds: 0.0,
            history: targets.history.clone(),
            ..ChainFacts::default()
        },
        ..EngineResult::default()
    };
    match runtime.block_on(client::run_queries(server, &targets, plan, |c| {
        say(&format!(
            "[{name}] {} x{}: {:.0}/s p50 {:.2} ms p99 {:.2} ms",
            c.label, c.sessions, c.per_s, c.latency.p50_ms, c.latency.p99_ms
        ))
    })) {
        Ok(cells) => result.queries = cells,
        Err(e) => result.failures.push(format!("queries: {e:#}")),
    }
    // Fresh connections over the peer's TCP port, with whatever settings it runs.
    match server
        .parse::<std::net::SocketAddr>()
        .context("--server as an address")
        .and_then(|addr| {
            runtime.block_on(fresh::measure(
                &[(anode_conformance::client::Transport::Tcp, addr)],
                "localhost",
                fresh::CONNECTIONS,
            ))
        }) {
        Ok(rows) => result.fresh_connections = rows,
        Err(e) => result.failures.push(format!("fresh connections: {e:#}")),
    }
    let scripts = Arc::new(targets.storm.clone());
    match runtime.block_on(client::storm(
        server,
        &scripts,
        plan.storm_sessions,
        plan.storm_scripts,
        plan.storm_batch,
    )) {
        Ok((storm, conns)) => {
            say(&format!(
                "[{name}] storm: {} of {} sessions got all statuses in {:.2} s",
                storm.completed_sessions, storm.sessions, storm.seconds
            ));
            result.storm = Some(storm);
            drop(conns);
        }
        Err(e) => result.failures.push(format!("storm: {e:#}")),
    }
    let info = report::RunInfo {
        command: command.to_string(),
        profile: plan.name.to_string(),
        seed: None,
        cache_mb: None,
        total_seconds: started.elapsed().as_secs_f64(),
        started_unix: machine::unix_now().saturating_sub(started.elapsed().as_secs()),
        machine,
        plan: plan.clone(),
        peer: true,
    };
    write_json(&out.join("raw-peer.json"), &result)?;
    report::write(out, &info, None, &[result])
}
