//! Benchmark profiles: how big the chain is and how hard each workload pushes.

use anyhow::bail;

/// The sizes of one benchmark run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// profile name (`tiny`, `small`, `medium`, `large`)
    pub name: &'static str,
    /// transactions in the simulated `mainnet-like` chain, at least
    pub txs: u64,
    /// concurrent sessions of the query workloads
    pub concurrency: Vec<usize>,
    /// seconds each method runs at each concurrency (every session sends at least one request)
    pub cell_seconds: f64,
    /// highest concurrency at which `get_history` of the largest history target runs (`None`:
    /// every level). Each such request costs the server a time proportional to the history,
    /// and every session sends at least one, so at 1,000 sessions this one cell can outlast
    /// the rest of a small run.
    pub heavy_history_max_sessions: Option<usize>,
    /// history sizes the `get_history` queries look for (the closest script of the chain)
    pub history_sizes: Vec<u64>,
    /// wallet storm: sessions
    pub storm_sessions: usize,
    /// wallet storm: scripts subscribed per session
    pub storm_scripts: usize,
    /// wallet storm: subscriptions per batch request
    pub storm_batch: usize,
    /// transactions of the blocks mined for the tip measurement
    pub tip_block_txs: Vec<u32>,
    /// sizes of the mempool ingest batches
    pub mempool_batches: Vec<u32>,
    /// reorganisation depths
    pub reorg_depths: Vec<u32>,
}

impl Plan {
    /// The plan called `name`.
    pub fn by_name(name: &str) -> anyhow::Result<Plan> {
        let full = |name, txs, cell_seconds, heavy_history_max_sessions| Plan {
            name,
            txs,
            concurrency: vec![1, 64, 1000],
            cell_seconds,
            heavy_history_max_sessions,
            history_sizes: vec![10, 1_000, 100_000],
            storm_sessions: 1000,
            storm_scripts: 200,
            storm_batch: 50,
            tip_block_txs: vec![1000, 4000],
            mempool_batches: vec![10_000, 100_000],
            reorg_depths: vec![1, 6, 100],
        };
        Ok(match name {
            // Seconds per engine: the pipeline test's chain.
            "tiny" => Plan {
                name: "tiny",
                txs: 3_000,
                concurrency: vec![1, 4],
                cell_seconds: 0.2,
                heavy_history_max_sessions: None,
                history_sizes: vec![10, 100],
                storm_sessions: 8,
                storm_scripts: 20,
                storm_batch: 10,
                tip_block_txs: vec![50, 100],
                mempool_batches: vec![50, 200],
                reorg_depths: vec![1, 3],
            },
            // The largest history of the small chain (~26k txs) costs ~140 ms a request: 1,000
            // at once took 3 minutes per engine, beyond the small run's 15-minute budget.
            "small" => full("small", 150_000, 1.5, Some(64)),
            "medium" => full("medium", 1_000_000, 4.0, None),
            "large" => full("large", 5_000_000, 8.0, None),
            other => bail!("unknown profile {other}: tiny, small, medium or large"),
        })
    }
}
