//! Entry points of the fuzz targets in `fuzz/` (docs/fuzzing.md), built only with the
//! `fuzzing` feature: the targets drive the same code a connected client, a node's P2P port
//! and an operator's configuration reach, through in-memory streams instead of sockets.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::daemon::p2p::{P2pBlockSource, P2pError, P2pOptions};
use crate::server::ServerHandle;

/// Serves one newline-delimited Electrum session over `stream` as the TCP listener serves a
/// client from `peer`; returns when the session ends.
pub async fn serve_lines<S>(handle: &ServerHandle, stream: S, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    handle.serve_lines(stream, peer).await;
}

/// Every method name a client can call in some protocol version.
pub fn method_names() -> &'static [&'static str] {
    crate::server::method_names()
}

/// The P2P `version`/`verack` handshake with a node at the other end of `reader`/`writer`,
/// as [`P2pBlockSource::connect`] does it after connecting.
pub async fn p2p_handshake<R, W>(
    reader: R,
    writer: W,
    options: P2pOptions,
) -> Result<P2pBlockSource, P2pError>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    P2pBlockSource::handshake(Box::new(reader), Box::new(writer), None, options).await
}
