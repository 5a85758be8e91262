use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::paged::PagedScan;
use crate::{
    table_known, Direction, Durability, Error, KeyRange, KvIter, Op, ReadView, Result, Store,
    StoreStats, Table, TableStats, WriteBatch,
};

type TableMap = BTreeMap<Vec<u8>, Vec<u8>>;

/// The in-memory reference engine: the oracle that other engines are compared with, and the
/// store of tests that need no disk. Nothing survives a drop.
///
/// Each table is an `Arc<BTreeMap>`; a snapshot clones the `Arc`s, and a commit copies only the
/// tables it touches while a snapshot still holds them, so snapshots are cheap and isolated.
pub struct MemoryStore {
    tables: Vec<Table>,
    state: RwLock<Vec<Arc<TableMap>>>,
}

impl MemoryStore {
    /// An empty store with `tables`.
    pub fn new(tables: &[Table]) -> Self {
        MemoryStore {
            tables: tables.to_vec(),
            state: RwLock::new(tables.iter().map(|_| Arc::new(TableMap::new())).collect()),
        }
    }

    fn index(&self, table: &str) -> Result<usize> {
        self.tables
            .iter()
            .position(|t| t.name == table)
            .ok_or_else(|| Error::UnknownTable(table.to_string()))
    }

    fn current(&self) -> Vec<Arc<TableMap>> {
        // A poisoned lock means a writer panicked while applying; with validation done first,
        // only an allocation failure can do that, and then the process is going down anyway.
        match self.state.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// A fixed state of a [`MemoryStore`].
pub struct MemorySnapshot {
    tables: Vec<Table>,
    maps: Vec<Arc<TableMap>>,
}

impl MemorySnapshot {
    fn map(&self, table: &str) -> Result<&TableMap> {
        let i = self
            .tables
            .iter()
            .position(|t| t.name == table)
            .ok_or_else(|| Error::UnknownTable(table.to_string()))?;
        Ok(&self.maps[i])
    }
}

fn page(
    map: &TableMap,
    range: &KeyRange,
    direction: Direction,
    limit: usize,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let iter = map.range::<[u8], _>(range.as_bounds());
    let clone = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
    match direction {
        Direction::Forward => iter.take(limit).map(clone).collect(),
        Direction::Reverse => iter.rev().take(limit).map(clone).collect(),
    }
}

impl ReadView for MemorySnapshot {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.map(table)?.get(key).cloned())
    }

    fn scan(&self, table: &str, range: KeyRange, direction: Direction) -> Result<KvIter<'_>> {
        let map = self.map(table)?;
        if range.is_empty() {
            return Ok(Box::new(std::iter::empty()));
        }
        let iter = map
            .range::<[u8], _>(range.as_bounds())
            .map(|(k, v)| Ok((k.clone(), v.clone())));
        Ok(match direction {
            Direction::Forward => Box::new(iter),
            Direction::Reverse => Box::new(iter.rev()),
        })
    }
}

impl ReadView for MemoryStore {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let i = self.index(table)?;
        Ok(self.current()[i].get(key).cloned())
    }

    fn scan(&self, table: &str, range: KeyRange, direction: Direction) -> Result<KvIter<'_>> {
        let i = self.index(table)?;
        Ok(Box::new(PagedScan::new(
            range,
            direction,
            1024,
            Box::new(move |range, direction, limit| {
                Ok(page(&self.current()[i], range, direction, limit))
            }),
        )))
    }
}

impl Store for MemoryStore {
    fn engine(&self) -> &'static str {
        "memory"
    }

    fn tables(&self) -> &[Table] {
        &self.tables
    }

    fn snapshot(&self) -> Result<Box<dyn ReadView + '_>> {
        Ok(Box::new(MemorySnapshot {
            tables: self.tables.clone(),
            maps: self.current(),
        }))
    }

    fn write(&self, batch: WriteBatch, _durability: Durability) -> Result<()> {
        batch.validate(|t| table_known(&self.tables, t))?;
        let mut guard = match self.state.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Readers take the lock too, so they never see half a batch; snapshots hold their own
        // `Arc`s, which `make_mut` copies before touching. Validation above guarantees no
        // operation below can fail, so a batch is never applied in part.
        for op in batch.ops() {
            let map = Arc::make_mut(&mut guard[self.index(op.table())?]);
            match op {
                Op::Put { key, value, .. } => {
                    map.insert(key.to_vec(), value.to_vec());
                }
                Op::Delete { key, .. } => {
                    map.remove(key);
                }
                Op::DeleteRange { start, end, .. } => {
                    if start < end {
                        let doomed: Vec<Vec<u8>> = map
                            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
                            .map(|(k, _)| k.clone())
                            .collect();
                        for k in doomed {
                            map.remove(&k);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn stats(&self) -> Result<StoreStats> {
        let maps = self.current();
        Ok(StoreStats {
            engine: "memory",
            disk_bytes: 0,
            tables: self
                .tables
                .iter()
                .zip(maps.iter())
                .map(|(t, m)| TableStats {
                    name: t.name.to_string(),
                    rows: m.len() as u64,
                    rows_exact: true,
                })
                .collect(),
            engine_counters: Vec::new(),
        })
    }

    fn path(&self) -> Option<&Path> {
        None
    }
}
