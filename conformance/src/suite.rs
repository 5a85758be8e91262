//! The suite: one session per protocol version and transport against a running server, the
//! scenario's steps in between, and after every step the notification and read checks of
//! [`crate::checks`] against the model read from the node.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anode_coins::{Coin, Hash32, OutPoint};
use anyhow::Context;
use serde_json::Value;
use tracing::{debug, info};

use crate::checks;
use crate::client::{Client, Transport};
use crate::model::{display, BlockCache, ChainView};
use crate::node::Node;
use crate::report::{CheckResult, Recorder};
use crate::scenario::{Driver, Step};

/// The protocol versions of docs/protocol.md, Methods by version (one session each).
pub const VERSIONS: [&str; 6] = ["1.4", "1.4.1", "1.4.2", "1.5", "1.6", "1.7"];

/// Where the server under test listens.
#[derive(Debug, Clone)]
pub struct Target {
    /// listeners to test
    pub addrs: Vec<(Transport, SocketAddr)>,
    /// TLS server name and WebSocket host
    pub host: String,
}

/// How to run the suite.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// versions to test
    pub versions: Vec<&'static str>,
    /// how long a due notification may take
    pub notify_timeout: Duration,
    /// run the scenario (false: read-only checks of the chain as it is)
    pub scenario: bool,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        SuiteOptions {
            versions: VERSIONS.to_vec(),
            notify_timeout: Duration::from_secs(5),
            scenario: true,
        }
    }
}

/// What a run produced.
#[derive(Debug, Default)]
pub struct SuiteReport {
    /// every check
    pub results: Vec<CheckResult>,
    /// each scenario step and what was done (or why it was skipped)
    pub steps: Vec<(String, String)>,
}

/// A watched script: what the suite subscribes to and queries.
#[derive(Debug, Clone)]
pub struct Watched {
    /// why it was chosen ("most-used", "p2sh", "unused", ...)
    pub label: String,
    /// scriptPubKey
    pub script: Vec<u8>,
    /// script hash, internal order
    pub scripthash: Hash32,
}

/// The scripts and outpoints every session watches.
#[derive(Debug, Clone)]
pub struct Selection {
    /// scripts
    pub scripts: Vec<Watched>,
    /// outpoints (1.7)
    pub outpoints: Vec<OutPoint>,
}

/// Parses "1.4.2" into numbers.
pub fn version_tuple(v: &str) -> Vec<u32> {
    v.split('.').filter_map(|p| p.parse().ok()).collect()
}

/// Whether version `v` is at least `min`.
pub fn at_least(v: &str, min: &[u32]) -> bool {
    version_tuple(v).as_slice() >= min
}

fn script_kind(script: &[u8]) -> &'static str {
    match script {
        [0x76, 0xa9, 0x14, .., 0x88, 0xac] if script.len() == 25 => "p2pkh",
        [0xa9, 0x14, .., 0x87] if script.len() == 23 => "p2sh",
        [0x00, 0x14, ..] if script.len() == 22 => "p2wpkh",
        [0x00, 0x20, ..] if script.len() == 34 => "p2wsh",
        [0x51, 0x20, ..] if script.len() == 34 => "p2tr",
        [0x6a, ..] | [0x00, 0x6a, ..] => "op-return",
        _ => "other",
    }
}

/// Chooses what to watch: scripts with very many, many, one and no transactions, one of
/// every script kind the chain has, and outpoints in every state.
pub fn select(view: &ChainView) -> Selection {
    let coin = &view.coin;
    let mut all = view.scripts();
    // Every output script, unspendable ones included (their history must stay empty).
    for b in view.blocks.iter().skip(1) {
        for t in &b.txids {
            for o in &view.txs[t].outputs {
                if !all.iter().any(|(s, _)| *s == o.script) {
                    all.push((o.script.clone(), 0));
                }
            }
        }
    }
    let mut ranked = all.clone();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut scripts: Vec<Watched> = Vec::new();
    let add = |label: &str, script: &[u8], scripts: &mut Vec<Watched>| {
        let scripthash = coin.script_hash(script);
        if !scripts.iter().any(|w| w.scripthash == scripthash) {
            scripts.push(Watched {
                label: label.to_string(),
                script: script.to_vec(),
                scripthash,
            });
        }
    };
    // The most used script (very many transactions for a chain this size), the runner-up
    // (many), one with a single transaction, and one never used.
    if let Some((s, n)) = ranked.first() {
        add(&format!("most-used ({n} txs)"), s, &mut scripts);
    }
    if let Some((s, n)) = ranked.get(1).filter(|(_, n)| *n >= 2) {
        add(&format!("many ({n} txs)"), s, &mut scripts);
    }
    if let Some((s, _)) = ranked.iter().find(|(_, n)| *n == 1) {
        add("one-tx", s, &mut scripts);
    }
    let unused = [
        &[0x76, 0xa9, 0x14][..],
        &coin.script_hash(b"anode-conformance unused")[..20],
        &[0x88, 0xac],
    ]
    .concat();
    add("unused", &unused, &mut scripts);
    for kind in [
        "p2pkh",
        "p2sh",
        "p2wpkh",
        "p2wsh",
        "p2tr",
        "op-return",
        "other",
    ] {
        if let Some((s, _)) = all.iter().find(|(s, _)| script_kind(s) == kind) {
            add(kind, s, &mut scripts);
        }
    }

    let mut outpoints = Vec::new();
    let push = |o: OutPoint, outpoints: &mut Vec<OutPoint>| {
        if !outpoints.contains(&o) {
            outpoints.push(o);
        }
    };
    // Confirmed outputs: one spent in a block, one spent in the mempool, one unspent.
    let confirmed = view.blocks.iter().skip(1).flat_map(|b| b.txids.iter());
    let (mut spent, mut spent_in_mempool, mut unspent) = (None, None, None);
    for txid in confirmed {
        for vout in 0..view.txs[txid].outputs.len() as u32 {
            let o = OutPoint { txid: *txid, vout };
            if view.indexed_output(&o).is_none() {
                continue;
            }
            let slot = match view.spenders.get(&o) {
                Some(s) if view.txs[s].confirmed.is_some() => &mut spent,
                Some(_) => &mut spent_in_mempool,
                None => &mut unspent,
            };
            slot.get_or_insert(o);
        }
    }
    for o in [spent_in_mempool, spent, unspent].into_iter().flatten() {
        push(o, &mut outpoints);
    }
    // Outputs of mempool transactions (the last often has an unconfirmed parent).
    if let Some(t) = view.mempool.last() {
        push(OutPoint { txid: *t, vout: 0 }, &mut outpoints);
    }
    if let Some(t) = view.mempool.first() {
        push(OutPoint { txid: *t, vout: 0 }, &mut outpoints);
    }
    if let Some(b) = view.blocks.get(1) {
        // beyond the funding transaction's outputs: unknown
        push(
            OutPoint {
                txid: b.txids[0],
                vout: 99,
            },
            &mut outpoints,
        );
    }
    push(
        OutPoint {
            txid: coin.script_hash(b"anode-conformance unknown tx"),
            vout: 0,
        },
        &mut outpoints,
    );
    Selection { scripts, outpoints }
}

/// One connection of the suite and what it was last told.
pub struct Session {
    /// results
    pub rec: Recorder,
    /// the connection
    pub client: Client,
    /// negotiated version
    pub version: &'static str,
    /// transport
    pub transport: Transport,
    /// the script hash spelling used when subscribing (one is upper-case before 1.7)
    pub spelled: HashMap<Hash32, String>,
    /// last tip (height, hash) the session knows
    pub tip: (u32, Hash32),
    /// last status of each subscribed script
    pub statuses: HashMap<Hash32, Value>,
    /// last status of each subscribed outpoint
    pub outpoint_statuses: HashMap<OutPoint, Value>,
}

impl Session {
    /// Whether the session speaks 1.7 (scriptpubkey methods, outpoints).
    pub fn v17(&self) -> bool {
        at_least(self.version, &[1, 7])
    }

    /// The script parameter for this version: script hash before 1.7, script after.
    pub fn script_param(&self, w: &Watched) -> String {
        if self.v17() {
            hex::encode(&w.script)
        } else {
            display(&w.scripthash)
        }
    }

    /// `blockchain.scripthash.X` or `blockchain.scriptpubkey.X`.
    pub fn script_method(&self, name: &str) -> String {
        if self.v17() {
            format!("blockchain.scriptpubkey.{name}")
        } else {
            format!("blockchain.scripthash.{name}")
        }
    }
}

/// Runs the suite against `target`, reading expectations from `node` and performing the
/// scenario through `driver` (none: read-only checks only).
pub async fn run(
    target: &Target,
    node: &Node,
    coin: Arc<dyn Coin>,
    mut driver: Option<&mut dyn Driver>,
    options: &SuiteOptions,
) -> anyhow::Result<SuiteReport> {
    let mut cache = BlockCache::default();
    let view = Arc::new(
        ChainView::load(node, Arc::clone(&coin), &mut cache)
            .await
            .context("reading the chain from the node")?,
    );
    let selection = Arc::new(select(&view));
    debug!(
        scripts = selection.scripts.len(),
        outpoints = selection.outpoints.len(),
        "selection"
    );
    let mut report = SuiteReport::default();

    // Negotiation and connection-level checks, once per transport.
    for (transport, addr) in &target.addrs {
        let mut rec = Recorder::new(VERSIONS[0], *transport);
        rec.step = "negotiation".into();
        checks::negotiation(&mut rec, *transport, *addr, &target.host).await;
        report.results.extend(rec.results);
    }

    debug!("negotiation checks done");
    let mut sessions = Vec::new();
    for (transport, addr) in &target.addrs {
        for version in &options.versions {
            let mut rec = Recorder::new(version, *transport);
            checks::pipelined_negotiation(
                &mut rec,
                *transport,
                *addr,
                &target.host,
                version,
                selection.scripts.get(1).or(selection.scripts.first()),
            )
            .await;
            match checks::open_session(&mut rec, *transport, *addr, &target.host, version).await {
                Some(client) => sessions.push(Session {
                    rec,
                    client,
                    version,
                    transport: *transport,
                    spelled: HashMap::new(),
                    tip: (0, [0; 32]),
                    statuses: HashMap::new(),
                    outpoint_statuses: HashMap::new(),
                }),
                None => report.results.extend(rec.results),
            }
        }
    }
    debug!("sessions open");
    let node_ref = node.clone();
    let verbose_tx = checks::verbose_tx_expectation(&node_ref, &view).await;
    futures::future::join_all(sessions.iter_mut().map(|s| {
        let (view, selection, verbose_tx) = (
            Arc::clone(&view),
            Arc::clone(&selection),
            verbose_tx.clone(),
        );
        async move {
            checks::static_checks(s, &view).await;
            checks::subscribe_all(s, &view, &selection).await;
            checks::reads(s, &view, &selection, &verbose_tx, true).await;
        }
    }))
    .await;

    debug!("initial checks done");
    if options.scenario {
        for step in Step::ALL {
            let done = match driver.as_deref_mut() {
                Some(d) => d
                    .perform(step)
                    .await
                    .with_context(|| format!("scenario step {}", step.name()))?,
                None => None,
            };
            let Some(done) = done else {
                report.steps.push((
                    step.name().to_string(),
                    "skipped: the driver cannot do this".into(),
                ));
                continue;
            };
            info!(step = step.name(), %done, "scenario step");
            report.steps.push((step.name().to_string(), done));
            let view = Arc::new(ChainView::load(node, Arc::clone(&coin), &mut cache).await?);
            let verbose_tx = checks::verbose_tx_expectation(&node_ref, &view).await;
            futures::future::join_all(sessions.iter_mut().map(|s| {
                let (view, selection, verbose_tx) = (
                    Arc::clone(&view),
                    Arc::clone(&selection),
                    verbose_tx.clone(),
                );
                async move {
                    s.rec.step = step.name().to_string();
                    checks::notifications(s, &view, &selection, options.notify_timeout).await;
                    let full = step == Step::ALL[Step::ALL.len() - 1];
                    checks::reads(s, &view, &selection, &verbose_tx, full).await;
                }
            }))
            .await;
        }
    }
    futures::future::join_all(sessions.iter_mut().map(|s| {
        let selection = Arc::clone(&selection);
        async move {
            s.rec.step = "end".into();
            checks::unsubscribe_all(s, &selection).await;
            checks::pipelined_state(s, &selection).await;
        }
    }))
    .await;
    for s in sessions {
        report.results.extend(s.rec.results);
    }
    Ok(report)
}
