//! Reads: the store's own reads (one short read transaction each, scans page by page) and
//! [`LmdbSnapshot`] (one read transaction for the snapshot's life).

use std::sync::RwLockReadGuard;

use anode_store::paged::PagedScan;
use anode_store::{Direction, KeyRange, KvIter, ReadView, Result};
use heed::{RoTxn, WithoutTls};

use crate::store::{lmdb_err, Db, LmdbStore};

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Up to `limit` pairs of `range` in `direction`, read in `txn`.
fn page(
    txn: &RoTxn<'_, WithoutTls>,
    db: Db,
    range: &KeyRange,
    direction: Direction,
    limit: usize,
) -> Result<Pairs> {
    let bounds = range.as_bounds();
    let owned = |item: heed::Result<(&[u8], &[u8])>| {
        item.map(|(k, v)| (k.to_vec(), v.to_vec()))
            .map_err(lmdb_err)
    };
    match direction {
        Direction::Forward => db
            .range(txn, &bounds)
            .map_err(lmdb_err)?
            .take(limit)
            .map(owned)
            .collect(),
        Direction::Reverse => db
            .rev_range(txn, &bounds)
            .map_err(lmdb_err)?
            .take(limit)
            .map(owned)
            .collect(),
    }
}

impl ReadView for LmdbStore {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let db = self.db(table)?;
        let _gate = self.enter();
        let txn = self.env.read_txn().map_err(lmdb_err)?;
        let value = db.get(&txn, key).map_err(lmdb_err)?;
        Ok(value.map(<[u8]>::to_vec))
    }

    fn multi_get(&self, table: &str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let db = self.db(table)?;
        let _gate = self.enter();
        let txn = self.env.read_txn().map_err(lmdb_err)?;
        keys.iter()
            .map(|k| Ok(db.get(&txn, k).map_err(lmdb_err)?.map(<[u8]>::to_vec)))
            .collect()
    }

    fn scan(&self, table: &str, range: KeyRange, direction: Direction) -> Result<KvIter<'_>> {
        let db = self.db(table)?;
        // Each page is its own short transaction: a slow consumer never pins old pages.
        Ok(Box::new(PagedScan::new(
            range,
            direction,
            self.options.scan_page_size,
            Box::new(move |range, direction, limit| {
                let _gate = self.enter();
                let txn = self.env.read_txn().map_err(lmdb_err)?;
                page(&txn, db, range, direction, limit)
            }),
        )))
    }
}

/// One read transaction: a consistent view of the store while writers commit.
///
/// It holds the store's resize gate shared, so the map cannot grow while it lives: keep it for
/// one query or one flush (as every LMDB read transaction should be kept short anyway).
pub struct LmdbSnapshot<'s> {
    // Field order is drop order: the transaction ends before the gate opens.
    txn: RoTxn<'s, WithoutTls>,
    store: &'s LmdbStore,
    _gate: RwLockReadGuard<'s, ()>,
}

impl<'s> LmdbSnapshot<'s> {
    pub(crate) fn new(store: &'s LmdbStore) -> Result<Self> {
        let mut gate = store.enter();
        let txn = match store.env.read_txn() {
            // A read-only store beside a running server: the server grew the map since this
            // environment was opened. Adopt the new size, then begin again.
            Err(heed::Error::Mdb(heed::MdbError::MapResized)) if store.options.read_only => {
                drop(gate);
                store.adopt_map_size()?;
                gate = store.enter();
                store.env.read_txn().map_err(lmdb_err)?
            }
            txn => txn.map_err(lmdb_err)?,
        };
        Ok(LmdbSnapshot {
            txn,
            store,
            _gate: gate,
        })
    }
}

impl ReadView for LmdbSnapshot<'_> {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let db = self.store.db(table)?;
        let value = db.get(&self.txn, key).map_err(lmdb_err)?;
        Ok(value.map(<[u8]>::to_vec))
    }

    fn scan(&self, table: &str, range: KeyRange, direction: Direction) -> Result<KvIter<'_>> {
        let db = self.store.db(table)?;
        Ok(Box::new(PagedScan::new(
            range,
            direction,
            self.store.options.scan_page_size,
            Box::new(move |range, direction, limit| page(&self.txn, db, range, direction, limit)),
        )))
    }
}
