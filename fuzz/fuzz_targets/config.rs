//! The configuration loader `anode` runs at start: a TOML file's text and a set of environment
//! variables layered over the defaults, typed and validated, then what start-up derives from
//! them (the server's settings, the coin, the node URLs and their client). The TOML is raw
//! text or built from the option table's keys with arbitrary values; the variables are the
//! table's and ElectrumX's names with arbitrary values. Invariants: no panic; every error is
//! a non-empty message without raw control characters that names what is wrong.
#![no_main]
use std::collections::HashMap;
use std::path::Path;

use anode::config::reference::{unsupported_set, ELECTRUMX_UNSUPPORTED};
use anode::config::{Config, RawConfig, OPTIONS};
use anode::daemon::{daemon_urls, hide_credentials, RpcDaemon, RpcDaemonOptions};
use anode::server::ServerConfig;
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    file: Option<File>,
    env: Vec<(u16, String)>,
}

#[derive(Arbitrary, Debug)]
enum File {
    Text(String),
    Table(Vec<(u16, Value)>),
}

#[derive(Arbitrary, Debug)]
enum Value {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<String>),
    Ints(Vec<i64>),
}

impl Value {
    fn toml(&self) -> String {
        let quote = |s: &str| toml_string(s);
        match self {
            Value::Text(s) => quote(s),
            Value::Int(i) => i.to_string(),
            Value::Float(f) if f.is_finite() => format!("{f:?}"),
            Value::Float(f) if f.is_nan() => "nan".into(),
            Value::Float(f) => if *f > 0.0 { "inf" } else { "-inf" }.into(),
            Value::Bool(b) => b.to_string(),
            Value::List(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(|s| quote(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::Ints(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Every environment variable name the loader reads, then ElectrumX's unsupported ones.
fn env_names() -> Vec<&'static str> {
    OPTIONS
        .iter()
        .flat_map(|o| o.env.iter().copied())
        .chain(ELECTRUMX_UNSUPPORTED.iter().map(|u| u.name))
        .collect()
}

fn check_message(text: &str) {
    assert!(!text.trim().is_empty(), "an empty error message");
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "raw control characters in an error message: {text:?}"
    );
}

fuzz_target!(|input: Input| {
    let names = env_names();
    let env: HashMap<&str, String> = input
        .env
        .iter()
        .map(|(i, v)| (names[*i as usize % names.len()], v.clone()))
        .collect();
    let lookup = |name: &str| env.get(name).cloned();
    let path = Path::new("/etc/anode/anode.toml");
    let mut raw = RawConfig::defaults();
    if let Some(file) = &input.file {
        let text = match file {
            File::Text(text) => text.clone(),
            File::Table(entries) => entries
                .iter()
                .map(|(i, v)| {
                    format!(
                        "{} = {}\n",
                        OPTIONS[*i as usize % OPTIONS.len()].key,
                        v.toml()
                    )
                })
                .collect(),
        };
        raw = match raw.with_toml(path, &text) {
            Ok(raw) => raw,
            Err(e) => {
                let message = e.to_string();
                check_message(&message);
                assert!(message.contains("/etc/anode/anode.toml"), "{message}");
                return;
            }
        };
    }
    raw = raw.with_env(lookup);
    let _ = unsupported_set(lookup);
    let config = match Config::from_raw(&raw) {
        Ok(config) => config,
        Err(e) => {
            check_message(&e.to_string());
            return;
        }
    };
    let server = ServerConfig::from_config(&config);
    assert!(server.limits.max_send >= 350_000);
    if let Err(e) = config.db_directory() {
        check_message(&e.to_string());
    }
    let Ok(coin) = anode_coins::lookup(&config.coin, &config.network) else {
        return;
    };
    let urls = daemon_urls(&config, coin.as_ref());
    for url in &urls {
        let _ = hide_credentials(url);
    }
    if !urls.is_empty() {
        match RpcDaemon::new(RpcDaemonOptions {
            urls,
            ..RpcDaemonOptions::default()
        }) {
            Ok(daemon) => assert!(!daemon.current_url().is_empty()),
            Err(e) => check_message(&e.to_string()),
        }
    }
});
