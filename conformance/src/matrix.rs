//! The matrix: every storage engine compiled in × every coin/network the coin layer can encode
//! blocks for. Each cell starts anode (`anode::app::Stack`) over a fresh simulated chain with
//! TCP, TLS, WebSocket and secure WebSocket listeners and runs the suite for every protocol
//! version on every transport; the table has one row per cell and one column per version and
//! transport.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anode::app::{Stack, StackOptions};
use anode::config::{Config, RawConfig, ServiceKind};
use anode::daemon::DaemonApi;
use anode::simulator::SimDaemon;
use anode_coins::Coin;
use anyhow::Context;
use futures::StreamExt;

use crate::client::Transport;
use crate::node::Node;
use crate::report::{totals, CheckResult};
use crate::scenario::{initial_chain, SimDriver};
use crate::suite::{self, SuiteOptions, Target, VERSIONS};

/// Shape of the matrix run.
#[derive(Debug, Clone)]
pub struct MatrixOptions {
    /// engines (default: every one compiled in)
    pub backends: Vec<String>,
    /// coins as (coin, network) (default: every network with a block encoder)
    pub coins: Vec<(String, String)>,
    /// blocks mined before the server starts
    pub blocks: u32,
    /// the server's reorg limit, also the depth of the deep reorg
    pub reorg_limit: u32,
    /// cells run at once
    pub jobs: usize,
    /// chain seed
    pub seed: u64,
    /// suite options
    pub suite: SuiteOptions,
}

impl Default for MatrixOptions {
    fn default() -> Self {
        MatrixOptions {
            backends: anode::store_factory::available_engines()
                .into_iter()
                .map(String::from)
                .collect(),
            coins: encodable_coins(),
            blocks: 8,
            reorg_limit: 4,
            jobs: 4,
            seed: 7,
            suite: SuiteOptions::default(),
        }
    }
}

/// Every (coin, network) whose family has a block encoder: what the simulator can build.
pub fn encodable_coins() -> Vec<(String, String)> {
    anode_coins::builtin_networks()
        .map(|nets| {
            nets.iter()
                .filter(|p| {
                    anode_coins::coin_from_params((*p).clone())
                        .encoder()
                        .is_some()
                })
                .map(|p| (p.coin.clone(), p.net.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Longest a cell may run.
const CELL_TIMEOUT: Duration = Duration::from_secs(120);

/// One row of the matrix.
#[derive(Debug)]
pub struct Row {
    /// storage engine
    pub backend: String,
    /// "Coin network"
    pub coin: String,
    /// every check of the cell
    pub results: Vec<CheckResult>,
    /// why the cell could not run, if it could not
    pub error: Option<String>,
    /// what the scenario did
    pub steps: Vec<(String, String)>,
    /// wall time
    pub seconds: f64,
}

impl Row {
    /// (passed, failed); a cell that could not run counts one failure.
    pub fn totals(&self) -> (usize, usize) {
        let (p, f) = totals(&self.results);
        (p, f + usize::from(self.error.is_some()))
    }
}

/// A self-signed certificate for the matrix's ssl:// and wss:// listeners.
pub struct TestCert {
    /// certificate PEM path
    pub cert: PathBuf,
    /// key PEM path
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCert {
    /// Generates one for `localhost`.
    pub fn generate() -> anyhow::Result<TestCert> {
        let dir = tempfile::tempdir().context("certificate directory")?;
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .context("generating a test certificate")?;
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, ck.cert.pem()).context("writing the certificate")?;
        std::fs::write(&key, ck.key_pair.serialize_pem()).context("writing the key")?;
        Ok(TestCert {
            cert,
            key,
            _dir: dir,
        })
    }
}

/// A running anode over a simulated chain, for one cell (also used by the tests).
pub struct Cell {
    /// the server
    pub stack: Arc<Stack>,
    /// its listeners
    pub target: Target,
    /// the simulator it indexes
    pub sim: anode::simulator::Simulator,
    /// the coin as configured in the server (the simulator's own genesis where it has one)
    pub coin: Arc<dyn Coin>,
    _db: tempfile::TempDir,
}

impl Cell {
    /// Builds the chain and starts anode on `backend` with all four transports.
    pub async fn start(
        backend: &str,
        coin: &str,
        net: &str,
        options: &MatrixOptions,
        cert: &TestCert,
    ) -> anyhow::Result<Cell> {
        let chain_coin =
            anode_coins::lookup(coin, net).with_context(|| format!("coin {coin} {net}"))?;
        let sim = initial_chain(Arc::clone(&chain_coin), options.seed, options.blocks)?;
        // A chain with the simulator's own genesis: the server must be told its hash.
        let coin_arc = if sim.with_chain(|c| c.has_custom_genesis()) {
            let mut params = chain_coin.params().clone();
            params.genesis_hash = sim.with_chain(|c| c.genesis_hash());
            anode_coins::coin_from_params(params)
        } else {
            chain_coin
        };
        let daemon: Arc<dyn DaemonApi> = Arc::new(SimDaemon::new(sim.clone()));
        let extra = [("reorg_limit", options.reorg_limit.to_string())];
        let (stack, target, db) = start_anode(backend, &coin_arc, daemon, &extra, cert).await?;
        Ok(Cell {
            stack,
            target,
            sim,
            coin: coin_arc,
            _db: db,
        })
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.stack.shutdown().await;
    }
}

/// Starts anode for `coin` on `backend` over `daemon` with TCP, TLS, WS and WSS listeners on
/// loopback, fast polling and no padding; `extra` adds configuration (ElectrumX names,
/// lower-case). Returns the stack, its listeners and the database directory.
pub async fn start_anode(
    backend: &str,
    coin: &Arc<dyn Coin>,
    daemon: Arc<dyn DaemonApi>,
    extra: &[(&'static str, String)],
    cert: &TestCert,
) -> anyhow::Result<(Arc<Stack>, Target, tempfile::TempDir)> {
    let db = tempfile::tempdir().context("database directory")?;
    let params = coin.params();
    let mut flags = vec![
        ("coin", params.coin.clone()),
        ("network", params.net.clone()),
        ("db_engine", backend.to_string()),
        (
            "services",
            "tcp://127.0.0.1:0,ssl://127.0.0.1:0,ws://127.0.0.1:0,wss://127.0.0.1:0".to_string(),
        ),
        ("ssl_certfile", cert.cert.display().to_string()),
        ("ssl_keyfile", cert.key.display().to_string()),
        ("poll_interval_blocks_ms", "20".to_string()),
        ("poll_interval_mempool_ms", "20".to_string()),
        ("pad_tcp", "false".to_string()),
        ("peer_discovery", "off".to_string()),
        ("cache_mb", "16".to_string()),
        // The suite's error cases and batches would soon reach the cost limits (docs/protocol.md,
        // Cost model), whose delays measure throttling, not conformance.
        ("cost_soft_limit", "100000000".to_string()),
        ("cost_hard_limit", "1000000000".to_string()),
        ("initial_concurrent", "100".to_string()),
    ];
    flags.extend(extra.iter().cloned());
    let raw = RawConfig::defaults().with_flags(flags);
    let config = Config::from_raw(&raw).context("server configuration")?;
    let stack = Stack::start(StackOptions {
        config,
        coin: Arc::clone(coin),
        daemon,
        db_dir: db.path().join("db"),
        log: None,
        progress_bar: false,
    })
    .await
    .context("starting anode")?;
    let target = Target {
        addrs: client_listeners(&stack),
        host: "localhost".into(),
    };
    Ok((stack, target, db))
}

/// The stack's listeners a client can speak to (the admin RPC left out).
pub fn client_listeners(stack: &Stack) -> Vec<(Transport, SocketAddr)> {
    let addrs: Vec<(ServiceKind, SocketAddr)> = stack
        .server
        .lock()
        .as_ref()
        .map(|s| s.local_addrs().to_vec())
        .unwrap_or_default();
    addrs
        .into_iter()
        .filter_map(|(kind, addr)| {
            let t = match kind {
                ServiceKind::Tcp => Transport::Tcp,
                ServiceKind::Ssl => Transport::Ssl,
                ServiceKind::Ws => Transport::Ws,
                ServiceKind::Wss => Transport::Wss,
                _ => return None,
            };
            Some((t, addr))
        })
        .collect()
}

/// Runs one cell.
pub async fn run_cell(
    backend: String,
    coin: String,
    net: String,
    options: Arc<MatrixOptions>,
    cert: Arc<TestCert>,
) -> Row {
    let started = Instant::now();
    let name = format!("{coin} {net}");
    let mut row = Row {
        backend: backend.clone(),
        coin: name.clone(),
        results: Vec::new(),
        error: None,
        steps: Vec::new(),
        seconds: 0.0,
    };
    tracing::info!(backend = %row.backend, coin = %row.coin, "cell start");
    let outcome = async {
        let cell = Cell::start(&backend, &coin, &net, &options, &cert).await?;
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "anode started");
        let node = Node::InProcess(cell.sim.clone());
        let mut driver = SimDriver {
            sim: cell.sim.clone(),
            reorg_limit: options.reorg_limit,
        };
        let report = suite::run(
            &cell.target,
            &node,
            Arc::clone(&cell.coin),
            Some(&mut driver),
            &options.suite,
        )
        .await;
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "suite done");
        cell.stop().await;
        report
    };
    // A hung server must fail its cell, not stall the matrix.
    let outcome = match tokio::time::timeout(CELL_TIMEOUT, outcome).await {
        Ok(outcome) => outcome,
        Err(_) => Err(anyhow::anyhow!(
            "the cell did not finish within {CELL_TIMEOUT:?}"
        )),
    };
    match outcome {
        Ok(report) => {
            row.results = report.results;
            row.steps = report.steps;
        }
        Err(e) => row.error = Some(format!("{e:#}")),
    }
    row.seconds = started.elapsed().as_secs_f64();
    let (p, f) = row.totals();
    tracing::info!(backend = %row.backend, coin = %row.coin, passed = p, failed = f, seconds = row.seconds, "cell done");
    row
}

/// Runs every cell, `options.jobs` at a time.
pub async fn run(options: MatrixOptions) -> anyhow::Result<Vec<Row>> {
    let cert = Arc::new(TestCert::generate()?);
    let options = Arc::new(options);
    let mut cells = Vec::new();
    for backend in &options.backends {
        for (coin, net) in &options.coins {
            cells.push((backend.clone(), coin.clone(), net.clone()));
        }
    }
    let mut rows: Vec<Row> = futures::stream::iter(cells.into_iter().map(|(b, c, n)| {
        let (options, cert) = (Arc::clone(&options), Arc::clone(&cert));
        async move {
            let name = format!("{b} {c} {n}");
            match tokio::spawn(run_cell(b.clone(), c.clone(), n.clone(), options, cert)).await {
                Ok(row) => row,
                Err(e) => Row {
                    backend: b,
                    coin: format!("{c} {n}"),
                    results: Vec::new(),
                    error: Some(format!("{name}: the cell panicked: {e}")),
                    steps: Vec::new(),
                    seconds: 0.0,
                },
            }
        }
    }))
    .buffer_unordered(options.jobs.max(1))
    .collect()
    .await;
    // Back to the order of the options: engines, then the registry's coin order.
    let rank = |r: &Row| {
        let b = options.backends.iter().position(|x| *x == r.backend);
        let c = options
            .coins
            .iter()
            .position(|(c, n)| format!("{c} {n}") == r.coin);
        (b, c)
    };
    rows.sort_by_key(rank);
    Ok(rows)
}

/// Column headers: every version × transport.
fn columns() -> Vec<(String, Transport)> {
    VERSIONS
        .iter()
        .flat_map(|v| Transport::ALL.iter().map(move |t| (v.to_string(), *t)))
        .collect()
}

/// The matrix as a markdown table (plus totals and the first failures), ending with the line
/// `N passed, M failed`.
pub fn render(rows: &[Row], elapsed: Duration) -> String {
    let mut out = String::new();
    let cols = columns();
    let _ = writeln!(
        out,
        "Cells: checks passed (✗ failed) per backend × coin (rows) and protocol version × transport \
         (columns). Negotiation and connection-level checks are counted under 1.4."
    );
    let _ = writeln!(out);
    let _ = write!(out, "| backend | coin |");
    for (v, t) in &cols {
        let _ = write!(out, " {v} {t} |");
    }
    let _ = writeln!(out);
    let _ = write!(out, "|---|---|");
    for _ in &cols {
        let _ = write!(out, "---:|");
    }
    let _ = writeln!(out);
    for row in rows {
        let _ = write!(out, "| {} | {} |", row.backend, row.coin);
        let mut cells: BTreeMap<(String, Transport), (usize, usize)> = BTreeMap::new();
        for r in &row.results {
            let e = cells.entry((r.version.clone(), r.transport)).or_default();
            if r.passed() {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        for col in &cols {
            let text = match (&row.error, cells.get(col)) {
                (Some(_), _) => "error".to_string(),
                (None, Some((p, 0))) => p.to_string(),
                (None, Some((p, f))) => format!("{p} ✗{f}"),
                (None, None) => "—".to_string(),
            };
            let _ = write!(out, " {text} |");
        }
        let _ = writeln!(out);
    }
    let failures: Vec<String> = rows
        .iter()
        .flat_map(|row| {
            let errors = row
                .error
                .iter()
                .map(move |e| format!("{} {}: {e}", row.backend, row.coin));
            let failed = row
                .results
                .iter()
                .filter(|r| !r.passed())
                .map(move |r| format!("{} {}: {}", row.backend, row.coin, r.describe()));
            errors.chain(failed)
        })
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "\nFailures (first 30 of {}):\n\n```", failures.len());
        for f in failures.iter().take(30) {
            let _ = writeln!(out, "{f}");
        }
        let _ = writeln!(out, "```");
    }
    let (passed, failed) = rows.iter().fold((0, 0), |(p, f), r| {
        let (a, b) = r.totals();
        (p + a, f + b)
    });
    let _ = writeln!(
        out,
        "\n{} cells, {:.0} s.\n\n{passed} passed, {failed} failed",
        rows.len(),
        elapsed.as_secs_f64()
    );
    out
}

/// Writes the rendered matrix to `path` under a heading saying how it was produced.
pub fn write_markdown(path: &Path, table: &str, command: &str) -> anyhow::Result<()> {
    let text = format!(
        "# Conformance matrix\n\nThe latest run of the conformance suite (`conformance/`) against anode: \
         every storage engine × every coin/network the simulator can build blocks for × every \
         protocol version and transport. Produced by:\n\n```sh\n{command}\n```\n\n{table}"
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
