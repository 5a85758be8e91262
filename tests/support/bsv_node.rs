//! A real Bitcoin SV regtest node for integration tests (see scripts/install-bsv-node): started
//! on loopback with its own data directory, stopped by PID when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anode::daemon::{RetryPolicy, RpcDaemon, RpcDaemonOptions};

/// Genesis of Bitcoin SV regtest (Bitcoin's regtest genesis).
pub const GENESIS: &str = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";

/// The node binary, or `None` (with a notice) when the tests run outside CI without it.
/// In CI a missing node fails the test: the real-node tests must never be skipped silently.
pub fn binary() -> Option<PathBuf> {
    match std::env::var_os("ANODE_BSV_BITCOIND") {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var_os("CI").is_some() => {
            panic!("ANODE_BSV_BITCOIND is not set: run the tests through scripts/test, which installs the node")
        }
        None => {
            eprintln!("skipping the real-node test: set ANODE_BSV_BITCOIND (scripts/install-bsv-node prints it)");
            None
        }
    }
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running node.
pub struct BsvNode {
    binary: PathBuf,
    /// the data directory (kept across restarts)
    pub datadir: tempfile::TempDir,
    /// JSON-RPC port
    pub rpc_port: u16,
    /// P2P port
    pub p2p_port: u16,
    child: Option<Child>,
    txindex: bool,
    extra_args: Vec<String>,
}

impl BsvNode {
    /// Starts a node with a transaction index.
    pub fn start(binary: &Path) -> BsvNode {
        Self::start_with(binary, &[])
    }

    /// Starts a node with a transaction index and `extra_args`.
    pub fn start_with(binary: &Path, extra_args: &[String]) -> BsvNode {
        let mut node = BsvNode {
            binary: binary.to_path_buf(),
            datadir: tempfile::Builder::new()
                .prefix("anode-bsv-")
                .tempdir()
                .expect("temp dir"),
            rpc_port: free_port(),
            p2p_port: free_port(),
            child: None,
            txindex: true,
            extra_args: extra_args.to_vec(),
        };
        node.spawn();
        node
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.binary)
            .args([
                "-regtest".to_string(),
                format!("-datadir={}", self.datadir.path().display()),
                "-server=1".into(),
                "-rpcuser=anode".into(),
                "-rpcpassword=test".into(),
                format!("-rpcport={}", self.rpc_port),
                "-rpcbind=127.0.0.1".into(),
                "-rpcallowip=127.0.0.1".into(),
                "-listen=1".into(),
                format!("-bind=127.0.0.1:{}", self.p2p_port),
                format!("-port={}", self.p2p_port),
                "-connect=0".into(),
                "-dnsseed=0".into(),
                "-discover=0".into(),
                format!("-txindex={}", u8::from(self.txindex)),
                "-excessiveblocksize=1000000000".into(),
                "-maxstackmemoryusageconsensus=0".into(),
                "-minminingtxfee=0.00000500".into(),
                "-printtoconsole=0".into(),
            ])
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the BSV node");
        self.child = Some(child);
    }

    /// The JSON-RPC URL with credentials.
    pub fn url(&self) -> String {
        format!("http://anode:test@127.0.0.1:{}/", self.rpc_port)
    }

    /// A client that waits up to `patience` for the node (it needs a few seconds to start).
    pub fn client(&self, patience: Duration) -> RpcDaemon {
        RpcDaemon::new(RpcDaemonOptions {
            urls: vec![self.url()],
            retry: RetryPolicy {
                initial_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(500),
                give_up_after: Some(patience),
                ..RetryPolicy::default()
            },
            ..RpcDaemonOptions::default()
        })
        .expect("a valid URL")
    }

    /// Stops the node (RPC `stop`, then SIGKILL if it lingers) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
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

    /// Stops and starts the node on the same data directory and ports.
    pub fn restart(&mut self, txindex: bool) {
        self.stop();
        self.txindex = txindex;
        self.spawn();
    }
}

impl Drop for BsvNode {
    fn drop(&mut self) {
        self.stop();
    }
}
