//! The tables of the index. Key layouts are fixed-width and big-endian where they must sort;
//! `docs/schema.md` shows each table as a key/value layout.

use anode_store::Table;

/// Length of a hashX: the first bytes of a script hash, as in ElectrumX.
pub const HASHX_LEN: usize = 11;
/// Length of a tx number: a transaction's position in the chain.
pub const TX_NUM_LEN: usize = 5;

/// height (4 B BE) → raw header
pub const HEADERS: &str = "headers";
/// height (4 B BE) → block hash (32 B, internal order, as the node names the block)
pub const BLOCK_HASHES: &str = "block_hashes";
/// height (4 B BE) → cumulative tx count at the end of the block (5 B BE)
pub const TX_COUNTS: &str = "tx_counts";
/// tx number (5 B BE) → txid (32 B)
pub const TX_HASHES: &str = "tx_hashes";
/// txid prefix (8 B) + tx number → empty
pub const TXID_INDEX: &str = "txid_index";
/// hashX (11 B) + first tx number → the script's later tx numbers of the same flush, as
/// LEB128 gaps (empty for a single transaction)
pub const HISTORY: &str = "history";
/// hashX + tx number + vout (4 B BE) → value (8 B LE)
pub const UTXO: &str = "utxo";
/// txid prefix (8 B) + vout (4 B BE) + tx number → hashX + value (8 B LE)
pub const UTXO_LOOKUP: &str = "utxo_lookup";
/// tx number + vout → spending tx number
pub const SPENDERS: &str = "spenders";
/// height → what the block spent, to undo it in a reorg
pub const UNDO: &str = "undo";
/// name → state (tip, tx count, schema version, engine, coin, network)
pub const META: &str = "meta";

/// Every table, in the order they are declared to the engine.
pub const TABLES: &[Table] = &[
    Table::new(HEADERS),
    Table::new(BLOCK_HASHES),
    Table::new(TX_COUNTS),
    Table::new(TX_HASHES),
    Table::with_prefix(TXID_INDEX, 8),
    Table::with_prefix(HISTORY, HASHX_LEN),
    Table::with_prefix(UTXO, HASHX_LEN),
    Table::with_prefix(UTXO_LOOKUP, 8),
    Table::new(SPENDERS),
    Table::new(UNDO),
    Table::new(META),
];
