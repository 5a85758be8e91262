//! The block processor: turns parsed blocks into index rows.
//!
//! Blocks are applied to an in-memory *pending* state — new outputs live in a UTXO cache, so
//! most spends during the initial sync never touch the store — and written by [`IndexWriter::
//! flush`] as **one atomic batch** that also moves the `state` row in `meta`. The state row is
//! the only statement of how far the index goes: after a crash the store holds exactly the
//! last complete flush, and the sync resumes from there.
//!
//! Reorgs are undone block by block from undo records kept for the last `reorg_limit` blocks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anode_coins::{Coin, ParsedBlock};
use anode_store::{Direction, Durability, KeyRange, ReadView, Store, WriteBatch};
use parking_lot::RwLock;
use rayon::prelude::*;

use super::keys::*;
use super::schema::*;
use super::undo::{CreatedOutput, SpentOutput, UndoRecord};
use crate::query::{Hash32, HashX, OutPoint};

/// The process's anonymous resident memory in MB (Linux; 0 elsewhere), for the flush log:
/// the peak of a sync is at a flush, and this shows which part of it (the pending state, the
/// built batch, the engine's copy) the operator's `cache_mb` has to cover.
fn anon_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("RssAnon:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map_or(0, |kib| kib >> 10)
}

/// `meta` key of the index state: height (4 B BE) + block hash (32 B) + tx count (8 B BE).
pub const STATE_KEY: &[u8] = b"state";

/// Why indexing failed. None of these leave a partial flush behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The store failed.
    #[error("database: {0}")]
    Store(#[from] anode_store::Error),
    /// A flush could not be written. None of it reached the store, and the writer still holds
    /// its blocks as pending: [`IndexWriter::flush`] can try the same flush again.
    #[error("writing blocks {first}..={last} ({bytes} bytes of rows) to the database: {source}")]
    Flush {
        /// the first block of the flush
        first: u32,
        /// its last block
        last: u32,
        /// keys and values in its batch (the engine needs more on disk: pages, logs)
        bytes: u64,
        /// the store's error
        source: anode_store::Error,
    },
    /// The database contradicts itself.
    #[error("the index is inconsistent: {0}; stop anode and re-index into a new DB_DIRECTORY")]
    Corrupt(String),
    /// A block spends an output the index does not have.
    #[error(
        "block {height} spends {txid}:{vout}, which the index does not hold as unspent \
         (a chain the coin settings do not describe, or a damaged index)"
    )]
    MissingOutput {
        /// height of the spending block
        height: u32,
        /// funding txid, display order
        txid: String,
        /// output index
        vout: u32,
    },
    /// A block does not extend the tip.
    #[error("block {height} does not extend the indexed tip")]
    NotExtending {
        /// the block's height
        height: u32,
    },
    /// A reorg would undo a block whose undo record is gone.
    #[error(
        "the node's chain forks below height {height}, deeper than the undo data kept \
         (reorg limit {limit}); anode cannot follow it. Check that the node is on the right \
         chain; if it is, re-index into a new DB_DIRECTORY (or raise REORG_LIMIT first)"
    )]
    ReorgTooDeep {
        /// the lowest height that would have to be undone
        height: u32,
        /// the configured limit
        limit: u32,
    },
    /// The chain outgrew the 5-byte tx numbers.
    #[error("more than 2^40 transactions: the index format cannot number them")]
    TooManyTransactions,
}

impl IndexError {
    /// The store's error behind this one, if the store failed.
    pub fn store_error(&self) -> Option<&anode_store::Error> {
        match self {
            IndexError::Store(e) | IndexError::Flush { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

/// Result of the block processor.
pub type IndexResult<T> = Result<T, IndexError>;

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
    fn encode(&self) -> Vec<u8> {
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

/// What a block or a run of blocks touched, for notifications.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Touched {
    /// scripts that gained or lost history
    pub scripts: HashSet<HashX>,
    /// outpoints created, spent or un-spent
    pub outpoints: HashSet<OutPoint>,
}

impl Touched {
    /// Adds another set.
    pub fn extend(&mut self, other: Touched) {
        self.scripts.extend(other.scripts);
        self.outpoints.extend(other.outpoints);
    }

    /// Whether nothing was touched.
    pub fn is_empty(&self) -> bool {
        self.scripts.is_empty() && self.outpoints.is_empty()
    }
}

#[derive(Debug, Clone, Copy)]
struct CachedUtxo {
    hashx: HashX,
    tx_num: TxNum,
    value: u64,
}

/// A `utxo` row of a flush: (hashX, tx number, vout, `Some(value)` for a new output, `None`
/// for the deletion of a spent stored one).
type UtxoRow = (HashX, TxNum, u32, Option<u64>);

/// A `utxo_lookup` row of a flush: (txid prefix, vout, tx number, `Some((hashX, value))` or
/// `None` as in [`UtxoRow`]).
type LookupRow = (TxidPrefix, u32, TxNum, Option<(HashX, u64)>);

/// A spent output that lives in the store: its rows are deleted at the flush.
struct StoredSpend {
    hashx: HashX,
    tx_num: TxNum,
    outpoint: OutPoint,
}

#[derive(Default)]
struct Pending {
    headers: Vec<Vec<u8>>,
    hashes: Vec<Hash32>,
    tx_counts: Vec<u64>,
    txids: Vec<Hash32>,
    history: Vec<(HashX, TxNum)>,
    utxos: HashMap<OutPoint, CachedUtxo>,
    stored_spends: Vec<StoredSpend>,
    spenders: Vec<(TxNum, u32, TxNum)>,
    undo: Vec<(u32, Vec<u8>)>,
    undo_bytes: usize,
    header_bytes: usize,
}

// Rough per-entry costs, including what the batch copies at flush time, so that the budget
// bounds the peak rather than only the steady state.
const UTXO_ENTRY_COST: usize = 200;
const HISTORY_ENTRY_COST: usize = 80;
const TXID_ENTRY_COST: usize = 150;
const SPEND_ENTRY_COST: usize = 150;

impl Pending {
    fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    fn memory(&self) -> usize {
        self.utxos.len() * UTXO_ENTRY_COST
            + self.history.len() * HISTORY_ENTRY_COST
            + self.txids.len() * TXID_ENTRY_COST
            + (self.stored_spends.len() + self.spenders.len()) * SPEND_ENTRY_COST
            + self.undo_bytes * 2
            + self.header_bytes * 2
    }
}

/// What one flush wrote, for whoever watches (the Prometheus metrics).
#[derive(Debug, Clone, Copy)]
pub struct FlushReport {
    /// blocks written
    pub blocks: usize,
    /// store operations in the batch
    pub ops: usize,
    /// keys and values in the batch
    pub bytes: u64,
    /// building the batch and committing it
    pub elapsed: std::time::Duration,
}

/// Called after every committed flush.
pub type FlushObserver = Arc<dyn Fn(FlushReport) + Send + Sync>;

/// Options of the block processor.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// blocks that can be undone (the coin's reorg limit unless configured)
    pub reorg_limit: u32,
    /// bytes the pending state may use before [`IndexWriter::needs_flush`] says so
    pub cache_bytes: usize,
}

/// The block processor. One per database; applies blocks in order and flushes them.
pub struct IndexWriter {
    store: Arc<dyn Store>,
    coin: Arc<dyn Coin>,
    options: WriterOptions,
    chain: Arc<SharedChain>,
    flushed: Option<IndexState>,
    pending: Pending,
    lowest_undo: Option<u32>,
    collect_touched: bool,
    touched: Touched,
    blocks_since_take: u32,
    on_flush: Option<FlushObserver>,
}

impl IndexWriter {
    /// Opens the index in `store`: reads the state row and loads the chain view. Rows past the
    /// state row (left by nothing: every flush is atomic) are not trusted anyway.
    pub fn open(
        store: Arc<dyn Store>,
        coin: Arc<dyn Coin>,
        options: WriterOptions,
    ) -> IndexResult<Self> {
        let flushed = match store.get(META, STATE_KEY)? {
            None => None,
            Some(bytes) => Some(
                IndexState::decode(&bytes)
                    .ok_or_else(|| IndexError::Corrupt("the meta state row is damaged".into()))?,
            ),
        };
        let mut view = ChainView::default();
        if let Some(state) = flushed {
            let end = height_key(state.height.saturating_add(1));
            let range = KeyRange::between(&height_key(0), &end);
            let all = state.height == u32::MAX;
            let range = if all { KeyRange::all() } else { range };
            for row in store.scan(BLOCK_HASHES, range.clone(), Direction::Forward)? {
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
            for row in store.scan(TX_COUNTS, range, Direction::Forward)? {
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
            view.tip_header = store
                .get(HEADERS, &height_key(state.height))?
                .ok_or_else(|| IndexError::Corrupt("the tip header is missing".into()))?;
        }
        let lowest_undo = store
            .scan(UNDO, KeyRange::all(), Direction::Forward)?
            .next()
            .transpose()?
            .and_then(|(key, _)| read_height(&key));
        Ok(IndexWriter {
            store,
            coin,
            options,
            chain: Arc::new(SharedChain {
                view: RwLock::new(Arc::new(view)),
            }),
            flushed,
            pending: Pending::default(),
            lowest_undo,
            collect_touched: false,
            touched: Touched::default(),
            blocks_since_take: 0,
            on_flush: None,
        })
    }

    /// Calls `observer` after every committed flush.
    pub fn set_flush_observer(&mut self, observer: FlushObserver) {
        self.on_flush = Some(observer);
    }

    /// The chain view readers share.
    pub fn shared_chain(&self) -> Arc<SharedChain> {
        Arc::clone(&self.chain)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The flushed state.
    pub fn flushed(&self) -> Option<IndexState> {
        self.flushed
    }

    /// Height and hash of the tip including pending blocks.
    pub fn tip(&self) -> Option<(u32, Hash32)> {
        match self.pending.hashes.last() {
            Some(hash) => {
                let first = self.flushed.map_or(0, |s| s.height + 1);
                Some((first + self.pending.hashes.len() as u32 - 1, *hash))
            }
            None => self.flushed.map(|s| (s.height, s.hash)),
        }
    }

    /// The hash of the block at `height`, pending or flushed.
    pub fn hash_at(&self, height: u32) -> Option<Hash32> {
        let first_pending = self.flushed.map_or(0, |s| s.height + 1);
        if height >= first_pending {
            return self
                .pending
                .hashes
                .get((height - first_pending) as usize)
                .copied();
        }
        self.chain.view().hashes.get(height as usize).copied()
    }

    fn tx_count(&self) -> u64 {
        self.pending
            .tx_counts
            .last()
            .copied()
            .or(self.flushed.map(|s| s.tx_count))
            .unwrap_or(0)
    }

    /// Starts or stops recording what blocks touch (only needed once clients are served).
    pub fn set_collect_touched(&mut self, on: bool) {
        self.collect_touched = on;
    }

    /// What was touched since the last call.
    pub fn take_touched(&mut self) -> Touched {
        self.blocks_since_take = 0;
        std::mem::take(&mut self.touched)
    }

    /// Adds to what was touched (mempool effects of a flush), when collecting.
    pub fn note_touched(&mut self, touched: Touched) {
        if self.collect_touched {
            self.touched.extend(touched);
        }
    }

    /// Whether blocks were applied or undone since the last [`Self::take_touched`].
    pub fn has_new_blocks_since_announce(&self) -> bool {
        self.blocks_since_take > 0
    }

    /// The txids of pending blocks, when collecting (to drop them from the mempool mirror at
    /// the flush; during the initial sync there is no mirror and nothing is copied).
    pub fn pending_txids(&self) -> Vec<Hash32> {
        if self.collect_touched {
            self.pending.txids.clone()
        } else {
            Vec::new()
        }
    }

    /// Bytes the pending state holds (estimated).
    pub fn pending_bytes(&self) -> usize {
        self.pending.memory()
    }

    /// Whether the pending state has outgrown the budget.
    pub fn needs_flush(&self) -> bool {
        self.pending.memory() >= self.options.cache_bytes
    }

    /// Whether blocks are waiting for a flush.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Applies the block at `height` (the next one) to the pending state. `keep_undo` records
    /// what is needed to take it out again (for blocks within the reorg limit of the node's
    /// tip). On error the pending state must be discarded with [`IndexWriter::discard_pending`].
    pub fn apply_block(
        &mut self,
        height: u32,
        hash: Hash32,
        block: &ParsedBlock,
        keep_undo: bool,
    ) -> IndexResult<()> {
        let expected_height = self.tip().map_or(0, |(h, _)| h + 1);
        if height != expected_height {
            return Err(IndexError::NotExtending { height });
        }
        if let Some((_, tip_hash)) = self.tip() {
            if block.prev_hash != tip_hash {
                return Err(IndexError::NotExtending { height });
            }
        }
        let coin = Arc::clone(&self.coin);
        let index_txs = height > 0 || coin.index_genesis_outputs();
        let txs: &[anode_coins::ParsedTx] = if index_txs { &block.txs } else { &[] };

        // Hashing every output script is the CPU-heavy part; do it on all cores.
        let scripts: Vec<(Vec<Option<HashX>>, Vec<HashX>)> = txs
            .par_iter()
            .map(|tx| {
                let outputs = tx
                    .outputs
                    .iter()
                    .map(|out| {
                        (!coin.is_unspendable(&out.script, height))
                            .then(|| hashx_of(&coin.script_hash(&out.script)))
                    })
                    .collect();
                let names = tx
                    .outputs
                    .iter()
                    .filter_map(|out| coin.name_index_script(&out.script))
                    .map(|script| hashx_of(&coin.script_hash(&script)))
                    .collect();
                (outputs, names)
            })
            .collect();

        let start = self.tx_count();
        if start.saturating_add(txs.len() as u64) > MAX_TX_NUM {
            return Err(IndexError::TooManyTransactions);
        }
        let mut undo = keep_undo.then(UndoRecord::default);
        let mut block_hashxs: Vec<HashX> = Vec::new();
        for (i, (tx, (output_hashxs, name_hashxs))) in txs.iter().zip(scripts).enumerate() {
            let tx_num = start + i as u64;
            block_hashxs.clear();
            if !tx.is_coinbase {
                for input in &tx.inputs {
                    let outpoint = OutPoint {
                        txid: input.txid,
                        vout: input.vout,
                    };
                    let spent = self.spend(height, &outpoint)?;
                    block_hashxs.push(spent.hashx);
                    self.pending
                        .spenders
                        .push((spent.tx_num, outpoint.vout, tx_num));
                    if let Some(undo) = undo.as_mut() {
                        if spent.tx_num < start {
                            undo.spent.push(SpentOutput {
                                hashx: spent.hashx,
                                tx_num: spent.tx_num,
                                vout: outpoint.vout,
                                value: spent.value,
                                txid_prefix: txid_prefix(&outpoint.txid),
                            });
                        }
                    }
                    if self.collect_touched {
                        self.touched.outpoints.insert(outpoint);
                    }
                }
            }
            for (vout, (out, hashx)) in tx.outputs.iter().zip(output_hashxs).enumerate() {
                let Some(hashx) = hashx else { continue };
                let vout = vout as u32;
                let outpoint = OutPoint {
                    txid: tx.txid,
                    vout,
                };
                self.pending.utxos.insert(
                    outpoint,
                    CachedUtxo {
                        hashx,
                        tx_num,
                        value: out.value,
                    },
                );
                block_hashxs.push(hashx);
                if let Some(undo) = undo.as_mut() {
                    undo.created.push(CreatedOutput {
                        hashx,
                        tx_num,
                        vout,
                    });
                }
                if self.collect_touched {
                    self.touched.outpoints.insert(outpoint);
                }
            }
            block_hashxs.extend(name_hashxs);
            block_hashxs.sort_unstable();
            block_hashxs.dedup();
            for hashx in &block_hashxs {
                self.pending.history.push((*hashx, tx_num));
                if let Some(undo) = undo.as_mut() {
                    undo.scripts.push(*hashx);
                }
                if self.collect_touched {
                    self.touched.scripts.insert(*hashx);
                }
            }
            self.pending.txids.push(tx.txid);
        }
        self.blocks_since_take += 1;
        self.pending.header_bytes += block.header.len() + 64;
        self.pending.headers.push(block.header.clone());
        self.pending.hashes.push(hash);
        self.pending.tx_counts.push(start + txs.len() as u64);
        if let Some(undo) = undo {
            let bytes = undo.encode();
            self.pending.undo_bytes += bytes.len();
            self.pending.undo.push((height, bytes));
        }
        Ok(())
    }

    /// Takes an output out of the UTXO set (the cache, else the store).
    fn spend(&mut self, height: u32, outpoint: &OutPoint) -> IndexResult<CachedUtxo> {
        if let Some(cached) = self.pending.utxos.remove(outpoint) {
            return Ok(cached);
        }
        let found = find_stored_utxo(self.store.as_ref(), outpoint, false)?;
        let Some(found) = found else {
            return Err(IndexError::MissingOutput {
                height,
                txid: crate::daemon::hash_to_hex(&outpoint.txid),
                vout: outpoint.vout,
            });
        };
        self.pending.stored_spends.push(StoredSpend {
            hashx: found.hashx,
            tx_num: found.tx_num,
            outpoint: *outpoint,
        });
        Ok(found)
    }

    /// Forgets blocks applied since the last flush (after a failed apply).
    pub fn discard_pending(&mut self) {
        self.pending = Pending::default();
        self.touched = Touched::default();
    }

    /// Writes the pending blocks as one atomic batch. `Durability::Bulk` during the initial
    /// sync, `Durability::Sync` at the tip. Returns the number of blocks written.
    ///
    /// A write that fails ([`IndexError::Flush`]) changes nothing: the store keeps its last
    /// committed state, and the writer its pending blocks, chain view and flushed state, so the
    /// same flush can be tried again (once a full disk has room, say).
    pub fn flush(&mut self, durability: Durability) -> IndexResult<usize> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        let anon_mb_before = anon_rss_mb();
        let pending_estimate_mb = (self.pending.memory() >> 20) as u64;
        let first_height = self.flushed.map_or(0, |s| s.height + 1);
        let first_tx = self.flushed.map_or(0, |s| s.tx_count);
        let blocks = self.pending.hashes.len();
        let tip_height = first_height + blocks as u32 - 1;
        let (batch, state, lowest_undo) = flush_batch(
            &mut self.pending,
            first_height,
            first_tx,
            self.lowest_undo,
            self.options.reorg_limit,
        );
        let ops = batch.len();
        let bytes = batch.payload_bytes() as u64;
        let built = started.elapsed();
        let anon_mb_built = anon_rss_mb();
        // Readers take the view and a store snapshot under the read lock, so the commit and the
        // view's update happen under the write lock. A failed write returns with the view as
        // it was.
        let mut guard = self.chain.view.write();
        if let Err(source) = self.store.write(batch, durability) {
            return Err(IndexError::Flush {
                first: first_height,
                last: tip_height,
                bytes,
                source,
            });
        }
        let pending = std::mem::take(&mut self.pending);
        tracing::info!(
            pending_estimate_mb,
            anon_mb_before,
            anon_mb_built,
            anon_mb_written = anon_rss_mb(),
            height = tip_height,
            blocks,
            ops,
            build_ms = built.as_millis() as u64,
            write_ms = (started.elapsed() - built).as_millis() as u64,
            synced = matches!(durability, Durability::Sync),
            "flush"
        );
        let view = Arc::make_mut(&mut guard);
        view.hashes.extend_from_slice(&pending.hashes);
        view.tx_counts.extend_from_slice(&pending.tx_counts);
        view.tip_header = pending.headers.last().cloned().unwrap_or_default();
        drop(guard);
        self.flushed = Some(state);
        self.lowest_undo = lowest_undo;
        if let Some(observer) = &self.on_flush {
            observer(FlushReport {
                blocks,
                ops,
                bytes,
                elapsed: started.elapsed(),
            });
        }
        Ok(blocks)
    }

    /// Takes the tip block out of the index (one synced batch). Pending blocks are flushed
    /// first. Returns the new tip height.
    pub fn undo_tip(&mut self) -> IndexResult<u32> {
        self.flush(Durability::Sync)?;
        let Some(state) = self.flushed else {
            return Err(IndexError::Corrupt(
                "nothing to undo in an empty index".into(),
            ));
        };
        let height = state.height;
        let limit = self.options.reorg_limit;
        if height == 0 {
            return Err(IndexError::ReorgTooDeep { height, limit });
        }
        let record = match self.store.get(UNDO, &height_key(height))? {
            Some(bytes) => UndoRecord::decode(&bytes).ok_or_else(|| {
                IndexError::Corrupt(format!("the undo record of block {height} is damaged"))
            })?,
            None => return Err(IndexError::ReorgTooDeep { height, limit }),
        };
        let view = self.chain.view();
        let range = view
            .tx_range(height)
            .ok_or_else(|| IndexError::Corrupt(format!("no tx count for block {height}")))?;
        let txids = read_txids(self.store.as_ref(), range.clone())?;
        let txid_of = |tx_num: TxNum| -> IndexResult<&Hash32> {
            tx_num
                .checked_sub(range.start)
                .and_then(|i| txids.get(i as usize))
                .ok_or_else(|| {
                    IndexError::Corrupt(format!("undo of block {height} names tx {tx_num}"))
                })
        };

        let mut batch = WriteBatch::new();
        let key = height_key(height);
        batch.delete(HEADERS, key);
        batch.delete(BLOCK_HASHES, key);
        batch.delete(TX_COUNTS, key);
        batch.delete(UNDO, key);
        batch.delete_range(
            TX_HASHES,
            tx_num_bytes(range.start),
            tx_num_bytes(range.end),
        );
        batch.delete_range(
            SPENDERS,
            spender_key(range.start, 0),
            spender_key(range.end, 0),
        );
        for (i, txid) in txids.iter().enumerate() {
            batch.delete(TXID_INDEX, txid_index_key(txid, range.start + i as u64));
        }
        let mut touched = Touched::default();
        for hashx in &record.scripts {
            truncate_history(self.store.as_ref(), &mut batch, hashx, range.start)?;
            touched.scripts.insert(*hashx);
        }
        for created in &record.created {
            let txid = txid_of(created.tx_num)?;
            batch.delete(UTXO, utxo_key(&created.hashx, created.tx_num, created.vout));
            batch.delete(
                UTXO_LOOKUP,
                utxo_lookup_key(txid, created.vout, created.tx_num),
            );
            touched.outpoints.insert(OutPoint {
                txid: *txid,
                vout: created.vout,
            });
        }
        for spent in &record.spent {
            batch.put(
                UTXO,
                utxo_key(&spent.hashx, spent.tx_num, spent.vout),
                spent.value.to_le_bytes(),
            );
            let mut lookup_key = Vec::with_capacity(17);
            lookup_key.extend_from_slice(&spent.txid_prefix);
            lookup_key.extend_from_slice(&spent.vout.to_be_bytes());
            lookup_key.extend_from_slice(&tx_num_bytes(spent.tx_num));
            batch.put(
                UTXO_LOOKUP,
                lookup_key,
                utxo_lookup_value(&spent.hashx, spent.value),
            );
            batch.delete(SPENDERS, spender_key(spent.tx_num, spent.vout));
            if let Some(txid) = self.store.get(TX_HASHES, &tx_num_bytes(spent.tx_num))? {
                if let Some(txid) = read_hash(&txid) {
                    touched.outpoints.insert(OutPoint {
                        txid,
                        vout: spent.vout,
                    });
                }
            }
        }
        let parent = height - 1;
        let parent_hash = *view
            .hashes
            .get(parent as usize)
            .ok_or_else(|| IndexError::Corrupt(format!("no hash for block {parent}")))?;
        let new_state = IndexState {
            height: parent,
            hash: parent_hash,
            tx_count: range.start,
        };
        batch.put(META, STATE_KEY, new_state.encode());
        let parent_header = self
            .store
            .get(HEADERS, &height_key(parent))?
            .ok_or_else(|| IndexError::Corrupt(format!("no header for block {parent}")))?;
        drop(view);

        let mut guard = self.chain.view.write();
        self.store.write(batch, Durability::Sync)?;
        let view = Arc::make_mut(&mut guard);
        view.hashes.truncate(parent as usize + 1);
        view.tx_counts.truncate(parent as usize + 1);
        view.tip_header = parent_header;
        drop(guard);
        self.flushed = Some(new_state);
        if self.lowest_undo == Some(height) {
            self.lowest_undo = None;
        }
        if self.collect_touched {
            self.touched.extend(touched);
        }
        self.blocks_since_take += 1;
        Ok(parent)
    }
}

/// The batch of one flush of `pending` (blocks from `first_height`, transactions from
/// `first_tx`), with the state row it records and the lowest undo height kept after it.
///
/// `pending` is only read, save for sorting its history and spender rows in place (their order
/// means nothing to the writer), so a flush whose write fails leaves it whole for the next try.
fn flush_batch(
    pending: &mut Pending,
    first_height: u32,
    first_tx: TxNum,
    mut lowest_undo: Option<u32>,
    reorg_limit: u32,
) -> (WriteBatch, IndexState, Option<u32>) {
    let blocks = pending.hashes.len();
    let mut batch = WriteBatch::with_capacity_and_bytes(
        blocks * 3
            + pending.txids.len() * 2
            + pending.history.len()
            + pending.utxos.len() * 2
            + pending.stored_spends.len() * 2
            + pending.spenders.len()
            + pending.undo.len()
            + 1,
        pending.header_bytes
            + pending.txids.len() * 50
            + pending.history.len() * 16
            + pending.utxos.len() * 64
            + pending.stored_spends.len() * 37
            + pending.spenders.len() * 14
            + pending.undo_bytes
            + pending.undo.len() * 4
            + 64,
    );
    for (i, header) in pending.headers.iter().enumerate() {
        let key = height_key(first_height + i as u32);
        batch.put(HEADERS, key, header);
        batch.put(BLOCK_HASHES, key, pending.hashes[i]);
        batch.put(TX_COUNTS, key, tx_num_bytes(pending.tx_counts[i]));
    }
    for (i, txid) in pending.txids.iter().enumerate() {
        batch.put(TX_HASHES, tx_num_bytes(first_tx + i as u64), *txid);
    }
    // Rows of the randomly keyed tables go in key order: every engine inserts a sorted run
    // much faster than scattered keys (RocksDB's memtable reuses its skip-list position,
    // B-trees touch each page once). Each table's rows are sorted as typed tuples whose
    // order is the order of their big-endian key encodings, on all cores.
    let mut txid_rows: Vec<(TxidPrefix, TxNum)> = Vec::new();
    let mut utxo_rows: Vec<UtxoRow> = Vec::new();
    let mut lookup_rows: Vec<LookupRow> = Vec::new();
    let Pending {
        history,
        spenders,
        utxos,
        stored_spends,
        txids,
        ..
    } = pending;
    let (utxos, stored_spends, txids) = (&*utxos, &*stored_spends, &*txids);
    rayon::scope(|s| {
        s.spawn(|_| {
            txid_rows = txids
                .iter()
                .enumerate()
                .map(|(i, txid)| (txid_prefix(txid), first_tx + i as u64))
                .collect();
            txid_rows.par_sort_unstable();
        });
        s.spawn(|_| history.par_sort_unstable());
        s.spawn(|_| {
            utxo_rows = utxos
                .iter()
                .map(|(o, u)| (u.hashx, u.tx_num, o.vout, Some(u.value)))
                .chain(
                    stored_spends
                        .iter()
                        .map(|spend| (spend.hashx, spend.tx_num, spend.outpoint.vout, None)),
                )
                .collect();
            utxo_rows.par_sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        });
        s.spawn(|_| {
            lookup_rows = utxos
                .iter()
                .map(|(o, u)| {
                    (
                        txid_prefix(&o.txid),
                        o.vout,
                        u.tx_num,
                        Some((u.hashx, u.value)),
                    )
                })
                .chain(stored_spends.iter().map(|spend| {
                    let o = &spend.outpoint;
                    (txid_prefix(&o.txid), o.vout, spend.tx_num, None)
                }))
                .collect();
            lookup_rows.par_sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        });
        s.spawn(|_| spenders.par_sort_unstable());
    });
    for (prefix, tx_num) in txid_rows {
        batch.put(TXID_INDEX, txid_index_key_from_prefix(&prefix, tx_num), []);
    }
    // One row per script and flush (split past HISTORY_CHUNK_MAX): far fewer rows than
    // one per (script, transaction), so B-tree engines carry less per-row overhead.
    let mut chunk: Vec<TxNum> = Vec::new();
    let mut rows = history.iter().peekable();
    while let Some(&(hashx, tx_num)) = rows.next() {
        chunk.push(tx_num);
        let same_next = rows.peek().is_some_and(|(next, _)| *next == hashx);
        if !same_next || chunk.len() == HISTORY_CHUNK_MAX {
            let (key, value) = history_row(&hashx, &chunk);
            batch.put(HISTORY, key, value);
            chunk.clear();
        }
    }
    for (hashx, tx_num, vout, value) in utxo_rows {
        let key = utxo_key(&hashx, tx_num, vout);
        match value {
            Some(value) => batch.put(UTXO, key, value.to_le_bytes()),
            None => batch.delete(UTXO, key),
        }
    }
    for (prefix, vout, tx_num, created) in lookup_rows {
        let key = utxo_lookup_key_from_prefix(&prefix, vout, tx_num);
        match created {
            Some((hashx, value)) => batch.put(UTXO_LOOKUP, key, utxo_lookup_value(&hashx, value)),
            None => batch.delete(UTXO_LOOKUP, key),
        }
    }
    for &(funding, vout, spender) in spenders.iter() {
        batch.put(SPENDERS, spender_key(funding, vout), tx_num_bytes(spender));
    }
    for (height, record) in &pending.undo {
        lowest_undo = Some(lowest_undo.map_or(*height, |low| low.min(*height)));
        batch.put(UNDO, height_key(*height), record);
    }
    let tip_height = first_height + blocks as u32 - 1;
    // Undo records older than the reorg limit are never needed again.
    if let Some(low) = lowest_undo {
        let keep_from = tip_height.saturating_sub(reorg_limit) + 1;
        for height in low..keep_from.min(tip_height + 1) {
            batch.delete(UNDO, height_key(height));
        }
        lowest_undo = (keep_from <= tip_height).then(|| low.max(keep_from));
    }
    let state = IndexState {
        height: tip_height,
        hash: *pending.hashes.last().unwrap_or(&[0; 32]),
        tx_count: *pending.tx_counts.last().unwrap_or(&first_tx),
    };
    batch.put(META, STATE_KEY, state.encode());
    (batch, state, lowest_undo)
}

/// Takes tx numbers from `from` on out of the `history` rows of `hashx`: rows that start there
/// or later are deleted, the row that straddles `from` is rewritten without them.
fn truncate_history(
    view: &dyn ReadView,
    batch: &mut WriteBatch,
    hashx: &HashX,
    from: TxNum,
) -> IndexResult<()> {
    let mut tx_nums = Vec::new();
    for row in view.scan_prefix(HISTORY, hashx, Direction::Reverse)? {
        let (key, value) = row?;
        tx_nums.clear();
        read_history_row(&key, &value, &mut tx_nums).ok_or_else(|| {
            IndexError::Corrupt(format!("history row {} is damaged", hex::encode(&key)))
        })?;
        let keep = tx_nums.partition_point(|n| *n < from);
        if keep == tx_nums.len() {
            break;
        }
        if keep == 0 {
            batch.delete(HISTORY, key);
            continue;
        }
        // Same first tx number, so the same key: the put replaces the row.
        let (key, value) = history_row(hashx, &tx_nums[..keep]);
        batch.put(HISTORY, key, value);
        break;
    }
    Ok(())
}

/// The hashX of a script hash.
pub fn hashx_of(script_hash: &Hash32) -> HashX {
    crate::query::ScriptHash(*script_hash).hashx()
}

/// The txids of tx numbers `range`, in order.
pub fn read_txids(view: &dyn ReadView, range: std::ops::Range<TxNum>) -> IndexResult<Vec<Hash32>> {
    let mut txids = Vec::with_capacity((range.end - range.start) as usize);
    if range.is_empty() {
        return Ok(txids);
    }
    let keys = KeyRange::between(&tx_num_bytes(range.start), &tx_num_bytes(range.end));
    for row in view.scan(TX_HASHES, keys, Direction::Forward)? {
        let (key, value) = row?;
        let expected = range.start + txids.len() as u64;
        match (read_tx_num(&key), read_hash(&value)) {
            (Some(n), Some(txid)) if n == expected => txids.push(txid),
            _ => {
                return Err(IndexError::Corrupt(format!(
                    "tx_hashes row {} out of sequence",
                    hex::encode(&key)
                )))
            }
        }
    }
    if txids.len() as u64 != range.end - range.start {
        return Err(IndexError::Corrupt(format!(
            "tx_hashes is missing rows in {}..{}",
            range.start, range.end
        )));
    }
    Ok(txids)
}

/// A stored unspent output found through `utxo_lookup`. With `verify`, the funding txid is
/// checked in full through `tx_hashes`; without, a single candidate is trusted (a valid block
/// only spends outputs that exist, so the one candidate must be it).
fn find_stored_utxo(
    view: &dyn ReadView,
    outpoint: &OutPoint,
    verify: bool,
) -> IndexResult<Option<CachedUtxo>> {
    let prefix = utxo_lookup_prefix(&outpoint.txid, outpoint.vout);
    let mut candidates = Vec::with_capacity(1);
    for row in view.scan_prefix(UTXO_LOOKUP, &prefix, Direction::Forward)? {
        let (key, value) = row?;
        let parsed = (
            read_tx_num(&key[prefix.len()..]),
            read_hashx(&value),
            value.get(HASHX_LEN..).and_then(read_value),
        );
        let (Some(tx_num), Some(hashx), Some(value)) = parsed else {
            return Err(IndexError::Corrupt(format!(
                "utxo_lookup row {} is damaged",
                hex::encode(&key)
            )));
        };
        candidates.push(CachedUtxo {
            hashx,
            tx_num,
            value,
        });
    }
    if candidates.len() == 1 && !verify {
        return Ok(candidates.pop());
    }
    for candidate in candidates {
        let txid = view.get(TX_HASHES, &tx_num_bytes(candidate.tx_num))?;
        if txid.as_deref() == Some(&outpoint.txid[..]) {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// An unspent output of the store, checked against the full txid (for mempool inputs, whose
/// parents the index may not hold yet).
pub fn lookup_utxo(
    view: &dyn ReadView,
    outpoint: &OutPoint,
) -> IndexResult<Option<(HashX, TxNum, u64)>> {
    Ok(find_stored_utxo(view, outpoint, true)?.map(|u| (u.hashx, u.tx_num, u.value)))
}

/// The tx number of a confirmed txid.
pub fn find_tx_num(view: &dyn ReadView, txid: &Hash32) -> IndexResult<Option<TxNum>> {
    for row in view.scan_prefix(TXID_INDEX, &txid_prefix(txid), Direction::Forward)? {
        let (key, _) = row?;
        let Some(tx_num) = read_tx_num(&key[TXID_PREFIX_LEN..]) else {
            return Err(IndexError::Corrupt(format!(
                "txid_index row {} is damaged",
                hex::encode(&key)
            )));
        };
        if view.get(TX_HASHES, &tx_num_bytes(tx_num))?.as_deref() == Some(&txid[..]) {
            return Ok(Some(tx_num));
        }
    }
    Ok(None)
}
