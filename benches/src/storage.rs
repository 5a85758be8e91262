//! Storage micro-benchmarks: workloads written once against `&dyn Store`, run per engine.
//!
//! Data is shaped like anode's history index: 16-byte keys (an 11-byte hashX, then a 5-byte
//! big-endian tx number) and 8-byte values, with about ten rows per hashX. Rows arrive the way
//! the indexer produces them: tx numbers ascending, hashXs scattered.
//!
//! Every engine runs every workload at the same durability: loads commit
//! [`Durability::Bulk`] batches and end with [`Store::sync`] (the initial sync's pattern), and
//! `sync_commits` commits small [`Durability::Sync`] batches (the chain tip's pattern).

use std::path::Path;
use std::time::{Duration, Instant};

use anode_store::{Durability, Result, Store, Table, WriteBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The benchmark table (the history index's shape).
pub const HISTORY: &str = "history";
/// Length of the hashX prefix.
pub const HASHX_LEN: usize = 11;
/// The tables every benchmark store is opened with.
pub const TABLES: &[Table] = &[Table::with_prefix(HISTORY, HASHX_LEN)];
/// Rows per batch in load workloads (a flush of a few blocks at the start of the chain).
pub const LOAD_BATCH: usize = 10_000;

/// An engine compiled into the benchmarks.
#[derive(Clone, Copy)]
pub struct Engine {
    /// engine name (a table column)
    pub name: &'static str,
    /// opens a store at a directory with [`TABLES`]
    pub open: fn(&Path) -> Result<Box<dyn Store>>,
}

/// The engines compiled in (by the `rocksdb`, `lmdb` and `sqlite` features), in that order.
pub fn engines() -> Vec<Engine> {
    #[allow(unused_mut)]
    let mut engines = Vec::new();
    #[cfg(feature = "rocksdb")]
    engines.push(Engine {
        name: anode_store_rocksdb::ENGINE,
        open: |path| {
            let options = anode_store_rocksdb::RocksOptions::default();
            Ok(Box::new(anode_store_rocksdb::RocksStore::open(
                path, TABLES, options,
            )?) as _)
        },
    });
    #[cfg(feature = "lmdb")]
    engines.push(Engine {
        name: anode_store_lmdb::ENGINE,
        open: |path| {
            let options = anode_store_lmdb::LmdbOptions::default();
            Ok(Box::new(anode_store_lmdb::LmdbStore::open(path, TABLES, options)?) as _)
        },
    });
    #[cfg(feature = "sqlite")]
    engines.push(Engine {
        name: anode_store_sqlite::ENGINE,
        open: |path| {
            let options = anode_store_sqlite::SqliteOptions::default();
            Ok(Box::new(anode_store_sqlite::SqliteStore::open(
                path, TABLES, options,
            )?) as _)
        },
    });
    engines
}

/// Rows shaped like the history index.
pub struct Dataset {
    /// `(key, value)` in arrival order: tx numbers ascending, hashXs scattered
    pub rows: Vec<(Vec<u8>, Vec<u8>)>,
    /// number of distinct hashXs (about one per ten rows)
    pub hashxs: u64,
}

/// The 11-byte hashX of script number `id` (a fixed pseudo-random mix, like a real hash).
pub fn hashx(id: u64) -> [u8; HASHX_LEN] {
    let mut out = [0u8; HASHX_LEN];
    let (a, b) = (splitmix(id), splitmix(id ^ 0x5bd1_e995));
    out[..8].copy_from_slice(&a.to_be_bytes());
    out[8..].copy_from_slice(&b.to_be_bytes()[..3]);
    out
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn history_key(hashx_id: u64, tx_num: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(HASHX_LEN + 5);
    key.extend_from_slice(&hashx(hashx_id));
    key.extend_from_slice(&tx_num.to_be_bytes()[3..]);
    key
}

impl Dataset {
    /// `n` rows over `n / 10` hashXs, the same for every engine and run.
    pub fn new(n: usize) -> Dataset {
        let hashxs = (n as u64 / 10).max(1);
        let mut rng = StdRng::seed_from_u64(0x0061_6e6f_6465);
        let rows = (0..n as u64)
            .map(|tx_num| {
                let key = history_key(rng.gen_range(0..hashxs), tx_num);
                (key, tx_num.wrapping_mul(31).to_le_bytes().to_vec())
            })
            .collect();
        Dataset { rows, hashxs }
    }

    /// The same rows in key order.
    pub fn sorted(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut rows = self.rows.clone();
        rows.sort_unstable();
        rows
    }
}

/// Commits `rows` in batches of `batch` rows at `durability`, then syncs.
pub fn load(
    store: &dyn Store,
    rows: &[(Vec<u8>, Vec<u8>)],
    batch: usize,
    durability: Durability,
) -> Result<()> {
    for chunk in rows.chunks(batch.max(1)) {
        let mut b = WriteBatch::with_capacity(chunk.len());
        for (k, v) in chunk {
            b.put(HISTORY, k.clone(), v.clone());
        }
        store.write(b, durability)?;
    }
    store.sync()
}

/// Latencies of individual operations.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    samples: Vec<Duration>,
    /// wall time of the whole run
    pub total: Duration,
}

impl Latencies {
    /// Operations per second over the whole run.
    pub fn ops_per_sec(&self) -> f64 {
        self.samples.len() as f64 / self.total.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0.0..=1.0) of the operation latency.
    pub fn quantile(&mut self, q: f64) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        self.samples.sort_unstable();
        let i = ((self.samples.len() - 1) as f64 * q).round() as usize;
        self.samples[i]
    }

    fn time<T>(&mut self, op: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = op();
        self.samples.push(start.elapsed());
        out
    }
}

/// Gets of `count` keys picked at random from `data` (all present).
pub fn point_reads(
    store: &dyn Store,
    data: &Dataset,
    count: usize,
    seed: u64,
) -> Result<Latencies> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut lat = Latencies::default();
    let start = Instant::now();
    for _ in 0..count {
        let (key, _) = &data.rows[rng.gen_range(0..data.rows.len())];
        let found = lat.time(|| store.get(HISTORY, key))?;
        assert!(found.is_some(), "a loaded key is present");
    }
    lat.total = start.elapsed();
    Ok(lat)
}

/// Full history of `count` random hashXs (a prefix scan each, ~10 rows); returns the
/// latencies and the rows read.
pub fn prefix_scans(
    store: &dyn Store,
    data: &Dataset,
    count: usize,
    seed: u64,
) -> Result<(Latencies, usize)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut lat = Latencies::default();
    let mut rows = 0;
    let start = Instant::now();
    for _ in 0..count {
        let prefix = hashx(rng.gen_range(0..data.hashxs));
        rows += lat.time(|| -> Result<usize> {
            let mut n = 0;
            for row in store.scan_prefix(HISTORY, &prefix, anode_store::Direction::Forward)? {
                row?;
                n += 1;
            }
            Ok(n)
        })?;
    }
    lat.total = start.elapsed();
    Ok((lat, rows))
}

/// `commits` batches of `rows_per_commit` new rows, each at [`Durability::Sync`] (the tip).
pub fn sync_commits(
    store: &dyn Store,
    commits: usize,
    rows_per_commit: usize,
    first_tx: u64,
) -> Result<Latencies> {
    let mut rng = StdRng::seed_from_u64(first_tx);
    let mut lat = Latencies::default();
    let start = Instant::now();
    for c in 0..commits {
        let mut batch = WriteBatch::with_capacity(rows_per_commit);
        for r in 0..rows_per_commit {
            let tx = first_tx + (c * rows_per_commit + r) as u64;
            batch.put(HISTORY, history_key(rng.gen(), tx), tx.to_le_bytes());
        }
        lat.time(|| store.write(batch, Durability::Sync))?;
    }
    lat.total = start.elapsed();
    Ok(lat)
}

/// What [`read_while_write`] measured.
pub struct Mixed {
    /// the reader's point gets
    pub reads: Latencies,
    /// rows the writer committed per second meanwhile
    pub write_rows_per_sec: f64,
}

/// Point reads on this thread while another thread commits Bulk batches of 1000 new rows
/// (with a sync every 10 batches) for as long as the reads last.
pub fn read_while_write(
    store: &dyn Store,
    data: &Dataset,
    reads: usize,
    first_tx: u64,
) -> Result<Mixed> {
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| -> Result<(u64, Duration)> {
            let mut rng = StdRng::seed_from_u64(first_tx);
            let start = Instant::now();
            let mut tx = first_tx;
            let mut batches = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut batch = WriteBatch::with_capacity(1000);
                for _ in 0..1000 {
                    let key = history_key(rng.gen_range(0..data.hashxs), tx);
                    batch.put(HISTORY, key, tx.to_le_bytes());
                    tx += 1;
                }
                store.write(batch, Durability::Bulk)?;
                batches += 1;
                if batches.is_multiple_of(10) {
                    store.sync()?;
                }
            }
            Ok((tx - first_tx, start.elapsed()))
        });
        let reads = point_reads(store, data, reads, 7);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (written, elapsed) = writer.join().expect("the writer thread does not panic")?;
        Ok(Mixed {
            reads: reads?,
            write_rows_per_sec: written as f64 / elapsed.as_secs_f64().max(1e-9),
        })
    })
}
