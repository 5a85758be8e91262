//! The mempool mirror: the node's unconfirmed transactions with their inputs resolved to
//! scripts and values, per-script entries, the compact fee histogram and the recent list.
//!
//! A refresh asks the node for its txids, fetches the new transactions in batches, resolves
//! their inputs from other mempool transactions or from the index, and swaps the result in
//! under one write lock. A transaction whose parent is in neither (its block is not indexed
//! yet) waits for the next refresh. A failed refresh keeps the previous mirror, so a node
//! restart only delays updates.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use anode_coins::Coin;
use anode_store::Store;
use parking_lot::RwLock;
use tracing::debug;

use super::error::IndexError;
use super::lookup::{hashx_of, lookup_utxo};
use super::touched::Touched;
use crate::daemon::{DaemonApi, DaemonError};
use crate::query::{Hash32, HashX, HistoryEntry, OutPoint, RecentTx};

/// Transactions fetched per `getrawtransaction` batch.
const FETCH_BATCH: usize = 500;
/// Length of `mempool.recent`.
const RECENT_LEN: usize = 10;
/// The histogram's first bin, in vbytes (docs/protocol.md, `mempool.get_fee_histogram`).
const HISTOGRAM_BIN: f64 = 30_000.0;

/// One mirrored transaction.
#[derive(Debug, Clone)]
pub struct MempoolTx {
    /// fee in the smallest unit
    pub fee: u64,
    /// virtual size
    pub vsize: u64,
    /// spent outputs with their scripts and values
    pub inputs: Vec<(OutPoint, HashX, u64)>,
    /// indexed outputs: index, script, value
    pub outputs: Vec<(u32, HashX, u64)>,
    /// whether an input spends another mempool transaction (height -1)
    pub unconfirmed_parent: bool,
}

impl MempoolTx {
    fn scripts(&self) -> impl Iterator<Item = &HashX> {
        self.inputs
            .iter()
            .map(|(_, h, _)| h)
            .chain(self.outputs.iter().map(|(_, h, _)| h))
    }

    /// The history height of this transaction (0 or -1).
    pub fn height(&self) -> i64 {
        if self.unconfirmed_parent {
            -1
        } else {
            0
        }
    }
}

/// The mirror's content.
#[derive(Debug, Default)]
pub struct MempoolState {
    txs: HashMap<Hash32, MempoolTx>,
    by_script: HashMap<HashX, HashSet<Hash32>>,
    spends: HashMap<OutPoint, Hash32>,
    recent: VecDeque<RecentTx>,
    histogram: Vec<(f64, u64)>,
}

impl MempoolState {
    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether the mirror is empty.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// A transaction of the mirror.
    pub fn get(&self, txid: &Hash32) -> Option<&MempoolTx> {
        self.txs.get(txid)
    }

    /// The mempool transaction spending `outpoint`, if any.
    pub fn spender(&self, outpoint: &OutPoint) -> Option<Hash32> {
        self.spends.get(outpoint).copied()
    }

    /// The script's mempool history in canonical order: height 0 before -1, then by
    /// display-order txid.
    pub fn history(&self, hashx: &HashX) -> Vec<HistoryEntry> {
        let Some(txids) = self.by_script.get(hashx) else {
            return Vec::new();
        };
        let mut entries: Vec<HistoryEntry> = txids
            .iter()
            .filter_map(|txid| {
                self.txs.get(txid).map(|tx| HistoryEntry {
                    txid: *txid,
                    height: tx.height(),
                    fee: Some(tx.fee),
                })
            })
            .collect();
        entries.sort_by(|a, b| {
            b.height
                .cmp(&a.height)
                .then_with(|| a.txid.iter().rev().cmp(b.txid.iter().rev()))
        });
        entries
    }

    /// Net effect of the mempool on the script's balance.
    pub fn balance_delta(&self, hashx: &HashX) -> i64 {
        let mut delta: i64 = 0;
        for txid in self.by_script.get(hashx).into_iter().flatten() {
            let Some(tx) = self.txs.get(txid) else {
                continue;
            };
            for (_, h, value) in &tx.outputs {
                if h == hashx {
                    delta = delta.saturating_add(*value as i64);
                }
            }
            for (_, h, value) in &tx.inputs {
                if h == hashx {
                    delta = delta.saturating_sub(*value as i64);
                }
            }
        }
        delta
    }

    /// The script's mempool outputs that no mempool transaction spends.
    pub fn unspent(&self, hashx: &HashX) -> Vec<(OutPoint, u64)> {
        let mut out = Vec::new();
        for txid in self.by_script.get(hashx).into_iter().flatten() {
            let Some(tx) = self.txs.get(txid) else {
                continue;
            };
            for (vout, h, value) in &tx.outputs {
                let outpoint = OutPoint {
                    txid: *txid,
                    vout: *vout,
                };
                if h == hashx && !self.spends.contains_key(&outpoint) {
                    out.push((outpoint, *value));
                }
            }
        }
        out.sort();
        out
    }

    /// The compact fee histogram.
    pub fn histogram(&self) -> Vec<(f64, u64)> {
        self.histogram.clone()
    }

    /// Most recent admissions, newest first.
    pub fn recent(&self) -> Vec<RecentTx> {
        self.recent.iter().cloned().collect()
    }

    fn insert(&mut self, txid: Hash32, tx: MempoolTx, touched: &mut Touched) {
        for (outpoint, _, _) in &tx.inputs {
            self.spends.insert(*outpoint, txid);
            touched.outpoints.insert(*outpoint);
        }
        for (vout, _, _) in &tx.outputs {
            touched.outpoints.insert(OutPoint { txid, vout: *vout });
        }
        for hashx in tx.scripts() {
            self.by_script.entry(*hashx).or_default().insert(txid);
            touched.scripts.insert(*hashx);
        }
        self.recent.push_front(RecentTx {
            txid,
            fee: tx.fee,
            vsize: tx.vsize,
        });
        self.recent.truncate(RECENT_LEN);
        self.txs.insert(txid, tx);
    }

    fn remove(&mut self, txid: &Hash32, touched: &mut Touched) {
        let Some(tx) = self.txs.remove(txid) else {
            return;
        };
        for (outpoint, _, _) in &tx.inputs {
            if self.spends.get(outpoint) == Some(txid) {
                self.spends.remove(outpoint);
            }
            touched.outpoints.insert(*outpoint);
        }
        for (vout, _, _) in &tx.outputs {
            touched.outpoints.insert(OutPoint {
                txid: *txid,
                vout: *vout,
            });
        }
        for hashx in tx.scripts() {
            if let Some(set) = self.by_script.get_mut(hashx) {
                set.remove(txid);
                if set.is_empty() {
                    self.by_script.remove(hashx);
                }
            }
            touched.scripts.insert(*hashx);
        }
        self.recent.retain(|r| r.txid != *txid);
    }

    /// Drops transactions that a block confirmed (called under the same lock as the block's
    /// flush, so no answer sees a transaction both confirmed and unconfirmed).
    pub fn remove_confirmed(&mut self, txids: &[Hash32], touched: &mut Touched) {
        let before = self.txs.len();
        for txid in txids {
            self.remove(txid, touched);
        }
        if self.txs.len() != before {
            self.settle(touched);
        }
    }

    /// Recomputes the -1/0 heights and the histogram after a change.
    fn settle(&mut self, touched: &mut Touched) {
        let in_mempool: HashSet<Hash32> = self.txs.keys().copied().collect();
        for tx in self.txs.values_mut() {
            let unconfirmed = tx
                .inputs
                .iter()
                .any(|(outpoint, _, _)| in_mempool.contains(&outpoint.txid));
            if unconfirmed != tx.unconfirmed_parent {
                tx.unconfirmed_parent = unconfirmed;
                touched.scripts.extend(tx.scripts().copied());
            }
        }
        self.histogram = compact_histogram(self.txs.values().map(|tx| (tx.fee, tx.vsize)));
    }
}

/// The compact fee histogram (docs/protocol.md, `mempool.get_fee_histogram`) from `(fee, vsize)`
/// pairs.
pub fn compact_histogram(txs: impl Iterator<Item = (u64, u64)>) -> Vec<(f64, u64)> {
    // Rates are bucketed at 0.1 sat/vB; keep them as integer tenths so equal rates merge.
    let mut by_rate: HashMap<u64, u64> = HashMap::new();
    for (fee, vsize) in txs {
        if vsize == 0 {
            continue;
        }
        let tenths = fee.saturating_mul(10) / vsize;
        *by_rate.entry(tenths).or_default() += vsize;
    }
    histogram_from_buckets(by_rate.into_iter().map(|(t, s)| (t as f64 / 10.0, s)))
}

/// Step 2 of the histogram computation over `(rate, size)` buckets.
pub fn histogram_from_buckets(buckets: impl Iterator<Item = (f64, u64)>) -> Vec<(f64, u64)> {
    let mut buckets: Vec<(f64, u64)> = buckets.collect();
    buckets.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out = Vec::new();
    let mut bin = HISTOGRAM_BIN;
    let mut acc: u64 = 0;
    let mut prev: Option<f64> = None;
    for (rate, size) in buckets {
        if size as f64 > 2.0 * bin {
            if let Some(prev) = prev {
                if acc > 0 {
                    out.push((prev, acc));
                    acc = 0;
                    bin *= 1.1;
                }
            }
        }
        acc += size;
        if acc as f64 > bin {
            out.push((rate, acc));
            acc = 0;
            bin *= 1.1;
        }
        prev = Some(rate);
    }
    out
}

/// Why a refresh failed; the previous mirror stays.
#[derive(Debug, thiserror::Error)]
pub enum MempoolError {
    /// The node failed.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// Reading the index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A blocking task died.
    #[error("mempool task failed: {0}")]
    Task(String),
}

/// The mirror, shared by the refresher and the queries.
#[derive(Debug, Default)]
pub struct Mempool {
    state: RwLock<MempoolState>,
}

struct Parsed {
    txid: Hash32,
    inputs: Vec<OutPoint>,
    outputs: Vec<(u32, Option<HashX>, u64)>,
    out_total: u64,
    vsize: u64,
}

impl Mempool {
    /// An empty mirror.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state, for reading.
    pub fn read(&self) -> parking_lot::RwLockReadGuard<'_, MempoolState> {
        self.state.read()
    }

    /// The state, for the block processor's flush.
    pub fn write(&self) -> parking_lot::RwLockWriteGuard<'_, MempoolState> {
        self.state.write()
    }

    /// Brings the mirror up to the node's mempool; returns what changed.
    pub async fn refresh(
        self: &Arc<Self>,
        daemon: &Arc<dyn DaemonApi>,
        store: &Arc<dyn Store>,
        coin: &Arc<dyn Coin>,
    ) -> Result<Touched, MempoolError> {
        let node: HashSet<Hash32> = daemon.mempool_txids().await?.into_iter().collect();
        let (removed, new): (Vec<Hash32>, Vec<Hash32>) = {
            let state = self.state.read();
            let removed = state
                .txs
                .keys()
                .filter(|txid| !node.contains(*txid))
                .copied()
                .collect();
            let new = node
                .iter()
                .filter(|txid| !state.txs.contains_key(*txid))
                .copied()
                .collect();
            (removed, new)
        };

        let mut fetched = Vec::with_capacity(new.len());
        for chunk in new.chunks(FETCH_BATCH) {
            let raws = daemon.raw_transactions(chunk).await?;
            fetched.extend(chunk.iter().copied().zip(raws));
        }
        let (mempool, store, coin) = (Arc::clone(self), Arc::clone(store), Arc::clone(coin));
        tokio::task::spawn_blocking(move || mempool.admit(fetched, removed, store, coin))
            .await
            .map_err(|e| MempoolError::Task(e.to_string()))?
    }

    fn admit(
        &self,
        fetched: Vec<(Hash32, Option<Vec<u8>>)>,
        removed: Vec<Hash32>,
        store: Arc<dyn Store>,
        coin: Arc<dyn Coin>,
    ) -> Result<Touched, MempoolError> {
        let mut parsed: HashMap<Hash32, Parsed> = HashMap::new();
        for (txid, raw) in fetched {
            // Gone between getrawmempool and getrawtransaction: it left the mempool.
            let Some(raw) = raw else { continue };
            let tx = match coin.parse_tx(&raw) {
                Ok(tx) => tx,
                Err(e) => {
                    debug!(txid = %crate::daemon::hash_to_hex(&txid), error = %e, "mempool transaction does not parse; skipped");
                    continue;
                }
            };
            let weight =
                (raw.len() as u64 - u64::from(tx.witness_bytes)) * 4 + u64::from(tx.witness_bytes);
            let outputs = tx
                .outputs
                .iter()
                .enumerate()
                .map(|(vout, out)| {
                    let indexed = !coin.is_unspendable(&out.script, u32::MAX);
                    (
                        vout as u32,
                        indexed.then(|| hashx_of(&coin.script_hash(&out.script))),
                        out.value,
                    )
                })
                .collect();
            parsed.insert(
                txid,
                Parsed {
                    txid,
                    inputs: tx
                        .inputs
                        .iter()
                        .map(|i| OutPoint {
                            txid: i.txid,
                            vout: i.vout,
                        })
                        .collect(),
                    outputs,
                    out_total: tx.outputs.iter().map(|o| o.value).sum(),
                    vsize: weight.div_ceil(4),
                },
            );
        }

        // Resolve inputs from the store outside the lock: prevouts not in the mirror.
        let snapshot = store.snapshot().map_err(IndexError::from)?;
        let mut from_store: HashMap<OutPoint, Option<(HashX, u64)>> = HashMap::new();
        {
            let state = self.state.read();
            for tx in parsed.values() {
                for input in &tx.inputs {
                    if parsed.contains_key(&input.txid) || state.txs.contains_key(&input.txid) {
                        continue;
                    }
                    if !from_store.contains_key(input) {
                        let found = lookup_utxo(snapshot.as_ref(), input)?
                            .map(|(hashx, _, value)| (hashx, value));
                        from_store.insert(*input, found);
                    }
                }
            }
        }
        drop(snapshot);

        let mut touched = Touched::default();
        let mut state = self.state.write();
        for txid in &removed {
            state.remove(txid, &mut touched);
        }
        // Admit parents before children: repeat passes until nothing more resolves.
        let mut waiting: Vec<Parsed> = parsed.into_values().collect();
        waiting.sort_by_key(|tx| tx.txid);
        loop {
            let mut progressed = false;
            let mut still = Vec::new();
            for tx in waiting {
                match resolve(&state, &from_store, &tx) {
                    Resolution::Ready(inputs) => {
                        let in_total: u64 = inputs.iter().map(|(_, _, v)| *v).sum();
                        let unconfirmed_parent = inputs
                            .iter()
                            .any(|(outpoint, _, _)| state.txs.contains_key(&outpoint.txid));
                        let entry = MempoolTx {
                            fee: in_total.saturating_sub(tx.out_total),
                            vsize: tx.vsize,
                            inputs,
                            outputs: tx
                                .outputs
                                .iter()
                                .filter_map(|(vout, h, v)| h.map(|h| (*vout, h, *v)))
                                .collect(),
                            unconfirmed_parent,
                        };
                        state.insert(tx.txid, entry, &mut touched);
                        progressed = true;
                    }
                    Resolution::Wait => still.push(tx),
                    Resolution::Never => {}
                }
            }
            waiting = still;
            if !progressed || waiting.is_empty() {
                break;
            }
        }
        if !waiting.is_empty() {
            debug!(
                count = waiting.len(),
                "mempool transactions with unknown inputs wait for the next refresh"
            );
        }
        state.settle(&mut touched);
        Ok(touched)
    }
}

enum Resolution {
    Ready(Vec<(OutPoint, HashX, u64)>),
    /// a parent may still be admitted in this refresh or a later one
    Wait,
    /// spends an output that cannot be in the index (unindexed script): never resolvable
    Never,
}

fn resolve(
    state: &MempoolState,
    from_store: &HashMap<OutPoint, Option<(HashX, u64)>>,
    tx: &Parsed,
) -> Resolution {
    let mut inputs = Vec::with_capacity(tx.inputs.len());
    for input in &tx.inputs {
        if let Some(parent) = state.txs.get(&input.txid) {
            match parent
                .outputs
                .iter()
                .find(|(vout, _, _)| *vout == input.vout)
            {
                Some((_, hashx, value)) => inputs.push((*input, *hashx, *value)),
                None => return Resolution::Never,
            }
        } else if let Some(Some((hashx, value))) = from_store.get(input) {
            inputs.push((*input, *hashx, *value));
        } else {
            return Resolution::Wait;
        }
    }
    Resolution::Ready(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_matches_the_protocol_vectors() {
        let first = [
            (50.0, 20000),
            (20.5, 15000),
            (12.3, 5000),
            (5.0, 100000),
            (2.0, 8000),
            (1.0, 40000),
        ];
        assert_eq!(
            histogram_from_buckets(first.into_iter()),
            vec![(20.5, 35000), (12.3, 5000), (5.0, 100000), (1.0, 48000)]
        );
        let second = [
            (10.0, 100000),
            (11.0, 1000),
            (12.0, 10000000),
            (13.0, 1000),
            (14.0, 1000),
            (15.0, 1000),
            (16.0, 1000),
            (17.0, 1000),
            (18.0, 900000),
            (19.0, 1000),
            (20.0, 1000),
            (21.0, 75000),
            (22.0, 1000),
        ];
        assert_eq!(
            histogram_from_buckets(second.into_iter()),
            vec![
                (22.0, 1000),
                (21.0, 75000),
                (19.0, 2000),
                (18.0, 900000),
                (13.0, 5000),
                (12.0, 10000000),
                (10.0, 101000)
            ]
        );
    }

    #[test]
    fn rates_round_down_to_a_tenth() {
        // 1000 sat over 300 vB is 3.33 sat/vB → 3.3; 40 000 vB pass the first 30 000 bin.
        let hist = compact_histogram([(1000u64, 300u64), (133_200, 40_000)].into_iter());
        assert_eq!(hist, vec![(3.3, 40_300)]);
    }
}
