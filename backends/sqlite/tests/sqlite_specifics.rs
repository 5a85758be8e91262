//! SQLite-specific behaviour beyond the contract: the file layout, table names that need
//! quoting, bulk commits made durable by `sync`, and `compact` (VACUUM) keeping every row.

use anode_store::{Direction, Durability, KeyRange, ReadView, Store, Table, WriteBatch};
use anode_store_sqlite::{SqliteOptions, SqliteStore, DB_FILE};

const ODD: &str = "odd \"name\"; DROP TABLE x";
const PLAIN: &str = "sqlite_master";
const TABLES: &[Table] = &[Table::new(ODD), Table::new(PLAIN)];

#[test]
fn odd_table_names_bulk_sync_and_compact() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = SqliteStore::open(dir.path(), TABLES, SqliteOptions::default()).expect("open");
        assert!(dir.path().join(DB_FILE).is_file());
        for round in 0..20u32 {
            let mut batch = WriteBatch::new();
            for i in 0..500u32 {
                let key = [round.to_be_bytes(), i.to_be_bytes()].concat();
                batch.put(ODD, key.clone(), b"v");
                batch.put(PLAIN, key, b"w");
            }
            store.write(batch, Durability::Bulk).expect("bulk write");
        }
        store.sync().expect("sync");
        let mut batch = WriteBatch::new();
        batch.delete_range(ODD, 0u32.to_be_bytes(), 10u32.to_be_bytes());
        store.write(batch, Durability::Sync).expect("sync write");
        store.compact().expect("compact");
        let stats = store.stats().expect("stats");
        assert_eq!(stats.tables[0].rows, 5_000);
        assert_eq!(stats.tables[1].rows, 10_000);
    }
    let store = SqliteStore::open(dir.path(), TABLES, SqliteOptions::default()).expect("reopen");
    let rows = |t| {
        store
            .scan(t, KeyRange::all(), Direction::Forward)
            .expect("scan")
            .count()
    };
    assert_eq!(rows(ODD), 5_000);
    assert_eq!(rows(PLAIN), 10_000);
    let snapshot = store.snapshot().expect("snapshot");
    assert_eq!(
        snapshot.get(PLAIN, &[0, 0, 0, 0, 0, 0, 0, 1]).expect("get"),
        Some(b"w".to_vec())
    );
}
