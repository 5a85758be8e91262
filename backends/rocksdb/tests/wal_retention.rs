//! A table written once must not keep every later write-ahead log alive: RocksDB deletes a
//! WAL file only when every column family with data in it has flushed, and the index writes
//! some tables (headers, state) far less than others. `max_total_wal_bytes` makes RocksDB
//! flush the family that holds the oldest WAL.

use std::path::Path;

use anode_store::{Durability, Store, Table, WriteBatch};
use anode_store_rocksdb::{RocksOptions, RocksStore};

const BUSY: &str = "busy";
const RARE: &str = "rare";
const TABLES: &[Table] = &[Table::new(BUSY), Table::new(RARE)];

fn wal_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Writes one row to the rare table, then `batches` batches of ~256 KiB to the busy one.
fn write_mostly_busy(store: &RocksStore, batches: u32) {
    let mut first = WriteBatch::new();
    first.put(RARE, b"tip", vec![1]);
    store.write(first, Durability::Sync).expect("write");
    for b in 0..batches {
        let mut batch = WriteBatch::new();
        for i in 0..256u32 {
            let key = [b.to_be_bytes(), i.to_be_bytes()].concat();
            batch.put(BUSY, key, vec![0x5a; 1024]);
        }
        store.write(batch, Durability::Sync).expect("write");
    }
}

#[test]
fn a_rarely_written_table_does_not_pin_the_write_ahead_log() {
    let options = RocksOptions {
        write_buffer_bytes: 1 << 20,
        max_total_wal_bytes: 2 << 20,
        ..RocksOptions::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RocksStore::open(dir.path(), TABLES, options).expect("open");
    // 32 MiB through 1 MiB memtables: the busy table flushes many times over.
    write_mostly_busy(&store, 128);
    // Obsolete WAL files are deleted by RocksDB's background work after the flushes it
    // schedules; wait for that, for at most a generous while.
    let mut wal = wal_bytes(dir.path());
    for _ in 0..200 {
        if wal < 8 << 20 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut nudge = WriteBatch::new();
        nudge.put(BUSY, b"nudge", vec![0]);
        store.write(nudge, Durability::Sync).expect("write");
        wal = wal_bytes(dir.path());
    }
    assert!(
        wal < 8 << 20,
        "{wal} bytes of WAL kept for 32 MiB written: the rare table pins them"
    );
    let row = store
        .snapshot()
        .expect("snapshot")
        .get(RARE, b"tip")
        .expect("get");
    assert_eq!(row, Some(vec![1]));
}

#[test]
fn without_the_limit_the_rare_table_pins_every_later_log() {
    // The failure the limit prevents, shown so that the test above can fail: with no
    // effective limit, the rare table's unflushed row keeps every WAL after it.
    let options = RocksOptions {
        write_buffer_bytes: 1 << 20,
        max_total_wal_bytes: 1 << 40,
        ..RocksOptions::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RocksStore::open(dir.path(), TABLES, options).expect("open");
    write_mostly_busy(&store, 128);
    let wal = wal_bytes(dir.path());
    assert!(wal > 24 << 20, "only {wal} bytes of WAL kept");
}
