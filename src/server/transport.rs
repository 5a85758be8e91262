//! Transports: listeners and the two framings every session runs over — newline-delimited
//! lines (TCP, TLS) and one message per frame (WebSocket, secure WebSocket).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::Shared;
use crate::config::ServiceKind;

/// One incoming unit.
#[derive(Debug)]
pub enum Frame {
    /// a complete message
    Message(Vec<u8>),
    /// a line over the receive limit, discarded (its size, for accounting)
    Oversized(usize),
}

/// The receiving half of a transport.
#[async_trait]
pub trait FrameReader: Send {
    /// The next frame; `None` at end of stream.
    async fn next_frame(&mut self) -> io::Result<Option<Frame>>;
}

/// The sending half of a transport.
#[async_trait]
pub trait FrameWriter: Send {
    /// Writes one message (the framing is the transport's).
    async fn write_frame(&mut self, msg: &[u8]) -> io::Result<()>;
    /// Closes the sending side, after writing anything still buffered.
    async fn close(&mut self);
    /// When buffered output must be written even if nothing else arrives.
    fn flush_deadline(&self) -> Option<tokio::time::Instant> {
        None
    }
    /// Writes buffered output whose deadline passed.
    async fn flush_due(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Newline-delimited messages with the receive limit (docs/protocol.md, Request size): a line
/// longer than `max` is thrown away up to the next newline, with no reply.
pub struct LineReader<R> {
    inner: BufReader<R>,
    max: usize,
    line: Vec<u8>,
    discarding: Option<usize>,
}

impl<R: AsyncRead + Unpin + Send> LineReader<R> {
    /// Reads lines of at most `max` bytes from `inner`.
    pub fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner: BufReader::with_capacity(64 * 1024, inner),
            max,
            line: Vec::new(),
            discarding: None,
        }
    }
}

#[async_trait]
impl<R: AsyncRead + Unpin + Send> FrameReader for LineReader<R> {
    async fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        loop {
            let buf = self.inner.fill_buf().await?;
            if buf.is_empty() {
                return Ok(None);
            }
            let (chunk, found) = match buf.iter().position(|b| *b == b'\n') {
                Some(pos) => (&buf[..pos], Some(pos + 1)),
                None => (buf, None),
            };
            let consumed = found.unwrap_or(chunk.len());
            if let Some(dropped) = self.discarding.as_mut() {
                *dropped += consumed;
                let total = *dropped;
                self.inner.consume(consumed);
                if found.is_some() {
                    self.discarding = None;
                    return Ok(Some(Frame::Oversized(total)));
                }
                continue;
            }
            if self.line.len() + chunk.len() > self.max {
                let total = self.line.len() + consumed;
                self.line.clear();
                self.inner.consume(consumed);
                if found.is_some() {
                    return Ok(Some(Frame::Oversized(total)));
                }
                self.discarding = Some(total);
                continue;
            }
            self.line.extend_from_slice(chunk);
            self.inner.consume(consumed);
            if found.is_some() {
                return Ok(Some(Frame::Message(std::mem::take(&mut self.line))));
            }
        }
    }
}

/// Writes each message followed by `\n`.
pub struct LineWriter<W> {
    inner: W,
}

impl<W> LineWriter<W> {
    /// Writes to `inner`.
    pub fn new(inner: W) -> Self {
        LineWriter { inner }
    }
}

#[async_trait]
impl<W: AsyncWrite + Unpin + Send> FrameWriter for LineWriter<W> {
    async fn write_frame(&mut self, msg: &[u8]) -> io::Result<()> {
        let mut framed = Vec::with_capacity(msg.len() + 1);
        framed.extend_from_slice(msg);
        framed.push(b'\n');
        self.inner.write_all(&framed).await?;
        self.inner.flush().await
    }

    async fn close(&mut self) {
        let _ = self.inner.shutdown().await;
    }
}

/// Size of a padded chunk's floor and of the warm-up budget (docs/protocol.md, Padding).
const PAD_UNIT: usize = 1024;
/// Buffered output older than this is written at the next message or by the timer.
const PAD_DELAY: Duration = Duration::from_secs(1);

/// ElectrumX's outbound padding for TCP and TLS (docs/protocol.md, Padding): messages are
/// collected and written in chunks whose size is a power of two of at least 1024 bytes, the
/// padding being spaces just before the closing bracket of the chunk's last message, so message
/// sizes and timings leak less. A message is never split.
pub struct PaddedLineWriter<W> {
    inner: W,
    /// framed messages (with their newline) not yet written
    pending: std::collections::VecDeque<Vec<u8>>,
    pending_len: usize,
    /// payload bytes handed to this writer so far, before framing and padding: the warm-up
    /// budget is spent by what the server said, not by the padding around it (ElectrumX
    /// compares aiorpcX's `send_size` with its `WARMUP_BUDGET_SIZE`)
    payload_sent: usize,
    last_write: tokio::time::Instant,
}

impl<W: AsyncWrite + Unpin + Send> PaddedLineWriter<W> {
    /// Pads what it writes to `inner`.
    pub fn new(inner: W) -> Self {
        PaddedLineWriter {
            inner,
            pending: Default::default(),
            pending_len: 0,
            payload_sent: 0,
            last_write: tokio::time::Instant::now(),
        }
    }

    fn should_flush(&self) -> bool {
        !self.pending.is_empty()
            && (self.pending_len >= PAD_UNIT
                || self.last_write.elapsed() > PAD_DELAY
                || self.payload_sent < PAD_UNIT)
    }

    /// Writes one padded chunk (or several when `all`).
    async fn flush(&mut self, all: bool) -> io::Result<()> {
        while !self.pending.is_empty() {
            let (chunk, target) = next_chunk(&mut self.pending);
            self.pending_len -= chunk.iter().map(Vec::len).sum::<usize>();
            let bytes = pad_chunk(&chunk, target);
            self.inner.write_all(&bytes).await?;
            self.inner.flush().await?;
            self.last_write = tokio::time::Instant::now();
            if !all && self.pending_len < PAD_UNIT {
                break;
            }
        }
        Ok(())
    }
}

/// The smallest power of two strictly greater than `n`, at least [`PAD_UNIT`].
fn pad_size(n: usize) -> usize {
    (n + 1).next_power_of_two().max(PAD_UNIT)
}

/// Takes the messages of the next chunk and its padded size: all of them, or — when that
/// wastes less padding — as many whole messages as fit in half the size.
fn next_chunk(pending: &mut std::collections::VecDeque<Vec<u8>>) -> (Vec<Vec<u8>>, usize) {
    let total: usize = pending.iter().map(Vec::len).sum();
    let full = pad_size(total);
    let half = (full / 2).max(PAD_UNIT);
    let mut fit = 0;
    let mut fit_len = 0;
    for m in pending.iter() {
        if fit_len + m.len() > half {
            break;
        }
        fit_len += m.len();
        fit += 1;
    }
    if fit > 0 && fit < pending.len() && half - fit_len < full - total {
        (pending.drain(..fit).collect(), half)
    } else {
        (pending.drain(..).collect(), full)
    }
}

/// Concatenates `chunk` and pads it to `target` bytes with spaces before the last message's
/// closing bracket.
fn pad_chunk(chunk: &[Vec<u8>], target: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(target);
    for m in chunk {
        out.extend_from_slice(m);
    }
    // The last message ends with its closing bracket and "\n": insert before the bracket.
    if out.len() >= 2 && target > out.len() {
        let at = out.len() - 2;
        let pad = target - out.len();
        out.splice(at..at, std::iter::repeat_n(b' ', pad));
    }
    out
}

#[async_trait]
impl<W: AsyncWrite + Unpin + Send> FrameWriter for PaddedLineWriter<W> {
    async fn write_frame(&mut self, msg: &[u8]) -> io::Result<()> {
        let mut framed = Vec::with_capacity(msg.len() + 1);
        framed.extend_from_slice(msg);
        framed.push(b'\n');
        self.pending_len += framed.len();
        self.pending.push_back(framed);
        // The budget is checked before this message counts against it, as ElectrumX does.
        let flush = self.should_flush();
        self.payload_sent += msg.len();
        if flush {
            self.flush(false).await?;
        }
        Ok(())
    }

    async fn close(&mut self) {
        let _ = self.flush(true).await;
        let _ = self.inner.shutdown().await;
    }

    fn flush_deadline(&self) -> Option<tokio::time::Instant> {
        (!self.pending.is_empty()).then(|| self.last_write + PAD_DELAY)
    }

    async fn flush_due(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() && self.last_write.elapsed() >= PAD_DELAY {
            self.flush(true).await?;
        }
        Ok(())
    }
}

/// Incoming WebSocket messages; text and binary frames both carry JSON.
pub struct WsReader<S> {
    inner: SplitStream<WebSocketStream<S>>,
}

#[async_trait]
impl<S: AsyncRead + AsyncWrite + Unpin + Send> FrameReader for WsReader<S> {
    async fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        loop {
            match self.inner.next().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(io::Error::other(e)),
                Some(Ok(Message::Text(text))) => {
                    return Ok(Some(Frame::Message(text.as_bytes().to_vec())))
                }
                Some(Ok(Message::Binary(bytes))) => {
                    return Ok(Some(Frame::Message(bytes.to_vec())))
                }
                Some(Ok(Message::Close(_))) => return Ok(None),
                // Pings are answered by the library when we next write or read.
                Some(Ok(_)) => continue,
            }
        }
    }
}

/// Outgoing WebSocket text frames.
pub struct WsWriter<S> {
    inner: SplitSink<WebSocketStream<S>, Message>,
}

#[async_trait]
impl<S: AsyncRead + AsyncWrite + Unpin + Send> FrameWriter for WsWriter<S> {
    async fn write_frame(&mut self, msg: &[u8]) -> io::Result<()> {
        // Our messages are serialised JSON with non-ASCII escaped, so always valid UTF-8.
        let text = String::from_utf8_lossy(msg).into_owned();
        self.inner
            .send(Message::Text(text))
            .await
            .map_err(io::Error::other)
    }

    async fn close(&mut self) {
        let _ = self.inner.close().await;
    }
}

fn ws_config(shared: &Shared) -> WebSocketConfig {
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(shared.config.ws_max_message);
    config.max_frame_size = Some(shared.config.ws_max_message);
    config
}

async fn serve_ws<S>(shared: Arc<Shared>, peer: SocketAddr, kind: ServiceKind, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake = tokio_tungstenite::accept_async_with_config(stream, Some(ws_config(&shared)));
    match tokio::time::timeout(shared.config.handshake_timeout, handshake).await {
        Ok(Ok(ws)) => {
            let (sink, stream) = ws.split();
            super::session::run(
                shared,
                peer,
                kind,
                Box::new(WsReader { inner: stream }),
                Box::new(WsWriter { inner: sink }),
            )
            .await;
        }
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "WebSocket handshake failed"),
        Err(_) => tracing::debug!(%peer, "WebSocket handshake timed out"),
    }
}

pub(super) async fn serve_lines<S>(
    shared: Arc<Shared>,
    peer: SocketAddr,
    kind: ServiceKind,
    stream: S,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (read, write) = tokio::io::split(stream);
    let max = shared.config.limits.max_recv;
    let writer: Box<dyn FrameWriter> = if shared.config.pad_tcp {
        Box::new(PaddedLineWriter::new(write))
    } else {
        Box::new(LineWriter::new(write))
    };
    super::session::run(
        shared,
        peer,
        kind,
        Box::new(LineReader::new(read, max)),
        writer,
    )
    .await;
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    kind: ServiceKind,
) {
    let _ = stream.set_nodelay(true);
    match kind {
        ServiceKind::Tcp => serve_lines(shared, peer, kind, stream).await,
        ServiceKind::Ws => serve_ws(shared, peer, kind, stream).await,
        ServiceKind::Ssl | ServiceKind::Wss => {
            let Some(acceptor) = shared.tls.as_ref().map(|t| t.acceptor()) else {
                return;
            };
            let tls =
                tokio::time::timeout(shared.config.handshake_timeout, acceptor.accept(stream));
            match tls.await {
                Ok(Ok(tls_stream)) => {
                    if kind == ServiceKind::Ssl {
                        serve_lines(shared, peer, kind, tls_stream).await;
                    } else {
                        serve_ws(shared, peer, kind, tls_stream).await;
                    }
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
        ServiceKind::Rpc => {}
    }
}

/// Accepts connections until shutdown. At `MAX_SESSIONS` the listener pauses until the count
/// falls to 95 % of the cap (docs/protocol.md, Timeouts and connection limits).
pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, kind: ServiceKind) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut count = shared.session_count.subscribe();
    let max = shared.config.limits.max_sessions.max(1);
    let resume = max * 95 / 100;
    loop {
        if *count.borrow_and_update() >= max {
            tracing::info!(%kind, max, "session limit reached: pausing accepts");
            loop {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    changed = count.changed() => if changed.is_err() { return },
                }
                if *count.borrow_and_update() <= resume {
                    break;
                }
            }
        }
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%kind, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        shared.session_count.send_modify(|c| *c += 1);
        let shared2 = Arc::clone(&shared);
        tokio::spawn(async move {
            serve_connection(Arc::clone(&shared2), stream, peer, kind).await;
            shared2
                .session_count
                .send_modify(|c| *c = c.saturating_sub(1));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: usize) -> Vec<u8> {
        // A JSON object of exactly `n` bytes plus its newline.
        let mut m = format!("{{\"a\":\"{}\"}}", "x".repeat(n - 8)).into_bytes();
        m.push(b'\n');
        m
    }

    #[test]
    fn chunks_are_padded_before_the_last_closing_bracket() {
        let chunk = vec![msg(100), msg(200)];
        let out = pad_chunk(&chunk, pad_size(302));
        assert_eq!(out.len(), 1024);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.trim_end_matches('\n').split('\n').collect();
        assert_eq!(lines.len(), 2);
        for line in lines {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
        assert!(text.ends_with(" }\n"));
        assert_eq!(pad_size(1501), 2048);
        // Strictly greater: a 2048-byte message goes into a 4096-byte chunk.
        assert_eq!(pad_size(2048), 4096);
        assert_eq!(pad_chunk(&[msg(2047)], pad_size(2048)).len(), 4096);
    }

    #[test]
    fn chunk_choice_prefers_less_padding() {
        // 3000 bytes would pad to 4096 (1096 wasted); half (2048) holds 2000 bytes (48 wasted).
        let mut pending: std::collections::VecDeque<Vec<u8>> =
            [msg(999), msg(999), msg(999)].into_iter().collect();
        let (first, target) = next_chunk(&mut pending);
        assert_eq!((first.len(), target), (2, 2048));
        assert_eq!(pending.len(), 1);
        let mut pending: std::collections::VecDeque<Vec<u8>> = [msg(50)].into_iter().collect();
        assert_eq!(next_chunk(&mut pending).1, 1024);
    }

    async fn read_n(server: &mut tokio::io::DuplexStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        tokio::io::AsyncReadExt::read_exact(server, &mut buf)
            .await
            .unwrap();
        buf
    }

    #[tokio::test]
    async fn warm_up_counts_payload_bytes_then_small_messages_wait() {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let mut w = PaddedLineWriter::new(client);
        // The version reply goes out at once, padded to 1,024 bytes on the wire...
        w.write_frame(&msg(50)[..50]).await.unwrap();
        read_n(&mut server, 1024).await;
        // ...but only its 50 payload bytes count against the budget (ElectrumX compares
        // aiorpcX's unpadded send_size with WARMUP_BUDGET_SIZE): the wallet's next replies
        // are written at once too, until 1,024 payload bytes have been said.
        w.write_frame(&msg(50)[..50]).await.unwrap();
        assert!(w.flush_deadline().is_none(), "second reply held back");
        read_n(&mut server, 1024).await;
        w.write_frame(&msg(1000)[..1000]).await.unwrap();
        assert!(w.flush_deadline().is_none(), "still within the budget");
        read_n(&mut server, 1024).await;
        // Past the budget a small message is held until the delay or 1,024 bytes.
        w.write_frame(&msg(50)[..50]).await.unwrap();
        assert!(w.flush_deadline().is_some());
        w.flush_due().await.unwrap();
        assert!(w.flush_deadline().is_some(), "not yet due");
        w.write_frame(&msg(1100)[..1100]).await.unwrap();
        assert!(w.flush_deadline().is_none(), "over 1024 bytes: written");
        let buf = read_n(&mut server, 2048).await;
        assert!(buf.ends_with(b" }\n"));
    }

    #[tokio::test]
    async fn long_lines_are_dropped_up_to_the_next_newline() {
        let input: &[u8] = b"{\"a\":1}\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n{\"b\":2}\npartial";
        let mut reader = LineReader::new(input, 20);
        let mut frames = Vec::new();
        while let Some(f) = reader.next_frame().await.unwrap() {
            frames.push(f);
        }
        assert_eq!(frames.len(), 3);
        assert!(matches!(&frames[0], Frame::Message(m) if m == b"{\"a\":1}"));
        assert!(matches!(&frames[1], Frame::Oversized(n) if *n == 55));
        assert!(matches!(&frames[2], Frame::Message(m) if m == b"{\"b\":2}"));
    }
}
