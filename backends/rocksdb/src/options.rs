//! RocksDB tuning knobs, each with the reason for its default.

/// How a [`crate::RocksStore`] opens and tunes its database.
///
/// The defaults suit an index of tens to hundreds of gigabytes built by one writer.
#[derive(Debug, Clone, PartialEq)]
pub struct RocksOptions {
    /// Block cache shared by every column family, in bytes (default 512 MiB). It holds data
    /// blocks plus index and filter blocks, so point look-ups of cold keys cost one read.
    pub block_cache_bytes: usize,
    /// Memtable size per column family in normal operation, in bytes (default 64 MiB,
    /// RocksDB's own).
    pub write_buffer_bytes: usize,
    /// Memtable size per column family in bulk-load mode (default 256 MiB): fewer, larger L0
    /// files while compaction is off, so the final compaction merges fewer runs.
    pub bulk_write_buffer_bytes: usize,
    /// Memtables of all column families together, in bytes (default 0: no limit beyond each
    /// family's own). When the sum passes it, RocksDB flushes the largest memtable, so the
    /// write buffers fit the operator's memory budget also in bulk-load mode.
    pub total_write_buffer_bytes: usize,
    /// Background flush and compaction threads (default 4).
    pub max_background_jobs: i32,
    /// Bloom filter bits per key (default 10, about 1% false positives). Whole-key filters let
    /// a point look-up of an absent key (most tx hashes, most fresh scripts) skip SST files;
    /// in tables declared with `Table::prefix_len`, prefix filters do the same for prefix scans.
    pub bloom_bits_per_key: f64,
    /// Most SST files kept open (default 1000). RocksDB's own default is unlimited, which meets
    /// the usual 1024 descriptor limit once the index passes ~60 GB of 64 MiB files.
    pub max_open_files: i32,
    /// Compress SST blocks with LZ4 (default false). Index keys and values are mostly hashes
    /// and counters that compress poorly, and block-level prefix delta encoding already shares
    /// key prefixes. Needs a RocksDB built with LZ4 (the system library is; the bundled build
    /// of this crate is not).
    pub lz4_compression: bool,
    /// Write-ahead log kept at most, in bytes (default 1 GiB). RocksDB deletes a WAL file only
    /// once every column family with data in it has flushed; the index writes some tables
    /// (headers, state, undo) much less than others, so their small memtables held on to
    /// every WAL after them: 14 GB of WAL beside a 9 GB index at 41M transactions of a
    /// capped 50M sync. Past this total RocksDB flushes the families that hold the oldest WAL.
    pub max_total_wal_bytes: u64,
    /// Open the database read-only (default false): no directory lock, no marker written, no
    /// column family created, every write refused. A read-only instance beside a running
    /// server sees the database as it was at open (`anode check`).
    pub read_only: bool,
}

impl Default for RocksOptions {
    fn default() -> Self {
        RocksOptions {
            block_cache_bytes: 512 << 20,
            write_buffer_bytes: 64 << 20,
            bulk_write_buffer_bytes: 256 << 20,
            total_write_buffer_bytes: 0,
            max_background_jobs: 4,
            bloom_bits_per_key: 10.0,
            max_open_files: 1000,
            lz4_compression: false,
            max_total_wal_bytes: 1 << 30,
            read_only: false,
        }
    }
}
