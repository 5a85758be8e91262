//! `anode-bench`: the benchmark suite (see `anode_benches::run`).
//!
//! ```text
//! cargo run -p anode-benches --release --all-features -- all --profile small
//! cargo run -p anode-benches --release --all-features -- peer --server HOST:PORT \
//!     --scripts-from-daemon http://user:pass@HOST:PORT/
//! cargo run -p anode-benches --release --all-features -- cold --server HOST:PORT \
//!     --daemon http://user:pass@HOST:PORT/
//! cargo run -p anode-benches --release --all-features -- scale --profile mainnet-50m \
//!     --engines rocksdb --cgroup-mb 3000
//! anode-bench hostile --engine rocksdb    # root: raises the open-file limit
//! ```

use std::path::PathBuf;

use anode_benches::run::hostile::HostileOptions;
use anode_benches::run::scale::{ScaleOptions, ScalePlan};
use anode_benches::run::{self, cold::ColdOptions, plan::Plan, say, AllOptions, TargetSource};
use anyhow::{bail, Context};
use clap::{Arg, ArgMatches, Command};

fn profile_arg() -> Arg {
    Arg::new("profile")
        .long("profile")
        .default_value("small")
        .help(
        "tiny (seconds), small (~150k txs, under 15 min for 3 engines), medium (~1M), large (~5M)",
    )
}

fn seed_arg() -> Arg {
    Arg::new("seed")
        .long("seed")
        .default_value("1")
        .help("chain seed")
}

fn parse<T: std::str::FromStr>(m: &ArgMatches, name: &str) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    m.get_one::<String>(name)
        .with_context(|| format!("--{name} is missing"))?
        .parse()
        .with_context(|| format!("--{name}"))
}

/// A count written in full or with a suffix: `1000000`, `20m`, `1.5m`, `500k`.
fn parse_count(text: &str) -> anyhow::Result<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let (number, scale) = match lower.strip_suffix('m') {
        Some(n) => (n, 1e6),
        None => match lower.strip_suffix('k') {
            Some(n) => (n, 1e3),
            None => (lower.as_str(), 1.0),
        },
    };
    let value: f64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a count (1000000, 500k, 20m)"))?;
    if !(value.is_finite() && value >= 1.0 / scale) {
        bail!("{text:?} is not a positive count");
    }
    Ok((value * scale).round() as u64)
}

fn main() -> anyhow::Result<()> {
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let matches = Command::new("anode-bench")
        .about("anode's benchmark suite: sync, queries, wallet storm, new blocks, mempool and reorgs per storage engine, with a report")
        .subcommand_required(true)
        .subcommand(
            Command::new("all")
                .about("Every workload for every engine compiled in; writes report.md and SVG plots")
                .arg(profile_arg())
                .arg(seed_arg())
                .arg(Arg::new("cache-mb").long("cache-mb").default_value("1200"))
                .arg(Arg::new("out").long("out").default_value("target/bench-report").help("output directory"))
                .arg(Arg::new("engines").long("engines").help("comma-separated engines (default: every one compiled in)"))
                .arg(Arg::new("work-dir").long("work-dir").help("where the databases go (default: the system's temporary directory)")),
        )
        .subcommand(
            Command::new("peer")
                .about("The query and storm workloads against any Electrum server (plain TCP)")
                .arg(Arg::new("server").long("server").required(true).help("HOST:PORT of the Electrum server"))
                .arg(Arg::new("scripts-from-daemon").long("scripts-from-daemon").help("node RPC URL whose chain the server indexes (regtest); the scripts and transactions queried are read from it"))
                .arg(Arg::new("scripts-file").long("scripts-file").help("targets.json written by `all` (same chain, same seed)"))
                .arg(profile_arg())
                .arg(Arg::new("out").long("out").default_value("target/bench-report/peer")),
        )
        .subcommand(
            Command::new("cold")
                .about("p50/p99 of get_history, get_balance, listunspent and get_merkle for random scripts of the whole chain, each cell on a dropped page cache (root)")
                .arg(Arg::new("server").long("server").required(true).help("HOST:PORT of the Electrum server (plain TCP)"))
                .arg(Arg::new("daemon").long("daemon").required(true).help("node RPC URL whose chain the server indexes; targets are drawn from its blocks"))
                .arg(Arg::new("coin").long("coin").default_value("Bitcoin"))
                .arg(Arg::new("net").long("net").default_value("regtest"))
                .arg(Arg::new("targets").long("targets").default_value("1000").help("random targets per cell"))
                .arg(Arg::new("sessions").long("sessions").default_value("1,64").help("comma-separated session counts"))
                .arg(Arg::new("small-history").long("small-history").default_value("100").help("also report scripts with at most this many transactions"))
                .arg(seed_arg())
                .arg(Arg::new("keep-cache").long("keep-cache").action(clap::ArgAction::SetTrue).help("do not drop the page cache before each cell"))
                .arg(Arg::new("out").long("out").default_value("target/bench-report/cold")),
        )
        .subcommand(
            Command::new("scale")
                .about("The initial sync at scale: a chain directory of tens of millions of transactions, synced by each engine inside a memory cgroup that caps its page cache (root), then cold queries on the finished index; writes summary.md, a CSV and an SVG of tx/s per engine")
                .arg(Arg::new("profile").long("profile").default_value("mainnet-20m").help("tiny (the test suite's, seconds), mainnet-20m, mainnet-50m or mainnet-100m"))
                .arg(Arg::new("txs").long("txs").help("transactions of the chain, instead of the profile's (1000000, or 1m, 50m)"))
                .arg(Arg::new("engines").long("engines").help("comma-separated engines (default: every one compiled in)"))
                .arg(Arg::new("cache-mb").long("cache-mb").help("CACHE_MB of every server (default: the profile's)"))
                .arg(Arg::new("cgroup-mb").long("cgroup-mb").help("the memory cgroup's limit in MB, page cache included; 0 runs uncapped (default: the profile's)"))
                .arg(Arg::new("reorg-limit").long("reorg-limit").help("REORG_LIMIT (default: the profile's)"))
                .arg(Arg::new("cold-targets").long("cold-targets").help("random targets per cold-query cell; 0 skips the cold queries (default: the profile's)"))
                .arg(Arg::new("chain-dir").long("chain-dir").help("the chain directory, generated when it holds no chain (default: WORK/chain-TXS)"))
                .arg(Arg::new("work").long("work").default_value("/work/bench").help("where the databases (and by default the chain) go"))
                .arg(Arg::new("out").long("out").default_value("target/scale-sync").help("output directory"))
                .arg(Arg::new("anode").long("anode").help("the anode binary (default: the one beside anode-bench)"))
                .arg(Arg::new("electrumx").long("electrumx").help("electrumx_server (scripts/install-peers) to sync on the same chain after the engines"))
                .arg(Arg::new("cold-only").long("cold-only").action(clap::ArgAction::SetTrue).help("skip the syncs: run the cold queries on the indexes a previous run left in --work")),
        )
        .subcommand(
            Command::new("hostile")
                .about("anode under hostile clients: idle sessions, slow readers, slowloris, while a wallet measures latency; peak RSS and sessions dropped, with MAX_SESSIONS raised and at the default (root: raises the open-file limit)")
                .arg(Arg::new("engine").long("engine").default_value("rocksdb"))
                .arg(Arg::new("idle").long("idle").default_value("10000").help("idle sessions"))
                .arg(Arg::new("slow-readers").long("slow-readers").default_value("1000"))
                .arg(Arg::new("slow-reader-requests").long("slow-reader-requests").default_value("300").help("blockchain.block.headers requests each slow reader sends"))
                .arg(Arg::new("slowloris").long("slowloris").default_value("100"))
                .arg(Arg::new("wallet-seconds").long("wallet-seconds").default_value("30"))
                .arg(Arg::new("wallet-rate").long("wallet-rate").default_value("15").help("the wallet's requests a second"))
                .arg(Arg::new("blocks").long("blocks").default_value("2100"))
                .arg(Arg::new("max-sessions").long("max-sessions").default_value("12000").help("MAX_SESSIONS of the first run (the second runs at the default)"))
                .arg(seed_arg())
                .arg(Arg::new("work").long("work").default_value("/tmp").help("where the databases go"))
                .arg(Arg::new("out").long("out").default_value("target/bench-report/hostile"))
                .arg(Arg::new("anode").long("anode").help("the anode binary (default: the one beside anode-bench)")),
        )
        .subcommand(
            Command::new("engine")
                .hide(true)
                .about("One engine's run (a child process of `all`)")
                .arg(Arg::new("engine").long("engine").required(true))
                .arg(profile_arg())
                .arg(seed_arg())
                .arg(Arg::new("cache-mb").long("cache-mb").default_value("1200"))
                .arg(Arg::new("result").long("result").required(true))
                .arg(Arg::new("targets").long("targets")),
        )
        .subcommand(
            Command::new("fetch")
                .hide(true)
                .about("The fetch+parse limit (a child process of `all`)")
                .arg(profile_arg())
                .arg(seed_arg())
                .arg(Arg::new("result").long("result").required(true)),
        )
        .get_matches();

    match matches.subcommand() {
        Some(("all", m)) => {
            let plan = Plan::by_name(&parse::<String>(m, "profile")?)?;
            let engines: Vec<String> = match m.get_one::<String>("engines") {
                Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
                None => run::engines().iter().map(|s| s.to_string()).collect(),
            };
            if engines.is_empty() {
                bail!("this build has no storage engine: build with --all-features");
            }
            let options = AllOptions {
                exe: std::env::current_exe().context("locating anode-bench")?,
                plan,
                seed: parse(m, "seed")?,
                cache_mb: parse(m, "cache-mb")?,
                out: PathBuf::from(parse::<String>(m, "out")?),
                engines,
                work_dir: m.get_one::<String>("work-dir").map(PathBuf::from),
                command: command_line,
            };
            run::run_all(&options)?;
        }
        Some(("peer", m)) => {
            let plan = Plan::by_name(&parse::<String>(m, "profile")?)?;
            let source = match (
                m.get_one::<String>("scripts-from-daemon"),
                m.get_one::<String>("scripts-file"),
            ) {
                (Some(url), None) => TargetSource::Daemon(url.clone()),
                (None, Some(file)) => TargetSource::File(PathBuf::from(file)),
                _ => bail!("give one of --scripts-from-daemon URL or --scripts-file FILE"),
            };
            let server = parse::<String>(m, "server")?;
            let out = PathBuf::from(parse::<String>(m, "out")?);
            let path = run::run_peer(&server, &source, &plan, &out, &command_line)?;
            say(&format!("report: {}", path.display()));
        }
        Some(("cold", m)) => {
            let sessions = parse::<String>(m, "sessions")?
                .split(',')
                .map(|s| s.trim().parse::<usize>().context("--sessions"))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let options = ColdOptions {
                server: parse(m, "server")?,
                daemon_url: parse(m, "daemon")?,
                targets_per_cell: parse(m, "targets")?,
                sessions,
                seed: parse(m, "seed")?,
                drop_caches: !m.get_flag("keep-cache"),
                small_history: parse(m, "small-history")?,
            };
            let coin =
                anode_coins::lookup(&parse::<String>(m, "coin")?, &parse::<String>(m, "net")?)
                    .context("--coin/--net")?;
            let out = PathBuf::from(parse::<String>(m, "out")?);
            let path = run::run_cold_command(&options, coin, &out)?;
            say(&format!("report: {}", path.display()));
        }
        Some(("scale", m)) => {
            let mut plan = ScalePlan::by_name(&parse::<String>(m, "profile")?)?;
            if let Some(txs) = m.get_one::<String>("txs") {
                plan.txs = parse_count(txs).context("--txs")?;
            }
            if m.contains_id("cache-mb") {
                plan.cache_mb = parse(m, "cache-mb")?;
            }
            if m.contains_id("cgroup-mb") {
                plan.cgroup_mb = parse(m, "cgroup-mb")?;
            }
            if m.contains_id("reorg-limit") {
                plan.reorg_limit = parse(m, "reorg-limit")?;
            }
            if m.contains_id("cold-targets") {
                plan.cold_targets = parse(m, "cold-targets")?;
            }
            // `--engines ""` runs only the peer given with --electrumx
            let engines: Vec<String> = match m.get_one::<String>("engines") {
                Some(list) => list
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
                None => run::engines().iter().map(|s| s.to_string()).collect(),
            };
            let work = PathBuf::from(parse::<String>(m, "work")?);
            let anode = match m.get_one::<String>("anode") {
                Some(path) => PathBuf::from(path),
                None => std::env::current_exe()
                    .context("locating anode-bench")?
                    .with_file_name("anode"),
            };
            let chain_dir = match m.get_one::<String>("chain-dir") {
                Some(dir) => PathBuf::from(dir),
                // chain-20m, as scripts/scale-sync has always named them
                None if plan.txs % 1_000_000 == 0 => {
                    work.join(format!("chain-{}m", plan.txs / 1_000_000))
                }
                None => work.join(format!("chain-{}", plan.txs)),
            };
            let options = ScaleOptions {
                plan,
                engines,
                anode,
                chain_dir,
                work,
                out: PathBuf::from(parse::<String>(m, "out")?),
                electrumx: m.get_one::<String>("electrumx").map(PathBuf::from),
                cold_only: m.get_flag("cold-only"),
            };
            let path = run::scale::run_scale(&options)?;
            say(&format!("summary: {}", path.display()));
        }
        Some(("hostile", m)) => {
            let anode = match m.get_one::<String>("anode") {
                Some(path) => PathBuf::from(path),
                None => std::env::current_exe()
                    .context("locating anode-bench")?
                    .with_file_name("anode"),
            };
            let options = HostileOptions {
                engine: parse(m, "engine")?,
                anode,
                work: PathBuf::from(parse::<String>(m, "work")?),
                out: PathBuf::from(parse::<String>(m, "out")?),
                idle: parse(m, "idle")?,
                slow_readers: parse(m, "slow-readers")?,
                slow_reader_requests: parse(m, "slow-reader-requests")?,
                slowloris: parse(m, "slowloris")?,
                wallet_seconds: parse(m, "wallet-seconds")?,
                wallet_rate: parse(m, "wallet-rate")?,
                blocks: parse(m, "blocks")?,
                raised_max_sessions: parse(m, "max-sessions")?,
                seed: parse(m, "seed")?,
            };
            let path = run::hostile::run_hostile(&options)?;
            say(&format!("summary: {}", path.display()));
        }
        Some(("engine", m)) => {
            let plan = Plan::by_name(&parse::<String>(m, "profile")?)?;
            let targets = m.get_one::<String>("targets").map(PathBuf::from);
            run::child_engine(
                &parse::<String>(m, "engine")?,
                &plan,
                parse(m, "seed")?,
                parse(m, "cache-mb")?,
                &PathBuf::from(parse::<String>(m, "result")?),
                targets.as_deref(),
            )?;
        }
        Some(("fetch", m)) => {
            let plan = Plan::by_name(&parse::<String>(m, "profile")?)?;
            run::child_fetch(
                &plan,
                parse(m, "seed")?,
                &PathBuf::from(parse::<String>(m, "result")?),
            )?;
        }
        _ => bail!("unknown subcommand"),
    }
    Ok(())
}
