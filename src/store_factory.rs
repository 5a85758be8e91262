//! The one place that names concrete storage engines: it maps `db_engine` to a compiled-in
//! backend and opens it.

use std::path::Path;
use std::sync::Arc;

use anode_store::{Store, Table};

/// Engines compiled into this binary, in order of preference for the default.
pub fn available_engines() -> Vec<&'static str> {
    let mut engines = Vec::new();
    if cfg!(feature = "rocksdb") {
        engines.push("rocksdb");
    }
    if cfg!(feature = "lmdb") {
        engines.push("lmdb");
    }
    if cfg!(feature = "sqlite") {
        engines.push("sqlite");
    }
    engines
}

/// The engine used when config names none: the first compiled in.
pub fn default_engine() -> Option<&'static str> {
    available_engines().first().copied()
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FactoryError {
    /// The engine is not compiled into this binary (or does not exist).
    #[error(
        "storage engine `{wanted}` is not available in this build; available: {available} \
         (rebuild with `--features {wanted}` to add it)"
    )]
    Unavailable {
        /// what config asked for
        wanted: String,
        /// what this binary has
        available: String,
    },
    /// The engine failed to open the database.
    #[error(transparent)]
    Store(#[from] anode_store::Error),
}

/// Engine tuning that comes from the server's config rather than the engine's defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tuning {
    /// the operator's cache budget in MB (engines size their block or page caches from it)
    pub cache_mb: u64,
}

/// How the operator's one memory budget, `cache_mb`, is shared during the initial sync, so that
/// the process stays near `cache_mb` whatever the engine: the engine's own caches and write
/// buffers, the blocks fetched ahead, and the rest for the index writer's pending state (its
/// UTXO cache and the rows of the next flush).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    /// the engine's block cache plus write buffers (RocksDB), page cache (SQLite), or the
    /// dirty pages of a write transaction (LMDB)
    pub engine_mb: u64,
    /// blocks fetched and parsed ahead of the writer
    pub fetch_mb: u64,
    /// the writer's pending state
    pub writer_mb: u64,
}

impl MemoryPlan {
    /// Smallest share of each part, whatever the budget.
    const FLOOR_MB: u64 = 32;
    /// The most dirty pages an LMDB write transaction keeps in memory before it spills
    /// (`MDB_IDL_UM_MAX` pages of 4 KiB).
    const LMDB_DIRTY_PAGES_MB: u64 = 512;

    /// The plan for `engine` under a budget of `cache_mb`.
    pub fn new(engine: &str, cache_mb: u64) -> Self {
        let eighth = (cache_mb / 8).max(Self::FLOOR_MB);
        let engine_mb = match engine {
            // Block cache and memtables: an eighth each.
            "rocksdb" => 2 * eighth,
            // The writer connection's page cache.
            "sqlite" => eighth.min(256),
            // LMDB has no cache of its own (pages live in the OS page cache through its map),
            // but a write transaction copies every page it dirties into memory of its own, up
            // to 512 MB (LMDB spills beyond that), and keeps those buffers for the next
            // transaction. A flush into an index bigger than a few GB dirties that many, so
            // the process holds them for good (docs/performance.md, "Memory at scale").
            "lmdb" => (cache_mb * 3 / 8).min(Self::LMDB_DIRTY_PAGES_MB),
            _ => 0,
        };
        // More read-ahead than a few dozen large blocks buys nothing.
        let fetch_mb = eighth.min(256);
        let writer_mb = cache_mb
            .saturating_sub(engine_mb + fetch_mb)
            .max(2 * Self::FLOOR_MB);
        MemoryPlan {
            engine_mb,
            fetch_mb,
            writer_mb,
        }
    }
}

/// Opens the engine named `engine` at `path` with `tables`.
pub fn open_store(
    engine: &str,
    path: &Path,
    tables: &[Table],
    tuning: Tuning,
) -> Result<Arc<dyn Store>, FactoryError> {
    open_with(engine, path, tables, tuning, false)
}

/// Opens the existing database of `engine` at `path` read-only, beside a running server if
/// one has it open: no lock taken, nothing created or written (`anode check`). A missing
/// table is an error here rather than a table created.
pub fn open_store_read_only(
    engine: &str,
    path: &Path,
    tables: &[Table],
    tuning: Tuning,
) -> Result<Arc<dyn Store>, FactoryError> {
    open_with(engine, path, tables, tuning, true)
}

fn open_with(
    engine: &str,
    path: &Path,
    tables: &[Table],
    tuning: Tuning,
    read_only: bool,
) -> Result<Arc<dyn Store>, FactoryError> {
    let _ = (path, tables, tuning, read_only);
    match engine {
        #[cfg(feature = "rocksdb")]
        "rocksdb" => {
            use anode_store_rocksdb::{RocksOptions, RocksStore};
            let plan = MemoryPlan::new(engine, tuning.cache_mb);
            let options = RocksOptions {
                block_cache_bytes: ((plan.engine_mb / 2) << 20) as usize,
                total_write_buffer_bytes: ((plan.engine_mb / 2) << 20) as usize,
                read_only,
                ..RocksOptions::default()
            };
            Ok(Arc::new(RocksStore::open(path, tables, options)?))
        }
        #[cfg(feature = "lmdb")]
        "lmdb" => {
            use anode_store_lmdb::{LmdbOptions, LmdbStore};
            let options = LmdbOptions {
                read_only,
                ..LmdbOptions::default()
            };
            Ok(Arc::new(LmdbStore::open(path, tables, options)?))
        }
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            use anode_store_sqlite::{SqliteOptions, SqliteStore};
            let plan = MemoryPlan::new(engine, tuning.cache_mb);
            let options = SqliteOptions {
                writer_cache_kib: u32::try_from(plan.engine_mb << 10).unwrap_or(u32::MAX),
                read_only,
                ..SqliteOptions::default()
            };
            Ok(Arc::new(SqliteStore::open(path, tables, options)?))
        }
        _ => Err(FactoryError::Unavailable {
            wanted: engine.to_string(),
            available: available_engines().join(", "),
        }),
    }
}

/// Disk bytes of a database before and after [`compact`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactReport {
    /// bytes before
    pub before: u64,
    /// bytes after
    pub after: u64,
}

/// Compacts the database of `engine` at `path` with no store open on it (`anode compact`):
/// LMDB copies its live pages to a new file that replaces the old one (LMDB never shrinks its
/// file by itself); RocksDB compacts every column family; SQLite runs VACUUM. The directory is
/// locked throughout, so a running server makes this fail instead of racing it.
pub fn compact(
    engine: &str,
    path: &Path,
    tables: &[Table],
    tuning: Tuning,
) -> Result<CompactReport, FactoryError> {
    let before = anode_store::marker::disk_usage(path)?;
    match engine {
        #[cfg(feature = "lmdb")]
        "lmdb" => {
            let _ = (tables, tuning);
            anode_store_lmdb::compact_in_place(path, &anode_store_lmdb::LmdbOptions::default())?;
        }
        _ => {
            let store = open_store(engine, path, tables, tuning)?;
            store.compact()?;
        }
    }
    Ok(CompactReport {
        before,
        after: anode_store::marker::disk_usage(path)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_plan_shares_the_budget_without_exceeding_it() {
        for engine in ["rocksdb", "lmdb", "sqlite"] {
            for cache_mb in [1200, 4000, 16000] {
                let plan = MemoryPlan::new(engine, cache_mb);
                assert_eq!(
                    plan.engine_mb + plan.fetch_mb + plan.writer_mb,
                    cache_mb,
                    "{engine} {cache_mb}: {plan:?}"
                );
                assert!(
                    plan.writer_mb >= cache_mb / 2,
                    "{engine} {cache_mb}: {plan:?}"
                );
            }
            // A tiny budget still leaves every part something to work with.
            let plan = MemoryPlan::new(engine, 10);
            assert!(plan.writer_mb >= 64 && plan.fetch_mb >= 32, "{plan:?}");
        }
    }

    #[test]
    fn an_engine_not_compiled_in_lists_the_available_ones() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_store("leveldb", dir.path(), &[Table::new("t")], Tuning::default())
            .map(|_| ())
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("leveldb") && text.contains("available:"),
            "{text}"
        );
        for engine in available_engines() {
            assert!(text.contains(engine), "{text}");
        }
    }

    #[test]
    fn every_compiled_engine_opens_and_reports_its_name() {
        for engine in available_engines() {
            let dir = tempfile::tempdir().unwrap();
            let store = open_store(
                engine,
                dir.path(),
                &[Table::new("t")],
                Tuning { cache_mb: 64 },
            )
            .unwrap_or_else(|e| panic!("{engine}: {e}"));
            assert_eq!(store.engine(), engine);
        }
    }
}
