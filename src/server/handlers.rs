//! Handlers of docs/protocol.md's methods with enough logic to live apart from the dispatcher:
//! headers and checkpoints (`blockchain.block.header`, `blockchain.block.headers`), fee
//! estimates (`blockchain.estimatefee`), broadcasts (`blockchain.transaction.broadcast`,
//! `broadcast_package`, `testmempoolaccept`) and the `server.*` answers.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::json::{thousands, RpcError};
use super::methods::{
    branch_json, daemon_error, display, dotted_version, height_out_of_range, nni, opt_nni,
    query_error, MAX_HEADERS,
};
use super::params::{self, Args};
use super::session::Session;
use super::version::ProtocolVersion;
use super::Shared;
use crate::config::ServiceKind;
use crate::daemon::{DaemonError, FeeEstimate};
pub(super) fn server_ping(
    shared: &Shared,
    session: &Session,
    v: &ProtocolVersion,
    args: &Args,
) -> Result<Value, RpcError> {
    session.add_cost(shared, 0.1);
    if !v.at_least(&[1, 7]) {
        return Ok(Value::Null);
    }
    if let Some(data) = args.get(1) {
        params::hex_odd(data)?;
    }
    let pong_len = args.get(0).map(nni).transpose()?.unwrap_or(0);
    if pong_len > shared.config.limits.max_send as u64 {
        return Err(RpcError::bad_request("pong_len value too high"));
    }
    session.add_cost(
        shared,
        pong_len as f64 / shared.config.limits.bandwidth_unit_cost.max(1.0),
    );
    Ok(json!({"data": "0".repeat(pong_len as usize)}))
}

pub(super) fn server_features(shared: &Shared, v: &ProtocolVersion) -> Value {
    let mut hosts = Map::new();
    let mut services = Vec::new();
    for s in &shared.config.report_services {
        let key = match s.kind {
            ServiceKind::Tcp => "tcp_port",
            ServiceKind::Ssl => "ssl_port",
            ServiceKind::Ws => "ws_port",
            ServiceKind::Wss => "wss_port",
            ServiceKind::Rpc => continue,
        };
        if s.host.is_empty() {
            continue;
        }
        let entry = hosts
            .entry(s.host.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(key.into(), Value::from(s.port));
        }
        let host = if s.host.contains(':') {
            format!("[{}]", s.host)
        } else {
            s.host.clone()
        };
        services.push(Value::from(format!("{}://{}:{}", s.kind, host, s.port)));
    }
    let mut out = Map::new();
    out.insert("hosts".into(), Value::Object(hosts));
    out.insert("pruning".into(), Value::Null);
    out.insert(
        "server_version".into(),
        Value::from(shared.config.server_version.clone()),
    );
    out.insert(
        "protocol_min".into(),
        Value::from(ProtocolVersion::min().to_string()),
    );
    out.insert(
        "protocol_max".into(),
        Value::from(ProtocolVersion::max().to_string()),
    );
    out.insert(
        "genesis_hash".into(),
        display(&shared.coin.params().genesis_hash),
    );
    if !v.at_least(&[1, 7]) {
        out.insert("hash_function".into(), Value::from("sha256"));
    }
    out.insert("services".into(), Value::Array(services));
    Value::Object(out)
}

pub(super) async fn server_banner(shared: &Shared) -> String {
    let default = format!(
        "You are connected to an {} server.",
        shared.config.server_version
    );
    let Some(path) = &shared.config.banner_file else {
        return default;
    };
    match tokio::fs::read_to_string(path).await {
        Ok(text) => {
            // The node is only asked when the banner names it; an unreachable node leaves the
            // placeholders empty rather than failing the request.
            let node = if text.contains("$DAEMON_") {
                match shared.daemon.node_version().await {
                    Ok(node) => Some(node),
                    Err(e) => {
                        tracing::debug!(error = %e, "node version for the banner");
                        None
                    }
                }
            } else {
                None
            };
            let version = shared
                .config
                .server_version
                .split_whitespace()
                .last()
                .unwrap_or_default()
                .to_string();
            text.replace("$SERVER_VERSION", &version)
                .replace("$SERVER_SUBVERSION", &shared.config.server_version)
                .replace("$DONATION_ADDRESS", &shared.config.donation_address)
                .replace(
                    "$DAEMON_SUBVERSION",
                    node.as_ref().map_or("", |n| n.subversion.as_str()),
                )
                .replace(
                    "$DAEMON_VERSION",
                    &node.as_ref().map(|n| n.dotted()).unwrap_or_default(),
                )
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "banner file unreadable");
            default
        }
    }
}

pub(super) async fn block_header(
    shared: &Shared,
    session: &Session,
    v: &ProtocolVersion,
    args: &Args,
) -> Result<Value, RpcError> {
    let height = nni(args.req(0))?;
    let cp_height = opt_nni(args, 1)?;
    session.add_cost(shared, if cp_height > 0 { 1.25 } else { 0.25 });
    let tip = u64::from(shared.query.tip().height);
    if height > tip {
        return Err(height_out_of_range(height));
    }
    let header = shared
        .query
        .header(height as u32)
        .await
        .map_err(query_error)?
        .ok_or_else(|| height_out_of_range(height))?;
    if cp_height == 0 {
        return Ok(Value::from(hex::encode(header)));
    }
    check_checkpoint(height, cp_height, tip)?;
    let proof = shared
        .query
        .header_proof(height as u32, cp_height as u32)
        .await
        .map_err(query_error)?;
    let header = truncate_header(shared, v, header);
    Ok(
        json!({"header": hex::encode(header), "branch": branch_json(&proof.branch),
              "root": display(&proof.root)}),
    )
}

fn check_checkpoint(height: u64, cp_height: u64, tip: u64) -> Result<(), RpcError> {
    if height <= cp_height && cp_height <= tip {
        return Ok(());
    }
    Err(RpcError::bad_request(format!(
        "require header height {} <= cp_height {} <= chain height {}",
        thousands(height),
        thousands(cp_height),
        thousands(tip)
    )))
}

/// AuxPoW headers lose their proof under a checkpoint from 1.4.1 (docs/protocol.md, Changes by
/// version).
fn truncate_header(shared: &Shared, v: &ProtocolVersion, mut header: Vec<u8>) -> Vec<u8> {
    if v.at_least(&[1, 4, 1]) {
        if let Some(size) = shared.coin.params().header.truncated_size {
            header.truncate(size);
        }
    }
    header
}

pub(super) async fn block_headers(
    shared: &Shared,
    session: &Session,
    v: &ProtocolVersion,
    args: &Args,
) -> Result<Value, RpcError> {
    let start = nni(args.req(0))?;
    let count = nni(args.req(1))?;
    let cp_height = opt_nni(args, 2)?;
    // Charged on the requested count, before the cap: asking for absurd counts costs.
    session.add_cost(shared, count as f64 / 50.0);
    let count = count.min(MAX_HEADERS);
    let tip = u64::from(shared.query.tip().height);
    let n = if start > tip {
        0
    } else {
        count.min(tip + 1 - start)
    };
    let mut headers = if n > 0 {
        shared
            .query
            .headers(start as u32, n as u32)
            .await
            .map_err(query_error)?
    } else {
        Vec::new()
    };
    let n = headers.len() as u64;
    let mut proof = None;
    if n > 0 && cp_height > 0 {
        let last = start + n - 1;
        check_checkpoint(last, cp_height, tip)?;
        session.add_cost(shared, 1.0);
        proof = Some(
            shared
                .query
                .header_proof(last as u32, cp_height as u32)
                .await
                .map_err(query_error)?,
        );
        headers = headers
            .into_iter()
            .map(|h| truncate_header(shared, v, h))
            .collect();
    }
    let mut out = Map::new();
    if v.at_least(&[1, 6]) {
        out.insert("count".into(), Value::from(n));
        out.insert("max".into(), Value::from(MAX_HEADERS));
        out.insert(
            "headers".into(),
            Value::Array(
                headers
                    .iter()
                    .map(|h| Value::from(hex::encode(h)))
                    .collect(),
            ),
        );
    } else {
        out.insert("hex".into(), Value::from(hex::encode(headers.concat())));
        out.insert("count".into(), Value::from(n));
        out.insert("max".into(), Value::from(MAX_HEADERS));
    }
    if let Some(p) = proof {
        out.insert("branch".into(), branch_json(&p.branch));
        out.insert("root".into(), display(&p.root));
    }
    Ok(Value::Object(out))
}

/// Bitcoin Core's tracked confirmation targets (docs/protocol.md, `blockchain.estimatefee`).
fn bucket_target(n: u64) -> u64 {
    match n {
        0..=1 => 1,
        2..=12 | 25 => n,
        13..=48 => n & !1,
        49..=1008 => n / 24 * 24,
        _ => 1008,
    }
}

pub(super) async fn estimatefee(
    shared: &Shared,
    session: &Session,
    args: &Args,
) -> Result<Value, RpcError> {
    let number = nni(args.req(0))?;
    let mode = match args.get(1) {
        Some(Value::String(s)) => {
            let upper = s.to_uppercase();
            if upper != "CONSERVATIVE" && upper != "ECONOMICAL" {
                return Err(RpcError::bad_request(format!(
                    "unknown estimatefee mode: {upper}"
                )));
            }
            Some(upper)
        }
        _ => None,
    };
    session.add_cost(shared, 0.1);
    let target = if shared.coin.params().rpc.bucket_fee_targets {
        bucket_target(number)
    } else {
        number
    };
    let tip_hash = shared.query.tip().hash;
    let key = (target, mode.clone());
    let cached = || {
        shared
            .caches
            .estimatefee
            .lock()
            .get(&key)
            .filter(|(hash, _)| *hash == tip_hash)
            .map(|(_, v)| v.clone())
    };
    if let Some(v) = cached() {
        return Ok(v);
    }
    let inflight = Arc::clone(
        shared
            .caches
            .estimatefee_inflight
            .lock()
            .entry(key.clone())
            .or_default(),
    );
    let _guard = inflight.lock().await;
    // Whoever held the lock may have filled the cache meanwhile.
    if let Some(v) = cached() {
        return Ok(v);
    }
    session.add_cost(shared, 2.0);
    let blocks = u32::try_from(target).unwrap_or(u32::MAX);
    let estimate = shared
        .daemon
        .estimate_fee(blocks, mode.as_deref())
        .await
        .map_err(|e| daemon_error(&e))?;
    let value = match estimate {
        FeeEstimate::Rate(r) => Value::from(r),
        FeeEstimate::Unknown => Value::from(-1),
        FeeEstimate::Unavailable => shared
            .coin
            .rpc()
            .estimate_fee
            .map_or(Value::from(-1), Value::from),
    };
    shared
        .caches
        .estimatefee
        .lock()
        .insert(key, (tip_hash, value.clone()));
    Ok(value)
}

pub(super) async fn broadcast(
    shared: &Shared,
    session: &Session,
    args: &Args,
) -> Result<Value, RpcError> {
    let raw = args.req(0);
    params::hex_blob(raw)?;
    let raw_hex = raw.as_str().unwrap_or_default();
    session.add_cost(shared, 0.25 + raw_hex.len() as f64 / 5000.0);
    match shared.daemon.send_raw_transaction(raw_hex).await {
        Ok(txid) => {
            session
                .txs_sent
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let client = session.state.lock().client_name.clone();
            let outdated = dotted_version(&client).is_some_and(|v| v < vec![3, 3, 3]);
            if outdated && shared.coin.params().client_warning {
                return Ok(Value::from(OUTDATED_CLIENT_WARNING));
            }
            Ok(display(&txid))
        }
        Err(DaemonError::Rpc { message, .. }) => Err(RpcError::bad_request(format!(
            "the transaction was rejected by network rules.\n\n{message}\n[{raw_hex}]"
        ))),
        Err(e) => Err(daemon_error(&e)),
    }
}

/// Returned instead of the txid to Electrum clients older than 3.3.3, which have a known
/// phishing weakness.
const OUTDATED_CLIENT_WARNING: &str = "<br/><br/>Your transaction was broadcast, but this \
     Electrum version is outdated and vulnerable to phishing attacks. Please upgrade to Electrum \
     3.3.3 or later from the official site.<br/><br/>";

pub(super) fn package_summary(result: &Value) -> Value {
    let success = result.get("package_msg").and_then(Value::as_str) == Some("success");
    let mut out = Map::new();
    out.insert("success".into(), Value::Bool(success));
    // Bitcoin Core keys tx-results by wtxid; a list is accepted too.
    let results: Vec<&Value> = match result.get("tx-results") {
        Some(Value::Object(map)) => map.values().collect(),
        Some(Value::Array(list)) => list.iter().collect(),
        _ => Vec::new(),
    };
    let errors: Vec<Value> = Some(results)
        .map(|results| {
            results
                .into_iter()
                .filter_map(|r| {
                    let error = r.get("error").and_then(Value::as_str)?;
                    (!error.is_empty()).then(|| {
                        json!({"txid": r.get("txid").cloned().unwrap_or(Value::Null),
                               "error": error})
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if !errors.is_empty() {
        out.insert("errors".into(), Value::Array(errors));
    }
    Value::Object(out)
}

pub(super) fn testmempoolaccept_summary(result: &Value) -> Value {
    let items = result.as_array().cloned().unwrap_or_default();
    Value::Array(
        items
            .iter()
            .map(|item| {
                let mut out = Map::new();
                out.insert(
                    "txid".into(),
                    item.get("txid").cloned().unwrap_or(Value::Null),
                );
                out.insert(
                    "wtxid".into(),
                    item.get("wtxid").cloned().unwrap_or(Value::Null),
                );
                if let Some(allowed) = item.get("allowed").and_then(Value::as_bool) {
                    out.insert("allowed".into(), Value::Bool(allowed));
                }
                let reason = ["package-error", "reject-details", "reject-reason"]
                    .iter()
                    .filter_map(|k| item.get(*k).and_then(Value::as_str))
                    .find(|s| !s.is_empty());
                if let Some(r) = reason {
                    out.insert("reason".into(), Value::from(r));
                }
                Value::Object(out)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fee_targets_are_bucketed_like_bitcoin_core() {
        for (n, t) in [
            (0, 1),
            (1, 1),
            (2, 2),
            (12, 12),
            (13, 12),
            (25, 25),
            (27, 26),
            (48, 48),
            (49, 48),
            (50, 48),
            (100, 96),
            (1008, 1008),
            (5000, 1008),
        ] {
            assert_eq!(bucket_target(n), t, "{n}");
        }
    }

    #[test]
    fn package_and_testmempoolaccept_summaries() {
        let r = json!({"package_msg": "transaction failed", "tx-results": {
            "w1": {"txid": "t1", "error": "insufficient fee"}, "w2": {"txid": "t2"}}});
        assert_eq!(
            package_summary(&r),
            json!({"success": false, "errors": [{"txid": "t1", "error": "insufficient fee"}]})
        );
        assert_eq!(
            package_summary(&json!({"package_msg": "success"})),
            json!({"success": true})
        );
        let t = json!([{"txid": "a", "wtxid": "b", "allowed": false, "reject-reason": "missing-inputs",
                        "reject-details": ""}]);
        assert_eq!(
            testmempoolaccept_summary(&t).to_string(),
            r#"[{"txid":"a","wtxid":"b","allowed":false,"reason":"missing-inputs"}]"#
        );
    }
}
