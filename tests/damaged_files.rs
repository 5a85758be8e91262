//! Damaged database files are refused with one message that names the file, says what is
//! wrong and how to rebuild; `anode check` finds what the engines cannot.
//!
//! Each test builds a small real index from the in-process simulator on every engine, closes
//! it, damages it (a truncated file, a flipped byte, a missing table, another engine's
//! directory), and opens it again the way the server does: `open_index_store`, then the index
//! writer, with the server's error mapping. The binary is run too, against the simulator
//! served over HTTP, to see the operator's message and exit status. The messages are printed
//! on stderr for the record.

#![allow(clippy::print_stderr)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anode::check::{CheckOptions, CheckReport};
use anode::index::keys::{history_key, read_tx_num};
use anode::index::meta::damaged_index;
use anode::index::schema::{HASHX_LEN, HISTORY, TABLES, UTXO};
use anode::index::{open_index_store, IndexWriter, WriterOptions};
use anode::simulator::{serve, Auth, SimServer, Simulator};
use anode::store_factory::{available_engines, open_store, Tuning};
use anode_store::{Direction, Durability, ErrorKind, KeyRange, Store, Table, WriteBatch};
use support::index::{catch_up, indexer, regtest, runtime, simulator};

const TUNING: Tuning = Tuning { cache_mb: 64 };

/// The simulator served over HTTP, as `DAEMON_URL` for the binary and for `anode check`.
struct Node {
    runtime: tokio::runtime::Runtime,
    sim: Simulator,
    server: SimServer,
}

impl Node {
    fn new(blocks: u32) -> Node {
        let runtime = runtime();
        let sim = simulator(7, blocks);
        let server = runtime
            .block_on(serve(
                sim.clone(),
                "127.0.0.1:0".parse().expect("address"),
                Auth::default(),
            ))
            .expect("serve the simulator");
        Node {
            runtime,
            sim,
            server,
        }
    }

    fn url(&self) -> String {
        self.server.url(&Auth::default())
    }

    /// A real index of the whole chain at `path`, closed cleanly (RocksDB's memtables
    /// flushed to SST files, SQLite's WAL checkpointed).
    fn build(&self, engine: &str, path: &Path) {
        let store = open_index_store(engine, path, "Bitcoin", "regtest", TUNING)
            .unwrap_or_else(|e| panic!("{engine}: {e}"));
        let idx = indexer(Arc::clone(&store), &self.sim, 6, 16 << 10);
        catch_up(&self.runtime, &idx);
        drop(idx);
        store.compact().expect("compact");
    }

    fn config(&self, engine: &str, path: &Path) -> anode::config::Config {
        let raw = anode::config::RawConfig::defaults().with_flags([
            ("network", "regtest".to_string()),
            ("daemon_url", self.url()),
            ("db_directory", path.display().to_string()),
            ("db_engine", engine.to_string()),
            ("cache_mb", "64".to_string()),
        ]);
        anode::config::Config::from_raw(&raw).expect("config")
    }

    fn check(&self, engine: &str, path: &Path, options: CheckOptions) -> CheckReport {
        self.runtime
            .block_on(anode::check::run(&self.config(engine, path), options))
            .unwrap_or_else(|e| panic!("{engine}: the check could not run: {e:#}"))
    }

    /// Runs the `anode` binary with `args` on the database at `path`: (exit code, stdout,
    /// stderr).
    fn run_binary(&self, engine: &str, path: &Path, args: &[&str]) -> (i32, String, String) {
        // `timeout`: a server that wrongly accepts the files would otherwise serve forever.
        let out = Command::new("timeout")
            .arg("120")
            .arg(env!("CARGO_BIN_EXE_anode"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_BACKTRACE", "1")
            .env("COIN", "Bitcoin")
            .env("NET", "regtest")
            .env("DAEMON_URL", self.url())
            .env("DB_DIRECTORY", path)
            .env("DB_ENGINE", engine)
            .env("CACHE_MB", "64")
            .env("SERVICES", "tcp://127.0.0.1:0")
            .env("PEER_DISCOVERY", "off")
            .env("LOG_LEVEL", "warn")
            .output()
            .expect("run the anode binary");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The server refuses the database at `path`: one error, a non-zero exit, no panic.
    /// Returns the message.
    fn server_refuses(&self, engine: &str, path: &Path) -> String {
        let (code, _, stderr) = self.run_binary(engine, path, &[]);
        assert_ne!(
            code, 0,
            "{engine}: the server started on damaged files:\n{stderr}"
        );
        assert_ne!(
            code, 124,
            "{engine}: the server kept running on damaged files"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("stack backtrace"),
            "{engine}: a panic instead of an error:\n{stderr}"
        );
        assert_eq!(
            stderr.matches("Error: ").count(),
            1,
            "{engine}: one error expected:\n{stderr}"
        );
        stderr
            .lines()
            .skip_while(|l| !l.starts_with("Error: "))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Opens the index at `path` as `Stack::start` does.
fn open_like_the_server(engine: &str, path: &Path) -> anyhow::Result<Arc<dyn Store>> {
    let store = open_index_store(engine, path, "Bitcoin", "regtest", TUNING)?;
    let writer = IndexWriter::open(
        Arc::clone(&store),
        regtest(),
        WriterOptions {
            reorg_limit: 6,
            cache_bytes: 16 << 10,
        },
    )
    .map_err(|e| damaged_index(path, e))?;
    drop(writer);
    Ok(store)
}

/// The refusal of a damaged index: it names the directory and tells how to rebuild.
fn assert_rebuild_advice(engine: &str, path: &Path, text: &str) {
    for needed in [
        &*path.display().to_string(),
        "is damaged",
        "move",
        "re-index",
        "anode check",
    ] {
        assert!(
            text.contains(needed),
            "{engine}: `{needed}` missing from: {text}"
        );
    }
}

/// Reads every row of every table: the first error, if any.
fn first_read_error(store: &dyn Store) -> Option<anode_store::Error> {
    for table in TABLES {
        let rows = match store.scan(table.name, KeyRange::all(), Direction::Forward) {
            Ok(rows) => rows,
            Err(e) => return Some(e),
        };
        for row in rows {
            if let Err(e) = row {
                return Some(e);
            }
        }
    }
    None
}

fn files_named(path: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .expect("read the database directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0));
    files
}

/// The engine's main data file: the largest SST, `data.mdb`, `anode.sqlite`.
fn data_file(engine: &str, path: &Path) -> PathBuf {
    match engine {
        "rocksdb" => files_named(path, ".sst")
            .pop()
            .expect("the index has SST files"),
        "lmdb" => path.join("data.mdb"),
        "sqlite" => path.join("anode.sqlite"),
        other => panic!("no data file for {other}"),
    }
}

fn truncate_to_half(file: &Path) {
    let len = std::fs::metadata(file).expect("stat").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .expect("open for truncation");
    f.set_len(len / 2).expect("truncate");
}

fn full(node: bool) -> CheckOptions {
    CheckOptions {
        sample: 8,
        full: true,
        node,
    }
}

#[test]
fn a_truncated_data_file_is_refused_with_the_file_named_and_how_to_rebuild() {
    let node = Node::new(40);
    for engine in available_engines() {
        let mut cases: Vec<(&str, PathBuf)> = Vec::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        node.build(engine, &path);
        cases.push(("data file", data_file(engine, &path)));
        let manifest_dir = tempfile::tempdir().expect("tempdir");
        let manifest_path = manifest_dir.path().join("db");
        if engine == "rocksdb" {
            node.build(engine, &manifest_path);
            let current = std::fs::read_to_string(manifest_path.join("CURRENT")).expect("CURRENT");
            cases.push(("MANIFEST", manifest_path.join(current.trim())));
        }
        for (what, file) in cases {
            let db = file.parent().expect("parent").to_path_buf();
            truncate_to_half(&file);
            let err = open_like_the_server(engine, &db)
                .map(|_| ())
                .expect_err("a truncated file is refused");
            let text = format!("{err:#}");
            assert_rebuild_advice(engine, &db, &text);
            let name = file
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            if what == "data file" {
                assert!(text.contains(&name), "{engine}: {name} not named: {text}");
            }
            let message = node.server_refuses(engine, &db);
            assert_rebuild_advice(engine, &db, &message);
            eprintln!("[{engine}, truncated {what} {name}] {message}\n");
            let report = node.check(engine, &db, full(true));
            assert!(
                !report.problems.is_empty(),
                "{engine}: the check found nothing"
            );
        }
    }
}

/// Offsets of `needle` in `haystack`.
fn occurrences(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn a_flipped_byte_is_an_error_or_found_by_the_check_never_a_wrong_answer() {
    let node = Node::new(40);
    for engine in available_engines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        node.build(engine, &path);
        let file = data_file(engine, &path);
        let mut bytes = std::fs::read(&file).expect("read the data file");
        if engine == "rocksdb" {
            // Inside the first data block of the largest SST (blocks are 4 KiB).
            bytes[100] ^= 0x20;
        } else {
            // LMDB and SQLite keep no checksums of their pages: a flipped byte inside a value
            // reads back as a different value. Flip one inside a stored txid (every copy,
            // free pages included), which `anode check` compares with the node's.
            let txid = node.sim.with_chain(|chain| {
                chain
                    .block(20)
                    .expect("block")
                    .txids
                    .last()
                    .copied()
                    .expect("txid")
            });
            let found = occurrences(&bytes, &txid);
            assert!(
                !found.is_empty(),
                "{engine}: the txid is not in {}",
                file.display()
            );
            for at in found {
                bytes[at + 16] ^= 0x20;
            }
        }
        std::fs::write(&file, &bytes).expect("write the damaged file");

        match open_like_the_server(engine, &path) {
            Err(err) => {
                let text = format!("{err:#}");
                assert_rebuild_advice(engine, &path, &text);
                eprintln!("[{engine}, flipped byte, at open] {text}\n");
            }
            Ok(store) => match first_read_error(store.as_ref()) {
                Some(err) => {
                    assert_eq!(err.kind(), ErrorKind::Corrupt, "{engine}: {err}");
                    eprintln!("[{engine}, flipped byte, at the first read] {err}\n");
                }
                None => {
                    assert_ne!(
                        engine, "rocksdb",
                        "rocksdb returned every row of a block whose checksum fails"
                    );
                    eprintln!("[{engine}, flipped byte] opens and reads: the engine cannot tell\n");
                }
            },
        }
        let report = node.check(engine, &path, full(true));
        assert!(
            !report.problems.is_empty(),
            "{engine}: the check missed the flipped byte"
        );
        eprintln!(
            "[{engine}, flipped byte, anode check --full] {}\n",
            report.lines().join("\n")
        );
    }
}

/// A copy of the index at `from` into `to` without the table `missing`, as if its column
/// family or table had been dropped.
fn copy_without(engine: &str, from: &Path, to: &Path, missing: &str) {
    let source = open_store(engine, from, TABLES, TUNING).expect("open the source");
    let tables: Vec<Table> = TABLES
        .iter()
        .filter(|t| t.name != missing)
        .copied()
        .collect();
    let target = open_store(engine, to, &tables, TUNING).expect("open the copy");
    for table in &tables {
        let mut batch = WriteBatch::new();
        for row in source
            .scan(table.name, KeyRange::all(), Direction::Forward)
            .expect("scan")
        {
            let (key, value) = row.expect("row");
            batch.put(table.name, key, value);
        }
        target.write(batch, Durability::Sync).expect("copy rows");
    }
}

#[test]
fn a_missing_table_is_refused_not_recreated_empty() {
    let node = Node::new(20);
    for engine in available_engines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let built = dir.path().join("built");
        node.build(engine, &built);
        for missing in [UTXO, anode::index::schema::META] {
            let path = dir.path().join(format!("without-{missing}"));
            copy_without(engine, &built, &path, missing);
            // The read-only check comes first: it must not create the table either.
            let report = node.check(engine, &path, full(true));
            assert!(
                report.problems.iter().any(|p| p.contains(missing)),
                "{engine}: {:?}",
                report.problems
            );
            let err = open_like_the_server(engine, &path)
                .map(|_| ())
                .expect_err("a database without a table is refused");
            let text = format!("{err:#}");
            assert_rebuild_advice(engine, &path, &text);
            assert!(text.contains(missing), "{engine}: {text}");
            let message = node.server_refuses(engine, &path);
            eprintln!("[{engine}, missing table {missing}] {message}\n");
            // Refused again: the first refusal created nothing that would let it through.
            assert!(open_like_the_server(engine, &path).is_err());
        }
    }
}

#[test]
fn another_engines_directory_is_refused_naming_the_engine_that_wrote_it() {
    let node = Node::new(10);
    for written_by in available_engines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        node.build(written_by, &path);
        for opened_with in available_engines() {
            if opened_with == written_by {
                continue;
            }
            let err = open_like_the_server(opened_with, &path)
                .map(|_| ())
                .expect_err("another engine's directory is refused");
            let text = format!("{err:#}");
            assert!(
                text.contains(&format!(
                    "created by the {written_by} engine, not {opened_with}"
                )),
                "{text}"
            );
            let message = node.server_refuses(opened_with, &path);
            assert!(message.contains(written_by), "{message}");
            eprintln!("[{opened_with} on a {written_by} directory] {message}\n");
            // Without the marker, the engine's own files still give it away.
            let marker = path.join(anode_store::marker::MARKER_FILE);
            let saved = std::fs::read(&marker).expect("marker");
            std::fs::remove_file(&marker).expect("remove the marker");
            let text = format!(
                "{:#}",
                open_like_the_server(opened_with, &path)
                    .map(|_| ())
                    .expect_err("refused without the marker too")
            );
            assert!(text.contains(written_by), "{text}");
            std::fs::write(&marker, saved).expect("restore the marker");
        }
    }
}

#[test]
fn the_check_passes_a_clean_index_and_names_rows_changed_through_the_store() {
    let node = Node::new(30);
    for engine in available_engines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        node.build(engine, &path);
        for options in [
            CheckOptions {
                sample: 8,
                full: false,
                node: true,
            },
            full(true),
            full(false),
            CheckOptions {
                sample: 8,
                full: false,
                node: false,
            },
        ] {
            let report = node.check(engine, &path, options);
            assert!(
                report.problems.is_empty(),
                "{engine} {options:?}: {:?}",
                report.problems
            );
            assert!(report.blocks > 0 && report.txs > 0, "{engine}: {report:?}");
            if options.node {
                assert!(
                    report.blocks_from_node > 0 && report.scripts > 0,
                    "{report:?}"
                );
            }
            if options.full {
                assert!(report.rows_scanned > 0, "{report:?}");
            }
        }

        // Two wrong rows, written through the Store API: a history row gone, a UTXO's value
        // changed.
        let store = open_store(engine, &path, TABLES, TUNING).expect("open");
        let utxos: Vec<(Vec<u8>, Vec<u8>)> = store
            .scan(UTXO, KeyRange::all(), Direction::Forward)
            .expect("scan")
            .map(|r| r.expect("row"))
            .collect();
        let (gone_key, _) = utxos.first().cloned().expect("a utxo");
        let (changed_key, changed_value) = utxos.last().cloned().expect("a utxo");
        let hashx: [u8; HASHX_LEN] = gone_key[..HASHX_LEN].try_into().expect("hashX");
        let tx_num = read_tx_num(&gone_key[HASHX_LEN..]).expect("tx number");
        let (history_row, _) = store
            .last_in(
                HISTORY,
                KeyRange::between(&history_key(&hashx, 0), &history_key(&hashx, tx_num + 1)),
            )
            .expect("read")
            .expect("the utxo's history row");
        let value = u64::from_le_bytes(changed_value.try_into().expect("8 bytes"));
        let mut batch = WriteBatch::new();
        batch.delete(HISTORY, history_row);
        batch.put(UTXO, changed_key.clone(), (value + 1).to_le_bytes());
        store.write(batch, Durability::Sync).expect("write");
        drop(store);

        let report = node.check(engine, &path, full(true));
        let text = report.lines().join("\n");
        assert!(
            text.contains(&format!(
                "the history of script {} lacks tx number {tx_num}",
                hex::encode(hashx)
            )),
            "{engine}: {text}"
        );
        assert!(
            text.contains(&format!(
                "the node's value is {value}, the utxo row holds {}",
                value + 1
            )),
            "{engine}: {text}"
        );
        eprintln!("[{engine}, rows changed, anode check --full]\n{text}\n");
    }
}

#[test]
fn the_check_runs_beside_a_server_holding_the_database_with_its_exit_statuses() {
    let node = Node::new(30);
    for engine in available_engines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        node.build(engine, &path);
        // Held open as the server holds it: locked, with the writer open.
        let store = open_like_the_server(engine, &path).expect("open");
        let (code, stdout, stderr) = node.run_binary(engine, &path, &["check", "--sample", "8"]);
        assert_eq!(code, 0, "{engine}: {stdout}\n{stderr}");
        assert!(stdout.contains("no problems found"), "{engine}: {stdout}");
        eprintln!("[{engine}, clean, beside the server] {}", stdout.trim());

        // A commit of the holder is seen by the next check.
        let (key, value) = store
            .scan(UTXO, KeyRange::all(), Direction::Forward)
            .expect("scan")
            .next()
            .expect("a utxo")
            .expect("row");
        let value = u64::from_le_bytes(value.try_into().expect("8 bytes"));
        let mut batch = WriteBatch::new();
        batch.put(UTXO, key, (value + 7).to_le_bytes());
        store.write(batch, Durability::Sync).expect("write");
        let (code, stdout, stderr) = node.run_binary(engine, &path, &["check", "--full"]);
        assert_eq!(code, 1, "{engine}: {stdout}\n{stderr}");
        assert!(
            stdout.contains(&format!("the utxo row holds {}", value + 7))
                && stdout.contains("problem"),
            "{engine}: {stdout}"
        );
        eprintln!(
            "[{engine}, a changed utxo, beside the server]\n{}",
            stdout.trim()
        );
        drop(store);

        let (code, _, stderr) = node.run_binary(engine, &dir.path().join("absent"), &["check"]);
        assert_eq!(code, 2, "{engine}: {stderr}");
        assert!(stderr.contains("could not check"), "{stderr}");
    }
}
