//! `sync-bench` end to end on small chains: fetch+parse alone, the compute-only ceiling and a
//! sync per engine compiled in, over the simulator and over a node URL with credentials, as an
//! operator points it at their own node. No timing is checked; the counts must agree.

use std::process::Command;

use serde_json::Value;

fn sync_bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_sync-bench"))
        .args(args)
        .output()
        .expect("run sync-bench");
    assert!(
        out.status.success(),
        "sync-bench {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in {stdout:?}"));
    serde_json::from_str(line).expect("JSON line")
}

#[test]
fn every_mode_counts_the_same_transactions_over_the_simulator() {
    let fetched = sync_bench(&["--txs", "3000", "--http", "--fetch-only"]);
    assert_eq!(fetched["mode"], "fetch+parse");
    let txs = fetched["txs"].as_u64().expect("txs");
    assert!(txs >= 3000, "{fetched}");
    for engine in anode::store_factory::available_engines() {
        let synced = sync_bench(&["--txs", "3000", "--http", "--engine", engine]);
        assert_eq!(synced["mode"], "sync");
        assert_eq!(synced["txs"].as_u64(), Some(txs), "{engine}: {synced}");
        assert_eq!(synced["blocks"], fetched["blocks"], "{engine}");
        assert!(synced["flushes"].as_u64() >= Some(1), "{engine}: {synced}");
    }
    if let Some(engine) = anode::store_factory::available_engines().first() {
        let ceiling = sync_bench(&["--txs", "3000", "--compute-only", "--engine", engine]);
        assert_eq!(ceiling["mode"], "compute-only");
        assert_eq!(ceiling["txs"].as_u64(), Some(txs));
        // One flush, at the end, and it is left out of the time.
        assert_eq!(ceiling["flushes"].as_u64(), Some(1), "{ceiling}");
        let seconds = ceiling["seconds"].as_f64().expect("seconds");
        let flush = ceiling["flush_seconds"].as_f64().expect("flush seconds");
        assert!(seconds > 0.0 && flush > 0.0, "{ceiling}");
    }
}

#[test]
fn a_node_url_with_credentials_is_measured_from_genesis() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let coin = anode_coins::lookup("Bitcoin", "regtest").expect("regtest");
    let profile = anode::simulator::Profile::by_name("mainnet-like").expect("profile");
    let mut chain = anode::simulator::SimChain::new(coin, profile, 7).expect("chain");
    chain.mine(12, true).expect("mine");
    let height = chain.height();
    let expected_txs: u64 = (1..=height)
        .map(|h| chain.block(h).map_or(0, |b| b.txids.len() as u64))
        .sum();
    let node = runtime
        .block_on(anode::simulator::serve(
            anode::simulator::Simulator::new(chain),
            "127.0.0.1:0".parse().expect("addr"),
            anode::simulator::Auth {
                user_pass: Some("bench:secret".into()),
            },
        ))
        .expect("simulator");
    let url = format!("http://bench:secret@{}/", node.addr);
    let node_args = ["--daemon", &url, "--coin", "Bitcoin", "--net", "regtest"];
    let fetched = sync_bench(&[&node_args[..], &["--fetch-only"]].concat());
    assert_eq!(fetched["txs"].as_u64(), Some(expected_txs), "{fetched}");
    assert_eq!(fetched["blocks"].as_u64(), Some(u64::from(height) + 1));
    assert_eq!(fetched["profile"], "node: Bitcoin regtest");
    for engine in anode::store_factory::available_engines() {
        let synced = sync_bench(&[&node_args[..], &["--engine", engine]].concat());
        assert_eq!(
            synced["txs"].as_u64(),
            Some(expected_txs),
            "{engine}: {synced}"
        );
    }
    // Wrong credentials: a readable failure, not a hang or a panic.
    let bad = format!("http://bench:wrong@{}/", node.addr);
    let out = Command::new(env!("CARGO_BIN_EXE_sync-bench"))
        .args(["--daemon", &bad, "--fetch-only"])
        .output()
        .expect("run sync-bench");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // No node there: it gives up after its patience, saying where it looked.
    drop(node);
    let out = Command::new(env!("CARGO_BIN_EXE_sync-bench"))
        .args(["--daemon", &url, "--patience", "1", "--fetch-only"])
        .output()
        .expect("run sync-bench");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("asking the node at"), "{stderr}");
    assert!(
        !stderr.contains("secret"),
        "the password is printed: {stderr}"
    );
}
