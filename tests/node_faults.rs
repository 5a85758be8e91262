//! A misbehaving node, on every storage engine: blocks served damaged (another block, a changed
//! transaction, cut short, with bytes appended, garbage), HTTP error pages and answers cut
//! short, and a reorganisation deeper than the undo data. Each must stop the sync (or be
//! retried, for brief HTTP failures) with a message naming the node, the block and the fault,
//! leave the index exactly as it was before the bad block, and once the fault is gone the sync
//! must resume to the same index as a clean one. docs/real-node.md, "When the node
//! misbehaves", describes what the operator sees.

mod support;

use std::sync::Arc;
use std::time::Duration;

use anode::daemon::{
    hash_to_hex, DaemonApi, DaemonError, RetryPolicy, RpcDaemon, RpcDaemonOptions,
};
use anode::index::{IndexWriter, Indexer, Progress, SyncError, SyncOptions, WriterOptions};
use anode::simulator::{serve, Auth, BlockCorruption, HttpFault, SimDaemon, SimServer, Simulator};
use anode_store::Store;
use support::index::*;

/// Above every chain's height: every sync keeps undo data for every block, so an index that
/// stopped before block H holds exactly the rows of one synced to H - 1 by a node whose tip was
/// H - 1.
const ROOMY_REORG_LIMIT: u32 = 100;
/// Tries of a call before broken answers stop the sync (the default is 8).
const BROKEN_ANSWER_ATTEMPTS: u32 = 4;
/// A small cache: the initial syncs flush several times.
const CACHE_BYTES: usize = 16 << 10;

/// The simulator behind its HTTP listener and an RPC client for it, fetching blocks over REST
/// or as `getblock` hex.
struct HttpNode {
    server: SimServer,
    daemon: Arc<dyn DaemonApi>,
}

fn http_node(rt: &tokio::runtime::Runtime, sim: &Simulator, rest: bool) -> HttpNode {
    let server = rt
        .block_on(serve(
            sim.clone(),
            "127.0.0.1:0".parse().expect("addr"),
            Auth::default(),
        ))
        .expect("serve");
    let daemon = RpcDaemon::new(RpcDaemonOptions {
        urls: vec![server.url(&Auth::default())],
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            give_up_after: None,
            broken_answer_attempts: BROKEN_ANSWER_ATTEMPTS,
        },
        use_rest: Some(rest),
        ..RpcDaemonOptions::default()
    })
    .expect("client");
    HttpNode {
        server,
        daemon: Arc::new(daemon),
    }
}

impl HttpNode {
    fn url(&self) -> String {
        self.server.url(&Auth::default())
    }
}

fn indexer_over(store: &Arc<dyn Store>, daemon: &Arc<dyn DaemonApi>, reorg_limit: u32) -> Indexer {
    let writer = IndexWriter::open(
        Arc::clone(store),
        regtest(),
        WriterOptions {
            reorg_limit,
            cache_bytes: CACHE_BYTES,
        },
    )
    .expect("open index");
    Indexer::new(
        writer,
        Arc::clone(daemon),
        regtest(),
        reorg_limit,
        SyncOptions::default(),
    )
}

fn try_catch_up(rt: &tokio::runtime::Runtime, indexer: &Indexer) -> Result<(), SyncError> {
    rt.block_on(indexer.catch_up(&mut Progress::new(false)))
        .map(|_| ())
}

/// A fresh index of `engine` synced to the simulator's tip over the in-process node.
fn clean_sync(
    rt: &tokio::runtime::Runtime,
    engine: &str,
    dir: &std::path::Path,
    sim: &Simulator,
    reorg_limit: u32,
) -> Arc<dyn Store> {
    let store = open(engine, dir);
    let daemon: Arc<dyn DaemonApi> = Arc::new(SimDaemon::new(sim.clone()));
    try_catch_up(rt, &indexer_over(&store, &daemon, reorg_limit)).expect("a clean sync");
    store
}

fn assert_same_index(a: &dyn Store, b: &dyn Store, what: &str) {
    if let Some(diff) = first_difference(&dump(a), &dump(b)) {
        panic!("{what}: {diff}");
    }
}

/// What the message must say about each damage, besides the node, height and hash.
fn expected_words(kind: BlockCorruption, rest: bool) -> &'static str {
    match kind {
        BlockCorruption::OtherBlock => "another block",
        BlockCorruption::ChangedTransaction => "merkle root",
        BlockCorruption::Truncated => "not a well-formed block",
        BlockCorruption::TrailingBytes => "4 bytes follow its last transaction",
        BlockCorruption::Garbage if rest => "not a well-formed block",
        BlockCorruption::Garbage => "not a block's hex",
    }
}

#[test]
fn a_damaged_block_stops_the_sync_before_it_and_the_sync_resumes_once_it_is_served_intact() {
    let rt = runtime();
    const BAD: u32 = 21;
    const TIP: u32 = 30;
    for engine in engines() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The index a sync reaches when the node's tip is the block before the bad one, then
        // the whole chain's.
        let sim = simulator(3, BAD - 1);
        let before_bad = clean_sync(
            &rt,
            engine,
            &dir.path().join("before"),
            &sim,
            ROOMY_REORG_LIMIT,
        );
        sim.with_chain_mut(|c| c.mine(TIP - (BAD - 1), true))
            .expect("mine");
        let whole = clean_sync(
            &rt,
            engine,
            &dir.path().join("whole"),
            &sim,
            ROOMY_REORG_LIMIT,
        );
        let bad_hash = hash_to_hex(&sim.with_chain(|c| c.block(BAD).expect("block").hash));
        for rest in [true, false] {
            let node = http_node(&rt, &sim, rest);
            for (kind, name) in BlockCorruption::ALL {
                let what = format!(
                    "{engine}, {name}, {}",
                    if rest { "REST" } else { "getblock" }
                );
                let store = open(engine, &dir.path().join(format!("{name}-{rest}")));
                let indexer = indexer_over(&store, &node.daemon, ROOMY_REORG_LIMIT);
                sim.corrupt_block(BAD, kind);
                let err = try_catch_up(&rt, &indexer).expect_err(&what);
                let message = err.to_string();
                assert!(
                    matches!(&err, SyncError::Daemon(e) if e.is_node_fault()),
                    "{what}: {message}"
                );
                for words in [
                    format!("the node at {}", node.url()),
                    format!("served a bad block at height {BAD}"),
                    bad_hash.clone(),
                    expected_words(kind, rest).to_string(),
                    "Nothing from this block was written".to_string(),
                ] {
                    assert!(
                        message.contains(&words),
                        "{what}: `{words}` missing from: {message}"
                    );
                }
                assert_eq!(indexer.tip().map(|t| t.0), Some(BAD - 1), "{what}");
                assert_same_index(store.as_ref(), before_bad.as_ref(), &what);
                sim.clear_faults();
                try_catch_up(&rt, &indexer).unwrap_or_else(|e| panic!("{what}: resuming: {e}"));
                assert_same_index(store.as_ref(), whole.as_ref(), &what);
            }
        }
    }
}

#[test]
fn a_damaged_block_at_the_tip_leaves_the_followed_index_as_it_was() {
    let rt = runtime();
    for engine in engines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = simulator(5, 25);
        let store = open(engine, &dir.path().join("a"));
        let daemon: Arc<dyn DaemonApi> = Arc::new(SimDaemon::new(sim.clone()));
        let indexer = indexer_over(&store, &daemon, 6);
        try_catch_up(&rt, &indexer).expect("initial sync");
        let before = dump(store.as_ref());
        for (kind, name) in BlockCorruption::ALL {
            let height = sim.with_chain(|c| c.height()) + 1;
            sim.corrupt_block(height, kind);
            sim.mine(1).expect("mine");
            let err = try_catch_up(&rt, &indexer).expect_err(name);
            assert!(
                err.to_string().contains(&format!(
                    "the simulated node served a bad block at height {height}"
                )),
                "{engine} {name}: {err}"
            );
            assert_eq!(
                first_difference(&dump(store.as_ref()), &before),
                None,
                "{engine} {name}: nothing written"
            );
            // Taken out again, so the next kind meets the same index.
            sim.with_chain_mut(|c| c.reorg(1, 0, true)).expect("unmine");
            sim.clear_faults();
        }
        sim.mine(2).expect("mine");
        try_catch_up(&rt, &indexer).expect("resumed");
        let clean = clean_sync(&rt, engine, &dir.path().join("clean"), &sim, 6);
        assert_same_index(store.as_ref(), clean.as_ref(), engine);
    }
}

#[test]
fn brief_http_errors_and_answers_cut_short_are_retried_and_the_sync_completes() {
    let rt = runtime();
    for engine in engines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = simulator(7, 30);
        let clean = clean_sync(
            &rt,
            engine,
            &dir.path().join("clean"),
            &sim,
            ROOMY_REORG_LIMIT,
        );
        let node = http_node(&rt, &sim, true);
        for (kind, name) in HttpFault::ALL {
            let store = open(engine, &dir.path().join(name));
            let indexer = indexer_over(&store, &node.daemon, ROOMY_REORG_LIMIT);
            // One call meets them all in a row: one try short of the limit.
            sim.fail_http(kind, BROKEN_ANSWER_ATTEMPTS - 1);
            try_catch_up(&rt, &indexer).unwrap_or_else(|e| panic!("{engine} {name}: {e}"));
            assert_eq!(
                sim.http_faults_left(),
                0,
                "{engine} {name}: every fault was met"
            );
            assert_same_index(store.as_ref(), clean.as_ref(), &format!("{engine} {name}"));
        }
    }
}

#[test]
fn a_node_that_keeps_answering_brokenly_stops_the_sync_and_leaves_the_index_as_it_was() {
    let rt = runtime();
    for engine in engines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = simulator(8, 20);
        let node = http_node(&rt, &sim, true);
        let store = open(engine, &dir.path().join("a"));
        let indexer = indexer_over(&store, &node.daemon, ROOMY_REORG_LIMIT);
        try_catch_up(&rt, &indexer).expect("initial sync");
        sim.mine(4).expect("mine");
        for (kind, name, problem) in [
            (
                HttpFault::ServerError,
                "500",
                "HTTP 500 Internal Server Error",
            ),
            (HttpFault::CutBody, "cut-body", "an answer cut off mid-body"),
            (
                HttpFault::TruncatedJson,
                "truncated-json",
                "a truncated or non-JSON answer",
            ),
        ] {
            let before = dump(store.as_ref());
            sim.fail_http(kind, 1000);
            let err = try_catch_up(&rt, &indexer).expect_err(name);
            let message = err.to_string();
            assert!(
                matches!(&err, SyncError::Daemon(DaemonError::BrokenAnswers { attempts, .. }) if *attempts == BROKEN_ANSWER_ATTEMPTS),
                "{engine} {name}: {message}"
            );
            for words in [
                format!("the daemon at {}", node.url()),
                "`getblockchaininfo`".to_string(),
                problem.to_string(),
                format!("{BROKEN_ANSWER_ATTEMPTS} times in a row"),
            ] {
                assert!(
                    message.contains(&words),
                    "{engine} {name}: `{words}` missing from: {message}"
                );
            }
            assert_eq!(
                first_difference(&dump(store.as_ref()), &before),
                None,
                "{engine} {name}: nothing written"
            );
            sim.clear_faults();
        }
        try_catch_up(&rt, &indexer).expect("resumed");
        let clean = clean_sync(
            &rt,
            engine,
            &dir.path().join("clean"),
            &sim,
            ROOMY_REORG_LIMIT,
        );
        assert_same_index(store.as_ref(), clean.as_ref(), engine);
    }
}

#[test]
fn a_reorganisation_deeper_than_the_limit_stops_with_its_depth_the_limit_and_the_remedy() {
    let rt = runtime();
    const LIMIT: u32 = 4;
    const TIP: u32 = 30;
    for engine in engines() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The node the index follows, and a second one on a chain that leaves it 6 blocks
        // back and ends 3 blocks lower: the tip goes backwards onto another branch.
        let right = simulator(9, TIP);
        let wrong = simulator(9, TIP);
        wrong
            .with_chain_mut(|c| c.reorg(6, 3, true))
            .expect("reorg");
        let store = open(engine, &dir.path().join("a"));
        let right_node: Arc<dyn DaemonApi> = Arc::new(SimDaemon::new(right.clone()));
        try_catch_up(&rt, &indexer_over(&store, &right_node, LIMIT)).expect("initial sync");
        let before = dump(store.as_ref());
        let node = http_node(&rt, &wrong, true);
        let indexer = indexer_over(&store, &node.daemon, LIMIT);
        let err = try_catch_up(&rt, &indexer).expect_err("a reorganisation of 6 with a limit of 4");
        let message = err.to_string();
        assert!(
            matches!(
                err,
                SyncError::ReorgTooDeep {
                    depth: 6,
                    fork: Some(24),
                    limit: LIMIT,
                    ..
                }
            ),
            "{engine}: {message}"
        );
        for words in [
            format!("the node at {}", node.url()),
            "6 blocks deep".to_string(),
            "after block 24".to_string(),
            format!("the index ends at block {TIP}"),
            "now ends at block 27".to_string(),
            "REORG_LIMIT is 4".to_string(),
            "rebuild the index".to_string(),
            "DB_DIRECTORY".to_string(),
            "REORG_LIMIT set above 6".to_string(),
        ] {
            assert!(
                message.contains(&words),
                "{engine}: `{words}` missing from: {message}"
            );
        }
        assert_eq!(
            first_difference(&dump(store.as_ref()), &before),
            None,
            "{engine}"
        );
        // Following the sync loop: the error stops it instead of being retried.
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        let run = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(60), Arc::new(indexer).run(stopped)).await
        });
        assert!(
            matches!(run, Ok(Err(SyncError::ReorgTooDeep { .. }))),
            "{engine}: the sync loop went on: {run:?}"
        );
        assert_eq!(
            first_difference(&dump(store.as_ref()), &before),
            None,
            "{engine}"
        );
        // Pointed back at the node on the right chain, anode resumes.
        right.mine(2).expect("mine");
        try_catch_up(&rt, &indexer_over(&store, &right_node, LIMIT)).expect("resumed");
        let clean = clean_sync(&rt, engine, &dir.path().join("clean"), &right, LIMIT);
        assert_same_index(store.as_ref(), clean.as_ref(), engine);
    }
}

#[test]
fn a_node_that_rewinds_past_the_limit_or_shares_nothing_recent_is_refused() {
    let rt = runtime();
    const LIMIT: u32 = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engines()[0];
    for (taken, given, depth, fork, words) in [
        // The same chain, 6 blocks shorter (an `invalidateblock` or a node restored from an
        // old copy).
        (6, 0, 6, Some(24), "6 blocks deep"),
        // A chain that leaves the index's 20 blocks back: the search stops at its first
        // window (8 blocks), past the limit, so the depth is a lower bound.
        (20, 22, 8, None, "at least 8 blocks deep"),
    ] {
        let sim = simulator(10, 30);
        let store = open(engine, &dir.path().join(format!("{taken}-{given}")));
        let daemon: Arc<dyn DaemonApi> = Arc::new(SimDaemon::new(sim.clone()));
        let indexer = indexer_over(&store, &daemon, LIMIT);
        try_catch_up(&rt, &indexer).expect("initial sync");
        let before = dump(store.as_ref());
        sim.with_chain_mut(|c| c.reorg(taken, given, true))
            .expect("reorg");
        let err = try_catch_up(&rt, &indexer).expect_err("too deep");
        assert!(
            matches!(&err, SyncError::ReorgTooDeep { depth: d, fork: f, .. } if *d == depth && *f == fork),
            "{taken}/{given}: {err}"
        );
        assert!(err.to_string().contains(words), "{taken}/{given}: {err}");
        assert_eq!(first_difference(&dump(store.as_ref()), &before), None);
    }
}

/// The whole server over a faulty node, as `anode` runs it: a bad block during the initial sync
/// stops the start with the message; one while serving stops the running server, whose index
/// stays at the block before.
#[test]
fn the_running_server_stops_on_a_bad_block_with_the_message() {
    let rt = runtime();
    let sim = simulator(12, 20);
    let node = http_node(&rt, &sim, true);
    sim.corrupt_block(15, BlockCorruption::ChangedTransaction);
    let dir = tempfile::tempdir().expect("tempdir");
    let started = rt.block_on(start(&node, dir.path()));
    let Err(err) = started else {
        panic!("the server started over a bad block");
    };
    let message = format!("{err:#}");
    assert!(
        message.contains(&format!(
            "the node at {} served a bad block at height 15",
            node.url()
        )) && message.contains("merkle root"),
        "{message}"
    );
    // (Resuming the same database is the indexer tests' job: here the first stack may still
    // hold its directory lock for a moment.)
    sim.clear_faults();
    let dir = tempfile::tempdir().expect("tempdir");
    let stack = rt
        .block_on(start(&node, dir.path()))
        .expect("a node serving intact blocks");
    assert_eq!(stack.query.tip().height, 20);
    sim.corrupt_block(21, BlockCorruption::Truncated);
    sim.mine(1).expect("mine");
    let stopped =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(60), stack.wait()).await });
    let message = match stopped {
        Ok(Err(e)) => format!("{e:#}"),
        other => panic!("the server kept running over a bad block: {other:?}"),
    };
    assert!(
        message.contains("served a bad block at height 21")
            && message.contains("not a well-formed block"),
        "{message}"
    );
    assert_eq!(stack.query.tip().height, 20);
    rt.block_on(stack.shutdown());
}

async fn start(node: &HttpNode, dir: &std::path::Path) -> anyhow::Result<Arc<anode::app::Stack>> {
    let flags = vec![
        ("network", "regtest".to_string()),
        ("services", "tcp://127.0.0.1:0".to_string()),
        ("poll_interval_blocks_ms", "20".to_string()),
        ("poll_interval_mempool_ms", "50".to_string()),
        ("peer_discovery", "off".to_string()),
        ("daemon_url", node.url()),
    ];
    let raw = anode::config::RawConfig::defaults().with_flags(flags);
    anode::app::Stack::start(anode::app::StackOptions {
        config: anode::config::Config::from_raw(&raw).expect("config"),
        coin: regtest(),
        daemon: Arc::clone(&node.daemon),
        db_dir: dir.join("db"),
        log: None,
        progress_bar: false,
    })
    .await
}
