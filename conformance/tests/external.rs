//! External mode end to end: the simulator served over HTTP (as `anode simulate` does), a
//! server indexing it through its JSON-RPC, and the suite reading the chain and driving the
//! scenario over that same JSON-RPC (`sim_*` methods), as it would for ElectrumX.

use std::sync::Arc;
use std::time::Duration;

use anode::daemon::{DaemonApi, RetryPolicy, RpcDaemon, RpcDaemonOptions};
use anode::simulator::{serve, Auth};
use anode_conformance::client::Transport;
use anode_conformance::matrix::{start_anode, TestCert};
use anode_conformance::node::Node;
use anode_conformance::report::totals;
use anode_conformance::scenario::{initial_chain, SimRpcDriver};
use anode_conformance::suite::{self, SuiteOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_runs_over_a_daemon_url() {
    let coin = anode_coins::lookup("Bitcoin", "regtest").expect("coin");
    let sim = initial_chain(Arc::clone(&coin), 3, 8).expect("chain");
    let auth = Auth {
        user_pass: Some("u:p".into()),
    };
    let http = serve(sim, "127.0.0.1:0".parse().expect("addr"), auth.clone())
        .await
        .expect("simulator listens");
    let url = http.url(&auth);
    let daemon: Arc<dyn DaemonApi> = Arc::new(
        RpcDaemon::new(RpcDaemonOptions {
            urls: vec![url.clone()],
            retry: RetryPolicy {
                initial_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(200),
                give_up_after: Some(Duration::from_secs(10)),
                ..RetryPolicy::default()
            },
            ..RpcDaemonOptions::default()
        })
        .expect("client"),
    );
    let cert = TestCert::generate().expect("certificate");
    let engine = anode::store_factory::default_engine().expect("an engine");
    let extra = [("reorg_limit", "4".to_string())];
    let (stack, mut target, _db) = start_anode(engine, &coin, daemon, &extra, &cert)
        .await
        .expect("anode starts");
    // What `external --server HOST:PORT` does: one transport.
    target.addrs.retain(|(t, _)| *t == Transport::Tcp);
    let node = Node::http(&url);
    let mut driver = SimRpcDriver {
        node: node.clone(),
        reorg_limit: 4,
    };
    let report = suite::run(
        &target,
        &node,
        coin,
        Some(&mut driver),
        &SuiteOptions::default(),
    )
    .await
    .expect("the suite runs");
    stack.shutdown().await;
    let (passed, failed) = totals(&report.results);
    let failures: Vec<String> = report
        .results
        .iter()
        .filter(|r| !r.passed())
        .take(20)
        .map(|r| r.describe())
        .collect();
    assert_eq!(failed, 0, "{}", failures.join("\n"));
    assert!(passed > 1000, "only {passed} checks");
    let skipped: Vec<&str> = report
        .steps
        .iter()
        .filter(|(_, d)| d.starts_with("skipped"))
        .map(|(s, _)| s.as_str())
        .collect();
    assert_eq!(skipped, ["reorg-to-mempool"]);
}
