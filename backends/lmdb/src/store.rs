//! The LMDB store: environment, tables, batches and map growth.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::Instant;

use anode_store::{
    disk, marker, table_known, Durability, Error, ErrorKind, Op, Result, Store, StoreStats, Table,
    TableStats, WriteBatch,
};
use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions, FlagSetMode, MdbError, PutFlags, WithoutTls};

use crate::snapshot::LmdbSnapshot;
use crate::{LmdbOptions, ENGINE};

/// One table: a named database of raw bytes.
pub(crate) type Db = Database<Bytes, Bytes>;

/// Map sizes are rounded up to this (a multiple of every OS page size LMDB runs on).
const MAP_ALIGN: usize = 1 << 20;

/// An [`anode_store::Store`] on LMDB: one environment (`data.mdb`) in the database directory,
/// one named database per table.
///
/// * Writes: one write transaction per batch. `Durability::Sync` commits with LMDB's ordered
///   fsyncs (data pages, then the meta page); `Durability::Bulk` commits with `MDB_NOSYNC` and
///   [`Store::sync`] flushes with `mdb_env_sync`.
/// * Reads: short read transactions only; scans fetch pages of
///   [`LmdbOptions::scan_page_size`] pairs, each in its own transaction, and a snapshot is one
///   read transaction.
/// * The map grows by itself: ahead of a batch that would come close to its end, and again
///   whenever LMDB still reports `MDB_MAP_FULL` (the batch is aborted and retried).
pub struct LmdbStore {
    // `dbs` and the gate are declared before `env`: LMDB handles must not outlive it.
    pub(crate) dbs: Vec<Db>,
    /// Held shared by every transaction of this process and exclusively by a resize, since
    /// `mdb_env_set_mapsize` requires that no transaction is open.
    gate: RwLock<()>,
    /// Set while a resize waits for the gate, so that new readers hold back and let it in.
    resize_pending: AtomicBool,
    /// Batches retried after `MDB_MAP_FULL` (an engine counter).
    map_full_retries: AtomicU64,
    /// Serializes writers (LMDB would too) and remembers whether `MDB_NOSYNC` is set.
    writer: Mutex<bool>,
    pub(crate) env: Env<WithoutTls>,
    tables: Vec<Table>,
    /// Held while the store is open (`marker::lock_dir`), unless it is read-only; dropped
    /// after the engine's handles.
    _lock: Option<marker::DirLock>,
    path: PathBuf,
    pub(crate) options: LmdbOptions,
}

pub(crate) fn lmdb_err(e: heed::Error) -> Error {
    let kind = lmdb_err_kind(&e);
    Error::backend_of_kind(ENGINE, kind, e)
}

fn lmdb_err_kind(e: &heed::Error) -> ErrorKind {
    match e {
        heed::Error::Io(io) => ErrorKind::of_io(io),
        heed::Error::Mdb(
            MdbError::Corrupted
            | MdbError::PageNotFound
            | MdbError::Invalid
            | MdbError::VersionMismatch,
        ) => ErrorKind::Corrupt,
        // A failed meta-page write or an earlier fatal error: the environment refuses every
        // transaction from now on, as a failed disk would.
        heed::Error::Mdb(MdbError::Panic) => ErrorKind::Io,
        _ => ErrorKind::Other,
    }
}

/// An error of opening the environment whose data file is `file`, which LMDB does not name.
fn damaged(file: &Path, e: heed::Error) -> Error {
    let kind = lmdb_err_kind(&e);
    Error::backend_of_kind(ENGINE, kind, format!("{}: {e}", file.display()))
}

/// Refuses a data file shorter than the pages its last committed transaction uses: the file
/// was cut (a copy that stopped short, a full disk during a copy, a truncation by hand).
/// LMDB itself would map the missing pages and die of SIGBUS on the first read of one.
fn check_length(env: &Env<WithoutTls>, file: &Path) -> Result<()> {
    let info = env.info();
    let page_size = env.stat().page_size as u64;
    let used = (info.last_page_number as u64 + 1).saturating_mul(page_size);
    let length = std::fs::metadata(file)
        .map_err(|e| Error::io(file, e))?
        .len();
    if length < used {
        return Err(Error::backend_of_kind(
            ENGINE,
            ErrorKind::Corrupt,
            format!(
                "{} is truncated: it holds {length} bytes, but its last committed \
                 transaction uses {used} ({} pages of {page_size} bytes)",
                file.display(),
                info.last_page_number + 1
            ),
        ));
    }
    Ok(())
}

/// The refusal of a write to a store opened read-only.
fn read_only_err() -> Error {
    Error::backend(ENGINE, "the database was opened read-only")
}

pub(crate) fn round_up(n: usize) -> usize {
    n.div_ceil(MAP_ALIGN).saturating_mul(MAP_ALIGN)
}

/// Why one attempt at a batch failed.
enum Attempt {
    MapFull,
    /// LMDB's error, classified by [`LmdbStore::write_error`], which knows what the write needed.
    Engine(heed::Error),
    Failed(Error),
}

impl From<heed::Error> for Attempt {
    fn from(e: heed::Error) -> Self {
        match e {
            heed::Error::Mdb(MdbError::MapFull) => Attempt::MapFull,
            e => Attempt::Engine(e),
        }
    }
}

impl LmdbStore {
    /// Opens (creating if absent) the LMDB store in directory `path` with `tables`.
    pub fn open(path: &Path, tables: &[Table], options: LmdbOptions) -> Result<LmdbStore> {
        let lock = marker::claim_dir(path, ENGINE, options.read_only)?;
        if tables.len() > options.max_dbs as usize {
            return Err(Error::Open {
                path: path.to_path_buf(),
                reason: format!(
                    "{} tables declared but LmdbOptions::max_dbs is {}",
                    tables.len(),
                    options.max_dbs
                ),
            });
        }
        let mut open_options = EnvOpenOptions::new().read_txn_without_tls();
        open_options
            .map_size(round_up(options.initial_map_size.max(MAP_ALIGN)))
            .max_dbs(options.max_dbs)
            .max_readers(options.max_readers);
        if options.no_read_ahead {
            // SAFETY: MDB_NORDAHEAD only changes the madvise hint of the map; it affects neither
            // memory safety nor durability.
            unsafe { open_options.flags(EnvFlags::NO_READ_AHEAD) };
        }
        if options.read_only {
            // SAFETY: MDB_RDONLY only makes this environment refuse write transactions.
            unsafe { open_options.flags(EnvFlags::READ_ONLY) };
        }
        // SAFETY: heed's rules for opening an environment are upheld: (1) the directory holds
        // our engine marker, so no other program's file is mapped; (2) this store is the only
        // user of the environment in this process (heed refuses a second open of one path) and
        // other processes coordinate through LMDB's lock file, which we never touch; (3) the
        // environment is local (a database directory, not a network share, is documented in
        // docs/backends.md); (4) every transaction is short and bound to `self`'s lifetime,
        // and the map is resized only with no transaction open (see `gate`).
        let data_file = path.join("data.mdb");
        let env = unsafe { open_options.open(path) }.map_err(|e| damaged(&data_file, e))?;
        // Before any page is read through the map: a page past the end of a truncated file
        // would be a SIGBUS, not an error.
        check_length(&env, &data_file)?;
        if !options.read_only {
            // Reader slots of a killed process stay in the lock file until cleared.
            env.clear_stale_readers().map_err(lmdb_err)?;
        }

        let mut missing = Vec::new();
        let dbs = if options.read_only {
            let rtxn = env.read_txn().map_err(|e| damaged(&data_file, e))?;
            let mut dbs = Vec::with_capacity(tables.len());
            for t in tables {
                match env
                    .open_database::<Bytes, Bytes>(&rtxn, Some(t.name))
                    .map_err(|e| damaged(&data_file, e))?
                {
                    Some(db) => dbs.push(db),
                    None => missing.push(t.name),
                }
            }
            if !missing.is_empty() {
                return Err(marker::missing_tables(
                    ENGINE, &data_file, "table", &missing,
                ));
            }
            // Handles opened in a read transaction outlive it only once it commits.
            rtxn.commit().map_err(lmdb_err)?;
            dbs
        } else {
            let mut wtxn = env.write_txn().map_err(|e| damaged(&data_file, e))?;
            for t in tables {
                let existing = env
                    .open_database::<Bytes, Bytes>(&wtxn, Some(t.name))
                    .map_err(|e| damaged(&data_file, e))?;
                if existing.is_none() {
                    missing.push(t.name);
                }
            }
            // Some tables but not all: the others were lost, and creating them empty would
            // hide it. Only a new environment (none of them) gets them, in one transaction.
            if !missing.is_empty() && missing.len() < tables.len() {
                return Err(marker::missing_tables(
                    ENGINE, &data_file, "table", &missing,
                ));
            }
            let mut dbs = Vec::with_capacity(tables.len());
            for t in tables {
                dbs.push(
                    env.create_database::<Bytes, Bytes>(&mut wtxn, Some(t.name))
                        .map_err(|e| damaged(&data_file, e))?,
                );
            }
            wtxn.commit().map_err(lmdb_err)?;
            dbs
        };

        Ok(LmdbStore {
            _lock: lock,
            dbs,
            gate: RwLock::new(()),
            resize_pending: AtomicBool::new(false),
            map_full_retries: AtomicU64::new(0),
            writer: Mutex::new(false),
            env,
            tables: tables.to_vec(),
            path: path.to_path_buf(),
            options,
        })
    }

    pub(crate) fn db(&self, table: &str) -> Result<Db> {
        self.table_index(table).map(|i| self.dbs[i])
    }

    fn table_index(&self, table: &str) -> Result<usize> {
        self.tables
            .iter()
            .position(|t| t.name == table)
            .ok_or_else(|| Error::UnknownTable(table.to_string()))
    }

    /// Admits one transaction. While a resize waits, newcomers hold back for a moment so that
    /// busy readers cannot starve it; they never wait long, because the thread asking may itself
    /// hold a snapshot that the resize is waiting for.
    pub(crate) fn enter(&self) -> RwLockReadGuard<'_, ()> {
        let since = Instant::now();
        while self.resize_pending.load(Ordering::Acquire)
            && since.elapsed() < std::time::Duration::from_millis(50)
        {
            std::thread::yield_now();
        }
        self.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the map size another process (the writer) set, for a read-only store.
    pub(crate) fn adopt_map_size(&self) -> Result<()> {
        let _exclusive = self.gate.write().unwrap_or_else(|p| p.into_inner());
        // SAFETY: the exclusive gate guarantees that no transaction of this process is open;
        // a size of 0 makes LMDB take the size the environment's meta page records.
        unsafe { self.env.resize(0) }.map_err(lmdb_err)
    }

    /// The map size and the bytes in use (up to the last page ever allocated).
    fn map_usage(&self) -> (usize, usize) {
        let info = self.env.info();
        let page = self.env.stat().page_size as usize;
        (info.map_size, (info.last_page_number + 1) * page)
    }

    /// Grows the map to at least `wanted` bytes, waiting for open transactions to close.
    /// Called with the writer lock held, so no write transaction is open.
    fn grow_to(&self, wanted: usize) -> Result<()> {
        let (current, _) = self.map_usage();
        if wanted <= current {
            return Ok(());
        }
        let new_size = round_up(wanted.max(current.saturating_add(self.options.map_growth)));
        self.resize_pending.store(true, Ordering::Release);
        let since = Instant::now();
        let result = loop {
            match self.gate.try_write() {
                Ok(_exclusive) => {
                    // SAFETY: the exclusive gate guarantees that no transaction of this process
                    // is open (every transaction holds the gate shared for its whole life), which
                    // is mdb_env_set_mapsize's requirement.
                    break unsafe { self.env.resize(new_size) }.map_err(lmdb_err);
                }
                Err(_) if since.elapsed() > self.options.resize_wait => {
                    break Err(Error::backend(
                        ENGINE,
                        format!(
                            "the map is full ({current} bytes) and could not grow because read \
                             transactions (snapshots) stayed open for {:?}",
                            self.options.resize_wait
                        ),
                    ));
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_micros(200)),
            }
        };
        self.resize_pending.store(false, Ordering::Release);
        if result.is_ok() {
            tracing::info!(from = current, to = new_size, "grew the LMDB map");
        }
        result
    }

    /// The error of a write that needed about `needed` bytes of disk. LMDB turns a write that
    /// the filesystem cut short for lack of room into EIO ("short write, filesystem full?" in
    /// its source), which would otherwise read as a failing disk: with the filesystem this
    /// full, it is the full disk.
    fn write_error(&self, e: heed::Error, needed: u64) -> Error {
        if let heed::Error::Io(io) = &e {
            if io.raw_os_error() == Some(libc::EIO)
                && disk::io_error_is_full_disk(&self.path, needed)
            {
                let free = disk::free_space(&self.path).unwrap_or(0);
                return Error::backend_of_kind(
                    ENGINE,
                    ErrorKind::NoSpace,
                    format!(
                        "{e} with {free} bytes free on the filesystem for a write of about \
                         {needed} bytes: a write cut short by a full disk, which LMDB reports \
                         as EIO"
                    ),
                );
            }
        }
        lmdb_err(e)
    }

    /// One attempt at committing `batch` in one write transaction.
    fn write_once(&self, batch: &WriteBatch, nosync: &mut bool, bulk: bool) -> Result<(), Attempt> {
        if *nosync != bulk {
            let mode = if bulk {
                FlagSetMode::Enable
            } else {
                FlagSetMode::Disable
            };
            // SAFETY: MDB_NOSYNC is one of the flags LMDB lets an open environment change
            // (mdb_env_set_flags). We hold the writer lock, so no commit of ours, the only code
            // that reads this bit, runs meanwhile; readers starting concurrently read other bits
            // of the same word, which do not change (LMDB itself updates that word the same way
            // on a fatal error). The flag's only effect is on durability against power loss,
            // which `Durability::Bulk` accepts by contract.
            unsafe { self.env.set_flags(EnvFlags::NO_SYNC, mode) }?;
            *nosync = bulk;
        }
        let _gate = self.enter();
        let mut wtxn = self.env.write_txn()?;
        // Per table, a key at or above the table's last one in this transaction (`None`: not
        // looked up yet). A put above it goes in with MDB_APPEND: no descent from the root,
        // and full pages instead of half-full ones after a split. The bound only ever stays
        // high after deletes, which sends a put down the ordinary path, never a wrong one.
        let mut upper: Vec<Option<Option<Vec<u8>>>> = vec![None; self.dbs.len()];
        for op in batch.ops() {
            let index = self.table_index(op.table()).map_err(Attempt::Failed)?;
            let db = self.dbs[index];
            match op {
                Op::Put { key, value, .. } => {
                    let bound = match &mut upper[index] {
                        Some(bound) => bound,
                        slot => slot.insert(db.last(&wtxn)?.map(|(last, _)| last.to_vec())),
                    };
                    if bound.as_deref().is_none_or(|last| key > last) {
                        db.put_with_flags(&mut wtxn, PutFlags::APPEND, key, value)?;
                        match bound {
                            Some(last) => {
                                last.clear();
                                last.extend_from_slice(key);
                            }
                            None => *bound = Some(key.to_vec()),
                        }
                    } else {
                        db.put(&mut wtxn, key, value)?;
                    }
                }
                Op::Delete { key, .. } => {
                    db.delete(&mut wtxn, key)?;
                }
                Op::DeleteRange { start, end, .. } => {
                    if start < end {
                        let range = (Bound::Included(start), Bound::Excluded(end));
                        db.delete_range(&mut wtxn, &range)?;
                    }
                }
            }
        }
        wtxn.commit()?;
        Ok(())
    }
}

impl Store for LmdbStore {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn tables(&self) -> &[Table] {
        &self.tables
    }

    fn snapshot(&self) -> Result<Box<dyn anode_store::ReadView + '_>> {
        Ok(Box::new(LmdbSnapshot::new(self)?))
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<()> {
        if self.options.read_only {
            return Err(read_only_err());
        }
        batch.validate(|t| table_known(&self.tables, t))?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut nosync = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        // Copy-on-write: a batch may dirty about twice its payload in pages (leaves, their
        // branch paths, the free list). Grow before starting when that would come close to the
        // end of the map, so that MDB_MAP_FULL stays the exception.
        let dirty_bytes = batch.payload_bytes().saturating_mul(2);
        let (map_size, used) = self.map_usage();
        let needed = used
            .saturating_add(dirty_bytes)
            .saturating_add(self.options.map_growth / 4);
        if needed > map_size {
            self.grow_to(needed)?;
        }
        let bulk = durability == Durability::Bulk;
        for _ in 0..64 {
            match self.write_once(&batch, &mut nosync, bulk) {
                Ok(()) => return Ok(()),
                Err(Attempt::Engine(e)) => return Err(self.write_error(e, dirty_bytes as u64)),
                Err(Attempt::Failed(e)) => return Err(e),
                // The aborted transaction left nothing behind; grow by one step and retry.
                Err(Attempt::MapFull) => {
                    self.map_full_retries.fetch_add(1, Ordering::Relaxed);
                    let (map_size, _) = self.map_usage();
                    self.grow_to(map_size.saturating_add(self.options.map_growth))?;
                }
            }
        }
        Err(Error::backend(
            ENGINE,
            "the map stayed full after 64 resizes; is LmdbOptions::map_growth zero?",
        ))
    }

    fn sync(&self) -> Result<()> {
        if self.options.read_only {
            return Ok(());
        }
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.env.force_sync().map_err(lmdb_err)
    }

    fn stats(&self) -> Result<StoreStats> {
        let _gate = self.enter();
        let rtxn = self.env.read_txn().map_err(lmdb_err)?;
        let mut tables = Vec::with_capacity(self.tables.len());
        for (t, db) in self.tables.iter().zip(&self.dbs) {
            tables.push(TableStats {
                name: t.name.to_string(),
                rows: db.len(&rtxn).map_err(lmdb_err)?,
                rows_exact: true,
            });
        }
        drop(rtxn);
        let (map_size, used) = self.map_usage();
        let info = self.env.info();
        Ok(StoreStats {
            engine: ENGINE,
            disk_bytes: marker::disk_usage(&self.path)?,
            tables,
            engine_counters: vec![
                ("map_size".into(), map_size as u64),
                ("map_used_bytes".into(), used as u64),
                ("page_size".into(), self.env.stat().page_size.into()),
                ("readers".into(), info.number_of_readers.into()),
                ("last_txn_id".into(), info.last_txn_id as u64),
                (
                    "map_full_retries".into(),
                    self.map_full_retries.load(Ordering::Relaxed),
                ),
            ],
        })
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}
