//! The storage contract run against LMDB with default options.

use anode_store::Store;
use anode_store_lmdb::{LmdbOptions, LmdbStore};

anode_store::store_contract_tests!(lmdb, persistent = true, |path, tables| {
    Ok(Box::new(LmdbStore::open(path, tables, LmdbOptions::default())?) as Box<dyn Store>)
});
