//! `anode check`: verifies an index against itself and against the node, read-only, beside a
//! running server if there is one.
//!
//! The database is opened read-only (no lock, nothing written) and read through one snapshot,
//! so a server flushing meanwhile never makes the check see half a flush. Against itself: the
//! chain tables (every header hashes to its block hash and names the one before, tx counts
//! grow and end at the state row's), the txid look-up of sampled transactions, and the
//! history and UTXOs of sampled scripts. Against the node: the block hashes at sampled heights
//! and sampled blocks re-parsed with the coin layer, their txids, outputs (unspent with the
//! right value, or spent by a recorded spender) and inputs compared with the index.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use anode_coins::Coin;
use anode_store::{Direction, KeyRange, ReadView, Store};
use anyhow::Context;

use crate::config::Config;
use crate::daemon::{hash_to_hex, DaemonApi};
use crate::index::chain::STATE_KEY;
use crate::index::keys::*;
use crate::index::lookup::{find_tx_num, hashx_of, read_txids};
use crate::index::meta::{self, DbIdentity, MetaError, SCHEMA_VERSION};
use crate::index::schema::*;
use crate::index::IndexState;
use crate::query::HashX;
use crate::store_factory::{self, FactoryError, Tuning};

/// Blocks sampled when `--sample` is not given: seconds on a small chain, about a minute on
/// mainnet's full blocks.
pub const DEFAULT_SAMPLE: u32 = 64;
/// Scripts of each sampled block whose whole history and UTXO set are checked.
const SCRIPTS_PER_BLOCK: usize = 16;
/// History entries read per script at most: an exchange's script can have millions.
const MAX_HISTORY: usize = 1_000_000;
/// Problems printed at most; the summary counts them all.
const MAX_PRINTED: usize = 200;

/// What `anode check` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckOptions {
    /// blocks sampled (spread evenly over the chain, the first and the tip included)
    pub sample: u32,
    /// every block, and every row of every table read and decoded
    pub full: bool,
    /// compare with the node (off: the index against itself only)
    pub node: bool,
}

/// The check found problems (exit status 1); they were printed.
#[derive(Debug, thiserror::Error)]
#[error("the index at {path} has {problems} problem(s)")]
pub struct ProblemsFound {
    /// the database directory
    pub path: PathBuf,
    /// how many
    pub problems: usize,
}

/// The check could not run (exit status 2): no database, another coin's, no node.
#[derive(Debug, thiserror::Error)]
#[error("could not check the index")]
pub struct CouldNotCheck(#[source] pub anyhow::Error);

/// What a check found.
#[derive(Debug, Default, Clone)]
pub struct CheckReport {
    /// engine of the database
    pub engine: String,
    /// the database directory
    pub path: PathBuf,
    /// the flushed tip, if anything is indexed
    pub tip: Option<(u32, String)>,
    /// one line per problem: where, what was expected, what was found
    pub problems: Vec<String>,
    /// things worth knowing that are not damage (a node behind the index, a fork near the tip)
    pub notes: Vec<String>,
    /// blocks whose transactions were checked
    pub blocks: u64,
    /// of which compared with the node
    pub blocks_from_node: u64,
    /// transactions checked
    pub txs: u64,
    /// scripts whose history and UTXOs were checked
    pub scripts: u64,
    /// rows read by the full scan of every table (0 without `--full`)
    pub rows_scanned: u64,
}

impl CheckReport {
    /// The lines to print: problems (at most [`MAX_PRINTED`]), notes, then the summary.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .problems
            .iter()
            .take(MAX_PRINTED)
            .map(|p| format!("problem: {p}"))
            .collect();
        if self.problems.len() > MAX_PRINTED {
            lines.push(format!(
                "problem: ... and {} more",
                self.problems.len() - MAX_PRINTED
            ));
        }
        lines.extend(self.notes.iter().map(|n| format!("note: {n}")));
        let tip = match &self.tip {
            Some((height, hash)) => format!("tip {height} {hash}"),
            None => "nothing indexed".into(),
        };
        let mut summary = format!(
            "anode check: {} index at {}, {tip}: {} blocks ({} compared with the node), {} \
             transactions, {} scripts",
            self.engine,
            self.path.display(),
            self.blocks,
            self.blocks_from_node,
            self.txs,
            self.scripts
        );
        if self.rows_scanned > 0 {
            summary.push_str(&format!(", {} rows scanned", self.rows_scanned));
        }
        summary.push_str(&match self.problems.len() {
            0 => ": no problems found".to_string(),
            1 => ": 1 problem".to_string(),
            n => format!(": {n} problems"),
        });
        lines.push(summary);
        lines
    }
}

/// Runs the check the operator's `config` describes. `Err` means it could not check;
/// problems found are in the report.
pub async fn run(config: &Config, options: CheckOptions) -> anyhow::Result<CheckReport> {
    let coin = anode_coins::lookup(&config.coin, &config.network)
        .with_context(|| format!("coin {} network {}", config.coin, config.network))?;
    let path = config
        .db_directory
        .clone()
        .context("set DB_DIRECTORY (or db_directory) to the index to check")?;
    let engine = match (&config.db_engine, anode_store::marker::engine_of(&path)) {
        (Some(engine), _) => engine.clone(),
        (None, Some(found)) => found,
        (None, None) => anyhow::bail!(
            "{} holds no anode database (no {} and no engine's files)",
            path.display(),
            anode_store::marker::MARKER_FILE
        ),
    };
    let mut report = CheckReport {
        engine: engine.clone(),
        path: path.clone(),
        ..CheckReport::default()
    };
    let daemon = if options.node {
        if config.daemon_urls.is_empty() {
            anyhow::bail!("no node to compare with: set DAEMON_URL, or pass --no-node");
        }
        Some(crate::daemon::connect_checked(config, coin.as_ref()).await?)
    } else {
        None
    };
    let tuning = Tuning {
        cache_mb: config.cache_mb.min(512),
    };
    let store = match store_factory::open_store_read_only(
        &engine,
        &path,
        crate::index::schema::TABLES,
        tuning,
    ) {
        Ok(store) => store,
        // Damaged files are what the check looks for: a finding, not a failure to check.
        Err(FactoryError::Store(e)) if e.kind() == anode_store::ErrorKind::Corrupt => {
            report
                .problems
                .push(format!("the database cannot be opened: {e}"));
            return Ok(report);
        }
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let wanted = DbIdentity {
        engine: engine.clone(),
        schema_version: SCHEMA_VERSION,
        coin: coin.params().coin.clone(),
        network: coin.params().net.clone(),
    };
    let snapshot = store.snapshot().context("taking a snapshot of the index")?;
    let view: &dyn ReadView = &*snapshot;
    match meta::verify_identity(view, &path, &wanted) {
        Ok(true) => {}
        Ok(false) => {
            report.notes.push("the database holds no index yet".into());
            return Ok(report);
        }
        Err(MetaError::Damaged { detail, .. }) => {
            report
                .problems
                .push(format!("reading the meta table: {detail}"));
            return Ok(report);
        }
        Err(e) => return Err(e.into()),
    }
    let mut checker = Checker {
        view,
        coin: Arc::clone(&coin),
        report,
        reorg_limit: config.reorg_limit.unwrap_or(coin.params().reorg_limit),
        engine_errors: BTreeSet::new(),
        repeated_errors: 0,
    };
    checker
        .run(store.as_ref(), daemon.as_deref(), options)
        .await?;
    if checker.repeated_errors > 0 {
        let repeated = checker.repeated_errors;
        checker.report.problems.push(format!(
            "{repeated} more reads failed with an engine error listed above"
        ));
    }
    Ok(checker.report)
}

/// The chain tables as read: block hashes and cumulative tx counts by height.
struct Chain {
    state: IndexState,
    hashes: Vec<Option<Hash>>,
    tx_counts: Vec<Option<u64>>,
}

type Hash = crate::query::Hash32;

impl Chain {
    /// Tx numbers of the block at `height`, when its counts were readable.
    fn tx_range(&self, height: u32) -> Option<std::ops::Range<TxNum>> {
        let end = (*self.tx_counts.get(height as usize)?)?;
        let start = match height {
            0 => 0,
            h => (*self.tx_counts.get(h as usize - 1)?)?,
        };
        (start <= end).then_some(start..end)
    }
}

struct Checker<'v> {
    view: &'v dyn ReadView,
    coin: Arc<dyn Coin>,
    report: CheckReport,
    reorg_limit: u32,
    /// engine errors already listed
    engine_errors: BTreeSet<String>,
    /// reads that failed with one of them again
    repeated_errors: u64,
}

/// The heights of `sample` blocks spread evenly over `0..=tip`, both ends included.
pub fn sample_heights(tip: u32, sample: u32) -> Vec<u32> {
    let count = u64::from(sample.max(1)).min(u64::from(tip) + 1);
    if count == 1 {
        return vec![tip];
    }
    let mut heights: Vec<u32> = (0..count)
        .map(|i| (i * u64::from(tip) / (count - 1)) as u32)
        .collect();
    heights.dedup();
    heights
}

impl Checker<'_> {
    /// Records a problem. An engine error met again (a damaged block under many keys) is
    /// counted, not listed again.
    fn problem(&mut self, text: String) {
        let engine_says = format!("{}: ", self.report.engine);
        if let Some(at) = text.find(&engine_says) {
            if !self.engine_errors.insert(text[at..].to_string()) {
                self.repeated_errors += 1;
                return;
            }
        }
        self.report.problems.push(text);
    }

    /// `Some(value)`, or a problem naming what was being read.
    fn read<T>(
        &mut self,
        what: impl FnOnce() -> String,
        result: anode_store::Result<T>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                let what = what();
                self.problem(format!("reading {what}: {e}"));
                None
            }
        }
    }

    async fn run(
        &mut self,
        store: &dyn Store,
        daemon: Option<&dyn DaemonApi>,
        options: CheckOptions,
    ) -> anyhow::Result<()> {
        let state_row = self.view.get(META, STATE_KEY);
        let Some(state_row) = self.read(|| "the state row of the meta table".into(), state_row)
        else {
            return Ok(());
        };
        let Some(state_row) = state_row else {
            self.report
                .notes
                .push("no block is indexed yet (no state row)".into());
            return Ok(());
        };
        let Some(state) = IndexState::decode(&state_row) else {
            self.problem(format!(
                "the state row of the meta table is damaged: {}",
                hex::encode(&state_row)
            ));
            return Ok(());
        };
        self.report.tip = Some((state.height, hash_to_hex(&state.hash)));
        let chain = self.chain_tables(state);
        self.tx_hashes_end(&chain);

        let heights = if options.full {
            (0..=state.height).collect()
        } else {
            sample_heights(state.height, options.sample)
        };
        let mut scripts: BTreeSet<HashX> = BTreeSet::new();
        let node_height = match daemon {
            Some(daemon) => Some(self.compare_tip_with_node(daemon, &chain).await?),
            None => None,
        };
        for (done, &height) in heights.iter().enumerate() {
            let found = match (daemon, node_height) {
                (Some(daemon), Some(node_height)) if height <= node_height => {
                    self.block_against_node(daemon, &chain, height).await?
                }
                _ => self.block_against_itself(&chain, height),
            };
            scripts.extend(found);
            if done % 1000 == 999 {
                tracing::info!(
                    height,
                    checked = done + 1,
                    of = heights.len(),
                    "checking blocks"
                );
            }
        }
        if daemon.is_none() {
            scripts.extend(self.scripts_from_tables(options.sample as usize * 4));
        }
        for hashx in &scripts {
            self.script(&chain, hashx);
        }
        self.report.scripts = scripts.len() as u64;
        if options.full {
            self.scan_every_table(store, &chain);
        }
        Ok(())
    }

    /// Block hashes, tx counts and headers of every height: in sequence, chained, and ending
    /// where the state row says.
    fn chain_tables(&mut self, state: IndexState) -> Chain {
        let len = state.height as usize + 1;
        let mut chain = Chain {
            state,
            hashes: vec![None; len],
            tx_counts: vec![None; len],
        };
        for (table, parse) in [(BLOCK_HASHES, 32usize), (TX_COUNTS, TX_NUM_LEN)] {
            let rows = self.view.scan(table, KeyRange::all(), Direction::Forward);
            let Some(rows) = self.read(|| format!("the {table} table"), rows) else {
                continue;
            };
            let mut problems = Vec::new();
            for row in rows {
                let (key, value) = match row {
                    Ok(row) => row,
                    Err(e) => {
                        problems.push(format!("reading the {table} table: {e}"));
                        break;
                    }
                };
                let height = read_height(&key).filter(|_| key.len() == 4);
                let Some(height) = height.filter(|h| (*h as usize) < len) else {
                    problems.push(format!(
                        "{table} has a row past the tip {} (key {})",
                        state.height,
                        hex::encode(&key)
                    ));
                    continue;
                };
                if value.len() != parse {
                    problems.push(format!(
                        "{table} at height {height}: a value of {} bytes, expected {parse}",
                        value.len()
                    ));
                    continue;
                }
                if table == BLOCK_HASHES {
                    chain.hashes[height as usize] = read_hash(&value);
                } else {
                    chain.tx_counts[height as usize] = read_tx_num(&value);
                }
            }
            for problem in problems {
                self.problem(problem);
            }
        }
        for height in 0..len {
            if chain.hashes[height].is_none() {
                self.problem(format!("block_hashes has no row for height {height}"));
            }
            if chain.tx_counts[height].is_none() {
                self.problem(format!("tx_counts has no row for height {height}"));
            }
        }
        if let Some(Some(hash)) = chain.hashes.last() {
            if *hash != state.hash {
                self.problem(format!(
                    "the state row names block {} at height {}, block_hashes has {}",
                    hash_to_hex(&state.hash),
                    state.height,
                    hash_to_hex(hash)
                ));
            }
        }
        if let Some(Some(count)) = chain.tx_counts.last() {
            if *count != state.tx_count {
                self.problem(format!(
                    "the state row counts {} transactions, tx_counts ends at {count}",
                    state.tx_count
                ));
            }
        }
        let mut previous = 0u64;
        for (height, count) in chain.tx_counts.iter().enumerate() {
            if let Some(count) = *count {
                if count < previous {
                    self.problem(format!(
                        "tx_counts goes down at height {height}: {count} after {previous}"
                    ));
                }
                previous = count;
            }
        }
        self.headers(&chain);
        chain
    }

    /// Every header hashes to its block's hash and names the block before it.
    fn headers(&mut self, chain: &Chain) {
        let rows = self.view.scan(HEADERS, KeyRange::all(), Direction::Forward);
        let Some(rows) = self.read(|| "the headers table".into(), rows) else {
            return;
        };
        let mut seen = vec![false; chain.hashes.len()];
        let mut problems = Vec::new();
        for row in rows {
            let (key, header) = match row {
                Ok(row) => row,
                Err(e) => {
                    problems.push(format!("reading the headers table: {e}"));
                    break;
                }
            };
            let Some(height) =
                read_height(&key).filter(|h| key.len() == 4 && (*h as usize) < seen.len())
            else {
                problems.push(format!(
                    "headers has a row past the tip {} (key {})",
                    chain.state.height,
                    hex::encode(&key)
                ));
                continue;
            };
            seen[height as usize] = true;
            let stored = chain.hashes[height as usize];
            if let (Ok(hash), Some(stored)) = (self.coin.header_hash(&header), stored) {
                if hash != stored {
                    problems.push(format!(
                        "header at height {height} hashes to {}, block_hashes has {}",
                        hash_to_hex(&hash),
                        hash_to_hex(&stored)
                    ));
                }
            }
            if height > 0 {
                let before = chain.hashes[height as usize - 1];
                match (self.coin.header_prev_hash(&header), before) {
                    (Ok(prev), Some(before)) if prev != before => problems.push(format!(
                        "header at height {height} follows {}, but block {} is {}",
                        hash_to_hex(&prev),
                        height - 1,
                        hash_to_hex(&before)
                    )),
                    (Err(e), _) => {
                        problems.push(format!("header at height {height} is damaged: {e}"));
                    }
                    _ => {}
                }
            }
        }
        for (height, seen) in seen.iter().enumerate() {
            if !seen {
                problems.push(format!("headers has no row for height {height}"));
            }
        }
        for problem in problems {
            self.problem(problem);
        }
    }

    /// `tx_hashes` ends exactly at the state row's tx count.
    fn tx_hashes_end(&mut self, chain: &Chain) {
        let last = self.view.last_in(TX_HASHES, KeyRange::all());
        let Some(last) = self.read(|| "the last row of tx_hashes".into(), last) else {
            return;
        };
        let expected = chain.state.tx_count.checked_sub(1);
        let found = last.as_ref().and_then(|(key, _)| read_tx_num(key));
        if found != expected {
            self.problem(format!(
                "tx_hashes ends at tx number {}, the state row counts {} transactions",
                found.map_or("(none)".into(), |n| n.to_string()),
                chain.state.tx_count
            ));
        }
    }

    /// The node's height, with a note when it differs from the index's.
    async fn compare_tip_with_node(
        &mut self,
        daemon: &dyn DaemonApi,
        chain: &Chain,
    ) -> anyhow::Result<u32> {
        let node_height = daemon
            .block_count()
            .await
            .context("asking the node its height")?;
        let tip = chain.state.height;
        if node_height < tip {
            self.report.notes.push(format!(
                "the node is at height {node_height}, below the index's tip {tip}: blocks above \
                 it are compared only if the node has them"
            ));
        } else if node_height > tip {
            self.report.notes.push(format!(
                "the node is at height {node_height}, {} blocks ahead of the index (a running \
                 server catches up)",
                node_height - tip
            ));
        }
        Ok(node_height)
    }

    /// One block compared with the node's: its hash, txids, outputs and inputs. Returns some
    /// of its scripts for [`Self::script`].
    async fn block_against_node(
        &mut self,
        daemon: &dyn DaemonApi,
        chain: &Chain,
        height: u32,
    ) -> anyhow::Result<Vec<HashX>> {
        let node_hash = *daemon
            .block_hashes(height..height + 1)
            .await
            .with_context(|| format!("asking the node for block {height}'s hash"))?
            .first()
            .with_context(|| format!("the node returned no hash for block {height}"))?;
        let Some(index_hash) = chain.hashes[height as usize] else {
            return Ok(Vec::new());
        };
        if node_hash != index_hash {
            let text = format!(
                "block {height}: the node has {}, the index has {}",
                hash_to_hex(&node_hash),
                hash_to_hex(&index_hash)
            );
            if height + self.reorg_limit > chain.state.height {
                self.report.notes.push(format!(
                    "{text}: within the reorg limit of the tip, a reorganisation the server \
                     follows by itself"
                ));
            } else {
                self.problem(text);
            }
            return Ok(Vec::new());
        }
        let raw = daemon
            .block(&node_hash)
            .await
            .with_context(|| format!("fetching block {height} from the node"))?;
        let block = self
            .coin
            .parse_block(&raw, Some(height))
            .with_context(|| format!("parsing block {height} from the node"))?;
        self.report.blocks += 1;
        self.report.blocks_from_node += 1;
        let index_txs = height > 0 || self.coin.index_genesis_outputs();
        let txs: &[anode_coins::ParsedTx] = if index_txs { &block.txs } else { &[] };
        let Some(range) = chain.tx_range(height) else {
            return Ok(Vec::new());
        };
        if range.end - range.start != txs.len() as u64 {
            self.problem(format!(
                "block {height}: the index counts {} transactions, the node's block has {}",
                range.end - range.start,
                txs.len()
            ));
            return Ok(Vec::new());
        }
        let txids = match read_txids(self.view, range.clone()) {
            Ok(txids) => txids,
            Err(e) => {
                self.problem(format!("block {height}: reading its txids: {e}"));
                return Ok(Vec::new());
            }
        };
        let mut scripts = Vec::new();
        for ((tx, stored), tx_num) in txs.iter().zip(&txids).zip(range.clone()) {
            self.report.txs += 1;
            if tx.txid != *stored {
                self.problem(format!(
                    "block {height}, tx number {tx_num}: the node's txid is {}, tx_hashes has {}",
                    hash_to_hex(&tx.txid),
                    hash_to_hex(stored)
                ));
                continue;
            }
            self.txid_lookup(height, &tx.txid, tx_num);
            for (vout, out) in tx.outputs.iter().enumerate() {
                if self.coin.is_unspendable(&out.script, height) {
                    continue;
                }
                let hashx = hashx_of(&self.coin.script_hash(&out.script));
                self.output(
                    height,
                    &tx.txid,
                    tx_num,
                    vout as u32,
                    &hashx,
                    out.value,
                    chain,
                );
                if scripts.len() < SCRIPTS_PER_BLOCK && !scripts.contains(&hashx) {
                    scripts.push(hashx);
                }
            }
            if !tx.is_coinbase {
                for input in &tx.inputs {
                    self.input(height, &tx.txid, tx_num, input);
                }
            }
        }
        Ok(scripts)
    }

    /// One block against the index alone: its txids are stored and found again by txid.
    fn block_against_itself(&mut self, chain: &Chain, height: u32) -> Vec<HashX> {
        let Some(range) = chain.tx_range(height) else {
            return Vec::new();
        };
        self.report.blocks += 1;
        match read_txids(self.view, range.clone()) {
            Ok(txids) => {
                for (txid, tx_num) in txids.iter().zip(range) {
                    self.report.txs += 1;
                    self.txid_lookup(height, txid, tx_num);
                }
            }
            Err(e) => self.problem(format!("block {height}: reading its txids: {e}")),
        }
        Vec::new()
    }

    /// The txid finds its tx number again through `txid_index`.
    fn txid_lookup(&mut self, height: u32, txid: &Hash, tx_num: TxNum) {
        match find_tx_num(self.view, txid) {
            Ok(Some(found)) if found == tx_num => {}
            Ok(found) => self.problem(format!(
                "block {height}, tx {}: txid_index finds tx number {}, expected {tx_num}",
                hash_to_hex(txid),
                found.map_or("none".into(), |n| n.to_string())
            )),
            Err(e) => self.problem(format!(
                "block {height}, tx {}: looking up its tx number: {e}",
                hash_to_hex(txid)
            )),
        }
    }

    /// An output of the node's block: in its script's history, and either unspent (with its
    /// value, and found again by outpoint) or spent by a later transaction.
    #[allow(clippy::too_many_arguments)]
    fn output(
        &mut self,
        height: u32,
        txid: &Hash,
        tx_num: TxNum,
        vout: u32,
        hashx: &HashX,
        value: u64,
        chain: &Chain,
    ) {
        let at = || format!("block {height}, output {}:{vout}", hash_to_hex(txid));
        match self.history_has(hashx, tx_num) {
            Ok(true) => {}
            Ok(false) => self.problem(format!(
                "{}: the history of script {} lacks tx number {tx_num}",
                at(),
                hex::encode(hashx)
            )),
            Err(e) => self.problem(format!("{}: reading its script's history: {e}", at())),
        }
        let utxo = self.view.get(UTXO, &utxo_key(hashx, tx_num, vout));
        let spender = self.view.get(SPENDERS, &spender_key(tx_num, vout));
        let (Some(utxo), Some(spender)) = (
            self.read(|| format!("{}: its utxo row", at()), utxo),
            self.read(|| format!("{}: its spenders row", at()), spender),
        ) else {
            return;
        };
        match (utxo, spender) {
            (Some(stored), None) => {
                if read_value(&stored) != Some(value) || stored.len() != 8 {
                    self.problem(format!(
                        "{}: the node's value is {value}, the utxo row holds {}",
                        at(),
                        read_value(&stored).map_or(hex::encode(&stored), |v| v.to_string())
                    ));
                }
                let lookup = self
                    .view
                    .get(UTXO_LOOKUP, &utxo_lookup_key(txid, vout, tx_num));
                let expected = utxo_lookup_value(hashx, value);
                match self.read(|| format!("{}: its utxo_lookup row", at()), lookup) {
                    Some(Some(found)) if found == expected => {}
                    Some(found) => self.problem(format!(
                        "{}: utxo_lookup holds {}, expected {}",
                        at(),
                        found.map_or("no row".into(), hex::encode),
                        hex::encode(&expected)
                    )),
                    None => {}
                }
            }
            (None, Some(spender)) => match read_tx_num(&spender) {
                Some(s)
                    if s > tx_num && s < chain.state.tx_count && spender.len() == TX_NUM_LEN => {}
                _ => self.problem(format!(
                    "{}: spent by tx number {}, which cannot spend it (indexed: {} \
                     transactions)",
                    at(),
                    hex::encode(&spender),
                    chain.state.tx_count
                )),
            },
            (Some(_), Some(spender)) => self.problem(format!(
                "{}: both unspent (a utxo row) and spent (by tx number {})",
                at(),
                read_tx_num(&spender).map_or(hex::encode(&spender), |n| n.to_string())
            )),
            (None, None) => self.problem(format!(
                "{}: of {value} to script {}, neither unspent (no utxo row) nor spent (no \
                 spenders row)",
                at(),
                hex::encode(hashx)
            )),
        }
    }

    /// An input of the node's block: the output it spends is recorded as spent by it.
    fn input(&mut self, height: u32, txid: &Hash, tx_num: TxNum, spent: &anode_coins::OutPoint) {
        let at = || {
            format!(
                "block {height}, tx {} spending {}:{}",
                hash_to_hex(txid),
                hash_to_hex(&spent.txid),
                spent.vout
            )
        };
        let funding = match find_tx_num(self.view, &spent.txid) {
            Ok(Some(funding)) => funding,
            Ok(None) => {
                self.problem(format!(
                    "{}: the spent transaction is not in txid_index",
                    at()
                ));
                return;
            }
            Err(e) => {
                self.problem(format!("{}: looking up the spent transaction: {e}", at()));
                return;
            }
        };
        let spender = self.view.get(SPENDERS, &spender_key(funding, spent.vout));
        match self.read(|| format!("{}: its spenders row", at()), spender) {
            Some(Some(found)) if read_tx_num(&found) == Some(tx_num) => {}
            Some(found) => self.problem(format!(
                "{}: spenders names tx number {}, expected {tx_num}",
                at(),
                found
                    .as_deref()
                    .and_then(read_tx_num)
                    .map_or("none".into(), |n| n.to_string())
            )),
            None => {}
        }
    }

    /// Whether the history of `hashx` holds `tx_num`: the row that holds it is the last one
    /// starting at or before it.
    fn history_has(&self, hashx: &HashX, tx_num: TxNum) -> Result<bool, String> {
        let range = KeyRange::between(&history_key(hashx, 0), &history_key(hashx, tx_num + 1));
        let Some((key, value)) = self
            .view
            .last_in(HISTORY, range)
            .map_err(|e| e.to_string())?
        else {
            return Ok(false);
        };
        let mut tx_nums = Vec::new();
        read_history_row(&key, &value, &mut tx_nums)
            .ok_or_else(|| format!("history row {} is damaged", hex::encode(&key)))?;
        Ok(tx_nums.binary_search(&tx_num).is_ok())
    }

    /// A few scripts found by seeking into the utxo and history tables at spread-out keys,
    /// for a check without the node.
    fn scripts_from_tables(&mut self, count: usize) -> Vec<HashX> {
        let mut scripts = Vec::new();
        for table in [UTXO, HISTORY] {
            for i in 0..count.max(1) {
                let first = ((i * 256) / count.max(1)) as u8;
                let rows = self
                    .view
                    .scan(table, KeyRange::from(&[first]), Direction::Forward);
                let Some(mut rows) = self.read(|| format!("the {table} table"), rows) else {
                    break;
                };
                match rows.next() {
                    Some(Ok((key, _))) => scripts.extend(read_hashx(&key)),
                    Some(Err(e)) => {
                        drop(rows);
                        self.problem(format!("reading the {table} table: {e}"));
                    }
                    None => {}
                }
            }
        }
        scripts
    }

    /// One script: its history decodes, is sorted and within the chain; each of its UTXOs is
    /// in its history, not recorded as spent, and found again by outpoint.
    fn script(&mut self, chain: &Chain, hashx: &HashX) {
        let name = hex::encode(hashx);
        let rows = self.view.scan_prefix(HISTORY, hashx, Direction::Forward);
        let Some(rows) = self.read(|| format!("the history of script {name}"), rows) else {
            return;
        };
        let mut history: Vec<TxNum> = Vec::new();
        let mut problems = Vec::new();
        let mut complete = true;
        for row in rows {
            let (key, value) = match row {
                Ok(row) => row,
                Err(e) => {
                    problems.push(format!("reading the history of script {name}: {e}"));
                    complete = false;
                    break;
                }
            };
            let before = history.len();
            if read_history_row(&key, &value, &mut history).is_none()
                || key.len() != HASHX_LEN + TX_NUM_LEN
            {
                problems.push(format!(
                    "script {name}: history row {} does not decode",
                    hex::encode(&key)
                ));
                history.truncate(before);
                complete = false;
                continue;
            }
            if before > 0 && history[before] <= history[before - 1] {
                problems.push(format!(
                    "script {name}: history is not sorted (tx number {} after {})",
                    history[before],
                    history[before - 1]
                ));
            }
            if history.len() >= MAX_HISTORY {
                complete = false;
                break;
            }
        }
        if let Some(&last) = history.last() {
            if last >= chain.state.tx_count {
                problems.push(format!(
                    "script {name}: history holds tx number {last}, past the {} indexed",
                    chain.state.tx_count
                ));
            }
        }
        let rows = self.view.scan_prefix(UTXO, hashx, Direction::Forward);
        let Some(rows) = self.read(|| format!("the utxos of script {name}"), rows) else {
            return;
        };
        let mut utxos = Vec::new();
        for row in rows {
            match row {
                Ok((key, raw)) => {
                    let parsed = (
                        read_tx_num(key.get(HASHX_LEN..).unwrap_or_default()),
                        read_u32_be(&key, HASHX_LEN + TX_NUM_LEN),
                        read_value(&raw),
                    );
                    match parsed {
                        (Some(tx_num), Some(vout), Some(value))
                            if key.len() == HASHX_LEN + TX_NUM_LEN + 4 && raw.len() == 8 =>
                        {
                            utxos.push((tx_num, vout, value));
                        }
                        _ => problems.push(format!(
                            "script {name}: utxo row {} = {} does not decode",
                            hex::encode(&key),
                            hex::encode(&raw)
                        )),
                    }
                }
                Err(e) => {
                    problems.push(format!("reading the utxos of script {name}: {e}"));
                    break;
                }
            }
        }
        for problem in problems {
            self.problem(problem);
        }
        for (tx_num, vout, value) in utxos {
            let at = || format!("script {name}, utxo {tx_num}:{vout}");
            if complete && history.binary_search(&tx_num).is_err() {
                self.problem(format!(
                    "{}: tx number {tx_num} is not in its history",
                    at()
                ));
            }
            let spender = self.view.get(SPENDERS, &spender_key(tx_num, vout));
            if let Some(Some(spender)) =
                self.read(|| format!("{}: its spenders row", at()), spender)
            {
                self.problem(format!(
                    "{}: unspent, yet spenders records tx number {} spending it",
                    at(),
                    read_tx_num(&spender).map_or(hex::encode(&spender), |n| n.to_string())
                ));
            }
            let txid = self.view.get(TX_HASHES, &tx_num_bytes(tx_num));
            let Some(txid) = self.read(|| format!("{}: its txid", at()), txid) else {
                continue;
            };
            let Some(txid) = txid.as_deref().and_then(read_hash) else {
                self.problem(format!(
                    "{}: tx_hashes has no txid for tx number {tx_num}",
                    at()
                ));
                continue;
            };
            let lookup = self
                .view
                .get(UTXO_LOOKUP, &utxo_lookup_key(&txid, vout, tx_num));
            let expected = utxo_lookup_value(hashx, value);
            match self.read(|| format!("{}: its utxo_lookup row", at()), lookup) {
                Some(Some(found)) if found == expected => {}
                Some(found) => self.problem(format!(
                    "{} ({}:{vout}): utxo_lookup holds {}, expected {}",
                    at(),
                    hash_to_hex(&txid),
                    found.map_or("no row".into(), hex::encode),
                    hex::encode(&expected)
                )),
                None => {}
            }
        }
    }

    /// Every row of every table read (the engine verifies its checksums and structure on
    /// the way) and decoded.
    fn scan_every_table(&mut self, store: &dyn Store, chain: &Chain) {
        for table in store.tables() {
            let name = table.name;
            let rows = self.view.scan(name, KeyRange::all(), Direction::Forward);
            let Some(rows) = self.read(|| format!("the {name} table"), rows) else {
                continue;
            };
            let mut problems = Vec::new();
            let mut expected_tx_num = 0u64;
            let mut count = 0u64;
            for row in rows {
                let (key, value) = match row {
                    Ok(row) => row,
                    Err(e) => {
                        problems.push(format!("reading the {name} table after {count} rows: {e}"));
                        break;
                    }
                };
                count += 1;
                let fine = match name {
                    TX_HASHES => {
                        let ok = read_tx_num(&key) == Some(expected_tx_num) && value.len() == 32;
                        expected_tx_num += 1;
                        ok
                    }
                    TXID_INDEX => key.len() == TXID_PREFIX_LEN + TX_NUM_LEN && value.is_empty(),
                    HISTORY => {
                        key.len() == HASHX_LEN + TX_NUM_LEN
                            && read_history_row(&key, &value, &mut Vec::new()).is_some()
                    }
                    UTXO => key.len() == HASHX_LEN + TX_NUM_LEN + 4 && value.len() == 8,
                    UTXO_LOOKUP => {
                        key.len() == TXID_PREFIX_LEN + 4 + TX_NUM_LEN
                            && value.len() == HASHX_LEN + 8
                    }
                    SPENDERS => key.len() == TX_NUM_LEN + 4 && value.len() == TX_NUM_LEN,
                    _ => true,
                };
                if !fine && problems.len() < MAX_PRINTED {
                    problems.push(format!(
                        "{name}: row {} = {} does not decode",
                        hex::encode(&key),
                        hex::encode(&value)
                    ));
                }
            }
            if name == TX_HASHES && problems.is_empty() && expected_tx_num != chain.state.tx_count {
                problems.push(format!(
                    "tx_hashes holds {expected_tx_num} rows, the state row counts {} transactions",
                    chain.state.tx_count
                ));
            }
            self.report.rows_scanned += count;
            for problem in problems {
                self.problem(problem);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_spread_over_the_chain_with_both_ends() {
        assert_eq!(sample_heights(0, 64), vec![0]);
        assert_eq!(sample_heights(3, 64), vec![0, 1, 2, 3]);
        assert_eq!(sample_heights(100, 5), vec![0, 25, 50, 75, 100]);
        assert_eq!(sample_heights(100, 1), vec![100]);
        let many = sample_heights(900_000, 64);
        assert_eq!(many.len(), 64);
        assert_eq!((many[0], many[63]), (0, 900_000));
        assert!(many.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn the_summary_counts_problems_and_lists_a_bounded_number() {
        let mut report = CheckReport {
            engine: "lmdb".into(),
            path: "/db".into(),
            tip: Some((5, "ab".into())),
            blocks: 6,
            ..CheckReport::default()
        };
        assert!(
            report.lines()[0].ends_with("no problems found"),
            "{:?}",
            report.lines()
        );
        report.problems = (0..MAX_PRINTED + 3).map(|i| format!("p{i}")).collect();
        let lines = report.lines();
        assert_eq!(lines.len(), MAX_PRINTED + 2);
        assert_eq!(lines[MAX_PRINTED], "problem: ... and 3 more");
        assert!(lines[MAX_PRINTED + 1].ends_with(&format!(": {} problems", MAX_PRINTED + 3)));
    }
}
