use serde::Deserialize;

/// A 32-byte hash in internal byte order.
pub type Hash32 = [u8; 32];

/// The parts of `getblockchaininfo` the server uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChainInfo {
    /// `main`, `test`, `regtest`, ...
    pub chain: String,
    /// height of the node's best block
    pub blocks: u32,
    /// height of the best header the node knows
    #[serde(default)]
    pub headers: u32,
    /// display-order hash of the best block
    pub bestblockhash: String,
    /// whether the node prunes old blocks
    #[serde(default)]
    pub pruned: bool,
    /// whether the node is still in its initial download
    #[serde(default)]
    pub initialblockdownload: bool,
}

/// `getmempoolinfo`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MempoolInfo {
    /// transactions in the mempool
    pub size: u64,
    /// their total virtual size
    #[serde(default)]
    pub bytes: u64,
    /// memory the mempool uses
    #[serde(default)]
    pub usage: u64,
    /// the lowest fee rate accepted now, coin units per kB
    #[serde(default)]
    pub mempoolminfee: f64,
    /// the node's relay fee, coin units per kB
    #[serde(default)]
    pub minrelaytxfee: f64,
    /// the fee-rate step a replacement must add, coin units per kB (absent on old nodes)
    #[serde(default)]
    pub incrementalrelayfee: Option<f64>,
}

/// One `getrawmempool true` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MempoolEntry {
    /// virtual size
    #[serde(default)]
    pub vsize: u64,
    /// fee in coin units
    #[serde(default)]
    pub fee: f64,
}

/// A fee estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FeeEstimate {
    /// coin units per kB
    Rate(f64),
    /// the node has data but no estimate for that target yet
    Unknown,
    /// the node has no fee estimation methods at all (e.g. Bitcoin SV)
    Unavailable,
}
