//! Configuration: parsed once into a validated [`Config`].
//!
//! Sources, weakest first: built-in defaults, the TOML file, environment variables (ElectrumX's
//! names accepted, so an ElectrumX operator's environment works unchanged), command-line flags.
//! Every option is declared once in [`options::OPTIONS`].

pub mod options;
pub mod reference;
mod services;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use options::{OptionSpec, OPTIONS};
pub use services::{Service, ServiceKind};

/// Where a value came from, for error messages and `anode config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// the option's default
    Default,
    /// the TOML file
    File(PathBuf),
    /// an environment variable
    Env(&'static str),
    /// a command-line flag
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(name) => write!(f, "environment variable {name}"),
            Source::Flag(flag) => write!(f, "flag --{flag}"),
        }
    }
}

/// A configuration error an operator can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value that does not parse.
    #[error("{key} = {value:?} (from {origin}): {reason}")]
    Invalid {
        /// option key
        key: &'static str,
        /// the raw value
        value: String,
        /// where it came from
        origin: Source,
        /// why it is wrong
        reason: String,
    },
    /// A required option that no source set.
    #[error("{key} is required: set it in the config file, with {env}, or with --{flag}")]
    Missing {
        /// option key
        key: &'static str,
        /// its main environment variable
        env: &'static str,
        /// its flag
        flag: &'static str,
    },
    /// The config file cannot be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// the file
        path: PathBuf,
        /// what went wrong
        reason: String,
    },
}

/// Raw option values with their sources, before typing.
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    values: BTreeMap<&'static str, (String, Source)>,
}

impl RawConfig {
    /// Defaults only.
    pub fn defaults() -> Self {
        let mut raw = RawConfig::default();
        for o in OPTIONS {
            if let Some(d) = o.default {
                raw.values.insert(o.key, (d.to_string(), Source::Default));
            }
        }
        raw
    }

    /// Layers a TOML file's values on top. Unknown keys are an error: a typo must not be
    /// silently ignored.
    pub fn with_file(self, path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        self.with_toml(path, &text)
    }

    /// Layers the values of `text`, a TOML file's contents, on top; `path` names the file in
    /// errors and sources.
    pub fn with_toml(mut self, path: &Path, text: &str) -> Result<Self, ConfigError> {
        let file_err = |reason: String| ConfigError::File {
            path: path.to_path_buf(),
            reason,
        };
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| file_err(escape_controls(&e.to_string())))?;
        for (key, value) in table {
            let spec = options::spec(&key).ok_or_else(|| {
                file_err(format!(
                    "unknown option `{key}` (see docs/configuration.md)"
                ))
            })?;
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| match v {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            self.values
                .insert(spec.key, (text, Source::File(path.to_path_buf())));
        }
        Ok(self)
    }

    /// Layers environment variables on top (`lookup` is `std::env::var` outside tests).
    pub fn with_env(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        for o in OPTIONS {
            // The first name of the list wins: ElectrumX's, where it has one.
            if let Some((name, value)) = o.env.iter().find_map(|n| lookup(n).map(|v| (*n, v))) {
                self.values.insert(o.key, (value, Source::Env(name)));
            }
        }
        self
    }

    /// Layers command-line values (by TOML key) on top.
    pub fn with_flags<'a>(mut self, flags: impl IntoIterator<Item = (&'a str, String)>) -> Self {
        for (key, value) in flags {
            if let Some(o) = options::spec(key) {
                self.values.insert(o.key, (value, Source::Flag(o.flag)));
            }
        }
        self
    }

    /// The raw value and source of `key`.
    pub fn get(&self, key: &str) -> Option<&(String, Source)> {
        self.values.get(key)
    }

    /// Every set value, for `anode config`.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str, &Source)> {
        self.values.iter().map(|(k, (v, s))| (*k, v.as_str(), s))
    }

    fn parse<T: std::str::FromStr>(&self, key: &'static str) -> Result<Option<T>, ConfigError>
    where
        T::Err: fmt::Display,
    {
        match self.values.get(key) {
            None => Ok(None),
            Some((v, _)) if v.trim().is_empty() && key != "donation_address" => Ok(None),
            Some((v, source)) => {
                v.trim()
                    .parse::<T>()
                    .map(Some)
                    .map_err(|e| ConfigError::Invalid {
                        key,
                        value: v.clone(),
                        origin: source.clone(),
                        reason: escape_controls(&e.to_string()),
                    })
            }
        }
    }

    fn required<T: std::str::FromStr>(&self, key: &'static str) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.parse(key)?.ok_or_else(|| {
            let o = options::spec(key).expect("required options are in the table");
            ConfigError::Missing {
                key,
                env: o.env[0],
                flag: o.flag,
            }
        })
    }

    fn invalid(&self, key: &'static str, reason: impl Into<String>) -> ConfigError {
        let (value, source) = self
            .values
            .get(key)
            .cloned()
            .unwrap_or((String::new(), Source::Default));
        ConfigError::Invalid {
            key,
            value,
            origin: source,
            // Reasons quote the value; the value itself is shown escaped (`{value:?}`).
            reason: escape_controls(&reason.into()),
        }
    }
}

/// `max_send` for a coin that names none (ElectrumX 2.0's default; docs/protocol.md, Response
/// size).
pub const DEFAULT_MAX_SEND: usize = 8_100_000;

/// How blocks are fetched from the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockSource {
    /// REST binary where the node offers it, else JSON-RPC hex
    Auto,
    /// `getblock HASH 0`
    Rpc,
    /// `/rest/block/HASH.bin`
    Rest,
    /// the node's P2P port
    P2p,
}

impl std::str::FromStr for BlockSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(BlockSource::Auto),
            "rpc" | "json" | "hex" => Ok(BlockSource::Rpc),
            "rest" => Ok(BlockSource::Rest),
            "p2p" => Ok(BlockSource::P2p),
            _ => Err("expected auto, rpc, rest or p2p".into()),
        }
    }
}

/// Peer discovery mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerDiscovery {
    /// discover and serve peers
    On,
    /// neither
    Off,
    /// only announce ourselves
    SelfOnly,
}

impl std::str::FromStr for PeerDiscovery {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "on" | "true" | "1" | "yes" => Ok(PeerDiscovery::On),
            "off" | "false" | "0" | "no" | "" => Ok(PeerDiscovery::Off),
            "self" => Ok(PeerDiscovery::SelfOnly),
            _ => Err("expected on, off or self".into()),
        }
    }
}

/// Session limits and ElectrumX's cost model (docs/protocol.md, Limits).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// most sessions at once
    pub max_sessions: usize,
    /// largest response, bytes
    pub max_send: usize,
    /// largest request, bytes
    pub max_recv: usize,
    /// global script subscription limit
    pub max_subs: usize,
    /// per-session script subscription limit
    pub max_session_subs: usize,
    /// idle timeout, seconds
    pub session_timeout_secs: u64,
    /// per-request timeout, seconds
    pub request_timeout_secs: u64,
    /// cost above which requests are slowed
    pub cost_soft_limit: f64,
    /// cost at which the session is dropped
    pub cost_hard_limit: f64,
    /// delay at the hard limit, ms
    pub request_sleep_ms: u64,
    /// concurrent requests before throttling
    pub initial_concurrent: usize,
    /// bytes per cost unit
    pub bandwidth_unit_cost: f64,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// coin name as given (resolved by the coin registry)
    pub coin: String,
    /// network name as given
    pub network: String,
    /// node URLs, in failover order
    pub daemon_urls: Vec<String>,
    /// Bitcoin Core cookie file
    pub daemon_cookie_file: Option<PathBuf>,
    /// database directory
    pub db_directory: Option<PathBuf>,
    /// engine name, if chosen
    pub db_engine: Option<String>,
    /// listeners
    pub services: Vec<Service>,
    /// advertised services
    pub report_services: Vec<Service>,
    /// cache budget, MB
    pub cache_mb: u64,
    /// reorg limit override
    pub reorg_limit: Option<u32>,
    /// block source
    pub block_source: BlockSource,
    /// the node's P2P address for the P2P block source
    pub daemon_p2p_addr: Option<String>,
    /// ZMQ hashblock endpoint
    pub zmq_block_url: Option<String>,
    /// tip poll interval, ms
    pub poll_interval_blocks_ms: u64,
    /// mempool poll interval, ms
    pub poll_interval_mempool_ms: u64,
    /// session limits
    pub limits: Limits,
    /// banner file
    pub banner_file: Option<PathBuf>,
    /// donation address
    pub donation_address: String,
    /// pad TCP/SSL output (docs/protocol.md, Padding)
    pub pad_tcp: bool,
    /// peer discovery
    pub peer_discovery: PeerDiscovery,
    /// announce to peers
    pub peer_announce: bool,
    /// extra peers to seed discovery with (ElectrumX real names), besides the coin's list
    pub peers: Vec<String>,
    /// Tor proxy
    pub tor_proxy: Option<(String, u16)>,
    /// reach every peer through the Tor proxy (ElectrumX's FORCE_PROXY)
    pub force_proxy: bool,
    /// TLS certificate chain
    pub ssl_certfile: Option<PathBuf>,
    /// TLS key
    pub ssl_keyfile: Option<PathBuf>,
    /// Prometheus endpoint
    pub metrics_addr: Option<String>,
    /// log filter
    pub log_level: String,
}

impl Config {
    /// Types and validates raw values.
    pub fn from_raw(raw: &RawConfig) -> Result<Config, ConfigError> {
        let list = |key: &'static str| -> Vec<String> {
            raw.get(key)
                .map(|(v, _)| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        let services = |key: &'static str| -> Result<Vec<Service>, ConfigError> {
            list(key)
                .iter()
                .map(|s| s.parse::<Service>().map_err(|e| raw.invalid(key, e)))
                .collect()
        };
        let tor_proxy = match (
            raw.parse::<String>("tor_proxy_host")?,
            raw.parse::<u16>("tor_proxy_port")?,
        ) {
            (Some(h), p) => Some((h, p.unwrap_or(9050))),
            (None, _) => None,
        };
        let cost_soft_limit: f64 = raw.required("cost_soft_limit")?;
        let mut cost_hard_limit: f64 = raw.required("cost_hard_limit")?;
        // ElectrumX's rules (env.py): a hard limit below the soft one is refused; equal limits
        // above zero get the hard one raised by 1; both zero turn throttling off.
        if cost_hard_limit < cost_soft_limit {
            return Err(raw.invalid(
                "cost_hard_limit",
                format!("must be >= cost_soft_limit ({cost_soft_limit})"),
            ));
        }
        if cost_hard_limit == cost_soft_limit && cost_soft_limit > 0.0 {
            tracing::info!(
                cost_soft_limit,
                "cost_hard_limit equals cost_soft_limit: raising cost_hard_limit by 1, as ElectrumX does"
            );
            cost_hard_limit = cost_soft_limit + 1.0;
        }
        let coin: String = raw.required("coin")?;
        let network: String = raw.required("network")?;
        // As ElectrumX: the coin's own default (larger for AuxPoW coins, whose headers are).
        let max_send = match raw.parse("max_send")? {
            Some(bytes) => bytes,
            None => anode_coins::lookup(&coin, &network)
                .map_or(DEFAULT_MAX_SEND, |c| c.params().default_max_send),
        };
        let config = Config {
            coin,
            network,
            daemon_urls: list("daemon_url"),
            daemon_cookie_file: raw.parse("daemon_cookie_file")?,
            db_directory: raw.parse("db_directory")?,
            db_engine: raw
                .parse::<String>("db_engine")?
                .map(|e| e.to_ascii_lowercase()),
            services: services("services")?,
            report_services: services("report_services")?,
            cache_mb: raw.required("cache_mb")?,
            reorg_limit: raw.parse("reorg_limit")?,
            block_source: raw.required("block_source")?,
            daemon_p2p_addr: raw.parse("daemon_p2p_addr")?,
            zmq_block_url: raw.parse("zmq_block_url")?,
            poll_interval_blocks_ms: raw.required("poll_interval_blocks_ms")?,
            poll_interval_mempool_ms: raw.required("poll_interval_mempool_ms")?,
            limits: Limits {
                max_sessions: raw.required("max_sessions")?,
                max_send,
                max_recv: raw.required("max_recv")?,
                max_subs: raw.required("max_subs")?,
                max_session_subs: raw.required("max_session_subs")?,
                session_timeout_secs: raw.required("session_timeout")?,
                request_timeout_secs: raw.required("request_timeout")?,
                cost_soft_limit,
                cost_hard_limit,
                request_sleep_ms: raw.required("request_sleep")?,
                initial_concurrent: raw.required("initial_concurrent")?,
                bandwidth_unit_cost: raw.required("bandwidth_unit_cost")?,
            },
            banner_file: raw.parse("banner_file")?,
            donation_address: raw.parse("donation_address")?.unwrap_or_default(),
            pad_tcp: raw.required("pad_tcp")?,
            peer_discovery: raw.required("peer_discovery")?,
            peer_announce: parse_bool(raw, "peer_announce")?,
            peers: list("peers"),
            tor_proxy,
            force_proxy: parse_bool(raw, "force_proxy")?,
            ssl_certfile: raw.parse("ssl_certfile")?,
            ssl_keyfile: raw.parse("ssl_keyfile")?,
            metrics_addr: raw.parse("metrics_addr")?,
            log_level: raw.required("log_level")?,
        };
        let needs_tls = config.services.iter().any(|s| s.kind.is_tls());
        if needs_tls && (config.ssl_certfile.is_none() || config.ssl_keyfile.is_none()) {
            return Err(raw.invalid(
                "services",
                "ssl:// and wss:// services need ssl_certfile and ssl_keyfile",
            ));
        }
        if config.force_proxy && config.tor_proxy.is_none() {
            return Err(raw.invalid(
                "force_proxy",
                "needs tor_proxy_host: every peer connection goes through the proxy",
            ));
        }
        if config.limits.max_send < 350_000 {
            // ElectrumX's floor: smaller limits break ordinary wallet requests.
            return Err(raw.invalid("max_send", "must be at least 350000"));
        }
        Ok(config)
    }

    /// The database directory, or an error naming how to set it.
    pub fn db_directory(&self) -> Result<&Path, ConfigError> {
        self.db_directory.as_deref().ok_or(ConfigError::Missing {
            key: "db_directory",
            env: "DB_DIRECTORY",
            flag: "db-directory",
        })
    }
}

/// `text` with control characters other than newline and tab escaped: the TOML parser and
/// the value parsers quote what they refuse, and a file's or a variable's raw bytes must not
/// reach the terminal or the log.
fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                c.escape_default().collect()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn parse_bool(raw: &RawConfig, key: &'static str) -> Result<bool, ConfigError> {
    match raw.get(key).map(|(v, _)| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) => match v.as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" | "" => Ok(false),
            _ => Err(raw.invalid(key, "expected true or false")),
        },
    }
}

#[cfg(test)]
mod tests;
