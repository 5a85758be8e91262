//! Load: 2,000 concurrent sessions holding 100,000 script subscriptions on the running stack
//! (real index over the simulator). A block that touches none of them costs nothing visible;
//! every session still gets its header notification; the server's memory stays bounded.
//! Speed is not asserted here (see docs/performance.md); the figures are printed.

#![allow(clippy::print_stderr)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::index::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const SESSIONS: usize = 2000;
const SUBS_PER_SESSION: usize = 50;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_sessions_with_a_hundred_thousand_subscriptions() {
    let sim = simulator(21, 30);
    let (stack, addr, _dir) = start_stack(
        &sim,
        &[
            ("max_sessions", "2500"),
            ("poll_interval_mempool_ms", "200"),
        ],
    )
    .await;
    let rss_before = rss_bytes();
    let started = Instant::now();

    let mut tasks = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(SESSIONS);
    let (header_tx, mut header_rx) = tokio::sync::mpsc::channel::<u64>(SESSIONS);
    for session in 0..SESSIONS {
        let (ready_tx, header_tx) = (ready_tx.clone(), header_tx.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            let mut batch = vec![
                json!({"jsonrpc":"2.0","id":0,"method":"server.version","params":["load","1.4"]}),
                json!({"jsonrpc":"2.0","id":1,"method":"blockchain.headers.subscribe","params":[]}),
            ];
            for i in 0..SUBS_PER_SESSION {
                // Script hashes nobody pays: subscriptions a block must not wake.
                let mut hash = [0u8; 32];
                // Display order: the index key (hashX) is the reversed tail, so vary the tail.
                hash[16..24].copy_from_slice(&(session as u64).to_be_bytes());
                hash[24..].copy_from_slice(&(i as u64).to_be_bytes());
                hash[0] = 0xa5;
                batch.push(json!({"jsonrpc":"2.0","id":2 + i,
                    "method":"blockchain.scripthash.subscribe","params":[hex::encode(hash)]}));
            }
            // server.version must come alone, first.
            w.write_all(format!("{}\n", batch[0]).as_bytes())
                .await
                .expect("write");
            let first = lines.next_line().await.expect("read").expect("open");
            assert!(first.contains("\"result\""), "{first}");
            w.write_all(format!("{}\n", Value::Array(batch[1..].to_vec())).as_bytes())
                .await
                .expect("write");
            let answer = lines.next_line().await.expect("read").expect("open");
            let answer: Value = serde_json::from_str(&answer).expect("json");
            assert_eq!(
                answer.as_array().map(Vec::len),
                Some(SUBS_PER_SESSION + 1),
                "{answer}"
            );
            ready_tx.send(()).await.expect("ready");
            while let Ok(Some(line)) = lines.next_line().await {
                let message: Value = serde_json::from_str(&line).expect("json");
                if message["method"] == "blockchain.headers.subscribe" {
                    let height = message["params"][0]["height"].as_u64().unwrap_or(0);
                    let _ = header_tx.send(height).await;
                    break;
                }
            }
            // Keep the connection open until the test ends.
            let _ = lines.next_line().await;
            drop(w);
        }));
    }
    for _ in 0..SESSIONS {
        tokio::time::timeout(Duration::from_secs(240), ready_rx.recv())
            .await
            .expect("every session subscribed in time")
            .expect("ready");
    }
    let subscribed = started.elapsed();
    let subs: usize = stack
        .server
        .lock()
        .as_ref()
        .map(|s| s.sessions().iter().map(|s| s.script_subs).sum())
        .unwrap_or(0);
    assert_eq!(subs, SESSIONS * SUBS_PER_SESSION);

    let mined = Instant::now();
    sim.with_chain_mut(|c| c.mine(1, true)).expect("mine");
    for _ in 0..SESSIONS {
        let height = tokio::time::timeout(Duration::from_secs(120), header_rx.recv())
            .await
            .expect("every session notified in time")
            .expect("height");
        assert_eq!(height, 31);
    }
    let notified = mined.elapsed();
    let rss_after = rss_bytes();
    eprintln!(
        "{SESSIONS} sessions, {subs} subscriptions: subscribed in {:.1} s; header notification \
         to all in {:.2} s after mining; RSS {} MB -> {} MB (test process, clients included)",
        subscribed.as_secs_f64(),
        notified.as_secs_f64(),
        rss_before >> 20,
        rss_after >> 20
    );
    assert!(
        rss_after.saturating_sub(rss_before) < 1 << 30,
        "100k subscriptions must not cost gigabytes"
    );
    stack.shutdown().await;
    for task in tasks {
        task.abort();
    }
}
