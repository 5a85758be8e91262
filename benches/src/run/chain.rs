//! The benchmark chain and the workload's targets on it: scripts of chosen history sizes,
//! confirmed transactions, and scripts for the wallet storm. The targets come from the
//! simulated chain in process (`all`) or from any node's blocks over its RPC (`peer`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anode::daemon::{hash_to_hex, DaemonApi};
use anode::simulator::{Profile, SimChain};
use anode_coins::{Coin, Hash32, OutPoint, TxOut};
use anyhow::Context;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::results::ChainFacts;

/// How far (as a fraction of the wanted size) the mainnet-like part's closest script may be
/// from a wanted history size before the hot segment adds a script of exactly that size.
pub const HISTORY_TOLERANCE: f64 = 0.1;
/// Transactions per block of the hot segment (the hot scripts' transactions share each block).
const HOT_BLOCK_TXS: u64 = 2_000;
/// What a hot script pays out per transaction, base units (drawn in this range).
const HOT_PAYMENT: (u64, u64) = (5_000, 30_000);
/// Fee of a hot transaction (1 input, 2 outputs), base units.
const HOT_FEE: u64 = 300;

/// The benchmark chain from `seed`: the simulator's `mainnet-like` blocks up to at least `txs`
/// transactions, then a "hot address" segment for each of `history_sizes` that no script of
/// those blocks has within [`HISTORY_TOLERANCE`] (the mainnet-like chain's largest history is
/// about a sixth of its transactions: ~26k in the 150k-transaction `small` chain).
///
/// The hot segment gives every missing size a script of its own with exactly that many
/// transactions: a chain of 1-input, 2-output payments, each spending the script's previous
/// change and paying a fresh script and the change back to the hot script, like an exchange's
/// hot wallet. The first one spends an unspent coinbase output (more are added as inputs when
/// the change runs low). The hot scripts' transactions are interleaved over blocks of
/// [`HOT_BLOCK_TXS`] transactions mined with [`SimChain::mine_mempool`], so each history spans
/// the whole segment and no random transaction spends a hot output mid-chain.
pub fn build_chain(
    coin: Arc<dyn Coin>,
    seed: u64,
    txs: u64,
    history_sizes: &[u64],
) -> anyhow::Result<(SimChain, ChainFacts)> {
    let started = Instant::now();
    let mut chain = SimChain::new(coin, Profile::mainnet_like(), seed).context("new chain")?;
    let mut total = 0u64;
    while total < txs {
        let from = chain.height() + 1;
        chain.mine(10, true).context("mining the benchmark chain")?;
        total += (from..=chain.height())
            .map(|h| chain.block(h).map_or(0, |b| b.txids.len() as u64))
            .sum::<u64>();
    }
    let mainnet_height = chain.height();
    let natural = history_counts(&chain)?.finish(history_sizes, 0);
    let missing: Vec<u64> = history_sizes
        .iter()
        .copied()
        .filter(|&wanted| {
            !natural.history.iter().any(|t| {
                t.wanted == wanted
                    && (t.txs as f64 - wanted as f64).abs() <= HISTORY_TOLERANCE * wanted as f64
            })
        })
        .collect();
    let hot_txs = add_hot_segment(&mut chain, seed, &missing)?;
    total += (mainnet_height + 1..=chain.height())
        .map(|h| chain.block(h).map_or(0, |b| b.txids.len() as u64))
        .sum::<u64>();
    let block_bytes = (0..=chain.height())
        .map(|h| chain.block(h).map_or(0, |b| b.raw.len() as u64))
        .sum();
    let facts = ChainFacts {
        blocks: chain.height() + 1,
        txs: total + 1,
        block_bytes,
        build_seconds: started.elapsed().as_secs_f64(),
        hot_blocks: chain.height() - mainnet_height,
        hot_txs,
        hot_sizes: missing,
        history: Vec::new(),
    };
    Ok((chain, facts))
}

/// A fresh P2WPKH script drawn from `rng`.
fn random_script(rng: &mut impl Rng) -> Vec<u8> {
    let mut script = vec![0x00, 0x14];
    script.extend((0..20).map(|_| rng.gen::<u8>()));
    script
}

/// One hot script being built: its script, the output it spends next and what it has left.
struct HotScript {
    script: Vec<u8>,
    wanted: u64,
    made: u64,
    coin: Option<(OutPoint, u64)>,
}

/// The next unspent coinbase output at or above `*height` (which moves past it).
fn next_coinbase(chain: &SimChain, height: &mut u32) -> anyhow::Result<(OutPoint, u64)> {
    while *height <= chain.height() {
        let h = *height;
        *height += 1;
        let Some(txid) = chain.block(h).and_then(|b| b.txids.first().copied()) else {
            continue;
        };
        let outpoint = OutPoint { txid, vout: 0 };
        if chain.output_spender(&outpoint) == Some(None) {
            if let Some(out) = chain.output(&outpoint) {
                return Ok((outpoint, out.value));
            }
        }
    }
    anyhow::bail!("no unspent coinbase output left to fund the hot scripts")
}

/// Appends the hot segment: for each of `sizes`, a fresh script with exactly that many
/// transactions (see [`build_chain`]). Returns the transactions added, coinbases left out.
fn add_hot_segment(chain: &mut SimChain, seed: u64, sizes: &[u64]) -> anyhow::Result<u64> {
    let all: u64 = sizes.iter().sum();
    if all == 0 {
        return Ok(0);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x686f_7420_7363_7269);
    let mut hot: Vec<HotScript> = sizes
        .iter()
        .map(|&wanted| HotScript {
            script: random_script(&mut rng),
            wanted,
            made: 0,
            coin: None,
        })
        .collect();
    let coin = Arc::clone(chain.coin());
    let encoder = coin
        .encoder()
        .context("the coin has no block encoder for the hot segment")?;
    let blocks = all.div_ceil(HOT_BLOCK_TXS);
    let mut funding_height = 1u32;
    for block in 0..blocks {
        for h in hot.iter_mut() {
            // An even share of the script's history in every block of the segment.
            let due = (block + 1) * h.wanted / blocks - h.made;
            for _ in 0..due {
                let payment = rng.gen_range(HOT_PAYMENT.0..=HOT_PAYMENT.1);
                let mut inputs = Vec::with_capacity(2);
                let mut value = 0u64;
                if let Some((outpoint, v)) = h.coin {
                    inputs.push(outpoint);
                    value += v;
                }
                while value < payment + HOT_FEE + HOT_PAYMENT.1 {
                    let (outpoint, v) = next_coinbase(chain, &mut funding_height)?;
                    inputs.push(outpoint);
                    value += v;
                }
                let outputs = vec![
                    TxOut {
                        value: payment,
                        script: random_script(&mut rng),
                    },
                    TxOut {
                        value: value - payment - HOT_FEE,
                        script: h.script.clone(),
                    },
                ];
                let change = outputs[1].value;
                let tx = encoder
                    .spend(&inputs, &outputs)
                    .context("encoding a hot-script transaction")?;
                chain.accept_external(tx.txid, tx.raw, inputs, outputs, HOT_FEE);
                h.coin = Some((
                    OutPoint {
                        txid: tx.txid,
                        vout: 1,
                    },
                    change,
                ));
                h.made += 1;
            }
        }
        chain
            .mine_mempool()
            .context("mining a block of the hot segment")?;
    }
    Ok(all)
}

/// Per-script transaction counts of the whole chain (genesis left out, as Bitcoin's index
/// leaves it out).
fn history_counts(chain: &SimChain) -> anyhow::Result<TargetBuilder> {
    let mut builder = TargetBuilder::new(Arc::clone(chain.coin()));
    for height in 1..=chain.height() {
        let block = chain.block(height).context("block of the chain")?;
        for txid in &block.txids {
            let tx = chain.tx(txid).context("transaction of the chain")?;
            builder.add_tx(*txid, height, &tx.inputs, &tx.outputs);
        }
    }
    Ok(builder)
}

/// A script chosen for its history size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryTarget {
    /// the size looked for
    pub wanted: u64,
    /// Electrum script hash (hex, display order)
    pub scripthash: String,
    /// transactions in its history
    pub txs: u64,
}

/// What the query and storm workloads ask for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Targets {
    /// height of the chain's tip when the targets were taken
    pub tip_height: u32,
    /// transactions seen
    pub txs: u64,
    /// bytes of the blocks read
    #[serde(default)]
    pub block_bytes: u64,
    /// scripts for `get_history`, `listunspent` and `get_balance`, smallest first
    pub history: Vec<HistoryTarget>,
    /// confirmed transactions: (txid hex, height)
    pub confirmed: Vec<(String, u32)>,
    /// distinct scripts for the wallet storm (script hashes, hex)
    pub storm: Vec<String>,
}

/// Counts, per script, the transactions that touch it, as the chain is fed block by block.
pub struct TargetBuilder {
    coin: Arc<dyn Coin>,
    index: HashMap<Hash32, u32>,
    scripts: Vec<(Hash32, u64)>,
    unspent: HashMap<OutPoint, u32>,
    confirmed: Vec<(Hash32, u32)>,
    seen_txs: u64,
    tip: u32,
    rng: rand_chacha::ChaCha8Rng,
}

/// Transactions sampled for `transaction.get` and `get_merkle`.
const CONFIRMED_SAMPLE: usize = 5000;

impl TargetBuilder {
    /// An empty builder.
    pub fn new(coin: Arc<dyn Coin>) -> Self {
        TargetBuilder {
            coin,
            index: HashMap::new(),
            scripts: Vec::new(),
            unspent: HashMap::new(),
            confirmed: Vec::new(),
            seen_txs: 0,
            tip: 0,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(7),
        }
    }

    /// Feeds one confirmed transaction.
    pub fn add_tx(&mut self, txid: Hash32, height: u32, inputs: &[OutPoint], outputs: &[TxOut]) {
        self.tip = self.tip.max(height);
        let mut touched: Vec<u32> = Vec::with_capacity(inputs.len() + outputs.len());
        for input in inputs {
            if let Some(script) = self.unspent.remove(input) {
                touched.push(script);
            }
        }
        for (vout, output) in outputs.iter().enumerate() {
            if self.coin.is_unspendable(&output.script, height) {
                continue;
            }
            let hash = self.coin.script_hash(&output.script);
            let next = self.scripts.len() as u32;
            let script = *self.index.entry(hash).or_insert(next);
            if script == next {
                self.scripts.push((hash, 0));
            }
            self.unspent.insert(
                OutPoint {
                    txid,
                    vout: vout as u32,
                },
                script,
            );
            touched.push(script);
        }
        touched.sort_unstable();
        touched.dedup();
        for script in touched {
            self.scripts[script as usize].1 += 1;
        }
        // Reservoir sample of confirmed transactions.
        self.seen_txs += 1;
        if self.confirmed.len() < CONFIRMED_SAMPLE {
            self.confirmed.push((txid, height));
        } else {
            let slot = self.rng.gen_range(0..self.seen_txs);
            if (slot as usize) < CONFIRMED_SAMPLE {
                self.confirmed[slot as usize] = (txid, height);
            }
        }
    }

    /// The targets: for each wanted size the script whose history is closest to it (on a log
    /// scale), and `storm` distinct other scripts in order of first appearance.
    pub fn finish(self, history_sizes: &[u64], storm: usize) -> Targets {
        let mut history: Vec<HistoryTarget> = Vec::new();
        for &wanted in history_sizes {
            let distance = |count: u64| ((count.max(1) as f64).ln() - (wanted as f64).ln()).abs();
            if let Some((hash, txs)) = self
                .scripts
                .iter()
                .filter(|(h, _)| !history.iter().any(|t| t.scripthash == hash_to_hex(h)))
                .min_by(|a, b| distance(a.1).total_cmp(&distance(b.1)))
            {
                history.push(HistoryTarget {
                    wanted,
                    scripthash: hash_to_hex(hash),
                    txs: *txs,
                });
            }
        }
        let storm = self
            .scripts
            .iter()
            .map(|(h, _)| hash_to_hex(h))
            .filter(|h| !history.iter().any(|t| &t.scripthash == h))
            .take(storm)
            .collect();
        Targets {
            tip_height: self.tip,
            txs: self.seen_txs,
            block_bytes: 0,
            history,
            confirmed: self
                .confirmed
                .iter()
                .map(|(t, h)| (hash_to_hex(t), *h))
                .collect(),
            storm,
        }
    }
}

/// Targets of the simulated chain, read in process.
pub fn targets_of_chain(
    chain: &SimChain,
    history_sizes: &[u64],
    storm: usize,
) -> anyhow::Result<Targets> {
    let builder = history_counts(chain)?;
    let mut targets = builder.finish(history_sizes, storm);
    targets.block_bytes = (1..=chain.height())
        .map(|h| chain.block(h).map_or(0, |b| b.raw.len() as u64))
        .sum();
    Ok(targets)
}

/// Targets of the chain a node serves, read block by block over its RPC.
pub async fn targets_of_daemon(
    daemon: &dyn DaemonApi,
    coin: Arc<dyn Coin>,
    history_sizes: &[u64],
    storm: usize,
    mut progress: impl FnMut(u32, u32),
) -> anyhow::Result<Targets> {
    let height = daemon.block_count().await.context("getblockcount")?;
    let mut builder = TargetBuilder::new(Arc::clone(&coin));
    let mut block_bytes = 0u64;
    let mut start = 1;
    while start <= height {
        let end = (start + 100).min(height + 1);
        let hashes = daemon
            .block_hashes(start..end)
            .await
            .context("getblockhash")?;
        for (i, hash) in hashes.iter().enumerate() {
            let h = start + i as u32;
            let raw = daemon
                .block(hash)
                .await
                .with_context(|| format!("block {h}"))?;
            block_bytes += raw.len() as u64;
            let block = coin
                .parse_block(&raw, Some(h))
                .with_context(|| format!("parsing block {h}"))?;
            for tx in &block.txs {
                builder.add_tx(tx.txid, h, &tx.inputs, &tx.outputs);
            }
        }
        progress(end - 1, height);
        start = end;
    }
    let mut targets = builder.finish(history_sizes, storm);
    targets.block_bytes = block_bytes;
    Ok(targets)
}
