//! A chain directory: a simulated chain written once to disk, as a node keeps its `blocks/`
//! folder, then served many times (docs/simulator.md, "Chain directories"). It is how the
//! simulator reaches mainnet's scale: generating keeps only a bounded pool of spendable
//! outputs and a bounded pool of reused scripts in memory, whatever the chain's length, and
//! serving reads blocks and transactions from the files.
//!
//! Layout (format 1):
//! - `chain.json`: what the chain is (coin, network, seed, profile, size), written last, so
//!   a directory without it is an interrupted generation;
//! - `blocks/blkNNNNN.dat`: raw blocks back to back, a new file every [`BLOCK_FILE_BYTES`];
//! - `index.bin`: one [`INDEX_RECORD`]-byte record per block (hash, file, offset, length,
//!   transactions, time);
//! - `txindex/XX.bin`: 256 files by the txid's first byte, each sorted, one
//!   [`TX_RECORD`]-byte record per transaction (txid prefix, height, offset and length in its
//!   block), so `getrawtransaction` is a binary search and one read;
//! - `pool.bin`: the spendable outputs and reused scripts at the tip, so that blocks mined on
//!   top of a served chain directory spend and pay like the chain below them.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anode_coins::{BlockTemplate, Coin, EncodedTx, Hash32, OutPoint, TxOut};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::chain::{SimChain, BLOCK_REWARD, REGTEST_BITS};
use super::profile::Profile;

/// The on-disk format this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// A block file is closed once it holds this many bytes.
pub const BLOCK_FILE_BYTES: u64 = 1 << 30;
/// Bytes of one `index.bin` record.
pub const INDEX_RECORD: usize = 64;
/// Bytes of one `txindex` record.
pub const TX_RECORD: usize = 20;
const META_FILE: &str = "chain.json";
const DUST: u64 = 546;

/// Errors of chain directories.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainDirError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// the file
        path: PathBuf,
        /// what failed
        #[source]
        source: std::io::Error,
    },
    /// The directory holds no complete chain.
    #[error(
        "{0} holds no complete chain (no chain.json: an interrupted generation?); delete it and \
         generate again"
    )]
    Incomplete(PathBuf),
    /// The directory holds another chain than the one asked for.
    #[error("{path} holds {found}, not {wanted}; use another directory, or ask for what it holds")]
    Mismatch {
        /// the directory
        path: PathBuf,
        /// what it holds
        found: String,
        /// what was asked
        wanted: String,
    },
    /// A file is shorter than the index says, or otherwise not what the index describes.
    #[error("{path} is damaged: {reason}; delete the chain directory and generate it again")]
    Damaged {
        /// the file
        path: PathBuf,
        /// what is wrong
        reason: String,
    },
    /// The coin layer cannot build this chain.
    #[error(transparent)]
    Sim(#[from] super::SimError),
    /// The coin layer failed.
    #[error("building a block or transaction failed: {0}")]
    Encode(#[from] anode_coins::Error),
}

type Result<T, E = ChainDirError> = std::result::Result<T, E>;

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> ChainDirError + '_ {
    move |source| ChainDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a chain directory holds (`chain.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainMeta {
    /// [`FORMAT_VERSION`] of the writer
    pub format: u32,
    /// coin name
    pub coin: String,
    /// network name
    pub network: String,
    /// RNG seed
    pub seed: u64,
    /// generation profile
    pub profile: String,
    /// transactions asked for, coinbases left out
    pub target_txs: u64,
    /// blocks, genesis included
    pub blocks: u32,
    /// transactions, coinbases included
    pub txs: u64,
    /// outputs never spent at the tip (spendable or not)
    pub unspent_outputs: u64,
    /// bytes of all blocks
    pub block_bytes: u64,
    /// genesis hash, display order
    pub genesis: String,
    /// tip hash, display order
    pub tip: String,
    /// seconds the generation took
    pub generation_seconds: f64,
}

impl ChainMeta {
    fn describe(&self) -> String {
        format!(
            "{} {} seed {} ({} profile, {} transactions)",
            self.coin, self.network, self.seed, self.profile, self.target_txs
        )
    }
}

/// The shape of a chain over its history, like Bitcoin mainnet's from 2009 to today.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryProfile {
    /// profile name
    pub name: &'static str,
    /// unspent outputs per transaction at the tip (mainnet: ~0.15)
    pub unspent_per_tx: f64,
    /// spendable outputs kept in memory; outputs pushed out of it stay unspent forever
    pub pool_outputs: usize,
    /// reused scripts kept in memory (drawn with a power law: the head is very popular)
    pub pool_scripts: usize,
    /// probability that an output pays a script of the reuse pool
    pub reuse_probability: f64,
    /// exponent of the reuse power law (higher = heavier head)
    pub reuse_exponent: f64,
    /// exchange-like scripts that receive a share of every block's outputs
    pub exchanges: usize,
    /// share of outputs paying an exchange-like script (split 1/k between them)
    pub exchange_share: f64,
}

impl HistoryProfile {
    /// Mainnet's history in miniature.
    pub fn mainnet_history() -> Self {
        HistoryProfile {
            name: "mainnet-history",
            unspent_per_tx: 0.15,
            pool_outputs: 2_000_000,
            pool_scripts: 200_000,
            reuse_probability: 0.3,
            reuse_exponent: 4.0,
            exchanges: 6,
            exchange_share: 0.05,
        }
    }
}

/// How many transactions (coinbases left out) blocks 1 to `height` hold, out of `total`
/// over blocks 1 to `blocks`: block sizes grow over the chain's life as mainnet's did (tiny
/// for the first fifth, rising until about two thirds, then full).
fn cumulative_txs(height: u32, blocks: u32, total: u64) -> u64 {
    // The integral of w(x) = 0.005 + smoothstep(0.15, 0.65, x) from 0 to x (midpoint rule).
    fn weight_integral(x: f64) -> f64 {
        let steps = 256;
        let dx = x / f64::from(steps);
        (0..steps)
            .map(|i| {
                let t = (f64::from(i) + 0.5) * dx;
                let s = ((t - 0.15) / 0.5).clamp(0.0, 1.0);
                0.005 + s * s * (3.0 - 2.0 * s)
            })
            .sum::<f64>()
            * dx
    }
    if height >= blocks {
        return total;
    }
    let x = f64::from(height) / f64::from(blocks.max(1));
    ((total as f64) * weight_integral(x) / weight_integral(1.0)) as u64
}

/// Output script kinds, weighted by era.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    P2pk,
    P2pkh,
    P2sh,
    P2wpkh,
    P2wsh,
    P2tr,
}

/// Weights of each kind at chain progress `x` (0 = genesis, 1 = tip): pay-to-pubkey first,
/// then P2PKH, P2SH from 2012, SegWit from 2017, Taproot from 2021.
fn kind_weights(x: f64, segwit: bool) -> [(Kind, f64); 6] {
    let ramp = |from: f64, to: f64| ((x - from) / (to - from)).clamp(0.0, 1.0);
    let sw = if segwit { 1.0 } else { 0.0 };
    [
        (Kind::P2pk, 0.4 * (1.0 - ramp(0.0, 0.12))),
        (Kind::P2pkh, 1.0 - 0.7 * ramp(0.55, 1.0) * sw),
        (Kind::P2sh, 0.35 * ramp(0.3, 0.5)),
        (Kind::P2wpkh, 0.9 * ramp(0.55, 0.8) * sw),
        (Kind::P2wsh, 0.12 * ramp(0.55, 0.8) * sw),
        (Kind::P2tr, 0.45 * ramp(0.85, 1.0) * sw),
    ]
}

fn script_of(kind: Kind, body: &[u8; 32]) -> Vec<u8> {
    match kind {
        Kind::P2pk => [&[0x21, 0x02][..], &body[..], &[0xac]].concat(),
        Kind::P2pkh => [&[0x76, 0xa9, 0x14][..], &body[..20], &[0x88, 0xac]].concat(),
        Kind::P2sh => [&[0xa9, 0x14][..], &body[..20], &[0x87]].concat(),
        Kind::P2wpkh => [&[0x00, 0x14][..], &body[..20]].concat(),
        Kind::P2wsh => [&[0x00, 0x20][..], &body[..]].concat(),
        Kind::P2tr => [&[0x51, 0x20][..], &body[..]].concat(),
    }
}

/// A spendable output in the generator's pool.
#[derive(Clone, Copy)]
struct Spendable {
    outpoint: OutPoint,
    value: u64,
}

/// The generator's state: everything it remembers, bounded whatever the chain's length.
struct Generator {
    coin: Arc<dyn Coin>,
    profile: HistoryProfile,
    rng: ChaCha8Rng,
    segwit: bool,
    pool: Vec<Spendable>,
    scripts: Vec<Vec<u8>>,
    exchanges: Vec<Vec<u8>>,
    /// outputs created minus outputs spent, over the chain
    unspent: u64,
    txs: u64,
    extra_nonce: u32,
}

/// One transaction decided but not yet encoded.
struct Plan {
    inputs: Vec<OutPoint>,
    outputs: Vec<TxOut>,
    fee: u64,
}

impl Generator {
    fn draw_kind(&mut self, x: f64) -> Kind {
        let weights = kind_weights(x, self.segwit);
        let total: f64 = weights.iter().map(|(_, w)| w).sum();
        let mut pick = self.rng.gen::<f64>() * total;
        for (kind, w) in weights {
            if pick < w {
                return kind;
            }
            pick -= w;
        }
        Kind::P2pkh
    }

    fn payee(&mut self, x: f64) -> Vec<u8> {
        let p = &self.profile;
        let u: f64 = self.rng.gen();
        if u < p.exchange_share && !self.exchanges.is_empty() {
            // 1/k shares: the first exchange takes the most.
            let n = self.exchanges.len();
            let harmonic: f64 = (1..=n).map(|k| 1.0 / k as f64).sum();
            let mut pick = self.rng.gen::<f64>() * harmonic;
            for k in 0..n {
                let share = 1.0 / (k + 1) as f64;
                if pick < share {
                    return self.exchanges[k].clone();
                }
                pick -= share;
            }
            return self.exchanges[0].clone();
        }
        if !self.scripts.is_empty() && self.rng.gen_bool(p.reuse_probability) {
            let len = self.scripts.len();
            let v: f64 = self.rng.gen();
            let rank = ((len as f64) * v.powf(p.reuse_exponent)) as usize;
            return self.scripts[rank.min(len - 1)].clone();
        }
        let kind = self.draw_kind(x);
        let mut body = [0u8; 32];
        self.rng.fill(&mut body);
        let script = script_of(kind, &body);
        if self.scripts.len() < self.profile.pool_scripts {
            self.scripts.push(script.clone());
        } else if self.rng.gen_bool(0.01) {
            // New scripts keep entering the pool's tail, so popularity is not frozen at the
            // chain's start.
            let len = self.scripts.len();
            let at = self.rng.gen_range(len / 2..len);
            self.scripts[at] = script.clone();
        }
        script
    }

    fn draw_spendable(&mut self) -> Option<Spendable> {
        if self.pool.is_empty() {
            return None;
        }
        let i = self.rng.gen_range(0..self.pool.len());
        Some(self.pool.swap_remove(i))
    }

    /// Adds an output to the pool; a full pool pushes a random older one out, which stays
    /// unspent for ever (mainnet's long tail of never-spent outputs).
    fn remember(&mut self, s: Spendable) {
        if self.pool.len() < self.profile.pool_outputs {
            self.pool.push(s);
        } else {
            let i = self.rng.gen_range(0..self.pool.len());
            self.pool[i] = s;
        }
    }

    /// Counts a transaction's outputs as unspent and remembers the spendable ones.
    fn add_outputs(&mut self, txid: Hash32, outputs: &[TxOut], height: u32) {
        for (vout, o) in outputs.iter().enumerate() {
            self.unspent += 1;
            if o.value > 0 && !self.coin.is_unspendable(&o.script, height) {
                self.remember(Spendable {
                    outpoint: OutPoint {
                        txid,
                        vout: vout as u32,
                    },
                    value: o.value,
                });
            }
        }
    }

    /// Decides one transaction: inputs from the pool, outputs to payees. The number of inputs
    /// is steered so that unspent outputs per transaction track the profile's ratio.
    fn plan_tx(&mut self, x: f64, extra_outputs: usize) -> Option<Plan> {
        let mut inputs_wanted: usize = match self.rng.gen_range(0..100) {
            0..=54 => 1,
            55..=79 => 2,
            80..=91 => 3,
            92..=97 => 4,
            _ => self.rng.gen_range(5..=12),
        };
        let target = (self.txs as f64 * self.profile.unspent_per_tx) as u64;
        let slack = 64 + target / 100;
        if self.unspent > target + slack {
            inputs_wanted += 1 + usize::from(self.unspent > target + 8 * slack);
        } else if self.unspent + slack < target {
            inputs_wanted = inputs_wanted.saturating_sub(1).max(1);
        }
        let mut inputs = Vec::with_capacity(inputs_wanted);
        let mut total = 0u64;
        for _ in 0..inputs_wanted {
            match self.draw_spendable() {
                Some(s) => {
                    inputs.push(s.outpoint);
                    total += s.value;
                }
                None => break,
            }
        }
        if inputs.is_empty() {
            return None;
        }
        let fee = ((110 * inputs.len() as u64 + 40) * self.rng.gen_range(1..=30)).min(total / 4);
        let mut available = total - fee;
        let outputs_wanted = extra_outputs
            + match self.rng.gen_range(0..100) {
                0..=21 => 1,
                22..=84 => 2,
                85..=93 => 3,
                _ => self.rng.gen_range(4..=10),
            };
        let mut outputs = Vec::with_capacity(outputs_wanted + 1);
        if x > 0.4 && self.rng.gen_ratio(3, 100) {
            let mut data = vec![0x6a, 0x10];
            data.extend_from_slice(&self.rng.gen::<u128>().to_le_bytes());
            outputs.push(TxOut {
                value: 0,
                script: data,
            });
        }
        for i in 0..outputs_wanted {
            if available < DUST {
                break;
            }
            let value = if i + 1 == outputs_wanted || available < 2 * DUST {
                available
            } else {
                self.rng.gen_range(DUST..=available - DUST)
            };
            available -= value;
            let script = self.payee(x);
            outputs.push(TxOut { value, script });
        }
        if outputs.iter().all(|o| o.value == 0) {
            let script = self.payee(x);
            outputs.push(TxOut {
                value: available,
                script,
            });
        }
        Some(Plan {
            inputs,
            outputs,
            fee,
        })
    }
}

/// Counters of a generation, for its progress line and the metadata.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenerateProgress {
    /// blocks written, genesis included
    pub blocks: u32,
    /// transactions written, coinbases included
    pub txs: u64,
    /// bytes of blocks written
    pub bytes: u64,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// transactions, coinbases left out
    pub txs: u64,
    /// blocks after genesis (default: one per ~1,500 transactions, at least 100)
    pub blocks: Option<u32>,
    /// RNG seed
    pub seed: u64,
    /// the shape
    pub profile: HistoryProfile,
}

/// Writes the files of a chain directory as blocks come.
struct Writer {
    dir: PathBuf,
    file_no: u32,
    file: BufWriter<File>,
    file_len: u64,
    index: BufWriter<File>,
    buckets: Vec<BufWriter<File>>,
    bytes: u64,
}

impl Writer {
    fn create(dir: &Path) -> Result<Writer> {
        for sub in ["blocks", "txindex"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(io_at(&path))?;
        }
        let index_path = dir.join("index.bin");
        let index = File::create(&index_path).map_err(io_at(&index_path))?;
        let mut buckets = Vec::with_capacity(256);
        for b in 0..256 {
            let path = unsorted_bucket(dir, b);
            buckets.push(BufWriter::with_capacity(
                1 << 16,
                File::create(&path).map_err(io_at(&path))?,
            ));
        }
        let path = block_file(dir, 0);
        Ok(Writer {
            dir: dir.to_path_buf(),
            file_no: 0,
            file: BufWriter::with_capacity(1 << 20, File::create(&path).map_err(io_at(&path))?),
            file_len: 0,
            index: BufWriter::with_capacity(1 << 16, index),
            buckets,
            bytes: 0,
        })
    }

    fn add_block(
        &mut self,
        height: u32,
        hash: &Hash32,
        raw: &[u8],
        time: u32,
        txs: &[(Hash32, u32, u32)],
    ) -> Result<()> {
        if self.file_len > 0 && self.file_len + raw.len() as u64 > BLOCK_FILE_BYTES {
            let path = block_file(&self.dir, self.file_no);
            self.file.flush().map_err(io_at(&path))?;
            self.file_no += 1;
            let path = block_file(&self.dir, self.file_no);
            self.file =
                BufWriter::with_capacity(1 << 20, File::create(&path).map_err(io_at(&path))?);
            self.file_len = 0;
        }
        let path = block_file(&self.dir, self.file_no);
        self.file.write_all(raw).map_err(io_at(&path))?;
        let mut record = [0u8; INDEX_RECORD];
        record[..32].copy_from_slice(hash);
        record[32..36].copy_from_slice(&self.file_no.to_le_bytes());
        record[36..44].copy_from_slice(&self.file_len.to_le_bytes());
        record[44..48].copy_from_slice(&(raw.len() as u32).to_le_bytes());
        record[48..52].copy_from_slice(&(txs.len() as u32).to_le_bytes());
        record[52..56].copy_from_slice(&time.to_le_bytes());
        let index_path = self.dir.join("index.bin");
        self.index.write_all(&record).map_err(io_at(&index_path))?;
        for (txid, offset, len) in txs {
            let mut r = [0u8; TX_RECORD];
            r[..8].copy_from_slice(&txid[..8]);
            r[8..12].copy_from_slice(&height.to_le_bytes());
            r[12..16].copy_from_slice(&offset.to_le_bytes());
            r[16..20].copy_from_slice(&len.to_le_bytes());
            let b = txid[0] as usize;
            self.buckets[b]
                .write_all(&r)
                .map_err(io_at(&unsorted_bucket(&self.dir, b)))?;
        }
        self.file_len += raw.len() as u64;
        self.bytes += raw.len() as u64;
        Ok(())
    }

    /// Flushes everything and sorts the transaction index, bucket by bucket (each bucket is
    /// 1/256 of the index, so memory stays bounded).
    fn finish(mut self) -> Result<()> {
        let path = block_file(&self.dir, self.file_no);
        self.file.flush().map_err(io_at(&path))?;
        self.file.get_ref().sync_all().map_err(io_at(&path))?;
        let index_path = self.dir.join("index.bin");
        self.index.flush().map_err(io_at(&index_path))?;
        self.index
            .get_ref()
            .sync_all()
            .map_err(io_at(&index_path))?;
        let buckets = std::mem::take(&mut self.buckets);
        for (b, mut w) in buckets.into_iter().enumerate() {
            let unsorted = unsorted_bucket(&self.dir, b);
            w.flush().map_err(io_at(&unsorted))?;
            drop(w);
            let mut bytes = Vec::new();
            File::open(&unsorted)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(io_at(&unsorted))?;
            let mut records: Vec<[u8; TX_RECORD]> = bytes
                .chunks_exact(TX_RECORD)
                .map(|c| c.try_into().expect("chunks_exact gives TX_RECORD bytes"))
                .collect();
            records.sort_unstable_by(|a, b| a[..8].cmp(&b[..8]));
            let sorted = sorted_bucket(&self.dir, b);
            let mut out = BufWriter::new(File::create(&sorted).map_err(io_at(&sorted))?);
            for r in &records {
                out.write_all(r).map_err(io_at(&sorted))?;
            }
            out.flush().map_err(io_at(&sorted))?;
            out.get_ref().sync_all().map_err(io_at(&sorted))?;
            fs::remove_file(&unsorted).map_err(io_at(&unsorted))?;
        }
        Ok(())
    }
}

fn block_file(dir: &Path, n: u32) -> PathBuf {
    dir.join("blocks").join(format!("blk{n:05}.dat"))
}

fn unsorted_bucket(dir: &Path, b: usize) -> PathBuf {
    dir.join("txindex").join(format!("{b:02x}.unsorted"))
}

fn sorted_bucket(dir: &Path, b: usize) -> PathBuf {
    dir.join("txindex").join(format!("{b:02x}.bin"))
}

/// Generates a chain into `dir` (which must hold no chain), calling `progress` after every
/// block. Memory stays bounded by the profile's pools, whatever `options.txs`.
pub fn generate(
    dir: &Path,
    coin: Arc<dyn Coin>,
    options: &GenerateOptions,
    mut progress: impl FnMut(GenerateProgress),
) -> Result<ChainMeta> {
    let started = Instant::now();
    if dir.join(META_FILE).exists() {
        return Err(ChainDirError::Mismatch {
            path: dir.to_path_buf(),
            found: "a chain already".into(),
            wanted: "an empty directory to generate into".into(),
        });
    }
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    let params = coin.params().clone();
    // The genesis block exactly as the simulator's in-memory chain makes it (the network's
    // real one where the coin shares Bitcoin's regtest genesis).
    let genesis_chain = SimChain::new(Arc::clone(&coin), Profile::tiny(), options.seed)?;
    let genesis = genesis_chain
        .block(0)
        .map(std::borrow::Cow::into_owned)
        .ok_or(super::SimError::Nothing("no genesis"))?;
    drop(genesis_chain);
    let encoder = coin
        .encoder()
        .ok_or_else(|| super::SimError::NoEncoder(format!("{} {}", params.coin, params.net)))?;
    let blocks = options
        .blocks
        .unwrap_or_else(|| u32::try_from((options.txs / 1500).max(100)).unwrap_or(u32::MAX));
    let mut g = Generator {
        coin: Arc::clone(&coin),
        profile: options.profile.clone(),
        rng: ChaCha8Rng::seed_from_u64(options.seed),
        segwit: params.bech32_hrp.is_some(),
        pool: Vec::new(),
        scripts: Vec::new(),
        exchanges: Vec::new(),
        unspent: 0,
        txs: 0,
        extra_nonce: 0,
    };
    for _ in 0..g.profile.exchanges {
        let mut body = [0u8; 32];
        g.rng.fill(&mut body);
        g.exchanges.push(script_of(Kind::P2pkh, &body));
    }
    let mut writer = Writer::create(dir)?;
    let genesis_offset = genesis.raw.len() - tx_bytes_of(&genesis, &coin)?;
    let genesis_txs: Vec<(Hash32, u32, u32)> = vec![(
        genesis.txids[0],
        genesis_offset as u32,
        (genesis.raw.len() - genesis_offset) as u32,
    )];
    writer.add_block(0, &genesis.hash, &genesis.raw, genesis.time, &genesis_txs)?;
    let mut done = GenerateProgress {
        blocks: 1,
        txs: 1,
        bytes: genesis.raw.len() as u64,
    };
    progress(done);
    let mut prev_hash = genesis.hash;
    let mut time = genesis.time;
    // Transactions a block could not make (too little to spend yet) are owed by later ones,
    // so the chain has exactly the transactions asked for.
    let mut owed = 0u64;
    for height in 1..=blocks {
        let x = f64::from(height) / f64::from(blocks.max(1));
        let scheduled = |h: u32| {
            cumulative_txs(h, blocks, options.txs) - cumulative_txs(h - 1, blocks, options.txs)
        };
        let wanted = scheduled(height) + owed;
        // The next block spends what this one leaves: where the pool would be short of ~2.5
        // inputs per next transaction, this block's transactions fan out (and its coinbase
        // pays many outputs), as early mainnet's coinbases fed later blocks.
        let next = if height < blocks {
            scheduled(height + 1)
        } else {
            0
        };
        let target_pool = (next as f64 * 2.5) as usize + 16;
        // Transactions are planned in waves: when the pool runs dry, the wave so far is
        // encoded (in parallel) and its outputs become spendable by the rest of the block, as a
        // node accepts a child after its parent in one block.
        let mut body: Vec<EncodedTx> = Vec::with_capacity(wanted as usize + 1);
        let mut wave: Vec<Plan> = Vec::new();
        let mut fees = 0u64;
        let mut made = 0u64;
        let mut created = 0usize;
        while made < wanted {
            let deficit = target_pool.saturating_sub(g.pool.len() + created);
            let remaining = (wanted - made) as usize;
            let extra = deficit.div_ceil(remaining + 1).min(50);
            match g.plan_tx(x, extra) {
                Some(plan) => {
                    created += plan.outputs.len();
                    fees += plan.fee;
                    made += 1;
                    wave.push(plan);
                }
                None if wave.is_empty() => break,
                None => {
                    created = 0;
                    encode_wave(
                        &mut g,
                        encoder,
                        height,
                        std::mem::take(&mut wave),
                        &mut body,
                    )?;
                }
            }
        }
        owed = wanted - made;
        let coinbase_fanout = target_pool
            .saturating_sub(g.pool.len() + created)
            .clamp(1, 5000);
        encode_wave(&mut g, encoder, height, wave, &mut body)?;
        let reward = BLOCK_REWARD + fees;
        let share = reward / coinbase_fanout as u64;
        let coinbase_outputs: Vec<TxOut> = (0..coinbase_fanout)
            .map(|i| TxOut {
                value: if i == 0 {
                    reward - share * (coinbase_fanout as u64 - 1)
                } else {
                    share
                },
                script: g.payee(x),
            })
            .collect();
        g.extra_nonce = g.extra_nonce.wrapping_add(1);
        let coinbase = encoder.coinbase(height, g.extra_nonce, &coinbase_outputs)?;
        let coinbase_txid = coinbase.txid;
        let mut txs = Vec::with_capacity(body.len() + 1);
        txs.push(coinbase);
        txs.extend(body);
        time += 1 + g.rng.gen_range(0..1200);
        let template = BlockTemplate {
            version: 0x2000_0000,
            prev_hash,
            time,
            bits: REGTEST_BITS,
            height,
        };
        let block = encoder.block(&template, &txs)?;
        let tx_bytes: usize = txs.iter().map(|t| t.raw.len()).sum();
        let mut offset = (block.raw.len() - tx_bytes - trailer_len(&coin)) as u32;
        let mut records = Vec::with_capacity(txs.len());
        for t in &txs {
            records.push((t.txid, offset, t.raw.len() as u32));
            offset += t.raw.len() as u32;
        }
        writer.add_block(height, &block.hash, &block.raw, time, &records)?;
        g.add_outputs(coinbase_txid, &coinbase_outputs, height);
        g.txs += txs.len() as u64;
        prev_hash = block.hash;
        done.blocks += 1;
        done.txs += txs.len() as u64;
        done.bytes += block.raw.len() as u64;
        progress(done);
    }
    writer.finish()?;
    write_pool(dir, &g)?;
    let meta = ChainMeta {
        format: FORMAT_VERSION,
        coin: params.coin.clone(),
        network: params.net.clone(),
        seed: options.seed,
        profile: options.profile.name.to_string(),
        target_txs: options.txs,
        blocks: done.blocks,
        txs: done.txs,
        unspent_outputs: g.unspent,
        block_bytes: done.bytes,
        genesis: crate::daemon::hash_to_hex(&genesis.hash),
        tip: crate::daemon::hash_to_hex(&prev_hash),
        generation_seconds: started.elapsed().as_secs_f64(),
    };
    let tmp = dir.join("chain.json.tmp");
    let text = serde_json::to_vec_pretty(&meta).map_err(|e| ChainDirError::Io {
        path: tmp.clone(),
        source: std::io::Error::other(e),
    })?;
    fs::write(&tmp, text).map_err(io_at(&tmp))?;
    fs::rename(&tmp, dir.join(META_FILE)).map_err(io_at(dir))?;
    Ok(meta)
}

/// Encodes `wave` in parallel into `body`; its outputs join the pool and its inputs leave
/// the unspent count.
fn encode_wave(
    g: &mut Generator,
    encoder: &dyn anode_coins::BlockEncoder,
    height: u32,
    wave: Vec<Plan>,
    body: &mut Vec<EncodedTx>,
) -> Result<()> {
    let encoded: Vec<std::result::Result<EncodedTx, anode_coins::Error>> = wave
        .par_iter()
        .map(|p| encoder.spend(&p.inputs, &p.outputs))
        .collect();
    for (plan, tx) in wave.iter().zip(encoded) {
        let tx = tx?;
        g.unspent -= plan.inputs.len() as u64;
        g.add_outputs(tx.txid, &plan.outputs, height);
        body.push(tx);
    }
    Ok(())
}

/// Bytes after the last transaction of a raw block (Decred's empty stake-transaction list).
fn trailer_len(coin: &Arc<dyn Coin>) -> usize {
    usize::from(coin.params().tx_format == anode_coins::TxFormat::Decred)
}

fn tx_bytes_of(block: &super::SimBlock, coin: &Arc<dyn Coin>) -> Result<usize> {
    let parsed = coin.parse_block(&block.raw, Some(0))?;
    Ok(block.raw.len() - parsed.full_header_len - varint_len(parsed.txs.len() as u64))
}

fn varint_len(n: u64) -> usize {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Writes the pools at the tip: spendable outputs (with their scripts unknown to the pool,
/// only value) and reused scripts.
fn write_pool(dir: &Path, g: &Generator) -> Result<()> {
    let path = dir.join("pool.bin");
    let mut out = BufWriter::new(File::create(&path).map_err(io_at(&path))?);
    write_pool_to(&mut out, g).map_err(io_at(&path))?;
    out.flush().map_err(io_at(&path))?;
    Ok(())
}

fn write_pool_to(out: &mut impl Write, g: &Generator) -> std::io::Result<()> {
    let mut put = |bytes: &[u8]| out.write_all(bytes);
    put(&(g.pool.len() as u64).to_le_bytes())?;
    for s in &g.pool {
        put(&s.outpoint.txid)?;
        put(&s.outpoint.vout.to_le_bytes())?;
        put(&s.value.to_le_bytes())?;
    }
    let scripts = g.exchanges.iter().chain(g.scripts.iter());
    put(&((g.exchanges.len() + g.scripts.len()) as u64).to_le_bytes())?;
    for script in scripts {
        put(&(script.len() as u32).to_le_bytes())?;
        put(script)?;
    }
    Ok(())
}

/// The pools saved at a chain directory's tip: spendable outputs with their values, and the
/// reused scripts (exchanges first).
pub type Pools = (Vec<(OutPoint, u64)>, Vec<Vec<u8>>);

/// One block of a chain directory, as the index describes it.
#[derive(Debug, Clone, Copy)]
struct BlockEntry {
    hash: Hash32,
    file: u32,
    offset: u64,
    len: u32,
    txs: u32,
    time: u32,
}

/// A chain directory opened for serving.
pub struct ChainDir {
    dir: PathBuf,
    coin: Arc<dyn Coin>,
    meta: ChainMeta,
    blocks: Vec<BlockEntry>,
    by_hash: HashMap<Hash32, u32>,
    files: Vec<File>,
    buckets: Vec<(File, u64)>,
}

impl std::fmt::Debug for ChainDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainDir")
            .field("dir", &self.dir)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// What a caller expects a chain directory to hold besides its coin; `None` accepts any.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// seed
    pub seed: Option<u64>,
    /// transactions asked for at generation
    pub txs: Option<u64>,
}

impl ChainDir {
    /// Whether `dir` holds a complete chain.
    pub fn exists(dir: &Path) -> bool {
        dir.join(META_FILE).is_file()
    }

    /// Opens `dir`, checking that it holds what `expect` says and that its files are as long
    /// as its index says.
    pub fn open(dir: &Path, coin: Arc<dyn Coin>, expect: &Expect) -> Result<ChainDir> {
        let meta_path = dir.join(META_FILE);
        if !meta_path.is_file() {
            return Err(ChainDirError::Incomplete(dir.to_path_buf()));
        }
        let text = fs::read(&meta_path).map_err(io_at(&meta_path))?;
        let meta: ChainMeta =
            serde_json::from_slice(&text).map_err(|e| ChainDirError::Damaged {
                path: meta_path.clone(),
                reason: e.to_string(),
            })?;
        if meta.format != FORMAT_VERSION {
            return Err(ChainDirError::Damaged {
                path: meta_path,
                reason: format!(
                    "format {} (this anode reads format {FORMAT_VERSION})",
                    meta.format
                ),
            });
        }
        let params = coin.params();
        let mismatch = !params.coin.eq_ignore_ascii_case(&meta.coin)
            || !params.net.eq_ignore_ascii_case(&meta.network)
            || expect.seed.is_some_and(|s| s != meta.seed)
            || expect.txs.is_some_and(|t| t != meta.target_txs);
        if mismatch {
            let wanted = format!(
                "{} {} seed {} ({} transactions)",
                params.coin,
                params.net,
                expect.seed.unwrap_or(meta.seed),
                expect.txs.unwrap_or(meta.target_txs)
            );
            return Err(ChainDirError::Mismatch {
                path: dir.to_path_buf(),
                found: meta.describe(),
                wanted,
            });
        }
        let index_path = dir.join("index.bin");
        let index = fs::read(&index_path).map_err(io_at(&index_path))?;
        if index.len() != meta.blocks as usize * INDEX_RECORD {
            return Err(ChainDirError::Damaged {
                path: index_path,
                reason: format!(
                    "{} bytes, but {} blocks need {}",
                    index.len(),
                    meta.blocks,
                    meta.blocks as usize * INDEX_RECORD
                ),
            });
        }
        let blocks: Vec<BlockEntry> = index
            .chunks_exact(INDEX_RECORD)
            .map(|r| {
                let u32_at =
                    |i: usize| u32::from_le_bytes(r[i..i + 4].try_into().expect("4 bytes"));
                BlockEntry {
                    hash: r[..32].try_into().expect("32 bytes"),
                    file: u32_at(32),
                    offset: u64::from_le_bytes(r[36..44].try_into().expect("8 bytes")),
                    len: u32_at(44),
                    txs: u32_at(48),
                    time: u32_at(52),
                }
            })
            .collect();
        let file_count = blocks.last().map_or(0, |b| b.file + 1);
        let mut files = Vec::with_capacity(file_count as usize);
        let mut ends = vec![0u64; file_count as usize];
        for b in &blocks {
            let end = &mut ends[b.file as usize];
            *end = (*end).max(b.offset + u64::from(b.len));
        }
        for n in 0..file_count {
            let path = block_file(dir, n);
            let file = File::open(&path).map_err(io_at(&path))?;
            let len = file.metadata().map_err(io_at(&path))?.len();
            if len < ends[n as usize] {
                return Err(ChainDirError::Damaged {
                    path,
                    reason: format!(
                        "truncated: {len} bytes, but its blocks end at byte {}",
                        ends[n as usize]
                    ),
                });
            }
            files.push(file);
        }
        let mut buckets = Vec::with_capacity(256);
        let mut indexed = 0u64;
        for b in 0..256 {
            let path = sorted_bucket(dir, b);
            let file = File::open(&path).map_err(io_at(&path))?;
            let len = file.metadata().map_err(io_at(&path))?.len();
            if len % TX_RECORD as u64 != 0 {
                return Err(ChainDirError::Damaged {
                    path,
                    reason: format!("{len} bytes is not a whole number of records"),
                });
            }
            indexed += len / TX_RECORD as u64;
            buckets.push((file, len / TX_RECORD as u64));
        }
        if indexed != meta.txs {
            return Err(ChainDirError::Damaged {
                path: dir.join("txindex"),
                reason: format!("{indexed} transactions indexed, {} in the chain", meta.txs),
            });
        }
        let by_hash = blocks
            .iter()
            .enumerate()
            .map(|(h, b)| (b.hash, h as u32))
            .collect();
        Ok(ChainDir {
            dir: dir.to_path_buf(),
            coin,
            meta,
            blocks,
            by_hash,
            files,
            buckets,
        })
    }

    /// What the directory holds.
    pub fn meta(&self) -> &ChainMeta {
        &self.meta
    }

    /// Height of the last block.
    pub fn tip_height(&self) -> u32 {
        self.blocks.len().saturating_sub(1) as u32
    }

    /// Hash of the block at `height`.
    pub fn hash(&self, height: u32) -> Option<Hash32> {
        self.blocks.get(height as usize).map(|b| b.hash)
    }

    /// Header time of the block at `height`.
    pub fn time(&self, height: u32) -> Option<u32> {
        self.blocks.get(height as usize).map(|b| b.time)
    }

    /// Serialized bytes of all the directory's blocks.
    pub fn blocks_bytes(&self) -> u64 {
        self.blocks.iter().map(|b| u64::from(b.len)).sum()
    }

    /// Transactions of the block at `height`, coinbase included.
    pub fn tx_count(&self, height: u32) -> Option<u32> {
        self.blocks.get(height as usize).map(|b| b.txs)
    }

    /// Height of the block with `hash`.
    pub fn height_of(&self, hash: &Hash32) -> Option<u32> {
        self.by_hash.get(hash).copied()
    }

    /// The raw block at `height`.
    pub fn raw_block(&self, height: u32) -> Result<Option<Vec<u8>>> {
        let Some(b) = self.blocks.get(height as usize) else {
            return Ok(None);
        };
        let mut raw = vec![0u8; b.len as usize];
        let path = block_file(&self.dir, b.file);
        self.files[b.file as usize]
            .read_exact_at(&mut raw, b.offset)
            .map_err(io_at(&path))?;
        Ok(Some(raw))
    }

    /// The first `len` bytes of the block at `height` (its header, for coins whose header
    /// length is fixed).
    pub fn block_prefix(&self, height: u32, len: usize) -> Result<Option<Vec<u8>>> {
        let Some(b) = self.blocks.get(height as usize) else {
            return Ok(None);
        };
        let mut raw = vec![0u8; len.min(b.len as usize)];
        let path = block_file(&self.dir, b.file);
        self.files[b.file as usize]
            .read_exact_at(&mut raw, b.offset)
            .map_err(io_at(&path))?;
        Ok(Some(raw))
    }

    /// The raw transaction `txid` and its block's height, if the chain has it.
    pub fn raw_tx(&self, txid: &Hash32) -> Result<Option<(u32, Vec<u8>)>> {
        let b = txid[0] as usize;
        let (file, count) = &self.buckets[b];
        let path = sorted_bucket(&self.dir, b);
        let record = |i: u64| -> Result<[u8; TX_RECORD]> {
            let mut r = [0u8; TX_RECORD];
            file.read_exact_at(&mut r, i * TX_RECORD as u64)
                .map_err(io_at(&path))?;
            Ok(r)
        };
        // The first record whose prefix is not below the txid's.
        let (mut lo, mut hi) = (0u64, *count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if record(mid)?[..8] < txid[..8] {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        // Prefixes may collide: check each candidate's full txid.
        while lo < *count {
            let r = record(lo)?;
            if r[..8] != txid[..8] {
                break;
            }
            let u32_at = |i: usize| u32::from_le_bytes(r[i..i + 4].try_into().expect("4 bytes"));
            let (height, offset, len) = (u32_at(8), u32_at(12), u32_at(16));
            let Some(entry) = self.blocks.get(height as usize) else {
                return Err(ChainDirError::Damaged {
                    path,
                    reason: format!("a record names block {height}, past the tip"),
                });
            };
            let mut raw = vec![0u8; len as usize];
            self.files[entry.file as usize]
                .read_exact_at(&mut raw, entry.offset + u64::from(offset))
                .map_err(io_at(&block_file(&self.dir, entry.file)))?;
            if self.coin.parse_tx(&raw).is_ok_and(|t| t.txid == *txid) {
                return Ok(Some((height, raw)));
            }
            lo += 1;
        }
        Ok(None)
    }

    /// The pools saved at the tip: spendable outputs and reused scripts.
    pub fn pool(&self) -> Result<Pools> {
        let path = self.dir.join("pool.bin");
        let bytes = fs::read(&path).map_err(io_at(&path))?;
        let damaged = |reason: &str| ChainDirError::Damaged {
            path: path.clone(),
            reason: reason.to_string(),
        };
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8]> {
            let slice = bytes.get(at..at + n).ok_or_else(|| damaged("truncated"))?;
            at += n;
            Ok(slice)
        };
        let count = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
        let mut outputs = Vec::with_capacity(count.min(1 << 24) as usize);
        for _ in 0..count {
            let txid: Hash32 = take(32)?.try_into().expect("32 bytes");
            let vout = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes"));
            let value = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
            outputs.push((OutPoint { txid, vout }, value));
        }
        let count = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
        let mut scripts = Vec::with_capacity(count.min(1 << 24) as usize);
        for _ in 0..count {
            let len = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
            scripts.push(take(len)?.to_vec());
        }
        Ok((outputs, scripts))
    }
}
