//! Checking one peer (docs/peers.md, Checking a peer): connect (SSL first, then TCP),
//! `server.version`, `server.features` (same genesis, lists itself),
//! `blockchain.headers.subscribe` and `blockchain.block.header` (same chain as ours),
//! `server.peers.subscribe` (more peers), and `server.add_peer` to announce ourselves when the
//! peer does not know us.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_rustls::TlsConnector;
use tracing::debug;

use super::client::{connect, Route, Session};
use super::peer::{is_onion, Advert};
use super::{LocalChain, PeerError};

/// Tips further apart than this mean one side is still syncing; try again later (docs/peers.md).
const MAX_TIP_DIFFERENCE: u32 = 5;
/// Headers compared this far below the lower tip, where a reorg is unlikely to disagree
/// (docs/peers.md).
const CHECK_DEPTH: u32 = 10;
/// Entries of one `server.peers.subscribe` answer looked at, at most (the manager adds only a
/// couple of new ones per answer; the rest only tell whether the peer knows us).
const MAX_TRIPLES: usize = 1000;

/// What a check needs from the manager.
pub(crate) struct Context<'a> {
    pub client_name: &'a str,
    pub genesis_hash: &'a str,
    pub default_ports: (u16, u16),
    pub tls: &'a TlsConnector,
    pub proxy: Option<&'a (String, u16)>,
    pub force_proxy: bool,
    pub timeout: Duration,
    pub chain: &'a dyn LocalChain,
    /// our `server.features`, when we announce ourselves
    pub announce: Option<&'a Value>,
}

/// A peer that passed.
#[derive(Debug)]
pub(crate) struct Verified {
    pub advert: Advert,
    pub features: Value,
    pub ip: Option<IpAddr>,
    pub learned: Vec<Advert>,
}

/// Checks `advert`, trying its SSL port and then its TCP port. Stops at the first answer that
/// makes the peer bad: another port would not change that.
pub(crate) async fn verify(advert: &Advert, cx: &Context<'_>) -> Result<Verified, PeerError> {
    let proxy = if is_onion(&advert.host) || cx.force_proxy {
        Some(cx.proxy.ok_or(PeerError::NoProxy)?.clone())
    } else {
        None
    };
    let routes = [(advert.ssl_port, true), (advert.tcp_port, false)];
    let mut last = PeerError::NoPorts;
    for (port, tls) in routes {
        let Some(port) = port else { continue };
        let route = Route {
            host: advert.host.clone(),
            port,
            tls,
            proxy: proxy.clone(),
        };
        match verify_route(advert, &route, cx).await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_bad() => return Err(e),
            Err(e) => {
                debug!(host = %advert.host, port, tls, error = %e, "peer check failed on this port");
                last = e;
            }
        }
    }
    Err(last)
}

async fn verify_route(
    advert: &Advert,
    route: &Route,
    cx: &Context<'_>,
) -> Result<Verified, PeerError> {
    // Tor circuits are slow to build and slow to answer; ElectrumX allows them four times as long.
    let timeout = if route.proxy.is_some() {
        cx.timeout * 4
    } else {
        cx.timeout
    };
    let (stream, ip) = connect(route, cx.tls, timeout).await?;
    let mut session = Session::new(stream, timeout);

    let version = session
        .request("server.version", json!([cx.client_name, ["1.4", "1.7.0"]]))
        .await?;
    if version.as_array().is_none_or(|v| v.len() != 2) {
        return Err(PeerError::Protocol(format!(
            "server.version answer {version}"
        )));
    }

    let features = session.request("server.features", json!([])).await?;
    let genesis = features
        .get("genesis_hash")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !genesis.eq_ignore_ascii_case(cx.genesis_hash) {
        return Err(PeerError::WrongGenesis(genesis.chars().take(64).collect()));
    }
    // A peer must describe the host we reached it by; otherwise its advertised ports cannot be
    // trusted to belong to it.
    let mut checked = Advert::from_features(&features, &advert.host).ok_or(PeerError::NotListed)?;
    if checked.protocol_max.is_none() {
        checked.protocol_max = advert.protocol_max.clone();
    }

    check_chain(&mut session, cx).await?;

    let peers = session.request("server.peers.subscribe", json!([])).await?;
    let triples = peers.as_array().map(Vec::as_slice).unwrap_or_default();
    let learned: Vec<Advert> = triples
        .iter()
        .filter_map(|t| Advert::from_triple(t, cx.default_ports))
        .filter(|a| a.host != advert.host)
        .take(MAX_TRIPLES)
        .collect();

    if let Some(ours) = cx.announce {
        announce(&mut session, ours, &learned).await;
    }

    Ok(Verified {
        advert: checked,
        features,
        ip,
        learned,
    })
}

/// Compares tips, then the headers at `min(tips) - 10`.
async fn check_chain(session: &mut Session, cx: &Context<'_>) -> Result<(), PeerError> {
    let ours = cx.chain.tip_height().await.ok_or(PeerError::LocalChain)?;
    let tip = session
        .request("blockchain.headers.subscribe", json!([]))
        .await?;
    let theirs = tip
        .get("height")
        .and_then(Value::as_u64)
        .and_then(|h| u32::try_from(h).ok())
        .ok_or_else(|| PeerError::Protocol(format!("headers.subscribe answer {tip}")))?;
    if ours.abs_diff(theirs) > MAX_TIP_DIFFERENCE {
        return Err(PeerError::TipTooFar { ours, theirs });
    }
    let height = ours.min(theirs).saturating_sub(CHECK_DEPTH);
    let local = cx.chain.header(height).await.ok_or(PeerError::LocalChain)?;
    let answer = session
        .request("blockchain.block.header", json!([height]))
        .await?;
    let remote = answer
        .as_str()
        .ok_or_else(|| PeerError::Protocol(format!("block.header answer {answer}")))?;
    if !remote.eq_ignore_ascii_case(&hex::encode(local)) {
        return Err(PeerError::HeaderMismatch { height });
    }
    Ok(())
}

/// Calls `server.add_peer` with our features when the peer's list lacks one of our hosts or
/// lists it with other ports (docs/peers.md). The answer only matters to the peer, so errors
/// are logged.
async fn announce(session: &mut Session, ours: &Value, known: &[Advert]) {
    let Some(hosts) = ours.get("hosts").and_then(Value::as_object) else {
        return;
    };
    let missing = hosts.keys().any(|host| {
        let Some(mine) = Advert::from_features(ours, host) else {
            return false;
        };
        !known.iter().any(|k| {
            k.host == mine.host && k.tcp_port == mine.tcp_port && k.ssl_port == mine.ssl_port
        })
    });
    if !missing {
        return;
    }
    match session.request("server.add_peer", json!([ours])).await {
        Ok(answer) => debug!(%answer, "announced ourselves to peer"),
        Err(e) => debug!(error = %e, "server.add_peer to peer failed"),
    }
}
