use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::daemon::{DaemonApi, DaemonError, RetryPolicy, RpcDaemon, RpcDaemonOptions};

fn coin(name: &str, net: &str) -> Arc<dyn anode_coins::Coin> {
    anode_coins::lookup(name, net).unwrap_or_else(|e| panic!("{name} {net}: {e}"))
}

fn tiny_chain(seed: u64, blocks: u32) -> SimChain {
    let mut chain = SimChain::new(coin("Bitcoin", "regtest"), Profile::tiny(), seed).unwrap();
    chain.mine(blocks, true).unwrap();
    chain
}

#[test]
fn bitcoin_regtest_gets_the_real_genesis_block() {
    let chain = tiny_chain(1, 0);
    assert!(!chain.has_custom_genesis());
    assert_eq!(
        crate::daemon::hash_to_hex(&chain.genesis_hash()),
        "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    );
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let (a, b, c) = (tiny_chain(7, 30), tiny_chain(7, 30), tiny_chain(8, 30));
    for h in 0..=30 {
        assert_eq!(
            a.block(h).unwrap().raw,
            b.block(h).unwrap().raw,
            "height {h}"
        );
    }
    assert_ne!(a.tip().raw, c.tip().raw);
}

#[test]
fn blocks_pass_the_coin_layer_for_every_encodable_family() {
    for (name, net) in [
        ("Bitcoin", "regtest"),
        ("BitcoinCash", "regtest"),
        ("BitcoinSV", "regtest"),
        ("Litecoin", "regtest"),
    ] {
        let coin = coin(name, net);
        let mut chain = SimChain::new(Arc::clone(&coin), Profile::tiny(), 3).unwrap();
        chain.mine(25, true).unwrap();
        let mut prev = [0u8; 32];
        for h in 0..=chain.height() {
            let block = chain.block(h).unwrap();
            let parsed = coin
                .parse_block(&block.raw, Some(h))
                .unwrap_or_else(|e| panic!("{name} {h}: {e}"));
            assert_eq!(parsed.hash, block.hash, "{name} {h}: hash");
            assert_eq!(parsed.prev_hash, prev, "{name} {h}: link");
            let txids: Vec<_> = parsed.txs.iter().map(|t| t.txid).collect();
            assert_eq!(txids, block.txids, "{name} {h}: txids");
            assert_eq!(
                anode_coins::merkle_root(&txids)[..],
                block.header[36..68],
                "{name} {h}: merkle root"
            );
            prev = parsed.hash;
        }
    }
}

#[test]
fn mempool_chains_double_spends_and_drops() {
    let mut chain = tiny_chain(11, 20);
    let chained = chain.add_mempool_chain(3).unwrap();
    assert_eq!(chained.len(), 3);
    let child = chain.tx(&chained[1]).unwrap();
    assert_eq!(child.inputs[0].txid, chained[0], "each spends its parent");
    let (replacement, evicted) = chain.double_spend(Some(chained[0])).unwrap();
    assert_eq!(evicted.len(), 3, "the victim and its descendants leave");
    assert_eq!(chain.mempool(), &[replacement]);
    let more = chain.add_mempool_txs(5).unwrap();
    assert_eq!(chain.drop_mempool_tx(&more[0]).first(), Some(&more[0]));
    chain.mine(1, true).unwrap();
    assert!(chain.mempool().is_empty());
    assert_eq!(chain.tx(&replacement).unwrap().height, Some(chain.height()));
}

#[test]
fn reorgs_replace_blocks_and_return_transactions() {
    let mut chain = tiny_chain(5, 30);
    let old_tip = chain.tip().hash;
    let old_block = chain.block(29).unwrap().clone();
    chain.reorg(2, 0, false).unwrap();
    assert_eq!(chain.height(), 28);
    for txid in old_block.txids.iter().skip(1) {
        // Returned to the mempool unless they spent a disconnected coinbase.
        if let Some(tx) = chain.tx(txid) {
            assert_eq!(tx.height, None);
            assert!(chain.mempool().contains(txid));
        }
    }
    assert!(
        chain.tx(&old_block.txids[0]).is_none(),
        "coinbases of the old branch are gone"
    );
    chain.mine(3, true).unwrap();
    assert_eq!(chain.height(), 31);
    assert_ne!(chain.block(30).unwrap().hash, old_tip);
    assert!(chain.block_by_hash(&old_tip).is_none());
    assert!(matches!(
        chain.reorg(100, 1, true),
        Err(SimError::ReorgTooDeep { .. })
    ));
}

fn rpc(url: String, give_up_ms: u64) -> RpcDaemon {
    RpcDaemon::new(RpcDaemonOptions {
        urls: vec![url],
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            give_up_after: Some(Duration::from_millis(give_up_ms)),
        },
        ..RpcDaemonOptions::default()
    })
    .unwrap()
}

#[tokio::test]
async fn the_rpc_client_reads_everything_from_a_served_simulator() {
    let sim = Simulator::new(tiny_chain(21, 12));
    let auth = Auth {
        user_pass: Some("user:pa ss".into()),
    };
    let server = serve(sim.clone(), "127.0.0.1:0".parse().unwrap(), auth.clone())
        .await
        .unwrap();
    let client = rpc(format!("http://user:pa%20ss@{}/", server.addr), 2000);

    let info = client.chain_info().await.unwrap();
    assert_eq!((info.chain.as_str(), info.blocks), ("regtest", 12));
    assert_eq!(client.block_count().await.unwrap(), 12);
    let hashes = client.block_hashes(0..13).await.unwrap();
    let expected: Vec<_> = sim.with_chain(|c| (0..=12).map(|h| c.block(h).unwrap().hash).collect());
    assert_eq!(hashes, expected);
    // REST is tried first and used; the bytes are the chain's.
    let raw = client.block(&hashes[5]).await.unwrap();
    assert_eq!(raw, sim.with_chain(|c| c.block(5).unwrap().raw.clone()));
    client
        .preflight(
            "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
            "Bitcoin",
            "regtest",
        )
        .await
        .unwrap();
    let err = client
        .preflight(&"00".repeat(32), "Bitcoin", "regtest")
        .await
        .unwrap_err();
    assert!(matches!(err, DaemonError::WrongNetwork { .. }), "{err}");

    let txids = sim.with_chain(|c| c.block(3).unwrap().txids.clone());
    let mut asked = txids.clone();
    asked.push([7; 32]);
    let raws = client.raw_transactions(&asked).await.unwrap();
    assert!(raws[..txids.len()].iter().all(Option::is_some));
    assert_eq!(
        raws.last(),
        Some(&None),
        "an unknown txid is None, not an error"
    );
    let verbose = client.raw_transaction_verbose(&txids[0]).await.unwrap();
    assert_eq!(verbose["blockhash"], crate::daemon::hash_to_hex(&hashes[3]));

    let added = sim.with_chain_mut(|c| c.add_mempool_txs(4)).unwrap();
    assert_eq!(client.mempool_txids().await.unwrap(), added);
    assert_eq!(client.mempool_info().await.unwrap().size, 4);
    assert!(
        matches!(client.estimate_fee(6, None).await.unwrap(), crate::daemon::FeeEstimate::Rate(r) if r > 0.0)
    );
    assert!(client.relay_fee().await.unwrap() > 0.0);

    // Broadcast: a spend the node has not seen, of an output it knows is unspent.
    let (spend_hex, spend_txid) = sim.with_chain(|c| {
        let tip = c.tip().txids[0];
        let tx = c.tx(&tip).unwrap();
        let out = anode_coins::TxOut {
            value: tx.outputs[0].value - 1000,
            script: vec![0x51],
        };
        let encoded = c
            .coin()
            .encoder()
            .unwrap()
            .spend(&[anode_coins::OutPoint { txid: tip, vout: 0 }], &[out])
            .unwrap();
        (hex::encode(encoded.raw), encoded.txid)
    });
    let accepted = client
        .test_mempool_accept(std::slice::from_ref(&spend_hex))
        .await
        .unwrap();
    assert_eq!(accepted[0]["allowed"], true);
    assert_eq!(
        client.send_raw_transaction(&spend_hex).await.unwrap(),
        spend_txid
    );
    let err = client.send_raw_transaction(&spend_hex).await.unwrap_err();
    assert!(matches!(err, DaemonError::Rpc { code: -27, .. }), "{err}");
    // A package: a child of the broadcast transaction.
    let child_hex = sim.with_chain(|c| {
        let parent = c.tx(&spend_txid).unwrap();
        let out = anode_coins::TxOut {
            value: parent.outputs[0].value - 1000,
            script: vec![0x51],
        };
        let encoded = c
            .coin()
            .encoder()
            .unwrap()
            .spend(
                &[anode_coins::OutPoint {
                    txid: spend_txid,
                    vout: 0,
                }],
                &[out],
            )
            .unwrap();
        hex::encode(encoded.raw)
    });
    let package = client.submit_package(&[child_hex]).await.unwrap();
    assert_eq!(package["tx-results"][0]["allowed"], true, "{package}");
    assert_eq!(client.mempool_txids().await.unwrap().len(), 6);
    let err = client.send_raw_transaction("00").await.unwrap_err();
    assert!(matches!(err, DaemonError::Rpc { code: -22, .. }), "{err}");

    let wrong = rpc(format!("http://user:wrong@{}/", server.addr), 500);
    assert!(matches!(
        wrong.block_count().await,
        Err(DaemonError::Auth { .. })
    ));
}

#[tokio::test]
async fn cookie_files_are_read_and_reread_after_a_refusal() {
    let sim = Simulator::new(tiny_chain(2, 2));
    let server = serve(
        sim,
        "127.0.0.1:0".parse().unwrap(),
        Auth {
            user_pass: Some("__cookie__:abc".into()),
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cookie = dir.path().join(".cookie");
    std::fs::write(&cookie, "__cookie__:stale").unwrap();
    let client = RpcDaemon::new(RpcDaemonOptions {
        urls: vec![format!("http://{}/", server.addr)],
        cookie_file: Some(cookie.clone()),
        ..RpcDaemonOptions::default()
    })
    .unwrap();
    assert!(matches!(
        client.block_count().await,
        Err(DaemonError::Auth { .. })
    ));
    // The node restarted and wrote a new cookie.
    std::fs::write(&cookie, "__cookie__:abc").unwrap();
    assert_eq!(client.block_count().await.unwrap(), 2);
}

#[tokio::test]
async fn failover_moves_to_the_next_node_when_one_stops() {
    let (a, b) = (
        Simulator::new(tiny_chain(4, 6)),
        Simulator::new(tiny_chain(4, 6)),
    );
    let server_a = serve(a.clone(), "127.0.0.1:0".parse().unwrap(), Auth::default())
        .await
        .unwrap();
    let server_b = serve(b, "127.0.0.1:0".parse().unwrap(), Auth::default())
        .await
        .unwrap();
    let client = RpcDaemon::new(RpcDaemonOptions {
        urls: vec![
            format!("http://{}/", server_a.addr),
            format!("http://{}/", server_b.addr),
        ],
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            give_up_after: Some(Duration::from_secs(5)),
        },
        use_rest: Some(false),
        ..RpcDaemonOptions::default()
    })
    .unwrap();
    let hashes = client.block_hashes(0..7).await.unwrap();
    assert!(client
        .current_url()
        .contains(&server_a.addr.port().to_string()));
    a.outage(Duration::from_secs(30));
    // Mid-fetch: every block still arrives, now from the second node.
    for hash in &hashes {
        client.block(hash).await.unwrap();
    }
    assert!(client
        .current_url()
        .contains(&server_b.addr.port().to_string()));
}

#[tokio::test]
async fn warming_up_and_outages_are_retried_until_the_node_answers() {
    let sim = Simulator::new(tiny_chain(6, 3));
    let server = serve(sim.clone(), "127.0.0.1:0".parse().unwrap(), Auth::default())
        .await
        .unwrap();
    let client = rpc(format!("http://{}/", server.addr), 5000);
    sim.warm_up(Duration::from_millis(300));
    assert_eq!(client.block_count().await.unwrap(), 3);
    sim.outage(Duration::from_millis(300));
    assert_eq!(
        client.block_count().await.unwrap(),
        3,
        "the restarted node answers again"
    );
    let impatient = rpc(format!("http://{}/", server.addr), 100);
    sim.warm_up(Duration::from_secs(5));
    assert!(matches!(
        impatient.block_count().await,
        Err(DaemonError::WarmingUp(_))
    ));
}

#[tokio::test]
async fn the_in_process_daemon_answers_like_the_served_one() {
    let sim = Simulator::new(tiny_chain(8, 5));
    let daemon = SimDaemon::new(sim.clone());
    let server = serve(sim, "127.0.0.1:0".parse().unwrap(), Auth::default())
        .await
        .unwrap();
    let client = rpc(format!("http://{}/", server.addr), 1000);
    assert_eq!(
        daemon.chain_info().await.unwrap(),
        client.chain_info().await.unwrap()
    );
    let hashes = daemon.block_hashes(0..6).await.unwrap();
    assert_eq!(hashes, client.block_hashes(0..6).await.unwrap());
    assert_eq!(
        daemon.block(&hashes[4]).await.unwrap(),
        client.block(&hashes[4]).await.unwrap()
    );
    assert_eq!(
        daemon.mempool_info().await.unwrap(),
        client.mempool_info().await.unwrap()
    );
}

/// Every input of every block spends an output of an earlier transaction of the chain that no
/// earlier input spent — through reorgs with and without the mempool.
#[test]
fn chains_stay_valid_through_mempool_changes_and_reorgs() {
    fn validate(chain: &SimChain, what: &str) {
        let mut unspent = std::collections::HashSet::new();
        for h in 1..=chain.height() {
            for txid in &chain.block(h).unwrap().txids {
                let tx = chain.tx(txid).unwrap();
                for input in &tx.inputs {
                    assert!(
                        unspent.remove(&(input.txid, input.vout)),
                        "{what}: block {h} spends an output that is not unspent"
                    );
                }
                for vout in 0..tx.outputs.len() as u32 {
                    unspent.insert((*txid, vout));
                }
            }
        }
    }
    for seed in 0..4 {
        let mut chain = tiny_chain(seed, 20);
        validate(&chain, "initial");
        chain.add_mempool_txs(6).unwrap();
        chain.add_mempool_chain(3).unwrap();
        chain.reorg(2, 3, false).unwrap();
        validate(&chain, "reorg leaving the mempool out");
        chain.mine(2, false).unwrap();
        validate(&chain, "blocks leaving the mempool out");
        chain.reorg(3, 3, true).unwrap();
        validate(&chain, "reorg confirming the mempool");
    }
}

#[test]
fn mine_mempool_confirms_exactly_the_mempool() {
    let mut chain = tiny_chain(11, 5);
    let coin = Arc::clone(chain.coin());
    let encoder = coin.encoder().expect("an encoder");
    // A coinbase output the random transactions have not spent yet.
    let funding = (1..=chain.height())
        .map(|h| anode_coins::OutPoint {
            txid: chain.block(h).unwrap().txids[0],
            vout: 0,
        })
        .find(|o| chain.output_spender(o) == Some(None))
        .expect("an unspent coinbase output");
    let value = chain.output(&funding).unwrap().value;
    let script = vec![
        0x00, 0x14, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    ];
    let outputs = vec![anode_coins::TxOut {
        value: value - 1000,
        script,
    }];
    let tx = encoder.spend(&[funding], &outputs).unwrap();
    chain.accept_external(tx.txid, tx.raw, vec![funding], outputs, 1000);
    chain.mine_mempool().unwrap();
    assert_eq!(
        chain.tip().txids.len(),
        2,
        "the coinbase and the one transaction"
    );
    assert_eq!(chain.tip().txids[1], tx.txid);
    assert_eq!(chain.tx(&tx.txid).unwrap().height, Some(chain.height()));
    assert!(chain.mempool().is_empty());
}
