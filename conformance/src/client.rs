//! One JSON-RPC client over the four Electrum transports (docs/protocol.md, Listeners and
//! Framing): newline-framed JSON over TCP and TLS, one text frame per message over WebSocket and
//! secure WebSocket.
//!
//! A background task reads every incoming message into a queue, so responses are matched by
//! `id` and notifications are kept in arrival order for the notification checks.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A listener kind (docs/protocol.md, Listeners) that carries client traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// newline-delimited JSON over TCP
    Tcp,
    /// the same over TLS
    Ssl,
    /// WebSocket
    Ws,
    /// WebSocket over TLS
    Wss,
}

impl Transport {
    /// All four, in the order the matrix prints them.
    pub const ALL: [Transport; 4] = [
        Transport::Tcp,
        Transport::Ssl,
        Transport::Ws,
        Transport::Wss,
    ];

    /// Whether the transport runs over TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Transport::Ssl | Transport::Wss)
    }

    fn is_ws(self) -> bool {
        matches!(self, Transport::Ws | Transport::Wss)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Ssl => "ssl",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        })
    }
}

/// What the reader task hands over.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// a parsed JSON message (response, batch or notification)
    Message(Value),
    /// bytes that were not JSON
    Garbage(String),
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

enum Writer {
    Line(Box<dyn AsyncWrite + Send + Unpin>),
    Ws(SplitSink<WebSocketStream<Box<dyn Io>>, Message>),
}

/// A connection to an Electrum server.
pub struct Client {
    writer: Writer,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    /// notifications (and stray messages) received while waiting for responses
    pub queued: VecDeque<Value>,
    next_id: u64,
    closed: bool,
    /// how long a response may take
    pub timeout: Duration,
}

/// TLS without certificate verification: the suite tests the protocol, not the certificate
/// (servers under test commonly run self-signed ones).
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_connector() -> anyhow::Result<tokio_rustls::TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// How long [`Client::connect`] waits for TCP, TLS and WebSocket handshakes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Client {
    /// Connects to `addr` over `transport`; `host` is the TLS server name and WebSocket host.
    pub async fn connect(
        transport: Transport,
        addr: SocketAddr,
        host: &str,
    ) -> anyhow::Result<Client> {
        tokio::time::timeout(
            CONNECT_TIMEOUT,
            Self::connect_internal(transport, addr, host),
        )
        .await
        .map_err(|_| anyhow!("connecting to {transport}://{addr} timed out"))?
    }

    async fn connect_internal(
        transport: Transport,
        addr: SocketAddr,
        host: &str,
    ) -> anyhow::Result<Client> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true).ok();
        let io: Box<dyn Io> = if transport.is_tls() {
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .with_context(|| format!("{host} as a TLS server name"))?;
            Box::new(
                tls_connector()?
                    .connect(name, tcp)
                    .await
                    .with_context(|| format!("TLS handshake with {addr}"))?,
            )
        } else {
            Box::new(tcp)
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = if transport.is_ws() {
            let scheme = if transport.is_tls() { "wss" } else { "ws" };
            let url = format!("{scheme}://{host}:{}/", addr.port());
            let (ws, _) = tokio_tungstenite::client_async(url, io)
                .await
                .with_context(|| format!("WebSocket handshake with {addr}"))?;
            let (sink, mut stream) = ws.split();
            tokio::spawn(async move {
                while let Some(Ok(msg)) = stream.next().await {
                    let text = match msg {
                        Message::Text(t) => t,
                        Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    if tx.send(parse(&text)).is_err() {
                        break;
                    }
                }
            });
            Writer::Ws(sink)
        } else {
            let (read, write) = tokio::io::split(io);
            tokio::spawn(async move {
                let mut reader = BufReader::new(read);
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if line.trim().is_empty() {
                                continue;
                            }
                            if tx.send(parse(&line)).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
            Writer::Line(Box::new(write))
        };
        Ok(Client {
            writer,
            incoming: rx,
            queued: VecDeque::new(),
            next_id: 1,
            closed: false,
            timeout: Duration::from_secs(10),
        })
    }

    /// Sends one message as written (a line, or a text frame).
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        match &mut self.writer {
            Writer::Line(w) => {
                w.write_all(format!("{text}\n").as_bytes()).await?;
                w.flush().await?;
            }
            Writer::Ws(sink) => sink.send(Message::Text(text.to_string())).await?,
        }
        Ok(())
    }

    /// The next incoming message before `deadline`; `None` on timeout or close.
    pub async fn next_until(&mut self, deadline: Instant) -> Option<Incoming> {
        if self.closed {
            return None;
        }
        match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
            Ok(Some(m)) => Some(m),
            Ok(None) => {
                self.closed = true;
                None
            }
            Err(_) => None,
        }
    }

    /// Whether the server closed the connection within `wait` (messages are discarded).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while !self.closed && Instant::now() < deadline {
            if self.next_until(deadline).await.is_none() && !self.closed {
                return false;
            }
        }
        self.closed
    }

    /// A fresh request id.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends a request and returns the whole response object (`result` or `error`).
    pub async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next_id();
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_text(&msg.to_string()).await?;
        self.response(&json!(id)).await
    }

    /// Waits for the response carrying `id`, queueing everything else.
    pub async fn response(&mut self, id: &Value) -> anyhow::Result<Value> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.next_until(deadline).await {
                Some(Incoming::Message(v))
                    if v.get("id") == Some(id) && v.get("method").is_none() =>
                {
                    return Ok(v)
                }
                Some(Incoming::Message(v)) => self.queued.push_back(v),
                Some(Incoming::Garbage(text)) => bail!("not JSON: {}", crate::truncate(&text, 200)),
                None if self.closed => bail!("the server closed the connection"),
                None => bail!("no response within {:?}", self.timeout),
            }
        }
    }

    /// Sends `calls` as separate requests in one write (back-to-back frames on WebSocket), as
    /// a wallet that pipelines does, and returns the responses in request order (a missing
    /// response becomes an error value saying so).
    pub async fn pipeline(&mut self, calls: &[(String, Value)]) -> anyhow::Result<Vec<Value>> {
        let ids: Vec<u64> = calls.iter().map(|_| self.next_id()).collect();
        let texts: Vec<String> = calls
            .iter()
            .zip(&ids)
            .map(|((m, p), id)| {
                json!({"jsonrpc": "2.0", "id": id, "method": m, "params": p}).to_string()
            })
            .collect();
        match &mut self.writer {
            Writer::Line(w) => {
                let mut bytes = texts.join("\n");
                bytes.push('\n');
                w.write_all(bytes.as_bytes()).await?;
                w.flush().await?;
            }
            Writer::Ws(sink) => {
                for text in texts {
                    sink.feed(Message::Text(text)).await?;
                }
                sink.flush().await?;
            }
        }
        // Answers may come in any order (ids make either legal): take them as they come.
        let mut out = vec![Value::Null; ids.len()];
        let mut missing = ids.len();
        let deadline = Instant::now() + self.timeout;
        while missing > 0 {
            match self.next_until(deadline).await {
                Some(Incoming::Message(v)) if v.get("method").is_none() => {
                    let slot = v
                        .get("id")
                        .and_then(Value::as_u64)
                        .and_then(|id| ids.iter().position(|i| *i == id));
                    match slot {
                        Some(i) if out[i].is_null() => {
                            out[i] = v;
                            missing -= 1;
                        }
                        _ => self.queued.push_back(v),
                    }
                }
                Some(Incoming::Message(v)) => self.queued.push_back(v),
                Some(Incoming::Garbage(text)) => bail!("not JSON: {}", crate::truncate(&text, 200)),
                None if self.closed => bail!("the server closed the connection"),
                None => break,
            }
        }
        for v in out.iter_mut().filter(|v| v.is_null()) {
            *v = json!({"no response": format!("within {:?}", self.timeout)});
        }
        Ok(out)
    }

    /// Sends `calls` as one batch and returns the responses in request order (a missing
    /// response becomes an error value saying so).
    pub async fn batch(&mut self, calls: &[(String, Value)]) -> anyhow::Result<Vec<Value>> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let first = self.next_id;
        self.next_id += calls.len() as u64;
        let msgs: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (m, p))| json!({"jsonrpc": "2.0", "id": first + i as u64, "method": m, "params": p}))
            .collect();
        self.send_text(&Value::Array(msgs).to_string()).await?;
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.next_until(deadline).await {
                Some(Incoming::Message(Value::Array(items))) => {
                    let mut out = vec![Value::Null; calls.len()];
                    for item in items {
                        let slot = item
                            .get("id")
                            .and_then(Value::as_u64)
                            .and_then(|id| id.checked_sub(first))
                            .filter(|i| (*i as usize) < calls.len());
                        if let Some(i) = slot {
                            out[i as usize] = item;
                        }
                    }
                    return Ok(out);
                }
                Some(Incoming::Message(v)) => self.queued.push_back(v),
                Some(Incoming::Garbage(text)) => bail!("not JSON: {}", crate::truncate(&text, 200)),
                None if self.closed => bail!("the server closed the connection"),
                None => bail!("no batch response within {:?}", self.timeout),
            }
        }
    }

    /// Queued notifications plus whatever arrives until `deadline` or until `done` says the
    /// collected list is complete.
    pub async fn notifications_until(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&[Value]) -> bool,
    ) -> Vec<Value> {
        let mut got: Vec<Value> = self.queued.drain(..).collect();
        while !done(&got) {
            match self.next_until(deadline).await {
                Some(Incoming::Message(v)) => got.push(v),
                Some(Incoming::Garbage(_)) => {}
                None => break,
            }
        }
        got
    }
}

fn parse(text: &str) -> Incoming {
    match serde_json::from_str(text) {
        Ok(v) => Incoming::Message(v),
        Err(_) => Incoming::Garbage(text.to_string()),
    }
}
