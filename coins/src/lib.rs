//! Coin layer of anode: network parameters, block and transaction parsing, block
//! hashing, address encoding and block encoding for Bitcoin and Bitcoin-derived coins.
//!
//! The server only ever sees [`Coin`] (as `Arc<dyn Coin>`), obtained from the
//! registry with [`lookup`]. Every network is a data entry in `coins/networks/*.toml`
//! that names built-in *kinds* (header layout, block-hash algorithm, transaction
//! format, txid hash, Base58 checksum, node RPC dialect) and gives values; Rust code
//! exists once per kind, never per coin. See `docs/coins.md` and
//! `docs/adding-a-coin.md`.
//!
//! Parsing never panics on untrusted input: every length is checked against the
//! remaining bytes before anything is allocated, and a malformed block yields
//! [`Error::Malformed`] with the block height (when known) and the byte offset.

#![forbid(unsafe_code)]

mod address;
mod coin;
mod encoder;
mod error;
pub mod hash;
mod header;
mod params;
mod reader;
mod registry;
mod script;
mod tx;

use std::ops::Range;

pub use coin::GenericCoin;
pub use encoder::{BlockTemplate, EncodedBlock, EncodedTx};
pub use error::Error;
pub use hash::HashAlgo;
pub use header::HeaderLayout;
pub use params::{
    Base58Check, ElectrumPorts, FeeStyle, GenesisRule, HashRule, HeaderSpec, NameIndex,
    NetworkParams, RpcDialect, RpcSpec, SyncEstimate, TxFormat, TxidHash, UndoOrder,
};
pub use registry::{
    builtin_networks, coin_from_params, load_networks_from_dir, load_networks_from_str, lookup,
    Registry,
};

/// A 32-byte hash in internal byte order (as serialized); display order is reversed hex.
pub type Hash32 = [u8; 32];

/// Display form of a hash: the bytes reversed, hex-encoded (as block explorers show it).
pub fn hash_to_hex(hash: &Hash32) -> String {
    let mut rev = *hash;
    rev.reverse();
    hex_encode(&rev)
}

/// Parses a display-order hex hash (reversed) into internal byte order.
pub fn hash_from_hex(s: &str) -> Result<Hash32, Error> {
    let bytes = hex_decode(s.trim()).ok_or_else(|| Error::Config(format!("bad hex hash {s:?}")))?;
    let mut out: Hash32 = bytes
        .try_into()
        .map_err(|_| Error::Config(format!("hash {s:?} is not 32 bytes")))?;
    out.reverse();
    Ok(out)
}

/// Lower-case hex encoding.
pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Hex decoding; `None` on odd length or a non-hex digit.
pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks_exact(2)
        .map(|p| Some((nib(p[0])? << 4) | nib(p[1])?))
        .collect()
}

/// A reference to a transaction output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutPoint {
    pub txid: Hash32,
    pub vout: u32,
}

/// A transaction output as the indexer needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxOut {
    /// Value in the coin's smallest unit.
    pub value: u64,
    /// The output script as serialized (for Decred: the script only, without its version).
    pub script: Vec<u8>,
}

/// A parsed transaction: what an indexer needs, no more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedTx {
    /// Transaction id, internal byte order.
    pub txid: Hash32,
    /// The outpoints spent. Coinbase inputs (and inputs a family treats like them:
    /// Zcoin Sigma spends, TokenPay stealth inputs, Decred stakebase) are left out.
    pub inputs: Vec<OutPoint>,
    pub outputs: Vec<TxOut>,
    /// True when the first input spends the null outpoint.
    pub is_coinbase: bool,
    /// Byte range of the raw transaction inside the buffer it was parsed from
    /// (the block for [`Coin::parse_block`], the input for [`Coin::parse_tx`]).
    pub range: Range<usize>,
    /// The version word as serialized (Dash/PIVX: including the type in the high bits).
    pub version: u32,
    /// Bytes of SegWit marker, flag and witness data inside `range` (0 without witness);
    /// `vsize = ceil((4 * (len - witness_bytes) + witness_bytes) / 4)`.
    pub witness_bytes: u32,
}

impl ParsedTx {
    /// Virtual size in vbytes (BIP141); equals the size for non-witness transactions.
    pub fn vsize(&self) -> usize {
        let total = self.range.len();
        let wit = self.witness_bytes as usize;
        let weight = 4 * (total - wit) + wit;
        weight.div_ceil(4)
    }
}

/// A parsed block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedBlock {
    /// The header as served to Electrum clients: the fixed part for AuxPoW coins
    /// (80 bytes; Xaya 85), the whole header otherwise (Equihash: with solution).
    pub header: Vec<u8>,
    /// Length of the full header at the front of the raw block (AuxPoW proof included).
    pub full_header_len: usize,
    /// Block hash, internal byte order. For a coin whose hash algorithm is not compiled
    /// in, this is all zeros and `hash_available` is false.
    pub hash: Hash32,
    pub hash_available: bool,
    pub prev_hash: Hash32,
    /// All transactions in block order (Decred: regular then stake).
    pub txs: Vec<ParsedTx>,
    /// Bytes after the last transaction (block signature, MWEB extension block, ...).
    pub trailing_bytes: usize,
}

/// How a block that parsed contradicts its own header ([`Coin::check_block`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockFault {
    /// The txids hash to another merkle root than the one in the header.
    #[error(
        "its {txs} transactions do not match its header: they give merkle root {}, the header \
         has {}",
        hash_to_hex(.computed),
        hash_to_hex(.in_header)
    )]
    MerkleMismatch {
        /// the root in the header
        in_header: Hash32,
        /// the root of the block's txids
        computed: Hash32,
        /// how many transactions the block holds
        txs: usize,
    },
    /// The transaction list repeats a run of transactions in a way that keeps the header's
    /// merkle root (CVE-2012-2459): the same header with transactions that were never mined.
    #[error(
        "its transaction list is mutated: it repeats transactions in a way that keeps the \
         header's merkle root (CVE-2012-2459)"
    )]
    MutatedTransactions,
    /// Bytes after the last transaction, on a network whose blocks end there.
    #[error("{0} bytes follow its last transaction, where the block should end")]
    TrailingBytes(usize),
}

/// How the node's fee estimation is reached.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcInfo {
    pub dialect: RpcDialect,
    pub fee_style: FeeStyle,
    /// Whether `getblock <hash> 0|false` returns the raw block (false for the legacy dialects).
    pub raw_blocks: bool,
    /// Constant fee rate (coin per kB) answered without the node (fixed-fee dialects).
    pub estimate_fee: Option<f64>,
    /// Constant relay fee (coin per kB) for fixed-fee dialects.
    pub relay_fee: Option<f64>,
    /// Accepted `mode` arguments of `blockchain.estimatefee` (empty string = none).
    pub estimatefee_modes: Vec<String>,
}

/// A coin/network as the server sees it. Object-safe; defaults are Bitcoin's.
pub trait Coin: Send + Sync {
    /// Parameters of the network (name, ticker, genesis, ports, prefixes, limits...).
    fn params(&self) -> &NetworkParams;

    /// Block hash of a header as stored/served (internal byte order).
    /// [`Error::HashUnavailable`] when the algorithm is not implemented or compiled out.
    fn header_hash(&self, header: &[u8]) -> Result<Hash32, Error>;

    /// Previous block hash: header bytes 4..36 for every supported coin.
    fn header_prev_hash(&self, header: &[u8]) -> Result<Hash32, Error> {
        header
            .get(4..36)
            .and_then(|s| s.try_into().ok())
            .ok_or(Error::Malformed {
                height: None,
                offset: header.len(),
                what: "header shorter than 36 bytes",
            })
    }

    /// Header length of a block at `height` when it is computable from the height
    /// alone (`None` for variable headers: AuxPoW, Equihash, Primecoin, ...).
    fn header_len_at(&self, height: u32) -> Option<usize>;

    /// Whether every header's length follows from its height (arithmetic header file).
    fn static_headers(&self) -> bool {
        self.params().static_headers()
    }

    /// Parses a raw block. `height` is used for height-dependent layouts and in errors.
    fn parse_block(&self, raw: &[u8], height: Option<u32>) -> Result<ParsedBlock, Error>;

    /// The header (as served) at the front of a raw block, without parsing the
    /// transactions.
    fn block_header(&self, raw: &[u8], height: Option<u32>) -> Result<Vec<u8>, Error> {
        Ok(self.parse_block(raw, height)?.header)
    }

    /// Parses one raw transaction (trailing bytes are an error).
    fn parse_tx(&self, raw: &[u8]) -> Result<ParsedTx, Error>;

    /// Whether an output can never be spent (and is not indexed).
    fn is_unspendable(&self, script: &[u8], height: u32) -> bool {
        script::is_unspendable(script, height, self.params().genesis_activation)
    }

    /// Electrum script hash (internal order): SHA-256 of the script, after removing a
    /// name-operation prefix on name coins.
    fn script_hash(&self, script: &[u8]) -> Hash32 {
        hash::sha256(script)
    }

    /// For name-index coins (Namecoin, Xaya): the synthetic script under which a name
    /// operation revealing a name is indexed.
    fn name_index_script(&self, _script: &[u8]) -> Option<Vec<u8>> {
        None
    }

    /// Decodes an address (Base58Check with the coin's checksum, bech32/bech32m,
    /// CashAddr) to its output script.
    fn address_to_script(&self, addr: &str) -> Result<Vec<u8>, Error>;

    /// Encodes a standard output script as an address, when it has one.
    fn script_to_address(&self, script: &[u8]) -> Option<String>;

    /// Node RPC dialect information.
    fn rpc(&self) -> RpcInfo;

    /// Whether the genesis block's transactions are indexed (Xaya, ElectraProtocol).
    fn index_genesis_outputs(&self) -> bool {
        self.params().genesis == GenesisRule::IndexOutputs
    }

    /// Block encoder for chain simulators; `None` for families without one.
    fn encoder(&self) -> Option<&dyn BlockEncoder>;

    /// Checks a parsed block against what its header commits to: the merkle root of its
    /// txids (with Bitcoin Core's mutation rule), and, on networks without
    /// [`NetworkParams::trailing_data`], that nothing follows the last transaction. Decred's
    /// trees (BLAKE-256, stake transactions in their own tree) are not checked, nor is a
    /// genesis block whose transactions the network does not parse. Together with the block
    /// hash this ties every byte the index uses to the header's proof of work.
    fn check_block(&self, block: &ParsedBlock, height: Option<u32>) -> Result<(), BlockFault> {
        let params = self.params();
        if !params.trailing_data && block.trailing_bytes > 0 {
            return Err(BlockFault::TrailingBytes(block.trailing_bytes));
        }
        let unparsed_genesis = params.genesis == GenesisRule::NoTransactions && height == Some(0);
        if params.tx_format == TxFormat::Decred || unparsed_genesis {
            return Ok(());
        }
        let Some(in_header) = block
            .header
            .get(36..68)
            .and_then(|root| Hash32::try_from(root).ok())
        else {
            // Headers shorter than the merkle root fail to parse; nothing to compare.
            return Ok(());
        };
        let txids: Vec<Hash32> = block.txs.iter().map(|tx| tx.txid).collect();
        let (computed, mutated) = merkle_root_and_mutation(&txids);
        if computed != in_header {
            return Err(BlockFault::MerkleMismatch {
                in_header,
                computed,
                txs: txids.len(),
            });
        }
        if mutated {
            return Err(BlockFault::MutatedTransactions);
        }
        Ok(())
    }
}

/// What a chain simulator needs to build blocks in a family's format.
pub trait BlockEncoder: Send + Sync {
    /// A coinbase transaction for `height` paying `outputs` (BIP34 height push in the
    /// scriptSig, `extra_nonce` appended so equal heights can give distinct txids).
    fn coinbase(
        &self,
        height: u32,
        extra_nonce: u32,
        outputs: &[TxOut],
    ) -> Result<EncodedTx, Error>;

    /// A transaction spending `inputs` to `outputs`, with dummy but well-formed
    /// scriptSigs (and witnesses, for SegWit families).
    fn spend(&self, inputs: &[OutPoint], outputs: &[TxOut]) -> Result<EncodedTx, Error>;

    /// Assembles a block: header from the template, merkle root of the txids,
    /// proof of work ground against the template's bits with the family's block hash.
    fn block(&self, template: &BlockTemplate, txs: &[EncodedTx]) -> Result<EncodedBlock, Error>;
}

/// SHA-256d merkle root of txids (internal order), Bitcoin rules (odd levels duplicate
/// their last entry). The root of an empty list is all zeros.
pub fn merkle_root(txids: &[Hash32]) -> Hash32 {
    match merkle_root_with(txids, |pair| {
        Ok::<_, std::convert::Infallible>(hash::sha256d(pair))
    }) {
        Ok(root) => root,
        Err(never) => match never {},
    }
}

/// [`merkle_root`] and whether some level pairs two equal hashes, which Bitcoin Core calls a
/// mutated tree: a transaction list with a repeated run (CVE-2012-2459) gives the same root as
/// the list that was mined.
pub fn merkle_root_and_mutation(txids: &[Hash32]) -> (Hash32, bool) {
    if txids.is_empty() {
        return ([0; 32], false);
    }
    let mut mutated = false;
    let mut level: Vec<Hash32> = txids.to_vec();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            // An odd level's last hash is paired with itself by the rule, not by the block.
            let right = match pair.get(1) {
                Some(right) => {
                    mutated |= *right == pair[0];
                    right
                }
                None => &pair[0],
            };
            let mut buf = [0u8; 64];
            buf[..32].copy_from_slice(&pair[0]);
            buf[32..].copy_from_slice(right);
            next.push(hash::sha256d(&buf));
        }
        level = next;
    }
    (level[0], mutated)
}

/// Merkle root of `txids` with `hash_pair` hashing each 64-byte concatenated pair; odd levels
/// duplicate their last entry and an empty list has the all-zero root (Bitcoin's rules, also
/// Decred's with BLAKE-256).
pub(crate) fn merkle_root_with<E>(
    txids: &[Hash32],
    mut hash_pair: impl FnMut(&[u8; 64]) -> Result<Hash32, E>,
) -> Result<Hash32, E> {
    if txids.is_empty() {
        return Ok([0; 32]);
    }
    let mut level: Vec<Hash32> = txids.to_vec();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            let right = pair.get(1).unwrap_or(&pair[0]);
            let mut buf = [0u8; 64];
            buf[..32].copy_from_slice(&pair[0]);
            buf[32..].copy_from_slice(right);
            next.push(hash_pair(&buf)?);
        }
        level = next;
    }
    Ok(level[0])
}
