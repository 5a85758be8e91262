//! Talking to the full node.
//!
//! [`DaemonApi`] is everything the server asks of a node. The real client ([`RpcDaemon`], JSON-RPC
//! over HTTP with failover, plus Bitcoin Core's REST interface for binary blocks) and the chain
//! simulator both implement it, so nothing above this module can tell them apart.

mod connect;
mod error;
mod fetcher;
pub mod p2p;
mod rpc;
mod tips;
mod types;

pub use connect::{connect, connect_checked, daemon_urls};
pub use error::DaemonError;
pub use fetcher::{BlockFetcher, FetchedBlock, FetcherOptions};
pub use p2p::{P2pBlockSource, P2pDaemon, P2pError, P2pOptions};
pub use rpc::{hide_credentials, with_default_port, RetryPolicy, RpcDaemon, RpcDaemonOptions};
pub use tips::{BlockNotifications, ChainTip, TipWatcher};
pub use types::{ChainInfo, FeeEstimate, Hash32, MempoolEntry, MempoolInfo};

use async_trait::async_trait;

/// A node's software version as `getnetworkinfo` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeVersion {
    /// the numeric version, e.g. 310000 for Bitcoin Core 31.0.0
    pub version: u64,
    /// the user agent, e.g. `/Satoshi:31.0.0/`
    pub subversion: String,
}

impl NodeVersion {
    /// Reads `version` and `subversion` from a `getnetworkinfo` answer.
    pub fn from_network_info(info: &serde_json::Value) -> Result<NodeVersion> {
        let version = info.get("version").and_then(serde_json::Value::as_u64);
        let Some(version) = version else {
            return Err(DaemonError::BadResponse {
                method: "getnetworkinfo".into(),
                reason: "no numeric version".into(),
            });
        };
        let subversion = info
            .get("subversion")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(NodeVersion {
            version,
            subversion,
        })
    }

    /// The version as dotted numbers the way ElectrumX's `$DAEMON_VERSION` shows it: the
    /// number read as `MMmmmmrr..` (major × 1,000,000 + minor × 10,000 + revision × 100), so
    /// 310000 reads `0.31.0`, and 1000000 (Bitcoin SV 1.0.0) reads `1.0.0`.
    pub fn dotted(&self) -> String {
        let (major, rest) = (self.version / 1_000_000, self.version % 1_000_000);
        let (minor, revision) = (rest / 10_000, rest % 10_000 / 100);
        format!("{major}.{minor}.{revision}")
    }
}

/// Result of a daemon call.
pub type Result<T, E = DaemonError> = std::result::Result<T, E>;

/// What the server needs from a node. Hashes are in internal byte order (as serialized);
/// implementations convert to and from the node's display order.
#[async_trait]
pub trait DaemonApi: Send + Sync {
    /// `getblockchaininfo`: network, heights, tip, pruning.
    async fn chain_info(&self) -> Result<ChainInfo>;
    /// `getblockcount`.
    async fn block_count(&self) -> Result<u32>;
    /// `getblockhash` for each height of `heights`, in one batch.
    async fn block_hashes(&self, heights: std::ops::Range<u32>) -> Result<Vec<Hash32>>;
    /// The raw block with hash `hash`, from the configured block source.
    async fn block(&self, hash: &Hash32) -> Result<Vec<u8>>;
    /// `getrawtransaction TXID 0` for several transactions; `None` where the node has none.
    async fn raw_transactions(&self, txids: &[Hash32]) -> Result<Vec<Option<Vec<u8>>>>;
    /// `getrawtransaction TXID 0` for one transaction, with the node's own error when it has
    /// none (for `blockchain.transaction.get`, which relays that error to the client).
    async fn raw_transaction(&self, txid: &Hash32) -> Result<Vec<u8>>;
    /// `getrawtransaction TXID 1`, as the node answers it (for `blockchain.transaction.get` verbose).
    async fn raw_transaction_verbose(&self, txid: &Hash32) -> Result<serde_json::Value>;
    /// `getrawmempool`.
    async fn mempool_txids(&self) -> Result<Vec<Hash32>>;
    /// `getmempoolinfo`.
    async fn mempool_info(&self) -> Result<MempoolInfo>;
    /// Fee rate for confirmation within `blocks`: `estimatesmartfee`, else `estimatefee`;
    /// [`FeeEstimate::Unavailable`] when the node has neither (the caller uses the coin default).
    async fn estimate_fee(&self, blocks: u32, mode: Option<&str>) -> Result<FeeEstimate>;
    /// Minimum relay fee in coin units per kB (`getnetworkinfo.relayfee`).
    async fn relay_fee(&self) -> Result<f64>;
    /// The node's software version (`getnetworkinfo.version` and `subversion`).
    async fn node_version(&self) -> Result<NodeVersion>;
    /// `sendrawtransaction`; the txid.
    async fn send_raw_transaction(&self, raw_hex: &str) -> Result<Hash32>;
    /// `testmempoolaccept` with the node's answer.
    async fn test_mempool_accept(&self, raw_hexes: &[String]) -> Result<serde_json::Value>;
    /// `submitpackage` with the node's answer.
    async fn submit_package(&self, raw_hexes: &[String]) -> Result<serde_json::Value>;
    /// The node as messages name it ("the node at http://127.0.0.1:8332/"), credentials
    /// hidden, with the block source where blocks come from elsewhere.
    fn describe(&self) -> String {
        "the node".to_string()
    }
    /// Points the client at other node URLs, starting with the first (the admin `daemon_url`
    /// command). Clients without URLs refuse.
    fn replace_urls(&self, urls: &[String]) -> Result<()> {
        let _ = urls;
        Err(DaemonError::Unsupported(
            "this node client has no URLs to replace".into(),
        ))
    }
}

/// Display-order hex of an internal-order hash.
pub fn hash_to_hex(hash: &Hash32) -> String {
    let mut reversed = *hash;
    reversed.reverse();
    hex::encode(reversed)
}

/// Internal-order hash from display-order hex.
pub fn hash_from_hex(text: &str) -> Option<Hash32> {
    let mut bytes: Hash32 = hex::decode(text).ok()?.try_into().ok()?;
    bytes.reverse();
    Some(bytes)
}
