//! `scripts/scale-sync` (`anode-bench scale --profile tiny`) end to end on a tiny chain, with
//! this build's debug binaries: the pipeline behind docs/performance.md's "At scale" figures (a chain directory, a sync per
//! engine inside a memory cgroup, the summary, the tx/s curve and the cold queries) keeps
//! working between the runs that take hours. It needs root and the cgroup v1 memory
//! controller, as the script does; elsewhere it says why it is skipped.

// A skipped run says so on stderr, where cargo test shows it.
#![allow(clippy::print_stderr)]

use std::path::Path;
use std::process::Command;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

#[test]
fn scale_sync_runs_every_engine_in_a_memory_cgroup_on_a_tiny_chain() {
    if !is_root() || !Path::new("/sys/fs/cgroup/memory").is_dir() {
        eprintln!("skipped: scale-sync needs root and the cgroup v1 memory controller");
        return;
    }
    let engines = anode::store_factory::available_engines();
    if engines.is_empty() {
        return;
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_anode"))
        .parent()
        .expect("the binaries' directory");
    // `cargo test --workspace` (scripts/test) builds anode-bench, which the script runs; a
    // test run of this package alone may not have it.
    if !bin_dir.join("anode-bench").exists() {
        eprintln!("skipped: anode-bench is not built (run the workspace's tests)");
        return;
    }
    let cold_targets = "12";
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("out");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = Command::new("bash")
        .arg(root.join("scripts/scale-sync"))
        .args(["--profile", "tiny", "--txs", "20000"])
        .args(["--engines", &engines.join(",")])
        .args([
            "--cache-mb",
            "64",
            "--cgroup-mb",
            "1500",
            "--reorg-limit",
            "200",
        ])
        .args(["--cold-targets", cold_targets])
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--work")
        .arg(work.path())
        .arg("--chain-dir")
        .arg(work.path().join("chain"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("bash scripts/scale-sync");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "scale-sync failed:\n{stderr}");
    let summary = std::fs::read_to_string(out.join("summary.md")).expect("summary.md");
    for engine in &engines {
        let line = summary
            .lines()
            .find(|l| l.starts_with(&format!("| {engine} | ")))
            .unwrap_or_else(|| panic!("no summary line for {engine}:\n{summary}\n{stderr}"));
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // engine, seconds, tx/s, first, last, ratio, RSS, anon, written, disk, bytes/tx
        let bytes_per_tx: u64 = cells[11].parse().expect("bytes per tx");
        assert!(bytes_per_tx > 0, "{line}");
        let anon_mb: u64 = cells[8].parse().expect("peak anon MB");
        assert!(anon_mb > 0, "{line}");
        let svg = std::fs::read_to_string(out.join(format!("{engine}.svg"))).expect("svg");
        assert!(svg.starts_with("<svg") && svg.contains("polyline"), "{svg}");
        {
            let cold = std::fs::read_to_string(out.join(format!("cold-{engine}/cold.md")))
                .expect("cold.md");
            let rows = cold
                .lines()
                .filter(|l| l.starts_with("| scripthash."))
                .count()
                + cold
                    .lines()
                    .filter(|l| l.starts_with("| transaction."))
                    .count();
            assert_eq!(rows, 8, "four methods at 1 and 64 sessions:\n{cold}");
            assert!(cold.contains("page cache dropped"), "{cold}");
        }
    }
    assert!(
        !summary.contains("exited early") && !summary.contains("failed"),
        "{summary}"
    );
}
