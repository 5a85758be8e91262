//! The SQLite store: connections, tables, batches, durability.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anode_store::{
    disk, marker, table_known, Durability, Error, ErrorKind, Op, Result, Store, StoreStats, Table,
    TableStats, WriteBatch,
};
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use crate::read::{Reader, SqliteSnapshot};
use crate::sql::TableSql;
use crate::{SqliteOptions, DB_FILE, ENGINE};

pub(crate) fn sqlite_err(e: rusqlite::Error) -> Error {
    let kind = match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => ErrorKind::NoSpace,
        Some(ErrorCode::SystemIoFailure) => ErrorKind::Io,
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => ErrorKind::Corrupt,
        _ => ErrorKind::Other,
    };
    Error::backend_of_kind(ENGINE, kind, e)
}

/// The error of a write that needed about `needed` bytes under `dir`. SQLite says
/// SQLITE_FULL when a write fails with ENOSPC, but a file it cannot grow otherwise (its
/// preallocation, the shared-memory index of the WAL) comes back as SQLITE_IOERR: on a
/// filesystem this full, that is the full disk too.
fn write_error(e: rusqlite::Error, dir: &Path, needed: u64) -> Error {
    if e.sqlite_error_code() == Some(ErrorCode::SystemIoFailure)
        && disk::io_error_is_full_disk(dir, needed)
    {
        let free = disk::free_space(dir).unwrap_or(0);
        return Error::backend_of_kind(
            ENGINE,
            ErrorKind::NoSpace,
            format!("{e} with {free} bytes free on the filesystem: the disk is full"),
        );
    }
    sqlite_err(e)
}

/// Statements every connection may prepare, plus ours per table and per scan shape.
const STATEMENT_CACHE: usize = 256;

/// The writer connection and the `synchronous` level it is set to.
struct Writer {
    conn: Connection,
    durability: Durability,
}

/// An [`anode_store::Store`] on SQLite: `anode.sqlite` in WAL mode, one `WITHOUT ROWID` table per
/// logical table.
///
/// * Writes: one `BEGIN IMMEDIATE` transaction per batch on the single writer connection, with
///   cached prepared statements. `Durability::Sync` commits with `synchronous = FULL` (the WAL is
///   fsynced at each commit); `Durability::Bulk` with `synchronous = NORMAL` (no fsync at commit;
///   WAL mode stays consistent after any crash, and a power loss can only drop the latest
///   commits). [`Store::sync`] fsyncs the WAL and the database file.
/// * Reads: pooled reader connections; scans page with `ORDER BY k LIMIT`; a snapshot is a
///   reader holding a read transaction.
pub struct SqliteStore {
    /// `None` when the store is read-only.
    writer: Mutex<Option<Writer>>,
    pub(crate) idle_readers: Mutex<Vec<Connection>>,
    pub(crate) sql: Vec<TableSql>,
    tables: Vec<Table>,
    /// Held while the store is open (`marker::lock_dir`), unless it is read-only; dropped
    /// after the engine's handles.
    _lock: Option<marker::DirLock>,
    path: PathBuf,
    pub(crate) options: SqliteOptions,
}

impl SqliteStore {
    /// Opens (creating if absent) the SQLite store in directory `path` with `tables`.
    pub fn open(path: &Path, tables: &[Table], options: SqliteOptions) -> Result<SqliteStore> {
        let lock = marker::claim_dir(path, ENGINE, options.read_only)?;
        let file = path.join(DB_FILE);
        check_length(&file)?;
        let sql: Vec<TableSql> = tables.iter().map(|t| TableSql::new(t.name)).collect();
        let writer = if options.read_only {
            None
        } else {
            Some(open_writer(&file, tables, &sql, &options)?)
        };
        let store = SqliteStore {
            _lock: lock,
            writer: Mutex::new(writer),
            idle_readers: Mutex::new(Vec::new()),
            sql,
            tables: tables.to_vec(),
            path: path.to_path_buf(),
            options,
        };
        if store.options.read_only {
            let reader = store.reader().map_err(|e| in_file(&file, e))?;
            let missing = missing_tables(reader.conn(), tables).map_err(|e| in_file(&file, e))?;
            if !missing.is_empty() {
                return Err(marker::missing_tables(ENGINE, &file, "table", &missing));
            }
        }
        Ok(store)
    }

    pub(crate) fn table_sql(&self, table: &str) -> Result<&TableSql> {
        self.tables
            .iter()
            .position(|t| t.name == table)
            .map(|i| &self.sql[i])
            .ok_or_else(|| Error::UnknownTable(table.to_string()))
    }

    /// A new reader connection: read-write at the file level (WAL readers write to the shared
    /// memory index) but `query_only`, so it can never modify the database.
    pub(crate) fn open_reader(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            self.path.join(DB_FILE),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite_err)?;
        conn.busy_timeout(self.options.busy_timeout)
            .map_err(sqlite_err)?;
        conn.pragma_update(None, "query_only", true)
            .map_err(sqlite_err)?;
        configure(&conn, self.options.reader_cache_kib, &self.options)?;
        Ok(conn)
    }

    fn reader(&self) -> Result<Reader<'_>> {
        Reader::take(self)
    }
}

/// Opens the writer connection of `file`, creating the tables of a new database.
fn open_writer(
    file: &Path,
    tables: &[Table],
    sql: &[TableSql],
    options: &SqliteOptions,
) -> Result<Writer> {
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| in_file(file, sqlite_err(e)))?;
    let err = |e| in_file(file, sqlite_err(e));
    conn.busy_timeout(options.busy_timeout).map_err(err)?;
    // page_size only takes effect on a new, empty file; it is harmless afterwards.
    conn.pragma_update(None, "page_size", options.page_size)
        .map_err(err)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::backend(
            ENGINE,
            format!(
                "{} refused WAL mode (journal_mode is {mode})",
                file.display()
            ),
        ));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(err)?;
    conn.pragma_update(None, "wal_autocheckpoint", options.wal_autocheckpoint_pages)
        .map_err(err)?;
    configure(&conn, options.writer_cache_kib, options).map_err(|e| in_file(file, e))?;

    // Some tables but not all: the others were lost (dropped by hand, a damaged schema), and
    // creating them empty would hide it. Only a new database (none of them) gets them.
    let missing = missing_tables(&conn, tables).map_err(|e| in_file(file, e))?;
    if !missing.is_empty() && missing.len() < tables.len() {
        return Err(marker::missing_tables(ENGINE, file, "table", &missing));
    }
    let mut create = String::from("BEGIN;");
    for s in sql {
        create.push_str(&s.create);
        create.push(';');
    }
    create.push_str("COMMIT;");
    conn.execute_batch(&create).map_err(err)?;
    Ok(Writer {
        conn,
        durability: Durability::Sync,
    })
}

/// The declared tables `conn`'s database does not hold.
fn missing_tables(conn: &Connection, tables: &[Table]) -> Result<Vec<&'static str>> {
    let mut missing = Vec::new();
    let mut stmt = conn
        .prepare("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1")
        .map_err(sqlite_err)?;
    for table in tables {
        let count: i64 = stmt
            .query_row([format!("t_{}", table.name)], |row| row.get(0))
            .map_err(sqlite_err)?;
        if count == 0 {
            missing.push(table.name);
        }
    }
    Ok(missing)
}

/// An engine error of `file`, which SQLite's messages ("database disk image is malformed")
/// do not name.
fn in_file(file: &Path, e: Error) -> Error {
    match e {
        Error::Backend { kind, source, .. } => {
            Error::backend_of_kind(ENGINE, kind, format!("{}: {source}", file.display()))
        }
        other => other,
    }
}

/// Refuses a database file shorter than its header says: SQLite reads the missing pages as
/// absent and reports them only when a query reaches one. Only checked with no WAL to replay
/// (after a clean close), since a checkpoint that a crash interrupted may have written the
/// header before the pages that complete the file, and SQLite finishes it from the WAL.
fn check_length(file: &Path) -> Result<()> {
    use std::io::Read;
    let wal = file.with_file_name(format!("{DB_FILE}-wal"));
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Ok(());
    }
    let mut f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(file, e)),
    };
    let length = f.metadata().map_err(|e| Error::io(file, e))?.len();
    if length == 0 {
        return Ok(());
    }
    let truncated = |expected: String| {
        Error::backend_of_kind(
            ENGINE,
            ErrorKind::Corrupt,
            format!(
                "{} is truncated: it holds {length} bytes, {expected}",
                file.display()
            ),
        )
    };
    let mut header = [0u8; 100];
    if length < header.len() as u64 {
        return Err(truncated("less than SQLite's 100-byte header".into()));
    }
    f.read_exact(&mut header).map_err(|e| Error::io(file, e))?;
    if &header[..16] != b"SQLite format 3\0" {
        // Not a database at all: SQLite's own error says so.
        return Ok(());
    }
    let be32 = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => u64::from(n),
    };
    let (change_counter, pages, valid_for) = (be32(24), u64::from(be32(28)), be32(92));
    // The header's page count is only kept by SQLite 3.7.0 and later, which say so by
    // matching these two counters.
    if pages == 0 || valid_for != change_counter {
        return Ok(());
    }
    let expected = pages.saturating_mul(page_size);
    if length < expected {
        return Err(truncated(format!(
            "but its header counts {pages} pages of {page_size} bytes ({expected} bytes)"
        )));
    }
    Ok(())
}

/// The refusal of a write to a store opened read-only.
fn read_only_err() -> Error {
    Error::backend(ENGINE, "the database was opened read-only")
}

/// Settings shared by the writer and the readers.
fn configure(conn: &Connection, cache_kib: u32, options: &SqliteOptions) -> Result<()> {
    // A negative cache_size is in KiB rather than pages.
    conn.pragma_update(None, "cache_size", -i64::from(cache_kib))
        .map_err(sqlite_err)?;
    conn.pragma_update(
        None,
        "mmap_size",
        i64::try_from(options.mmap_size).unwrap_or(i64::MAX),
    )
    .map_err(sqlite_err)?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(sqlite_err)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

fn apply(tx: &Connection, sql: &TableSql, op: Op<'_>) -> rusqlite::Result<()> {
    match op {
        Op::Put { key, value, .. } => {
            tx.prepare_cached(&sql.put)?.execute((key, value))?;
        }
        Op::Delete { key, .. } => {
            tx.prepare_cached(&sql.delete)?.execute((key,))?;
        }
        Op::DeleteRange { start, end, .. } => {
            if start < end {
                tx.prepare_cached(&sql.delete_range)?
                    .execute((start, end))?;
            }
        }
    }
    Ok(())
}

impl Store for SqliteStore {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn tables(&self) -> &[Table] {
        &self.tables
    }

    fn snapshot(&self) -> Result<Box<dyn anode_store::ReadView + '_>> {
        Ok(Box::new(SqliteSnapshot::new(self.reader()?)?))
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<()> {
        batch.validate(|t| table_known(&self.tables, t))?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let Some(writer) = writer.as_mut() else {
            return Err(read_only_err());
        };
        if writer.durability != durability {
            let level = match durability {
                Durability::Sync => "FULL",
                Durability::Bulk => "NORMAL",
            };
            writer
                .conn
                .pragma_update(None, "synchronous", level)
                .map_err(sqlite_err)?;
            writer.durability = durability;
        }
        // WAL frames are whole pages: scattered rows dirty far more than their payload.
        let needed = batch.payload_bytes().saturating_mul(2) as u64;
        let failed = |e| write_error(e, &self.path, needed);
        let tx = writer
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(failed)?;
        for op in batch.ops() {
            // validate() checked every table, so table_sql cannot fail here.
            apply(&tx, self.table_sql(op.table())?, op).map_err(failed)?;
        }
        // Dropping an uncommitted transaction (on any error above, or a failed commit) rolls
        // it back, so a full disk leaves the database as it was.
        tx.commit().map_err(failed)
    }

    fn sync(&self) -> Result<()> {
        // Under synchronous=NORMAL, commits are written to the WAL without fsync, and every
        // checkpoint fsyncs the WAL before and the database after copying. So fsyncing the WAL
        // (and the database, for a checkpoint in flight) makes every commit so far durable,
        // exactly as a FULL commit would have. The writer lock keeps commits out meanwhile.
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if writer.is_none() {
            return Ok(());
        }
        for name in [format!("{DB_FILE}-wal"), DB_FILE.to_string()] {
            let file = self.path.join(name);
            match std::fs::File::open(&file) {
                Ok(f) => f.sync_all().map_err(|e| Error::io(&file, e))?,
                // A WAL that a checkpoint truncated away holds nothing to sync.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&file, e)),
            }
        }
        Ok(())
    }

    fn compact(&self) -> Result<()> {
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let Some(writer) = writer.as_ref() else {
            return Err(read_only_err());
        };
        // VACUUM rebuilds the file without free pages and with B-trees in order; the
        // checkpoint then moves everything out of the WAL and truncates it.
        writer.conn.execute_batch("VACUUM;").map_err(sqlite_err)?;
        writer
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(sqlite_err)
    }

    fn stats(&self) -> Result<StoreStats> {
        let reader = self.reader()?;
        let conn = reader.conn();
        let mut tables = Vec::with_capacity(self.tables.len());
        for (t, sql) in self.tables.iter().zip(&self.sql) {
            let rows: i64 = conn
                .query_row(&sql.count, [], |row| row.get(0))
                .map_err(sqlite_err)?;
            tables.push(TableStats {
                name: t.name.to_string(),
                rows: rows.try_into().unwrap_or(0),
                rows_exact: true,
            });
        }
        let pragma = |name: &str| -> Result<u64> {
            let v: i64 = conn
                .pragma_query_value(None, name, |row| row.get(0))
                .map_err(sqlite_err)?;
            Ok(v.try_into().unwrap_or(0))
        };
        let engine_counters = vec![
            ("page_size".to_string(), pragma("page_size")?),
            ("page_count".to_string(), pragma("page_count")?),
            ("freelist_count".to_string(), pragma("freelist_count")?),
        ];
        Ok(StoreStats {
            engine: ENGINE,
            disk_bytes: marker::disk_usage(&self.path)?,
            tables,
            engine_counters,
        })
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}
