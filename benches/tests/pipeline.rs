//! `anode-bench all` end to end on a tiny chain, for every engine compiled in: each engine's
//! process runs every workload, and the report and its plots come out well-formed. No timing
//! is checked here; the figures are the benchmark's business.

use std::path::{Path, PathBuf};

use anode_benches::run::{
    self,
    plan::Plan,
    results::{EngineResult, QueryCell},
    AllOptions,
};

/// Every query cell finished without errors, with an answer for each of its sessions.
fn assert_every_session_answered(queries: &[QueryCell], run: &str) {
    assert!(
        queries
            .iter()
            .all(|c| c.errors == 0 && c.latency.count >= c.sessions as u64),
        "{run}: every session answered: {queries:?}"
    );
}

/// Checks that `text` is one `<svg>` element whose tags all nest and close.
fn assert_well_formed_svg(path: &Path) {
    let text = std::fs::read_to_string(path).expect("read svg");
    let mut open: Vec<&str> = Vec::new();
    let mut rest = text.as_str();
    let mut elements = 0;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("an unclosed tag") + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                open.pop(),
                Some(name.trim()),
                "{}: mismatched </{name}>",
                path.display()
            );
            continue;
        }
        let name = tag
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches('/');
        if open.is_empty() {
            assert_eq!(
                name,
                "svg",
                "{}: the root element is not svg",
                path.display()
            );
        }
        elements += 1;
        if !tag.ends_with('/') {
            open.push(name);
        }
    }
    assert!(open.is_empty(), "{}: unclosed {open:?}", path.display());
    assert!(elements > 10, "{}: an empty plot", path.display());
}

#[test]
fn all_runs_every_workload_and_writes_the_report() {
    let engines: Vec<String> = run::engines().iter().map(|s| s.to_string()).collect();
    if engines.is_empty() {
        // Built without any engine feature: nothing to benchmark.
        return;
    }
    let out = tempfile::tempdir().expect("tempdir");
    let options = AllOptions {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_anode-bench")),
        plan: Plan::by_name("tiny").expect("tiny"),
        seed: 3,
        cache_mb: 64,
        out: out.path().to_path_buf(),
        engines: engines.clone(),
        work_dir: None,
        command: "anode-bench all --profile tiny (pipeline test)".into(),
    };
    let report = run::run_all(&options).expect("the pipeline runs");
    let text = std::fs::read_to_string(&report).expect("report.md");

    for section in [
        "## Machine and versions",
        "## Initial sync",
        "## Queries",
        "## Wallet storm",
        "## New blocks",
        "## Mempool ingest",
        "## Reorganisations",
        "## Plots",
    ] {
        assert!(text.contains(section), "report.md lacks {section}:\n{text}");
    }
    assert!(!text.contains("## Failures"), "a phase failed:\n{text}");
    let header = text
        .lines()
        .find(|l| l.starts_with("|  |") || l.starts_with("| |"))
        .expect("a table");
    for engine in &engines {
        assert!(text.contains(&format!("| {engine} |")) || header.contains(engine.as_str()));
        let raw = std::fs::read(out.path().join("raw").join(format!("{engine}.json")))
            .expect("the engine's raw result");
        let result: EngineResult = serde_json::from_slice(&raw).expect("raw result parses");
        assert!(
            result.failures.is_empty(),
            "{engine}: {:?}",
            result.failures
        );
        let sync = result.sync.expect("a sync result");
        assert_eq!(
            sync.txs, result.chain.txs,
            "{engine}: the whole chain indexed"
        );
        assert!(sync.samples.len() >= 2, "{engine}: a progress curve");
        let plan = &options.plan;
        let methods = 9;
        assert_eq!(
            result.queries.len(),
            methods * plan.concurrency.len(),
            "{engine}"
        );
        assert_every_session_answered(&result.queries, engine);
        let storm = result.storm.expect("a storm result");
        assert_eq!(storm.completed_sessions, plan.storm_sessions);
        assert_eq!(
            storm.statuses,
            (plan.storm_sessions * plan.storm_scripts) as u64
        );
        assert_eq!(result.tip.len(), plan.tip_block_txs.len());
        assert!(result
            .tip
            .iter()
            .all(|t| t.notified_sessions == plan.storm_sessions));
        assert_eq!(result.reorg.len(), plan.reorg_depths.len());
        assert_eq!(result.mempool.len(), plan.mempool_batches.len());
        assert!(out
            .path()
            .join(format!("latency_cdf_{engine}.svg"))
            .exists());
    }
    // The queries ask for histories of the wanted sizes: the chain has a script within the
    // tolerance of each (a hot one of exactly that size where the mainnet-like blocks have none).
    let targets: run::chain::Targets = serde_json::from_slice(
        &std::fs::read(out.path().join("targets.json")).expect("targets.json"),
    )
    .expect("targets parse");
    let wanted: Vec<u64> = targets.history.iter().map(|t| t.wanted).collect();
    assert_eq!(wanted, options.plan.history_sizes);
    for t in &targets.history {
        let off = (t.txs as f64 - t.wanted as f64).abs() / t.wanted as f64;
        assert!(
            off <= run::chain::HISTORY_TOLERANCE,
            "history target {t:?} is not of its wanted size"
        );
        assert!(
            text.contains(&format!("get_history ({} txs, wanted {})", t.txs, t.wanted)),
            "the report shows {t:?}"
        );
    }
    let svgs: Vec<PathBuf> = std::fs::read_dir(out.path())
        .expect("out dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
        .collect();
    assert_eq!(svgs.len(), 3 + engines.len(), "{svgs:?}");
    for svg in &svgs {
        assert_well_formed_svg(svg);
        let name = svg.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(
            text.contains(&format!("({name})")),
            "report.md links {name}"
        );
    }
}

/// An anode over a simulated chain: the simulator's RPC, the running stack and its TCP port.
struct Served {
    node: anode::simulator::SimServer,
    stack: std::sync::Arc<anode::app::Stack>,
    addr: std::net::SocketAddr,
    _db: tempfile::TempDir,
}

fn serve_chain(
    runtime: &tokio::runtime::Runtime,
    chain: anode::simulator::SimChain,
    coin: std::sync::Arc<dyn anode_coins::Coin>,
) -> Served {
    let sim = anode::simulator::Simulator::new(chain);
    let node = runtime
        .block_on(anode::simulator::serve(
            sim.clone(),
            "127.0.0.1:0".parse().expect("addr"),
            anode::simulator::Auth { user_pass: None },
        ))
        .expect("simulator");
    let db = tempfile::tempdir().expect("tempdir");
    let mut flags: Vec<(&str, String)> = run::engine::BENCH_CONFIG
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    flags.push(("cache_mb", "64".into()));
    let config =
        anode::config::Config::from_raw(&anode::config::RawConfig::defaults().with_flags(flags))
            .expect("config");
    let daemon: std::sync::Arc<dyn anode::daemon::DaemonApi> =
        std::sync::Arc::new(anode::simulator::SimDaemon::new(sim));
    let stack = runtime
        .block_on(anode::app::Stack::start(anode::app::StackOptions {
            config,
            coin,
            daemon,
            db_dir: db.path().join("db"),
            log: None,
            progress_bar: false,
        }))
        .expect("stack");
    let addr = stack
        .server
        .lock()
        .as_ref()
        .and_then(|s| s.local_addr(anode::config::ServiceKind::Tcp))
        .expect("tcp");
    Served {
        node,
        stack,
        addr,
        _db: db,
    }
}

/// `anode-bench peer` against a running anode over a simulated chain, its targets read from
/// the simulator's RPC as from any node's.
#[test]
fn peer_mode_runs_the_client_workloads_against_a_server() {
    if run::engines().is_empty() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let coin = anode_coins::lookup("Bitcoin", "regtest").expect("regtest");
    // A third size beyond the whole mainnet-like part (~4,300 transactions): the hot segment
    // makes it, the server indexes it, and its every answer must list all 5,000 transactions.
    let mut plan = Plan::by_name("tiny").expect("tiny");
    plan.history_sizes = vec![10, 100, 5_000];
    plan.heavy_history_one_request_above = Some(1);
    let (chain, facts) =
        run::chain::build_chain(std::sync::Arc::clone(&coin), 5, 2_000, &plan.history_sizes)
            .expect("chain");
    assert!(facts.hot_sizes.contains(&5_000), "{facts:?}");
    assert_eq!(facts.hot_txs, facts.hot_sizes.iter().sum::<u64>());
    let served = serve_chain(&runtime, chain, coin);
    let (node, addr) = (&served.node, served.addr);
    let out = tempfile::tempdir().expect("tempdir");
    // `run_peer` has a runtime of its own: call it off this one's threads.
    let report = std::thread::scope(|s| {
        s.spawn(|| {
            run::run_peer(
                &addr.to_string(),
                &run::TargetSource::Daemon(format!("http://{}", node.addr)),
                &plan,
                out.path(),
                "anode-bench peer (test)",
            )
        })
        .join()
        .expect("peer thread")
    })
    .expect("peer run");
    let text = std::fs::read_to_string(report).expect("report.md");
    assert!(text.contains(&format!("peer {addr}")), "{text}");
    assert!(
        text.contains("## Queries") && text.contains("## Wallet storm"),
        "{text}"
    );
    assert!(!text.contains("## Failures"), "{text}");
    let raw = std::fs::read(out.path().join("raw-peer.json")).expect("raw");
    let result: EngineResult = serde_json::from_slice(&raw).expect("parses");
    assert_every_session_answered(&result.queries, "peer");
    let hot = result.chain.history.last().expect("history targets");
    assert_eq!((hot.wanted, hot.txs), (5_000, 5_000));
    let heavy: Vec<_> = result
        .queries
        .iter()
        .filter(|c| c.one_request_each)
        .collect();
    assert_eq!(heavy.len(), 1, "the 4-session cell of the largest history");
    assert_eq!(heavy[0].latency.count, 4);
    assert_eq!(
        result.storm.expect("storm").statuses,
        (plan.storm_sessions * plan.storm_scripts) as u64
    );
    assert_well_formed_svg(&out.path().join("latency_p99.svg"));
    runtime.block_on(served.stack.shutdown());
}

/// `anode-bench cold` against a running anode: every method at every session count answers
/// each of its random targets, and the history lengths split off the small scripts.
#[test]
fn cold_mode_times_random_targets_of_the_whole_chain() {
    if run::engines().is_empty() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let coin = anode_coins::lookup("Bitcoin", "regtest").expect("regtest");
    let (chain, _) =
        run::chain::build_chain(std::sync::Arc::clone(&coin), 9, 1_500, &[]).expect("chain");
    let served = serve_chain(&runtime, chain, std::sync::Arc::clone(&coin));
    let options = run::cold::ColdOptions {
        server: served.addr.to_string(),
        daemon_url: format!("http://{}", served.node.addr),
        targets_per_cell: 30,
        sessions: vec![1, 4],
        seed: 3,
        drop_caches: false,
        small_history: 100,
    };
    let out = tempfile::tempdir().expect("tempdir");
    let report = std::thread::scope(|s| {
        s.spawn(|| run::run_cold_command(&options, coin, out.path()))
            .join()
            .expect("cold thread")
    })
    .expect("cold run");
    let raw = std::fs::read(out.path().join("cold.json")).expect("cold.json");
    let result: run::cold::ColdResult = serde_json::from_slice(&raw).expect("parses");
    assert_eq!(result.cells.len(), run::cold::METHODS.len() * 2);
    for cell in &result.cells {
        assert_eq!(cell.latency.count, 30, "{cell:?}");
        assert_eq!(cell.errors, 0, "{cell:?}");
        assert!(!cell.cache_dropped);
        match (&cell.small, cell.method.ends_with("get_merkle")) {
            (None, true) => {}
            // Every script of a 1,500-transaction chain but the few reused ones is small.
            (Some(small), false) => assert!(small.count > 0 && small.count <= 30, "{cell:?}"),
            _ => panic!("small split wrong: {cell:?}"),
        }
    }
    let text = std::fs::read_to_string(report).expect("cold.md");
    assert!(
        text.contains("| scripthash.get_history | 4 | 30 |"),
        "{text}"
    );
    assert!(text.contains("**not** dropped"), "{text}");
    runtime.block_on(served.stack.shutdown());
}
