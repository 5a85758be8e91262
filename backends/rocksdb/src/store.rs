//! The RocksDB store: column families, batches, durability, bulk-load mode and snapshots.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anode_store::{
    marker, table_known, Direction, Durability, Error, ErrorKind, KeyRange, KvIter, Op, ReadView,
    Result, Store, StoreStats, Table, TableStats, WriteBatch,
};
use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor,
    DBCompressionType, FlushOptions, Options, SliceTransform, SnapshotWithThreadMode, WriteOptions,
    DB,
};

use crate::iter::{scan_options, RocksIter};
use crate::{RocksOptions, ENGINE};

pub(crate) fn rocks_err(e: rocksdb::Error) -> Error {
    Error::backend_of_kind(ENGINE, error_kind(e.kind(), e.as_ref()), e)
}

/// An error of opening the database in `path`. RocksDB names the damaged file in most of its
/// corruption messages (an SST, the MANIFEST) but not in all (a CURRENT file naming no
/// manifest), so the directory is added where no path of it appears.
fn damaged(path: &Path, e: rocksdb::Error) -> Error {
    let text = AsRef::<str>::as_ref(&e).to_string();
    let kind = error_kind(e.kind(), &text);
    if text.contains(&*path.to_string_lossy()) {
        return Error::backend_of_kind(ENGINE, kind, e);
    }
    Error::backend_of_kind(
        ENGINE,
        kind,
        format!("{text} (database {})", path.display()),
    )
}

/// The refusal of a write to a store opened read-only.
fn read_only_err() -> Error {
    Error::backend(ENGINE, "the database was opened read-only")
}

/// The kind of a RocksDB error. RocksDB's C API passes a status on as text only: a full disk is
/// an "IO error" whose text carries the OS's "No space left on device" (also when it comes back
/// later as the background error that stops every write), or "Space limit reached" when an
/// SstFileManager caps the size.
fn error_kind(kind: rocksdb::ErrorKind, text: &str) -> ErrorKind {
    const FULL_DISK: [&str; 3] = [
        "No space left on device",
        "Space limit reached",
        "Disk quota exceeded",
    ];
    match kind {
        rocksdb::ErrorKind::IOError if FULL_DISK.iter().any(|full| text.contains(full)) => {
            ErrorKind::NoSpace
        }
        rocksdb::ErrorKind::IOError => ErrorKind::Io,
        rocksdb::ErrorKind::Corruption => ErrorKind::Corrupt,
        _ => ErrorKind::Other,
    }
}

/// Column-family options changed by bulk-load mode, as (name, bulk value, normal value).
///
/// Compaction stays on while loading. Turning it off (the classic bulk-load recipe) lets L0
/// files pile up, and the initial sync is not write-only: every spend of an output flushed
/// earlier is a read, which must then look into every L0 file. On a 20M-transaction chain
/// that took the sync from 100k to 10k tx/s by 9.5M transactions, with 3.3 GB of RSS at
/// `cache_mb` 1000 (the L0 files' index and filter blocks stay pinned). Bulk mode only
/// raises the write-stall triggers, so that a burst of flushes slows the writer later
/// rather than stopping it, and uses larger memtables.
fn bulk_settings(options: &RocksOptions) -> Vec<(&'static str, String, String)> {
    vec![
        ("level0_slowdown_writes_trigger", "40".into(), "20".into()),
        ("level0_stop_writes_trigger", "80".into(), "36".into()),
        (
            "soft_pending_compaction_bytes_limit",
            "0".into(),
            (64u64 << 30).to_string(),
        ),
        (
            "hard_pending_compaction_bytes_limit",
            "0".into(),
            (256u64 << 30).to_string(),
        ),
        (
            "write_buffer_size",
            options.bulk_write_buffer_bytes.to_string(),
            options.write_buffer_bytes.to_string(),
        ),
    ]
}

/// An [`anode_store::Store`] on RocksDB, one column family per table.
///
/// * Writes: one `WriteBatch` per batch, always through the WAL, so a process crash never
///   loses an acknowledged batch. `Durability::Sync` writes with `sync = true` (the WAL is
///   fsynced); `Durability::Bulk` leaves the WAL in OS buffers until [`Store::sync`]
///   (`FlushWAL(sync)`).
/// * Bulk-load mode ([`Store::set_bulk_load`]): larger memtables and looser write-stall
///   triggers (compaction stays on: see `bulk_settings`); turning it off restores both and
///   compacts every column family.
/// * Reads: a store-level scan is one iterator (with its implicit snapshot); a snapshot is a
///   RocksDB snapshot, consistent across column families.
pub struct RocksStore {
    db: DB,
    tables: Vec<Table>,
    /// Held while the store is open (`marker::lock_dir`), unless it is read-only; dropped
    /// after the engine's handles.
    _lock: Option<marker::DirLock>,
    path: PathBuf,
    options: RocksOptions,
    bulk: Mutex<bool>,
    // Kept alive for the database's lifetime (the column families share it).
    _cache: Cache,
}

impl RocksStore {
    /// Opens (creating if absent) the RocksDB store in directory `path` with `tables`.
    pub fn open(path: &Path, tables: &[Table], options: RocksOptions) -> Result<RocksStore> {
        let lock = marker::claim_dir(path, ENGINE, options.read_only)?;
        let cache = Cache::new_lru_cache(options.block_cache_bytes).map_err(rocks_err)?;

        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(options.max_background_jobs);
        if options.total_write_buffer_bytes > 0 {
            db_opts.set_db_write_buffer_size(options.total_write_buffer_bytes);
        }
        db_opts.set_max_open_files(options.max_open_files);
        // Write back SST and WAL data in 1 MiB steps instead of in bursts at fsync time.
        db_opts.set_bytes_per_sync(1 << 20);
        db_opts.set_wal_bytes_per_sync(1 << 20);
        db_opts.set_keep_log_file_num(5);
        db_opts.set_max_total_wal_size(options.max_total_wal_bytes);
        // RocksDB's own info log (the `LOG` file) lives in the database directory, so a full
        // disk fails its writes too, and the next line RocksDB logs after a failed one trips an
        // assertion (`sync_without_flush_called_` in WritableFileWriter) that aborts the whole
        // process in builds with assertions on, Debian's librocksdb among them. Only the
        // header at open and fatal errors are logged; anode's logs and metrics say the rest.
        db_opts.set_log_level(rocksdb::LogLevel::Fatal);
        // RocksDB's default, stated because anode relies on it: at open every SST file's size
        // is checked against the MANIFEST (a truncated file is refused), and a block whose
        // checksum fails makes the read an error instead of data.
        db_opts.set_paranoid_checks(true);
        if options.read_only {
            // Every SST is opened (and kept open) at once: a compaction of the running server
            // may delete files this instance still reads, which stay readable once open.
            db_opts.set_max_open_files(-1);
        }

        let mut families: Vec<ColumnFamilyDescriptor> = tables
            .iter()
            .map(|t| ColumnFamilyDescriptor::new(t.name, cf_options(t, &options, &cache)))
            .collect();
        let mut missing: Vec<&'static str> = tables.iter().map(|t| t.name).collect();
        if path.join("CURRENT").exists() {
            let existing = DB::list_cf(&db_opts, path).map_err(|e| damaged(path, e))?;
            missing.retain(|name| !existing.iter().any(|e| e == name));
            // Column families of tables no longer declared must still be opened.
            for name in existing {
                if !table_known(tables, &name) && name != rocksdb::DEFAULT_COLUMN_FAMILY_NAME {
                    families.push(ColumnFamilyDescriptor::new(name, Options::default()));
                }
            }
        }
        // A database that has some of the declared tables but not others has lost them;
        // creating them empty would hide the loss. Only a database with none (new) gets them.
        if !missing.is_empty() && (missing.len() < tables.len() || options.read_only) {
            return Err(marker::missing_tables(
                ENGINE,
                &path.join("CURRENT"),
                "column family",
                &missing,
            ));
        }
        let db = if options.read_only {
            DB::open_cf_descriptors_read_only(&db_opts, path, families, false)
        } else {
            DB::open_cf_descriptors(&db_opts, path, families)
        }
        .map_err(|e| damaged(path, e))?;
        Ok(RocksStore {
            _lock: lock,
            db,
            tables: tables.to_vec(),
            path: path.to_path_buf(),
            options,
            bulk: Mutex::new(false),
            _cache: cache,
        })
    }

    /// Starts flushing the memtables once together they pass the write-buffer budget.
    ///
    /// RocksDB's own budget (`db_write_buffer_size`) switches one column family's memtable per
    /// write. The index writes a flush as one batch of millions of rows across all its
    /// tables, so every other family kept growing to its own `write_buffer_size`: on a
    /// 20M-transaction chain the process gained 250 MB per flush, to 4.9 GB at `cache_mb`
    /// 1000. Flushing every large memtable right after such a batch (in the background: the
    /// write has already returned) frees them before the next one arrives.
    fn release_memtables(&self) -> Result<()> {
        let budget = self.options.total_write_buffer_bytes as u64;
        if budget == 0 {
            return Ok(());
        }
        let mut sizes = Vec::with_capacity(self.tables.len());
        for table in &self.tables {
            let cf = self.cf(table.name)?;
            let size = self.int_property(cf, "rocksdb.cur-size-active-mem-table")?;
            sizes.push((cf, size));
        }
        if sizes.iter().map(|(_, size)| size).sum::<u64>() <= budget {
            return Ok(());
        }
        // Small tables (headers, counts) would only add tiny L0 files; they wait until they
        // hold a fair share of the budget.
        let fair_share = budget / (2 * self.tables.len().max(1) as u64);
        let mut flush = FlushOptions::default();
        flush.set_wait(false);
        for (cf, size) in sizes {
            if size > fair_share {
                self.db.flush_cf_opt(cf, &flush).map_err(rocks_err)?;
            }
        }
        Ok(())
    }

    /// An integer property of a column family (0 when RocksDB does not report it).
    fn int_property(&self, cf: &ColumnFamily, name: &str) -> Result<u64> {
        Ok(self
            .db
            .property_int_value_cf(cf, name)
            .map_err(rocks_err)?
            .unwrap_or(0))
    }

    fn cf(&self, table: &str) -> Result<&ColumnFamily> {
        if !table_known(&self.tables, table) {
            return Err(Error::UnknownTable(table.to_string()));
        }
        self.db
            .cf_handle(table)
            .ok_or_else(|| Error::UnknownTable(table.to_string()))
    }

    fn prefix_len(&self, table: &str) -> Option<usize> {
        self.tables
            .iter()
            .find(|t| t.name == table)
            .and_then(|t| t.prefix_len)
    }
}

/// Options of one column family.
fn cf_options(table: &Table, options: &RocksOptions, cache: &Cache) -> Options {
    let mut block = BlockBasedOptions::default();
    block.set_block_cache(cache);
    block.set_bloom_filter(options.bloom_bits_per_key, false);
    // Index and filter blocks compete with data in the cache (bounded memory). They are
    // partitioned: an SST's filter is otherwise one block of megabytes, and once a big index's
    // filters outgrow the cache every look-up reads and checks whole filters again (profiled at
    // 11M transactions: most of the sync's time, at 2k tx/s). With partitions a look-up loads a
    // 4 KiB piece; only the small top-level index of each SST and the L0 partitions stay pinned.
    block.set_cache_index_and_filter_blocks(true);
    block.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
    block.set_partition_filters(true);
    block.set_metadata_block_size(4096);
    block.set_pin_top_level_index_and_filter(true);
    block.set_pin_l0_filter_and_index_blocks_in_cache(true);
    block.set_format_version(5);

    let mut cf = Options::default();
    cf.set_block_based_table_factory(&block);
    cf.set_write_buffer_size(options.write_buffer_bytes);
    // Level sizes follow the data, so space amplification stays near 1.1 as the index grows.
    cf.set_level_compaction_dynamic_level_bytes(true);
    cf.set_compression_type(if options.lz4_compression {
        DBCompressionType::Lz4
    } else {
        DBCompressionType::None
    });
    if let Some(len) = table.prefix_len {
        // Scans of this table share a `len`-byte prefix (a hashX): prefix bloom filters in
        // SSTs and memtables let a scan of an absent prefix skip files without reading them.
        cf.set_prefix_extractor(SliceTransform::create_fixed_prefix(len));
        cf.set_memtable_prefix_bloom_ratio(0.1);
    }
    cf
}

impl ReadView for RocksStore {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let cf = self.cf(table)?;
        self.db.get_cf(cf, key).map_err(rocks_err)
    }

    fn multi_get(&self, table: &str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let cf = self.cf(table)?;
        self.db
            .batched_multi_get_cf(cf, keys.iter(), false)
            .into_iter()
            .map(|r| r.map(|v| v.map(|s| s.to_vec())).map_err(rocks_err))
            .collect()
    }

    fn scan(&self, table: &str, range: KeyRange, direction: Direction) -> Result<KvIter<'_>> {
        let cf = self.cf(table)?;
        if range.is_empty() {
            return Ok(Box::new(std::iter::empty()));
        }
        let opts = scan_options(&range, direction, self.prefix_len(table));
        Ok(Box::new(RocksIter::new(
            self.db.raw_iterator_cf_opt(cf, opts),
            direction,
        )))
    }
}

/// A RocksDB snapshot: one sequence number, consistent across column families.
pub struct RocksSnapshot<'s> {
    snapshot: SnapshotWithThreadMode<'s, DB>,
    store: &'s RocksStore,
}

impl ReadView for RocksSnapshot<'_> {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let cf = self.store.cf(table)?;
        self.snapshot.get_cf(cf, key).map_err(rocks_err)
    }

    fn scan(&self, table: &str, range: KeyRange, direction: Direction) -> Result<KvIter<'_>> {
        let cf = self.store.cf(table)?;
        if range.is_empty() {
            return Ok(Box::new(std::iter::empty()));
        }
        let opts = scan_options(&range, direction, self.store.prefix_len(table));
        Ok(Box::new(RocksIter::new(
            self.snapshot.raw_iterator_cf_opt(cf, opts),
            direction,
        )))
    }
}

impl Store for RocksStore {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn tables(&self) -> &[Table] {
        &self.tables
    }

    fn snapshot(&self) -> Result<Box<dyn ReadView + '_>> {
        Ok(Box::new(RocksSnapshot {
            snapshot: self.db.snapshot(),
            store: self,
        }))
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<()> {
        if self.options.read_only {
            return Err(read_only_err());
        }
        batch.validate(|t| table_known(&self.tables, t))?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for op in batch.ops() {
            let cf = self.cf(op.table())?;
            match op {
                Op::Put { key, value, .. } => rocks_batch.put_cf(cf, key, value),
                Op::Delete { key, .. } => rocks_batch.delete_cf(cf, key),
                // RocksDB refuses an empty or reversed range; the contract makes it a no-op.
                Op::DeleteRange { start, end, .. } if start < end => {
                    rocks_batch.delete_range_cf(cf, start, end)
                }
                Op::DeleteRange { .. } => {}
            }
        }
        // RocksDB inserts its own copy; ours would only add a batch's worth to the peak.
        drop(batch);
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(durability == Durability::Sync);
        self.db
            .write_opt(rocks_batch, &write_opts)
            .map_err(rocks_err)?;
        if let Err(e) = self.release_memtables() {
            // The batch is committed, so this write must not report a failure: the caller
            // would keep the batch as unwritten. RocksDB flushes the memtables on its own
            // later, and an error that persists (a full disk) fails the next write.
            tracing::warn!(error = %e, "rocksdb: could not start flushing the memtables");
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        if self.options.read_only {
            return Ok(());
        }
        self.db.flush_wal(true).map_err(rocks_err)
    }

    fn set_bulk_load(&self, on: bool) -> Result<()> {
        if self.options.read_only {
            return Err(read_only_err());
        }
        let mut bulk = self.bulk.lock().unwrap_or_else(|p| p.into_inner());
        if *bulk == on {
            return Ok(());
        }
        let settings = bulk_settings(&self.options);
        let pairs: Vec<(&str, &str)> = settings
            .iter()
            .map(|(name, bulk_value, normal_value)| {
                (
                    *name,
                    if on {
                        bulk_value.as_str()
                    } else {
                        normal_value.as_str()
                    },
                )
            })
            .collect();
        for table in &self.tables {
            self.db
                .set_options_cf(self.cf(table.name)?, &pairs)
                .map_err(rocks_err)?;
        }
        *bulk = on;
        drop(bulk);
        if !on {
            // Leave the index fully compacted at the end of the initial sync.
            self.compact()?;
        }
        Ok(())
    }

    fn compact(&self) -> Result<()> {
        if self.options.read_only {
            return Err(read_only_err());
        }
        for table in &self.tables {
            self.db
                .compact_range_cf(self.cf(table.name)?, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    fn stats(&self) -> Result<StoreStats> {
        let mut tables = Vec::with_capacity(self.tables.len());
        let mut counters: Vec<(String, u64)> = Vec::new();
        // Summed over the column families; the memory ones say where RocksDB's share of
        // `cache_mb` goes (memtables, table readers outside the block cache).
        let props = [
            "rocksdb.estimate-pending-compaction-bytes",
            "rocksdb.num-files-at-level0",
            "rocksdb.total-sst-files-size",
            "rocksdb.cur-size-all-mem-tables",
            "rocksdb.size-all-mem-tables",
            "rocksdb.estimate-table-readers-mem",
        ];
        let mut sums = [0u64; 6];
        for table in &self.tables {
            let cf = self.cf(table.name)?;
            let rows = self.int_property(cf, "rocksdb.estimate-num-keys")?;
            tables.push(TableStats {
                name: table.name.to_string(),
                rows,
                rows_exact: false,
            });
            for (sum, prop) in sums.iter_mut().zip(props) {
                *sum += self.int_property(cf, prop)?;
            }
        }
        for (prop, sum) in props.iter().zip(sums) {
            counters.push((prop.trim_start_matches("rocksdb.").to_string(), sum));
        }
        // The block cache is shared by the tables' families (not the default family, which
        // has its own): one value for the whole database, read through any of them.
        if let Some(table) = self.tables.first() {
            let cf = self.cf(table.name)?;
            for prop in [
                "rocksdb.block-cache-usage",
                "rocksdb.block-cache-pinned-usage",
            ] {
                let value = self.int_property(cf, prop)?;
                counters.push((prop.trim_start_matches("rocksdb.").to_string(), value));
            }
        }
        Ok(StoreStats {
            engine: ENGINE,
            disk_bytes: marker::disk_usage(&self.path)?,
            tables,
            engine_counters: counters,
        })
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_from_other_io_errors_and_corruption() {
        // The texts RocksDB 7.x's Status::ToString produces.
        let cases = [
            (
                rocksdb::ErrorKind::IOError,
                "IO error: No space left on device: While appending to file: \
                 /db/000012.log: No space left on device",
                ErrorKind::NoSpace,
            ),
            (
                rocksdb::ErrorKind::IOError,
                "IO error: No space left on device: Space limit reached",
                ErrorKind::NoSpace,
            ),
            (
                rocksdb::ErrorKind::IOError,
                "IO error: While fsync: a file descriptor: Input/output error",
                ErrorKind::Io,
            ),
            (
                rocksdb::ErrorKind::Corruption,
                "Corruption: block checksum mismatch",
                ErrorKind::Corrupt,
            ),
            (
                rocksdb::ErrorKind::InvalidArgument,
                "Invalid argument: Column family not found",
                ErrorKind::Other,
            ),
        ];
        for (kind, text, expected) in cases {
            assert_eq!(error_kind(kind, text), expected, "{text}");
        }
    }
}
