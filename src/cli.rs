//! The command line: global options come from the config option table, so every option has a
//! flag; subcommands add their own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::config::{Config, RawConfig, Source, OPTIONS};
use crate::simulator::{self, Auth, Profile, SimChain, Simulator};

/// The whole command line as clap sees it (the docs check parses documented commands with it).
pub fn command() -> Command {
    let mut cmd = Command::new("anode")
        .about(
            "An Electrum-protocol server for Bitcoin-family chains, with pluggable storage engines",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .arg(
            Arg::new("config")
                .long("config")
                .short('c')
                .global(true)
                .value_name("FILE")
                .help("TOML configuration file"),
        );
    for o in OPTIONS {
        let mut help = o.help.to_string();
        help.push_str(&format!(" [env: {}]", o.env.join(", ")));
        if let Some(d) = o.default.filter(|d| !d.is_empty()) {
            help.push_str(&format!(" [default: {d}]"));
        }
        cmd = cmd.arg(
            Arg::new(o.key)
                .long(o.flag)
                .value_name("VALUE")
                .global(true)
                .help(help),
        );
    }
    cmd.subcommand(
        Command::new("simulate")
            .about("Run the built-in chain simulator as a standalone node (JSON-RPC + REST) for tests, demos and other servers")
            .arg(Arg::new("profile").long("profile").default_value("tiny").help("Workload profile: tiny or mainnet-like"))
            .arg(Arg::new("blocks").long("blocks").default_value("200").value_parser(clap::value_parser!(u32)).help("Blocks to mine before serving"))
            .arg(Arg::new("seed").long("seed").default_value("1").value_parser(clap::value_parser!(u64)).help("RNG seed: the same seed gives the same chain"))
            .arg(Arg::new("listen").long("listen").default_value("127.0.0.1:18443").help("Address of the JSON-RPC/REST listener"))
            .arg(Arg::new("p2p-listen").long("p2p-listen").value_name("ADDR").help("Also serve blocks over the P2P protocol (version, getdata, getheaders) on ADDR, with the network's magic"))
            .arg(Arg::new("rpc-auth").long("rpc-auth").value_name("USER:PASS").help("Demand these credentials (HTTP basic auth)"))
            .arg(Arg::new("mempool").long("mempool").default_value("0").value_parser(clap::value_parser!(u32)).help("Transactions to put in the mempool after mining"))
            .arg(Arg::new("block-interval").long("block-interval").value_parser(clap::value_parser!(u64)).value_name("SECONDS").help("Mine a block every SECONDS while serving"))
            .arg(Arg::new("chain-dir").long("chain-dir").value_name("DIR").help("Serve the chain kept in DIR (generated once with --txs, as a node keeps its blocks; docs/simulator.md); --blocks and --profile then only shape blocks mined on top"))
            .arg(Arg::new("txs").long("txs").value_name("N").value_parser(parse_count).help("With --chain-dir: generate a chain of N transactions into DIR if it holds none (mainnet's history in miniature; 1M, 50M and 100M are written as 1000000 or 1m, 50m, 100m)"))
            .arg(Arg::new("chain-blocks").long("chain-blocks").value_name("N").value_parser(clap::value_parser!(u32)).help("With --txs: blocks after genesis (default: one per 1,500 transactions, at least 100)"))
            .arg(Arg::new("generate-only").long("generate-only").action(ArgAction::SetTrue).help("With --chain-dir and --txs: exit once the chain is written")),
    )
    .subcommand(
        Command::new("demo")
            .about("Index a simulated chain and serve it: the whole server with no full node (check, then keep serving)")
            .arg(Arg::new("profile").long("profile").default_value("tiny").help("Workload profile: tiny or mainnet-like"))
            .arg(Arg::new("blocks").long("blocks").default_value("300").value_parser(clap::value_parser!(u32)).help("Blocks to mine before serving"))
            .arg(Arg::new("seed").long("seed").default_value("1").value_parser(clap::value_parser!(u64)).help("RNG seed of the chain"))
            .arg(Arg::new("db-dir").long("db-dir").value_name("DIR").help("Keep the database here (default: a temporary directory)"))
            .arg(Arg::new("block-interval").long("block-interval").default_value("30").value_parser(clap::value_parser!(u64)).value_name("SECONDS").help("Mine a block every SECONDS while serving (0: never)"))
            .arg(Arg::new("once").long("once").action(ArgAction::SetTrue).help("Stop after the self-check")),
    )
    .subcommand(
        Command::new("config")
            .about("Print the effective configuration and where each value came from")
            .subcommand(Command::new("reference").about("Print the option reference of docs/configuration.md (markdown)"))
            .subcommand(Command::new("example").about("Print a configuration file with every option commented out at its default")),
    )
    .subcommand(rpc_command())
    .subcommand(
        Command::new("compact")
            .about("Compact the index at DB_DIRECTORY, with the server stopped: LMDB drops the free pages its file keeps after the initial sync, RocksDB compacts, SQLite vacuums"),
    )
    .subcommand(
        Command::new("check")
            .about("Verify the index at DB_DIRECTORY against itself and against the node (DAEMON_URL), read-only and beside a running server; prints each problem and a summary, exits 0 when clean, 1 when problems are found, 2 when it could not check")
            .arg(Arg::new("sample").long("sample").value_name("N").default_value("64").value_parser(clap::value_parser!(u32)).help("Blocks to check, spread evenly over the chain (the first and the tip included)"))
            .arg(Arg::new("full").long("full").action(ArgAction::SetTrue).help("Check every block, and read and decode every row of every table (the engine verifies its checksums on the way)"))
            .arg(Arg::new("no-node").long("no-node").action(ArgAction::SetTrue).help("Check the index against itself only, without the node")),
    )
    .arg_required_else_help(false)
    .disable_help_subcommand(true)
    .after_help("Without a subcommand, anode runs the server.")
    .arg(Arg::new("quiet").long("quiet").short('q').global(true).action(ArgAction::SetTrue).help("Only warnings and errors in the log"))
}

fn raw_config(matches: &ArgMatches) -> anyhow::Result<RawConfig> {
    let mut raw = RawConfig::defaults();
    if let Some(path) = matches.get_one::<String>("config") {
        raw = raw.with_file(std::path::Path::new(path))?;
    }
    raw = raw.with_env(|name| std::env::var(name).ok());
    let flags: Vec<(&str, String)> = OPTIONS
        .iter()
        .filter_map(|o| matches.get_one::<String>(o.key).map(|v| (o.key, v.clone())))
        .collect();
    Ok(raw.with_flags(flags))
}

/// Installs the log subscriber with a filter the admin `log` command can change at run time.
fn init_logging(level: &str, quiet: bool) -> Option<crate::admin::LogControl> {
    let filter = if quiet {
        "warn".to_string()
    } else {
        level.to_string()
    };
    match crate::admin::init_logging(&filter) {
        Ok(control) => Some(control),
        Err(_) => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
                .with_writer(std::io::stderr)
                .try_init();
            None
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the async runtime")
}

/// Runs the command line.
pub fn main() -> anyhow::Result<()> {
    let matches = command().get_matches();
    // The reference needs no valid configuration: print it before reading one.
    if let Some(("config", sub)) = matches.subcommand() {
        match sub.subcommand_name() {
            Some("reference") => {
                crate::output::print_text(&crate::config::reference::markdown());
                return Ok(());
            }
            Some("example") => {
                crate::output::print_text(&crate::config::reference::example_toml());
                return Ok(());
            }
            _ => {}
        }
    }
    let raw = raw_config(&matches)?;
    let config = Config::from_raw(&raw)?;
    let log = init_logging(&config.log_level, matches.get_flag("quiet"));
    for u in crate::config::reference::unsupported_set(|name| std::env::var(name).ok()) {
        tracing::warn!(
            variable = u.name,
            "ElectrumX setting not supported by anode, ignored: {}",
            u.instead
        );
    }
    match matches.subcommand() {
        Some(("simulate", sub)) => {
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            // A simulated chain is regtest unless the operator named a network anywhere.
            let network_named = !matches!(raw.get("network"), Some((_, Source::Default)));
            runtime.block_on(simulate(&config, network_named, sub))
        }
        Some(("rpc", sub)) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(rpc(&config, sub))
        }
        Some(("config", _)) => {
            crate::output::print_config(&raw);
            Ok(())
        }
        Some(("compact", _)) => compact(&config),
        Some(("check", sub)) => check(&config, sub),
        Some(("demo", sub)) => {
            let profile_name = sub.get_one::<String>("profile").expect("has a default");
            let options = crate::demo::DemoOptions {
                profile: Profile::by_name(profile_name).with_context(|| {
                    format!("unknown profile `{profile_name}` (tiny, mainnet-like)")
                })?,
                blocks: *sub.get_one::<u32>("blocks").expect("has a default"),
                seed: *sub.get_one::<u64>("seed").expect("has a default"),
                db_dir: sub
                    .get_one::<String>("db-dir")
                    .map(std::path::PathBuf::from),
                block_interval: match *sub.get_one::<u64>("block-interval").expect("has a default")
                {
                    0 => None,
                    secs => Some(std::time::Duration::from_secs(secs)),
                },
                once: sub.get_flag("once"),
            };
            runtime()?.block_on(crate::demo::run(config, options, log))
        }
        _ => runtime()?.block_on(crate::app::serve(config, log)),
    }
}

/// `anode compact`: compacts the index database in place (the server must be stopped; the
/// directory lock makes a running one a clear error).
fn compact(config: &Config) -> anyhow::Result<()> {
    use anode_store::marker::MARKER_FILE;
    let db_dir = config
        .db_directory
        .as_ref()
        .context("set DB_DIRECTORY (or db_directory) to the index to compact")?;
    let marker = db_dir.join(MARKER_FILE);
    let found = std::fs::read_to_string(&marker).with_context(|| {
        format!(
            "{} holds no anode database (no {MARKER_FILE})",
            db_dir.display()
        )
    })?;
    let engine = found.trim();
    if let Some(wanted) = config.db_engine.as_deref() {
        if wanted != engine {
            bail!(
                "DB_ENGINE is {wanted} but {} holds a {engine} database",
                db_dir.display()
            );
        }
    }
    tracing::info!(engine, path = %db_dir.display(), "compacting the index");
    let started = Instant::now();
    let tuning = crate::store_factory::Tuning {
        cache_mb: config.cache_mb,
    };
    let report =
        crate::store_factory::compact(engine, db_dir, crate::index::schema::TABLES, tuning)
            .with_context(|| format!("compacting {}", db_dir.display()))?;
    crate::output::print_text(&format!(
        "compacted the {engine} index at {}: {} -> {} MB in {:.0} s\n",
        db_dir.display(),
        report.before >> 20,
        report.after >> 20,
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// `anode check`: exit status 0 when the index is clean, 1 when problems were found (they are
/// printed, and the error is [`crate::check::ProblemsFound`]), 2 when it could not check
/// ([`crate::check::CouldNotCheck`]).
fn check(config: &Config, sub: &ArgMatches) -> anyhow::Result<()> {
    use crate::check::{CheckOptions, CouldNotCheck, ProblemsFound};
    let options = CheckOptions {
        sample: *sub.get_one::<u32>("sample").expect("has a default"),
        full: sub.get_flag("full"),
        node: !sub.get_flag("no-node"),
    };
    let report = runtime()
        .and_then(|runtime| runtime.block_on(crate::check::run(config, options)))
        .map_err(|e| anyhow::Error::new(CouldNotCheck(e)))?;
    crate::output::print_lines(&report.lines());
    if report.problems.is_empty() {
        return Ok(());
    }
    Err(ProblemsFound {
        path: report.path.clone(),
        problems: report.problems.len(),
    }
    .into())
}

async fn simulate(config: &Config, network_named: bool, sub: &ArgMatches) -> anyhow::Result<()> {
    let profile_name = sub.get_one::<String>("profile").expect("has a default");
    let profile = Profile::by_name(profile_name)
        .with_context(|| format!("unknown profile `{profile_name}` (tiny, mainnet-like)"))?;
    let blocks = *sub.get_one::<u32>("blocks").expect("has a default");
    let seed = *sub.get_one::<u64>("seed").expect("has a default");
    let listen: SocketAddr = sub
        .get_one::<String>("listen")
        .expect("has a default")
        .parse()
        .context("--listen must be host:port")?;
    let network = if network_named {
        config.network.as_str()
    } else {
        "regtest"
    };
    let coin = anode_coins::lookup(&config.coin, network)
        .with_context(|| format!("coin {} {network}", config.coin))?;
    let started = Instant::now();
    let mut chain = match sub.get_one::<String>("chain-dir") {
        Some(dir) => {
            let seed_given =
                sub.value_source("seed") == Some(clap::parser::ValueSource::CommandLine);
            let base = chain_dir(
                std::path::Path::new(dir),
                Arc::clone(&coin),
                seed_given.then_some(seed),
                sub,
            )?;
            if sub.get_flag("generate-only") {
                return Ok(());
            }
            let mut chain = SimChain::over_chain_dir(coin, profile, seed, Arc::new(base))?;
            if sub.value_source("blocks") == Some(clap::parser::ValueSource::CommandLine) {
                chain.mine(blocks, true)?;
            }
            chain
        }
        None => {
            let mut chain = SimChain::new(coin, profile, seed)?;
            chain.mine(blocks, true)?;
            chain
        }
    };
    let txs = chain.all_txs().count();
    let mempool = *sub.get_one::<u32>("mempool").expect("has a default");
    chain.add_mempool_txs(mempool)?;
    tracing::info!(coin = %config.coin, network, height = chain.height(), txs, seconds = started.elapsed().as_secs_f64(), "chain built");
    let genesis = crate::daemon::hash_to_hex(&chain.genesis_hash());
    let custom = chain.has_custom_genesis();
    let sim = Simulator::new(chain);
    let auth = Auth {
        user_pass: sub.get_one::<String>("rpc-auth").cloned(),
    };
    let server = simulator::serve(sim.clone(), listen, auth.clone())
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let p2p = match sub.get_one::<String>("p2p-listen") {
        Some(addr) => {
            let addr: SocketAddr = addr.parse().context("--p2p-listen must be host:port")?;
            let p2p = simulator::serve_p2p(sim.clone(), addr)
                .await
                .with_context(|| format!("P2P listener on {addr}"))?;
            tracing::info!(addr = %p2p.addr, "simulator serving blocks over P2P");
            Some(p2p)
        }
        None => None,
    };
    crate::output::simulator_ready(&server.url(&auth), &genesis, custom);
    let interval = sub.get_one::<u64>("block-interval").copied();
    let mut ticker =
        interval.map(|s| tokio::time::interval(std::time::Duration::from_secs(s.max(1))));
    if let Some(t) = ticker.as_mut() {
        t.tick().await;
    }
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = async { match ticker.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending::<()>().await } } => {
                let hashes = sim.mine(1)?;
                tracing::info!(height = sim.with_chain(SimChain::height), hash = %crate::daemon::hash_to_hex(&hashes[0]), "mined");
            }
        }
    }
    server.stop();
    if let Some(p2p) = p2p {
        p2p.stop();
    }
    Ok(())
}

/// `--count` values: digits, or digits with k, m or b (thousands, millions, billions).
fn parse_count(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let (digits, scale) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1_000),
        Some('m') => (&lower[..lower.len() - 1], 1_000_000),
        Some('b') => (&lower[..lower.len() - 1], 1_000_000_000),
        _ => (lower.as_str(), 1),
    };
    digits
        .replace('_', "")
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("`{text}` is not a count (e.g. 1000000, 50m)"))
}

/// Opens the chain directory `dir`, generating it first when it holds no chain and `--txs`
/// says how big to make it.
fn chain_dir(
    dir: &std::path::Path,
    coin: Arc<dyn anode_coins::Coin>,
    seed: Option<u64>,
    sub: &ArgMatches,
) -> anyhow::Result<simulator::chaindir::ChainDir> {
    use simulator::chaindir::{self, ChainDir, Expect, GenerateOptions, HistoryProfile};
    let txs = sub.get_one::<u64>("txs").copied();
    if !ChainDir::exists(dir) {
        let Some(txs) = txs else {
            bail!(
                "{} holds no chain: add --txs N to generate one there",
                dir.display()
            );
        };
        let options = GenerateOptions {
            txs,
            blocks: sub.get_one::<u32>("chain-blocks").copied(),
            seed: seed.unwrap_or(1),
            profile: HistoryProfile::mainnet_history(),
        };
        tracing::info!(dir = %dir.display(), txs, seed = options.seed, "generating a chain directory");
        let started = Instant::now();
        let mut last_log = Instant::now();
        let meta = chaindir::generate(dir, Arc::clone(&coin), &options, |p| {
            if last_log.elapsed() >= std::time::Duration::from_secs(5) {
                last_log = Instant::now();
                let seconds = started.elapsed().as_secs_f64();
                tracing::info!(
                    blocks = p.blocks,
                    txs = p.txs,
                    tx_per_s = format!("{:.0}", p.txs as f64 / seconds),
                    block_mb = p.bytes >> 20,
                    "generating"
                );
            }
        })
        .with_context(|| format!("generating a chain into {}", dir.display()))?;
        tracing::info!(
            blocks = meta.blocks,
            txs = meta.txs,
            unspent = meta.unspent_outputs,
            block_mb = meta.block_bytes >> 20,
            seconds = format!("{:.1}", meta.generation_seconds),
            tx_per_s = format!("{:.0}", meta.txs as f64 / meta.generation_seconds.max(1e-9)),
            "chain directory written"
        );
    }
    let expect = Expect { seed, txs };
    ChainDir::open(dir, coin, &expect).with_context(|| format!("opening {}", dir.display()))
}

/// `anode rpc`: one subcommand per admin command (docs/admin.md), arguments shaped like
/// `electrumx_rpc`'s.
fn rpc_command() -> Command {
    let ids = |help: &'static str| {
        Arg::new("session_ids")
            .value_name("ID")
            .num_args(0..)
            .help(help)
    };
    let limit = |default: &'static str, help: &'static str| {
        Arg::new("limit")
            .long("limit")
            .default_value(default)
            .value_parser(clap::value_parser!(u64))
            .help(help)
    };
    Command::new("rpc")
        .about("Send a command to a running anode's admin interface (like electrumx_rpc)")
        .subcommand_required(true)
        .arg(Arg::new("rpc-host").long("rpc-host").global(true).value_name("HOST").help("Admin host [env: RPC_HOST] [default: the rpc:// service's host, else 127.0.0.1]"))
        .arg(Arg::new("rpc-port").long("rpc-port").short('p').global(true).value_name("PORT").value_parser(clap::value_parser!(u16)).help("Admin port [env: RPC_PORT] [default: the rpc:// service's port, else 8000]"))
        .arg(Arg::new("json").long("json").global(true).action(ArgAction::SetTrue).help("Print the answer as JSON instead of tables and lines"))
        .subcommand(Command::new("getinfo").about("Summary of the server's state"))
        .subcommand(Command::new("sessions").about("Client sessions, one per line"))
        .subcommand(Command::new("groups").about("Session cost groups (subnets)"))
        .subcommand(Command::new("peers").about("Known peer servers, good ones first"))
        .subcommand(Command::new("add_peer").about("Add a peer from its real name, e.g. \"host.example v1.7 s50002 t50001\"")
            .arg(Arg::new("real_name").required(true).value_name("REAL_NAME")))
        .subcommand(Command::new("disconnect").about("Close sessions by id, by group name, or all")
            .arg(ids("session ids, group names or `all`").num_args(1..).required(true)))
        .subcommand(Command::new("log").about("Toggle request logging of sessions (ids, groups, all, none, new) and/or change the log filter")
            .arg(ids("session ids, group names, `all`, `none` or `new`"))
            .arg(Arg::new("level").long("level").value_name("FILTER").help("New log filter: error, warn, info, debug, trace or tracing directives")))
        .subcommand(Command::new("daemon_url").about("Switch to other node URL(s); without an argument, back to the configured ones")
            .arg(Arg::new("daemon_url").value_name("URL")))
        .subcommand(Command::new("query").about("History, UTXOs and balance of addresses, script hashes or hex scripts")
            .arg(Arg::new("items").value_name("ITEM").num_args(1..).required(true))
            .arg(limit("1000", "Most history entries and UTXOs shown per item")))
        .subcommand(Command::new("reorg").about("Force a reorganisation of COUNT blocks (debugging)")
            .arg(Arg::new("count").value_name("COUNT").default_value("3").value_parser(clap::value_parser!(u32))))
        .subcommand(Command::new("inspect_session").about("Details of one session")
            .arg(Arg::new("session_id").value_name("ID").required(true).value_parser(clap::value_parser!(u64))))
        .subcommand(Command::new("debug_memusage").about("Largest memory consumers")
            .arg(limit("50", "Most rows")))
        .subcommand(Command::new("stop").about("Flush and shut the server down"))
}

/// The named parameters of the admin command `name`, from its subcommand's arguments.
fn rpc_params(name: &str, sub: &ArgMatches) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let strings = |id: &str| -> Vec<String> {
        sub.get_many::<String>(id)
            .map(|v| v.cloned().collect())
            .unwrap_or_default()
    };
    let mut params = Map::new();
    match name {
        "add_peer" => {
            params.insert(
                "real_name".into(),
                json!(sub.get_one::<String>("real_name")),
            );
        }
        "disconnect" => {
            params.insert("session_ids".into(), json!(strings("session_ids")));
        }
        "log" => {
            params.insert("session_ids".into(), json!(strings("session_ids")));
            if let Some(level) = sub.get_one::<String>("level") {
                params.insert("level".into(), json!(level));
            }
        }
        "daemon_url" => {
            let url = sub
                .get_one::<String>("daemon_url")
                .cloned()
                .unwrap_or_default();
            params.insert("daemon_url".into(), json!(url));
        }
        "query" => {
            params.insert("items".into(), json!(strings("items")));
            params.insert("limit".into(), json!(sub.get_one::<u64>("limit")));
        }
        "reorg" => {
            params.insert("count".into(), json!(sub.get_one::<u32>("count")));
        }
        "inspect_session" => {
            params.insert("session_id".into(), json!(sub.get_one::<u64>("session_id")));
        }
        "debug_memusage" => {
            params.insert("limit".into(), json!(sub.get_one::<u64>("limit")));
        }
        _ => {}
    }
    Value::Object(params)
}

async fn rpc(config: &Config, sub: &ArgMatches) -> anyhow::Result<()> {
    let addr = crate::admin::client::admin_addr(
        sub.get_one::<String>("rpc-host").map(String::as_str),
        sub.get_one::<u16>("rpc-port").copied(),
        |name| std::env::var(name).ok(),
        &config.services,
    )
    .map_err(anyhow::Error::msg)?;
    let (name, args) = sub.subcommand().context("an admin command is required")?;
    let params = rpc_params(name, args);
    let result = crate::admin::client::call(&addr, name, params).await?;
    if sub.get_flag("json") {
        crate::output::print_json(&result);
    } else {
        crate::output::print_lines(&crate::admin::client::render(name, &result));
    }
    Ok(())
}
