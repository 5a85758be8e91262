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
use crate::server::{Server, ServerConfig, ServerHandle};
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

/// Checks that the node serves the configured network (its genesis block).
pub async fn check_node(daemon: &dyn DaemonApi, coin: &dyn Coin) -> anyhow::Result<()> {
    let genesis = daemon
        .block_hashes(0..1)
        .await
        .context("asking the node for its genesis block")?;
    let expected = coin.params().genesis_hash;
    if genesis.first() != Some(&expected) {
        bail!(
            "the node's genesis block is {}, but {} {} starts with {}: point DAEMON_URL at a \
             node of that network, or set COIN/NET to the node's",
            genesis.first().map(hash_to_hex).unwrap_or_default(),
            coin.params().coin,
            coin.params().net,
            hash_to_hex(&expected)
        );
    }
    Ok(())
}

impl Stack {
    /// Opens the index, starts following the node, waits for the initial sync, then opens the
    /// listeners, the admin RPC and the metrics endpoint.
    pub async fn start(options: StackOptions) -> anyhow::Result<Arc<Stack>> {
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
            tokio::task::spawn_blocking(move || IndexWriter::open(store, coin, options)).await??
        };
        info!(
            engine,
            path = %db_dir.display(),
            height = ?writer.tip().map(|t| t.0),
            "index opened"
        );
        let indexer = Arc::new(Indexer::new(
            writer,
            Arc::clone(&daemon),
            Arc::clone(&coin),
            reorg_limit,
            SyncOptions {
                tip_poll: Duration::from_millis(config.poll_interval_blocks_ms.max(10)),
                mempool_poll: Duration::from_millis(config.poll_interval_mempool_ms.max(10)),
                progress_bar,
                fetcher: FetcherOptions {
                    budget_bytes: (memory.fetch_mb as usize) << 20,
                    ..FetcherOptions::default()
                },
            },
        ));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut synced = indexer.synced();
        let index_task = tokio::spawn(Arc::clone(&indexer).run(shutdown_rx.clone()));
        let metrics = Arc::new(Metrics::new());
        let metrics_server = crate::metrics::serve_configured(&config, Arc::clone(&metrics))
            .await
            .context("starting the metrics endpoint")?;

        // Like ElectrumX, clients are served once the index has caught up with the node.
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
                    match finished {
                        Ok(Ok(())) => bail!("the indexer stopped before catching up"),
                        Ok(Err(e)) => return Err(e).context("indexing"),
                        Err(e) => bail!("the indexer task failed: {e}"),
                    }
                }
            }
        }

        let query: Arc<dyn ChainQuery> = Arc::new(indexer.query());
        let server = Server::start(
            Arc::new(ServerConfig::from_config(&config)),
            Arc::clone(&query),
            Arc::clone(&daemon),
            Arc::clone(&coin),
        )
        .await
        .context("starting the listeners")?;
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
        server.attach_peer_manager(Arc::clone(&peers));
        server.attach_metrics(Arc::clone(&metrics));
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

async fn update_gauges(stack: std::sync::Weak<Stack>, mut shutdown: watch::Receiver<bool>) {
    loop {
        {
            let Some(stack) = stack.upgrade() else { return };
            let tip = stack.query.tip();
            stack.metrics.set_tip(tip.height);
            stack.metrics.set_mempool_size(stack.query.mempool_size());
            if let Ok(count) = stack.daemon.block_count().await {
                stack.metrics.set_daemon_height(count);
            }
            let sessions: Vec<_> = stack
                .server
                .lock()
                .as_ref()
                .map(|s| s.sessions())
                .unwrap_or_default();
            let scripts: u64 = sessions.iter().map(|s| s.script_subs as u64).sum();
            let outpoints: u64 = sessions.iter().map(|s| s.outpoint_subs as u64).sum();
            stack.metrics.set_subscriptions(scripts, outpoints);
            let indexer = Arc::clone(&stack.indexer);
            if let Ok(Ok(bytes)) =
                tokio::task::spawn_blocking(move || indexer.store_stats().map(|s| s.disk_bytes))
                    .await
            {
                stack.metrics.set_db_size(bytes);
            }
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
        // Per-session request logging is not kept by this server; the run-time log filter
        // (`log --level`) covers the need. Report the unchanged state honestly.
        let _ = change;
        LoggingState {
            toggled: Vec::new(),
            log_new: false,
        }
    }

    async fn set_daemon_url(&self, urls: Option<&str>) -> Result<String, AdminError> {
        match urls {
            None => Ok(self
                .config
                .daemon_urls
                .iter()
                .map(|u| crate::daemon::hide_credentials(u))
                .collect::<Vec<_>>()
                .join(",")),
            Some(_) => Err(AdminError::Unavailable(
                "changing the node at run time is not supported: set DAEMON_URL and restart".into(),
            )),
        }
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

/// Waits for SIGINT or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `stack` until a signal or an admin `stop`, then shuts down; a second signal exits at
/// once.
pub async fn run_until_stopped(stack: Arc<Stack>) -> anyhow::Result<()> {
    let mut requested = stack.shutdown_requested();
    let outcome = tokio::select! {
        _ = signal() => { info!("signal received: shutting down (again to force)"); Ok(()) }
        _ = requested.wait_for(|v| *v) => { info!("stop requested"); Ok(()) }
        result = stack.wait() => result,
    };
    tokio::select! {
        _ = stack.shutdown() => {}
        _ = signal() => {
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
    let daemon = crate::daemon::connect(&config, coin.as_ref())?;
    check_node(daemon.as_ref(), coin.as_ref()).await?;
    let progress_bar = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let stack = Stack::start(StackOptions {
        config,
        coin,
        daemon,
        db_dir,
        log,
        progress_bar,
    })
    .await?;
    run_until_stopped(stack).await
}
