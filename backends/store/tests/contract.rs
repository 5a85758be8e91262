//! The contract suite run against the in-memory reference engine.

use anode_store::{MemoryStore, Store};

anode_store::store_contract_tests!(memory, persistent = false, |_path, tables| {
    Ok(Box::new(MemoryStore::new(tables)) as Box<dyn Store>)
});
