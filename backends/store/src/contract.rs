//! The contract every storage engine passes, written once.
//!
//! Each function takes a [`Backend`] (a name and a way to open a store at a path) and panics on
//! a violation. Backend crates expand the whole suite into `#[test]`s with
//! [`store_contract_tests!`](crate::store_contract_tests), so every engine runs the same checks
//! and the test names carry the engine's name (`lmdb::key_ordering`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};

use crate::{
    Direction, Durability, Error, KeyRange, MemoryStore, ReadView, Store, Table, WriteBatch,
    MAX_KEY_LEN,
};

/// Opens (creating if absent) a store at a directory with the given tables.
pub type Opener = fn(&Path, &[Table]) -> crate::Result<Box<dyn Store>>;

/// An engine under test.
#[derive(Clone, Copy)]
pub struct Backend {
    /// the engine's name, as `Store::engine` reports it
    pub name: &'static str,
    /// how to open it
    pub open: Opener,
    /// whether data survives a close (false for the memory engine)
    pub persistent: bool,
}

const A: &str = "a";
const B: &str = "b";
const META: &str = "meta";
/// The tables most checks use.
pub const TABLES: &[Table] = &[Table::new(A), Table::with_prefix(B, 4), Table::new(META)];

fn temp_dir(backend: &Backend) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("anode-contract-{}-", backend.name))
        .tempdir()
        .expect("the system temp directory is writable")
}

fn open(backend: &Backend, path: &Path, tables: &[Table]) -> Box<dyn Store> {
    match (backend.open)(path, tables) {
        Ok(store) => store,
        Err(e) => panic!("{}: opening {} failed: {e}", backend.name, path.display()),
    }
}

fn all(view: &dyn ReadView, table: &str, direction: Direction) -> Vec<(Vec<u8>, Vec<u8>)> {
    collect(view, table, KeyRange::all(), direction)
}

fn collect(
    view: &dyn ReadView,
    table: &str,
    range: KeyRange,
    direction: Direction,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    view.scan(table, range, direction)
        .expect("scan starts")
        .collect::<crate::Result<Vec<_>>>()
        .expect("scan completes")
}

fn keys(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<Vec<u8>> {
    pairs.iter().map(|(k, _)| k.clone()).collect()
}

fn put_all(store: &dyn Store, table: &'static str, pairs: &[(&[u8], &[u8])]) {
    let mut batch = WriteBatch::new();
    for (k, v) in pairs {
        batch.put(table, k, v);
    }
    store.write(batch, Durability::Sync).expect("write");
}

/// Keys sort bytewise: a prefix before its extensions, 0x00 and 0xff bytes in their place;
/// forward, reverse, prefix and bounded range scans agree with that order.
pub fn key_ordering(backend: &Backend) {
    let dir = temp_dir(backend);
    let store = open(backend, dir.path(), TABLES);
    let mut sorted: Vec<&[u8]> = vec![
        b"\x00",
        b"\x00\x00",
        b"\x00\xff",
        b"\x01",
        b"\x01\x00",
        b"a",
        b"ab",
        b"abc",
        b"ab\xff",
        b"b",
        b"\xfe\xff",
        b"\xff",
        b"\xff\x00",
        b"\xff\xff",
        b"\xff\xff\xff",
    ];
    // Insert in a scrambled order so that insertion order cannot pass for key order.
    let mut scrambled = sorted.clone();
    scrambled.reverse();
    scrambled.swap(0, 7);
    scrambled.swap(3, 11);
    put_all(
        &*store,
        A,
        &scrambled.iter().map(|k| (*k, *k)).collect::<Vec<_>>(),
    );
    sorted.sort();

    let forward = all(&*store, A, Direction::Forward);
    assert_eq!(
        keys(&forward),
        sorted.iter().map(|k| k.to_vec()).collect::<Vec<_>>()
    );
    assert!(
        forward.iter().all(|(k, v)| k == v),
        "values follow their keys"
    );
    let mut reverse = keys(&all(&*store, A, Direction::Reverse));
    reverse.reverse();
    assert_eq!(reverse, keys(&forward));

    let prefixed = |p: &[u8], d| keys(&collect(&*store, A, KeyRange::prefix(p), d));
    assert_eq!(
        prefixed(b"ab", Direction::Forward),
        vec![b"ab".to_vec(), b"abc".to_vec(), b"ab\xff".to_vec()]
    );
    assert_eq!(
        prefixed(b"ab", Direction::Reverse),
        vec![b"ab\xff".to_vec(), b"abc".to_vec(), b"ab".to_vec()]
    );
    assert_eq!(
        prefixed(b"\xff", Direction::Forward),
        vec![
            b"\xff".to_vec(),
            b"\xff\x00".to_vec(),
            b"\xff\xff".to_vec(),
            b"\xff\xff\xff".to_vec()
        ]
    );
    assert_eq!(
        prefixed(b"\xff\xff", Direction::Reverse),
        vec![b"\xff\xff\xff".to_vec(), b"\xff\xff".to_vec()]
    );
    assert_eq!(prefixed(b"\x00", Direction::Forward).len(), 3);
    assert!(prefixed(b"c", Direction::Forward).is_empty());

    use std::ops::Bound::{Excluded, Included, Unbounded};
    let bounded = |start, end, d| keys(&collect(&*store, A, KeyRange { start, end }, d));
    assert_eq!(
        bounded(
            Excluded(b"a".to_vec()),
            Included(b"b".to_vec()),
            Direction::Forward
        ),
        vec![
            b"ab".to_vec(),
            b"abc".to_vec(),
            b"ab\xff".to_vec(),
            b"b".to_vec()
        ]
    );
    assert_eq!(
        bounded(
            Included(b"a".to_vec()),
            Excluded(b"abc".to_vec()),
            Direction::Reverse
        ),
        vec![b"ab".to_vec(), b"a".to_vec()]
    );
    assert_eq!(
        bounded(
            Unbounded,
            Excluded(b"\x00\x00".to_vec()),
            Direction::Forward
        ),
        vec![b"\x00".to_vec()]
    );
    assert!(bounded(
        Included(b"b".to_vec()),
        Excluded(b"a".to_vec()),
        Direction::Forward
    )
    .is_empty());
    assert_eq!(
        store.last_in(A, KeyRange::prefix(b"a")).expect("last_in"),
        Some((b"ab\xff".to_vec(), b"ab\xff".to_vec()))
    );
    // Tables are separate key spaces.
    assert!(all(&*store, B, Direction::Forward).is_empty());
}

/// Empty values are stored; empty, oversized keys and unknown tables are refused, and a refused
/// batch changes nothing.
pub fn keys_values_and_tables_are_validated(backend: &Backend) {
    let dir = temp_dir(backend);
    let store = open(backend, dir.path(), TABLES);
    put_all(&*store, A, &[(b"empty", b"")]);
    assert_eq!(store.get(A, b"empty").expect("get"), Some(Vec::new()));
    let longest = vec![0x5a; MAX_KEY_LEN];
    put_all(&*store, A, &[(&longest, b"v")]);
    assert_eq!(store.get(A, &longest).expect("get"), Some(b"v".to_vec()));

    for bad_key in [Vec::new(), vec![1u8; MAX_KEY_LEN + 1]] {
        let mut batch = WriteBatch::new();
        batch.put(A, b"first", b"1");
        batch.put(B, bad_key.clone(), b"2");
        let err = store
            .write(batch, Durability::Sync)
            .expect_err("invalid key refused");
        assert!(
            matches!(err, Error::InvalidKey { len, .. } if len == bad_key.len()),
            "{err}"
        );
        assert_eq!(
            store.get(A, b"first").expect("get"),
            None,
            "a refused batch writes nothing"
        );
    }

    let mut batch = WriteBatch::new();
    batch.put(A, b"first", b"1");
    batch.put("no_such_table", b"k", b"v");
    assert!(matches!(
        store.write(batch, Durability::Sync),
        Err(Error::UnknownTable(_))
    ));
    assert_eq!(store.get(A, b"first").expect("get"), None);
    assert!(matches!(
        store.get("no_such_table", b"k"),
        Err(Error::UnknownTable(_))
    ));
    assert!(matches!(
        store
            .scan("no_such_table", KeyRange::all(), Direction::Forward)
            .map(|_| ()),
        Err(Error::UnknownTable(_))
    ));
    let snapshot = store.snapshot().expect("snapshot");
    assert!(matches!(
        snapshot.get("no_such_table", b"k"),
        Err(Error::UnknownTable(_))
    ));
    assert_eq!(store.tables(), TABLES);
    assert_eq!(store.engine(), backend.name);
}

/// A batch over several tables applies in order and as a whole; multi_get answers in order.
pub fn batches_are_atomic_across_tables(backend: &Backend) {
    let dir = temp_dir(backend);
    let store = open(backend, dir.path(), TABLES);
    let mut batch = WriteBatch::new();
    batch.put(A, b"k1", b"a1");
    batch.put(B, b"k1", b"b1");
    batch.put(META, b"tip", b"7");
    batch.put(A, b"gone", b"x");
    batch.delete(A, b"gone");
    batch.delete(B, b"back");
    batch.put(B, b"back", b"y");
    batch.put(A, b"k1", b"a1-final");
    batch.delete(META, b"never-there");
    store.write(batch, Durability::Sync).expect("write");

    assert_eq!(
        store.get(A, b"k1").expect("get"),
        Some(b"a1-final".to_vec()),
        "later put wins"
    );
    assert_eq!(
        store.get(A, b"gone").expect("get"),
        None,
        "put then delete leaves nothing"
    );
    assert_eq!(
        store.get(B, b"back").expect("get"),
        Some(b"y".to_vec()),
        "delete then put keeps"
    );
    assert_eq!(
        store
            .multi_get(B, &[b"back", b"missing", b"k1"])
            .expect("multi_get"),
        vec![Some(b"y".to_vec()), None, Some(b"b1".to_vec())]
    );
    assert_eq!(store.get(META, b"tip").expect("get"), Some(b"7".to_vec()));
    store
        .write(WriteBatch::new(), Durability::Sync)
        .expect("an empty batch is fine");
}

fn be(n: u32) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

/// delete_range removes `start..end` and nothing else, including keys that extend `start`.
pub fn delete_range_removes_exactly_the_range(backend: &Backend) {
    let dir = temp_dir(backend);
    let store = open(backend, dir.path(), TABLES);
    let mut batch = WriteBatch::new();
    for i in 0..100u32 {
        batch.put(B, be(i), be(i * 2));
    }
    for k in [&b"a"[..], b"a\x00", b"ab", b"a\xff\xff", b"b", b"b\x00"] {
        batch.put(A, k, b"v");
    }
    store.write(batch, Durability::Sync).expect("write");

    let mut batch = WriteBatch::new();
    batch.delete_range(B, be(10), be(20));
    batch.delete_range(B, be(50), be(50)); // empty range: no-op
    batch.delete_range(B, be(90), be(80)); // reversed range: no-op
    batch.delete_range(A, b"a", b"b");
    store.write(batch, Durability::Sync).expect("write");

    let left: Vec<Vec<u8>> = keys(&all(&*store, B, Direction::Forward));
    let expected: Vec<Vec<u8>> = (0..100u32)
        .filter(|i| !(10..20).contains(i))
        .map(be)
        .collect();
    assert_eq!(left, expected);
    assert_eq!(
        keys(&all(&*store, A, Direction::Forward)),
        vec![b"b".to_vec(), b"b\x00".to_vec()]
    );

    // A range then a put inside it, in one batch: the put survives (operations apply in order).
    let mut batch = WriteBatch::new();
    batch.delete_range(B, be(0), be(100));
    batch.put(B, be(42), b"new");
    store.write(batch, Durability::Sync).expect("write");
    assert_eq!(
        all(&*store, B, Direction::Forward),
        vec![(be(42), b"new".to_vec())]
    );
}

/// Reverse scans visit exactly the forward scan's pairs backwards, over many keys and pages.
pub fn reverse_scans_mirror_forward_scans(backend: &Backend) {
    let dir = temp_dir(backend);
    let store = open(backend, dir.path(), TABLES);
    let mut batch = WriteBatch::new();
    for i in 0..5000u32 {
        let mut key = be(i % 50);
        key.extend_from_slice(&be(i));
        batch.put(B, key, be(i));
    }
    store.write(batch, Durability::Sync).expect("write");
    for prefix in [be(0), be(17), be(49)] {
        let forward = collect(&*store, B, KeyRange::prefix(&prefix), Direction::Forward);
        let mut reverse = collect(&*store, B, KeyRange::prefix(&prefix), Direction::Reverse);
        assert_eq!(forward.len(), 100);
        reverse.reverse();
        assert_eq!(forward, reverse);
    }
    let full = all(&*store, B, Direction::Forward);
    assert_eq!(full.len(), 5000);
    assert!(full.windows(2).all(|w| w[0].0 < w[1].0));
    let mut rev = all(&*store, B, Direction::Reverse);
    rev.reverse();
    assert_eq!(full, rev);
    // The same through a snapshot.
    let snapshot = store.snapshot().expect("snapshot");
    let mut snap_rev = all(&*snapshot, B, Direction::Reverse);
    snap_rev.reverse();
    assert_eq!(full, snap_rev);
}

/// Data written before a clean close is there after reopening, bulk writes included once synced.
pub fn reopen_after_clean_close(backend: &Backend) {
    if !backend.persistent {
        return;
    }
    let dir = temp_dir(backend);
    {
        let store = open(backend, dir.path(), TABLES);
        put_all(&*store, A, &[(b"k", b"v"), (b"\xff", b"ff")]);
        store.set_bulk_load(true).expect("bulk on");
        let mut batch = WriteBatch::new();
        for i in 0..1000u32 {
            batch.put(B, be(i), be(i));
        }
        store.write(batch, Durability::Bulk).expect("bulk write");
        store.sync().expect("sync");
        store.set_bulk_load(false).expect("bulk off");
    }
    let store = open(backend, dir.path(), TABLES);
    assert_eq!(store.get(A, b"k").expect("get"), Some(b"v".to_vec()));
    assert_eq!(store.get(A, b"\xff").expect("get"), Some(b"ff".to_vec()));
    assert_eq!(all(&*store, B, Direction::Forward).len(), 1000);
    let stats = store.stats().expect("stats");
    assert!(stats.disk_bytes > 0, "a persistent store occupies disk");
    assert_eq!(stats.tables.len(), TABLES.len());
    let b_rows = &stats.tables[1];
    assert_eq!(b_rows.name, B);
    if b_rows.rows_exact {
        assert_eq!(b_rows.rows, 1000);
    } else {
        assert!(
            b_rows.rows > 0,
            "an estimate of a non-empty table is not zero"
        );
    }
    store.compact().expect("compact");
    assert_eq!(all(&*store, B, Direction::Forward).len(), 1000);
}

/// A database open in one store is refused to a second open (from this process or another)
/// until the first is dropped: two writers would each trust their own view of the index.
pub fn a_second_open_is_refused_while_the_first_is_open(backend: &Backend) {
    if !backend.persistent {
        return;
    }
    let dir = temp_dir(backend);
    let store = open(backend, dir.path(), TABLES);
    put_all(&*store, A, &[(b"k", b"v")]);
    match (backend.open)(dir.path(), TABLES) {
        Ok(_) => panic!(
            "{}: a second open of an open database succeeded",
            backend.name
        ),
        Err(e) => assert!(
            e.to_string().contains("in use"),
            "{}: the refusal does not say the database is in use: {e}",
            backend.name
        ),
    }
    assert_eq!(store.get(A, b"k").expect("get"), Some(b"v".to_vec()));
    drop(store);
    let store = open(backend, dir.path(), TABLES);
    assert_eq!(store.get(A, b"k").expect("get"), Some(b"v".to_vec()));
}

/// A snapshot keeps seeing the state it was taken at while the store moves on.
pub fn snapshots_are_isolated_from_later_commits(backend: &Backend) {
    let dir = temp_dir(backend);
    let store = open(backend, dir.path(), TABLES);
    let mut batch = WriteBatch::new();
    for i in 0..100u32 {
        batch.put(B, be(i), b"old");
    }
    batch.put(A, b"k", b"old");
    store.write(batch, Durability::Sync).expect("write");

    let snapshot = store.snapshot().expect("snapshot");
    let before = all(&*snapshot, B, Direction::Forward);
    let mut batch = WriteBatch::new();
    batch.put(A, b"k", b"new");
    batch.put(A, b"added", b"new");
    batch.delete_range(B, be(0), be(50));
    batch.put(B, be(7), b"new");
    store.write(batch, Durability::Sync).expect("write");

    assert_eq!(snapshot.get(A, b"k").expect("get"), Some(b"old".to_vec()));
    assert_eq!(snapshot.get(A, b"added").expect("get"), None);
    assert_eq!(all(&*snapshot, B, Direction::Forward), before);
    assert_eq!(before.len(), 100);
    assert_eq!(store.get(A, b"k").expect("get"), Some(b"new".to_vec()));
    assert_eq!(all(&*store, B, Direction::Forward).len(), 51);
}

/// Readers on other threads always see whole batches: each batch moves one unit between two
/// tables' counters, so every consistent view sums to the same total.
pub fn concurrent_readers_see_whole_batches(backend: &Backend) {
    let dir = temp_dir(backend);
    let store: Arc<dyn Store> = Arc::from(open(backend, dir.path(), TABLES));
    const TOTAL: u64 = 1_000_000;
    let mut batch = WriteBatch::new();
    batch.put(A, b"counter", TOTAL.to_be_bytes());
    batch.put(B, b"counter", 0u64.to_be_bytes());
    store.write(batch, Durability::Sync).expect("write");

    let read = |view: &dyn ReadView, table: &str| -> u64 {
        let bytes = view
            .get(table, b"counter")
            .expect("get")
            .expect("counter present");
        u64::from_be_bytes(bytes.try_into().expect("8-byte counter"))
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut views = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || views < 10 {
                    let snapshot = store.snapshot().expect("snapshot");
                    let sum = read(&*snapshot, A) + read(&*snapshot, B);
                    assert_eq!(sum, TOTAL, "a snapshot saw half a batch");
                    let rows = collect(&*snapshot, META, KeyRange::all(), Direction::Forward);
                    assert_eq!(
                        rows.len() as u64,
                        read(&*snapshot, B),
                        "rows and counter agree"
                    );
                    views += 1;
                }
                views
            })
        })
        .collect();
    for i in 1..=200u64 {
        let snapshot = store.snapshot().expect("snapshot");
        let (a, b) = (read(&*snapshot, A), read(&*snapshot, B));
        drop(snapshot);
        let mut batch = WriteBatch::new();
        batch.put(A, b"counter", (a - 1).to_be_bytes());
        batch.put(META, i.to_be_bytes(), b"row");
        batch.put(B, b"counter", (b + 1).to_be_bytes());
        store.write(batch, Durability::Bulk).expect("write");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().expect("reader thread") >= 10);
    }
    assert_eq!(read(&*store, B), 200);
}

/// Values of 1 MiB and more round-trip through get and scan, and survive a reopen.
pub fn large_values_round_trip(backend: &Backend) {
    let dir = temp_dir(backend);
    let big: Vec<u8> = (0..(4 << 20))
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mib = big[..1 << 20].to_vec();
    {
        let store = open(backend, dir.path(), TABLES);
        put_all(&*store, A, &[(b"big", &big), (b"mib", &mib)]);
        assert_eq!(
            store.get(A, b"big").expect("get").as_deref(),
            Some(&big[..])
        );
        let scanned = all(&*store, A, Direction::Forward);
        assert_eq!(scanned.len(), 2);
        assert_eq!(scanned[1].1, mib);
        if !backend.persistent {
            return;
        }
    }
    let store = open(backend, dir.path(), TABLES);
    assert_eq!(
        store.get(A, b"mib").expect("get").as_deref(),
        Some(&mib[..])
    );
    assert_eq!(
        store.get(A, b"big").expect("get").map(|v| v.len()),
        Some(4 << 20)
    );
}

/// A database opened with tables it does not hold (some, not all: a new database gets them
/// all) is refused as corrupt, naming them, and nothing is created: that is how a database
/// that lost a table (a dropped column family) stays refused instead of answering from an
/// empty table. Opened with its own tables again, it is whole.
pub fn missing_tables_are_refused(backend: &Backend) {
    if !backend.persistent {
        return;
    }
    let dir = temp_dir(backend);
    {
        let store = open(backend, dir.path(), TABLES);
        put_all(&*store, A, &[(b"k", b"v")]);
    }
    let more = [TABLES, &[Table::new("extra_table")]].concat();
    for _ in 0..2 {
        match (backend.open)(dir.path(), &more) {
            Ok(_) => panic!(
                "{}: a database without a declared table opened",
                backend.name
            ),
            Err(e) => {
                assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{}: {e}", backend.name);
                assert!(
                    e.to_string().contains("extra_table"),
                    "{}: {e}",
                    backend.name
                );
            }
        }
    }
    let store = open(backend, dir.path(), TABLES);
    assert_eq!(store.get(A, b"k").expect("get"), Some(b"v".to_vec()));
}

/// Sixty-four tables, each its own key space, all written in one batch.
pub fn many_tables(backend: &Backend) {
    let names: Vec<&'static str> = (0..64)
        .map(|i| &*Box::leak(format!("table_{i:02}").into_boxed_str()))
        .collect();
    let tables: Vec<Table> = names.iter().map(|n| Table::new(n)).collect();
    let dir = temp_dir(backend);
    {
        let store = open(backend, dir.path(), &tables);
        let mut batch = WriteBatch::new();
        for (i, name) in names.iter().enumerate() {
            batch.put(name, b"same-key", be(i as u32));
        }
        store.write(batch, Durability::Sync).expect("write");
        if !backend.persistent {
            return;
        }
    }
    let store = open(backend, dir.path(), &tables);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            store.get(name, b"same-key").expect("get"),
            Some(be(i as u32))
        );
        assert_eq!(all(&*store, name, Direction::Forward).len(), 1);
    }
}

/// Tens of megabytes in bulk batches: the store grows as needed (LMDB's map included).
pub fn grows_far_past_small_sizes(backend: &Backend) {
    let dir = temp_dir(backend);
    let store = open(backend, dir.path(), TABLES);
    store.set_bulk_load(true).expect("bulk on");
    let value = vec![0xabu8; 1000];
    for round in 0..12u32 {
        let mut batch = WriteBatch::new();
        for i in 0..5000u32 {
            let mut key = be(round);
            key.extend_from_slice(&be(i));
            batch.put(B, key, value.clone());
        }
        store
            .write(batch, Durability::Bulk)
            .expect("bulk write of 5 MB");
    }
    store.sync().expect("sync");
    store.set_bulk_load(false).expect("bulk off");
    let mut count = 0;
    for item in store
        .scan(B, KeyRange::all(), Direction::Forward)
        .expect("scan")
    {
        let (_, v) = item.expect("row");
        assert_eq!(v.len(), 1000);
        count += 1;
    }
    assert_eq!(count, 60_000);
}

/// A key of one to three bytes drawn from `alphabet`: few enough distinct keys that random
/// operations keep hitting the same ones, and prefixes of each other.
fn short_key(rng: &mut rand::rngs::StdRng, alphabet: &[u8]) -> Vec<u8> {
    let len = rng.gen_range(1..4);
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
        .collect()
}

/// Random batches applied to the engine and to [`MemoryStore`] leave identical tables.
pub fn differential_against_memory(backend: &Backend) {
    let dir = temp_dir(backend);
    let store = open(backend, dir.path(), TABLES);
    let oracle = MemoryStore::new(TABLES);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x616e6f6465);
    let random_key = |rng: &mut rand::rngs::StdRng| short_key(rng, &[0, 1, 0x7f, 0xfe, 0xff]);
    for _ in 0..300 {
        let mut batch = WriteBatch::new();
        for _ in 0..rng.gen_range(1..20) {
            let table = [A, B, META][rng.gen_range(0..3)];
            match rng.gen_range(0..10) {
                0..=5 => {
                    let value: Vec<u8> = (0..rng.gen_range(0..5)).map(|_| rng.gen()).collect();
                    batch.put(table, random_key(&mut rng), value);
                }
                6..=8 => batch.delete(table, random_key(&mut rng)),
                _ => batch.delete_range(table, random_key(&mut rng), random_key(&mut rng)),
            }
        }
        store
            .write(batch.clone(), Durability::Bulk)
            .expect("engine write");
        oracle.write(batch, Durability::Bulk).expect("oracle write");
    }
    for table in [A, B, META] {
        for direction in [Direction::Forward, Direction::Reverse] {
            assert_eq!(
                all(&*store, table, direction),
                all(&oracle, table, direction),
                "{table}"
            );
        }
        for _ in 0..50 {
            let prefix = random_key(&mut rng);
            let range = KeyRange::prefix(&prefix[..1]);
            assert_eq!(
                collect(&*store, table, range.clone(), Direction::Reverse),
                collect(&oracle, table, range, Direction::Reverse)
            );
            assert_eq!(
                store.get(table, &prefix).expect("get"),
                oracle.get(table, &prefix).expect("get")
            );
        }
    }
}

/// Batches of ascending runs, as the index writes them: runs that start past a table's last key
/// (an engine may take a fast path there) mixed with runs that start inside it, keys that are
/// prefixes of others, a key put twice in one batch, and deletes of the last key and of ranges
/// at the end, which an engine's notion of "the last key" must survive. Checked against the
/// memory engine after every batch.
pub fn ascending_runs_match_the_oracle(backend: &Backend) {
    let dir = temp_dir(backend);
    let store = open(backend, dir.path(), TABLES);
    let oracle = MemoryStore::new(TABLES);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x72756e73);
    let random_key = |rng: &mut rand::rngs::StdRng| short_key(rng, &[0, 1, 2, 0x80, 0xff]);
    for round in 0..200 {
        let table = [A, B][rng.gen_range(0..2)];
        let last = all(&oracle, table, Direction::Reverse)
            .first()
            .map(|(k, _)| k.clone());
        let mut batch = WriteBatch::new();
        if let Some(last) = &last {
            match rng.gen_range(0..4) {
                0 => batch.delete(table, last.clone()),
                1 => batch.delete_range(table, random_key(&mut rng), vec![0xff; 4]),
                _ => {}
            }
        }
        let mut run: Vec<Vec<u8>> = (0..rng.gen_range(1..30))
            .map(|_| random_key(&mut rng))
            .collect();
        run.sort();
        run.dedup();
        if rng.gen_bool(0.5) {
            // Mostly past the end: keep the keys above the last one.
            if let Some(last) = &last {
                run.retain(|k| k > last);
            }
        }
        for key in &run {
            let value = vec![round as u8, rng.gen()];
            batch.put(table, key.clone(), value);
        }
        if let Some(again) = run.first().filter(|_| rng.gen_bool(0.3)) {
            batch.put(table, again.clone(), vec![0xaa, round as u8]);
        }
        if batch.is_empty() {
            continue;
        }
        store
            .write(batch.clone(), Durability::Bulk)
            .expect("engine write");
        oracle.write(batch, Durability::Bulk).expect("oracle write");
        for direction in [Direction::Forward, Direction::Reverse] {
            assert_eq!(
                all(&*store, table, direction),
                all(&oracle, table, direction),
                "round {round}, {table}"
            );
        }
    }
}

/// A path that is a file, an unwritable directory, or another engine's directory is refused
/// with an error that names the problem, never a panic.
pub fn bad_paths_are_refused_clearly(backend: &Backend) {
    if !backend.persistent {
        return;
    }
    let dir = temp_dir(backend);
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a database").expect("write file");
    let err = (backend.open)(&file, TABLES)
        .map(|_| ())
        .expect_err("a file is not a database");
    assert!(matches!(err, Error::Open { .. }), "{err}");

    let other = dir.path().join("other-engine");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join(crate::marker::MARKER_FILE), b"some-other-engine").expect("marker");
    let err = (backend.open)(&other, TABLES)
        .map(|_| ())
        .expect_err("another engine's directory");
    assert!(
        matches!(err, Error::WrongEngine { ref found, .. } if found == "some-other-engine"),
        "{err}"
    );

    let read_only = read_only_dir(dir.path());
    let err = (backend.open)(&read_only, TABLES)
        .map(|_| ())
        .expect_err("an unwritable directory");
    assert!(matches!(err, Error::Open { .. }), "{err}");
}

/// A directory where a new database cannot be created. `chmod` does not stop root, so when the
/// tests run as root (as CI does) the path lies on a read-only filesystem instead.
fn read_only_dir(base: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = base.join("read-only");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    if std::fs::write(dir.join("probe"), b"x").is_err() {
        return dir.join("db");
    }
    std::path::PathBuf::from("/proc/self/anode-contract-db")
}

const CRASH_ROWS_PER_BATCH: u32 = 20_000;
/// Environment variable that turns the crash test's helper into the writing child.
pub const CRASH_CHILD_ENV: &str = "ANODE_CONTRACT_CRASH_DIR";

/// The child of [`kill_9_mid_batch`]: commits numbered batches until it is killed, printing
/// each number once its commit returned. Does nothing unless [`CRASH_CHILD_ENV`] is set.
pub fn crash_child(backend: &Backend) {
    let Some(dir) = std::env::var_os(CRASH_CHILD_ENV) else {
        return;
    };
    let store = open(backend, Path::new(&dir), TABLES);
    let next = match store.get(META, b"last").expect("get") {
        Some(bytes) => u32::from_be_bytes(bytes.try_into().expect("4-byte batch number")) + 1,
        None => 0,
    };
    let value = vec![0x5au8; 100];
    for n in next.. {
        let mut batch = WriteBatch::with_capacity(CRASH_ROWS_PER_BATCH as usize + 2);
        for j in 0..CRASH_ROWS_PER_BATCH {
            let mut key = be(n);
            key.extend_from_slice(&be(j));
            batch.put(A, key, value.clone());
        }
        batch.put(B, be(n), be(CRASH_ROWS_PER_BATCH));
        batch.put(META, b"last", be(n));
        store.write(batch, Durability::Sync).expect("write");
        // The parent reads acknowledgements from the child's stdout.
        #[allow(clippy::print_stdout)]
        {
            println!("committed {n}");
        }
    }
}

/// `kill -9` of a child in the middle of long batches: after each kill the store reopens, holds
/// every acknowledged batch, and holds each batch entirely or not at all.
///
/// `child_test` is the libtest name of the test that calls [`crash_child`] for this backend.
pub fn kill_9_mid_batch(backend: &Backend, child_test: &str) {
    if !backend.persistent {
        return;
    }
    let dir = temp_dir(backend);
    let exe = std::env::current_exe().expect("test binary path");
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut acknowledged: Option<u32> = None;
    for round in 0..4 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                child_test,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the writing child");
        let stdout = child.stdout.take().expect("piped stdout");
        let wanted = rng.gen_range(1..4);
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("child output");
            if let Some(n) = line.strip_prefix("committed ") {
                acknowledged = Some(n.trim().parse().expect("batch number"));
                seen += 1;
                if seen == wanted {
                    break;
                }
            }
        }
        // Land the kill somewhere inside the next batch's build or commit.
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..40)));
        child.kill().expect("SIGKILL the child");
        child.wait().expect("reap the child");
        assert!(
            seen == wanted,
            "round {round}: the child stopped before committing {wanted} batches"
        );

        let store = open(backend, dir.path(), TABLES);
        let batches = all(&*store, B, Direction::Forward);
        let last = store
            .get(META, b"last")
            .expect("get")
            .expect("some batch committed");
        let last = u32::from_be_bytes(last.try_into().expect("4-byte batch number"));
        assert_eq!(
            batches.len() as u32,
            last + 1,
            "round {round}: batch rows 0..=last"
        );
        assert!(
            Some(last) >= acknowledged,
            "round {round}: an acknowledged batch was lost"
        );
        for n in 0..=last {
            let rows = store
                .scan(A, KeyRange::prefix(&be(n)), Direction::Forward)
                .expect("scan")
                .count();
            assert_eq!(
                rows as u32, CRASH_ROWS_PER_BATCH,
                "round {round}: batch {n} is torn"
            );
        }
        let beyond = store
            .scan(A, KeyRange::prefix(&be(last + 1)), Direction::Forward)
            .expect("scan")
            .count();
        assert_eq!(
            beyond, 0,
            "round {round}: rows of an uncommitted batch are visible"
        );
    }
}

/// Expands the whole contract into `#[test]`s in a module named after the backend.
///
/// ```ignore
/// anode_store::store_contract_tests!(lmdb, persistent = true, |path, tables| {
///     Ok(Box::new(LmdbStore::open(path, tables, LmdbOptions::default())?) as Box<dyn Store>)
/// });
/// ```
#[macro_export]
macro_rules! store_contract_tests {
    ($name:ident, persistent = $persistent:expr, $open:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn backend() -> $crate::contract::Backend {
                $crate::contract::Backend {
                    name: stringify!($name),
                    open: $open,
                    persistent: $persistent,
                }
            }

            $crate::store_contract_tests!(@tests
                key_ordering,
                keys_values_and_tables_are_validated,
                batches_are_atomic_across_tables,
                delete_range_removes_exactly_the_range,
                reverse_scans_mirror_forward_scans,
                reopen_after_clean_close,
                a_second_open_is_refused_while_the_first_is_open,
                snapshots_are_isolated_from_later_commits,
                concurrent_readers_see_whole_batches,
                large_values_round_trip,
                many_tables,
                missing_tables_are_refused,
                grows_far_past_small_sizes,
                differential_against_memory,
                ascending_runs_match_the_oracle,
                bad_paths_are_refused_clearly
            );

            /// The writing child of `kill_9_mid_batch`; run only by that test.
            #[test]
            #[ignore = "child process of kill_9_mid_batch"]
            fn crash_child() {
                $crate::contract::crash_child(&backend());
            }

            #[test]
            fn kill_9_mid_batch() {
                // libtest names tests by module path without the crate name.
                let path = module_path!();
                let module = path.split_once("::").map_or(path, |(_, rest)| rest);
                $crate::contract::kill_9_mid_batch(&backend(), &format!("{module}::crash_child"));
            }
        }
    };
    (@tests $($test:ident),*) => {
        $(
            #[test]
            fn $test() {
                $crate::contract::$test(&backend());
            }
        )*
    };
}
