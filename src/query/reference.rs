//! [`ReferenceQuery`]: a naive, obviously-correct [`ChainQuery`] over a simulated chain, for
//! tests and as the oracle of differential tests against the real index.
//!
//! Every [`ReferenceQuery::refresh`] rescans the whole [`SimChain`] block by block and rebuilds
//! a [`Snapshot`] from scratch: no caches, no incremental updates. Queries read the last
//! snapshot only, so answers always refer to the announced tip even while the simulator moves
//! on. The touched sets of the emitted [`ChainEvent`] are computed by comparing the old and new
//! snapshots (scripts whose history, UTXOs or balance changed; outpoints whose status
//! changed), so they are the smallest sets a correct index may report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{
    Balance, ChainEvent, ChainQuery, Hash32, HashX, HeaderProof, History, HistoryEntry, OutPoint,
    OutpointStatus, QueryError, QueryResult, RecentTx, ScriptHash, Tip, TxMerkle, Unspent,
};
use crate::simulator::{SimChain, Simulator};

/// The protocol's fee histogram bin size in vbytes (docs/protocol.md,
/// `mempool.get_fee_histogram`).
pub const FEE_HISTOGRAM_BIN: f64 = 30_000.0;

/// One transaction as the snapshot sees it.
#[derive(Debug, Clone)]
struct TxInfo {
    inputs: Vec<OutPoint>,
    /// `(script hash, value, indexed)` per output; `indexed` is false for outputs a confirmed
    /// history leaves out (unspendable scripts)
    outputs: Vec<(ScriptHash, u64, bool)>,
    /// block height, `None` in the mempool
    height: Option<u32>,
    /// position in its block
    pos: u32,
    fee: u64,
    vsize: u64,
    raw: Vec<u8>,
}

/// Everything derived from one scan of the chain.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    tip_height: u32,
    headers: Vec<Vec<u8>>,
    hashes: Vec<Hash32>,
    block_txids: Vec<Vec<Hash32>>,
    txs: HashMap<Hash32, TxInfo>,
    /// mempool txids in arrival order
    mempool: Vec<Hash32>,
    /// confirmed spender of each confirmed output: (txid, height)
    chain_spender: HashMap<OutPoint, (Hash32, u32)>,
    /// mempool spender of each output
    mempool_spender: HashMap<OutPoint, Hash32>,
    /// confirmed history per script, chain order
    confirmed: HashMap<HashX, Vec<(Hash32, u32)>>,
    /// scripts seen in the mempool (outputs or spent outputs) → mempool txids
    mempool_touching: HashMap<HashX, Vec<Hash32>>,
    /// script hash of each hashX seen
    scripts: HashMap<HashX, ScriptHash>,
}

impl Snapshot {
    /// Scans `chain` from genesis to tip, then its mempool.
    pub fn scan(chain: &SimChain) -> Snapshot {
        let mut snap = Snapshot {
            tip_height: chain.height(),
            ..Default::default()
        };
        for height in 0..=chain.height() {
            let Some(block) = chain.block(height) else {
                break;
            };
            snap.headers.push(block.header.clone());
            snap.hashes.push(block.hash);
            snap.block_txids.push(block.txids.clone());
            // The genesis block is indexed as containing no transactions (docs/protocol.md,
            // Script hashes).
            if height == 0 {
                continue;
            }
            for (pos, txid) in block.txids.iter().enumerate() {
                let Some(tx) = chain.tx(txid) else { continue };
                let info = tx_info(chain, &tx, Some(height), pos as u32);
                for input in &info.inputs {
                    snap.chain_spender.insert(*input, (*txid, height));
                }
                snap.txs.insert(*txid, info);
            }
        }
        for txid in chain.mempool() {
            let Some(tx) = chain.tx(txid) else { continue };
            let info = tx_info(chain, &tx, None, 0);
            for input in &info.inputs {
                snap.mempool_spender.insert(*input, *txid);
            }
            snap.txs.insert(*txid, info);
            snap.mempool.push(*txid);
        }
        // Histories, in chain order.
        for (height, txids) in snap.block_txids.iter().enumerate().skip(1) {
            for txid in txids {
                let Some(info) = snap.txs.get(txid) else {
                    continue;
                };
                let mut touched: Vec<ScriptHash> = Vec::new();
                for (script, _, indexed) in &info.outputs {
                    if *indexed {
                        touched.push(*script);
                    }
                }
                for input in &info.inputs {
                    if let Some((script, _, true)) = snap.output_of(input) {
                        touched.push(script);
                    }
                }
                let mut seen = HashSet::new();
                for script in touched {
                    if seen.insert(script.hashx()) {
                        snap.scripts.insert(script.hashx(), script);
                        snap.confirmed
                            .entry(script.hashx())
                            .or_default()
                            .push((*txid, height as u32));
                    }
                }
            }
        }
        for txid in snap.mempool.clone() {
            let info = &snap.txs[&txid];
            // ElectrumX's mempool view applies no unspendable filter (docs/protocol.md, Script
            // hashes).
            let mut touched: Vec<ScriptHash> = info.outputs.iter().map(|o| o.0).collect();
            for input in &info.inputs {
                if let Some((script, _, _)) = snap.output_of(input) {
                    touched.push(script);
                }
            }
            let mut seen = HashSet::new();
            for script in touched {
                if seen.insert(script.hashx()) {
                    snap.scripts.insert(script.hashx(), script);
                    snap.mempool_touching
                        .entry(script.hashx())
                        .or_default()
                        .push(txid);
                }
            }
        }
        snap
    }

    fn output_of(&self, outpoint: &OutPoint) -> Option<(ScriptHash, u64, bool)> {
        self.txs
            .get(&outpoint.txid)
            .and_then(|t| t.outputs.get(outpoint.vout as usize))
            .copied()
    }

    fn in_mempool(&self, txid: &Hash32) -> bool {
        self.txs.get(txid).is_some_and(|t| t.height.is_none())
    }

    /// 0 when every input is confirmed, -1 when one spends a mempool transaction
    /// (docs/protocol.md, Heights).
    fn mempool_height(&self, txid: &Hash32) -> i64 {
        let parent_in_mempool = self.txs[txid]
            .inputs
            .iter()
            .any(|i| self.in_mempool(&i.txid));
        if parent_in_mempool {
            -1
        } else {
            0
        }
    }

    /// The tip.
    pub fn tip(&self) -> Tip {
        let h = self.tip_height as usize;
        Tip {
            height: self.tip_height,
            hash: self.hashes[h],
            header: self.headers[h].clone(),
        }
    }

    /// Full history (no limit).
    pub fn history(&self, hashx: &HashX) -> History {
        let confirmed = self
            .confirmed
            .get(hashx)
            .map(|v| {
                v.iter()
                    .map(|(txid, h)| HistoryEntry {
                        txid: *txid,
                        height: i64::from(*h),
                        fee: None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        History {
            confirmed,
            mempool: self.mempool_history(hashx),
        }
    }

    /// Mempool part of a history, canonical order.
    pub fn mempool_history(&self, hashx: &HashX) -> Vec<HistoryEntry> {
        let mut entries: Vec<HistoryEntry> = self
            .mempool_touching
            .get(hashx)
            .map(|v| {
                v.iter()
                    .map(|txid| HistoryEntry {
                        txid: *txid,
                        height: self.mempool_height(txid),
                        fee: Some(self.txs[txid].fee),
                    })
                    .collect()
            })
            .unwrap_or_default();
        entries.sort_by(|a, b| {
            // 0 before -1, then display-order txid ascending (the reversed digest).
            b.height.cmp(&a.height).then_with(|| {
                let mut x = a.txid;
                let mut y = b.txid;
                x.reverse();
                y.reverse();
                x.cmp(&y)
            })
        });
        entries
    }

    /// Confirmed unspent outputs at the tip (ignoring the mempool), chain order.
    fn confirmed_utxos(&self, hashx: &HashX) -> Vec<Unspent> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (txid, height) in self.confirmed.get(hashx).into_iter().flatten() {
            if !seen.insert(*txid) {
                continue;
            }
            let info = &self.txs[txid];
            for (vout, (script, value, indexed)) in info.outputs.iter().enumerate() {
                let outpoint = OutPoint {
                    txid: *txid,
                    vout: vout as u32,
                };
                if *indexed
                    && script.hashx() == *hashx
                    && !self.chain_spender.contains_key(&outpoint)
                {
                    out.push(Unspent {
                        txid: *txid,
                        vout: vout as u32,
                        height: *height,
                        value: *value,
                    });
                }
            }
        }
        out
    }

    /// Balance (docs/protocol.md, `blockchain.scripthash.get_balance`).
    pub fn balance(&self, hashx: &HashX) -> Balance {
        let confirmed = self.confirmed_utxos(hashx).iter().map(|u| u.value).sum();
        let mut unconfirmed: i64 = 0;
        for txid in self.mempool_touching.get(hashx).into_iter().flatten() {
            let info = &self.txs[txid];
            for (script, value, _) in &info.outputs {
                if script.hashx() == *hashx {
                    unconfirmed += *value as i64;
                }
            }
            for input in &info.inputs {
                if let Some((script, value, _)) = self.output_of(input) {
                    if script.hashx() == *hashx {
                        unconfirmed -= value as i64;
                    }
                }
            }
        }
        Balance {
            confirmed,
            unconfirmed,
        }
    }

    /// Unspent outputs (docs/protocol.md, `blockchain.scripthash.listunspent`): confirmed ones,
    /// then mempool ones, minus mempool spends.
    pub fn unspent(&self, hashx: &HashX) -> Vec<Unspent> {
        let mut out = self.confirmed_utxos(hashx);
        for txid in self.mempool_touching.get(hashx).into_iter().flatten() {
            for (vout, (script, value, _)) in self.txs[txid].outputs.iter().enumerate() {
                if script.hashx() == *hashx {
                    out.push(Unspent {
                        txid: *txid,
                        vout: vout as u32,
                        height: 0,
                        value: *value,
                    });
                }
            }
        }
        out.retain(|u| {
            !self.mempool_spender.contains_key(&OutPoint {
                txid: u.txid,
                vout: u.vout,
            })
        });
        out
    }

    /// Outpoint status (docs/protocol.md, `blockchain.outpoint.subscribe`).
    pub fn outpoint_status(&self, outpoint: &OutPoint) -> OutpointStatus {
        let Some(info) = self.txs.get(&outpoint.txid) else {
            return OutpointStatus::default();
        };
        if outpoint.vout as usize >= info.outputs.len() {
            return OutpointStatus::default();
        }
        let funder_height = match info.height {
            Some(h) => i64::from(h),
            None => self.mempool_height(&outpoint.txid),
        };
        let spender = if let Some((txid, h)) = self.chain_spender.get(outpoint) {
            Some((*txid, i64::from(*h)))
        } else {
            self.mempool_spender
                .get(outpoint)
                .map(|txid| (*txid, self.mempool_height(txid)))
        };
        OutpointStatus {
            funder_height: Some(funder_height),
            spender,
        }
    }

    /// Every outpoint that exists or is spent in this snapshot.
    fn outpoints(&self) -> HashSet<OutPoint> {
        let mut all = HashSet::new();
        for (txid, info) in &self.txs {
            for vout in 0..info.outputs.len() {
                all.insert(OutPoint {
                    txid: *txid,
                    vout: vout as u32,
                });
            }
            all.extend(info.inputs.iter().copied());
        }
        all
    }

    /// Fee histogram over the mempool (docs/protocol.md, `mempool.get_fee_histogram`).
    pub fn fee_histogram(&self) -> Vec<(f64, u64)> {
        let mut by_tenths: BTreeMap<u64, u64> = BTreeMap::new();
        for txid in &self.mempool {
            let info = &self.txs[txid];
            let vsize = info.vsize.max(1);
            // floor(10 * fee / vsize) in integers: no float rounding at bucket edges.
            let tenths = info.fee * 10 / vsize;
            *by_tenths.entry(tenths).or_default() += vsize;
        }
        let histogram: Vec<(f64, u64)> = by_tenths
            .into_iter()
            .map(|(t, size)| (t as f64 / 10.0, size))
            .collect();
        compact_fee_histogram(&histogram)
    }

    fn merkle_branch_at(&self, height: u32, pos: u32) -> Option<(Hash32, Vec<Hash32>)> {
        if height == 0 {
            return None;
        }
        let txids = self.block_txids.get(height as usize)?;
        let txid = *txids.get(pos as usize)?;
        Some((txid, merkle_branch(txids, pos as usize)))
    }
}

fn tx_info(
    chain: &SimChain,
    tx: &crate::simulator::SimTx,
    height: Option<u32>,
    pos: u32,
) -> TxInfo {
    let coin = chain.coin();
    let at = height.unwrap_or(chain.height() + 1);
    let vsize = coin
        .parse_tx(&tx.raw)
        .map(|p| p.vsize() as u64)
        .unwrap_or(tx.raw.len() as u64);
    TxInfo {
        inputs: tx
            .inputs
            .iter()
            .map(|o| OutPoint {
                txid: o.txid,
                vout: o.vout,
            })
            .collect(),
        outputs: tx
            .outputs
            .iter()
            .map(|o| {
                (
                    ScriptHash(coin.script_hash(&o.script)),
                    o.value,
                    !coin.is_unspendable(&o.script, at),
                )
            })
            .collect(),
        height,
        pos,
        fee: tx.fee,
        vsize,
        raw: tx.raw.clone(),
    }
}

/// ElectrumX's compaction of a `{rate: vsize}` histogram given in descending-rate-walkable form
/// (any order; it is sorted here). docs/protocol.md, `mempool.get_fee_histogram`, steps 2 and 3.
pub fn compact_fee_histogram(histogram: &[(f64, u64)]) -> Vec<(f64, u64)> {
    let mut sorted = histogram.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut bin = FEE_HISTOGRAM_BIN;
    let mut acc: u64 = 0;
    let mut prev: Option<f64> = None;
    let mut out = Vec::new();
    for (rate, size) in sorted {
        if (size as f64) > 2.0 * bin {
            if let Some(p) = prev {
                if acc > 0 {
                    out.push((p, acc));
                    acc = 0;
                    bin *= 1.1;
                }
            }
        }
        acc += size;
        if (acc as f64) > bin {
            out.push((rate, acc));
            acc = 0;
            bin *= 1.1;
        }
        prev = Some(rate);
    }
    out
}

/// The merkle branch of leaf `index` (docs/protocol.md, Merkle branches), internal order.
pub fn merkle_branch(leaves: &[Hash32], mut index: usize) -> Vec<Hash32> {
    let mut level = leaves.to_vec();
    let mut branch = Vec::new();
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            let last = *level.last().expect("non-empty level");
            level.push(last);
        }
        branch.push(level[index ^ 1]);
        index >>= 1;
        level = level
            .chunks(2)
            .map(|pair| dsha256_pair(&pair[0], &pair[1]))
            .collect();
    }
    branch
}

/// The merkle root over `leaves` (docs/protocol.md, Merkle branches); the leaf itself for one
/// leaf.
pub fn merkle_root(leaves: &[Hash32]) -> Hash32 {
    let mut level = leaves.to_vec();
    if level.is_empty() {
        return [0; 32];
    }
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            let last = *level.last().expect("non-empty level");
            level.push(last);
        }
        level = level
            .chunks(2)
            .map(|pair| dsha256_pair(&pair[0], &pair[1]))
            .collect();
    }
    level[0]
}

fn dsha256_pair(a: &Hash32, b: &Hash32) -> Hash32 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(a);
    h.update(b);
    let first = h.finalize();
    Sha256::digest(first).into()
}

/// A [`ChainQuery`] computed naively from a [`Simulator`]'s chain.
pub struct ReferenceQuery {
    sim: Simulator,
    snapshot: Mutex<Arc<Snapshot>>,
    events: broadcast::Sender<Arc<ChainEvent>>,
}

impl ReferenceQuery {
    /// A reference over `sim`, scanned now.
    pub fn new(sim: Simulator) -> Self {
        let snap = sim.with_chain(Snapshot::scan);
        let (events, _) = broadcast::channel(1024);
        ReferenceQuery {
            sim,
            snapshot: Mutex::new(Arc::new(snap)),
            events,
        }
    }

    /// The simulator read by this reference.
    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Rescans the chain after the simulator changed (blocks, mempool, reorg), publishes the
    /// new state and sends the [`ChainEvent`] describing what changed (also returned).
    pub fn refresh(&self) -> Arc<ChainEvent> {
        let new = Arc::new(self.sim.with_chain(Snapshot::scan));
        let old = {
            let mut guard = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *guard, Arc::clone(&new))
        };
        let event = Arc::new(diff(&old, &new));
        // No receivers is fine: nobody is listening yet.
        let _ = self.events.send(Arc::clone(&event));
        event
    }
}

fn diff(old: &Snapshot, new: &Snapshot) -> ChainEvent {
    let mut touched_scripts = HashSet::new();
    let hashxs: HashSet<&HashX> = old.scripts.keys().chain(new.scripts.keys()).collect();
    for hashx in hashxs {
        if old.history(hashx) != new.history(hashx)
            || old.unspent(hashx) != new.unspent(hashx)
            || old.balance(hashx) != new.balance(hashx)
        {
            touched_scripts.insert(*hashx);
        }
    }
    let mut touched_outpoints = HashSet::new();
    for outpoint in old.outpoints().union(&new.outpoints()) {
        if old.outpoint_status(outpoint) != new.outpoint_status(outpoint) {
            touched_outpoints.insert(*outpoint);
        }
    }
    let (a, b) = (old.tip(), new.tip());
    ChainEvent {
        tip_changed: (a.height, a.hash) != (b.height, b.hash),
        tip: b,
        touched_scripts,
        touched_outpoints,
    }
}

#[async_trait]
impl ChainQuery for ReferenceQuery {
    fn tip(&self) -> Tip {
        self.snapshot().tip()
    }

    async fn header(&self, height: u32) -> QueryResult<Option<Vec<u8>>> {
        Ok(self.snapshot().headers.get(height as usize).cloned())
    }

    async fn headers(&self, start: u32, count: u32) -> QueryResult<Vec<Vec<u8>>> {
        let snap = self.snapshot();
        Ok(snap
            .headers
            .iter()
            .skip(start as usize)
            .take(count as usize)
            .cloned()
            .collect())
    }

    async fn header_proof(&self, height: u32, cp_height: u32) -> QueryResult<HeaderProof> {
        let snap = self.snapshot();
        if height > cp_height || cp_height > snap.tip_height {
            return Err(QueryError::OutOfRange(format!(
                "header {height} under checkpoint {cp_height} beyond tip {}",
                snap.tip_height
            )));
        }
        let leaves = &snap.hashes[..=cp_height as usize];
        Ok(HeaderProof {
            branch: merkle_branch(leaves, height as usize),
            root: merkle_root(leaves),
        })
    }

    async fn history(&self, script: &ScriptHash, limit: usize) -> QueryResult<History> {
        let history = self.snapshot().history(&script.hashx());
        if history.confirmed.len() >= limit {
            return Err(QueryError::HistoryTooLarge);
        }
        Ok(history)
    }

    async fn mempool_history(&self, script: &ScriptHash) -> QueryResult<Vec<HistoryEntry>> {
        Ok(self.snapshot().mempool_history(&script.hashx()))
    }

    async fn balance(&self, script: &ScriptHash) -> QueryResult<Balance> {
        Ok(self.snapshot().balance(&script.hashx()))
    }

    async fn unspent(&self, script: &ScriptHash, limit: usize) -> QueryResult<Vec<Unspent>> {
        let unspent = self.snapshot().unspent(&script.hashx());
        if unspent.len() > limit {
            return Err(QueryError::HistoryTooLarge);
        }
        Ok(unspent)
    }

    async fn raw_transaction(&self, txid: &Hash32) -> QueryResult<Option<Vec<u8>>> {
        // As the node: the genesis block's coinbase is not served as a transaction.
        Ok(self
            .snapshot()
            .txs
            .get(txid)
            .filter(|t| t.height != Some(0))
            .map(|t| t.raw.clone()))
    }

    async fn merkle(&self, txid: &Hash32, height: u32) -> QueryResult<Option<TxMerkle>> {
        let snap = self.snapshot();
        let Some(info) = snap.txs.get(txid) else {
            return Ok(None);
        };
        if info.height != Some(height) {
            return Ok(None);
        }
        Ok(snap
            .merkle_branch_at(height, info.pos)
            .map(|(_, branch)| TxMerkle {
                block_height: height,
                pos: info.pos,
                branch,
            }))
    }

    async fn txid_at(&self, height: u32, pos: u32) -> QueryResult<Option<(Hash32, Vec<Hash32>)>> {
        Ok(self.snapshot().merkle_branch_at(height, pos))
    }

    async fn outpoint_status(&self, outpoint: &OutPoint) -> QueryResult<OutpointStatus> {
        Ok(self.snapshot().outpoint_status(outpoint))
    }

    fn fee_histogram(&self) -> Vec<(f64, u64)> {
        self.snapshot().fee_histogram()
    }

    fn mempool_recent(&self) -> Vec<RecentTx> {
        let snap = self.snapshot();
        snap.mempool
            .iter()
            .rev()
            .take(10)
            .map(|txid| RecentTx {
                txid: *txid,
                fee: snap.txs[txid].fee,
                vsize: snap.txs[txid].vsize,
            })
            .collect()
    }

    fn mempool_size(&self) -> usize {
        self.snapshot().mempool.len()
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<ChainEvent>> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::Profile;

    fn display(h: &Hash32) -> String {
        crate::daemon::hash_to_hex(h)
    }

    fn id(c: char) -> Hash32 {
        crate::daemon::hash_from_hex(&c.to_string().repeat(64)).expect("hex")
    }

    #[test]
    fn fee_histogram_vectors_of_the_protocol() {
        let h = [
            (50.0, 20000),
            (20.5, 15000),
            (12.3, 5000),
            (5.0, 100000),
            (2.0, 8000),
            (1.0, 40000),
        ];
        assert_eq!(
            compact_fee_histogram(&h),
            vec![(20.5, 35000), (12.3, 5000), (5.0, 100000), (1.0, 48000)]
        );
        let h2: Vec<(f64, u64)> = [
            (10, 100000),
            (11, 1000),
            (12, 10000000),
            (13, 1000),
            (14, 1000),
            (15, 1000),
            (16, 1000),
            (17, 1000),
            (18, 900000),
            (19, 1000),
            (20, 1000),
            (21, 75000),
            (22, 1000),
        ]
        .iter()
        .map(|(r, s)| (f64::from(*r), *s))
        .collect();
        assert_eq!(
            compact_fee_histogram(&h2),
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
    fn merkle_vector_of_the_protocol() {
        let leaves = [id('1'), id('2'), id('3')];
        let b2: Vec<String> = merkle_branch(&leaves, 2).iter().map(display).collect();
        assert_eq!(
            b2,
            vec![
                "3".repeat(64),
                "ba982c0808a9a03c4e958ae612516f85faac3780dcb34d9ab83ceeaf74b54011".to_string()
            ]
        );
        let b0: Vec<String> = merkle_branch(&leaves, 0).iter().map(display).collect();
        assert_eq!(
            b0,
            vec![
                "2".repeat(64),
                "4d20e68c68750c24821ab555f35234854017219926f9f1c3fa9402493bb599ee".to_string()
            ]
        );
        assert_eq!(
            display(&merkle_root(&leaves)),
            "e6f5f3a082e7117eca9f5b077b5f9e08a64c213c92f4b6377af3825e5c89cdca"
        );
        assert!(merkle_branch(&leaves[..1], 0).is_empty());
        assert_eq!(merkle_root(&leaves[..1]), leaves[0]);
    }

    fn sim(blocks: u32) -> Simulator {
        let coin = anode_coins::lookup("Bitcoin", "regtest").expect("coin");
        let mut chain = SimChain::new(coin, Profile::tiny(), 11).expect("chain");
        chain.mine(blocks, true).expect("mine");
        Simulator::new(chain)
    }

    /// Balance and UTXOs agree with a direct walk of the simulator's outputs.
    #[test]
    fn balances_match_the_simulators_own_outputs() {
        let sim = sim(30);
        sim.with_chain_mut(|c| c.add_mempool_txs(8))
            .expect("mempool");
        let q = ReferenceQuery::new(sim.clone());
        let snap = q.snapshot();
        let mut expected: HashMap<HashX, u64> = HashMap::new();
        sim.with_chain(|c| {
            for h in 1..=c.height() {
                for txid in &c.block(h).expect("block").txids {
                    let tx = c.tx(txid).expect("tx");
                    for (vout, o) in tx.outputs.iter().enumerate() {
                        let op = anode_coins::OutPoint {
                            txid: *txid,
                            vout: vout as u32,
                        };
                        let spent_in_chain = matches!(
                            c.output_spender(&op),
                            Some(Some(s)) if c.tx(&s).is_some_and(|t| t.height.is_some())
                        );
                        if !spent_in_chain && !c.coin().is_unspendable(&o.script, h) {
                            let sh = ScriptHash(c.coin().script_hash(&o.script));
                            *expected.entry(sh.hashx()).or_default() += o.value;
                        }
                    }
                }
            }
        });
        assert!(!expected.is_empty());
        for (hashx, value) in &expected {
            assert_eq!(snap.balance(hashx).confirmed, *value);
        }
        let mut mempool_total = 0i64;
        for hashx in snap.scripts.keys() {
            mempool_total += snap.balance(hashx).unconfirmed;
        }
        // Mempool outputs minus what they spend is minus the fees paid.
        let fees: i64 = snap.mempool.iter().map(|t| snap.txs[t].fee as i64).sum();
        assert_eq!(mempool_total, -fees);
    }

    #[test]
    fn events_report_changes_and_reorgs() {
        let sim = sim(5);
        let q = ReferenceQuery::new(sim.clone());
        let mut rx = q.subscribe();
        let added = sim
            .with_chain_mut(|c| c.add_mempool_txs(3))
            .expect("mempool");
        assert!(!added.is_empty());
        let event = q.refresh();
        assert!(!event.tip_changed);
        assert!(!event.touched_scripts.is_empty());
        assert_eq!(rx.try_recv().expect("event"), event);
        // Every touched script now shows the new mempool transactions.
        let snap = q.snapshot();
        let first = added[0];
        let info = &snap.txs[&first];
        let hashx = info.outputs[0].0.hashx();
        assert!(event.touched_scripts.contains(&hashx));
        let entry = snap
            .mempool_history(&hashx)
            .into_iter()
            .find(|e| e.txid == first)
            .expect("in mempool history");
        assert_eq!(entry.fee, Some(info.fee));
        sim.mine(1).expect("mine");
        let event = q.refresh();
        assert!(event.tip_changed);
        assert_eq!(event.tip.height, 6);
        let status = q.snapshot().outpoint_status(&OutPoint {
            txid: first,
            vout: 0,
        });
        assert_eq!(status.funder_height, Some(6));
        sim.with_chain_mut(|c| c.reorg(1, 1, false)).expect("reorg");
        let event = q.refresh();
        assert!(event.tip_changed);
        assert_eq!(event.tip.height, 6);
        // The block's transactions are back in the mempool.
        let status = q.snapshot().outpoint_status(&OutPoint {
            txid: first,
            vout: 0,
        });
        assert!(matches!(status.funder_height, Some(0) | Some(-1)));
        assert!(event.touched_outpoints.contains(&OutPoint {
            txid: first,
            vout: 0
        }));
    }

    #[test]
    fn mempool_chains_get_height_minus_one() {
        let sim = sim(5);
        let chain = sim
            .with_chain_mut(|c| c.add_mempool_chain(3))
            .expect("chain");
        let q = ReferenceQuery::new(sim);
        let snap = q.snapshot();
        assert_eq!(snap.mempool_height(&chain[0]), 0);
        assert_eq!(snap.mempool_height(&chain[1]), -1);
        let child = &snap.txs[&chain[1]];
        let history = snap.mempool_history(&child.outputs[0].0.hashx());
        assert!(history.iter().any(|e| e.txid == chain[1] && e.height == -1));
        // The parent's output is spent in the mempool: gone from the UTXOs.
        let spent = child.inputs[0];
        assert_eq!(spent.txid, chain[0]);
        let parent_script = snap.txs[&chain[0]].outputs[spent.vout as usize].0.hashx();
        assert!(!snap
            .unspent(&parent_script)
            .iter()
            .any(|u| u.txid == spent.txid && u.vout == spent.vout));
        assert_eq!(q.mempool_recent()[0].txid, *chain.last().expect("last"));
    }
}
