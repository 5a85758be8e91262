//! `anode-bench scale`: the initial sync at scale, with the index far bigger than memory
//! (docs/performance.md, "At scale"). A chain directory of N transactions is generated once
//! and kept; `anode simulate` serves it outside the cap; then each engine syncs it from
//! genesis inside a memory cgroup that also caps its page cache, from a cold page cache. After
//! each sync the finished index is served again by a fresh process in the same cgroup and
//! `anode-bench cold` times random queries on it. ElectrumX can run on the same chain too.
//!
//! Per engine it writes the sync's log, a CSV of (seconds, transactions, height, tx/s), an
//! SVG of tx/s over the share of the chain indexed, and a row of `summary.md`: time, tx/s over
//! the first and last 10% of the transactions, peak RSS (all, and anonymous only: LMDB's
//! mapped pages count in RSS but are page cache), bytes written, disk, bytes per transaction.
//!
//! The cap needs root and the cgroup v1 memory controller (`/sys/fs/cgroup/memory`):
//! `mkdir` a group, write the limit to `memory.limit_in_bytes`, and the process joins it by
//! writing its PID to `cgroup.procs` before it `exec`s the server. With `--cgroup-mb 0`, or
//! without root, the runs are uncapped and the page cache is not dropped; the summary says so.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use plotters::prelude::*;

use super::cold::ColdOptions;
use super::say;

/// The sizes and limits of one `scale` run.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePlan {
    /// profile name
    pub name: &'static str,
    /// transactions of the chain directory
    pub txs: u64,
    /// CACHE_MB of every server
    pub cache_mb: u64,
    /// the memory cgroup's limit (0: no cgroup)
    pub cgroup_mb: u64,
    /// REORG_LIMIT (the undo data kept; the simulator's regtest chain keeps ElectrumX's 8,000)
    pub reorg_limit: u32,
    /// random targets per cell of the cold queries (0: none)
    pub cold_targets: usize,
}

impl ScalePlan {
    /// The plan called `name`.
    pub fn by_name(name: &str) -> anyhow::Result<ScalePlan> {
        let mainnet = |name, txs| ScalePlan {
            name,
            txs,
            cache_mb: 1000,
            cgroup_mb: 3000,
            reorg_limit: 8000,
            cold_targets: 1000,
        };
        Ok(match name {
            // The test suite's: the whole pipeline in seconds.
            "tiny" => ScalePlan {
                name: "tiny",
                txs: 20_000,
                cache_mb: 64,
                cgroup_mb: 1500,
                reorg_limit: 200,
                cold_targets: 12,
            },
            "mainnet-20m" => mainnet("mainnet-20m", 20_000_000),
            "mainnet-50m" => mainnet("mainnet-50m", 50_000_000),
            "mainnet-100m" => mainnet("mainnet-100m", 100_000_000),
            other => {
                bail!(
                    "unknown scale profile {other}: tiny, mainnet-20m, mainnet-50m or mainnet-100m"
                )
            }
        })
    }
}

/// What `anode-bench scale` runs.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// sizes and limits
    pub plan: ScalePlan,
    /// engines to sync, in order
    pub engines: Vec<String>,
    /// the `anode` binary (the server and the simulator)
    pub anode: PathBuf,
    /// the chain directory (generated when it holds no chain)
    pub chain_dir: PathBuf,
    /// where the databases go (`db-ENGINE`)
    pub work: PathBuf,
    /// where the logs, CSVs, SVGs and summary go
    pub out: PathBuf,
    /// `electrumx_server` to sync on the same chain after the engines (scripts/install-peers)
    pub electrumx: Option<PathBuf>,
    /// skip the syncs: only the cold queries, on the indexes a previous run left in `work`
    pub cold_only: bool,
}

/// Where the cgroup v1 memory controller lives.
const CGROUP_ROOT: &str = "/sys/fs/cgroup/memory";

/// What one sync measured.
struct SyncRun {
    name: String,
    seconds: f64,
    /// (seconds since launch, transactions, height, tx/s of the window)
    samples: Vec<(f64, u64, u32, f64)>,
    peak_rss: u64,
    peak_anon: u64,
    written: u64,
    disk: u64,
    /// `None` when it reached the tip
    failure: Option<String>,
}

impl SyncRun {
    /// The row of an engine whose sync `--cold-only` skipped.
    fn skipped(name: &str) -> Self {
        SyncRun {
            name: name.to_string(),
            seconds: 0.0,
            samples: Vec::new(),
            peak_rss: 0,
            peak_anon: 0,
            written: 0,
            disk: 0,
            failure: None,
        }
    }
}

/// `anode-bench scale`; returns the summary's path.
pub fn run_scale(options: &ScaleOptions) -> anyhow::Result<PathBuf> {
    let out = &options.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::create_dir_all(&options.work)
        .with_context(|| format!("creating {}", options.work.display()))?;
    let capped = options.plan.cgroup_mb > 0;
    let root = is_root();
    if capped && !(root && Path::new(CGROUP_ROOT).is_dir()) {
        bail!(
            "--cgroup-mb {} needs root and the cgroup v1 memory controller at {CGROUP_ROOT} \
             (or pass --cgroup-mb 0 for an uncapped run)",
            options.plan.cgroup_mb
        );
    }
    let chain_json = options.chain_dir.join("chain.json");
    if !chain_json.is_file() {
        say(&format!(
            "generating {} transactions into {}",
            options.plan.txs,
            options.chain_dir.display()
        ));
        let log = std::fs::File::create(out.join("generate.log")).context("generate.log")?;
        let status = Command::new(&options.anode)
            .arg("simulate")
            .arg("--chain-dir")
            .arg(&options.chain_dir)
            .args(["--txs", &options.plan.txs.to_string(), "--generate-only"])
            .stdout(Stdio::null())
            .stderr(log)
            .status()
            .with_context(|| format!("running {}", options.anode.display()))?;
        if !status.success() {
            bail!(
                "generating the chain failed ({status}): see {}",
                out.join("generate.log").display()
            );
        }
    }
    let chain_facts: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&chain_json).with_context(|| format!("reading {}", chain_json.display()))?,
    )
    .with_context(|| format!("parsing {}", chain_json.display()))?;
    let total_txs = chain_facts["txs"]
        .as_u64()
        .with_context(|| format!("{} has no transaction count", chain_json.display()))?;

    let sim_port = free_port()?;
    let sim_log = std::fs::File::create(out.join("simulator.out")).context("simulator.out")?;
    let simulator = Command::new(&options.anode)
        .arg("simulate")
        .arg("--chain-dir")
        .arg(&options.chain_dir)
        .args(["--listen", &format!("127.0.0.1:{sim_port}")])
        .stdout(sim_log.try_clone().context("simulator.out")?)
        .stderr(sim_log)
        .spawn()
        .context("starting the simulator")?;
    let simulator = KillOnDrop(simulator);
    wait_for_port(sim_port, Duration::from_secs(120), None)
        .context("the simulator did not listen")?;
    let daemon_url = format!("http://127.0.0.1:{sim_port}/");

    let mut runs = Vec::new();
    let mut cold_tables = String::new();
    for engine in &options.engines {
        let db = options.work.join(format!("db-{engine}"));
        if options.cold_only {
            if !db.is_dir() {
                bail!("--cold-only: {} holds no index to query", db.display());
            }
        } else {
            let _ = std::fs::remove_dir_all(&db);
        }
        let cgroup = capped
            .then(|| make_cgroup(&format!("anode-scale-{engine}"), options.plan.cgroup_mb))
            .transpose()?;
        drop_caches(root);
        let tcp_port = free_port()?;
        let server_env = |extra: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
            let mut env = vec![
                ("COIN", "Bitcoin".to_string()),
                ("NET", "regtest".into()),
                ("DAEMON_URL", daemon_url.clone()),
                ("DB_DIRECTORY", db.display().to_string()),
                ("DB_ENGINE", engine.clone()),
                ("CACHE_MB", options.plan.cache_mb.to_string()),
                ("REORG_LIMIT", options.plan.reorg_limit.to_string()),
                ("SERVICES", format!("tcp://127.0.0.1:{tcp_port}")),
                ("PEER_DISCOVERY", "off".into()),
                ("NO_COLOR", "1".into()),
                ("RUST_LOG", "info".into()),
            ];
            env.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
            env
        };
        let mut run = if options.cold_only {
            SyncRun::skipped(engine)
        } else {
            let log = out.join(format!("{engine}.log"));
            say(&format!("{engine}: syncing {total_txs} transactions"));
            let child = spawn_in(
                cgroup.as_deref(),
                &options.anode,
                &server_env(&[]),
                &log,
                true,
            )?;
            let mut run = watch_sync(
                engine,
                child,
                &log,
                "index caught up",
                ProgressFormat::Anode,
            )?;
            run.disk = super::sync::dir_bytes(&db).unwrap_or(0);
            say(&summary_row(&run, total_txs));
            drop_caches(root);
            run
        };
        if run.failure.is_none() && options.plan.cold_targets > 0 {
            // The benchmark's server settings (engine.rs, BENCH_CONFIG): no padding, whose
            // timer would be measured rather than the index, and cost limits that 64
            // sessions from one address do not reach.
            let env = server_env(&[
                ("PAD_TCP", "false".into()),
                ("COST_SOFT_LIMIT", "1000000000".into()),
                ("COST_HARD_LIMIT", "10000000000".into()),
                ("MAX_SESSIONS", "5000".into()),
                ("REQUEST_TIMEOUT", "600".into()),
            ]);
            let serve_log = out.join(format!("{engine}.serve.log"));
            let server = KillOnDrop(spawn_in(
                cgroup.as_deref(),
                &options.anode,
                &env,
                &serve_log,
                true,
            )?);
            let cold =
                wait_for_port(tcp_port, Duration::from_secs(600), Some(&server.0)).and_then(|_| {
                    let coin = anode_coins::lookup("Bitcoin", "regtest").context("regtest")?;
                    super::run_cold_command(
                        &ColdOptions {
                            server: format!("127.0.0.1:{tcp_port}"),
                            daemon_url: daemon_url.clone(),
                            targets_per_cell: options.plan.cold_targets,
                            sessions: vec![1, 64],
                            seed: 1,
                            drop_caches: root,
                            small_history: 100,
                        },
                        coin,
                        &out.join(format!("cold-{engine}")),
                    )
                });
            match cold.and_then(|path| {
                std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))
            }) {
                Ok(md) => {
                    let _ = write!(cold_tables, "\n## {engine}\n");
                    for line in md.lines().skip(1) {
                        let _ = writeln!(cold_tables, "{line}");
                    }
                }
                Err(e) => run.failure = Some(format!("the cold queries failed: {e:#}")),
            }
            interrupt(server.0.id());
            let mut server = server;
            let _ = server.0.wait();
        }
        if !options.cold_only {
            write_run_files(out, &run, total_txs)?;
            runs.push(run);
        } else if let Some(failure) = run.failure {
            bail!("{engine}: {failure}");
        }
    }
    if let Some(electrumx) = &options.electrumx {
        runs.push(run_electrumx(
            options,
            electrumx,
            &daemon_url,
            root,
            total_txs,
        )?);
    }
    drop(simulator);

    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "Chain: {total_txs} transactions ({}), CACHE_MB={}, REORG_LIMIT={}, {}.\n",
        options.chain_dir.display(),
        options.plan.cache_mb,
        options.plan.reorg_limit,
        if capped {
            format!(
                "a {} MB memory cgroup, cold page cache",
                options.plan.cgroup_mb
            )
        } else {
            "no memory cgroup".to_string()
        }
    );
    summary.push_str(SUMMARY_HEADER);
    for run in &runs {
        summary.push_str(&summary_row(run, total_txs));
        summary.push('\n');
        if let Some(failure) = &run.failure {
            let _ = writeln!(summary, "| {}: {failure} |", run.name);
        }
    }
    if !runs.is_empty() {
        summary.push_str(&projection_table(&runs, total_txs));
    }
    summary.push_str(&cold_tables);
    let path = out.join("summary.md");
    std::fs::write(&path, &summary).with_context(|| format!("writing {}", path.display()))?;
    // the summary is the command's output, for a shell to redirect
    let _ = std::io::stdout().lock().write_all(summary.as_bytes());
    Ok(path)
}

/// The summary's last table: each finished sync projected to mainnet's size.
fn projection_table(runs: &[SyncRun], total_txs: u64) -> String {
    let mut summary = String::new();
    summary.push_str(
        "\nProjected to Bitcoin mainnet's 1.2 billion transactions (`project_seconds` in \
         benches/src/run/scale.rs: a power law fitted to the tx/s of the second half of the \
         chain, integrated to 1.2B; disk as bytes per transaction times 1.2B):\n\n\
         | engine | tx/s decline exponent | projected time | projected disk GB |\n|---|---:|---:|---:|\n",
    );
    for run in runs.iter().filter(|r| r.failure.is_none()) {
        let disk = run.disk as f64 / total_txs.max(1) as f64 * MAINNET_TXS / 1e9;
        match project_seconds(&run.samples, total_txs, run.seconds, MAINNET_TXS) {
            Some((seconds, b)) => {
                let _ = writeln!(
                    summary,
                    "| {} | {b:.2} | {:.1} days | {disk:.0} |",
                    run.name,
                    seconds / 86_400.0
                );
            }
            None => {
                let _ = writeln!(
                    summary,
                    "| {} | (curve too short) | — | {disk:.0} |",
                    run.name
                );
            }
        }
    }
    summary
}

const SUMMARY_HEADER: &str = "| engine | seconds | tx/s | tx/s first 10% | tx/s last 10% | last/first | peak RSS MB | peak anon MB | written GB | disk GB | bytes/tx |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";

/// ElectrumX with LevelDB on the same chain, as an operator runs it: its own environment
/// variables, the same cache and reorg limit, from a cold page cache. Give it a larger
/// cgroup than anode: at CACHE_MB=1000 its Python objects pass 3 GB within a minute of a
/// mainnet-like chain.
fn run_electrumx(
    options: &ScaleOptions,
    electrumx: &Path,
    daemon_url: &str,
    root: bool,
    total_txs: u64,
) -> anyhow::Result<SyncRun> {
    let db = options.work.join("db-electrumx");
    let _ = std::fs::remove_dir_all(&db);
    std::fs::create_dir_all(&db).with_context(|| format!("creating {}", db.display()))?;
    let cgroup = (options.plan.cgroup_mb > 0)
        .then(|| make_cgroup("anode-scale-electrumx", options.plan.cgroup_mb))
        .transpose()?;
    drop_caches(root);
    let url = daemon_url.replacen("http://", "http://user:pass@", 1);
    let env = vec![
        ("COIN", "Bitcoin".to_string()),
        ("NET", "regtest".into()),
        ("DAEMON_URL", url),
        ("DB_DIRECTORY", db.display().to_string()),
        ("DB_ENGINE", "leveldb".into()),
        ("CACHE_MB", options.plan.cache_mb.to_string()),
        ("REORG_LIMIT", options.plan.reorg_limit.to_string()),
        ("SERVICES", format!("tcp://127.0.0.1:{}", free_port()?)),
        ("PEER_DISCOVERY", "off".into()),
        ("PEER_ANNOUNCE", String::new()),
        ("ALLOW_ROOT", "1".into()),
        // epoch seconds, so that its flush lines can be placed on the same time axis
        (
            "LOG_FORMAT",
            "%(created)f %(levelname)s:%(name)s:%(message)s".into(),
        ),
    ];
    let log = options.out.join("electrumx.log");
    say(&format!("electrumx: syncing {total_txs} transactions"));
    // ElectrumX logs on stdout.
    let child = spawn_in(cgroup.as_deref(), electrumx, &env, &log, false)?;
    let mut run = watch_sync(
        "electrumx",
        child,
        &log,
        "caught up to height",
        ProgressFormat::Electrumx,
    )?;
    run.disk = super::sync::dir_bytes(&db).unwrap_or(0);
    write_run_files(&options.out, &run, total_txs)?;
    say(&summary_row(&run, total_txs));
    Ok(run)
}

/// How a server's log reports progress.
#[derive(Clone, Copy)]
enum ProgressFormat {
    /// anode's `sync height=… txs=… tx_per_s="…"` lines, stamped with RFC 3339 UTC times
    Anode,
    /// ElectrumX's `flush took …  Height 1,234 txs: 5,678 (+910)` lines, stamped with epoch
    /// seconds by the LOG_FORMAT above
    Electrumx,
}

/// Samples the child's memory and writes once a second until its log says `done` (or it
/// exits), then stops it with SIGINT.
fn watch_sync(
    name: &str,
    mut child: Child,
    log: &Path,
    done: &str,
    format: ProgressFormat,
) -> anyhow::Result<SyncRun> {
    let started = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let pid = child.id();
    let mut run = SyncRun::skipped(name);
    let mut reader = LogTail::new(log);
    let mut previous = (0.0, 0u64);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            run.failure = Some(format!(
                "exited early ({status}; killed by the cgroup?): see {}",
                log.display()
            ));
            break;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        run.peak_rss = run.peak_rss.max(status_kb(&status, "VmHWM:") * 1024);
        run.peak_anon = run.peak_anon.max(status_kb(&status, "RssAnon:") * 1024);
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
        let written = io
            .lines()
            .find_map(|l| l.strip_prefix("write_bytes:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        run.written = run.written.max(written);
        let mut finished = false;
        for line in reader.new_lines() {
            if line.contains(done) {
                finished = true;
            }
            if let Some(sample) = progress_sample(&line, format, started_unix, &mut previous) {
                run.samples.push(sample);
            }
        }
        if finished {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    run.seconds = started.elapsed().as_secs_f64();
    interrupt(pid);
    let _ = child.wait();
    Ok(run)
}

/// One progress line as (seconds since launch, transactions, height, tx/s).
fn progress_sample(
    line: &str,
    format: ProgressFormat,
    started_unix: f64,
    previous: &mut (f64, u64),
) -> Option<(f64, u64, u32, f64)> {
    match format {
        ProgressFormat::Anode => {
            if !(line.contains(" sync ") && line.contains("txs=")) {
                return None;
            }
            let stamp = line.split_whitespace().next()?;
            let at = rfc3339_unix(stamp)? - started_unix;
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(name))
                    .map(|v| v.trim_matches('"').to_string())
            };
            let txs = field("txs=")?.parse().ok()?;
            let height = field("height=")?.parse().ok()?;
            let rate = field("tx_per_s=")?.parse().ok()?;
            Some((at, txs, height, rate))
        }
        ProgressFormat::Electrumx => {
            if !(line.contains("flush took") && line.contains("txs:")) {
                return None;
            }
            let words: Vec<String> = line
                .replace(',', "")
                .split_whitespace()
                .map(String::from)
                .collect();
            let at = words.first()?.parse::<f64>().ok()? - started_unix;
            let after = |key: &str| {
                words
                    .iter()
                    .position(|w| w == key)
                    .and_then(|i| words.get(i + 1))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            let height = u32::try_from(after("Height")?).ok()?;
            let txs = after("txs:")?;
            let rate = if at > previous.0 {
                txs.saturating_sub(previous.1) as f64 / (at - previous.0)
            } else {
                0.0
            };
            *previous = (at, txs);
            Some((at, txs, height, rate))
        }
    }
}

/// Seconds since the epoch of an RFC 3339 UTC stamp (`2026-12-07T22:32:24.831518Z`).
fn rfc3339_unix(stamp: &str) -> Option<f64> {
    let stamp = stamp.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut ymd = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let mut hms = time.split(':');
    let hours = hms.next()?.parse::<f64>().ok()?;
    let minutes = hms.next()?.parse::<f64>().ok()?;
    let seconds = hms.next()?.parse::<f64>().ok()?;
    // days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil)
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + hours * 3600.0 + minutes * 60.0 + seconds)
}

pub(super) fn status_kb(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

/// The lines appended to a log since the last call.
struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl LogTail {
    fn new(path: &Path) -> Self {
        LogTail {
            path: path.to_path_buf(),
            offset: 0,
            partial: String::new(),
        }
    }

    fn new_lines(&mut self) -> Vec<String> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut reader = BufReader::new(file);
        let mut lines = Vec::new();
        let mut buf = String::new();
        while let Ok(n) = reader.read_line(&mut buf) {
            if n == 0 {
                break;
            }
            self.offset += n as u64;
            if buf.ends_with('\n') {
                let mut line = std::mem::take(&mut self.partial);
                line.push_str(buf.trim_end());
                lines.push(line);
            } else {
                // a line still being written: kept until its end arrives
                self.partial.push_str(&buf);
            }
            buf.clear();
        }
        lines
    }
}

/// tx/s over the first and over the last 10% of the transactions, from the progress samples:
/// from the start to the first sample at or past 10%, and from the last sample before 90% to
/// the end (a short run has few samples: the spans are then wider than 10%).
fn first_last_rates(samples: &[(f64, u64, u32, f64)], total_txs: u64) -> (f64, f64) {
    let tenth = total_txs as f64 * 0.1;
    let first = samples
        .iter()
        .find(|s| s.1 as f64 >= tenth)
        .filter(|s| s.0 > 0.0)
        .map_or(0.0, |s| s.1 as f64 / s.0);
    let last = match (
        samples
            .iter()
            .rev()
            .find(|s| (s.1 as f64) < 0.9 * total_txs as f64),
        samples.last(),
    ) {
        (Some(from), Some(end)) if end.0 > from.0 => {
            end.1.saturating_sub(from.1) as f64 / (end.0 - from.0)
        }
        (_, Some(end)) if end.0 > 0.0 => end.1 as f64 / end.0,
        _ => 0.0,
    };
    (first, last)
}

/// Bitcoin mainnet's transactions, for the projection (about 1.2 billion at the end of 2026).
pub const MAINNET_TXS: f64 = 1.2e9;

/// The time a sync would take to reach `target` transactions, extrapolated from its curve:
/// tx/s over each 5% of the transactions, a power law `rate = a * n^-b` fitted by least
/// squares to the chunks of the second half (where the index has outgrown memory), and that
/// law integrated from the end of the run to `target`. `None` when the curve is too short to
/// fit. The exponent is returned too, so that a reader sees how steep the decline is.
pub fn project_seconds(
    samples: &[(f64, u64, u32, f64)],
    total_txs: u64,
    seconds: f64,
    target: f64,
) -> Option<(f64, f64)> {
    let chunk = total_txs as f64 / 20.0;
    let mut points = Vec::new();
    let mut from = (0.0, 0u64);
    for s in samples {
        if s.1.saturating_sub(from.1) as f64 >= chunk && s.0 > from.0 {
            let middle = (s.1 + from.1) as f64 / 2.0;
            let rate = (s.1 - from.1) as f64 / (s.0 - from.0);
            if middle >= total_txs as f64 / 2.0 && rate > 0.0 {
                points.push((middle.ln(), rate.ln()));
            }
            from = (s.0, s.1);
        }
    }
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(sxy, sxx), (x, y)| {
        (sxy + (x - mx) * (y - my), sxx + (x - mx) * (x - mx))
    });
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let b = -slope;
    let a = (my - slope * mx).exp();
    let start = total_txs as f64;
    // the integral of n^b / a from start to target
    let remaining = if (b + 1.0).abs() < 1e-9 {
        (target.ln() - start.ln()) / a
    } else {
        (target.powf(b + 1.0) - start.powf(b + 1.0)) / ((b + 1.0) * a)
    };
    Some((seconds + remaining.max(0.0), b))
}

fn summary_row(run: &SyncRun, total_txs: u64) -> String {
    let (first, last) = first_last_rates(&run.samples, total_txs);
    let ratio = if first > 0.0 {
        format!("{:.2}", last / first)
    } else {
        "n/a".into()
    };
    format!(
        "| {} | {:.0} | {:.0} | {first:.0} | {last:.0} | {ratio} | {} | {} | {:.1} | {:.1} | {} |",
        run.name,
        run.seconds,
        total_txs as f64 / run.seconds.max(0.001),
        run.peak_rss >> 20,
        run.peak_anon >> 20,
        run.written as f64 / 1e9,
        run.disk as f64 / 1e9,
        run.disk / total_txs.max(1),
    )
}

/// NAME.csv and NAME.svg (tx/s over the share of the chain indexed).
fn write_run_files(out: &Path, run: &SyncRun, total_txs: u64) -> anyhow::Result<()> {
    let mut csv = String::new();
    for (t, txs, height, rate) in &run.samples {
        let _ = writeln!(csv, "{t:.1},{txs},{height},{rate:.0}");
    }
    let csv_path = out.join(format!("{}.csv", run.name));
    std::fs::write(&csv_path, csv).with_context(|| format!("writing {}", csv_path.display()))?;
    let svg = out.join(format!("{}.svg", run.name));
    plot_rate(&svg, run, total_txs).with_context(|| format!("drawing {}", svg.display()))
}

fn plot_rate(path: &Path, run: &SyncRun, total_txs: u64) -> anyhow::Result<()> {
    let err = |e: &dyn std::fmt::Debug| anyhow::anyhow!("{e:?}");
    let root = SVGBackend::new(path, (800, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let max_rate = run.samples.iter().map(|s| s.3).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: tx/s over the share of the chain indexed", run.name),
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..100.0, 0.0..max_rate * 1.05)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("% of the transactions indexed")
        .y_desc("tx/s")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(
            run.samples
                .iter()
                .map(|s| (100.0 * s.1 as f64 / total_txs.max(1) as f64, s.3)),
            BLUE.stroke_width(2),
        ))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// A memory cgroup `name` limited to `mb`, made afresh; returns its directory.
fn make_cgroup(name: &str, mb: u64) -> anyhow::Result<PathBuf> {
    let dir = Path::new(CGROUP_ROOT).join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let limit = dir.join("memory.limit_in_bytes");
    std::fs::write(&limit, (mb << 20).to_string())
        .with_context(|| format!("writing {}", limit.display()))?;
    Ok(dir)
}

/// Runs `program` with `env`, its log (stderr, or stdout too when `stderr_only` is false)
/// into `log`, inside `cgroup`: a shell joins the cgroup and then `exec`s the program, so
/// the program is inside from its first allocation.
pub(super) fn spawn_in(
    cgroup: Option<&Path>,
    program: &Path,
    env: &[(&str, String)],
    log: &Path,
    stderr_only: bool,
) -> anyhow::Result<Child> {
    let mut command = match cgroup {
        Some(dir) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg("echo $$ > \"$0/cgroup.procs\" && exec \"$1\"")
                .arg(dir)
                .arg(program);
            c
        }
        None => Command::new(program),
    };
    for (key, value) in env {
        command.env(key, value);
    }
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    if stderr_only {
        command.stdout(Stdio::null());
    } else {
        command.stdout(file.try_clone().context("log file")?);
    }
    command
        .stderr(file)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))
}

/// Flushes dirty pages and drops the page cache (root only), so that the next run reads from
/// the disk.
fn drop_caches(root: bool) {
    if !root {
        return;
    }
    let _ = Command::new("sync").status();
    if let Err(e) = std::fs::write("/proc/sys/vm/drop_caches", "3") {
        say(&format!("could not drop the page cache: {e}"));
    }
}

pub(super) fn interrupt(pid: u32) {
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

pub(super) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr().context("finding a free port")?.port())
}

/// Waits until something listens on `port`, or `child` exits, or `limit` passes.
pub(super) fn wait_for_port(
    port: u16,
    limit: Duration,
    child: Option<&Child>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let pid = child.map(Child::id);
    while started.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                bail!("the server exited before it listened on port {port}");
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!(
        "nothing listened on port {port} within {} s",
        limit.as_secs()
    )
}

/// A child process killed when dropped (the simulator, a server left by an error).
pub(super) struct KillOnDrop(pub(super) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_stamps_become_epoch_seconds() {
        assert_eq!(rfc3339_unix("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(rfc3339_unix("2000-03-01T00:00:01.5Z"), Some(951_868_801.5));
        assert_eq!(rfc3339_unix("2026-12-07T22:32:24Z"), Some(1_796_682_744.0));
        assert_eq!(rfc3339_unix("22:32:24"), None);
    }

    #[test]
    fn progress_lines_of_anode_and_electrumx_are_read() {
        let start = rfc3339_unix("2026-12-07T22:32:00Z").expect("stamp");
        let mut previous = (0.0, 0);
        let anode = "2026-12-07T22:32:24.5Z  INFO anode::index::progress: sync height=9479 target=33333 txs=821268 blocks_per_s=\"1894.5\" tx_per_s=\"164121\" eta_s=12";
        assert_eq!(
            progress_sample(anode, ProgressFormat::Anode, start, &mut previous),
            Some((24.5, 821_268, 9479, 164_121.0))
        );
        let flush = "INFO anode::index::writer: flush height=10771 ops=5037854";
        assert_eq!(
            progress_sample(flush, ProgressFormat::Anode, start, &mut previous),
            None
        );
        let ex = format!(
            "{:.1} INFO:DB:flush took 1.2s.  Height 1,234 txs: 5,678 (+910)",
            start + 10.0
        );
        assert_eq!(
            progress_sample(&ex, ProgressFormat::Electrumx, start, &mut previous),
            Some((10.0, 5_678, 1_234, 567.8))
        );
    }

    #[test]
    fn the_first_and_last_tenths_are_timed_from_the_samples() {
        // 1,000 transactions: 100 a second for the first 100, then 10 a second.
        let mut samples = vec![(1.0, 100, 1, 100.0)];
        for i in 1..=90u64 {
            samples.push((1.0 + i as f64, 100 + 10 * i, 1 + i as u32, 10.0));
        }
        let (first, last) = first_last_rates(&samples, 1_000);
        assert!((first - 100.0).abs() < 1e-9, "{first}");
        assert!((last - 10.0).abs() < 1e-9, "{last}");
    }

    #[test]
    fn a_power_law_curve_is_projected_by_its_own_law() {
        // rate = 1e6 * n^-0.5, sampled every 1% of 10M transactions: t(n) = (2/3) n^1.5 / 1e6
        let t = |n: f64| 2.0 / 3.0 * n.powf(1.5) / 1e6;
        let samples: Vec<_> = (1..=100u64)
            .map(|i| {
                let n = i * 100_000;
                (t(n as f64), n, i as u32, 0.0)
            })
            .collect();
        let (seconds, b) =
            project_seconds(&samples, 10_000_000, t(1e7), 1e9).expect("a projection");
        assert!((b - 0.5).abs() < 0.01, "exponent {b}");
        let expected = t(1e9);
        assert!(
            (seconds - expected).abs() / expected < 0.02,
            "{seconds} vs {expected}"
        );
        assert_eq!(project_seconds(&samples[..3], 10_000_000, 1.0, 1e9), None);
    }

    #[test]
    fn profiles_have_their_sizes() {
        assert_eq!(
            ScalePlan::by_name("mainnet-50m").map(|p| p.txs).ok(),
            Some(50_000_000)
        );
        assert_eq!(
            ScalePlan::by_name("tiny").map(|p| p.cgroup_mb).ok(),
            Some(1500)
        );
        assert!(ScalePlan::by_name("huge").is_err());
    }
}
