//! The simulator's P2P listener: enough of the peer protocol for a block source — the
//! `version`/`verack` handshake, `ping`/`pong`, `getdata` for blocks (`notfound` for unknown
//! hashes) and `getheaders` — with the network's magic from the coin parameters. Like Bitcoin
//! Core it waits for the peer's `version` and closes the connection on a message with another
//! magic. Blocks are served as stored, with witness data, for both `MSG_BLOCK` and
//! `MSG_WITNESS_BLOCK`.

use std::net::SocketAddr;

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::debug;

use super::control::Simulator;
use crate::daemon::p2p::{
    decode_getheaders, decode_inv, encode_inv, encode_message, encode_version, put_varint,
    read_message, ReadError, DEFAULT_MAX_MESSAGE, DEFAULT_PROTOCOL_VERSION, MAX_HEADERS, MSG_BLOCK,
    MSG_WITNESS_BLOCK,
};

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

async fn session(
    sim: Simulator,
    stream: TcpStream,
    magic: [u8; 4],
    version: u32,
    mut stopped: watch::Receiver<bool>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr().ok();
    let (r, w) = stream.into_split();
    let mut reader = BufReader::new(r);
    let mut writer = BufWriter::with_capacity(256 << 10, w);
    let max = DEFAULT_MAX_MESSAGE;
    loop {
        let msg = tokio::select! {
            m = read_message(&mut reader, magic, max) => m,
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
        match msg.command.as_str() {
            "version" => {
                let height = sim.with_chain(|c| c.height()) as i32;
                let payload = encode_version(version, "/anode-simulator/", height, peer);
                send(&mut out, "version", &payload);
                send(&mut out, "verack", &[]);
            }
            "ping" => send(&mut out, "pong", &msg.payload),
            "getdata" => {
                let Ok(items) = decode_inv(&msg.payload, "getdata") else {
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
                            writer.write_all(&out).await?;
                            out.clear();
                            writer
                                .write_all(&encode_message(magic, "block", &raw))
                                .await?;
                        }
                        None => missing.push((kind, hash)),
                    }
                }
                if !missing.is_empty() {
                    send(&mut out, "notfound", &encode_inv(&missing));
                }
            }
            "getheaders" => {
                let Ok((locator, stop)) = decode_getheaders(&msg.payload, "getheaders") else {
                    return Ok(());
                };
                let payload = sim.with_chain(|c| {
                    // The fork point: the first locator hash on the active chain, else genesis.
                    let fork = locator.iter().find_map(|h| c.height_of(h)).unwrap_or(0);
                    let mut headers = Vec::new();
                    let mut n = 0u64;
                    let mut height = fork + 1;
                    while let (Some(header), Some(hash)) = (c.header_at(height), c.hash_at(height))
                    {
                        headers.extend_from_slice(&header);
                        headers.push(0); // transaction count
                        n += 1;
                        if n as usize == MAX_HEADERS || hash == stop {
                            break;
                        }
                        height += 1;
                    }
                    let mut payload = Vec::with_capacity(headers.len() + 3);
                    put_varint(&mut payload, n);
                    payload.extend_from_slice(&headers);
                    payload
                });
                send(&mut out, "headers", &payload);
            }
            _ => {} // verack, sendheaders, feefilter...: nothing to answer
        }
        writer.write_all(&out).await?;
        writer.flush().await?;
    }
}
