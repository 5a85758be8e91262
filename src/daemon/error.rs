/// Errors talking to a node, worded for operators.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// No node URL was configured.
    #[error("no daemon URL configured: set daemon_url (DAEMON_URL)")]
    NoUrl,
    /// A URL that does not parse.
    #[error("bad daemon URL `{url}`: {reason}")]
    BadUrl {
        /// the URL, credentials hidden
        url: String,
        /// why
        reason: String,
    },
    /// Connection failures on every URL until the retry policy gave up.
    #[error("cannot reach the daemon at {url}: {reason}")]
    Unreachable {
        /// the last URL tried, credentials hidden
        url: String,
        /// the last error
        reason: String,
    },
    /// HTTP 401/403.
    #[error(
        "the daemon at {url} refused our credentials: check rpcuser/rpcpassword in DAEMON_URL \
         or the cookie file"
    )]
    Auth {
        /// the URL, credentials hidden
        url: String,
    },
    /// The node is loading and the retry policy gave up waiting.
    #[error("the daemon is still starting up ({0}); retried until the retry limit")]
    WarmingUp(String),
    /// An error answer from the node.
    #[error("daemon error {code}: {message}")]
    Rpc {
        /// JSON-RPC error code
        code: i64,
        /// the node's message
        message: String,
    },
    /// The node does not know the method.
    #[error("the daemon does not support `{0}`")]
    MethodNotFound(String),
    /// An answer that does not have the expected shape.
    #[error("unexpected answer from the daemon to `{method}`: {reason}")]
    BadResponse {
        /// the method called
        method: String,
        /// what was wrong
        reason: String,
    },
    /// The node serves a different chain than configured.
    #[error(
        "the daemon serves the wrong network: genesis {got}, but {coin} {network} has genesis \
         {expected}; point DAEMON_URL at a {network} node or change COIN/NET"
    )]
    WrongNetwork {
        /// configured coin
        coin: String,
        /// configured network
        network: String,
        /// expected genesis, display order
        expected: String,
        /// the node's genesis, display order
        got: String,
    },
    /// The node prunes blocks, so old blocks cannot be indexed.
    #[error("the daemon prunes blocks; anode needs every block: restart the node with prune=0")]
    Pruned,
    /// The node has no transaction index.
    #[error(
        "the daemon has no transaction index, so transactions cannot be served: restart the node \
         with txindex=1 (a reindex may be needed)"
    )]
    NoTxIndex,
    /// An operation this client cannot do.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The P2P block source failed.
    #[error("P2P block source {peer}: {source}")]
    P2p {
        /// the node's P2P address
        peer: String,
        /// what went wrong
        source: super::p2p::P2pError,
    },
}

impl DaemonError {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DaemonError::Unreachable { .. } | DaemonError::WarmingUp(_)
        ) || matches!(self, DaemonError::P2p { source, .. } if source.is_transient())
    }
}
