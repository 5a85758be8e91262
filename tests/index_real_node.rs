//! The indexer against the real Bitcoin SV regtest node: initial sync, a wallet payment in the
//! mempool and then confirmed, a reorg through `invalidateblock`, and a restart that resumes.

mod support;

use std::sync::Arc;
use std::time::Duration;

use anode::daemon::{hash_from_hex, DaemonApi};
use anode::index::schema::TABLES;
use anode::index::{IndexWriter, Indexer, Progress, SyncOptions, WriterOptions};
use anode::query::{ChainQuery, ScriptHash};
use anode::store_factory::{default_engine, open_store, Tuning};
use serde_json::json;
use support::bsv_node::{self, BsvNode};

fn open_indexer(dir: &std::path::Path, daemon: Arc<dyn DaemonApi>) -> Indexer {
    let coin = anode_coins::lookup("BitcoinSV", "regtest").expect("BSV regtest");
    let engine = default_engine().expect("an engine");
    let store = open_store(engine, dir, TABLES, Tuning { cache_mb: 64 }).expect("store");
    let options = WriterOptions {
        reorg_limit: 20,
        cache_bytes: 1 << 20,
    };
    let writer = IndexWriter::open(store, Arc::clone(&coin), options).expect("index");
    Indexer::new(writer, daemon, coin, 20, SyncOptions::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_follows_a_real_node_through_payments_reorgs_and_restarts() {
    let Some(binary) = bsv_node::binary() else {
        return;
    };
    let mut node = BsvNode::start(&binary);
    let client = Arc::new(node.client(Duration::from_secs(60)));
    client
        .preflight(bsv_node::GENESIS, "BitcoinSV", "regtest")
        .await
        .expect("node up");
    client
        .call("generate", json!([120]))
        .await
        .expect("generate");
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon: Arc<dyn DaemonApi> = client.clone();
    let indexer = open_indexer(dir.path(), Arc::clone(&daemon));
    let outcome = indexer
        .catch_up(&mut Progress::new(false))
        .await
        .expect("initial sync");
    assert_eq!(outcome.applied, 121, "genesis and 120 blocks");
    let query = indexer.query();
    assert_eq!(query.tip().height, 120);

    // A payment to a fresh address: in the mempool, then confirmed.
    let address = client.call("getnewaddress", json!([])).await.unwrap();
    let info = client
        .call("validateaddress", json!([address.clone()]))
        .await
        .unwrap();
    let script = hex::decode(info["scriptPubKey"].as_str().expect("script")).unwrap();
    let coin = anode_coins::lookup("BitcoinSV", "regtest").unwrap();
    let script_hash = ScriptHash(coin.script_hash(&script));
    let txid_hex = client
        .call("sendtoaddress", json!([address, 2.5]))
        .await
        .unwrap();
    let txid = hash_from_hex(txid_hex.as_str().unwrap()).unwrap();
    indexer.refresh_mempool().await.expect("mempool");
    let history = query.history(&script_hash, 1000).await.unwrap();
    assert!(history.confirmed.is_empty());
    assert_eq!(history.mempool.len(), 1);
    assert_eq!(history.mempool[0].txid, txid);
    let balance = query.balance(&script_hash).await.unwrap();
    assert_eq!((balance.confirmed, balance.unconfirmed), (0, 250_000_000));

    let mined = client.call("generate", json!([1])).await.unwrap();
    indexer.catch_up(&mut Progress::new(false)).await.unwrap();
    indexer.refresh_mempool().await.unwrap();
    let history = query.history(&script_hash, 1000).await.unwrap();
    assert_eq!(history.confirmed.len(), 1, "{history:?}");
    assert_eq!(history.confirmed[0].height, 121);
    assert!(history.mempool.is_empty());
    let merkle = query
        .merkle(&txid, 121)
        .await
        .unwrap()
        .expect("in block 121");
    let verbose = client
        .call("getblock", json!([mined[0].as_str().unwrap(), 1]))
        .await
        .unwrap();
    assert_eq!(
        verbose["tx"][merkle.pos as usize].as_str(),
        Some(txid_hex.as_str().unwrap())
    );
    let unspent = query.unspent(&script_hash, 1000).await.unwrap();
    assert_eq!(unspent.len(), 1);
    assert_eq!(unspent[0].value, 250_000_000);

    // Reorg: invalidate the block with the payment, mine two others instead.
    client
        .call("invalidateblock", json!([mined[0].as_str().unwrap()]))
        .await
        .unwrap();
    client.call("generate", json!([2])).await.unwrap();
    let outcome = indexer.catch_up(&mut Progress::new(false)).await.unwrap();
    assert_eq!((outcome.undone, outcome.tip_height), (1, 122));
    indexer.refresh_mempool().await.unwrap();
    let history = query.history(&script_hash, 1000).await.unwrap();
    let heights: Vec<i64> = history.entries().map(|e| e.height).collect();
    assert!(
        heights == [121] || heights == [122] || heights == [0],
        "the payment is re-mined or back in the mempool: {heights:?}"
    );

    // Restart: a new indexer on the same directory resumes at the flushed tip.
    drop((query, indexer));
    client.call("generate", json!([3])).await.unwrap();
    let indexer = open_indexer(dir.path(), daemon);
    assert_eq!(indexer.tip().map(|t| t.0), Some(122));
    let outcome = indexer.catch_up(&mut Progress::new(false)).await.unwrap();
    assert_eq!((outcome.applied, outcome.tip_height), (3, 125));
    node.stop();
}
