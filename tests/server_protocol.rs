//! The protocol over a real socket: framing, errors, version negotiation, batches and every
//! method against the reference query (docs/protocol.md).

#[path = "server_common.rs"]
mod common;

use std::collections::HashMap;
use std::time::Duration;

use anode::query::reference::{merkle_branch, merkle_root};
use anode::query::{ChainQuery, ScriptHash};
use common::*;
use serde_json::{json, Value};

/// Scripts of confirmed outputs with how many blocks' transactions pay them, most first.
fn popular_scripts(h: &Harness) -> Vec<(Vec<u8>, usize)> {
    let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
    h.sim.with_chain(|c| {
        for height in 1..=c.height() {
            for txid in &c.block(height).unwrap().txids {
                for o in &c.tx(txid).unwrap().outputs {
                    if !c.coin().is_unspendable(&o.script, height) {
                        *counts.entry(o.script.clone()).or_default() += 1;
                    }
                }
            }
        }
    });
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

fn sh(script: &[u8]) -> ScriptHash {
    ScriptHash::from_display_hex(&scripthash_of(script)).unwrap()
}

#[tokio::test]
async fn the_first_message_must_be_server_version() {
    let h = start(3).await;
    let mut c = h.client().await;
    c.send(r#"{"jsonrpc":"2.0","id":1,"method":"server.features"}"#)
        .await;
    assert_eq!(
        c.recv_line().await,
        "{\"jsonrpc\":\"2.0\",\"method\":\"blockchain.relayfee\"}\n"
    );
    assert_eq!(
        c.recv_line().await,
        "{\"jsonrpc\":\"2.0\",\"method\":\"blockchain.estimatefee\"}\n"
    );
    assert_eq!(
        c.recv().await,
        json!({"jsonrpc":"2.0","error":{"code":1,"message":"use server.version to identify client"},"id":1})
    );
    assert!(c.closed_within(Duration::from_secs(3)).await);

    // A notification before server.version closes too, with only the bogus pair.
    let mut c = h.client().await;
    c.send(r#"{"jsonrpc":"2.0","method":"server.ping"}"#).await;
    assert_eq!(c.recv().await["method"], "blockchain.relayfee");
    assert_eq!(c.recv().await["method"], "blockchain.estimatefee");
    assert!(c.closed_within(Duration::from_secs(3)).await);
}

#[tokio::test]
async fn version_negotiation_over_the_wire() {
    let h = start(3).await;
    let mut c = h.client().await;
    let r = c
        .result("server.version", json!(["x", ["1.4", "1.8"]]))
        .await;
    assert_eq!(r[1], "1.7.0");
    assert!(r[0].as_str().unwrap().starts_with("anode "));
    let (code, msg) = c.error("server.version", json!(["x", "1.4"])).await;
    assert_eq!((code, msg.as_str()), (1, "server.version already sent"));
    // Still open.
    assert_eq!(
        c.result("server.ping", json!([])).await,
        json!({"data": ""})
    );

    for (asked, text) in [
        (json!("1.8"), "unsupported protocol version: 1.8"),
        (
            json!(["1.7.1", "1.8"]),
            "unsupported protocol version: ['1.7.1', '1.8']",
        ),
        (json!(1.4), "unsupported protocol version: 1.4"),
    ] {
        let mut c = h.client().await;
        let (code, msg) = c.error("server.version", json!(["x", asked])).await;
        assert_eq!((code, msg.as_str()), (1, text));
        assert!(c.closed_within(Duration::from_secs(3)).await);
    }
    for (asked, got) in [
        (Value::Null, "1.4"),
        (json!("1.4.2"), "1.4.2"),
        (json!("1.5"), "1.5"),
        (json!("1.6"), "1.6"),
        (json!(["1.4", "1.7"]), "1.7"),
    ] {
        let mut c = h.client().await;
        let r = c.result("server.version", json!(["x", asked])).await;
        assert_eq!(r[1], got);
    }
    // Named parameters and extra arguments are fine.
    let mut c = h.client().await;
    let r = c
        .result(
            "server.version",
            json!({"client_name": "n", "protocol_version": "1.6", "other": 1}),
        )
        .await;
    assert_eq!(r[1], "1.6");
    let mut c = h.client().await;
    let r = c
        .result("server.version", json!(["n", "1.5", "extra", 3]))
        .await;
    assert_eq!(r[1], "1.5");
}

#[tokio::test]
async fn pipelined_requests_after_version_use_the_new_table() {
    let h = start(3).await;
    let mut c = h.client().await;
    c.send_raw(
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server.version\",\"params\":[\"x\",\"1.7\"]}\n\
          {\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"mempool.recent\"}\n",
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let v = c.recv().await;
        assert!(v.get("error").is_none(), "{v}");
        ids.push(v["id"].as_u64().unwrap());
    }
    ids.sort();
    assert_eq!(ids, vec![1, 2]);
}

#[tokio::test]
async fn envelope_errors_have_the_exact_codes_and_texts() {
    // Every error costs 100 (bad JSON 1100 more): keep this session clear of throttling.
    let mut config = test_config();
    config.limits.cost_soft_limit = 1e9;
    config.limits.cost_hard_limit = 2e9;
    let h = start_with(chain(3, 7), config).await;
    let mut c = h.client_v("1.7").await;
    c.send("nonsense{").await;
    assert_eq!(
        c.recv().await,
        json!({"jsonrpc":"2.0","error":{"code":-32700,"message":"invalid JSON"},"id":null})
    );
    c.send_raw(b"\xff\xfe{}\n").await;
    assert_eq!(
        c.recv().await["error"],
        json!({"code":-32700,"message":"messages must be encoded in UTF-8"})
    );
    c.send("5").await;
    assert_eq!(
        c.recv().await,
        json!({"jsonrpc":"2.0","error":{"code":-32600,"message":"request object must be a dictionary"},"id":null})
    );
    c.send(r#"{"id":7,"method":"server.ping"}"#).await;
    assert_eq!(
        c.recv().await,
        json!({"jsonrpc":"2.0","error":{"code":-32600,"message":"\"jsonrpc\" is not \"2.0\""},"id":7})
    );
    c.send(r#"{"jsonrpc":"2.0","id":[1],"method":"server.ping"}"#)
        .await;
    assert_eq!(
        c.recv().await,
        json!({"jsonrpc":"2.0","error":{"code":-32600,"message":"invalid \"id\": [1]"},"id":null})
    );
    c.send(r#"{"jsonrpc":"2.0","id":8,"method":5}"#).await;
    assert_eq!(
        c.recv().await["error"],
        json!({"code":-32601,"message":"method must be a string"})
    );
    c.send(r#"{"jsonrpc":"2.0","id":9,"method":"server.ping","params":5}"#)
        .await;
    assert_eq!(
        c.recv().await["error"],
        json!({"code":-32602,"message":"invalid request arguments: 5"})
    );
    // A request with a null id is a notification: no reply. A response-shaped message: none.
    c.send(r#"{"jsonrpc":"2.0","id":null,"method":"server.banner"}"#)
        .await;
    c.send(r#"{"jsonrpc":"2.0","id":3,"result":1}"#).await;
    c.send(r#"{"jsonrpc":"2.0","method":"server.ping","params":[]}"#)
        .await;
    c.assert_quiet(Duration::from_millis(300)).await;
    let (code, msg) = c.error("blockchain.relayfee", json!([])).await;
    assert_eq!(
        (code, msg.as_str()),
        (-32601, "unknown method \"blockchain.relayfee\"")
    );
    let (code, msg) = c.error("no.such", json!([])).await;
    assert_eq!((code, msg.as_str()), (-32601, "unknown method \"no.such\""));
    let (code, msg) = c.error("blockchain.block.header", json!([])).await;
    assert_eq!(
        (code, msg.as_str()),
        (
            -32602,
            "0 arguments passed to method \"blockchain.block.header\" but it requires 1"
        )
    );
    let (code, msg) = c
        .error("blockchain.block.header", json!([1, 2, 3, 4]))
        .await;
    assert_eq!(
        (code, msg.as_str()),
        (
            -32602,
            "4 arguments passed to method blockchain.block.header taking at most 2"
        )
    );
    // A misspelt required name: aiorpcX reports the missing name before the unknown one.
    let (_, msg) = c
        .error("blockchain.block.header", json!({"heigth": 1}))
        .await;
    assert_eq!(
        msg,
        "method \"blockchain.block.header\" requires parameter \"height\""
    );
    let (_, msg) = c
        .error("blockchain.block.header", json!({"height": 1, "heigth": 1}))
        .await;
    assert_eq!(
        msg,
        "method \"blockchain.block.header\" does not take parameter \"heigth\""
    );
    let (code, msg) = c.error("blockchain.block.header", json!(["-1"])).await;
    assert_eq!(
        (code, msg.as_str()),
        (1, "-1 should be a non-negative integer")
    );
    let (code, msg) = c
        .error("blockchain.outpoint.subscribe", json!([hx(&[1; 32]), 0]))
        .await;
    assert_eq!(
        (code, msg.as_str()),
        (
            -32602,
            "2 arguments passed to method \"blockchain.outpoint.subscribe\" but it requires 3"
        )
    );
    let (_, msg) = c
        .error(
            "blockchain.outpoint.subscribe",
            json!([hx(&[1; 32]), 0, null]),
        )
        .await;
    assert_eq!(msg, "None should be a hex string");
    let (_, msg) = c.error("blockchain.transaction.get", json!(["zz"])).await;
    assert_eq!(msg, "zz should be a transaction hash");
    let (_, msg) = c
        .error("blockchain.transaction.get", json!([hx(&[1; 32]), "yes"]))
        .await;
    assert_eq!(msg, "\"verbose\" must be a boolean");
    let (_, msg) = c
        .error("blockchain.scriptpubkey.get_balance", json!(["abc"]))
        .await;
    assert_eq!(msg, "abc should be a hex string");
    let (_, msg) = c
        .error("blockchain.transaction.broadcast", json!(["0g"]))
        .await;
    assert_eq!(msg, "0g should be a hex string");
    let (_, msg) = c
        .error("blockchain.transaction.testmempoolaccept", json!(["00"]))
        .await;
    assert_eq!(msg, "00 should be a list");
    // Integers given as strings work, as wallets rely on it.
    let header = c.result("blockchain.block.header", json!(["1"])).await;
    assert_eq!(header.as_str().unwrap().len(), 160);
}

#[tokio::test]
async fn script_hash_validation_before_1_7() {
    let h = start(3).await;
    let mut c = h.client_v("1.6").await;
    let (code, msg) = c
        .error("blockchain.scripthash.get_balance", json!(["abcd"]))
        .await;
    assert_eq!((code, msg.as_str()), (1, "abcd is not a valid script hash"));
    let (_, msg) = c
        .error("blockchain.scripthash.get_balance", json!([12]))
        .await;
    assert_eq!(msg, "12 is not a valid script hash");
    // Upper case and whitespace between byte pairs are accepted.
    let upper = "8B01DF4E368EA28F8DC0423BCF7A4923E3A12D307C875E47A0CFBF90B5C39161";
    let b = c
        .result("blockchain.scripthash.get_balance", json!([upper]))
        .await;
    assert_eq!(b, json!({"confirmed": 0, "unconfirmed": 0}));
}

#[tokio::test]
async fn batches() {
    let h = start(3).await;
    let mut c = h.client_v("1.6").await;
    c.send("[]").await;
    assert_eq!(
        c.recv().await,
        json!({"jsonrpc":"2.0","error":{"code":-32600,"message":"batch is empty"},"id":null})
    );
    c.send(
        r#"[{"jsonrpc":"2.0","id":1,"method":"server.ping"},5,{"jsonrpc":"2.0","id":2,"method":"server.donation_address"},{"jsonrpc":"2.0","method":"server.ping"},{"jsonrpc":"2.0","id":3,"method":"nope"}]"#,
    )
    .await;
    let reply = c.recv().await;
    let items = reply.as_array().expect("one array");
    assert_eq!(items.len(), 4, "{reply}");
    // Pre-validated errors come first.
    assert_eq!(
        items[0],
        json!({"jsonrpc":"2.0","error":{"code":-32600,"message":"request object must be a dictionary"},"id":null})
    );
    let by_id: HashMap<u64, &Value> = items[1..]
        .iter()
        .map(|v| (v["id"].as_u64().unwrap(), v))
        .collect();
    assert_eq!(by_id[&1]["result"], Value::Null);
    assert_eq!(by_id[&2]["result"], "");
    assert_eq!(by_id[&3]["error"]["code"], -32601);
    // Only notifications: no reply. Only responses: dropped.
    c.send(r#"[{"jsonrpc":"2.0","method":"server.ping"}]"#)
        .await;
    c.send(r#"[{"jsonrpc":"2.0","id":1,"result":5}]"#).await;
    c.assert_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn size_limits() {
    let sim = chain(3, 7);
    let mut config = test_config();
    config.limits.max_recv = 1000;
    config.limits.max_send = 350_000;
    let h = start_with(sim, config).await;
    let mut c = h.client_v("1.7").await;
    // An oversized line is dropped without an answer; the next line is served.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"server.ping","params":[0,"{}"]}}"#,
        "0".repeat(2000)
    );
    c.send(&big).await;
    assert_eq!(
        c.result("server.ping", json!([3])).await,
        json!({"data": "000"})
    );
    let (code, msg) = c.error("server.ping", json!([349_990])).await;
    assert_eq!(
        (code, msg.as_str()),
        (-32600, "response too large (over 350,000 bytes")
    );
    let (code, msg) = c.error("server.ping", json!([400_000])).await;
    assert_eq!((code, msg.as_str()), (1, "pong_len value too high"));
    let (_, msg) = c.error("server.ping", json!([0, "zz"])).await;
    assert_eq!(msg, "zz should be a hex string");
    assert_eq!(
        c.result("server.ping", json!([5, "abc"])).await,
        json!({"data": "00000"})
    );
}

#[tokio::test]
async fn headers_and_checkpoints() {
    let h = start(20).await;
    let tip = h.query.tip();
    let hashes: Vec<[u8; 32]> = h
        .sim
        .with_chain(|c| (0..=c.height()).map(|i| c.block(i).unwrap().hash).collect());
    let header = |i: u32| {
        h.sim
            .with_chain(|c| hex::encode(&c.block(i).unwrap().header))
    };
    let mut c = h.client_v("1.4").await;
    assert_eq!(
        c.result("blockchain.block.header", json!([5])).await,
        header(5)
    );
    let proof = c.result("blockchain.block.header", json!([5, 8])).await;
    assert_eq!(proof["header"], header(5));
    let branch: Vec<String> = merkle_branch(&hashes[..=8], 5).iter().map(hx).collect();
    assert_eq!(proof["branch"], json!(branch));
    assert_eq!(proof["root"], hx(&merkle_root(&hashes[..=8])));
    assert_eq!(
        proof.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["header", "branch", "root"]
    );
    let (code, msg) = c.error("blockchain.block.header", json!([21])).await;
    assert_eq!((code, msg.as_str()), (1, "height 21 out of range"));
    let (_, msg) = c.error("blockchain.block.header", json!([9, 8])).await;
    assert_eq!(
        msg,
        "require header height 9 <= cp_height 8 <= chain height 20"
    );
    let (_, msg) = c.error("blockchain.block.header", json!([5, 1000])).await;
    assert_eq!(
        msg,
        "require header height 5 <= cp_height 1,000 <= chain height 20"
    );

    let r = c.result("blockchain.block.headers", json!([0, 3])).await;
    assert_eq!(
        r,
        json!({"hex": format!("{}{}{}", header(0), header(1), header(2)), "count": 3, "max": 2016})
    );
    let r = c
        .result("blockchain.block.headers", json!([18, 100, 20]))
        .await;
    assert_eq!(r["count"], 3);
    assert_eq!(r["root"], hx(&merkle_root(&hashes)));
    let branch: Vec<String> = merkle_branch(&hashes, 20).iter().map(hx).collect();
    assert_eq!(r["branch"], json!(branch));
    let r = c
        .result("blockchain.block.headers", json!([50, 10, 5]))
        .await;
    assert_eq!(r, json!({"hex": "", "count": 0, "max": 2016}));
    let (_, msg) = c.error("blockchain.block.headers", json!([0, 10, 5])).await;
    assert_eq!(
        msg,
        "require header height 9 <= cp_height 5 <= chain height 20"
    );

    let mut c16 = h.client_v("1.6").await;
    let r = c16.result("blockchain.block.headers", json!([1, 2])).await;
    assert_eq!(
        r,
        json!({"count": 2, "max": 2016, "headers": [header(1), header(2)]})
    );
    let sub = c16.result("blockchain.headers.subscribe", json!([])).await;
    assert_eq!(
        sub,
        json!({"hex": hex::encode(&tip.header), "height": tip.height})
    );
}

#[tokio::test]
async fn script_methods_match_the_reference() {
    let h = start(40).await;
    h.sim
        .with_chain_mut(|c| c.add_mempool_txs(6))
        .expect("mempool");
    h.query.refresh();
    let (script, _) = popular_scripts(&h)[0].clone();
    let shash = sh(&script);
    let display = scripthash_of(&script);
    let history = h.query.history(&shash, 1_000_000).await.unwrap();
    assert!(history.confirmed.len() > 1);
    let expect_history: Vec<Value> = history
        .entries()
        .map(|e| match e.fee {
            Some(fee) if e.height <= 0 => {
                json!({"tx_hash": hx(&e.txid), "height": e.height, "fee": fee})
            }
            _ => json!({"tx_hash": hx(&e.txid), "height": e.height}),
        })
        .collect();
    let balance = h.query.balance(&shash).await.unwrap();
    let utxos: Vec<Value> = h
        .query
        .unspent(&shash, 1_000_000)
        .await
        .unwrap()
        .iter()
        .map(|u| json!({"tx_hash": hx(&u.txid), "tx_pos": u.vout, "height": u.height, "value": u.value}))
        .collect();
    let status = history.status_hash().map(hex::encode);

    let mut c = h.client_v("1.4").await;
    assert_eq!(
        c.result("blockchain.scripthash.get_history", json!([display]))
            .await,
        json!(expect_history)
    );
    assert_eq!(
        c.result("blockchain.scripthash.get_balance", json!([display]))
            .await,
        json!({"confirmed": balance.confirmed, "unconfirmed": balance.unconfirmed})
    );
    let listed = c
        .result("blockchain.scripthash.listunspent", json!([display]))
        .await;
    assert_eq!(listed, json!(utxos));
    // Member order is the protocol's, not alphabetical.
    let raw = listed.to_string();
    if let Some(first) = listed.as_array().unwrap().first() {
        assert!(raw.starts_with("[{\"tx_hash\""), "{raw} {first}");
    }
    let mempool: Vec<Value> = expect_history
        .iter()
        .filter(|e| e["height"].as_i64().unwrap() <= 0)
        .cloned()
        .collect();
    assert_eq!(
        c.result("blockchain.scripthash.get_mempool", json!([display]))
            .await,
        json!(mempool)
    );
    assert_eq!(
        c.result("blockchain.scripthash.subscribe", json!([display]))
            .await,
        json!(status)
    );
    // 1.4 has no unsubscribe.
    let (code, _) = c
        .error("blockchain.scripthash.unsubscribe", json!([display]))
        .await;
    assert_eq!(code, -32601);

    let mut c17 = h.client_v("1.7").await;
    let spk = hex::encode(&script);
    assert_eq!(
        c17.result("blockchain.scriptpubkey.get_history", json!([spk]))
            .await,
        json!({"history": expect_history})
    );
    assert_eq!(
        c17.result("blockchain.scriptpubkey.get_mempool", json!({"spk": spk}))
            .await,
        json!({"history": mempool})
    );
    assert_eq!(
        c17.result("blockchain.scriptpubkey.listunspent", json!([spk]))
            .await,
        json!({"utxos": utxos})
    );
    assert_eq!(
        c17.result("blockchain.scriptpubkey.subscribe", json!([spk]))
            .await,
        json!(status)
    );
    assert_eq!(
        c17.result("blockchain.scriptpubkey.unsubscribe", json!([spk]))
            .await,
        json!(true)
    );
    assert_eq!(
        c17.result("blockchain.scriptpubkey.unsubscribe", json!([spk]))
            .await,
        json!(false)
    );
    // The empty script is legal.
    assert_eq!(
        c17.result("blockchain.scriptpubkey.get_balance", json!([""]))
            .await,
        json!({"confirmed": 0, "unconfirmed": 0})
    );
}

#[tokio::test]
async fn history_too_large_uses_code_10001() {
    let sim = chain(60, 7);
    let mut config = test_config();
    // floor((1000 - 100) / 99) = 9 confirmed entries at most.
    config.limits.max_send = 1000;
    let h = start_with(sim, config).await;
    let (script, _) = popular_scripts(&h)[0].clone();
    let confirmed = h
        .query
        .history(&sh(&script), usize::MAX)
        .await
        .unwrap()
        .confirmed
        .len();
    assert!(
        confirmed >= 9,
        "the test chain needs a popular script ({confirmed})"
    );
    let mut c = h.client_v("1.6").await;
    let display = scripthash_of(&script);
    let (code, msg) = c
        .error("blockchain.scripthash.get_history", json!([display]))
        .await;
    assert_eq!((code, msg.as_str()), (10001, "history too large"));
    let (code, _) = c
        .error("blockchain.scripthash.subscribe", json!([display]))
        .await;
    assert_eq!(code, 10001);
    // Nothing was recorded: unsubscribe says so.
    assert_eq!(
        c.result("blockchain.scripthash.unsubscribe", json!([display]))
            .await,
        json!(false)
    );
    // Balance is not subject to the limit.
    assert!(c
        .result("blockchain.scripthash.get_balance", json!([display]))
        .await
        .is_object());
}

#[tokio::test]
async fn transaction_methods() {
    let h = start(10).await;
    let (height, txids) = h.sim.with_chain(|c| {
        let b = c.block(7).unwrap();
        (7u32, b.txids.clone())
    });
    let pos = txids.len() - 1;
    let txid = txids[pos];
    let raw = h.sim.with_chain(|c| hex::encode(&c.tx(&txid).unwrap().raw));
    let branch: Vec<String> = merkle_branch(&txids, pos).iter().map(hx).collect();
    let mut c = h.client_v("1.7").await;
    assert_eq!(
        c.result("blockchain.transaction.get", json!([hx(&txid)]))
            .await,
        raw
    );
    let verbose = c
        .result("blockchain.transaction.get", json!([hx(&txid), true]))
        .await;
    assert_eq!(verbose["txid"], hx(&txid));
    assert_eq!(
        c.result(
            "blockchain.transaction.get_merkle",
            json!([hx(&txid), height])
        )
        .await,
        json!({"block_height": height, "merkle": branch, "pos": pos})
    );
    assert_eq!(
        c.result("blockchain.transaction.id_from_pos", json!([height, pos]))
            .await,
        json!(hx(&txid))
    );
    assert_eq!(
        c.result(
            "blockchain.transaction.id_from_pos",
            json!({"height": height, "tx_pos": pos, "merkle": true})
        )
        .await,
        json!({"tx_hash": hx(&txid), "merkle": branch})
    );
    let (code, msg) = c
        .error("blockchain.transaction.get_merkle", json!([hx(&txid), 6]))
        .await;
    assert_eq!(
        (code, msg.clone()),
        (1, format!("tx {} not in block at height 6", hx(&txid)))
    );
    let (_, msg) = c
        .error("blockchain.transaction.get_merkle", json!([hx(&txid), 11]))
        .await;
    assert_eq!(msg, "height 11 out of range");
    let (_, msg) = c
        .error("blockchain.transaction.id_from_pos", json!([7, 1000]))
        .await;
    assert_eq!(msg, "no tx at position 1,000 in block at height 7");
    let (_, msg) = c
        .error("blockchain.transaction.id_from_pos", json!([11, 0]))
        .await;
    assert_eq!(msg, "db error: DBError('block 11 not on disk (>10)')");
    let (code, msg) = c
        .error("blockchain.transaction.get", json!([hx(&[7; 32])]))
        .await;
    assert_eq!(code, 2);
    assert_eq!(
        msg,
        "daemon error: DaemonError({'code': -5, 'message': 'No such mempool or blockchain \
         transaction. Use gettransaction for wallet transactions.'})"
    );
}

/// A raw transaction spending the first confirmed unspent output worth spending, built
/// with the coin's encoder: (raw hex, txid, the spent outpoint's txid, its height).
fn spend_raw(h: &Harness) -> (String, [u8; 32], [u8; 32], u32) {
    h.sim.with_chain(|c| {
        for height in 1..=c.height() {
            for funding in &c.block(height).unwrap().txids {
                for (vout, o) in c.tx(funding).unwrap().outputs.iter().enumerate() {
                    let input = anode_coins::OutPoint {
                        txid: *funding,
                        vout: vout as u32,
                    };
                    if vout != 0 || o.value < 20_000 || c.output_spender(&input) != Some(None) {
                        continue;
                    }
                    let out = anode_coins::TxOut {
                        value: o.value - 10_000,
                        script: vec![0x51],
                    };
                    let tx = c.coin().encoder().unwrap().spend(&[input], &[out]).unwrap();
                    return (hex::encode(&tx.raw), tx.txid, *funding, height);
                }
            }
        }
        panic!("nothing to spend");
    })
}

#[tokio::test]
async fn broadcast_and_node_methods() {
    let h = start(10).await;
    let (raw, txid, funding, funding_height) = spend_raw(&h);
    let mut c = h.client_v("1.7").await;
    let accept = c
        .result("blockchain.transaction.testmempoolaccept", json!([[raw]]))
        .await;
    assert_eq!(accept[0]["txid"], hx(&txid));
    assert_eq!(accept[0]["allowed"], true);
    assert_eq!(
        c.result("blockchain.transaction.broadcast", json!([raw]))
            .await,
        hx(&txid)
    );
    assert!(h.sim.with_chain(|ch| ch.mempool().contains(&txid)));
    // Again: the node (Core 31) answers a transaction it already holds with its txid.
    assert_eq!(
        c.result("blockchain.transaction.broadcast", json!([raw]))
            .await,
        hx(&txid)
    );
    // A conflicting spend of the same output is refused.
    let conflict = h.sim.with_chain(|ch| {
        let spent = ch.tx(&txid).unwrap().inputs[0];
        let value = ch.output(&spent).unwrap().value - 20_000;
        let out = anode_coins::TxOut {
            value,
            script: vec![0x52],
        };
        let tx = ch
            .coin()
            .encoder()
            .unwrap()
            .spend(&[spent], &[out])
            .unwrap();
        hex::encode(tx.raw)
    });
    let (code, msg) = c
        .error("blockchain.transaction.broadcast", json!([conflict]))
        .await;
    assert_eq!(code, 1);
    assert!(
        msg.starts_with("the transaction was rejected by network rules.\n\n")
            && msg.ends_with(&format!("\n[{conflict}]")),
        "{msg}"
    );
    let accept = c
        .result("blockchain.transaction.testmempoolaccept", json!([[raw]]))
        .await;
    assert_eq!(accept[0]["allowed"], false);
    assert!(accept[0]["reason"].is_string());

    // Fees: the simulator's curve is 0.0002 / sqrt(target); Python float spelling.
    c.send(r#"{"jsonrpc":"2.0","id":"f","method":"blockchain.estimatefee","params":[25]}"#)
        .await;
    assert_eq!(
        c.recv_line().await,
        "{\"jsonrpc\":\"2.0\",\"result\":4e-05,\"id\":\"f\"}\n"
    );
    assert_eq!(
        c.result("blockchain.estimatefee", json!([4, "economical"]))
            .await,
        json!(0.0001)
    );
    let (code, msg) = c.error("blockchain.estimatefee", json!([4, "fast"])).await;
    assert_eq!((code, msg.as_str()), (1, "unknown estimatefee mode: FAST"));
    let (_, msg) = c.error("blockchain.estimatefee", json!([4, ""])).await;
    assert_eq!(msg, "unknown estimatefee mode: ");
    assert_eq!(
        c.result("blockchain.estimatefee", json!([4, null])).await,
        json!(0.0001)
    );
    let info = c.result("mempool.get_info", json!([])).await;
    assert!(info["minrelaytxfee"].is_number(), "{info}");
    assert_eq!(info["incrementalrelayfee"], json!(0.000001), "{info}");

    let mut c15 = h.client_v("1.5").await;
    c15.send(r#"{"jsonrpc":"2.0","id":1,"method":"blockchain.relayfee"}"#)
        .await;
    assert_eq!(
        c15.recv_line().await,
        "{\"jsonrpc\":\"2.0\",\"result\":1e-06,\"id\":1}\n"
    );

    // mempool.recent sees the broadcast once the index has.
    h.query.refresh();
    let recent = c.result("mempool.recent", json!([])).await;
    assert_eq!(recent[0]["txid"], hx(&txid));
    assert_eq!(recent[0]["fee"], 10_000);
    assert!(c
        .result("mempool.get_fee_histogram", json!([]))
        .await
        .is_array());

    // Outpoint status of the broadcast's input: funded in a block, spent in the mempool.
    assert_eq!(
        c.result(
            "blockchain.outpoint.get_status",
            json!([hx(&funding), 0, ""])
        )
        .await,
        json!({"funder_height": funding_height, "spender_txhash": hx(&txid), "spender_height": 0})
    );
    assert_eq!(
        c.result(
            "blockchain.outpoint.get_status",
            json!([hx(&[9; 32]), 0, "00"])
        )
        .await,
        json!({})
    );
    assert_eq!(
        c.result("blockchain.outpoint.get_status", json!([hx(&txid), 0, ""]))
            .await,
        json!({"funder_height": 0})
    );

    let (raw2, txid2, _, _) = spend_raw(&h);
    assert_eq!(
        c.result("blockchain.transaction.broadcast_package", json!([[raw2]]))
            .await,
        json!({"success": true})
    );
    assert!(h.sim.with_chain(|ch| ch.mempool().contains(&txid2)));
    let verbose = c
        .result(
            "blockchain.transaction.broadcast_package",
            json!({"raw_txs": [raw2], "verbose": 1}),
        )
        .await;
    assert_eq!(verbose["package_msg"], "success", "{verbose}");
    let (_, msg) = c
        .error("blockchain.transaction.broadcast_package", json!([["zz"]]))
        .await;
    assert_eq!(msg, "zz should be a hex string");
    let (code, _) = c16_unknown(&h, "blockchain.transaction.broadcast_package").await;
    assert_eq!(code, -32601);
}

async fn c16_unknown(h: &Harness, method: &str) -> (i64, String) {
    let mut c = h.client_v("1.5").await;
    c.error(method, json!([[]])).await
}

#[tokio::test]
async fn a_banner_file_gets_the_servers_and_the_nodes_versions() {
    let dir = tempfile::tempdir().unwrap();
    let banner = dir.path().join("banner.txt");
    std::fs::write(
        &banner,
        "v$SERVER_VERSION ($SERVER_SUBVERSION) on node $DAEMON_VERSION $DAEMON_SUBVERSION, tips: $DONATION_ADDRESS",
    )
    .unwrap();
    let mut config = test_config();
    config.banner_file = Some(banner);
    config.donation_address = "bc1qtips".into();
    let h = start_with(chain(3, 2), config).await;
    let mut c = h.client_v("1.4").await;
    let text = c.result("server.banner", json!([])).await;
    let text = text.as_str().unwrap();
    // The simulator reports Bitcoin Core 31's version (310000) and user agent.
    assert!(
        text.contains("on node 0.31.0 /Satoshi:31.0.0/anode-simulator/, tips: bc1qtips"),
        "{text}"
    );
    assert!(text.starts_with("v0.1.0 (anode 0.1.0)"), "{text}");
}

#[tokio::test]
async fn server_methods() {
    let sim = chain(3, 7);
    let mut config = test_config();
    config.report_services = vec![
        "tcp://example.com:50001".parse().unwrap(),
        "ssl://example.com:50002".parse().unwrap(),
        "wss://example.com:50004".parse().unwrap(),
    ];
    config.donation_address = "bc1qexample".into();
    let configured = vec!["peer.example.org v1.7.0 s50002 t50001".to_string()];
    let h = start_with_peers(sim, config, configured).await;
    let genesis = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";
    let mut c = h.client_v("1.7").await;
    let f = c.result("server.features", json!([])).await;
    let expected = format!(
        r#"{{"hosts":{{"example.com":{{"tcp_port":50001,"ssl_port":50002,"wss_port":50004}}}},"pruning":null,"server_version":"{}","protocol_min":"1.4","protocol_max":"1.7.0","genesis_hash":"{genesis}","services":["tcp://example.com:50001","ssl://example.com:50002","wss://example.com:50004"]}}"#,
        f["server_version"].as_str().unwrap()
    );
    assert_eq!(f.to_string(), expected);
    let mut c16 = h.client_v("1.6").await;
    let f16 = c16.result("server.features", json!([])).await;
    assert_eq!(f16["hash_function"], "sha256");
    assert_eq!(c16.result("server.ping", json!([])).await, Value::Null);
    assert_eq!(
        c16.result("server.ping", json!([5, "zz"])).await,
        Value::Null
    );
    assert!(c
        .result("server.banner", json!([]))
        .await
        .as_str()
        .unwrap()
        .starts_with("You are connected to an anode"));
    assert_eq!(
        c.result("server.donation_address", json!([])).await,
        "bc1qexample"
    );
    // As in ElectrumX, a configured peer is served once a check has found it good; until then
    // it is known but not passed on.
    assert_eq!(
        c.result("server.peers.subscribe", json!([])).await,
        json!([])
    );
    let known: Vec<String> = h.peers.peers().into_iter().map(|p| p.host).collect();
    assert!(known.contains(&"peer.example.org".to_string()), "{known:?}");
    assert_eq!(
        c.result("server.add_peer", json!([{"hosts": {}}])).await,
        json!(false)
    );
}

#[tokio::test]
async fn json_rpc_1_0_replies_have_its_shape() {
    let h = start(3).await;
    let mut c = h.client().await;
    c.send(r#"{"jsonrpc":"1.0","id":1,"method":"server.version","params":["x","1.6"]}"#)
        .await;
    let r = c.recv().await;
    assert_eq!(r["error"], Value::Null);
    assert_eq!(r["result"][1], "1.6");
    assert!(r.get("jsonrpc").is_none());
    c.send(r#"{"id":2,"method":"nope","params":[]}"#).await;
    let r = c.recv().await;
    assert_eq!(r["result"], Value::Null);
    assert_eq!(r["error"]["code"], -32601);
}

/// The method table of docs/protocol.md (Methods by version): which methods exist in which
/// negotiated version.
#[tokio::test]
async fn method_tables_match_the_conformance_matrix() {
    let mut config = test_config();
    config.limits.cost_soft_limit = 1e9;
    config.limits.cost_hard_limit = 2e9;
    let h = start_with(chain(3, 7), config).await;
    let versions = ["1.4", "1.4.1", "1.4.2", "1.5", "1.6", "1.7"];
    // (method, first version index where present, first index where absent again)
    let table: &[(&str, usize, usize)] = &[
        ("server.ping", 0, 6),
        ("server.features", 0, 6),
        ("server.banner", 0, 6),
        ("server.donation_address", 0, 6),
        ("server.add_peer", 0, 6),
        ("server.peers.subscribe", 0, 6),
        ("blockchain.block.header", 0, 6),
        ("blockchain.block.headers", 0, 6),
        ("blockchain.headers.subscribe", 0, 6),
        ("blockchain.estimatefee", 0, 6),
        ("blockchain.relayfee", 0, 4),
        ("blockchain.scripthash.get_balance", 0, 5),
        ("blockchain.scripthash.get_history", 0, 5),
        ("blockchain.scripthash.get_mempool", 0, 5),
        ("blockchain.scripthash.listunspent", 0, 5),
        ("blockchain.scripthash.subscribe", 0, 5),
        ("blockchain.scripthash.unsubscribe", 2, 5),
        ("blockchain.scriptpubkey.get_balance", 5, 6),
        ("blockchain.scriptpubkey.get_history", 5, 6),
        ("blockchain.scriptpubkey.get_mempool", 5, 6),
        ("blockchain.scriptpubkey.listunspent", 5, 6),
        ("blockchain.scriptpubkey.subscribe", 5, 6),
        ("blockchain.scriptpubkey.unsubscribe", 5, 6),
        ("blockchain.outpoint.subscribe", 5, 6),
        ("blockchain.outpoint.get_status", 5, 6),
        ("blockchain.outpoint.unsubscribe", 5, 6),
        ("blockchain.transaction.broadcast", 0, 6),
        ("blockchain.transaction.broadcast_package", 4, 6),
        ("blockchain.transaction.testmempoolaccept", 5, 6),
        ("blockchain.transaction.get", 0, 6),
        ("blockchain.transaction.get_merkle", 0, 6),
        ("blockchain.transaction.id_from_pos", 0, 6),
        ("mempool.get_fee_histogram", 0, 6),
        ("mempool.get_info", 4, 6),
        ("mempool.recent", 5, 6),
        ("blockchain.address.get_history", 6, 6),
        ("blockchain.block.get_header", 6, 6),
        ("blockchain.numblocks.subscribe", 6, 6),
    ];
    for (i, version) in versions.iter().enumerate() {
        let mut c = h.client_v(version).await;
        for (method, from, until) in table {
            // Named arguments that no method takes: present methods fail with -32602 (or
            // succeed when they take no parameters... they then reject the name), absent
            // ones with -32601.
            let r = c.call(method, json!({"zzz_not_a_parameter": 1})).await;
            let code = r["error"]["code"].as_i64();
            let present = i >= *from && i < *until;
            if present {
                assert_ne!(
                    code,
                    Some(-32601),
                    "{method} should exist in {version}: {r}"
                );
            } else {
                assert_eq!(
                    code,
                    Some(-32601),
                    "{method} should not exist in {version}: {r}"
                );
                assert_eq!(
                    r["error"]["message"],
                    format!("unknown method \"{method}\"")
                );
            }
        }
    }
}

/// Garbage, truncated JSON, odd types and random bytes from many clients at once: every
/// client still gets its answers and the server stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_does_not_disturb_the_server() {
    use rand::{Rng, SeedableRng};
    let mut config = test_config();
    config.limits.cost_soft_limit = 1e9;
    config.limits.cost_hard_limit = 2e9;
    let h = start_with(chain(5, 7), config).await;
    let samples = [
        r#"{"jsonrpc":"2.0","id":1,"method":"blockchain.block.header","params":[1e400]}"#,
        r#"{"jsonrpc":"2.0","id":{"a":1},"method":"x"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"blockchain.block.headers","params":[0,"5000"]}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"blockchain.transaction.id_from_pos","params":[1,4294967296,true]}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"blockchain.outpoint.subscribe","params":["00",99999999999,""]}"#,
        r#"[[],[{}],{"jsonrpc":"2.0","id":2,"method":"server.ping"}]"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"server.version","params":[null,null]}"#,
        r#"{"jsonrpc":"2.0","id":1.5,"method":"blockchain.estimatefee","params":[-0.5,5]}"#,
        r#"{"jsonrpc":"2.0","id":true,"method":"server.ping","params":{"pong_len":"3"}}"#,
        "\"just a string\"",
        "{\"unterminated\":",
        "",
    ];
    let mut tasks = Vec::new();
    for n in 0..12u64 {
        let addr = h.tcp();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(n);
            let mut c = Client::connect(addr).await;
            let v = ["1.4", "1.5", "1.6", "1.7"][n as usize % 4];
            c.result("server.version", json!(["fuzz", v])).await;
            let mut junk = Vec::new();
            for _ in 0..40 {
                if rng.gen_bool(0.3) {
                    let len = rng.gen_range(1..200);
                    let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                    bytes.retain(|b| *b != b'\n');
                    junk.extend_from_slice(&bytes);
                } else {
                    junk.extend_from_slice(samples[rng.gen_range(0..samples.len())].as_bytes());
                }
                junk.push(b'\n');
            }
            c.send_raw(&junk).await;
            // Whatever came back, a final request is still answered. (Absurd header counts are left
            // out: they cost count/50 and would rightly end the session.)
            let r = c.call("server.donation_address", json!([])).await;
            assert_eq!(r["result"], "", "{r}");
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let mut c = h.client_v("1.7").await;
    assert_eq!(
        c.result("server.ping", json!([1])).await,
        json!({"data": "0"})
    );
}

#[tokio::test]
async fn subscription_limits_per_session_and_for_the_server() {
    let sim = chain(12, 3);
    let mut config = test_config();
    config.limits.max_session_subs = 2;
    config.limits.max_subs = 3;
    let h = start_with(sim, config).await;
    let scripts: Vec<String> = popular_scripts(&h)
        .iter()
        .map(|(s, _)| hex::encode(s))
        .take(4)
        .collect();
    assert_eq!(scripts.len(), 4, "the test chain needs four scripts");
    let outpoint = h.sim.with_chain(|c| hx(&c.block(3).unwrap().txids[0]));
    let mut a = h.client_v("1.7").await;
    let mut b = h.client_v("1.7").await;
    a.result("blockchain.scriptpubkey.subscribe", json!([scripts[0]]))
        .await;
    a.result("blockchain.scriptpubkey.subscribe", json!([scripts[1]]))
        .await;
    // Subscribing again to a script already held takes no room.
    a.result("blockchain.scriptpubkey.subscribe", json!([scripts[1]]))
        .await;
    let (code, msg) = a
        .error("blockchain.scriptpubkey.subscribe", json!([scripts[2]]))
        .await;
    assert_eq!(
        (code, msg.as_str()),
        (1, "your address subscription limit 2 reached")
    );
    // Outpoints count against the same limits.
    let (code, _) = a
        .error("blockchain.outpoint.subscribe", json!([outpoint, 0, "00"]))
        .await;
    assert_eq!(code, 1);
    b.result("blockchain.scriptpubkey.subscribe", json!([scripts[2]]))
        .await;
    let (code, msg) = b
        .error("blockchain.scriptpubkey.subscribe", json!([scripts[3]]))
        .await;
    assert_eq!(
        (code, msg.as_str()),
        (1, "server subscription limit 3 reached")
    );
    // Room comes back with an unsubscribe, and with a session's end.
    assert_eq!(
        a.result("blockchain.scriptpubkey.unsubscribe", json!([scripts[0]]))
            .await,
        json!(true)
    );
    b.result("blockchain.scriptpubkey.subscribe", json!([scripts[3]]))
        .await;
    drop(a);
    let mut c = h.client_v("1.7").await;
    let mut room = false;
    for _ in 0..100 {
        let answer = c
            .call("blockchain.scriptpubkey.subscribe", json!([scripts[0]]))
            .await;
        if answer.get("error").is_none() {
            room = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(room, "a closed session's subscriptions were not released");
}

#[tokio::test]
async fn request_logging_toggles_per_session_and_for_new_sessions() {
    use anode::admin::LoggingChange;
    let h = start(5).await;
    let _a = h.client_v("1.4").await;
    let _b = h.client_v("1.4").await;
    let ids: Vec<u64> = h.handle.sessions().iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), 2);
    let state = h
        .handle
        .set_session_logging(LoggingChange::Toggle(vec![ids[0], 999]));
    assert_eq!(state.toggled, vec![(ids[0], true)]);
    assert!(!state.log_new);
    let state = h
        .handle
        .set_session_logging(LoggingChange::Toggle(vec![ids[0]]));
    assert_eq!(state.toggled, vec![(ids[0], false)]);
    let state = h.handle.set_session_logging(LoggingChange::All);
    assert_eq!(state.toggled, vec![(ids[0], true), (ids[1], true)]);
    assert!(state.log_new);
    let state = h.handle.set_session_logging(LoggingChange::ToggleNew);
    assert!(!state.log_new);
    let state = h.handle.set_session_logging(LoggingChange::None);
    assert_eq!(state.toggled, vec![(ids[0], false), (ids[1], false)]);
}

/// Raw request lines, `id` from `first`, sent in one write.
fn pipelined(first: u64, calls: &[(&str, Value)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (i, (method, params)) in calls.iter().enumerate() {
        let msg =
            json!({"jsonrpc": "2.0", "id": first + i as u64, "method": method, "params": params});
        bytes.extend_from_slice(msg.to_string().as_bytes());
        bytes.push(b'\n');
    }
    bytes
}

/// Reads `n` answers, in the order they arrive.
async fn answers(c: &mut Client, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        let v = c.recv().await;
        if v.get("method").is_some() {
            c.notifications.push_back(v);
        } else {
            out.push(v);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_state_changes_take_effect_in_the_order_sent() {
    // ElectrumX answers `true` to the unsubscribe of a pipelined subscribe+unsubscribe every
    // time; anode once answered `false` and kept the subscription (20 times out of 20).
    let h = start(20).await;
    let (script, _) = popular_scripts(&h)[0].clone();
    let display = scripthash_of(&script);
    for (version, method_family, param) in [
        ("1.7", "blockchain.scriptpubkey", hex::encode(&script)),
        ("1.4.2", "blockchain.scripthash", display.clone()),
    ] {
        let subscribe = format!("{method_family}.subscribe");
        let unsubscribe = format!("{method_family}.unsubscribe");
        let mut c = h.client_v(version).await;
        for round in 0..20u64 {
            let first = 100 + round * 10;
            c.send_raw(&pipelined(
                first,
                &[
                    (subscribe.as_str(), json!([param])),
                    (unsubscribe.as_str(), json!([param])),
                ],
            ))
            .await;
            let got = answers(&mut c, 2).await;
            assert_eq!(
                got[0]["id"],
                json!(first),
                "{version}: answers in order: {got:?}"
            );
            assert!(got[0]["result"].is_string(), "{version}: {got:?}");
            assert_eq!(
                got[1]["result"],
                json!(true),
                "{version} round {round}: {got:?}"
            );
            assert_eq!(
                c.result(&unsubscribe, json!([param])).await,
                json!(false),
                "{version} round {round}: the subscription outlived its unsubscribe"
            );
        }
        // Subscribe twice, then unsubscribe, in one write.
        c.send_raw(&pipelined(
            900,
            &[
                (subscribe.as_str(), json!([param])),
                (subscribe.as_str(), json!([param])),
                (unsubscribe.as_str(), json!([param])),
            ],
        ))
        .await;
        let got = answers(&mut c, 3).await;
        assert_eq!(got[0]["result"], got[1]["result"], "{got:?}");
        assert_eq!(got[2]["result"], json!(true), "{got:?}");
        assert_eq!(c.result(&unsubscribe, json!([param])).await, json!(false));
    }

    // Outpoints (1.7): subscribe then unsubscribe.
    let (txid, vout) = h.sim.with_chain(|c| {
        let txid = c.block(3).unwrap().txids[0];
        (txid, 0u32)
    });
    let mut c = h.client_v("1.7").await;
    let param = json!([hx(&txid), vout]);
    c.send_raw(&pipelined(
        1,
        &[
            (
                "blockchain.outpoint.subscribe",
                json!([hx(&txid), vout, ""]),
            ),
            ("blockchain.outpoint.unsubscribe", param.clone()),
        ],
    ))
    .await;
    let got = answers(&mut c, 2).await;
    assert!(got[0]["result"].is_object(), "{got:?}");
    assert_eq!(got[1]["result"], json!(true), "{got:?}");
    assert_eq!(
        c.result("blockchain.outpoint.unsubscribe", param).await,
        json!(false)
    );

    // server.version pipelined with a subscription: the subscription is the session's.
    let mut c = h.client().await;
    c.send_raw(&pipelined(
        1,
        &[
            ("server.version", json!(["x", "1.7"])),
            (
                "blockchain.scriptpubkey.subscribe",
                json!([hex::encode(&script)]),
            ),
            (
                "blockchain.scriptpubkey.unsubscribe",
                json!([hex::encode(&script)]),
            ),
        ],
    ))
    .await;
    let got = answers(&mut c, 3).await;
    assert_eq!(got[0]["result"][1], json!("1.7"), "{got:?}");
    assert!(got[1]["result"].is_string(), "{got:?}");
    assert_eq!(got[2]["result"], json!(true), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_leave_in_the_order_requests_arrived() {
    // Decided in docs/protocol-divergences.md: a client reading line by line pairs answers
    // with its requests without looking at ids.
    let h = start(20).await;
    let (script, _) = popular_scripts(&h)[0].clone();
    let display = scripthash_of(&script);
    let mut c = h.client_v("1.6").await;
    for round in 0..10u64 {
        let calls: Vec<(&str, Value)> = (0..30)
            .map(|i| match i % 5 {
                0 => ("blockchain.scripthash.get_history", json!([display])),
                1 => ("server.ping", json!([])),
                2 => ("blockchain.headers.subscribe", json!([])),
                3 => ("blockchain.scripthash.get_balance", json!([display])),
                _ => ("blockchain.block.header", json!([i])),
            })
            .collect();
        let first = 1_000 * (round + 1);
        c.send_raw(&pipelined(first, &calls)).await;
        let got = answers(&mut c, calls.len()).await;
        let ids: Vec<u64> = got.iter().map(|v| v["id"].as_u64().unwrap()).collect();
        let expected: Vec<u64> = (first..first + calls.len() as u64).collect();
        assert_eq!(ids, expected);
    }
}

#[tokio::test]
async fn electrumx_wire_details() {
    let mut config = test_config();
    // Each error costs 100 (bad JSON 1,100): keep the session clear of throttling.
    config.limits.cost_soft_limit = 1e9;
    config.limits.cost_hard_limit = 1e10;
    let h = start_with(chain(5, 7), config).await;
    let mut c = h.client_v("1.4").await;

    // An empty line is a message that is not JSON (aiorpcX: json.loads(b'') fails).
    c.send_raw(b"\n").await;
    assert_eq!(
        c.recv_line().await,
        "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,\"message\":\"invalid JSON\"},\"id\":null}\n"
    );

    // A wrong name for a required parameter names the missing one, as aiorpcX does.
    c.send(r#"{"jsonrpc":"2.0","id":5,"method":"blockchain.block.header","params":{"h":1}}"#)
        .await;
    assert_eq!(
        c.recv().await,
        json!({"jsonrpc":"2.0","error":{"code":-32602,
            "message":"method \"blockchain.block.header\" requires parameter \"height\""},"id":5})
    );

    // The genesis coinbase: the node's own error, relayed in its words.
    let genesis_coinbase = h.sim.with_chain(|c| c.block(0).unwrap().txids[0]);
    let (code, message) = c
        .error("blockchain.transaction.get", json!([hx(&genesis_coinbase)]))
        .await;
    assert_eq!(code, 2);
    assert_eq!(
        message,
        "daemon error: DaemonError({'code': -5, 'message': 'The genesis block coinbase is not \
         considered an ordinary transaction and cannot be retrieved'})"
    );
    // A transaction nobody has: the node's -5 text, as the node words it.
    let (code, message) = c
        .error("blockchain.transaction.get", json!([hx(&[0x42; 32])]))
        .await;
    assert_eq!(code, 2);
    assert!(
        message.contains("'code': -5")
            && message.contains("No such mempool or blockchain transaction"),
        "{message}"
    );
}
