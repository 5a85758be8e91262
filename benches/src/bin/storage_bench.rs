//! Runs the storage workloads once per compiled-in engine and prints one markdown table per
//! workload, one column per engine.
//!
//! ```text
//! cargo run -p anode-benches --release --features rocksdb,lmdb,sqlite --bin storage-bench \
//!     -- [--rows N] [--dir PATH]
//! ```
//!
//! `--rows` (default 1 000 000) sizes the history table; `--dir` (default: the system temp
//! directory) is where the databases are made, one fresh directory per engine and load.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line report: the tables go to stdout, progress to stderr"
)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anode_benches::storage::{self, Dataset, Engine, LOAD_BATCH};
use anode_store::{Durability, Result, Store};

/// One workload's table: metric names, and per engine one cell per metric.
struct Report {
    title: String,
    metrics: Vec<&'static str>,
    columns: Vec<(&'static str, Vec<String>)>,
}

impl Report {
    fn new(title: String, metrics: &[&'static str]) -> Self {
        Report {
            title,
            metrics: metrics.to_vec(),
            columns: Vec::new(),
        }
    }

    fn print(&self) {
        println!("\n**{}**\n", self.title);
        let names: Vec<&str> = self.columns.iter().map(|(n, _)| *n).collect();
        println!("| | {} |", names.join(" | "));
        println!("|---|{}", "---:|".repeat(names.len()));
        for (i, metric) in self.metrics.iter().enumerate() {
            let cells: Vec<&str> = self.columns.iter().map(|(_, c)| c[i].as_str()).collect();
            println!("| {metric} | {} |", cells.join(" | "));
        }
    }
}

fn rate(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2} M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// Loads `rows` into a fresh store the way the initial sync does: bulk-load mode on, Bulk
/// batches, sync, bulk-load mode off (the deferred compaction). Returns the store for reads.
fn load_fresh(
    engine: &Engine,
    dir: &std::path::Path,
    rows: &[(Vec<u8>, Vec<u8>)],
    cells: &mut Vec<String>,
) -> Result<Box<dyn Store>> {
    let store = (engine.open)(dir)?;
    let start = Instant::now();
    store.set_bulk_load(true)?;
    storage::load(&*store, rows, LOAD_BATCH, Durability::Bulk)?;
    let loaded = start.elapsed();
    let start = Instant::now();
    store.set_bulk_load(false)?;
    let finish = start.elapsed();
    let total = loaded + finish;
    cells.push(rate(rows.len() as f64 / total.as_secs_f64()));
    cells.push(secs(loaded));
    cells.push(secs(finish));
    cells.push(mib(store.stats()?.disk_bytes));
    Ok(store)
}

fn main() -> Result<()> {
    let mut rows = 1_000_000usize;
    let mut base = std::env::temp_dir();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--rows", Some(n)) => rows = n.parse().expect("--rows takes a number"),
            ("--dir", Some(d)) => base = PathBuf::from(d),
            _ => {
                eprintln!("usage: storage-bench [--rows N] [--dir PATH]");
                std::process::exit(2);
            }
        }
    }
    let engines = storage::engines();
    if engines.is_empty() {
        eprintln!("no engine compiled in: build with --features rocksdb,lmdb,sqlite");
        std::process::exit(2);
    }
    let data = Dataset::new(rows);
    let sorted = data.sorted();
    let reads = (rows / 5).clamp(10_000, 200_000);
    let scans = reads / 4;

    let load_metrics = [
        "rows/s (whole load)",
        "load + sync",
        "end of bulk mode (compaction)",
        "on disk after",
    ];
    let mut seq = Report::new(
        format!("Sequential load: {rows} rows in key order, batches of {LOAD_BATCH}, Bulk + sync"),
        &load_metrics,
    );
    let mut random = Report::new(
        format!(
            "Random load: {rows} rows in arrival order (tx numbers ascending, hashXs \
             scattered), batches of {LOAD_BATCH}, Bulk + sync"
        ),
        &load_metrics,
    );
    let mut point = Report::new(
        format!("Point reads: {reads} random gets of present keys (after the random load)"),
        &["gets/s", "p50", "p99"],
    );
    let mut prefix = Report::new(
        format!("Prefix scans: {scans} histories of random hashXs (~10 rows each)"),
        &["scans/s", "p50", "p99", "rows read"],
    );
    let mut commits = Report::new(
        "Sync commits: 300 batches of 100 new rows, each Durability::Sync (the tip)".into(),
        &["commits/s", "p50", "p99"],
    );
    let mut mixed = Report::new(
        format!(
            "Read while writing: {reads} gets while a writer commits Bulk batches of 1000 rows \
             (sync every 10)"
        ),
        &["gets/s", "get p99", "writer rows/s"],
    );

    for engine in &engines {
        eprintln!("{}: sequential load", engine.name);
        let dir = tempfile::Builder::new()
            .prefix(&format!("anode-bench-{}-", engine.name))
            .tempdir_in(&base)
            .map_err(|e| anode_store::Error::io(&base, e))?;
        let mut cells = Vec::new();
        drop(load_fresh(
            engine,
            &dir.path().join("seq"),
            &sorted,
            &mut cells,
        )?);
        seq.columns.push((engine.name, cells));

        eprintln!("{}: random load", engine.name);
        let mut cells = Vec::new();
        let store = load_fresh(engine, &dir.path().join("random"), &data.rows, &mut cells)?;
        random.columns.push((engine.name, cells));

        eprintln!("{}: point reads", engine.name);
        let mut lat = storage::point_reads(&*store, &data, reads, 1)?;
        point.columns.push((
            engine.name,
            vec![
                rate(lat.ops_per_sec()),
                micros(lat.quantile(0.5)),
                micros(lat.quantile(0.99)),
            ],
        ));

        eprintln!("{}: prefix scans", engine.name);
        let (mut lat, read) = storage::prefix_scans(&*store, &data, scans, 2)?;
        prefix.columns.push((
            engine.name,
            vec![
                rate(lat.ops_per_sec()),
                micros(lat.quantile(0.5)),
                micros(lat.quantile(0.99)),
                read.to_string(),
            ],
        ));

        eprintln!("{}: read while writing", engine.name);
        let mut m = storage::read_while_write(&*store, &data, reads, rows as u64)?;
        mixed.columns.push((
            engine.name,
            vec![
                rate(m.reads.ops_per_sec()),
                micros(m.reads.quantile(0.99)),
                rate(m.write_rows_per_sec),
            ],
        ));

        eprintln!("{}: sync commits", engine.name);
        let mut lat = storage::sync_commits(&*store, 300, 100, 1 << 36)?;
        commits.columns.push((
            engine.name,
            vec![
                rate(lat.ops_per_sec()),
                micros(lat.quantile(0.5)),
                micros(lat.quantile(0.99)),
            ],
        ));
    }
    for report in [&seq, &random, &point, &prefix, &mixed, &commits] {
        report.print();
    }
    Ok(())
}
