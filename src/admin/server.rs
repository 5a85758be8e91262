//! The admin listener: newline-delimited JSON-RPC 2.0 over TCP (single requests and batches), no
//! version negotiation, no size limit on answers, no request timeout (docs/admin.md).

use std::sync::Arc;
use std::time::Instant;

use anode_coins::Coin;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tracing::{debug, info};

use super::api::{AdminApi, LoggingChange, MemoryItem, SessionInfo};
use super::commands::{Command, RpcError, INVALID_REQUEST, PARSE_ERROR};
use super::logging::LogControl;
use crate::query::ChainQuery;

/// Longest request line accepted; admin requests are short, so this only stops a runaway client.
const MAX_REQUEST_LINE: usize = 1 << 20;

/// Executes admin commands over the server's state. One per process, shared by connections.
pub struct Admin {
    api: Arc<dyn AdminApi>,
    chain: Arc<dyn ChainQuery>,
    coin: Arc<dyn Coin>,
    log: Option<LogControl>,
}

impl Admin {
    /// Commands over `api` (server and indexer state), `chain` (for `query`) and `coin`
    /// (address decoding).
    pub fn new(api: Arc<dyn AdminApi>, chain: Arc<dyn ChainQuery>, coin: Arc<dyn Coin>) -> Self {
        Admin {
            api,
            chain,
            coin,
            log: None,
        }
    }

    /// Lets `log` change the tracing filter through `log`.
    pub fn with_log_control(mut self, log: LogControl) -> Self {
        self.log = Some(log);
        self
    }

    /// Answers one request: `method` with `params`.
    pub async fn handle(&self, method: &str, params: Option<&Value>) -> Result<Value, RpcError> {
        let command = Command::parse(method, params)?;
        if command.changes_state() {
            info!(?command, "admin command");
        } else {
            debug!(?command, "admin command");
        }
        self.execute(command).await
    }

    /// Runs a parsed command.
    pub async fn execute(&self, command: Command) -> Result<Value, RpcError> {
        Ok(match command {
            Command::GetInfo => {
                let mut info = self.api.getinfo().await;
                if let Value::Object(map) = &mut info {
                    map.entry("pid")
                        .or_insert_with(|| json!(std::process::id()));
                }
                info
            }
            Command::Sessions => {
                let mut sessions = self.api.sessions().await;
                sessions.sort_by_key(|s| s.id);
                to_value(&sessions)
            }
            Command::Groups => {
                let mut groups = self.api.groups().await;
                groups.sort_by(|a, b| a.name.cmp(&b.name));
                to_value(&groups)
            }
            Command::Peers => {
                let mut peers = self.api.peers().await;
                // Good peers first, then by host, as electrumx_rpc shows them.
                peers.sort_by(|a, b| (a.status, &a.host).cmp(&(b.status, &b.host)));
                to_value(&peers)
            }
            Command::AddPeer { real_name } => {
                self.api.add_peer(&real_name).await?;
                json!(format!("peer '{real_name}' added"))
            }
            Command::Disconnect { session_ids } => json!(self.disconnect(&session_ids).await),
            Command::Log { session_ids, level } => {
                json!(self.log(&session_ids, level.as_deref()).await?)
            }
            Command::DaemonUrl { daemon_url } => {
                let urls = Some(daemon_url.trim()).filter(|u| !u.is_empty());
                let now = self.api.set_daemon_url(urls).await?;
                json!(format!(
                    "now using daemon at {}",
                    crate::daemon::hide_credentials(&now)
                ))
            }
            Command::Query { items, limit } => {
                json!(super::query::query_lines(&*self.chain, &*self.coin, &items, limit).await)
            }
            Command::Reorg { count } => {
                if count == 0 {
                    return Err(RpcError::bad_request("count must be at least 1"));
                }
                self.api.reorg(count).await?;
                json!(format!("scheduled a reorg of {count} blocks"))
            }
            Command::DebugMemusage { limit } => {
                let mut items = process_memory();
                items.extend(self.api.memory_usage().await);
                items.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
                items.truncate(limit);
                to_value(&items)
            }
            Command::InspectSession { session_id } => {
                let sessions = self.api.sessions().await;
                let session = sessions
                    .into_iter()
                    .find(|s| s.id == session_id)
                    .ok_or_else(|| {
                        RpcError::bad_request(format!("no session with id={session_id}"))
                    })?;
                to_value(&session)
            }
            Command::Stop => {
                self.api.stop().await;
                json!("stopping")
            }
        })
    }

    /// `disconnect`: ids, group names or `all`, one answer line per argument.
    async fn disconnect(&self, targets: &[String]) -> Vec<String> {
        let sessions = self.api.sessions().await;
        let mut lines = Vec::new();
        let mut ids = Vec::new();
        for target in targets {
            let chosen = select_sessions(&sessions, target);
            match chosen {
                Selected::All(found) => {
                    lines.push("disconnecting all sessions".to_string());
                    ids.extend(found);
                }
                Selected::Session(id) => {
                    lines.push(format!("disconnecting session {id}"));
                    ids.push(id);
                }
                Selected::Group(found) => {
                    lines.push(format!("disconnecting group {target}"));
                    ids.extend(found);
                }
                Selected::Unknown => lines.push(format!("unknown: {target}")),
            }
        }
        ids.sort_unstable();
        ids.dedup();
        if !ids.is_empty() {
            let closed = self.api.disconnect(&ids).await;
            // A session may have gone between listing and closing; say so rather than claim it.
            for id in ids.iter().filter(|id| !closed.contains(id)) {
                lines.push(format!("session {id} had already gone"));
            }
        }
        lines
    }

    /// `log`: toggles session logging and/or sets the filter; one line per change.
    async fn log(&self, targets: &[String], level: Option<&str>) -> Result<Vec<String>, RpcError> {
        let mut lines = Vec::new();
        if let Some(level) = level {
            let log = self.log.as_ref().ok_or_else(|| {
                RpcError::bad_request("this server's logger cannot be changed at run time")
            })?;
            let previous = log
                .set(level)
                .map_err(|e| RpcError::bad_request(e.to_string()))?;
            lines.push(format!("log filter now {level:?} (was {previous:?})"));
        }
        if targets.is_empty() {
            if level.is_none() {
                match &self.log {
                    Some(log) => lines.push(format!(
                        "log filter is {:?}",
                        log.current()
                            .map_err(|e| RpcError::bad_request(e.to_string()))?
                    )),
                    None => return Err(RpcError::bad_request("expected a list of session IDs")),
                }
            }
            return Ok(lines);
        }
        let sessions = self.api.sessions().await;
        let mut toggle = Vec::new();
        for target in targets {
            let change = match target.as_str() {
                "all" => Some(LoggingChange::All),
                "none" => Some(LoggingChange::None),
                "new" => Some(LoggingChange::ToggleNew),
                _ => None,
            };
            if let Some(change) = change {
                let state = self.api.session_logging(change.clone()).await;
                lines.push(match change {
                    LoggingChange::All => "logging all sessions".to_string(),
                    LoggingChange::None => "logging no sessions".to_string(),
                    _ => format!(
                        "logging new sessions: {}",
                        if state.log_new { "on" } else { "off" }
                    ),
                });
                continue;
            }
            match select_sessions(&sessions, target) {
                Selected::Session(id) => toggle.push(id),
                Selected::Group(ids) => toggle.extend(ids),
                Selected::All(_) => unreachable!("`all` is handled above"),
                Selected::Unknown => lines.push(format!("unknown: {target}")),
            }
        }
        if !toggle.is_empty() {
            toggle.sort_unstable();
            toggle.dedup();
            let state = self
                .api
                .session_logging(LoggingChange::Toggle(toggle))
                .await;
            for (id, on) in state.toggled {
                lines.push(format!(
                    "{} session {id}",
                    if on { "logging" } else { "not logging" }
                ));
            }
        }
        Ok(lines)
    }
}

enum Selected {
    All(Vec<u64>),
    Session(u64),
    Group(Vec<u64>),
    Unknown,
}

/// What a `disconnect`/`log` argument names: `all`, a session id, or a group.
fn select_sessions(sessions: &[SessionInfo], target: &str) -> Selected {
    if target == "all" {
        return Selected::All(sessions.iter().map(|s| s.id).collect());
    }
    if let Ok(id) = target.parse::<u64>() {
        if sessions.iter().any(|s| s.id == id) {
            return Selected::Session(id);
        }
    }
    let members: Vec<u64> = sessions
        .iter()
        .filter(|s| s.group == target)
        .map(|s| s.id)
        .collect();
    if members.is_empty() {
        Selected::Unknown
    } else {
        Selected::Group(members)
    }
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("admin data types serialize to JSON")
}

/// The process's own memory figures from `/proc/self/status` (Linux; nothing elsewhere).
fn process_memory() -> Vec<MemoryItem> {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Vec::new();
    };
    status
        .lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let name = match key {
                "VmRSS" => "process resident (VmRSS)",
                "VmHWM" => "process peak resident (VmHWM)",
                "VmSize" => "process virtual (VmSize)",
                _ => return None,
            };
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(MemoryItem {
                name: name.to_string(),
                bytes: kb * 1024,
            })
        })
        .collect()
}

/// A running admin listener started by [`spawn`].
pub type AdminServer = crate::side_listener::SideListener;

/// Starts the admin listener on the configured `rpc://` service; `None` when `services` has
/// none (the admin interface is off).
pub async fn spawn_configured(
    config: &crate::config::Config,
    admin: Arc<Admin>,
) -> std::io::Result<Option<AdminServer>> {
    match config
        .services
        .iter()
        .find(|s| s.kind == crate::config::ServiceKind::Rpc)
    {
        Some(service) => spawn(&service.bind_addr(), admin).await.map(Some),
        None => Ok(None),
    }
}

/// Binds `addr` (the `rpc://` service; port 0 picks one) and serves `admin` on it in a task.
pub async fn spawn(addr: &str, admin: Arc<Admin>) -> std::io::Result<AdminServer> {
    let server = AdminServer::spawn(addr, "admin RPC", move |stream, peer| {
        debug!(%peer, "admin connection");
        connection(stream, Arc::clone(&admin))
    })
    .await?;
    info!(addr = %server.addr, "admin RPC listening");
    Ok(server)
}

async fn connection(stream: TcpStream, admin: Arc<Admin>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_REQUEST_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await;
        match read {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                debug!(error = %e, "admin connection read failed");
                return;
            }
        }
        if line.len() > MAX_REQUEST_LINE {
            let answer = error_response(
                Value::Null,
                &RpcError {
                    code: INVALID_REQUEST,
                    message: format!("request longer than {MAX_REQUEST_LINE} bytes"),
                },
            );
            let _ = write_line(&mut write, &answer).await;
            return;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let started = Instant::now();
        let answer = answer_message(&admin, &line).await;
        debug!(
            ms = started.elapsed().as_millis() as u64,
            "admin request answered"
        );
        if let Some(answer) = answer {
            if write_line(&mut write, &answer).await.is_err() {
                return;
            }
        }
    }
}

async fn write_line(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    value: &Value,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(value).expect("JSON values serialize");
    bytes.push(b'\n');
    write.write_all(&bytes).await
}

/// The answer to one line (a request or a batch); `None` for notifications only.
async fn answer_message(admin: &Admin, line: &[u8]) -> Option<Value> {
    let message: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            return Some(error_response(
                Value::Null,
                &RpcError {
                    code: PARSE_ERROR,
                    message: format!("invalid JSON: {e}"),
                },
            ))
        }
    };
    match message {
        Value::Array(items) if items.is_empty() => Some(error_response(
            Value::Null,
            &RpcError {
                code: INVALID_REQUEST,
                message: "empty batch".into(),
            },
        )),
        Value::Array(items) => {
            let mut answers = Vec::new();
            for item in items {
                if let Some(a) = answer_request(admin, item).await {
                    answers.push(a);
                }
            }
            (!answers.is_empty()).then_some(Value::Array(answers))
        }
        other => answer_request(admin, other).await,
    }
}

async fn answer_request(admin: &Admin, request: Value) -> Option<Value> {
    let Value::Object(request) = request else {
        return Some(error_response(
            Value::Null,
            &RpcError {
                code: INVALID_REQUEST,
                message: "a request must be an object".into(),
            },
        ));
    };
    let id = request.get("id").cloned();
    let Some(Value::String(method)) = request.get("method") else {
        return Some(error_response(
            id.unwrap_or(Value::Null),
            &RpcError {
                code: INVALID_REQUEST,
                message: "missing method".into(),
            },
        ));
    };
    let result = admin.handle(method, request.get("params")).await;
    if let Err(e) = &result {
        debug!(method, code = e.code, message = %e.message, "admin command failed");
    }
    // A request without an id is a notification: run it, answer nothing.
    let id = id?;
    Some(match result {
        Ok(value) => json!({"jsonrpc": "2.0", "id": id, "result": value}),
        Err(e) => error_response(id, &e),
    })
}

fn error_response(id: Value, e: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": e.code, "message": e.message}})
}
