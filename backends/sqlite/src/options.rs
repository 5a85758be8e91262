//! SQLite tuning knobs, each with the reason for its default.

use std::time::Duration;

/// How a [`crate::SqliteStore`] opens and tunes its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Page cache of the writer connection, in KiB (default 256 MiB). Batches of the initial
    /// sync touch index pages all over the file; a large cache keeps the upper B-tree levels
    /// and hot leaves in memory between batches (`PRAGMA cache_size = -N`).
    pub writer_cache_kib: u32,
    /// Page cache of each reader connection, in KiB (default 32 MiB). Readers also share the
    /// OS page cache, so each needs less than the writer.
    pub reader_cache_kib: u32,
    /// Reader connections kept open for reuse (default 4). More may be open at once (one per
    /// live snapshot or scan page); past this number they are closed when returned.
    pub max_idle_readers: usize,
    /// Database page size for a new file, in bytes (default 4096, SQLite's own). Index rows are
    /// 20–40 bytes, so larger pages only make each random write dirty more bytes.
    pub page_size: u32,
    /// WAL frames (pages) after which a commit checkpoints the WAL into the database (default
    /// 10 000, i.e. ~40 MiB; SQLite's default is 1000). Fewer checkpoints mean hot pages are
    /// written to the main file once per many batches instead of once per few.
    pub wal_autocheckpoint_pages: u32,
    /// Memory-mapped I/O size in bytes for reads (default 0, off). Mapping saves a copy per
    /// page read, but an I/O error then becomes a SIGBUS instead of an error; off is the safe
    /// default, and the benchmarks note what it would change.
    pub mmap_size: u64,
    /// Pairs fetched per page by scans (default 512): one `SELECT ... LIMIT` per page, so no
    /// statement stays open while the caller consumes rows.
    pub scan_page_size: usize,
    /// How long a connection waits for a lock held by another connection (default 5 s). Only
    /// checkpoints and the WAL reset contend; the store itself has one writer.
    pub busy_timeout: Duration,
    /// Open the database read-only (default false): no directory lock, no marker written, no
    /// writer connection, no table created; readers only, beside a running server if one
    /// has the database (`anode check`).
    pub read_only: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            writer_cache_kib: 256 * 1024,
            reader_cache_kib: 32 * 1024,
            max_idle_readers: 4,
            page_size: 4096,
            wal_autocheckpoint_pages: 10_000,
            mmap_size: 0,
            scan_page_size: 512,
            busy_timeout: Duration::from_secs(5),
            read_only: false,
        }
    }
}
