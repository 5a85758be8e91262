//! The SQL text of every statement, built once per table (and per bound shape for scans), so
//! that `prepare_cached` finds each statement in the connection's cache.

use std::ops::Bound;

use anode_store::{Direction, KeyRange};
use rusqlite::types::Value;
use rusqlite::Connection;

use crate::store::sqlite_err;

/// The statements of one table.
#[derive(Debug, Clone)]
pub(crate) struct TableSql {
    /// the quoted SQL identifier
    ident: String,
    pub create: String,
    pub get: String,
    pub put: String,
    pub delete: String,
    pub delete_range: String,
    pub count: String,
}

impl TableSql {
    pub fn new(name: &str) -> Self {
        // A prefix keeps names like `sqlite_x` clear of SQLite's reserved ones; quoting (with
        // `"` doubled) allows any table name the schema declares.
        let ident = format!("\"t_{}\"", name.replace('"', "\"\""));
        TableSql {
            create: format!(
                "CREATE TABLE IF NOT EXISTS {ident} (k BLOB PRIMARY KEY, v BLOB NOT NULL) \
                 WITHOUT ROWID"
            ),
            get: format!("SELECT v FROM {ident} WHERE k = ?1"),
            // UPSERT updates in place; `INSERT OR REPLACE` would delete and re-insert the row.
            put: format!(
                "INSERT INTO {ident} (k, v) VALUES (?1, ?2) \
                 ON CONFLICT (k) DO UPDATE SET v = excluded.v"
            ),
            delete: format!("DELETE FROM {ident} WHERE k = ?1"),
            delete_range: format!("DELETE FROM {ident} WHERE k >= ?1 AND k < ?2"),
            count: format!("SELECT COUNT(*) FROM {ident}"),
            ident,
        }
    }

    /// Up to `limit` pairs of `range` in `direction`, read on `conn`.
    pub fn page(
        &self,
        conn: &Connection,
        range: &KeyRange,
        direction: Direction,
        limit: usize,
    ) -> anode_store::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut sql = format!("SELECT k, v FROM {} WHERE 1", self.ident);
        let mut params: Vec<Value> = Vec::with_capacity(3);
        for (bound, incl, excl) in [(&range.start, ">=", ">"), (&range.end, "<=", "<")] {
            let (op, key) = match bound {
                Bound::Included(k) => (incl, k),
                Bound::Excluded(k) => (excl, k),
                Bound::Unbounded => continue,
            };
            params.push(Value::Blob(key.clone()));
            sql.push_str(&format!(" AND k {op} ?{}", params.len()));
        }
        let order = match direction {
            Direction::Forward => "ASC",
            Direction::Reverse => "DESC",
        };
        params.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        sql.push_str(&format!(" ORDER BY k {order} LIMIT ?{}", params.len()));

        let mut stmt = conn.prepare_cached(&sql).map_err(sqlite_err)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .map_err(sqlite_err)?;
        rows.map(|r| r.map_err(sqlite_err)).collect()
    }
}
