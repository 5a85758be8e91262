//! `anode-conformance`: run the conformance matrix against anode, or the suite against any
//! running Electrum server (external mode), or against anode indexing a real node.
//!
//! ```text
//! anode-conformance matrix [--backend B]... [--coin "Coin net"]... [--jobs N] [--write FILE]
//! anode-conformance external --server HOST:PORT [--tls] [--ws] --daemon URL [--coin C --network N]
//! anode-conformance real-node [--bitcoind PATH]
//! ```

use std::io::Write;
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Instant;

use anode_conformance::client::Transport;
use anode_conformance::matrix::{self, MatrixOptions};
use anode_conformance::node::Node;
use anode_conformance::report::{totals, CheckResult};
use anode_conformance::scenario::SimRpcDriver;
use anode_conformance::suite::{self, SuiteOptions, Target};
use anyhow::{bail, Context};
use clap::{Arg, ArgAction, ArgMatches, Command};

fn cli() -> Command {
    Command::new("anode-conformance")
        .about("Electrum protocol conformance suite (docs/protocol.md)")
        .subcommand_required(true)
        .subcommand(
            Command::new("matrix")
                .about("every backend × coin × protocol version × transport against anode")
                .arg(Arg::new("backend").long("backend").action(ArgAction::Append).help("engine (default: all compiled in)"))
                .arg(Arg::new("coin").long("coin").action(ArgAction::Append).help("\"Coin network\", e.g. \"Bitcoin regtest\" (default: every encodable network)"))
                .arg(Arg::new("jobs").long("jobs").value_parser(clap::value_parser!(usize)).default_value("4"))
                .arg(Arg::new("write").long("write").help("also write the table as markdown to this file")),
        )
        .subcommand(
            Command::new("external")
                .about("the read-only and notification checks against a running Electrum server")
                .arg(Arg::new("server").long("server").required(true).help("HOST:PORT"))
                .arg(Arg::new("tls").long("tls").action(ArgAction::SetTrue).help("connect with TLS"))
                .arg(Arg::new("ws").long("ws").action(ArgAction::SetTrue).help("connect with WebSocket"))
                .arg(Arg::new("daemon").long("daemon").required(true).help("the node's JSON-RPC URL, http://user:pass@host:port/"))
                .arg(Arg::new("coin").long("coin").default_value("Bitcoin"))
                .arg(Arg::new("network").long("network").default_value("regtest"))
                .arg(Arg::new("reorg-limit").long("reorg-limit").value_parser(clap::value_parser!(u32)).default_value("4"))
                .arg(Arg::new("no-scenario").long("no-scenario").action(ArgAction::SetTrue).help("do not drive the node (read-only checks only)")),
        )
        .subcommand(
            Command::new("real-node")
                .about("anode indexing the Bitcoin SV regtest node, scenario through its wallet")
                .arg(Arg::new("bitcoind").long("bitcoind").env("ANODE_BSV_BITCOIND").required(true)),
        )
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let matches = cli().get_matches();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let failed = match matches.subcommand() {
        Some(("matrix", sub)) => runtime.block_on(run_matrix(sub))?,
        Some(("external", sub)) => runtime.block_on(run_external(sub))?,
        Some(("real-node", sub)) => runtime.block_on(run_real_node(sub))?,
        _ => bail!("unknown command"),
    };
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

async fn run_matrix(sub: &ArgMatches) -> anyhow::Result<usize> {
    let mut options = MatrixOptions::default();
    if let Some(b) = sub.get_many::<String>("backend") {
        options.backends = b.cloned().collect();
    }
    if let Some(c) = sub.get_many::<String>("coin") {
        options.coins = c
            .map(|c| match c.rsplit_once(' ') {
                Some((coin, net)) => (coin.to_string(), net.to_string()),
                None => (c.clone(), "regtest".to_string()),
            })
            .collect();
    }
    options.jobs = *sub.get_one::<usize>("jobs").expect("has a default");
    let started = Instant::now();
    let rows = matrix::run(options).await?;
    let table = matrix::render(&rows, started.elapsed());
    out(&table)?;
    if let Some(path) = sub.get_one::<String>("write") {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let profile = if cfg!(debug_assertions) {
            ""
        } else {
            " --release"
        };
        let command = format!(
            "cargo run -p anode-conformance{profile} --all-features -- {}",
            args.join(" ")
        );
        matrix::write_markdown(std::path::Path::new(path), &table, &command)?;
    }
    Ok(rows.iter().map(|r| r.totals().1).sum())
}

/// Prints each check (failures in full) and the totals; returns the failure count.
fn print_results(results: &[CheckResult], steps: &[(String, String)]) -> anyhow::Result<usize> {
    let mut text = String::new();
    for (step, done) in steps {
        text.push_str(&format!("step {step}: {done}\n"));
    }
    for r in results.iter().filter(|r| !r.passed()) {
        text.push_str(&r.describe());
        text.push('\n');
    }
    let (passed, failed) = totals(results);
    text.push_str(&format!("{passed} passed, {failed} failed\n"));
    out(&text)?;
    Ok(failed)
}

async fn run_external(sub: &ArgMatches) -> anyhow::Result<usize> {
    let server = sub.get_one::<String>("server").expect("required");
    let addr = server
        .to_socket_addrs()
        .with_context(|| format!("resolving {server}"))?
        .next()
        .with_context(|| format!("{server} has no address"))?;
    let host = server
        .rsplit_once(':')
        .map_or(server.as_str(), |(h, _)| h)
        .to_string();
    let transport = match (sub.get_flag("tls"), sub.get_flag("ws")) {
        (false, false) => Transport::Tcp,
        (true, false) => Transport::Ssl,
        (false, true) => Transport::Ws,
        (true, true) => Transport::Wss,
    };
    let coin_name = sub.get_one::<String>("coin").expect("default");
    let net = sub.get_one::<String>("network").expect("default");
    let node = Node::http(sub.get_one::<String>("daemon").expect("required"));
    let mut coin =
        anode_coins::lookup(coin_name, net).with_context(|| format!("coin {coin_name} {net}"))?;
    // A simulator with its own genesis: take the node's.
    let genesis = node.call("getblockhash", serde_json::json!([0])).await?;
    let genesis = anode_conformance::model::from_display(genesis.as_str().unwrap_or_default())?;
    if genesis != coin.params().genesis_hash {
        let mut params = coin.params().clone();
        params.genesis_hash = genesis;
        coin = anode_coins::coin_from_params(params);
    }
    // The scenario needs the simulator's control methods.
    let is_simulator = node.call("sim_mine", serde_json::json!([0])).await.is_ok();
    let scenario = is_simulator && !sub.get_flag("no-scenario");
    let mut driver = SimRpcDriver {
        node: node.clone(),
        reorg_limit: *sub.get_one::<u32>("reorg-limit").expect("default"),
    };
    let options = SuiteOptions {
        scenario,
        ..SuiteOptions::default()
    };
    let target = Target {
        addrs: vec![(transport, addr)],
        host,
    };
    let report = suite::run(
        &target,
        &node,
        Arc::clone(&coin),
        scenario.then_some(&mut driver as &mut dyn anode_conformance::scenario::Driver),
        &options,
    )
    .await?;
    if !scenario {
        out("the daemon is not `anode simulate` (or --no-scenario): read-only checks only\n")?;
    }
    print_results(&report.results, &report.steps)
}

async fn run_real_node(sub: &ArgMatches) -> anyhow::Result<usize> {
    let bitcoind = sub.get_one::<String>("bitcoind").expect("required");
    let report = anode_conformance::real_node::run(std::path::Path::new(bitcoind)).await?;
    print_results(&report.results, &report.steps)
}
