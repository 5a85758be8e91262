//! The client side of `anode rpc`: one request to the admin listener, and the answer made
//! readable (tables for sessions, groups, peers and memory; lines for text answers).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::api::{GroupInfo, MemoryItem, PeerInfo, SessionInfo};
use super::commands::RpcError;
use crate::config::{Service, ServiceKind};

/// How long to wait for the admin port to accept.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing accepted the connection.
    #[error(
        "cannot connect to the admin RPC at {addr}: {reason}. Is anode running? Its admin port \
         is the rpc:// entry of SERVICES (default rpc://127.0.0.1:8000); point `anode rpc` \
         elsewhere with --rpc-host/--rpc-port or RPC_HOST/RPC_PORT"
    )]
    Connect {
        /// where we tried
        addr: String,
        /// what the OS said (in the message, so not a `source`)
        reason: std::io::Error,
    },
    /// The connection broke.
    #[error("admin RPC at {addr}: {reason}")]
    Io {
        /// where
        addr: String,
        /// what happened
        reason: std::io::Error,
    },
    /// The answer is not a JSON-RPC response.
    #[error("admin RPC at {addr} answered something that is not a JSON-RPC response: {detail}")]
    Protocol {
        /// where
        addr: String,
        /// what was wrong
        detail: String,
    },
    /// The server answered with an error.
    #[error("{0}")]
    Rpc(RpcError),
}

/// Where `anode rpc` connects: the flag, else `RPC_HOST`/`RPC_PORT` (as `electrumx_rpc`
/// reads them), else the configured `rpc://` service, else `127.0.0.1:8000`. A service bound to
/// all interfaces is reached on localhost.
pub fn admin_addr(
    host_flag: Option<&str>,
    port_flag: Option<u16>,
    env: impl Fn(&str) -> Option<String>,
    services: &[Service],
) -> Result<String, String> {
    let service = services.iter().find(|s| s.kind == ServiceKind::Rpc);
    let host = match host_flag.map(String::from).or_else(|| env("RPC_HOST")) {
        Some(h) => h,
        None => match service.map(|s| s.host.as_str()) {
            None | Some("" | "0.0.0.0" | "::" | "[::]") => "127.0.0.1".to_string(),
            Some(h) => h.to_string(),
        },
    };
    let port = match port_flag {
        Some(p) => p,
        None => match env("RPC_PORT") {
            Some(p) => p
                .trim()
                .parse()
                .map_err(|_| format!("RPC_PORT={p:?} is not a port number"))?,
            None => service.map_or(8000, |s| s.port),
        },
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// Sends `method` with named `params` to the admin listener at `addr` and returns the result.
pub async fn call(addr: &str, method: &str, params: Value) -> Result<Value, ClientError> {
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await;
    let stream = match connect {
        Ok(Ok(s)) => s,
        Ok(Err(reason)) => {
            return Err(ClientError::Connect {
                addr: addr.to_string(),
                reason,
            })
        }
        Err(_) => {
            return Err(ClientError::Connect {
                addr: addr.to_string(),
                reason: std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
            })
        }
    };
    let io = |reason| ClientError::Io {
        addr: addr.to_string(),
        reason,
    };
    let protocol = |detail: String| ClientError::Protocol {
        addr: addr.to_string(),
        detail,
    };
    let (read, mut write) = stream.into_split();
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut bytes = serde_json::to_vec(&request).expect("JSON values serialize");
    bytes.push(b'\n');
    write.write_all(&bytes).await.map_err(io)?;
    let mut line = Vec::new();
    BufReader::new(read)
        .read_until(b'\n', &mut line)
        .await
        .map_err(io)?;
    if line.is_empty() {
        return Err(protocol("the connection closed without an answer".into()));
    }
    let mut answer: Value =
        serde_json::from_slice(&line).map_err(|e| protocol(format!("invalid JSON: {e}")))?;
    if let Some(error) = answer.get("error").filter(|e| !e.is_null()) {
        let code = error.get("code").and_then(Value::as_i64);
        let message = error.get("message").and_then(Value::as_str);
        return match (code, message) {
            (Some(code), Some(message)) => Err(ClientError::Rpc(RpcError {
                code,
                message: message.to_string(),
            })),
            _ => Err(protocol(format!("malformed error object {error}"))),
        };
    }
    match answer.get_mut("result") {
        Some(result) => Ok(result.take()),
        None => Err(protocol(format!("no result in {answer}"))),
    }
}

/// The lines `anode rpc` prints for the result of `method`.
pub fn render(method: &str, result: &Value) -> Vec<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let table = match method {
        "sessions" => parse::<Vec<SessionInfo>>(result).map(|s| sessions_table(&s, now)),
        "groups" => parse::<Vec<GroupInfo>>(result).map(|g| groups_table(&g)),
        "peers" => parse::<Vec<PeerInfo>>(result).map(|p| peers_table(&p, now)),
        "debug_memusage" | "debug_memusage_list_all_objects" => {
            parse::<Vec<MemoryItem>>(result).map(|m| memory_table(&m))
        }
        _ => None,
    };
    if let Some(lines) = table {
        return lines;
    }
    match result {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        other => serde_json::to_string_pretty(other)
            .expect("JSON values serialize")
            .lines()
            .map(String::from)
            .collect(),
    }
}

fn parse<T: DeserializeOwned>(value: &Value) -> Option<T> {
    serde_json::from_value(value.clone()).ok()
}

/// Left-aligned columns are marked `false` in `right`.
fn table(headers: &[&str], right: &[bool], rows: Vec<Vec<String>>) -> Vec<String> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if right[i] {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            }
        }
        out.trim_end().to_string()
    };
    let mut lines = vec![line(headers.iter().map(|h| h.to_string()).collect())];
    lines.extend(rows.into_iter().map(line));
    lines
}

/// `secs` as `3d 04h 05m 06s`, leading zero units left out.
pub fn format_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h:02}h {m:02}m {s:02}s")
    } else if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

fn kb(bytes: u64) -> String {
    (bytes / 1024).to_string()
}

fn ago(at: Option<u64>, now: u64) -> String {
    match at {
        Some(t) => format!("{} ago", format_duration(now.saturating_sub(t))),
        None => "never".into(),
    }
}

fn sessions_table(sessions: &[SessionInfo], now: u64) -> Vec<String> {
    let rows = sessions
        .iter()
        .map(|s| {
            let mut flags: String = s
                .transport
                .chars()
                .take(1)
                .collect::<String>()
                .to_uppercase();
            if s.closing {
                flags.push('C');
            }
            if s.logged {
                flags.push('L');
            }
            flags.push_str(&s.concurrency.to_string());
            vec![
                s.id.to_string(),
                flags,
                s.client_name.chars().take(17).collect(),
                s.protocol_version.clone().unwrap_or_else(|| "-".into()),
                format!("{:.0}", s.cost),
                format!("{:.0}", s.extra_cost),
                s.pending_requests.to_string(),
                s.requests.to_string(),
                s.errors.to_string(),
                s.txs_sent.to_string(),
                s.subscriptions().to_string(),
                s.recv_count.to_string(),
                kb(s.recv_bytes),
                s.send_count.to_string(),
                kb(s.send_bytes),
                format_duration(now.saturating_sub(s.connected_since)),
                s.remote_addr.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID", "Flags", "Client", "Proto", "Cost", "XCost", "Pend", "Reqs", "Errs", "Txs",
            "Subs", "Recv", "Recv KB", "Sent", "Sent KB", "Time", "Peer",
        ],
        &[
            true, false, false, false, true, true, true, true, true, true, true, true, true, true,
            true, true, false,
        ],
        rows,
    )
}

fn groups_table(groups: &[GroupInfo]) -> Vec<String> {
    let rows = groups
        .iter()
        .map(|g| {
            vec![
                g.name.clone(),
                g.sessions.to_string(),
                format!("{:.0}", g.cost),
                format!("{:.0}", g.retained_cost),
                g.pending_requests.to_string(),
                g.txs_sent.to_string(),
                g.subscriptions.to_string(),
                g.recv_count.to_string(),
                kb(g.recv_bytes),
                g.send_count.to_string(),
                kb(g.send_bytes),
            ]
        })
        .collect();
    table(
        &[
            "Name", "Sessions", "Cost", "Retained", "Pend", "Txs", "Subs", "Recv", "Recv KB",
            "Sent", "Sent KB",
        ],
        &[
            false, true, true, true, true, true, true, true, true, true, true,
        ],
        rows,
    )
}

fn feature(p: &PeerInfo, key: &str) -> String {
    match p.features.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn port(p: &PeerInfo, key: &str) -> String {
    p.features
        .get("hosts")
        .and_then(|h| h.get(&p.host))
        .and_then(|h| h.get(key))
        .filter(|v| !v.is_null())
        .map(|v| v.to_string())
        .unwrap_or_default()
}

fn peers_table(peers: &[PeerInfo], now: u64) -> Vec<String> {
    let rows = peers
        .iter()
        .map(|p| {
            let status = serde_json::to_value(p.status)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            vec![
                p.host.clone(),
                status,
                port(p, "tcp_port"),
                port(p, "ssl_port"),
                feature(p, "server_version"),
                feature(p, "protocol_min"),
                feature(p, "protocol_max"),
                feature(p, "pruning"),
                ago(p.last_good, now),
                ago(p.last_try, now),
                p.try_count.to_string(),
                p.source.clone(),
                p.ip_addr.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "Host",
            "Status",
            "TCP",
            "SSL",
            "Server",
            "Min",
            "Max",
            "Pruning",
            "Last Good",
            "Last Try",
            "Tries",
            "Source",
            "IP Address",
        ],
        &[
            false, false, true, true, false, false, false, true, true, true, true, false, false,
        ],
        rows,
    )
}

fn memory_table(items: &[MemoryItem]) -> Vec<String> {
    let rows = items
        .iter()
        .map(|m| {
            vec![
                format!("{:.1}", m.bytes as f64 / 1_048_576.0),
                m.name.clone(),
            ]
        })
        .collect();
    table(&["MiB", "Held by"], &[true, false], rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_address_comes_from_flag_env_or_services() {
        let services: Vec<Service> = ["tcp://:50001", "rpc://0.0.0.0:9000"]
            .iter()
            .map(|s| s.parse().expect("service"))
            .collect();
        let no_env = |_: &str| None;
        let env = |k: &str| match k {
            "RPC_HOST" => Some("10.1.1.1".to_string()),
            "RPC_PORT" => Some("7000".to_string()),
            _ => None,
        };
        assert_eq!(
            admin_addr(None, None, no_env, &[]).as_deref(),
            Ok("127.0.0.1:8000")
        );
        assert_eq!(
            admin_addr(None, None, no_env, &services).as_deref(),
            Ok("127.0.0.1:9000")
        );
        assert_eq!(
            admin_addr(None, None, env, &services).as_deref(),
            Ok("10.1.1.1:7000")
        );
        assert_eq!(
            admin_addr(Some("::1"), Some(1), env, &services).as_deref(),
            Ok("[::1]:1")
        );
        let bad = |k: &str| (k == "RPC_PORT").then(|| "eighty".to_string());
        assert!(admin_addr(None, None, bad, &services).is_err());
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(5), "5s");
        assert_eq!(format_duration(65), "1m 05s");
        assert_eq!(format_duration(3 * 3600 + 7), "3h 00m 07s");
        assert_eq!(format_duration(2 * 86400 + 3661), "2d 01h 01m 01s");
    }

    #[test]
    fn sessions_render_as_a_table_with_flags() {
        let sessions = vec![SessionInfo {
            id: 12,
            transport: "ssl".into(),
            client_name: "electrum/4.5.8-a-long-client-name".into(),
            protocol_version: Some("1.4".into()),
            closing: true,
            logged: true,
            concurrency: 7,
            scripthash_subs: 3,
            outpoint_subs: 1,
            recv_bytes: 4096,
            connected_since: 1000,
            remote_addr: "10.0.0.1:5555".into(),
            ..SessionInfo::default()
        }];
        let lines = render("sessions", &serde_json::to_value(&sessions).expect("json"));
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ID Flags"), "{lines:?}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(cells[0], "12");
        assert_eq!(cells[1], "SCL7");
        assert_eq!(cells[2], "electrum/4.5.8-a-");
        assert!(lines[1].ends_with("10.0.0.1:5555"));
        // Subscriptions are the sum of both kinds, received bytes in KB.
        assert_eq!(cells[10], "4");
        assert_eq!(cells[12], "4");
    }

    #[test]
    fn text_answers_print_as_lines_and_objects_as_json() {
        assert_eq!(render("stop", &json!("stopping")), vec!["stopping"]);
        assert_eq!(render("log", &json!(["a", "b"])), vec!["a", "b"]);
        let lines = render("getinfo", &json!({"db height": 7}));
        assert_eq!(lines, vec!["{", "  \"db height\": 7", "}"]);
    }
}
