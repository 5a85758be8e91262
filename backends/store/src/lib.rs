//! # anode-store: the storage contract
//!
//! anode keeps its whole index in an ordered key-value engine with named tables. This crate
//! defines that engine's contract and nothing else:
//!
//! * [`Store`] and [`ReadView`]: a small, synchronous, object-safe trait pair. The server holds an
//!   `Arc<dyn Store>`; query code takes `&dyn ReadView` and never knows whether it reads the live
//!   store or a [`Store::snapshot`].
//! * [`WriteBatch`]: writes as plain data (put, delete, delete-range across tables), committed
//!   atomically with an explicit [`Durability`].
//! * [`Error`]: one error type; engine errors are boxed inside [`Error::Backend`], and every
//!   error has an [`ErrorKind`] (no space, other I/O, corruption, other) that the server acts
//!   on without knowing the engine.
//! * [`MemoryStore`]: the in-memory reference engine, the oracle for differential tests.
//! * `contract` (feature `contract`): the test suite every backend passes, expanded into
//!   `#[test]`s per backend by [`store_contract_tests!`].
//! * `fault` (feature `fault-injection`): a wrapper around any store that fails chosen write
//!   batches with a full disk or an I/O error, for the server's fault tests.
//! * [`disk`]: the free space of a database's filesystem.
//!
//! Invariants every backend upholds (checked by the contract suite):
//! * keys are ordered bytewise (memcmp), shorter-prefix first; keys are 1..=[`MAX_KEY_LEN`] bytes;
//! * a committed batch is visible entirely or not at all, also after a crash at any instant;
//! * a snapshot sees one state while writers commit;
//! * opening a path that is not a usable database directory is an error, never a panic.
//!
//! This crate depends on no engine crate and no server crate: only `thiserror` and `libc` (for
//! statvfs), plus `tempfile` and `rand` for the optional contract suite. Keep it so:
//! `tests/docs_check/promises.rs` checks it with `cargo metadata`.

mod batch;
pub mod disk;
mod error;
pub mod marker;
mod memory;
pub mod paged;
mod range;
mod store;

#[cfg(feature = "contract")]
pub mod contract;
#[cfg(feature = "fault-injection")]
pub mod fault;

pub use batch::{Durability, Op, WriteBatch};
pub use error::{Error, ErrorKind, Result};
pub use memory::MemoryStore;
pub use range::{end_prefix, Direction, KeyRange};
pub use store::{table_known, KvIter, ReadView, Store, StoreStats, Table, TableStats};

/// The longest key a backend must accept. LMDB's default build caps keys at 511 bytes; the
/// contract holds every engine to the smallest limit so that a database can move between engines.
pub const MAX_KEY_LEN: usize = 511;
