//! The storage contract run against SQLite with default options.

use anode_store::Store;
use anode_store_sqlite::{SqliteOptions, SqliteStore};

anode_store::store_contract_tests!(sqlite, persistent = true, |path, tables| {
    Ok(Box::new(SqliteStore::open(path, tables, SqliteOptions::default())?) as Box<dyn Store>)
});
