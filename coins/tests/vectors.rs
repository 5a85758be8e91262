//! Data-driven checks of every real block and transaction vector in `tests/data/vectors`
//! (docs/coins.md, Vector status; `tests/data/vectors/README.md` gives their source and
//! licence and lists their quirks). One line per vector is printed; the test fails at the end listing every
//! vector whose outcome differs from the expectation below (so regressions fail and unexpected
//! passes are flagged).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

use anode_coins::{hash_to_hex, lookup, merkle_root};
use common::*;
use serde_json::Value;

/// Outcome of one block vector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// Hash, previous hash, every txid (and the merkle root) match; `check_block` accepts it.
    Pass,
    /// Previous hash and txids match; the block-hash algorithm is not available.
    NoHash(String),
    /// Previous hash and txids match; the block hash does not.
    HashMismatch,
    /// Parsing or a txid/previous-hash comparison failed.
    Fail(String),
}

/// Vectors that are expected not to fully pass: (file stem, outcome kind, detail).
/// `nohash` entries name the block-hash algorithm the vector needs: the vector must
/// pass txids/previous hash, and must fully pass whenever this build has that
/// algorithm (e.g. `x11` with `--features x11`). Everything not listed must `Pass`.
/// Keep docs/coins.md in sync.
const EXPECTED: &[(&str, &str, &str)] = &[
    // (file stem, outcome kind, reason)
    ("axe_mainnet_30237", "nohash", "x11"),
    ("axe_testnet_30", "nohash", "x11"),
    ("axe_testnet_30237", "nohash", "x11"),
    ("bitcoingreen_mainnet_10000", "nohash", "quark"),
    ("bitcoingreen_mainnet_285000", "nohash", "quark"),
    ("bitcoinplus_mainnet_749740", "nohash", "x13"),
    ("bitsend_mainnet_571000", "nohash", "xevan"),
    ("bolivarcoin_mainnet_500000", "nohash", "x11"),
    ("colossusxt_mainnet_100000", "nohash", "quark"),
    ("dash_mainnet_844898", "nohash", "x11"),
    ("dash_testnet_2999", "nohash", "x11"),
    ("deeponion_mainnet_50000", "nohash", "x13"),
    ("denarius_mainnet_10000", "nohash", "tribus"),
    ("electra_mainnet_120000", "nohash", "nist5"),
    ("mnpcoin_mainnet_50000", "nohash", "quark"),
    ("odin_mainnet_1337", "nohash", "quark"),
    ("onixcoin_mainnet_300000", "nohash", "x11"),
    ("pac_mainnet_27676", "nohash", "x11"),
    ("pac_testnet_16275", "nohash", "x11"),
    ("pivx_mainnet_10000", "nohash", "quark"),
    ("polis_mainnet_100000", "nohash", "x11"),
    ("ravencoin_mainnet_1220400", "nohash", "kawpow"),
    ("ravencoin_mainnet_600000", "nohash", "x16r"),
    ("ravencoin_testnet_100000", "nohash", "x16rv2"),
    ("ravencoin_testnet_250000", "nohash", "kawpow"),
    ("xuez_mainnet_1", "nohash", "xevan"),
    ("xuez_mainnet_15000", "nohash", "xevan"),
    (
        "verge_mainnet_30000",
        "hashmismatch",
        "vector quirk: Verge's scrypt rule does not give `hash`",
    ),
];

fn expected(stem: &str) -> Option<(&'static str, &'static str)> {
    EXPECTED
        .iter()
        .find(|(s, _, _)| *s == stem)
        .map(|(_, k, r)| (*k, *r))
        .filter(|(k, algo)| {
            // A `nohash` expectation lapses when the algorithm is compiled in.
            *k != "nohash" || !anode_coins::HashAlgo::from_name(algo).is_some_and(|a| a.available())
        })
}

fn check_block(stem: &str, v: &Value) -> Outcome {
    let (coin_name, net) = coin_net(stem);
    let coin = match lookup(&coin_name, &net) {
        Ok(c) => c,
        Err(e) => return Outcome::Fail(format!("lookup: {e}")),
    };
    let raw = unhex(v["block"].as_str().unwrap_or_default());
    let height = v["height"].as_u64().map(|h| h as u32);
    let block = match coin.parse_block(&raw, height) {
        Ok(b) => b,
        Err(e) => return Outcome::Fail(format!("parse: {e}")),
    };
    match coin.block_header(&raw, height) {
        Ok(h) if h == block.header => {}
        other => return Outcome::Fail(format!("block_header differs: {other:?}")),
    }
    let want_prev = clean_hex(v["previousblockhash"].as_str().unwrap_or_default());
    if hash_to_hex(&block.prev_hash) != want_prev {
        return Outcome::Fail("previous hash differs".into());
    }
    let want_txids: Vec<String> = v["tx"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| clean_hex(t.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    if block.txs.len() != want_txids.len() {
        return Outcome::Fail(format!(
            "{} transactions parsed, {} expected",
            block.txs.len(),
            want_txids.len()
        ));
    }
    for (i, (tx, want)) in block.txs.iter().zip(&want_txids).enumerate() {
        if &hash_to_hex(&tx.txid) != want {
            return Outcome::Fail(format!("txid {i} differs"));
        }
    }
    if coin.params().tx_format != anode_coins::TxFormat::Decred {
        let ids: Vec<_> = block.txs.iter().map(|t| t.txid).collect();
        let want_root = clean_hex(v["merkleroot"].as_str().unwrap_or_default());
        if hash_to_hex(&merkle_root(&ids)) != want_root {
            return Outcome::Fail("merkle root differs".into());
        }
    }
    // What a server checks of every block a node serves must hold for every real one.
    if let Err(fault) = coin.check_block(&block, height) {
        return Outcome::Fail(format!("check_block: {fault}"));
    }
    if !block.hash_available {
        // Name the algorithm this header needs, as the coin reports it.
        return Outcome::NoHash(match coin.header_hash(&block.header) {
            Err(anode_coins::Error::HashUnavailable(a)) => a,
            other => format!("unexpected {other:?}"),
        });
    }
    if hash_to_hex(&block.hash) != clean_hex(v["hash"].as_str().unwrap_or_default()) {
        return Outcome::HashMismatch;
    }
    Outcome::Pass
}

// One generated `#[test]` per vector file (see build.rs), so `cargo test` names each.
include!(concat!(env!("OUT_DIR"), "/vector_tests.rs"));

fn outcome_ok(outcome: &Outcome, exp: Option<(&str, &str)>, stem: &str) -> bool {
    matches!(
        (outcome, exp),
        (Outcome::Pass, None)
            | (Outcome::NoHash(_), Some(("nohash", _)))
            | (Outcome::HashMismatch, Some(("hashmismatch", _)))
            | (Outcome::Fail(_), Some(("fail", _)))
    ) || (!matches!(exp, Some(("fail", _)))
        && feature_off(stem)
        && match outcome {
            Outcome::NoHash(_) => true,
            // Decred's txids are BLAKE-256 too.
            Outcome::Fail(e) => e.contains("not available in this build"),
            _ => false,
        })
}

/// Whether the vector's network needs a hash whose cargo feature is off in this build
/// (e.g. `--no-default-features`): then a missing block hash is expected too.
fn feature_off(stem: &str) -> bool {
    let (coin, net) = coin_net(stem);
    lookup(&coin, &net).is_ok_and(|c| {
        c.params()
            .hash_algos()
            .iter()
            .any(|a| a.feature().is_some() && !a.available())
    })
}

/// The generated per-file block test.
fn block_file_test(file: &str) {
    let path = vectors_dir().join("blocks").join(file);
    let stem = stem(&path);
    let outcome = check_block(&stem, &load_json(&path));
    let exp = expected(&stem);
    assert!(
        outcome_ok(&outcome, exp, &stem),
        "{stem}: got {outcome:?}, expected {exp:?}"
    );
}

/// The generated per-file transaction test.
fn tx_file_test(file: &str) {
    let path = vectors_dir().join("transactions").join(file);
    let stem = stem(&path);
    match check_tx(&stem, &load_json(&path)) {
        Ok(()) => {}
        // e.g. Decred's BLAKE-256 txid with `--no-default-features`.
        Err(e) if e.contains("not available in this build") && feature_off(&stem) => {}
        Err(e) => panic!("{stem}: {e}"),
    }
}

/// All block vectors at once, with a summary line.
#[test]
fn block_vectors() {
    let files = vector_files("blocks");
    assert_eq!(files.len(), 150, "expected 150 block vectors");
    let mut problems = Vec::new();
    let (mut pass, mut nohash, mut mismatch, mut fail) = (0, 0, 0, 0);
    for f in &files {
        let stem = stem(f);
        let v = load_json(f);
        let outcome = check_block(&stem, &v);
        let exp = expected(&stem);
        let line = match &outcome {
            Outcome::Pass => {
                pass += 1;
                "PASS".to_string()
            }
            Outcome::NoHash(a) => {
                nohash += 1;
                format!("TXIDS-OK, block hash not checked: {a} unavailable")
            }
            Outcome::HashMismatch => {
                mismatch += 1;
                "TXIDS-OK, BLOCK HASH MISMATCH".to_string()
            }
            Outcome::Fail(r) => {
                fail += 1;
                format!("FAIL: {r}")
            }
        };
        let ok = outcome_ok(&outcome, exp, &stem);
        let note = match exp {
            Some(("nohash", algo)) => format!(" [expected: {algo} not in this build]"),
            Some((_, reason)) => format!(" [expected: {reason}]"),
            None => String::new(),
        };
        println!("block vector {stem}: {line}{note}");
        if !ok {
            problems.push(format!("{stem}: got {line}, expected {exp:?}"));
        }
    }
    println!(
        "block vectors: {} total, {pass} fully pass, {nohash} txids/prev ok without block hash, \
         {mismatch} hash mismatch, {fail} fail",
        files.len()
    );
    assert!(
        problems.is_empty(),
        "unexpected outcomes:\n{}",
        problems.join("\n")
    );
}

fn check_tx(stem: &str, v: &Value) -> Result<(), String> {
    let (coin_name, net) = coin_net(stem);
    let coin = lookup(&coin_name, &net).map_err(|e| format!("lookup: {e}"))?;
    let raw = unhex(v["hex"].as_str().unwrap_or_default());
    let tx = coin.parse_tx(&raw).map_err(|e| format!("parse: {e}"))?;
    if hash_to_hex(&tx.txid) != clean_hex(v["txid"].as_str().unwrap_or_default()) {
        return Err("txid differs".into());
    }
    if let Some(w) = v["hash"].as_str() {
        let wtxid = anode_coins::hash::sha256d(&raw);
        if hash_to_hex(&wtxid) != clean_hex(w) {
            return Err("wtxid differs".into());
        }
    }
    let bitcoin = coin_name == "bitcoin";
    if bitcoin {
        if v["vsize"].as_u64() != Some(tx.vsize() as u64) {
            return Err(format!("vsize {} differs", tx.vsize()));
        }
        if v["version"].as_u64() != Some(tx.version as u64) {
            return Err("version differs".into());
        }
    }
    // Inputs (coinbase inputs are not listed by the parser).
    let vin = v["vin"].as_array().cloned().unwrap_or_default();
    let want_in: Vec<(String, u64)> = vin
        .iter()
        .filter(|i| i.get("coinbase").is_none())
        .map(|i| {
            (
                clean_hex(i["txid"].as_str().unwrap_or_default()),
                i["vout"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let got_in: Vec<(String, u64)> = tx
        .inputs
        .iter()
        .map(|o| (hash_to_hex(&o.txid), o.vout as u64))
        .collect();
    if want_in != got_in {
        return Err("inputs differ".into());
    }
    if bitcoin {
        let generic = anode_coins::GenericCoin::new(coin.params().clone());
        let wits = generic.tx_witnesses(&raw).map_err(|e| e.to_string())?;
        for (i, input) in vin.iter().enumerate() {
            let want: Vec<String> = input["txinwitness"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| x.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let got: Vec<String> = wits
                .get(i)
                .map(|s| s.iter().map(|x| anode_coins::hex_encode(x)).collect())
                .unwrap_or_default();
            if want != got {
                return Err(format!("witness of input {i} differs"));
            }
        }
    }
    let vout = v["vout"].as_array().cloned().unwrap_or_default();
    if vout.len() != tx.outputs.len() {
        return Err("output count differs".into());
    }
    for (i, (o, w)) in tx.outputs.iter().zip(&vout).enumerate() {
        let want_value = if bitcoin {
            (w["value"].as_f64().unwrap_or(-1.0) * 1e8).round() as u64
        } else {
            w["value"].as_u64().unwrap_or(u64::MAX)
        };
        if o.value != want_value {
            return Err(format!("value of output {i} differs"));
        }
        let spk = &w["scriptPubKey"];
        if anode_coins::hex_encode(&o.script) != clean_hex(spk["hex"].as_str().unwrap_or_default())
        {
            return Err(format!("script of output {i} differs"));
        }
        let addr = spk["address"]
            .as_str()
            .or_else(|| spk["addresses"].get(0).and_then(|a| a.as_str()));
        if let Some(addr) = addr {
            let script = coin
                .address_to_script(addr)
                .map_err(|e| format!("output {i}: {e}"))?;
            if anode_coins::hash::sha256(&script) != coin.script_hash(&o.script) {
                return Err(format!(
                    "script hash of output {i} differs from its address's"
                ));
            }
            if coin.script_to_address(&o.script).as_deref() != Some(addr) {
                return Err(format!("address of output {i} does not round-trip"));
            }
        }
        if let Some(name) = spk["nameOp"]["name"].as_str() {
            let got = coin
                .name_index_script(&o.script)
                .ok_or_else(|| format!("output {i}: no name index script"))?;
            let op = if coin_name == "namecoin" { 0x53 } else { 0x52 };
            let mut want = vec![op];
            let n = name.as_bytes();
            if n.len() < 0x4c {
                want.push(n.len() as u8);
            } else {
                want.extend_from_slice(&[0x4c, n.len() as u8]);
            }
            want.extend_from_slice(n);
            want.extend_from_slice(&[0x00, 0x6d, 0x75, 0x6a]);
            if got != want {
                return Err(format!("name index script of output {i} differs"));
            }
        } else if spk.get("nameOp").is_some() && coin.name_index_script(&o.script).is_some() {
            return Err(format!("output {i}: name_new must not get a name entry"));
        }
    }
    Ok(())
}

#[test]
fn transaction_vectors() {
    let files = vector_files("transactions");
    assert_eq!(files.len(), 20, "expected 20 transaction vectors");
    let mut failures = Vec::new();
    for f in &files {
        let stem = stem(f);
        let v = load_json(f);
        match check_tx(&stem, &v) {
            Ok(()) => println!("transaction vector {stem}: PASS"),
            Err(e) if e.contains("not available in this build") && feature_off(&stem) => {
                println!("transaction vector {stem}: SKIPPED: {e}")
            }
            Err(e) => {
                println!("transaction vector {stem}: FAIL: {e}");
                failures.push(format!("{stem}: {e}"));
            }
        }
    }
    println!(
        "transaction vectors: {} total, {} fail",
        files.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "failing transaction vectors:\n{}",
        failures.join("\n")
    );
}
