//! The flushed chain: the `state` row that says how far the index goes, and the in-memory
//! view of block hashes and tx counts that the writer publishes and every query reads.

use std::sync::Arc;

use anode_store::{Direction, KeyRange, ReadView, Store};
use parking_lot::{RwLock, RwLockWriteGuard};

use super::error::{IndexError, IndexResult};
use super::keys::*;
use super::schema::*;
use crate::query::Hash32;

/// `meta` key of the index state: height (4 B BE) + block hash (32 B) + tx count (8 B BE).
pub const STATE_KEY: &[u8] = b"state";

/// The flushed tip as recorded in `meta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexState {
    /// height of the last flushed block
    pub height: u32,
    /// its hash
    pub hash: Hash32,
    /// transactions indexed up to and including it
    pub tx_count: u64,
}

impl IndexState {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(44);
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&self.tx_count.to_be_bytes());
        out
    }

    /// The state row's value back to the state; `None` if it is damaged.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 44 {
            return None;
        }
        Some(IndexState {
            height: read_u32_be(bytes, 0)?,
            hash: read_hash(&bytes[4..])?,
            tx_count: u64::from_be_bytes(bytes[36..44].try_into().ok()?),
        })
    }
}

/// The in-memory part of the flushed chain that queries need on every call.
#[derive(Debug, Clone, Default)]
pub struct ChainView {
    /// block hashes by height
    pub hashes: Vec<Hash32>,
    /// cumulative tx counts by height
    pub tx_counts: Vec<u64>,
    /// the tip's raw header
    pub tip_header: Vec<u8>,
}

impl ChainView {
    /// Reads the chain tables up to the state row's tip, and checks they agree with it.
    pub fn load(view_store: &dyn ReadView, state: &IndexState) -> IndexResult<Self> {
        let mut view = ChainView::default();
        let end = height_key(state.height.saturating_add(1));
        let range = KeyRange::between(&height_key(0), &end);
        let all = state.height == u32::MAX;
        let range = if all { KeyRange::all() } else { range };
        for row in view_store.scan(BLOCK_HASHES, range.clone(), Direction::Forward)? {
            let (key, value) = row?;
            let hash = read_hash(&value);
            if read_height(&key) != Some(view.hashes.len() as u32) || hash.is_none() {
                return Err(IndexError::Corrupt(format!(
                    "block hash row {} out of sequence",
                    hex::encode(&key)
                )));
            }
            view.hashes.extend(hash);
        }
        for row in view_store.scan(TX_COUNTS, range, Direction::Forward)? {
            let (key, value) = row?;
            let count = read_tx_num(&value);
            if read_height(&key) != Some(view.tx_counts.len() as u32) || count.is_none() {
                return Err(IndexError::Corrupt(format!(
                    "tx count row {} out of sequence",
                    hex::encode(&key)
                )));
            }
            view.tx_counts.extend(count);
        }
        let expected = state.height as usize + 1;
        if view.hashes.len() != expected
            || view.tx_counts.len() != expected
            || view.hashes.last() != Some(&state.hash)
            || view.tx_counts.last() != Some(&state.tx_count)
        {
            return Err(IndexError::Corrupt(format!(
                "the state row says height {} but the chain tables disagree",
                state.height
            )));
        }
        view.tip_header = view_store
            .get(HEADERS, &height_key(state.height))?
            .ok_or_else(|| IndexError::Corrupt("the tip header is missing".into()))?;
        Ok(view)
    }

    /// Height of the tip, `None` for an empty index.
    pub fn height(&self) -> Option<u32> {
        (self.hashes.len() as u32).checked_sub(1)
    }

    /// The range of tx numbers of the block at `height`.
    pub fn tx_range(&self, height: u32) -> Option<std::ops::Range<TxNum>> {
        let end = *self.tx_counts.get(height as usize)?;
        let start = match height {
            0 => 0,
            h => self.tx_counts[h as usize - 1],
        };
        Some(start..end)
    }

    /// The height of the block holding transaction `tx_num`.
    pub fn height_of(&self, tx_num: TxNum) -> Option<u32> {
        let index = self.tx_counts.partition_point(|&count| count <= tx_num);
        (index < self.tx_counts.len()).then_some(index as u32)
    }
}

/// Chain view shared between the writer and the readers. The writer commits and updates the
/// view under the write lock, so a reader that takes a store snapshot under the read lock
/// sees the two agree.
#[derive(Debug, Default)]
pub struct SharedChain {
    view: RwLock<Arc<ChainView>>,
}

impl SharedChain {
    pub(super) fn new(view: ChainView) -> Self {
        SharedChain {
            view: RwLock::new(Arc::new(view)),
        }
    }

    /// Write access for the writer, which holds it while its batch commits: a reader takes its
    /// snapshot under the read lock ([`Self::view_and_snapshot`]), so the two always agree.
    pub(super) fn lock_for_update(&self) -> RwLockWriteGuard<'_, Arc<ChainView>> {
        self.view.write()
    }

    /// The current view.
    pub fn view(&self) -> Arc<ChainView> {
        Arc::clone(&self.view.read())
    }

    /// The tip the view describes (height 0 and a zero hash for an empty index).
    pub fn tip(&self) -> crate::query::Tip {
        let view = self.view();
        crate::query::Tip {
            height: view.height().unwrap_or(0),
            hash: view.hashes.last().copied().unwrap_or([0; 32]),
            header: view.tip_header.clone(),
        }
    }

    /// The view together with a store snapshot of the same state.
    pub fn view_and_snapshot<'s>(
        &self,
        store: &'s dyn Store,
    ) -> anode_store::Result<(Arc<ChainView>, Box<dyn ReadView + 's>)> {
        let guard = self.view.read();
        let snapshot = store.snapshot()?;
        Ok((Arc::clone(&guard), snapshot))
    }
}
