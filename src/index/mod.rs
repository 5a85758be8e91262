//! The index: its schema (the tables and their key layouts), the database identity that
//! makes a store refuse to be used for another coin, network or schema, the block processor
//! that fills it, and the reads the protocol serves from it.

pub mod chain;
pub mod disk_full;
pub mod error;
pub mod keys;
pub mod lookup;
pub mod mempool;
pub mod merkle;
pub mod meta;
pub mod progress;
pub mod reader;
pub mod schema;
pub mod sync;
pub mod touched;
pub mod undo;
pub mod writer;

pub use chain::{ChainView, IndexState, SharedChain};
pub use error::{IndexError, IndexResult};
pub use mempool::{Mempool, MempoolError};
pub use meta::{open_index_store, DbIdentity, MetaError, SCHEMA_VERSION};
pub use progress::Progress;
pub use reader::IndexQuery;
pub use sync::{CatchUp, Indexer, SyncError, SyncOptions};
pub use touched::Touched;
pub use writer::{IndexWriter, WriterOptions};
