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
    let old_block = chain.block(29).unwrap().into_owned();
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
            ..RetryPolicy::default()
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
    // Core answers a transaction already in its mempool with the txid again.
    assert_eq!(
        client.send_raw_transaction(&spend_hex).await.unwrap(),
        spend_txid
    );
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
    assert_eq!(package["package_msg"], "success", "{package}");
    // Core keys the results by wtxid; no entry carries an error.
    let results = package["tx-results"].as_object().unwrap();
    assert_eq!(results.len(), 1, "{package}");
    assert!(
        results.values().all(|r| r.get("error").is_none()),
        "{package}"
    );
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
            ..RetryPolicy::default()
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

mod chain_dirs {
    use super::*;
    use crate::simulator::chaindir::{
        self, ChainDir, ChainDirError, Expect, GenerateOptions, HistoryProfile,
    };

    fn generate(dir: &std::path::Path, txs: u64, seed: u64) -> chaindir::ChainMeta {
        let options = GenerateOptions {
            txs,
            blocks: Some(40),
            seed,
            profile: HistoryProfile::mainnet_history(),
        };
        chaindir::generate(dir, coin("Bitcoin", "regtest"), &options, |_| {}).unwrap()
    }

    fn files_of(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for sub in ["", "blocks", "txindex"] {
            let mut names: Vec<_> = std::fs::read_dir(dir.join(sub))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_file() && !p.ends_with("chain.json"))
                .collect();
            names.sort();
            for p in names {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
        out
    }

    #[test]
    fn a_seed_gives_the_same_bytes_and_exactly_the_transactions_asked_for() {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let meta = generate(a.path(), 20_000, 5);
        generate(b.path(), 20_000, 5);
        generate(c.path(), 20_000, 6);
        // Coinbases and genesis come on top of the transactions asked for.
        assert_eq!(meta.txs, 20_000 + 40 + 1);
        assert_eq!(meta.blocks, 41);
        let strip =
            |files: Vec<(String, Vec<u8>)>, root: &std::path::Path| -> Vec<(String, Vec<u8>)> {
                let root = root.display().to_string();
                files
                    .into_iter()
                    .map(|(n, b)| (n.replacen(&root, "", 1), b))
                    .collect()
            };
        assert_eq!(
            strip(files_of(a.path()), a.path()),
            strip(files_of(b.path()), b.path())
        );
        assert_ne!(
            std::fs::read(a.path().join("index.bin")).unwrap(),
            std::fs::read(c.path().join("index.bin")).unwrap()
        );
        // Unspent outputs per transaction track the profile's ratio (mainnet: ~0.15).
        let ratio = meta.unspent_outputs as f64 / meta.txs as f64;
        assert!((0.1..0.25).contains(&ratio), "{ratio}");
    }

    #[test]
    fn every_block_and_transaction_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let coin = coin("Bitcoin", "regtest");
        let meta = generate(dir.path(), 5_000, 2);
        let chain = ChainDir::open(dir.path(), Arc::clone(&coin), &Expect::default()).unwrap();
        assert_eq!(chain.tip_height() + 1, meta.blocks);
        let mut txs = 0u64;
        let mut prev = [0u8; 32];
        for h in 0..=chain.tip_height() {
            let raw = chain.raw_block(h).unwrap().unwrap();
            let parsed = coin.parse_block(&raw, Some(h)).unwrap();
            assert_eq!(parsed.hash, chain.hash(h).unwrap());
            assert_eq!(coin.header_prev_hash(&parsed.header).unwrap(), prev);
            prev = parsed.hash;
            assert_eq!(Some(h), chain.height_of(&parsed.hash));
            for tx in &parsed.txs {
                let (height, raw) = chain.raw_tx(&tx.txid).unwrap().expect("indexed");
                assert_eq!(height, h);
                assert_eq!(coin.parse_tx(&raw).unwrap().txid, tx.txid);
                txs += 1;
            }
        }
        assert_eq!(txs, meta.txs);
        assert!(chain.raw_tx(&[7; 32]).unwrap().is_none());
    }

    #[test]
    fn another_chain_or_a_damaged_file_is_refused_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let regtest = coin("Bitcoin", "regtest");
        generate(dir.path(), 3_000, 3);
        let wrong_seed = Expect {
            seed: Some(4),
            txs: None,
        };
        let e = ChainDir::open(dir.path(), Arc::clone(&regtest), &wrong_seed).unwrap_err();
        assert!(matches!(e, ChainDirError::Mismatch { .. }), "{e}");
        assert!(e.to_string().contains("seed 3"), "{e}");
        let e = ChainDir::open(
            dir.path(),
            coin("BitcoinCash", "regtest"),
            &Expect::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("Bitcoin regtest"), "{e}");
        // Generating into a directory that holds a chain is refused too.
        let options = GenerateOptions {
            txs: 10,
            blocks: None,
            seed: 3,
            profile: HistoryProfile::mainnet_history(),
        };
        assert!(chaindir::generate(dir.path(), Arc::clone(&regtest), &options, |_| {}).is_err());

        let blk = dir.path().join("blocks").join("blk00000.dat");
        let len = std::fs::metadata(&blk).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&blk).unwrap();
        file.set_len(len - 100).unwrap();
        let e = ChainDir::open(dir.path(), Arc::clone(&regtest), &Expect::default()).unwrap_err();
        assert!(
            e.to_string().contains("blk00000.dat") && e.to_string().contains("truncated"),
            "{e}"
        );

        std::fs::remove_file(dir.path().join("chain.json")).unwrap();
        let e = ChainDir::open(dir.path(), regtest, &Expect::default()).unwrap_err();
        assert!(matches!(e, ChainDirError::Incomplete(_)), "{e}");
    }

    #[test]
    fn a_chain_over_a_directory_serves_its_blocks_and_mines_on_top() {
        let dir = tempfile::tempdir().unwrap();
        let regtest = coin("Bitcoin", "regtest");
        generate(dir.path(), 3_000, 9);
        let base =
            Arc::new(ChainDir::open(dir.path(), Arc::clone(&regtest), &Expect::default()).unwrap());
        let tip = base.tip_height();
        let mut chain =
            SimChain::over_chain_dir(regtest, Profile::tiny(), 9, Arc::clone(&base)).unwrap();
        assert_eq!(chain.height(), tip);
        assert_eq!(chain.tip().hash, base.hash(tip).unwrap());
        let some_tx = chain.block(tip / 2).unwrap().txids[1];
        assert_eq!(chain.tx(&some_tx).unwrap().height, Some(tip / 2));
        chain.mine(3, true).unwrap();
        chain.add_mempool_txs(5).unwrap();
        assert_eq!(chain.height(), tip + 3);
        // The new blocks spend outputs the directory's pool kept.
        let spends_below = chain
            .block(tip + 1)
            .unwrap()
            .txids
            .iter()
            .skip(1)
            .flat_map(|t| chain.tx(t).unwrap().inputs.clone())
            .any(|o| {
                chain
                    .tx(&o.txid)
                    .is_some_and(|p| p.height.is_some_and(|h| h <= tip))
            });
        assert!(spends_below);
        chain.reorg(2, 3, true).unwrap();
        assert_eq!(chain.height(), tip + 4);
        let e = chain.reorg(6, 1, true).unwrap_err();
        assert!(matches!(e, SimError::BelowChainDir { .. }), "{e}");
    }
}
