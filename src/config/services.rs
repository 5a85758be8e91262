//! `SERVICES` entries: `kind://host:port`, as ElectrumX writes them.

use std::fmt;
use std::str::FromStr;

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    /// newline-delimited JSON-RPC over TCP
    Tcp,
    /// the same over TLS
    Ssl,
    /// WebSocket
    Ws,
    /// WebSocket over TLS
    Wss,
    /// the local admin interface
    Rpc,
}

impl ServiceKind {
    /// Whether the service needs a certificate.
    pub fn is_tls(self) -> bool {
        matches!(self, ServiceKind::Ssl | ServiceKind::Wss)
    }

    fn default_port(self) -> u16 {
        match self {
            ServiceKind::Tcp => 50001,
            ServiceKind::Ssl => 50002,
            ServiceKind::Ws => 50003,
            ServiceKind::Wss => 50004,
            ServiceKind::Rpc => 8000,
        }
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceKind::Tcp => "tcp",
            ServiceKind::Ssl => "ssl",
            ServiceKind::Ws => "ws",
            ServiceKind::Wss => "wss",
            ServiceKind::Rpc => "rpc",
        })
    }
}

/// One listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// protocol
    pub kind: ServiceKind,
    /// host or address; empty means all interfaces (or localhost for `rpc`)
    pub host: String,
    /// port
    pub port: u16,
}

impl Service {
    /// The address to bind: all interfaces for an empty host (`tcp://:50001`), except the admin
    /// interface, which never listens beyond localhost unless told to.
    pub fn bind_addr(&self) -> String {
        let host = match (self.host.as_str(), self.kind) {
            ("", ServiceKind::Rpc) => "127.0.0.1",
            ("", _) => "0.0.0.0",
            (h, _) => h,
        };
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.kind, self.host, self.port)
    }
}

impl FromStr for Service {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("`{s}`: expected kind://host:port"))?;
        let kind = match kind.to_ascii_lowercase().as_str() {
            "tcp" => ServiceKind::Tcp,
            "ssl" | "tls" => ServiceKind::Ssl,
            "ws" => ServiceKind::Ws,
            "wss" => ServiceKind::Wss,
            "rpc" => ServiceKind::Rpc,
            other => {
                return Err(format!(
                    "`{s}`: unknown service kind `{other}` (tcp, ssl, ws, wss, rpc)"
                ))
            }
        };
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("`{s}`: unclosed `[` in IPv6 address"))?;
            (host.to_string(), after.strip_prefix(':').unwrap_or(""))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p),
                None => (rest.to_string(), ""),
            }
        };
        let port = if port.is_empty() {
            kind.default_port()
        } else {
            port.parse()
                .map_err(|_| format!("`{s}`: bad port `{port}`"))?
        };
        Ok(Service { kind, host, port })
    }
}
