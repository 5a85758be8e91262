//! A connection flood from one subnet, seen through ElectrumX's cost groups. Sessions from
//! loopback and private addresses are not grouped (as ElectrumX), so a flood over 127.0.0.1
//! cannot show grouping: these tests hand in-memory streams to the same line transport and
//! session code the TCP listener uses, with the public source address a real flood would
//! have. Only the accept layer is skipped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};

use super::{transport, Server, ServerConfig, ServerHandle, ServerParts};
use crate::config::ServiceKind;
use crate::peers::{PeerManager, PeerSettings, QueryChain};
use crate::query::reference::ReferenceQuery;
use crate::simulator::{Profile, SimChain, SimDaemon, Simulator};

const WAIT: Duration = Duration::from_secs(10);

async fn server(config: ServerConfig) -> ServerHandle {
    let coin = anode_coins::lookup("Bitcoin", "regtest").expect("coin");
    let mut chain = SimChain::new(Arc::clone(&coin), Profile::tiny(), 3).expect("chain");
    chain.mine(3, true).expect("mine");
    let sim = Simulator::new(chain);
    let query: Arc<dyn crate::query::ChainQuery> = Arc::new(ReferenceQuery::new(sim.clone()));
    let genesis = anode_coins::hash_to_hex(&coin.params().genesis_hash);
    let peers = PeerManager::new(
        PeerSettings::off(genesis),
        Arc::new(QueryChain(Arc::clone(&query))),
    )
    .expect("peer settings");
    Server::start(
        Arc::new(config),
        ServerParts {
            query,
            daemon: Arc::new(SimDaemon::new(sim)),
            coin,
            peers,
            metrics: None,
        },
    )
    .await
    .expect("server starts")
}

struct Client {
    reader: BufReader<ReadHalf<DuplexStream>>,
    writer: WriteHalf<DuplexStream>,
    next_id: u64,
}

impl Client {
    /// A session from `peer`, served as if the listener had accepted it from there.
    fn connect(handle: &ServerHandle, peer: &str) -> Client {
        let peer: SocketAddr = peer.parse().expect("address");
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        tokio::spawn(transport::serve_lines(
            Arc::clone(&handle.shared),
            peer,
            ServiceKind::Tcp,
            theirs,
        ));
        let (read, write) = tokio::io::split(ours);
        Client {
            reader: BufReader::new(read),
            writer: write,
            next_id: 0,
        }
    }

    /// Sends one request and returns its answer; `None` when the server closed instead.
    async fn call(&mut self, method: &str, params: Value) -> Option<Value> {
        self.next_id += 1;
        let mut line =
            json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
                .to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).await.ok()?;
        let mut answer = String::new();
        let read = tokio::time::timeout(WAIT, self.reader.read_line(&mut answer))
            .await
            .expect("an answer or a close in time")
            .ok()?;
        (read > 0).then(|| serde_json::from_str(&answer).expect("JSON answer"))
    }

    async fn closed(&mut self) -> bool {
        let mut rest = String::new();
        matches!(
            tokio::time::timeout(WAIT, self.reader.read_line(&mut rest)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    async fn negotiated(handle: &ServerHandle, peer: &str) -> Client {
        let mut c = Client::connect(handle, peer);
        let answer = c
            .call("server.version", json!(["flood", "1.4"]))
            .await
            .expect("negotiated");
        assert_eq!(answer["result"][1], "1.4", "{answer}");
        c
    }
}

/// Soft and hard limits a dozen fresh connections (5 each) pass together but not alone.
fn flood_config() -> ServerConfig {
    let mut config = ServerConfig {
        cover_traffic: false,
        ..ServerConfig::default()
    };
    config.limits.cost_soft_limit = 20.0;
    config.limits.cost_hard_limit = 40.0;
    config
}

#[tokio::test]
async fn a_flood_from_one_subnet_shares_one_cost_and_is_refused() {
    let handle = server(flood_config()).await;
    let mut flood = Vec::new();
    for host in 1..=12 {
        flood.push(Client::negotiated(&handle, &format!("203.0.113.{host}:40000")).await);
    }
    assert!(handle
        .sessions()
        .iter()
        .all(|s| s.group.as_deref() == Some("203.0.113.0/24")));
    // Twelve connections cost the group 60, past the hard limit of 40: the next request from
    // any of them is refused with -101 and its session closed, as ElectrumX does.
    let last = flood.last_mut().expect("a flood");
    let refused = last
        .call("server.ping", json!([]))
        .await
        .expect("an answer");
    assert_eq!(refused["error"]["code"], -101, "{refused}");
    assert!(last.closed().await, "the refused session stays open");

    // Alone, each of those sessions is far below the soft limit: a session of another subnet,
    // and sessions from private addresses (never grouped), are served as usual.
    let mut other = Client::negotiated(&handle, "198.51.100.7:40000").await;
    let answer = other
        .call("server.ping", json!([]))
        .await
        .expect("an answer");
    assert!(answer["error"].is_null(), "{answer}");
    for host in 1..=12 {
        let mut private = Client::negotiated(&handle, &format!("10.0.0.{host}:40000")).await;
        let answer = private
            .call("server.ping", json!([]))
            .await
            .expect("an answer");
        assert!(answer["error"].is_null(), "{answer}");
    }
}

#[tokio::test]
async fn a_subnet_that_flooded_and_left_is_still_refused() {
    let handle = server(flood_config()).await;
    let mut flood = Vec::new();
    for host in 1..=12 {
        flood.push(Client::negotiated(&handle, &format!("203.0.113.{host}:40000")).await);
    }
    drop(flood);
    let drained = tokio::time::timeout(WAIT, async {
        while !handle.sessions().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(drained.is_ok(), "the flood's sessions did not close");
    // The group keeps the cost its members left with (decaying by hard / 5000 a second):
    // reconnecting from the same subnet does not start afresh.
    let mut again = Client::negotiated(&handle, "203.0.113.200:40000").await;
    let refused = again
        .call("server.ping", json!([]))
        .await
        .expect("an answer");
    assert_eq!(refused["error"]["code"], -101, "{refused}");
}
