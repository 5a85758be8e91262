//! Benchmark profiles: how big the chain is and how hard each workload pushes.

use anyhow::bail;

/// The sizes of one benchmark run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// profile name (`tiny`, `small`, `medium`, `large`)
    pub name: &'static str,
    /// transactions of the simulated `mainnet-like` blocks, at least (the hot segment that
    /// gives the wanted history sizes comes on top: see `chain::build_chain`)
    pub txs: u64,
    /// concurrent sessions of the query workloads
    pub concurrency: Vec<usize>,
    /// seconds each method runs at each concurrency (every session sends at least one request)
    pub cell_seconds: f64,
    /// above this concurrency, `get_history` of the largest history target (~100,000 txs)
    /// sends exactly one request per session, all at once, rather than a closed loop for
    /// `cell_seconds` (`None`: a closed loop at every level). Each such answer is ~10 MB and
    /// costs the server time in proportion to the history: this bounds the cell to one
    /// answer per session, however fast or slow the server is.
    pub heavy_history_one_request_above: Option<usize>,
    /// history sizes the `get_history` queries look for (the closest script of the chain; the
    /// chain has one within 10% of each, or a hot script of exactly that size)
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
        let full = |name, txs, cell_seconds, heavy_history_one_request_above| Plan {
            name,
            txs,
            concurrency: vec![1, 64, 1000],
            cell_seconds,
            heavy_history_one_request_above,
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
                heavy_history_one_request_above: None,
                history_sizes: vec![10, 100],
                storm_sessions: 8,
                storm_scripts: 20,
                storm_batch: 10,
                tip_block_txs: vec![50, 100],
                mempool_batches: vec![50, 200],
                reorg_depths: vec![1, 3],
            },
            // Without a history cache a 100k-tx history cost rocksdb ~315 ms a request (one
            // session) and 1,000 at once ~210 s. One request per session bounds that cell to
            // 1,000 answers, however the server's speed compares with `cell_seconds`.
            "small" => full("small", 150_000, 1.5, Some(64)),
            "medium" => full("medium", 1_000_000, 4.0, None),
            "large" => full("large", 5_000_000, 8.0, None),
            other => bail!("unknown profile {other}: tiny, small, medium or large"),
        })
    }
}
