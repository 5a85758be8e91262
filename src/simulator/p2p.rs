//! The simulator's P2P listener: enough of the peer protocol for a block source (anode's,
//! electrs 0.11's) — the `version`/`verack` handshake, `ping`/`pong`, `getdata` for blocks
//! (`notfound` for unknown hashes), `getheaders`, and new-block announcements (`inv`, or
//! `headers` after `sendheaders`) — with the network's magic from the coin parameters. Like
//! Bitcoin Core it waits for the peer's `version`, ignores other messages until the
//! handshake is done, and closes the connection on a message with another magic. Blocks are
//! served as stored, with witness data, for both `MSG_BLOCK` and `MSG_WITNESS_BLOCK`.

use std::net::SocketAddr;

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::debug;

use super::control::Simulator;
use crate::daemon::p2p::{
    decode_getheaders, decode_inv, decode_version, encode_inv, encode_message, encode_version_with,
    put_varint, read_message, ReadError, DEFAULT_MAX_MESSAGE, DEFAULT_PROTOCOL_VERSION,
    MAX_HEADERS, MSG_BLOCK, MSG_WITNESS_BLOCK,
};
use anode_coins::Hash32;

/// A running P2P listener of the simulator.
pub struct SimP2pServer {
    /// where it listens
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
}

impl SimP2pServer {
    /// Stops listening (open connections end at their next message).
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for SimP2pServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves `sim`'s chain over P2P on `addr` (port 0 picks a free one). Fails when the network
/// has no `p2p_magic`.
pub async fn serve_p2p(sim: Simulator, addr: SocketAddr) -> std::io::Result<SimP2pServer> {
    let (magic, id, version) = sim.with_chain(|c| {
        let p = c.coin().params();
        (p.p2p_magic, p.id(), p.p2p_protocol_version)
    });
    let magic = magic.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{id} has no P2P magic (`p2p_magic`), so the simulator cannot serve P2P"),
        )
    })?;
    let version = version.unwrap_or(DEFAULT_PROTOCOL_VERSION);
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (shutdown, mut stopped) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stopped.changed() => return,
            };
            let Ok((stream, peer)) = accepted else {
                continue;
            };
            let (sim, stopped) = (sim.clone(), stopped.clone());
            tokio::spawn(async move {
                if let Err(e) = session(sim, stream, magic, version, stopped).await {
                    debug!(%peer, error = %e, "simulator P2P connection ended");
                }
            });
        }
    });
    Ok(SimP2pServer { addr, shutdown })
}

/// What a session has learned of its peer.
#[derive(Default)]
struct PeerState {
    /// the peer's protocol version, once its `version` came
    version: Option<u32>,
    /// whether the peer acknowledged ours: only then does Core announce blocks
    verack: bool,
    /// the peer asked for `headers` announcements instead of `inv` (BIP130)
    sendheaders: bool,
    /// the tip last announced or known to the peer
    announced: Option<Hash32>,
}

/// Blocks announced with `headers` at most; more, and only the tip goes out in an `inv`, as
/// Core does.
const MAX_BLOCKS_TO_ANNOUNCE: usize = 8;

async fn session(
    sim: Simulator,
    stream: TcpStream,
    magic: [u8; 4],
    version: u32,
    mut stopped: watch::Receiver<bool>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let _counted = sim.peer_connected();
    let peer = stream.peer_addr().ok();
    let (r, w) = stream.into_split();
    let mut writer = BufWriter::with_capacity(256 << 10, w);
    // Messages are read by a task of their own: a read cut short by an announcement would
    // lose the bytes it had taken.
    let (messages_in, mut messages) = tokio::sync::mpsc::channel(16);
    let _reader = AbortOnDrop(tokio::spawn(async move {
        let mut reader = BufReader::new(r);
        loop {
            let msg = read_message(&mut reader, magic, DEFAULT_MAX_MESSAGE).await;
            let failed = msg.is_err();
            if messages_in.send(msg).await.is_err() || failed {
                return;
            }
        }
    }));
    let mut tips = sim.subscribe_tips();
    let mut state = PeerState::default();
    loop {
        let msg = tokio::select! {
            m = messages.recv() => m.unwrap_or(Err(ReadError::Eof)),
            changed = tips.changed() => {
                if changed.is_err() {
                    return Ok(()); // the simulator is gone
                }
                let out = announce(&sim, magic, &mut state);
                writer.write_all(&out).await?;
                writer.flush().await?;
                continue;
            }
            _ = stopped.changed() => return Ok(()),
        };
        let msg = match msg {
            Ok(m) => m,
            Err(ReadError::Eof) => return Ok(()),
            Err(ReadError::Io(e)) => return Err(e),
            Err(e) => {
                // Bitcoin Core drops the peer on a bad header, wrong magic included.
                debug!(error = ?e, "simulator P2P: bad message, disconnecting");
                return Ok(());
            }
        };
        let send = |out: &mut Vec<u8>, command: &str, payload: &[u8]| {
            out.extend_from_slice(&encode_message(magic, command, payload));
        };
        let mut out = Vec::new();
        // Core ignores everything before the peer's `version`, and all but `verack` (and
        // feature negotiation) between it and `verack`.
        match (state.version, state.verack, msg.command.as_str()) {
            (None, _, "version") => {
                let Ok(theirs) = decode_version(&msg.payload) else {
                    return Ok(());
                };
                if theirs.version < MIN_PEER_VERSION {
                    debug!(
                        version = theirs.version,
                        "simulator P2P: obsolete peer, disconnecting"
                    );
                    return Ok(());
                }
                state.version = Some(theirs.version);
                let (height, segwit) =
                    sim.with_chain(|c| (c.height() as i32, c.coin().params().bech32_hrp.is_some()));
                let (services, _) = super::rpc::local_services(segwit);
                let payload =
                    encode_version_with(version, services, USER_AGENT, height, peer, true);
                send(&mut out, "version", &payload);
                send(&mut out, "verack", &[]);
            }
            (None, _, _) => {}
            (Some(_), false, "verack") => {
                state.verack = true;
                // The peer knows the tip our `version` carried.
                state.announced = Some(sim.with_chain(|c| c.tip().hash));
            }
            (Some(_), false, _) => {}
            (Some(_), true, command) => {
                serve(
                    &sim,
                    magic,
                    &msg.payload,
                    command,
                    &mut state,
                    &mut out,
                    &mut writer,
                )
                .await?
            }
        }
        writer.write_all(&out).await?;
        writer.flush().await?;
    }
}

/// Stops a task when its owner goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The user agent the simulated node gives, matching `getnetworkinfo.subversion`.
const USER_AGENT: &str = "/Satoshi:31.0.0/anode-simulator/";

/// The oldest protocol version Core talks to (`MIN_PEER_PROTO_VERSION`).
const MIN_PEER_VERSION: u32 = 31800;

/// Answers one message after the handshake.
async fn serve(
    sim: &Simulator,
    magic: [u8; 4],
    payload: &[u8],
    command: &str,
    state: &mut PeerState,
    out: &mut Vec<u8>,
    writer: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
) -> std::io::Result<()> {
    let send = |out: &mut Vec<u8>, command: &str, payload: &[u8]| {
        out.extend_from_slice(&encode_message(magic, command, payload));
    };
    match command {
        "ping" => send(out, "pong", payload),
        "sendheaders" => state.sendheaders = true,
        "getdata" => {
            let Ok(items) = decode_inv(payload, "getdata") else {
                return Ok(());
            };
            let mut missing = Vec::new();
            for (kind, hash) in items {
                if kind != MSG_BLOCK && kind != MSG_WITNESS_BLOCK {
                    missing.push((kind, hash));
                    continue;
                }
                match sim.serve_block(&hash) {
                    Some(raw) => {
                        // Stream big answers instead of holding them all.
                        writer.write_all(out).await?;
                        out.clear();
                        writer
                            .write_all(&encode_message(magic, "block", &raw))
                            .await?;
                    }
                    None => missing.push((kind, hash)),
                }
            }
            if !missing.is_empty() {
                send(out, "notfound", &encode_inv(&missing));
            }
        }
        "getheaders" => {
            let Ok((locator, stop)) = decode_getheaders(payload, "getheaders") else {
                return Ok(());
            };
            let reply = sim.with_chain(|c| {
                let heights: Vec<u32> = if locator.is_empty() {
                    // Core: no locator asks for the stop block alone, and an unknown one gets
                    // no answer at all.
                    match c.height_of(&stop) {
                        Some(h) => vec![h],
                        None => return None,
                    }
                } else {
                    // The fork point: the first locator hash on the active chain, else genesis.
                    let fork = locator.iter().find_map(|h| c.height_of(h)).unwrap_or(0);
                    let mut heights = Vec::new();
                    let mut height = fork + 1;
                    while height <= c.height() && heights.len() < MAX_HEADERS {
                        heights.push(height);
                        if c.hash_at(height) == Some(stop) {
                            break;
                        }
                        height += 1;
                    }
                    heights
                };
                // The last header sent is what the peer now knows of the chain.
                let last = heights.last().and_then(|h| c.hash_at(*h));
                Some((headers_payload(c, &heights), last))
            });
            let Some((payload, last)) = reply else {
                return Ok(());
            };
            if let Some(last) = last {
                state.announced = Some(last);
            }
            send(out, "headers", &payload);
        }
        _ => {} // verack again, feefilter, sendcmpct, inv...: nothing to answer
    }
    Ok(())
}

/// A `headers` payload for the blocks at `heights` (each with a zero transaction count).
fn headers_payload(chain: &super::SimChain, heights: &[u32]) -> Vec<u8> {
    let mut headers = Vec::new();
    let mut n = 0u64;
    for h in heights {
        if let Some(header) = chain.header_at(*h) {
            headers.extend_from_slice(&header);
            headers.push(0);
            n += 1;
        }
    }
    let mut payload = Vec::with_capacity(headers.len() + 3);
    put_varint(&mut payload, n);
    payload.extend_from_slice(&headers);
    payload
}

/// Announces a new tip as Core does once the handshake is done: `headers` for up to eight
/// new blocks to a peer that sent `sendheaders`, otherwise an `inv` of the tip alone.
fn announce(sim: &Simulator, magic: [u8; 4], state: &mut PeerState) -> Vec<u8> {
    if !state.verack {
        return Vec::new();
    }
    sim.with_chain(|c| {
        let tip = c.tip().hash;
        if state.announced == Some(tip) {
            return Vec::new();
        }
        // Blocks the peer has not heard of: above the last announced one still on the chain.
        let from = state
            .announced
            .and_then(|h| c.height_of(&h))
            .map_or(c.height(), |h| h + 1);
        let new: Vec<u32> = (from..=c.height()).collect();
        state.announced = Some(tip);
        if state.sendheaders && !new.is_empty() && new.len() <= MAX_BLOCKS_TO_ANNOUNCE {
            encode_message(magic, "headers", &headers_payload(c, &new))
        } else {
            encode_message(magic, "inv", &encode_inv(&[(MSG_BLOCK, tip)]))
        }
    })
}
