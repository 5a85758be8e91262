//! A small Electrum client for checking peers: TCP or TLS, directly or through a SOCKS5 proxy
//! (Tor), newline-delimited JSON-RPC, one request at a time.
//!
//! Peers are untrusted: every line is bounded, every wait has a deadline, and TLS accepts any
//! certificate because Electrum servers commonly use self-signed ones (ElectrumX checks peers the
//! same way). The handshake signature is still verified, so the session is bound to the key of
//! the certificate the peer presented.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::PeerError;

/// Largest line accepted from a peer. A `server.peers.subscribe` answer with a few hundred
/// peers is tens of kilobytes; anything near this is abuse.
const MAX_LINE: usize = 1 << 20;

/// Any byte stream a session can run over.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Accepts every server certificate while still checking handshake signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS connector used for every peer.
pub(crate) fn tls_connector() -> Result<TlsConnector, PeerError> {
    // The ring provider is named here rather than installed process-wide, so this does not
    // depend on (or fight with) whatever the server's listeners install.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| PeerError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// How to reach a peer.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// SOCKS5 proxy to go through
    pub proxy: Option<(String, u16)>,
}

/// Opens the byte stream for `route`; also returns the peer's address when connected directly.
pub(crate) async fn connect(
    route: &Route,
    tls: &TlsConnector,
    deadline: Duration,
) -> Result<(Box<dyn Io>, Option<IpAddr>), PeerError> {
    let attempt = async {
        let (tcp, ip) = match &route.proxy {
            Some((proxy_host, proxy_port)) => {
                let mut tcp = TcpStream::connect((proxy_host.as_str(), *proxy_port))
                    .await
                    .map_err(PeerError::Connect)?;
                socks5_connect(&mut tcp, &route.host, route.port).await?;
                (tcp, None)
            }
            None => {
                let tcp = TcpStream::connect((route.host.as_str(), route.port))
                    .await
                    .map_err(PeerError::Connect)?;
                let ip = tcp.peer_addr().ok().map(|a: SocketAddr| a.ip());
                (tcp, ip)
            }
        };
        tcp.set_nodelay(true).ok();
        let stream: Box<dyn Io> = if route.tls {
            let name = ServerName::try_from(route.host.clone())
                .map_err(|e| PeerError::Tls(format!("server name {}: {e}", route.host)))?;
            Box::new(
                tls.connect(name, tcp)
                    .await
                    .map_err(|e| PeerError::Tls(e.to_string()))?,
            )
        } else {
            Box::new(tcp)
        };
        Ok((stream, ip))
    };
    tokio::time::timeout(deadline, attempt)
        .await
        .map_err(|_| PeerError::Timeout("connecting"))?
}

/// SOCKS5 (RFC 1928) CONNECT without authentication, as Tor's SOCKS port accepts. The host goes
/// to the proxy as a name so that onion names (and, with FORCE_PROXY, DNS) resolve inside Tor.
pub(crate) async fn socks5_connect(
    stream: &mut TcpStream,
    host: &str,
    port: u16,
) -> Result<(), PeerError> {
    let socks = |what: &str| PeerError::Socks(what.to_string());
    stream
        .write_all(&[5, 1, 0])
        .await
        .map_err(PeerError::Connect)?;
    let mut choice = [0u8; 2];
    stream
        .read_exact(&mut choice)
        .await
        .map_err(PeerError::Connect)?;
    if choice != [5, 0] {
        return Err(socks("proxy wants authentication or is not SOCKS5"));
    }
    let mut request = vec![5, 1, 0];
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => {
            request.push(1);
            request.extend_from_slice(&v4.octets());
        }
        Ok(IpAddr::V6(v6)) => {
            request.push(4);
            request.extend_from_slice(&v6.octets());
        }
        Err(_) => {
            let len = u8::try_from(host.len()).map_err(|_| socks("host name too long"))?;
            request.push(3);
            request.push(len);
            request.extend_from_slice(host.as_bytes());
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    stream
        .write_all(&request)
        .await
        .map_err(PeerError::Connect)?;
    let mut head = [0u8; 4];
    stream
        .read_exact(&mut head)
        .await
        .map_err(PeerError::Connect)?;
    if head[0] != 5 {
        return Err(socks("bad reply version"));
    }
    if head[1] != 0 {
        return Err(PeerError::Socks(format!(
            "proxy refused the connection (reply {})",
            head[1]
        )));
    }
    // Skip the bound address, whose length depends on its type.
    let skip = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut len = [0u8; 1];
            stream
                .read_exact(&mut len)
                .await
                .map_err(PeerError::Connect)?;
            usize::from(len[0]) + 2
        }
        _ => return Err(socks("bad bound address type")),
    };
    let mut bound = vec![0u8; skip];
    stream
        .read_exact(&mut bound)
        .await
        .map_err(PeerError::Connect)?;
    Ok(())
}

/// One JSON-RPC conversation with a peer.
pub(crate) struct Session {
    reader: BufReader<tokio::io::ReadHalf<Box<dyn Io>>>,
    writer: tokio::io::WriteHalf<Box<dyn Io>>,
    next_id: u64,
    deadline: Duration,
}

impl Session {
    pub fn new(stream: Box<dyn Io>, deadline: Duration) -> Self {
        let (read, write) = tokio::io::split(stream);
        Session {
            reader: BufReader::new(read),
            writer: write,
            next_id: 0,
            deadline,
        }
    }

    /// Sends one request and waits for its answer, skipping notifications (a headers
    /// subscription may notify at any time) and answers to other ids.
    pub async fn request(
        &mut self,
        method: &'static str,
        params: Value,
    ) -> Result<Value, PeerError> {
        self.next_id += 1;
        let id = self.next_id;
        let mut line = serde_json::to_vec(&json!({
            "jsonrpc": "2.0",
            "method": method,
            "params": params,
            "id": id,
        }))
        .map_err(|e| PeerError::Protocol(e.to_string()))?;
        line.push(b'\n');
        let exchange = async {
            self.writer
                .write_all(&line)
                .await
                .map_err(PeerError::Connect)?;
            self.writer.flush().await.map_err(PeerError::Connect)?;
            loop {
                let text = read_line(&mut self.reader).await?;
                let Ok(message) = serde_json::from_slice::<Value>(&text) else {
                    return Err(PeerError::Protocol(format!("{method}: not JSON")));
                };
                if message.get("id").and_then(Value::as_u64) != Some(id) {
                    continue;
                }
                if let Some(error) = message.get("error").filter(|e| !e.is_null()) {
                    let text = error
                        .get("message")
                        .and_then(Value::as_str)
                        .map(String::from)
                        .unwrap_or_else(|| error.to_string());
                    return Err(PeerError::Rpc {
                        method,
                        message: text,
                    });
                }
                return Ok(message.get("result").cloned().unwrap_or(Value::Null));
            }
        };
        tokio::time::timeout(self.deadline, exchange)
            .await
            .map_err(|_| PeerError::Timeout(method))?
    }
}

/// Reads one newline-terminated line of at most [`MAX_LINE`] bytes.
async fn read_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> Result<Vec<u8>, PeerError> {
    let mut line = Vec::new();
    loop {
        let buf = reader.fill_buf().await.map_err(PeerError::Connect)?;
        if buf.is_empty() {
            return Err(PeerError::Protocol("connection closed".into()));
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > MAX_LINE {
            return Err(PeerError::Protocol("line too long".into()));
        }
        line.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if done {
            return Ok(line);
        }
    }
}
