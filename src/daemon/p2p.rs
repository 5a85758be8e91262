//! The P2P block source: blocks fetched over the node's peer-to-peer port, as its own peers
//! receive them (`version`/`verack`, then `getdata` for many blocks at once).
//!
//! [`P2pBlockSource`] is one connection; [`P2pDaemon`] wraps any [`DaemonApi`] and takes blocks
//! from P2P instead, reconnecting when the node drops the connection. The framing
//! ([`read_message`], [`write_message`]) and the payload codecs are shared with the
//! simulator's P2P listener.
//!
//! A node answers `getdata` in request order and silently skips blocks it does not have, so
//! every batch of requests is followed by a `ping`: when its `pong` arrives, every block of the
//! batch has arrived or the node does not have it.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anode_coins::{hash::sha256d, HashAlgo, HeaderLayout, NetworkParams};
use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tracing::debug;

use super::{
    hash_to_hex, ChainInfo, DaemonApi, DaemonError, FeeEstimate, Hash32, MempoolInfo, Result,
};

/// Protocol version announced when the network names none (Bitcoin Core 0.21+).
pub const DEFAULT_PROTOCOL_VERSION: u32 = 70016;
/// Largest message accepted when the network names no limit.
pub const DEFAULT_MAX_MESSAGE: u64 = 64 << 20;
/// `inv` type of a block without witness data.
pub const MSG_BLOCK: u32 = 2;
/// `inv` type of a block with witness data (BIP144).
pub const MSG_WITNESS_BLOCK: u32 = 0x4000_0002;
/// Most headers in one `headers` message.
pub const MAX_HEADERS: usize = 2000;
/// Most entries in one `inv`/`getdata`/`notfound` message.
pub const MAX_INV: usize = 50_000;
/// Length of a message header: magic, command, length, checksum.
pub const HEADER_LEN: usize = 24;

/// Why the P2P block source failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum P2pError {
    /// The network has no recorded P2P magic.
    #[error("{network} has no P2P magic (`p2p_magic` in its coins/networks entry), so blocks cannot be fetched over P2P")]
    NoMagic {
        /// `coin/net`
        network: String,
    },
    /// Connecting, reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No connection or no message within the timeout.
    #[error("timed out after {seconds} s {doing}")]
    Timeout {
        /// what we were waiting for
        doing: &'static str,
        /// the timeout
        seconds: u64,
    },
    /// The peer closed the connection.
    #[error("the peer closed the connection {doing}")]
    Closed {
        /// what we were doing
        doing: &'static str,
    },
    /// The peer closed the connection before completing the handshake, or refused it.
    #[error(
        "the peer refused the handshake ({reason}); check that it is a {network} node (we \
         speak magic {magic}) and that it accepts our connection (maxconnections, bans)"
    )]
    HandshakeRefused {
        /// what happened
        reason: String,
        /// `coin/net`
        network: String,
        /// our magic, hex
        magic: String,
    },
    /// A message starting with another network's magic.
    #[error(
        "the peer speaks another network: message magic {got}, but {network} uses {expected}; \
         point the P2P address at a {network} node"
    )]
    WrongMagic {
        /// `coin/net`
        network: String,
        /// our magic, hex
        expected: String,
        /// the peer's, hex
        got: String,
    },
    /// A message longer than the limit.
    #[error("the peer sent a `{command}` message of {len} bytes, over the limit of {max} bytes (p2p_max_message)")]
    TooLarge {
        /// message command
        command: String,
        /// announced length
        len: u64,
        /// the limit
        max: u64,
    },
    /// A message whose checksum does not match its payload.
    #[error("the peer sent a `{command}` message with a bad checksum")]
    BadChecksum {
        /// message command
        command: String,
    },
    /// A message that does not decode.
    #[error("the peer sent a malformed `{command}` message: {reason}")]
    Malformed {
        /// message command
        command: String,
        /// what was wrong
        reason: String,
    },
    /// The node does not have a requested block.
    #[error("the node does not have block {hash} (notfound)")]
    NotFound {
        /// display order
        hash: String,
    },
    /// The operation needs fixed 80-byte headers.
    #[error("{0} is not supported over P2P for this network")]
    Unsupported(&'static str),
}

impl P2pError {
    /// Whether a new connection may succeed where this one failed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            P2pError::Io(_) | P2pError::Timeout { .. } | P2pError::Closed { .. }
        )
    }
}

/// Settings of a P2P connection, usually from the network's parameters
/// ([`P2pOptions::from_params`]).
#[derive(Debug, Clone)]
pub struct P2pOptions {
    /// `coin/net`, for messages
    pub network: String,
    /// message-start bytes
    pub magic: [u8; 4],
    /// protocol version announced in `version`
    pub protocol_version: u32,
    /// largest message payload accepted
    pub max_message: u64,
    /// ask for blocks with witness data (`MSG_WITNESS_BLOCK`): SegWit networks
    pub witness: bool,
    /// block hashes are SHA-256d of the first 80 bytes, so arriving blocks are matched to
    /// requests by hash; otherwise by order
    pub sha256d_header: bool,
    /// blocks requested per `getdata`; two batches are kept in flight
    pub batch: usize,
    /// `user_agent` announced in `version`
    pub user_agent: String,
    /// connect and handshake timeout
    pub connect_timeout: Duration,
    /// longest wait for the next message while blocks are outstanding
    pub read_timeout: Duration,
}

impl P2pOptions {
    /// Options for `params`; an error when the network has no `p2p_magic`.
    pub fn from_params(params: &NetworkParams) -> std::result::Result<Self, P2pError> {
        let magic = params.p2p_magic.ok_or_else(|| P2pError::NoMagic {
            network: params.id(),
        })?;
        let header = &params.header;
        let sha256d_header = header.hash == HashAlgo::Sha256d
            && header.hash_rules.is_empty()
            && header.hash_prefix.is_none()
            && header.fork_height.is_none()
            && match header.layout {
                HeaderLayout::Fixed => header.size == 80 && header.size_schedule.is_empty(),
                HeaderLayout::Auxpow => true,
                _ => false,
            };
        Ok(P2pOptions {
            network: params.id(),
            magic,
            protocol_version: params
                .p2p_protocol_version
                .unwrap_or(DEFAULT_PROTOCOL_VERSION),
            max_message: params.p2p_max_message.unwrap_or(DEFAULT_MAX_MESSAGE),
            witness: params.bech32_hrp.is_some(),
            sha256d_header,
            batch: 16,
            user_agent: format!("/anode:{}/", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
        })
    }

    fn block_inv_type(&self) -> u32 {
        if self.witness {
            MSG_WITNESS_BLOCK
        } else {
            MSG_BLOCK
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Framing and payload codecs

/// One P2P message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// command, without padding (`version`, `block`...)
    pub command: String,
    /// payload
    pub payload: Vec<u8>,
}

/// Encodes a message: magic, NUL-padded command, length, checksum, payload.
pub fn encode_message(magic: [u8; 4], command: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&magic);
    let mut cmd = [0u8; 12];
    let n = command.len().min(12);
    cmd[..n].copy_from_slice(&command.as_bytes()[..n]);
    out.extend_from_slice(&cmd);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&sha256d(payload)[..4]);
    out.extend_from_slice(payload);
    out
}

/// Writes one message and flushes.
pub async fn write_message<W: AsyncWrite + Unpin>(
    w: &mut W,
    magic: [u8; 4],
    command: &str,
    payload: &[u8],
) -> std::io::Result<()> {
    w.write_all(&encode_message(magic, command, payload))
        .await?;
    w.flush().await
}

/// How reading a message ended, when not with a message.
#[derive(Debug)]
pub enum ReadError {
    /// end of stream before a message header started
    Eof,
    /// the message's magic is not ours
    WrongMagic([u8; 4]),
    /// the announced length is over the limit
    TooLarge {
        /// command
        command: String,
        /// announced length
        len: u64,
    },
    /// checksum mismatch
    BadChecksum(String),
    /// the command is not printable ASCII padded with NULs
    BadCommand,
    /// I/O error, or end of stream inside a message
    Io(std::io::Error),
}

/// Reads one message, refusing another magic, a payload over `max` bytes and a bad checksum.
/// Memory grows with the bytes that arrive, not with the announced length.
pub async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
    magic: [u8; 4],
    max: u64,
) -> std::result::Result<Message, ReadError> {
    let mut header = [0u8; HEADER_LEN];
    // The first byte decides between a clean end of stream and a truncated message.
    match r.read(&mut header[..1]).await {
        Ok(0) => return Err(ReadError::Eof),
        Ok(_) => {}
        Err(e) => return Err(ReadError::Io(e)),
    }
    r.read_exact(&mut header[1..])
        .await
        .map_err(ReadError::Io)?;
    let got: [u8; 4] = [header[0], header[1], header[2], header[3]];
    if got != magic {
        return Err(ReadError::WrongMagic(got));
    }
    let cmd = &header[4..16];
    let end = cmd.iter().position(|&b| b == 0).unwrap_or(12);
    if cmd[end..].iter().any(|&b| b != 0) || !cmd[..end].iter().all(|b| b.is_ascii_graphic()) {
        return Err(ReadError::BadCommand);
    }
    let command = String::from_utf8_lossy(&cmd[..end]).into_owned();
    let len = u64::from(u32::from_le_bytes([
        header[16], header[17], header[18], header[19],
    ]));
    if len > max {
        return Err(ReadError::TooLarge { command, len });
    }
    let mut payload = Vec::with_capacity(len.min(1 << 20) as usize);
    (&mut *r)
        .take(len)
        .read_to_end(&mut payload)
        .await
        .map_err(ReadError::Io)?;
    if payload.len() as u64 != len {
        return Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    if sha256d(&payload)[..4] != header[20..24] {
        return Err(ReadError::BadChecksum(command));
    }
    Ok(Message { command, payload })
}

/// Appends a Bitcoin compact size.
pub fn put_varint(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// A bounds-checked reader over a payload.
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    command: &'a str,
}

impl<'a> Cursor<'a> {
    /// Reads `data`, the payload of `command` (named in errors).
    pub fn new(data: &'a [u8], command: &'a str) -> Self {
        Cursor {
            data,
            pos: 0,
            command,
        }
    }

    fn malformed(&self, reason: impl Into<String>) -> P2pError {
        P2pError::Malformed {
            command: self.command.to_string(),
            reason: reason.into(),
        }
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> std::result::Result<&'a [u8], P2pError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| self.malformed(format!("truncated at byte {}", self.pos)))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// A fixed-size array.
    pub fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], P2pError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    /// Little-endian u32.
    pub fn u32(&mut self) -> std::result::Result<u32, P2pError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Little-endian u64.
    pub fn u64(&mut self) -> std::result::Result<u64, P2pError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Compact size.
    pub fn varint(&mut self) -> std::result::Result<u64, P2pError> {
        Ok(match self.array::<1>()?[0] {
            0xfd => u64::from(u16::from_le_bytes(self.array()?)),
            0xfe => u64::from(self.u32()?),
            0xff => self.u64()?,
            n => u64::from(n),
        })
    }

    /// A compact-size count, refused above `max`.
    pub fn count(&mut self, max: usize) -> std::result::Result<usize, P2pError> {
        let n = self.varint()?;
        if n > max as u64 {
            return Err(self.malformed(format!("count {n} over {max}")));
        }
        Ok(n as usize)
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
}

/// Encodes an `inv`/`getdata`/`notfound` payload.
pub fn encode_inv(items: &[(u32, Hash32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + items.len() * 36);
    put_varint(&mut out, items.len() as u64);
    for (kind, hash) in items {
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(hash);
    }
    out
}

/// Decodes an `inv`/`getdata`/`notfound` payload.
pub fn decode_inv(
    payload: &[u8],
    command: &str,
) -> std::result::Result<Vec<(u32, Hash32)>, P2pError> {
    let mut c = Cursor::new(payload, command);
    let n = c.count(MAX_INV)?;
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        items.push((c.u32()?, c.array()?));
    }
    Ok(items)
}

/// Encodes a `getheaders` payload.
pub fn encode_getheaders(version: u32, locator: &[Hash32], stop: &Hash32) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 9 + 32 * (locator.len() + 1));
    out.extend_from_slice(&version.to_le_bytes());
    put_varint(&mut out, locator.len() as u64);
    for h in locator {
        out.extend_from_slice(h);
    }
    out.extend_from_slice(stop);
    out
}

/// Decodes a `getheaders` (or `getblocks`) payload: locator and stop hash.
pub fn decode_getheaders(
    payload: &[u8],
    command: &str,
) -> std::result::Result<(Vec<Hash32>, Hash32), P2pError> {
    let mut c = Cursor::new(payload, command);
    let _version = c.u32()?;
    let n = c.count(101)?;
    let mut locator = Vec::with_capacity(n);
    for _ in 0..n {
        locator.push(c.array()?);
    }
    Ok((locator, c.array()?))
}

/// Decodes a `headers` payload of 80-byte headers.
pub fn decode_headers(payload: &[u8]) -> std::result::Result<Vec<[u8; 80]>, P2pError> {
    let mut c = Cursor::new(payload, "headers");
    let n = c.count(MAX_HEADERS)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(c.array::<80>()?);
        c.varint()?; // transaction count, always 0
    }
    Ok(out)
}

/// What a peer announced in its `version` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerVersion {
    /// protocol version
    pub version: u32,
    /// service bits
    pub services: u64,
    /// user agent
    pub user_agent: String,
    /// best height
    pub start_height: i32,
}

/// Encodes a `version` payload from a peer with no services that wants no transaction relay.
pub fn encode_version(
    protocol_version: u32,
    user_agent: &str,
    start_height: i32,
    peer: Option<SocketAddr>,
) -> Vec<u8> {
    encode_version_with(protocol_version, 0, user_agent, start_height, peer, false)
}

/// Encodes a `version` payload offering `services` (a node's: NODE_NETWORK, ...) and asking
/// for transaction relay or not.
pub fn encode_version_with(
    protocol_version: u32,
    services: u64,
    user_agent: &str,
    start_height: i32,
    peer: Option<SocketAddr>,
    relay: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&protocol_version.to_le_bytes());
    out.extend_from_slice(&services.to_le_bytes());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    out.extend_from_slice(&now.to_le_bytes());
    let put_addr = |out: &mut Vec<u8>, addr: Option<SocketAddr>| {
        out.extend_from_slice(&0u64.to_le_bytes());
        let (ip, port) = match addr {
            Some(a) => (
                match a.ip() {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                    IpAddr::V6(v6) => v6.octets(),
                },
                a.port(),
            ),
            None => ([0u8; 16], 0),
        };
        out.extend_from_slice(&ip);
        out.extend_from_slice(&port.to_be_bytes());
    };
    put_addr(&mut out, peer);
    put_addr(&mut out, None);
    out.extend_from_slice(&rand::random::<u64>().to_le_bytes());
    put_varint(&mut out, user_agent.len() as u64);
    out.extend_from_slice(user_agent.as_bytes());
    out.extend_from_slice(&start_height.to_le_bytes());
    out.push(u8::from(relay));
    out
}

/// Decodes the fields of a `version` payload that matter here.
pub fn decode_version(payload: &[u8]) -> std::result::Result<PeerVersion, P2pError> {
    let mut c = Cursor::new(payload, "version");
    let version = c.u32()?;
    let services = c.u64()?;
    c.bytes(8 + 26 + 26 + 8)?; // time, addr_recv, addr_from, nonce
    let ua_len = c.count(256)?;
    let user_agent = String::from_utf8_lossy(c.bytes(ua_len)?).into_owned();
    let start_height = if c.remaining() >= 4 {
        c.u32()? as i32
    } else {
        0
    };
    Ok(PeerVersion {
        version,
        services,
        user_agent,
        start_height,
    })
}

// ---------------------------------------------------------------------------------------------
// The client

/// The receiving half of a connection to a node (a TCP stream's outside tests and fuzzing).
pub(crate) type P2pReader = Box<dyn AsyncRead + Send + Unpin>;
/// The sending half.
pub(crate) type P2pWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// One P2P connection to a node, after the handshake.
pub struct P2pBlockSource {
    reader: BufReader<P2pReader>,
    writer: BufWriter<P2pWriter>,
    options: P2pOptions,
    peer: PeerVersion,
    nonce: u64,
}

impl P2pBlockSource {
    /// Connects to `addr` (`host:port`) and completes the `version`/`verack` handshake.
    pub async fn connect(addr: &str, options: P2pOptions) -> std::result::Result<Self, P2pError> {
        let limit = options.connect_timeout;
        let doing = "connecting and completing the P2P handshake";
        tokio::time::timeout(limit, Self::connect_inner(addr, options))
            .await
            .unwrap_or(Err(P2pError::Timeout {
                doing,
                seconds: limit.as_secs(),
            }))
    }

    async fn connect_inner(addr: &str, options: P2pOptions) -> std::result::Result<Self, P2pError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let peer_addr = stream.peer_addr().ok();
        let (r, w) = stream.into_split();
        Self::handshake(Box::new(r), Box::new(w), peer_addr, options).await
    }

    /// The `version`/`verack` handshake over an established connection to `peer_addr`.
    pub(crate) async fn handshake(
        r: P2pReader,
        w: P2pWriter,
        peer_addr: Option<SocketAddr>,
        options: P2pOptions,
    ) -> std::result::Result<Self, P2pError> {
        let mut reader = BufReader::with_capacity(256 << 10, r);
        let mut writer = BufWriter::new(w);
        let version = encode_version(options.protocol_version, &options.user_agent, 0, peer_addr);
        write_message(&mut writer, options.magic, "version", &version).await?;
        let refused = |reason: String| P2pError::HandshakeRefused {
            reason,
            network: options.network.clone(),
            magic: hex::encode(options.magic),
        };
        let (mut peer, mut verack) = (None, false);
        while peer.is_none() || !verack {
            let msg = match read_message(&mut reader, options.magic, options.max_message).await {
                Ok(m) => m,
                Err(ReadError::Eof) => return Err(refused(CLOSED_IN_HANDSHAKE.into())),
                Err(ReadError::Io(e)) if is_hang_up(&e) => {
                    return Err(refused(format!("{CLOSED_IN_HANDSHAKE}: {e}")))
                }
                Err(e) => return Err(convert_read_error(e, &options, "during the handshake")),
            };
            match msg.command.as_str() {
                "version" => {
                    peer = Some(decode_version(&msg.payload)?);
                    write_message(&mut writer, options.magic, "verack", &[]).await?;
                }
                "verack" => verack = true,
                "ping" => write_message(&mut writer, options.magic, "pong", &msg.payload).await?,
                "reject" => {
                    return Err(refused(format!(
                        "`reject`: {}",
                        String::from_utf8_lossy(&msg.payload)
                    )))
                }
                other => debug!(command = other, "ignored during the P2P handshake"),
            }
        }
        let peer = peer.ok_or_else(|| refused("no `version`".into()))?;
        debug!(version = peer.version, agent = %peer.user_agent, height = peer.start_height, "P2P handshake done");
        Ok(P2pBlockSource {
            reader,
            writer,
            options,
            peer,
            nonce: rand::random(),
        })
    }

    /// What the node announced in its `version`.
    pub fn peer(&self) -> &PeerVersion {
        &self.peer
    }

    /// The options in use.
    pub fn options(&self) -> &P2pOptions {
        &self.options
    }

    async fn send(&mut self, command: &str, payload: &[u8]) -> std::result::Result<(), P2pError> {
        let bytes = encode_message(self.options.magic, command, payload);
        self.writer.write_all(&bytes).await?;
        Ok(())
    }

    async fn flush(&mut self) -> std::result::Result<(), P2pError> {
        self.writer.flush().await?;
        Ok(())
    }

    /// The next message other than `ping` (answered here).
    async fn next(&mut self, doing: &'static str) -> std::result::Result<Message, P2pError> {
        loop {
            let limit = self.options.read_timeout;
            let read = read_message(
                &mut self.reader,
                self.options.magic,
                self.options.max_message,
            );
            let msg = match tokio::time::timeout(limit, read).await {
                Err(_) => {
                    return Err(P2pError::Timeout {
                        doing,
                        seconds: limit.as_secs(),
                    })
                }
                Ok(Err(ReadError::Eof)) => return Err(P2pError::Closed { doing }),
                Ok(Err(e)) => return Err(convert_read_error(e, &self.options, doing)),
                Ok(Ok(m)) => m,
            };
            if msg.command == "ping" {
                self.send("pong", &msg.payload).await?;
                self.flush().await?;
                continue;
            }
            return Ok(msg);
        }
    }

    /// The raw blocks with `hashes` (internal order), in that order. Requests are pipelined:
    /// [`P2pOptions::batch`] blocks per `getdata`, two batches in flight.
    pub async fn blocks(
        &mut self,
        hashes: &[Hash32],
    ) -> std::result::Result<Vec<Vec<u8>>, P2pError> {
        const DOING: &str = "while waiting for blocks";
        let mut out: Vec<Option<Vec<u8>>> = vec![None; hashes.len()];
        let mut wanted: HashMap<Hash32, Vec<usize>> = HashMap::new();
        // (pong nonce, index range) of the batches sent and not yet fenced
        let mut in_flight: VecDeque<(u64, std::ops::Range<usize>)> = VecDeque::new();
        let batch = self.options.batch.clamp(1, MAX_INV);
        let kind = self.options.block_inv_type();
        let (mut sent, mut next_by_order) = (0usize, 0usize);
        while sent < hashes.len() || !in_flight.is_empty() {
            let mut wrote = false;
            while in_flight.len() < 2 && sent < hashes.len() {
                let end = (sent + batch).min(hashes.len());
                let items: Vec<(u32, Hash32)> =
                    hashes[sent..end].iter().map(|h| (kind, *h)).collect();
                for (i, h) in hashes[sent..end].iter().enumerate() {
                    wanted.entry(*h).or_default().push(sent + i);
                }
                self.send("getdata", &encode_inv(&items)).await?;
                self.nonce = self.nonce.wrapping_add(1);
                let nonce = self.nonce;
                self.send("ping", &nonce.to_le_bytes()).await?;
                in_flight.push_back((nonce, sent..end));
                sent = end;
                wrote = true;
            }
            if wrote {
                self.flush().await?;
            }
            let msg = self.next(DOING).await?;
            match msg.command.as_str() {
                "block" => {
                    let index = if self.options.sha256d_header {
                        let header = msg.payload.get(..80).ok_or_else(|| P2pError::Malformed {
                            command: "block".into(),
                            reason: format!("{} bytes, shorter than a header", msg.payload.len()),
                        })?;
                        let hash = sha256d(header);
                        let slots = wanted.get_mut(&hash);
                        match slots.and_then(|s| s.pop()) {
                            Some(i) => i,
                            None => {
                                debug!(hash = %hash_to_hex(&hash), "unrequested block ignored");
                                continue;
                            }
                        }
                    } else {
                        // Blocks come in request order; a skipped one shows at the fence.
                        let i = next_by_order;
                        if i >= sent {
                            continue;
                        }
                        next_by_order += 1;
                        i
                    };
                    out[index] = Some(msg.payload);
                }
                "pong" => {
                    let nonce = Cursor::new(&msg.payload, "pong").u64()?;
                    if in_flight.front().is_some_and(|(n, _)| *n == nonce) {
                        if let Some((_, range)) = in_flight.pop_front() {
                            if let Some(i) = range.clone().find(|&i| out[i].is_none()) {
                                return Err(P2pError::NotFound {
                                    hash: hash_to_hex(&hashes[i]),
                                });
                            }
                            next_by_order = next_by_order.max(range.end);
                        }
                    }
                }
                "notfound" => {
                    let items = decode_inv(&msg.payload, "notfound")?;
                    if let Some((_, h)) = items.iter().find(|(_, h)| wanted.contains_key(h)) {
                        return Err(P2pError::NotFound {
                            hash: hash_to_hex(h),
                        });
                    }
                }
                other => debug!(command = other, "ignored P2P message"),
            }
        }
        out.into_iter()
            .zip(hashes)
            .map(|(b, h)| {
                b.ok_or_else(|| P2pError::NotFound {
                    hash: hash_to_hex(h),
                })
            })
            .collect()
    }

    /// `getheaders`: the headers after the locator's fork point, up to `stop` or
    /// [`MAX_HEADERS`]. Only for networks with fixed 80-byte headers.
    pub async fn headers(
        &mut self,
        locator: &[Hash32],
        stop: &Hash32,
    ) -> std::result::Result<Vec<[u8; 80]>, P2pError> {
        if !self.options.sha256d_header {
            return Err(P2pError::Unsupported("getheaders"));
        }
        let payload = encode_getheaders(self.options.protocol_version, locator, stop);
        self.send("getheaders", &payload).await?;
        self.flush().await?;
        loop {
            let msg = self.next("while waiting for headers").await?;
            if msg.command != "headers" {
                continue;
            }
            return decode_headers(&msg.payload);
        }
    }
}

const CLOSED_IN_HANDSHAKE: &str =
    "it closed the connection before `verack`; a node closes on a wrong network magic";

fn is_hang_up(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

fn convert_read_error(e: ReadError, options: &P2pOptions, doing: &'static str) -> P2pError {
    match e {
        ReadError::Eof => P2pError::Closed { doing },
        ReadError::WrongMagic(got) => P2pError::WrongMagic {
            network: options.network.clone(),
            expected: hex::encode(options.magic),
            got: hex::encode(got),
        },
        ReadError::TooLarge { command, len } => P2pError::TooLarge {
            command,
            len,
            max: options.max_message,
        },
        ReadError::BadChecksum(command) => P2pError::BadChecksum { command },
        ReadError::BadCommand => P2pError::Malformed {
            command: "?".into(),
            reason: "the command is not ASCII padded with NULs".into(),
        },
        ReadError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            P2pError::Closed { doing }
        }
        ReadError::Io(e) => P2pError::Io(e),
    }
}

// ---------------------------------------------------------------------------------------------
// DaemonApi with P2P blocks

/// A [`DaemonApi`] that fetches blocks over P2P and asks `inner` (usually an
/// [`super::RpcDaemon`]) everything else. The connection is opened on first use and reopened
/// once when the node dropped it.
pub struct P2pDaemon {
    inner: Arc<dyn DaemonApi>,
    addr: String,
    options: P2pOptions,
    conn: tokio::sync::Mutex<Option<P2pBlockSource>>,
}

impl P2pDaemon {
    /// Blocks from the node's P2P port at `addr` (`host:port`), the rest from `inner`.
    pub fn new(inner: Arc<dyn DaemonApi>, addr: impl Into<String>, options: P2pOptions) -> Self {
        P2pDaemon {
            inner,
            addr: addr.into(),
            options,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// The daemon answering everything but blocks.
    pub fn inner(&self) -> &Arc<dyn DaemonApi> {
        &self.inner
    }

    /// Several raw blocks in request order, pipelined over one connection.
    pub async fn blocks(&self, hashes: &[Hash32]) -> Result<Vec<Vec<u8>>> {
        let mut conn = self.conn.lock().await;
        let mut retried = false;
        loop {
            let source = match conn.as_mut() {
                Some(s) => s,
                None => conn.insert(
                    P2pBlockSource::connect(&self.addr, self.options.clone())
                        .await
                        .map_err(|e| self.error(e))?,
                ),
            };
            match source.blocks(hashes).await {
                Ok(blocks) => return Ok(blocks),
                Err(e) => {
                    // The stream may hold the rest of a batch: never reuse it after an error.
                    *conn = None;
                    if e.is_transient() && !retried {
                        debug!(error = %e, "P2P connection lost; reconnecting once");
                        retried = true;
                        continue;
                    }
                    return Err(self.error(e));
                }
            }
        }
    }

    fn error(&self, source: P2pError) -> DaemonError {
        DaemonError::P2p {
            peer: self.addr.clone(),
            source,
        }
    }
}

#[async_trait]
impl DaemonApi for P2pDaemon {
    async fn chain_info(&self) -> Result<ChainInfo> {
        self.inner.chain_info().await
    }
    async fn block_count(&self) -> Result<u32> {
        self.inner.block_count().await
    }
    async fn block_hashes(&self, heights: std::ops::Range<u32>) -> Result<Vec<Hash32>> {
        self.inner.block_hashes(heights).await
    }
    async fn block(&self, hash: &Hash32) -> Result<Vec<u8>> {
        let mut blocks = self.blocks(std::slice::from_ref(hash)).await?;
        blocks.pop().ok_or_else(|| {
            self.error(P2pError::NotFound {
                hash: hash_to_hex(hash),
            })
        })
    }
    async fn raw_transactions(&self, txids: &[Hash32]) -> Result<Vec<Option<Vec<u8>>>> {
        self.inner.raw_transactions(txids).await
    }
    async fn raw_transaction(&self, txid: &Hash32) -> Result<Vec<u8>> {
        self.inner.raw_transaction(txid).await
    }
    async fn raw_transaction_verbose(&self, txid: &Hash32) -> Result<serde_json::Value> {
        self.inner.raw_transaction_verbose(txid).await
    }
    async fn mempool_txids(&self) -> Result<Vec<Hash32>> {
        self.inner.mempool_txids().await
    }
    async fn mempool_info(&self) -> Result<MempoolInfo> {
        self.inner.mempool_info().await
    }
    async fn estimate_fee(&self, blocks: u32, mode: Option<&str>) -> Result<FeeEstimate> {
        self.inner.estimate_fee(blocks, mode).await
    }
    async fn relay_fee(&self) -> Result<f64> {
        self.inner.relay_fee().await
    }
    async fn node_version(&self) -> Result<super::NodeVersion> {
        self.inner.node_version().await
    }
    fn replace_urls(&self, urls: &[String]) -> Result<()> {
        self.inner.replace_urls(urls)
    }
    fn describe(&self) -> String {
        format!(
            "{} (blocks from its P2P port {})",
            self.inner.describe(),
            self.addr
        )
    }
    async fn send_raw_transaction(&self, raw_hex: &str) -> Result<Hash32> {
        self.inner.send_raw_transaction(raw_hex).await
    }
    async fn test_mempool_accept(&self, raw_hexes: &[String]) -> Result<serde_json::Value> {
        self.inner.test_mempool_accept(raw_hexes).await
    }
    async fn submit_package(&self, raw_hexes: &[String]) -> Result<serde_json::Value> {
        self.inner.submit_package(raw_hexes).await
    }
}

#[cfg(test)]
#[path = "p2p_tests.rs"]
mod tests;
