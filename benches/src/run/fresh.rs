//! Fresh connections with the server's default settings, on every transport: what a wallet
//! waits for when it connects. The second request is the one padding can hold back (PAD_TCP
//! is on by default): ElectrumX writes the first kilobyte a connection says at once, so a
//! wallet's `server.version` and the request after it are answered without the padding
//! timer's one-second wait.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anode::config::{Config, RawConfig};
use anode::daemon::DaemonApi;
use anode_conformance::client::{Client, Transport};
use anyhow::Context;
use serde_json::json;

use super::results::{FreshConnectionRow, Latency};

/// Options the benchmark's servers run with, put back to the defaults: padding, cost limits
/// and concurrency are exactly what an operator who changed nothing gets.
const DEFAULTED: &[&str] = &[
    "pad_tcp",
    "cost_soft_limit",
    "cost_hard_limit",
    "initial_concurrent",
    "bandwidth_unit_cost",
    "max_sessions",
    "session_timeout",
    "request_timeout",
];

/// Connections measured per transport.
pub const CONNECTIONS: usize = 200;

/// Connects `count` times over each of `addrs`, one connection at a time: `server.version`,
/// then `blockchain.headers.subscribe` (what Electrum sends next), each timed from its write
/// to its answer.
pub async fn measure(
    addrs: &[(Transport, SocketAddr)],
    host: &str,
    count: usize,
) -> anyhow::Result<Vec<FreshConnectionRow>> {
    let mut rows = Vec::new();
    for (transport, addr) in addrs {
        let mut connect = Vec::with_capacity(count);
        let mut first = Vec::with_capacity(count);
        let mut second = Vec::with_capacity(count);
        let mut errors = 0u64;
        for _ in 0..count {
            let started = Instant::now();
            let mut client = Client::connect(*transport, *addr, host)
                .await
                .with_context(|| format!("connecting over {transport}"))?;
            connect.push(started.elapsed().as_micros() as u64);
            let sent = Instant::now();
            let version = client
                .call("server.version", json!(["anode-bench", "1.4"]))
                .await?;
            first.push(sent.elapsed().as_micros() as u64);
            let sent = Instant::now();
            let tip = client
                .call("blockchain.headers.subscribe", json!([]))
                .await?;
            second.push(sent.elapsed().as_micros() as u64);
            if version.get("result").is_none() || tip.get("result").is_none() {
                errors += 1;
            }
        }
        rows.push(FreshConnectionRow {
            transport: transport.to_string(),
            connect: Latency::of(connect),
            first_request: Latency::of(first),
            second_request: Latency::of(second),
            errors,
        });
    }
    Ok(rows)
}

/// anode serving with its default settings, on TCP, TLS, WebSocket and secure WebSocket.
pub struct DefaultsServer {
    /// the running stack
    pub stack: Arc<anode::app::Stack>,
    /// its listeners
    pub addrs: Vec<(Transport, SocketAddr)>,
    _cert: anode_conformance::matrix::TestCert,
}

/// Starts anode with its default settings over the already synced index in `db_dir`, with a
/// certificate made for the run.
pub async fn start_anode_defaults(
    engine: &str,
    coin: Arc<dyn anode_coins::Coin>,
    daemon: Arc<dyn DaemonApi>,
    db_dir: std::path::PathBuf,
) -> anyhow::Result<DefaultsServer> {
    let cert = anode_conformance::matrix::TestCert::generate()?;
    let defaults = RawConfig::defaults();
    let mut flags: Vec<(&str, String)> = super::engine::BENCH_CONFIG
        .iter()
        .filter(|(k, _)| !DEFAULTED.contains(k))
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    for key in DEFAULTED {
        if let Some((value, _)) = defaults.get(key) {
            flags.push((key, value.to_string()));
        }
    }
    flags.extend([
        ("db_engine", engine.to_string()),
        (
            "services",
            "tcp://127.0.0.1:0,ssl://127.0.0.1:0,ws://127.0.0.1:0,wss://127.0.0.1:0".to_string(),
        ),
        ("ssl_certfile", cert.cert.display().to_string()),
        ("ssl_keyfile", cert.key.display().to_string()),
        ("log_level", "warn".to_string()),
    ]);
    let raw = RawConfig::defaults().with_flags(flags);
    let config = Config::from_raw(&raw).context("default configuration")?;
    // The previous stack's last tasks may hold the database (RocksDB's LOCK, an engine's
    // open handle) for a moment after its shutdown returned: try again for up to 20 s.
    let mut attempts = 0;
    let stack = loop {
        let started = anode::app::Stack::start(anode::app::StackOptions {
            config: config.clone(),
            coin: Arc::clone(&coin),
            daemon: Arc::clone(&daemon),
            db_dir: db_dir.clone(),
            log: None,
            progress_bar: false,
        })
        .await;
        match started {
            Ok(stack) => break stack,
            Err(_) if attempts < 80 => {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e).context("starting anode with default settings"),
        }
    };
    let addrs = anode_conformance::matrix::client_listeners(&stack);
    Ok(DefaultsServer {
        stack,
        addrs,
        _cert: cert,
    })
}
