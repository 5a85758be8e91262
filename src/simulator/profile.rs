//! Workload profiles: the shape of a simulated chain.

/// The statistical shape of a simulated chain. Every draw comes from the chain's seeded RNG, so
/// a profile and a seed fix the chain byte for byte.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// profile name (`tiny`, `mainnet-like`)
    pub name: &'static str,
    /// transactions per block besides the coinbase: uniform in this range
    pub txs_per_block: (u32, u32),
    /// inputs per transaction: uniform in this range (capped by what is spendable)
    pub inputs_per_tx: (u32, u32),
    /// outputs per transaction: uniform in this range
    pub outputs_per_tx: (u32, u32),
    /// relative weights of P2PKH, P2SH, P2WPKH, P2WSH, P2TR and OP_RETURN outputs; the SegWit
    /// kinds fall back to P2PKH on coins without SegWit
    pub script_weights: [u32; 6],
    /// probability that an output pays an already-used script rather than a fresh one
    pub reuse_probability: f64,
    /// how many scripts the reuse draws from; a power law concentrates the draws on the first
    /// few, so rank 0 collects a large share (the "very popular address")
    pub popular_scripts: usize,
    /// exponent of the power law (higher = heavier head)
    pub reuse_exponent: f64,
}

impl Profile {
    /// Small blocks for tests: every script kind, some reuse, a handful of txs per block.
    pub fn tiny() -> Self {
        Profile {
            name: "tiny",
            txs_per_block: (1, 6),
            inputs_per_tx: (1, 3),
            outputs_per_tx: (1, 3),
            script_weights: [4, 2, 3, 1, 1, 1],
            reuse_probability: 0.3,
            popular_scripts: 20,
            reuse_exponent: 2.0,
        }
    }

    /// Shapes like Bitcoin mainnet's recent blocks, scaled by `txs_per_block`: ~2.2 inputs and
    /// ~2.6 outputs per transaction, mostly SegWit, heavy-tailed address reuse with a few very
    /// popular scripts.
    pub fn mainnet_like() -> Self {
        Profile {
            name: "mainnet-like",
            txs_per_block: (300, 700),
            inputs_per_tx: (1, 3),
            outputs_per_tx: (1, 4),
            script_weights: [20, 12, 40, 8, 15, 5],
            reuse_probability: 0.35,
            popular_scripts: 5000,
            reuse_exponent: 4.0,
        }
    }

    /// The profile called `name`.
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "tiny" => Some(Self::tiny()),
            "mainnet-like" | "mainnet" => Some(Self::mainnet_like()),
            _ => None,
        }
    }
}
