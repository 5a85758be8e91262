//! The simulator's node interface: the Bitcoin Core 31 JSON-RPC methods Electrum servers use
//! (ElectrumX, Fulcrum, electrs and anode; docs/simulator.md lists who calls what), answered
//! with Core's field names and types, plus `sim_*` control methods.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::chain::{SimChain, SpendStatus};
use super::control::Simulator;
use super::core_json::{self, amount, Detail, Prevout};
use super::help;
use crate::daemon::hash_to_hex;
use anode_coins::{Hash32, OutPoint};

/// A JSON-RPC error: code and message.
pub type RpcError = (i64, String);

/// Relay, incremental and minimum mempool fee rate of Core 31's defaults (0.1 sat/vB), in
/// coins per kvB.
const MIN_RELAY_FEE: f64 = 0.000_001;

/// Services the simulated node offers: NODE_NETWORK, NODE_WITNESS (SegWit coins),
/// NODE_NETWORK_LIMITED.
pub(crate) fn local_services(segwit: bool) -> (u64, Vec<&'static str>) {
    if segwit {
        (0x409, vec!["NETWORK", "WITNESS", "NETWORK_LIMITED"])
    } else {
        (0x401, vec!["NETWORK", "NETWORK_LIMITED"])
    }
}

fn invalid_params(message: impl Into<String>) -> RpcError {
    (-8, message.into())
}

/// Core's `uvTypeName`.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_error(v: &Value, expected: &str) -> RpcError {
    (
        -3,
        format!(
            "JSON value of type {} is not of expected type {expected}",
            type_name(v)
        ),
    )
}

/// Core's `ParseHashV`: a 64-digit hex string, errors naming the parameter.
fn parse_hash(v: &Value, name: &str) -> Result<Hash32, RpcError> {
    let text = v.as_str().ok_or_else(|| type_error(v, "string"))?;
    if text.len() != 64 {
        return Err(invalid_params(format!(
            "{name} must be of length 64 (not {}, for '{text}')",
            text.len()
        )));
    }
    crate::daemon::hash_from_hex(text)
        .ok_or_else(|| invalid_params(format!("{name} must be hexadecimal string (not '{text}')")))
}

fn param_hash(params: &[Value], i: usize, name: &str) -> Result<Hash32, RpcError> {
    parse_hash(params.get(i).unwrap_or(&Value::Null), name)
}

/// An optional parameter: `None` when absent or null.
fn param(params: &[Value], i: usize) -> Option<&Value> {
    params.get(i).filter(|v| !v.is_null())
}

fn param_i64(params: &[Value], i: usize) -> Result<Option<i64>, RpcError> {
    match param(params, i) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| type_error(v, "number")),
    }
}

fn param_u64(params: &[Value], i: usize, default: Option<u64>) -> Result<u64, RpcError> {
    match param(params, i) {
        Some(v) => v.as_u64().ok_or_else(|| {
            invalid_params(format!(
                "parameter {} must be a non-negative integer",
                i + 1
            ))
        }),
        None => default.ok_or_else(|| invalid_params(format!("missing parameter {}", i + 1))),
    }
}

fn param_bool(params: &[Value], i: usize, default: bool) -> Result<bool, RpcError> {
    match param(params, i) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(type_error(v, "bool")),
    }
}

/// Core's `ParseVerbosity`: a number, or a boolean read as 0 or 1.
fn param_verbosity(params: &[Value], i: usize, default: i64) -> Result<i64, RpcError> {
    match param(params, i) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(i64::from(*b)),
        Some(v) => v.as_i64().ok_or_else(|| {
            (
                -3,
                "Verbosity was not of type number or boolean".to_string(),
            )
        }),
    }
}

fn chain_name(chain: &SimChain) -> &'static str {
    match chain.coin().params().net.as_str() {
        "mainnet" => "main",
        "testnet" => "test",
        "testnet4" => "testnet4",
        "signet" => "signet",
        _ => "regtest",
    }
}

fn not_found_block() -> RpcError {
    (-5, "Block not found".into())
}

// ---------------------------------------------------------------------------------------------
// Blocks and headers

/// Version, merkle root, bits and nonce of a served header, read where the coin's layout
/// puts them (Bitcoin: 0, 36, 72, 76).
struct HeaderFields {
    version: i32,
    merkle_root: Hash32,
    bits: u32,
    nonce: u32,
}

fn header_fields(chain: &SimChain, header: &[u8]) -> HeaderFields {
    let u32_at = |at: usize| {
        header
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let time_at = chain.coin().params().header.time_offset;
    HeaderFields {
        version: u32_at(0).unwrap_or(0) as i32,
        merkle_root: header
            .get(36..68)
            .and_then(|b| b.try_into().ok())
            .unwrap_or([0; 32]),
        bits: u32_at(time_at + 4).unwrap_or(super::REGTEST_BITS),
        nonce: u32_at(time_at + 8).unwrap_or(0),
    }
}

/// Core's `blockheaderToJSON` for the block at `height` of the active chain.
pub(crate) fn header_json(chain: &SimChain, height: u32) -> Option<Map<String, Value>> {
    let header = chain.header_at(height)?;
    let hash = chain.hash_at(height)?;
    let f = header_fields(chain, &header);
    let mut o = Map::new();
    o.insert("hash".into(), json!(hash_to_hex(&hash)));
    o.insert("confirmations".into(), json!(chain.height() - height + 1));
    o.insert("height".into(), json!(height));
    o.insert("version".into(), json!(f.version));
    o.insert(
        "versionHex".into(),
        json!(format!("{:08x}", f.version as u32)),
    );
    o.insert("merkleroot".into(), json!(hash_to_hex(&f.merkle_root)));
    o.insert("time".into(), json!(chain.time_at(height)?));
    o.insert("mediantime".into(), json!(chain.median_time_past(height)));
    o.insert("nonce".into(), json!(f.nonce));
    o.insert("bits".into(), json!(format!("{:08x}", f.bits)));
    o.insert(
        "target".into(),
        json!(hex::encode(core_json::target_from_bits(f.bits))),
    );
    o.insert("difficulty".into(), json!(core_json::difficulty(f.bits)));
    // Every simulated block carries the same target, so the work is the block count times
    // one block's.
    o.insert(
        "chainwork".into(),
        json!(core_json::chainwork_hex(f.bits, u64::from(height) + 1)),
    );
    o.insert("nTx".into(), json!(chain.tx_count_at(height)?));
    if height > 0 {
        o.insert(
            "previousblockhash".into(),
            json!(hash_to_hex(&chain.hash_at(height - 1)?)),
        );
    }
    if let Some(next) = chain.hash_at(height + 1) {
        o.insert("nextblockhash".into(), json!(hash_to_hex(&next)));
    }
    Some(o)
}

/// The outputs a transaction spends, as block undo data gives them; `None` for a coinbase
/// or when one is unknown.
pub(crate) fn spent_outputs(chain: &SimChain, raw_tx: &[u8]) -> Option<Vec<Prevout>> {
    let parsed = chain.coin().parse_tx(raw_tx).ok()?;
    if parsed.is_coinbase {
        return None;
    }
    parsed
        .inputs
        .iter()
        .map(|input| {
            let tx = chain.tx(&input.txid)?;
            let out = tx.outputs.get(input.vout as usize)?;
            Some(Prevout {
                value: out.value,
                script: out.script.clone(),
                height: tx.height?,
                generated: tx.inputs.is_empty(),
            })
        })
        .collect()
}

/// Core's `blockToJSON` for verbosity 1 (txids), 2 (transactions with fees) or 3 (and
/// their spent outputs).
pub(crate) fn block_json(chain: &SimChain, height: u32, verbosity: i64) -> Option<Value> {
    let block = chain.block(height)?;
    let coin = chain.coin();
    let parsed = match coin.parse_block(&block.raw, Some(height)) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(height, error = %e, "a simulated block does not parse");
            return None;
        }
    };
    let mut o = header_json(chain, height)?;
    let size = block.raw.len();
    let witness: usize = parsed.txs.iter().map(|t| t.witness_bytes as usize).sum();
    let stripped = size - witness;
    o.insert("strippedsize".into(), json!(stripped));
    o.insert("size".into(), json!(size));
    o.insert("weight".into(), json!(3 * stripped + size));
    if let Some(summary) = parsed
        .txs
        .first()
        .and_then(|t| core_json::coinbase_summary(&block.raw[t.range.clone()]))
    {
        o.insert("coinbase_tx".into(), summary);
    }
    let detail = match verbosity {
        ..=1 => None,
        2 => Some(Detail::Fee),
        _ => Some(Detail::FeeAndPrevouts),
    };
    let txs: Vec<Value> = parsed
        .txs
        .iter()
        .map(|t| match detail {
            None => json!(hash_to_hex(&t.txid)),
            Some(detail) => {
                let raw = &block.raw[t.range.clone()];
                let undo = spent_outputs(chain, raw);
                Value::Object(core_json::tx_object(
                    coin.as_ref(),
                    &t.txid,
                    raw,
                    undo.as_deref(),
                    detail,
                ))
            }
        })
        .collect();
    o.insert("tx".into(), Value::Array(txs));
    Some(Value::Object(o))
}

/// `getblockchaininfo` (and REST's `chaininfo.json`).
pub(crate) fn blockchain_info(sim: &Simulator) -> Value {
    let pruned = sim.pruned();
    sim.with_chain(|c| {
        let tip = c.height();
        let header = c.header_at(tip).unwrap_or_default();
        let bits = header_fields(c, &header).bits;
        let mut o = Map::new();
        o.insert("chain".into(), json!(chain_name(c)));
        o.insert("blocks".into(), json!(tip));
        o.insert("headers".into(), json!(tip));
        o.insert("bestblockhash".into(), json!(hash_to_hex(&c.tip().hash)));
        o.insert("bits".into(), json!(format!("{bits:08x}")));
        o.insert(
            "target".into(),
            json!(hex::encode(core_json::target_from_bits(bits))),
        );
        o.insert("difficulty".into(), json!(core_json::difficulty(bits)));
        o.insert("time".into(), json!(c.time_at(tip).unwrap_or(0)));
        o.insert("mediantime".into(), json!(c.median_time_past(tip)));
        o.insert("verificationprogress".into(), json!(1.0));
        o.insert("initialblockdownload".into(), json!(false));
        o.insert(
            "chainwork".into(),
            json!(core_json::chainwork_hex(bits, u64::from(tip) + 1)),
        );
        // What the node's blk files would hold: each block behind its 8-byte record header.
        let blocks = u64::from(tip) + 1;
        o.insert("size_on_disk".into(), json!(c.blocks_bytes() + 8 * blocks));
        o.insert("pruned".into(), json!(pruned));
        if pruned {
            // Manual pruning that has removed nothing yet.
            o.insert("pruneheight".into(), json!(0));
            o.insert("automatic_pruning".into(), json!(false));
        }
        o.insert("warnings".into(), json!([]));
        Value::Object(o)
    })
}

// ---------------------------------------------------------------------------------------------
// Transactions

/// `getrawtransaction` verbose: Core's `TxToJSON`, with `in_active_chain` first when the
/// caller named the block.
fn raw_transaction_json(
    chain: &SimChain,
    txid: &Hash32,
    raw: &[u8],
    height: Option<u32>,
    verbosity: i64,
    block_given: bool,
) -> Value {
    let coin = chain.coin();
    let mut o = Map::new();
    if block_given {
        o.insert("in_active_chain".into(), json!(true));
    }
    // Spent outputs come from block undo data: confirmed transactions only.
    let undo = (verbosity >= 2 && height.is_some())
        .then(|| spent_outputs(chain, raw))
        .flatten();
    let detail = if undo.is_some() {
        Detail::FeeAndPrevouts
    } else {
        Detail::Plain
    };
    o.extend(core_json::tx_object(
        coin.as_ref(),
        txid,
        raw,
        undo.as_deref(),
        detail,
    ));
    if let Some(height) = height {
        if let (Some(hash), Some(time)) = (chain.hash_at(height), chain.time_at(height)) {
            o.insert("blockhash".into(), json!(hash_to_hex(&hash)));
            o.insert("confirmations".into(), json!(chain.height() - height + 1));
            o.insert("time".into(), json!(time));
            o.insert("blocktime".into(), json!(time));
        }
    }
    Value::Object(o)
}

fn getrawtransaction(sim: &Simulator, params: &[Value]) -> Result<Value, RpcError> {
    let txid = param_hash(params, 0, "parameter 1")?;
    let verbosity = param_verbosity(params, 1, 0)?;
    let block = param(params, 2)
        .map(|v| parse_hash(v, "parameter 3"))
        .transpose()?;
    sim.with_chain(|c| {
        if c.block(0).and_then(|g| g.txids.first().copied()) == Some(txid) {
            // Bitcoin Core's special case (rpc/rawtransaction.cpp), txindex or not.
            return Err((
                -5,
                "The genesis block coinbase is not considered an ordinary transaction and cannot be retrieved".into(),
            ));
        }
        let found = match block {
            Some(hash) => {
                let height = c
                    .height_of(&hash)
                    .ok_or((-5, "Block hash not found".to_string()))?;
                let in_block = c.tx_count_at(height).is_some()
                    && c.tx(&txid).is_some_and(|t| t.height == Some(height));
                if !in_block {
                    return Err((
                        -5,
                        "No such transaction found in the provided block. Use gettransaction for wallet transactions.".into(),
                    ));
                }
                c.tx(&txid)
            }
            None => c.tx(&txid),
        };
        let tx = found.ok_or((
            -5,
            "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.".to_string(),
        ))?;
        Ok(if verbosity <= 0 {
            json!(hex::encode(&tx.raw))
        } else {
            raw_transaction_json(c, &txid, &tx.raw, tx.height, verbosity, block.is_some())
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Mempool

/// Mempool transactions related to `txid` through unconfirmed parents (`up`) or children.
fn relatives(chain: &SimChain, txid: &Hash32, pool: &HashSet<Hash32>, up: bool) -> Vec<Hash32> {
    let mut found: Vec<Hash32> = Vec::new();
    let mut seen: HashSet<Hash32> = HashSet::new();
    let mut todo = vec![*txid];
    while let Some(t) = todo.pop() {
        for next in direct_relatives(chain, &t, pool, up) {
            if seen.insert(next) {
                found.push(next);
                todo.push(next);
            }
        }
    }
    found
}

/// Unconfirmed parents (`up`) or children of `txid`, in input or output order.
fn direct_relatives(
    chain: &SimChain,
    txid: &Hash32,
    pool: &HashSet<Hash32>,
    up: bool,
) -> Vec<Hash32> {
    let Some(tx) = chain.tx(txid) else {
        return Vec::new();
    };
    let mut out: Vec<Hash32> = Vec::new();
    if up {
        for input in &tx.inputs {
            if pool.contains(&input.txid) && !out.contains(&input.txid) {
                out.push(input.txid);
            }
        }
    } else {
        for vout in 0..tx.outputs.len() as u32 {
            if let Some(Some(child)) = chain.output_spender(&OutPoint { txid: *txid, vout }) {
                if pool.contains(&child) && !out.contains(&child) {
                    out.push(child);
                }
            }
        }
    }
    out
}

/// Core 31's mempool entry (`getmempoolentry`, `getrawmempool true`). The simulator does no
/// cluster linearization: a transaction's chunk is the transaction with its unconfirmed
/// ancestors.
fn mempool_entry(chain: &SimChain, txid: &Hash32, pool: &HashSet<Hash32>) -> Option<Value> {
    let tx = chain.tx(txid)?;
    let coin = chain.coin();
    let decoded = core_json::decode_tx(&tx.raw);
    let (vsize, weight) = match &decoded {
        Some(d) => (d.vsize(), d.weight()),
        None => (tx.raw.len(), 4 * tx.raw.len()),
    };
    let size_of = |t: &Hash32| -> (usize, u64, usize) {
        chain.tx(t).map_or((0, 0, 0), |t| {
            let d = core_json::decode_tx(&t.raw);
            (
                d.as_ref().map_or(t.raw.len(), |d| d.vsize()),
                t.fee,
                d.as_ref().map_or(4 * t.raw.len(), |d| d.weight()),
            )
        })
    };
    let ancestors = relatives(chain, txid, pool, true);
    let descendants = relatives(chain, txid, pool, false);
    let sum = |set: &[Hash32]| {
        set.iter().fold((vsize, tx.fee, weight), |(s, f, w), t| {
            let (ts, tf, tw) = size_of(t);
            (s + ts, f + tf, w + tw)
        })
    };
    let (ancestor_size, ancestor_fees, ancestor_weight) = sum(&ancestors);
    let (descendant_size, descendant_fees, _) = sum(&descendants);
    let replaceable = std::iter::once(txid).chain(ancestors.iter()).any(|t| {
        chain
            .tx(t)
            .and_then(|t| core_json::decode_tx(&t.raw))
            .is_some_and(|d| d.signals_rbf())
    });
    let mut o = Map::new();
    o.insert("vsize".into(), json!(vsize));
    o.insert("weight".into(), json!(weight));
    o.insert(
        "time".into(),
        json!(chain.time_at(tx.mempool_entry).unwrap_or(0)),
    );
    o.insert("height".into(), json!(tx.mempool_entry));
    o.insert("descendantcount".into(), json!(descendants.len() + 1));
    o.insert("descendantsize".into(), json!(descendant_size));
    o.insert("ancestorcount".into(), json!(ancestors.len() + 1));
    o.insert("ancestorsize".into(), json!(ancestor_size));
    o.insert("chunkweight".into(), json!(ancestor_weight));
    o.insert(
        "wtxid".into(),
        json!(hash_to_hex(&decoded.map_or(*txid, |d| d.wtxid))),
    );
    o.insert(
        "fees".into(),
        json!({
            "base": amount(coin.as_ref(), tx.fee),
            "modified": amount(coin.as_ref(), tx.fee),
            "ancestor": amount(coin.as_ref(), ancestor_fees),
            "descendant": amount(coin.as_ref(), descendant_fees),
            "chunk": amount(coin.as_ref(), ancestor_fees),
        }),
    );
    let hexes = |v: Vec<Hash32>| v.iter().map(hash_to_hex).collect::<Vec<_>>();
    o.insert(
        "depends".into(),
        json!(hexes(direct_relatives(chain, txid, pool, true))),
    );
    o.insert(
        "spentby".into(),
        json!(hexes(direct_relatives(chain, txid, pool, false))),
    );
    o.insert("bip125-replaceable".into(), json!(replaceable));
    o.insert("unbroadcast".into(), json!(false));
    Some(Value::Object(o))
}

fn mempool_set(chain: &SimChain) -> HashSet<Hash32> {
    chain.mempool().iter().copied().collect()
}

/// `getrawmempool` (and REST's `mempool/contents.json`).
pub(crate) fn raw_mempool(
    sim: &Simulator,
    verbose: bool,
    sequence: bool,
) -> Result<Value, RpcError> {
    if verbose && sequence {
        return Err(invalid_params(
            "Verbose results cannot contain mempool sequence values.",
        ));
    }
    let mempool_sequence = sim.mempool_sequence();
    Ok(sim.with_chain(|c| {
        if verbose {
            let pool = mempool_set(c);
            let entries: Map<String, Value> = c
                .mempool()
                .iter()
                .filter_map(|t| Some((hash_to_hex(t), mempool_entry(c, t, &pool)?)))
                .collect();
            return Value::Object(entries);
        }
        let txids: Vec<String> = c.mempool().iter().map(hash_to_hex).collect();
        if sequence {
            json!({"txids": txids, "mempool_sequence": mempool_sequence})
        } else {
            json!(txids)
        }
    }))
}

/// `getmempoolinfo` (and REST's `mempool/info.json`), with Core 31's default policy.
pub(crate) fn mempool_info(sim: &Simulator) -> Value {
    sim.with_chain(|c| {
        let coin = c.coin();
        let (mut bytes, mut usage, mut fees) = (0usize, 0usize, 0u64);
        for t in c.mempool() {
            if let Some(tx) = c.tx(t) {
                bytes += core_json::decode_tx(&tx.raw).map_or(tx.raw.len(), |d| d.vsize());
                // Core's dynamic usage: the transaction plus its entry's bookkeeping.
                usage += tx.raw.len() + 400;
                fees += tx.fee;
            }
        }
        json!({
            "loaded": true,
            "size": c.mempool().len(),
            "bytes": bytes,
            "usage": usage,
            "total_fee": amount(coin.as_ref(), fees),
            "maxmempool": 300_000_000u64,
            "mempoolminfee": MIN_RELAY_FEE,
            "minrelaytxfee": MIN_RELAY_FEE,
            "incrementalrelayfee": MIN_RELAY_FEE,
            "unbroadcastcount": 0,
            "fullrbf": true,
            "permitbaremultisig": true,
            "maxdatacarriersize": 100_000,
            "limitclustercount": 64,
            "limitclustersize": 101_000,
            "optimal": true,
        })
    })
}

// ---------------------------------------------------------------------------------------------
// gettxspendingprevout

/// One output asked about: its parsed outpoint and the object as given, which Core echoes.
struct Asked {
    outpoint: OutPoint,
    raw: Map<String, Value>,
}

fn parse_prevouts(v: Option<&Value>) -> Result<Vec<Asked>, RpcError> {
    let v = v.unwrap_or(&Value::Null);
    let list = v.as_array().ok_or_else(|| type_error(v, "array"))?;
    if list.is_empty() {
        return Err(invalid_params("Invalid parameter, outputs are missing"));
    }
    list.iter()
        .map(|item| {
            let o = item.as_object().ok_or_else(|| type_error(item, "object"))?;
            // Core's RPCTypeCheckObj: expected keys first (in name order), then strangers.
            for (key, kind) in [("txid", "string"), ("vout", "number")] {
                let value = o.get(key).unwrap_or(&Value::Null);
                if value.is_null() {
                    return Err((-3, format!("Missing {key}")));
                }
                let fits = match kind {
                    "string" => value.is_string(),
                    _ => value.is_number(),
                };
                if !fits {
                    return Err((
                        -3,
                        format!(
                            "JSON value of type {} for field {key} is not of expected type {kind}",
                            type_name(value)
                        ),
                    ));
                }
            }
            if let Some(stranger) = o.keys().find(|k| *k != "txid" && *k != "vout") {
                return Err((-3, format!("Unexpected key {stranger}")));
            }
            let txid = parse_hash(&o["txid"], "txid")?;
            let vout = o["vout"]
                .as_i64()
                .ok_or_else(|| (-3, "JSON integer out of range".to_string()))?;
            if vout < 0 {
                return Err(invalid_params("Invalid parameter, vout cannot be negative"));
            }
            let vout =
                u32::try_from(vout).map_err(|_| (-3, "JSON integer out of range".to_string()))?;
            Ok(Asked {
                outpoint: OutPoint { txid, vout },
                raw: o.clone(),
            })
        })
        .collect()
}

/// The options object: `mempool_only` (default false: the simulator has the index) and
/// `return_spending_tx` (default false).
fn spending_options(v: Option<&Value>) -> Result<(bool, bool), RpcError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok((false, false));
    };
    let o = v.as_object().ok_or_else(|| type_error(v, "object"))?;
    let mut flags = [false, false];
    for (i, key) in ["mempool_only", "return_spending_tx"].iter().enumerate() {
        match o.get(*key) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => flags[i] = *b,
            Some(other) => {
                return Err((
                    -3,
                    format!(
                        "JSON value of type {} for field {key} is not of expected type bool",
                        type_name(other)
                    ),
                ))
            }
        }
    }
    if let Some(stranger) = o
        .keys()
        .find(|k| *k != "mempool_only" && *k != "return_spending_tx")
    {
        return Err((-3, format!("Unexpected key {stranger}")));
    }
    Ok((flags[0], flags[1]))
}

/// Core 31's `gettxspendingprevout`: outputs spent in the mempool are answered first (with
/// `mempool_only`, every output is answered from the mempool alone); the others then from
/// the spent-output index, whose answers carry the spending block's hash. Answers keep that
/// order, as Core's do.
fn gettxspendingprevout(sim: &Simulator, params: &[Value]) -> Result<Value, RpcError> {
    let asked = parse_prevouts(params.first())?;
    let (mempool_only, return_tx) = spending_options(params.get(1))?;
    sim.with_chain(|c| {
        let answer = |a: &Asked, spender: Option<&Hash32>| {
            let mut o = a.raw.clone();
            if let Some(s) = spender {
                o.insert("spendingtxid".into(), json!(hash_to_hex(s)));
                if return_tx {
                    if let Some(tx) = c.tx(s) {
                        o.insert("spendingtx".into(), json!(hex::encode(&tx.raw)));
                    }
                }
            }
            o
        };
        let mut results = Vec::with_capacity(asked.len());
        let mut for_index = Vec::new();
        for a in &asked {
            let in_mempool = match c.spend_status(&a.outpoint) {
                SpendStatus::SpentBy(s) if c.tx(&s).is_some_and(|t| t.height.is_none()) => Some(s),
                _ => None,
            };
            match in_mempool {
                Some(s) => results.push(Value::Object(answer(a, Some(&s)))),
                None if mempool_only => results.push(Value::Object(answer(a, None))),
                None => for_index.push(a),
            }
        }
        for a in for_index {
            match c.spend_status(&a.outpoint) {
                SpendStatus::SpentBy(s) => {
                    let mut o = answer(a, Some(&s));
                    let block = c
                        .tx(&s)
                        .and_then(|t| t.height)
                        .and_then(|h| c.hash_at(h));
                    if let Some(block) = block {
                        o.insert("blockhash".into(), json!(hash_to_hex(&block)));
                    }
                    results.push(Value::Object(o));
                }
                SpendStatus::Unspent => results.push(Value::Object(answer(a, None))),
                SpendStatus::NotRecorded => {
                    return Err((
                        -1,
                        format!(
                            "txospenderindex: the spender of {}:{} is in the chain directory's blocks, whose spenders are not recorded",
                            hash_to_hex(&a.outpoint.txid),
                            a.outpoint.vout
                        ),
                    ))
                }
            }
        }
        Ok(Value::Array(results))
    })
}

// ---------------------------------------------------------------------------------------------
// Broadcasting

fn raw_tx_param(v: &Value) -> Result<Vec<u8>, RpcError> {
    let text = v.as_str().ok_or_else(|| type_error(v, "string"))?;
    hex::decode(text).map_err(|_| {
        (
            -22,
            "TX decode failed. Make sure the tx has at least one input.".to_string(),
        )
    })
}

fn raw_tx_list(params: &[Value]) -> Result<Vec<Vec<u8>>, RpcError> {
    let v = params.first().unwrap_or(&Value::Null);
    let list = v.as_array().ok_or_else(|| type_error(v, "array"))?;
    if list.is_empty() || list.len() > 25 {
        return Err(invalid_params(
            "Array must contain between 1 and 25 transactions.",
        ));
    }
    list.iter().map(raw_tx_param).collect()
}

/// A fee rate in coins per kvB, whole base units per kvB as Core's `CFeeRate` keeps it.
fn fee_rate(sim: &Simulator, fee: u64, vsize: u64) -> Value {
    sim.with_chain(|c| amount(c.coin().as_ref(), fee * 1000 / vsize.max(1)))
}

fn testmempoolaccept(sim: &Simulator, params: &[Value]) -> Result<Value, RpcError> {
    let raws = raw_tx_list(params)?;
    let mut results = Vec::with_capacity(raws.len());
    for raw in raws {
        let txid = sim
            .with_chain(|c| c.coin().parse_tx(&raw).map(|p| p.txid))
            .map_err(|_| (-22, "TX decode failed".to_string()))?;
        let wtxid = core_json::decode_tx(&raw).map_or(txid, |d| d.wtxid);
        let mut o = Map::new();
        o.insert("txid".into(), json!(hash_to_hex(&txid)));
        o.insert("wtxid".into(), json!(hash_to_hex(&wtxid)));
        match sim.submit_tx(&raw, true) {
            Ok(a) if a.already_in_mempool => {
                o.insert("allowed".into(), json!(false));
                o.insert("reject-reason".into(), json!("txn-already-in-mempool"));
            }
            Ok(a) => {
                o.insert("allowed".into(), json!(true));
                o.insert("vsize".into(), json!(a.vsize));
                let base = sim.with_chain(|c| amount(c.coin().as_ref(), a.fee));
                o.insert(
                    "fees".into(),
                    json!({
                        "base": base,
                        "effective-feerate": fee_rate(sim, a.fee, a.vsize),
                        "effective-includes": [hash_to_hex(&a.wtxid)],
                    }),
                );
            }
            Err(r) => {
                o.insert("allowed".into(), json!(false));
                o.insert("reject-reason".into(), json!(r.reason));
                if r.reason != "missing-inputs" {
                    o.insert("reject-details".into(), json!(r.message));
                }
            }
        }
        results.push(Value::Object(o));
    }
    Ok(Value::Array(results))
}

fn submitpackage(sim: &Simulator, params: &[Value]) -> Result<Value, RpcError> {
    let raws = raw_tx_list(params)?;
    let mut results = Map::new();
    let mut failed = false;
    for raw in raws {
        let txid = sim
            .with_chain(|c| c.coin().parse_tx(&raw).map(|p| p.txid))
            .map_err(|_| (-22, "TX decode failed".to_string()))?;
        let wtxid = core_json::decode_tx(&raw).map_or(txid, |d| d.wtxid);
        let mut o = Map::new();
        o.insert("txid".into(), json!(hash_to_hex(&txid)));
        match sim.submit_tx(&raw, false) {
            Ok(a) => {
                o.insert("vsize".into(), json!(a.vsize));
                let base = sim.with_chain(|c| amount(c.coin().as_ref(), a.fee));
                let mut fees = Map::new();
                fees.insert("base".into(), base);
                if !a.already_in_mempool {
                    fees.insert("effective-feerate".into(), fee_rate(sim, a.fee, a.vsize));
                    fees.insert("effective-includes".into(), json!([hash_to_hex(&a.wtxid)]));
                }
                o.insert("fees".into(), Value::Object(fees));
            }
            Err(r) => {
                failed = true;
                o.insert("error".into(), json!(r.message));
            }
        }
        results.insert(hash_to_hex(&wtxid), Value::Object(o));
    }
    Ok(json!({
        "package_msg": if failed { "transaction failed" } else { "success" },
        "tx-results": results,
        "replaced-transactions": [],
    }))
}

// ---------------------------------------------------------------------------------------------
// Network, fees, addresses

fn network_info(sim: &Simulator) -> Value {
    let segwit = sim.with_chain(|c| c.coin().params().bech32_hrp.is_some());
    let (services, names) = local_services(segwit);
    let network = |name: &str, reachable: bool| {
        json!({"name": name, "limited": !reachable, "reachable": reachable, "proxy": "",
               "proxy_randomize_credentials": false})
    };
    let peers = sim.peers();
    json!({
        "version": 310000,
        "subversion": "/Satoshi:31.0.0/anode-simulator/",
        "protocolversion": 70016,
        "localservices": format!("{services:016x}"),
        "localservicesnames": names,
        "localrelay": true,
        "timeoffset": 0,
        "connections": peers,
        "connections_in": peers,
        "connections_out": 0,
        "networkactive": true,
        "networks": [
            network("ipv4", true),
            network("ipv6", true),
            network("onion", false),
            network("i2p", false),
            network("cjdns", false),
        ],
        "relayfee": MIN_RELAY_FEE,
        "incrementalfee": MIN_RELAY_FEE,
        "localaddresses": [],
        "warnings": [],
    })
}

fn estimatesmartfee(sim: &Simulator, params: &[Value]) -> Result<Value, RpcError> {
    let target = param_i64(params, 0)?.unwrap_or(0);
    if !(1..=1008).contains(&target) {
        return Err(invalid_params(
            "Invalid conf_target, must be between 1 and 1008",
        ));
    }
    if let Some(mode) = param(params, 1) {
        let mode = mode.as_str().ok_or_else(|| type_error(mode, "string"))?;
        if !["unset", "economical", "conservative"].contains(&mode.to_ascii_lowercase().as_str()) {
            return Err(invalid_params(
                "Invalid estimate_mode parameter, must be one of: \"unset\", \"economical\", \"conservative\"",
            ));
        }
    }
    // A fee curve that falls with the target, like a busy node's: 20,000 base units per kvB
    // over the target's square root, in whole units as Core's rates are (clients parse them
    // as amounts of at most eight decimals). Core never answers for one block.
    let blocks = target.max(2);
    let per_kvb = (20_000.0 / (blocks as f64).sqrt()).round() as u64;
    let feerate = sim.with_chain(|c| amount(c.coin().as_ref(), per_kvb));
    Ok(json!({"feerate": feerate, "blocks": blocks}))
}

fn validateaddress(sim: &Simulator, params: &[Value]) -> Result<Value, RpcError> {
    let v = params.first().unwrap_or(&Value::Null);
    let address = v.as_str().ok_or_else(|| type_error(v, "string"))?;
    Ok(
        sim.with_chain(|c| match c.coin().address_to_script(address) {
            Ok(script) => {
                let kind = core_json::output_type(&script);
                let mut o = Map::new();
                o.insert("isvalid".into(), json!(true));
                o.insert("address".into(), json!(address));
                o.insert("scriptPubKey".into(), json!(hex::encode(&script)));
                use core_json::OutputType as T;
                let witness = matches!(
                    kind,
                    T::WitnessV0KeyHash
                        | T::WitnessV0ScriptHash
                        | T::WitnessV1Taproot
                        | T::Anchor
                        | T::WitnessUnknown
                );
                if kind != T::WitnessUnknown {
                    let script_like = !matches!(kind, T::PubKeyHash | T::WitnessV0KeyHash);
                    o.insert("isscript".into(), json!(script_like));
                }
                o.insert("iswitness".into(), json!(witness));
                if witness {
                    let version = if script[0] == 0 { 0 } else { script[0] - 0x50 };
                    o.insert("witness_version".into(), json!(version));
                    o.insert("witness_program".into(), json!(hex::encode(&script[2..])));
                }
                Value::Object(o)
            }
            Err(_) => json!({
                "isvalid": false,
                "error_locations": [],
                "error": "Invalid or unsupported Segwit (Bech32) or Base58 encoding.",
            }),
        }),
    )
}

fn getindexinfo(sim: &Simulator, params: &[Value]) -> Result<Value, RpcError> {
    let only = match param(params, 0) {
        Some(v) => Some(v.as_str().ok_or_else(|| type_error(v, "string"))?),
        None => None,
    };
    Ok(sim.with_chain(|c| {
        let synced = json!({"synced": true, "best_block_height": c.height()});
        let mut o = Map::new();
        for name in ["txindex", "txospenderindex"] {
            if only.is_none_or(|n| n == name) {
                o.insert(name.into(), synced.clone());
            }
        }
        Value::Object(o)
    }))
}

// ---------------------------------------------------------------------------------------------
// Dispatch

/// A JSON-RPC call whose `params` may be named (an object), as the HTTP listener receives
/// it; Core's order: warm-up, unknown method, then the parameters.
pub fn dispatch_request(sim: &Simulator, method: &str, params: &Value) -> Result<Value, RpcError> {
    if sim.warming_up() && !method.starts_with("sim_") {
        return Err((-28, "Loading block index...".into()));
    }
    let list = match params {
        Value::Null => Vec::new(),
        Value::Array(list) => list.clone(),
        Value::Object(named) => match help::command(method) {
            Some(command) => command.positional(named)?,
            None if method.starts_with("sim_") || method == "generate" => {
                return Err(invalid_params(
                    "the simulator's control methods take positional parameters only",
                ))
            }
            None => return Err((-32601, "Method not found".into())),
        },
        _ => return Err((-32600, "Params must be an array or object".into())),
    };
    dispatch(sim, method, &list)
}

/// Answers one JSON-RPC call with positional parameters.
pub fn dispatch(sim: &Simulator, method: &str, params: &[Value]) -> Result<Value, RpcError> {
    if sim.warming_up() && !method.starts_with("sim_") {
        return Err((-28, "Loading block index...".into()));
    }
    if let Some(command) = help::command(method) {
        command.check_count(params.len())?;
    }
    match method {
        "help" => Ok(json!(match param(params, 0) {
            None => help::overview(),
            Some(v) => help::describe(v.as_str().ok_or_else(|| type_error(v, "string"))?),
        })),
        "getblockchaininfo" => Ok(blockchain_info(sim)),
        "getblockcount" => Ok(json!(sim.with_chain(SimChain::height))),
        "getbestblockhash" => Ok(json!(sim.with_chain(|c| hash_to_hex(&c.tip().hash)))),
        "getblockhash" => {
            let height = param_i64(params, 0)?.unwrap_or(-1);
            sim.with_chain(|c| {
                u32::try_from(height)
                    .ok()
                    .and_then(|h| c.hash_at(h))
                    .map(|hash| json!(hash_to_hex(&hash)))
            })
            .ok_or((-8, "Block height out of range".into()))
        }
        "getblockheader" => {
            let hash = param_hash(params, 0, "hash")?;
            let verbose = param_bool(params, 1, true)?;
            sim.with_chain(|c| {
                let height = c.height_of(&hash)?;
                if verbose {
                    header_json(c, height).map(Value::Object)
                } else {
                    c.header_at(height).map(|h| json!(hex::encode(&h)))
                }
            })
            .ok_or_else(not_found_block)
        }
        "getblock" => {
            let hash = param_hash(params, 0, "blockhash")?;
            let verbosity = param_verbosity(params, 1, 1)?;
            if verbosity <= 0 {
                // through the fault switch, as every block a client can fetch
                return sim
                    .serve_block_hex(&hash)
                    .map(Value::String)
                    .ok_or_else(not_found_block);
            }
            sim.with_chain(|c| block_json(c, c.height_of(&hash)?, verbosity))
                .ok_or_else(not_found_block)
        }
        "getrawtransaction" => getrawtransaction(sim, params),
        "getrawmempool" => raw_mempool(
            sim,
            param_bool(params, 0, false)?,
            param_bool(params, 1, false)?,
        ),
        "getmempoolentry" => {
            let txid = param_hash(params, 0, "parameter 1")?;
            sim.with_chain(|c| {
                let pool = mempool_set(c);
                if pool.contains(&txid) {
                    mempool_entry(c, &txid, &pool)
                } else {
                    None
                }
            })
            .ok_or((-5, "Transaction not in mempool".into()))
        }
        "getmempoolinfo" => Ok(mempool_info(sim)),
        "estimatesmartfee" => estimatesmartfee(sim, params),
        "getnetworkinfo" => Ok(network_info(sim)),
        "getindexinfo" => getindexinfo(sim, params),
        "gettxspendingprevout" => gettxspendingprevout(sim, params),
        "validateaddress" => validateaddress(sim, params),
        "sendrawtransaction" => {
            let raw = raw_tx_param(params.first().unwrap_or(&Value::Null))?;
            sim.accept_tx(&raw, false)
                .map(|t| json!(hash_to_hex(&t)))
                .map_err(|r| (r.code, r.message))
        }
        "testmempoolaccept" => testmempoolaccept(sim, params),
        "submitpackage" => submitpackage(sim, params),
        "getzmqnotifications" => Ok(json!([])),
        "uptime" => Ok(json!(sim.uptime())),
        "generate" | "sim_mine" | "generatetoaddress" => {
            let n = param_u64(params, 0, Some(1))?;
            let hashes = sim.mine(n as u32).map_err(|e| (-1, e.to_string()))?;
            Ok(json!(hashes.iter().map(hash_to_hex).collect::<Vec<_>>()))
        }
        "sim_add_mempool" => {
            let n = param_u64(params, 0, Some(1))?;
            let added = sim
                .with_chain_mut(|c| c.add_mempool_txs(n as u32))
                .map_err(|e| (-1, e.to_string()))?;
            Ok(json!(added.iter().map(hash_to_hex).collect::<Vec<_>>()))
        }
        "sim_mempool_chain" => {
            let n = param_u64(params, 0, Some(2))?;
            let added = sim
                .with_chain_mut(|c| c.add_mempool_chain(n as u32))
                .map_err(|e| (-1, e.to_string()))?;
            Ok(json!(added.iter().map(hash_to_hex).collect::<Vec<_>>()))
        }
        "sim_double_spend" => {
            let victim = if params.is_empty() {
                None
            } else {
                Some(param_hash(params, 0, "txid")?)
            };
            let (replacement, evicted) = sim
                .with_chain_mut(|c| c.double_spend(victim))
                .map_err(|e| (-1, e.to_string()))?;
            Ok(
                json!({"replacement": hash_to_hex(&replacement), "evicted": evicted.iter().map(hash_to_hex).collect::<Vec<_>>()}),
            )
        }
        "sim_drop_mempool" => {
            let txid = param_hash(params, 0, "txid")?;
            let gone = sim.with_chain_mut(|c| c.drop_mempool_tx(&txid));
            Ok(json!(gone.iter().map(hash_to_hex).collect::<Vec<_>>()))
        }
        "sim_reorg" => {
            let depth = param_u64(params, 0, Some(1))? as u32;
            let new_blocks = param_u64(params, 1, Some(u64::from(depth) + 1))? as u32;
            let hashes = sim
                .with_chain_mut(|c| c.reorg(depth, new_blocks, true))
                .map_err(|e| (-1, e.to_string()))?;
            Ok(json!(hashes.iter().map(hash_to_hex).collect::<Vec<_>>()))
        }
        "sim_outage" => {
            let ms = param_u64(params, 0, Some(1000))?;
            sim.outage(Duration::from_millis(ms));
            Ok(Value::Null)
        }
        "sim_set_pruned" => {
            let pruned = params.first().and_then(Value::as_bool).unwrap_or(true);
            sim.set_pruned(pruned);
            Ok(Value::Null)
        }
        "sim_warm_up" => {
            let ms = param_u64(params, 0, Some(1000))?;
            sim.warm_up(Duration::from_millis(ms));
            Ok(Value::Null)
        }
        "sim_fault_block" | "sim_fault_http" | "sim_clear_faults" => {
            super::faults::control(sim, method, params)
        }
        _ => Err((-32601, "Method not found".into())),
    }
}
