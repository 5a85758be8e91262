//! [`AdminApi`]: what the admin interface asks of the running server and indexer, and the plain
//! data it gets back. The protocol server and the indexer implement the trait together; the admin
//! layer never sees their types, and tests substitute a fake.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Why the server refused or failed an admin operation. Sent to the admin client as code 1 with
/// the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The argument is not acceptable (a malformed peer name, a bad URL).
    #[error("{0}")]
    BadArgument(String),
    /// The operation cannot be done now (e.g. a reorg while still catching up with the node).
    #[error("{0}")]
    Unavailable(String),
}

/// One client connection, for `sessions` and `inspect_session`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionInfo {
    /// session id, unique for the process's lifetime
    pub id: u64,
    /// listener kind: `tcp`, `ssl`, `ws` or `wss`
    pub transport: String,
    /// the peer's `ip:port`
    pub remote_addr: String,
    /// the cost group (subnet) the session belongs to (docs/protocol.md, Cost model)
    pub group: String,
    /// negotiated protocol version, `None` before `server.version`
    pub protocol_version: Option<String>,
    /// client name from `server.version`
    pub client_name: String,
    /// script-hash (and scriptPubKey) subscriptions
    pub scripthash_subs: u64,
    /// outpoint subscriptions
    pub outpoint_subs: u64,
    /// the session's own cost (docs/protocol.md, Cost model)
    pub cost: f64,
    /// cost added by the other members of its group
    pub extra_cost: f64,
    /// current concurrency target (0 = about to be disconnected)
    pub concurrency: u32,
    /// requests received and not yet answered
    pub pending_requests: u64,
    /// requests received
    pub requests: u64,
    /// errors counted against the session (docs/protocol.md, Error accounting)
    pub errors: u64,
    /// transactions broadcast
    pub txs_sent: u64,
    /// messages received
    pub recv_count: u64,
    /// bytes received
    pub recv_bytes: u64,
    /// messages sent
    pub send_count: u64,
    /// bytes sent
    pub send_bytes: u64,
    /// connection time, seconds since the Unix epoch
    pub connected_since: u64,
    /// whether the session is being closed
    pub closing: bool,
    /// whether its requests are logged
    pub logged: bool,
    /// requests by method (for `inspect_session`; may be left empty in `sessions`)
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub request_counts: BTreeMap<String, u64>,
}

impl SessionInfo {
    /// Every subscription of the session.
    pub fn subscriptions(&self) -> u64 {
        self.scripthash_subs + self.outpoint_subs
    }
}

/// One cost group (a subnet's sessions), for `groups`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupInfo {
    /// group name (the subnet)
    pub name: String,
    /// sessions in the group now
    pub sessions: u64,
    /// the members' cost
    pub cost: f64,
    /// cost kept from disconnected members
    pub retained_cost: f64,
    /// members' pending requests
    pub pending_requests: u64,
    /// transactions the members broadcast
    pub txs_sent: u64,
    /// the members' subscriptions
    pub subscriptions: u64,
    /// messages received
    pub recv_count: u64,
    /// bytes received
    pub recv_bytes: u64,
    /// messages sent
    pub send_count: u64,
    /// bytes sent
    pub send_bytes: u64,
}

/// How a peer server last fared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerStatus {
    /// answered recently
    Good,
    /// answered once, not recently
    Stale,
    /// never tried or never answered
    #[default]
    Never,
    /// failed checks (wrong network, lying)
    Bad,
}

/// One known peer server, for `peers`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerInfo {
    /// host name or address
    pub host: String,
    /// its `server.features` answer (or what its real name announced)
    pub features: serde_json::Value,
    /// where it was learnt from (`coins`, `peers`, `add_peer`, an ip)
    pub source: String,
    /// resolved address
    pub ip_addr: Option<String>,
    /// last successful check, seconds since the Unix epoch
    pub last_good: Option<u64>,
    /// last attempt, seconds since the Unix epoch
    pub last_try: Option<u64>,
    /// failed attempts since the last success
    pub try_count: u32,
    /// current standing
    pub status: PeerStatus,
}

/// One consumer of memory, for `debug_memusage`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryItem {
    /// what holds the memory (`utxo cache`, `mempool`, `process rss`…)
    pub name: String,
    /// bytes
    pub bytes: u64,
}

/// A change to request logging (the `log` command's session arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoggingChange {
    /// toggle logging of these sessions
    Toggle(Vec<u64>),
    /// log every current and future session
    All,
    /// log no session, now or later
    None,
    /// toggle logging of sessions opened from now on
    ToggleNew,
}

/// What request logging is after a [`LoggingChange`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoggingState {
    /// the toggled sessions that exist, with their new state
    pub toggled: Vec<(u64, bool)>,
    /// whether sessions opened from now on are logged
    pub log_new: bool,
}

/// What the admin interface needs from the running server and indexer.
///
/// Implemented by the lead over the real session manager, peer manager and block processor;
/// `query` is answered by the admin layer itself from [`crate::query::ChainQuery`] and the coin,
/// and `log`'s filter change from [`super::LogControl`], so neither is here.
#[async_trait]
pub trait AdminApi: Send + Sync {
    /// The `getinfo` summary (docs/admin.md): coin, daemon (credentials hidden), heights,
    /// sessions and peer counts, request counts, uptime, version… as a JSON object.
    async fn getinfo(&self) -> serde_json::Value;

    /// Every open client session.
    async fn sessions(&self) -> Vec<SessionInfo>;

    /// Every cost group.
    async fn groups(&self) -> Vec<GroupInfo>;

    /// Every known peer server.
    async fn peers(&self) -> Vec<PeerInfo>;

    /// Adds a peer from an IRC-style real name (`host v1.7 s50002 t50001`) and schedules a
    /// check of it.
    async fn add_peer(&self, real_name: &str) -> Result<(), AdminError>;

    /// Closes the sessions with these ids; returns the ids that existed.
    async fn disconnect(&self, session_ids: &[u64]) -> Vec<u64>;

    /// Changes which sessions' requests are logged.
    async fn session_logging(&self, change: LoggingChange) -> LoggingState;

    /// Replaces the node URL(s) (comma-separated, failover order) and switches to the first;
    /// `None` restores the configured ones. Returns the URL now in use.
    async fn set_daemon_url(&self, urls: Option<&str>) -> Result<String, AdminError>;

    /// Forces the indexer to undo the last `count` blocks and index them again (debugging).
    async fn reorg(&self, count: u32) -> Result<(), AdminError>;

    /// Memory held by the server's caches and tables, largest first or in any order.
    async fn memory_usage(&self) -> Vec<MemoryItem>;

    /// Starts a clean shutdown (flush, then exit) and returns at once, so that `stopping` still
    /// reaches the client. It must not wait for the admin listener to stop: this call runs on
    /// one of that listener's connections.
    async fn stop(&self);
}
