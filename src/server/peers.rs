//! The peer list served by `server.peers.subscribe` (docs/protocol.md,
//! `server.peers.subscribe`) and fed by configuration and `server.add_peer` (docs/protocol.md,
//! `server.add_peer`).
//!
//! Kept simple for now: configured peers plus `add_peer` entries that passed the checks of
//! `server.add_peer` are served as they are. Verifying peers by connecting to them
//! (docs/protocol.md, Peer discovery) and forgetting peers that stop answering are a later step.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};

/// One known server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEntry {
    /// host name or IP literal as advertised
    pub host: String,
    /// the IP address it was last seen at, if known
    pub ip: Option<IpAddr>,
    /// protocol_max it advertises (`1.7.0`)
    pub version: Option<String>,
    /// pruning depth, if it prunes
    pub pruning: Option<u64>,
    /// TLS port
    pub ssl_port: Option<u16>,
    /// TCP port
    pub tcp_port: Option<u16>,
    /// where it came from (`config`, `add_peer`, `admin`)
    pub source: &'static str,
    /// the outcome of the last verification (docs/protocol.md, Peer discovery): `Some(Ok(when))`
    /// or `Some(Err(why))`
    pub verified: Option<Result<std::time::SystemTime, String>>,
}

impl PeerEntry {
    /// Parses an ElectrumX "real name": `host [v1.7] [p100] [s[port]] [t[port]]`. A bare `s`
    /// or `t` means the coin's default port, which the caller supplies.
    pub fn from_real_name(
        text: &str,
        default_ports: (u16, u16),
        source: &'static str,
    ) -> Option<Self> {
        let mut parts = text.split_whitespace();
        let host = parts.next()?.to_string();
        let mut entry = PeerEntry {
            ip: host.parse().ok(),
            host,
            version: None,
            pruning: None,
            ssl_port: None,
            tcp_port: None,
            source,
            verified: None,
        };
        for part in parts {
            let (letter, rest) = part.split_at(1);
            match letter {
                "v" => entry.version = Some(rest.to_string()),
                "p" => entry.pruning = rest.parse().ok(),
                "s" => entry.ssl_port = Some(rest.parse().unwrap_or(default_ports.1)),
                "t" => entry.tcp_port = Some(rest.parse().unwrap_or(default_ports.0)),
                _ => {}
            }
        }
        Some(entry)
    }

    /// The `[address, host, features]` triple of `server.peers.subscribe`.
    pub fn to_triple(&self) -> Value {
        let mut features = Vec::new();
        features.push(format!("v{}", self.version.as_deref().unwrap_or("1.4")));
        if let Some(p) = self.pruning {
            features.push(format!("p{p}"));
        }
        if let Some(s) = self.ssl_port {
            features.push(format!("s{s}"));
        }
        if let Some(t) = self.tcp_port {
            features.push(format!("t{t}"));
        }
        let address = match (&self.ip, self.host.ends_with(".onion")) {
            (Some(ip), false) => ip.to_string(),
            _ => self.host.clone(),
        };
        json!([address, self.host, features])
    }
}

/// Known peers and the `add_peer` rate limit.
#[derive(Debug, Default)]
pub struct PeerList {
    peers: Mutex<Vec<PeerEntry>>,
    recent_calls: Mutex<HashMap<String, Instant>>,
}

/// How long an `add_peer` bucket stays closed after a call (docs/protocol.md, `server.add_peer`).
const ADD_PEER_INTERVAL: Duration = Duration::from_secs(600);

impl PeerList {
    /// A list of the configured peers (real names; bare ports default to 50001/50002).
    pub fn new(configured: &[String]) -> Self {
        let list = PeerList::default();
        for name in configured {
            if let Some(p) = PeerEntry::from_real_name(name, (50001, 50002), "config") {
                list.add(p);
            }
        }
        list
    }

    /// Adds or replaces (by host) a peer.
    pub fn add(&self, entry: PeerEntry) {
        let mut peers = self.peers.lock();
        peers.retain(|p| !p.host.eq_ignore_ascii_case(&entry.host));
        peers.push(entry);
    }

    /// Every peer.
    pub fn entries(&self) -> Vec<PeerEntry> {
        self.peers.lock().clone()
    }

    /// The `server.peers.subscribe` answer: every peer not found bad by its last
    /// verification.
    pub fn subscribe_result(&self) -> Value {
        Value::Array(
            self.peers
                .lock()
                .iter()
                .filter(|p| !matches!(p.verified, Some(Err(_))))
                .map(PeerEntry::to_triple)
                .collect(),
        )
    }

    /// Records the outcome of verifying `host`.
    pub fn set_verified(&self, host: &str, outcome: Result<std::time::SystemTime, String>) {
        if let Some(p) = self
            .peers
            .lock()
            .iter_mut()
            .find(|p| p.host.eq_ignore_ascii_case(host))
        {
            p.verified = Some(outcome);
        }
    }

    /// The rate-limit bucket of a host: its last two DNS labels, one shared bucket for IP
    /// literals.
    fn bucket(host: &str) -> String {
        if host.parse::<IpAddr>().is_ok() {
            return "ip-literal".into();
        }
        let labels: Vec<&str> = host.trim_end_matches('.').rsplit('.').take(2).collect();
        labels.into_iter().rev().collect::<Vec<_>>().join(".")
    }

    /// `server.add_peer` from a client at `caller` (docs/protocol.md, `server.add_peer`): true
    /// when tentatively accepted.
    pub async fn add_peer(&self, enabled: bool, caller: SocketAddr, features: &Value) -> bool {
        if !enabled {
            return false;
        }
        let Some((host, ports)) = features
            .get("hosts")
            .and_then(Value::as_object)
            .and_then(|h| h.iter().next())
        else {
            return false;
        };
        // Any call for a bucket, accepted or not, closes it for everyone for a while.
        {
            let mut calls = self.recent_calls.lock();
            let now = Instant::now();
            calls.retain(|_, t| now.duration_since(*t) < ADD_PEER_INTERVAL);
            let bucket = Self::bucket(host);
            if calls.contains_key(&bucket) {
                return false;
            }
            calls.insert(bucket, now);
        }
        if host.ends_with(".onion") {
            // Onion peers need the Tor proxy to verify; not supported yet.
            return false;
        }
        let resolved = match tokio::net::lookup_host((host.as_str(), 80)).await {
            Ok(mut addrs) => addrs.next().map(|a| a.ip()),
            Err(_) => None,
        };
        let caller_ip = match caller.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            ip => ip,
        };
        if resolved != Some(caller_ip) {
            return false;
        }
        let port = |key: &str| {
            ports
                .get(key)
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
        };
        let pruning = features.get("pruning").and_then(Value::as_u64);
        self.add(PeerEntry {
            host: host.clone(),
            ip: Some(caller_ip),
            version: features
                .get("protocol_max")
                .and_then(Value::as_str)
                .map(String::from),
            pruning,
            ssl_port: port("ssl_port"),
            tcp_port: port("tcp_port"),
            source: "add_peer",
            verified: None,
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_names_and_triples() {
        let p = PeerEntry::from_real_name(
            "electrum.example.org v1.7.0 s t50001",
            (50001, 50002),
            "config",
        )
        .unwrap();
        assert_eq!(
            p.to_triple(),
            json!([
                "electrum.example.org",
                "electrum.example.org",
                ["v1.7.0", "s50002", "t50001"]
            ])
        );
        let p =
            PeerEntry::from_real_name("203.0.113.7 v1.6 p100 t", (50001, 50002), "config").unwrap();
        assert_eq!(
            p.to_triple(),
            json!(["203.0.113.7", "203.0.113.7", ["v1.6", "p100", "t50001"]])
        );
        assert_eq!(PeerList::bucket("a.b.example.org"), "example.org");
        assert_eq!(PeerList::bucket("10.0.0.1"), "ip-literal");
    }

    #[tokio::test]
    async fn add_peer_checks_the_caller_and_rate_limits() {
        let list = PeerList::default();
        let caller: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let features =
            json!({"hosts": {"127.0.0.1": {"tcp_port": 50001}}, "protocol_max": "1.7.0"});
        assert!(!list.add_peer(false, caller, &features).await);
        assert!(list.add_peer(true, caller, &features).await);
        assert_eq!(list.entries().len(), 1);
        // The bucket is now closed for 600 s.
        assert!(!list.add_peer(true, caller, &features).await);
        let other = PeerList::default();
        let stranger: SocketAddr = "127.0.0.2:5000".parse().unwrap();
        assert!(!other.add_peer(true, stranger, &features).await);
        assert!(!other.add_peer(true, caller, &json!({"hosts": {}})).await);
    }
}
