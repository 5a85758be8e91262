//! Real-node mode: anode indexing the Bitcoin SV regtest node (docs/real-node.md), with the
//! scenario driven through the node's wallet, `generate` and `invalidateblock`, and the
//! expectations read from the node's JSON-RPC.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anode::daemon::{DaemonApi, RetryPolicy, RpcDaemon, RpcDaemonOptions};
use anyhow::{bail, Context};
use serde_json::json;

use crate::matrix::{start_anode, TestCert};
use crate::node::Node;
use crate::scenario::WalletDriver;
use crate::suite::{self, SuiteOptions, SuiteReport};

/// Reorg limit given to anode; the deep reorg goes this deep.
const REORG_LIMIT: u32 = 3;

/// A BSV regtest node on loopback with its own data directory, stopped (by its PID) on drop.
pub struct BsvNode {
    child: Option<Child>,
    /// JSON-RPC port
    pub rpc_port: u16,
    _datadir: tempfile::TempDir,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl BsvNode {
    /// Starts `binary` with the flags docs/real-node.md lists (no P2P listener).
    pub fn start(binary: &Path) -> anyhow::Result<BsvNode> {
        let datadir = tempfile::Builder::new()
            .prefix("anode-conformance-bsv-")
            .tempdir()
            .context("node data directory")?;
        let rpc_port = free_port()?;
        let child = Command::new(binary)
            .args([
                "-regtest".to_string(),
                format!("-datadir={}", datadir.path().display()),
                "-server=1".into(),
                "-rpcuser=conformance".into(),
                "-rpcpassword=test".into(),
                format!("-rpcport={rpc_port}"),
                "-rpcbind=127.0.0.1".into(),
                "-rpcallowip=127.0.0.1".into(),
                "-listen=0".into(),
                "-connect=0".into(),
                "-dnsseed=0".into(),
                "-discover=0".into(),
                "-txindex=1".into(),
                "-excessiveblocksize=1000000000".into(),
                "-maxstackmemoryusageconsensus=0".into(),
                "-minminingtxfee=0.00000500".into(),
                "-printtoconsole=0".into(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(BsvNode {
            child: Some(child),
            rpc_port,
            _datadir: datadir,
        })
    }

    /// The JSON-RPC URL with credentials.
    pub fn url(&self) -> String {
        format!("http://conformance:test@127.0.0.1:{}/", self.rpc_port)
    }

    /// Waits until the RPC answers.
    pub async fn wait_ready(&self, node: &Node, patience: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + patience;
        loop {
            match node.call("getblockcount", json!([])).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context("the node never answered"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

impl Drop for BsvNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM by PID lets the node shut down cleanly; kill it if it lingers.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            for _ in 0..100 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the node and anode over it (first engine compiled in), prepares a chain with
/// confirmed and mempool wallet payments, and runs the suite with the wallet driver.
pub async fn run(binary: &Path) -> anyhow::Result<SuiteReport> {
    let bsv = BsvNode::start(binary)?;
    let node = Node::http(&bsv.url());
    bsv.wait_ready(&node, Duration::from_secs(60)).await?;
    // Coinbases mature after 100 blocks.
    node.call("generate", json!([101])).await?;
    let mut driver = WalletDriver {
        node: node.clone(),
        reorg_limit: REORG_LIMIT,
        addresses: Vec::new(),
    };
    use crate::scenario::{Driver, Step};
    // A few confirmed payments (one address collecting several), then a mempool.
    for _ in 0..2 {
        driver.perform(Step::Mempool).await?;
        driver.perform(Step::Mine).await?;
    }
    driver.perform(Step::Mempool).await?;

    let coin = anode_coins::lookup("BitcoinSV", "regtest").context("BitcoinSV regtest")?;
    let daemon: Arc<dyn DaemonApi> = Arc::new(
        RpcDaemon::new(RpcDaemonOptions {
            urls: vec![bsv.url()],
            retry: RetryPolicy {
                initial_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(500),
                give_up_after: Some(Duration::from_secs(30)),
                ..RetryPolicy::default()
            },
            ..RpcDaemonOptions::default()
        })
        .context("node client")?,
    );
    let Some(engine) = anode::store_factory::default_engine() else {
        bail!("this build has no storage engine");
    };
    let cert = TestCert::generate()?;
    let extra = [("reorg_limit", REORG_LIMIT.to_string())];
    let (stack, target, _db) = start_anode(engine, &coin, daemon, &extra, &cert).await?;
    let options = SuiteOptions {
        notify_timeout: Duration::from_secs(10),
        ..SuiteOptions::default()
    };
    let report = suite::run(&target, &node, coin, Some(&mut driver), &options).await;
    stack.shutdown().await;
    drop(bsv);
    report
}
