//! A store wrapper that fails chosen write batches, for tests of what the server does when a
//! disk fills up or fails (feature `fault-injection`).
//!
//! A real full disk is slow and awkward to reach in a test (and needs root to mount a small
//! filesystem); [`FaultyStore`] fails the Nth write batch of any engine, or every write from
//! the Nth on until cleared, with the error a real failure of that kind produces. A failed
//! write never reaches the wrapped store, as the contract demands of a real one.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::{Direction, WriteBatch};
use crate::{Durability, Error, KeyRange, KvIter, ReadView, Result, Store, StoreStats, Table};

/// The failure a [`FaultyStore`] injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The filesystem is full (`ENOSPC`): [`crate::ErrorKind::NoSpace`].
    NoSpace,
    /// The disk failed (`EIO`): [`crate::ErrorKind::Io`].
    Io,
}

#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// Only the write with this number fails.
    Once(u64),
    /// Every write from this number on fails, and so does every sync once one has.
    From(u64),
}

/// Wraps any [`Store`] and fails the write batches a test chooses. Reads, snapshots and
/// everything else go straight to the wrapped store.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    armed: Mutex<Option<(Fault, Trigger)>>,
    /// Write batches that reached the wrapper, failed or not; numbers the writes.
    writes: AtomicU64,
    injected: AtomicU64,
}

impl FaultyStore {
    /// `inner`, with no fault armed.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        FaultyStore {
            inner,
            armed: Mutex::new(None),
            writes: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// Fails the `n`th write batch from now (1: the next one) with `fault`; the writes before
    /// and after it pass. Replaces any fault armed before.
    pub fn fail_nth_write(&self, n: u64, fault: Fault) {
        let at = self.writes.load(Ordering::SeqCst) + n.max(1);
        *self.lock() = Some((fault, Trigger::Once(at)));
    }

    /// Fails every write batch from the `n`th from now on (1: the next one), and every
    /// [`Store::sync`] once the first of them has failed, until [`FaultyStore::clear`]: a disk
    /// that stays full or broken. Replaces any fault armed before.
    pub fn fail_writes_from(&self, n: u64, fault: Fault) {
        let at = self.writes.load(Ordering::SeqCst) + n.max(1);
        *self.lock() = Some((fault, Trigger::From(at)));
    }

    /// Disarms the fault: the disk has room again, or works again.
    pub fn clear(&self) {
        *self.lock() = None;
    }

    /// Write batches that reached the wrapper so far, failed ones included.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// Writes and syncs failed on purpose so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Fault, Trigger)>> {
        self.armed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The error the engine would have returned for `fault`, as the engine crates classify it.
    fn error(&self, fault: Fault, during: &str) -> Error {
        let path = self.inner.path().unwrap_or(Path::new("(in memory)"));
        let source = match fault {
            Fault::NoSpace => std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!("injected fault during {during}: no space left on device"),
            ),
            Fault::Io => std::io::Error::other(format!(
                "injected fault during {during}: input/output error"
            )),
        };
        self.injected.fetch_add(1, Ordering::SeqCst);
        Error::io(path, source)
    }
}

impl ReadView for FaultyStore {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(table, key)
    }

    fn multi_get(&self, table: &str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        self.inner.multi_get(table, keys)
    }

    fn scan(&self, table: &str, range: KeyRange, direction: Direction) -> Result<KvIter<'_>> {
        self.inner.scan(table, range, direction)
    }

    fn scan_prefix(&self, table: &str, prefix: &[u8], direction: Direction) -> Result<KvIter<'_>> {
        self.inner.scan_prefix(table, prefix, direction)
    }

    fn last_in(&self, table: &str, range: KeyRange) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.inner.last_in(table, range)
    }
}

impl Store for FaultyStore {
    fn engine(&self) -> &'static str {
        self.inner.engine()
    }

    fn tables(&self) -> &[Table] {
        self.inner.tables()
    }

    fn snapshot(&self) -> Result<Box<dyn ReadView + '_>> {
        self.inner.snapshot()
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<()> {
        let number = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        let armed = *self.lock();
        match armed {
            Some((fault, Trigger::Once(at))) if number == at => {
                Err(self.error(fault, &format!("write batch {number}")))
            }
            Some((fault, Trigger::From(at))) if number >= at => {
                Err(self.error(fault, &format!("write batch {number}")))
            }
            _ => self.inner.write(batch, durability),
        }
    }

    fn sync(&self) -> Result<()> {
        let armed = *self.lock();
        match armed {
            Some((fault, Trigger::From(at))) if self.writes() >= at => {
                Err(self.error(fault, "sync"))
            }
            _ => self.inner.sync(),
        }
    }

    fn set_bulk_load(&self, on: bool) -> Result<()> {
        self.inner.set_bulk_load(on)
    }

    fn compact(&self) -> Result<()> {
        self.inner.compact()
    }

    fn stats(&self) -> Result<StoreStats> {
        self.inner.stats()
    }

    fn path(&self) -> Option<&Path> {
        self.inner.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, MemoryStore};

    const T: &[Table] = &[Table::new("t")];

    fn one_row(key: u8) -> WriteBatch {
        let mut batch = WriteBatch::new();
        batch.put("t", [key], [key]);
        batch
    }

    fn keys(store: &dyn Store) -> Vec<u8> {
        store
            .scan("t", KeyRange::all(), Direction::Forward)
            .unwrap()
            .map(|row| row.unwrap().0[0])
            .collect()
    }

    #[test]
    fn the_nth_write_fails_with_the_chosen_kind_and_writes_nothing() {
        let store = FaultyStore::new(Arc::new(MemoryStore::new(T)));
        store.write(one_row(1), Durability::Sync).unwrap();
        store.fail_nth_write(2, Fault::NoSpace);
        store.write(one_row(2), Durability::Sync).unwrap();
        let err = store.write(one_row(3), Durability::Sync).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NoSpace, "{err}");
        assert!(err.to_string().contains("write batch 3"), "{err}");
        store.write(one_row(4), Durability::Sync).unwrap();
        store.sync().unwrap();
        assert_eq!(keys(&store), vec![1, 2, 4]);
        assert_eq!((store.writes(), store.injected()), (4, 1));
    }

    #[test]
    fn writes_from_the_nth_fail_until_cleared() {
        let store = FaultyStore::new(Arc::new(MemoryStore::new(T)));
        store.fail_writes_from(2, Fault::Io);
        store.write(one_row(1), Durability::Bulk).unwrap();
        // Not yet triggered: a sync still passes.
        store.sync().unwrap();
        for key in 2..5 {
            let err = store.write(one_row(key), Durability::Bulk).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Io, "{err}");
        }
        assert_eq!(store.sync().unwrap_err().kind(), ErrorKind::Io);
        store.clear();
        store.write(one_row(5), Durability::Bulk).unwrap();
        store.sync().unwrap();
        assert_eq!(keys(&store), vec![1, 5]);
        assert_eq!(store.injected(), 4);
    }
}
