//! Offline compaction. LMDB never shrinks its file: the pages a write transaction copies are
//! free for later transactions, but a transaction that rewrites much of the database leaves
//! as many free pages behind. An initial-sync flush rewrites most leaf pages of the randomly
//! keyed tables, so at the end of a 20M-transaction sync close to half of `data.mdb` is free
//! pages. `mdb_env_copy2` with `MDB_CP_COMPACT` writes the live pages only; the copy then
//! replaces the file, with no store open on the directory.

use std::fs;
use std::path::Path;

use anode_store::{marker, Error, Result};
use heed::{CompactionOption, EnvOpenOptions};

use crate::store::{lmdb_err, round_up};
use crate::{LmdbOptions, ENGINE};

/// Name of the data file in an LMDB directory.
const DATA_FILE: &str = "data.mdb";
/// The compacted copy while it is written; a leftover of an interrupted run is removed.
const COPY_FILE: &str = "data.mdb.compacting";

/// `data.mdb` bytes before and after [`compact_in_place`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// size of the file before
    pub before: u64,
    /// size of the file after
    pub after: u64,
}

/// Rewrites the LMDB database at `path` without its free pages. The directory is locked
/// (`marker::lock_dir`) for the whole run, so no store can be open on it. A crash at any
/// instant leaves either the old file or the complete copy in place: the copy is synced
/// before it is renamed over the original.
pub fn compact_in_place(path: &Path, options: &LmdbOptions) -> Result<Compacted> {
    let data = path.join(DATA_FILE);
    if marker::prepare_dir(path, ENGINE)? || !data.exists() {
        return Err(Error::Open {
            path: path.to_path_buf(),
            reason: "it holds no LMDB database to compact".into(),
        });
    }
    let _lock = marker::lock_dir(path)?;
    let before = fs::metadata(&data).map_err(|e| Error::io(&data, e))?.len();
    let copy = path.join(COPY_FILE);
    match fs::remove_file(&copy) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&copy, e)),
        _ => {}
    }
    {
        let mut open_options = EnvOpenOptions::new().read_txn_without_tls();
        open_options
            .map_size(round_up((before as usize).max(options.initial_map_size)))
            .max_dbs(options.max_dbs)
            .max_readers(options.max_readers);
        // SAFETY: as in `LmdbStore::open`: the directory holds our engine marker; the directory
        // lock taken above guarantees no other store (in this process or another) has the
        // environment open; the directory is local; the only transaction is the copy's own.
        let env = unsafe { open_options.open(path) }.map_err(lmdb_err)?;
        let file = env
            .copy_to_path(&copy, CompactionOption::Enabled)
            .map_err(lmdb_err)?;
        file.sync_all().map_err(|e| Error::io(&copy, e))?;
        // Closed before the rename: the map must not outlive the file it maps.
        env.prepare_for_closing().wait();
    }
    fs::rename(&copy, &data).map_err(|e| Error::io(&data, e))?;
    fs::File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| Error::io(path, e))?;
    let after = fs::metadata(&data).map_err(|e| Error::io(&data, e))?.len();
    Ok(Compacted { before, after })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LmdbStore;
    use anode_store::{Direction, Durability, KeyRange, ReadView, Store, Table, WriteBatch};

    const TABLES: &[Table] = &[Table::new("t")];

    fn key(i: u32) -> [u8; 4] {
        // scattered keys, as the history and spender tables get them
        i.wrapping_mul(2_654_435_761).to_be_bytes()
    }

    #[test]
    fn compaction_drops_free_pages_and_keeps_every_row() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LmdbStore::open(dir.path(), TABLES, LmdbOptions::default()).unwrap();
            // Two large scattered transactions: the second rewrites the first one's pages.
            for round in 0..2u32 {
                let mut batch = WriteBatch::new();
                for i in 0..50_000u32 {
                    batch.put("t", key(i + round * 50_000), [round as u8; 40]);
                }
                store.write(batch, Durability::Sync).unwrap();
            }
            let err = compact_in_place(dir.path(), &LmdbOptions::default()).unwrap_err();
            assert!(err.to_string().contains("in use"), "{err}");
        }
        let compacted = compact_in_place(dir.path(), &LmdbOptions::default()).unwrap();
        assert!(
            compacted.after < compacted.before,
            "{compacted:?}: no free pages dropped"
        );
        let store = LmdbStore::open(dir.path(), TABLES, LmdbOptions::default()).unwrap();
        let rows: Vec<_> = store
            .scan("t", KeyRange::all(), Direction::Forward)
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(rows.len(), 100_000);
        assert_eq!(store.get("t", &key(70_000)).unwrap(), Some(vec![1u8; 40]));
        // writes go on after compaction
        let mut batch = WriteBatch::new();
        batch.put("t", [0u8; 5], [9u8]);
        store.write(batch, Durability::Sync).unwrap();
        assert_eq!(store.get("t", &[0u8; 5]).unwrap(), Some(vec![9u8]));
    }

    #[test]
    fn a_directory_without_a_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = compact_in_place(dir.path(), &LmdbOptions::default()).unwrap_err();
        assert!(err.to_string().contains("no LMDB database"), "{err}");
    }
}
