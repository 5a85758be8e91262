//! The admin commands, parsed once from a JSON-RPC method and its parameters.
//!
//! Parameters come named (as `electrumx_rpc` sends them, docs/admin.md) or positional in the
//! order of [`Command::params`]. Missing optional parameters take ElectrumX's CLI defaults.

use serde_json::{Map, Value};

/// JSON-RPC "method not found".
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC "invalid params": an unknown parameter name, too many or a missing required one.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC "invalid request".
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC "parse error".
pub const PARSE_ERROR: i64 = -32700;
/// ElectrumX's "bad request": a parameter of the wrong kind, or an operation refused.
pub const BAD_REQUEST: i64 = 1;

/// An error answer: code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct RpcError {
    /// JSON-RPC or Electrum error code
    pub code: i64,
    /// operator-readable message
    pub message: String,
}

impl RpcError {
    /// Code 1 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        RpcError {
            code: BAD_REQUEST,
            message: message.into(),
        }
    }

    fn invalid_params(message: impl Into<String>) -> Self {
        RpcError {
            code: INVALID_PARAMS,
            message: message.into(),
        }
    }
}

impl From<super::AdminError> for RpcError {
    fn from(e: super::AdminError) -> Self {
        RpcError::bad_request(e.to_string())
    }
}

/// Default `limit` of `query` (electrumx_rpc's).
pub const DEFAULT_QUERY_LIMIT: usize = 1000;
/// Default `count` of `reorg` (electrumx_rpc's).
pub const DEFAULT_REORG_COUNT: u32 = 3;
/// Default `limit` of `debug_memusage`.
pub const DEFAULT_MEMUSAGE_LIMIT: usize = 50;

/// One parsed admin command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// server summary
    GetInfo,
    /// client sessions
    Sessions,
    /// cost groups
    Groups,
    /// peer servers
    Peers,
    /// add a peer by real name
    AddPeer {
        /// `host v1.7 s50002 t50001`
        real_name: String,
    },
    /// close sessions by id, group name or `all`
    Disconnect {
        /// ids, group names or `all`
        session_ids: Vec<String>,
    },
    /// toggle request logging of sessions, and/or change the log filter
    Log {
        /// ids, group names, `all`, `none` or `new`
        session_ids: Vec<String>,
        /// a new tracing filter (anode's extension)
        level: Option<String>,
    },
    /// replace the node URL (`""` = configured)
    DaemonUrl {
        /// the new URL(s)
        daemon_url: String,
    },
    /// history, UTXOs and balance of addresses or scripts
    Query {
        /// addresses, script hashes or hex scripts
        items: Vec<String>,
        /// most history and UTXO lines per item
        limit: usize,
    },
    /// force a reorg
    Reorg {
        /// blocks to undo
        count: u32,
    },
    /// largest memory consumers
    DebugMemusage {
        /// most rows
        limit: usize,
    },
    /// details of one session
    InspectSession {
        /// the session
        session_id: u64,
    },
    /// flush and shut down
    Stop,
}

impl Command {
    /// Every command name, for help and errors.
    pub const NAMES: &'static [&'static str] = &[
        "add_peer",
        "daemon_url",
        "debug_memusage",
        "disconnect",
        "getinfo",
        "groups",
        "inspect_session",
        "log",
        "peers",
        "query",
        "reorg",
        "sessions",
        "stop",
    ];

    /// Whether the command changes the server's state (such commands are logged at info).
    pub fn changes_state(&self) -> bool {
        !matches!(
            self,
            Command::GetInfo
                | Command::Sessions
                | Command::Groups
                | Command::Peers
                | Command::Query { .. }
                | Command::DebugMemusage { .. }
                | Command::InspectSession { .. }
        )
    }

    /// Parameter names of `method`, in positional order, or `None` for an unknown method.
    pub fn params(method: &str) -> Option<&'static [&'static str]> {
        Some(match method {
            "getinfo" | "sessions" | "groups" | "peers" | "stop" => &[],
            "add_peer" => &["real_name"],
            "disconnect" => &["session_ids"],
            "log" => &["session_ids", "level"],
            "daemon_url" => &["daemon_url"],
            "query" => &["items", "limit"],
            "reorg" => &["count"],
            "debug_memusage" | "debug_memusage_list_all_objects" => &["limit"],
            "inspect_session" => &["session_id"],
            _ => return None,
        })
    }

    /// Parses `method` with `params` (an object, an array, or absent).
    pub fn parse(method: &str, params: Option<&Value>) -> Result<Command, RpcError> {
        let names = Command::params(method).ok_or_else(|| RpcError {
            code: METHOD_NOT_FOUND,
            message: format!("unknown method \"{method}\""),
        })?;
        let args = Args::new(method, names, params)?;
        Ok(match method {
            "getinfo" => Command::GetInfo,
            "sessions" => Command::Sessions,
            "groups" => Command::Groups,
            "peers" => Command::Peers,
            "stop" => Command::Stop,
            "add_peer" => Command::AddPeer {
                real_name: args
                    .string("real_name")?
                    .ok_or_else(|| args.missing("real_name"))?,
            },
            "disconnect" => Command::Disconnect {
                session_ids: args
                    .id_list("session_ids")?
                    .ok_or_else(|| args.missing("session_ids"))?,
            },
            "log" => {
                let session_ids = args.id_list("session_ids")?.unwrap_or_default();
                let level = args.string("level")?;
                Command::Log { session_ids, level }
            }
            "daemon_url" => Command::DaemonUrl {
                daemon_url: args.string("daemon_url")?.unwrap_or_default(),
            },
            "query" => Command::Query {
                items: args
                    .string_list("items")?
                    .ok_or_else(|| args.missing("items"))?,
                limit: args.int("limit")?.unwrap_or(DEFAULT_QUERY_LIMIT as u64) as usize,
            },
            "reorg" => {
                let count = args.int("count")?.unwrap_or(u64::from(DEFAULT_REORG_COUNT));
                Command::Reorg {
                    count: u32::try_from(count).map_err(|_| {
                        RpcError::bad_request(format!("count {count} is too large"))
                    })?,
                }
            }
            "debug_memusage" | "debug_memusage_list_all_objects" => Command::DebugMemusage {
                limit: args.int("limit")?.unwrap_or(DEFAULT_MEMUSAGE_LIMIT as u64) as usize,
            },
            "inspect_session" => Command::InspectSession {
                session_id: args
                    .int("session_id")?
                    .ok_or_else(|| args.missing("session_id"))?,
            },
            _ => unreachable!("Command::params knows exactly the methods matched here"),
        })
    }
}

/// Parameters by name, whichever way they were sent.
struct Args<'a> {
    method: &'a str,
    values: Map<String, Value>,
}

impl<'a> Args<'a> {
    fn new(method: &'a str, names: &[&str], params: Option<&Value>) -> Result<Self, RpcError> {
        let mut values = Map::new();
        match params {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                if items.len() > names.len() {
                    return Err(RpcError::invalid_params(format!(
                        "{method} takes at most {} parameter{} ({}), got {}",
                        names.len(),
                        if names.len() == 1 { "" } else { "s" },
                        names.join(", "),
                        items.len()
                    )));
                }
                for (name, value) in names.iter().zip(items) {
                    values.insert((*name).to_string(), value.clone());
                }
            }
            Some(Value::Object(map)) => {
                for (name, value) in map {
                    if !names.contains(&name.as_str()) {
                        return Err(RpcError::invalid_params(format!(
                            "{method} has no parameter \"{name}\" (it takes: {})",
                            if names.is_empty() {
                                "none".to_string()
                            } else {
                                names.join(", ")
                            }
                        )));
                    }
                    values.insert(name.clone(), value.clone());
                }
            }
            Some(_) => {
                return Err(RpcError {
                    code: INVALID_REQUEST,
                    message: "params must be an array or an object".into(),
                })
            }
        }
        Ok(Args { method, values })
    }

    fn missing(&self, name: &str) -> RpcError {
        RpcError::invalid_params(format!("{} needs the parameter \"{name}\"", self.method))
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name).filter(|v| !v.is_null())
    }

    fn string(&self, name: &str) -> Result<Option<String>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(RpcError::bad_request(format!(
                "{name} must be a string, not {other}"
            ))),
        }
    }

    fn int(&self, name: &str) -> Result<Option<u64>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
                RpcError::bad_request(format!("{name} must be a non-negative integer, not {n}"))
            }),
            // electrumx_rpc's argparse already made ints; a hand-written request may send text.
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| {
                RpcError::bad_request(format!("{name} must be a non-negative integer, not {s:?}"))
            }),
            Some(other) => Err(RpcError::bad_request(format!(
                "{name} must be a non-negative integer, not {other}"
            ))),
        }
    }

    fn string_list(&self, name: &str) -> Result<Option<Vec<String>>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(RpcError::bad_request(format!(
                        "{name} must be a list of strings; {other} is not a string"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(RpcError::bad_request(format!("expected a list of {name}"))),
        }
    }

    /// A list of session ids, group names or keywords; numbers are accepted as ids.
    fn id_list(&self, name: &str) -> Result<Option<Vec<String>>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) if n.is_u64() => Ok(n.to_string()),
                    _ => Err(RpcError::bad_request("expected a list of session IDs")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(RpcError::bad_request("expected a list of session IDs")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn named_and_positional_params_parse_alike() {
        let named = Command::parse("query", Some(&json!({"items": ["a"], "limit": 5})));
        let positional = Command::parse("query", Some(&json!([["a"], 5])));
        let expected = Command::Query {
            items: vec!["a".into()],
            limit: 5,
        };
        assert_eq!(named, Ok(expected.clone()));
        assert_eq!(positional, Ok(expected));
    }

    #[test]
    fn defaults_follow_electrumx_rpc() {
        assert_eq!(
            Command::parse("reorg", None),
            Ok(Command::Reorg {
                count: DEFAULT_REORG_COUNT
            })
        );
        assert_eq!(
            Command::parse("query", Some(&json!({"items": []}))),
            Ok(Command::Query {
                items: vec![],
                limit: DEFAULT_QUERY_LIMIT
            })
        );
        assert_eq!(
            Command::parse("daemon_url", Some(&json!([]))),
            Ok(Command::DaemonUrl {
                daemon_url: String::new()
            })
        );
    }

    #[test]
    fn bad_arguments_are_reported() {
        let err = |m: &str, p: Value| Command::parse(m, Some(&p)).expect_err("must fail");
        assert_eq!(err("nope", json!([])).code, METHOD_NOT_FOUND);
        assert_eq!(err("getinfo", json!([1])).code, INVALID_PARAMS);
        assert_eq!(err("reorg", json!({"blocks": 2})).code, INVALID_PARAMS);
        assert_eq!(err("add_peer", json!({})).code, INVALID_PARAMS);
        let e = err("disconnect", json!({"session_ids": "3"}));
        assert_eq!(
            (e.code, e.message.as_str()),
            (BAD_REQUEST, "expected a list of session IDs")
        );
        assert_eq!(err("reorg", json!([-1])).code, BAD_REQUEST);
        assert_eq!(err("reorg", json!(["x"])).code, BAD_REQUEST);
        assert_eq!(err("reorg", json!([u64::MAX])).code, BAD_REQUEST);
        assert_eq!(err("query", json!([[1]])).code, BAD_REQUEST);
        assert_eq!(err("getinfo", json!("x")).code, INVALID_REQUEST);
    }

    #[test]
    fn every_listed_command_has_a_parameter_table() {
        for name in Command::NAMES {
            assert!(Command::params(name).is_some(), "{name}");
        }
    }

    #[test]
    fn session_ids_accept_numbers_and_names() {
        assert_eq!(
            Command::parse(
                "log",
                Some(&json!({"session_ids": [4, "all"], "level": "debug"}))
            ),
            Ok(Command::Log {
                session_ids: vec!["4".into(), "all".into()],
                level: Some("debug".into())
            })
        );
    }
}
