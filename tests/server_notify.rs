//! Notifications (docs/protocol.md, Notifications) after blocks, mempool changes and reorgs,
//! driven through the simulator and the reference query.

#[path = "server_common.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use anode::query::reference::ReferenceQuery;
use anode::query::*;
use anode::server::{Server, ServerParts};
use anode::simulator::SimDaemon;
use async_trait::async_trait;
use common::*;
use serde_json::{json, Value};
use tokio::sync::broadcast;

const QUIET: Duration = Duration::from_millis(400);

/// A transaction spending `input` to `script` (fee 1000), accepted into the mempool.
fn spend(h: &Harness, input: anode_coins::OutPoint, script: &[u8]) -> [u8; 32] {
    let raw = h.sim.with_chain(|c| {
        let value = c.output_value(&input).expect("output exists");
        let out = anode_coins::TxOut {
            value: value - 1000,
            script: script.to_vec(),
        };
        c.coin()
            .encoder()
            .unwrap()
            .spend(&[input], &[out])
            .unwrap()
            .raw
    });
    h.sim.accept_tx(&raw, false).expect("accepted")
}

/// A transaction paying `script` from the first spendable confirmed output. Returns (txid,
/// spent outpoint).
fn pay(h: &Harness, script: &[u8]) -> ([u8; 32], anode_coins::OutPoint) {
    let input = h.sim.with_chain(|c| {
        for height in 1..=c.height() {
            for funding in &c.block(height).unwrap().txids {
                let tx = c.tx(funding).unwrap();
                for (vout, o) in tx.outputs.iter().enumerate() {
                    let input = anode_coins::OutPoint {
                        txid: *funding,
                        vout: vout as u32,
                    };
                    if o.value >= 20_000 && c.output_spender(&input) == Some(None) {
                        return input;
                    }
                }
            }
        }
        panic!("nothing to spend")
    });
    (spend(h, input, script), input)
}

async fn status_of(h: &Harness, script: &[u8]) -> Value {
    let sh = ScriptHash::from_display_hex(&scripthash_of(script)).unwrap();
    let history = h.query.history(&sh, usize::MAX).await.unwrap();
    json!(history.status_hash().map(hex::encode))
}

#[tokio::test]
async fn header_notifications_on_new_tips_and_same_height_reorgs() {
    let h = start(5).await;
    let mut c = h.client_v("1.6").await;
    let first = c.result("blockchain.headers.subscribe", json!([])).await;
    assert_eq!(first["height"], 5);
    h.sim.mine(1).unwrap();
    h.query.refresh();
    let tip = h.query.tip();
    assert_eq!(
        c.notification().await,
        json!({"jsonrpc": "2.0", "method": "blockchain.headers.subscribe",
               "params": [{"hex": hex::encode(&tip.header), "height": 6}]})
    );
    // Several blocks in one round: only the newest tip.
    h.sim.mine(3).unwrap();
    h.query.refresh();
    assert_eq!(c.notification().await["params"][0]["height"], 9);
    c.assert_quiet(QUIET).await;
    // A reorg to the same height still changes the tip hash: announced.
    h.sim.with_chain_mut(|ch| ch.reorg(2, 2, false)).unwrap();
    h.query.refresh();
    let n = c.notification().await;
    assert_eq!(n["params"][0]["height"], 9);
    assert_eq!(n["params"][0]["hex"], hex::encode(&h.query.tip().header));
    // A mempool-only round sends no header.
    h.sim.with_chain_mut(|ch| ch.add_mempool_txs(2)).unwrap();
    h.query.refresh();
    c.assert_quiet(QUIET).await;
}

#[tokio::test]
async fn script_notifications_echo_the_client_spelling() {
    let h = start(10).await;
    let script = vec![0x51];
    let upper = scripthash_of(&script).to_uppercase();
    let mut c = h.client_v("1.4.2").await;
    let mut idle = h.client_v("1.4.2").await;
    assert_eq!(
        c.result("blockchain.scripthash.subscribe", json!([upper]))
            .await,
        Value::Null
    );
    let (txid, _) = pay(&h, &script);
    h.query.refresh();
    let n = c.notification().await;
    assert_eq!(n["method"], "blockchain.scripthash.subscribe");
    assert_eq!(n["params"][0], upper);
    assert_eq!(n["params"][1], status_of(&h, &script).await);
    assert!(n["params"][1].is_string());
    // Mined: touched again, new status.
    h.sim.mine(1).unwrap();
    h.query.refresh();
    let n = c.notification().await;
    assert_eq!(n["params"][1], status_of(&h, &script).await);
    let history = c
        .result("blockchain.scripthash.get_history", json!([upper]))
        .await;
    // The simulator's block may also spend the new output (its random transactions draw
    // from every spendable output), so only the first entry is certain.
    assert_eq!(history[0], json!({"tx_hash": hx(&txid), "height": 11}));
    // A session without subscriptions hears nothing.
    idle.assert_quiet(QUIET).await;
    // Unsubscribed: no more notifications.
    assert_eq!(
        c.result("blockchain.scripthash.unsubscribe", json!([upper]))
            .await,
        json!(true)
    );
    pay(&h, &script);
    h.query.refresh();
    c.assert_quiet(QUIET).await;
}

#[tokio::test]
async fn scriptpubkey_notifications_carry_the_derived_hash() {
    let h = start(10).await;
    let script = vec![0x52];
    let mut c = h.client_v("1.7").await;
    c.result(
        "blockchain.scriptpubkey.subscribe",
        json!([hex::encode(&script)]),
    )
    .await;
    pay(&h, &script);
    h.query.refresh();
    let n = c.notification().await;
    assert_eq!(n["method"], "blockchain.scriptpubkey.subscribe");
    assert_eq!(n["params"][0], scripthash_of(&script));
    assert_eq!(n["params"][1], status_of(&h, &script).await);
}

#[tokio::test]
async fn reorg_returns_a_transaction_to_the_mempool() {
    let h = start(10).await;
    let script = vec![0x53];
    let (txid, _) = pay(&h, &script);
    h.sim.mine(1).unwrap();
    h.query.refresh();
    let display = scripthash_of(&script);
    let mut c = h.client_v("1.6").await;
    let confirmed = c
        .result("blockchain.scripthash.subscribe", json!([display]))
        .await;
    h.sim.with_chain_mut(|ch| ch.reorg(1, 1, false)).unwrap();
    h.query.refresh();
    let n = c.notification().await;
    assert_ne!(n["params"][1], confirmed);
    assert_eq!(n["params"][1], status_of(&h, &script).await);
    let history = c
        .result("blockchain.scripthash.get_history", json!([display]))
        .await;
    assert_eq!(history[0]["tx_hash"], hx(&txid));
    assert!(history[0]["height"].as_i64().unwrap() <= 0, "{history}");
}

#[tokio::test]
async fn outpoint_notifications() {
    let h = start(10).await;
    let (funding, _) = pay(&h, &[0x54]);
    h.query.refresh();
    let mut c = h.client_v("1.7").await;
    assert_eq!(
        c.result(
            "blockchain.outpoint.subscribe",
            json!([hx(&funding), 0, ""])
        )
        .await,
        json!({"funder_height": 0})
    );
    // Unknown outpoints are subscribed too.
    assert_eq!(
        c.result(
            "blockchain.outpoint.subscribe",
            json!([hx(&[3; 32]), 1, "51"])
        )
        .await,
        json!({})
    );
    let spender = spend(
        &h,
        anode_coins::OutPoint {
            txid: funding,
            vout: 0,
        },
        &[0x55],
    );
    h.query.refresh();
    assert_eq!(
        c.notification().await,
        json!({"jsonrpc": "2.0", "method": "blockchain.outpoint.subscribe",
               "params": [hx(&funding), 0,
                          {"funder_height": 0, "spender_txhash": hx(&spender), "spender_height": -1}]})
    );
    h.sim.mine(1).unwrap();
    h.query.refresh();
    assert_eq!(
        c.notification().await["params"][2],
        json!({"funder_height": 11, "spender_txhash": hx(&spender), "spender_height": 11})
    );
    c.assert_quiet(QUIET).await;
    assert_eq!(
        c.result("blockchain.outpoint.unsubscribe", json!([hx(&funding), 0]))
            .await,
        json!(true)
    );
    assert_eq!(
        c.result("blockchain.outpoint.unsubscribe", json!([hx(&funding), 0]))
            .await,
        json!(false)
    );
}

#[tokio::test]
async fn cover_pings_for_1_7_on_new_blocks() {
    let sim = chain(5, 7);
    let mut config = test_config();
    config.cover_traffic = true;
    let h = start_with(sim, config).await;
    let mut c17 = h.client_v("1.7").await;
    let mut c16 = h.client_v("1.6").await;
    h.sim.mine(1).unwrap();
    h.query.refresh();
    let n = c17.notification().await;
    assert_eq!(
        n,
        json!({"jsonrpc": "2.0", "method": "server.ping", "params": ["0".repeat(128)]})
    );
    c16.assert_quiet(QUIET).await;
}

/// Forwards to the reference but publishes its own events, to test the server's rules for
/// what is recomputed independently of the touched sets.
struct Scripted {
    inner: Arc<ReferenceQuery>,
    events: broadcast::Sender<Arc<ChainEvent>>,
}

#[async_trait]
impl ChainQuery for Scripted {
    fn tip(&self) -> Tip {
        self.inner.tip()
    }
    async fn header(&self, height: u32) -> QueryResult<Option<Vec<u8>>> {
        self.inner.header(height).await
    }
    async fn headers(&self, start: u32, count: u32) -> QueryResult<Vec<Vec<u8>>> {
        self.inner.headers(start, count).await
    }
    async fn header_proof(&self, height: u32, cp: u32) -> QueryResult<HeaderProof> {
        self.inner.header_proof(height, cp).await
    }
    async fn history(&self, script: &ScriptHash, limit: usize) -> QueryResult<History> {
        self.inner.history(script, limit).await
    }
    async fn mempool_history(&self, script: &ScriptHash) -> QueryResult<Vec<HistoryEntry>> {
        self.inner.mempool_history(script).await
    }
    async fn balance(&self, script: &ScriptHash) -> QueryResult<Balance> {
        self.inner.balance(script).await
    }
    async fn unspent(&self, script: &ScriptHash, limit: usize) -> QueryResult<Vec<Unspent>> {
        self.inner.unspent(script, limit).await
    }
    async fn raw_transaction(&self, txid: &Hash32) -> QueryResult<Option<Vec<u8>>> {
        self.inner.raw_transaction(txid).await
    }
    async fn merkle(&self, txid: &Hash32, height: u32) -> QueryResult<Option<TxMerkle>> {
        self.inner.merkle(txid, height).await
    }
    async fn txid_at(&self, height: u32, pos: u32) -> QueryResult<Option<(Hash32, Vec<Hash32>)>> {
        self.inner.txid_at(height, pos).await
    }
    async fn outpoint_status(&self, outpoint: &OutPoint) -> QueryResult<OutpointStatus> {
        self.inner.outpoint_status(outpoint).await
    }
    fn fee_histogram(&self) -> Vec<(f64, u64)> {
        self.inner.fee_histogram()
    }
    fn mempool_recent(&self) -> Vec<RecentTx> {
        self.inner.mempool_recent()
    }
    fn mempool_size(&self) -> usize {
        self.inner.mempool_size()
    }
    fn subscribe(&self) -> broadcast::Receiver<Arc<ChainEvent>> {
        self.events.subscribe()
    }
}

fn bare_event(q: &ReferenceQuery, tip_changed: bool) -> Arc<ChainEvent> {
    Arc::new(ChainEvent {
        tip: q.tip(),
        tip_changed,
        touched_scripts: Default::default(),
        touched_outpoints: Default::default(),
    })
}

async fn scripted(capacity: usize) -> (Harness, Arc<Scripted>) {
    let sim = chain(10, 7);
    let reference = Arc::new(ReferenceQuery::new(sim.clone()));
    let scripted = Arc::new(Scripted {
        inner: Arc::clone(&reference),
        events: broadcast::channel(capacity).0,
    });
    let coin = sim.with_chain(|c| Arc::clone(c.coin()));
    let peers = test_peers(&coin, scripted.clone(), &[], Vec::new());
    let handle = Server::start(
        Arc::new(test_config()),
        ServerParts {
            query: scripted.clone(),
            daemon: Arc::new(SimDaemon::new(sim.clone())),
            coin: Arc::clone(&coin),
            peers: Arc::clone(&peers),
            metrics: None,
        },
    )
    .await
    .unwrap();
    (
        Harness {
            sim,
            query: reference,
            handle,
            coin,
            peers,
        },
        scripted,
    )
}

#[tokio::test]
async fn mempool_statuses_are_rechecked_on_a_new_tip() {
    let (h, scripted) = scripted(16).await;
    let in_mempool = vec![0x56];
    let confirmed_only = h.sim.with_chain(|c| {
        let tx = c.tx(&c.block(3).unwrap().txids[0]).unwrap();
        tx.outputs[0].script.clone()
    });
    pay(&h, &in_mempool);
    h.query.refresh();
    let mut c = h.client_v("1.6").await;
    let before = c
        .result(
            "blockchain.scripthash.subscribe",
            json!([scripthash_of(&in_mempool)]),
        )
        .await;
    c.result(
        "blockchain.scripthash.subscribe",
        json!([scripthash_of(&confirmed_only)]),
    )
    .await;
    // A mempool round that touches nothing of ours: no re-check.
    scripted.events.send(bare_event(&h.query, false)).unwrap();
    c.assert_quiet(QUIET).await;
    // The block confirms the payment, but the event names no script: the mempool-status
    // re-check still reports the change, and only for the script that had mempool entries.
    h.sim.mine(1).unwrap();
    h.query.refresh();
    scripted.events.send(bare_event(&h.query, true)).unwrap();
    let n = c.notification().await;
    assert_eq!(n["params"][0], scripthash_of(&in_mempool));
    assert_ne!(n["params"][1], before);
    assert_eq!(n["params"][1], status_of(&h, &in_mempool).await);
    c.assert_quiet(QUIET).await;
}

#[tokio::test]
async fn a_lagging_notifier_treats_everything_as_touched() {
    let (h, scripted) = scripted(1).await;
    let script = h.sim.with_chain(|c| {
        let tx = c.tx(&c.block(3).unwrap().txids[0]).unwrap();
        tx.outputs[0].script.clone()
    });
    let mut c = h.client_v("1.6").await;
    let status = c
        .result(
            "blockchain.scripthash.subscribe",
            json!([scripthash_of(&script)]),
        )
        .await;
    // Three events into a channel of one, with no await in between: the receiver lags.
    for _ in 0..3 {
        let _ = scripted.events.send(bare_event(&h.query, false));
    }
    let n = c.notification().await;
    assert_eq!(n["params"], json!([scripthash_of(&script), status]));
}
