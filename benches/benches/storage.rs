//! Criterion front end of the storage workloads (`anode_benches::storage`), one benchmark id
//! per engine and size: `cargo bench -p anode-benches --features rocksdb,lmdb,sqlite`.
//! The readable report is the `storage-bench` binary's; this one gives criterion's statistics
//! and plots under `target/criterion`.

use std::time::{Duration, Instant};

use anode_benches::storage::{self, Dataset, LOAD_BATCH};
use anode_store::Durability;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const SIZES: &[usize] = &[10_000, 100_000];

fn temp_dir(engine: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("anode-criterion-{engine}-"))
        .tempdir()
        .expect("the temp directory is writable")
}

/// Loads into a fresh store per iteration; only the load is timed.
fn loads(c: &mut Criterion) {
    for (name, sorted) in [("sequential_insert", true), ("random_insert", false)] {
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        for &size in SIZES {
            let data = Dataset::new(size);
            let rows = if sorted {
                data.sorted()
            } else {
                data.rows.clone()
            };
            group.throughput(Throughput::Elements(size as u64));
            for engine in storage::engines() {
                group.bench_with_input(BenchmarkId::new(engine.name, size), &rows, |b, rows| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let dir = temp_dir(engine.name);
                            let store = (engine.open)(dir.path()).expect("open");
                            let start = Instant::now();
                            storage::load(&*store, rows, LOAD_BATCH, Durability::Bulk)
                                .expect("load");
                            total += start.elapsed();
                        }
                        total
                    })
                });
            }
        }
        group.finish();
    }
}

/// Reads on one loaded store per engine and size.
fn reads(c: &mut Criterion) {
    for &size in SIZES {
        let data = Dataset::new(size);
        for engine in storage::engines() {
            let dir = temp_dir(engine.name);
            let store = (engine.open)(dir.path()).expect("open");
            storage::load(&*store, &data.rows, LOAD_BATCH, Durability::Bulk).expect("load");
            let id = BenchmarkId::new(engine.name, size);
            let mut seed = 0;
            c.benchmark_group("point_read")
                .throughput(Throughput::Elements(1000))
                .bench_function(id.clone(), |b| {
                    b.iter(|| {
                        seed += 1;
                        storage::point_reads(&*store, &data, 1000, seed).expect("reads")
                    })
                });
            c.benchmark_group("prefix_scan")
                .throughput(Throughput::Elements(100))
                .bench_function(id.clone(), |b| {
                    b.iter(|| {
                        seed += 1;
                        storage::prefix_scans(&*store, &data, 100, seed).expect("scans")
                    })
                });
            c.benchmark_group("read_while_write")
                .sample_size(10)
                .throughput(Throughput::Elements(10_000))
                .bench_function(id.clone(), |b| {
                    let mut tx = size as u64;
                    b.iter(|| {
                        tx += 1 << 24;
                        storage::read_while_write(&*store, &data, 10_000, tx).expect("mixed")
                    })
                });
            c.benchmark_group("sync_commit")
                .sample_size(10)
                .throughput(Throughput::Elements(10))
                .bench_function(id, |b| {
                    let mut tx = 1u64 << 36;
                    b.iter(|| {
                        tx += 1000;
                        storage::sync_commits(&*store, 10, 100, tx).expect("commits")
                    })
                });
        }
    }
}

criterion_group!(storage_benches, loads, reads);
criterion_main!(storage_benches);
