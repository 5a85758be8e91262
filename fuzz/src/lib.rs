//! Shared harness of the server's fuzz targets (docs/fuzzing.md): one server over a small
//! simulated chain, sessions served over in-memory streams, and the checks every answer must
//! pass.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anode::config::Limits;
use anode::peers::{PeerManager, PeerSettings, QueryChain};
use anode::query::reference::ReferenceQuery;
use anode::server::{Server, ServerConfig, ServerHandle, ServerParts};
use anode::simulator::{Profile, SimChain, SimDaemon, Simulator};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest request line: small, so inputs reach the oversized-line path.
pub const MAX_RECV: usize = 4096;
/// Largest response: small enough that some real answers (headers, histories) exceed it.
pub const MAX_SEND: usize = 20_000;

/// The server every session of a fuzzing process talks to, and what the chain holds.
pub struct Fixture {
    runtime: tokio::runtime::Runtime,
    handle: ServerHandle,
    /// hex strings a client could know: txids, block hashes, script hashes, scripts, raw txs
    pub known_hex: Vec<String>,
    /// heights of the chain
    pub tip_height: u32,
}

impl Fixture {
    /// The process's fixture, built on first use.
    pub fn get() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(Fixture::build)
    }

    fn build() -> Fixture {
        let coin = anode_coins::lookup("Bitcoin", "regtest").expect("Bitcoin regtest exists");
        let mut chain = SimChain::new(Arc::clone(&coin), Profile::tiny(), 7).expect("chain");
        chain.mine(12, true).expect("mining");
        chain.add_mempool_txs(3).expect("mempool transactions");
        let mut known_hex = Vec::new();
        for (txid, tx) in chain.all_txs() {
            known_hex.push(hex_rev(txid));
            known_hex.push(hex::encode(&tx.raw));
            for out in &tx.outputs {
                let hash = coin.script_hash(&out.script);
                known_hex.push(hex_rev(&hash));
                known_hex.push(hex::encode(hash));
                known_hex.push(hex::encode(&out.script));
            }
        }
        for height in 0..=chain.height() {
            if let Some(hash) = chain.hash_at(height) {
                known_hex.push(hex_rev(&hash));
            }
        }
        known_hex.sort();
        known_hex.dedup();
        let tip_height = chain.height();
        let sim = Simulator::new(chain);
        let config = ServerConfig {
            cover_traffic: false,
            limits: Limits {
                max_recv: MAX_RECV,
                max_send: MAX_SEND,
                // Throttling off: a session's cost must not make one input's answers depend
                // on the inputs run before it.
                cost_soft_limit: 0.0,
                cost_hard_limit: 0.0,
                ..ServerConfig::default().limits
            },
            ..ServerConfig::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        let handle = runtime.block_on(async {
            let query: Arc<dyn anode::query::ChainQuery> =
                Arc::new(ReferenceQuery::new(sim.clone()));
            let genesis = anode_coins::hash_to_hex(&coin.params().genesis_hash);
            let peers = PeerManager::new(
                PeerSettings::off(genesis),
                Arc::new(QueryChain(Arc::clone(&query))),
            )
            .expect("peer settings");
            let parts = ServerParts {
                query,
                daemon: Arc::new(SimDaemon::new(sim.clone())),
                coin,
                peers,
                metrics: None,
            };
            Server::start(Arc::new(config), parts)
                .await
                .expect("server starts")
        });
        Fixture {
            runtime,
            handle,
            known_hex,
            tip_height,
        }
    }

    /// Sends `input` as one client's whole byte stream, closes the sending side, and returns
    /// every byte the server wrote until it closed the session.
    pub fn session(&self, input: &[u8]) -> Vec<u8> {
        // Not private, loopback: the session's cost is its own, shared with no group.
        let peer: SocketAddr = "127.0.0.1:50001".parse().expect("address");
        self.runtime.block_on(async {
            let (client, server) = tokio::io::duplex(64 * 1024);
            let (mut read, mut write) = tokio::io::split(client);
            let talk = async {
                // The server may close first (a refused first message); later writes fail.
                let _ = write.write_all(input).await;
                let _ = write.shutdown().await;
            };
            let listen = async {
                let mut out = Vec::new();
                let _ = read.read_to_end(&mut out).await;
                out
            };
            let serve = anode::fuzzing::serve_lines(&self.handle, server, peer);
            let ((), (), out) = tokio::join!(talk, serve, listen);
            out
        })
    }
}

fn hex_rev(hash: &[u8; 32]) -> String {
    let mut h = *hash;
    h.reverse();
    hex::encode(h)
}

/// The ids of the requests in `input`, split and sized as the server's line reader does, with
/// how many requests carry each (ids as the server echoes them: their JSON text).
pub fn request_ids(input: &[u8]) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    let mut lines: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
    // Bytes after the last newline are a line too: the end of the stream ends it.
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    for line in lines {
        if line.len() > MAX_RECV {
            continue;
        }
        let Ok(value) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let items = match value {
            Value::Array(items) => items,
            single => vec![single],
        };
        for item in items {
            if let Some(id) = item.get("id").filter(|id| !id.is_null()) {
                *ids.entry(id.to_string()).or_default() += 1;
            }
        }
    }
    ids
}

/// A checked answer of the server.
#[derive(Debug)]
pub struct Answer {
    /// the echoed id (JSON text)
    pub id: String,
    /// the error code, when an error
    pub error: Option<i64>,
}

/// Checks the server's output: newline-terminated lines of ASCII JSON, each a message or a
/// non-empty batch of messages; every response well formed. Returns the responses in order.
pub fn parse_output(output: &[u8]) -> Vec<Answer> {
    assert!(
        output.is_empty() || output.ends_with(b"\n"),
        "output does not end with a newline"
    );
    assert!(output.is_ascii(), "output is not ASCII");
    let mut answers = Vec::new();
    for line in output.split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let value: Value = serde_json::from_slice(line).unwrap_or_else(|e| {
            panic!(
                "the server wrote a line that is not JSON ({e}): {}",
                String::from_utf8_lossy(line)
            )
        });
        let items = match value {
            Value::Array(items) => {
                assert!(!items.is_empty(), "an empty batch answer");
                items
            }
            single => vec![single],
        };
        for item in items {
            if let Some(answer) = check_message(&item) {
                answers.push(answer);
            }
        }
    }
    answers
}

/// A response, or `None` for a notification; panics on anything else.
fn check_message(item: &Value) -> Option<Answer> {
    let obj = item
        .as_object()
        .unwrap_or_else(|| panic!("a message that is not an object: {item}"));
    if obj.contains_key("method") {
        assert!(obj["method"].is_string(), "notification method: {item}");
        assert!(
            !obj.contains_key("result") && !obj.contains_key("error"),
            "a notification with a result: {item}"
        );
        return None;
    }
    let id = obj
        .get("id")
        .unwrap_or_else(|| panic!("a response without an id: {item}"));
    assert!(
        matches!(
            id,
            Value::Null | Value::Number(_) | Value::String(_) | Value::Bool(_)
        ),
        "an id that is not a scalar: {item}"
    );
    let error = match obj.get("error") {
        None | Some(Value::Null) => {
            assert!(
                obj.contains_key("result"),
                "neither result nor error: {item}"
            );
            None
        }
        Some(error) => {
            let code = error
                .get("code")
                .and_then(Value::as_i64)
                .unwrap_or_else(|| panic!("an error without an integer code: {item}"));
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("an error without a message: {item}"));
            assert!(!message.is_empty(), "an empty error message: {item}");
            assert!(
                obj.get("result").is_none_or(Value::is_null),
                "both a result and an error: {item}"
            );
            Some(code)
        }
    };
    Some(Answer {
        id: id.to_string(),
        error,
    })
}
