//! The checks: for every method of docs/protocol.md (Methods by version) in every version, its
//! answer against the model (or its error), the notifications (Notifications by version) after
//! each scenario step, and the connection-level behaviours of its Transport, JSON-RPC and
//! Versions sections (negotiation, malformed input, batches).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::client::{Client, Transport};
use crate::model::{display, sort_unconfirmed_utxos, ChainView};
use crate::node::Node;
use crate::report::Recorder;
use crate::suite::{at_least, Selection, Session};

/// Request methods (docs/protocol.md, Methods by version) with the versions they exist in
/// (`min` inclusive, `max` exclusive).
const METHODS: &[(&str, &[u32], &[u32])] = &[
    ("blockchain.relayfee", &[1, 4], &[1, 6]),
    ("blockchain.scripthash.get_balance", &[1, 4], &[1, 7]),
    ("blockchain.scripthash.get_history", &[1, 4], &[1, 7]),
    ("blockchain.scripthash.get_mempool", &[1, 4], &[1, 7]),
    ("blockchain.scripthash.listunspent", &[1, 4], &[1, 7]),
    ("blockchain.scripthash.subscribe", &[1, 4], &[1, 7]),
    ("blockchain.scripthash.unsubscribe", &[1, 4, 2], &[1, 7]),
    ("blockchain.scriptpubkey.get_balance", &[1, 7], &[9]),
    ("blockchain.scriptpubkey.get_history", &[1, 7], &[9]),
    ("blockchain.scriptpubkey.get_mempool", &[1, 7], &[9]),
    ("blockchain.scriptpubkey.listunspent", &[1, 7], &[9]),
    ("blockchain.scriptpubkey.subscribe", &[1, 7], &[9]),
    ("blockchain.scriptpubkey.unsubscribe", &[1, 7], &[9]),
    ("blockchain.outpoint.subscribe", &[1, 7], &[9]),
    ("blockchain.outpoint.get_status", &[1, 7], &[9]),
    ("blockchain.outpoint.unsubscribe", &[1, 7], &[9]),
    ("blockchain.transaction.broadcast_package", &[1, 6], &[9]),
    ("blockchain.transaction.testmempoolaccept", &[1, 7], &[9]),
    ("mempool.get_info", &[1, 6], &[9]),
    ("mempool.recent", &[1, 7], &[9]),
    // removed before 1.4
    ("blockchain.address.get_history", &[9], &[9]),
    ("blockchain.block.get_header", &[9], &[9]),
    ("blockchain.block.get_chunk", &[9], &[9]),
    ("blockchain.numblocks.subscribe", &[9], &[9]),
    ("blockchain.utxo.get_address", &[9], &[9]),
];

fn exists(method: &str, version: &str) -> bool {
    METHODS
        .iter()
        .find(|(m, _, _)| *m == method)
        .is_none_or(|(_, min, max)| at_least(version, min) && !at_least(version, max))
}

async fn call(c: &mut Client, method: &str, params: Value) -> (Value, Value) {
    let request = json!({"method": method, "params": params});
    let got = match c.call(method, params).await {
        Ok(v) => v,
        Err(e) => json!({"transport error": e.to_string()}),
    };
    (request, got)
}

/// Connection-level checks on fresh connections (docs/protocol.md: Requests and parameters,
/// Batches, Malformed input, Version negotiation, Before negotiation).
pub async fn negotiation(rec: &mut Recorder, transport: Transport, addr: SocketAddr, host: &str) {
    // Vector 1: anything before server.version gets an error and a disconnect.
    match Client::connect(transport, addr, host).await {
        Ok(mut c) => {
            let (request, got) = call(&mut c, "server.features", json!([])).await;
            rec.error_is(
                "server.version (must be first)",
                &request,
                1,
                Some("use server.version to identify client"),
                &got,
            );
            let closed = c.closed_within(Duration::from_secs(3)).await;
            rec.check(
                "server.version (must be first)",
                closed,
                "(then)",
                "connection closed",
                "still open",
            );
        }
        Err(e) => rec.check(
            "connect",
            false,
            &addr.to_string(),
            "a connection",
            &e.to_string(),
        ),
    }
    // Vector 3: an unsupported version is refused and the connection closed.
    if let Ok(mut c) = Client::connect(transport, addr, host).await {
        let (request, got) = call(&mut c, "server.version", json!(["conformance", "1.8"])).await;
        rec.error_is(
            "server.version",
            &request,
            1,
            Some("unsupported protocol version: 1.8"),
            &got,
        );
        let closed = c.closed_within(Duration::from_secs(3)).await;
        rec.check(
            "server.version",
            closed,
            "(unsupported, then)",
            "connection closed",
            "still open",
        );
    }
    // Vector 2 and the range form: the server's maximum when the client's is above it.
    for (asked, expected) in [
        (json!(["1.4", "1.8"]), "1.7.0"),
        (json!(["1.4", "1.7"]), "1.7"),
        (json!(["1.5.1", "1.6.2"]), "1.6.2"),
    ] {
        if let Ok(mut c) = Client::connect(transport, addr, host).await {
            let (request, got) =
                call(&mut c, "server.version", json!(["conformance", asked])).await;
            rec.result_is(
                "server.version",
                &request,
                &format!("[<name>, {expected:?}]"),
                &got,
                |r| r[0].is_string() && r[1] == expected,
            );
        }
    }
    // Malformed input and batches on a negotiated connection.
    if let Ok(mut c) = Client::connect(transport, addr, host).await {
        let _ = c
            .call("server.version", json!(["conformance", "1.4"]))
            .await;
        let (request, got) = call(&mut c, "server.version", json!(["again", "1.4"])).await;
        rec.error_is(
            "server.version",
            &request,
            1,
            Some("server.version already sent"),
            &got,
        );
        // Vector 18: a request with a null id is a notification: never answered.
        let _ = c
            .send_text(r#"{"jsonrpc":"2.0","id":null,"method":"server.ping","params":[]}"#)
            .await;
        let (request, got) = call(&mut c, "server.ping", json!([])).await;
        let stray = c.queued.drain(..).find(|m| m.get("result").is_some());
        rec.check(
            "server.ping (id null)",
            stray.is_none() && got.get("result") == Some(&Value::Null),
            &request.to_string(),
            "no reply to the notification",
            &format!("{stray:?} / {got}"),
        );
        // Vector 19: the empty batch.
        let got = raw_exchange(&mut c, "[]").await;
        rec.check(
            "batch (empty)",
            got["error"]["code"] == -32600 && got["error"]["message"] == "batch is empty",
            "[]",
            "error -32600 \"batch is empty\"",
            &got.to_string(),
        );
        // Vector 20: not JSON.
        let got = raw_exchange(&mut c, "nonsense{").await;
        rec.check(
            "invalid JSON",
            got["error"]["code"] == -32700 && got["id"].is_null(),
            "nonsense{",
            "error -32700, id null",
            &got.to_string(),
        );
        // Vector 21: the 2.0 dialect is fixed by the first message.
        let got = raw_exchange(&mut c, r#"{"id":77,"method":"server.ping","params":[]}"#).await;
        rec.check(
            "jsonrpc 2.0 dialect",
            got["error"]["code"] == -32600
                && got["error"]["message"] == "\"jsonrpc\" is not \"2.0\""
                && got["id"] == 77,
            r#"{"id":77,"method":"server.ping"}"#,
            "error -32600 '\"jsonrpc\" is not \"2.0\"'",
            &got.to_string(),
        );
        // A batch answers every request in one array (order: by id here).
        let calls = vec![
            ("server.ping".to_string(), json!([])),
            ("server.donation_address".to_string(), json!([])),
            ("no.such.method".to_string(), json!([])),
        ];
        let got = c.batch(&calls).await.unwrap_or_default();
        let ok = got.len() == 3
            && got[0].get("result") == Some(&Value::Null)
            && got[1]["result"].is_string()
            && got[2]["error"]["code"] == -32601;
        rec.check(
            "batch",
            ok,
            "[ping, donation_address, no.such.method]",
            "3 answers",
            &json!(got).to_string(),
        );
    }
}

/// Sends raw text and returns the next message (or a description of the silence).
async fn raw_exchange(c: &mut Client, text: &str) -> Value {
    if let Err(e) = c.send_text(text).await {
        return json!({"transport error": e.to_string()});
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    match c.next_until(deadline).await {
        Some(crate::client::Incoming::Message(v)) => v,
        Some(crate::client::Incoming::Garbage(g)) => json!({"not json": g}),
        None => json!({"no reply": true}),
    }
}

/// Connects, recording a failure to.
async fn connect_or_record(
    rec: &mut Recorder,
    transport: Transport,
    addr: SocketAddr,
    host: &str,
) -> Option<Client> {
    match Client::connect(transport, addr, host).await {
        Ok(c) => Some(c),
        Err(e) => {
            rec.check(
                "connect",
                false,
                &format!("{transport}://{addr}"),
                "a connection",
                &format!("{e:#}"),
            );
            None
        }
    }
}

/// Connects and negotiates `version`; records the negotiation.
pub async fn open_session(
    rec: &mut Recorder,
    transport: Transport,
    addr: SocketAddr,
    host: &str,
    version: &str,
) -> Option<Client> {
    let mut c = connect_or_record(rec, transport, addr, host).await?;
    let (request, got) = call(
        &mut c,
        "server.version",
        json!(["anode-conformance", version]),
    )
    .await;
    let ok = got["result"][1] == version;
    rec.result_is(
        "server.version",
        &request,
        &format!("[<name>, {version:?}]"),
        &got,
        |r| r[0].is_string() && r[1] == version,
    );
    ok.then_some(c)
}

/// Checks that do not depend on the chain's state: method tables, server.*, fee methods,
/// parameter validation (docs/protocol.md: Methods by version, Parameter validation, the
/// `server.*` methods, Test vectors).
pub async fn static_checks(s: &mut Session, view: &ChainView) {
    let v = s.version;
    let v17 = s.v17();
    let c = &mut s.client;
    let rec = &mut s.rec;
    for (method, _, _) in METHODS {
        if !exists(method, v) {
            let (request, got) = call(c, method, json!([])).await;
            let text = format!("unknown method \"{method}\"");
            rec.error_is(method, &request, -32601, Some(&text), &got);
        }
    }
    // server.ping
    if v17 {
        let (request, got) = call(c, "server.ping", json!([5, "abc"])).await;
        rec.result_eq("server.ping", &request, &json!({"data": "00000"}), &got);
        let (request, got) = call(c, "server.ping", json!([0, "zz"])).await;
        rec.error_is(
            "server.ping",
            &request,
            1,
            Some("zz should be a hex string"),
            &got,
        );
    } else {
        let (request, got) = call(c, "server.ping", json!([])).await;
        rec.result_eq("server.ping", &request, &Value::Null, &got);
    }
    // server.features
    let genesis = display(&view.blocks[0].hash);
    let (request, got) = call(c, "server.features", json!([])).await;
    rec.result_is(
        "server.features",
        &request,
        &format!("genesis_hash {genesis}, protocol 1.4–1.7.0, pruning null, hash_function only before 1.7"),
        &got,
        |r| {
            r["genesis_hash"] == genesis.as_str()
                && r["protocol_min"] == "1.4"
                && r["protocol_max"] == "1.7.0"
                && r["pruning"].is_null()
                && r["hosts"].is_object()
                && r["server_version"].is_string()
                && (r.get("hash_function").is_some() != v17)
                && (v17 || r["hash_function"] == "sha256")
        },
    );
    for method in ["server.banner", "server.donation_address"] {
        let (request, got) = call(c, method, json!([])).await;
        rec.result_is(method, &request, "a string", &got, Value::is_string);
    }
    let (request, got) = call(c, "server.peers.subscribe", json!([])).await;
    rec.result_is(
        "server.peers.subscribe",
        &request,
        "an array",
        &got,
        Value::is_array,
    );
    let (request, got) = call(c, "server.add_peer", json!([{}])).await;
    rec.result_eq("server.add_peer", &request, &json!(false), &got);
    // Fees come from the node; the suite checks their form.
    let (request, got) = call(c, "blockchain.estimatefee", json!([6])).await;
    rec.result_is("blockchain.estimatefee", &request, "a number", &got, |r| {
        r.as_f64().is_some_and(|f| f > 0.0 || f == -1.0)
    });
    let (request, got) = call(c, "blockchain.estimatefee", json!([])).await;
    rec.error_is(
        "blockchain.estimatefee",
        &request,
        -32602,
        Some("0 arguments passed to method \"blockchain.estimatefee\" but it requires 1"),
        &got,
    );
    if !at_least(v, &[1, 6]) {
        let (request, got) = call(c, "blockchain.relayfee", json!([])).await;
        rec.result_is(
            "blockchain.relayfee",
            &request,
            "a number",
            &got,
            Value::is_number,
        );
    } else {
        let (request, got) = call(c, "mempool.get_info", json!([])).await;
        rec.result_is(
            "mempool.get_info",
            &request,
            "mempoolminfee and minrelaytxfee",
            &got,
            |r| r["mempoolminfee"].is_number() && r["minrelaytxfee"].is_number(),
        );
    }
    // Parameter validation (docs/protocol.md, Parameter validation and Test vectors).
    let (request, got) = call(c, "blockchain.block.header", json!([])).await;
    rec.error_is(
        "blockchain.block.header",
        &request,
        -32602,
        Some("0 arguments passed to method \"blockchain.block.header\" but it requires 1"),
        &got,
    );
    let (request, got) = call(c, "blockchain.block.header", json!([1, 2, 3, 4])).await;
    rec.error_is(
        "blockchain.block.header",
        &request,
        -32602,
        Some("4 arguments passed to method blockchain.block.header taking at most 2"),
        &got,
    );
    let (request, got) = call(c, "blockchain.block.header", json!(["-1"])).await;
    rec.error_is(
        "blockchain.block.header",
        &request,
        1,
        Some("-1 should be a non-negative integer"),
        &got,
    );
    // Integers given as strings are accepted (docs/protocol.md, Parameter validation).
    let (request, got) = call(c, "blockchain.block.header", json!({"height": "0"})).await;
    rec.result_eq(
        "blockchain.block.header",
        &request,
        &json!(hex::encode(&view.blocks[0].header)),
        &got,
    );
    if v17 {
        let (request, got) = call(c, "blockchain.scriptpubkey.get_balance", json!(["zz"])).await;
        rec.error_is(
            "blockchain.scriptpubkey.get_balance",
            &request,
            1,
            Some("zz should be a hex string"),
            &got,
        );
        let (request, got) = call(
            c,
            "blockchain.outpoint.subscribe",
            json!([display(&view.tip().txids[0]), 0]),
        )
        .await;
        rec.error_is(
            "blockchain.outpoint.subscribe",
            &request,
            -32602,
            None,
            &got,
        );
    } else {
        let (request, got) = call(c, "blockchain.scripthash.get_balance", json!(["xyz"])).await;
        rec.error_is(
            "blockchain.scripthash.get_balance",
            &request,
            1,
            Some("xyz is not a valid script hash"),
            &got,
        );
    }
    // Broadcasts: malformed hex, and a transaction the chain already has.
    let (request, got) = call(c, "blockchain.transaction.broadcast", json!(["xyz"])).await;
    rec.error_is(
        "blockchain.transaction.broadcast",
        &request,
        1,
        Some("xyz should be a hex string"),
        &got,
    );
    let confirmed = view
        .blocks
        .iter()
        .rev()
        .find(|b| b.txids.len() > 1)
        .map(|b| b.txids[1]);
    if let Some(txid) = confirmed {
        let raw = hex::encode(&view.txs[&txid].raw);
        let (request, got) = call(c, "blockchain.transaction.broadcast", json!([raw])).await;
        rec.result_is(
            "blockchain.transaction.broadcast",
            &request,
            "error 1 \"the transaction was rejected by network rules.…\"",
            &json!({"result": got.get("error").cloned().unwrap_or(Value::Null)}),
            |e| {
                e["code"] == 1
                    && e["message"].as_str().is_some_and(|m| {
                        m.starts_with("the transaction was rejected by network rules.")
                    })
            },
        );
    }
}

/// The node's verbose form of the transaction [`reads`] asks about (passed through by
/// `blockchain.transaction.get` with `verbose`).
pub async fn verbose_tx_expectation(node: &Node, view: &ChainView) -> Option<(String, Value)> {
    let txid = display(view.tip().txids.last()?);
    let verbose = node
        .call("getrawtransaction", json!([txid, 1]))
        .await
        .ok()?;
    Some((txid, verbose))
}

/// Subscribes the session to the headers, every watched script and (1.7) every outpoint,
/// checking each initial answer.
pub async fn subscribe_all(s: &mut Session, view: &ChainView, selection: &Selection) {
    let (request, got) = call(&mut s.client, "blockchain.headers.subscribe", json!([])).await;
    let tip = view.tip();
    s.rec.result_eq(
        "blockchain.headers.subscribe",
        &request,
        &json!({"hex": hex::encode(&tip.header), "height": tip.height}),
        &got,
    );
    s.tip = (tip.height, tip.hash);
    for (i, w) in selection.scripts.iter().enumerate() {
        let mut param = s.script_param(w);
        if i == 0 && !s.v17() {
            // Notifications must echo the spelling the client used (docs/protocol.md, Script
            // status notifications).
            param = param.to_uppercase();
        }
        s.spelled.insert(w.scripthash, param.clone());
        let method = s.script_method("subscribe");
        let (request, got) = call(&mut s.client, &method, json!([param])).await;
        let expected = view.status(&w.scripthash);
        s.rec.result_eq(&method, &request, &expected, &got);
        s.statuses.insert(w.scripthash, expected);
    }
    if s.v17() {
        for o in &selection.outpoints {
            let (request, got) = call(
                &mut s.client,
                "blockchain.outpoint.subscribe",
                json!([display(&o.txid), o.vout, ""]),
            )
            .await;
            let expected = view.outpoint_status(o);
            s.rec
                .result_eq("blockchain.outpoint.subscribe", &request, &expected, &got);
            s.outpoint_statuses.insert(*o, expected);
        }
    }
}

/// What a read probe must answer.
enum Expect {
    Result(Value),
    Error(i64, Option<String>),
    Utxos(Value),
    Histogram(Vec<(f64, u64)>),
    Recent,
}

/// Error answers of the header methods at tip `height` (docs/protocol.md,
/// `blockchain.block.header` and `blockchain.block.headers`).
fn header_errors(probes: &mut Vec<(String, Value, Expect)>, height: u32, v16: bool) {
    probes.push((
        "blockchain.block.header".into(),
        json!([height + 1]),
        Expect::Error(1, Some(format!("height {} out of range", height + 1))),
    ));
    probes.push((
        "blockchain.block.header".into(),
        json!([height, height.saturating_sub(1)]),
        Expect::Error(
            1,
            Some(format!(
                "require header height {height} <= cp_height {} <= chain height {height}",
                height.saturating_sub(1)
            )),
        ),
    ));
    let empty = if v16 {
        json!({"count": 0, "max": 2016, "headers": []})
    } else {
        json!({"hex": "", "count": 0, "max": 2016})
    };
    probes.push((
        "blockchain.block.headers".into(),
        json!([height + 5, 3, height]),
        Expect::Result(empty),
    ));
}

/// Every read method against the model, in one batch (docs/protocol.md, from Header methods to
/// Fee and mempool methods). `full` adds the answers that do not change with the scenario's
/// steps (fixed heights, error texts, subscribe results — changed statuses are checked through
/// notifications).
pub async fn reads(
    s: &mut Session,
    view: &ChainView,
    selection: &Selection,
    verbose_tx: &Option<(String, Value)>,
    full: bool,
) {
    let v = s.version;
    let v16 = at_least(v, &[1, 6]);
    let v17 = s.v17();
    let mut probes: Vec<(String, Value, Expect)> = Vec::new();
    let tip = view.tip();
    let height = tip.height;
    probes.push((
        "blockchain.headers.subscribe".into(),
        json!([]),
        Expect::Result(json!({"hex": hex::encode(&tip.header), "height": height})),
    ));
    // Headers, with and without checkpoint proofs (docs/protocol.md: Header methods, Merkle
    // branches).
    let heights = if full {
        vec![0, height / 2, height]
    } else {
        vec![height]
    };
    for h in heights {
        probes.push((
            "blockchain.block.header".into(),
            json!([h]),
            Expect::Result(json!(hex::encode(&view.blocks[h as usize].header))),
        ));
    }
    let mid = height / 2;
    if let Some((branch, root)) = view.checkpoint(mid, height).filter(|_| full) {
        probes.push((
            "blockchain.block.header".into(),
            json!([mid, height]),
            Expect::Result(json!({
                "header": hex::encode(&view.blocks[mid as usize].header),
                "branch": branch, "root": root,
            })),
        ));
    }
    if full {
        header_errors(&mut probes, height, v16);
    }
    let start = height.saturating_sub(3);
    let headers: Vec<String> = view.blocks[start as usize..]
        .iter()
        .map(|b| hex::encode(&b.header))
        .collect();
    let n = headers.len();
    let mut expected = if v16 {
        json!({"count": n, "max": 2016, "headers": headers})
    } else {
        json!({"hex": headers.concat(), "count": n, "max": 2016})
    };
    probes.push((
        "blockchain.block.headers".into(),
        json!([start, 10]),
        Expect::Result(expected.clone()),
    ));
    if let Some((branch, root)) = view.checkpoint(height, height) {
        expected["branch"] = branch;
        expected["root"] = root;
        probes.push((
            "blockchain.block.headers".into(),
            json!([start, 10, height]),
            Expect::Result(expected),
        ));
    }
    // Scripts (docs/protocol.md, Script methods).
    for w in &selection.scripts {
        let sh = &w.scripthash;
        // The spelling used when subscribing: subscribing again replaces it (docs/protocol.md,
        // `blockchain.scripthash.subscribe`).
        let spelled = s
            .spelled
            .get(sh)
            .cloned()
            .unwrap_or_else(|| s.script_param(w));
        let param = json!([spelled]);
        let wrap = |key: &str, inner: Value| if v17 { json!({ key: inner }) } else { inner };
        probes.push((
            s.script_method("get_balance"),
            param.clone(),
            Expect::Result(view.balance_json(sh)),
        ));
        probes.push((
            s.script_method("get_history"),
            param.clone(),
            Expect::Result(wrap("history", view.history_json(sh))),
        ));
        probes.push((
            s.script_method("get_mempool"),
            param.clone(),
            Expect::Result(wrap("history", view.mempool_json(sh))),
        ));
        probes.push((
            s.script_method("listunspent"),
            param.clone(),
            Expect::Utxos(wrap("utxos", view.listunspent_json(sh))),
        ));
        if full {
            probes.push((
                s.script_method("subscribe"),
                param,
                Expect::Result(view.status(sh)),
            ));
        }
    }
    // Transactions (docs/protocol.md, Transaction methods): a confirmed one at the tip, one
    // deeper, a coinbase.
    let mut confirmed = Vec::new();
    if let Some(t) = tip.txids.last() {
        confirmed.push((height, tip.txids.len() - 1, *t));
    }
    if let Some(b) = view.blocks.get(1).filter(|_| full) {
        confirmed.push((1, 0, b.txids[0]));
        if let Some(t) = b.txids.get(1) {
            confirmed.push((1, 1, *t));
        }
    }
    for (h, pos, txid) in confirmed {
        let id = display(&txid);
        let branch = view.tx_branch(h, pos).unwrap_or_default();
        probes.push((
            "blockchain.transaction.get".into(),
            json!([id]),
            Expect::Result(json!(hex::encode(&view.txs[&txid].raw))),
        ));
        probes.push((
            "blockchain.transaction.get_merkle".into(),
            json!([id, h]),
            Expect::Result(json!({"block_height": h, "merkle": branch, "pos": pos})),
        ));
        probes.push((
            "blockchain.transaction.id_from_pos".into(),
            json!([h, pos]),
            Expect::Result(json!(id)),
        ));
        probes.push((
            "blockchain.transaction.id_from_pos".into(),
            json!([h, pos, true]),
            Expect::Result(json!({"tx_hash": id, "merkle": branch})),
        ));
    }
    let beyond = tip.txids.len();
    if full {
        probes.push((
            "blockchain.transaction.id_from_pos".into(),
            json!([height, beyond]),
            Expect::Error(
                1,
                Some(format!(
                    "no tx at position {beyond} in block at height {height}"
                )),
            ),
        ));
        if let Some((txid, verbose)) = verbose_tx {
            probes.push((
                "blockchain.transaction.get".into(),
                json!([txid, true]),
                Expect::Result(verbose.clone()),
            ));
        }
    }
    if let Some(t) = view.mempool.first() {
        let id = display(t);
        probes.push((
            "blockchain.transaction.get".into(),
            json!([id]),
            Expect::Result(json!(hex::encode(&view.txs[t].raw))),
        ));
        probes.push((
            "blockchain.transaction.get_merkle".into(),
            json!([id, height]),
            Expect::Error(1, Some(format!("tx {id} not in block at height {height}"))),
        ));
    }
    if full {
        probes.push((
            "blockchain.transaction.get".into(),
            json!([display(&view.coin.script_hash(b"no such transaction"))]),
            Expect::Error(2, None),
        ));
    }
    probes.push((
        "mempool.get_fee_histogram".into(),
        json!([]),
        Expect::Histogram(view.histogram()),
    ));
    if v17 {
        for o in &selection.outpoints {
            probes.push((
                "blockchain.outpoint.get_status".into(),
                json!([display(&o.txid), o.vout, ""]),
                Expect::Result(view.outpoint_status(o)),
            ));
        }
        probes.push(("mempool.recent".into(), json!([]), Expect::Recent));
    }

    let calls: Vec<(String, Value)> = probes
        .iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();
    let answers = match s.client.batch(&calls).await {
        Ok(a) => a,
        Err(e) => {
            s.rec.check(
                "batch of reads",
                false,
                &format!("{} requests", calls.len()),
                "answers",
                &format!("{e:#}"),
            );
            return;
        }
    };
    for ((method, params, expect), got) in probes.into_iter().zip(answers) {
        let request = json!({"method": method, "params": params});
        match expect {
            Expect::Result(e) => s.rec.result_eq(&method, &request, &e, &got),
            Expect::Error(code, msg) => {
                s.rec
                    .error_is(&method, &request, code, msg.as_deref(), &got)
            }
            Expect::Utxos(e) => {
                let sorted = match got.get("result") {
                    Some(r) if v17 => json!({"utxos": sort_unconfirmed_utxos(&r["utxos"])}),
                    Some(r) => sort_unconfirmed_utxos(r),
                    None => Value::Null,
                };
                s.rec.result_eq(
                    &method,
                    &request,
                    &e,
                    &json!({"result": sorted, "raw": got}),
                );
            }
            Expect::Histogram(e) => {
                let shown = json!(e.iter().map(|(r, s)| json!([r, s])).collect::<Vec<_>>());
                s.rec
                    .result_is(&method, &request, &shown.to_string(), &got, |r| {
                        r.as_array().is_some_and(|items| {
                            items.len() == e.len()
                                && items.iter().zip(&e).all(|(i, (rate, size))| {
                                    i[0].as_f64().is_some_and(|x| (x - rate).abs() < 1e-9)
                                        && i[1].as_u64() == Some(*size)
                                })
                        })
                    });
            }
            Expect::Recent => {
                let want = view.mempool.len().min(10);
                s.rec.result_is(
                    &method,
                    &request,
                    &format!("{want} current mempool txs with their fee and vsize"),
                    &got,
                    |r| {
                        r.as_array().is_some_and(|items| {
                            items.len() == want
                                && items.iter().all(|i| {
                                    let tx = crate::model::from_display(
                                        i["txid"].as_str().unwrap_or_default(),
                                    )
                                    .ok()
                                    .and_then(|t| {
                                        view.txs.get(&t).filter(|tx| tx.confirmed.is_none())
                                    });
                                    tx.is_some_and(|tx| {
                                        i["fee"].as_u64() == Some(view.fee(tx))
                                            && i["vsize"].as_u64() == Some(tx.vsize)
                                    })
                                })
                        })
                    },
                );
            }
        }
    }
}

/// Waits for the notifications the last step made due (docs/protocol.md, Notifications) and
/// checks them: a header notification when the tip changed (height or hash: anode's documented
/// choice), the new status of every subscribed script whose status changed, and (1.7) of every
/// changed outpoint. Intermediate notifications are allowed; the last one per subject must be
/// right.
pub async fn notifications(
    s: &mut Session,
    view: &ChainView,
    selection: &Selection,
    timeout: Duration,
) {
    let tip = view.tip();
    let header_due = (tip.height, tip.hash) != s.tip;
    let header = json!({"hex": hex::encode(&tip.header), "height": tip.height});
    let script_method = s.script_method("subscribe");
    let v17 = s.v17();
    let mut due_scripts: HashMap<String, Value> = HashMap::new();
    for w in &selection.scripts {
        let new = view.status(&w.scripthash);
        if s.statuses.get(&w.scripthash) != Some(&new) {
            let key = if v17 {
                display(&w.scripthash)
            } else {
                s.spelled[&w.scripthash].clone()
            };
            due_scripts.insert(key, new.clone());
        }
        s.statuses.insert(w.scripthash, new);
    }
    let mut due_outpoints: HashMap<(String, u64), Value> = HashMap::new();
    if v17 {
        for o in &selection.outpoints {
            let new = view.outpoint_status(o);
            if s.outpoint_statuses.get(o) != Some(&new) {
                due_outpoints.insert((display(&o.txid), u64::from(o.vout)), new.clone());
            }
            s.outpoint_statuses.insert(*o, new);
        }
    }
    s.tip = (tip.height, tip.hash);
    let satisfied = |got: &[Value]| {
        let last = latest(got, &script_method);
        (!header_due || last.header.as_ref() == Some(&header))
            && due_scripts
                .iter()
                .all(|(k, v)| last.scripts.get(k) == Some(v))
            && due_outpoints
                .iter()
                .all(|(k, v)| last.outpoints.get(k) == Some(v))
    };
    let deadline = Instant::now() + timeout;
    let got = s.client.notifications_until(deadline, satisfied).await;
    let last = latest(&got, &script_method);
    let request = format!("(notifications after step {})", s.rec.step);
    if header_due {
        let seen = last.header.clone().unwrap_or(Value::Null);
        s.rec.check(
            "blockchain.headers.subscribe (notification)",
            seen == header,
            &request,
            &header.to_string(),
            &seen.to_string(),
        );
    }
    for (key, want) in &due_scripts {
        let seen = last.scripts.get(key).cloned();
        s.rec.check(
            &format!("{script_method} (notification)"),
            seen.as_ref() == Some(want),
            &format!("{request} for {key}"),
            &want.to_string(),
            &seen.map_or("no notification".into(), |v| v.to_string()),
        );
    }
    for ((txid, vout), want) in &due_outpoints {
        let seen = last.outpoints.get(&(txid.clone(), *vout)).cloned();
        s.rec.check(
            "blockchain.outpoint.subscribe (notification)",
            seen.as_ref() == Some(want),
            &format!("{request} for {txid}:{vout}"),
            &want.to_string(),
            &seen.map_or("no notification".into(), |v| v.to_string()),
        );
    }
    // Messages that are not notifications of subscribed subjects (cover pings aside) are
    // protocol errors.
    let stray: Vec<&Value> = got
        .iter()
        .filter(|m| {
            let expected = match m["method"].as_str() {
                Some("blockchain.headers.subscribe") => true,
                Some("server.ping") | Some("blockchain.outpoint.subscribe") => v17,
                Some(m) => m == script_method,
                None => false,
            };
            !expected
        })
        .collect();
    if !stray.is_empty() {
        s.rec.check(
            "notifications (unexpected messages)",
            false,
            &request,
            "only notifications of subscribed subjects",
            &json!(stray).to_string(),
        );
    }
}

/// The last notified value per subject.
struct Latest {
    header: Option<Value>,
    scripts: HashMap<String, Value>,
    outpoints: HashMap<(String, u64), Value>,
}

fn latest(got: &[Value], script_method: &str) -> Latest {
    let mut last = Latest {
        header: None,
        scripts: HashMap::new(),
        outpoints: HashMap::new(),
    };
    for m in got {
        let params = &m["params"];
        match m["method"].as_str() {
            Some("blockchain.headers.subscribe") => last.header = Some(params[0].clone()),
            Some("blockchain.outpoint.subscribe") => {
                if let (Some(t), Some(i)) = (params[0].as_str(), params[1].as_u64()) {
                    last.outpoints.insert((t.to_string(), i), params[2].clone());
                }
            }
            Some(method) if method == script_method => {
                if let Some(k) = params[0].as_str() {
                    last.scripts.insert(k.to_string(), params[1].clone());
                }
            }
            _ => {}
        }
    }
    last
}

/// Unsubscribes everything: `true` the first time, `false` the second (docs/protocol.md,
/// `blockchain.scripthash.unsubscribe`, `blockchain.outpoint.unsubscribe`).
pub async fn unsubscribe_all(s: &mut Session, selection: &Selection) {
    if at_least(s.version, &[1, 4, 2]) {
        if let Some(w) = selection.scripts.get(1) {
            let method = s.script_method("unsubscribe");
            let param = json!([s.script_param(w)]);
            let (request, got) = call(&mut s.client, &method, param.clone()).await;
            s.rec.result_eq(&method, &request, &json!(true), &got);
            let (request, got) = call(&mut s.client, &method, param).await;
            s.rec.result_eq(&method, &request, &json!(false), &got);
        }
    }
    if s.v17() {
        if let Some(o) = selection.outpoints.first() {
            let param = json!([display(&o.txid), o.vout]);
            let (request, got) = call(
                &mut s.client,
                "blockchain.outpoint.unsubscribe",
                param.clone(),
            )
            .await;
            s.rec.result_eq(
                "blockchain.outpoint.unsubscribe",
                &request,
                &json!(true),
                &got,
            );
            let (request, got) =
                call(&mut s.client, "blockchain.outpoint.unsubscribe", param).await;
            s.rec.result_eq(
                "blockchain.outpoint.unsubscribe",
                &request,
                &json!(false),
                &got,
            );
        }
    }
}

/// Requests that change a session's state take effect in the order they were sent, even when
/// a wallet pipelines them in one write (docs/protocol-divergences.md, "Guarantees both
/// servers give"): subscribe then unsubscribe leaves no subscription, subscribe twice answers
/// the same status twice, and the outpoint pair does the same in 1.7.
pub async fn pipelined_state(s: &mut Session, selection: &Selection) {
    if !at_least(s.version, &[1, 4, 2]) {
        return;
    }
    let Some(w) = selection.scripts.get(1).or(selection.scripts.first()) else {
        return;
    };
    let subscribe = s.script_method("subscribe");
    let unsubscribe = s.script_method("unsubscribe");
    let param = json!([s.script_param(w)]);
    let status_like = |r: &Value| r.is_null() || r.as_str().is_some_and(|t| t.len() == 64);

    let calls = [
        (subscribe.clone(), param.clone()),
        (unsubscribe.clone(), param.clone()),
    ];
    pipelined(s, &calls, |rec, answers| {
        let request = described(&calls);
        rec.result_is(
            &subscribe,
            &request,
            "a status, pipelined",
            &answers[0],
            status_like,
        );
        rec.result_eq(&unsubscribe, &request, &json!(true), &answers[1]);
    })
    .await;
    let (request, got) = call(&mut s.client, &unsubscribe, param.clone()).await;
    s.rec.check(
        &unsubscribe,
        got.get("result") == Some(&json!(false)),
        &format!("{request} after a pipelined subscribe+unsubscribe"),
        "false: the subscription did not outlive its unsubscribe",
        &got.to_string(),
    );

    let calls = [
        (subscribe.clone(), param.clone()),
        (subscribe.clone(), param.clone()),
        (unsubscribe.clone(), param.clone()),
    ];
    pipelined(s, &calls, |rec, answers| {
        let request = described(&calls);
        let same = answers[0].get("result").is_some()
            && answers[0].get("result") == answers[1].get("result");
        rec.check(
            &subscribe,
            same && answers[0].get("result").is_some_and(status_like),
            &request.to_string(),
            "the same status twice",
            &format!("{} / {}", answers[0], answers[1]),
        );
        rec.result_eq(&unsubscribe, &request, &json!(true), &answers[2]);
    })
    .await;

    if s.v17() {
        if let Some(o) = selection.outpoints.first() {
            let param = json!([display(&o.txid), o.vout]);
            let calls = [
                (
                    "blockchain.outpoint.subscribe".to_string(),
                    json!([display(&o.txid), o.vout, ""]),
                ),
                ("blockchain.outpoint.unsubscribe".to_string(), param.clone()),
            ];
            pipelined(s, &calls, |rec, answers| {
                let request = described(&calls);
                rec.result_is(
                    "blockchain.outpoint.subscribe",
                    &request,
                    "a status object, pipelined",
                    &answers[0],
                    Value::is_object,
                );
                rec.result_eq(
                    "blockchain.outpoint.unsubscribe",
                    &request,
                    &json!(true),
                    &answers[1],
                );
            })
            .await;
            let (request, got) =
                call(&mut s.client, "blockchain.outpoint.unsubscribe", param).await;
            s.rec.result_eq(
                "blockchain.outpoint.unsubscribe",
                &request,
                &json!(false),
                &got,
            );
        }
    }
}

/// Pipelined calls as one value, for the report.
fn described(calls: &[(String, Value)]) -> Value {
    json!(calls.iter().map(|(m, p)| json!([m, p])).collect::<Vec<_>>())
}

async fn pipelined(
    s: &mut Session,
    calls: &[(String, Value)],
    judge: impl FnOnce(&mut Recorder, &[Value]),
) {
    match s.client.pipeline(calls).await {
        Ok(answers) => judge(&mut s.rec, &answers),
        Err(e) => s.rec.check(
            &calls[0].0,
            false,
            &format!("{calls:?}"),
            "answers to pipelined requests",
            &format!("{e:#}"),
        ),
    }
}

/// On a fresh connection, `server.version` pipelined with the requests that depend on it:
/// they must see the negotiated version (its method table), not the unidentified session.
pub async fn pipelined_negotiation(
    rec: &mut Recorder,
    transport: Transport,
    addr: SocketAddr,
    host: &str,
    version: &str,
    script: Option<&crate::suite::Watched>,
) {
    let Some(mut c) = connect_or_record(rec, transport, addr, host).await else {
        return;
    };
    let mut calls = vec![
        (
            "server.version".to_string(),
            json!(["anode-conformance", version]),
        ),
        ("blockchain.headers.subscribe".to_string(), json!([])),
    ];
    if let Some(w) = script {
        let v17 = at_least(version, &[1, 7]);
        let (method, param) = if v17 {
            ("blockchain.scriptpubkey.subscribe", hex::encode(&w.script))
        } else {
            ("blockchain.scripthash.subscribe", display(&w.scripthash))
        };
        calls.push((method.to_string(), json!([param])));
    }
    let request = described(&calls);
    match c.pipeline(&calls).await {
        Ok(answers) => {
            rec.result_is(
                "server.version",
                &request,
                &format!("[<name>, {version:?}], pipelined"),
                &answers[0],
                |r| r[1] == version,
            );
            rec.result_is(
                "blockchain.headers.subscribe",
                &request,
                "the tip, after a pipelined server.version",
                &answers[1],
                |r| r.get("height").is_some_and(Value::is_u64) && r.get("hex").is_some(),
            );
            if let Some(answer) = answers.get(2) {
                rec.result_is(
                    &calls[2].0,
                    &request,
                    "a status, after a pipelined server.version",
                    answer,
                    |r| r.is_null() || r.as_str().is_some_and(|t| t.len() == 64),
                );
            }
        }
        Err(e) => rec.check(
            "server.version",
            false,
            &request.to_string(),
            "answers to pipelined requests",
            &format!("{e:#}"),
        ),
    }
}
