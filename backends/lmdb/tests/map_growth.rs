//! A store opened with a tiny map grows far past it, both ahead of batches and on
//! `MDB_MAP_FULL`, and keeps its data across a reopen with the tiny setting again.

use anode_store::{Direction, Durability, KeyRange, ReadView, Store, Table, WriteBatch};
use anode_store_lmdb::{LmdbOptions, LmdbStore};

const T: &str = "t";
const TABLES: &[Table] = &[Table::with_prefix(T, 4)];

fn tiny() -> LmdbOptions {
    LmdbOptions {
        initial_map_size: 1 << 20,
        map_growth: 1 << 20,
        ..LmdbOptions::default()
    }
}

fn map_size(store: &LmdbStore) -> u64 {
    let stats = store.stats().expect("stats");
    stats
        .engine_counters
        .iter()
        .find(|(name, _)| name == "map_size")
        .map(|(_, v)| *v)
        .expect("map_size counter")
}

#[test]
fn a_one_mib_map_grows_past_forty_mib() {
    let dir = tempfile::tempdir().expect("tempdir");
    let value = vec![0x42u8; 400];
    {
        let store = LmdbStore::open(dir.path(), TABLES, tiny()).expect("open");
        assert_eq!(map_size(&store), 1 << 20);
        for round in 0..100u32 {
            let mut batch = WriteBatch::new();
            for i in 0..1000u32 {
                let mut key = round.to_be_bytes().to_vec();
                key.extend_from_slice(&i.to_be_bytes());
                batch.put(T, key, value.clone());
            }
            let durability = if round % 10 == 0 {
                Durability::Sync
            } else {
                Durability::Bulk
            };
            store
                .write(batch, durability)
                .expect("a write never fails with map full");
        }
        store.sync().expect("sync");
        assert!(map_size(&store) > 40 << 20, "{}", map_size(&store));
        // A snapshot taken now still reads after more growth-free writes.
        let snapshot = store.snapshot().expect("snapshot");
        assert!(snapshot
            .get(T, &[0, 0, 0, 99, 0, 0, 3, 231])
            .expect("get")
            .is_some());
    }
    let store = LmdbStore::open(dir.path(), TABLES, tiny()).expect("reopen");
    assert!(
        map_size(&store) > 40 << 20,
        "the recorded map size wins over the option"
    );
    let rows = store
        .scan(T, KeyRange::all(), Direction::Forward)
        .expect("scan")
        .count();
    assert_eq!(rows, 100_000);
    assert_eq!(store.stats().expect("stats").tables[0].rows, 100_000);
}

#[test]
fn a_batch_that_outgrows_the_estimate_is_retried_after_map_full() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LmdbStore::open(dir.path(), TABLES, tiny()).expect("open");
    let mut fill = WriteBatch::new();
    for i in 0..40_000u32 {
        fill.put(T, i.to_be_bytes(), vec![7u8; 100]);
    }
    store.write(fill, Durability::Bulk).expect("fill");
    // Scattered deletes carry a few bytes of payload each but copy a whole 4 KiB leaf page
    // (copy-on-write), far beyond the twice-the-payload estimate that grows the map ahead of a
    // batch: LMDB reports MDB_MAP_FULL, and the batch is aborted, the map grown and the batch
    // retried.
    let mut deletes = WriteBatch::new();
    for i in (0..40_000u32).step_by(4) {
        deletes.delete(T, i.to_be_bytes());
    }
    store.write(deletes, Durability::Bulk).expect("deletes");
    let stats = store.stats().expect("stats");
    assert_eq!(stats.tables[0].rows, 30_000);
    let counter = |name: &str| {
        stats
            .engine_counters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    };
    let retries = counter("map_full_retries");
    assert!(retries > Some(0), "the MDB_MAP_FULL path ran: {retries:?}");
}

#[test]
fn one_batch_larger_than_the_map_still_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LmdbStore::open(dir.path(), TABLES, tiny()).expect("open");
    let mut batch = WriteBatch::new();
    // 16 MiB in one batch, sixteen times the initial map.
    for i in 0..16u32 {
        batch.put(T, i.to_be_bytes(), vec![i as u8; 1 << 20]);
    }
    store.write(batch, Durability::Bulk).expect("write");
    assert_eq!(
        store
            .get(T, &7u32.to_be_bytes())
            .expect("get")
            .map(|v| v.len()),
        Some(1 << 20)
    );
}
