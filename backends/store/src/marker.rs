//! The engine marker: every database directory names the engine that made it, so that opening
//! it with another engine is refused with a message instead of a confusing engine error (or,
//! worse, a second database created beside the first).

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// Name of the file, inside a database directory, that records its engine.
pub const MARKER_FILE: &str = "ANODE_ENGINE";

/// Files that betray an engine's database when the marker is missing (a directory made by
/// another tool, or a marker deleted by hand).
const FINGERPRINTS: &[(&str, &str)] = &[
    ("rocksdb", "CURRENT"),
    ("lmdb", "data.mdb"),
    ("sqlite", "anode.sqlite"),
];

/// Claims `path` for an engine's open: a writer prepares the directory ([`prepare_dir`]) and
/// locks it against a second writer; a read-only open only checks it ([`check_dir`]) and takes
/// no lock, so it can run beside the writer.
pub fn claim_dir(path: &Path, engine: &'static str, read_only: bool) -> Result<Option<DirLock>> {
    if read_only {
        check_dir(path, engine)?;
        Ok(None)
    } else {
        prepare_dir(path, engine)?;
        lock_dir(path).map(Some)
    }
}

/// Checks that `path` is a directory; with `create`, makes it when it is absent.
fn require_dir(path: &Path, create: bool) -> Result<()> {
    let open_err = |reason: String| Error::Open {
        path: path.to_path_buf(),
        reason,
    };
    match fs::metadata(path) {
        Ok(meta) if !meta.is_dir() => {
            Err(open_err("the path exists and is not a directory".into()))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            fs::create_dir_all(path).map_err(|e| open_err(format!("cannot create it: {e}")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(open_err("it does not exist".into()))
        }
        Err(e) => Err(open_err(format!("cannot read it: {e}"))),
    }
}

/// Makes `path` ready for `engine`: creates it if absent, checks that it is a writable directory
/// and that it holds no other engine's database, and records the engine in a new directory.
/// Returns `true` when the directory held no database yet.
pub fn prepare_dir(path: &Path, engine: &'static str) -> Result<bool> {
    let open_err = |reason: String| Error::Open {
        path: path.to_path_buf(),
        reason,
    };
    require_dir(path, true)?;

    let marker = path.join(MARKER_FILE);
    match fs::read_to_string(&marker) {
        Ok(found) => {
            let found = found.trim();
            if found != engine {
                return Err(Error::WrongEngine {
                    path: path.to_path_buf(),
                    found: found.to_string(),
                    wanted: engine.to_string(),
                });
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            for (other, file) in FINGERPRINTS {
                if path.join(file).exists() {
                    if *other == engine {
                        // Our own files without a marker: an older directory; adopt it.
                        write_marker(path, engine)?;
                        return Ok(false);
                    }
                    return Err(Error::WrongEngine {
                        path: path.to_path_buf(),
                        found: other.to_string(),
                        wanted: engine.to_string(),
                    });
                }
            }
            write_marker(path, engine)?;
            Ok(true)
        }
        Err(e) => Err(open_err(format!("cannot read {MARKER_FILE}: {e}"))),
    }
}

/// Checks, without writing anything, that `path` holds a database made by `engine`: for a
/// read-only open, which must neither create a directory nor adopt one.
pub fn check_dir(path: &Path, engine: &'static str) -> Result<()> {
    let open_err = |reason: String| Error::Open {
        path: path.to_path_buf(),
        reason,
    };
    require_dir(path, false)?;
    let found = match fs::read_to_string(path.join(MARKER_FILE)) {
        Ok(found) => found.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match FINGERPRINTS
                .iter()
                .find(|(_, file)| path.join(file).exists())
            {
                Some((other, _)) => other.to_string(),
                None => {
                    return Err(open_err(format!(
                        "it holds no anode database (no {MARKER_FILE}, no engine's files)"
                    )))
                }
            }
        }
        Err(e) => return Err(open_err(format!("cannot read {MARKER_FILE}: {e}"))),
    };
    if found != engine {
        return Err(Error::WrongEngine {
            path: path.to_path_buf(),
            found,
            wanted: engine.to_string(),
        });
    }
    Ok(())
}

/// The engine that made the database in `path`, from its marker or, without one, from the
/// engine's own files; `None` when it holds neither.
pub fn engine_of(path: &Path) -> Option<String> {
    match fs::read_to_string(path.join(MARKER_FILE)) {
        Ok(found) => Some(found.trim().to_string()),
        Err(_) => FINGERPRINTS
            .iter()
            .find(|(_, file)| path.join(file).exists())
            .map(|(engine, _)| engine.to_string()),
    }
}

/// The refusal of a database that holds some of the declared tables but not `missing`: they
/// were lost (a column family or table dropped by hand, a damaged catalogue), and an engine
/// that created them empty would answer from an index without them. `file` is the engine's
/// file that lists its tables, `what` the engine's word for a table.
pub fn missing_tables(engine: &'static str, file: &Path, what: &str, missing: &[&str]) -> Error {
    Error::backend_of_kind(
        engine,
        crate::ErrorKind::Corrupt,
        format!(
            "{} lacks the {what}{} {} of the database's tables (dropped, or a damaged \
             catalogue); they are not created empty over the rest",
            file.display(),
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        ),
    )
}

fn write_marker(path: &Path, engine: &str) -> Result<()> {
    let open_err = |e: std::io::Error| Error::Open {
        path: path.to_path_buf(),
        reason: format!("the directory is not writable: {e}"),
    };
    // Write-then-rename, so a crash never leaves an empty marker that names no engine.
    let tmp = path.join(format!("{MARKER_FILE}.tmp"));
    let mut f = fs::File::create(&tmp).map_err(open_err)?;
    f.write_all(engine.as_bytes()).map_err(open_err)?;
    f.sync_all().map_err(open_err)?;
    fs::rename(&tmp, path.join(MARKER_FILE)).map_err(open_err)?;
    Ok(())
}

/// Name of the file, inside a database directory, that an open store holds locked.
pub const LOCK_FILE: &str = "anode.lock";

/// An exclusive lock on a database directory, held for as long as a store has it open: a
/// second open, from another process or this one, is refused instead of two writers (or an
/// offline compaction and a server) working on the same files. The OS releases it when the
/// process dies, so a crash never leaves a stale lock.
#[derive(Debug)]
pub struct DirLock {
    _file: fs::File,
}

/// Locks the database directory `path` (which must exist).
pub fn lock_dir(path: &Path) -> Result<DirLock> {
    let lock_path = path.join(LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock { _file: file }),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Open {
            path: path.to_path_buf(),
            reason: format!(
                "it is in use: another anode process (or another open store in this one) \
                 holds {LOCK_FILE}; stop it first"
            ),
        }),
        Err(fs::TryLockError::Error(e)) => Err(Error::io(&lock_path, e)),
    }
}

/// Bytes used by the files under `path`, recursively.
pub fn disk_usage(path: &Path) -> Result<u64> {
    let mut total = 0;
    let entries = fs::read_dir(path).map_err(|e| Error::io(path, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(path, e))?;
        let meta = entry.metadata().map_err(|e| Error::io(entry.path(), e))?;
        if meta.is_dir() {
            total += disk_usage(&entry.path())?;
        } else {
            total += meta.len();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_directory_is_refused_until_the_lock_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_dir(dir.path()).unwrap();
        let err = lock_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("in use"), "{err}");
        drop(first);
        lock_dir(dir.path()).unwrap();
    }

    #[test]
    fn marker_is_written_once_and_checked() {
        let dir = std::env::temp_dir().join(format!("anode-marker-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert!(prepare_dir(&dir, "lmdb").unwrap());
        assert!(!prepare_dir(&dir, "lmdb").unwrap());
        let err = prepare_dir(&dir, "sqlite").unwrap_err();
        assert!(matches!(err, Error::WrongEngine { ref found, .. } if found == "lmdb"));
        assert!(err.to_string().contains("db_engine"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn foreign_engine_files_are_recognised_without_a_marker() {
        let dir = std::env::temp_dir().join(format!("anode-fp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("CURRENT"), b"MANIFEST-000001\n").unwrap();
        assert!(matches!(
            prepare_dir(&dir, "lmdb"),
            Err(Error::WrongEngine { .. })
        ));
        assert!(!prepare_dir(&dir, "rocksdb").unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_read_only_check_writes_nothing_and_names_the_engine_found() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_dir(dir.path(), "lmdb").unwrap_err();
        assert!(err.to_string().contains("no anode database"), "{err}");
        assert!(!dir.path().join(MARKER_FILE).exists());
        assert_eq!(engine_of(dir.path()), None);
        fs::write(dir.path().join("CURRENT"), b"MANIFEST-000001\n").unwrap();
        assert_eq!(engine_of(dir.path()).as_deref(), Some("rocksdb"));
        assert!(matches!(
            check_dir(dir.path(), "lmdb"),
            Err(Error::WrongEngine { ref found, .. }) if found == "rocksdb"
        ));
        check_dir(dir.path(), "rocksdb").unwrap();
        assert!(!dir.path().join(MARKER_FILE).exists());
        let missing = dir.path().join("absent");
        assert!(check_dir(&missing, "lmdb").is_err());
        assert!(!missing.exists());
    }

    #[test]
    fn a_file_is_not_a_database_directory() {
        let file = std::env::temp_dir().join(format!("anode-file-{}", std::process::id()));
        fs::write(&file, b"x").unwrap();
        let err = prepare_dir(&file, "lmdb").unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
        fs::remove_file(&file).unwrap();
    }
}
