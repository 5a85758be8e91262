//! Every client method of docs/protocol.md, the per-version method tables (its Methods by
//! version), and their costs (its Cost model). Handlers read through
//! [`crate::query::ChainQuery`] and [`crate::daemon::DaemonApi`] only.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Map, Value};

use super::handlers;
use super::json::{py_repr, py_str, thousands, RpcError, DAEMON_ERROR, HISTORY_TOO_LONG};
use super::params::{self, bind, Args, Signature};
use super::session::{OutpointSub, ScriptSub, Session};
use super::version::{negotiate, ProtocolVersion};
use super::Shared;
use crate::daemon::{hash_to_hex, DaemonError};
use crate::query::{
    Hash32, History, HistoryEntry, OutPoint, OutpointStatus, QueryError, ScriptHash,
};

/// `max` of `blockchain.block.headers`, whatever the coin.
pub(super) const MAX_HEADERS: u64 = 2016;
/// How long node answers for relay fee and mempool info are reused.
const NODE_CACHE: Duration = Duration::from_secs(60);

/// `(target, mode)` of an estimatefee cache entry.
type FeeKey = (u64, Option<String>);

/// Node answers reused across sessions.
#[derive(Default)]
pub(crate) struct Caches {
    pub(super) estimatefee: Mutex<HashMap<FeeKey, (Hash32, Value)>>,
    /// one lock per key, so concurrent identical misses make one node call
    pub(super) estimatefee_inflight: Mutex<HashMap<FeeKey, Arc<tokio::sync::Mutex<()>>>>,
    relayfee: Mutex<Option<(Instant, Value)>>,
    mempool_info: Mutex<Option<(Instant, Value)>>,
}

const VERSION_SIG: Signature = Signature {
    names: &["client_name", "protocol_version"],
    required: 0,
    extras: true,
};
const NONE: Signature = Signature::new(&[], 0);
const SCRIPTHASH: Signature = Signature::new(&["scripthash"], 1);
const SPK: Signature = Signature::new(&["spk"], 1);
const OUTPOINT: Signature = Signature::new(&["tx_hash", "txout_idx", "spk_hint"], 3);

/// The signature of `method` in version `v`, `None` where the method does not exist
/// (docs/protocol.md, Methods by version).
fn signature(method: &str, v: &ProtocolVersion) -> Option<Signature> {
    let v17 = v.at_least(&[1, 7]);
    let v16 = v.at_least(&[1, 6]);
    let sig = match method {
        "server.version" => VERSION_SIG,
        "server.ping" => Signature::new(&["pong_len", "data"], 0),
        "server.features"
        | "server.banner"
        | "server.donation_address"
        | "server.peers.subscribe"
        | "blockchain.headers.subscribe"
        | "mempool.get_fee_histogram" => NONE,
        "server.add_peer" => Signature::new(&["features"], 1),
        "blockchain.block.header" => Signature::new(&["height", "cp_height"], 1),
        "blockchain.block.headers" => Signature::new(&["start_height", "count", "cp_height"], 2),
        "blockchain.estimatefee" => Signature::new(&["number", "mode"], 1),
        "blockchain.relayfee" if !v16 => NONE,
        "blockchain.scripthash.get_balance"
        | "blockchain.scripthash.get_history"
        | "blockchain.scripthash.get_mempool"
        | "blockchain.scripthash.listunspent"
        | "blockchain.scripthash.subscribe"
            if !v17 =>
        {
            SCRIPTHASH
        }
        "blockchain.scripthash.unsubscribe" if !v17 && v.at_least(&[1, 4, 2]) => SCRIPTHASH,
        "blockchain.scriptpubkey.get_balance"
        | "blockchain.scriptpubkey.get_history"
        | "blockchain.scriptpubkey.get_mempool"
        | "blockchain.scriptpubkey.listunspent"
        | "blockchain.scriptpubkey.subscribe"
        | "blockchain.scriptpubkey.unsubscribe"
            if v17 =>
        {
            SPK
        }
        "blockchain.outpoint.subscribe" | "blockchain.outpoint.get_status" if v17 => OUTPOINT,
        "blockchain.outpoint.unsubscribe" if v17 => Signature::new(&["tx_hash", "txout_idx"], 2),
        "blockchain.transaction.broadcast" => Signature::new(&["raw_tx"], 1),
        "blockchain.transaction.broadcast_package" if v16 => {
            Signature::new(&["raw_txs", "verbose"], 1)
        }
        "blockchain.transaction.testmempoolaccept" if v17 => Signature::new(&["raw_txs"], 1),
        "blockchain.transaction.get" => Signature::new(&["tx_hash", "verbose"], 1),
        "blockchain.transaction.get_merkle" => Signature::new(&["tx_hash", "height"], 2),
        "blockchain.transaction.id_from_pos" => Signature::new(&["height", "tx_pos", "merkle"], 2),
        "mempool.get_info" if v16 => NONE,
        "mempool.recent" if v17 => NONE,
        _ => return None,
    };
    Some(sig)
}

/// A query failure as the client sees it.
pub(crate) fn query_error(e: QueryError) -> RpcError {
    match e {
        QueryError::HistoryTooLarge => RpcError::new(HISTORY_TOO_LONG, "history too large"),
        QueryError::OutOfRange(text) => RpcError::bad_request(text),
        QueryError::Daemon(e) => daemon_error(&e),
        QueryError::Store(e) => RpcError::bad_request(format!("db error: {e}")),
        QueryError::Corrupt(text) => RpcError::bad_request(format!("db error: {text}")),
        #[allow(unreachable_patterns)]
        other => {
            tracing::warn!(error = %other, "query failed");
            RpcError::new(super::json::INTERNAL_ERROR, "internal server error")
        }
    }
}

/// Code 2, worded as ElectrumX words node errors.
pub(super) fn daemon_error(e: &DaemonError) -> RpcError {
    match e {
        DaemonError::Rpc { code, message } => RpcError::new(
            DAEMON_ERROR,
            format!(
                "daemon error: DaemonError({{'code': {code}, 'message': {}}})",
                py_repr(&Value::from(message.as_str()))
            ),
        ),
        other => RpcError::new(DAEMON_ERROR, format!("daemon error: {other}")),
    }
}

pub(super) fn display(hash: &Hash32) -> Value {
    Value::from(hash_to_hex(hash))
}

pub(super) fn branch_json(branch: &[Hash32]) -> Value {
    Value::Array(branch.iter().map(display).collect())
}

pub(super) fn nni(value: &Value) -> Result<u64, RpcError> {
    params::non_negative_integer(value)
}

pub(super) fn opt_nni(args: &Args, i: usize) -> Result<u64, RpcError> {
    args.get(i)
        .map(nni)
        .transpose()
        .map(Option::unwrap_or_default)
}

pub(super) fn height_out_of_range(height: u64) -> RpcError {
    RpcError::bad_request(format!("height {} out of range", thousands(height)))
}

/// `server.version` (docs/protocol.md, `server.version`): negotiation; also the only method
/// before it.
pub(crate) fn server_version(
    shared: &Shared,
    session: &Session,
    params: &Value,
) -> Result<Value, RpcError> {
    let args = bind("server.version", &VERSION_SIG, params)?;
    if session.state.lock().version.is_some() {
        return Err(RpcError::bad_request("server.version already sent"));
    }
    session.add_cost(shared, 0.5);
    let client_name = if params::truthy(args.get(0)) {
        py_str(args.req(0)).chars().take(100).collect()
    } else {
        String::new()
    };
    let version = match negotiate(args.get(1)) {
        Ok(v) => v,
        Err(e) => {
            if dotted_version(&client_name).is_some_and(|v| v <= vec![3, 2, 3])
                && shared.coin.params().client_warning
            {
                // The legacy trick that makes very old Electrum clients show an error.
                session.notify_bare("blockchain.relayfee");
                session.notify_bare("blockchain.estimatefee");
            }
            return Err(e);
        }
    };
    let text = version.to_string();
    {
        let mut state = session.state.lock();
        state.client_name = client_name;
        state.version = Some(version);
    }
    Ok(json!([shared.config.server_version, text]))
}

pub(super) fn dotted_version(name: &str) -> Option<Vec<u32>> {
    let head = name.split_whitespace().next()?;
    head.split('.').map(|p| p.parse().ok()).collect()
}

/// Runs a method after negotiation.
pub(crate) async fn dispatch(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    method: &str,
    params: &Value,
) -> Result<Value, RpcError> {
    let v = session.version();
    let Some(sig) = signature(method, &v) else {
        return Err(RpcError::new(
            super::json::METHOD_NOT_FOUND,
            format!("unknown method \"{method}\""),
        ));
    };
    *shared
        .request_counts
        .lock()
        .entry(method.to_string())
        .or_default() += 1;
    let args = bind(method, &sig, params)?;
    let cost = |amount: f64| session.add_cost(shared, amount);
    match method {
        "server.version" => server_version(shared, session, params),
        "server.ping" => handlers::server_ping(shared, session, &v, &args),
        "server.features" => {
            cost(0.2);
            Ok(handlers::server_features(shared, &v))
        }
        "server.banner" => {
            cost(0.5);
            Ok(Value::from(handlers::server_banner(shared).await))
        }
        "server.donation_address" => {
            cost(0.1);
            Ok(Value::from(shared.config.donation_address.clone()))
        }
        "server.peers.subscribe" => {
            cost(1.0);
            Ok(shared.peers.peers_subscribe_result())
        }
        "server.add_peer" => {
            cost(100.0);
            let features = args.req(0);
            Ok(Value::Bool(
                shared
                    .peers
                    .add_peer_request(Some(session.peer.ip()), features)
                    .await,
            ))
        }
        "blockchain.block.header" => handlers::block_header(shared, session, &v, &args).await,
        "blockchain.block.headers" => handlers::block_headers(shared, session, &v, &args).await,
        "blockchain.headers.subscribe" => {
            cost(0.25);
            let tip = shared.query.tip();
            {
                let mut state = session.state.lock();
                state.subs.headers = true;
                state.subs.last_header = Some((tip.height, tip.hash));
            }
            Ok(json!({"hex": hex::encode(&tip.header), "height": tip.height}))
        }
        "blockchain.estimatefee" => handlers::estimatefee(shared, session, &args).await,
        "blockchain.relayfee" => {
            cost(1.0);
            cached_node_value(&shared.caches.relayfee, || async {
                shared.daemon.relay_fee().await.map(Value::from)
            })
            .await
        }
        "blockchain.scripthash.get_balance" | "blockchain.scriptpubkey.get_balance" => {
            let (script, _) = script_arg(shared, method, &args)?;
            cost(1.0);
            let b = shared.query.balance(&script).await.map_err(query_error)?;
            Ok(json!({"confirmed": b.confirmed, "unconfirmed": b.unconfirmed}))
        }
        "blockchain.scripthash.get_history" | "blockchain.scriptpubkey.get_history" => {
            let (script, _) = script_arg(shared, method, &args)?;
            let history = shared
                .query
                .history(&script, shared.config.history_limit())
                .await
                .map_err(query_error)?;
            cost(
                0.45 + history.confirmed.len() as f64 / 1000.0
                    + history.mempool.len() as f64 / 50.0,
            );
            let list = history_json(history.entries());
            Ok(if v.at_least(&[1, 7]) {
                json!({"history": list})
            } else {
                list
            })
        }
        "blockchain.scripthash.get_mempool" | "blockchain.scriptpubkey.get_mempool" => {
            let (script, _) = script_arg(shared, method, &args)?;
            let mempool = shared
                .query
                .mempool_history(&script)
                .await
                .map_err(query_error)?;
            cost(0.25 + mempool.len() as f64 / 50.0);
            let list = history_json(mempool.iter());
            Ok(if v.at_least(&[1, 7]) {
                json!({"history": list})
            } else {
                list
            })
        }
        "blockchain.scripthash.listunspent" | "blockchain.scriptpubkey.listunspent" => {
            let (script, _) = script_arg(shared, method, &args)?;
            // Each entry takes ~100 bytes of JSON: past this count the answer could not be
            // sent anyway, so the index need not read further.
            let limit = shared.config.limits.max_send / 90 + 1;
            let utxos = match shared.query.unspent(&script, limit).await {
                Ok(u) => u,
                Err(QueryError::HistoryTooLarge) => {
                    return Err(RpcError::new(
                        super::json::INVALID_REQUEST,
                        format!(
                            "response too large (over {} bytes",
                            thousands(shared.config.limits.max_send as u64)
                        ),
                    ))
                }
                Err(e) => return Err(query_error(e)),
            };
            cost(1.0 + utxos.len() as f64 / 50.0);
            let list: Vec<Value> = utxos
                .iter()
                .map(|u| {
                    json!({"tx_hash": display(&u.txid), "tx_pos": u.vout, "height": u.height,
                           "value": u.value})
                })
                .collect();
            Ok(if v.at_least(&[1, 7]) {
                json!({"utxos": list})
            } else {
                Value::Array(list)
            })
        }
        "blockchain.scripthash.subscribe" | "blockchain.scriptpubkey.subscribe" => {
            let (script, alias) = script_arg(shared, method, &args)?;
            let hashx = script.hashx();
            let known = session.state.lock().subs.scripts.contains_key(&hashx);
            if !known {
                check_subscription_room(shared, session)?;
            }
            let (status, mempool) = script_status(shared, &script).await?;
            cost(0.3);
            session.state.lock().subs.scripts.insert(
                hashx,
                ScriptSub {
                    script,
                    alias,
                    status,
                    mempool,
                },
            );
            shared.registry.index_script(session.id, hashx);
            Ok(status.map_or(Value::Null, |s| Value::from(hex::encode(s))))
        }
        "blockchain.scripthash.unsubscribe" | "blockchain.scriptpubkey.unsubscribe" => {
            let (script, _) = script_arg(shared, method, &args)?;
            cost(0.1);
            let hashx = script.hashx();
            let removed = session.state.lock().subs.scripts.remove(&hashx).is_some();
            if removed {
                shared.registry.unindex_script(session.id, &hashx);
            }
            Ok(Value::Bool(removed))
        }
        "blockchain.outpoint.subscribe" | "blockchain.outpoint.get_status" => {
            let txid = params::tx_hash(args.req(0))?;
            let vout = nni(args.req(1))?;
            params::hex_blob(args.req(2))?;
            cost(1.2);
            let Ok(vout) = u32::try_from(vout) else {
                // No transaction has that many outputs: the status of an unknown output.
                return Ok(json!({}));
            };
            let outpoint = OutPoint { txid, vout };
            let status = shared
                .query
                .outpoint_status(&outpoint)
                .await
                .map_err(query_error)?;
            if method == "blockchain.outpoint.subscribe" {
                let known = session.state.lock().subs.outpoints.contains_key(&outpoint);
                if !known {
                    check_subscription_room(shared, session)?;
                }
                session.state.lock().subs.outpoints.insert(
                    outpoint,
                    OutpointSub {
                        status: status.clone(),
                    },
                );
                shared.registry.index_outpoint(session.id, outpoint);
            }
            Ok(outpoint_status_json(&status))
        }
        "blockchain.outpoint.unsubscribe" => {
            let txid = params::tx_hash(args.req(0))?;
            let vout = nni(args.req(1))?;
            cost(0.1);
            let Ok(vout) = u32::try_from(vout) else {
                return Ok(Value::Bool(false));
            };
            let outpoint = OutPoint { txid, vout };
            let removed = session
                .state
                .lock()
                .subs
                .outpoints
                .remove(&outpoint)
                .is_some();
            if removed {
                shared.registry.unindex_outpoint(session.id, &outpoint);
            }
            Ok(Value::Bool(removed))
        }
        "blockchain.transaction.broadcast" => handlers::broadcast(shared, session, &args).await,
        "blockchain.transaction.broadcast_package" => {
            let raw_txs = params::hex_list(args.req(0))?;
            cost(0.25 + raw_txs.iter().map(String::len).sum::<usize>() as f64 / 5000.0);
            let verbose = params::truthy(args.get(1));
            let result = match shared.daemon.submit_package(&raw_txs).await {
                Ok(r) => r,
                Err(DaemonError::Rpc { message, .. }) => {
                    return Err(RpcError::bad_request(format!(
                        "the tx package was rejected by network rules.\n\n{message}."
                    )))
                }
                Err(e) => return Err(daemon_error(&e)),
            };
            Ok(if verbose {
                result
            } else {
                handlers::package_summary(&result)
            })
        }
        "blockchain.transaction.testmempoolaccept" => {
            let raw_txs = params::hex_list(args.req(0))?;
            cost(0.25 + raw_txs.iter().map(String::len).sum::<usize>() as f64 / 5000.0);
            let result = shared
                .daemon
                .test_mempool_accept(&raw_txs)
                .await
                .map_err(|e| daemon_error(&e))?;
            Ok(handlers::testmempoolaccept_summary(&result))
        }
        "blockchain.transaction.get" => {
            let txid = params::tx_hash(args.req(0))?;
            let verbose = args
                .get(1)
                .map(|v| params::boolean("verbose", v))
                .transpose()?
                .unwrap_or(false);
            cost(1.0);
            if verbose {
                return shared
                    .daemon
                    .raw_transaction_verbose(&txid)
                    .await
                    .map_err(|e| daemon_error(&e));
            }
            match shared
                .query
                .raw_transaction(&txid)
                .await
                .map_err(query_error)?
            {
                Some(raw) => Ok(Value::from(hex::encode(raw))),
                // Ask once more for the node's own answer, and relay its words: the error
                // differs by case (the genesis coinbase, no txindex, a pruned block) and is
                // never ours to invent.
                None => shared
                    .daemon
                    .raw_transaction(&txid)
                    .await
                    .map(|raw| Value::from(hex::encode(raw)))
                    .map_err(|e| daemon_error(&e)),
            }
        }
        "blockchain.transaction.get_merkle" => {
            let txid = params::tx_hash(args.req(0))?;
            let height = nni(args.req(1))?;
            cost(0.25);
            if height > u64::from(shared.query.tip().height) {
                return Err(height_out_of_range(height));
            }
            let merkle = shared
                .query
                .merkle(&txid, height as u32)
                .await
                .map_err(query_error)?
                .ok_or_else(|| {
                    RpcError::bad_request(format!(
                        "tx {} not in block at height {}",
                        hash_to_hex(&txid),
                        thousands(height)
                    ))
                })?;
            cost((1u64 << merkle.branch.len().min(30)) as f64 / 2500.0);
            Ok(
                json!({"block_height": merkle.block_height, "merkle": branch_json(&merkle.branch),
                      "pos": merkle.pos}),
            )
        }
        "blockchain.transaction.id_from_pos" => {
            let height = nni(args.req(0))?;
            let pos = nni(args.req(1))?;
            let merkle = args
                .get(2)
                .map(|v| params::boolean("merkle", v))
                .transpose()?
                .unwrap_or(false);
            cost(0.25);
            let tip = shared.query.tip().height;
            if height > u64::from(tip) {
                return Err(RpcError::bad_request(format!(
                    "db error: DBError('block {height} not on disk (>{tip})')"
                )));
            }
            let found = match u32::try_from(pos) {
                Ok(p) => shared
                    .query
                    .txid_at(height as u32, p)
                    .await
                    .map_err(query_error)?,
                Err(_) => None,
            };
            let (txid, branch) = found.ok_or_else(|| {
                RpcError::bad_request(format!(
                    "no tx at position {} in block at height {}",
                    thousands(pos),
                    thousands(height)
                ))
            })?;
            cost((1u64 << branch.len().min(30)) as f64 / 2500.0);
            Ok(if merkle {
                json!({"tx_hash": display(&txid), "merkle": branch_json(&branch)})
            } else {
                display(&txid)
            })
        }
        "mempool.get_fee_histogram" => {
            cost(1.0);
            Ok(Value::Array(
                shared
                    .query
                    .fee_histogram()
                    .into_iter()
                    .map(|(rate, size)| json!([rate, size]))
                    .collect(),
            ))
        }
        "mempool.get_info" => {
            cost(1.0);
            cached_node_value(&shared.caches.mempool_info, || async {
                shared.daemon.mempool_info().await.map(|info| {
                    let mut answer = json!({"mempoolminfee": info.mempoolminfee,
                                            "minrelaytxfee": info.minrelaytxfee});
                    // Nodes too old to report it leave it out rather than invent a value.
                    if let Some(step) = info.incrementalrelayfee {
                        answer["incrementalrelayfee"] = json!(step);
                    }
                    answer
                })
            })
            .await
        }
        "mempool.recent" => {
            cost(1.0);
            Ok(Value::Array(
                shared
                    .query
                    .mempool_recent()
                    .iter()
                    .map(|t| json!({"txid": display(&t.txid), "fee": t.fee, "vsize": t.vsize}))
                    .collect(),
            ))
        }
        other => {
            // The table above and this match list the same methods.
            tracing::error!(method = other, "method in the table without a handler");
            Err(RpcError::new(
                super::json::INTERNAL_ERROR,
                "internal server error",
            ))
        }
    }
}

async fn cached_node_value<F, Fut>(
    cache: &Mutex<Option<(Instant, Value)>>,
    fetch: F,
) -> Result<Value, RpcError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Value, DaemonError>>,
{
    if let Some((at, v)) = cache.lock().as_ref() {
        if at.elapsed() < NODE_CACHE {
            return Ok(v.clone());
        }
    }
    let value = fetch().await.map_err(|e| daemon_error(&e))?;
    *cache.lock() = Some((Instant::now(), value.clone()));
    Ok(value)
}

/// The script of a `scripthash` or (1.7) `spk` argument, and what notifications call it: the
/// client's spelling before 1.7, the derived lowercase script hash from 1.7 (docs/protocol.md,
/// Script status notifications).
/// Refuses a new subscription past `max_session_subs` (this session's scripts and outpoints)
/// or `max_subs` (all sessions'), with ElectrumX 1.x's error; 0 means no limit.
fn check_subscription_room(shared: &Shared, session: &Session) -> Result<(), RpcError> {
    let limits = &shared.config.limits;
    let own = session.state.lock().subs.count();
    if limits.max_session_subs > 0 && own >= limits.max_session_subs {
        return Err(RpcError::new(
            super::json::BAD_REQUEST,
            format!(
                "your address subscription limit {} reached",
                thousands(limits.max_session_subs as u64)
            ),
        ));
    }
    if limits.max_subs > 0 && shared.registry.subscription_count() >= limits.max_subs {
        return Err(RpcError::new(
            super::json::BAD_REQUEST,
            format!(
                "server subscription limit {} reached",
                thousands(limits.max_subs as u64)
            ),
        ));
    }
    Ok(())
}

fn script_arg(
    shared: &Shared,
    method: &str,
    args: &Args,
) -> Result<(ScriptHash, String), RpcError> {
    if method.starts_with("blockchain.scriptpubkey.") {
        let script = params::hex_blob(args.req(0))?;
        let hash = ScriptHash(shared.coin.script_hash(&script));
        Ok((hash, hash.to_display_hex()))
    } else {
        params::script_hash(args.req(0))
    }
}

/// A script's status and whether it involves mempool transactions.
pub(crate) async fn script_status(
    shared: &Shared,
    script: &ScriptHash,
) -> Result<(Option<Hash32>, bool), RpcError> {
    let history: History = shared
        .query
        .history(script, shared.config.history_limit())
        .await
        .map_err(query_error)?;
    Ok((history.status_hash(), !history.mempool.is_empty()))
}

fn history_json<'a>(entries: impl Iterator<Item = &'a HistoryEntry>) -> Value {
    Value::Array(
        entries
            .map(|e| match (e.height > 0, e.fee) {
                (false, Some(fee)) => {
                    json!({"tx_hash": display(&e.txid), "height": e.height, "fee": fee})
                }
                _ => json!({"tx_hash": display(&e.txid), "height": e.height}),
            })
            .collect(),
    )
}

/// The outpoint status object (docs/protocol.md, `blockchain.outpoint.subscribe`): `{}`,
/// `{funder_height}` or all three members.
pub(crate) fn outpoint_status_json(status: &OutpointStatus) -> Value {
    let mut map = Map::new();
    if let Some(h) = status.funder_height {
        map.insert("funder_height".into(), Value::from(h));
        if let Some((txid, height)) = &status.spender {
            map.insert("spender_txhash".into(), display(txid));
            map.insert("spender_height".into(), Value::from(*height));
        }
    }
    Value::Object(map)
}

/// Every method name of docs/protocol.md and the coin extensions, as static labels for metrics;
/// anything else counts as `other`, so clients cannot create metric series.
pub(super) const METRIC_METHODS: &[&str] = &[
    "blockchain.block.header",
    "blockchain.block.headers",
    "blockchain.estimatefee",
    "blockchain.headers.subscribe",
    "blockchain.relayfee",
    "blockchain.scripthash.get_balance",
    "blockchain.scripthash.get_history",
    "blockchain.scripthash.get_mempool",
    "blockchain.scripthash.listunspent",
    "blockchain.scripthash.subscribe",
    "blockchain.scripthash.unsubscribe",
    "blockchain.scriptpubkey.get_balance",
    "blockchain.scriptpubkey.get_history",
    "blockchain.scriptpubkey.get_mempool",
    "blockchain.scriptpubkey.listunspent",
    "blockchain.scriptpubkey.subscribe",
    "blockchain.scriptpubkey.unsubscribe",
    "blockchain.outpoint.subscribe",
    "blockchain.outpoint.get_status",
    "blockchain.outpoint.unsubscribe",
    "blockchain.transaction.broadcast",
    "blockchain.transaction.broadcast_package",
    "blockchain.transaction.testmempoolaccept",
    "blockchain.transaction.get",
    "blockchain.transaction.get_merkle",
    "blockchain.transaction.id_from_pos",
    "mempool.get_fee_histogram",
    "mempool.get_info",
    "mempool.recent",
    "server.add_peer",
    "server.banner",
    "server.donation_address",
    "server.features",
    "server.peers.subscribe",
    "server.ping",
    "server.version",
];

/// The methods that exist in version `v`, from the table requests are dispatched by.
pub(super) fn methods_of_version(v: &ProtocolVersion) -> Vec<&'static str> {
    METRIC_METHODS
        .iter()
        .copied()
        .filter(|m| signature(m, v).is_some())
        .collect()
}

/// The metric label of `method`.
pub(crate) fn metric_label(method: &str) -> &'static str {
    METRIC_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_tables_follow_the_versions() {
        let v = |s: &str| ProtocolVersion::parse(&Value::from(s));
        assert!(signature("blockchain.relayfee", &v("1.5")).is_some());
        assert!(signature("blockchain.relayfee", &v("1.6")).is_none());
        assert!(signature("blockchain.scripthash.unsubscribe", &v("1.4.1")).is_none());
        assert!(signature("blockchain.scripthash.unsubscribe", &v("1.4.2")).is_some());
        assert!(signature("blockchain.scripthash.get_history", &v("1.7")).is_none());
        assert!(signature("blockchain.scriptpubkey.get_history", &v("1.7")).is_some());
        assert!(signature("blockchain.scriptpubkey.get_history", &v("1.6")).is_none());
        assert!(signature("mempool.get_info", &v("1.6")).is_some());
        assert!(signature("mempool.recent", &v("1.6")).is_none());
        assert!(signature("blockchain.transaction.broadcast_package", &v("1.5")).is_none());
        assert!(signature("blockchain.outpoint.subscribe", &v("1.7.0")).is_some());
        assert!(signature("blockchain.address.get_history", &v("1.7")).is_none());
    }

    #[test]
    fn outpoint_status_shapes() {
        assert_eq!(outpoint_status_json(&OutpointStatus::default()), json!({}));
        let s = OutpointStatus {
            funder_height: Some(5),
            spender: Some(([1; 32], -1)),
        };
        assert_eq!(
            outpoint_status_json(&s).to_string(),
            format!(
                r#"{{"funder_height":5,"spender_txhash":"{}","spender_height":-1}}"#,
                "01".repeat(32)
            )
        );
    }
}
