//! The simulator's shared state: the chain plus the node behaviours a test can switch on
//! (outages, warming up), and the node-side rules for accepting transactions.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anode_coins::{Hash32, OutPoint};
use tokio::sync::watch;

use super::chain::{SimChain, SimError};

/// A running simulated node: the chain and its switchable behaviours. Cheap to clone.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Mutex<State>>,
    /// the tip-change count, for listeners that announce new blocks (P2P `inv`)
    tips: Arc<watch::Sender<u64>>,
    /// P2P connections open now (`getnetworkinfo.connections`)
    peers: Arc<AtomicU32>,
    started: Instant,
}

pub(super) struct State {
    pub(super) chain: SimChain,
    outage_until: Option<Instant>,
    warming_until: Option<Instant>,
    pruned: bool,
    tip_changes: u64,
    pub(super) faults: super::faults::Faults,
    /// mempool additions and removals so far (`getrawmempool`'s `mempool_sequence`)
    mempool_sequence: u64,
}

/// Why the simulated node refused a transaction, as Bitcoin Core words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// JSON-RPC error code (-22 decode, -25 missing inputs, -26 policy, -27 confirmed)
    pub code: i64,
    /// the error message (`sendrawtransaction`), `reject-details` of `testmempoolaccept`
    pub message: String,
    /// the short reason (`testmempoolaccept`'s `reject-reason`)
    pub reason: String,
}

/// A transaction the simulated node accepted (or would accept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// txid
    pub txid: Hash32,
    /// hash with the witness (the txid for transactions without one)
    pub wtxid: Hash32,
    /// fee, base units
    pub fee: u64,
    /// virtual size
    pub vsize: u64,
    /// whether it was in the mempool already
    pub already_in_mempool: bool,
}

/// Core's `FormatMoney`: whole coins, trailing zeros trimmed to two decimals.
fn format_money(coin: &dyn anode_coins::Coin, base_units: u64) -> String {
    let per = coin.params().value_per_coin.max(1);
    let digits = per.ilog10() as usize;
    let mut text = format!(
        "{}.{:0width$}",
        base_units / per,
        base_units % per,
        width = digits
    );
    while text.ends_with('0') && text.len() >= 3 && text.as_bytes()[text.len() - 3] != b'.' {
        text.pop();
    }
    text
}

impl Simulator {
    /// Wraps a chain.
    pub fn new(chain: SimChain) -> Self {
        Simulator {
            inner: Arc::new(Mutex::new(State {
                chain,
                outage_until: None,
                warming_until: None,
                pruned: false,
                tip_changes: 0,
                faults: Default::default(),
                mempool_sequence: 0,
            })),
            tips: Arc::new(watch::channel(0).0),
            peers: Arc::new(AtomicU32::new(0)),
            started: Instant::now(),
        }
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the chain as it was before the operation's
        // first mutation at worst; the simulator keeps serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with the chain.
    pub fn with_chain<T>(&self, f: impl FnOnce(&SimChain) -> T) -> T {
        f(&self.state().chain)
    }

    /// Runs `f` with the chain mutably (mining, mempool changes, reorgs).
    pub fn with_chain_mut<T>(&self, f: impl FnOnce(&mut SimChain) -> T) -> T {
        let mut state = self.state();
        let tip = state.chain.tip().hash;
        let before: HashSet<Hash32> = state.chain.mempool().iter().copied().collect();
        let result = f(&mut state.chain);
        let after: HashSet<Hash32> = state.chain.mempool().iter().copied().collect();
        // Core counts every entry and every removal, a block's confirmations included.
        state.mempool_sequence += before.symmetric_difference(&after).count() as u64;
        if state.chain.tip().hash != tip {
            state.tip_changes += 1;
            let changes = state.tip_changes;
            drop(state);
            self.tips.send_replace(changes);
        }
        result
    }

    /// Follows tip changes: the receiver sees the count of changes so far.
    pub fn subscribe_tips(&self) -> watch::Receiver<u64> {
        self.tips.subscribe()
    }

    /// Mempool additions and removals so far.
    pub fn mempool_sequence(&self) -> u64 {
        self.state().mempool_sequence
    }

    /// Seconds since the simulator started (`uptime`).
    pub fn uptime(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Counts a P2P connection for as long as the returned guard lives.
    pub(crate) fn peer_connected(&self) -> PeerGuard {
        self.peers.fetch_add(1, Ordering::Relaxed);
        PeerGuard(Arc::clone(&self.peers))
    }

    /// P2P connections open now.
    pub fn peers(&self) -> u32 {
        self.peers.load(Ordering::Relaxed)
    }

    /// Mines `n` blocks confirming the mempool.
    pub fn mine(&self, n: u32) -> Result<Vec<Hash32>, SimError> {
        self.with_chain_mut(|c| c.mine(n, true))
    }

    /// Refuses connections for `duration` (a node restart or outage).
    pub fn outage(&self, duration: Duration) {
        self.state().outage_until = Some(Instant::now() + duration);
    }

    /// Whether connections are refused now.
    pub fn in_outage(&self) -> bool {
        matches!(self.state().outage_until, Some(t) if Instant::now() < t)
    }

    /// When the current outage ends.
    pub fn outage_ends(&self) -> Option<Instant> {
        self.state().outage_until.filter(|t| Instant::now() < *t)
    }

    /// Answers every call with -28 "Loading block index..." for `duration`.
    pub fn warm_up(&self, duration: Duration) {
        self.state().warming_until = Some(Instant::now() + duration);
    }

    /// Makes the node report itself as pruned (`getblockchaininfo.pruned`), to test that a
    /// server refuses such a node.
    pub fn set_pruned(&self, pruned: bool) {
        self.state().pruned = pruned;
    }

    /// Whether the node reports itself as pruned.
    pub fn pruned(&self) -> bool {
        self.state().pruned
    }

    /// Whether the node is warming up now.
    pub fn warming_up(&self) -> bool {
        matches!(self.state().warming_until, Some(t) if Instant::now() < t)
    }

    /// Accepts a raw transaction into the mempool as a node would: it must parse, spend only
    /// existing unspent outputs (or mempool ones), and not create value. A transaction already
    /// in the mempool is accepted again, as Core's `sendrawtransaction` does.
    pub fn accept_tx(&self, raw: &[u8], dry_run: bool) -> Result<Hash32, Rejection> {
        self.submit_tx(raw, dry_run).map(|a| a.txid)
    }

    /// [`Simulator::accept_tx`] with what `testmempoolaccept` and `submitpackage` report.
    pub fn submit_tx(&self, raw: &[u8], dry_run: bool) -> Result<Accepted, Rejection> {
        self.with_chain_mut(|chain| {
            let parsed = chain.coin().parse_tx(raw).map_err(|_| Rejection {
                code: -22,
                message: "TX decode failed. Make sure the tx has at least one input.".into(),
                reason: "TX decode failed".into(),
            })?;
            let wtxid = super::core_json::decode_tx(raw).map_or(parsed.txid, |d| d.wtxid);
            let vsize = parsed.vsize() as u64;
            let missing = || Rejection {
                code: -25,
                message: "bad-txns-inputs-missingorspent".into(),
                reason: "missing-inputs".into(),
            };
            if let Some(known) = chain.tx(&parsed.txid) {
                if known.height.is_none() {
                    return Ok(Accepted {
                        txid: parsed.txid,
                        wtxid,
                        fee: known.fee,
                        vsize,
                        already_in_mempool: true,
                    });
                }
                let any_unspent = (0..known.outputs.len() as u32).any(|vout| {
                    chain.output_spender(&OutPoint {
                        txid: parsed.txid,
                        vout,
                    }) == Some(None)
                });
                // A confirmed transaction whose outputs are all spent looks, to Core, like
                // one whose inputs are missing.
                return Err(if any_unspent {
                    Rejection {
                        code: -27,
                        message: "Transaction outputs already in utxo set".into(),
                        reason: "txn-already-known".into(),
                    }
                } else {
                    missing()
                });
            }
            if parsed.is_coinbase || parsed.inputs.is_empty() {
                return Err(Rejection {
                    code: -26,
                    message: "coinbase".into(),
                    reason: "coinbase".into(),
                });
            }
            let mut input_value = 0u64;
            for input in &parsed.inputs {
                match chain.output_spender(input) {
                    Some(None) => input_value += chain.output_value(input).unwrap_or(0),
                    Some(Some(spender))
                        if chain.tx(&spender).is_some_and(|t| t.height.is_none()) =>
                    {
                        return Err(Rejection {
                            code: -26,
                            message: "txn-mempool-conflict".into(),
                            reason: "txn-mempool-conflict".into(),
                        })
                    }
                    _ => return Err(missing()),
                }
            }
            let output_value: u64 = parsed.outputs.iter().map(|o| o.value).sum();
            if output_value > input_value {
                let coin = chain.coin();
                return Err(Rejection {
                    code: -26,
                    message: format!(
                        "bad-txns-in-belowout, value in ({}) < value out ({})",
                        format_money(coin.as_ref(), input_value),
                        format_money(coin.as_ref(), output_value)
                    ),
                    reason: "bad-txns-in-belowout".into(),
                });
            }
            let fee = input_value - output_value;
            if !dry_run {
                chain.accept_external(
                    parsed.txid,
                    raw.to_vec(),
                    parsed.inputs,
                    parsed.outputs,
                    fee,
                );
            }
            Ok(Accepted {
                txid: parsed.txid,
                wtxid,
                fee,
                vsize,
                already_in_mempool: false,
            })
        })
    }

    /// Number of tip changes so far (lets pollers and tests wait for a new block).
    pub fn tip_changes(&self) -> u64 {
        self.state().tip_changes
    }
}

/// Holds one P2P connection in the simulator's count.
pub(crate) struct PeerGuard(Arc<AtomicU32>);

impl Drop for PeerGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SimChain {
    /// Value of an existing output.
    pub fn output_value(&self, outpoint: &OutPoint) -> Option<u64> {
        self.output(outpoint).map(|o| o.value)
    }
}
