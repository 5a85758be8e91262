//! The daemon client against a real node: the Bitcoin SV regtest node from its PyPI wheel
//! (installed by scripts/install-bsv-node; docs/real-node.md, The Bitcoin SV regtest node of the
//! tests).

// Tests report measured speeds on stderr (shown with --nocapture); they assert nothing on them.
#![allow(clippy::print_stderr)]

mod support;

use std::time::{Duration, Instant};

use anode::daemon::{hash_from_hex, hash_to_hex, DaemonApi, DaemonError, FeeEstimate};
use serde_json::{json, Value};
use support::bsv_node::{self, BsvNode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reads_blocks_mempool_reorgs_and_restarts_of_a_real_node() {
    let Some(binary) = bsv_node::binary() else {
        return;
    };
    let mut node = BsvNode::start(&binary);
    let client = node.client(Duration::from_secs(60));
    let coin = anode_coins::lookup("BitcoinSV", "regtest").expect("BSV regtest is a known network");

    // The node answers -28 while it starts; the client waits it out.
    client
        .preflight(bsv_node::GENESIS, "BitcoinSV", "regtest")
        .await
        .expect("a txindex node of the right network");
    let err = client
        .preflight(&hash_to_hex(&[1; 32]), "Bitcoin", "mainnet")
        .await
        .unwrap_err();
    assert!(matches!(err, DaemonError::WrongNetwork { .. }), "{err}");
    assert!(err.to_string().contains("wrong network"), "{err}");

    client
        .call("generate", json!([110]))
        .await
        .expect("generate");
    assert_eq!(client.block_count().await.unwrap(), 110);
    let info = client.chain_info().await.unwrap();
    assert_eq!(
        (info.chain.as_str(), info.blocks, info.pruned),
        ("regtest", 110, false)
    );

    // Every block, parsed by the coin layer, matches the node's own view of it. The node has
    // REST off, so this also proves the automatic fallback to JSON hex.
    let hashes = client.block_hashes(0..111).await.unwrap();
    assert_eq!(hash_to_hex(&hashes[0]), bsv_node::GENESIS);
    let started = Instant::now();
    let mut bytes = 0;
    for (height, hash) in hashes.iter().enumerate() {
        let raw = client.block(hash).await.unwrap();
        bytes += raw.len();
        let parsed = coin
            .parse_block(&raw, Some(height as u32))
            .expect("a real block parses");
        assert_eq!(parsed.hash, *hash);
        if height % 37 == 0 {
            let verbose = client
                .call("getblock", json!([hash_to_hex(hash), 1]))
                .await
                .unwrap();
            let txids: Vec<String> = parsed.txs.iter().map(|t| hash_to_hex(&t.txid)).collect();
            assert_eq!(json!(txids), verbose["tx"]);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "real node, JSON hex: {} blocks, {bytes} bytes in {secs:.2} s ({:.0} blocks/s)",
        hashes.len(),
        hashes.len() as f64 / secs
    );

    // A wallet payment sits in the mempool, then confirms.
    let address = client.call("getnewaddress", json!([])).await.unwrap();
    let txid_hex = client
        .call("sendtoaddress", json!([address, 1.5]))
        .await
        .unwrap();
    let txid = hash_from_hex(txid_hex.as_str().unwrap()).unwrap();
    assert_eq!(client.mempool_txids().await.unwrap(), vec![txid]);
    assert_eq!(client.mempool_info().await.unwrap().size, 1);
    let raw = client.raw_transactions(&[txid, [9; 32]]).await.unwrap();
    let parsed = coin
        .parse_tx(raw[0].as_ref().expect("the wallet tx"))
        .unwrap();
    assert_eq!(parsed.txid, txid);
    assert_eq!(raw[1], None, "an unknown txid is None");
    client.call("generate", json!([1])).await.unwrap();
    assert!(client.mempool_txids().await.unwrap().is_empty());
    let verbose = client.raw_transaction_verbose(&txid).await.unwrap();
    assert_eq!(verbose["confirmations"], 1);
    // Now that a coinbase is fully spent, the txindex probe has its proof, and passes.
    client
        .preflight(bsv_node::GENESIS, "BitcoinSV", "regtest")
        .await
        .expect("the node keeps a txindex");

    // Broadcasting a confirmed transaction again is the node's error, passed through.
    let err = client
        .send_raw_transaction(&hex::encode(raw[0].as_ref().unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(err, DaemonError::Rpc { .. }), "{err}");

    // No fee estimation on this node: the client reports it so the server uses the default.
    assert_eq!(
        client.estimate_fee(6, None).await.unwrap(),
        FeeEstimate::Unavailable
    );
    let network = client.call("getnetworkinfo", json!([])).await.unwrap();
    assert_eq!(
        Some(client.relay_fee().await.unwrap()),
        network["relayfee"].as_f64()
    );

    // A reorg through invalidateblock, then back.
    let tip = client.chain_info().await.unwrap().bestblockhash;
    client.call("invalidateblock", json!([tip])).await.unwrap();
    assert_eq!(client.block_count().await.unwrap(), 110);
    assert!(
        client.mempool_txids().await.unwrap().contains(&txid),
        "the payment returns to the mempool"
    );
    client.call("reconsiderblock", json!([tip])).await.unwrap();
    assert_eq!(client.chain_info().await.unwrap().bestblockhash, tip);

    // The node restarts in the middle of a fetch: the fetch waits and completes.
    let fetch_hashes = hashes.clone();
    let fetching_client = node.client(Duration::from_secs(90));
    let fetch = tokio::spawn(async move {
        let mut total = 0;
        for hash in &fetch_hashes {
            total += fetching_client
                .block(hash)
                .await
                .expect("fetched across the restart")
                .len();
        }
        total
    });
    node.restart(true);
    assert_eq!(fetch.await.unwrap(), bytes);

    // Wrong credentials are named as such.
    let wrong = anode::daemon::RpcDaemon::new(anode::daemon::RpcDaemonOptions {
        urls: vec![format!("http://anode:wrong@127.0.0.1:{}/", node.rpc_port)],
        ..Default::default()
    })
    .unwrap();
    let err = wrong.block_count().await.unwrap_err();
    assert!(matches!(err, DaemonError::Auth { .. }), "{err}");
    assert!(err.to_string().contains("credentials"), "{err}");

    // Without a transaction index the node is refused with the setting to change.
    node.restart(false);
    let client = node.client(Duration::from_secs(60));
    let err = client
        .preflight(bsv_node::GENESIS, "BitcoinSV", "regtest")
        .await
        .unwrap_err();
    assert!(matches!(err, DaemonError::NoTxIndex), "{err}");
    assert!(err.to_string().contains("txindex=1"), "{err}");
    let _: Value = client.call("stop", json!([])).await.unwrap_or(Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zmq_hashblock_announces_a_new_tip_before_the_next_poll() {
    let Some(binary) = bsv_node::binary() else {
        return;
    };
    let zmq = format!("tcp://127.0.0.1:{}", bsv_node::free_port());
    let node = BsvNode::start_with(&binary, &[format!("-zmqpubhashblock={zmq}")]);
    let client = std::sync::Arc::new(node.client(Duration::from_secs(60)));
    client.block_count().await.expect("the node starts");
    // A poll interval far longer than the test: only ZMQ can deliver the tip in time.
    let mut tips =
        anode::daemon::TipWatcher::spawn(client.clone(), Duration::from_secs(600), Some(zmq));
    tips.wait_for(|t| t.is_some()).await.unwrap();
    // Give the subscription a moment to connect before the block is mined.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mined = client.call("generate", json!([1])).await.unwrap();
    let tip = tokio::time::timeout(
        Duration::from_secs(10),
        tips.wait_for(|t| t.is_some_and(|t| t.height == 1)),
    )
    .await
    .expect("ZMQ woke the watcher")
    .unwrap()
    .unwrap();
    assert_eq!(json!([hash_to_hex(&tip.hash)]), mined);
}
