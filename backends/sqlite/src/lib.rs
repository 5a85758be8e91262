//! # anode-store-sqlite: the SQLite engine for anode's storage trait
//!
//! [`SqliteStore`] implements [`anode_store::Store`] on SQLite through `rusqlite` (bundled
//! SQLite): one file, `anode.sqlite`, in the database directory, in WAL mode, and one
//! `WITHOUT ROWID` table `(k BLOB PRIMARY KEY, v BLOB NOT NULL)` per logical table, so rows sit in
//! the primary-key B-tree in memcmp order (SQLite compares BLOBs with memcmp, shorter first).
//!
//! Concurrency: one writer connection behind a mutex, one transaction per batch; readers come
//! from a small pool of connections; a snapshot is a reader connection that holds an open read
//! transaction (which pins its WAL snapshot). Scans fetch pages with `ORDER BY k LIMIT`, so no
//! statement outlives one call.
//!
//! This crate depends on `anode-store` and `rusqlite` only, never on `anode`.

mod options;
mod read;
mod sql;
mod store;

pub use options::SqliteOptions;
pub use read::SqliteSnapshot;
pub use store::SqliteStore;

/// The engine's name in config and in the directory's engine marker.
pub const ENGINE: &str = "sqlite";

/// The database file inside the directory (the engine marker's fingerprint expects it).
pub const DB_FILE: &str = "anode.sqlite";
