//! `anode rpc` end to end: the real binary against an admin listener started in this process
//! over a fake server state.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anode::admin::{
    Admin, AdminApi, AdminError, AdminServer, GroupInfo, LoggingChange, LoggingState, MemoryItem,
    PeerInfo, PeerStatus, SessionInfo,
};
use anode::query::{
    Balance, ChainEvent, ChainQuery, Hash32, HeaderProof, History, HistoryEntry, OutPoint,
    OutpointStatus, QueryResult, RecentTx, ScriptHash, Tip, TxMerkle, Unspent,
};
use async_trait::async_trait;
use serde_json::{json, Value};

/// Server state the commands read and change.
struct Fake {
    sessions: Mutex<Vec<SessionInfo>>,
    reorgs: Mutex<Vec<u32>>,
}

impl Fake {
    fn new() -> Arc<Self> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let session = |id: u64, client: &str| SessionInfo {
            id,
            transport: "tcp".into(),
            remote_addr: format!("127.0.0.1:{}", 50000 + id),
            group: "127.0.0.1".into(),
            protocol_version: Some("1.4.2".into()),
            client_name: client.into(),
            scripthash_subs: 10 * id,
            cost: 12.7,
            concurrency: 10,
            requests: 5,
            send_bytes: 20480,
            connected_since: now - 125,
            request_counts: BTreeMap::from([("server.ping".to_string(), 5)]),
            ..SessionInfo::default()
        };
        Arc::new(Fake {
            sessions: Mutex::new(vec![
                session(1, "electrum/4.5.8"),
                session(2, "sparrow/2.0"),
            ]),
            reorgs: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl AdminApi for Fake {
    async fn getinfo(&self) -> Value {
        json!({"coin": "Bitcoin", "daemon height": 900, "db height": 899})
    }
    async fn sessions(&self) -> Vec<SessionInfo> {
        self.sessions.lock().expect("not poisoned").clone()
    }
    async fn groups(&self) -> Vec<GroupInfo> {
        vec![GroupInfo {
            name: "127.0.0.1".into(),
            sessions: 2,
            ..GroupInfo::default()
        }]
    }
    async fn peers(&self) -> Vec<PeerInfo> {
        vec![PeerInfo {
            host: "electrum.example".into(),
            features: json!({"hosts": {"electrum.example": {"ssl_port": 50002, "tcp_port": 50001}},
                             "server_version": "ElectrumX 1.18.0", "protocol_max": "1.4.2"}),
            source: "peers".into(),
            status: PeerStatus::Good,
            ..PeerInfo::default()
        }]
    }
    async fn add_peer(&self, _real_name: &str) -> Result<(), AdminError> {
        Err(AdminError::Unavailable("peer discovery is off".into()))
    }
    async fn disconnect(&self, ids: &[u64]) -> Vec<u64> {
        let mut sessions = self.sessions.lock().expect("not poisoned");
        let closed = sessions
            .iter()
            .map(|s| s.id)
            .filter(|id| ids.contains(id))
            .collect();
        sessions.retain(|s| !ids.contains(&s.id));
        closed
    }
    async fn session_logging(&self, _change: LoggingChange) -> LoggingState {
        LoggingState::default()
    }
    async fn set_daemon_url(&self, urls: Option<&str>) -> Result<String, AdminError> {
        Ok(urls.unwrap_or("http://127.0.0.1:8332/").to_string())
    }
    async fn reorg(&self, count: u32) -> Result<(), AdminError> {
        self.reorgs.lock().expect("not poisoned").push(count);
        Ok(())
    }
    async fn memory_usage(&self) -> Vec<MemoryItem> {
        Vec::new()
    }
    async fn stop(&self) {}
}

/// A chain where every script has one confirmed transaction at height 7.
struct OneTxChain;

#[async_trait]
impl ChainQuery for OneTxChain {
    fn tip(&self) -> Tip {
        Tip {
            height: 7,
            hash: [7; 32],
            header: vec![0; 80],
        }
    }
    async fn header(&self, _: u32) -> QueryResult<Option<Vec<u8>>> {
        Ok(None)
    }
    async fn headers(&self, _: u32, _: u32) -> QueryResult<Vec<Vec<u8>>> {
        Ok(Vec::new())
    }
    async fn header_proof(&self, _: u32, _: u32) -> QueryResult<HeaderProof> {
        Ok(HeaderProof {
            branch: Vec::new(),
            root: [0; 32],
        })
    }
    async fn history(&self, _: &ScriptHash, _: usize) -> QueryResult<History> {
        Ok(History {
            confirmed: vec![HistoryEntry {
                txid: [0xab; 32],
                height: 7,
                fee: None,
            }],
            mempool: Vec::new(),
        })
    }
    async fn mempool_history(&self, _: &ScriptHash) -> QueryResult<Vec<HistoryEntry>> {
        Ok(Vec::new())
    }
    async fn balance(&self, _: &ScriptHash) -> QueryResult<Balance> {
        Ok(Balance {
            confirmed: 2_500,
            unconfirmed: 0,
        })
    }
    async fn unspent(&self, _: &ScriptHash, _: usize) -> QueryResult<Vec<Unspent>> {
        Ok(vec![Unspent {
            txid: [0xab; 32],
            vout: 0,
            height: 7,
            value: 2_500,
        }])
    }
    async fn raw_transaction(&self, _: &Hash32) -> QueryResult<Option<Vec<u8>>> {
        Ok(None)
    }
    async fn merkle(&self, _: &Hash32, _: u32) -> QueryResult<Option<TxMerkle>> {
        Ok(None)
    }
    async fn txid_at(&self, _: u32, _: u32) -> QueryResult<Option<(Hash32, Vec<Hash32>)>> {
        Ok(None)
    }
    async fn outpoint_status(&self, _: &OutPoint) -> QueryResult<OutpointStatus> {
        Ok(OutpointStatus::default())
    }
    fn fee_histogram(&self) -> Vec<(f64, u64)> {
        Vec::new()
    }
    fn mempool_recent(&self) -> Vec<RecentTx> {
        Vec::new()
    }
    fn mempool_size(&self) -> usize {
        0
    }
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<ChainEvent>> {
        tokio::sync::broadcast::channel(1).1
    }
}

async fn start(fake: Arc<Fake>) -> AdminServer {
    let coin = anode_coins::lookup("Bitcoin", "mainnet").expect("bitcoin is built in");
    let admin = Admin::new(fake, Arc::new(OneTxChain), coin);
    anode::admin::spawn("127.0.0.1:0", Arc::new(admin))
        .await
        .expect("bind 127.0.0.1:0")
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `anode ARGS` with `env`, without any admin or service settings inherited.
async fn anode(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_anode"));
    cmd.args(args);
    for var in [
        "RPC_HOST",
        "RPC_PORT",
        "SERVICES",
        "ANODE_SERVICES",
        "RUST_BACKTRACE",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().await.expect("run the anode binary");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_prints_tables_lines_and_json() {
    let fake = Fake::new();
    let server = start(fake.clone()).await;
    let port = server.addr.port().to_string();

    let run = anode(&["rpc", "--rpc-port", &port, "sessions"], &[]).await;
    assert!(run.ok, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(&header[..4], ["ID", "Flags", "Client", "Proto"]);
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&row[..5], ["1", "T10", "electrum/4.5.8", "1.4.2", "13"]);
    assert!(
        lines[1].contains("2m 05s") || lines[1].contains("2m 06s"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].trim_end().ends_with("127.0.0.1:50002"),
        "{}",
        lines[2]
    );

    // --json after the command works too, and prints the wire answer.
    let run = anode(&["rpc", "sessions", "--json", "-p", &port], &[]).await;
    assert!(run.ok, "{}", run.stderr);
    let parsed: Value = serde_json::from_str(&run.stdout).expect("JSON output");
    assert_eq!(parsed[1]["client_name"], "sparrow/2.0");
    assert_eq!(parsed[0]["request_counts"]["server.ping"], 5);

    let run = anode(&["rpc", "peers"], &[("RPC_PORT", &port)]).await;
    assert!(run.ok, "{}", run.stderr);
    let row: Vec<&str> = run
        .stdout
        .lines()
        .nth(1)
        .expect("a peer row")
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..6],
        [
            "electrum.example",
            "good",
            "50001",
            "50002",
            "ElectrumX",
            "1.18.0"
        ]
    );

    let services = format!("tcp://127.0.0.1:1,rpc://127.0.0.1:{port}");
    let run = anode(&["rpc", "getinfo"], &[("SERVICES", &services)]).await;
    assert!(run.ok, "{}", run.stderr);
    let info: Value = serde_json::from_str(&run.stdout).expect("getinfo prints JSON");
    assert_eq!(info["db height"], 899);

    let run = anode(
        &[
            "rpc",
            "-p",
            &port,
            "query",
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
            "--limit",
            "1",
        ],
        &[],
    )
    .await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run
        .stdout
        .contains(&format!("History #0: height 7 tx_hash {}", "ab".repeat(32))));
    assert!(
        run.stdout.contains("Balance: 0.00002500 BTC confirmed"),
        "{}",
        run.stdout
    );

    let run = anode(&["rpc", "-p", &port, "reorg", "5"], &[]).await;
    assert_eq!(run.stdout.trim(), "scheduled a reorg of 5 blocks");
    let run = anode(&["rpc", "-p", &port, "reorg"], &[]).await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(*fake.reorgs.lock().expect("not poisoned"), [5, 3]);

    let run = anode(&["rpc", "-p", &port, "disconnect", "2", "9"], &[]).await;
    assert_eq!(run.stdout, "disconnecting session 2\nunknown: 9\n");
    assert_eq!(fake.sessions.lock().expect("not poisoned").len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_errors_exit_non_zero_with_the_message() {
    let server = start(Fake::new()).await;
    let port = server.addr.port().to_string();

    let run = anode(&["rpc", "-p", &port, "inspect_session", "99"], &[]).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("no session with id=99"),
        "{}",
        run.stderr
    );

    let run = anode(&["rpc", "-p", &port, "add_peer", "x.example t"], &[]).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("peer discovery is off"),
        "{}",
        run.stderr
    );
    server.stop().await;

    // The server is gone: the client says what to check.
    let run = anode(&["rpc", "-p", &port, "getinfo"], &[]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("Is anode running?"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[tokio::test]
async fn rpc_has_a_subcommand_for_every_admin_command() {
    let run = anode(&["rpc", "--help"], &[]).await;
    assert!(run.ok, "{}", run.stderr);
    let listed: Vec<&str> = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .collect();
    let mut expected = anode::admin::Command::NAMES.to_vec();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(listed_sorted, expected, "{}", run.stdout);
}
