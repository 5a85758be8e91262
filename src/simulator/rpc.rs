//! The simulator's node interface: the subset of Bitcoin Core 31's JSON-RPC and REST that
//! Electrum servers use (documented in docs/simulator.md), plus `sim_*` control methods.

use std::time::Duration;

use serde_json::{json, Value};

use super::chain::SimChain;
use super::control::Simulator;
use crate::daemon::{hash_from_hex, hash_to_hex};
use anode_coins::{Hash32, OutPoint};

/// A JSON-RPC error: code and message.
pub type RpcError = (i64, String);

fn invalid_params(message: impl Into<String>) -> RpcError {
    (-8, message.into())
}

fn param_hash(params: &[Value], i: usize) -> Result<Hash32, RpcError> {
    params
        .get(i)
        .and_then(Value::as_str)
        .and_then(hash_from_hex)
        .ok_or_else(|| invalid_params(format!("parameter {} must be a 64-digit hex hash", i + 1)))
}

fn param_u64(params: &[Value], i: usize, default: Option<u64>) -> Result<u64, RpcError> {
    match params.get(i) {
        Some(v) => v.as_u64().ok_or_else(|| {
            invalid_params(format!(
                "parameter {} must be a non-negative integer",
                i + 1
            ))
        }),
        None => default.ok_or_else(|| invalid_params(format!("missing parameter {}", i + 1))),
    }
}

/// Verbosity given as a number or a boolean (both are accepted by Bitcoin Core).
fn param_verbosity(params: &[Value], i: usize, default: u64) -> u64 {
    match params.get(i) {
        Some(Value::Bool(b)) => u64::from(*b),
        Some(v) => v.as_u64().unwrap_or(default),
        None => default,
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

fn coin_units(chain: &SimChain, base: u64) -> f64 {
    base as f64 / chain.coin().params().value_per_coin.max(1) as f64
}

fn block_json(chain: &SimChain, height: u32, verbosity: u64) -> Value {
    let block = chain.block(height).expect("caller checked the height");
    let mut value = header_json(chain, height);
    let txs: Vec<Value> = block
        .txids
        .iter()
        .map(|t| {
            if verbosity >= 2 {
                tx_json(chain, t)
            } else {
                json!(hash_to_hex(t))
            }
        })
        .collect();
    value["tx"] = Value::Array(txs);
    value["size"] = json!(block.raw.len());
    value
}

fn header_json(chain: &SimChain, height: u32) -> Value {
    let block = chain.block(height).expect("caller checked the height");
    let mut value = json!({
        "hash": hash_to_hex(&block.hash),
        "confirmations": chain.height() - height + 1,
        "height": height,
        "time": block.time,
        "nTx": block.txids.len(),
        "merkleroot": hash_to_hex(&block.header[36..68].try_into().unwrap_or([0; 32])),
    });
    if height > 0 {
        value["previousblockhash"] =
            json!(hash_to_hex(&chain.block(height - 1).expect("parent").hash));
    }
    if let Some(next) = chain.block(height + 1) {
        value["nextblockhash"] = json!(hash_to_hex(&next.hash));
    }
    value
}

fn tx_json(chain: &SimChain, txid: &Hash32) -> Value {
    let Some(tx) = chain.tx(txid) else {
        return Value::Null;
    };
    let mut value = json!({
        "txid": hash_to_hex(txid),
        "hex": hex::encode(&tx.raw),
        "size": tx.raw.len(),
        "vin": tx.inputs.iter().map(|i| json!({"txid": hash_to_hex(&i.txid), "vout": i.vout})).collect::<Vec<_>>(),
        "vout": tx.outputs.iter().enumerate().map(|(n, o)| json!({
            "value": coin_units(chain, o.value),
            "n": n,
            "scriptPubKey": {"hex": hex::encode(&o.script)},
        })).collect::<Vec<_>>(),
    });
    if let Some(height) = tx.height {
        let block = chain.block(height).expect("confirmed txs are on the chain");
        value["blockhash"] = json!(hash_to_hex(&block.hash));
        value["confirmations"] = json!(chain.height() - height + 1);
        value["time"] = json!(block.time);
        value["blocktime"] = json!(block.time);
    }
    value
}

/// Answers one JSON-RPC call.
pub fn dispatch(sim: &Simulator, method: &str, params: &[Value]) -> Result<Value, RpcError> {
    if sim.warming_up() && !method.starts_with("sim_") {
        return Err((-28, "Loading block index...".into()));
    }
    match method {
        "getblockchaininfo" => {
            let pruned = sim.pruned();
            Ok(sim.with_chain(|c| {
                json!({
                    "chain": chain_name(c),
                    "blocks": c.height(),
                    "headers": c.height(),
                    "bestblockhash": hash_to_hex(&c.tip().hash),
                    "pruned": pruned,
                    "initialblockdownload": false,
                    "verificationprogress": 1.0,
                })
            }))
        }
        "getblockcount" => Ok(json!(sim.with_chain(SimChain::height))),
        "getbestblockhash" => Ok(json!(sim.with_chain(|c| hash_to_hex(&c.tip().hash)))),
        "getblockhash" => {
            let height = param_u64(params, 0, None)?;
            sim.with_chain(|c| {
                u32::try_from(height)
                    .ok()
                    .and_then(|h| c.hash_at(h))
                    .map(|hash| json!(hash_to_hex(&hash)))
            })
            .ok_or((-8, "Block height out of range".into()))
        }
        "getblockheader" => {
            let hash = param_hash(params, 0)?;
            let verbose = param_verbosity(params, 1, 1);
            sim.with_chain(|c| {
                let block = c.block_by_hash(&hash)?;
                Some(if verbose == 0 {
                    json!(hex::encode(&block.header))
                } else {
                    header_json(c, block.height)
                })
            })
            .ok_or((-5, "Block not found".into()))
        }
        "getblock" => {
            let hash = param_hash(params, 0)?;
            let verbosity = param_verbosity(params, 1, 1);
            if verbosity == 0 {
                return sim
                    .serve_block_hex(&hash)
                    .map(Value::String)
                    .ok_or((-5, "Block not found".into()));
            }
            sim.with_chain(|c| {
                let block = c.block_by_hash(&hash)?;
                Some(block_json(c, block.height, verbosity))
            })
            .ok_or((-5, "Block not found".into()))
        }
        "getrawtransaction" => {
            let txid = param_hash(params, 0)?;
            let verbose = param_verbosity(params, 1, 0);
            if sim.with_chain(|c| c.block(0).and_then(|g| g.txids.first().copied())) == Some(txid) {
                // Bitcoin Core's special case (rpc/rawtransaction.cpp), txindex or not.
                return Err((
                    -5,
                    "The genesis block coinbase is not considered an ordinary transaction and cannot be retrieved".into(),
                ));
            }
            sim.with_chain(|c| {
                let tx = c.tx(&txid)?;
                Some(if verbose == 0 { json!(hex::encode(&tx.raw)) } else { tx_json(c, &txid) })
            })
            .ok_or((-5, "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.".into()))
        }
        "getrawmempool" => {
            let verbose = param_verbosity(params, 0, 0) != 0;
            Ok(sim.with_chain(|c| {
                if verbose {
                    let entries: serde_json::Map<String, Value> = c
                        .mempool()
                        .iter()
                        .map(|t| {
                            let tx = c.tx(t).expect("mempool txs are known");
                            (
                                hash_to_hex(t),
                                json!({"vsize": tx.raw.len(), "fee": coin_units(c, tx.fee)}),
                            )
                        })
                        .collect();
                    Value::Object(entries)
                } else {
                    json!(c.mempool().iter().map(hash_to_hex).collect::<Vec<_>>())
                }
            }))
        }
        "getmempoolentry" => {
            let txid = param_hash(params, 0)?;
            sim.with_chain(|c| {
                c.mempool().contains(&txid).then(|| {
                    let tx = c.tx(&txid).expect("mempool txs are known");
                    json!({"vsize": tx.raw.len(), "fees": {"base": coin_units(c, tx.fee)}})
                })
            })
            .ok_or((-5, "Transaction not in mempool".into()))
        }
        "getmempoolinfo" => Ok(sim.with_chain(|c| {
            let bytes: usize = c
                .mempool()
                .iter()
                .filter_map(|t| c.tx(t))
                .map(|t| t.raw.len())
                .sum();
            json!({"loaded": true, "size": c.mempool().len(), "bytes": bytes, "usage": bytes * 3,
                   "mempoolminfee": 0.00001, "minrelaytxfee": 0.00001, "incrementalrelayfee": 0.00001})
        })),
        "estimatesmartfee" => {
            let blocks = param_u64(params, 0, None)?;
            // A fee curve that falls with the target, like a busy node's.
            Ok(json!({"feerate": 0.0002 / (blocks.max(1) as f64).sqrt(), "blocks": blocks.max(2)}))
        }
        "getnetworkinfo" => Ok(json!({
            "version": 310000, "subversion": "/Satoshi:31.0.0/anode-simulator/", "protocolversion": 70016,
            "relayfee": 0.00001, "incrementalfee": 0.00001, "connections": 0, "networkactive": true,
        })),
        "getindexinfo" => Ok(sim.with_chain(|c| {
            let synced = json!({"synced": true, "best_block_height": c.height()});
            json!({"txindex": synced, "txospenderindex": synced})
        })),
        "gettxspendingprevout" => {
            let Some(Value::Array(prevouts)) = params.first() else {
                return Err(invalid_params(
                    "parameter 1 must be an array of {txid, vout}",
                ));
            };
            sim.with_chain(|c| {
                prevouts
                    .iter()
                    .map(|p| {
                        let txid = p
                            .get("txid")
                            .and_then(Value::as_str)
                            .and_then(hash_from_hex);
                        let vout = p
                            .get("vout")
                            .and_then(Value::as_u64)
                            .and_then(|v| u32::try_from(v).ok());
                        let (Some(txid), Some(vout)) = (txid, vout) else {
                            return Err(invalid_params("each prevout needs txid and vout"));
                        };
                        let mut entry = json!({"txid": hash_to_hex(&txid), "vout": vout});
                        if let Some(Some(spender)) = c.output_spender(&OutPoint { txid, vout }) {
                            entry["spendingtxid"] = json!(hash_to_hex(&spender));
                        }
                        Ok(entry)
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array)
            })
        }
        "sendrawtransaction" => {
            let raw = params
                .first()
                .and_then(Value::as_str)
                .and_then(|s| hex::decode(s).ok());
            let raw = raw.ok_or((-22, "TX decode failed".to_string()))?;
            sim.accept_tx(&raw, false)
                .map(|t| json!(hash_to_hex(&t)))
                .map_err(|r| (r.code, r.message))
        }
        "testmempoolaccept" | "submitpackage" => {
            let Some(Value::Array(hexes)) = params.first() else {
                return Err(invalid_params(
                    "parameter 1 must be an array of raw transactions",
                ));
            };
            let dry_run = method == "testmempoolaccept";
            let mut results = Vec::new();
            for h in hexes {
                let raw = h
                    .as_str()
                    .and_then(|s| hex::decode(s).ok())
                    .ok_or((-22, "TX decode failed".to_string()))?;
                let txid = sim.with_chain(|c| c.coin().parse_tx(&raw).map(|p| p.txid).ok());
                let result = sim.accept_tx(&raw, dry_run);
                let txid_hex = txid.map(|t| hash_to_hex(&t)).unwrap_or_default();
                results.push(match result {
                    Ok(_) => json!({"txid": txid_hex, "allowed": true}),
                    Err(r) => {
                        json!({"txid": txid_hex, "allowed": false, "reject-reason": r.message})
                    }
                });
            }
            if dry_run {
                Ok(Value::Array(results))
            } else {
                Ok(json!({"package_msg": "success", "tx-results": results}))
            }
        }
        "getzmqnotifications" => Ok(json!([])),
        "uptime" => Ok(json!(1)),
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
                Some(param_hash(params, 0)?)
            };
            let (replacement, evicted) = sim
                .with_chain_mut(|c| c.double_spend(victim))
                .map_err(|e| (-1, e.to_string()))?;
            Ok(
                json!({"replacement": hash_to_hex(&replacement), "evicted": evicted.iter().map(hash_to_hex).collect::<Vec<_>>()}),
            )
        }
        "sim_drop_mempool" => {
            let txid = param_hash(params, 0)?;
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
