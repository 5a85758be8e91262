//! Peer discovery (docs/peers.md; docs/protocol.md, Peer discovery): the other Electrum servers
//! of our network that we know, have checked, and tell clients about in
//! `server.peers.subscribe`.
//!
//! One [`PeerManager`] per server. Peers come from the coin's default list and the `peers`
//! option, from `server.add_peer` calls and from other peers' `server.peers.subscribe`
//! answers. A background task ([`PeerManager::run`]) checks due peers a few at a time with a
//! small Electrum client (TCP or TLS, onion peers through the Tor SOCKS5 proxy): same genesis,
//! same header a little below the lower tip, lists itself. Peers that pass are "good" for three
//! hours and are re-checked before that; peers that fail are retried with exponential backoff
//! and forgotten after repeated failures; peers on another chain are marked bad.
//!
//! This module reads our chain only through [`LocalChain`] and knows nothing of sessions; the
//! protocol server calls [`PeerManager::peers_subscribe_result`] and
//! [`PeerManager::add_peer_request`], the admin layer [`PeerManager::peers`] and
//! [`PeerManager::add_peer_real_name`].

mod client;
mod peer;
mod verify;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use parking_lot::Mutex;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;
use tracing::{debug, info, warn};

use crate::admin::{AdminError, PeerInfo, PeerStatus};
use crate::config::{Config, PeerDiscovery, Service, ServiceKind};
use crate::query::ChainQuery;
use anode_coins::NetworkParams;

use peer::{
    add_peer_bucket, address_key, is_onion, is_public, subnet_group, Advert, Peer, PeerSource,
    Stamp,
};

/// Why a peer check failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// TCP connect, read or write failed.
    #[error("connection: {0}")]
    Connect(#[source] std::io::Error),
    /// The TLS handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The SOCKS5 proxy refused or misbehaved.
    #[error("SOCKS5 proxy: {0}")]
    Socks(String),
    /// A step took too long.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// The peer answered something that is not the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The peer answered a request with an error.
    #[error("{method} failed: {message}")]
    Rpc {
        /// the request
        method: &'static str,
        /// the peer's error message
        message: String,
    },
    /// The peer serves another network.
    #[error("wrong genesis hash {0}")]
    WrongGenesis(String),
    /// The peer's chain differs from ours below both tips.
    #[error("header at height {height} differs from ours")]
    HeaderMismatch {
        /// the compared height
        height: u32,
    },
    /// The peer's features do not list the host we reached it by.
    #[error("features do not list the host")]
    NotListed,
    /// The tips are too far apart to compare (one side is syncing).
    #[error("tip {theirs} too far from ours ({ours})")]
    TipTooFar {
        /// our tip
        ours: u32,
        /// theirs
        theirs: u32,
    },
    /// Another good peer already uses this address (docs/peers.md, Checking a peer).
    #[error("another good peer already uses {0}")]
    DuplicateAddress(String),
    /// Our own chain cannot be read yet.
    #[error("our chain is not available")]
    LocalChain,
    /// An onion peer (or any, with FORCE_PROXY) and no Tor proxy configured.
    #[error("no Tor proxy configured")]
    NoProxy,
    /// Neither a TCP nor an SSL port is known.
    #[error("no TCP or SSL port")]
    NoPorts,
}

impl PeerError {
    /// Whether the failure shows the peer is unusable whatever we retry: another network, a
    /// different chain, or lying about its own host.
    pub fn is_bad(&self) -> bool {
        matches!(
            self,
            PeerError::WrongGenesis(_) | PeerError::HeaderMismatch { .. } | PeerError::NotListed
        )
    }
}

/// Our chain, as far as peer checks need it.
#[async_trait]
pub trait LocalChain: Send + Sync {
    /// Height of our best indexed block, `None` before there is one.
    async fn tip_height(&self) -> Option<u32>;
    /// Our raw header at `height`, `None` if we do not have it.
    async fn header(&self, height: u32) -> Option<Vec<u8>>;
}

/// New peers taken from one `server.peers.subscribe` answer at most.
const LEARN_PER_ANSWER: usize = 2;

/// The protocol server's query interface is a [`LocalChain`].
pub struct QueryChain(pub Arc<dyn ChainQuery>);

#[async_trait]
impl LocalChain for QueryChain {
    async fn tip_height(&self) -> Option<u32> {
        Some(self.0.tip().height)
    }

    async fn header(&self, height: u32) -> Option<Vec<u8>> {
        self.0.header(height).await.ok().flatten()
    }
}

/// Everything the manager is configured with. [`PeerSettings::from_config`] gives ElectrumX's
/// behaviour; tests shorten the times.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// on, off, or self (serve only our own identities); off on regtest
    pub mode: PeerDiscovery,
    /// call `server.add_peer` on peers that do not list us (PEER_ANNOUNCE)
    pub announce: bool,
    /// Tor SOCKS5 proxy (TOR_PROXY_HOST/PORT)
    pub tor_proxy: Option<(String, u16)>,
    /// reach every peer through the proxy (FORCE_PROXY)
    pub force_proxy: bool,
    /// the coin's default (TCP, SSL) ports, for bare `t`/`s` in real names
    pub default_ports: (u16, u16),
    /// our genesis hash, display hex
    pub genesis_hash: String,
    /// real names of the coin's peers
    pub coin_peers: Vec<String>,
    /// real names from the `peers` option
    pub configured_peers: Vec<String>,
    /// our `server.features` (docs/protocol.md, `server.features`), sent with `server.add_peer`;
    /// its hosts are our identities
    pub our_features: Value,
    /// name sent in `server.version`
    pub client_name: String,
    /// serve peers with private addresses too (test networks); ElectrumX never does
    pub allow_private: bool,
    /// how long a check keeps a peer good (3 hours; docs/protocol.md, `server.peers.subscribe`)
    pub good_window: Duration,
    /// how long after a good check a peer is checked again; below `good_window` so that
    /// reachable peers stay good
    pub recheck_after: Duration,
    /// the wait after a first failure; doubled per further failure
    pub retry_base: Duration,
    /// consecutive failures after which a peer that was never good is forgotten
    pub max_failures: u32,
    /// consecutive failures after which a peer that was good once is forgotten
    pub max_failures_once_good: u32,
    /// how long a bad peer is remembered (and so not checked again when peers mention it)
    pub forget_bad_after: Duration,
    /// peers kept at most; new ones are ignored beyond this
    pub max_peers: usize,
    /// checks running at once
    pub max_concurrent: usize,
    /// how often the background task looks for due peers
    pub wakeup: Duration,
    /// deadline of the connection and of each request
    pub timeout: Duration,
    /// `server.add_peer` rate-limit window per bucket (docs/protocol.md, `server.add_peer`)
    pub add_peer_interval: Duration,
    /// longest wait between two onion `server.add_peer` admissions (docs/peers.md)
    pub onion_window: Duration,
}

impl PeerSettings {
    /// ElectrumX's behaviour on a network with this genesis hash (display hex) and these
    /// default (TCP, SSL) ports: discovery on, no proxy, no configured peers.
    pub fn electrumx_defaults(
        genesis_hash: String,
        default_ports: (u16, u16),
        our_features: Value,
    ) -> Self {
        PeerSettings {
            mode: PeerDiscovery::On,
            announce: true,
            tor_proxy: None,
            force_proxy: false,
            default_ports,
            genesis_hash,
            coin_peers: Vec::new(),
            configured_peers: Vec::new(),
            our_features,
            client_name: "ElectrumX 2.0.0".into(),
            allow_private: false,
            good_window: Duration::from_secs(3 * 3600),
            // Just before a good peer would turn stale, as ElectrumX does.
            recheck_after: Duration::from_secs(3 * 3600 - 600),
            retry_base: Duration::from_secs(600),
            max_failures: 3,
            max_failures_once_good: 10,
            forget_bad_after: Duration::from_secs(24 * 3600),
            max_peers: 1000,
            max_concurrent: 8,
            wakeup: Duration::from_secs(300),
            timeout: Duration::from_secs(30),
            add_peer_interval: Duration::from_secs(600),
            onion_window: Duration::from_secs(20 * 60),
        }
    }

    /// Discovery off: no peer is checked or served, and `server.add_peer` is refused (tools,
    /// tests and servers that keep to themselves).
    pub fn off(genesis_hash: String) -> Self {
        let mut settings = PeerSettings::electrumx_defaults(genesis_hash, (0, 0), Value::Null);
        settings.mode = PeerDiscovery::Off;
        settings
    }

    /// ElectrumX's behaviour for `config` on `params`. `our_features` is this server's
    /// `server.features` answer (protocol 1.7 form); build it with [`our_features`].
    pub fn from_config(config: &Config, params: &NetworkParams, our_features: Value) -> Self {
        let mut settings = PeerSettings::electrumx_defaults(
            anode_coins::hash_to_hex(&params.genesis_hash),
            (params.electrum_ports.tcp, params.electrum_ports.ssl),
            our_features,
        );
        // Regtest chains are private to one machine: nothing to discover, nobody to tell.
        settings.mode = if params.net.eq_ignore_ascii_case("regtest") {
            PeerDiscovery::Off
        } else {
            config.peer_discovery
        };
        settings.announce = config.peer_announce;
        settings.tor_proxy = config.tor_proxy.clone();
        settings.force_proxy = config.force_proxy;
        settings.coin_peers = params.peers.clone();
        settings.configured_peers = config.peers.clone();
        settings
    }
}

/// Our `server.features` answer (docs/protocol.md, `server.features`; protocol 1.7 form) for the
/// advertised services.
pub fn our_features(report_services: &[Service], genesis_hash: &str) -> Value {
    let mut hosts = serde_json::Map::new();
    let mut urls = Vec::new();
    for s in report_services {
        let key = match s.kind {
            ServiceKind::Tcp => "tcp_port",
            ServiceKind::Ssl => "ssl_port",
            ServiceKind::Ws => "ws_port",
            ServiceKind::Wss => "wss_port",
            ServiceKind::Rpc => continue,
        };
        let entry = hosts
            .entry(s.host.to_ascii_lowercase())
            .or_insert_with(|| json!({}));
        if let Some(map) = entry.as_object_mut() {
            map.insert(key.into(), json!(s.port));
        }
        urls.push(if s.host.contains(':') {
            format!("{}://[{}]:{}", s.kind, s.host, s.port)
        } else {
            s.to_string()
        });
    }
    json!({
        "hosts": hosts,
        "pruning": null,
        "server_version": "ElectrumX 2.0.0",
        "protocol_min": "1.4",
        "protocol_max": "1.7.0",
        "genesis_hash": genesis_hash,
        "services": urls,
    })
}

#[derive(Default)]
struct State {
    /// by lower-case host
    peers: HashMap<String, Peer>,
    /// being checked now
    in_flight: HashSet<String>,
    /// last `server.add_peer` per bucket
    add_peer_calls: HashMap<String, Instant>,
    /// when the next onion `server.add_peer` may be admitted
    next_onion_admission: Option<Instant>,
}

/// The peer table and its checker. Cheap to share: hold it in an `Arc`.
pub struct PeerManager {
    settings: PeerSettings,
    chain: Arc<dyn LocalChain>,
    tls: TlsConnector,
    state: Mutex<State>,
    /// woken when a new candidate arrives, so it is checked without waiting for the timer
    wake: Notify,
}

impl PeerManager {
    /// A manager seeded with the coin's and the configured peers, and with our own identities
    /// (the hosts of `our_features`).
    pub fn new(settings: PeerSettings, chain: Arc<dyn LocalChain>) -> Result<Arc<Self>, PeerError> {
        let manager = PeerManager {
            tls: client::tls_connector()?,
            settings,
            chain,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        };
        {
            let s = &manager.settings;
            let mut state = manager.state.lock();
            let seeds = s
                .coin_peers
                .iter()
                .map(|n| (n, PeerSource::Coins))
                .chain(s.configured_peers.iter().map(|n| (n, PeerSource::Config)));
            for (name, source) in seeds {
                match Advert::from_real_name(name, s.default_ports) {
                    Some(advert) => {
                        state
                            .peers
                            .entry(advert.host.clone())
                            .or_insert_with(|| Peer::new(advert, source));
                    }
                    None => warn!(peer = %name, "ignoring malformed peer real name"),
                }
            }
            if let Some(hosts) = s.our_features.get("hosts").and_then(Value::as_object) {
                for host in hosts.keys() {
                    if let Some(advert) = Advert::from_features(&s.our_features, host) {
                        // Our identity replaces any seed entry for the same host.
                        state
                            .peers
                            .insert(advert.host.clone(), Peer::new(advert, PeerSource::Myself));
                    }
                }
            }
        }
        Ok(Arc::new(manager))
    }

    /// The settings in force.
    pub fn settings(&self) -> &PeerSettings {
        &self.settings
    }

    /// The background task: checks due peers every `wakeup` and whenever a candidate arrives,
    /// until `shutdown` completes. Returns at once unless discovery is `on`. Spawn it:
    /// `tokio::spawn(manager.clone().run(shutdown))`.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        if self.settings.mode != PeerDiscovery::On {
            info!(mode = ?self.settings.mode, "peer discovery is not on; not checking peers");
            return;
        }
        info!(
            known = self.state.lock().peers.len(),
            "peer discovery started"
        );
        tokio::pin!(shutdown);
        loop {
            // A round can take minutes against slow peers; shutdown must not wait for it.
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.check_due_peers() => {}
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(self.settings.wakeup) => {}
                _ = self.wake.notified() => {}
            }
        }
        debug!("peer discovery stopped");
    }

    /// One round: checks every due peer, `max_concurrent` at a time, and records the results.
    /// Peers learnt during the round are checked in the next one.
    pub async fn check_due_peers(&self) {
        if self.chain.tip_height().await.is_none() {
            // Nothing to compare headers with; checking now would only count false failures.
            return;
        }
        let due: Vec<Advert> = {
            let mut state = self.state.lock();
            let now = Instant::now();
            let keep_bad = self.settings.forget_bad_after;
            state.peers.retain(|host, p| {
                let keep = !p.bad
                    || p.last_try
                        .is_none_or(|t| now.saturating_duration_since(t.at) < keep_bad);
                if !keep {
                    debug!(host, "forgetting bad peer");
                }
                keep
            });
            let can_proxy = self.settings.tor_proxy.is_some();
            let due: Vec<Advert> = state
                .peers
                .values()
                .filter(|p| !state.in_flight.contains(&p.advert.host))
                .filter(|p| can_proxy || !(is_onion(&p.advert.host) || self.settings.force_proxy))
                .filter(|p| self.is_due(p, now))
                .map(|p| p.advert.clone())
                .collect();
            state.in_flight.extend(due.iter().map(|a| a.host.clone()));
            due
        };
        if due.is_empty() {
            return;
        }
        debug!(count = due.len(), "checking peers");
        futures::stream::iter(due)
            .map(|advert| async move {
                let result = self.check(&advert).await;
                self.record(&advert.host, result);
            })
            .buffer_unordered(self.settings.max_concurrent.max(1))
            .collect::<()>()
            .await;
    }

    fn is_due(&self, peer: &Peer, now: Instant) -> bool {
        if peer.bad {
            return false;
        }
        let Some(last_try) = peer.last_try else {
            return true;
        };
        let wait = if peer.try_count == 0 {
            self.settings.recheck_after
        } else {
            // Capped so that the doubling cannot overflow.
            self.settings.retry_base * 2u32.pow(peer.try_count.saturating_sub(1).min(10))
        };
        now.saturating_duration_since(last_try.at) >= wait
    }

    async fn check(&self, advert: &Advert) -> Result<verify::Verified, PeerError> {
        let is_self = self
            .state
            .lock()
            .peers
            .get(&advert.host)
            .is_some_and(Peer::is_self);
        let s = &self.settings;
        // Announcing a private address or localhost would only get us marked unreachable.
        let has_public_host = s
            .our_features
            .get("hosts")
            .and_then(Value::as_object)
            .is_some_and(|hosts| {
                hosts.keys().any(|h| {
                    h.parse::<IpAddr>()
                        .map_or(!h.eq_ignore_ascii_case("localhost"), is_public)
                })
            });
        let cx = verify::Context {
            client_name: &s.client_name,
            genesis_hash: &s.genesis_hash,
            default_ports: s.default_ports,
            tls: &self.tls,
            proxy: s.tor_proxy.as_ref(),
            force_proxy: s.force_proxy,
            timeout: s.timeout,
            chain: self.chain.as_ref(),
            announce: (s.announce && has_public_host && !is_self).then_some(&s.our_features),
        };
        verify::verify(advert, &cx).await
    }

    /// Stores the outcome of checking `host` and adds the peers it told us of.
    fn record(&self, host: &str, result: Result<verify::Verified, PeerError>) {
        let mut state = self.state.lock();
        state.in_flight.remove(host);
        let now = Stamp::now();
        // One good peer per IPv4 address or IPv6 /64 (our own identities aside; docs/peers.md).
        let result = result.and_then(|v| match v.ip {
            Some(ip) if !is_self_host(&state, host) => {
                let key = address_key(ip);
                let taken = state.peers.values().any(|p| {
                    p.advert.host != host
                        && !p.is_self()
                        && p.is_good(self.settings.good_window)
                        && p.ip.map(address_key).as_ref() == Some(&key)
                });
                if taken {
                    Err(PeerError::DuplicateAddress(key))
                } else {
                    Ok(v)
                }
            }
            _ => Ok(v),
        });
        let Some(peer) = state.peers.get_mut(host) else {
            return;
        };
        peer.last_try = Some(now);
        let mut forget = false;
        let learned = match result {
            Ok(v) => {
                info!(host, ip = ?v.ip, "peer verified");
                peer.advert = v.advert;
                peer.features = Some(v.features);
                if v.ip.is_some() {
                    peer.ip = v.ip;
                }
                peer.last_good = Some(now);
                peer.try_count = 0;
                peer.last_error = None;
                v.learned
            }
            Err(e) if e.is_bad() => {
                warn!(host, error = %e, "peer is bad");
                peer.bad = true;
                peer.try_count += 1;
                peer.last_error = Some(e.to_string());
                Vec::new()
            }
            Err(e) => {
                peer.try_count += 1;
                peer.last_error = Some(e.to_string());
                let limit = if peer.last_good.is_some() {
                    self.settings.max_failures_once_good
                } else {
                    self.settings.max_failures
                };
                if peer.try_count >= limit && !peer.is_self() {
                    info!(host, error = %e, tries = peer.try_count, "forgetting peer");
                    forget = true;
                } else {
                    debug!(host, error = %e, tries = peer.try_count, "peer check failed");
                }
                Vec::new()
            }
        };
        if forget {
            state.peers.remove(host);
        }
        // Like ElectrumX, take at most two new peers per answer, at random, so that no peer can
        // fill the table with its friends (or with made-up names).
        let can_proxy = self.settings.tor_proxy.is_some();
        let mut fresh: Vec<Advert> = learned
            .into_iter()
            .filter(|a| !state.peers.contains_key(&a.host))
            .filter(|a| !is_onion(&a.host) || can_proxy)
            .filter(|a| {
                self.settings.allow_private
                    || a.host
                        .parse::<IpAddr>()
                        .map_or(a.host != "localhost", is_public)
            })
            .collect();
        fresh.shuffle(&mut rand::thread_rng());
        let mut added = 0;
        for advert in fresh.into_iter().take(LEARN_PER_ANSWER) {
            if state.peers.len() >= self.settings.max_peers {
                break;
            }
            let source = PeerSource::Peer(host.to_string());
            state
                .peers
                .insert(advert.host.clone(), Peer::new(advert, source));
            added += 1;
        }
        if added > 0 {
            debug!(host, added, "learnt peers");
            drop(state);
            self.wake.notify_one();
        }
    }

    /// `server.add_peer` from a client at `caller` (docs/protocol.md, `server.add_peer`). True
    /// when tentatively accepted; the peer is then checked by the background task.
    pub async fn add_peer_request(&self, caller: Option<IpAddr>, features: &Value) -> bool {
        if self.settings.mode != PeerDiscovery::On {
            return false;
        }
        let Some(caller) = caller else {
            return false;
        };
        let Some(host) = Advert::first_host(features) else {
            return false;
        };
        {
            let mut state = self.state.lock();
            let now = Instant::now();
            // Any call, accepted or not, closes its bucket for everyone for a while.
            let bucket = add_peer_bucket(&host);
            let recent = state.add_peer_calls.get(&bucket).is_some_and(|t| {
                now.saturating_duration_since(*t) < self.settings.add_peer_interval
            });
            state.add_peer_calls.insert(bucket, now);
            // Old buckets would otherwise pile up forever.
            let interval = self.settings.add_peer_interval;
            state
                .add_peer_calls
                .retain(|_, t| now.saturating_duration_since(*t) < interval);
            if recent {
                debug!(%caller, host, "server.add_peer refused: rate limited");
                return false;
            }
            if is_onion(&host) {
                // Onion names cannot be tied to the caller, so admissions are spaced randomly.
                if state.next_onion_admission.is_some_and(|t| now < t) {
                    debug!(%caller, host, "server.add_peer refused: onion window closed");
                    return false;
                }
                let window = self.settings.onion_window.as_millis() as u64;
                let wait = Duration::from_millis(rand::thread_rng().gen_range(0..=window));
                state.next_onion_admission = Some(now + wait);
            }
        }
        if !is_onion(&host) {
            let resolved = tokio::time::timeout(
                self.settings.timeout,
                tokio::net::lookup_host((host.as_str(), 80)),
            )
            .await;
            let matches = match resolved {
                Ok(Ok(mut addrs)) => addrs.any(|a| a.ip() == caller),
                _ => false,
            };
            if !matches {
                debug!(%caller, host, "server.add_peer refused: host does not resolve to caller");
                return false;
            }
        }
        let Some(advert) = Advert::from_features(features, &host) else {
            return false;
        };
        let accepted = self.add_candidate(advert, PeerSource::AddPeer(caller), false);
        if accepted {
            info!(%caller, host, "server.add_peer accepted");
        }
        accepted
    }

    /// Admin `add_peer`: adds a peer from its real name (`host v1.7 s50002 t50001`) and
    /// schedules a check.
    pub fn add_peer_real_name(&self, real_name: &str) -> Result<(), AdminError> {
        let advert = Advert::from_real_name(real_name, self.settings.default_ports)
            .ok_or_else(|| AdminError::BadArgument(format!("bad peer real name '{real_name}'")))?;
        if self.add_candidate(advert, PeerSource::Config, true) {
            Ok(())
        } else {
            Err(AdminError::Unavailable("the peer table is full".into()))
        }
    }

    /// Adds a new peer, or makes a known one due for a check with the ports now advertised.
    /// Only the operator (`forgive`) can have a bad peer checked again: a client's
    /// `server.add_peer` must not make us re-check a peer on another chain. False when the
    /// table is full.
    fn add_candidate(&self, advert: Advert, source: PeerSource, forgive: bool) -> bool {
        let mut state = self.state.lock();
        let len = state.peers.len();
        match state.peers.get_mut(&advert.host) {
            Some(peer) => {
                if !peer.is_self() && (forgive || !peer.bad) {
                    peer.advert = advert;
                    peer.bad = false;
                    peer.last_try = None;
                }
            }
            None if len >= self.settings.max_peers => return false,
            None => {
                state
                    .peers
                    .insert(advert.host.clone(), Peer::new(advert, source));
            }
        }
        drop(state);
        self.wake.notify_one();
        true
    }

    /// The `server.peers.subscribe` answer (docs/protocol.md, `server.peers.subscribe`) for a
    /// client that did not come through our Tor proxy.
    pub fn peers_subscribe_result(&self) -> Value {
        self.peers_subscribe_result_for(false)
    }

    /// The `server.peers.subscribe` answer (docs/protocol.md, `server.peers.subscribe`);
    /// `via_tor` raises the onion share to 50.
    pub fn peers_subscribe_result_for(&self, via_tor: bool) -> Value {
        let window = self.settings.good_window;
        let state = self.state.lock();
        let mut out: Vec<Value> = Vec::new();
        match self.settings.mode {
            PeerDiscovery::Off => return Value::Array(out),
            // Without discovery nothing can be verified, our own identities included.
            PeerDiscovery::SelfOnly => {
                out.extend(
                    state
                        .peers
                        .values()
                        .filter(|p| p.is_self())
                        .map(Peer::triple),
                );
                return Value::Array(out);
            }
            PeerDiscovery::On => {}
        }
        let good: Vec<&Peer> = state.peers.values().filter(|p| p.is_good(window)).collect();
        out.extend(good.iter().filter(|p| p.is_self()).map(|p| p.triple()));
        let mut rng = rand::thread_rng();
        let mut clearnet: Vec<&Peer> = good
            .iter()
            .copied()
            .filter(|p| !p.is_self() && !is_onion(&p.advert.host))
            .filter(|p| self.settings.allow_private || p.ip.is_none_or(is_public))
            .collect();
        clearnet.shuffle(&mut rng);
        let mut per_group: HashMap<String, usize> = HashMap::new();
        for p in clearnet {
            let group =
                p.ip.map(subnet_group)
                    .unwrap_or_else(|| p.advert.host.clone());
            let n = per_group.entry(group).or_default();
            if *n < 2 {
                *n += 1;
                out.push(p.triple());
            }
        }
        let mut onions: Vec<&Peer> = good
            .iter()
            .copied()
            .filter(|p| !p.is_self() && is_onion(&p.advert.host))
            .collect();
        onions.shuffle(&mut rng);
        let onion_limit = if via_tor { 50 } else { (out.len() / 4).max(10) };
        out.extend(onions.into_iter().take(onion_limit).map(Peer::triple));
        Value::Array(out)
    }

    /// Every known peer for admin `peers`, good ones first, then stale, never, bad.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let window = self.settings.good_window;
        let mut out: Vec<PeerInfo> = self
            .state
            .lock()
            .peers
            .values()
            .map(|p| p.info(window))
            .collect();
        out.sort_by(|a, b| a.status.cmp(&b.status).then_with(|| a.host.cmp(&b.host)));
        out
    }

    /// Counts by status for admin `getinfo`: `{"bad", "good", "never", "stale", "total"}`.
    pub fn counts(&self) -> Value {
        let window = self.settings.good_window;
        let state = self.state.lock();
        let count = |s: PeerStatus| {
            state
                .peers
                .values()
                .filter(|p| p.status(window) == s)
                .count()
        };
        json!({
            "bad": count(PeerStatus::Bad),
            "good": count(PeerStatus::Good),
            "never": count(PeerStatus::Never),
            "stale": count(PeerStatus::Stale),
            "total": state.peers.len(),
        })
    }
}

fn is_self_host(state: &State, host: &str) -> bool {
    state.peers.get(host).is_some_and(Peer::is_self)
}
