//! Real-node mode: anode indexing the Bitcoin SV regtest node, scenario through the node's
//! wallet and `invalidateblock`. Needs `ANODE_BSV_BITCOIND` (scripts/install-bsv-node); in CI
//! (`CI` set) a missing node fails the test rather than skipping it.

use std::path::PathBuf;

use anode_conformance::report::totals;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_against_anode_on_a_real_node() {
    let binary = match std::env::var_os("ANODE_BSV_BITCOIND") {
        Some(path) => PathBuf::from(path),
        None if std::env::var_os("CI").is_some() => {
            panic!("ANODE_BSV_BITCOIND is not set: run the tests through scripts/test")
        }
        None => {
            // No node on this machine: nothing to run against (CI always has one).
            return;
        }
    };
    let report = anode_conformance::real_node::run(&binary)
        .await
        .expect("the real-node run completes");
    let (passed, failed) = totals(&report.results);
    let failures: Vec<String> = report
        .results
        .iter()
        .filter(|r| !r.passed())
        .take(20)
        .map(|r| r.describe())
        .collect();
    assert!(passed > 1000, "only {passed} checks passed");
    assert_eq!(
        failed,
        0,
        "steps {:?}\n{}",
        report.steps,
        failures.join("\n")
    );
    let skipped: Vec<_> = report
        .steps
        .iter()
        .filter(|(_, d)| d.starts_with("skipped"))
        .collect();
    assert_eq!(
        skipped.len(),
        1,
        "only the double-spend may be skipped: {skipped:?}"
    );
}
