//! Shared harness of the server tests: a simulated chain, the reference query over it, a server
//! on 127.0.0.1:0 and a raw newline-delimited JSON client.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anode::config::{Service, ServiceKind};
use anode::peers::{our_features, PeerManager, PeerSettings, QueryChain};
use anode::query::reference::ReferenceQuery;
use anode::server::{Server, ServerConfig, ServerHandle, ServerParts};
use anode::simulator::{Profile, SimChain, SimDaemon, Simulator};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub fn service(kind: ServiceKind, host: &str) -> Service {
    Service {
        kind,
        host: host.into(),
        port: 0,
    }
}

/// A config listening on TCP at 127.0.0.1:0, without cover traffic (tests want exact
/// notification sequences).
pub fn test_config() -> ServerConfig {
    ServerConfig {
        services: vec![service(ServiceKind::Tcp, "127.0.0.1")],
        cover_traffic: false,
        ..ServerConfig::default()
    }
}

pub struct Harness {
    pub sim: Simulator,
    pub query: Arc<ReferenceQuery>,
    pub handle: ServerHandle,
    pub coin: Arc<dyn anode_coins::Coin>,
    pub peers: Arc<PeerManager>,
}

pub fn chain(blocks: u32, seed: u64) -> Simulator {
    let coin = anode_coins::lookup("Bitcoin", "regtest").expect("coin");
    let mut chain = SimChain::new(coin, Profile::tiny(), seed).expect("chain");
    chain.mine(blocks, true).expect("mine");
    Simulator::new(chain)
}

pub async fn start_with(sim: Simulator, config: ServerConfig) -> Harness {
    start_with_peers(sim, config, Vec::new()).await
}

/// Peer discovery as ElectrumX runs it, on a regtest chain whose peers all live on loopback:
/// private addresses are served, and checks time out quickly.
pub fn test_peers(
    coin: &Arc<dyn anode_coins::Coin>,
    query: Arc<dyn anode::query::ChainQuery>,
    report_services: &[Service],
    configured_peers: Vec<String>,
) -> Arc<PeerManager> {
    let params = coin.params();
    let genesis = anode_coins::hash_to_hex(&params.genesis_hash);
    let mut settings = PeerSettings::electrumx_defaults(
        genesis.clone(),
        (params.electrum_ports.tcp, params.electrum_ports.ssl),
        our_features(report_services, &genesis),
    );
    settings.configured_peers = configured_peers;
    settings.allow_private = true;
    settings.announce = false;
    settings.timeout = Duration::from_secs(5);
    PeerManager::new(settings, Arc::new(QueryChain(query))).expect("peer settings")
}

/// A server that knows `configured_peers` (ElectrumX real names) from its configuration.
pub async fn start_with_peers(
    sim: Simulator,
    config: ServerConfig,
    configured_peers: Vec<String>,
) -> Harness {
    let coin = sim.with_chain(|c| Arc::clone(c.coin()));
    let query = Arc::new(ReferenceQuery::new(sim.clone()));
    let daemon = Arc::new(SimDaemon::new(sim.clone()));
    let peers = test_peers(
        &coin,
        query.clone(),
        &config.report_services,
        configured_peers,
    );
    let handle = Server::start(
        Arc::new(config),
        ServerParts {
            query: query.clone(),
            daemon,
            coin: Arc::clone(&coin),
            peers: Arc::clone(&peers),
            metrics: None,
        },
    )
    .await
    .expect("server starts");
    Harness {
        sim,
        query,
        handle,
        coin,
        peers,
    }
}

pub async fn start(blocks: u32) -> Harness {
    start_with(chain(blocks, 7), test_config()).await
}

impl Harness {
    pub fn tcp(&self) -> SocketAddr {
        self.handle
            .local_addr(ServiceKind::Tcp)
            .expect("tcp listener")
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.tcp()).await
    }

    /// A client that already negotiated `version`.
    pub async fn client_v(&self, version: &str) -> Client {
        let mut c = self.client().await;
        let r = c.call("server.version", json!(["test", version])).await;
        assert_eq!(r["result"][1], version, "{r}");
        c
    }
}

pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
    next_id: u64,
    pub notifications: VecDeque<Value>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (r, w) = stream.into_split();
        Client {
            reader: BufReader::new(r),
            writer: w,
            next_id: 1,
            notifications: VecDeque::new(),
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    pub async fn send(&mut self, text: &str) {
        self.send_raw(format!("{text}\n").as_bytes()).await;
    }

    /// The next line as JSON; panics on timeout or close.
    pub async fn recv(&mut self) -> Value {
        self.try_recv(TIMEOUT).await.expect("a message")
    }

    /// The next line, `None` on close or after `wait`.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        let mut line = String::new();
        match tokio::time::timeout(wait, self.reader.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => {
                Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
            }
            _ => None,
        }
    }

    /// The next line as raw text (for byte-exact checks).
    pub async fn recv_line(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(TIMEOUT, self.reader.read_line(&mut line))
            .await
            .expect("in time")
            .expect("read");
        line
    }

    /// Whether the server closed the connection (within `wait`), skipping messages.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let mut line = String::new();
            match tokio::time::timeout_at(deadline, self.reader.read_line(&mut line)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Sends a request and returns its whole response object; notifications that arrive
    /// first are kept in `notifications`.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send(&msg.to_string()).await;
        loop {
            let v = self.recv().await;
            if v.get("id") == Some(&json!(id)) {
                return v;
            }
            self.notifications.push_back(v);
        }
    }

    /// The result of a call that must succeed.
    pub async fn result(&mut self, method: &str, params: Value) -> Value {
        let r = self.call(method, params).await;
        assert!(r.get("error").is_none(), "{method}: {r}");
        r["result"].clone()
    }

    /// The error of a call that must fail: (code, message).
    pub async fn error(&mut self, method: &str, params: Value) -> (i64, String) {
        let r = self.call(method, params).await;
        let e = &r["error"];
        assert!(e.is_object(), "{method} should fail: {r}");
        (
            e["code"].as_i64().expect("code"),
            e["message"].as_str().expect("message").to_string(),
        )
    }

    /// The next notification (queued or arriving within the timeout).
    pub async fn notification(&mut self) -> Value {
        if let Some(n) = self.notifications.pop_front() {
            return n;
        }
        let v = self.recv().await;
        assert!(v.get("method").is_some(), "expected a notification: {v}");
        v
    }

    /// No notification arrives within `wait`.
    pub async fn assert_quiet(&mut self, wait: Duration) {
        assert!(self.notifications.is_empty(), "{:?}", self.notifications);
        if let Some(v) = self.try_recv(wait).await {
            panic!("unexpected message {v}");
        }
    }
}

/// Display-order hex of an internal hash.
pub fn hx(hash: &[u8; 32]) -> String {
    anode::daemon::hash_to_hex(hash)
}

/// The Electrum script hash (display hex) of a script.
pub fn scripthash_of(script: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut d: [u8; 32] = Sha256::digest(script).into();
    d.reverse();
    hex::encode(d)
}
