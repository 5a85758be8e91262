//! Transports and limits: TLS (with certificate reload), WebSocket, secure WebSocket, IPv6,
//! slow readers, the cost hard limit, throttling timeouts, the session cap, idle timeout,
//! admin session control and shutdown.

#[path = "server_common.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use anode::config::ServiceKind;
use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::Message;

const VERSION: &str = r#"{"jsonrpc":"2.0","id":1,"method":"server.version","params":["t","1.7"]}"#;

struct Cert {
    der: rustls::pki_types::CertificateDer<'static>,
    _dir: tempfile::TempDir,
    cert_path: std::path::PathBuf,
    key_path: std::path::PathBuf,
}

fn make_cert(dir: Option<tempfile::TempDir>) -> Cert {
    let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, ck.cert.pem()).unwrap();
    std::fs::write(&key_path, ck.key_pair.serialize_pem()).unwrap();
    Cert {
        der: ck.cert.der().clone(),
        _dir: dir,
        cert_path,
        key_path,
    }
}

fn connector(root: &rustls::pki_types::CertificateDer<'static>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn tls_connect(
    addr: std::net::SocketAddr,
    root: &rustls::pki_types::CertificateDer<'static>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector(root).connect(name, tcp).await
}

/// Sends one line and reads one line back.
async fn line_roundtrip<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    msg: &str,
) -> Value {
    stream
        .get_mut()
        .write_all(format!("{msg}\n").as_bytes())
        .await
        .unwrap();
    let mut line = String::new();
    tokio::time::timeout(TIMEOUT, stream.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    serde_json::from_str(&line).unwrap()
}

async fn tls_harness(cert: &Cert) -> Harness {
    let mut config = test_config();
    config.services = vec![
        service(ServiceKind::Ssl, "127.0.0.1"),
        service(ServiceKind::Wss, "127.0.0.1"),
        service(ServiceKind::Ws, "127.0.0.1"),
    ];
    config.ssl_certfile = Some(cert.cert_path.clone());
    config.ssl_keyfile = Some(cert.key_path.clone());
    start_with(chain(3, 7), config).await
}

#[tokio::test]
async fn tls_serves_and_reloads_its_certificate() {
    let cert = make_cert(None);
    let h = tls_harness(&cert).await;
    let addr = h.handle.local_addr(ServiceKind::Ssl).unwrap();
    let mut old = BufReader::new(tls_connect(addr, &cert.der).await.expect("TLS handshake"));
    let r = line_roundtrip(&mut old, VERSION).await;
    assert_eq!(r["result"][1], "1.7");

    // New certificate on disk, reloaded: new connections trust only the new one.
    let new = make_cert(None);
    std::fs::copy(&new.cert_path, &cert.cert_path).unwrap();
    std::fs::copy(&new.key_path, &cert.key_path).unwrap();
    h.handle.reload_tls().expect("reload");
    assert!(tls_connect(addr, &cert.der).await.is_err());
    let mut fresh = BufReader::new(tls_connect(addr, &new.der).await.expect("new cert"));
    assert_eq!(
        line_roundtrip(&mut fresh, VERSION).await["result"][1],
        "1.7"
    );
    // The connection made before the reload keeps working.
    let r = line_roundtrip(
        &mut old,
        r#"{"jsonrpc":"2.0","id":2,"method":"server.ping","params":[2]}"#,
    )
    .await;
    assert_eq!(r["result"], json!({"data": "00"}));

    // A broken key file is refused and the server keeps the current certificate.
    std::fs::write(&cert.key_path, "not a key").unwrap();
    assert!(h.handle.reload_tls().is_err());
    assert!(tls_connect(addr, &new.der).await.is_ok());
}

#[tokio::test]
async fn tls_reloads_when_the_files_change() {
    let cert = make_cert(None);
    let mut config = test_config();
    config.services = vec![service(ServiceKind::Ssl, "127.0.0.1")];
    config.ssl_certfile = Some(cert.cert_path.clone());
    config.ssl_keyfile = Some(cert.key_path.clone());
    config.tls_watch_interval = Some(Duration::from_millis(100));
    let h = start_with(chain(3, 7), config).await;
    let addr = h.handle.local_addr(ServiceKind::Ssl).unwrap();
    assert!(tls_connect(addr, &cert.der).await.is_ok());
    let new = make_cert(None);
    // Rename into place so the watcher never sees a half-written pair.
    let tmp_key = cert.key_path.with_extension("tmp");
    std::fs::copy(&new.key_path, &tmp_key).unwrap();
    std::fs::copy(&new.cert_path, &cert.cert_path).unwrap();
    std::fs::rename(&tmp_key, &cert.key_path).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if tls_connect(addr, &new.der).await.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "certificate not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(tls_connect(addr, &cert.der).await.is_err());
}

#[tokio::test]
async fn websocket_and_secure_websocket() {
    let cert = make_cert(None);
    let h = tls_harness(&cert).await;

    let ws_addr = h.handle.local_addr(ServiceKind::Ws).unwrap();
    let tcp = TcpStream::connect(ws_addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{ws_addr}/"), tcp)
        .await
        .expect("ws handshake");
    ws.send(Message::Text(VERSION.into())).await.unwrap();
    let reply = tokio::time::timeout(TIMEOUT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Message::Text(text) = reply else {
        panic!("text frame expected: {reply:?}")
    };
    assert!(!text.ends_with('\n'), "one message per frame, no newline");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["result"][1], "1.7");
    // A batch is one frame too.
    ws.send(Message::Text(
        r#"[{"jsonrpc":"2.0","id":2,"method":"server.ping"},{"jsonrpc":"2.0","id":3,"method":"server.donation_address"}]"#.into(),
    ))
    .await
    .unwrap();
    let reply = tokio::time::timeout(TIMEOUT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);

    let wss_addr = h.handle.local_addr(ServiceKind::Wss).unwrap();
    let tls = tls_connect(wss_addr, &cert.der).await.expect("TLS for wss");
    let (mut wss, _) =
        tokio_tungstenite::client_async(format!("wss://localhost:{}/", wss_addr.port()), tls)
            .await
            .expect("wss handshake");
    wss.send(Message::Text(VERSION.into())).await.unwrap();
    let reply = tokio::time::timeout(TIMEOUT, wss.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_eq!(v["result"][1], "1.7");
    let kinds: Vec<ServiceKind> = h.handle.sessions().iter().map(|s| s.kind).collect();
    assert!(
        kinds.contains(&ServiceKind::Ws) && kinds.contains(&ServiceKind::Wss),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn tcp_output_is_padded_when_enabled() {
    let mut config = test_config();
    config.pad_tcp = true;
    let h = start_with(chain(3, 7), config).await;
    let mut c = h.client().await;
    c.send(VERSION).await;
    let line = c.recv_line().await;
    // The warm-up reply goes out at once, padded to 1024 bytes inside its JSON text.
    assert_eq!(line.len(), 1024);
    assert!(line.ends_with(" ]\n") || line.ends_with(" }\n"), "{line:?}");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["result"][1], "1.7");
    // The warm-up budget counts payload bytes, not the padded 1024 on the wire (ElectrumX's
    // send_size): two answers of ~560 bytes still go out at once and spend it.
    for _ in 0..2 {
        let headers = c.result("blockchain.block.headers", json!([0, 3])).await;
        assert_eq!(headers["count"], json!(3));
    }
    // Past the warm-up budget a small reply waits for the one-second timer.
    let started = std::time::Instant::now();
    let r = c.call("server.ping", json!([])).await;
    assert_eq!(r["result"], json!({"data": ""}));
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn ipv6_listener() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        tracing::warn!("no IPv6 loopback here; skipping");
        return;
    }
    let mut config = test_config();
    config.services = vec![service(ServiceKind::Tcp, "::1")];
    let h = start_with(chain(3, 7), config).await;
    let addr = h.tcp();
    assert!(addr.is_ipv6());
    let mut c = Client::connect(addr).await;
    assert_eq!(
        c.result("server.version", json!(["t", "1.6"])).await[1],
        "1.6"
    );
}

async fn wait_for(mut pred: impl FnMut() -> bool, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if pred() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pred()
}

#[tokio::test]
async fn a_client_that_does_not_read_is_disconnected() {
    let mut config = test_config();
    config.max_queued_bytes = 2_000_000;
    config.slow_reader_timeout = Duration::from_secs(2);
    config.limits.cost_soft_limit = 1e12;
    config.limits.cost_hard_limit = 2e12;
    let h = start_with(chain(3, 7), config).await;
    let mut c = h.client_v("1.7").await;
    assert_eq!(h.handle.sessions().len(), 1);
    // 100 pongs of 300 kB each, and never a read.
    let mut batch = String::new();
    for id in 0..100 {
        batch.push_str(&format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"server.ping\",\"params\":[300000]}}\n"
        ));
    }
    c.send_raw(batch.as_bytes()).await;
    assert!(
        wait_for(|| h.handle.sessions().is_empty(), Duration::from_secs(10)).await,
        "the slow reader is still connected"
    );
}

#[tokio::test]
async fn a_client_that_sends_without_reading_is_not_read_ahead_of() {
    // Neither the slow-reader timeout nor the queue limit may end the session during the
    // test: what is checked is that the server stops reading, not that it disconnects.
    let mut config = test_config();
    config.slow_reader_timeout = Duration::from_secs(120);
    config.max_queued_bytes = usize::MAX;
    config.limits.initial_concurrent = 4;
    config.limits.cost_soft_limit = 1e12;
    config.limits.cost_hard_limit = 2e12;
    let h = start_with(chain(3, 7), config).await;
    let mut stream = TcpStream::connect(h.tcp()).await.expect("connect");
    stream
        .write_all(format!("{VERSION}\n").as_bytes())
        .await
        .expect("write");
    let mut reader = BufReader::new(&mut stream);
    let mut line = String::new();
    reader.read_line(&mut line).await.expect("version answer");
    // 2,000 pings asking for 100 kB pongs each, never read: 200 MB of answers.
    const SENT: u64 = 2_000;
    let mut requests = String::new();
    for id in 0..SENT {
        requests.push_str(&format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"server.ping\",\"params\":[100000]}}\n"
        ));
    }
    let (_read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        // Blocks once the server stops reading; ends when the test drops the connection.
        let _ = write.write_all(requests.as_bytes()).await;
        write
    });
    // Wait until the server's count of requests read stops moving.
    let read_so_far = || h.handle.sessions().first().map_or(0, |s| s.requests);
    let mut last = read_so_far();
    let mut still = 0;
    while still < 10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = read_so_far();
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    // The server read only what the socket buffers took of its answers plus four in
    // progress, not the 2,000 requests sent (each would have held a 100 kB answer).
    assert!(last < SENT / 2, "the server read {last} requests ahead");
    assert_eq!(h.handle.sessions().len(), 1, "the session was dropped");
    writer.abort();
}

#[tokio::test]
async fn a_client_sending_a_byte_at_a_time_is_dropped_at_the_session_timeout() {
    // Slowloris: bytes keep coming, a line never ends. The session timeout runs from the
    // last complete message, not the last byte.
    let mut config = test_config();
    config.limits.session_timeout_secs = 1;
    let h = start_with(chain(3, 7), config).await;
    let mut stream = TcpStream::connect(h.tcp()).await.expect("connect");
    stream
        .write_all(format!("{VERSION}\n").as_bytes())
        .await
        .expect("write");
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    reader.read_line(&mut line).await.expect("version answer");
    let trickle = tokio::spawn(async move {
        let partial = br#"{"jsonrpc":"2.0","id":2,"method":"server.ping","params":["#;
        for byte in partial.iter().cycle().take(100) {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // 100 bytes at 10 a second last 10 s; the session must end long before.
    line.clear();
    let closed = tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "still open while trickling: {closed:?} {line:?}"
    );
    trickle.abort();
}

#[tokio::test]
async fn over_the_unsent_budget_a_stalled_reader_goes_before_the_slow_reader_timeout() {
    let mut config = test_config();
    config.slow_reader_timeout = Duration::from_secs(300);
    config.max_queued_bytes = usize::MAX;
    config.max_unsent_bytes = 1_000_000;
    config.limits.cost_soft_limit = 1e12;
    config.limits.cost_hard_limit = 2e12;
    let h = start_with(chain(3, 7), config).await;
    let mut reader = h.client_v("1.7").await;
    let mut hog = h.client_v("1.7").await;
    // 40 pongs of 300 kB, never read: more than the socket buffers take; the answers the
    // session holds (up to INITIAL_CONCURRENT) pass the 1 MB budget.
    let mut batch = String::new();
    for id in 0..40 {
        batch.push_str(&format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"server.ping\",\"params\":[300000]}}\n"
        ));
    }
    hog.send_raw(batch.as_bytes()).await;
    assert!(
        wait_for(|| h.handle.sessions().len() == 1, Duration::from_secs(20)).await,
        "the stalled reader outlived the budget"
    );
    // The client that reads its answers is served throughout.
    assert_eq!(
        reader.result("server.ping", json!([3])).await,
        json!({"data": "000"})
    );
}

#[tokio::test]
async fn the_hard_cost_limit_disconnects() {
    let mut config = test_config();
    config.limits.cost_soft_limit = 10.0;
    config.limits.cost_hard_limit = 20.0;
    let h = start_with(chain(3, 7), config).await;
    let mut c = h.client_v("1.7").await;
    // server.add_peer costs 100: over the hard limit afterwards.
    assert_eq!(
        c.result("server.add_peer", json!([{"hosts": {}}])).await,
        json!(false)
    );
    let (code, msg) = c.error("server.ping", json!([])).await;
    assert_eq!((code, msg.as_str()), (-101, "excessive resource usage"));
    assert!(c.closed_within(Duration::from_secs(3)).await);
}

#[tokio::test]
async fn throttling_sleep_counts_toward_the_request_timeout() {
    let mut config = test_config();
    config.limits.cost_soft_limit = 10.0;
    config.limits.cost_hard_limit = 1e6;
    config.limits.request_sleep_ms = 1_000_000_000;
    config.limits.request_timeout_secs = 1;
    let h = start_with(chain(3, 7), config).await;
    let mut c = h.client_v("1.7").await;
    c.result("server.add_peer", json!([{"hosts": {}}])).await;
    let (code, msg) = c.error("server.ping", json!([])).await;
    assert_eq!(
        (code, msg.as_str()),
        (-102, "server busy - request timed out")
    );
    // The session stays open.
    let s = h.handle.sessions();
    assert_eq!(s.len(), 1);
    assert!(s[0].cost > 100.0, "{s:?}");
    assert!(s[0].errors >= 1);
}

#[tokio::test]
async fn the_session_cap_pauses_accepting() {
    let mut config = test_config();
    config.limits.max_sessions = 2;
    let h = start_with(chain(3, 7), config).await;
    let a = h.client_v("1.6").await;
    let _b = h.client_v("1.6").await;
    let mut third = h.client().await;
    third.send(VERSION).await;
    assert!(third.try_recv(Duration::from_millis(500)).await.is_none());
    drop(a);
    let reply = third.recv().await;
    assert_eq!(reply["result"][1], "1.7");
}

#[tokio::test]
async fn idle_sessions_time_out() {
    let mut config = test_config();
    config.limits.session_timeout_secs = 1;
    let h = start_with(chain(3, 7), config).await;
    let mut c = h.client_v("1.6").await;
    assert!(c.closed_within(Duration::from_secs(4)).await);
}

#[tokio::test]
async fn admin_session_listing_disconnect_and_shutdown() {
    let h = start(3).await;
    let mut c = h.client_v("1.6").await;
    c.result("blockchain.headers.subscribe", json!([])).await;
    c.result(
        "blockchain.scripthash.subscribe",
        json!([scripthash_of(&[0x51])]),
    )
    .await;
    let sessions = h.handle.sessions();
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert_eq!(s.protocol_version.as_deref(), Some("1.6"));
    assert_eq!(s.client_name, "test");
    assert_eq!(s.subscriptions, 2);
    assert_eq!((s.script_subs, s.outpoint_subs, s.txs_sent), (1, 0, 0));
    assert_eq!(s.group, None, "loopback is not grouped");
    let counts = h.handle.request_counts();
    assert_eq!(counts.get("blockchain.headers.subscribe"), Some(&1));
    assert_eq!(s.requests, 3);
    assert!(s.bytes_in > 0 && s.bytes_out > 0);
    assert_eq!(s.kind, ServiceKind::Tcp);
    assert!(h.handle.disconnect(s.id));
    assert!(!h.handle.disconnect(s.id + 1000));
    assert!(c.closed_within(Duration::from_secs(3)).await);

    let mut d = h.client_v("1.6").await;
    let addr = h.tcp();
    h.handle.shutdown().await;
    assert!(d.closed_within(Duration::from_secs(3)).await);
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn estimatefee_answers_are_cached_per_tip() {
    let h = start(5).await;
    let mut c = h.client_v("1.6").await;
    let cost = |h: &Harness| h.handle.sessions()[0].cost;
    c.result("blockchain.estimatefee", json!([6])).await;
    let first = cost(&h);
    c.result("blockchain.estimatefee", json!([6])).await;
    let second = cost(&h);
    assert!(
        second - first < 1.0,
        "a cache hit costs 0.1: {first} -> {second}"
    );
    // Targets in the same bucket share the entry (7 → 7 is its own; 13 → 12).
    c.result("blockchain.estimatefee", json!([12])).await;
    let third = cost(&h);
    c.result("blockchain.estimatefee", json!([13])).await;
    assert!(cost(&h) - third < 1.0);
    // A new tip invalidates the cache: the node is asked again (+2).
    h.sim.mine(1).unwrap();
    h.query.refresh();
    let before = cost(&h);
    c.result("blockchain.estimatefee", json!([6])).await;
    assert!(cost(&h) - before > 1.9, "{before} -> {}", cost(&h));
}
