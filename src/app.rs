//! The running server: the node client, the index, the protocol listeners, the admin RPC and
//! the metrics endpoint wired together, with start-up checks and a clean shutdown. `anode`
//! without a subcommand runs [`serve`]; `anode demo` runs the same stack over the built-in
//! chain simulator.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anode_coins::Coin;
use anyhow::{bail, Context};
use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::admin::{
    self, AdminApi, AdminError, GroupInfo, LogControl, LoggingChange, LoggingState, MemoryItem,
    PeerInfo, SessionInfo as AdminSession,
};
use crate::config::Config;
use crate::daemon::{hash_to_hex, DaemonApi, FetcherOptions};
use crate::index::{self, IndexWriter, Indexer, SyncError, SyncOptions, WriterOptions};
use crate::metrics::Metrics;
use crate::query::ChainQuery;
use crate::server::{Server, ServerConfig, ServerHandle, ServerParts};
use crate::store_factory::{self, Tuning};

/// Everything a running anode holds.
pub struct Stack {
    /// the coin
    pub coin: Arc<dyn Coin>,
    /// the node client
    pub daemon: Arc<dyn DaemonApi>,
    /// the indexer
    pub indexer: Arc<Indexer>,
    /// reads of the index
    pub query: Arc<dyn ChainQuery>,
    /// the protocol server
    pub server: Arc<Mutex<Option<ServerHandle>>>,
    /// metrics
    pub metrics: Arc<Metrics>,
    /// peer discovery
    pub peers: Arc<crate::peers::PeerManager>,
    shutdown: watch::Sender<bool>,
    index_task: Mutex<Option<JoinHandle<Result<(), SyncError>>>>,
    background: Mutex<Vec<JoinHandle<()>>>,
    admin: Mutex<Option<admin::AdminServer>>,
    metrics_server: Mutex<Option<crate::metrics::MetricsServer>>,
}

/// How to build a [`Stack`].
pub struct StackOptions {
    /// operator configuration
    pub config: Config,
    /// the coin
    pub coin: Arc<dyn Coin>,
    /// the node client
    pub daemon: Arc<dyn DaemonApi>,
    /// database directory
    pub db_dir: std::path::PathBuf,
    /// run-time log filter control, for the admin `log` command
    pub log: Option<LogControl>,
    /// show a progress bar during the initial sync
    pub progress_bar: bool,
}

impl Stack {
    /// Opens the index, starts following the node, waits for the initial sync, then opens the
    /// listeners, the admin RPC and the metrics endpoint.
    pub async fn start(options: StackOptions) -> anyhow::Result<Arc<Stack>> {
        listen_for_signals();
        let StackOptions {
            config,
            coin,
            daemon,
            db_dir,
            log,
            progress_bar,
        } = options;
        let params = coin.params();
        let engine = match &config.db_engine {
            Some(engine) => engine.clone(),
            None => store_factory::default_engine()
                .context("this build has no storage engine")?
                .to_string(),
        };
        let tuning = Tuning {
            cache_mb: config.cache_mb,
        };
        let memory = store_factory::MemoryPlan::new(&engine, config.cache_mb);
        let store = {
            let (engine, db_dir, coin_name, net) = (
                engine.clone(),
                db_dir.clone(),
                params.coin.clone(),
                params.net.clone(),
            );
            tokio::task::spawn_blocking(move || {
                index::open_index_store(&engine, &db_dir, &coin_name, &net, tuning)
            })
            .await??
        };
        let reorg_limit = config.reorg_limit.unwrap_or(params.reorg_limit);
        let writer = {
            let (store, coin) = (Arc::clone(&store), Arc::clone(&coin));
            let options = WriterOptions {
                reorg_limit,
                cache_bytes: (memory.writer_mb as usize) << 20,
            };
            let db_dir = db_dir.clone();
            tokio::task::spawn_blocking(move || {
                IndexWriter::open(store, coin, options)
                    .map_err(|e| index::meta::damaged_index(&db_dir, e))
            })
            .await??
        };
        info!(
            engine,
            path = %db_dir.display(),
            height = ?writer.tip().map(|t| t.0),
            "index opened"
        );
        // The node's block announcements, when it publishes them: a new block then reaches
        // wallets at once instead of at the next poll.
        let block_notifications = config.zmq_block_url.clone().map(|url| {
            info!(url = %url, "subscribing to the node's ZMQ hashblock notifications");
            crate::daemon::BlockNotifications::spawn(url)
        });
        let indexer = Arc::new(Indexer::new(
            writer,
            Arc::clone(&daemon),
            Arc::clone(&coin),
            reorg_limit,
            SyncOptions {
                tip_poll: Duration::from_millis(config.poll_interval_blocks_ms.max(10)),
                mempool_poll: Duration::from_millis(config.poll_interval_mempool_ms.max(10)),
                progress_bar,
                new_block: block_notifications
                    .as_ref()
                    .map(crate::daemon::BlockNotifications::notify),
                fetcher: FetcherOptions {
                    budget_bytes: (memory.fetch_mb as usize) << 20,
                    ..FetcherOptions::default()
                },
                ..SyncOptions::default()
            },
        ));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut synced = indexer.synced();
        let metrics = Arc::new(Metrics::new());
        {
            let metrics = Arc::clone(&metrics);
            indexer.set_flush_observer(Arc::new(move |report| {
                metrics.flush_finished(report.elapsed, report.bytes)
            }));
        }
        let index_task = tokio::spawn({
            let run = Arc::clone(&indexer).run(shutdown_rx.clone());
            async move {
                // The subscription lives as long as the sync loop.
                let _block_notifications = block_notifications;
                run.await
            }
        });
        let metrics_server = crate::metrics::serve_configured(&config, Arc::clone(&metrics))
            .await
            .context("starting the metrics endpoint")?;
        let sync_gauges = tokio::spawn(update_sync_gauges(
            Arc::clone(&metrics),
            Arc::clone(&indexer),
            Arc::clone(&daemon),
            synced.clone(),
        ));

        // Like ElectrumX, clients are served once the index has caught up with the node. A
        // signal meanwhile stops the sync after its current block, with a last flush, so the
        // next start resumes from there.
        let mut index_task = Some(index_task);
        loop {
            if *synced.borrow() {
                break;
            }
            tokio::select! {
                changed = synced.changed() => {
                    if changed.is_err() { break; }
                }
                finished = async { index_task.as_mut().expect("present").await } => {
                    sync_gauges.abort();
                    match finished {
                        Ok(Ok(())) => bail!("the indexer stopped before catching up"),
                        Ok(Err(e)) => return Err(e).context("indexing"),
                        Err(e) => bail!("the indexer task failed: {e}"),
                    }
                }
                _ = signal_number(1) => {
                    info!("signal received during the initial sync: flushing, then stopping (again to force)");
                    let _ = shutdown.send(true);
                    let task = index_task.take().expect("present");
                    tokio::select! {
                        finished = task => {
                            sync_gauges.abort();
                            if let Some(server) = metrics_server {
                                server.stop().await;
                            }
                            match finished {
                                Ok(Ok(())) => return Err(StoppedBeforeSync.into()),
                                Ok(Err(e)) => return Err(e).context("indexing"),
                                Err(e) => bail!("the indexer task failed: {e}"),
                            }
                        }
                        _ = signal_number(2) => {
                            warn!("second signal: exiting without waiting for the flush");
                            std::process::exit(1);
                        }
                    }
                }
            }
        }
        sync_gauges.abort();

        let query: Arc<dyn ChainQuery> = Arc::new(indexer.query());
        let genesis_hex = hash_to_hex(&params.genesis_hash);
        let settings = crate::peers::PeerSettings::from_config(
            &config,
            params,
            crate::peers::our_features(&config.report_services, &genesis_hex),
        );
        let peers = crate::peers::PeerManager::new(
            settings,
            Arc::new(crate::peers::QueryChain(Arc::clone(&query))),
        )
        .context("peer discovery settings")?;
        let server = Server::start(
            Arc::new(ServerConfig::from_config(&config)),
            ServerParts {
                query: Arc::clone(&query),
                daemon: Arc::clone(&daemon),
                coin: Arc::clone(&coin),
                peers: Arc::clone(&peers),
                metrics: Some(Arc::clone(&metrics)),
            },
        )
        .await
        .context("starting the listeners")?;
        let peers_task = {
            let mut stop = shutdown_rx.clone();
            tokio::spawn(Arc::clone(&peers).run(async move {
                let _ = stop.wait_for(|v| *v).await;
            }))
        };
        let stack = Arc::new(Stack {
            coin: Arc::clone(&coin),
            daemon,
            indexer,
            query: Arc::clone(&query),
            server: Arc::new(Mutex::new(Some(server))),
            metrics,
            peers,
            shutdown,
            index_task: Mutex::new(index_task),
            background: Mutex::new(vec![peers_task]),
            admin: Mutex::new(None),
            metrics_server: Mutex::new(metrics_server),
        });
        let api = Arc::new(StackAdmin {
            stack: Arc::downgrade(&stack),
            started: Instant::now(),
            config: config.clone(),
            engine,
            db_dir,
        });
        let mut admin = admin::Admin::new(api, Arc::clone(&query), coin);
        if let Some(log) = log {
            admin = admin.with_log_control(log);
        }
        let admin_server = admin::spawn_configured(&config, Arc::new(admin))
            .await
            .context("starting the admin RPC")?;
        *stack.admin.lock() = admin_server;
        let gauges = tokio::spawn(update_gauges(Arc::downgrade(&stack), shutdown_rx));
        stack.background.lock().push(gauges);
        Ok(stack)
    }

    /// Where the admin RPC listens, when configured (`rpc://` in the services).
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin.lock().as_ref().map(|a| a.addr)
    }

    /// Asks everything to stop.
    pub fn request_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// A receiver that turns true when shutdown is requested.
    pub fn shutdown_requested(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Stops accepting, closes sessions, lets the indexer finish its flush and closes the
    /// store.
    pub async fn shutdown(&self) {
        self.request_shutdown();
        let server = self.server.lock().take();
        if let Some(server) = server {
            server.shutdown().await;
        }
        let admin = self.admin.lock().take();
        if let Some(admin) = admin {
            admin.stop().await;
        }
        let metrics = self.metrics_server.lock().take();
        if let Some(metrics) = metrics {
            metrics.stop().await;
        }
        let task = self.index_task.lock().take();
        if let Some(task) = task {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(error = %e, "the indexer stopped with an error"),
                Err(e) => warn!(error = %e, "the indexer task failed"),
            }
        }
        for task in self.background.lock().drain(..) {
            task.abort();
        }
        info!("stopped");
    }

    /// Waits until the indexer stops by itself (an index error) or shutdown is requested.
    pub async fn wait(&self) -> anyhow::Result<()> {
        let mut requested = self.shutdown_requested();
        let task = self.index_task.lock().take();
        let Some(mut task) = task else {
            let _ = requested.wait_for(|v| *v).await;
            return Ok(());
        };
        tokio::select! {
            finished = &mut task => {
                match finished {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e).context("indexing stopped"),
                    Err(e) => bail!("the indexer task failed: {e}"),
                }
            }
            _ = requested.wait_for(|v| *v) => {
                *self.index_task.lock() = Some(task);
                Ok(())
            }
        }
    }
}

/// Gauges that follow the index and the node, during the initial sync and after it: the
/// node's height, the writer's cache and the database size.
async fn update_index_gauges(metrics: &Metrics, indexer: &Arc<Indexer>, daemon: &dyn DaemonApi) {
    metrics.set_cache_size("writer", indexer.pending_bytes() as u64);
    if let Ok(count) = daemon.block_count().await {
        metrics.set_daemon_height(count);
    }
    let stats_of = Arc::clone(indexer);
    if let Ok(Ok(stats)) = tokio::task::spawn_blocking(move || stats_of.store_stats()).await {
        metrics.set_db_size(stats.disk_bytes);
        metrics.set_engine_counters(&stats.engine_counters);
    }
}

/// The sync's gauges before clients are served; the tip is the last block applied, flushed
/// or not.
async fn update_sync_gauges(
    metrics: Arc<Metrics>,
    indexer: Arc<Indexer>,
    daemon: Arc<dyn DaemonApi>,
    mut synced: watch::Receiver<bool>,
) {
    while !*synced.borrow() {
        if let Some((height, _)) = indexer.tip() {
            metrics.set_tip(height);
        }
        update_index_gauges(&metrics, &indexer, daemon.as_ref()).await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = synced.changed() => {}
        }
    }
}

/// The server was stopped by a signal before the index caught up with the node: the work
/// done so far is flushed and the next start resumes from it.
#[derive(Debug, thiserror::Error)]
#[error("stopped by a signal during the initial sync; the index was flushed and the next start resumes it")]
pub struct StoppedBeforeSync;

async fn update_gauges(stack: std::sync::Weak<Stack>, mut shutdown: watch::Receiver<bool>) {
    loop {
        {
            let Some(stack) = stack.upgrade() else { return };
            let tip = stack.query.tip();
            stack.metrics.set_tip(tip.height);
            stack.metrics.set_mempool_size(stack.query.mempool_size());
            update_index_gauges(&stack.metrics, &stack.indexer, stack.daemon.as_ref()).await;
            let sessions: Vec<_> = stack
                .server
                .lock()
                .as_ref()
                .map(|s| s.sessions())
                .unwrap_or_default();
            let scripts: u64 = sessions.iter().map(|s| s.script_subs as u64).sum();
            let outpoints: u64 = sessions.iter().map(|s| s.outpoint_subs as u64).sum();
            stack.metrics.set_subscriptions(scripts, outpoints);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The admin interface over a running stack.
struct StackAdmin {
    stack: std::sync::Weak<Stack>,
    started: Instant,
    config: Config,
    engine: String,
    db_dir: std::path::PathBuf,
}

impl StackAdmin {
    fn stack(&self) -> Result<Arc<Stack>, AdminError> {
        self.stack
            .upgrade()
            .ok_or_else(|| AdminError::Unavailable("the server is stopping".into()))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[async_trait]
impl AdminApi for StackAdmin {
    async fn getinfo(&self) -> serde_json::Value {
        let Ok(stack) = self.stack() else {
            return serde_json::json!({"closing": true});
        };
        let tip = stack.query.tip();
        let sessions = self.sessions().await;
        let daemon_height = stack.daemon.block_count().await.ok();
        serde_json::json!({
            "coin": stack.coin.params().coin,
            "network": stack.coin.params().net,
            "version": format!("anode {}", env!("CARGO_PKG_VERSION")),
            "db_engine": self.engine,
            "db_directory": self.db_dir.display().to_string(),
            "db_height": tip.height,
            "db_tip": hash_to_hex(&tip.hash),
            "daemon_height": daemon_height,
            "daemon": self.config.daemon_urls.iter().map(|u| crate::daemon::hide_credentials(u)).collect::<Vec<_>>(),
            "sessions": sessions.len(),
            "subs": sessions.iter().map(|s| s.subscriptions()).sum::<u64>(),
            "txs_sent": 0,
            "mempool_txs": stack.query.mempool_size(),
            "uptime": self.started.elapsed().as_secs(),
            "peers": stack.peers.counts(),
        })
    }

    async fn sessions(&self) -> Vec<AdminSession> {
        let Ok(stack) = self.stack() else {
            return Vec::new();
        };
        let server = stack.server.lock();
        let Some(server) = server.as_ref() else {
            return Vec::new();
        };
        let now = unix_now();
        server
            .sessions()
            .into_iter()
            .map(|s| AdminSession {
                id: s.id,
                transport: s.kind.to_string(),
                remote_addr: s.peer.to_string(),
                group: s.group.unwrap_or_default(),
                protocol_version: s.protocol_version,
                client_name: s.client_name,
                scripthash_subs: s.script_subs as u64,
                outpoint_subs: s.outpoint_subs as u64,
                txs_sent: s.txs_sent,
                cost: s.cost,
                requests: s.requests,
                errors: s.errors,
                recv_bytes: s.bytes_in,
                send_bytes: s.bytes_out,
                connected_since: now,
                ..AdminSession::default()
            })
            .collect()
    }

    async fn groups(&self) -> Vec<GroupInfo> {
        let mut groups: std::collections::BTreeMap<String, GroupInfo> = Default::default();
        // Sessions the server does not group (loopback, for one) share no cost.
        for s in self
            .sessions()
            .await
            .into_iter()
            .filter(|s| !s.group.is_empty())
        {
            let g = groups.entry(s.group.clone()).or_insert_with(|| GroupInfo {
                name: s.group.clone(),
                ..GroupInfo::default()
            });
            g.sessions += 1;
            g.cost += s.cost;
            g.subscriptions += s.subscriptions();
            g.recv_bytes += s.recv_bytes;
            g.send_bytes += s.send_bytes;
        }
        groups.into_values().collect()
    }

    async fn peers(&self) -> Vec<PeerInfo> {
        match self.stack() {
            Ok(stack) => stack.peers.peers(),
            Err(_) => Vec::new(),
        }
    }

    async fn add_peer(&self, real_name: &str) -> Result<(), AdminError> {
        self.stack()?.peers.add_peer_real_name(real_name)
    }

    async fn disconnect(&self, session_ids: &[u64]) -> Vec<u64> {
        let Ok(stack) = self.stack() else {
            return Vec::new();
        };
        let server = stack.server.lock();
        let Some(server) = server.as_ref() else {
            return Vec::new();
        };
        session_ids
            .iter()
            .copied()
            .filter(|id| server.disconnect(*id))
            .collect()
    }

    async fn session_logging(&self, change: LoggingChange) -> LoggingState {
        let Ok(stack) = self.stack() else {
            return LoggingState::default();
        };
        let server = stack.server.lock();
        match server.as_ref() {
            Some(server) => server.set_session_logging(change),
            None => LoggingState::default(),
        }
    }

    async fn set_daemon_url(&self, urls: Option<&str>) -> Result<String, AdminError> {
        // As ElectrumX: no argument goes back to the configured DAEMON_URL (after a failover).
        let stack = self.stack()?;
        let port = stack.coin.params().rpc_port;
        let urls: Vec<String> = match urls {
            None => crate::daemon::daemon_urls(&self.config, stack.coin.as_ref()),
            Some(text) => text
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(|u| crate::daemon::with_default_port(u, port))
                .collect(),
        };
        stack
            .daemon
            .replace_urls(&urls)
            .map_err(|e| AdminError::BadArgument(e.to_string()))?;
        Ok(urls.first().cloned().unwrap_or_default())
    }

    async fn reorg(&self, count: u32) -> Result<(), AdminError> {
        let stack = self.stack()?;
        stack
            .indexer
            .force_reorg(count)
            .await
            .map_err(|e| AdminError::BadArgument(e.to_string()))
    }

    async fn memory_usage(&self) -> Vec<MemoryItem> {
        let Ok(stack) = self.stack() else {
            return Vec::new();
        };
        vec![
            MemoryItem {
                name: "index pending state (estimate)".into(),
                bytes: stack.indexer.pending_bytes() as u64,
            },
            MemoryItem {
                name: "mempool transactions".into(),
                bytes: stack.query.mempool_size() as u64,
            },
        ]
    }

    async fn stop(&self) {
        if let Ok(stack) = self.stack() {
            stack.request_shutdown();
        }
    }
}

static SIGNALS: std::sync::OnceLock<watch::Receiver<u32>> = std::sync::OnceLock::new();

/// SIGINT and SIGTERM received since this first ran (inside the runtime). Counting, rather
/// than waiting for the next one, loses no signal that arrives between two waits (e.g. while
/// the stack moves from the initial sync to serving); the handlers are installed before this
/// returns, so from then on a signal never takes the default action (ending the process).
pub fn listen_for_signals() -> watch::Receiver<u32> {
    SIGNALS
        .get_or_init(|| {
            let (count, receiver) = watch::channel(0u32);
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                if let (Ok(mut term), Ok(mut int)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) {
                    tokio::spawn(async move {
                        loop {
                            tokio::select! {
                                _ = term.recv() => {}
                                _ = int.recv() => {}
                            }
                            count.send_modify(|n| *n += 1);
                        }
                    });
                    return receiver;
                }
            }
            tokio::spawn(async move {
                while tokio::signal::ctrl_c().await.is_ok() {
                    count.send_modify(|n| *n += 1);
                }
            });
            receiver
        })
        .clone()
}

/// Resolves once `n` signals have arrived in all (see [`listen_for_signals`]).
pub async fn signal_number(n: u32) {
    let mut count = listen_for_signals();
    if count.wait_for(|&seen| seen >= n).await.is_err() {
        // No handler could be installed: never resolves, as no signal can be seen.
        std::future::pending::<()>().await;
    }
}

/// Runs `stack` until a signal or an admin `stop`, then shuts down; a second signal exits at
/// once.
pub async fn run_until_stopped(stack: Arc<Stack>) -> anyhow::Result<()> {
    let mut requested = stack.shutdown_requested();
    let outcome = tokio::select! {
        _ = signal_number(1) => { info!("signal received: shutting down (again to force)"); Ok(()) }
        _ = requested.wait_for(|v| *v) => { info!("stop requested"); Ok(()) }
        result = stack.wait() => result,
    };
    tokio::select! {
        _ = stack.shutdown() => {}
        _ = signal_number(2) => {
            warn!("second signal: exiting without waiting for the flush");
            std::process::exit(1);
        }
    }
    outcome
}

/// `anode` without a subcommand: serve wallets from a real node.
pub async fn serve(config: Config, log: Option<LogControl>) -> anyhow::Result<()> {
    let coin = anode_coins::lookup(&config.coin, &config.network)
        .with_context(|| format!("coin {} network {}", config.coin, config.network))?;
    if config.daemon_urls.is_empty() {
        bail!("no node to index: set DAEMON_URL (or daemon_url in the config file); `anode demo` runs without one");
    }
    let db_dir = config
        .db_directory
        .clone()
        .context("set DB_DIRECTORY (or db_directory) to where the index should live")?;
    let daemon = crate::daemon::connect_checked(&config, coin.as_ref()).await?;
    let progress_bar = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let started = Stack::start(StackOptions {
        config,
        coin,
        daemon,
        db_dir,
        log,
        progress_bar,
    })
    .await;
    match started {
        Ok(stack) => run_until_stopped(stack).await,
        Err(e) if e.is::<StoppedBeforeSync>() => {
            info!("{e}");
            Ok(())
        }
        Err(e) => Err(e),
    }
}
