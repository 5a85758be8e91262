//! Scans of a table with a prefix extractor: prefix-mode seeks (and their bloom filters) must
//! never change what a scan returns, whether the range lies inside one prefix or crosses many,
//! and whether the data sits in the memtable or in SST files.

use anode_store::{Direction, Durability, KeyRange, ReadView, Store, Table, WriteBatch};
use anode_store_rocksdb::{RocksOptions, RocksStore};

const H: &str = "history";
const TABLES: &[Table] = &[Table::with_prefix(H, 3)];

fn keys(view: &dyn ReadView, range: KeyRange, direction: Direction) -> Vec<Vec<u8>> {
    view.scan(H, range, direction)
        .expect("scan")
        .map(|r| r.expect("row").0)
        .collect()
}

#[test]
fn prefix_extractor_never_changes_scan_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RocksStore::open(dir.path(), TABLES, RocksOptions::default()).expect("open");
    let mut batch = WriteBatch::new();
    let mut all = Vec::new();
    for p in [[1u8, 2, 3], [1, 2, 4], [1, 2, 0xff], [9, 9, 9]] {
        for n in 0..50u8 {
            let key = [&p[..], &[n, 0]].concat();
            all.push(key.clone());
            batch.put(H, key, vec![n]);
        }
    }
    // Keys shorter than the prefix are outside the extractor's domain but still stored.
    for short in [&[1u8][..], &[1, 2]] {
        all.push(short.to_vec());
        batch.put(H, short, b"short");
    }
    all.sort();
    store.write(batch, Durability::Sync).expect("write");

    for flushed in [false, true] {
        if flushed {
            store
                .compact()
                .expect("compact moves everything into SST files");
        }
        assert_eq!(keys(&store, KeyRange::all(), Direction::Forward), all);
        let p = KeyRange::prefix(&[1, 2, 4]);
        let in_prefix: Vec<_> = all
            .iter()
            .filter(|k| k.starts_with(&[1, 2, 4]))
            .cloned()
            .collect();
        assert_eq!(keys(&store, p.clone(), Direction::Forward), in_prefix);
        let mut rev = keys(&store, p, Direction::Reverse);
        rev.reverse();
        assert_eq!(rev, in_prefix);
        // Longer than the prefix, at the 0xff edge, across prefixes, and an absent prefix.
        assert_eq!(
            keys(
                &store,
                KeyRange::prefix(&[1, 2, 0xff, 7]),
                Direction::Forward
            )
            .len(),
            1
        );
        assert_eq!(
            keys(&store, KeyRange::prefix(&[1, 2, 0xff]), Direction::Forward).len(),
            50
        );
        assert_eq!(
            keys(&store, KeyRange::prefix(&[1, 2]), Direction::Forward).len(),
            151
        );
        assert!(keys(&store, KeyRange::prefix(&[5, 5, 5]), Direction::Forward).is_empty());
        let across = KeyRange::between(&[1, 2, 3, 40], &[1, 2, 4, 10]);
        assert_eq!(keys(&store, across, Direction::Forward).len(), 20);
        let snapshot = store.snapshot().expect("snapshot");
        assert_eq!(
            keys(&*snapshot, KeyRange::all(), Direction::Reverse).len(),
            all.len()
        );
    }
}
