//! The sync loop: follows the node's chain (catching up, undoing reorgs), keeps the mempool
//! mirror fresh, and sends one [`ChainEvent`] per change to the protocol layer.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anode_coins::Coin;
use anode_store::{Durability, ErrorKind, Store};
use parking_lot::Mutex;
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use super::disk_full::{self, DiskFullOutage};
use super::error::IndexError;
use super::mempool::{Mempool, MempoolError};
use super::progress::Progress;
use super::touched::Touched;
use super::writer::IndexWriter;
use crate::daemon::{BlockFetcher, DaemonApi, DaemonError, FetcherOptions};
use crate::query::{ChainEvent, Hash32};

/// Why the sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The index refused (inconsistent data, store failure).
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The node failed; its messages name the node.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// The node's chain leaves the index's further back than the undo data reaches.
    #[error(
        "{node} has reorganised {}: the index ends at block {indexed_height} ({indexed_hash}), \
         the node's chain now ends at block {node_height} ({node_hash}). REORG_LIMIT is \
         {limit}: the index keeps undo data for its last {limit} blocks only, so it cannot \
         follow, and anode stopped without writing anything from the node's chain. If the node \
         is on the wrong chain (a stale or forked node, or another network's data), fix the \
         node and start anode again: it resumes. If the reorganisation is real, rebuild the \
         index: stop anode, move DB_DIRECTORY aside and sync again, with REORG_LIMIT set above \
         {depth} for reorganisations this deep to be followed in future",
        reorg_depth(*.depth, *.fork)
    )]
    ReorgTooDeep {
        /// the node, as its client describes it
        node: String,
        /// blocks of the index the node no longer has (a lower bound when `fork` is unknown)
        depth: u32,
        /// the last block both chains share, when found within the search
        fork: Option<u32>,
        /// the index's tip height
        indexed_height: u32,
        /// the index's tip hash, display order
        indexed_hash: String,
        /// the node's tip height
        node_height: u32,
        /// the node's tip hash, display order
        node_hash: String,
        /// the configured reorg limit
        limit: u32,
    },
    /// A blocking task died.
    #[error("indexer task failed: {0}")]
    Task(String),
    /// The database failed under the sync: an I/O error, corruption, or a full disk when a
    /// stop was asked while waiting for space. The message names the database directory and
    /// says what to do; the index keeps its last completed flush.
    #[error("{message}")]
    Storage {
        /// what happened, where, and what to do
        message: String,
        /// the index's error
        source: IndexError,
    },
}

fn reorg_depth(depth: u32, fork: Option<u32>) -> String {
    match fork {
        Some(fork) => {
            format!("{depth} blocks deep (its chain leaves the index's after block {fork})")
        }
        None => format!(
            "at least {depth} blocks deep (none of the index's last {depth} blocks is on its \
             chain)"
        ),
    }
}

/// Where the node's chain leaves the index's.
enum ForkPoint {
    /// the highest height both chains share
    At(u32),
    /// none of the heights down to this one are shared, and looking further would pass the
    /// reorg limit
    Below(u32),
    /// not even the genesis block is shared
    Nowhere,
}

/// Tuning of the sync loop.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// block fetching
    pub fetcher: FetcherOptions,
    /// how often to ask the node for a new tip when nothing wakes us earlier
    pub tip_poll: Duration,
    /// how often to refresh the mempool
    pub mempool_poll: Duration,
    /// whether to show a progress bar (a terminal) besides the log lines
    pub progress_bar: bool,
    /// woken when the node announces a block (ZMQ `hashblock`): the tip is then asked at once
    /// instead of at the next poll, which stays the source of truth
    pub new_block: Option<Arc<tokio::sync::Notify>>,
    /// how often a write that failed because the database's disk is full is tried again
    pub disk_full_retry: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            fetcher: FetcherOptions::default(),
            tip_poll: Duration::from_secs(1),
            mempool_poll: Duration::from_secs(5),
            progress_bar: false,
            new_block: None,
            // Often enough that the sync carries on soon after space is freed, seldom enough
            // that a full disk costs nothing meanwhile.
            disk_full_retry: Duration::from_secs(15),
        }
    }
}

/// Outcome of one catch-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CatchUp {
    /// blocks taken out by reorgs
    pub undone: u32,
    /// blocks added
    pub applied: u32,
    /// the node's tip height at the end
    pub tip_height: u32,
}

/// Flushes and drops the flushed transactions from the mempool mirror under its lock, taken
/// before the chain's (the order readers take them in), so no answer sees a transaction both
/// confirmed and unconfirmed.
fn flush_with_mempool(
    w: &mut IndexWriter,
    mempool: &Mempool,
    durability: Durability,
) -> Result<(), IndexError> {
    let mut guard = mempool.write();
    let confirmed = w.pending_txids();
    w.flush(durability)?;
    let mut touched = Touched::default();
    guard.remove_confirmed(&confirmed, &mut touched);
    w.note_touched(touched);
    Ok(())
}

/// Drives an [`IndexWriter`] from a node.
pub struct Indexer {
    writer: Arc<Mutex<IndexWriter>>,
    store: Arc<dyn Store>,
    daemon: Arc<dyn DaemonApi>,
    coin: Arc<dyn Coin>,
    mempool: Arc<Mempool>,
    events: broadcast::Sender<Arc<ChainEvent>>,
    options: SyncOptions,
    reorg_limit: u32,
    last_tip: Mutex<Option<(u32, Hash32)>>,
    synced: watch::Sender<bool>,
    /// set when shutdown is asked: a catch-up stops after its current block
    stopping: AtomicBool,
    /// set while a write waits for the database's disk to have room
    waiting_for_space: AtomicBool,
}

impl Indexer {
    /// An indexer over `writer`, fetching from `daemon`.
    pub fn new(
        writer: IndexWriter,
        daemon: Arc<dyn DaemonApi>,
        coin: Arc<dyn Coin>,
        reorg_limit: u32,
        options: SyncOptions,
    ) -> Self {
        let (events, _) = broadcast::channel(1024);
        let store = Arc::clone(writer.store());
        let last_tip = writer.tip();
        Indexer {
            writer: Arc::new(Mutex::new(writer)),
            store,
            daemon,
            coin,
            mempool: Arc::new(Mempool::new()),
            events,
            options,
            reorg_limit,
            last_tip: Mutex::new(last_tip),
            synced: watch::channel(false).0,
            stopping: AtomicBool::new(false),
            waiting_for_space: AtomicBool::new(false),
        }
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Whether the sync is stalled because the database's disk is full: it keeps its pending
    /// blocks and tries the write again every [`SyncOptions::disk_full_retry`].
    pub fn waiting_for_space(&self) -> bool {
        self.waiting_for_space.load(Ordering::Relaxed)
    }

    /// The database directory, for messages.
    fn db_dir(&self) -> &Path {
        self.store.path().unwrap_or(Path::new("(in memory)"))
    }

    /// Height of the last block the store holds (the last completed flush).
    fn committed_height(&self) -> Option<u32> {
        self.writer.lock().flushed().map(|state| state.height)
    }

    /// Runs `step` (a flush, a store sync, a block's undo) on the writer. While it fails
    /// because the database's disk is full, which leaves the store and the writer as they were,
    /// it says so once, waits [`SyncOptions::disk_full_retry`] and tries again, until the
    /// write goes through or a stop is asked. Any other error returns at once.
    async fn until_space<T: Send + 'static>(
        &self,
        step: impl Fn(&mut IndexWriter) -> Result<T, IndexError> + Send + Sync + 'static,
    ) -> Result<T, SyncError> {
        let step = Arc::new(step);
        let mut outage: Option<DiskFullOutage> = None;
        loop {
            let attempt = Arc::clone(&step);
            let error = match self.blocking(move |w| attempt(w)).await {
                Ok(value) => {
                    if let Some(outage) = &outage {
                        outage.ended();
                        self.waiting_for_space.store(false, Ordering::Relaxed);
                    }
                    return Ok(value);
                }
                Err(SyncError::Index(e)) if disk_full::is_disk_full(&e) => e,
                Err(e) => return Err(e),
            };
            let first_failure = outage.is_none();
            let outage = outage.get_or_insert_with(|| {
                DiskFullOutage::begin(
                    self.db_dir(),
                    &error,
                    self.committed_height(),
                    *self.synced.borrow(),
                    self.options.disk_full_retry,
                )
            });
            if first_failure {
                self.waiting_for_space.store(true, Ordering::Relaxed);
            } else {
                outage.failed_again(&error);
            }
            if !self.wait_for_retry().await {
                self.waiting_for_space.store(false, Ordering::Relaxed);
                return Err(SyncError::Storage {
                    message: outage.stopped(&error, self.committed_height()),
                    source: error,
                });
            }
        }
    }

    /// Waits [`SyncOptions::disk_full_retry`]; false if a stop was asked meanwhile.
    async fn wait_for_retry(&self) -> bool {
        let deadline = Instant::now() + self.options.disk_full_retry;
        loop {
            if self.is_stopping() {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            tokio::time::sleep(left.min(Duration::from_millis(250))).await;
        }
    }

    /// A store failure that stops the sync, said with the database directory and what to do.
    /// Other errors pass unchanged.
    fn explain(&self, error: SyncError) -> SyncError {
        let SyncError::Index(index_error) = error else {
            return error;
        };
        let Some(kind) = index_error.store_error().map(anode_store::Error::kind) else {
            return SyncError::Index(index_error);
        };
        let dir = self.db_dir().display();
        let committed = match self.committed_height() {
            Some(height) => format!("every block up to {height}"),
            None => "no block yet".to_string(),
        };
        let message = match kind {
            ErrorKind::Io => format!(
                "I/O error in the database directory {dir}: {index_error}. The disk or the \
                 filesystem failed (see the kernel log, dmesg, and the disk's health); the \
                 index keeps {committed}, its last completed write, and the next start \
                 resumes from there"
            ),
            ErrorKind::Corrupt => format!(
                "corrupt data in the database directory {dir}: {index_error}. Stop anode and \
                 re-index into an empty DB_DIRECTORY (or restore a copy of this one)"
            ),
            ErrorKind::NoSpace => format!(
                "the database disk is full: {dir} has {}: {index_error}. Free space on that \
                 filesystem or move DB_DIRECTORY to a larger one, then start anode again; the \
                 index keeps {committed}",
                anode_store::disk::free_space(self.db_dir()).map_or(
                    "an unknown amount of space free".to_string(),
                    |free| format!("{} free", disk_full::human_bytes(free))
                )
            ),
            _ => return SyncError::Index(index_error),
        };
        SyncError::Storage {
            message,
            source: index_error,
        }
    }

    /// Reads for the protocol server over this indexer's state.
    pub fn query(&self) -> super::IndexQuery {
        let chain = self.writer.lock().shared_chain();
        super::IndexQuery::new(
            Arc::clone(&self.store),
            chain,
            Arc::clone(&self.mempool),
            Arc::clone(&self.daemon),
            Arc::clone(&self.coin),
            self.events.clone(),
        )
    }

    /// The mempool mirror.
    pub fn mempool(&self) -> &Arc<Mempool> {
        &self.mempool
    }

    /// Becomes true once the index first reaches the node's tip.
    pub fn synced(&self) -> watch::Receiver<bool> {
        self.synced.subscribe()
    }

    /// The store's size figures.
    pub fn store_stats(&self) -> anode_store::Result<anode_store::StoreStats> {
        self.store.stats()
    }

    /// Calls `observer` after every committed flush.
    pub fn set_flush_observer(&self, observer: super::writer::FlushObserver) {
        self.writer.lock().set_flush_observer(observer);
    }

    /// Estimated bytes of blocks applied but not yet flushed.
    pub fn pending_bytes(&self) -> usize {
        self.writer.lock().pending_bytes()
    }

    /// Takes the last `count` blocks out of the index (the admin `reorg` command, to test
    /// clients and the reorg path); the sync loop then applies the node's blocks again.
    pub async fn force_reorg(&self, count: u32) -> Result<(), SyncError> {
        if count == 0 || count > self.reorg_limit {
            return Err(IndexError::ReorgTooDeep {
                height: self.tip().map_or(0, |t| t.0.saturating_sub(count)),
                limit: self.reorg_limit,
            }
            .into());
        }
        for _ in 0..count {
            let mempool = Arc::clone(&self.mempool);
            self.blocking(move |w| {
                let _guard = mempool.write();
                w.undo_tip()
            })
            .await
            .map_err(|e| self.explain(e))?;
        }
        info!(count, "forced reorg: blocks undone, re-syncing");
        Ok(())
    }

    /// The indexed tip (height, hash), pending blocks included.
    pub fn tip(&self) -> Option<(u32, Hash32)> {
        self.writer.lock().tip()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut IndexWriter) -> Result<T, IndexError> + Send + 'static,
    ) -> Result<T, SyncError> {
        let writer = Arc::clone(&self.writer);
        tokio::task::spawn_blocking(move || f(&mut writer.lock()))
            .await
            .map_err(|e| SyncError::Task(e.to_string()))?
            .map_err(SyncError::from)
    }

    /// The highest block the index shares with the node's chain, at or below `from`. Walks
    /// down in growing steps, never further than the reorg limit.
    async fn fork_point(&self, from: u32) -> Result<ForkPoint, SyncError> {
        let mut top = from;
        let mut step = 8u32;
        loop {
            let bottom = top.saturating_sub(step - 1);
            let theirs = self.daemon.block_hashes(bottom..top + 1).await?;
            let writer = self.writer.lock();
            for (i, hash) in theirs.iter().enumerate().rev() {
                let height = bottom + i as u32;
                if writer.hash_at(height) == Some(*hash) {
                    return Ok(ForkPoint::At(height));
                }
            }
            drop(writer);
            if bottom == 0 {
                return Ok(ForkPoint::Nowhere);
            }
            if from - bottom > self.reorg_limit {
                return Ok(ForkPoint::Below(bottom));
            }
            top = bottom - 1;
            step = step.saturating_mul(2);
        }
    }

    /// The error for a reorganisation of the node's chain deeper than the reorg limit.
    fn reorg_too_deep(
        &self,
        indexed: (u32, Hash32),
        node: &crate::daemon::ChainInfo,
        depth: u32,
        fork: Option<u32>,
    ) -> SyncError {
        SyncError::ReorgTooDeep {
            node: self.daemon.describe(),
            depth,
            fork,
            indexed_height: indexed.0,
            indexed_hash: crate::daemon::hash_to_hex(&indexed.1),
            node_height: node.blocks,
            node_hash: node.bestblockhash.clone(),
            limit: self.reorg_limit,
        }
    }

    /// Brings the index to the node's current tip: undoes blocks the node no longer has,
    /// then fetches and applies the rest. While the database's disk is full, it waits for
    /// space with its pending blocks (see [`SyncOptions::disk_full_retry`]).
    pub async fn catch_up(&self, progress: &mut Progress) -> Result<CatchUp, SyncError> {
        self.catch_up_inner(progress)
            .await
            .map_err(|e| self.explain(e))
    }

    async fn catch_up_inner(&self, progress: &mut Progress) -> Result<CatchUp, SyncError> {
        let mut outcome = CatchUp::default();
        while !self.is_stopping() {
            let info = self.daemon.chain_info().await?;
            let node_height = info.blocks;
            outcome.tip_height = node_height;
            let node_hash = crate::daemon::hash_from_hex(&info.bestblockhash);
            if node_hash.is_some() && self.tip().map(|(_, h)| h) == node_hash {
                break;
            }
            if let Some((height, tip_hash)) = self.tip() {
                let check = height.min(node_height);
                // Nothing is undone before the whole depth is known to be within the limit:
                // a deeper reorganisation stops the sync with the index untouched, and blocks
                // of the node's chain are never applied on top of blocks it no longer has
                // (`apply_block` checks each block's parent).
                let fork = match self.fork_point(check).await? {
                    ForkPoint::At(fork) => fork,
                    ForkPoint::Below(lowest) => {
                        let depth = height - lowest + 1;
                        return Err(self.reorg_too_deep((height, tip_hash), &info, depth, None));
                    }
                    ForkPoint::Nowhere => {
                        return Err(IndexError::Corrupt(
                            "the node's genesis block differs from the index's".into(),
                        )
                        .into())
                    }
                };
                if height - fork > self.reorg_limit {
                    let depth = height - fork;
                    return Err(self.reorg_too_deep((height, tip_hash), &info, depth, Some(fork)));
                }
                if height > fork {
                    // Logged before the first write so an interrupted reorg shows in the log.
                    info!(fork, depth = height - fork, "reorg: undoing blocks");
                }
                while self.tip().is_some_and(|(h, _)| h > fork) {
                    let mempool = Arc::clone(&self.mempool);
                    self.until_space(move |w| {
                        // Undone transactions go back to the node's mempool; the mirror
                        // learns them at its next refresh.
                        let _guard = mempool.write();
                        w.undo_tip()
                    })
                    .await?;
                    outcome.undone += 1;
                }
                if outcome.undone > 0 {
                    info!(fork, undone = outcome.undone, "reorg: blocks undone");
                }
            }
            let from = self.tip().map_or(0, |(h, _)| h + 1);
            if from > node_height {
                break;
            }
            let applied = self.apply_range(from, node_height, progress).await?;
            outcome.applied += applied.0;
            if !applied.1 && !self.is_stopping() {
                // the node's chain changed under the fetch: look for the fork again
                continue;
            }
        }
        let mempool = Arc::clone(&self.mempool);
        self.until_space(move |w| flush_with_mempool(w, &mempool, Durability::Sync))
            .await?;
        Ok(outcome)
    }

    /// Applies `from..=to`; returns the blocks applied and whether the range completed (false
    /// when a block did not extend the tip: a reorg under way).
    async fn apply_range(
        &self,
        from: u32,
        to: u32,
        progress: &mut Progress,
    ) -> Result<(u32, bool), SyncError> {
        let mut blocks = BlockFetcher::spawn(
            Arc::clone(&self.daemon),
            Arc::clone(&self.coin),
            from,
            to,
            self.options.fetcher,
        );
        let keep_undo_from = to.saturating_sub(self.reorg_limit);
        debug!(from, to, "applying blocks");
        let mut applied = 0u32;
        // Catching up over more than a few blocks: bulk tuning, unsynced flushes by memory, one
        // synced flush at the end. Following the tip: each block flushed and synced.
        let bulk = to - from > self.reorg_limit.min(16);
        if bulk {
            let store = Arc::clone(&self.store);
            tokio::task::spawn_blocking(move || store.set_bulk_load(true))
                .await
                .map_err(|e| SyncError::Task(e.to_string()))?
                .map_err(IndexError::from)?;
        }
        let mut complete = true;
        let mut fetch_failed = None;
        while let Some(block) = blocks.recv().await {
            if self.is_stopping() {
                complete = false;
                break;
            }
            let block = match block {
                Ok(block) => block,
                Err(e) => {
                    fetch_failed = Some(e);
                    break;
                }
            };
            let height = block.height;
            let txs = block.parsed.txs.len() as u64;
            // The writer's pending bytes are taken before a flush empties them: the progress
            // line, which often comes right after a flush, reports the window's peak.
            let result = self
                .blocking(move |w| {
                    match w.apply_block(height, block.hash, &block.parsed, height > keep_undo_from)
                    {
                        Ok(()) => {}
                        Err(IndexError::NotExtending { .. }) => return Ok(None),
                        Err(e) => {
                            w.discard_pending();
                            return Err(e);
                        }
                    }
                    Ok(Some((w.pending_bytes(), w.needs_flush())))
                })
                .await?;
            let Some((pending, needs_flush)) = result else {
                complete = false;
                break;
            };
            let at_tip = height == to;
            if needs_flush || at_tip {
                let durability = if at_tip {
                    Durability::Sync
                } else {
                    Durability::Bulk
                };
                let mempool = Arc::clone(&self.mempool);
                self.until_space(move |w| flush_with_mempool(w, &mempool, durability))
                    .await?;
            }
            applied += 1;
            progress.block(height, to, txs, pending);
        }
        if fetch_failed.is_some() && !bulk {
            // The blocks applied before the one that failed passed every check: they are
            // written (the bulk path below writes them too), so the index ends exactly before
            // a bad block and a restart resumes there.
            let mempool = Arc::clone(&self.mempool);
            self.blocking(move |w| flush_with_mempool(w, &mempool, Durability::Sync))
                .await?;
        }
        if bulk {
            self.until_space(|w| w.flush(Durability::Bulk)).await?;
            self.until_space(|w| Ok(w.store().sync()?)).await?;
            let store = Arc::clone(&self.store);
            tokio::task::spawn_blocking(move || store.set_bulk_load(false))
                .await
                .map_err(|e| SyncError::Task(e.to_string()))?
                .map_err(IndexError::from)?;
        }
        if let Some(e) = fetch_failed {
            return Err(e.into());
        }
        Ok((applied, complete))
    }

    /// Refreshes the mempool mirror; returns what changed.
    pub async fn refresh_mempool(&self) -> Result<Touched, MempoolError> {
        self.mempool
            .refresh(&self.daemon, &self.store, &self.coin)
            .await
    }

    /// Sends an event if the tip moved or anything was touched.
    pub fn announce(&self, mut touched: Touched) {
        touched.extend(self.writer.lock().take_touched());
        let tip = self.writer.lock().shared_chain().tip();
        let mut last = self.last_tip.lock();
        let now = Some((tip.height, tip.hash));
        let tip_changed = *last != now;
        *last = now;
        drop(last);
        if !tip_changed && touched.is_empty() {
            return;
        }
        let _ = self.events.send(Arc::new(ChainEvent {
            tip,
            tip_changed,
            touched_scripts: touched.scripts,
            touched_outpoints: touched.outpoints,
        }));
    }

    /// Follows the node until `shutdown` turns true: catch up, then on every new tip or
    /// mempool interval, apply and announce. A node that is down or loading is waited for;
    /// index errors, a reorganisation deeper than the limit, and a node that serves bad blocks
    /// or keeps answering brokenly ([`DaemonError::is_node_fault`]) stop the sync.
    pub async fn run(
        self: Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), SyncError> {
        let store = Arc::clone(&self.store);
        let mut progress = Progress::new(self.options.progress_bar)
            .with_db_size(move || store.stats().map_or(0, |s| s.disk_bytes));
        let started = Instant::now();
        {
            let indexer = Arc::clone(&self);
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                if shutdown.wait_for(|stop| *stop).await.is_ok() {
                    indexer.stopping.store(true, Ordering::Relaxed);
                }
            });
        }
        loop {
            match self.catch_up(&mut progress).await {
                Ok(_) if self.is_stopping() => {
                    progress.finish();
                    info!("stopped before catching up with the node; the next start resumes");
                    return Ok(());
                }
                Ok(outcome) => {
                    if !*self.synced.borrow() {
                        progress.finish();
                        info!(
                            height = outcome.tip_height,
                            seconds = started.elapsed().as_secs(),
                            "index caught up with the node"
                        );
                        self.writer.lock().set_collect_touched(true);
                        self.synced.send_replace(true);
                    }
                    break;
                }
                Err(SyncError::Daemon(e)) if !e.is_node_fault() => {
                    warn!(error = %e, "the node failed during the initial sync; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(self.options.tip_poll) => {}
                        _ = shutdown.changed() => return Ok(()),
                    }
                }
                Err(e) => return Err(e),
            }
            if *shutdown.borrow() {
                return Ok(());
            }
        }
        let mut mempool_due = Instant::now();
        loop {
            let mut touched = Touched::default();
            match self.catch_up(&mut progress).await {
                Ok(_) => {}
                Err(SyncError::Daemon(e)) if !e.is_node_fault() => {
                    warn!(error = %e, "following the node failed; retrying")
                }
                Err(e) => return Err(e),
            }
            let new_block = self.writer.lock().has_new_blocks_since_announce();
            if new_block || Instant::now() >= mempool_due {
                debug!("refreshing the mempool");
                match self.refresh_mempool().await {
                    Ok(t) => {
                        debug!(scripts = t.scripts.len(), "mempool refreshed");
                        touched.extend(t)
                    }
                    Err(e) => warn!(error = %e, "mempool refresh failed; keeping the last view"),
                }
                mempool_due = Instant::now() + self.options.mempool_poll;
            }
            self.announce(touched);
            let wait = mempool_due
                .saturating_duration_since(Instant::now())
                .min(self.options.tip_poll);
            let announced = async {
                match &self.options.new_block {
                    Some(notify) => notify.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
                _ = announced => debug!("the node announced a block"),
            }
            if *shutdown.borrow() {
                let writer = Arc::clone(&self.writer);
                let _ = tokio::task::spawn_blocking(move || writer.lock().flush(Durability::Sync))
                    .await;
                return Ok(());
            }
        }
    }
}
