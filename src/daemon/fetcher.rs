//! The block fetcher: keeps blocks in flight ahead of the indexer — at most `concurrency`
//! being fetched and parsed, and delivered-but-unconsumed blocks bounded by bytes rather than
//! count (a 4 GB BSV block and a 200-byte regtest block cost what they weigh), and parses
//! them on blocking threads so the async threads only move bytes.

use std::sync::Arc;

use anode_coins::{Coin, ParsedBlock};
use futures::stream::{self, StreamExt, TryStreamExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::{hash_to_hex, DaemonApi, DaemonError, Hash32, Result};

/// Tuning of [`BlockFetcher`].
#[derive(Debug, Clone, Copy)]
pub struct FetcherOptions {
    /// bytes of fetched-but-unconsumed blocks allowed at once (raw bytes, parsed blocks are
    /// about the same size again)
    pub budget_bytes: usize,
    /// requests to the node at once
    pub concurrency: usize,
    /// block hashes asked per `getblockhash` batch
    pub hash_batch: u32,
}

impl Default for FetcherOptions {
    fn default() -> Self {
        FetcherOptions {
            budget_bytes: 256 << 20,
            concurrency: 8,
            hash_batch: 500,
        }
    }
}

/// A fetched and parsed block. Its share of the byte budget is released when it is dropped.
pub struct FetchedBlock {
    /// height
    pub height: u32,
    /// hash the node gave for this height
    pub hash: Hash32,
    /// the raw block
    pub raw: Vec<u8>,
    /// what the coin layer made of it
    pub parsed: ParsedBlock,
    _budget: OwnedSemaphorePermit,
}

/// Parses a block the node served for `height` and checks it is the block asked for: it
/// parses to its end, its header hashes to `asked`, and its transactions give the merkle root
/// in that header ([`Coin::check_block`]). Nothing else ties the bytes of a block to the chain:
/// a node bug, damaged block files or a man-in-the-middle on an RPC over plain HTTP would
/// otherwise write wrong histories and balances into the index, where they stay. It runs on
/// the blocking threads that parse anyway, so the async threads only move bytes and the check
/// costs about one SHA-256d per transaction on top of parsing.
fn check_served_block(
    coin: &dyn Coin,
    raw: &[u8],
    height: u32,
    asked: &Hash32,
) -> std::result::Result<ParsedBlock, String> {
    let parsed = coin
        .parse_block(raw, Some(height))
        .map_err(|e| format!("its {} bytes are not a well-formed block ({e})", raw.len()))?;
    if parsed.hash_available && parsed.hash != *asked {
        return Err(format!(
            "its header hashes to {}, another block",
            hash_to_hex(&parsed.hash)
        ));
    }
    coin.check_block(&parsed, Some(height))
        .map_err(|fault| fault.to_string())?;
    Ok(parsed)
}

/// Fetches heights `from..=to` in order and sends them on a channel.
pub struct BlockFetcher;

/// Budget units are KiB so that `u32` permits cover budgets past 4 GiB.
fn units(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

impl BlockFetcher {
    /// Starts fetching; blocks arrive in height order on the returned channel, then the channel
    /// closes. The first error is sent and ends the fetch.
    pub fn spawn(
        daemon: Arc<dyn DaemonApi>,
        coin: Arc<dyn Coin>,
        from: u32,
        to: u32,
        options: FetcherOptions,
    ) -> mpsc::Receiver<Result<FetchedBlock>> {
        let (tx, rx) = mpsc::channel(options.concurrency.max(1) * 2);
        tokio::spawn(async move {
            if let Err(e) = Self::run(daemon, coin, from, to, options, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        rx
    }

    async fn run(
        daemon: Arc<dyn DaemonApi>,
        coin: Arc<dyn Coin>,
        from: u32,
        to: u32,
        options: FetcherOptions,
        tx: &mpsc::Sender<Result<FetchedBlock>>,
    ) -> Result<()> {
        let budget_units = units(options.budget_bytes).max(1);
        let budget = Arc::new(Semaphore::new(budget_units as usize));
        let mut start = from;
        while start <= to {
            let end = to.min(start.saturating_add(options.hash_batch.max(1) - 1));
            let hashes = daemon.block_hashes(start..end + 1).await?;
            let batch_start = start;
            let (batch_daemon, batch_coin) = (Arc::clone(&daemon), Arc::clone(&coin));
            let jobs = hashes.into_iter().enumerate().map(move |(i, hash)| {
                let (daemon, coin) = (Arc::clone(&batch_daemon), Arc::clone(&batch_coin));
                let height = batch_start + i as u32;
                // Each fetch runs as its own task: while the consumer is busy (a long flush)
                // and this loop waits to deliver, requests already sent still complete instead
                // of stalling into the client's timeout.
                let job = async move {
                    let raw = daemon.block(&hash).await.map_err(|e| e.at_height(height))?;
                    let (raw, checked) = tokio::task::spawn_blocking(move || {
                        let checked = check_served_block(coin.as_ref(), &raw, height, &hash);
                        (raw, checked)
                    })
                    .await
                    .map_err(|e| DaemonError::BadResponse {
                        method: "getblock".into(),
                        reason: format!("parser task failed: {e}"),
                    })?;
                    let parsed = checked.map_err(|problem| DaemonError::BadBlock {
                        node: daemon.describe(),
                        height: Some(height),
                        hash: hash_to_hex(&hash),
                        problem,
                    })?;
                    Ok((height, hash, raw, parsed))
                };
                async move {
                    tokio::spawn(job)
                        .await
                        .map_err(|e| DaemonError::BadResponse {
                            method: "getblock".into(),
                            reason: format!("fetch task failed: {e}"),
                        })?
                }
            });
            let mut blocks = stream::iter(jobs).buffered(options.concurrency.max(1));
            while let Some((height, hash, raw, parsed)) = blocks.try_next().await? {
                // The budget is taken in height order, after the block is ready: taking it
                // inside the out-of-order futures could let later blocks hold the whole budget
                // while the one the consumer waits for starves. A block larger than the whole
                // budget still goes through, alone.
                let cost = units(raw.len()).min(budget_units);
                let Ok(permit) = Arc::clone(&budget).acquire_many_owned(cost).await else {
                    return Ok(());
                };
                let block = FetchedBlock {
                    height,
                    hash,
                    raw,
                    parsed,
                    _budget: permit,
                };
                if tx.send(Ok(block)).await.is_err() {
                    return Ok(()); // the consumer went away
                }
            }
            start = end + 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::{Profile, SimChain, SimDaemon, Simulator};
    use std::time::Duration;

    fn daemon(blocks: u32) -> (Arc<dyn DaemonApi>, Arc<dyn Coin>, Simulator) {
        let coin = anode_coins::lookup("Bitcoin", "regtest").unwrap();
        let mut chain = SimChain::new(Arc::clone(&coin), Profile::tiny(), 17).unwrap();
        chain.mine(blocks, true).unwrap();
        let sim = Simulator::new(chain);
        (Arc::new(SimDaemon::new(sim.clone())), coin, sim)
    }

    #[tokio::test]
    async fn blocks_arrive_in_order_parsed_and_checked() {
        let (daemon, coin, sim) = daemon(60);
        let options = FetcherOptions {
            budget_bytes: 4096,
            concurrency: 4,
            hash_batch: 7,
        };
        let mut rx = BlockFetcher::spawn(daemon, coin, 1, 60, options);
        let mut next = 1;
        while let Some(block) = rx.recv().await {
            let block = block.unwrap();
            assert_eq!(block.height, next);
            let expected = sim.with_chain(|c| c.block(next).unwrap().into_owned());
            assert_eq!(block.hash, expected.hash);
            assert_eq!(block.raw, expected.raw);
            assert_eq!(
                block.parsed.txs.iter().map(|t| t.txid).collect::<Vec<_>>(),
                expected.txids
            );
            next += 1;
        }
        assert_eq!(next, 61, "every height, then the channel closes");
    }

    #[tokio::test]
    async fn unconsumed_blocks_stay_within_the_byte_budget() {
        let (daemon, coin, _sim) = daemon(80);
        let budget = 3000;
        let options = FetcherOptions {
            budget_bytes: budget,
            concurrency: 8,
            hash_batch: 500,
        };
        let mut rx = BlockFetcher::spawn(daemon, coin, 0, 80, options);
        let mut held = Vec::new();
        // Hold every block without releasing it: the fetcher must stop at the budget.
        loop {
            match tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
                Ok(Some(block)) => held.push(block.unwrap()),
                Ok(None) => {
                    panic!("the fetcher delivered all 81 blocks past a {budget}-byte budget")
                }
                Err(_) => break,
            }
        }
        let held_bytes: usize = held.iter().map(|b| b.raw.len()).sum();
        let largest = held.iter().map(|b| b.raw.len()).max().unwrap_or(0);
        assert!(!held.is_empty());
        assert!(
            held_bytes <= budget + largest + 1024,
            "{held_bytes} bytes held with a {budget}-byte budget"
        );
        // Releasing them lets the rest through.
        let mut count = held.len();
        held.clear();
        while let Some(block) = rx.recv().await {
            block.unwrap();
            count += 1;
        }
        assert_eq!(count, 81);
    }

    #[tokio::test]
    async fn a_daemon_error_ends_the_fetch_with_that_error() {
        let (daemon, coin, _sim) = daemon(5);
        let mut rx = BlockFetcher::spawn(daemon, coin, 0, 9, FetcherOptions::default());
        let mut last = None;
        while let Some(item) = rx.recv().await {
            last = Some(item);
        }
        assert!(
            matches!(last, Some(Err(DaemonError::Rpc { code: -8, .. }))),
            "heights past the tip are the node's error"
        );
    }
}
