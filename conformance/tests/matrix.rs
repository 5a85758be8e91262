//! The whole matrix — every engine compiled in × every coin/network the simulator can build ×
//! every protocol version × every transport — against anode; any failed cell fails the test.

use std::time::Instant;

use anode_conformance::matrix::{self, MatrixOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cell_of_the_matrix_passes() {
    let options = MatrixOptions::default();
    assert!(
        !options.backends.is_empty(),
        "no storage engine compiled in"
    );
    assert!(
        options.coins.len() > 100,
        "only {} encodable networks",
        options.coins.len()
    );
    let started = Instant::now();
    let rows = matrix::run(options).await.expect("the matrix runs");
    let table = matrix::render(&rows, started.elapsed());
    let failed: usize = rows.iter().map(|r| r.totals().1).sum();
    let passed: usize = rows.iter().map(|r| r.totals().0).sum();
    assert!(passed > 0);
    assert_eq!(failed, 0, "{table}");
}
