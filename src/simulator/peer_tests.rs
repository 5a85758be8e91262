//! The calls ElectrumX, Fulcrum and electrs make (docs/simulator.md, "What each peer server
//! calls"), checked against Bitcoin Core 31's documented output: each test writes the
//! expected shape (field names in Core's order, JSON types, which fields are optional) and
//! the simulator's answer must match it exactly, with no field Core would not send.

use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::daemon::hash_to_hex;
use anode_coins::{Hash32, OutPoint};

fn coin() -> Arc<dyn anode_coins::Coin> {
    anode_coins::lookup("Bitcoin", "regtest").expect("Bitcoin regtest")
}

fn sim(seed: u64, blocks: u32) -> Simulator {
    let mut chain = SimChain::new(coin(), Profile::tiny(), seed).expect("chain");
    chain.mine(blocks, true).expect("mined");
    Simulator::new(chain)
}

fn call(sim: &Simulator, method: &str, params: Value) -> Value {
    let list = match params {
        Value::Array(a) => a,
        other => panic!("positional params only here, got {other}"),
    };
    dispatch(sim, method, &list).unwrap_or_else(|e| panic!("{method}: {e:?}"))
}

fn call_err(sim: &Simulator, method: &str, params: Value) -> (i64, String) {
    dispatch_request(sim, method, &params).expect_err(method)
}

fn is_hex(v: &Value, len: Option<usize>) -> bool {
    v.as_str().is_some_and(|s| {
        s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            && len.is_none_or(|n| s.len() == n)
            && s.len() % 2 == 0
    })
}

/// Checks `v` against a shape: `name:type` entries in Core's order, a `?` after the name for
/// fields Core may leave out. Types: `str`, `hex`, `hash` (64 hex digits), `int`, `num`,
/// `bool`, `array`, `object`. Fails on a missing field, a wrong type, a field the shape does
/// not list, or fields out of Core's order.
fn assert_shape(v: &Value, shape: &[&str]) {
    let object = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    let mut expected_order = Vec::new();
    for entry in shape {
        let (name, kind) = entry.split_once(':').expect("name:type");
        let (name, optional) = match name.strip_suffix('?') {
            Some(n) => (n, true),
            None => (name, false),
        };
        let Some(value) = object.get(name) else {
            assert!(optional, "missing {name} in {v}");
            continue;
        };
        expected_order.push(name);
        let fits = match kind {
            "str" => value.is_string(),
            "hex" => is_hex(value, None),
            "hash" => is_hex(value, Some(64)),
            "int" => value.is_i64() || value.is_u64(),
            "num" => value.is_number(),
            "bool" => value.is_boolean(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            other => panic!("unknown type {other}"),
        };
        assert!(fits, "{name} should be {kind}, is {value} in {v}");
    }
    let got: Vec<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(got, expected_order, "fields (Core's order) of {v}");
}

const HEADER_SHAPE: &[&str] = &[
    "hash:hash",
    "confirmations:int",
    "height:int",
    "version:int",
    "versionHex:hex",
    "merkleroot:hash",
    "time:int",
    "mediantime:int",
    "nonce:int",
    "bits:hex",
    "target:hash",
    "difficulty:num",
    "chainwork:hash",
    "nTx:int",
    "previousblockhash?:hash",
    "nextblockhash?:hash",
];

fn block_shape() -> Vec<&'static str> {
    let mut shape = HEADER_SHAPE.to_vec();
    shape.extend([
        "strippedsize:int",
        "size:int",
        "weight:int",
        "coinbase_tx:object",
        "tx:array",
    ]);
    shape
}

const TX_SHAPE: &[&str] = &[
    "in_active_chain?:bool",
    "txid:hash",
    "hash:hash",
    "version:int",
    "size:int",
    "vsize:int",
    "weight:int",
    "locktime:int",
    "vin:array",
    "vout:array",
    "fee?:num",
    "hex:hex",
    "blockhash?:hash",
    "confirmations?:int",
    "time?:int",
    "blocktime?:int",
];

const INPUT_SHAPE: &[&str] = &[
    "coinbase?:hex",
    "txid?:hash",
    "vout?:int",
    "scriptSig?:object",
    "txinwitness?:array",
    "prevout?:object",
    "sequence:int",
];

const SCRIPT_PUB_KEY_SHAPE: &[&str] =
    &["asm:str", "desc:str", "hex:hex", "address?:str", "type:str"];

fn assert_tx_shape(tx: &Value) {
    assert_shape(tx, TX_SHAPE);
    for input in tx["vin"].as_array().unwrap() {
        assert_shape(input, INPUT_SHAPE);
        if let Some(sig) = input.get("scriptSig") {
            assert_shape(sig, &["asm:str", "hex:hex"]);
        }
        if let Some(prevout) = input.get("prevout") {
            assert_shape(
                prevout,
                &[
                    "generated:bool",
                    "height:int",
                    "value:num",
                    "scriptPubKey:object",
                ],
            );
            assert_shape(&prevout["scriptPubKey"], SCRIPT_PUB_KEY_SHAPE);
        }
    }
    for output in tx["vout"].as_array().unwrap() {
        assert_shape(output, &["value:num", "n:int", "scriptPubKey:object"]);
        assert_shape(&output["scriptPubKey"], SCRIPT_PUB_KEY_SHAPE);
    }
}

const MEMPOOL_ENTRY_SHAPE: &[&str] = &[
    "vsize:int",
    "weight:int",
    "time:int",
    "height:int",
    "descendantcount:int",
    "descendantsize:int",
    "ancestorcount:int",
    "ancestorsize:int",
    "chunkweight:int",
    "wtxid:hash",
    "fees:object",
    "depends:array",
    "spentby:array",
    "bip125-replaceable:bool",
    "unbroadcast:bool",
];

/// A confirmed non-coinbase transaction and the height of its block.
fn confirmed_spend(sim: &Simulator) -> (Hash32, u32) {
    sim.with_chain(|c| {
        (1..=c.height())
            .rev()
            .find_map(|h| c.block(h).unwrap().txids.get(1).map(|t| (*t, h)))
            .expect("a block with a spend")
    })
}

#[test]
fn getblockchaininfo_has_cores_fields() {
    let sim = sim(1, 12);
    let info = call(&sim, "getblockchaininfo", json!([]));
    assert_shape(
        &info,
        &[
            "chain:str",
            "blocks:int",
            "headers:int",
            "bestblockhash:hash",
            "bits:hex",
            "target:hash",
            "difficulty:num",
            "time:int",
            "mediantime:int",
            "verificationprogress:num",
            "initialblockdownload:bool",
            "chainwork:hash",
            "size_on_disk:int",
            "pruned:bool",
            "pruneheight?:int",
            "automatic_pruning?:bool",
            "prune_target_size?:int",
            "warnings:array",
        ],
    );
    assert_eq!(info["chain"], "regtest");
    assert_eq!(info["blocks"], 12);
    assert_eq!(info["bits"], "207fffff");
    assert_eq!(info["difficulty"], json!(4.656542373906925e-10));
    // Regtest work: 2 per block, 13 blocks.
    assert!(info["chainwork"].as_str().unwrap().ends_with("1a"));
    assert!(info["mediantime"].as_u64() <= info["time"].as_u64());
    sim.set_pruned(true);
    let pruned = call(&sim, "getblockchaininfo", json!([]));
    assert_eq!(pruned["pruned"], true);
    assert!(pruned["pruneheight"].is_u64() && pruned["automatic_pruning"] == false);
}

#[test]
fn getnetworkinfo_has_cores_fields() {
    let sim = sim(1, 2);
    let info = call(&sim, "getnetworkinfo", json!([]));
    assert_shape(
        &info,
        &[
            "version:int",
            "subversion:str",
            "protocolversion:int",
            "localservices:hex",
            "localservicesnames:array",
            "localrelay:bool",
            "timeoffset:int",
            "connections:int",
            "connections_in:int",
            "connections_out:int",
            "networkactive:bool",
            "networks:array",
            "relayfee:num",
            "incrementalfee:num",
            "localaddresses:array",
            "warnings:array",
        ],
    );
    assert_eq!(info["version"], 310000);
    assert!(info["subversion"]
        .as_str()
        .unwrap()
        .starts_with("/Satoshi:31.0.0/"));
    assert_eq!(info["localservices"], "0000000000000409");
    for network in info["networks"].as_array().unwrap() {
        assert_shape(
            network,
            &[
                "name:str",
                "limited:bool",
                "reachable:bool",
                "proxy:str",
                "proxy_randomize_credentials:bool",
            ],
        );
    }
}

#[test]
fn getblock_answers_every_verbosity() {
    let sim = sim(3, 15);
    let (txid, height) = confirmed_spend(&sim);
    let hash = sim.with_chain(|c| hash_to_hex(&c.hash_at(height).unwrap()));
    let raw = sim.with_chain(|c| hex::encode(&c.block(height).unwrap().raw));
    assert_eq!(call(&sim, "getblock", json!([hash, 0])), json!(raw));
    assert_eq!(call(&sim, "getblock", json!([hash, false])), json!(raw));

    let one = call(&sim, "getblock", json!([hash]));
    assert_eq!(one, call(&sim, "getblock", json!([hash, 1])));
    assert_shape(&one, &block_shape());
    assert_shape(
        &one["coinbase_tx"],
        &[
            "version:int",
            "locktime:int",
            "sequence:int",
            "coinbase:hex",
            "witness?:hex",
        ],
    );
    assert_eq!(one["tx"][1], hash_to_hex(&txid));
    assert_eq!(one["size"], raw.len() / 2);
    assert!(
        one["strippedsize"].as_u64() < one["size"].as_u64(),
        "SegWit spends"
    );

    let two = call(&sim, "getblock", json!([hash, 2]));
    assert_shape(&two, &block_shape());
    let txs = two["tx"].as_array().unwrap();
    for (i, tx) in txs.iter().enumerate() {
        assert_tx_shape(tx);
        // Fees come from undo data, which a coinbase has none of; prevouts need verbosity 3.
        assert_eq!(tx.get("fee").is_some(), i > 0, "{tx}");
        assert!(tx["vin"][0].get("prevout").is_none());
    }
    assert!(txs[0]["vin"][0].get("coinbase").is_some());

    let three = call(&sim, "getblock", json!([hash, 3]));
    let tx = &three["tx"][1];
    assert_tx_shape(tx);
    let prevout = &tx["vin"][0]["prevout"];
    let spent = sim.with_chain(|c| {
        let input = c.tx(&txid).unwrap().inputs[0];
        let funding = c.tx(&input.txid).unwrap();
        (
            funding.outputs[input.vout as usize].clone(),
            funding.height.unwrap(),
        )
    });
    assert_eq!(prevout["height"], spent.1);
    assert_eq!(prevout["scriptPubKey"]["hex"], hex::encode(&spent.0.script));
    // The fee is what the inputs bring minus what the outputs take.
    let fee = sim.with_chain(|c| c.tx(&txid).unwrap().fee);
    assert_eq!(tx["fee"], core_json::amount(coin().as_ref(), fee));

    let (code, _) = call_err(&sim, "getblock", json!(["00".repeat(32)]));
    assert_eq!(code, -5);
}

#[test]
fn getblockheader_answers_both_ways() {
    let sim = sim(4, 6);
    let hash = sim.with_chain(|c| hash_to_hex(&c.hash_at(3).unwrap()));
    let header = call(&sim, "getblockheader", json!([hash]));
    assert_shape(&header, HEADER_SHAPE);
    assert_eq!(header["height"], 3);
    assert_eq!(header["confirmations"], 4);
    assert_eq!(header["chainwork"].as_str().unwrap()[56..], *"00000008");
    let raw = call(&sim, "getblockheader", json!([hash, false]));
    assert!(is_hex(&raw, Some(160)), "{raw}");
    let genesis = call(
        &sim,
        "getblockheader",
        json!([call(&sim, "getblockhash", json!([0]))]),
    );
    assert!(genesis.get("previousblockhash").is_none());
    assert_eq!(
        genesis["hash"],
        "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    );
}

#[test]
fn block_hashes_and_counts() {
    let sim = sim(5, 4);
    let best = call(&sim, "getbestblockhash", json!([]));
    assert!(is_hex(&best, Some(64)));
    assert_eq!(call(&sim, "getblockhash", json!([4])), best);
    assert_eq!(call(&sim, "getblockcount", json!([])), 4);
    assert_eq!(
        call_err(&sim, "getblockhash", json!([5])),
        (-8, "Block height out of range".into())
    );
    assert_eq!(call_err(&sim, "getblockhash", json!([-1])).0, -8);
}

#[test]
fn getrawtransaction_verbose_carries_the_block() {
    let sim = sim(6, 10);
    let (txid, height) = confirmed_spend(&sim);
    let (block_hash, tip) =
        sim.with_chain(|c| (hash_to_hex(&c.hash_at(height).unwrap()), c.height()));
    let txid_hex = hash_to_hex(&txid);

    let raw = call(&sim, "getrawtransaction", json!([txid_hex]));
    assert!(is_hex(&raw, None));
    for verbose in [json!(1), json!(true)] {
        let tx = call(&sim, "getrawtransaction", json!([txid_hex, verbose]));
        assert_tx_shape(&tx);
        assert_eq!(tx["blockhash"], block_hash);
        assert_eq!(tx["confirmations"], tip - height + 1);
        assert_eq!(tx["hex"], raw);
        assert!(tx.get("in_active_chain").is_none() && tx.get("fee").is_none());
    }
    // Verbosity 2: fee and spent outputs; naming the block adds in_active_chain.
    let tx = call(&sim, "getrawtransaction", json!([txid_hex, 2, block_hash]));
    assert_tx_shape(&tx);
    assert_eq!(tx["in_active_chain"], true);
    assert!(tx["fee"].is_number() && tx["vin"][0]["prevout"].is_object());

    let other_block = sim.with_chain(|c| hash_to_hex(&c.hash_at(height - 1).unwrap()));
    let (code, msg) = call_err(&sim, "getrawtransaction", json!([txid_hex, 1, other_block]));
    assert_eq!(code, -5);
    assert!(
        msg.starts_with("No such transaction found in the provided block"),
        "{msg}"
    );

    // A mempool transaction: no block fields.
    let added = sim.with_chain_mut(|c| c.add_mempool_txs(1)).unwrap();
    let tx = call(
        &sim,
        "getrawtransaction",
        json!([hash_to_hex(&added[0]), 2]),
    );
    assert_tx_shape(&tx);
    assert!(tx.get("blockhash").is_none() && tx.get("confirmations").is_none());

    let (code, msg) = call_err(&sim, "getrawtransaction", json!(["11".repeat(32), true]));
    assert_eq!(code, -5);
    assert!(msg.starts_with("No such mempool or blockchain transaction"));
}

#[test]
fn estimatesmartfee_answers_and_checks_its_arguments() {
    let sim = sim(7, 2);
    for params in [
        json!([6]),
        json!([6, "ECONOMICAL"]),
        json!([1, "conservative"]),
    ] {
        let fee = call(&sim, "estimatesmartfee", params);
        assert_shape(&fee, &["feerate?:num", "errors?:array", "blocks:int"]);
        assert!(fee["blocks"].as_u64() >= Some(2));
    }
    // Whole base units per kvB: no more than eight decimals (electrs parses an amount).
    assert_eq!(
        call(&sim, "estimatesmartfee", json!([6]))["feerate"],
        json!(0.00008165)
    );
    assert_eq!(call_err(&sim, "estimatesmartfee", json!([0])).0, -8);
    assert_eq!(call_err(&sim, "estimatesmartfee", json!([1009])).0, -8);
    assert_eq!(call_err(&sim, "estimatesmartfee", json!([6, "fast"])).0, -8);
    // No argument: Core answers with the command's help as a -1 error (ElectrumX probes so).
    let (code, text) = call_err(&sim, "estimatesmartfee", json!([]));
    assert_eq!(code, -1);
    assert!(text.starts_with("estimatesmartfee conf_target"), "{text}");
}

#[test]
fn mempool_calls_have_cores_fields() {
    let sim = sim(8, 10);
    let chain = sim.with_chain_mut(|c| c.add_mempool_chain(3)).unwrap();
    let info = call(&sim, "getmempoolinfo", json!([]));
    assert_shape(
        &info,
        &[
            "loaded:bool",
            "size:int",
            "bytes:int",
            "usage:int",
            "total_fee:num",
            "maxmempool:int",
            "mempoolminfee:num",
            "minrelaytxfee:num",
            "incrementalrelayfee:num",
            "unbroadcastcount:int",
            "fullrbf:bool",
            "permitbaremultisig:bool",
            "maxdatacarriersize:int",
            "limitclustercount:int",
            "limitclustersize:int",
            "optimal:bool",
        ],
    );
    assert_eq!(info["size"], 3);

    let txids = call(&sim, "getrawmempool", json!([]));
    assert_eq!(txids, call(&sim, "getrawmempool", json!([false])));
    assert_eq!(
        txids,
        json!(chain.iter().map(hash_to_hex).collect::<Vec<_>>())
    );
    let with_sequence = call(&sim, "getrawmempool", json!([false, true]));
    assert_shape(&with_sequence, &["txids:array", "mempool_sequence:int"]);
    assert_eq!(with_sequence["mempool_sequence"], 3);
    assert_eq!(call_err(&sim, "getrawmempool", json!([true, true])).0, -8);

    let verbose = call(&sim, "getrawmempool", json!([true]));
    assert_eq!(verbose.as_object().unwrap().len(), 3);
    for entry in verbose.as_object().unwrap().values() {
        assert_shape(entry, MEMPOOL_ENTRY_SHAPE);
        assert_shape(
            &entry["fees"],
            &[
                "base:num",
                "modified:num",
                "ancestor:num",
                "descendant:num",
                "chunk:num",
            ],
        );
    }
    // The middle of the chain: one parent, one child.
    let middle = call(&sim, "getmempoolentry", json!([hash_to_hex(&chain[1])]));
    assert_eq!(middle, verbose[hash_to_hex(&chain[1])]);
    assert_eq!(middle["ancestorcount"], 2);
    assert_eq!(middle["descendantcount"], 2);
    assert_eq!(middle["depends"], json!([hash_to_hex(&chain[0])]));
    assert_eq!(middle["spentby"], json!([hash_to_hex(&chain[2])]));
    assert_eq!(middle["height"], 10);
    assert_eq!(
        call_err(&sim, "getmempoolentry", json!(["22".repeat(32)])),
        (-5, "Transaction not in mempool".into())
    );
}

#[test]
fn gettxspendingprevout_finds_confirmed_and_mempool_spends() {
    let sim = sim(9, 12);
    let (spender, height) = confirmed_spend(&sim);
    let (confirmed, spender_raw, block_hash, unspent) = sim.with_chain(|c| {
        let tx = c.tx(&spender).unwrap();
        let tip_coinbase = c.tip().txids[0];
        (
            tx.inputs[0],
            hex::encode(&tx.raw),
            hash_to_hex(&c.hash_at(height).unwrap()),
            OutPoint {
                txid: tip_coinbase,
                vout: 0,
            },
        )
    });
    let ask = |o: &OutPoint| json!({"txid": hash_to_hex(&o.txid), "vout": o.vout});
    const ITEM: &[&str] = &[
        "txid:hash",
        "vout:int",
        "spendingtxid?:hash",
        "spendingtx?:hex",
        "blockhash?:hash",
    ];

    // A confirmed spend: the spender and its block (what ElectrumX reads), and with
    // return_spending_tx the spender's bytes.
    let answer = call(
        &sim,
        "gettxspendingprevout",
        json!([[ask(&confirmed)], {"mempool_only": false}]),
    );
    assert_shape(&answer[0], ITEM);
    assert_eq!(
        answer[0],
        json!({"txid": hash_to_hex(&confirmed.txid), "vout": confirmed.vout,
               "spendingtxid": hash_to_hex(&spender), "blockhash": block_hash})
    );
    let answer = call(
        &sim,
        "gettxspendingprevout",
        json!([[ask(&confirmed)], {"return_spending_tx": true}]),
    );
    assert_shape(&answer[0], ITEM);
    assert_eq!(answer[0]["spendingtx"], spender_raw);
    assert_eq!(answer[0]["blockhash"], block_hash);
    // mempool_only: the index is not asked, so a confirmed spend looks unspent.
    let answer = call(
        &sim,
        "gettxspendingprevout",
        json!([[ask(&confirmed)], {"mempool_only": true, "return_spending_tx": true}]),
    );
    assert_eq!(answer[0], ask(&confirmed));

    // An unspent output, and an output that never existed: the outpoint alone.
    let answer = call(&sim, "gettxspendingprevout", json!([[ask(&unspent)]]));
    assert_eq!(answer[0], ask(&unspent));
    let nothing = OutPoint {
        txid: unspent.txid,
        vout: 7,
    };
    let answer = call(&sim, "gettxspendingprevout", json!([[ask(&nothing)]]));
    assert_eq!(answer[0], ask(&nothing));

    // A mempool spend has no block; Core answers mempool spends first.
    let mempool_tx = sim.with_chain_mut(|c| c.add_mempool_txs(1)).unwrap()[0];
    let (in_mempool, mempool_raw) = sim.with_chain(|c| {
        let tx = c.tx(&mempool_tx).unwrap();
        (tx.inputs[0], hex::encode(&tx.raw))
    });
    let answer = call(
        &sim,
        "gettxspendingprevout",
        json!([[ask(&confirmed), ask(&in_mempool)], {"return_spending_tx": true}]),
    );
    assert_eq!(answer[0]["txid"], hash_to_hex(&in_mempool.txid));
    assert_eq!(answer[0]["spendingtxid"], hash_to_hex(&mempool_tx));
    assert_eq!(answer[0]["spendingtx"], mempool_raw);
    assert!(answer[0].get("blockhash").is_none());
    assert_eq!(answer[1]["blockhash"], block_hash);
    for item in answer.as_array().unwrap() {
        assert_shape(item, ITEM);
    }
    let answer = call(
        &sim,
        "gettxspendingprevout",
        json!([[ask(&in_mempool)], {"mempool_only": true}]),
    );
    assert_eq!(answer[0]["spendingtxid"], hash_to_hex(&mempool_tx));

    // Named parameters, the options' members given directly (Python's test framework style).
    let named = dispatch_request(
        &sim,
        "gettxspendingprevout",
        &json!({"outputs": [ask(&confirmed)], "return_spending_tx": true}),
    )
    .unwrap();
    assert_eq!(named[0]["spendingtx"], spender_raw);

    // Core's errors.
    let err = |params: Value| call_err(&sim, "gettxspendingprevout", params);
    assert_eq!(
        err(json!([[]])),
        (-8, "Invalid parameter, outputs are missing".into())
    );
    let txid = hash_to_hex(&confirmed.txid);
    assert_eq!(
        err(json!([[{"txid": txid, "vout": -1}]])),
        (-8, "Invalid parameter, vout cannot be negative".into())
    );
    assert_eq!(err(json!([[{"txid": txid}]])), (-3, "Missing vout".into()));
    assert_eq!(err(json!([[{"vout": 1}]])), (-3, "Missing txid".into()));
    assert_eq!(
        err(json!([[{"txid": txid, "vout": 1, "unknown": 42}]])),
        (-3, "Unexpected key unknown".into())
    );
    assert_eq!(
        err(json!([[ask(&confirmed)], {"everything": true}])),
        (-3, "Unexpected key everything".into())
    );
}

#[test]
fn help_lists_commands_by_category() {
    let sim = sim(10, 1);
    let text = call(&sim, "help", json!([]));
    let text = text.as_str().unwrap();
    assert!(
        text.starts_with("== Blockchain ==\ngetbestblockhash\n"),
        "{text}"
    );
    let headings: Vec<&str> = text.lines().filter(|l| l.starts_with("== ")).collect();
    assert_eq!(
        headings,
        [
            "== Blockchain ==",
            "== Control ==",
            "== Generating ==",
            "== Network ==",
            "== Rawtransactions ==",
            "== Util ==",
            "== Zmq ==",
        ]
    );
    assert!(text.contains("\n\n== Control ==\nhelp ( \"command\" )\nuptime\n"));
    assert!(text.contains("gettxspendingprevout [{\"txid\":\"hex\",\"vout\":n},...]"));
    assert!(!text.ends_with('\n'));
    // Fulcrum's ping before `uptime` is known.
    let help = call(&sim, "help", json!(["help"]));
    assert!(help
        .as_str()
        .unwrap()
        .starts_with("help ( \"command\" )\n\n"));
    assert_eq!(
        call(&sim, "help", json!(["nosuchcommand"])),
        "help: unknown command: nosuchcommand"
    );
    // Every listed command is answered, and nothing unlisted but the simulator's own.
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("== "))
    {
        let name = line.split(' ').next().unwrap();
        assert!(help::command(name).is_some(), "{name}");
    }
    assert_eq!(
        call_err(&sim, "getblockstats", json!([1])),
        (-32601, "Method not found".into())
    );
    assert_eq!(call_err(&sim, "getblockcount", json!([1])).0, -1);
    assert_eq!(call(&sim, "getzmqnotifications", json!([])), json!([]));
    assert!(call(&sim, "uptime", json!([])).is_u64());
}

#[test]
fn getindexinfo_reports_both_indexes() {
    let sim = sim(11, 3);
    let info = call(&sim, "getindexinfo", json!([]));
    assert_shape(&info, &["txindex:object", "txospenderindex:object"]);
    assert_shape(&info["txindex"], &["synced:bool", "best_block_height:int"]);
    assert_eq!(
        call(&sim, "getindexinfo", json!(["txospenderindex"])),
        json!({"txospenderindex": {"synced": true, "best_block_height": 3}})
    );
    assert_eq!(
        call(&sim, "getindexinfo", json!(["coinstatsindex"])),
        json!({})
    );
}

/// A spend of the tip's coinbase output (unspent in a chain without mempool).
fn spend_of_tip_coinbase(sim: &Simulator, fee: u64) -> (Vec<u8>, Hash32) {
    sim.with_chain(|c| {
        let funding = c.tip().txids[0];
        let value = c.tx(&funding).unwrap().outputs[0].value;
        let out = anode_coins::TxOut {
            value: value - fee,
            script: [&[0x00, 0x14][..], &[0x42; 20]].concat(),
        };
        let tx = c
            .coin()
            .encoder()
            .unwrap()
            .spend(
                &[OutPoint {
                    txid: funding,
                    vout: 0,
                }],
                &[out],
            )
            .unwrap();
        (tx.raw, tx.txid)
    })
}

#[test]
fn broadcasts_answer_as_core_does() {
    let sim = sim(12, 5);
    let (raw, txid) = spend_of_tip_coinbase(&sim, 2_000);
    let raw_hex = hex::encode(&raw);
    let accept = call(&sim, "testmempoolaccept", json!([[raw_hex]]));
    let accepted_shape = &[
        "txid:hash",
        "wtxid:hash",
        "package-error?:str",
        "allowed:bool",
        "vsize?:int",
        "fees?:object",
        "reject-reason?:str",
        "reject-details?:str",
    ];
    assert_shape(&accept[0], accepted_shape);
    assert_eq!(accept[0]["allowed"], true);
    assert_ne!(accept[0]["wtxid"], accept[0]["txid"], "a SegWit spend");
    assert_shape(
        &accept[0]["fees"],
        &[
            "base:num",
            "effective-feerate:num",
            "effective-includes:array",
        ],
    );
    assert_eq!(accept[0]["fees"]["base"], json!(0.00002));

    assert_eq!(
        call(&sim, "sendrawtransaction", json!([raw_hex])),
        hash_to_hex(&txid)
    );
    // Fulcrum adds maxfeerate and maxburnamount; a resend answers the txid again.
    assert_eq!(
        call(
            &sim,
            "sendrawtransaction",
            json!([raw_hex, 0.1, 21_000_000])
        ),
        hash_to_hex(&txid)
    );
    let again = call(&sim, "testmempoolaccept", json!([[raw_hex]]));
    assert_shape(&again[0], accepted_shape);
    assert_eq!(again[0]["reject-reason"], "txn-already-in-mempool");
    // A block of exactly the mempool, so nothing spends the new output yet.
    sim.with_chain_mut(|c| c.mine_mempool()).unwrap();
    assert_eq!(
        call_err(&sim, "sendrawtransaction", json!([raw_hex])),
        (-27, "Transaction outputs already in utxo set".into())
    );
    assert_eq!(call_err(&sim, "sendrawtransaction", json!(["00"])).0, -22);

    // submitpackage: results keyed by wtxid (ElectrumX and Fulcrum read them so).
    let (raw, txid) = spend_of_tip_coinbase(&sim, 3_000);
    let wtxid = accept_wtxid(&sim, &raw);
    let package = call(
        &sim,
        "submitpackage",
        json!([[hex::encode(&raw)], 0.1, 21_000_000]),
    );
    assert_shape(
        &package,
        &[
            "package_msg:str",
            "tx-results:object",
            "replaced-transactions:array",
        ],
    );
    assert_eq!(package["package_msg"], "success");
    let result = &package["tx-results"][&wtxid];
    assert_shape(
        result,
        &[
            "txid:hash",
            "other-wtxid?:hash",
            "vsize?:int",
            "fees?:object",
            "error?:str",
        ],
    );
    assert_eq!(result["txid"], hash_to_hex(&txid));

    // A double spend: refused, with Core's reason.
    let (conflict, _) = spend_of_tip_coinbase(&sim, 9_000);
    let refused = call(&sim, "testmempoolaccept", json!([[hex::encode(&conflict)]]));
    assert_eq!(refused[0]["allowed"], false);
    assert_eq!(refused[0]["reject-reason"], "txn-mempool-conflict");
    let failed = call(&sim, "submitpackage", json!([[hex::encode(&conflict)]]));
    assert_eq!(failed["package_msg"], "transaction failed");
}

fn accept_wtxid(sim: &Simulator, raw: &[u8]) -> String {
    call(sim, "testmempoolaccept", json!([[hex::encode(raw)]]))[0]["wtxid"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn validateaddress_describes_the_output_script() {
    let sim = sim(13, 1);
    let valid = call(
        &sim,
        "validateaddress",
        json!(["bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"]),
    );
    assert_shape(
        &valid,
        &[
            "isvalid:bool",
            "address:str",
            "scriptPubKey:hex",
            "isscript:bool",
            "iswitness:bool",
            "witness_version?:int",
            "witness_program?:hex",
        ],
    );
    assert_eq!(
        valid["scriptPubKey"],
        "0014751e76e8199196d454941c45d1b3a323f1433bd6"
    );
    assert_eq!(valid["witness_version"], 0);
    let invalid = call(&sim, "validateaddress", json!(["not an address"]));
    assert_shape(
        &invalid,
        &["isvalid:bool", "error_locations:array", "error:str"],
    );
    assert_eq!(invalid["isvalid"], false);
}

#[test]
fn the_same_seed_gives_the_same_answers() {
    let (a, b) = (sim(14, 8), sim(14, 8));
    for (method, params) in [
        ("getblockchaininfo", json!([])),
        (
            "getblock",
            json!([call(&a, "getbestblockhash", json!([])), 3]),
        ),
        ("getrawmempool", json!([true])),
    ] {
        a.with_chain_mut(|c| c.add_mempool_txs(2)).unwrap();
        b.with_chain_mut(|c| c.add_mempool_txs(2)).unwrap();
        assert_eq!(
            call(&a, method, params.clone()),
            call(&b, method, params),
            "{method}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Over HTTP: JSON-RPC framing and REST

async fn post(addr: std::net::SocketAddr, body: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/"))
        .body(body.to_string())
        .send()
        .await
        .expect("posted");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let response = reqwest::get(format!("http://{addr}{path}"))
        .await
        .expect("fetched");
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap_or_default().to_vec())
}

#[tokio::test]
async fn json_rpc_framing_follows_core() {
    let sim = sim(15, 3);
    let server = serve(sim, "127.0.0.1:0".parse().unwrap(), Auth::default())
        .await
        .unwrap();
    // Legacy: result and error both; an error is HTTP 500, an unknown method 404.
    let (status, body) = post(server.addr, r#"{"id":1,"method":"getblockcount"}"#).await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).unwrap()),
        (200, json!({"result": 3, "error": null, "id": 1}))
    );
    let (status, body) = post(
        server.addr,
        r#"{"id":2,"method":"getblockhash","params":[9]}"#,
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        -8
    );
    let (status, _) = post(
        server.addr,
        r#"{"id":3,"method":"getdsprooflist","params":[0]}"#,
    )
    .await;
    assert_eq!(status, 404);
    // JSON-RPC 2.0: HTTP 200, result or error, never both.
    let (status, body) = post(
        server.addr,
        r#"{"jsonrpc":"2.0","id":4,"method":"getblockhash","params":[9]}"#,
    )
    .await;
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200);
    assert!(
        reply.get("result").is_none() && reply["error"]["code"] == -8,
        "{reply}"
    );
    // Named parameters, and a batch.
    let (_, body) = post(
        server.addr,
        r#"[{"jsonrpc":"2.0","id":5,"method":"getblockhash","params":{"height":0}},{"id":6,"method":"uptime"}]"#,
    )
    .await;
    let replies: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        replies[0]["result"],
        "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    );
    assert!(replies[1]["result"].is_u64());
    let (status, body) = post(server.addr, "{nonsense").await;
    assert_eq!(status, 500);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        -32700
    );
}

#[tokio::test]
async fn rest_serves_what_electrs_reads() {
    let sim = sim(16, 9);
    let server = serve(sim.clone(), "127.0.0.1:0".parse().unwrap(), Auth::default())
        .await
        .unwrap();
    // A block with spends in it.
    let (_, spends) = confirmed_spend(&sim);
    let (hash2, hash5, header3, raw5) = sim.with_chain(|c| {
        (
            c.hash_at(2).unwrap(),
            c.hash_at(spends).unwrap(),
            c.block(3).unwrap().header.clone(),
            c.block(spends).unwrap().raw.clone(),
        )
    });
    let (status, body) = get(
        server.addr,
        &format!("/rest/blockhashbyheight/{spends}.bin"),
    )
    .await;
    assert_eq!((status, body), (200, hash5.to_vec()));
    let (_, body) = get(
        server.addr,
        &format!("/rest/blockhashbyheight/{spends}.json"),
    )
    .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"blockhash": hash_to_hex(&hash5)})
    );
    assert_eq!(
        get(server.addr, "/rest/blockhashbyheight/99.bin").await.0,
        404
    );

    // Headers upwards from a block, in both URL forms.
    let (_, body) = get(
        server.addr,
        &format!("/rest/headers/{}.bin?count=3", hash_to_hex(&hash2)),
    )
    .await;
    assert_eq!(body.len(), 3 * 80);
    assert_eq!(body[80..160], header3[..]);
    let (_, old_form) = get(
        server.addr,
        &format!("/rest/headers/3/{}.bin", hash_to_hex(&hash2)),
    )
    .await;
    assert_eq!(old_form, body);
    let (_, body) = get(
        server.addr,
        &format!("/rest/headers/{}.json?count=2", hash_to_hex(&hash2)),
    )
    .await;
    let headers: Value = serde_json::from_slice(&body).unwrap();
    assert_shape(&headers[1], HEADER_SHAPE);

    // A part of a block, and a range past its end.
    let hex5 = hash_to_hex(&hash5);
    let (status, body) = get(
        server.addr,
        &format!("/rest/blockpart/{hex5}.bin?offset=80&size=10"),
    )
    .await;
    assert_eq!((status, body), (200, raw5[80..90].to_vec()));
    let past = format!("/rest/blockpart/{hex5}.bin?offset=80&size={}", raw5.len());
    assert_eq!(get(server.addr, &past).await.0, 400);
    let (_, body) = get(server.addr, &format!("/rest/block/{hex5}.hex")).await;
    assert_eq!(body, format!("{}\n", hex::encode(&raw5)).into_bytes());

    // The outputs the block spends: one list per transaction, the coinbase's empty.
    let (status, body) = get(server.addr, &format!("/rest/spenttxouts/{hex5}.bin")).await;
    assert_eq!(status, 200);
    let expected = sim.with_chain(|c| {
        let block = c.block(spends).unwrap();
        block
            .txids
            .iter()
            .map(|t| {
                c.tx(t)
                    .unwrap()
                    .inputs
                    .iter()
                    .map(|i| c.tx(&i.txid).unwrap().outputs[i.vout as usize].clone())
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    });
    // Every count here is below 0xfd: one byte.
    fn read_varint(b: &[u8], at: &mut usize) -> usize {
        *at += 1;
        b[*at - 1] as usize
    }
    let mut at = 0usize;
    assert_eq!(read_varint(&body, &mut at), expected.len());
    for outputs in &expected {
        assert_eq!(read_varint(&body, &mut at), outputs.len());
        for out in outputs {
            assert_eq!(body[at..at + 8], out.value.to_le_bytes());
            at += 8;
            let len = read_varint(&body, &mut at);
            assert_eq!(body[at..at + len], out.script[..]);
            at += len;
        }
    }
    assert_eq!(at, body.len());
    let (_, body) = get(server.addr, &format!("/rest/spenttxouts/{hex5}.json")).await;
    let lists: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(lists[0], json!([]));
    assert_shape(&lists[1][0], &["value:num", "scriptPubKey:object"]);

    let (status, body) = get(server.addr, "/rest/chaininfo.json").await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["blocks"], 9);
    assert_eq!(get(server.addr, "/rest/block/zz.bin").await.0, 400);
}

// ---------------------------------------------------------------------------------------------
// P2P: what electrs 0.11 does

mod p2p_peer {
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;

    use super::*;
    use crate::daemon::p2p::{
        decode_inv, decode_version, encode_getheaders, encode_message, encode_version,
        read_message, Message, MSG_BLOCK,
    };

    struct Peer {
        stream: TcpStream,
        magic: [u8; 4],
    }

    impl Peer {
        /// Connects and shakes hands as electrs 0.11 does: protocol 70001, no relay.
        async fn connect(server: &SimP2pServer, magic: [u8; 4]) -> (Peer, Message) {
            let stream = TcpStream::connect(server.addr).await.unwrap();
            let mut peer = Peer { stream, magic };
            peer.send(
                "version",
                &encode_version(70001, "/electrs:0.11.1/", 0, None),
            )
            .await;
            let version = peer.next().await;
            assert_eq!(version.command, "version");
            assert_eq!(peer.next().await.command, "verack");
            peer.send("verack", &[]).await;
            (peer, version)
        }

        async fn send(&mut self, command: &str, payload: &[u8]) {
            self.stream
                .write_all(&encode_message(self.magic, command, payload))
                .await
                .unwrap();
        }

        async fn next(&mut self) -> Message {
            tokio::time::timeout(
                Duration::from_secs(10),
                read_message(&mut self.stream, self.magic, 64 << 20),
            )
            .await
            .expect("a message in time")
            .expect("a message")
        }
    }

    #[tokio::test]
    async fn new_blocks_are_announced_after_the_handshake() {
        let sim = super::sim(17, 4);
        let magic = coin().params().p2p_magic.unwrap();
        let server = serve_p2p(sim.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let (mut peer, version) = Peer::connect(&server, magic).await;
        let theirs = decode_version(&version.payload).unwrap();
        assert_eq!(theirs.services, 0x409, "NETWORK, WITNESS, NETWORK_LIMITED");
        assert_eq!(theirs.start_height, 4);
        assert_eq!(sim.peers(), 1);

        // A ping fences the handshake; then a block is announced by `inv` (no sendheaders).
        peer.send("ping", &7u64.to_le_bytes()).await;
        assert_eq!(peer.next().await.command, "pong");
        let mined = sim.mine(1).unwrap()[0];
        let inv = peer.next().await;
        assert_eq!(inv.command, "inv");
        assert_eq!(
            decode_inv(&inv.payload, "inv").unwrap(),
            vec![(MSG_BLOCK, mined)]
        );

        // After `sendheaders`: headers of the new blocks instead.
        peer.send("sendheaders", &[]).await;
        peer.send("ping", &8u64.to_le_bytes()).await;
        assert_eq!(peer.next().await.command, "pong");
        let mined = sim.mine(2).unwrap();
        let mut announced = Vec::new();
        while announced.len() < 2 {
            let msg = peer.next().await;
            assert_eq!(msg.command, "headers");
            let count = msg.payload[0] as usize;
            for i in 0..count {
                let header = &msg.payload[1 + i * 81..1 + i * 81 + 80];
                announced.push(anode_coins::hash::sha256d(header));
            }
        }
        assert_eq!(announced, mined);

        // getheaders without a locator asks for the stop block alone.
        let stop = sim.with_chain(|c| c.hash_at(2).unwrap());
        peer.send("getheaders", &encode_getheaders(70001, &[], &stop))
            .await;
        let headers = peer.next().await;
        assert_eq!(headers.command, "headers");
        assert_eq!(headers.payload[0], 1);
        assert_eq!(anode_coins::hash::sha256d(&headers.payload[1..81]), stop);
    }

    #[tokio::test]
    async fn nothing_is_served_before_the_handshake() {
        let sim = super::sim(18, 2);
        let magic = coin().params().p2p_magic.unwrap();
        let server = serve_p2p(sim.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let stream = TcpStream::connect(server.addr).await.unwrap();
        let mut peer = Peer { stream, magic };
        // Before `version`, Core ignores a ping; the version is answered, then the ping.
        peer.send("ping", &1u64.to_le_bytes()).await;
        peer.send("version", &encode_version(70016, "/test/", 0, None))
            .await;
        assert_eq!(peer.next().await.command, "version");
        assert_eq!(peer.next().await.command, "verack");
        peer.send("verack", &[]).await;
        peer.send("ping", &2u64.to_le_bytes()).await;
        let pong = peer.next().await;
        assert_eq!(
            (pong.command.as_str(), pong.payload.as_slice()),
            ("pong", &2u64.to_le_bytes()[..])
        );
    }
}
