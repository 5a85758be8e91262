//! The whole server — index, listeners, admin RPC — over the simulator, as `anode` runs it:
//! a wallet subscribes, a block is mined and a payment enters the mempool, and the wallet is
//! notified with statuses that match what the server then answers; `anode demo --once` runs.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anode::app::{Stack, StackOptions};
use anode::config::{Config, RawConfig, ServiceKind};
use anode::daemon::{hash_to_hex, DaemonApi};
use anode::simulator::SimDaemon;
use serde_json::{json, Value};
use support::index::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

struct Wallet {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    id: u64,
    notifications: Vec<Value>,
}

impl Wallet {
    async fn connect(addr: SocketAddr) -> Wallet {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (r, w) = stream.into_split();
        Wallet {
            lines: BufReader::new(r).lines(),
            writer: w,
            id: 0,
            notifications: Vec::new(),
        }
    }

    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(20), self.lines.next_line())
            .await
            .expect("an answer in time")
            .expect("read")
            .expect("open");
        serde_json::from_str(&line).expect("JSON")
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.id += 1;
        let line = json!({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params});
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
        loop {
            let answer = self.next().await;
            if answer["id"] == json!(self.id) {
                return answer["result"].clone();
            }
            self.notifications.push(answer);
        }
    }

    async fn notification(&mut self, method: &str) -> Value {
        if let Some(i) = self
            .notifications
            .iter()
            .position(|n| n["method"] == method)
        {
            return self.notifications.remove(i);
        }
        loop {
            let message = self.next().await;
            if message["method"] == method {
                return message;
            }
            self.notifications.push(message);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_is_notified_of_blocks_and_payments_by_the_running_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = simulator(7, 40);
    let daemon: Arc<dyn DaemonApi> = Arc::new(SimDaemon::new(sim.clone()));
    let raw = RawConfig::defaults().with_flags(vec![
        ("network", "regtest".to_string()),
        (
            "services",
            "tcp://127.0.0.1:0,rpc://127.0.0.1:0".to_string(),
        ),
        ("poll_interval_blocks_ms", "50".to_string()),
        ("poll_interval_mempool_ms", "50".to_string()),
        ("pad_tcp", "false".to_string()),
        ("peer_discovery", "off".to_string()),
    ]);
    let config = Config::from_raw(&raw).expect("config");
    let stack = Stack::start(StackOptions {
        config,
        coin: regtest(),
        daemon,
        db_dir: dir.path().join("db"),
        log: None,
        progress_bar: false,
    })
    .await
    .expect("stack");
    let addr = stack
        .server
        .lock()
        .as_ref()
        .and_then(|s| s.local_addr(ServiceKind::Tcp))
        .expect("tcp listener");

    let mut wallet = Wallet::connect(addr).await;
    wallet.call("server.version", json!(["e2e", "1.4"])).await;
    let tip = wallet.call("blockchain.headers.subscribe", json!([])).await;
    assert_eq!(tip["height"], 40);
    // A script the next mempool transaction pays.
    sim.with_chain_mut(|c| c.add_mempool_txs(1)).expect("tx");
    let (txid, script) = sim.with_chain(|c| {
        let txid = *c.mempool().last().expect("a mempool tx");
        (txid, c.tx(&txid).expect("tx").outputs[0].script.clone())
    });
    let script_hash = hash_to_hex(&regtest().script_hash(&script));
    let status = wallet
        .call("blockchain.scripthash.subscribe", json!([script_hash]))
        .await;
    let _ = status;
    // The mempool refresh reaches the wallet as a status notification.
    let note = wallet.notification("blockchain.scripthash.subscribe").await;
    let history = wallet
        .call("blockchain.scripthash.get_history", json!([script_hash]))
        .await;
    assert!(
        history
            .as_array()
            .expect("list")
            .iter()
            .any(|e| e["tx_hash"] == hash_to_hex(&txid) && e["height"].as_i64().unwrap() <= 0),
        "{history}"
    );
    assert_eq!(note["params"][0], json!(script_hash));
    assert!(note["params"][1].is_string(), "{note}");

    // A block confirms it: header and status notifications.
    sim.with_chain_mut(|c| c.mine(1, true)).expect("mine");
    let header = wallet.notification("blockchain.headers.subscribe").await;
    assert_eq!(header["params"][0]["height"], 41);
    loop {
        let history = wallet
            .call("blockchain.scripthash.get_history", json!([script_hash]))
            .await;
        let entry = history
            .as_array()
            .expect("list")
            .iter()
            .find(|e| e["tx_hash"] == hash_to_hex(&txid))
            .cloned()
            .expect("still in the history");
        if entry["height"] == 41 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let proof = wallet
        .call(
            "blockchain.transaction.get_merkle",
            json!([hash_to_hex(&txid), 41]),
        )
        .await;
    assert!(proof["merkle"].is_array(), "{proof}");
    stack.shutdown().await;
}

#[test]
fn anode_demo_once_indexes_serves_and_checks_itself() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_anode"))
        .args(["demo", "--once", "--blocks", "60"])
        .env("SERVICES", "tcp://127.0.0.1:0,rpc://127.0.0.1:0")
        .output()
        .expect("run anode demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("merkle proofs verified"), "{stdout}");
}
