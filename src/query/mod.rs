//! What the protocol server asks of the index: the chain tip, headers, script histories,
//! balances, UTXOs, transactions, merkle proofs, outpoint status and the mempool view, plus a
//! channel of [`ChainEvent`]s after every block and mempool refresh.
//!
//! The protocol layer depends on this trait only; the indexer implements it
//! (`crate::index::IndexQuery`) and tests can substitute their own. Every answer is read from
//! one consistent state: a confirmed transaction never also appears as a mempool entry in
//! one answer, and the heights refer to [`ChainQuery::tip`].

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::index::schema::HASHX_LEN;

pub mod gate;
pub mod reference;

/// A 32-byte hash in internal byte order.
pub type Hash32 = [u8; 32];

/// The first [`HASHX_LEN`] bytes of a script hash: the index's key for a script.
pub type HashX = [u8; HASHX_LEN];

/// An Electrum script hash in internal order: `SHA256(scriptPubKey)` (clients send it
/// reversed, in display order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScriptHash(pub Hash32);

impl ScriptHash {
    /// The index key of this script.
    pub fn hashx(&self) -> HashX {
        let mut out = [0u8; HASHX_LEN];
        out.copy_from_slice(&self.0[..HASHX_LEN]);
        out
    }

    /// From the client's display-order hex (`hex(rev(sha256(script)))`).
    pub fn from_display_hex(text: &str) -> Option<Self> {
        crate::daemon::hash_from_hex(text).map(ScriptHash)
    }

    /// Display-order hex, as clients expect it.
    pub fn to_display_hex(&self) -> String {
        crate::daemon::hash_to_hex(&self.0)
    }
}

/// A transaction output reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutPoint {
    /// funding transaction id (internal order)
    pub txid: Hash32,
    /// output index
    pub vout: u32,
}

/// The tip the answers refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tip {
    /// height of the best indexed block
    pub height: u32,
    /// its hash (internal order)
    pub hash: Hash32,
    /// its raw header, as served to clients
    pub header: Vec<u8>,
}

/// One transaction of a script's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// transaction id (internal order)
    pub txid: Hash32,
    /// `> 0` confirmed at that height; `0` in the mempool with all inputs confirmed; `-1` in
    /// the mempool spending another mempool transaction (docs/protocol.md, Heights). The genesis
    /// block (height 0) is never in a history.
    pub height: i64,
    /// fee in the smallest unit, for mempool entries
    pub fee: Option<u64>,
}

/// A script's history: confirmed entries in chain order, then mempool entries in the canonical
/// order (height 0 before -1, then by display-order txid).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// confirmed, by height then position in block
    pub confirmed: Vec<HistoryEntry>,
    /// unconfirmed, canonical order
    pub mempool: Vec<HistoryEntry>,
}

impl History {
    /// Every entry, confirmed first.
    pub fn entries(&self) -> impl Iterator<Item = &HistoryEntry> {
        self.confirmed.iter().chain(self.mempool.iter())
    }

    /// The Electrum status hash (docs/protocol.md, Status hashes), `None` for an empty history.
    pub fn status_hash(&self) -> Option<Hash32> {
        let mut hasher = Sha256::new();
        let mut any = false;
        for entry in self.entries() {
            any = true;
            hasher.update(crate::daemon::hash_to_hex(&entry.txid).as_bytes());
            hasher.update(format!(":{}:", entry.height).as_bytes());
        }
        any.then(|| hasher.finalize().into())
    }
}

/// A script's balance in the smallest unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    /// sum of confirmed unspent outputs
    pub confirmed: u64,
    /// mempool outputs received minus confirmed or mempool outputs spent in the mempool
    pub unconfirmed: i64,
}

/// One unspent output of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unspent {
    /// funding transaction (internal order)
    pub txid: Hash32,
    /// output index
    pub vout: u32,
    /// confirmation height, `0` for a mempool output
    pub height: u32,
    /// value in the smallest unit
    pub value: u64,
}

/// A transaction's merkle branch in its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxMerkle {
    /// the block's height
    pub block_height: u32,
    /// position of the transaction in the block
    pub pos: u32,
    /// siblings from the leaf upward (internal order)
    pub branch: Vec<Hash32>,
}

/// A header's branch to a checkpoint (docs/protocol.md, Merkle branches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderProof {
    /// siblings from the leaf upward (internal order)
    pub branch: Vec<Hash32>,
    /// the root over block hashes `0..=cp_height` (internal order)
    pub root: Hash32,
}

/// The status of an outpoint (protocol 1.7; docs/protocol.md, `blockchain.outpoint.subscribe`).
/// Heights follow its Heights section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutpointStatus {
    /// height of the funding transaction; `None` when the output is not known
    pub funder_height: Option<i64>,
    /// the spending transaction and its height, when spent
    pub spender: Option<(Hash32, i64)>,
}

/// One transaction of `mempool.recent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentTx {
    /// transaction id (internal order)
    pub txid: Hash32,
    /// fee in the smallest unit
    pub fee: u64,
    /// virtual size
    pub vsize: u64,
}

/// Sent after each indexed block (or run of blocks) and each mempool refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainEvent {
    /// the tip after the change
    pub tip: Tip,
    /// whether the tip (height or hash) differs from the previous event's
    pub tip_changed: bool,
    /// scripts that appeared in an output or spent input of a transaction connected,
    /// disconnected, or entering or leaving the mempool
    pub touched_scripts: HashSet<HashX>,
    /// outpoints created, spent or un-spent
    pub touched_outpoints: HashSet<OutPoint>,
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The confirmed history has at least the limit's number of entries (docs/protocol.md,
    /// History size).
    #[error("history too large")]
    HistoryTooLarge,
    /// A height or position beyond the chain.
    #[error("{0}")]
    OutOfRange(String),
    /// The node failed or refused.
    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),
    /// The store failed.
    #[error("database: {0}")]
    Store(#[from] anode_store::Error),
    /// The index contradicts itself (a bug or a damaged database).
    #[error("index inconsistent: {0}")]
    Corrupt(String),
}

/// Result of a query.
pub type QueryResult<T> = Result<T, QueryError>;

/// Everything the protocol server reads. Store reads run on blocking threads inside the
/// implementation; callers just await.
#[async_trait]
pub trait ChainQuery: Send + Sync {
    /// The announced tip.
    fn tip(&self) -> Tip;

    /// The raw header at `height`, `None` above the tip.
    async fn header(&self, height: u32) -> QueryResult<Option<Vec<u8>>>;

    /// Up to `count` consecutive headers from `start` (fewer at the tip).
    async fn headers(&self, start: u32, count: u32) -> QueryResult<Vec<Vec<u8>>>;

    /// The branch proving header `height` under the checkpoint `cp_height`
    /// (`height <= cp_height <= tip`).
    async fn header_proof(&self, height: u32, cp_height: u32) -> QueryResult<HeaderProof>;

    /// A script's history. `QueryError::HistoryTooLarge` when the confirmed part reaches
    /// `limit` entries; memory stays bounded by `limit`, however long the stored history.
    async fn history(&self, script: &ScriptHash, limit: usize) -> QueryResult<History>;

    /// The mempool part of a script's history alone.
    async fn mempool_history(&self, script: &ScriptHash) -> QueryResult<Vec<HistoryEntry>>;

    /// A script's balance.
    async fn balance(&self, script: &ScriptHash) -> QueryResult<Balance>;

    /// A script's unspent outputs: confirmed ones not spent in the mempool, then mempool ones;
    /// at most `limit` (then `QueryError::HistoryTooLarge`).
    async fn unspent(&self, script: &ScriptHash, limit: usize) -> QueryResult<Vec<Unspent>>;

    /// A raw transaction, confirmed or in the mempool (`None` if the node does not know it).
    async fn raw_transaction(&self, txid: &Hash32) -> QueryResult<Option<Vec<u8>>>;

    /// The merkle branch of `txid` in the block at `height`; `None` if it is not there.
    async fn merkle(&self, txid: &Hash32, height: u32) -> QueryResult<Option<TxMerkle>>;

    /// The txid at position `pos` of the block at `height`, and its branch. `None` if there
    /// is no such block or position.
    async fn txid_at(&self, height: u32, pos: u32) -> QueryResult<Option<(Hash32, Vec<Hash32>)>>;

    /// The status of an outpoint (1.7).
    async fn outpoint_status(&self, outpoint: &OutPoint) -> QueryResult<OutpointStatus>;

    /// The compact fee histogram, `[fee_rate sat/vB, vsize]` pairs (docs/protocol.md,
    /// `mempool.get_fee_histogram`).
    fn fee_histogram(&self) -> Vec<(f64, u64)>;

    /// Up to 10 most recent mempool transactions, newest first.
    fn mempool_recent(&self) -> Vec<RecentTx>;

    /// Number of transactions in the mempool mirror.
    fn mempool_size(&self) -> usize;

    /// A receiver of every later [`ChainEvent`]. A receiver that lags (misses events) must
    /// treat every subscription as touched.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<ChainEvent>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_id(c: char) -> Hash32 {
        crate::daemon::hash_from_hex(&c.to_string().repeat(64)).expect("hex")
    }

    #[test]
    fn status_hash_matches_the_protocol_vector() {
        let history = History {
            confirmed: vec![
                HistoryEntry {
                    txid: hex_id('a'),
                    height: 3,
                    fee: None,
                },
                HistoryEntry {
                    txid: hex_id('b'),
                    height: 7,
                    fee: None,
                },
            ],
            mempool: vec![
                HistoryEntry {
                    txid: hex_id('c'),
                    height: 0,
                    fee: Some(1),
                },
                HistoryEntry {
                    txid: hex_id('d'),
                    height: -1,
                    fee: Some(1),
                },
            ],
        };
        assert_eq!(
            hex::encode(history.status_hash().expect("non-empty")),
            "d9ea8657bbd23584fd4e30b37bf2c3a058f9be4751230697d42ac6125fd0125b"
        );
        assert_eq!(History::default().status_hash(), None);
    }

    #[test]
    fn script_hash_display_order_round_trips() {
        let text = "8b01df4e368ea28f8dc0423bcf7a4923e3a12d307c875e47a0cfbf90b5c39161";
        let script = ScriptHash::from_display_hex(text).expect("hex");
        assert_eq!(script.to_display_hex(), text);
        let p2pkh = hex::decode("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac").expect("hex");
        let digest: Hash32 = Sha256::digest(&p2pkh).into();
        assert_eq!(script.0, digest);
        assert_eq!(script.hashx()[..], digest[..HASHX_LEN]);
    }
}
