//! Peers: `server.peers.subscribe` from configuration, and verification of peer servers
//! (docs/protocol.md, `server.peers.subscribe` and Peer discovery) between real servers on
//! localhost.

#[path = "server_common.rs"]
mod common;

use std::sync::Arc;

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

#[tokio::test]
async fn peers_are_verified_against_our_chain() {
    // A shares our chain; C is a Litecoin server; D does not list the host we know it by.
    let (_a, port_a) = advertised(chain(20, 7), "127.0.0.1").await;
    let litecoin = anode_coins::lookup("Litecoin", "regtest").unwrap();
    let mut ltc = SimChain::new(Arc::clone(&litecoin), Profile::tiny(), 7).unwrap();
    ltc.mine(20, true).unwrap();
    let (_c, port_c) = advertised(Simulator::new(ltc), "localhost").await;

    let mut config = test_config();
    config.peers = vec![
        format!("127.0.0.1 v1.7.0 t{port_a}"),
        format!("localhost v1.7.0 t{port_c}"),
        "unreachable.invalid v1.7.0 s50002".into(),
    ];
    let b = start_with(chain(20, 7), config).await;
    let mut client = b.client_v("1.7").await;
    assert_eq!(
        client
            .result("server.peers.subscribe", json!([]))
            .await
            .as_array()
            .unwrap()
            .len(),
        3,
        "unverified peers are served as configured"
    );
    let outcomes = b.handle.verify_peers().await;
    let by_host: std::collections::HashMap<_, _> = outcomes.into_iter().collect();
    assert_eq!(by_host["127.0.0.1"], Ok(()));
    let why = by_host["localhost"].clone().unwrap_err();
    assert!(why.contains("genesis"), "{why}");
    assert_eq!(
        by_host["unreachable.invalid"].clone().unwrap_err(),
        "no TCP port advertised"
    );
    assert_eq!(
        client.result("server.peers.subscribe", json!([])).await,
        json!([["127.0.0.1", "127.0.0.1", ["v1.7.0", format!("t{port_a}")]]])
    );

    // A peer whose tip is far from ours is refused.
    let (_far, port_far) = advertised(chain(30, 7), "127.0.0.1").await;
    let mut config = test_config();
    config.peers = vec![format!("127.0.0.1 t{port_far}")];
    let e = start_with(chain(20, 7), config).await;
    let outcome = e.handle.verify_peers().await.remove(0).1.unwrap_err();
    assert!(outcome.contains("too far"), "{outcome}");

    // Same genesis and height, another history: the headers below the tips differ.
    let (_fork, port_fork) = advertised(chain(20, 8), "127.0.0.1").await;
    let mut config = test_config();
    config.peers = vec![format!("127.0.0.1 t{port_fork}")];
    let g = start_with(chain(20, 7), config).await;
    let outcome = g.handle.verify_peers().await.remove(0).1.unwrap_err();
    assert_eq!(outcome, "header 10 differs from ours");
}
