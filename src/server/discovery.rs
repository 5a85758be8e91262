//! Verifying a peer server (docs/protocol.md, Peer discovery): connect over TCP, negotiate, and
//! compare its genesis, tip and recent headers with ours; a peer must also list itself in its
//! features.
//!
//! Only TCP is tried so far (SSL peers and Tor need certificate-agnostic TLS and a SOCKS
//! proxy), nothing is learned from the peer's own peer list, and nothing runs periodically:
//! [`super::ServerHandle::verify_peers`] is the entry point for the admin layer or a future
//! discovery loop.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::peers::PeerEntry;
use super::Shared;

/// How long one verification may take.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest tip-height difference accepted.
const MAX_TIP_DIFFERENCE: u32 = 5;
/// Depth below the lower tip at which headers must agree.
const HEADER_CHECK_DEPTH: u32 = 10;
/// Longest answer line read from a peer.
const MAX_LINE: usize = 4 * 1024 * 1024;

/// A JSON-RPC client over one TCP connection, enough for verification.
struct PeerClient {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl PeerClient {
    async fn send(&mut self, requests: &[(u64, &str, Value)]) -> Result<(), String> {
        let mut out = Vec::new();
        for (id, method, params) in requests {
            let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
            out.extend_from_slice(msg.to_string().as_bytes());
            out.push(b'\n');
        }
        self.writer
            .write_all(&out)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// Reads until every id in `ids` is answered; notifications are skipped.
    async fn answers(&mut self, ids: &[u64]) -> Result<HashMap<u64, Value>, String> {
        let mut got = HashMap::new();
        while got.len() < ids.len() {
            let mut line = Vec::new();
            let n = (&mut self.reader)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut line)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("connection closed".into());
            }
            let v: Value =
                serde_json::from_slice(&line).map_err(|e| format!("bad JSON from peer: {e}"))?;
            let Some(id) = v.get("id").and_then(Value::as_u64) else {
                continue;
            };
            if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
                return Err(format!("peer error to request {id}: {e}"));
            }
            got.insert(id, v.get("result").cloned().unwrap_or(Value::Null));
        }
        Ok(got)
    }
}

/// Verifies one peer; `Err` says why it is not acceptable.
pub(crate) async fn verify(shared: &Shared, peer: &PeerEntry) -> Result<(), String> {
    tokio::time::timeout(VERIFY_TIMEOUT, verify_internal(shared, peer))
        .await
        .map_err(|_| "timed out".to_string())?
}

async fn verify_internal(shared: &Shared, peer: &PeerEntry) -> Result<(), String> {
    let port = peer.tcp_port.ok_or("no TCP port advertised")?;
    let stream = TcpStream::connect((peer.host.as_str(), port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (r, w) = stream.into_split();
    let mut client = PeerClient {
        reader: BufReader::new(r),
        writer: w,
    };
    client
        .send(&[
            (
                1,
                "server.version",
                json!([shared.config.server_version, ["1.4", "1.7.0"]]),
            ),
            (2, "blockchain.headers.subscribe", json!([])),
            (3, "server.features", json!([])),
            (4, "server.peers.subscribe", json!([])),
        ])
        .await?;
    let answers = client.answers(&[1, 2, 3, 4]).await?;
    let features = &answers[&3];
    let ours = crate::daemon::hash_to_hex(&shared.coin.params().genesis_hash);
    let theirs = features
        .get("genesis_hash")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !theirs.eq_ignore_ascii_case(&ours) {
        return Err(format!("genesis {theirs} differs from ours {ours}"));
    }
    let lists_itself = features
        .get("hosts")
        .and_then(Value::as_object)
        .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case(&peer.host)));
    if !lists_itself {
        return Err(format!("its features do not list {}", peer.host));
    }
    let their_height = answers[&2]
        .get("height")
        .and_then(Value::as_u64)
        .and_then(|h| u32::try_from(h).ok())
        .ok_or("no tip height")?;
    let our_height = shared.query.tip().height;
    if their_height.abs_diff(our_height) > MAX_TIP_DIFFERENCE {
        return Err(format!(
            "tip height {their_height} too far from ours ({our_height})"
        ));
    }
    let check = their_height
        .min(our_height)
        .saturating_sub(HEADER_CHECK_DEPTH);
    client
        .send(&[(5, "blockchain.block.header", json!([check]))])
        .await?;
    let their_header = client.answers(&[5]).await?.remove(&5).unwrap_or_default();
    let our_header = shared
        .query
        .header(check)
        .await
        .map_err(|e| format!("our header {check}: {e}"))?
        .map(hex::encode)
        .ok_or_else(|| format!("we have no header {check}"))?;
    if their_header.as_str() != Some(our_header.as_str()) {
        return Err(format!("header {check} differs from ours"));
    }
    Ok(())
}
