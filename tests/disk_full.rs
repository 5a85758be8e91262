//! A full disk, survived and explained, and a failing disk, stopped on clearly.
//!
//! Faults are injected with `anode_store::fault::FaultyStore` (any engine; the Nth write batch,
//! or every write from the Nth on until cleared): a failed flush must leave the store and the
//! writer exactly as before; the sync must report a full disk once, wait with its pending
//! blocks, and carry on by itself once there is room, ending with the index of a clean sync;
//! an I/O error must stop it with a message naming the directory, and the database must reopen
//! and resume. `a_real_full_disk_...` does the same on a small tmpfs that fills for real (as
//! root only).

// A skipped run says so on stderr, where cargo test shows it; the real disk's messages are
// printed there too, for the record.
#![allow(clippy::print_stderr)]

mod support;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anode::index::chain::STATE_KEY;
use anode::index::schema::META;
use anode::index::{IndexError, IndexWriter, Indexer, SyncError, SyncOptions, WriterOptions};
use anode::query::{ChainQuery, Hash32};
use anode::simulator::Simulator;
use anode_coins::ParsedBlock;
use anode_store::fault::{Fault, FaultyStore};
use anode_store::{Durability, ErrorKind, Store};
use support::index::*;
use support::logs;

const REORG_LIMIT: u32 = 6;
/// A small cache: the initial sync flushes every few blocks.
const CACHE_BYTES: usize = 16 << 10;
/// The longest any wait of these tests may take before it counts as a hang.
const PATIENCE: Duration = Duration::from_secs(60);

fn fast_retries() -> SyncOptions {
    SyncOptions {
        disk_full_retry: Duration::from_millis(10),
        ..SyncOptions::default()
    }
}

/// Every block of `sim`, parsed: (height, hash, block).
fn parsed_blocks(sim: &Simulator) -> Vec<(u32, Hash32, ParsedBlock)> {
    let coin = regtest();
    sim.with_chain(|chain| {
        (0..=chain.height())
            .map(|height| {
                let block = chain.block(height).expect("block");
                let parsed = coin.parse_block(&block.raw, Some(height)).expect("parse");
                (height, block.hash, parsed)
            })
            .collect()
    })
}

/// Height of the state row: the last block the store holds.
fn stored_height(store: &dyn Store) -> Option<u32> {
    store
        .get(META, STATE_KEY)
        .expect("read the state row")
        .map(|row| u32::from_be_bytes(row[..4].try_into().expect("4 bytes")))
}

/// What a failed flush must not change: the store's rows and the writer's whole state.
#[derive(Debug, PartialEq)]
struct Observed {
    rows: std::collections::BTreeMap<(&'static str, Vec<u8>), Vec<u8>>,
    tip: Option<(u32, Hash32)>,
    flushed: Option<anode::index::IndexState>,
    pending_bytes: usize,
    has_pending: bool,
    view: (Vec<Hash32>, Vec<u64>, Vec<u8>),
}

impl Observed {
    fn of(writer: &IndexWriter, store: &dyn Store) -> Self {
        let view = writer.shared_chain().view();
        Observed {
            rows: dump(store),
            tip: writer.tip(),
            flushed: writer.flushed(),
            pending_bytes: writer.pending_bytes(),
            has_pending: writer.has_pending(),
            view: (
                view.hashes.clone(),
                view.tx_counts.clone(),
                view.tip_header.clone(),
            ),
        }
    }
}

fn open_writer(store: Arc<dyn Store>) -> IndexWriter {
    IndexWriter::open(
        store,
        regtest(),
        WriterOptions {
            reorg_limit: REORG_LIMIT,
            cache_bytes: CACHE_BYTES,
        },
    )
    .expect("open the index")
}

#[test]
fn a_failed_flush_leaves_the_store_and_the_writer_as_they_were_on_every_engine() {
    let sim = simulator(21, 30);
    let blocks = parsed_blocks(&sim);
    let last = blocks.len() as u32 - 1;
    for engine in engines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let faulty = Arc::new(FaultyStore::new(open(engine, &dir.path().join("faulty"))));
        let clean = open(engine, &dir.path().join("clean"));
        let mut writer = open_writer(Arc::clone(&faulty) as Arc<dyn Store>);
        let mut reference = open_writer(Arc::clone(&clean));
        for chunk in blocks.chunks(7) {
            for (height, hash, block) in chunk {
                let keep_undo = *height + REORG_LIMIT > last;
                writer
                    .apply_block(*height, *hash, block, keep_undo)
                    .expect("apply");
                reference
                    .apply_block(*height, *hash, block, keep_undo)
                    .expect("apply");
            }
            let before = Observed::of(&writer, faulty.inner().as_ref());
            for (fault, kind) in [
                (Fault::NoSpace, ErrorKind::NoSpace),
                (Fault::Io, ErrorKind::Io),
            ] {
                faulty.fail_nth_write(1, fault);
                let err = writer
                    .flush(Durability::Bulk)
                    .expect_err("the injected fault fails the flush");
                assert!(matches!(err, IndexError::Flush { .. }), "{engine}: {err}");
                assert_eq!(err.store_error().map(|e| e.kind()), Some(kind), "{err}");
                assert_eq!(
                    Observed::of(&writer, faulty.inner().as_ref()),
                    before,
                    "{engine}: a flush failing with {kind} changed the store or the writer"
                );
            }
            writer
                .flush(Durability::Bulk)
                .expect("the same flush, retried");
            reference.flush(Durability::Bulk).expect("flush");
            assert_eq!(
                first_difference(&dump(faulty.inner().as_ref()), &dump(clean.as_ref())),
                None,
                "{engine}: a retried flush differs from one that never failed"
            );
        }
        // Taking a block out is one more batch: a failed one changes nothing either.
        let before = Observed::of(&writer, faulty.inner().as_ref());
        faulty.fail_nth_write(1, Fault::NoSpace);
        let err = writer
            .undo_tip()
            .expect_err("the injected fault fails the undo");
        assert_eq!(
            err.store_error().map(|e| e.kind()),
            Some(ErrorKind::NoSpace)
        );
        assert_eq!(
            Observed::of(&writer, faulty.inner().as_ref()),
            before,
            "{engine}: undo"
        );
        writer.undo_tip().expect("the undo, retried");
        reference.undo_tip().expect("undo");
        assert_eq!(
            first_difference(&dump(faulty.inner().as_ref()), &dump(clean.as_ref())),
            None,
            "{engine}: after a retried undo"
        );
    }
}

/// Polls `sync` until `ready` holds; panics if the sync ends first or takes all of PATIENCE.
async fn run_until<F>(mut sync: Pin<&mut F>, what: &str, ready: impl Fn() -> bool)
where
    F: Future,
    F::Output: std::fmt::Debug,
{
    let since = Instant::now();
    while !ready() {
        assert!(since.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::select! {
            ended = &mut sync => panic!("the sync ended before {what}: {ended:?}"),
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
}

/// Checks the sync of `idx` over `faulty` while it waits for space: nothing changes in the
/// store however often the write is retried, readers see the last committed state, and the
/// writer still holds the blocks it could not write.
async fn check_outage<F>(mut sync: Pin<&mut F>, idx: &Indexer, faulty: &FaultyStore, what: &str)
where
    F: Future,
    F::Output: std::fmt::Debug,
{
    run_until(sync.as_mut(), what, || idx.waiting_for_space()).await;
    let rows = dump(faulty.inner().as_ref());
    let committed = stored_height(faulty.inner().as_ref());
    let failures = faulty.injected();
    run_until(sync.as_mut(), "two more attempts", || {
        faulty.injected() >= failures + 2
    })
    .await;
    assert_eq!(
        first_difference(&dump(faulty.inner().as_ref()), &rows),
        None,
        "{what}: a retry changed the store"
    );
    assert_eq!(
        Some(idx.query().tip().height),
        committed,
        "{what}: readers see the last committed block"
    );
    assert!(
        idx.tip().map(|t| t.0) > committed,
        "{what}: the writer keeps the blocks it could not write"
    );
    assert!(idx.waiting_for_space(), "{what}");
}

#[test]
fn the_sync_waits_out_a_full_disk_at_a_bulk_flush_and_at_the_tip_then_matches_a_clean_sync() {
    let rt = runtime();
    for engine in engines().into_iter().filter(|e| *e != "memory") {
        let sim = simulator(31, 40);
        let dir = tempfile::tempdir().expect("tempdir");
        let clean_store = open(engine, &dir.path().join("clean"));
        let clean = indexer(Arc::clone(&clean_store), &sim, REORG_LIMIT, CACHE_BYTES);
        catch_up(&rt, &clean);

        let db = dir.path().join("db");
        let faulty = Arc::new(FaultyStore::new(open(engine, &db)));
        let idx = indexer_with_options(
            Arc::clone(&faulty) as Arc<dyn Store>,
            &sim,
            REORG_LIMIT,
            CACHE_BYTES,
            fast_retries(),
        );
        let (_guard, log) = logs::capture();

        // The initial sync: the third flush finds the disk full, and so does every retry.
        faulty.fail_writes_from(3, Fault::NoSpace);
        let mut progress = anode::index::Progress::new(false);
        let outcome = rt.block_on(async {
            let sync = idx.catch_up(&mut progress);
            tokio::pin!(sync);
            check_outage(sync.as_mut(), &idx, &faulty, "a full disk at a bulk flush").await;
            faulty.clear();
            sync.await
        });
        outcome.unwrap_or_else(|e| panic!("{engine}: the sync did not carry on: {e}"));
        assert!(!idx.waiting_for_space());
        assert_eq!(
            first_difference(&dump(faulty.inner().as_ref()), &dump(clean_store.as_ref())),
            None,
            "{engine}: after a full disk in the initial sync"
        );

        // At the tip: a new block is one synced flush.
        sim.with_chain_mut(|c| c.mine(1, true)).expect("mine");
        catch_up(&rt, &clean);
        faulty.fail_writes_from(1, Fault::NoSpace);
        let outcome = rt.block_on(async {
            let sync = idx.catch_up(&mut progress);
            tokio::pin!(sync);
            check_outage(sync.as_mut(), &idx, &faulty, "a full disk at the tip").await;
            faulty.clear();
            sync.await
        });
        outcome.unwrap_or_else(|e| panic!("{engine}: the sync did not carry on: {e}"));
        assert_eq!(
            first_difference(&dump(faulty.inner().as_ref()), &dump(clean_store.as_ref())),
            None,
            "{engine}: after a full disk at the tip"
        );

        // One error per outage, naming the directory and its free space; one line when it ends.
        let errors = log.lines("ERROR", "the database disk is full");
        assert_eq!(errors.len(), 2, "{engine}: {errors:#?}");
        for line in &errors {
            assert!(line.contains(&db.display().to_string()), "{line}");
            assert!(line.contains(" free, too little for block"), "{line}");
            assert!(line.contains("no restart needed"), "{line}");
            assert!(line.contains("injected fault"), "{line}");
        }
        assert!(errors[1].contains("too little for block "), "{}", errors[1]);
        assert_eq!(
            log.lines("INFO", "the database disk has room again").len(),
            2,
            "{engine}: {}",
            log.text()
        );
        assert_eq!(log.lines("ERROR", "").len(), 2, "{engine}: {}", log.text());
    }
}

#[test]
fn an_io_error_stops_the_sync_naming_the_directory_and_the_database_resumes_after_a_reopen() {
    let rt = runtime();
    let sim = simulator(41, 30);
    for engine in engines().into_iter().filter(|e| *e != "memory") {
        let dir = tempfile::tempdir().expect("tempdir");
        let clean_store = open(engine, &dir.path().join("clean"));
        catch_up(
            &rt,
            &indexer(Arc::clone(&clean_store), &sim, REORG_LIMIT, CACHE_BYTES),
        );

        let db = dir.path().join("db");
        let faulty = Arc::new(FaultyStore::new(open(engine, &db)));
        let idx = indexer_with_options(
            Arc::clone(&faulty) as Arc<dyn Store>,
            &sim,
            REORG_LIMIT,
            CACHE_BYTES,
            fast_retries(),
        );
        faulty.fail_nth_write(3, Fault::Io);
        let err = rt
            .block_on(idx.catch_up(&mut anode::index::Progress::new(false)))
            .expect_err("an I/O error stops the sync");
        let text = err.to_string();
        assert!(matches!(err, SyncError::Storage { .. }), "{engine}: {text}");
        for expected in [
            format!("I/O error in the database directory {}", db.display()),
            "injected fault during write batch 3".to_string(),
            "the next start resumes from there".to_string(),
        ] {
            assert!(
                text.contains(&expected),
                "{engine}: `{expected}` missing: {text}"
            );
        }
        assert_eq!(
            faulty.injected(),
            1,
            "{engine}: an I/O error is not retried"
        );
        let committed = stored_height(faulty.inner().as_ref());
        drop((idx, faulty));

        let store = open(engine, &db);
        let resumed = indexer(Arc::clone(&store), &sim, REORG_LIMIT, CACHE_BYTES);
        assert_eq!(
            resumed.tip().map(|t| t.0),
            committed,
            "{engine}: reopens at its last flush"
        );
        catch_up(&rt, &resumed);
        assert_eq!(
            first_difference(&dump(store.as_ref()), &dump(clean_store.as_ref())),
            None,
            "{engine}: resumed after an I/O error"
        );
    }
}

#[test]
fn a_stop_while_the_disk_is_full_says_so_and_the_next_start_resumes() {
    let rt = runtime();
    let sim = simulator(51, 30);
    let engine = engines()[0];
    let dir = tempfile::tempdir().expect("tempdir");
    let clean_store = open(engine, &dir.path().join("clean"));
    catch_up(
        &rt,
        &indexer(Arc::clone(&clean_store), &sim, REORG_LIMIT, CACHE_BYTES),
    );

    let db = dir.path().join("db");
    let faulty = Arc::new(FaultyStore::new(open(engine, &db)));
    let idx = Arc::new(indexer_with_options(
        Arc::clone(&faulty) as Arc<dyn Store>,
        &sim,
        REORG_LIMIT,
        CACHE_BYTES,
        fast_retries(),
    ));
    faulty.fail_writes_from(2, Fault::NoSpace);
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let ended = rt.block_on(async {
        let run = Arc::clone(&idx).run(shutdown_rx);
        tokio::pin!(run);
        run_until(run.as_mut(), "the wait for space", || {
            idx.waiting_for_space()
        })
        .await;
        shutdown.send_replace(true);
        run.await
    });
    let err = ended.expect_err("stopping with unwritten blocks is an error");
    let text = err.to_string();
    for expected in [
        "stopped while the database disk was full".to_string(),
        db.display().to_string(),
        "the next start resumes from there".to_string(),
    ] {
        assert!(text.contains(&expected), "`{expected}` missing: {text}");
    }
    let committed = stored_height(faulty.inner().as_ref());
    drop((idx, faulty));

    let store = open(engine, &db);
    let resumed = indexer(Arc::clone(&store), &sim, REORG_LIMIT, CACHE_BYTES);
    assert_eq!(resumed.tip().map(|t| t.0), committed);
    catch_up(&rt, &resumed);
    assert_eq!(
        first_difference(&dump(store.as_ref()), &dump(clean_store.as_ref())),
        None,
        "resumed after a stop during a full disk"
    );
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

/// A tmpfs mounted for one test, unmounted however the test ends.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "anode-test"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs failed: {status}");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn resize(&self, bytes: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(self.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -o remount failed: {status}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(self.path()).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            // Busy (a store still open while a test unwinds): detach it now, the kernel frees
            // it when the last file closes.
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

/// A chain whose index takes about 0.6 MB in RocksDB, 1 MB in LMDB and 11 MB in SQLite
/// (mostly its WAL).
const REAL_DISK_BLOCKS: u32 = 300;
/// (engine, tmpfs bytes the chain overflows): about half of what the engine needs, and room
/// for what it writes at open.
const REAL_DISK: &[(&str, u64)] = &[
    ("rocksdb", 256 << 10),
    ("lmdb", 512 << 10),
    ("sqlite", 2 << 20),
];
/// What the tmpfs grows to: room for every engine's whole index, and for the one write buffer
/// (64 MiB) that RocksDB wants free before it resumes writing.
const REAL_DISK_GROWN: u64 = 256 << 20;

#[test]
fn a_real_full_disk_is_reported_and_the_sync_resumes_when_the_filesystem_grows() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let rt = runtime();
    let sim = simulator(61, REAL_DISK_BLOCKS);
    for engine in anode::store_factory::available_engines() {
        let Some(&(_, size)) = REAL_DISK.iter().find(|(name, _)| *name == engine) else {
            panic!("no tmpfs size for engine {engine}");
        };
        let clean_dir = tempfile::tempdir().expect("tempdir");
        let clean_store = open(engine, clean_dir.path());
        catch_up(
            &rt,
            &indexer(Arc::clone(&clean_store), &sim, REORG_LIMIT, CACHE_BYTES),
        );

        let tmpfs = Tmpfs::mount(size);
        let db = tmpfs.path().join("db");
        let store = open(engine, &db);
        let idx = indexer_with_options(
            Arc::clone(&store),
            &sim,
            REORG_LIMIT,
            CACHE_BYTES,
            fast_retries(),
        );
        let (guard, log) = logs::capture();
        let mut progress = anode::index::Progress::new(false);
        let outcome = rt.block_on(async {
            let sync = idx.catch_up(&mut progress);
            tokio::pin!(sync);
            run_until(sync.as_mut(), "the tmpfs to fill", || {
                idx.waiting_for_space()
            })
            .await;
            tmpfs.resize(REAL_DISK_GROWN);
            tokio::time::timeout(PATIENCE, sync).await
        });
        let outcome = outcome.unwrap_or_else(|_| {
            panic!(
                "{engine}: the sync did not resume after the tmpfs grew; it logged:\n{}",
                log.text()
            )
        });
        drop(guard);
        let errors = log.lines("ERROR", "");
        eprintln!("{engine} on a full tmpfs logged:\n{}", log.text());
        outcome.unwrap_or_else(|e| panic!("{engine}: the sync did not resume: {e}"));
        assert_eq!(
            errors.len(),
            1,
            "{engine}: one error, not one per layer: {errors:#?}"
        );
        for expected in [
            "the database disk is full".to_string(),
            format!("{} has ", db.display()),
            " free, too little for block".to_string(),
            "no restart needed".to_string(),
        ] {
            assert!(
                errors[0].contains(&expected),
                "{engine}: `{expected}` missing: {}",
                errors[0]
            );
        }
        assert_eq!(
            log.lines("INFO", "the database disk has room again").len(),
            1,
            "{engine}"
        );
        assert_eq!(
            first_difference(&dump(store.as_ref()), &dump(clean_store.as_ref())),
            None,
            "{engine}: after the tmpfs filled and grew"
        );
        drop((idx, store));
        drop(tmpfs);
    }
}
