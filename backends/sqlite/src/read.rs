//! Reads: pooled reader connections, the store's own reads, and [`SqliteSnapshot`].

use anode_store::paged::PagedScan;
use anode_store::{Direction, KeyRange, KvIter, ReadView, Result};
use rusqlite::{Connection, OptionalExtension};

use crate::store::{sqlite_err, SqliteStore};

/// A reader connection borrowed from the store's pool; returned to it on drop.
pub(crate) struct Reader<'s> {
    conn: Option<Connection>,
    store: &'s SqliteStore,
}

impl<'s> Reader<'s> {
    pub(crate) fn take(store: &'s SqliteStore) -> Result<Self> {
        let idle = store
            .idle_readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => store.open_reader()?,
        };
        Ok(Reader {
            conn: Some(conn),
            store,
        })
    }

    pub(crate) fn conn(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a Reader holds its connection until dropped")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // A connection left inside a transaction (a snapshot whose ROLLBACK failed) would
            // pin an old WAL snapshot forever: close it instead of pooling it.
            if !conn.is_autocommit() {
                return;
            }
            let mut idle = self
                .store
                .idle_readers
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if idle.len() < self.store.options.max_idle_readers {
                idle.push(conn);
            }
        }
    }
}

fn get_on(conn: &Connection, sql: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.query_row((key,), |row| row.get(0)).optional())
        .map_err(sqlite_err)
}

impl ReadView for SqliteStore {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let sql = self.table_sql(table)?;
        let reader = Reader::take(self)?;
        get_on(reader.conn(), &sql.get, key)
    }

    fn multi_get(&self, table: &str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let sql = self.table_sql(table)?;
        let reader = Reader::take(self)?;
        let conn = reader.conn();
        // One read transaction, so the answers come from one state.
        conn.execute_batch("BEGIN").map_err(sqlite_err)?;
        let values = keys.iter().map(|k| get_on(conn, &sql.get, k)).collect();
        conn.execute_batch("COMMIT").map_err(sqlite_err)?;
        values
    }

    fn scan(&self, table: &str, range: KeyRange, direction: Direction) -> Result<KvIter<'_>> {
        let sql = self.table_sql(table)?;
        Ok(Box::new(PagedScan::new(
            range,
            direction,
            self.options.scan_page_size,
            Box::new(move |range, direction, limit| {
                let reader = Reader::take(self)?;
                sql.page(reader.conn(), range, direction, limit)
            }),
        )))
    }
}

/// A reader connection inside a read transaction: every read sees the WAL snapshot pinned by
/// the transaction's first read, whatever the writer commits meanwhile.
pub struct SqliteSnapshot<'s> {
    reader: Reader<'s>,
}

impl<'s> SqliteSnapshot<'s> {
    pub(crate) fn new(reader: Reader<'s>) -> Result<Self> {
        let conn = reader.conn();
        // BEGIN is deferred: the read transaction (and its WAL snapshot) starts at the first
        // read, so read the schema right away.
        conn.execute_batch("BEGIN").map_err(sqlite_err)?;
        conn.query_row("SELECT COUNT(*) FROM sqlite_schema", [], |_| Ok(()))
            .map_err(sqlite_err)?;
        Ok(SqliteSnapshot { reader })
    }
}

impl Drop for SqliteSnapshot<'_> {
    fn drop(&mut self) {
        // On failure the connection stays in a transaction and the pool drops it.
        let _ = self.reader.conn().execute_batch("ROLLBACK");
    }
}

impl ReadView for SqliteSnapshot<'_> {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let sql = self.reader.store.table_sql(table)?;
        get_on(self.reader.conn(), &sql.get, key)
    }

    fn scan(&self, table: &str, range: KeyRange, direction: Direction) -> Result<KvIter<'_>> {
        let sql = self.reader.store.table_sql(table)?;
        let conn = self.reader.conn();
        Ok(Box::new(PagedScan::new(
            range,
            direction,
            self.reader.store.options.scan_page_size,
            Box::new(move |range, direction, limit| sql.page(conn, range, direction, limit)),
        )))
    }
}
