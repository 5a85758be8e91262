//! `anode demo`: the whole server over the built-in chain simulator, no full node needed. It
//! indexes a simulated chain into a real database, opens the Electrum listener, checks itself
//! with a wallet's first requests (verifying a merkle proof against the indexed header), then
//! keeps mining blocks and mempool transactions so a connected wallet sees notifications.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anode_coins::Coin;
use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tracing::info;

use crate::app::{Stack, StackOptions};
use crate::config::Config;
use crate::config::ServiceKind;
use crate::daemon::{hash_from_hex, hash_to_hex, DaemonApi};
use crate::output;
use crate::simulator::{Profile, SimChain, SimDaemon, Simulator};

/// Options of `anode demo`.
pub struct DemoOptions {
    /// chain shape
    pub profile: Profile,
    /// blocks mined before serving
    pub blocks: u32,
    /// RNG seed of the chain
    pub seed: u64,
    /// where the database goes; a temporary directory when `None`
    pub db_dir: Option<std::path::PathBuf>,
    /// a block every this long while serving (`None`: no mining)
    pub block_interval: Option<Duration>,
    /// run the self-check and stop
    pub once: bool,
}

/// What the self-check saw.
#[derive(Debug, Clone)]
pub struct SelfCheck {
    /// the server's `server.version` answer
    pub server_version: Value,
    /// tip height from `blockchain.headers.subscribe`
    pub tip_height: u64,
    /// scripts subscribed
    pub scripts: usize,
    /// history entries fetched
    pub history_entries: usize,
    /// merkle proofs verified against headers
    pub proofs_verified: usize,
    /// total confirmed balance of the scripts
    pub confirmed_balance: u64,
}

struct Client {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    next_id: u64,
}

impl Client {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let (read, writer) = stream.into_split();
        Ok(Client {
            reader: BufReader::new(read),
            writer,
            next_id: 0,
        })
    }

    async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let mut line = serde_json::to_vec(&request)?;
        line.push(b'\n');
        self.writer.write_all(&line).await?;
        loop {
            let mut answer = String::new();
            if self.reader.read_line(&mut answer).await? == 0 {
                bail!("the server closed the connection during {method}");
            }
            let answer: Value = serde_json::from_str(&answer)?;
            if answer.get("id") != Some(&json!(id)) {
                continue; // a notification
            }
            if let Some(error) = answer.get("error") {
                bail!("{method}: {error}");
            }
            return Ok(answer.get("result").cloned().unwrap_or(Value::Null));
        }
    }
}

/// Connects to `addr` like a wallet: negotiate, subscribe to headers and to `scripts`, fetch
/// histories and balances, and verify every history transaction's merkle proof against the
/// header the server serves for its height.
pub async fn self_check(
    addr: SocketAddr,
    scripts: &[Vec<u8>],
    coin: &dyn Coin,
) -> anyhow::Result<SelfCheck> {
    let mut client = Client::connect(addr).await?;
    let server_version = client
        .call("server.version", json!(["anode demo", ["1.4", "1.6"]]))
        .await?;
    let tip = client
        .call("blockchain.headers.subscribe", json!([]))
        .await?;
    let tip_height = tip["height"].as_u64().context("headers.subscribe height")?;
    let mut check = SelfCheck {
        server_version,
        tip_height,
        scripts: 0,
        history_entries: 0,
        proofs_verified: 0,
        confirmed_balance: 0,
    };
    for script in scripts {
        let script_hash = hash_to_hex(&coin.script_hash(script));
        client
            .call("blockchain.scripthash.subscribe", json!([script_hash]))
            .await?;
        check.scripts += 1;
        let history = client
            .call("blockchain.scripthash.get_history", json!([script_hash]))
            .await?;
        let balance = client
            .call("blockchain.scripthash.get_balance", json!([script_hash]))
            .await?;
        check.confirmed_balance += balance["confirmed"].as_u64().unwrap_or(0);
        for entry in history.as_array().into_iter().flatten() {
            check.history_entries += 1;
            let height = entry["height"].as_i64().unwrap_or(0);
            if height <= 0 {
                continue;
            }
            let txid = entry["tx_hash"].as_str().context("tx_hash")?;
            let proof = client
                .call("blockchain.transaction.get_merkle", json!([txid, height]))
                .await?;
            let header = client
                .call("blockchain.block.header", json!([height]))
                .await?;
            let header = hex::decode(header.as_str().context("header hex")?)?;
            let leaf = hash_from_hex(txid).context("txid")?;
            let pos = proof["pos"].as_u64().context("pos")? as usize;
            let branch = proof["merkle"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| hash_from_hex(h.as_str().unwrap_or("")).context("branch"))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let node = crate::index::merkle::root_from_branch(&leaf, pos, &branch);
            if header.get(36..68) != Some(&node[..]) {
                bail!(
                    "the merkle proof of {txid} does not reach the merkle root of block {height}"
                );
            }
            check.proofs_verified += 1;
        }
    }
    Ok(check)
}

/// Runs the demo.
pub async fn run(
    mut config: Config,
    options: DemoOptions,
    log: Option<crate::admin::LogControl>,
) -> anyhow::Result<()> {
    let coin = anode_coins::lookup(&config.coin, "regtest")
        .with_context(|| format!("coin {} regtest", config.coin))?;
    let started = Instant::now();
    let mut chain = SimChain::new(Arc::clone(&coin), options.profile, options.seed)?;
    chain.mine(options.blocks, true)?;
    chain.add_mempool_txs(5)?;
    chain.add_mempool_chain(3)?;
    info!(
        blocks = options.blocks,
        txs = chain.all_txs().count(),
        seconds = started.elapsed().as_secs_f64(),
        "simulated chain ready"
    );
    let sim = Simulator::new(chain);
    let daemon: Arc<dyn DaemonApi> = Arc::new(SimDaemon::new(sim.clone()));
    let temp = tempfile::tempdir().context("temporary database directory")?;
    let db_dir = options
        .db_dir
        .clone()
        .unwrap_or_else(|| temp.path().join("db"));
    config.network = "regtest".into();
    // A demo answers at once; padding (parity with ElectrumX) delays small replies.
    config.pad_tcp = false;
    if !config.services.iter().any(|s| s.kind != ServiceKind::Rpc) {
        config.services.push(
            "tcp://127.0.0.1:50001"
                .parse()
                .map_err(|e: String| anyhow::anyhow!(e))?,
        );
    }
    let stack = Stack::start(StackOptions {
        config,
        coin: Arc::clone(&coin),
        daemon,
        db_dir: db_dir.clone(),
        log,
        progress_bar: false,
    })
    .await?;
    let addrs: Vec<(ServiceKind, SocketAddr)> = stack
        .server
        .lock()
        .as_ref()
        .map(|s| s.local_addrs().to_vec())
        .unwrap_or_default();
    let tcp = addrs
        .iter()
        .find(|(kind, _)| *kind == ServiceKind::Tcp)
        .map(|(_, addr)| *addr)
        .context("the demo needs a tcp:// service")?;
    // Scripts with the most history: the ones a busy wallet would hold.
    let scripts: Vec<Vec<u8>> = sim.with_chain(|chain| {
        let mut counts: std::collections::HashMap<Vec<u8>, usize> = Default::default();
        for (_, tx) in chain.all_txs() {
            for out in &tx.outputs {
                *counts.entry(out.script.clone()).or_default() += 1;
            }
        }
        let mut scripts: Vec<(Vec<u8>, usize)> = counts.into_iter().collect();
        scripts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        scripts.into_iter().take(20).map(|(s, _)| s).collect()
    });
    let check = self_check(tcp, &scripts, coin.as_ref()).await?;
    output::print_demo(&addrs, &db_dir, &check, started.elapsed());
    if options.once {
        stack.shutdown().await;
        return Ok(());
    }
    if let Some(interval) = options.block_interval {
        let miner_sim = sim.clone();
        let mut stop = stack.shutdown_requested();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.changed() => return,
                }
                let mined = miner_sim.with_chain_mut(|chain| {
                    chain.mine(1, true)?;
                    chain.add_mempool_txs(3)
                });
                if let Err(e) = mined {
                    tracing::warn!(error = %e, "the demo miner stopped");
                    return;
                }
            }
        });
    }
    crate::app::run_until_stopped(stack).await
}
