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

/// Opens the engine named `engine` at `path` with `tables`.
pub fn open_store(
    engine: &str,
    path: &Path,
    tables: &[Table],
    tuning: Tuning,
) -> Result<Arc<dyn Store>, FactoryError> {
    let _ = (path, tables, tuning);
    match engine {
        #[cfg(feature = "rocksdb")]
        "rocksdb" => {
            use anode_store_rocksdb::{RocksOptions, RocksStore};
            let options = RocksOptions {
                block_cache_bytes: (tuning.cache_mb.max(64) * 1024 * 1024 / 4) as usize,
                ..RocksOptions::default()
            };
            Ok(Arc::new(RocksStore::open(path, tables, options)?))
        }
        #[cfg(feature = "lmdb")]
        "lmdb" => {
            use anode_store_lmdb::{LmdbOptions, LmdbStore};
            Ok(Arc::new(LmdbStore::open(
                path,
                tables,
                LmdbOptions::default(),
            )?))
        }
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            use anode_store_sqlite::{SqliteOptions, SqliteStore};
            Ok(Arc::new(SqliteStore::open(
                path,
                tables,
                SqliteOptions::default(),
            )?))
        }
        _ => Err(FactoryError::Unavailable {
            wanted: engine.to_string(),
            available: available_engines().join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
