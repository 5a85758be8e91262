//! The admin interface end to end: a real listener on `127.0.0.1:0`, a fake [`AdminApi`] and a
//! fake [`ChainQuery`], requests sent through the client and as raw bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::client::{call, ClientError};
use super::commands::{BAD_REQUEST, INVALID_PARAMS, METHOD_NOT_FOUND, PARSE_ERROR};
use super::logging::tests::Captured;
use super::*;
use crate::query::{
    Balance, ChainEvent, ChainQuery, Hash32, HeaderProof, History, HistoryEntry, OutPoint,
    OutpointStatus, QueryResult, RecentTx, ScriptHash, Tip, TxMerkle, Unspent,
};

#[derive(Default)]
struct FakeState {
    sessions: Vec<SessionInfo>,
    log_new: bool,
    daemon_url: String,
    catching_up: bool,
    stopped: bool,
    peers_added: Vec<String>,
    reorgs: Vec<u32>,
}

#[derive(Default)]
struct FakeApi(Mutex<FakeState>);

impl FakeApi {
    fn with_sessions() -> Arc<Self> {
        let session = |id: u64, group: &str, transport: &str| SessionInfo {
            id,
            transport: transport.into(),
            group: group.into(),
            remote_addr: format!("{group}:{}", 40000 + id),
            client_name: format!("client-{id}"),
            protocol_version: Some("1.4".into()),
            scripthash_subs: id,
            ..SessionInfo::default()
        };
        let api = FakeApi::default();
        {
            let mut s = api.0.lock().expect("not poisoned");
            s.sessions = vec![
                session(3, "10.0.0.0/24", "tcp"),
                session(1, "10.0.0.0/24", "ssl"),
                session(2, "192.168.1.0/24", "ws"),
            ];
            s.daemon_url = "http://user:secret@127.0.0.1:8332/".into();
        }
        Arc::new(api)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().expect("not poisoned")
    }
}

#[async_trait]
impl AdminApi for FakeApi {
    async fn getinfo(&self) -> Value {
        let s = self.state();
        json!({"coin": "Bitcoin", "db height": 101, "sessions": {"count": s.sessions.len()}})
    }
    async fn sessions(&self) -> Vec<SessionInfo> {
        self.state().sessions.clone()
    }
    async fn groups(&self) -> Vec<GroupInfo> {
        let mut groups: Vec<GroupInfo> = Vec::new();
        for s in &self.state().sessions {
            match groups.iter_mut().find(|g| g.name == s.group) {
                Some(g) => g.sessions += 1,
                None => groups.push(GroupInfo {
                    name: s.group.clone(),
                    sessions: 1,
                    ..GroupInfo::default()
                }),
            }
        }
        groups
    }
    async fn peers(&self) -> Vec<PeerInfo> {
        let peer = |host: &str, status| PeerInfo {
            host: host.into(),
            status,
            features: json!({"hosts": {host: {"tcp_port": 50001, "ssl_port": null}},
                             "server_version": "ElectrumX 1.16"}),
            ..PeerInfo::default()
        };
        vec![
            peer("b.example", PeerStatus::Bad),
            peer("z.example", PeerStatus::Good),
            peer("n.example", PeerStatus::Never),
            peer("a.example", PeerStatus::Good),
        ]
    }
    async fn add_peer(&self, real_name: &str) -> Result<(), AdminError> {
        if !real_name.contains('.') {
            return Err(AdminError::BadArgument(format!(
                "{real_name:?}: no host name"
            )));
        }
        self.state().peers_added.push(real_name.to_string());
        Ok(())
    }
    async fn disconnect(&self, session_ids: &[u64]) -> Vec<u64> {
        let mut s = self.state();
        let closed: Vec<u64> = s
            .sessions
            .iter()
            .map(|s| s.id)
            .filter(|id| session_ids.contains(id))
            .collect();
        s.sessions.retain(|x| !session_ids.contains(&x.id));
        closed
    }
    async fn session_logging(&self, change: LoggingChange) -> LoggingState {
        let mut s = self.state();
        let mut toggled = Vec::new();
        match change {
            LoggingChange::Toggle(ids) => {
                for session in s.sessions.iter_mut().filter(|x| ids.contains(&x.id)) {
                    session.logged = !session.logged;
                    toggled.push((session.id, session.logged));
                }
            }
            LoggingChange::All | LoggingChange::None => {
                let on = change == LoggingChange::All;
                s.log_new = on;
                s.sessions.iter_mut().for_each(|x| x.logged = on);
            }
            LoggingChange::ToggleNew => s.log_new = !s.log_new,
        }
        LoggingState {
            toggled,
            log_new: s.log_new,
        }
    }
    async fn set_daemon_url(&self, urls: Option<&str>) -> Result<String, AdminError> {
        let mut s = self.state();
        s.daemon_url = urls
            .unwrap_or("http://user:secret@127.0.0.1:8332/")
            .to_string();
        Ok(s.daemon_url.clone())
    }
    async fn reorg(&self, count: u32) -> Result<(), AdminError> {
        let mut s = self.state();
        if s.catching_up {
            return Err(AdminError::Unavailable(
                "still catching up with daemon".into(),
            ));
        }
        s.reorgs.push(count);
        Ok(())
    }
    async fn memory_usage(&self) -> Vec<MemoryItem> {
        vec![
            MemoryItem {
                name: "utxo cache".into(),
                bytes: 1 << 40,
            },
            MemoryItem {
                name: "mempool".into(),
                bytes: 10,
            },
        ]
    }
    async fn stop(&self) {
        self.state().stopped = true;
    }
}

/// A chain that knows one script's history, UTXOs and balance.
#[derive(Default)]
pub(crate) struct FakeChain {
    histories: HashMap<ScriptHash, (History, Vec<Unspent>, Balance)>,
}

fn txid(byte: u8) -> Hash32 {
    [byte; 32]
}

impl FakeChain {
    fn with_script(script: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        let sh = ScriptHash(Sha256::digest(script).into());
        let history = History {
            confirmed: (1..=3)
                .map(|h| HistoryEntry {
                    txid: txid(h as u8),
                    height: h,
                    fee: None,
                })
                .collect(),
            mempool: vec![HistoryEntry {
                txid: txid(9),
                height: 0,
                fee: Some(200),
            }],
        };
        let utxos = vec![Unspent {
            txid: txid(3),
            vout: 1,
            height: 3,
            value: 150_000_000,
        }];
        let balance = Balance {
            confirmed: 150_000_000,
            unconfirmed: -5000,
        };
        let mut histories = HashMap::new();
        histories.insert(sh, (history, utxos, balance));
        FakeChain { histories }
    }
}

#[async_trait]
impl ChainQuery for FakeChain {
    fn tip(&self) -> Tip {
        Tip {
            height: 3,
            hash: txid(0xee),
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
        Err(crate::query::QueryError::OutOfRange(
            "no headers here".into(),
        ))
    }
    async fn history(&self, script: &ScriptHash, limit: usize) -> QueryResult<History> {
        let history = self
            .histories
            .get(script)
            .map(|h| h.0.clone())
            .unwrap_or_default();
        if history.confirmed.len() >= limit {
            return Err(crate::query::QueryError::HistoryTooLarge);
        }
        Ok(history)
    }
    async fn mempool_history(&self, script: &ScriptHash) -> QueryResult<Vec<HistoryEntry>> {
        Ok(self.history(script, usize::MAX).await?.mempool)
    }
    async fn balance(&self, script: &ScriptHash) -> QueryResult<Balance> {
        Ok(self.histories.get(script).map(|h| h.2).unwrap_or_default())
    }
    async fn unspent(&self, script: &ScriptHash, _: usize) -> QueryResult<Vec<Unspent>> {
        Ok(self
            .histories
            .get(script)
            .map(|h| h.1.clone())
            .unwrap_or_default())
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
        1
    }
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<ChainEvent>> {
        tokio::sync::broadcast::channel(1).1
    }
}

const GENESIS_ADDRESS: &str = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa";
const GENESIS_SCRIPT: &str = "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac";

async fn start(api: Arc<FakeApi>, log: Option<LogControl>) -> AdminServer {
    let coin = anode_coins::lookup("Bitcoin", "mainnet").expect("bitcoin is built in");
    let chain = FakeChain::with_script(&hex::decode(GENESIS_SCRIPT).expect("hex"));
    let mut admin = Admin::new(api, Arc::new(chain), coin);
    if let Some(log) = log {
        admin = admin.with_log_control(log);
    }
    spawn("127.0.0.1:0", Arc::new(admin))
        .await
        .expect("bind 127.0.0.1:0")
}

async fn rpc(server: &AdminServer, method: &str, params: Value) -> Result<Value, ClientError> {
    call(&server.addr.to_string(), method, params).await
}

fn rpc_error(result: Result<Value, ClientError>) -> RpcError {
    match result {
        Err(ClientError::Rpc(e)) => e,
        other => panic!("expected an error answer, got {other:?}"),
    }
}

/// Sends raw lines on one connection and reads one answer line per expected answer.
async fn raw(server: &AdminServer, lines: &[&str], answers: usize) -> Vec<Value> {
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    let (read, mut write) = stream.into_split();
    for line in lines {
        write.write_all(line.as_bytes()).await.expect("write");
        write.write_all(b"\n").await.expect("write");
    }
    let mut reader = BufReader::new(read).lines();
    let mut out = Vec::new();
    for _ in 0..answers {
        let line = reader.next_line().await.expect("read").expect("an answer");
        out.push(serde_json::from_str(&line).expect("JSON answer"));
    }
    out
}

#[tokio::test]
async fn informational_commands_answer_from_the_api() {
    let api = FakeApi::with_sessions();
    let server = start(api.clone(), None).await;

    let info = rpc(&server, "getinfo", json!({})).await.expect("getinfo");
    assert_eq!(info["db height"], 101);
    assert_eq!(info["pid"], std::process::id());

    let sessions = rpc(&server, "sessions", json!({})).await.expect("sessions");
    let ids: Vec<u64> = sessions
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, vec![1, 2, 3], "sorted by id");
    assert_eq!(sessions[1]["transport"], "ws");
    assert_eq!(sessions[2]["scripthash_subs"], 3);

    let groups = rpc(&server, "groups", json!([])).await.expect("groups");
    assert_eq!(groups[0]["name"], "10.0.0.0/24");
    assert_eq!(groups[0]["sessions"], 2);

    let peers = rpc(&server, "peers", json!({})).await.expect("peers");
    let order: Vec<&str> = peers
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["host"].as_str().expect("host"))
        .collect();
    assert_eq!(order, ["a.example", "z.example", "n.example", "b.example"]);

    let session = rpc(&server, "inspect_session", json!({"session_id": 2}))
        .await
        .expect("inspect");
    assert_eq!(session["client_name"], "client-2");
    let e = rpc_error(rpc(&server, "inspect_session", json!([99])).await);
    assert_eq!(
        (e.code, e.message.as_str()),
        (BAD_REQUEST, "no session with id=99")
    );

    let mem = rpc(&server, "debug_memusage", json!({"limit": 2}))
        .await
        .expect("memusage");
    assert_eq!(mem.as_array().expect("list").len(), 2);
    assert_eq!(mem[0]["name"], "utxo cache", "largest first");
    server.stop().await;
}

#[tokio::test]
async fn commands_that_change_state_reach_the_api() {
    let api = FakeApi::with_sessions();
    let server = start(api.clone(), None).await;

    let answer = rpc(
        &server,
        "add_peer",
        json!({"real_name": "e.example v1.4 s t"}),
    )
    .await
    .expect("add_peer");
    assert_eq!(answer, "peer 'e.example v1.4 s t' added");
    assert_eq!(api.state().peers_added, ["e.example v1.4 s t"]);
    let e = rpc_error(rpc(&server, "add_peer", json!(["localhost"])).await);
    assert_eq!(e.code, BAD_REQUEST);
    assert!(e.message.contains("no host name"), "{e}");

    let url = rpc(
        &server,
        "daemon_url",
        json!({"daemon_url": "http://u:p@10.1.1.1:8332/"}),
    )
    .await
    .expect("daemon_url");
    let url = url.as_str().expect("text");
    assert!(url.starts_with("now using daemon at http://"), "{url}");
    assert!(!url.contains(":p@"), "credentials must be hidden: {url}");
    assert_eq!(api.state().daemon_url, "http://u:p@10.1.1.1:8332/");
    rpc(&server, "daemon_url", json!({"daemon_url": ""}))
        .await
        .expect("restore");
    assert_eq!(api.state().daemon_url, "http://user:secret@127.0.0.1:8332/");

    assert_eq!(
        rpc(&server, "reorg", json!({"count": 4}))
            .await
            .expect("reorg"),
        "scheduled a reorg of 4 blocks"
    );
    rpc(&server, "reorg", json!({}))
        .await
        .expect("default reorg");
    assert_eq!(api.state().reorgs, [4, 3]);
    api.state().catching_up = true;
    let e = rpc_error(rpc(&server, "reorg", json!([2])).await);
    assert_eq!(e.message, "still catching up with daemon");
    let e = rpc_error(rpc(&server, "reorg", json!([0])).await);
    assert_eq!(e.code, BAD_REQUEST);

    let lines = rpc(
        &server,
        "disconnect",
        json!({"session_ids": ["2", "10.0.0.0/24", "77"]}),
    )
    .await
    .expect("disconnect");
    assert_eq!(
        lines,
        json!([
            "disconnecting session 2",
            "disconnecting group 10.0.0.0/24",
            "unknown: 77"
        ])
    );
    assert!(api.state().sessions.is_empty());

    assert_eq!(
        rpc(&server, "stop", json!({})).await.expect("stop"),
        "stopping"
    );
    assert!(api.state().stopped);
    server.stop().await;
}

#[tokio::test]
async fn session_logging_toggles_sessions_and_groups() {
    let api = FakeApi::with_sessions();
    let server = start(api.clone(), None).await;
    let lines = rpc(
        &server,
        "log",
        json!({"session_ids": ["1", "192.168.1.0/24", "x"]}),
    )
    .await
    .expect("log");
    assert_eq!(
        lines,
        json!(["unknown: x", "logging session 1", "logging session 2"])
    );
    let lines = rpc(&server, "log", json!([["1", "new"]]))
        .await
        .expect("log");
    assert_eq!(
        lines,
        json!(["logging new sessions: on", "not logging session 1"])
    );
    let lines = rpc(&server, "log", json!([["none"]])).await.expect("log");
    assert_eq!(lines, json!(["logging no sessions"]));
    assert!(api.state().sessions.iter().all(|s| !s.logged));
    // Without a log handle, a filter change is refused rather than silently ignored.
    let e = rpc_error(rpc(&server, "log", json!({"level": "debug"})).await);
    assert_eq!(e.code, BAD_REQUEST);
    server.stop().await;
}

#[tokio::test]
async fn query_reports_history_utxos_and_balance() {
    let server = start(FakeApi::with_sessions(), None).await;
    let lines = rpc(
        &server,
        "query",
        json!({"items": [GENESIS_ADDRESS, "zz"], "limit": 2}),
    )
    .await
    .expect("query");
    let lines: Vec<&str> = lines
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l.as_str().expect("text"))
        .collect();
    let tx1 = crate::daemon::hash_to_hex(&txid(1));
    let tx3 = crate::daemon::hash_to_hex(&txid(3));
    assert_eq!(lines[0], format!("Address: {GENESIS_ADDRESS}"));
    assert!(lines[1].starts_with("Script hash: "));
    assert_eq!(lines[2], format!("History #0: height 1 tx_hash {tx1}"));
    assert!(lines[3].starts_with("History #1: height 2 "));
    assert_eq!(lines[4], "… 2 more history entries");
    assert_eq!(
        lines[5],
        format!("UTXO #0: tx_hash {tx3} tx_pos 1 height 3 value 1.50000000")
    );
    assert_eq!(
        lines[6],
        "Balance: 1.50000000 BTC confirmed, -0.00005000 BTC unconfirmed"
    );
    assert!(
        lines[7].starts_with("Error: \"zz\" is neither"),
        "{}",
        lines[7]
    );
    assert_eq!(lines.len(), 8);

    // The same script by script hash and as hex gives the same answer after the header.
    let by_hash = lines[1].trim_start_matches("Script hash: ").to_string();
    let again = rpc(&server, "query", json!([[by_hash, GENESIS_SCRIPT], 10]))
        .await
        .expect("query");
    let again = again.as_array().expect("lines");
    assert!(again[0]
        .as_str()
        .expect("text")
        .starts_with("Script hash: "));
    assert_eq!(again[1], format!("History #0: height 1 tx_hash {tx1}"));
    assert_eq!(again[7], format!("Script: {GENESIS_SCRIPT}"));
    server.stop().await;
}

#[tokio::test]
async fn wire_errors_follow_json_rpc() {
    let server = start(FakeApi::with_sessions(), None).await;
    let answers = raw(
        &server,
        &[
            "{not json",
            r#"{"jsonrpc":"2.0","id":1,"method":"frobnicate"}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"getinfo","params":{"verbose":true}}"#,
            r#"{"jsonrpc":"2.0","method":"reorg","params":[1]}"#,
            r#"[{"jsonrpc":"2.0","id":"a","method":"stop"},{"jsonrpc":"2.0","id":"b","method":"reorg","params":["many"]}]"#,
        ],
        4,
    )
    .await;
    assert_eq!(answers[0]["error"]["code"], PARSE_ERROR);
    assert_eq!(answers[1]["id"], 1);
    assert_eq!(answers[1]["error"]["code"], METHOD_NOT_FOUND);
    assert_eq!(
        answers[1]["error"]["message"],
        "unknown method \"frobnicate\""
    );
    assert_eq!(answers[2]["error"]["code"], INVALID_PARAMS);
    // The notification (no id) got no answer; the batch is answered in one line, in order.
    let batch = answers[3].as_array().expect("batch answer");
    assert_eq!(batch[0]["id"], "a");
    assert_eq!(batch[0]["result"], "stopping");
    assert_eq!(batch[1]["error"]["code"], BAD_REQUEST);
    server.stop().await;
}

#[test]
fn log_level_change_over_the_wire_takes_effect() {
    let out = Captured::default();
    let (subscriber, control) = reloadable_subscriber("warn", out.clone()).expect("filter");
    // A current-thread runtime keeps the server on this thread, under this subscriber.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let server = start(FakeApi::with_sessions(), Some(control.clone())).await;
            tracing::info!("before-the-change");
            let answer = rpc(&server, "log", json!({"level": "info"}))
                .await
                .expect("log level");
            assert_eq!(answer, json!(["log filter now \"info\" (was \"warn\")"]));
            tracing::info!("after-the-change");
            let current = rpc(&server, "log", json!({})).await.expect("current");
            assert_eq!(current, json!(["log filter is \"info\""]));
            let e = rpc_error(rpc(&server, "log", json!({"level": "=x=y"})).await);
            assert!(e.message.contains("invalid log filter"), "{e}");
            server.stop().await;
        });
    });
    let text = out.text();
    assert!(!text.contains("before-the-change"), "{text}");
    assert!(text.contains("after-the-change"), "{text}");
}

#[tokio::test]
async fn nothing_listening_gives_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    match call(&addr, "getinfo", json!({})).await {
        Err(e @ ClientError::Connect { .. }) => {
            assert!(e.to_string().contains("Is anode running?"), "{e}")
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_overlong_request_is_refused_and_the_connection_closed() {
    let server = start(FakeApi::with_sessions(), None).await;
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    let (read, mut write) = stream.into_split();
    // One byte over the limit and no newline; exactly that much, so that the server has read
    // everything when it closes (unread bytes would turn its close into a reset).
    let junk = vec![b'x'; (1 << 20) + 1];
    write.write_all(&junk).await.expect("write");
    let mut reader = BufReader::new(read).lines();
    let line = reader.next_line().await.expect("read").expect("an answer");
    let answer: Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(answer["error"]["code"], super::commands::INVALID_REQUEST);
    assert_eq!(reader.next_line().await.expect("read"), None, "closed");
    server.stop().await;
}

#[tokio::test]
async fn the_configured_rpc_service_starts_the_listener() {
    use crate::config::{Config, RawConfig};
    let config = |services: &str| {
        Config::from_raw(&RawConfig::defaults().with_flags([("services", services.to_string())]))
            .expect("valid config")
    };
    let admin = || {
        let coin = anode_coins::lookup("Bitcoin", "mainnet").expect("bitcoin");
        Arc::new(Admin::new(
            FakeApi::with_sessions(),
            Arc::new(FakeChain::default()),
            coin,
        ))
    };
    let off = spawn_configured(&config("tcp://127.0.0.1:0"), admin())
        .await
        .expect("no bind");
    assert!(off.is_none());
    let on = spawn_configured(&config("tcp://127.0.0.1:0,rpc://127.0.0.1:0"), admin())
        .await
        .expect("bind")
        .expect("an rpc service is configured");
    assert!(on.addr.ip().is_loopback());
    let info = rpc(&on, "getinfo", json!([])).await.expect("getinfo");
    assert_eq!(info["coin"], "Bitcoin");
    on.stop().await;
}
