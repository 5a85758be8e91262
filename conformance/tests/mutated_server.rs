//! The suite must fail when the server misbehaves. A TCP proxy between the suite and a real
//! anode rewrites chosen answers or drops notifications; each mutation must make the suite
//! report failures of the mutated method, and the unmodified proxy must report none.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anode_conformance::client::Transport;
use anode_conformance::matrix::{Cell, MatrixOptions, TestCert};
use anode_conformance::node::Node;
use anode_conformance::report::CheckResult;
use anode_conformance::scenario::SimDriver;
use anode_conformance::suite::{self, SuiteOptions, Target};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Rewrites one server → client message given the method of the request it answers (`None`
/// for notifications); returns `None` to drop it.
type Mutation = fn(Option<&str>, Value) -> Option<Value>;

/// Starts a proxy to `upstream` applying `mutation`; returns its address.
async fn proxy(upstream: SocketAddr, mutation: Mutation) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let methods: Arc<Mutex<HashMap<String, String>>> = Arc::default();
            let (client_read, mut client_write) = client.into_split();
            let (server_read, mut server_write) = server.into_split();
            // client → server: unchanged, remembering which method each id asked for
            let seen = Arc::clone(&methods);
            tokio::spawn(async move {
                let mut lines = BufReader::new(client_read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        let items = match v {
                            Value::Array(a) => a,
                            one => vec![one],
                        };
                        let mut map = seen.lock().expect("lock");
                        for item in items {
                            if let (Some(id), Some(m)) = (item.get("id"), item["method"].as_str()) {
                                map.insert(id.to_string(), m.to_string());
                            }
                        }
                    }
                    if server_write
                        .write_all(format!("{line}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
            // server → client: through the mutation
            tokio::spawn(async move {
                let mut lines = BufReader::new(server_read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let out = match serde_json::from_str::<Value>(&line) {
                        Ok(Value::Array(items)) => {
                            let map = methods.lock().expect("lock").clone();
                            let items: Vec<Value> = items
                                .into_iter()
                                .filter_map(|i| {
                                    let m = map.get(&i["id"].to_string()).cloned();
                                    mutation(m.as_deref(), i)
                                })
                                .collect();
                            Some(Value::Array(items).to_string())
                        }
                        Ok(v) => {
                            let m = methods
                                .lock()
                                .expect("lock")
                                .get(&v["id"].to_string())
                                .cloned();
                            let m = if v.get("method").is_some() { None } else { m };
                            mutation(m.as_deref(), v).map(|v| v.to_string())
                        }
                        Err(_) => Some(line),
                    };
                    if let Some(out) = out {
                        if client_write
                            .write_all(format!("{out}\n").as_bytes())
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            });
        }
    });
    addr
}

fn identity(_: Option<&str>, v: Value) -> Option<Value> {
    Some(v)
}

/// Status hashes computed over the mempool part in the wrong order: the subscribe answer and
/// notifications carry another (well-formed) hash whenever the history has two mempool txs.
fn wrong_status(method: Option<&str>, mut v: Value) -> Option<Value> {
    let is_status = matches!(
        method,
        Some("blockchain.scripthash.subscribe") | Some("blockchain.scriptpubkey.subscribe")
    );
    if is_status {
        if let Some(s) = v["result"].as_str() {
            // reversing the hex is what a different concatenation order looks like: a
            // different 64-hex digest
            v["result"] = Value::String(s.chars().rev().collect());
        }
    }
    Some(v)
}

/// Merkle branches with their first two elements swapped.
fn wrong_merkle(method: Option<&str>, mut v: Value) -> Option<Value> {
    if method == Some("blockchain.transaction.get_merkle") {
        if let Some(branch) = v["result"]["merkle"].as_array_mut() {
            if branch.len() >= 2 {
                branch.swap(0, 1);
            } else if let Some(first) = branch.first_mut() {
                *first = Value::String("00".repeat(32));
            }
        }
    }
    Some(v)
}

/// Script-status notifications never arrive.
fn drop_script_notifications(_: Option<&str>, v: Value) -> Option<Value> {
    match v["method"].as_str() {
        Some("blockchain.scripthash.subscribe") | Some("blockchain.scriptpubkey.subscribe") => None,
        _ => Some(v),
    }
}

async fn run_through(mutation: Mutation, cert: &TestCert) -> Vec<CheckResult> {
    let options = MatrixOptions::default();
    let backend = options
        .backends
        .first()
        .cloned()
        .expect("an engine compiled in");
    let cell = Cell::start(&backend, "Bitcoin", "regtest", &options, cert)
        .await
        .expect("anode starts");
    let upstream = cell
        .target
        .addrs
        .iter()
        .find(|(t, _)| *t == Transport::Tcp)
        .map(|(_, a)| *a)
        .expect("tcp listener");
    let target = Target {
        addrs: vec![(Transport::Tcp, proxy(upstream, mutation).await)],
        host: "localhost".into(),
    };
    let suite_options = SuiteOptions {
        versions: vec!["1.4.2", "1.7"],
        notify_timeout: Duration::from_secs(2),
        scenario: true,
    };
    let mut driver = SimDriver {
        sim: cell.sim.clone(),
        reorg_limit: options.reorg_limit,
    };
    let report = suite::run(
        &target,
        &Node::InProcess(cell.sim.clone()),
        cell.coin.clone(),
        Some(&mut driver),
        &suite_options,
    )
    .await
    .expect("the suite runs");
    cell.stop().await;
    report.results
}

fn failures<'a>(results: &'a [CheckResult], method: &str) -> Vec<&'a CheckResult> {
    results
        .iter()
        .filter(|r| !r.passed() && r.method.starts_with(method))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_a_mutated_server() {
    let cert = TestCert::generate().expect("certificate");

    let clean = run_through(identity, &cert).await;
    let bad: Vec<String> = clean
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.describe())
        .collect();
    assert!(bad.is_empty(), "the transparent proxy must pass: {bad:#?}");
    assert!(clean.len() > 500, "only {} checks ran", clean.len());

    let results = run_through(wrong_status, &cert).await;
    let hit = failures(&results, "blockchain.scripthash.subscribe").len()
        + failures(&results, "blockchain.scriptpubkey.subscribe").len();
    assert!(hit > 0, "a wrong status hash went unnoticed");

    let results = run_through(wrong_merkle, &cert).await;
    assert!(
        !failures(&results, "blockchain.transaction.get_merkle").is_empty(),
        "a wrong merkle branch went unnoticed"
    );

    let results = run_through(drop_script_notifications, &cert).await;
    let dropped: Vec<&CheckResult> = results
        .iter()
        .filter(|r| !r.passed() && r.method.ends_with("subscribe (notification)"))
        .collect();
    assert!(!dropped.is_empty(), "dropped notifications went unnoticed");
    assert!(
        dropped.iter().all(|r| r
            .failure
            .as_ref()
            .is_some_and(|f| f.got == "no notification")),
        "{dropped:#?}"
    );
}
