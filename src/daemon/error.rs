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
    /// The node kept answering a call with an HTTP error page or a broken answer (cut off
    /// mid-body, not JSON) until the retry limit: it is failing, not restarting, and a half
    /// answer must never be read as data.
    #[error(
        "the daemon at {url} answered `{method}` with {problem}, {attempts} times in a row; \
         anode stopped rather than index from broken answers. Look at the node's log (and at \
         any proxy between anode and the node), then start anode again: it resumes where it \
         stopped"
    )]
    BrokenAnswers {
        /// the URL, credentials hidden
        url: String,
        /// the method called (`REST block` for `/rest/block/HASH.bin`)
        method: String,
        /// answers tried
        attempts: u32,
        /// the last broken answer
        problem: String,
    },
    /// A block the node served fails the checks every block gets before it is indexed: its
    /// bytes do not decode or parse, it is not the block asked for, or its transactions do not
    /// match its header.
    #[error(
        "{node} served a bad block{at_height} when asked for block {hash}: {problem}. Nothing \
         from this block was written to the index, which ends at the block before it. Check \
         the node (`bitcoin-cli getblock {hash} 0` there, its debug.log; a node with damaged \
         block files needs -reindex) and the network path to it (an RPC over plain HTTP is \
         best kept on localhost or inside a VPN or TLS tunnel), then start anode again",
        at_height = height_suffix(.height)
    )]
    BadBlock {
        /// the node (and block source) it came from, credentials hidden
        node: String,
        /// its height, when the caller knows it
        height: Option<u32>,
        /// the hash asked for, display order
        hash: String,
        /// what is wrong with it
        problem: String,
    },
    /// The P2P block source failed.
    #[error("P2P block source {peer}: {source}")]
    P2p {
        /// the node's P2P address
        peer: String,
        /// what went wrong
        source: super::p2p::P2pError,
    },
}

fn height_suffix(height: &Option<u32>) -> String {
    height.map_or_else(String::new, |h| format!(" at height {h}"))
}

impl DaemonError {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DaemonError::Unreachable { .. } | DaemonError::WarmingUp(_)
        ) || matches!(self, DaemonError::P2p { source, .. } if source.is_transient())
    }

    /// Whether the node answered, but wrongly enough that the sync must stop instead of
    /// retrying: a bad block, or broken answers past the retry limit. Retrying such a node
    /// would at best loop on the same fault and at worst index what it got wrong.
    pub fn is_node_fault(&self) -> bool {
        matches!(
            self,
            DaemonError::BadBlock { .. } | DaemonError::BrokenAnswers { .. }
        )
    }

    /// A [`DaemonError::BadBlock`] with the height filled in where it was missing.
    pub fn at_height(self, block_height: u32) -> Self {
        match self {
            DaemonError::BadBlock {
                node,
                height: None,
                hash,
                problem,
            } => DaemonError::BadBlock {
                node,
                height: Some(block_height),
                hash,
                problem,
            },
            other => other,
        }
    }
}
