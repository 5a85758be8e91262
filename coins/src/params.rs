//! Network parameters: the data-file schema (`coins/networks/*.toml`) and its
//! validated form.

use serde::Deserialize;

use crate::hash::HashAlgo;
use crate::header::HeaderLayout;
use crate::{hash_from_hex, hex_decode, Error, Hash32};

/// Transaction format kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxFormat {
    /// version, inputs, outputs, locktime.
    Legacy,
    /// BIP144 SegWit (reads legacy transactions too).
    Segwit,
    /// SegWit plus Litecoin's MWEB flag (0x08) and HogEx integration transactions.
    LitecoinMweb,
    /// Zcash v1-v4 (Overwinter, Sapling), transparent parts indexed.
    Zcash,
    /// Dash DIP2: type in the high 16 bits of the version (when version >= 3) and an
    /// extra payload after the locktime.
    Dash,
    /// PIVX: DIP2-style type, Sapling data for version >= 3.
    Pivx,
    /// A 4-byte time after the version (Peercoin-style, no SegWit).
    Time,
    /// Time after the version, then BIP144 SegWit (Peercoin, Emercoin).
    TimeSegwit,
    /// Time-SegWit plus a length-prefixed string after the locktime for version >= 2.
    Navcoin,
    /// Time after version plus a comment string for version >= 2.
    Trezarcoin,
    /// Time after version only for version < 2.
    Blackcoin,
    /// Time after the locktime for version > 1.
    Reddcoin,
    /// Time after version unless version is 7.
    Electra,
    /// Time after version; 32 extra bytes after the locktime for version > 1.
    Eccoin,
    /// Time after version for version < 3.
    Simplicity,
    /// Time after version; stealth inputs (`OP_RETURN 0xb9 ...`) count as coinbase-like.
    Tokenpay,
    /// Legacy; Sigma spends (script starting 0xc4) count as coinbase-like.
    Zcoin,
    /// SegWit; version 12 carries a 32-byte previous-block hash after the version.
    BitcoinDiamond,
    /// Decred: prefix/witness split, two transaction trees, BLAKE-256 txid.
    Decred,
}

/// Hash applied to the txid serialization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TxidHash {
    #[default]
    Sha256d,
    Sha256,
    Blake256,
}

/// Node RPC dialect (ElectrumX's `DAEMON` classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RpcDialect {
    #[default]
    Standard,
    /// Masternode/ProTx calls.
    Dash,
    #[serde(rename = "smartcash")]
    SmartCash,
    ZcoinMtp,
    /// Fees answered from constants.
    FixedFee,
    /// Node has no raw `getblock`; blocks are rebuilt from verbose data.
    Legacy,
    FixedFeeLegacy,
    PreLegacy,
    Decred,
}

/// How fee estimates are answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeeStyle {
    /// `estimatesmartfee`, falling back to `estimatefee`.
    EstimateSmartFee,
    /// Constants from the network definition.
    Fixed,
}

/// Genesis block handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GenesisRule {
    /// Index the genesis header only (its coinbase is unspendable).
    #[default]
    HeaderOnly,
    /// Index the genesis transactions too (Xaya, ElectraProtocol).
    IndexOutputs,
    /// Do not even parse transactions at height 0 (FairCoin, Decred).
    NoTransactions,
}

/// Order in which a block is undone on a reorganisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UndoOrder {
    #[default]
    Standard,
    /// Canonical transaction order (Bitcoin Cash): restore all spends first.
    Ltor,
    /// Decred: every reorganisation also undoes one more block.
    Decred,
}

/// Name-operation handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NameIndex {
    #[default]
    None,
    /// Strip prefixes, index names (`OP_NAME_UPDATE` = OP_3).
    Namecoin,
    /// Strip prefixes, index names (`OP_NAME_UPDATE` = OP_2).
    Xaya,
    /// Strip prefixes only.
    Emercoin,
}

/// Base58Check checksum algorithm (a [`HashAlgo`] name).
pub type Base58Check = HashAlgo;

/// One conditional block-hash rule; the first whose conditions all hold applies.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashRule {
    #[serde(default)]
    pub version_lt: Option<u32>,
    #[serde(default)]
    pub version_le: Option<u32>,
    #[serde(default)]
    pub version_ge: Option<u32>,
    #[serde(default)]
    pub version_ne: Option<u32>,
    #[serde(default)]
    pub time_lt: Option<u32>,
    #[serde(default)]
    pub time_ge: Option<u32>,
    #[serde(deserialize_with = "de_hash")]
    pub hash: HashAlgo,
}

impl HashRule {
    pub(crate) fn matches(&self, version: u32, time: u32) -> bool {
        self.version_lt.is_none_or(|v| version < v)
            && self.version_le.is_none_or(|v| version <= v)
            && self.version_ge.is_none_or(|v| version >= v)
            && self.version_ne.is_none_or(|v| version != v)
            && self.time_lt.is_none_or(|t| time < t)
            && self.time_ge.is_none_or(|t| time >= t)
    }
}

fn de_hash<'de, D: serde::Deserializer<'de>>(d: D) -> Result<HashAlgo, D::Error> {
    let s = String::deserialize(d)?;
    HashAlgo::from_name(&s)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown hash algorithm {s:?}")))
}

fn de_hash_default_sha256d<'de, D: serde::Deserializer<'de>>(d: D) -> Result<HashAlgo, D::Error> {
    de_hash(d)
}

fn sha256d() -> HashAlgo {
    HashAlgo::Sha256d
}

/// Header layout and block-hash rule.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderSpec {
    pub layout: HeaderLayout,
    /// Fixed size, or the fixed part of a variable header (AuxPoW 80, Equihash 140).
    #[serde(default = "default_header_size")]
    pub size: usize,
    /// `[[from_height, size], ...]`: header size by height (Ravencoin, PIVX, Odin...).
    #[serde(default)]
    pub size_schedule: Vec<(u32, usize)>,
    /// Default block-hash algorithm.
    #[serde(default = "sha256d", deserialize_with = "de_hash_default_sha256d")]
    pub hash: HashAlgo,
    /// Conditional algorithms by header version or time; first match wins.
    #[serde(default)]
    pub hash_rules: Vec<HashRule>,
    /// Hash only this many leading bytes of the served header (Xaya: 80 of 85).
    #[serde(default)]
    pub hash_prefix: Option<usize>,
    /// Length headers are cut to for serving (AuxPoW 80, Xaya 85).
    #[serde(default)]
    pub truncated_size: Option<usize>,
    /// Bitcoin Gold: headers below this height hash as a rebuilt Bitcoin header.
    #[serde(default)]
    pub fork_height: Option<u32>,
    /// Offset of the 4-byte time field; bits and nonce follow it when the header has
    /// proof of work. 68 in Bitcoin's layout; 100 where a 32-byte root sits between
    /// the merkle root and the time (Lbry's claim trie, FairCoin's payload hash).
    #[serde(default = "default_time_offset")]
    pub time_offset: usize,
    /// False for headers without bits and nonce (FairCoin: blocks are signed by
    /// validators; a 4-byte creator id follows the time instead).
    #[serde(default = "default_true")]
    pub proof_of_work: bool,
}

fn default_header_size() -> usize {
    80
}

fn default_time_offset() -> usize {
    68
}

fn default_true() -> bool {
    true
}

impl HeaderSpec {
    /// The header's time field, when the header is long enough to hold it.
    pub fn time(&self, header: &[u8]) -> Option<u32> {
        let b = header.get(self.time_offset..self.time_offset.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Electrum ports assumed for peers that list none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElectrumPorts {
    pub tcp: u16,
    pub ssl: u16,
}

impl Default for ElectrumPorts {
    fn default() -> Self {
        ElectrumPorts {
            tcp: 50001,
            ssl: 50002,
        }
    }
}

/// Initial-sync time estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SyncEstimate {
    pub tx_count: u64,
    pub tx_count_height: u32,
    pub tx_per_block: u32,
}

/// Node RPC settings.
#[derive(Clone, Debug, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RpcSpec {
    #[serde(default)]
    pub dialect: RpcDialect,
    /// Constant fee rate (coin per kB) for the fixed-fee dialects.
    #[serde(default)]
    pub estimate_fee: Option<f64>,
    /// Constant relay fee (coin per kB) for the fixed-fee dialects.
    #[serde(default)]
    pub relay_fee: Option<f64>,
    /// Minimum node version (Bitcoin: "31.0").
    #[serde(default)]
    pub min_daemon_version: Option<String>,
    /// Node indexes that must be enabled (Bitcoin: txindex, txospenderindex).
    #[serde(default)]
    pub required_indexes: Vec<String>,
    /// Round fee targets to the ones Bitcoin Core tracks.
    #[serde(default)]
    pub bucket_fee_targets: bool,
}

/// The TOML form of a network entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkDef {
    coin: String,
    net: String,
    #[serde(default)]
    aliases: Vec<String>,
    ticker: String,
    genesis_hash: String,
    #[serde(default)]
    rpc_port: Option<u16>,
    #[serde(default)]
    p2p_magic: Option<String>,
    #[serde(default)]
    p2p_port: Option<u16>,
    #[serde(default)]
    p2p_protocol_version: Option<u32>,
    #[serde(default)]
    p2p_max_message: Option<u64>,
    p2pkh: String,
    p2sh: Vec<String>,
    #[serde(default)]
    wif: Option<String>,
    #[serde(default)]
    bech32_hrp: Option<String>,
    #[serde(default)]
    cashaddr_prefix: Option<String>,
    #[serde(default = "sha256d", deserialize_with = "de_hash_default_sha256d")]
    base58_checksum: HashAlgo,
    #[serde(default = "default_value_per_coin")]
    value_per_coin: u64,
    #[serde(default = "default_reorg_limit")]
    reorg_limit: u32,
    #[serde(default)]
    electrum_ports: ElectrumPorts,
    #[serde(default)]
    peers: Vec<String>,
    #[serde(default)]
    sync_estimate: SyncEstimate,
    header: HeaderSpec,
    tx_format: TxFormat,
    #[serde(default)]
    txid_hash: TxidHash,
    #[serde(default)]
    rpc: RpcSpec,
    #[serde(default)]
    genesis: GenesisRule,
    #[serde(default)]
    undo: UndoOrder,
    #[serde(default)]
    genesis_activation: Option<u32>,
    #[serde(default)]
    name_index: NameIndex,
    #[serde(default)]
    default_max_send: Option<usize>,
    #[serde(default)]
    mempool_histogram_refresh_secs: Option<u32>,
    #[serde(default)]
    client_warning: bool,
    #[serde(default = "default_true")]
    trailing_data: bool,
    #[serde(default)]
    notes: Option<String>,
}

fn default_value_per_coin() -> u64 {
    100_000_000
}

fn default_reorg_limit() -> u32 {
    200
}

/// Validated parameters of one network (docs/coins.md, Network parameters).
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkParams {
    /// ElectrumX `NAME` (the `COIN` setting).
    pub coin: String,
    /// ElectrumX `NET`.
    pub net: String,
    /// Other accepted `COIN` spellings.
    pub aliases: Vec<String>,
    pub ticker: String,
    /// Genesis block hash, internal byte order.
    pub genesis_hash: Hash32,
    pub rpc_port: Option<u16>,
    /// P2P message-start ("magic") bytes, in wire order (Bitcoin mainnet `f9beb4d9`); `None`
    /// where the network's value is not recorded (no P2P block source then).
    pub p2p_magic: Option<[u8; 4]>,
    /// The node's default P2P port.
    pub p2p_port: Option<u16>,
    /// Protocol version to announce in `version` (`None`: the P2P client's default, 70016).
    pub p2p_protocol_version: Option<u32>,
    /// Largest P2P message payload accepted, in bytes (`None`: the P2P client's default).
    pub p2p_max_message: Option<u64>,
    /// P2PKH version byte(s) (1 or 2 bytes).
    pub p2pkh: Vec<u8>,
    /// Accepted P2SH version bytes; the first is used for encoding.
    pub p2sh: Vec<Vec<u8>>,
    pub wif: Option<Vec<u8>>,
    pub bech32_hrp: Option<String>,
    pub cashaddr_prefix: Option<String>,
    pub base58_checksum: HashAlgo,
    pub value_per_coin: u64,
    pub reorg_limit: u32,
    pub electrum_ports: ElectrumPorts,
    pub peers: Vec<String>,
    pub sync_estimate: SyncEstimate,
    pub header: HeaderSpec,
    pub tx_format: TxFormat,
    pub txid_hash: TxidHash,
    pub rpc: RpcSpec,
    pub genesis: GenesisRule,
    pub undo: UndoOrder,
    /// Bitcoin SV: height from which only `OP_FALSE OP_RETURN` is unspendable.
    pub genesis_activation: Option<u32>,
    pub name_index: NameIndex,
    /// Largest response in bytes (8,100,000; AuxPoW 10,000,000).
    pub default_max_send: usize,
    pub mempool_histogram_refresh_secs: u32,
    /// Append an upgrade warning for old clients on broadcast (Bitcoin, Bitcoin Cash).
    pub client_warning: bool,
    /// Whether a block may carry bytes after its last transaction (a proof-of-stake block
    /// signature, Litecoin's MWEB extension block). Where it may not, such bytes make the
    /// block malformed ([`crate::Coin::check_block`]).
    pub trailing_data: bool,
    pub notes: Option<String>,
}

impl NetworkParams {
    /// True when every header's length follows from its height.
    pub fn static_headers(&self) -> bool {
        self.header.layout.is_static()
    }

    /// `coin/net` as used in messages.
    pub fn id(&self) -> String {
        format!("{}/{}", self.coin, self.net)
    }

    /// Every hash algorithm the network's block hash may need.
    pub fn hash_algos(&self) -> Vec<HashAlgo> {
        let mut v = vec![self.header.hash];
        for r in &self.header.hash_rules {
            if !v.contains(&r.hash) {
                v.push(r.hash);
            }
        }
        v
    }

    /// Whether every block-hash algorithm of the network is compiled in.
    pub fn hash_available(&self) -> bool {
        self.hash_algos().iter().all(|a| a.available())
    }

    fn from_def(d: NetworkDef) -> Result<Self, Error> {
        let id = format!("{}/{}", d.coin, d.net);
        let bad = |what: &str| Error::Config(format!("{id}: {what}"));
        let prefix = |s: &str| -> Result<Vec<u8>, Error> {
            match hex_decode(s) {
                Some(v) if !v.is_empty() && v.len() <= 4 => Ok(v),
                _ => Err(bad(&format!("bad version bytes {s:?}"))),
            }
        };
        if d.coin.trim().is_empty() || d.net.trim().is_empty() {
            return Err(bad("coin and net must be non-empty"));
        }
        let genesis_hash = hash_from_hex(&d.genesis_hash).map_err(|e| bad(&e.to_string()))?;
        let p2pkh = prefix(&d.p2pkh)?;
        let p2sh = d
            .p2sh
            .iter()
            .map(|s| prefix(s))
            .collect::<Result<Vec<_>, _>>()?;
        if p2sh.is_empty() {
            return Err(bad("p2sh needs at least one prefix"));
        }
        let wif = d.wif.as_deref().map(prefix).transpose()?;
        let p2p_magic = match d.p2p_magic.as_deref() {
            None => None,
            Some(s) => Some(
                hex_decode(s)
                    .and_then(|v| <[u8; 4]>::try_from(v).ok())
                    .ok_or_else(|| bad(&format!("p2p_magic {s:?} is not 4 hex bytes")))?,
            ),
        };
        if d.p2p_max_message == Some(0) {
            return Err(bad("p2p_max_message must be positive"));
        }
        let h = &d.header;
        if h.size < 80 && d.tx_format != TxFormat::Decred {
            return Err(bad("header size below 80"));
        }
        if h.hash_prefix.is_some_and(|n| n < 80) || h.truncated_size.is_some_and(|n| n < 80) {
            return Err(bad("hash_prefix and truncated_size must be at least 80"));
        }
        if h.size_schedule.iter().any(|&(_, s)| s < 80) {
            return Err(bad("header size schedule entry below 80"));
        }
        if h.size_schedule.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(bad("header size schedule heights must increase"));
        }
        if h.time_offset != 68 || !h.proof_of_work {
            // Only plain fixed headers may move the time or drop the nonce: the other
            // layouts (and Decred's 180 bytes) have their own walkers and encoders.
            if h.layout != HeaderLayout::Fixed || d.tx_format == TxFormat::Decred {
                return Err(bad(
                    "time_offset and proof_of_work apply to fixed non-Decred headers only",
                ));
            }
            if h.time_offset < 68 {
                return Err(bad("time_offset below 68 would overlap the merkle root"));
            }
            // time, then bits and nonce (proof of work) or a creator id (FairCoin)
            let fields_end = h.time_offset + if h.proof_of_work { 12 } else { 8 };
            let smallest = h
                .size_schedule
                .iter()
                .map(|&(_, s)| s)
                .chain(std::iter::once(h.size))
                .min()
                .unwrap_or(h.size);
            if fields_end > smallest {
                return Err(bad(
                    "header fields after time_offset exceed the header size",
                ));
            }
        }
        if d.value_per_coin == 0 {
            return Err(bad("value_per_coin must be positive"));
        }
        match (d.tx_format, h.layout) {
            (TxFormat::Decred, HeaderLayout::Fixed) if h.size == 180 => {}
            (TxFormat::Decred, _) => {
                return Err(bad("decred transactions need a fixed 180-byte header"))
            }
            _ => {}
        }
        Ok(NetworkParams {
            coin: d.coin,
            net: d.net,
            aliases: d.aliases,
            ticker: d.ticker,
            genesis_hash,
            rpc_port: d.rpc_port,
            p2p_magic,
            p2p_port: d.p2p_port,
            p2p_protocol_version: d.p2p_protocol_version,
            p2p_max_message: d.p2p_max_message,
            p2pkh,
            p2sh,
            wif,
            bech32_hrp: d.bech32_hrp,
            cashaddr_prefix: d.cashaddr_prefix,
            base58_checksum: d.base58_checksum,
            value_per_coin: d.value_per_coin,
            reorg_limit: d.reorg_limit,
            electrum_ports: d.electrum_ports,
            peers: d.peers,
            sync_estimate: d.sync_estimate,
            default_max_send: d.default_max_send.unwrap_or(match d.header.layout {
                HeaderLayout::Auxpow | HeaderLayout::Xaya => 10_000_000,
                _ => 8_100_000,
            }),
            header: d.header,
            tx_format: d.tx_format,
            txid_hash: d.txid_hash,
            rpc: d.rpc,
            genesis: d.genesis,
            undo: d.undo,
            genesis_activation: d.genesis_activation,
            name_index: d.name_index,
            mempool_histogram_refresh_secs: d.mempool_histogram_refresh_secs.unwrap_or(500),
            client_warning: d.client_warning,
            trailing_data: d.trailing_data,
            notes: d.notes,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkFile {
    #[serde(default)]
    network: Vec<NetworkDef>,
}

/// Parses a TOML document of `[[network]]` entries. `origin` names it in errors.
pub(crate) fn parse_networks(text: &str, origin: &str) -> Result<Vec<NetworkParams>, Error> {
    let file: NetworkFile =
        toml::from_str(text).map_err(|e| Error::Config(format!("{origin}: {e}")))?;
    file.network
        .into_iter()
        .map(|d| NetworkParams::from_def(d).map_err(|e| Error::Config(format!("{origin}: {e}"))))
        .collect()
}
