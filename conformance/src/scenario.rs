//! The scripted life of the chain: what happens between two rounds of checks, and the drivers
//! that make it happen on the simulator (in-process or over its `sim_*` RPC) or on a real
//! node (wallet transactions and `invalidateblock`).

use anode::simulator::{Profile, SimChain, Simulator};
use anode_coins::Coin;
use anyhow::{anyhow, Context};
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::model::display;
use crate::node::Node;

/// One event of the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// replace the oldest mempool transaction with a conflicting one (its descendants leave)
    DoubleSpend,
    /// new mempool transactions, some with unconfirmed parents (a chain of three)
    Mempool,
    /// one block confirming the mempool (plus fresh transactions, some spending outputs of
    /// the same block)
    Mine,
    /// two blocks replaced by two that leave their transactions in the mempool
    ReorgToMempool,
    /// the tip replaced by two blocks that confirm its transactions (and the mempool) again:
    /// transactions move between blocks
    ReorgBetweenBlocks,
    /// a reorg as deep as the server's reorg limit
    DeepReorg,
}

impl Step {
    /// The whole scenario, in order.
    pub const ALL: [Step; 6] = [
        Step::DoubleSpend,
        Step::Mempool,
        Step::Mine,
        Step::ReorgToMempool,
        Step::ReorgBetweenBlocks,
        Step::DeepReorg,
    ];

    /// Short name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Step::DoubleSpend => "double-spend",
            Step::Mempool => "mempool",
            Step::Mine => "mine",
            Step::ReorgToMempool => "reorg-to-mempool",
            Step::ReorgBetweenBlocks => "reorg-between-blocks",
            Step::DeepReorg => "deep-reorg",
        }
    }
}

/// The chain a matrix cell starts from: `blocks` tiny-profile blocks and a mempool with an
/// unconfirmed chain (heights -1).
pub fn initial_chain(coin: Arc<dyn Coin>, seed: u64, blocks: u32) -> anyhow::Result<Simulator> {
    let mut chain = SimChain::new(coin, Profile::tiny(), seed).context("simulated chain")?;
    chain.mine(blocks, true)?;
    chain.add_mempool_txs(3)?;
    chain.add_mempool_chain(3)?;
    Ok(Simulator::new(chain))
}

/// The future of one step: a short description of what was done, or `None` when the driver
/// cannot perform the step (it is then skipped and reported).
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Option<String>>> + Send + 'a>>;

/// Performs scenario steps on a node.
pub trait Driver: Send {
    /// Performs `step`.
    fn perform(&mut self, step: Step) -> StepFuture<'_>;
}

/// Drives the in-process simulator directly (every step available).
pub struct SimDriver {
    /// the simulator the server indexes
    pub sim: Simulator,
    /// depth of [`Step::DeepReorg`] (the server's reorg limit)
    pub reorg_limit: u32,
}

impl Driver for SimDriver {
    fn perform(&mut self, step: Step) -> StepFuture<'_> {
        Box::pin(async move {
            let limit = self.reorg_limit;
            let done = self.sim.with_chain_mut(|c| -> anyhow::Result<String> {
                Ok(match step {
                    Step::DoubleSpend => {
                        let (new, gone) = c.double_spend(None)?;
                        format!("{} replaces {} txs", display(&new), gone.len())
                    }
                    Step::Mempool => {
                        let a = c.add_mempool_txs(3)?;
                        let b = c.add_mempool_chain(3)?;
                        format!("{} mempool txs", a.len() + b.len())
                    }
                    Step::Mine => {
                        c.mine(1, true)?;
                        format!("mined {}", c.height())
                    }
                    Step::ReorgToMempool => {
                        c.add_mempool_txs(2)?;
                        c.reorg(2, 2, false)?;
                        format!("2 blocks replaced, mempool {}", c.mempool().len())
                    }
                    Step::ReorgBetweenBlocks => {
                        c.reorg(1, 2, true)?;
                        format!("tip replaced, height {}", c.height())
                    }
                    Step::DeepReorg => {
                        let depth = limit.min(c.height().saturating_sub(1)).max(1);
                        c.reorg(depth, depth + 1, true)?;
                        format!("{depth} blocks replaced")
                    }
                })
            })?;
            Ok(Some(done))
        })
    }
}

/// Drives a simulator over its JSON-RPC control methods (`anode simulate`).
pub struct SimRpcDriver {
    /// the simulator's RPC
    pub node: Node,
    /// depth of the deep reorg
    pub reorg_limit: u32,
}

impl Driver for SimRpcDriver {
    fn perform(&mut self, step: Step) -> StepFuture<'_> {
        Box::pin(async move {
            let node = &self.node;
            Ok(Some(match step {
                Step::DoubleSpend => {
                    node.call("sim_double_spend", json!([])).await?;
                    "sim_double_spend".into()
                }
                Step::Mempool => {
                    node.call("sim_add_mempool", json!([3])).await?;
                    node.call("sim_mempool_chain", json!([3])).await?;
                    "sim_add_mempool 3, sim_mempool_chain 3".into()
                }
                Step::Mine => {
                    node.call("sim_mine", json!([1])).await?;
                    "sim_mine 1".into()
                }
                // The RPC's reorg always confirms the mempool again.
                Step::ReorgToMempool => return Ok(None),
                Step::ReorgBetweenBlocks => {
                    node.call("sim_add_mempool", json!([2])).await?;
                    node.call("sim_reorg", json!([1, 2])).await?;
                    "sim_reorg 1 2".into()
                }
                Step::DeepReorg => {
                    let height = node
                        .call("getblockcount", json!([]))
                        .await?
                        .as_u64()
                        .ok_or_else(|| anyhow!("getblockcount"))?
                        as u32;
                    let depth = self.reorg_limit.min(height.saturating_sub(1)).max(1);
                    node.call("sim_reorg", json!([depth, depth + 1])).await?;
                    format!("sim_reorg {depth}")
                }
            }))
        })
    }
}

/// Drives a real node through its wallet, `generate` and `invalidateblock`. Its mempool
/// cannot hold conflicting transactions, so the double-spend step is skipped.
pub struct WalletDriver {
    /// the node's RPC
    pub node: Node,
    /// depth of the deep reorg
    pub reorg_limit: u32,
    /// addresses the scenario pays (one reused, so a script collects many transactions)
    pub addresses: Vec<String>,
}

impl WalletDriver {
    async fn pay(&mut self, count: usize) -> anyhow::Result<()> {
        for i in 0..count {
            let address = if i % 2 == 0 || self.addresses.is_empty() {
                let a = self.node.call("getnewaddress", json!([])).await?;
                let a = a.as_str().unwrap_or_default().to_string();
                self.addresses.push(a.clone());
                a
            } else {
                self.addresses[0].clone()
            };
            // Amounts vary so outputs are distinguishable; the wallet spends unconfirmed
            // change, which gives mempool transactions with unconfirmed parents.
            let sats = 10_000_000 + 1_000_000 * self.addresses.len() as u64;
            let amount = sats as f64 / 1e8;
            self.node
                .call("sendtoaddress", json!([address, amount]))
                .await?;
        }
        Ok(())
    }

    async fn invalidate(&self, depth: u32) -> anyhow::Result<()> {
        let height = self
            .node
            .call("getblockcount", json!([]))
            .await?
            .as_u64()
            .ok_or_else(|| anyhow!("getblockcount"))?;
        let at = height + 1 - u64::from(depth);
        let hash = self.node.call("getblockhash", json!([at])).await?;
        self.node.call("invalidateblock", json!([hash])).await?;
        Ok(())
    }
}

impl Driver for WalletDriver {
    fn perform(&mut self, step: Step) -> StepFuture<'_> {
        Box::pin(async move {
            Ok(Some(match step {
                Step::DoubleSpend => return Ok(None),
                Step::Mempool => {
                    self.pay(4).await?;
                    "4 wallet payments".into()
                }
                Step::Mine => {
                    self.node.call("generate", json!([1])).await?;
                    "generate 1".into()
                }
                Step::ReorgToMempool => {
                    self.pay(2).await?;
                    self.node.call("generate", json!([1])).await?;
                    // The block's transactions go back to the mempool.
                    self.invalidate(1).await?;
                    "invalidateblock tip".into()
                }
                Step::ReorgBetweenBlocks => {
                    self.node.call("generate", json!([2])).await?;
                    "generate 2 (the returned transactions confirm in another block)".into()
                }
                Step::DeepReorg => {
                    let depth = self.reorg_limit;
                    self.invalidate(depth).await?;
                    self.node.call("generate", json!([depth + 1])).await?;
                    format!("invalidateblock at depth {depth}, generate {}", depth + 1)
                }
            }))
        })
    }
}
