use std::path::Path;

use crate::{Durability, KeyRange, Result, WriteBatch};

/// A table's declaration, passed to an engine when the store is opened.
///
/// The hints let an engine tune per table without knowing the schema; engines are free to ignore
/// them, and the contract never depends on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// The table's name: a column family, named database or SQL table.
    pub name: &'static str,
    /// Length of the key prefix that scans of this table share (e.g. an 11-byte hashX), if any.
    /// RocksDB uses it for a prefix extractor and prefix bloom filters.
    pub prefix_len: Option<usize>,
}

impl Table {
    /// A table with no tuning hint.
    pub const fn new(name: &'static str) -> Self {
        Table {
            name,
            prefix_len: None,
        }
    }

    /// A table whose scans share a prefix of `len` bytes.
    pub const fn with_prefix(name: &'static str, len: usize) -> Self {
        Table {
            name,
            prefix_len: Some(len),
        }
    }
}

/// An iterator over `(key, value)` pairs in key order (or reverse order).
pub type KvIter<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + 'a>;

/// Reading: implemented by every store (reads of the latest committed state) and by its
/// snapshots (reads of one fixed state). Query code takes `&dyn ReadView`.
pub trait ReadView {
    /// The value of `key` in `table`, if present.
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// The values of several keys of one table, in the order asked.
    fn multi_get(&self, table: &str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.get(table, k)).collect()
    }

    /// Pairs of `table` whose keys lie in `range`, in `direction` order.
    ///
    /// On a store (not a snapshot), a long scan may observe commits made while it runs; take a
    /// [`Store::snapshot`] when the scan must see one state.
    fn scan(&self, table: &str, range: KeyRange, direction: crate::Direction)
        -> Result<KvIter<'_>>;

    /// Pairs of `table` whose keys start with `prefix`.
    fn scan_prefix(
        &self,
        table: &str,
        prefix: &[u8],
        direction: crate::Direction,
    ) -> Result<KvIter<'_>> {
        self.scan(table, KeyRange::prefix(prefix), direction)
    }

    /// The last pair of `table` in `range`, if any (e.g. the highest height stored).
    fn last_in(&self, table: &str, range: KeyRange) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.scan(table, range, crate::Direction::Reverse)?
            .next()
            .transpose()
    }
}

/// Size figures of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableStats {
    /// table name
    pub name: String,
    /// number of rows (an engine estimate when `rows_exact` is false)
    pub rows: u64,
    /// whether `rows` is an exact count
    pub rows_exact: bool,
}

/// What a store reports about itself, for logs, metrics and the benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// engine name
    pub engine: &'static str,
    /// bytes the database occupies on disk (0 for the memory engine)
    pub disk_bytes: u64,
    /// one entry per table, in declaration order
    pub tables: Vec<TableStats>,
    /// engine-specific counters (name, value), e.g. RocksDB's pending compaction bytes
    pub engine_counters: Vec<(String, u64)>,
}

/// An ordered key-value store with named tables and atomic multi-table batches.
///
/// Calls block: async code runs them on a blocking thread. Implementations are `Send + Sync`
/// and safe to share between threads behind an `Arc<dyn Store>`.
pub trait Store: ReadView + Send + Sync {
    /// The engine's name as used in config (`rocksdb`, `lmdb`, `sqlite`, `memory`).
    fn engine(&self) -> &'static str;

    /// The tables declared at open, in order.
    fn tables(&self) -> &[Table];

    /// A read view of the current committed state that stays unchanged while writers commit.
    /// Keep it for one query or one flush: long-lived snapshots pin old data (and grow an LMDB
    /// file).
    fn snapshot(&self) -> Result<Box<dyn ReadView + '_>>;

    /// Commits `batch` atomically across tables. The batch is validated first
    /// ([`WriteBatch::validate`]); a refused batch leaves the store untouched.
    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<()>;

    /// Makes every commit so far durable (the sync point after [`Durability::Bulk`] commits).
    fn sync(&self) -> Result<()>;

    /// Switches the engine's bulk-load tuning on (initial sync) or off (at the tip). Turning it
    /// off may run deferred work such as a full compaction. The default does nothing.
    fn set_bulk_load(&self, _on: bool) -> Result<()> {
        Ok(())
    }

    /// Compacts the whole database where the engine supports it. The default does nothing.
    fn compact(&self) -> Result<()> {
        Ok(())
    }

    /// Size and row counts.
    fn stats(&self) -> Result<StoreStats>;

    /// The directory the store lives in, if it has one.
    fn path(&self) -> Option<&Path>;
}

/// Whether `name` is one of `tables`.
pub fn table_known(tables: &[Table], name: &str) -> bool {
    tables.iter().any(|t| t.name == name)
}
