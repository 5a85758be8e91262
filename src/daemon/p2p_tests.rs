//! P2P block source against the simulator's P2P listener, hand-made misbehaving peers, and the
//! real Bitcoin SV regtest node (`ANODE_BSV_BITCOIND`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::*;
use crate::simulator::{serve_p2p, Profile, SimChain, SimDaemon, SimP2pServer, Simulator};

fn coin(name: &str, net: &str) -> Arc<dyn anode_coins::Coin> {
    anode_coins::lookup(name, net).unwrap_or_else(|e| panic!("{name} {net}: {e}"))
}

fn simulator(name: &str, net: &str, blocks: u32) -> Simulator {
    let mut chain = SimChain::new(coin(name, net), Profile::tiny(), 5).unwrap();
    chain.mine(blocks, true).unwrap();
    Simulator::new(chain)
}

fn options(name: &str, net: &str) -> P2pOptions {
    let mut o = P2pOptions::from_params(coin(name, net).params()).unwrap();
    o.read_timeout = Duration::from_secs(10);
    o
}

async fn served(sim: &Simulator) -> SimP2pServer {
    serve_p2p(sim.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn all_blocks(sim: &Simulator) -> (Vec<Hash32>, Vec<Vec<u8>>) {
    sim.with_chain(|c| {
        (0..=c.height())
            .map(|h| {
                let b = c.block(h).unwrap();
                (b.hash, b.raw.clone())
            })
            .unzip()
    })
}

#[tokio::test]
async fn every_block_of_a_simulated_chain_arrives_byte_for_byte() {
    for (name, net) in [
        ("Bitcoin", "regtest"),
        ("BitcoinSV", "regtest"),
        ("Litecoin", "regtest"),
    ] {
        let sim = simulator(name, net, 40);
        let server = served(&sim).await;
        let mut source = P2pBlockSource::connect(&server.addr.to_string(), options(name, net))
            .await
            .unwrap();
        assert_eq!(source.peer().start_height, 40);
        assert_eq!(source.peer().version, DEFAULT_PROTOCOL_VERSION);
        let (hashes, raws) = all_blocks(&sim);
        let got = source.blocks(&hashes).await.unwrap();
        assert_eq!(got.len(), raws.len());
        for (h, (g, r)) in got.iter().zip(&raws).enumerate() {
            assert!(g == r, "{name} {net}: block {h} differs");
        }
        // The connection stays usable.
        let again = source.blocks(&hashes[3..5]).await.unwrap();
        assert_eq!(again, raws[3..5].to_vec());
    }
}

#[tokio::test]
async fn pipelined_requests_of_many_blocks_in_small_batches() {
    let sim = simulator("Bitcoin", "regtest", 160);
    let server = served(&sim).await;
    let (mut hashes, mut raws) = all_blocks(&sim);
    // Out of chain order and with a duplicate: answers follow the request.
    hashes.reverse();
    raws.reverse();
    hashes.push(hashes[7]);
    raws.push(raws[7].clone());
    for (batch, sha256d_header) in [(7, true), (16, true), (500, true), (9, false)] {
        let mut o = options("Bitcoin", "regtest");
        o.batch = batch;
        o.sha256d_header = sha256d_header;
        let mut source = P2pBlockSource::connect(&server.addr.to_string(), o)
            .await
            .unwrap();
        let got = source.blocks(&hashes).await.unwrap();
        assert!(got == raws, "batch {batch}, by hash {sha256d_header}");
    }
}

#[tokio::test]
async fn p2p_daemon_serves_blocks_over_p2p_and_delegates_the_rest() {
    let sim = simulator("Bitcoin", "regtest", 12);
    let server = served(&sim).await;
    let inner: Arc<dyn DaemonApi> = Arc::new(SimDaemon::new(sim.clone()));
    let daemon = P2pDaemon::new(
        inner,
        server.addr.to_string(),
        options("Bitcoin", "regtest"),
    );
    assert_eq!(daemon.block_count().await.unwrap(), 12);
    let hashes = daemon.block_hashes(0..13).await.unwrap();
    let (want_hashes, raws) = all_blocks(&sim);
    assert_eq!(hashes, want_hashes);
    for (h, raw) in hashes.iter().zip(&raws) {
        assert!(&daemon.block(h).await.unwrap() == raw);
    }
    assert!(daemon.blocks(&hashes).await.unwrap() == raws);
    // A block mined later arrives on the same connection.
    let new = sim.mine(1).unwrap();
    let block = daemon.block(&new[0]).await.unwrap();
    assert!(block == sim.with_chain(|c| c.tip().raw.clone()));
}

#[tokio::test]
async fn an_unknown_hash_is_a_clear_error() {
    let sim = simulator("Bitcoin", "regtest", 5);
    let server = served(&sim).await;
    let (hashes, _) = all_blocks(&sim);
    let unknown = [0x42u8; 32];
    for sha256d_header in [true, false] {
        let mut o = options("Bitcoin", "regtest");
        o.sha256d_header = sha256d_header;
        let mut source = P2pBlockSource::connect(&server.addr.to_string(), o)
            .await
            .unwrap();
        let err = source
            .blocks(&[hashes[1], unknown, hashes[2]])
            .await
            .unwrap_err();
        assert!(matches!(err, P2pError::NotFound { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(&hash_to_hex(&unknown)), "{text}");
        assert!(text.contains("does not have block"), "{text}");
    }
    // Through the daemon wrapper: a DaemonError naming the peer, not transient.
    let inner: Arc<dyn DaemonApi> = Arc::new(SimDaemon::new(sim.clone()));
    let daemon = P2pDaemon::new(
        inner,
        server.addr.to_string(),
        options("Bitcoin", "regtest"),
    );
    let err = daemon.block(&unknown).await.unwrap_err();
    assert!(matches!(
        err,
        DaemonError::P2p {
            source: P2pError::NotFound { .. },
            ..
        }
    ));
    assert!(!err.is_transient());
    assert!(err.to_string().contains(&server.addr.to_string()), "{err}");
}

#[tokio::test]
async fn a_wrong_magic_fails_with_a_clear_error() {
    // We speak mainnet to a regtest node: it hangs up, as Bitcoin Core does.
    let sim = simulator("Bitcoin", "regtest", 2);
    let server = served(&sim).await;
    let err = P2pBlockSource::connect(&server.addr.to_string(), options("Bitcoin", "mainnet"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, P2pError::HandshakeRefused { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("magic f9beb4d9") && text.contains("Bitcoin/mainnet"),
        "{text}"
    );

    // A peer that answers in another network's magic.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let msg = encode_message([0xf9, 0xbe, 0xb4, 0xd9], "version", &[0; 100]);
        let _ = s.write_all(&msg).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let err = P2pBlockSource::connect(&addr.to_string(), options("BitcoinSV", "regtest"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, P2pError::WrongMagic { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("f9beb4d9") && text.contains("dab5bffa"),
        "{text}"
    );
}

/// A peer that sends `bytes` after our `version`, then waits.
async fn peer_sending(bytes: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let _ = s.write_all(&bytes).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    addr
}

#[tokio::test]
async fn oversized_and_corrupt_messages_are_refused() {
    let o = options("Bitcoin", "regtest");
    // 100 MB announced, over the 64 MiB default: refused before any payload is read.
    let mut big = encode_message(o.magic, "version", &[]);
    big[16..20].copy_from_slice(&100_000_000u32.to_le_bytes());
    let err = P2pBlockSource::connect(&peer_sending(big).await.to_string(), o.clone())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            P2pError::TooLarge {
                len: 100_000_000,
                ..
            }
        ),
        "{err}"
    );

    let mut bad = encode_message(o.magic, "verack", b"xyz");
    bad[20] ^= 1;
    let err = P2pBlockSource::connect(&peer_sending(bad).await.to_string(), o.clone())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, P2pError::BadChecksum { .. }), "{err}");

    // Closed at once: handshake refused; nothing listening: an I/O error.
    let err = P2pBlockSource::connect(&peer_sending(Vec::new()).await.to_string(), o.clone())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, P2pError::HandshakeRefused { .. }), "{err}");
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let err = P2pBlockSource::connect(&port.to_string(), o)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, P2pError::Io(_)) && err.is_transient(),
        "{err}"
    );
}

#[tokio::test]
async fn getheaders_answers_after_the_fork_point() {
    let sim = simulator("Bitcoin", "regtest", 30);
    let server = served(&sim).await;
    let mut source =
        P2pBlockSource::connect(&server.addr.to_string(), options("Bitcoin", "regtest"))
            .await
            .unwrap();
    let (hashes, _) = all_blocks(&sim);
    let header = |h: usize| sim.with_chain(|c| c.block(h as u32).unwrap().header.clone());
    let got = source
        .headers(&[[9u8; 32], hashes[10]], &[0; 32])
        .await
        .unwrap();
    assert_eq!(got.len(), 20);
    assert_eq!(got[0].to_vec(), header(11));
    assert_eq!(got[19].to_vec(), header(30));
    let got = source.headers(&[hashes[0]], &hashes[5]).await.unwrap();
    assert_eq!(got.len(), 5);
    assert_eq!(got[4].to_vec(), header(5));
    assert!(source
        .headers(&[hashes[30]], &[0; 32])
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn networks_without_magic_are_refused() {
    let params = coin("Dogecoin", "testnet").params().clone();
    assert!(params.p2p_magic.is_none());
    let err = P2pOptions::from_params(&params).unwrap_err();
    assert!(matches!(err, P2pError::NoMagic { .. }));
    assert!(err.to_string().contains("Dogecoin/testnet"), "{err}");
    assert_eq!(
        options("Bitcoin", "regtest").block_inv_type(),
        MSG_WITNESS_BLOCK
    );
    assert_eq!(options("BitcoinSV", "regtest").block_inv_type(), MSG_BLOCK);
    assert_eq!(options("BitcoinSV", "regtest").max_message, 1 << 30);
    assert_eq!(
        options("Bitcoin", "mainnet").max_message,
        DEFAULT_MAX_MESSAGE
    );
}

// ---------------------------------------------------------------------------------------------
// The real Bitcoin SV node

struct Node {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        // `stop` was asked over RPC when the test got that far; make sure.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

#[tokio::test]
#[allow(
    clippy::print_stderr,
    reason = "the skip notice of a test that needs a node"
)]
async fn real_bsv_regtest_node_serves_blocks_over_p2p() {
    use crate::daemon::{hash_from_hex, RetryPolicy, RpcDaemon, RpcDaemonOptions};
    use serde_json::json;
    let Ok(bitcoind) = std::env::var("ANODE_BSV_BITCOIND") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "ANODE_BSV_BITCOIND is not set (scripts/install-bsv-node prints the path)"
        );
        eprintln!("skipped: set ANODE_BSV_BITCOIND=$(scripts/install-bsv-node) to run");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (rpc_port, p2p_port) = (free_port(), free_port());
    let child = std::process::Command::new(&bitcoind)
        .args([
            "-regtest".to_string(),
            format!("-datadir={}", dir.path().display()),
            "-server=1".into(),
            "-rpcuser=u".into(),
            "-rpcpassword=p".into(),
            format!("-rpcport={rpc_port}"),
            "-rpcbind=127.0.0.1".into(),
            "-rpcallowip=127.0.0.1".into(),
            "-listen=1".into(),
            format!("-bind=127.0.0.1:{p2p_port}"),
            format!("-port={p2p_port}"),
            "-connect=0".into(),
            "-dnsseed=0".into(),
            "-discover=0".into(),
            "-txindex=1".into(),
            "-excessiveblocksize=1000000000".into(),
            "-maxstackmemoryusageconsensus=0".into(),
            "-minminingtxfee=0.00000500".into(),
            "-printtoconsole=0".into(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _node = Node { child, _dir: dir };
    let rpc = RpcDaemon::new(RpcDaemonOptions {
        urls: vec![format!("http://u:p@127.0.0.1:{rpc_port}/")],
        retry: RetryPolicy {
            give_up_after: Some(Duration::from_secs(60)),
            ..RetryPolicy::default()
        },
        ..RpcDaemonOptions::default()
    })
    .unwrap();
    rpc.call("getblockcount", json!([])).await.unwrap();
    let generated = rpc.call("generate", json!([20])).await.unwrap();
    let mut hashes = vec![hash_from_hex(
        rpc.call("getblockhash", json!([0]))
            .await
            .unwrap()
            .as_str()
            .unwrap(),
    )
    .unwrap()];
    for h in generated.as_array().unwrap() {
        hashes.push(hash_from_hex(h.as_str().unwrap()).unwrap());
    }
    assert_eq!(hashes.len(), 21);
    let mut expected = Vec::new();
    for h in &hashes {
        let hex_block = rpc
            .call("getblock", json!([hash_to_hex(h), 0]))
            .await
            .unwrap();
        expected.push(hex::decode(hex_block.as_str().unwrap()).unwrap());
    }
    let mut o = options("BitcoinSV", "regtest");
    o.batch = 4;
    let started = Instant::now();
    let mut source = P2pBlockSource::connect(&format!("127.0.0.1:{p2p_port}"), o)
        .await
        .unwrap();
    assert!(source.peer().start_height >= 20, "{:?}", source.peer());
    let got = source.blocks(&hashes).await.unwrap();
    assert!(got == expected, "P2P blocks differ from getblock HASH 0");
    let headers = source.headers(&[hashes[0]], &[0; 32]).await.unwrap();
    assert_eq!(headers.len(), 20);
    assert_eq!(headers[19].to_vec(), expected[20][..80].to_vec());
    let err = source.blocks(&[[0x42; 32]]).await.unwrap_err();
    assert!(matches!(err, P2pError::NotFound { .. }), "{err}");
    eprintln!(
        "real BSV node: {} blocks over P2P in {:?} ({})",
        got.len(),
        started.elapsed(),
        source.peer().user_agent
    );
    let _ = rpc.call("stop", json!([])).await;
}

// ---------------------------------------------------------------------------------------------
// Speed (release: `cargo test -p anode --release --lib p2p_fetch_speed -- --ignored --nocapture`)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run in release with --nocapture"]
#[allow(clippy::print_stderr, reason = "prints the measurement")]
async fn p2p_fetch_speed() {
    use crate::daemon::{RpcDaemon, RpcDaemonOptions};
    use crate::simulator::{serve, Auth};
    let blocks = 200;
    let mut chain = SimChain::new(coin("Bitcoin", "regtest"), Profile::mainnet_like(), 1).unwrap();
    chain.mine(blocks, true).unwrap();
    let sim = Simulator::new(chain);
    let (hashes, raws) = all_blocks(&sim);
    let bytes: usize = raws.iter().map(Vec::len).sum();
    let http = serve(sim.clone(), "127.0.0.1:0".parse().unwrap(), Auth::default())
        .await
        .unwrap();
    let p2p = served(&sim).await;
    let report = |what: &str, took: Duration| {
        let s = took.as_secs_f64();
        eprintln!(
            "{what:>9}: {} blocks, {:.1} MB in {:.3} s = {:.0} blocks/s, {:.1} MB/s",
            hashes.len(),
            bytes as f64 / 1e6,
            s,
            hashes.len() as f64 / s,
            bytes as f64 / 1e6 / s
        );
    };
    for use_rest in [false, true] {
        let rpc = RpcDaemon::new(RpcDaemonOptions {
            urls: vec![http.url(&Auth::default())],
            use_rest: Some(use_rest),
            ..RpcDaemonOptions::default()
        })
        .unwrap();
        let started = Instant::now();
        for (h, raw) in hashes.iter().zip(&raws) {
            assert!(&rpc.block(h).await.unwrap() == raw);
        }
        report(if use_rest { "REST" } else { "RPC hex" }, started.elapsed());
    }
    let started = Instant::now();
    let mut source = P2pBlockSource::connect(&p2p.addr.to_string(), options("Bitcoin", "regtest"))
        .await
        .unwrap();
    let got = source.blocks(&hashes).await.unwrap();
    report("P2P", started.elapsed());
    assert!(got == raws);
}
