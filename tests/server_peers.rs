//! Peers: `server.peers.subscribe` from configuration, and verification of peer servers
//! (docs/protocol.md, `server.peers.subscribe` and Peer discovery) between real servers on
//! localhost.

#[path = "server_common.rs"]
mod common;

use std::sync::Arc;

use anode::admin::PeerStatus;
use anode::simulator::{Profile, SimChain, Simulator};
use common::*;
use serde_json::json;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn advertised(sim: Simulator, host: &str) -> (Harness, u16) {
    let port = free_port();
    let mut config = test_config();
    config.services = vec![format!("tcp://127.0.0.1:{port}").parse().unwrap()];
    config.report_services = vec![format!("tcp://{host}:{port}").parse().unwrap()];
    (start_with(sim, config).await, port)
}

fn status(h: &Harness, host: &str) -> PeerStatus {
    let peers = h.peers.peers();
    let peer = peers.iter().find(|p| p.host == host);
    peer.unwrap_or_else(|| panic!("{host} is not known: {peers:?}"))
        .status
}

#[tokio::test]
async fn peers_are_verified_against_our_chain() {
    // A shares our chain; C is a Litecoin server; the third advertises no TCP port.
    let (_a, port_a) = advertised(chain(20, 7), "127.0.0.1").await;
    let litecoin = anode_coins::lookup("Litecoin", "regtest").unwrap();
    let mut ltc = SimChain::new(Arc::clone(&litecoin), Profile::tiny(), 7).unwrap();
    ltc.mine(20, true).unwrap();
    let (_c, port_c) = advertised(Simulator::new(ltc), "localhost").await;

    let configured = vec![
        format!("127.0.0.1 v1.7.0 t{port_a}"),
        format!("localhost v1.7.0 t{port_c}"),
        "unreachable.invalid v1.7.0 s50002".into(),
    ];
    let b = start_with_peers(chain(20, 7), test_config(), configured).await;
    let mut client = b.client_v("1.7").await;
    assert_eq!(
        client.result("server.peers.subscribe", json!([])).await,
        json!([]),
        "nothing is served before it is checked"
    );
    b.peers.check_due_peers().await;
    assert_eq!(status(&b, "127.0.0.1"), PeerStatus::Good);
    assert_eq!(status(&b, "localhost"), PeerStatus::Bad, "another genesis");
    assert_eq!(status(&b, "unreachable.invalid"), PeerStatus::Never);
    assert_eq!(
        client.result("server.peers.subscribe", json!([])).await,
        json!([["127.0.0.1", "127.0.0.1", ["v1.7.0", format!("t{port_a}")]]])
    );

    // A peer whose tip is far from ours is not good, but not bad either: it may be syncing.
    let (_far, port_far) = advertised(chain(30, 7), "127.0.0.1").await;
    let configured = vec![format!("127.0.0.1 t{port_far}")];
    let e = start_with_peers(chain(20, 7), test_config(), configured).await;
    e.peers.check_due_peers().await;
    assert_eq!(status(&e, "127.0.0.1"), PeerStatus::Never);

    // Same genesis and height, another history: the headers below the tips differ.
    let (_fork, port_fork) = advertised(chain(20, 8), "127.0.0.1").await;
    let configured = vec![format!("127.0.0.1 t{port_fork}")];
    let g = start_with_peers(chain(20, 7), test_config(), configured).await;
    g.peers.check_due_peers().await;
    assert_eq!(status(&g, "127.0.0.1"), PeerStatus::Bad);
}
