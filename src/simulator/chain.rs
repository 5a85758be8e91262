//! A deterministic, seeded chain in the coin's own block format, with a mempool and reorgs.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anode_coins::{BlockTemplate, Coin, EncodedTx, Hash32, OutPoint, TxOut};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::chaindir::ChainDir;
use super::profile::Profile;

/// Regtest's proof-of-work limit: about two nonces per block.
pub const REGTEST_BITS: u32 = 0x207f_ffff;
/// Coinbase reward of every simulated block (50 coins).
pub const BLOCK_REWARD: u64 = 50 * 100_000_000;
const DUST: u64 = 546;
const GENESIS_TIME: u32 = 1_296_688_602;

/// Bitcoin's genesis coinbase (the "Times 03/Jan/2009" transaction). Every network whose
/// regtest shares Bitcoin's genesis (Bitcoin, Bitcoin Cash, Bitcoin SV) gets the exact block.
const BITCOIN_GENESIS_COINBASE: &str = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000";

/// Errors of the simulator's chain operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The coin layer has no block encoder for this family.
    #[error("the simulator cannot build blocks for {0}: its family has no block encoder")]
    NoEncoder(String),
    /// The coin layer refused to build something.
    #[error("building a block or transaction failed: {0}")]
    Encode(#[from] anode_coins::Error),
    /// A reorg deeper than the chain.
    #[error("cannot replace {depth} blocks of a chain of height {height}")]
    ReorgTooDeep {
        /// asked depth
        depth: u32,
        /// chain height
        height: u32,
    },
    /// Nothing to spend (e.g. a double-spend asked of an empty mempool).
    #[error("{0}")]
    Nothing(&'static str),
    /// A reorg reaching into the blocks of a chain directory, which are read-only.
    #[error(
        "cannot replace {depth} blocks: only the {above} mined above the chain directory's tip \
         can be replaced"
    )]
    BelowChainDir {
        /// asked depth
        depth: u32,
        /// blocks mined since the chain directory was loaded
        above: u32,
    },
}

/// One block of the simulated chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimBlock {
    /// height
    pub height: u32,
    /// hash, internal order
    pub hash: Hash32,
    /// header as served to clients
    pub header: Vec<u8>,
    /// the serialized block
    pub raw: Vec<u8>,
    /// txids in block order
    pub txids: Vec<Hash32>,
    /// header time
    pub time: u32,
}

/// A transaction the simulator knows (its "txindex"), confirmed or in the mempool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTx {
    /// serialized
    pub raw: Vec<u8>,
    /// outpoints spent (empty for a coinbase)
    pub inputs: Vec<OutPoint>,
    /// outputs
    pub outputs: Vec<TxOut>,
    /// height of its block, `None` while in the mempool
    pub height: Option<u32>,
    /// fee paid, base units
    pub fee: u64,
    /// height of the tip when the transaction last entered the mempool (its confirmed height
    /// for transactions read from a chain directory)
    pub mempool_entry: u32,
}

/// Whether an output is spent, as a spent-output index would answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendStatus {
    /// unspent, or no such output
    Unspent,
    /// spent by this transaction (in a block or in the mempool)
    SpentBy(Hash32),
    /// an output of a chain directory's block that is not in its pool at the tip: spent
    /// inside the directory, by a transaction the directory does not record
    NotRecorded,
}

#[derive(Debug, Clone)]
struct Output {
    txout: TxOut,
    spent_by: Option<Hash32>,
}

/// The chain.
pub struct SimChain {
    coin: Arc<dyn Coin>,
    profile: Profile,
    rng: ChaCha8Rng,
    blocks: Vec<SimBlock>,
    heights: HashMap<Hash32, u32>,
    txs: HashMap<Hash32, SimTx>,
    outputs: HashMap<OutPoint, Output>,
    /// Candidates for spending; entries already spent are pruned when drawn.
    spendable: Vec<OutPoint>,
    mempool: Vec<Hash32>,
    scripts: Vec<Vec<u8>>,
    extra_nonce: u32,
    /// While mining a block that leaves the mempool out: the block's own fresh txids, the only
    /// unconfirmed outputs its transactions may spend (a valid block cannot spend the mempool).
    block_without_mempool: Option<HashSet<Hash32>>,
    segwit: bool,
    custom_genesis: bool,
    /// blocks below the in-memory ones, read from a chain directory (docs/simulator.md)
    base: Option<Arc<ChainDir>>,
}

impl SimChain {
    /// A chain of just the genesis block for `coin`, drawing from `seed`.
    pub fn new(coin: Arc<dyn Coin>, profile: Profile, seed: u64) -> Result<Self, SimError> {
        if coin.encoder().is_none() {
            let p = coin.params();
            return Err(SimError::NoEncoder(format!("{} {}", p.coin, p.net)));
        }
        let segwit = coin.params().bech32_hrp.is_some();
        let mut chain = SimChain {
            coin,
            profile,
            rng: ChaCha8Rng::seed_from_u64(seed),
            blocks: Vec::new(),
            heights: HashMap::new(),
            txs: HashMap::new(),
            outputs: HashMap::new(),
            spendable: Vec::new(),
            mempool: Vec::new(),
            scripts: Vec::new(),
            extra_nonce: 0,
            block_without_mempool: None,
            segwit,
            custom_genesis: false,
            base: None,
        };
        chain.make_genesis()?;
        // Like Bitcoin's, most genesis coinbases never enter the UTXO set; only coins whose
        // genesis rule indexes them may spend them.
        if !chain.coin.index_genesis_outputs() {
            chain.spendable.clear();
        }
        Ok(chain)
    }

    fn make_genesis(&mut self) -> Result<(), SimError> {
        let coin = Arc::clone(&self.coin);
        let encoder = coin.encoder().expect("checked in new");
        // Bitcoin's regtest genesis, byte for byte, where the network shares it. The header is
        // written here rather than ground by the encoder, whose first valid nonce is not the
        // genesis block's nonce 2.
        if let Ok(raw_tx) = hex::decode(BITCOIN_GENESIS_COINBASE) {
            if let Ok(parsed) = coin.parse_tx(&raw_tx) {
                let mut header = Vec::with_capacity(80);
                header.extend_from_slice(&1u32.to_le_bytes());
                header.extend_from_slice(&[0; 32]);
                header.extend_from_slice(&parsed.txid);
                header.extend_from_slice(&GENESIS_TIME.to_le_bytes());
                header.extend_from_slice(&REGTEST_BITS.to_le_bytes());
                header.extend_from_slice(&2u32.to_le_bytes());
                let mut raw = header.clone();
                raw.push(1);
                raw.extend_from_slice(&raw_tx);
                // Only where the block format is Bitcoin's too (Bitcoin Gold shares the regtest
                // genesis hash but not the header layout).
                if coin.header_hash(&header).ok() == Some(coin.params().genesis_hash)
                    && coin.parse_block(&raw, Some(0)).is_ok()
                {
                    let block = anode_coins::EncodedBlock {
                        hash: coin.params().genesis_hash,
                        header,
                        raw,
                        txids: vec![parsed.txid],
                    };
                    self.connect(
                        block,
                        vec![(parsed.txid, raw_tx, Vec::new(), parsed.outputs, 0)],
                        GENESIS_TIME,
                    );
                    return Ok(());
                }
            }
        }
        // A genesis of our own: servers indexing this chain must be told its hash.
        self.custom_genesis = true;
        let script = self.fresh_script();
        let outputs = vec![TxOut {
            value: BLOCK_REWARD,
            script,
        }];
        let coinbase = encoder.coinbase(0, 0, &outputs)?;
        let template = BlockTemplate {
            version: 1,
            prev_hash: [0; 32],
            time: GENESIS_TIME,
            bits: REGTEST_BITS,
            height: 0,
        };
        let block = encoder.block(&template, std::slice::from_ref(&coinbase))?;
        self.connect(
            block,
            vec![(coinbase.txid, coinbase.raw, Vec::new(), outputs, 0)],
            GENESIS_TIME,
        );
        Ok(())
    }

    /// The coin the chain is encoded for.
    pub fn coin(&self) -> &Arc<dyn Coin> {
        &self.coin
    }

    /// Whether the genesis is the simulator's own rather than the network's real one (then
    /// a server must be configured with [`SimChain::genesis_hash`]).
    pub fn has_custom_genesis(&self) -> bool {
        self.custom_genesis
    }

    /// A chain whose blocks are those of `base` (a chain directory), with new blocks mined on
    /// top of its tip: they spend the outputs and pay the scripts the directory's pools kept.
    pub fn over_chain_dir(
        coin: Arc<dyn Coin>,
        profile: Profile,
        seed: u64,
        base: Arc<ChainDir>,
    ) -> Result<Self, super::chaindir::ChainDirError> {
        if coin.encoder().is_none() {
            let p = coin.params();
            return Err(SimError::NoEncoder(format!("{} {}", p.coin, p.net)).into());
        }
        let (pool, scripts) = base.pool()?;
        let segwit = coin.params().bech32_hrp.is_some();
        let mut outputs = HashMap::with_capacity(pool.len());
        let mut spendable = Vec::with_capacity(pool.len());
        for (outpoint, value) in pool {
            // The pool keeps values only: nothing served reads a base output's script.
            outputs.insert(
                outpoint,
                Output {
                    txout: TxOut {
                        value,
                        script: Vec::new(),
                    },
                    spent_by: None,
                },
            );
            spendable.push(outpoint);
        }
        Ok(SimChain {
            coin,
            profile,
            // Mining above the directory draws from its own stream: the same seed and
            // directory always give the same new blocks.
            rng: ChaCha8Rng::seed_from_u64(seed ^ u64::from(base.tip_height()).rotate_left(32)),
            blocks: Vec::new(),
            heights: HashMap::new(),
            txs: HashMap::new(),
            outputs,
            spendable,
            mempool: Vec::new(),
            scripts,
            extra_nonce: base.tip_height(),
            block_without_mempool: None,
            segwit,
            custom_genesis: false,
            base: Some(base),
        })
    }

    /// Height of the first block held in memory (0 without a chain directory).
    fn first_in_memory(&self) -> u32 {
        self.base.as_ref().map_or(0, |b| b.tip_height() + 1)
    }

    /// Height the next block will have.
    fn next_height(&self) -> u32 {
        self.first_in_memory() + self.blocks.len() as u32
    }

    /// Hash of block 0.
    pub fn genesis_hash(&self) -> Hash32 {
        match &self.base {
            Some(base) => base.hash(0).unwrap_or_default(),
            None => self.blocks[0].hash,
        }
    }

    /// Height of the tip.
    pub fn height(&self) -> u32 {
        self.next_height() - 1
    }

    /// The tip block.
    pub fn tip(&self) -> Cow<'_, SimBlock> {
        self.block(self.height())
            .expect("a chain always has its tip, in memory or in its directory")
    }

    /// The block at `height`.
    pub fn block(&self, height: u32) -> Option<Cow<'_, SimBlock>> {
        let first = self.first_in_memory();
        if height >= first {
            return self
                .blocks
                .get((height - first) as usize)
                .map(Cow::Borrowed);
        }
        let base = self.base.as_ref()?;
        let raw = match base.raw_block(height) {
            Ok(raw) => raw?,
            Err(e) => {
                tracing::warn!(height, error = %e, "reading the chain directory failed");
                return None;
            }
        };
        let parsed = match self.coin.parse_block(&raw, Some(height)) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(height, error = %e, "a chain directory block does not parse");
                return None;
            }
        };
        Some(Cow::Owned(SimBlock {
            height,
            hash: base.hash(height)?,
            header: parsed.header,
            txids: parsed.txs.iter().map(|t| t.txid).collect(),
            raw,
            time: base.time(height)?,
        }))
    }

    /// The serialized block with `hash` on the active chain, without parsing it (the path
    /// that serves an indexer's sync).
    pub fn raw_block_by_hash(&self, hash: &Hash32) -> Option<Cow<'_, [u8]>> {
        if let Some(h) = self.heights.get(hash) {
            return self.block(*h).map(|b| match b {
                Cow::Borrowed(b) => Cow::Borrowed(b.raw.as_slice()),
                Cow::Owned(b) => Cow::Owned(b.raw),
            });
        }
        let base = self.base.as_ref()?;
        let height = base.height_of(hash)?;
        match base.raw_block(height) {
            Ok(raw) => raw.map(Cow::Owned),
            Err(e) => {
                tracing::warn!(height, error = %e, "reading the chain directory failed");
                None
            }
        }
    }

    /// The header of the block at `height` as served, without parsing the whole block where
    /// the coin's header length is fixed (P2P `getheaders` over a chain directory).
    pub fn header_at(&self, height: u32) -> Option<Cow<'_, [u8]>> {
        let first = self.first_in_memory();
        if height >= first {
            return self
                .blocks
                .get((height - first) as usize)
                .map(|b| Cow::Borrowed(b.header.as_slice()));
        }
        let base = self.base.as_ref()?;
        let header = match self.coin.header_len_at(height) {
            Some(len) => base.block_prefix(height, len),
            None => base.raw_block(height),
        };
        let raw = match header {
            Ok(raw) => raw?,
            Err(e) => {
                tracing::warn!(height, error = %e, "reading the chain directory failed");
                return None;
            }
        };
        self.coin
            .block_header(&raw, Some(height))
            .ok()
            .map(Cow::Owned)
    }

    /// The height of the block with `hash` on the active chain.
    pub fn height_of(&self, hash: &Hash32) -> Option<u32> {
        match self.heights.get(hash) {
            Some(h) => Some(*h),
            None => self.base.as_ref()?.height_of(hash),
        }
    }

    /// The block with `hash` on the active chain.
    pub fn block_by_hash(&self, hash: &Hash32) -> Option<Cow<'_, SimBlock>> {
        let height = self.height_of(hash)?;
        self.block(height)
    }

    /// The hash of the block at `height`, without reading it.
    pub fn hash_at(&self, height: u32) -> Option<Hash32> {
        let first = self.first_in_memory();
        if height >= first {
            return self.blocks.get((height - first) as usize).map(|b| b.hash);
        }
        self.base.as_ref()?.hash(height)
    }

    /// A transaction by txid, confirmed or in the mempool.
    pub fn tx(&self, txid: &Hash32) -> Option<Cow<'_, SimTx>> {
        if let Some(tx) = self.txs.get(txid) {
            return Some(Cow::Borrowed(tx));
        }
        let base = self.base.as_ref()?;
        let (height, raw) = match base.raw_tx(txid) {
            Ok(found) => found?,
            Err(e) => {
                tracing::warn!(error = %e, "reading the chain directory failed");
                return None;
            }
        };
        let parsed = self.coin.parse_tx(&raw).ok()?;
        Some(Cow::Owned(SimTx {
            raw,
            inputs: parsed.inputs,
            outputs: parsed.outputs,
            height: Some(height),
            // Not kept in the directory; only mempool entries report fees.
            fee: 0,
            mempool_entry: height,
        }))
    }

    /// Transactions held in memory: the mempool and blocks mined in this process (a chain
    /// directory's transactions are on disk: see [`SimChain::tx`]).
    pub fn all_txs(&self) -> impl Iterator<Item = (&Hash32, &SimTx)> {
        self.txs.iter()
    }

    /// Mempool txids in arrival order (parents before children).
    pub fn mempool(&self) -> &[Hash32] {
        &self.mempool
    }

    /// Whether `outpoint` exists and who spends it (`Some(None)`: unspent).
    pub fn output_spender(&self, outpoint: &OutPoint) -> Option<Option<Hash32>> {
        self.outputs.get(outpoint).map(|o| o.spent_by)
    }

    /// Who spends `outpoint`, as a spent-output index (Core's `txospenderindex`) answers:
    /// every output of the blocks and mempool held in memory is known; an output of a chain
    /// directory's block is known only while it sits in the directory's pool.
    pub fn spend_status(&self, outpoint: &OutPoint) -> SpendStatus {
        if let Some(o) = self.outputs.get(outpoint) {
            return o
                .spent_by
                .map_or(SpendStatus::Unspent, SpendStatus::SpentBy);
        }
        if self.base.is_none() || self.txs.contains_key(&outpoint.txid) {
            return SpendStatus::Unspent;
        }
        match self.tx(&outpoint.txid) {
            Some(tx) => match tx.outputs.get(outpoint.vout as usize) {
                Some(out)
                    if !self
                        .coin
                        .is_unspendable(&out.script, tx.height.unwrap_or(0)) =>
                {
                    SpendStatus::NotRecorded
                }
                _ => SpendStatus::Unspent,
            },
            None => SpendStatus::Unspent,
        }
    }

    /// Header time of the block at `height`, without reading the block.
    pub fn time_at(&self, height: u32) -> Option<u32> {
        let first = self.first_in_memory();
        if height >= first {
            return self.blocks.get((height - first) as usize).map(|b| b.time);
        }
        self.base.as_ref()?.time(height)
    }

    /// Median time of the 11 blocks ending at `height` (Core's `GetMedianTimePast`).
    pub fn median_time_past(&self, height: u32) -> u32 {
        let mut times: Vec<u32> = (height.saturating_sub(10)..=height)
            .filter_map(|h| self.time_at(h))
            .collect();
        times.sort_unstable();
        times.get(times.len() / 2).copied().unwrap_or(0)
    }

    /// Transactions in the block at `height`, without reading it.
    pub fn tx_count_at(&self, height: u32) -> Option<u32> {
        let first = self.first_in_memory();
        if height >= first {
            return self
                .blocks
                .get((height - first) as usize)
                .map(|b| b.txids.len() as u32);
        }
        self.base.as_ref()?.tx_count(height)
    }

    /// Serialized bytes of every block of the active chain.
    pub fn blocks_bytes(&self) -> u64 {
        let in_memory: u64 = self.blocks.iter().map(|b| b.raw.len() as u64).sum();
        in_memory + self.base.as_ref().map_or(0, |b| b.blocks_bytes())
    }

    fn height_or_zero(&self) -> u32 {
        // During genesis construction there is no tip yet.
        self.next_height().saturating_sub(1)
    }

    /// An existing output (spent or not).
    pub fn output(&self, outpoint: &OutPoint) -> Option<&TxOut> {
        self.outputs.get(outpoint).map(|o| &o.txout)
    }

    /// Adds a transaction built outside the simulator (a broadcast) to the mempool. The caller
    /// has checked its inputs.
    pub fn accept_external(
        &mut self,
        txid: Hash32,
        raw: Vec<u8>,
        inputs: Vec<OutPoint>,
        outputs: Vec<TxOut>,
        fee: u64,
    ) {
        self.register(txid, raw, inputs, outputs, fee, None);
        self.mempool.push(txid);
    }

    fn fresh_script(&mut self) -> Vec<u8> {
        let weights = self.profile.script_weights;
        let total: u32 = weights.iter().sum::<u32>().max(1);
        let mut pick = self.rng.gen_range(0..total);
        let mut kind = 0;
        for (i, w) in weights.iter().enumerate() {
            if pick < *w {
                kind = i;
                break;
            }
            pick -= w;
        }
        let mut body = [0u8; 32];
        self.rng.fill(&mut body);
        let script = match (kind, self.segwit) {
            (1, _) => [&[0xa9, 0x14][..], &body[..20], &[0x87]].concat(),
            (2, true) => [&[0x00, 0x14][..], &body[..20]].concat(),
            (3, true) => [&[0x00, 0x20][..], &body[..]].concat(),
            (4, true) => [&[0x51, 0x20][..], &body[..]].concat(),
            _ => [&[0x76, 0xa9, 0x14][..], &body[..20], &[0x88, 0xac]].concat(),
        };
        self.scripts.push(script.clone());
        script
    }

    /// A script to pay: fresh, or an earlier one drawn with a power law over the first
    /// `popular_scripts` so that a few scripts collect very many transactions.
    fn payee_script(&mut self) -> Vec<u8> {
        if !self.scripts.is_empty() && self.rng.gen_bool(self.profile.reuse_probability) {
            let pool = self.scripts.len().min(self.profile.popular_scripts).max(1);
            let u: f64 = self.rng.gen();
            let rank = ((pool as f64) * u.powf(self.profile.reuse_exponent)) as usize;
            return self.scripts[rank.min(pool - 1)].clone();
        }
        self.fresh_script()
    }

    fn draw_spendable(&mut self) -> Option<OutPoint> {
        let mut skipped = Vec::new();
        let found = loop {
            if self.spendable.is_empty() {
                break None;
            }
            let i = self.rng.gen_range(0..self.spendable.len());
            let outpoint = self.spendable.swap_remove(i);
            if !matches!(self.outputs.get(&outpoint), Some(o) if o.spent_by.is_none()) {
                continue;
            }
            if let Some(allowed) = &self.block_without_mempool {
                // A transaction not in memory is a chain directory's: confirmed.
                let confirmed = self
                    .txs
                    .get(&outpoint.txid)
                    .is_none_or(|t| t.height.is_some());
                if !confirmed && !allowed.contains(&outpoint.txid) {
                    skipped.push(outpoint);
                    continue;
                }
            }
            break Some(outpoint);
        };
        self.spendable.extend(skipped);
        found
    }

    /// Builds a random transaction from spendable outputs, registering it as unconfirmed.
    fn random_tx(&mut self) -> Result<Option<Hash32>, SimError> {
        let (lo, hi) = self.profile.inputs_per_tx;
        let wanted = self.rng.gen_range(lo..=hi.max(lo));
        let mut inputs = Vec::new();
        for _ in 0..wanted {
            match self.draw_spendable() {
                Some(o) => inputs.push(o),
                None => break,
            }
        }
        if inputs.is_empty() {
            return Ok(None);
        }
        let outputs_wanted = {
            let (lo, hi) = self.profile.outputs_per_tx;
            self.rng.gen_range(lo..=hi.max(lo))
        };
        let txid = self.build_spend(inputs, outputs_wanted, None)?;
        Ok(Some(txid))
    }

    /// A transaction spending `inputs` into about `outputs_wanted` outputs; `fee` defaults to a
    /// random rate.
    fn build_spend(
        &mut self,
        inputs: Vec<OutPoint>,
        outputs_wanted: u32,
        fee: Option<u64>,
    ) -> Result<Hash32, SimError> {
        let total: u64 = inputs.iter().map(|o| self.outputs[o].txout.value).sum();
        let fee =
            fee.unwrap_or_else(|| (150 * inputs.len() as u64 + 40) * self.rng.gen_range(1..=20));
        let mut available = total.saturating_sub(fee);
        let mut outputs = Vec::new();
        let data_weight = self.profile.script_weights[5];
        if data_weight > 0 && self.rng.gen_ratio(data_weight, 100) {
            let mut data = vec![0x6a, 0x08];
            data.extend_from_slice(&self.rng.gen::<u64>().to_le_bytes());
            outputs.push(TxOut {
                value: 0,
                script: data,
            });
        }
        for i in 0..outputs_wanted.max(1) {
            if available < DUST {
                break;
            }
            let value = if i + 1 == outputs_wanted.max(1) {
                available
            } else {
                self.rng
                    .gen_range(DUST..=available.max(DUST))
                    .min(available)
            };
            available -= value;
            let script = self.payee_script();
            outputs.push(TxOut { value, script });
        }
        if outputs.iter().all(|o| o.value == 0) {
            // Everything went to fees: keep the transaction spendable-shaped anyway.
            let script = self.payee_script();
            outputs.push(TxOut {
                value: available,
                script,
            });
        }
        let fee = total - outputs.iter().map(|o| o.value).sum::<u64>();
        let encoder = self.coin.encoder().expect("checked in new");
        let encoded = encoder.spend(&inputs, &outputs)?;
        self.register(encoded.txid, encoded.raw, inputs, outputs, fee, None);
        Ok(encoded.txid)
    }

    fn register(
        &mut self,
        txid: Hash32,
        raw: Vec<u8>,
        inputs: Vec<OutPoint>,
        outputs: Vec<TxOut>,
        fee: u64,
        height: Option<u32>,
    ) {
        for input in &inputs {
            if let Some(o) = self.outputs.get_mut(input) {
                o.spent_by = Some(txid);
            }
        }
        for (vout, txout) in outputs.iter().enumerate() {
            let outpoint = OutPoint {
                txid,
                vout: vout as u32,
            };
            let at = height.unwrap_or(self.next_height());
            if !self.coin.is_unspendable(&txout.script, at) && txout.value > 0 {
                self.spendable.push(outpoint);
            }
            self.outputs.insert(
                outpoint,
                Output {
                    txout: txout.clone(),
                    spent_by: None,
                },
            );
        }
        let mempool_entry = height.unwrap_or_else(|| self.height_or_zero());
        self.txs.insert(
            txid,
            SimTx {
                raw,
                inputs,
                outputs,
                height,
                fee,
                mempool_entry,
            },
        );
    }

    #[allow(clippy::type_complexity)]
    fn connect(
        &mut self,
        block: anode_coins::EncodedBlock,
        coinbase: Vec<(Hash32, Vec<u8>, Vec<OutPoint>, Vec<TxOut>, u64)>,
        time: u32,
    ) {
        let height = self.next_height();
        for (txid, raw, inputs, outputs, fee) in coinbase {
            self.register(txid, raw, inputs, outputs, fee, Some(height));
        }
        for txid in &block.txids {
            if let Some(tx) = self.txs.get_mut(txid) {
                tx.height = Some(height);
            }
        }
        self.heights.insert(block.hash, height);
        self.blocks.push(SimBlock {
            height,
            hash: block.hash,
            header: block.header,
            raw: block.raw,
            txids: block.txids,
            time,
        });
    }

    /// Mines `count` blocks. Each confirms the whole mempool (if `with_mempool`) and then the
    /// profile's number of fresh transactions, some spending outputs of the same block.
    pub fn mine(&mut self, count: u32, with_mempool: bool) -> Result<Vec<Hash32>, SimError> {
        let mut hashes = Vec::new();
        for _ in 0..count {
            let height = self.height() + 1;
            let mut txids: Vec<Hash32> = if with_mempool {
                std::mem::take(&mut self.mempool)
            } else {
                Vec::new()
            };
            let (lo, hi) = self.profile.txs_per_block;
            let fresh = self.rng.gen_range(lo..=hi.max(lo));
            if !with_mempool {
                self.block_without_mempool = Some(HashSet::new());
            }
            for _ in 0..fresh {
                match self.random_tx() {
                    Ok(Some(txid)) => {
                        if let Some(allowed) = self.block_without_mempool.as_mut() {
                            allowed.insert(txid);
                        }
                        txids.push(txid)
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.block_without_mempool = None;
                        return Err(e);
                    }
                }
            }
            self.block_without_mempool = None;
            let fees: u64 = txids.iter().map(|t| self.txs[t].fee).sum();
            let script = self.payee_script();
            let mut coinbase_outputs = vec![TxOut {
                value: BLOCK_REWARD + fees,
                script,
            }];
            self.extra_nonce += 1;
            let encoder = self.coin.encoder().expect("checked in new");
            let mut coinbase = encoder.coinbase(height, self.extra_nonce, &coinbase_outputs)?;
            if self.txs.contains_key(&coinbase.txid) {
                // Families whose txid leaves out the coinbase's height push (Decred: it sits
                // in the witness) would repeat a txid; a data output with the height keeps
                // every txid unique, as BIP30 requires.
                let mut data = vec![0x6a, 0x04];
                data.extend_from_slice(&height.to_le_bytes());
                coinbase_outputs.push(TxOut {
                    value: 0,
                    script: data,
                });
                coinbase = encoder.coinbase(height, self.extra_nonce, &coinbase_outputs)?;
            }
            let mut encoded = Vec::with_capacity(txids.len() + 1);
            encoded.push(coinbase.clone());
            for txid in &txids {
                encoded.push(EncodedTx {
                    raw: self.txs[txid].raw.clone(),
                    txid: *txid,
                });
            }
            let time = self.tip().time + 1 + self.rng.gen_range(0..1200);
            let template = BlockTemplate {
                version: 0x2000_0000,
                prev_hash: self.tip().hash,
                time,
                bits: REGTEST_BITS,
                height,
            };
            let block = encoder.block(&template, &encoded)?;
            hashes.push(block.hash);
            self.connect(
                block,
                vec![(coinbase.txid, coinbase.raw, Vec::new(), coinbase_outputs, 0)],
                time,
            );
        }
        Ok(hashes)
    }

    /// Mines one block of `fresh` new transactions besides the coinbase, whatever the profile's
    /// block size, leaving the mempool out: a block whose transactions the server has not seen
    /// (the benchmarks' tip measurement).
    pub fn mine_block_of(&mut self, fresh: u32) -> Result<Hash32, SimError> {
        self.mine_one_sized(fresh, false)
    }

    /// Mines one block that confirms exactly the mempool and nothing else: no fresh random
    /// transactions, so none can spend the outputs of transactions a caller added with
    /// [`SimChain::accept_external`] (e.g. to build a script's history of a chosen size).
    pub fn mine_mempool(&mut self) -> Result<Hash32, SimError> {
        self.mine_one_sized(0, true)
    }

    /// Mines one block of exactly `fresh` new transactions (plus the mempool when
    /// `with_mempool`), whatever the profile's block size, which is restored afterwards.
    fn mine_one_sized(&mut self, fresh: u32, with_mempool: bool) -> Result<Hash32, SimError> {
        let profile_size = self.profile.txs_per_block;
        self.profile.txs_per_block = (fresh, fresh);
        let mined = self.mine(1, with_mempool);
        self.profile.txs_per_block = profile_size;
        mined?
            .into_iter()
            .next()
            .ok_or(SimError::Nothing("no block mined"))
    }

    /// Adds `count` random transactions to the mempool; they may spend one another (chains of
    /// unconfirmed parents).
    pub fn add_mempool_txs(&mut self, count: u32) -> Result<Vec<Hash32>, SimError> {
        let mut added = Vec::new();
        for _ in 0..count {
            match self.random_tx()? {
                Some(txid) => {
                    self.mempool.push(txid);
                    added.push(txid);
                }
                None => break,
            }
        }
        Ok(added)
    }

    /// Adds a chain of `length` mempool transactions, each spending the previous one's first
    /// output.
    pub fn add_mempool_chain(&mut self, length: u32) -> Result<Vec<Hash32>, SimError> {
        let mut chain = Vec::new();
        let mut input = self
            .draw_spendable()
            .ok_or(SimError::Nothing("nothing is spendable"))?;
        for _ in 0..length {
            let txid = self.build_spend(vec![input], 1, Some(500))?;
            self.mempool.push(txid);
            chain.push(txid);
            input = OutPoint {
                txid,
                vout: self.txs[&txid]
                    .outputs
                    .iter()
                    .position(|o| o.value > 0)
                    .unwrap_or(0) as u32,
            };
            if self
                .outputs
                .get(&input)
                .is_none_or(|o| o.txout.value < DUST + 500)
            {
                break;
            }
        }
        Ok(chain)
    }

    /// Replaces mempool transaction `victim` (by default the oldest) with a conflicting one
    /// spending the same first input at a higher fee; the victim and its descendants leave the
    /// mempool. Returns `(replacement, evicted)`.
    pub fn double_spend(
        &mut self,
        victim: Option<Hash32>,
    ) -> Result<(Hash32, Vec<Hash32>), SimError> {
        let victim = match victim.or_else(|| self.mempool.first().copied()) {
            Some(v) if self.mempool.contains(&v) => v,
            _ => return Err(SimError::Nothing("no mempool transaction to double-spend")),
        };
        let input = self.txs[&victim].inputs[0];
        let evicted = self.evict(&victim);
        let fee = self.txs.get(&victim).map_or(1000, |t| t.fee + 1000);
        let replacement = self.build_spend(vec![input], 1, Some(fee))?;
        self.mempool.push(replacement);
        Ok((replacement, evicted))
    }

    /// Removes `txid` and its descendants from the mempool (as a node's eviction would).
    pub fn drop_mempool_tx(&mut self, txid: &Hash32) -> Vec<Hash32> {
        if !self.mempool.contains(txid) {
            return Vec::new();
        }
        self.evict(txid)
    }

    /// Evicts a mempool tx and its descendants, giving its inputs back.
    fn evict(&mut self, txid: &Hash32) -> Vec<Hash32> {
        let mut doomed = vec![*txid];
        let mut gone = Vec::new();
        while let Some(t) = doomed.pop() {
            let Some(tx) = self.txs.remove(&t) else {
                continue;
            };
            self.mempool.retain(|m| *m != t);
            for vout in 0..tx.outputs.len() {
                if let Some(o) = self.outputs.remove(&OutPoint {
                    txid: t,
                    vout: vout as u32,
                }) {
                    if let Some(child) = o.spent_by {
                        doomed.push(child);
                    }
                }
            }
            for input in &tx.inputs {
                if let Some(o) = self.outputs.get_mut(input) {
                    if o.spent_by == Some(t) {
                        o.spent_by = None;
                        self.spendable.push(*input);
                    }
                }
            }
            gone.push(t);
        }
        gone
    }

    /// Replaces the last `depth` blocks with `new_blocks` blocks of a different branch. The
    /// disconnected blocks' transactions return to the mempool (before those already there),
    /// except coinbases and whatever spent them. `with_mempool` says whether the new branch
    /// confirms the mempool again.
    pub fn reorg(
        &mut self,
        depth: u32,
        new_blocks: u32,
        with_mempool: bool,
    ) -> Result<Vec<Hash32>, SimError> {
        if depth > self.height() {
            return Err(SimError::ReorgTooDeep {
                depth,
                height: self.height(),
            });
        }
        if self.base.is_some() && depth as usize > self.blocks.len() {
            return Err(SimError::BelowChainDir {
                depth,
                above: self.blocks.len() as u32,
            });
        }
        let old_mempool = std::mem::take(&mut self.mempool);
        let mut returned = Vec::new();
        let mut coinbases = Vec::new();
        for _ in 0..depth {
            let block = self.blocks.pop().expect("depth <= height");
            self.heights.remove(&block.hash);
            coinbases.push(block.txids[0]);
            for txid in block.txids.iter().skip(1).rev() {
                returned.push(*txid);
            }
        }
        returned.reverse();
        // Blocks were popped top-down; restore chain order for the mempool.
        let mut ordered = Vec::with_capacity(returned.len());
        let tip = self.height();
        for txid in returned {
            if let Some(tx) = self.txs.get_mut(&txid) {
                tx.height = None;
                tx.mempool_entry = tip;
                ordered.push(txid);
            }
        }
        self.mempool = ordered;
        self.mempool.extend(old_mempool);
        for coinbase in coinbases {
            self.mempool.push(coinbase);
            self.evict(&coinbase);
        }
        let mut seen = HashSet::new();
        self.mempool.retain(|t| seen.insert(*t));
        self.mine(new_blocks, with_mempool)
    }
}
