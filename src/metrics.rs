//! Prometheus metrics: what the protocol server and the indexer report, and the HTTP endpoint
//! that serves them at `/metrics` (off unless `metrics_addr` is set).
//!
//! Built on `prometheus-client`, the client library maintained by the Prometheus project itself:
//! no global registry (a [`Metrics`] value owns its own, so tests do not share counters), typed
//! label sets checked at compile time, and the OpenMetrics text format that Prometheus scrapes
//! natively. The older `prometheus` crate relies on a process-global default registry and
//! stringly-typed label vectors.
//!
//! Label values are `&'static str`, so a client cannot grow the number of series: the server
//! passes its own method names, never the text a client sent.
//!
//! Every series is listed in `docs/metrics.md` (checked by `tests/docs_check.rs`).

use std::convert::Infallible;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry, Unit};
use tracing::{debug, info};

/// The content type of the OpenMetrics text exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabel {
    cache: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CounterLabel {
    counter: String,
}

/// Request latency buckets: 100 µs doubling to about 26 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

/// Flush duration buckets: 10 ms doubling to about 10 minutes.
fn flush_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 17))
}

/// Registers `metric` under `name` (prefixed `anode_`), with `unit` where it has one.
fn register(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    metric: impl Metric,
) {
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, metric),
        None => registry.register(name, help, metric),
    }
}

/// Declares the [`Metrics`] struct and its constructor from one list, so a metric's field,
/// exported name, help and unit are written once.
macro_rules! metric_families {
    ($( $field:ident: $ty:ty = $init:expr, $name:literal $(in $unit:ident)?, $help:literal; )*) => {
        /// Every metric anode exports. Create one with [`Metrics::new`], share it as
        /// `Arc<Metrics>`; every method takes `&self` and is cheap (atomics, and a read lock for
        /// labelled series).
        pub struct Metrics {
            registry: Registry,
            $( $field: $ty, )*
        }

        impl Metrics {
            /// A fresh set of metrics, all at zero, in its own registry (names prefixed
            /// `anode_`).
            pub fn new() -> Self {
                let mut registry = Registry::with_prefix("anode");
                $(
                    let $field: $ty = $init;
                    let unit: Option<Unit> = None $( .or(Some(Unit::$unit)) )?;
                    register(&mut registry, $name, $help, unit, $field.clone());
                )*
                Metrics { registry, $( $field, )* }
            }
        }
    };
}

metric_families! {
    sessions: Family<TransportLabel, Gauge> = Family::default(),
        "sessions", "Open client sessions, by transport";
    sessions_opened: Family<TransportLabel, Counter> = Family::default(),
        "sessions_opened", "Client sessions accepted since start, by transport";
    requests: Family<MethodLabel, Counter> = Family::default(),
        "requests", "Requests answered, by method";
    request_errors: Family<MethodLabel, Counter> = Family::default(),
        "request_errors", "Requests answered with an error, by method";
    request_duration: Family<MethodLabel, Histogram> = Family::new_with_constructor(latency_histogram),
        "request_duration" in Seconds, "Time from a request's arrival to its answer, by method";
    received: Counter = Counter::default(),
        "received" in Bytes, "Bytes received from clients";
    sent: Counter = Counter::default(),
        "sent" in Bytes, "Bytes sent to clients";
    subscriptions: Family<KindLabel, Gauge> = Family::default(),
        "subscriptions", "Subscriptions over all sessions, by kind (scripthash, outpoint)";
    tip_height: Gauge = Gauge::default(),
        "tip_height", "Height of the best indexed block";
    daemon_height: Gauge = Gauge::default(),
        "daemon_height", "Height of the node's best block";
    sync_progress: Gauge<f64, AtomicU64> = Gauge::default(),
        "sync_progress", "Indexed height divided by the node's height (1 when caught up)";
    mempool_txs: Gauge = Gauge::default(),
        "mempool_transactions", "Transactions in the mempool mirror";
    flushes: Counter = Counter::default(),
        "flushes", "Index flushes to the store";
    flush_duration: Histogram = flush_histogram(),
        "flush_duration" in Seconds, "Time one index flush took";
    flushed: Counter = Counter::default(),
        "flushed" in Bytes, "Bytes written to the store by index flushes";
    db_size: Gauge = Gauge::default(),
        "db_size" in Bytes, "Size of the index database on disk";
    cache_size: Family<CacheLabel, Gauge> = Family::default(),
        "cache_size" in Bytes, "Memory held by a cache, by cache";
    db_engine: Family<CounterLabel, Gauge> = Family::default(),
        "db_engine", "The storage engine's own counters (memtables, block cache, pending compaction...), by counter";
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A client connected over `transport` (`tcp`, `ssl`, `ws`, `wss`).
    pub fn session_opened(&self, transport: &'static str) {
        let label = TransportLabel { transport };
        self.sessions.get_or_create(&label).inc();
        self.sessions_opened.get_or_create(&label).inc();
    }

    /// A session over `transport` closed.
    pub fn session_closed(&self, transport: &'static str) {
        self.sessions
            .get_or_create(&TransportLabel { transport })
            .dec();
    }

    /// A request for `method` was answered after `elapsed`, with a result (`ok`) or an error.
    pub fn request_finished(&self, method: &'static str, elapsed: Duration, ok: bool) {
        let label = MethodLabel { method };
        self.requests.get_or_create(&label).inc();
        if !ok {
            self.request_errors.get_or_create(&label).inc();
        }
        self.request_duration
            .get_or_create(&label)
            .observe(elapsed.as_secs_f64());
    }

    /// `bytes` arrived from a client.
    pub fn bytes_received(&self, bytes: u64) {
        self.received.inc_by(bytes);
    }

    /// `bytes` went to a client.
    pub fn bytes_sent(&self, bytes: u64) {
        self.sent.inc_by(bytes);
    }

    /// The subscription totals over all sessions.
    pub fn set_subscriptions(&self, scripthashes: u64, outpoints: u64) {
        self.subscriptions
            .get_or_create(&KindLabel { kind: "scripthash" })
            .set(saturating_i64(scripthashes));
        self.subscriptions
            .get_or_create(&KindLabel { kind: "outpoint" })
            .set(saturating_i64(outpoints));
    }

    /// The best indexed height.
    pub fn set_tip(&self, height: u32) {
        self.tip_height.set(i64::from(height));
        self.update_progress();
    }

    /// The node's best height.
    pub fn set_daemon_height(&self, height: u32) {
        self.daemon_height.set(i64::from(height));
        self.update_progress();
    }

    fn update_progress(&self) {
        let (tip, daemon) = (self.tip_height.get(), self.daemon_height.get());
        let progress = if daemon <= 0 {
            0.0
        } else {
            (tip as f64 / daemon as f64).min(1.0)
        };
        self.sync_progress.set(progress);
    }

    /// Transactions in the mempool mirror.
    pub fn set_mempool_size(&self, txs: usize) {
        self.mempool_txs.set(saturating_i64(txs as u64));
    }

    /// An index flush wrote `bytes` in `elapsed`.
    pub fn flush_finished(&self, elapsed: Duration, bytes: u64) {
        self.flushes.inc();
        self.flushed.inc_by(bytes);
        self.flush_duration.observe(elapsed.as_secs_f64());
    }

    /// The database's size on disk.
    pub fn set_db_size(&self, bytes: u64) {
        self.db_size.set(saturating_i64(bytes));
    }

    /// The engine's own counters, as its store reports them.
    pub fn set_engine_counters(&self, counters: &[(String, u64)]) {
        for (counter, value) in counters {
            self.db_engine
                .get_or_create(&CounterLabel {
                    counter: counter.clone(),
                })
                .set(saturating_i64(*value));
        }
    }

    /// Memory held by `cache` (`utxo`, `history`, `headers`…).
    pub fn set_cache_size(&self, cache: &'static str, bytes: u64) {
        self.cache_size
            .get_or_create(&CacheLabel { cache })
            .set(saturating_i64(bytes));
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A running metrics endpoint started by [`serve`].
pub type MetricsServer = crate::side_listener::SideListener;

/// Serves `metrics` at `http://ADDR/metrics` in a task (port 0 picks one).
pub async fn serve(addr: &str, metrics: Arc<Metrics>) -> std::io::Result<MetricsServer> {
    let server = MetricsServer::spawn(addr, "metrics", move |stream, peer| {
        let metrics = Arc::clone(&metrics);
        async move {
            let service = hyper::service::service_fn(move |req| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(respond(&metrics, &req)) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, error = %e, "metrics connection ended with an error");
            }
        }
    })
    .await?;
    let addr = server.addr;
    info!(%addr, "Prometheus metrics at http://{addr}/metrics");
    Ok(server)
}

/// Starts the endpoint on the configured `metrics_addr`; `None` when it is unset (metrics are
/// still collected, just not served).
pub async fn serve_configured(
    config: &crate::config::Config,
    metrics: Arc<Metrics>,
) -> std::io::Result<Option<MetricsServer>> {
    match config.metrics_addr.as_deref() {
        Some(addr) => serve(addr, metrics).await.map(Some),
        None => Ok(None),
    }
}

fn respond(metrics: &Metrics, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        Response::builder()
            .status(status)
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("a response from a status, a valid header and a body builds")
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => reply(StatusCode::OK, CONTENT_TYPE, metrics.encode()),
        (_, "/metrics") => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET\n".into(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "metrics are at /metrics\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the series `name` (with its labels, as printed) in `text`.
    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    #[test]
    fn reported_values_appear_in_the_exposition() {
        let m = Metrics::new();
        m.session_opened("tcp");
        m.session_opened("tcp");
        m.session_opened("ssl");
        m.session_closed("tcp");
        m.request_finished("server.ping", Duration::from_millis(2), true);
        m.request_finished("server.ping", Duration::from_millis(3), false);
        m.bytes_received(100);
        m.bytes_sent(250);
        m.set_subscriptions(7, 2);
        m.set_daemon_height(200);
        m.set_tip(50);
        m.set_mempool_size(12);
        m.flush_finished(Duration::from_millis(40), 4096);
        m.set_db_size(1 << 20);
        m.set_cache_size("utxo", 5000);
        let text = m.encode();
        let expect = [
            ("anode_sessions{transport=\"tcp\"}", 1.0),
            ("anode_sessions{transport=\"ssl\"}", 1.0),
            ("anode_sessions_opened_total{transport=\"tcp\"}", 2.0),
            ("anode_requests_total{method=\"server.ping\"}", 2.0),
            ("anode_request_errors_total{method=\"server.ping\"}", 1.0),
            (
                "anode_request_duration_seconds_count{method=\"server.ping\"}",
                2.0,
            ),
            (
                "anode_request_duration_seconds_sum{method=\"server.ping\"}",
                0.005,
            ),
            ("anode_received_bytes_total", 100.0),
            ("anode_sent_bytes_total", 250.0),
            ("anode_subscriptions{kind=\"scripthash\"}", 7.0),
            ("anode_subscriptions{kind=\"outpoint\"}", 2.0),
            ("anode_tip_height", 50.0),
            ("anode_daemon_height", 200.0),
            ("anode_sync_progress", 0.25),
            ("anode_mempool_transactions", 12.0),
            ("anode_flushes_total", 1.0),
            ("anode_flush_duration_seconds_count", 1.0),
            ("anode_flushed_bytes_total", 4096.0),
            ("anode_db_size_bytes", 1048576.0),
            ("anode_cache_size_bytes{cache=\"utxo\"}", 5000.0),
        ];
        for (name, value) in expect {
            let got = sample(&text, name).unwrap_or_else(|| panic!("{name} missing in\n{text}"));
            assert!((got - value).abs() < 1e-9, "{name}: {got} != {value}");
        }
        // 2 ms falls in the bucket bounded by 0.0032 s, not the one below it (0.0016 s).
        assert_eq!(
            sample(
                &text,
                "anode_request_duration_seconds_bucket{le=\"0.0016\",method=\"server.ping\"}"
            ),
            Some(0.0)
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[tokio::test]
    async fn the_endpoint_serves_the_exposition_over_http() {
        let metrics = Arc::new(Metrics::new());
        metrics.session_opened("wss");
        metrics.set_tip(812_345);
        metrics.request_finished(
            "blockchain.headers.subscribe",
            Duration::from_millis(1),
            true,
        );
        let server = serve("127.0.0.1:0", metrics.clone()).await.expect("bind");
        let base = format!("http://{}", server.addr);
        let client = reqwest::Client::new();

        let response = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("scrape");
        assert_eq!(response.status(), 200);
        let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .to_string();
        assert_eq!(content_type, CONTENT_TYPE);
        let text = response.text().await.expect("body");
        assert_eq!(sample(&text, "anode_tip_height"), Some(812_345.0));
        assert_eq!(
            sample(&text, "anode_sessions{transport=\"wss\"}"),
            Some(1.0)
        );
        assert!(text.contains("# TYPE anode_request_duration_seconds histogram"));
        // A labelled family appears once it has a series.
        assert!(!text.contains("anode_request_errors_total"));

        // A later change shows in the next scrape: the endpoint encodes live values.
        metrics.set_tip(812_346);
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("body");
        assert_eq!(sample(&text, "anode_tip_height"), Some(812_346.0));

        let other = client.get(format!("{base}/")).send().await.expect("get /");
        assert_eq!(other.status(), 404);
        let post = client
            .post(format!("{base}/metrics"))
            .send()
            .await
            .expect("post");
        assert_eq!(post.status(), 405);
        server.stop().await;
        assert!(client.get(format!("{base}/metrics")).send().await.is_err());
    }

    #[test]
    fn progress_is_capped_and_zero_without_a_daemon_height() {
        let m = Metrics::new();
        m.set_tip(10);
        assert_eq!(m.sync_progress.get(), 0.0);
        m.set_daemon_height(5);
        assert_eq!(m.sync_progress.get(), 1.0);
    }
}
