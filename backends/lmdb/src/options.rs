//! LMDB tuning knobs, each with the reason for its default.

use std::time::Duration;

/// How an [`crate::LmdbStore`] opens and grows its environment.
///
/// The defaults suit an index of tens to hundreds of gigabytes on a 64-bit machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmdbOptions {
    /// Size of the memory map at open, in bytes (default 1 GiB). It is address space, not disk:
    /// on Linux the data file grows only as pages are written. An existing environment keeps its
    /// larger recorded size. The map grows from here by itself (see `map_growth`).
    pub initial_map_size: usize,
    /// Bytes added to the map each time it grows (default 1 GiB). Growing needs every
    /// transaction of this process closed for a moment, so large steps keep resizes rare.
    pub map_growth: usize,
    /// Most named databases (tables) the environment can hold (default 128). LMDB scans this
    /// table linearly on open, so it is not set far beyond need.
    pub max_dbs: u32,
    /// Reader slots in the lock file, i.e. read transactions open at once (default 256; LMDB's
    /// own default is 126). Every snapshot and every store-level read holds one briefly.
    pub max_readers: u32,
    /// Pairs fetched per page by scans (default 512). A store-level scan opens one short read
    /// transaction per page so that it never pins old pages (which would grow the file).
    pub scan_page_size: usize,
    /// Sets `MDB_NORDAHEAD` (default true): index reads are point look-ups and short prefix
    /// scans spread over the whole file, so OS read-ahead mostly evicts useful pages.
    pub no_read_ahead: bool,
    /// How long a write that must grow the map waits for open read transactions (snapshots) to
    /// close before it fails (default 30 s). A thread that holds a snapshot while it writes
    /// would wait for itself; the wait is bounded so that such a bug is an error, not a hang.
    pub resize_wait: Duration,
    /// Open the environment read-only (default false, `MDB_RDONLY`): no directory lock, no
    /// marker written, no table created, every write refused. Readers of another process
    /// share the running server's lock file as LMDB intends, so this works beside it
    /// (`anode check`).
    pub read_only: bool,
}

impl Default for LmdbOptions {
    fn default() -> Self {
        LmdbOptions {
            initial_map_size: 1 << 30,
            map_growth: 1 << 30,
            max_dbs: 128,
            max_readers: 256,
            scan_page_size: 512,
            no_read_ahead: true,
            resize_wait: Duration::from_secs(30),
            read_only: false,
        }
    }
}
