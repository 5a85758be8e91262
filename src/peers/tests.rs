//! Peer discovery over real sockets: fake Electrum peers on 127.0.0.N answering from a table,
//! a fake SOCKS5 proxy, a TLS peer with a self-signed certificate made here.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::peer::{add_peer_bucket, is_public, Advert};
use super::*;

const GENESIS: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";
const TIP: u32 = 120;

fn header(height: u32) -> Vec<u8> {
    height.to_le_bytes().repeat(20)
}

/// Our chain: headers 0..=TIP.
struct TestChain;

#[async_trait]
impl LocalChain for TestChain {
    async fn tip_height(&self) -> Option<u32> {
        Some(TIP)
    }
    async fn header(&self, height: u32) -> Option<Vec<u8>> {
        (height <= TIP).then(|| header(height))
    }
}

/// What a fake peer answers.
#[derive(Clone)]
struct Fake {
    genesis: String,
    /// the host its features list
    host: String,
    tcp_port: Option<u16>,
    ssl_port: Option<u16>,
    tip: u32,
    /// a height from which its headers differ from ours
    fork_at: Option<u32>,
    peers: Value,
    add_peer_calls: Arc<Mutex<Vec<Value>>>,
    /// when set, connections are closed at once
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Fake {
    fn new(host: &str) -> Self {
        Fake {
            genesis: GENESIS.into(),
            host: host.into(),
            tcp_port: None,
            ssl_port: None,
            tip: TIP,
            fork_at: None,
            peers: json!([]),
            add_peer_calls: Arc::default(),
            down: Arc::default(),
        }
    }

    fn header(&self, height: u32) -> Option<String> {
        let mut h = (height <= self.tip).then(|| header(height))?;
        if self.fork_at.is_some_and(|f| height >= f) {
            h[0] ^= 0xff;
        }
        Some(hex::encode(h))
    }

    fn answer(&self, method: &str, params: &Value) -> Result<Value, String> {
        match method {
            "server.version" => Ok(json!(["FakePeer 1.0", "1.7"])),
            "server.features" => Ok(json!({
                "hosts": {&self.host: {"tcp_port": self.tcp_port, "ssl_port": self.ssl_port}},
                "pruning": null,
                "server_version": "FakePeer 1.0",
                "protocol_min": "1.4",
                "protocol_max": "1.7.0",
                "genesis_hash": self.genesis,
            })),
            "blockchain.headers.subscribe" => {
                Ok(json!({"height": self.tip, "hex": self.header(self.tip)}))
            }
            "blockchain.block.header" => params
                .get(0)
                .and_then(Value::as_u64)
                .and_then(|h| self.header(h as u32))
                .map(Value::from)
                .ok_or_else(|| "bad height".to_string()),
            "server.peers.subscribe" => Ok(self.peers.clone()),
            "server.add_peer" => {
                self.add_peer_calls.lock().push(params[0].clone());
                Ok(json!(true))
            }
            _ => Err("unknown method".into()),
        }
    }
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(stream: S, fake: Fake) {
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(request) = serde_json::from_str::<Value>(&line) else {
            return;
        };
        let method = request["method"].as_str().unwrap_or_default().to_string();
        if method == "blockchain.headers.subscribe" {
            // A notification before the answer: the client must skip it.
            let note = json!({"jsonrpc": "2.0", "method": method, "params": [{"height": 1}]});
            let _ = write.write_all(format!("{note}\n").as_bytes()).await;
        }
        let reply = match fake.answer(&method, &request["params"]) {
            Ok(result) => json!({"jsonrpc": "2.0", "result": result, "id": request["id"]}),
            Err(message) => {
                json!({"jsonrpc": "2.0", "error": {"code": 1, "message": message}, "id": request["id"]})
            }
        };
        if write
            .write_all(format!("{reply}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Starts a fake peer on `ip`; `make` builds its answers knowing the port.
async fn spawn_fake(
    ip: &str,
    tls: Option<tokio_rustls::TlsAcceptor>,
    make: impl FnOnce(u16) -> Fake,
) -> (SocketAddr, Fake) {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = make(addr.port());
    let served = fake.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let fake = served.clone();
            if fake.down.load(std::sync::atomic::Ordering::SeqCst) {
                continue;
            }
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(stream).await {
                            serve_connection(s, fake).await;
                        }
                    }
                    None => serve_connection(stream, fake).await,
                }
            });
        }
    });
    (addr, fake)
}

/// A TCP-only fake peer listing itself as `ip` with its port.
async fn tcp_fake(ip: &str, tweak: impl FnOnce(&mut Fake)) -> (SocketAddr, Fake) {
    let host = ip.to_string();
    spawn_fake(ip, None, move |port| {
        let mut f = Fake::new(&host);
        f.tcp_port = Some(port);
        tweak(&mut f);
        f
    })
    .await
}

fn settings(peers: Vec<String>) -> PeerSettings {
    PeerSettings {
        mode: PeerDiscovery::On,
        announce: false,
        tor_proxy: None,
        force_proxy: false,
        default_ports: (50001, 50002),
        genesis_hash: GENESIS.into(),
        coin_peers: Vec::new(),
        configured_peers: peers,
        our_features: our_features(&[], GENESIS),
        client_name: "anode-test".into(),
        allow_private: true,
        good_window: Duration::from_secs(3 * 3600),
        recheck_after: Duration::from_secs(3600),
        retry_base: Duration::from_millis(150),
        max_failures: 3,
        max_failures_once_good: 10,
        forget_bad_after: Duration::from_secs(3600),
        max_peers: 100,
        max_concurrent: 4,
        wakeup: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
        add_peer_interval: Duration::from_secs(600),
        onion_window: Duration::from_secs(3600),
    }
}

fn manager(settings: PeerSettings) -> Arc<PeerManager> {
    PeerManager::new(settings, Arc::new(TestChain)).unwrap()
}

fn status_of(m: &PeerManager, host: &str) -> Option<PeerInfo> {
    m.peers().into_iter().find(|p| p.host == host)
}

#[tokio::test]
async fn good_peer_is_verified_and_served_in_the_4_29_shape() {
    let (addr, _) = tcp_fake("127.0.0.2", |_| {}).await;
    let m = manager(settings(vec![format!("127.0.0.2 t{}", addr.port())]));
    let before = status_of(&m, "127.0.0.2").unwrap();
    assert_eq!(before.status, PeerStatus::Never);
    // Before the check the admin view shows the advertised ports in server.features shape.
    assert_eq!(
        before.features["hosts"]["127.0.0.2"],
        json!({"tcp_port": addr.port(), "ssl_port": null})
    );
    assert_eq!(m.peers_subscribe_result(), json!([]));

    m.check_due_peers().await;

    let info = status_of(&m, "127.0.0.2").unwrap();
    assert_eq!(info.status, PeerStatus::Good, "{info:?}");
    assert_eq!(info.ip_addr.as_deref(), Some("127.0.0.2"));
    assert_eq!(info.source, "config");
    assert_eq!(info.features["genesis_hash"], GENESIS);
    assert_eq!(info.features["server_version"], "FakePeer 1.0");
    assert_eq!(info.features["hosts"]["127.0.0.2"]["tcp_port"], addr.port());
    assert!(info.last_good.is_some() && info.try_count == 0);
    assert_eq!(
        m.peers_subscribe_result(),
        json!([[
            "127.0.0.2",
            "127.0.0.2",
            ["v1.7.0", format!("t{}", addr.port())]
        ]])
    );
    assert_eq!(m.counts()["good"], 1);
}

#[tokio::test]
async fn private_peers_are_not_served_by_default() {
    let (addr, _) = tcp_fake("127.0.0.2", |_| {}).await;
    let mut s = settings(vec![format!("127.0.0.2 t{}", addr.port())]);
    s.allow_private = false;
    let m = manager(s);
    m.check_due_peers().await;
    assert_eq!(status_of(&m, "127.0.0.2").unwrap().status, PeerStatus::Good);
    assert_eq!(m.peers_subscribe_result(), json!([]));
}

#[tokio::test]
async fn peer_with_another_genesis_is_bad() {
    let (addr, _) = tcp_fake("127.0.0.2", |f| f.genesis = "11".repeat(32)).await;
    let m = manager(settings(vec![format!("127.0.0.2 t{}", addr.port())]));
    m.check_due_peers().await;
    assert_eq!(status_of(&m, "127.0.0.2").unwrap().status, PeerStatus::Bad);
    assert_eq!(m.peers_subscribe_result(), json!([]));
    // A bad peer is not checked again.
    m.check_due_peers().await;
    assert_eq!(status_of(&m, "127.0.0.2").unwrap().try_count, 1);
    // Nor after a client's server.add_peer for it...
    let caller = Some("127.0.0.2".parse().unwrap());
    let features = json!({"hosts": {"127.0.0.2": {"tcp_port": addr.port()}}});
    assert!(m.add_peer_request(caller, &features).await);
    m.check_due_peers().await;
    let info = status_of(&m, "127.0.0.2").unwrap();
    assert_eq!((info.status, info.try_count), (PeerStatus::Bad, 1));
    // ...but the operator's add_peer has it checked again.
    m.add_peer_real_name(&format!("127.0.0.2 t{}", addr.port()))
        .unwrap();
    m.check_due_peers().await;
    let info = status_of(&m, "127.0.0.2").unwrap();
    assert_eq!((info.status, info.try_count), (PeerStatus::Bad, 2));
}

#[tokio::test]
async fn bad_peers_are_forgotten_after_a_while() {
    let (addr, _) = tcp_fake("127.0.0.2", |f| f.genesis = "11".repeat(32)).await;
    let mut s = settings(vec![format!("127.0.0.2 t{}", addr.port())]);
    s.forget_bad_after = Duration::from_millis(100);
    let m = manager(s);
    m.check_due_peers().await;
    assert_eq!(status_of(&m, "127.0.0.2").unwrap().status, PeerStatus::Bad);
    m.check_due_peers().await;
    assert!(status_of(&m, "127.0.0.2").is_some());
    tokio::time::sleep(Duration::from_millis(120)).await;
    m.check_due_peers().await;
    assert!(status_of(&m, "127.0.0.2").is_none());
}

#[tokio::test]
async fn peer_whose_header_disagrees_is_bad() {
    // Forked 5 blocks below the tip: the compared height (tip - 10) is still shared...
    let (near, _) = tcp_fake("127.0.0.2", |f| f.fork_at = Some(TIP - 5)).await;
    // ...forked 20 below: the compared header differs.
    let (deep, _) = tcp_fake("127.0.0.3", |f| f.fork_at = Some(TIP - 20)).await;
    let m = manager(settings(vec![
        format!("127.0.0.2 t{}", near.port()),
        format!("127.0.0.3 t{}", deep.port()),
    ]));
    m.check_due_peers().await;
    assert_eq!(status_of(&m, "127.0.0.2").unwrap().status, PeerStatus::Good);
    assert_eq!(status_of(&m, "127.0.0.3").unwrap().status, PeerStatus::Bad);
}

#[tokio::test]
async fn peer_far_behind_is_a_failure_not_bad() {
    let (addr, _) = tcp_fake("127.0.0.2", |f| f.tip = TIP - 6).await;
    let m = manager(settings(vec![format!("127.0.0.2 t{}", addr.port())]));
    m.check_due_peers().await;
    let info = status_of(&m, "127.0.0.2").unwrap();
    assert_eq!((info.status, info.try_count), (PeerStatus::Never, 1));
}

#[tokio::test]
async fn peer_not_listing_its_host_is_bad() {
    let (addr, _) = tcp_fake("127.0.0.2", |f| f.host = "elsewhere.example".into()).await;
    let m = manager(settings(vec![format!("127.0.0.2 t{}", addr.port())]));
    m.check_due_peers().await;
    assert_eq!(status_of(&m, "127.0.0.2").unwrap().status, PeerStatus::Bad);
}

#[tokio::test]
async fn peers_learnt_from_peers_subscribe_are_verified() {
    let (b, _) = tcp_fake("127.0.0.3", |_| {}).await;
    let b_port = b.port();
    let (a, _) = tcp_fake("127.0.0.2", move |f| {
        f.peers = json!([
            ["127.0.0.3", "127.0.0.3", ["v1.7.0", format!("t{b_port}")]],
            ["x", "not a host!", ["v1.4", "t1"]],
            ["127.0.0.4", "127.0.0.4", ["v1.4"]],
        ])
    })
    .await;
    let m = manager(settings(vec![format!("127.0.0.2 t{}", a.port())]));
    m.check_due_peers().await;
    assert_eq!(status_of(&m, "127.0.0.2").unwrap().status, PeerStatus::Good);
    let learnt = status_of(&m, "127.0.0.3").unwrap();
    assert_eq!(
        (learnt.status, learnt.source.as_str()),
        (PeerStatus::Never, "peer 127.0.0.2")
    );
    // Malformed hosts and peers without ports are not taken.
    assert_eq!(m.peers().len(), 2);

    m.check_due_peers().await;
    assert_eq!(status_of(&m, "127.0.0.3").unwrap().status, PeerStatus::Good);
    let served = m.peers_subscribe_result();
    assert_eq!(served.as_array().unwrap().len(), 2, "{served}");
}

#[tokio::test]
async fn only_two_new_peers_are_taken_from_one_answer() {
    let (a, _) = tcp_fake("127.0.0.2", |f| {
        f.peers = json!((1..=6)
            .map(|i| json!([format!("10.0.0.{i}"), format!("p{i}.test"), ["v1.7.0", "t"]]))
            .chain([json!(["127.0.0.9", "127.0.0.9", ["t1"]])])
            .collect::<Vec<_>>())
    })
    .await;
    let mut s = settings(vec![format!("127.0.0.2 t{}", a.port())]);
    s.allow_private = false;
    let m = manager(s);
    m.check_due_peers().await;
    let learnt: Vec<String> = m
        .peers()
        .into_iter()
        .filter(|p| p.source == "peer 127.0.0.2")
        .map(|p| p.host)
        .collect();
    assert_eq!(learnt.len(), 2, "{learnt:?}");
    // A private address is never taken when private peers are not allowed.
    assert!(learnt.iter().all(|h| h.ends_with(".test")), "{learnt:?}");
}

#[tokio::test]
async fn peers_once_good_get_more_retries() {
    let (addr, fake) = tcp_fake("127.0.0.2", |_| {}).await;
    let mut s = settings(vec![format!("127.0.0.2 t{}", addr.port())]);
    s.retry_base = Duration::from_millis(1);
    s.recheck_after = Duration::ZERO;
    let m = manager(s);
    m.check_due_peers().await;
    assert_eq!(status_of(&m, "127.0.0.2").unwrap().status, PeerStatus::Good);
    fake.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut failures = Vec::new();
    for _ in 0..200 {
        m.check_due_peers().await;
        match status_of(&m, "127.0.0.2") {
            Some(p) => {
                if failures.last() != Some(&p.try_count) {
                    failures.push(p.try_count);
                }
                assert_ne!(p.status, PeerStatus::Good, "{p:?}");
            }
            None => break,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Nine failures kept it (stale now), the tenth forgot it.
    assert_eq!(failures, (1..=9).collect::<Vec<u32>>());
    assert!(status_of(&m, "127.0.0.2").is_none());
}

#[tokio::test]
async fn at_most_two_peers_per_ipv4_16_are_served() {
    let mut names = Vec::new();
    for ip in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        let (addr, _) = tcp_fake(ip, |_| {}).await;
        names.push(format!("{ip} t{}", addr.port()));
    }
    let m = manager(settings(names));
    m.check_due_peers().await;
    assert_eq!(m.counts()["good"], 3);
    assert_eq!(m.peers_subscribe_result().as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn one_good_peer_per_address() {
    // Two names for 127.0.0.1: whichever check finishes second finds the address taken.
    let (a, _) = tcp_fake("127.0.0.1", |_| {}).await;
    let (b, _) = tcp_fake("127.0.0.1", |f| f.host = "localhost".into()).await;
    let m = manager(settings(vec![
        format!("127.0.0.1 t{}", a.port()),
        format!("localhost t{}", b.port()),
    ]));
    m.check_due_peers().await;
    let statuses: Vec<(PeerStatus, u32)> =
        m.peers().iter().map(|p| (p.status, p.try_count)).collect();
    assert_eq!(
        statuses,
        [(PeerStatus::Good, 0), (PeerStatus::Never, 1)],
        "{:?}",
        m.peers()
    );
}

#[tokio::test]
async fn failing_peers_back_off_and_are_forgotten() {
    // A port with nothing listening.
    let closed = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let m = manager(settings(vec![format!("127.0.0.2 t{port}")]));
    m.check_due_peers().await;
    assert_eq!(status_of(&m, "127.0.0.2").unwrap().try_count, 1);
    // Not due again before the backoff (150 ms) has passed.
    m.check_due_peers().await;
    assert_eq!(status_of(&m, "127.0.0.2").unwrap().try_count, 1);
    tokio::time::sleep(Duration::from_millis(170)).await;
    m.check_due_peers().await;
    assert_eq!(status_of(&m, "127.0.0.2").unwrap().try_count, 2);
    // The second wait is doubled.
    tokio::time::sleep(Duration::from_millis(170)).await;
    m.check_due_peers().await;
    assert_eq!(status_of(&m, "127.0.0.2").unwrap().try_count, 2);
    tokio::time::sleep(Duration::from_millis(150)).await;
    m.check_due_peers().await;
    // Third failure: forgotten.
    assert!(status_of(&m, "127.0.0.2").is_none(), "{:?}", m.peers());
}

#[tokio::test]
async fn tls_peer_with_self_signed_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["peer.invalid".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        cert.key_pair.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (addr, _) = spawn_fake("127.0.0.2", Some(acceptor), |port| {
        let mut f = Fake::new("127.0.0.2");
        f.ssl_port = Some(port);
        f
    })
    .await;
    let m = manager(settings(vec![format!("127.0.0.2 s{}", addr.port())]));
    m.check_due_peers().await;
    let info = status_of(&m, "127.0.0.2").unwrap();
    assert_eq!(info.status, PeerStatus::Good, "{info:?}");
    assert_eq!(
        m.peers_subscribe_result(),
        json!([[
            "127.0.0.2",
            "127.0.0.2",
            ["v1.7.0", format!("s{}", addr.port())]
        ]])
    );
}

#[tokio::test]
async fn ssl_failure_falls_back_to_tcp() {
    // The "ssl" port speaks plain TCP, so the handshake fails and the TCP port is used.
    let (addr, _) = tcp_fake("127.0.0.2", |_| {}).await;
    let m = manager(settings(vec![format!("127.0.0.2 s{0} t{0}", addr.port())]));
    m.check_due_peers().await;
    assert_eq!(status_of(&m, "127.0.0.2").unwrap().status, PeerStatus::Good);
}

/// A SOCKS5 proxy that sends every CONNECT to `target` and records what was asked for.
async fn fake_socks(target: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut greeting = [0u8; 3];
                client.read_exact(&mut greeting).await.unwrap();
                assert_eq!(greeting, [5, 1, 0]);
                client.write_all(&[5, 0]).await.unwrap();
                let mut head = [0u8; 5];
                client.read_exact(&mut head).await.unwrap();
                assert_eq!(&head[..4], &[5, 1, 0, 3], "a domain-name CONNECT");
                let mut name = vec![0u8; usize::from(head[4])];
                client.read_exact(&mut name).await.unwrap();
                let mut port = [0u8; 2];
                client.read_exact(&mut port).await.unwrap();
                log.lock().push(format!(
                    "{}:{}",
                    String::from_utf8_lossy(&name),
                    u16::from_be_bytes(port)
                ));
                let mut upstream = TcpStream::connect(target).await.unwrap();
                client
                    .write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, asked)
}

#[tokio::test]
async fn onion_peer_through_socks5_proxy() {
    let onion = "abcdefghijklmnop.onion";
    let (peer, _) = spawn_fake("127.0.0.2", None, |_| {
        let mut f = Fake::new(onion);
        f.tcp_port = Some(50001);
        f
    })
    .await;
    let (proxy, asked) = fake_socks(peer).await;

    // Without a proxy the onion peer is never tried.
    let m = manager(settings(vec![format!("{onion} t")]));
    m.check_due_peers().await;
    let info = status_of(&m, onion).unwrap();
    assert_eq!((info.status, info.last_try), (PeerStatus::Never, None));

    let mut s = settings(vec![format!("{onion} t")]);
    s.tor_proxy = Some(("127.0.0.1".into(), proxy.port()));
    let m = manager(s);
    m.check_due_peers().await;
    assert_eq!(status_of(&m, onion).unwrap().status, PeerStatus::Good);
    assert_eq!(*asked.lock(), [format!("{onion}:50001")]);
    // Onion peers are listed by host.
    assert_eq!(
        m.peers_subscribe_result(),
        json!([[onion, onion, ["v1.7.0", "t50001"]]])
    );
}

#[tokio::test]
async fn force_proxy_sends_clearnet_peers_through_the_proxy() {
    let (peer, _) = tcp_fake("127.0.0.3", |_| {}).await;
    let (proxy, asked) = fake_socks(peer).await;
    let mut s = settings(vec![format!("peer.test t{}", peer.port())]);
    s.tor_proxy = Some(("127.0.0.1".into(), proxy.port()));
    s.force_proxy = true;
    let m = manager(s);
    // The fake lists 127.0.0.3, not peer.test: reached through the proxy as peer.test, it is
    // bad, which shows the proxy carried the check.
    m.check_due_peers().await;
    assert_eq!(*asked.lock(), [format!("peer.test:{}", peer.port())]);
    assert_eq!(status_of(&m, "peer.test").unwrap().status, PeerStatus::Bad);
}

#[tokio::test]
async fn announces_itself_to_peers_that_do_not_list_it() {
    let (addr, fake) = tcp_fake("127.0.0.2", |_| {}).await;
    let mut s = settings(vec![format!("127.0.0.2 t{}", addr.port())]);
    let ours: Vec<crate::config::Service> = vec!["tcp://me.invalid:50001".parse().unwrap()];
    s.our_features = our_features(&ours, GENESIS);
    s.announce = true;
    let m = manager(s);
    // Our own identity is in the table, never served before it is verified.
    assert_eq!(status_of(&m, "me.invalid").unwrap().source, "self");
    m.check_due_peers().await;
    assert_eq!(status_of(&m, "127.0.0.2").unwrap().status, PeerStatus::Good);
    let calls = fake.add_peer_calls.lock().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0]["hosts"],
        json!({"me.invalid": {"tcp_port": 50001}})
    );
    assert_eq!(calls[0]["genesis_hash"], GENESIS);
    assert_eq!(
        m.peers_subscribe_result(),
        json!([[
            "127.0.0.2",
            "127.0.0.2",
            ["v1.7.0", format!("t{}", addr.port())]
        ]])
    );
}

#[tokio::test]
async fn does_not_announce_a_private_address() {
    let (addr, fake) = tcp_fake("127.0.0.2", |_| {}).await;
    let mut s = settings(vec![format!("127.0.0.2 t{}", addr.port())]);
    s.our_features = our_features(&["tcp://192.168.1.5:50001".parse().unwrap()], GENESIS);
    s.announce = true;
    let m = manager(s);
    m.check_due_peers().await;
    assert_eq!(status_of(&m, "127.0.0.2").unwrap().status, PeerStatus::Good);
    assert!(fake.add_peer_calls.lock().is_empty());
}

#[tokio::test]
async fn does_not_announce_to_peers_that_list_it() {
    let (addr, fake) = tcp_fake("127.0.0.2", |f| {
        f.peers = json!([["me.invalid", "me.invalid", ["v1.7.0", "t50001"]]])
    })
    .await;
    let mut s = settings(vec![format!("127.0.0.2 t{}", addr.port())]);
    s.our_features = our_features(&["tcp://me.invalid:50001".parse().unwrap()], GENESIS);
    s.announce = true;
    let m = manager(s);
    m.check_due_peers().await;
    assert_eq!(status_of(&m, "127.0.0.2").unwrap().status, PeerStatus::Good);
    assert!(fake.add_peer_calls.lock().is_empty());
}

fn features_for(host: &str, port: u16) -> Value {
    json!({"hosts": {host: {"tcp_port": port}}, "genesis_hash": GENESIS})
}

#[tokio::test]
async fn add_peer_is_rate_limited_and_checked_against_the_caller() {
    let local: Option<IpAddr> = Some("127.0.0.1".parse().unwrap());
    let m = manager(settings(Vec::new()));
    // Refusals that do not even reach a bucket.
    assert!(
        !m.add_peer_request(None, &features_for("a.example", 1))
            .await
    );
    assert!(!m.add_peer_request(local, &json!({"hosts": {}})).await);
    assert!(!m.add_peer_request(local, &json!({})).await);

    // localhost resolves to the caller: accepted, and its bucket is then closed for everyone.
    assert!(
        m.add_peer_request(local, &features_for("localhost", 50001))
            .await
    );
    assert_eq!(
        status_of(&m, "localhost").unwrap().source,
        "add_peer 127.0.0.1"
    );
    assert!(
        !m.add_peer_request(local, &features_for("localhost", 50002))
            .await
    );

    // All IP literals share one bucket.
    let two = Some("127.0.0.2".parse().unwrap());
    let three = Some("127.0.0.3".parse().unwrap());
    assert!(m.add_peer_request(two, &features_for("127.0.0.2", 1)).await);
    assert!(
        !m.add_peer_request(three, &features_for("127.0.0.3", 1))
            .await
    );

    // A host that does not resolve to the caller is refused, and still closes its bucket.
    let m = manager(settings(Vec::new()));
    let other = Some("10.1.2.3".parse().unwrap());
    assert!(
        !m.add_peer_request(other, &features_for("localhost", 50001))
            .await
    );
    assert!(
        !m.add_peer_request(local, &features_for("localhost", 50001))
            .await
    );
    assert!(status_of(&m, "localhost").is_none());

    // Onion hosts: one admission, then the random window is closed (up to an hour here).
    let onion_a = features_for("aaaaaaaaaaaaaaaa.onion", 50001);
    let onion_b = features_for("bbbbbbbbbbbbbbbb.onion", 50001);
    assert!(m.add_peer_request(other, &onion_a).await);
    assert!(!m.add_peer_request(other, &onion_b).await);

    // Not when discovery is off or self.
    for mode in [PeerDiscovery::Off, PeerDiscovery::SelfOnly] {
        let mut s = settings(Vec::new());
        s.mode = mode;
        let m = manager(s);
        assert!(
            !m.add_peer_request(local, &features_for("localhost", 50001))
                .await
        );
    }
}

#[tokio::test]
async fn add_peer_candidates_get_checked() {
    let (addr, _) = tcp_fake("127.0.0.1", |f| f.host = "localhost".into()).await;
    let m = manager(settings(Vec::new()));
    let caller = Some("127.0.0.1".parse().unwrap());
    assert!(
        m.add_peer_request(caller, &features_for("localhost", addr.port()))
            .await
    );
    m.check_due_peers().await;
    assert_eq!(status_of(&m, "localhost").unwrap().status, PeerStatus::Good);
}

#[tokio::test]
async fn background_task_checks_and_stops() {
    let (addr, _) = tcp_fake("127.0.0.2", |_| {}).await;
    let m = manager(settings(Vec::new()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(m.clone().run(async move {
        let _ = stopped.await;
    }));
    // A candidate added while the task sleeps wakes it.
    m.add_peer_real_name(&format!("127.0.0.2 t{}", addr.port()))
        .unwrap();
    let mut good = false;
    for _ in 0..100 {
        if status_of(&m, "127.0.0.2").is_some_and(|p| p.status == PeerStatus::Good) {
            good = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(good, "{:?}", m.peers());
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn discovery_off_serves_nothing_and_self_serves_ourselves() {
    let ours: Vec<crate::config::Service> = vec![
        "tcp://me.invalid:50001".parse().unwrap(),
        "ssl://me.invalid:50002".parse().unwrap(),
    ];
    let mut s = settings(vec!["other.invalid s t".into()]);
    s.our_features = our_features(&ours, GENESIS);
    s.mode = PeerDiscovery::SelfOnly;
    let m = manager(s.clone());
    assert_eq!(
        m.peers_subscribe_result(),
        json!([["me.invalid", "me.invalid", ["v1.7.0", "s50002", "t50001"]]])
    );
    s.mode = PeerDiscovery::Off;
    let m = manager(s);
    assert_eq!(m.peers_subscribe_result(), json!([]));
    // The task returns at once when discovery is off.
    tokio::time::timeout(
        Duration::from_secs(1),
        m.clone().run(std::future::pending()),
    )
    .await
    .unwrap();
}

#[test]
fn real_names_triples_and_features_parse() {
    let a = Advert::from_real_name("Host.Example v1.6 p1000 s t50011", (50001, 50002)).unwrap();
    assert_eq!(a.host, "host.example");
    assert_eq!((a.tcp_port, a.ssl_port), (Some(50011), Some(50002)));
    assert_eq!(a.feature_strings(), ["v1.6", "p1000", "s50002", "t50011"]);
    assert!(Advert::from_real_name("host.example v1.4", (1, 2)).is_none());
    assert!(Advert::from_real_name("bad_host!.example s", (1, 2)).is_none());
    assert!(Advert::from_real_name("", (1, 2)).is_none());

    let t = json!(["1.2.3.4", "e.example", ["v1.7.0", "s", "t60001"]]);
    let a = Advert::from_triple(&t, (50001, 50002)).unwrap();
    assert_eq!((a.tcp_port, a.ssl_port), (Some(60001), Some(50002)));
    assert!(Advert::from_triple(&json!(["1.2.3.4"]), (1, 2)).is_none());
    assert!(Advert::from_triple(&json!("junk"), (1, 2)).is_none());

    let f = json!({"hosts": {"E.example": {"tcp_port": 1, "ssl_port": "2"}}, "pruning": 5});
    let a = Advert::from_features(&f, "e.example").unwrap();
    assert_eq!(
        (a.tcp_port, a.ssl_port, a.pruning),
        (Some(1), Some(2), Some(5))
    );
    assert!(Advert::from_features(&f, "other.example").is_none());
    assert!(Advert::from_features(
        &json!({"hosts": {"e.example": {"tcp_port": 0}}}),
        "e.example"
    )
    .is_none());
}

#[test]
fn address_rules() {
    assert!(is_public("8.8.8.8".parse().unwrap()));
    assert!(!is_public("10.0.0.1".parse().unwrap()));
    assert!(!is_public("100.64.1.1".parse().unwrap()));
    assert!(!is_public("127.0.0.1".parse().unwrap()));
    assert!(!is_public("fd00::1".parse().unwrap()));
    assert!(!is_public("::ffff:192.168.1.1".parse().unwrap()));
    assert!(is_public("2a01:4f8::1".parse().unwrap()));
    assert_eq!(add_peer_bucket("a.b.example.com"), "example.com");
    assert_eq!(add_peer_bucket("1.2.3.4"), add_peer_bucket("::1"));
    assert_eq!(
        peer::subnet_group("2a01:4f8:1:2ff::1".parse().unwrap()),
        peer::subnet_group("2a01:4f8:1:200::9".parse().unwrap())
    );
    assert_ne!(
        peer::address_key("2a01:4f8:1:2::1".parse().unwrap()),
        peer::address_key("2a01:4f8:1:3::1".parse().unwrap())
    );
}

#[test]
fn our_features_follow_4_28() {
    let services: Vec<crate::config::Service> = vec![
        "tcp://e.example:50001".parse().unwrap(),
        "ssl://e.example:50002".parse().unwrap(),
        "wss://e.example:50004".parse().unwrap(),
        "tcp://[2001:db8::1]:50001".parse().unwrap(),
    ];
    let f = our_features(&services, GENESIS);
    assert_eq!(
        f["hosts"],
        json!({"e.example": {"tcp_port": 50001, "ssl_port": 50002, "wss_port": 50004},
               "2001:db8::1": {"tcp_port": 50001}})
    );
    assert_eq!(f["services"][3], "tcp://[2001:db8::1]:50001");
    assert_eq!(f["protocol_max"], "1.7.0");
    assert_eq!(f["pruning"], Value::Null);
}
