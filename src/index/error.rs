//! Why indexing or an index read failed.

/// Why indexing failed. None of these leave a partial flush behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The store failed.
    #[error("database: {0}")]
    Store(#[from] anode_store::Error),
    /// A flush could not be written. None of it reached the store, and the writer still holds
    /// its blocks as pending: [`IndexWriter::flush`] can try the same flush again.
    #[error("writing blocks {first}..={last} ({bytes} bytes of rows) to the database: {source}")]
    Flush {
        /// the first block of the flush
        first: u32,
        /// its last block
        last: u32,
        /// keys and values in its batch (the engine needs more on disk: pages, logs)
        bytes: u64,
        /// the store's error
        source: anode_store::Error,
    },
    /// The database contradicts itself.
    #[error("the index is inconsistent: {0}; stop anode and re-index into a new DB_DIRECTORY")]
    Corrupt(String),
    /// A block spends an output the index does not have.
    #[error(
        "block {height} spends {txid}:{vout}, which the index does not hold as unspent \
         (a chain the coin settings do not describe, or a damaged index)"
    )]
    MissingOutput {
        /// height of the spending block
        height: u32,
        /// funding txid, display order
        txid: String,
        /// output index
        vout: u32,
    },
    /// A block does not extend the tip.
    #[error("block {height} does not extend the indexed tip")]
    NotExtending {
        /// the block's height
        height: u32,
    },
    /// A reorg would undo a block whose undo record is gone.
    #[error(
        "the node's chain forks below height {height}, deeper than the undo data kept \
         (reorg limit {limit}); anode cannot follow it. Check that the node is on the right \
         chain; if it is, re-index into a new DB_DIRECTORY (or raise REORG_LIMIT first)"
    )]
    ReorgTooDeep {
        /// the lowest height that would have to be undone
        height: u32,
        /// the configured limit
        limit: u32,
    },
    /// The chain outgrew the 5-byte tx numbers.
    #[error("more than 2^40 transactions: the index format cannot number them")]
    TooManyTransactions,
}

impl IndexError {
    /// The store's error behind this one, if the store failed.
    pub fn store_error(&self) -> Option<&anode_store::Error> {
        match self {
            IndexError::Store(e) | IndexError::Flush { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

/// Result of the block processor.
pub type IndexResult<T> = Result<T, IndexError>;
