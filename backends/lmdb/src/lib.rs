//! # anode-store-lmdb: the LMDB engine for anode's storage trait
//!
//! [`LmdbStore`] implements [`anode_store::Store`] on LMDB through `heed`: one environment per
//! database directory (`data.mdb` + `lock.mdb`), one named database per table, keys compared
//! bytewise (LMDB's default comparator is memcmp, shorter key first).
//!
//! Invariants this crate upholds on top of the contract:
//! * the memory map grows by itself; a batch never fails with `MDB_MAP_FULL` while the disk
//!   has room (see [`LmdbOptions::map_growth`]);
//! * read transactions are short: one per look-up or scan page, one per snapshot;
//! * every `unsafe` call (environment open, flag changes, resize) states the rules it upholds.
//!
//! Keys are 1..=511 bytes, LMDB's compiled-in limit, which `WriteBatch::validate` enforces for
//! every engine. This crate depends on `anode-store` and `heed` only, never on `anode`.

mod compact;
mod options;
mod snapshot;
mod store;

pub use compact::{compact_in_place, Compacted};
pub use options::LmdbOptions;
pub use snapshot::LmdbSnapshot;
pub use store::LmdbStore;

/// The engine's name in config and in the directory's engine marker.
pub const ENGINE: &str = "lmdb";
