//! The simulator's shared state: the chain plus the node behaviours a test can switch on
//! (outages, warming up), and the node-side rules for accepting transactions.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anode_coins::{Hash32, OutPoint};

use super::chain::{SimChain, SimError};

/// A running simulated node: the chain and its switchable behaviours. Cheap to clone.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Mutex<State>>,
}

pub(super) struct State {
    pub(super) chain: SimChain,
    outage_until: Option<Instant>,
    warming_until: Option<Instant>,
    pruned: bool,
    tip_changes: u64,
    pub(super) faults: super::faults::Faults,
}

/// Why the simulated node refused a transaction, as Bitcoin Core words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// JSON-RPC error code (-22 decode, -25 missing inputs, -26 policy)
    pub code: i64,
    /// reason text
    pub message: String,
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
            })),
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
        let result = f(&mut state.chain);
        if state.chain.tip().hash != tip {
            state.tip_changes += 1;
        }
        result
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
    /// existing unspent outputs (or mempool ones), and not create value.
    pub fn accept_tx(&self, raw: &[u8], dry_run: bool) -> Result<Hash32, Rejection> {
        self.with_chain_mut(|chain| {
            let parsed = chain.coin().parse_tx(raw).map_err(|e| Rejection {
                code: -22,
                message: format!("TX decode failed: {e}"),
            })?;
            if chain.tx(&parsed.txid).is_some() {
                return Err(Rejection {
                    code: -27,
                    message: "Transaction already in block chain".into(),
                });
            }
            if parsed.is_coinbase || parsed.inputs.is_empty() {
                return Err(Rejection {
                    code: -26,
                    message: "coinbase".into(),
                });
            }
            let mut input_value = 0u64;
            for input in &parsed.inputs {
                match chain.output_spender(input) {
                    Some(None) => input_value += chain.output_value(input).unwrap_or(0),
                    Some(Some(_)) => {
                        return Err(Rejection {
                            code: -26,
                            message: "txn-mempool-conflict".into(),
                        })
                    }
                    None => {
                        return Err(Rejection {
                            code: -25,
                            message: "bad-txns-inputs-missingorspent".into(),
                        })
                    }
                }
            }
            let output_value: u64 = parsed.outputs.iter().map(|o| o.value).sum();
            if output_value > input_value {
                return Err(Rejection {
                    code: -26,
                    message: "bad-txns-in-belowout".into(),
                });
            }
            if !dry_run {
                chain.accept_external(
                    parsed.txid,
                    raw.to_vec(),
                    parsed.inputs,
                    parsed.outputs,
                    input_value - output_value,
                );
            }
            Ok(parsed.txid)
        })
    }

    /// Number of tip changes so far (lets pollers and tests wait for a new block).
    pub fn tip_changes(&self) -> u64 {
        self.state().tip_changes
    }
}

impl SimChain {
    /// Value of an existing output.
    pub fn output_value(&self, outpoint: &OutPoint) -> Option<u64> {
        self.output(outpoint).map(|o| o.value)
    }
}
