//! The database's identity: the meta table records which engine, schema version, coin and
//! network made it, and a store opened for anything else is refused with a message that says
//! what to do — never silently reinterpreted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anode_store::{Durability, ReadView, Store, WriteBatch};

use super::schema::{META, TABLES};
use crate::store_factory::{self, FactoryError, Tuning};

/// The on-disk layout version this build reads and writes. Bump it with any change to a
/// table's key or value layout.
pub const SCHEMA_VERSION: u32 = 2;

const KEY_SCHEMA: &[u8] = b"schema_version";
const KEY_ENGINE: &[u8] = b"engine";
const KEY_COIN: &[u8] = b"coin";
const KEY_NETWORK: &[u8] = b"network";

/// What a database is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbIdentity {
    /// engine name
    pub engine: String,
    /// layout version
    pub schema_version: u32,
    /// coin, as the coin layer names it
    pub coin: String,
    /// network
    pub network: String,
}

/// Why a database cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// Opening the engine failed.
    #[error(transparent)]
    Open(#[from] FactoryError),
    /// Reading or writing the meta table failed.
    #[error("database at {path}: {source}")]
    Store {
        /// the database directory
        path: PathBuf,
        /// the engine's error
        #[source]
        source: anode_store::Error,
    },
    /// The database holds another coin's or network's index.
    #[error(
        "the database at {path} indexes {found_coin} {found_network}, not {coin} {network}: \
         set COIN/NET (coin, network) to match it, or point DB_DIRECTORY at another directory"
    )]
    WrongCoin {
        /// the database directory
        path: PathBuf,
        /// recorded coin
        found_coin: String,
        /// recorded network
        found_network: String,
        /// configured coin
        coin: String,
        /// configured network
        network: String,
    },
    /// The database was written with another layout.
    #[error(
        "the database at {path} has schema version {found}, this anode reads version {wanted}: \
         {advice}"
    )]
    WrongSchema {
        /// the database directory
        path: PathBuf,
        /// recorded version
        found: u32,
        /// this build's version
        wanted: u32,
        /// what to do
        advice: &'static str,
    },
    /// The database's files are damaged: truncated, failing their checksums, or missing a
    /// table. anode refuses to serve from them.
    #[error(
        "the index at {path} is damaged: {detail}. anode does not serve from a damaged index. \
         To rebuild it: stop anode, move {path} aside (or delete it), and start anode again to \
         re-index from the node; `anode check` (same settings) lists what is wrong"
    )]
    Damaged {
        /// the database directory
        path: PathBuf,
        /// what is wrong, naming the file where the engine can tell
        detail: String,
    },
    /// A meta row that does not decode.
    #[error("the database at {path} has an unreadable `{key}` meta row; it is not an anode index or is damaged")]
    Corrupt {
        /// the database directory
        path: PathBuf,
        /// the row
        key: String,
    },
}

/// Opens the index database with `engine` at `path` and checks (or, for a new database,
/// records) that it belongs to `coin` `network` at this schema version.
pub fn open_index_store(
    engine: &str,
    path: &Path,
    coin: &str,
    network: &str,
    tuning: Tuning,
) -> Result<Arc<dyn Store>, MetaError> {
    let store = store_factory::open_store(engine, path, TABLES, tuning)
        .map_err(|e| damaged_open(path, e))?;
    let wanted = DbIdentity {
        engine: store.engine().to_string(),
        schema_version: SCHEMA_VERSION,
        coin: coin.to_string(),
        network: network.to_string(),
    };
    check_or_record(&*store, path, &wanted)?;
    Ok(store)
}

/// The error of opening the store: a [`MetaError::Damaged`] when the engine found its files
/// damaged.
pub fn damaged_open(path: &Path, error: FactoryError) -> MetaError {
    match error {
        FactoryError::Store(e) if e.kind() == anode_store::ErrorKind::Corrupt => {
            MetaError::Damaged {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        }
        other => MetaError::Open(other),
    }
}

/// The error of a read at open (the writer's chain tables, the meta rows): a
/// [`MetaError::Damaged`] when the index contradicts itself or the engine found corruption.
pub fn damaged_index(path: &Path, error: super::IndexError) -> anyhow::Error {
    use super::IndexError;
    let corrupt = match &error {
        IndexError::Corrupt(detail) => Some(detail.clone()),
        e if e.store_error().map(anode_store::Error::kind)
            == Some(anode_store::ErrorKind::Corrupt) =>
        {
            e.store_error().map(ToString::to_string)
        }
        _ => None,
    };
    match corrupt {
        Some(detail) => MetaError::Damaged {
            path: path.to_path_buf(),
            detail,
        }
        .into(),
        None => error.into(),
    }
}

/// Checks the meta rows of `store` against `wanted`, writing them if the database is new.
pub fn check_or_record(
    store: &dyn Store,
    path: &Path,
    wanted: &DbIdentity,
) -> Result<(), MetaError> {
    if verify_identity(store, path, wanted)? {
        return Ok(());
    }
    let mut batch = WriteBatch::new();
    batch.put(META, KEY_SCHEMA, wanted.schema_version.to_string());
    batch.put(META, KEY_ENGINE, wanted.engine.as_str());
    batch.put(META, KEY_COIN, wanted.coin.as_str());
    batch.put(META, KEY_NETWORK, wanted.network.as_str());
    store
        .write(batch, Durability::Sync)
        .map_err(|source| MetaError::Store {
            path: path.to_path_buf(),
            source,
        })
}

/// Checks, without writing, the meta rows of `view` against `wanted` (the engine aside):
/// `Ok(false)` for a database that records no identity yet (a new one), `Ok(true)` when it
/// is `wanted`'s.
pub fn verify_identity(
    view: &dyn ReadView,
    path: &Path,
    wanted: &DbIdentity,
) -> Result<bool, MetaError> {
    let store_err = |source: anode_store::Error| {
        if source.kind() == anode_store::ErrorKind::Corrupt {
            return MetaError::Damaged {
                path: path.to_path_buf(),
                detail: source.to_string(),
            };
        }
        MetaError::Store {
            path: path.to_path_buf(),
            source,
        }
    };
    let read = |key: &[u8]| -> Result<Option<String>, MetaError> {
        match view.get(META, key).map_err(store_err)? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| MetaError::Corrupt {
                    path: path.to_path_buf(),
                    key: String::from_utf8_lossy(key).into_owned(),
                }),
        }
    };
    let Some(schema) = read(KEY_SCHEMA)? else {
        return Ok(false);
    };
    let found: u32 = schema.parse().map_err(|_| MetaError::Corrupt {
        path: path.to_path_buf(),
        key: "schema_version".into(),
    })?;
    if found != wanted.schema_version {
        let advice = if found > wanted.schema_version {
            "it was made by a newer anode; run that version, or move the directory aside and resync"
        } else {
            "it was made by an older anode, whose layout this version cannot read or convert \
             (schema 2 groups each script's history by flush and compacts undo records); stop \
             anode, move the directory aside or delete it, and start again to re-index from \
             the node"
        };
        return Err(MetaError::WrongSchema {
            path: path.to_path_buf(),
            found,
            wanted: wanted.schema_version,
            advice,
        });
    }
    let found_coin = read(KEY_COIN)?.unwrap_or_default();
    let found_network = read(KEY_NETWORK)?.unwrap_or_default();
    // Coin names are matched as the registry matches them: case-insensitively.
    if !found_coin.eq_ignore_ascii_case(&wanted.coin)
        || !found_network.eq_ignore_ascii_case(&wanted.network)
    {
        return Err(MetaError::WrongCoin {
            path: path.to_path_buf(),
            found_coin,
            found_network,
            coin: wanted.coin.clone(),
            network: wanted.network.clone(),
        });
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anode_store::MemoryStore;

    fn identity(coin: &str, network: &str, schema_version: u32) -> DbIdentity {
        DbIdentity {
            engine: "memory".into(),
            schema_version,
            coin: coin.into(),
            network: network.into(),
        }
    }

    #[test]
    fn a_new_database_records_its_identity_and_accepts_it_again() {
        let store = MemoryStore::new(TABLES);
        let path = Path::new("/db");
        check_or_record(
            &store,
            path,
            &identity("Bitcoin", "regtest", SCHEMA_VERSION),
        )
        .unwrap();
        assert_eq!(
            store.get(META, KEY_COIN).unwrap(),
            Some(b"Bitcoin".to_vec())
        );
        check_or_record(
            &store,
            path,
            &identity("bitcoin", "REGTEST", SCHEMA_VERSION),
        )
        .unwrap();
    }

    #[test]
    fn another_coin_network_or_schema_is_refused_with_advice() {
        let store = MemoryStore::new(TABLES);
        let path = Path::new("/db");
        check_or_record(
            &store,
            path,
            &identity("Bitcoin", "regtest", SCHEMA_VERSION),
        )
        .unwrap();

        let err = check_or_record(
            &store,
            path,
            &identity("Bitcoin", "testnet", SCHEMA_VERSION),
        )
        .unwrap_err();
        assert!(matches!(err, MetaError::WrongCoin { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("Bitcoin regtest")
                && text.contains("Bitcoin testnet")
                && text.contains("DB_DIRECTORY"),
            "{text}"
        );
        let err = check_or_record(
            &store,
            path,
            &identity("Litecoin", "regtest", SCHEMA_VERSION),
        )
        .unwrap_err();
        assert!(matches!(err, MetaError::WrongCoin { .. }), "{err}");

        let err = check_or_record(
            &store,
            path,
            &identity("Bitcoin", "regtest", SCHEMA_VERSION + 1),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                MetaError::WrongSchema {
                    found: SCHEMA_VERSION,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("older anode"), "{err}");
    }

    #[test]
    fn every_compiled_engine_keeps_its_identity_across_reopen() {
        for engine in store_factory::available_engines() {
            let dir = tempfile::tempdir().unwrap();
            drop(
                open_index_store(
                    engine,
                    dir.path(),
                    "BitcoinCash",
                    "nolnet",
                    Tuning { cache_mb: 64 },
                )
                .unwrap(),
            );
            drop(
                open_index_store(
                    engine,
                    dir.path(),
                    "BitcoinCash",
                    "nolnet",
                    Tuning { cache_mb: 64 },
                )
                .unwrap(),
            );
            let err = open_index_store(
                engine,
                dir.path(),
                "Bitcoin",
                "mainnet",
                Tuning { cache_mb: 64 },
            )
            .map(|_| ())
            .unwrap_err();
            assert!(
                matches!(err, MetaError::WrongCoin { .. }),
                "{engine}: {err}"
            );
            let other = store_factory::available_engines()
                .into_iter()
                .find(|e| e != &engine);
            if let Some(other) = other {
                let err = open_index_store(
                    other,
                    dir.path(),
                    "BitcoinCash",
                    "nolnet",
                    Tuning { cache_mb: 64 },
                )
                .map(|_| ())
                .unwrap_err();
                assert!(
                    err.to_string()
                        .contains(&format!("set db_engine = \"{engine}\"")),
                    "{other} on {engine}: {err}"
                );
            }
        }
    }
}
