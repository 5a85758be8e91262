//! # anode-store-rocksdb: the RocksDB engine for anode's storage trait
//!
//! [`RocksStore`] implements [`anode_store::Store`] on RocksDB: one column family per table,
//! bytewise key order (RocksDB's default comparator), atomic multi-table write batches, and
//! snapshots through RocksDB's snapshot API.
//!
//! Build: by default `librocksdb-sys` compiles RocksDB's C++ (slow). Setting
//! `ROCKSDB_LIB_DIR=/usr/lib/x86_64-linux-gnu` (with Debian's `librocksdb-dev` and
//! `libclang-dev` installed) links the system library instead; see `docs/backends.md`.
//!
//! This crate depends on `anode-store` and `rocksdb` only, never on `anode`.

mod iter;
mod options;
mod store;

pub use options::RocksOptions;
pub use store::{RocksSnapshot, RocksStore};

/// The engine's name in config and in the directory's engine marker.
pub const ENGINE: &str = "rocksdb";
