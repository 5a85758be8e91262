//! The storage contract run against RocksDB with default options.

use anode_store::Store;
use anode_store_rocksdb::{RocksOptions, RocksStore};

anode_store::store_contract_tests!(rocksdb, persistent = true, |path, tables| {
    Ok(Box::new(RocksStore::open(path, tables, RocksOptions::default())?) as Box<dyn Store>)
});
