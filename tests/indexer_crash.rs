//! Crash safety: a child process syncing a simulated chain is killed with SIGKILL at random
//! instants; every restart must reopen the database and resume, and the final tables must be
//! byte-identical to an uninterrupted sync. `scripts/crash-soak` runs the same with many more
//! kills.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use support::index::*;

const SEED: u64 = 5;
const BLOCKS: u32 = 5000;
const REORG_LIMIT: u32 = 10;
/// A small cache makes the sync flush every few blocks, so kills land between and inside
/// flushes.
const CACHE_BYTES: usize = 32 << 10;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The child: opens the database, syncs to the simulator's tip, exits. Only runs when the
/// parent sets ANODE_CRASH_DIR.
#[test]
#[ignore = "run by the crash tests as a child process"]
fn crash_child() {
    let (Some(dir), Some(engine)) = (env("ANODE_CRASH_DIR"), env("ANODE_CRASH_ENGINE")) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let sim = simulator(SEED, BLOCKS);
    let store = open(&engine, &dir.join("db"));
    let idx = indexer(store, &sim, REORG_LIMIT, CACHE_BYTES);
    std::fs::write(dir.join("started"), b"1").expect("marker");
    catch_up(&runtime(), &idx);
}

/// Kills children until `kills` of them died mid-sync; returns (kills, attempts).
/// When a child completes the sync before `kills` is reached, `check` verifies its database,
/// which is then removed for another round.
fn kill_repeatedly(
    engine: &str,
    dir: &std::path::Path,
    kills: u32,
    seed: u64,
    check: &dyn Fn(&std::path::Path),
) -> (u32, u32) {
    let exe = std::env::current_exe().expect("test binary");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut killed, mut attempts) = (0u32, 0u32);
    // Start with a short window and widen it as the database fills, so kills spread over the
    // whole sync rather than its first blocks.
    let mut window_ms = 5u64;
    while killed < kills && attempts < kills * 8 {
        attempts += 1;
        let _ = std::fs::remove_file(dir.join("started"));
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--ignored", "--test-threads=1"])
            .env("ANODE_CRASH_DIR", dir)
            .env("ANODE_CRASH_ENGINE", engine)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !dir.join("started").exists() && Instant::now() < deadline {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..window_ms)));
        let finished = child.try_wait().expect("wait");
        if let Some(status) = finished {
            assert!(
                status.success(),
                "{engine}: the child failed on restart: {status}"
            );
            // It finished: check this round, then start another from an empty database.
            check(&dir.join("db"));
            std::fs::remove_dir_all(dir.join("db")).expect("remove db");
            window_ms = 5;
            continue;
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        if !status.success() {
            killed += 1;
        }
        window_ms = (window_ms + 5).min(400);
        if window_ms == 400 {
            window_ms = 5;
        }
    }
    (killed, attempts)
}

#[test]
fn sigkill_at_random_instants_never_corrupts_and_the_sync_resumes() {
    let rt = runtime();
    let reference_sim = simulator(SEED, BLOCKS);
    for engine in engines().into_iter().filter(|e| *e != "memory") {
        let fresh_dir = tempfile::tempdir().expect("tempdir");
        let fresh_store = open(engine, fresh_dir.path());
        let fresh = indexer(
            Arc::clone(&fresh_store),
            &reference_sim,
            REORG_LIMIT,
            CACHE_BYTES,
        );
        catch_up(&rt, &fresh);
        let reference = dump(fresh_store.as_ref());
        drop((fresh, fresh_store));
        let compare = |db: &std::path::Path, killed: &str| {
            let store = open(engine, db);
            if let Some(diff) = first_difference(&dump(store.as_ref()), &reference) {
                panic!(
                    "{engine}: after {killed} kills the index differs from a clean sync: {diff}"
                );
            }
        };

        let dir = tempfile::tempdir().expect("tempdir");
        let wanted = env("ANODE_CRASH_KILLS")
            .and_then(|v| v.parse().ok())
            .unwrap_or(20);
        let (killed, attempts) =
            kill_repeatedly(engine, dir.path(), wanted, 42, &|db| compare(db, "some"));
        assert!(
            killed >= wanted,
            "{engine}: only {killed} of {attempts} children died mid-sync"
        );
        // Resume to the end in this process.
        let store = open(engine, &dir.path().join("db"));
        let resumed = indexer(Arc::clone(&store), &reference_sim, REORG_LIMIT, CACHE_BYTES);
        catch_up(&rt, &resumed);
        drop((resumed, store));
        compare(&dir.path().join("db"), &killed.to_string());
    }
}
