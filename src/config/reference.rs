//! The configuration reference, made from the option table: the markdown table of
//! `docs/configuration.md` (`anode config reference`), a commented example file
//! (`anode config example`), and ElectrumX's environment variables that anode does not take.

use std::fmt::Write as _;

use super::OPTIONS;

/// Every environment variable ElectrumX's server reads (its `Env` class), so the reference can
/// say which of an option's names is ElectrumX's.
pub const ELECTRUMX_ENV: &[&str] = &[
    "COIN",
    "NET",
    "DB_DIRECTORY",
    "DB_ENGINE",
    "DAEMON_URL",
    "SERVICES",
    "REPORT_SERVICES",
    "SSL_CERTFILE",
    "SSL_KEYFILE",
    "PEER_DISCOVERY",
    "PEER_ANNOUNCE",
    "FORCE_PROXY",
    "TOR_PROXY_HOST",
    "TOR_PROXY_PORT",
    "BANNER_FILE",
    "TOR_BANNER_FILE",
    "ANON_LOGS",
    "LOG_SESSIONS",
    "LOG_LEVEL",
    "DONATION_ADDRESS",
    "DROP_CLIENT",
    "BLACKLIST_URL",
    "CACHE_MB",
    "REORG_LIMIT",
    "DAEMON_POLL_INTERVAL_BLOCKS",
    "DAEMON_POLL_INTERVAL_MEMPOOL",
    "MAX_SEND",
    "MAX_RECV",
    "MAX_SESSIONS",
    "COST_SOFT_LIMIT",
    "COST_HARD_LIMIT",
    "BANDWIDTH_UNIT_COST",
    "INITIAL_CONCURRENT",
    "REQUEST_SLEEP",
    "REQUEST_TIMEOUT",
    "SESSION_TIMEOUT",
    "SESSION_GROUP_BY_SUBNET_IPV4",
    "SESSION_GROUP_BY_SUBNET_IPV6",
    "ALLOW_ROOT",
    "EVENT_LOOP_POLICY",
    // obsolete in ElectrumX 2.0 (it refuses to start with them); anode accepts and ignores them
    "MAX_SUBS",
    "MAX_SESSION_SUBS",
];

/// An ElectrumX environment variable anode's server does not read, and what to do instead.
#[derive(Debug, Clone, Copy)]
pub struct Unsupported {
    /// the variable
    pub name: &'static str,
    /// what anode does about it
    pub instead: &'static str,
}

/// ElectrumX's variables (current and obsolete) that anode ignores. The server logs a warning
/// naming each one set in its environment ([`unsupported_set`]).
pub const ELECTRUMX_UNSUPPORTED: &[Unsupported] = &[
    Unsupported {
        name: "TOR_BANNER_FILE",
        instead: "no separate banner for Tor clients: every client gets `banner_file`",
    },
    Unsupported {
        name: "ANON_LOGS",
        instead: "no log anonymisation switch",
    },
    Unsupported {
        name: "LOG_SESSIONS",
        instead: "no periodic session summary in the log: use `anode rpc sessions` or the metrics",
    },
    Unsupported {
        name: "DROP_CLIENT",
        instead: "no client-name filter: every client name is accepted",
    },
    Unsupported {
        name: "BLACKLIST_URL",
        instead: "no peer blacklist download (docs/peers.md)",
    },
    Unsupported {
        name: "SESSION_GROUP_BY_SUBNET_IPV4",
        instead: "cost groups are fixed at /24 for IPv4",
    },
    Unsupported {
        name: "SESSION_GROUP_BY_SUBNET_IPV6",
        instead: "cost groups are fixed at /48 for IPv6",
    },
    Unsupported {
        name: "ALLOW_ROOT",
        instead:
            "anode does not refuse to run as root; run it as its own user (contrib/anode.service)",
    },
    Unsupported {
        name: "EVENT_LOOP_POLICY",
        instead: "a Python setting; anode runs on tokio",
    },
    Unsupported {
        name: "MAX_SUBSCRIPTIONS",
        instead: "obsolete in ElectrumX too; the cost limits govern subscriptions",
    },
    Unsupported {
        name: "BANDWIDTH_LIMIT",
        instead: "obsolete in ElectrumX too; see `bandwidth_unit_cost`",
    },
    Unsupported {
        name: "HOST",
        instead: "obsolete in ElectrumX too: use `services` (SERVICES)",
    },
    Unsupported {
        name: "TCP_PORT",
        instead: "obsolete in ElectrumX too: use `services` (SERVICES)",
    },
    Unsupported {
        name: "SSL_PORT",
        instead: "obsolete in ElectrumX too: use `services` (SERVICES)",
    },
    Unsupported {
        name: "REPORT_HOST",
        instead: "obsolete in ElectrumX too: use `report_services` (REPORT_SERVICES)",
    },
    Unsupported {
        name: "REPORT_TCP_PORT",
        instead: "obsolete in ElectrumX too: use `report_services` (REPORT_SERVICES)",
    },
    Unsupported {
        name: "REPORT_SSL_PORT",
        instead: "obsolete in ElectrumX too: use `report_services` (REPORT_SERVICES)",
    },
    Unsupported {
        name: "REPORT_HOST_TOR",
        instead: "obsolete in ElectrumX too: use `report_services` (REPORT_SERVICES)",
    },
    Unsupported {
        name: "REPORT_TCP_PORT_TOR",
        instead: "obsolete in ElectrumX too: use `report_services` (REPORT_SERVICES)",
    },
    Unsupported {
        name: "REPORT_SSL_PORT_TOR",
        instead: "obsolete in ElectrumX too: use `report_services` (REPORT_SERVICES)",
    },
];

/// Environment variables read by `anode rpc` (as ElectrumX's `electrumx_rpc` reads them), not by
/// the server.
pub const RPC_CLIENT_ENV: &[&str] = &["RPC_HOST", "RPC_PORT"];

/// The unsupported ElectrumX variables set in the environment `lookup` reads.
pub fn unsupported_set(lookup: impl Fn(&str) -> Option<String>) -> Vec<&'static Unsupported> {
    ELECTRUMX_UNSUPPORTED
        .iter()
        .filter(|u| lookup(u.name).is_some())
        .collect()
}

fn code(text: &str) -> String {
    format!("`{text}`")
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The option table as markdown: one row per option.
pub fn options_markdown() -> String {
    let mut out = String::from(
        "| TOML key | ElectrumX variable | other variables | flag | default | meaning |\n\
         |---|---|---|---|---|---|\n",
    );
    for o in OPTIONS {
        let electrumx = o.env.iter().find(|e| ELECTRUMX_ENV.contains(e));
        let others: Vec<String> = o
            .env
            .iter()
            .filter(|e| Some(*e) != electrumx)
            .map(|e| code(e))
            .collect();
        let default = match o.default {
            None => "—".to_string(),
            Some("") => "empty".to_string(),
            Some(d) => code(d),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            code(o.key),
            electrumx.map_or_else(|| "—".to_string(), |e| code(e)),
            if others.is_empty() {
                "—".to_string()
            } else {
                others.join(", ")
            },
            code(&format!("--{}", o.flag)),
            cell(&default),
            cell(o.help),
        );
    }
    out
}

/// ElectrumX's variables anode does not take, as markdown.
pub fn unsupported_markdown() -> String {
    let mut out = String::from("| ElectrumX variable | in anode |\n|---|---|\n");
    for u in ELECTRUMX_UNSUPPORTED {
        let _ = writeln!(out, "| {} | {} |", code(u.name), cell(u.instead));
    }
    out
}

/// The whole generated reference: the option table, then the unsupported variables.
pub fn markdown() -> String {
    format!(
        "{}\nElectrumX variables anode does not read (a warning names each one set):\n\n{}",
        options_markdown(),
        unsupported_markdown()
    )
}

/// A configuration file with every option commented out at its default.
pub fn example_toml() -> String {
    let mut out = String::from(
        "# anode.toml: every option, commented out at its default (docs/configuration.md).\n\
         # Sources, weakest first: this file, environment variables, command-line flags.\n",
    );
    for o in OPTIONS {
        let _ = write!(
            out,
            "\n# {}\n# env: {}, flag: --{}\n",
            o.help,
            o.env.join(", "),
            o.flag
        );
        match o.default {
            Some(d) => {
                let value = if let Ok(n) = d.parse::<i64>() {
                    toml::Value::Integer(n)
                } else if let Ok(b) = d.parse::<bool>() {
                    toml::Value::Boolean(b)
                } else {
                    toml::Value::String(d.to_string())
                };
                let _ = writeln!(out, "#{} = {value}", o.key);
            }
            None => {
                let _ = writeln!(out, "#{} =", o.key);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_electrumx_variable_is_an_option_or_listed_as_unsupported() {
        for name in ELECTRUMX_ENV {
            let option = OPTIONS.iter().any(|o| o.env.contains(name));
            let unsupported = ELECTRUMX_UNSUPPORTED.iter().any(|u| u.name == *name);
            assert!(
                option ^ unsupported,
                "{name}: option {option}, unsupported {unsupported}"
            );
        }
        for u in ELECTRUMX_UNSUPPORTED {
            assert!(
                !OPTIONS.iter().any(|o| o.env.contains(&u.name)),
                "{}",
                u.name
            );
        }
    }

    #[test]
    fn the_table_has_a_row_per_option_and_the_example_parses() {
        let table = options_markdown();
        assert_eq!(table.lines().count(), OPTIONS.len() + 2);
        let uncommented: String = example_toml()
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| {
                l.split_once(" = ")
                    .is_some_and(|(key, _)| OPTIONS.iter().any(|o| o.key == key))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed: toml::Table = uncommented.parse().expect("the example's values are TOML");
        assert_eq!(
            parsed.len(),
            OPTIONS.iter().filter(|o| o.default.is_some()).count()
        );
    }

    #[test]
    fn set_unsupported_variables_are_named() {
        let set = unsupported_set(|n| (n == "ANON_LOGS" || n == "COIN").then(|| "1".into()));
        assert_eq!(set.len(), 1);
        assert_eq!(set[0].name, "ANON_LOGS");
    }
}
