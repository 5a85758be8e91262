//! The Electrum protocol server (docs/protocol.md): listeners for TCP, TLS, WebSocket and
//! secure WebSocket; newline-delimited (or one-per-frame) JSON-RPC with batches; version
//! negotiation 1.4–1.7 choosing the method table; every method of the protocol over
//! [`ChainQuery`] and [`DaemonApi`]; subscriptions with notifications fanned out from the
//! index's [`crate::query::ChainEvent`]s; ElectrumX's cost accounting and limits.
//!
//! One session implementation serves every transport: a transport only turns bytes into
//! frames and back ([`transport`]). The server never reads the store or the node except
//! through the two traits, and never names a concrete coin.

mod cost;
#[cfg(test)]
mod flood_tests;
mod handlers;
mod json;
mod methods;
mod notify;
mod params;
mod session;
mod tls;
mod transport;
mod version;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{Config, Limits, Service, ServiceKind};
use crate::daemon::DaemonApi;
use crate::peers::PeerManager;
use crate::query::ChainQuery;

pub use json::{python_float, RpcError};
pub use tls::TlsError;
pub use version::ProtocolVersion;

/// The client methods that exist in protocol version `version`, as the server dispatches them
/// (docs/protocol.md, Methods by version, which `tests/docs_check.rs` holds to this).
pub fn methods_of_version(version: &ProtocolVersion) -> Vec<&'static str> {
    methods::methods_of_version(version)
}

/// Why the server could not start or reload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A listener could not bind.
    #[error("cannot listen on {service} ({addr}): {source}")]
    Bind {
        /// the service as configured
        service: String,
        /// the address tried
        addr: String,
        /// why
        source: std::io::Error,
    },
    /// The certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The server's settings, derived from [`Config`] or built directly by tests.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// listeners (`rpc` entries are the admin layer's and are skipped here)
    pub services: Vec<Service>,
    /// services advertised in `server.features` and `server.peers.subscribe`
    pub report_services: Vec<Service>,
    /// session limits and the cost model
    pub limits: Limits,
    /// PEM certificate chain for ssl/wss
    pub ssl_certfile: Option<PathBuf>,
    /// PEM private key for ssl/wss
    pub ssl_keyfile: Option<PathBuf>,
    /// reload the certificate on SIGHUP (Unix)
    pub reload_tls_on_sighup: bool,
    /// poll the certificate files for changes this often (`None`: never)
    pub tls_watch_interval: Option<Duration>,
    /// file whose text `server.banner` returns
    pub banner_file: Option<PathBuf>,
    /// `server.donation_address`
    pub donation_address: String,
    /// first element of the `server.version` result and `server_version` of features
    pub server_version: String,
    /// a session whose socket accepts nothing for this long is aborted
    pub slow_reader_timeout: Duration,
    /// most bytes queued for one session before it is disconnected as a slow reader
    pub max_queued_bytes: usize,
    /// unsent bytes of all sessions together past which a session whose socket takes nothing
    /// for a second is disconnected as a slow reader
    pub max_unsent_bytes: usize,
    /// a notification round for one session must finish within this
    pub notification_timeout: Duration,
    /// expected interval of mempool-only rounds, for the 1.7 cover traffic probability
    pub mempool_refresh: Duration,
    /// send 1.7 cover pings (docs/protocol.md, Cover traffic)
    pub cover_traffic: bool,
    /// pad TCP and TLS output into power-of-two chunks, delaying small replies up to 1 s
    /// (docs/protocol.md, Padding)
    pub pad_tcp: bool,
    /// largest incoming WebSocket message
    pub ws_max_message: usize,
    /// how long a TLS or WebSocket handshake may take
    pub handshake_timeout: Duration,
}

impl Default for ServerConfig {
    /// ElectrumX's defaults, listening nowhere; tests add `tcp://127.0.0.1:0` services.
    fn default() -> Self {
        ServerConfig {
            services: Vec::new(),
            report_services: Vec::new(),
            limits: Limits {
                max_sessions: 1000,
                max_send: 8_100_000,
                max_recv: 1_000_000,
                max_subs: 250_000,
                max_session_subs: 50_000,
                session_timeout_secs: 600,
                request_timeout_secs: 30,
                cost_soft_limit: 1000.0,
                cost_hard_limit: 10_000.0,
                request_sleep_ms: 2500,
                initial_concurrent: 10,
                bandwidth_unit_cost: 5000.0,
            },
            ssl_certfile: None,
            ssl_keyfile: None,
            reload_tls_on_sighup: false,
            tls_watch_interval: None,
            banner_file: None,
            donation_address: String::new(),
            server_version: format!("anode {}", env!("CARGO_PKG_VERSION")),
            slow_reader_timeout: Duration::from_secs(20),
            max_queued_bytes: 32 * 1024 * 1024,
            max_unsent_bytes: 256 * 1024 * 1024,
            notification_timeout: Duration::from_secs(30),
            mempool_refresh: Duration::from_secs(5),
            cover_traffic: true,
            pad_tcp: false,
            ws_max_message: 1 << 20,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl ServerConfig {
    /// The server's part of the operator's configuration.
    pub fn from_config(config: &Config) -> Self {
        let mut limits = config.limits.clone();
        // ElectrumX raises small send limits rather than refusing them.
        limits.max_send = limits.max_send.max(350_000);
        ServerConfig {
            services: config.services.clone(),
            report_services: config.report_services.clone(),
            // MAX_SEND is the operator's number: near usize::MAX it must not wrap to a tiny queue.
            max_queued_bytes: limits.max_send.saturating_mul(4).max(32 * 1024 * 1024),
            max_unsent_bytes: limits.max_send.saturating_mul(4).max(256 * 1024 * 1024),
            limits,
            ssl_certfile: config.ssl_certfile.clone(),
            ssl_keyfile: config.ssl_keyfile.clone(),
            reload_tls_on_sighup: true,
            // ElectrumX pads every TCP/TLS connection; so do we, for parity.
            pad_tcp: config.pad_tcp,
            tls_watch_interval: Some(Duration::from_secs(60)),
            banner_file: config.banner_file.clone(),
            donation_address: config.donation_address.clone(),
            mempool_refresh: Duration::from_millis(config.poll_interval_mempool_ms.max(1)),
            ..ServerConfig::default()
        }
    }

    /// The confirmed-history cap, `floor((MAX_SEND - 100) / 99)` (docs/protocol.md, History
    /// size).
    pub fn history_limit(&self) -> usize {
        self.limits.max_send.saturating_sub(100) / 99
    }
}

/// One client session as the admin layer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    /// session id
    pub id: u64,
    /// the client's address
    pub peer: SocketAddr,
    /// the listener kind
    pub kind: ServiceKind,
    /// client name from `server.version` (first 100 characters)
    pub client_name: String,
    /// negotiated version, `None` before `server.version`
    pub protocol_version: Option<String>,
    /// script and outpoint subscriptions (headers count as one)
    pub subscriptions: usize,
    /// script subscriptions
    pub script_subs: usize,
    /// outpoint subscriptions
    pub outpoint_subs: usize,
    /// the cost group (source subnet), `None` for private addresses
    pub group: Option<String>,
    /// transactions broadcast successfully
    pub txs_sent: u64,
    /// current decayed cost
    pub cost: f64,
    /// bytes received
    pub bytes_in: u64,
    /// bytes sent
    pub bytes_out: u64,
    /// requests received
    pub requests: u64,
    /// errors counted (docs/protocol.md, Error accounting)
    pub errors: u64,
}

/// State shared by listeners, sessions and the notifier.
pub(crate) struct Shared {
    pub config: Arc<ServerConfig>,
    pub query: Arc<dyn ChainQuery>,
    pub daemon: Arc<dyn DaemonApi>,
    pub coin: Arc<dyn anode_coins::Coin>,
    pub registry: notify::Registry,
    pub groups: cost::Groups,
    /// the known servers, for `server.peers.subscribe` and `server.add_peer`
    pub peers: Arc<PeerManager>,
    /// where sessions, requests and bytes are counted, if anywhere
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    pub caches: methods::Caches,
    pub request_counts: parking_lot::Mutex<HashMap<String, u64>>,
    pub tls: Option<tls::TlsState>,
    pub next_id: AtomicU64,
    /// bytes handed to session writers and not yet written, over all sessions
    pub unsent: Arc<std::sync::atomic::AtomicUsize>,
    /// requests being answered at once over all sessions: each holds its answer in memory
    /// until it is queued, and a 100,000-entry history is tens of MB before it is serialized,
    /// so a thousand at once must wait here rather than exhaust memory
    pub work_slots: Arc<tokio::sync::Semaphore>,
    /// where requests whose reads turn heavy continue, a few at a time, having given their
    /// work slot back to the light ones (query::gate)
    pub heavy_lane: Arc<crate::query::gate::HeavyLane>,
    /// whether sessions opened from now on have their requests logged (admin `log new`)
    pub log_new_sessions: std::sync::atomic::AtomicBool,
    pub session_count: watch::Sender<usize>,
    pub shutdown: watch::Sender<bool>,
}

/// Requests answered at once over all sessions: enough to keep every core and the disk busy,
/// few enough that their answers fit in memory together.
fn work_slot_count() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores * 4).clamp(8, 64)
}

/// What the server serves from: the index, the node, the coin, the peer list and the metrics
/// registry. All are built before the listeners open, so the first session sees them all.
pub struct ServerParts {
    /// the index's answers
    pub query: Arc<dyn ChainQuery>,
    /// the node, for broadcast, fees and raw transactions
    pub daemon: Arc<dyn DaemonApi>,
    /// the coin's rules (script hashes, header sizes)
    pub coin: Arc<dyn anode_coins::Coin>,
    /// peer discovery; its background task is the caller's to run
    pub peers: Arc<PeerManager>,
    /// Prometheus metrics, if the operator asked for them
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// The Electrum server.
pub struct Server;

impl Server {
    /// Binds every configured service and starts serving. Returns once all listeners are
    /// bound, so [`ServerHandle::local_addrs`] is final.
    pub async fn start(
        config: Arc<ServerConfig>,
        parts: ServerParts,
    ) -> Result<ServerHandle, ServerError> {
        let ServerParts {
            query,
            daemon,
            coin,
            peers,
            metrics,
        } = parts;
        let needs_tls = config.services.iter().any(|s| s.kind.is_tls());
        let tls = if needs_tls {
            Some(tls::TlsState::load(
                config.ssl_certfile.clone(),
                config.ssl_keyfile.clone(),
            )?)
        } else {
            None
        };
        let shared = Arc::new(Shared {
            registry: notify::Registry::default(),
            groups: cost::Groups::default(),
            peers,
            metrics,
            caches: methods::Caches::default(),
            request_counts: Default::default(),
            tls,
            next_id: AtomicU64::new(1),
            unsent: Default::default(),
            log_new_sessions: std::sync::atomic::AtomicBool::new(false),
            work_slots: Arc::new(tokio::sync::Semaphore::new(work_slot_count())),
            heavy_lane: crate::query::gate::HeavyLane::new(crate::query::gate::heavy_lane_width()),
            session_count: watch::channel(0).0,
            shutdown: watch::channel(false).0,
            config: Arc::clone(&config),
            query,
            daemon,
            coin,
        });
        let mut tasks = JoinSet::new();
        let mut addrs = Vec::new();
        for service in &config.services {
            if service.kind == ServiceKind::Rpc {
                continue;
            }
            let bind = service.bind_addr();
            let listener = tokio::net::TcpListener::bind(&bind)
                .await
                .map_err(|source| ServerError::Bind {
                    service: service.to_string(),
                    addr: bind.clone(),
                    source,
                })?;
            let local = listener.local_addr().map_err(|source| ServerError::Bind {
                service: service.to_string(),
                addr: bind.clone(),
                source,
            })?;
            tracing::info!(service = %service, addr = %local, "listening");
            addrs.push((service.kind, local));
            tasks.spawn(transport::accept_loop(
                Arc::clone(&shared),
                listener,
                service.kind,
            ));
        }
        tasks.spawn(notify::run_notifier(Arc::clone(&shared)));
        if shared.tls.is_some() {
            tasks.spawn(tls::watch(Arc::clone(&shared)));
        }
        Ok(ServerHandle {
            shared,
            addrs,
            tasks,
        })
    }
}

/// Every method name a client can call in some protocol version.
#[cfg(feature = "fuzzing")]
pub(crate) fn method_names() -> &'static [&'static str] {
    methods::METRIC_METHODS
}

/// A running server.
pub struct ServerHandle {
    shared: Arc<Shared>,
    addrs: Vec<(ServiceKind, SocketAddr)>,
    tasks: JoinSet<()>,
}

impl ServerHandle {
    /// Serves one newline-delimited session over an established stream exactly as a TCP
    /// client from `peer` is served, without a listener; returns when the session ends.
    #[cfg(feature = "fuzzing")]
    pub(crate) async fn serve_lines<S>(&self, stream: S, peer: SocketAddr)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        transport::serve_lines(Arc::clone(&self.shared), peer, ServiceKind::Tcp, stream).await;
    }

    /// The bound address of every listener, in configuration order.
    pub fn local_addrs(&self) -> &[(ServiceKind, SocketAddr)] {
        &self.addrs
    }

    /// The bound address of the first listener of `kind`.
    pub fn local_addr(&self, kind: ServiceKind) -> Option<SocketAddr> {
        self.addrs.iter().find(|(k, _)| *k == kind).map(|(_, a)| *a)
    }

    /// Every open session.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut list: Vec<SessionInfo> = self
            .shared
            .registry
            .sessions()
            .iter()
            .map(|s| s.info(&self.shared))
            .collect();
        list.sort_by_key(|s| s.id);
        list
    }

    /// Changes which sessions have their requests logged (admin `log`).
    pub fn set_session_logging(
        &self,
        change: crate::admin::LoggingChange,
    ) -> crate::admin::LoggingState {
        use crate::admin::LoggingChange;
        use std::sync::atomic::Ordering::Relaxed;
        let shared = &self.shared;
        let mut toggled = Vec::new();
        match change {
            LoggingChange::Toggle(ids) => {
                for id in ids {
                    if let Some(session) = shared.registry.session(id) {
                        let on = !session.logged.fetch_xor(true, Relaxed);
                        toggled.push((id, on));
                    }
                }
            }
            LoggingChange::All | LoggingChange::None => {
                let on = matches!(change, LoggingChange::All);
                shared.log_new_sessions.store(on, Relaxed);
                for session in shared.registry.sessions() {
                    session.logged.store(on, Relaxed);
                    toggled.push((session.id, on));
                }
                toggled.sort_unstable();
            }
            LoggingChange::ToggleNew => {
                shared.log_new_sessions.fetch_xor(true, Relaxed);
            }
        }
        crate::admin::LoggingState {
            toggled,
            log_new: shared.log_new_sessions.load(Relaxed),
        }
    }

    /// Closes session `id`; false if there is none.
    pub fn disconnect(&self, id: u64) -> bool {
        match self.shared.registry.session(id) {
            Some(s) => {
                s.abort();
                true
            }
            None => false,
        }
    }

    /// Re-reads the certificate and key; new TLS connections use them, open ones keep theirs.
    pub fn reload_tls(&self) -> Result<(), ServerError> {
        match &self.shared.tls {
            Some(tls) => Ok(tls.reload()?),
            None => Ok(()),
        }
    }

    /// Requests served so far per method (known methods only), for metrics and `getinfo`.
    pub fn request_counts(&self) -> HashMap<String, u64> {
        self.shared.request_counts.lock().clone()
    }

    /// Counts of sessions per listener kind, for metrics.
    pub fn session_counts(&self) -> HashMap<ServiceKind, usize> {
        let mut counts = HashMap::new();
        for s in self.shared.registry.sessions() {
            *counts.entry(s.kind).or_default() += 1;
        }
        counts
    }

    /// Stops accepting, closes every session and waits (up to 5 s) for them to finish.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.send_replace(true);
        for s in self.shared.registry.sessions() {
            s.abort();
        }
        let mut count = self.shared.session_count.subscribe();
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            while *count.borrow_and_update() > 0 {
                if count.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("sessions still open after 5 s at shutdown");
        }
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    /// Found by fuzz/ `config`: a MAX_SEND near `usize::MAX` overflowed the queue bound.
    #[test]
    fn a_huge_max_send_does_not_overflow_the_queue_bound() {
        let raw = RawConfig::defaults()
            .with_env(|name| (name == "MAX_SEND").then(|| usize::MAX.to_string()));
        let config = Config::from_raw(&raw).expect("a valid configuration");
        let server = ServerConfig::from_config(&config);
        assert_eq!(server.max_queued_bytes, usize::MAX);
        assert_eq!(server.max_unsent_bytes, usize::MAX);
    }

    #[test]
    fn from_config_takes_the_operators_settings() {
        let raw = RawConfig::defaults().with_flags([
            (
                "services",
                "tcp://:50001,ws://[::1]:50003,rpc://".to_string(),
            ),
            ("max_send", "8100000".to_string()),
            ("donation_address", "bc1qdonate".to_string()),
            ("cost_soft_limit", "500".to_string()),
        ]);
        let config = Config::from_raw(&raw).expect("valid config");
        let server = ServerConfig::from_config(&config);
        assert_eq!(server.services.len(), 3);
        assert_eq!(server.limits.cost_soft_limit, 500.0);
        assert_eq!(server.donation_address, "bc1qdonate");
        // floor((8,100,000 - 100) / 99) = 81,817 (docs/protocol.md, History size).
        assert_eq!(server.history_limit(), 81_817);
        assert!(server.pad_tcp && server.reload_tls_on_sighup);
        assert!(!ServerConfig::default().pad_tcp);
    }
}
