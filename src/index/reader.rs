//! The index's answers to the protocol ([`ChainQuery`]). Each answer reads one state: the
//! mempool lock, then the chain view with a store snapshot taken under its lock — the same
//! order the block processor takes them in, so a block is either wholly in an answer or not.

use std::num::NonZeroUsize;
use std::sync::Arc;

use anode_coins::Coin;
use anode_store::{Direction, ReadView, Store};
use async_trait::async_trait;
use lru::LruCache;
use parking_lot::Mutex;
use tokio::sync::broadcast;

use super::chain::{ChainView, SharedChain};
use super::error::IndexError;
use super::keys::*;
use super::lookup::{find_tx_num, read_txids};
use super::mempool::Mempool;
use super::merkle::branch_and_root;
use super::schema::*;
use crate::daemon::DaemonApi;
use crate::query::gate::{self, current_request_gate, RowMeter};
use crate::query::*;

/// Raw transactions kept after a fetch from the node.
const TX_CACHE_ENTRIES: usize = 4096;

/// Confirmed histories at least this long are kept after they are read: below it a read from
/// the store is cheap, above it the per-row txid look-ups dominate (a 100,000-transaction
/// history takes ~0.3 s to read, and every subscriber's status and every `get_history` of a
/// popular address would read it again).
const HISTORY_CACHE_MIN_LEN: usize = 200;
/// Entries of all cached histories together (~56 bytes each: ~110 MB at most).
const HISTORY_CACHE_MAX_ENTRIES: usize = 2_000_000;

/// A confirmed history as of a block. It stays a valid prefix for as long as that block is
/// in the chain: later blocks only append, and a reorg below it is seen by its hash changing.
struct CachedHistory {
    height: u32,
    block_hash: Hash32,
    entries: Arc<Vec<HistoryEntry>>,
}

/// Scripts whose confirmed history was found over a limit, remembered so that asking again
/// is refused without reading the rows again: a client must not make the server scan ~80,000
/// rows per request of a history it will refuse anyway.
const TOO_LARGE_VERDICTS: usize = 4096;

/// "At least `rows` confirmed entries as of this block": true for as long as the block is in
/// the chain, since later blocks only add rows.
#[derive(Clone, Copy)]
struct TooLarge {
    height: u32,
    block_hash: Hash32,
    rows: usize,
}

/// Long confirmed histories by hashX, least recently used out first, bounded in entries; and
/// the verdicts on histories too long to serve.
struct HistoryCache {
    lru: LruCache<HashX, CachedHistory>,
    entries: usize,
    too_large: LruCache<HashX, TooLarge>,
}

impl HistoryCache {
    fn new() -> Self {
        HistoryCache {
            lru: LruCache::unbounded(),
            entries: 0,
            too_large: LruCache::new(
                NonZeroUsize::new(TOO_LARGE_VERDICTS).unwrap_or(NonZeroUsize::MIN),
            ),
        }
    }

    /// Whether `hashx` is known to have more than `limit` confirmed entries in `chain`.
    fn known_too_large(&mut self, chain: &ChainView, hashx: &HashX, limit: usize) -> bool {
        match self.too_large.get(hashx).copied() {
            Some(v) if chain.hashes.get(v.height as usize) == Some(&v.block_hash) => v.rows > limit,
            Some(_) => {
                self.too_large.pop(hashx);
                false
            }
            None => false,
        }
    }

    /// Records that `hashx` has more than `limit` confirmed entries at the tip of `chain`.
    fn record_too_large(&mut self, chain: &ChainView, hashx: HashX, limit: usize) {
        let Some(height) = chain.height() else {
            return;
        };
        let Some(block_hash) = chain.hashes.get(height as usize).copied() else {
            return;
        };
        self.too_large.put(
            hashx,
            TooLarge {
                height,
                block_hash,
                rows: limit.saturating_add(1),
            },
        );
    }

    fn get(&mut self, hashx: &HashX) -> Option<(u32, Hash32, Arc<Vec<HistoryEntry>>)> {
        self.lru
            .get(hashx)
            .map(|c| (c.height, c.block_hash, Arc::clone(&c.entries)))
    }

    fn remove(&mut self, hashx: &HashX) {
        if let Some(old) = self.lru.pop(hashx) {
            self.entries -= old.entries.len();
        }
    }

    fn put(&mut self, hashx: HashX, history: CachedHistory) {
        self.remove(&hashx);
        if history.entries.len() > HISTORY_CACHE_MAX_ENTRIES {
            return;
        }
        self.entries += history.entries.len();
        self.lru.put(hashx, history);
        while self.entries > HISTORY_CACHE_MAX_ENTRIES {
            match self.lru.pop_lru() {
                Some((_, old)) => self.entries -= old.entries.len(),
                None => break,
            }
        }
    }
}

/// Reads of the index for the protocol server.
pub struct IndexQuery {
    store: Arc<dyn Store>,
    chain: Arc<SharedChain>,
    mempool: Arc<Mempool>,
    daemon: Arc<dyn DaemonApi>,
    coin: Arc<dyn Coin>,
    events: broadcast::Sender<Arc<ChainEvent>>,
    tx_cache: Mutex<LruCache<Hash32, Arc<Vec<u8>>>>,
    history_cache: Arc<Mutex<HistoryCache>>,
    history_cache_min_len: usize,
}

impl From<IndexError> for QueryError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::Store(e) => QueryError::Store(e),
            other => QueryError::Corrupt(other.to_string()),
        }
    }
}

fn join_error(e: tokio::task::JoinError) -> QueryError {
    QueryError::Corrupt(format!("query task failed: {e}"))
}

impl IndexQuery {
    /// Queries over `store`, following `chain` and `mempool`; events go out on `events`.
    pub fn new(
        store: Arc<dyn Store>,
        chain: Arc<SharedChain>,
        mempool: Arc<Mempool>,
        daemon: Arc<dyn DaemonApi>,
        coin: Arc<dyn Coin>,
        events: broadcast::Sender<Arc<ChainEvent>>,
    ) -> Self {
        IndexQuery {
            store,
            chain,
            mempool,
            daemon,
            coin,
            events,
            tx_cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(TX_CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN),
            )),
            history_cache: Arc::new(Mutex::new(HistoryCache::new())),
            history_cache_min_len: HISTORY_CACHE_MIN_LEN,
        }
    }

    /// Caches confirmed histories from `len` entries on (default 200); tests set 1 so that
    /// every history goes through the cache.
    pub fn with_history_cache_min_len(mut self, len: usize) -> Self {
        self.history_cache_min_len = len;
        self
    }

    /// Runs `f` on a blocking thread with the chain view and a snapshot of the same state.
    async fn with_snapshot<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ChainView, &dyn ReadView) -> QueryResult<T> + Send + 'static,
    ) -> QueryResult<T> {
        let (store, chain) = (Arc::clone(&self.store), Arc::clone(&self.chain));
        let gate = current_request_gate();
        tokio::task::spawn_blocking(move || {
            let _gate = gate::enter(gate);
            let (view, snapshot) = chain.view_and_snapshot(store.as_ref())?;
            f(&view, snapshot.as_ref())
        })
        .await
        .map_err(join_error)?
    }

    /// Like [`Self::with_snapshot`], also giving `mempool_part` computed under the mempool
    /// lock taken before the chain's.
    async fn with_mempool<M: Send + 'static, T: Send + 'static>(
        &self,
        mempool_part: impl FnOnce(&super::mempool::MempoolState) -> M + Send + 'static,
        f: impl FnOnce(&ChainView, &dyn ReadView, M) -> QueryResult<T> + Send + 'static,
    ) -> QueryResult<T> {
        let (store, chain, mempool) = (
            Arc::clone(&self.store),
            Arc::clone(&self.chain),
            Arc::clone(&self.mempool),
        );
        let gate = current_request_gate();
        tokio::task::spawn_blocking(move || {
            let _gate = gate::enter(gate);
            let guard = mempool.read();
            let (view, snapshot) = chain.view_and_snapshot(store.as_ref())?;
            let part = mempool_part(&guard);
            drop(guard);
            f(&view, snapshot.as_ref(), part)
        })
        .await
        .map_err(join_error)?
    }
}

fn txid_of(view: &dyn ReadView, tx_num: TxNum) -> QueryResult<Hash32> {
    view.get(TX_HASHES, &tx_num_bytes(tx_num))?
        .as_deref()
        .and_then(read_hash)
        .ok_or_else(|| QueryError::Corrupt(format!("no txid for tx number {tx_num}")))
}

fn height_of(chain: &ChainView, tx_num: TxNum) -> QueryResult<u32> {
    chain
        .height_of(tx_num)
        .ok_or_else(|| QueryError::Corrupt(format!("tx number {tx_num} is past the tip")))
}

/// Confirmed history rows of `hashx` from tx number `from` on, at most `limit` of them (else
/// `HistoryTooLarge`).
///
/// The txid look-ups are what a long history costs on a cold index (one random read each):
/// they are counted on `meter` first, and `None` means the request waited in the heavy lane
/// for them, so the caller looks again at what the reads ahead of it have cached.
fn confirmed_history_from(
    chain: &ChainView,
    view: &dyn ReadView,
    hashx: &HashX,
    from: TxNum,
    limit: usize,
    meter: &mut RowMeter,
) -> QueryResult<Option<Vec<HistoryEntry>>> {
    let tx_nums = history_tx_nums(view, hashx, from, limit)?;
    if meter.add(tx_nums.len()) {
        return Ok(None);
    }
    tx_nums
        .into_iter()
        .map(|tx_num| {
            Ok(HistoryEntry {
                txid: txid_of(view, tx_num)?,
                height: i64::from(height_of(chain, tx_num)?),
                fee: None,
            })
        })
        .collect::<QueryResult<_>>()
        .map(Some)
}

/// The tx numbers of `hashx`'s history from `from` on, at most `limit` of them (else
/// `HistoryTooLarge`). A row holds one flush's tx numbers of the script, so the row keyed just
/// before `from` may hold some of them too.
fn history_tx_nums(
    view: &dyn ReadView,
    hashx: &HashX,
    from: TxNum,
    limit: usize,
) -> QueryResult<Vec<TxNum>> {
    let damaged = || QueryError::Corrupt("damaged history row".into());
    let start = history_key(hashx, from);
    let mut tx_nums = Vec::new();
    if from > 0 {
        let before = anode_store::KeyRange::between(&history_key(hashx, 0), &start);
        if let Some(row) = view.scan(HISTORY, before, Direction::Reverse)?.next() {
            let (key, value) = row?;
            read_history_row(&key, &value, &mut tx_nums).ok_or_else(damaged)?;
            tx_nums.retain(|n| *n >= from);
        }
    }
    let range = match anode_store::end_prefix(hashx) {
        Some(end) => anode_store::KeyRange::between(&start, &end),
        None => anode_store::KeyRange::from(&start),
    };
    if tx_nums.len() > limit {
        return Err(QueryError::HistoryTooLarge);
    }
    for row in view.scan(HISTORY, range, Direction::Forward)? {
        let (key, value) = row?;
        read_history_row(&key, &value, &mut tx_nums).ok_or_else(damaged)?;
        if tx_nums.len() > limit {
            return Err(QueryError::HistoryTooLarge);
        }
    }
    Ok(tx_nums)
}

/// Confirmed history of `hashx`, at most `limit` entries (else `HistoryTooLarge`), through
/// `cache`: a cached history whose block is still in the chain is extended by the rows of
/// later blocks only.
fn confirmed_history(
    cache: &Mutex<HistoryCache>,
    min_len: usize,
    chain: &ChainView,
    view: &dyn ReadView,
    hashx: &HashX,
    limit: usize,
) -> QueryResult<Vec<HistoryEntry>> {
    let Some(tip) = chain.height() else {
        return Ok(Vec::new());
    };
    let mut meter = RowMeter::new();
    // At most twice: a request waits in the heavy lane once, and then looks again.
    loop {
        if cache.lock().known_too_large(chain, hashx, limit) {
            return Err(QueryError::HistoryTooLarge);
        }
        match read_confirmed_history(cache, min_len, chain, view, hashx, limit, tip, &mut meter) {
            Ok(Some(history)) => return Ok(history),
            Ok(None) => continue,
            Err(QueryError::HistoryTooLarge) => {
                cache.lock().record_too_large(chain, *hashx, limit);
                return Err(QueryError::HistoryTooLarge);
            }
            Err(e) => return Err(e),
        }
    }
}

/// `None` when the request waited in the heavy lane before its txid look-ups (see
/// [`confirmed_history_from`]).
#[allow(clippy::too_many_arguments)]
fn read_confirmed_history(
    cache: &Mutex<HistoryCache>,
    min_len: usize,
    chain: &ChainView,
    view: &dyn ReadView,
    hashx: &HashX,
    limit: usize,
    tip: u32,
    meter: &mut RowMeter,
) -> QueryResult<Option<Vec<HistoryEntry>>> {
    let cached = cache.lock().get(hashx);
    let was_cached = cached.is_some();
    let valid = cached.filter(|(height, hash, _)| chain.hashes.get(*height as usize) == Some(hash));
    let (prefix, from) = match &valid {
        Some((height, _, entries)) => {
            if entries.len() > limit {
                return Err(QueryError::HistoryTooLarge);
            }
            if *height == tip {
                return Ok(Some(entries.as_ref().clone()));
            }
            let from = chain
                .tx_counts
                .get(*height as usize)
                .copied()
                .ok_or_else(|| QueryError::Corrupt(format!("no tx count for block {height}")))?;
            (Some(entries), from)
        }
        None => (None, 0),
    };
    let room = limit - prefix.map_or(0, |p| p.len());
    let Some(newer) = confirmed_history_from(chain, view, hashx, from, room, meter)? else {
        return Ok(None);
    };
    let all = match prefix {
        Some(p) if newer.is_empty() => p.as_ref().clone(),
        Some(p) => {
            let mut all = Vec::with_capacity(p.len() + newer.len());
            all.extend_from_slice(p);
            all.extend(newer);
            all
        }
        None => newer,
    };
    if all.len() < min_len {
        if was_cached {
            cache.lock().remove(hashx);
        }
        return Ok(Some(all));
    }
    let entries = Arc::new(all);
    cache.lock().put(
        *hashx,
        CachedHistory {
            height: tip,
            block_hash: chain.hashes[tip as usize],
            entries: Arc::clone(&entries),
        },
    );
    Ok(Some(entries.as_ref().clone()))
}

/// Confirmed unspent outputs of `hashx`: (tx number, vout, value). The rows are counted on
/// `meter`: an exchange-like script's thousands of rows move the request to the heavy lane.
fn confirmed_utxos(
    view: &dyn ReadView,
    hashx: &HashX,
    limit: usize,
    meter: &mut RowMeter,
) -> QueryResult<Vec<(TxNum, u32, u64)>> {
    let mut out = Vec::new();
    for row in view.scan_prefix(UTXO, hashx, Direction::Forward)? {
        let (key, value) = row?;
        if out.len() >= limit {
            return Err(QueryError::HistoryTooLarge);
        }
        meter.add(1);
        let parsed = (
            read_tx_num(&key[HASHX_LEN..]),
            read_u32_be(&key, HASHX_LEN + TX_NUM_LEN),
            read_value(&value),
        );
        let (Some(tx_num), Some(vout), Some(value)) = parsed else {
            return Err(QueryError::Corrupt("damaged utxo row".into()));
        };
        out.push((tx_num, vout, value));
    }
    Ok(out)
}

#[async_trait]
impl ChainQuery for IndexQuery {
    fn tip(&self) -> Tip {
        self.chain.tip()
    }

    async fn header(&self, height: u32) -> QueryResult<Option<Vec<u8>>> {
        self.with_snapshot(move |_, view| Ok(view.get(HEADERS, &height_key(height))?))
            .await
    }

    async fn headers(&self, start: u32, count: u32) -> QueryResult<Vec<Vec<u8>>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        self.with_snapshot(move |_, view| {
            let end = start.saturating_add(count);
            let range =
                anode_store::KeyRange::between(&height_key(start), &height_key(end.max(start)));
            let mut out = Vec::new();
            for row in view.scan(HEADERS, range, Direction::Forward)? {
                out.push(row?.1);
            }
            Ok(out)
        })
        .await
    }

    async fn header_proof(&self, height: u32, cp_height: u32) -> QueryResult<HeaderProof> {
        let view = self.chain.view();
        if height > cp_height || cp_height as usize >= view.hashes.len() {
            return Err(QueryError::OutOfRange(format!(
                "header height {height} must be <= cp_height {cp_height} which must be <= chain height {}",
                view.height().unwrap_or(0)
            )));
        }
        tokio::task::spawn_blocking(move || {
            let leaves = &view.hashes[..=cp_height as usize];
            let (branch, root) = branch_and_root(leaves, height as usize)
                .ok_or_else(|| QueryError::OutOfRange("height beyond the checkpoint".into()))?;
            Ok(HeaderProof { branch, root })
        })
        .await
        .map_err(join_error)?
    }

    async fn history(&self, script: &ScriptHash, limit: usize) -> QueryResult<History> {
        let hashx = script.hashx();
        let cache = Arc::clone(&self.history_cache);
        let min_len = self.history_cache_min_len;
        self.with_mempool(
            move |mempool| mempool.history(&hashx),
            move |chain, view, mempool| {
                Ok(History {
                    confirmed: confirmed_history(&cache, min_len, chain, view, &hashx, limit)?,
                    mempool,
                })
            },
        )
        .await
    }

    async fn mempool_history(&self, script: &ScriptHash) -> QueryResult<Vec<HistoryEntry>> {
        Ok(self.mempool.read().history(&script.hashx()))
    }

    async fn balance(&self, script: &ScriptHash) -> QueryResult<Balance> {
        let hashx = script.hashx();
        self.with_mempool(
            move |mempool| mempool.balance_delta(&hashx),
            move |_, view, unconfirmed| {
                let confirmed = confirmed_utxos(view, &hashx, usize::MAX, &mut RowMeter::new())?
                    .iter()
                    .map(|(_, _, v)| *v)
                    .sum();
                Ok(Balance {
                    confirmed,
                    unconfirmed,
                })
            },
        )
        .await
    }

    async fn unspent(&self, script: &ScriptHash, limit: usize) -> QueryResult<Vec<Unspent>> {
        let hashx = script.hashx();
        self.with_mempool(
            move |mempool| {
                let spends: std::collections::HashSet<OutPoint> = mempool
                    .history(&hashx)
                    .iter()
                    .filter_map(|e| mempool.get(&e.txid))
                    .flat_map(|tx| tx.inputs.iter().map(|(o, _, _)| *o))
                    .collect();
                (spends, mempool.unspent(&hashx))
            },
            move |chain, view, (spends, mempool_utxos)| {
                let mut out = Vec::new();
                let mut meter = RowMeter::new();
                for (tx_num, vout, value) in confirmed_utxos(view, &hashx, limit, &mut meter)? {
                    meter.add(1);
                    let txid = txid_of(view, tx_num)?;
                    if spends.contains(&OutPoint { txid, vout }) {
                        continue;
                    }
                    out.push(Unspent {
                        txid,
                        vout,
                        height: height_of(chain, tx_num)?,
                        value,
                    });
                }
                for (outpoint, value) in mempool_utxos {
                    if out.len() >= limit {
                        return Err(QueryError::HistoryTooLarge);
                    }
                    out.push(Unspent {
                        txid: outpoint.txid,
                        vout: outpoint.vout,
                        height: 0,
                        value,
                    });
                }
                Ok(out)
            },
        )
        .await
    }

    async fn raw_transaction(&self, txid: &Hash32) -> QueryResult<Option<Vec<u8>>> {
        if let Some(raw) = self.tx_cache.lock().get(txid) {
            return Ok(Some(raw.as_ref().clone()));
        }
        let raw = self.daemon.raw_transactions(&[*txid]).await?;
        let raw = raw.into_iter().next().flatten();
        if let Some(raw) = &raw {
            self.tx_cache.lock().put(*txid, Arc::new(raw.clone()));
        }
        Ok(raw)
    }

    async fn merkle(&self, txid: &Hash32, height: u32) -> QueryResult<Option<TxMerkle>> {
        let txid = *txid;
        self.with_snapshot(move |chain, view| {
            let Some(range) = chain.tx_range(height) else {
                return Ok(None);
            };
            let txids = read_txids(view, range)?;
            let Some(pos) = txids.iter().position(|t| *t == txid) else {
                return Ok(None);
            };
            let (branch, _) = branch_and_root(&txids, pos)
                .ok_or_else(|| QueryError::Corrupt("merkle position".into()))?;
            Ok(Some(TxMerkle {
                block_height: height,
                pos: pos as u32,
                branch,
            }))
        })
        .await
    }

    async fn txid_at(&self, height: u32, pos: u32) -> QueryResult<Option<(Hash32, Vec<Hash32>)>> {
        self.with_snapshot(move |chain, view| {
            let Some(range) = chain.tx_range(height) else {
                return Ok(None);
            };
            if u64::from(pos) >= range.end - range.start {
                return Ok(None);
            }
            let txids = read_txids(view, range)?;
            let Some((branch, _)) = branch_and_root(&txids, pos as usize) else {
                return Ok(None);
            };
            Ok(Some((txids[pos as usize], branch)))
        })
        .await
    }

    async fn outpoint_status(&self, outpoint: &OutPoint) -> QueryResult<OutpointStatus> {
        let outpoint = *outpoint;
        let status = self
            .with_mempool(
                move |mempool| {
                    let funder = mempool.get(&outpoint.txid).map(|tx| {
                        let exists = tx.outputs.iter().any(|(v, _, _)| *v == outpoint.vout);
                        (tx.height(), exists)
                    });
                    let spender = mempool
                        .spender(&outpoint)
                        .and_then(|txid| mempool.get(&txid).map(|tx| (txid, tx.height())));
                    (funder, spender)
                },
                move |chain, view, (mempool_funder, mempool_spender)| {
                    let mut status = OutpointStatus::default();
                    let mut need_tx = false;
                    if let Some(tx_num) = find_tx_num(view, &outpoint.txid)? {
                        let height = i64::from(height_of(chain, tx_num)?);
                        let lookup = utxo_lookup_key(&outpoint.txid, outpoint.vout, tx_num);
                        if view.get(UTXO_LOOKUP, &lookup)?.is_some() {
                            status.funder_height = Some(height);
                        } else if let Some(spender) =
                            view.get(SPENDERS, &spender_key(tx_num, outpoint.vout))?
                        {
                            let spender = read_tx_num(&spender)
                                .ok_or_else(|| QueryError::Corrupt("damaged spender".into()))?;
                            status.funder_height = Some(height);
                            status.spender = Some((
                                txid_of(view, spender)?,
                                i64::from(height_of(chain, spender)?),
                            ));
                        } else {
                            // An unindexed output (OP_RETURN) or an index past the outputs:
                            // only the transaction itself can tell.
                            need_tx = true;
                            status.funder_height = Some(height);
                        }
                    } else if let Some((height, exists)) = mempool_funder {
                        status.funder_height = exists.then_some(height);
                        need_tx = !exists;
                        if need_tx {
                            status.funder_height = Some(height);
                        }
                    }
                    if status.spender.is_none() && status.funder_height.is_some() {
                        status.spender = mempool_spender;
                    }
                    Ok((status, need_tx))
                },
            )
            .await?;
        let (mut status, need_tx) = status;
        if need_tx {
            let exists = match self.raw_transaction(&outpoint.txid).await? {
                Some(raw) => self
                    .coin
                    .parse_tx(&raw)
                    .is_ok_and(|tx| (outpoint.vout as usize) < tx.outputs.len()),
                None => false,
            };
            if !exists {
                status = OutpointStatus::default();
            }
        }
        Ok(status)
    }

    fn fee_histogram(&self) -> Vec<(f64, u64)> {
        self.mempool.read().histogram()
    }

    fn mempool_recent(&self) -> Vec<RecentTx> {
        self.mempool.read().recent()
    }

    fn mempool_size(&self) -> usize {
        self.mempool.read().len()
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<ChainEvent>> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use anode_store::{Durability, KeyRange, KvIter, MemoryStore, WriteBatch};

    use super::*;

    /// A view that counts the rows its scans yield.
    struct Counting<'a> {
        inner: &'a MemoryStore,
        rows: Cell<usize>,
    }

    impl ReadView for Counting<'_> {
        fn get(&self, table: &str, key: &[u8]) -> anode_store::Result<Option<Vec<u8>>> {
            self.inner.get(table, key)
        }

        fn scan(
            &self,
            table: &str,
            range: KeyRange,
            direction: Direction,
        ) -> anode_store::Result<KvIter<'_>> {
            let rows = &self.rows;
            Ok(Box::new(
                self.inner
                    .scan(table, range, direction)?
                    .inspect(move |_| rows.set(rows.get() + 1)),
            ))
        }
    }

    fn chain_of(block: u8) -> ChainView {
        ChainView {
            hashes: vec![[block; 32]],
            tx_counts: vec![1_000],
            tip_header: Vec::new(),
        }
    }

    #[test]
    fn grouped_history_rows_are_read_from_any_tx_number() {
        let store = MemoryStore::new(TABLES);
        let hashx: HashX = [7; HASHX_LEN];
        let other: HashX = [8; HASHX_LEN];
        let mut batch = WriteBatch::new();
        for (script, chunk) in [
            (&hashx, &[0u64, 3, 5][..]),
            (&hashx, &[8, 9]),
            (&hashx, &[20]),
            (&other, &[1, 4]),
        ] {
            let (key, value) = history_row(script, chunk);
            batch.put(HISTORY, key, value);
        }
        store.write(batch, Durability::Sync).unwrap();
        let read = |from, limit| history_tx_nums(&store, &hashx, from, limit);
        assert_eq!(read(0, 100).unwrap(), vec![0, 3, 5, 8, 9, 20]);
        assert_eq!(read(4, 100).unwrap(), vec![5, 8, 9, 20]);
        assert_eq!(read(8, 100).unwrap(), vec![8, 9, 20]);
        assert_eq!(read(10, 100).unwrap(), vec![20]);
        assert_eq!(read(21, 100).unwrap(), Vec::<TxNum>::new());
        assert_eq!(read(0, 6).unwrap().len(), 6);
        assert!(matches!(read(0, 5), Err(QueryError::HistoryTooLarge)));
        assert!(matches!(read(4, 3), Err(QueryError::HistoryTooLarge)));
        assert_eq!(history_tx_nums(&store, &other, 2, 10).unwrap(), vec![4]);

        let mut damaged = WriteBatch::new();
        damaged.put(HISTORY, history_key(&other, 30), [0u8]);
        store.write(damaged, Durability::Sync).unwrap();
        assert!(matches!(
            history_tx_nums(&store, &other, 0, 10),
            Err(QueryError::Corrupt(_))
        ));
    }

    #[test]
    fn a_history_over_the_limit_is_refused_within_the_limit_then_from_memory() {
        let store = MemoryStore::new(TABLES);
        let hashx: HashX = [7; HASHX_LEN];
        let mut batch = WriteBatch::new();
        for tx_num in 0..500u64 {
            batch.put(HISTORY, history_key(&hashx, tx_num), []);
            batch.put(TX_HASHES, tx_num_bytes(tx_num), [tx_num as u8; 32]);
        }
        store.write(batch, Durability::Sync).unwrap();
        let view = Counting {
            inner: &store,
            rows: Cell::new(0),
        };
        let cache = Mutex::new(HistoryCache::new());
        let chain = chain_of(1);
        let limit = 40;

        let first = confirmed_history(&cache, 1_000, &chain, &view, &hashx, limit);
        assert!(matches!(first, Err(QueryError::HistoryTooLarge)));
        assert!(
            view.rows.get() <= limit + 1,
            "read {} rows",
            view.rows.get()
        );

        view.rows.set(0);
        let again = confirmed_history(&cache, 1_000, &chain, &view, &hashx, limit);
        assert!(matches!(again, Err(QueryError::HistoryTooLarge)));
        assert_eq!(view.rows.get(), 0, "the verdict is remembered");

        // A larger limit is not answered by the verdict: the history may fit in it.
        view.rows.set(0);
        let larger = confirmed_history(&cache, 1_000, &chain, &view, &hashx, 1_000).unwrap();
        assert_eq!(larger.len(), 500);
        assert!(view.rows.get() >= 500);

        // Once the verdict's block has left the chain, the rows are read again.
        let _ = confirmed_history(&cache, 1_000, &chain, &view, &hashx, limit);
        view.rows.set(0);
        let reorged = chain_of(2);
        let after = confirmed_history(&cache, 1_000, &reorged, &view, &hashx, limit);
        assert!(matches!(after, Err(QueryError::HistoryTooLarge)));
        assert!(view.rows.get() > 0, "a stale verdict is not trusted");
    }
}
