//! One known peer server: what it advertises (host, ports, protocol, pruning), where we heard of
//! it, and how its checks went. Parsing of the three ways peers are described to us lives here:
//! ElectrumX "real names" (coin lists, `PEERS`, admin `add_peer`), `server.features` objects
//! (`server.add_peer`, verification) and `server.peers.subscribe` triples.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::admin::{PeerInfo, PeerStatus};

/// A moment, kept both monotonic (for scheduling) and as wall-clock seconds (for operators).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    pub at: Instant,
    pub unix: u64,
}

impl Stamp {
    pub fn now() -> Self {
        Stamp {
            at: Instant::now(),
            unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }
}

/// Where a peer was learnt from, shown by admin `peers` as ElectrumX does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PeerSource {
    /// the coin's default list
    Coins,
    /// the operator's `peers` option or admin `add_peer`
    Config,
    /// one of our own advertised identities
    Myself,
    /// `server.add_peer` from a client at this address
    AddPeer(IpAddr),
    /// the `server.peers.subscribe` answer of this peer host
    Peer(String),
}

impl std::fmt::Display for PeerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerSource::Coins => f.write_str("coins"),
            PeerSource::Config => f.write_str("config"),
            PeerSource::Myself => f.write_str("self"),
            PeerSource::AddPeer(ip) => write!(f, "add_peer {ip}"),
            PeerSource::Peer(host) => write!(f, "peer {host}"),
        }
    }
}

/// What a peer advertises about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Advert {
    /// host name or IP literal, lower case
    pub host: String,
    pub tcp_port: Option<u16>,
    pub ssl_port: Option<u16>,
    /// `protocol_max`, e.g. `1.7.0`
    pub protocol_max: Option<String>,
    /// blocks kept, when the peer prunes
    pub pruning: Option<u64>,
}

/// Whether `host` is a plausible DNS name or IP literal. Names come from untrusted peers and are
/// later resolved and logged, so anything odd is refused early.
pub(crate) fn valid_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    if host.is_empty() || host.len() > 253 || host.starts_with('.') || host.ends_with('.') {
        return false;
    }
    host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Whether `host` is a Tor onion service.
pub(crate) fn is_onion(host: &str) -> bool {
    host.ends_with(".onion")
}

/// A port from a JSON value, which peers send as a number or, now and then, a string.
fn port_of(value: Option<&Value>) -> Option<u16> {
    match value? {
        Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|p| *p != 0)
}

impl Advert {
    /// Parses an ElectrumX real name, `host [v1.7] [p<blocks>] [s[port]] [t[port]]`. A bare `s`
    /// or `t` means the coin's default port. `None` if the host is malformed or no port is given.
    pub fn from_real_name(text: &str, default_ports: (u16, u16)) -> Option<Advert> {
        let mut parts = text.split_whitespace();
        let host = parts.next()?.to_ascii_lowercase();
        if !valid_host(&host) {
            return None;
        }
        let mut advert = Advert {
            host,
            ..Advert::default()
        };
        advert.apply_feature_letters(parts, default_ports);
        (advert.tcp_port.is_some() || advert.ssl_port.is_some()).then_some(advert)
    }

    /// Applies `v1.4`, `p100`, `s50002`, `t` style items (real names and the triples of
    /// `server.peers.subscribe`, docs/protocol.md).
    fn apply_feature_letters<'a>(
        &mut self,
        items: impl Iterator<Item = &'a str>,
        (tcp_default, ssl_default): (u16, u16),
    ) {
        for item in items {
            let mut chars = item.chars();
            let Some(letter) = chars.next() else { continue };
            let rest = chars.as_str();
            let port = |default| {
                if rest.is_empty() {
                    Some(default)
                } else {
                    rest.parse::<u16>().ok().filter(|p| *p != 0)
                }
            };
            match letter.to_ascii_lowercase() {
                'v' if !rest.is_empty() && rest.len() <= 16 => {
                    self.protocol_max = Some(rest.to_string())
                }
                'p' => self.pruning = rest.parse().ok(),
                's' => self.ssl_port = port(ssl_default).or(self.ssl_port),
                't' => self.tcp_port = port(tcp_default).or(self.tcp_port),
                _ => {}
            }
        }
    }

    /// Parses one `[address, host, [features...]]` triple of a `server.peers.subscribe` answer.
    pub fn from_triple(triple: &Value, default_ports: (u16, u16)) -> Option<Advert> {
        let items = triple.as_array()?;
        let host = items.get(1)?.as_str()?.to_ascii_lowercase();
        if !valid_host(&host) {
            return None;
        }
        let features = items.get(2)?.as_array()?;
        let mut advert = Advert {
            host,
            ..Advert::default()
        };
        advert.apply_feature_letters(features.iter().filter_map(Value::as_str), default_ports);
        (advert.tcp_port.is_some() || advert.ssl_port.is_some()).then_some(advert)
    }

    /// Reads the entry for `host` out of a `server.features` object (docs/protocol.md,
    /// `server.features`). `None` if the features do not list `host` or list it without a TCP
    /// or SSL port.
    pub fn from_features(features: &Value, host: &str) -> Option<Advert> {
        let hosts = features.get("hosts")?.as_object()?;
        let (_, ports) = hosts.iter().find(|(h, _)| h.eq_ignore_ascii_case(host))?;
        let advert = Advert {
            host: host.to_ascii_lowercase(),
            tcp_port: port_of(ports.get("tcp_port")),
            ssl_port: port_of(ports.get("ssl_port")),
            protocol_max: features
                .get("protocol_max")
                .and_then(Value::as_str)
                .filter(|v| v.len() <= 16)
                .map(String::from),
            pruning: features.get("pruning").and_then(Value::as_u64),
        };
        (advert.tcp_port.is_some() || advert.ssl_port.is_some()).then_some(advert)
    }

    /// The first host of a `server.features` object, as `server.add_peer` considers it.
    pub fn first_host(features: &Value) -> Option<String> {
        let hosts = features.get("hosts")?.as_object()?;
        hosts.keys().next().map(|h| h.to_ascii_lowercase())
    }

    /// The features strings of `server.peers.subscribe` (docs/protocol.md): `v<protocol_max>`,
    /// `p<n>`, `s<port>`, `t<port>`.
    pub fn feature_strings(&self) -> Vec<String> {
        let mut out = vec![format!(
            "v{}",
            self.protocol_max.as_deref().unwrap_or("1.4")
        )];
        if let Some(p) = self.pruning {
            out.push(format!("p{p}"));
        }
        if let Some(s) = self.ssl_port {
            out.push(format!("s{s}"));
        }
        if let Some(t) = self.tcp_port {
            out.push(format!("t{t}"));
        }
        out
    }
}

/// A known peer and its history.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub advert: Advert,
    pub source: PeerSource,
    /// the last `server.features` answer
    pub features: Option<Value>,
    /// the address last connected to (unknown for onion and proxied peers)
    pub ip: Option<IpAddr>,
    pub last_good: Option<Stamp>,
    pub last_try: Option<Stamp>,
    /// failed attempts since the last success
    pub try_count: u32,
    /// failed a check that retrying cannot fix (another chain, lying about itself)
    pub bad: bool,
    /// why the last attempt failed
    pub last_error: Option<String>,
}

impl Peer {
    pub fn new(advert: Advert, source: PeerSource) -> Self {
        Peer {
            ip: advert.host.parse().ok(),
            advert,
            source,
            features: None,
            last_good: None,
            last_try: None,
            try_count: 0,
            bad: false,
            last_error: None,
        }
    }

    pub fn is_self(&self) -> bool {
        self.source == PeerSource::Myself
    }

    /// Verified within `window`.
    pub fn is_good(&self, window: Duration) -> bool {
        !self.bad && self.try_count == 0 && self.last_good.is_some_and(|s| s.at.elapsed() <= window)
    }

    pub fn status(&self, window: Duration) -> PeerStatus {
        if self.bad {
            PeerStatus::Bad
        } else if self.is_good(window) {
            PeerStatus::Good
        } else if self.last_good.is_some() {
            PeerStatus::Stale
        } else {
            PeerStatus::Never
        }
    }

    /// The `[address, host, features]` triple of `server.peers.subscribe` (docs/protocol.md): the
    /// address is the IP last connected to, or the host for onion peers, our own entries and
    /// peers reached through the proxy.
    pub fn triple(&self) -> Value {
        let address = match self.ip {
            Some(ip) if !is_onion(&self.advert.host) && !self.is_self() => ip.to_string(),
            _ => self.advert.host.clone(),
        };
        json!([address, self.advert.host, self.advert.feature_strings()])
    }

    /// The admin view (`peers`). `features` is always `server.features`-shaped with an entry
    /// for the peer's own (lower-case) host, which the admin client's table reads; before a
    /// check it holds what we were told.
    pub fn info(&self, window: Duration) -> PeerInfo {
        let a = &self.advert;
        let ports = json!({"tcp_port": a.tcp_port, "ssl_port": a.ssl_port});
        let mut features = match &self.features {
            Some(f @ Value::Object(_)) => f.clone(),
            _ => json!({"hosts": {}, "pruning": a.pruning, "protocol_max": a.protocol_max}),
        };
        if let Some(map) = features.as_object_mut() {
            let hosts = map.entry("hosts").or_insert_with(|| json!({}));
            if !hosts.is_object() {
                *hosts = json!({});
            }
            if let Some(hosts) = hosts.as_object_mut() {
                hosts.insert(a.host.clone(), ports);
            }
        }
        PeerInfo {
            host: self.advert.host.clone(),
            features,
            source: self.source.to_string(),
            ip_addr: self.ip.map(|ip| ip.to_string()),
            last_good: self.last_good.map(|s| s.unix),
            last_try: self.last_try.map(|s| s.unix),
            try_count: self.try_count,
            status: self.status(window),
        }
    }
}

/// Whether an address is reachable from the public internet (std's `is_global` is unstable).
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                // shared address space (carrier-grade NAT), 100.64.0.0/10
                || (a == 100 && (b & 0xc0) == 64)
                // reserved for future use, 240.0.0.0/4
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // unique local fc00::/7 and link-local fe80::/10
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                // documentation 2001:db8::/32
                || (first == 0x2001 && v6.segments()[1] == 0x0db8))
        }
    }
}

/// The group of `server.peers.subscribe`'s diversity rule (docs/protocol.md): IPv4 /16 or IPv6
/// /56.
pub(crate) fn subnet_group(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            format!("{a}.{b}/16")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}/56", s[0], s[1], s[2], s[3] & 0xff00)
        }
    }
}

/// The key of the one-good-peer-per-address rule (docs/peers.md, Checking a peer): the IPv4
/// address or the IPv6 /64.
pub(crate) fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The `server.add_peer` rate-limit bucket of a host (docs/protocol.md, `server.add_peer`): its
/// last two DNS labels, or one shared bucket for every IP literal.
pub(crate) fn add_peer_bucket(host: &str) -> String {
    if host.parse::<IpAddr>().is_ok() {
        return "<ip literal>".into();
    }
    let labels: Vec<&str> = host.rsplit('.').take(2).collect();
    labels.into_iter().rev().collect::<Vec<_>>().join(".")
}
