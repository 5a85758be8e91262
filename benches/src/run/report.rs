//! The report: `report.md` with one column per engine, and SVG plots (sync progress, latency
//! distributions, disk use).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::engine::BENCH_CONFIG;
use super::machine::{utc, Machine};
use super::plan::Plan;
use super::results::{EngineResult, FetchResult, FreshConnectionRow, Latency, QueryCell, Sample};

/// How the run was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    /// the command line
    pub command: String,
    /// profile name
    pub profile: String,
    /// chain seed (none in peer mode)
    pub seed: Option<u64>,
    /// the index's memory budget (none in peer mode)
    pub cache_mb: Option<u64>,
    /// seconds the whole run took
    pub total_seconds: f64,
    /// when it started
    pub started_unix: u64,
    /// the machine
    pub machine: Machine,
    /// sizes
    #[serde(skip)]
    pub plan: Plan,
    /// a run against another server
    pub peer: bool,
}

impl Default for Plan {
    fn default() -> Self {
        Plan::by_name("tiny").expect("tiny is a plan")
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1048576.0)
}

fn num(x: f64) -> String {
    if x >= 100.0 {
        let n = x.round() as u64;
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A whole number, with thousands separators from 1,000 on.
fn count(n: u64) -> String {
    if n >= 100 {
        num(n as f64)
    } else {
        n.to_string()
    }
}

fn ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 1.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A markdown table: first column the row names, then one column per engine.
fn table(out: &mut String, corner: &str, columns: &[String], rows: &[(String, Vec<String>)]) {
    let _ = writeln!(out, "| {corner} | {} |", columns.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(columns.len()));
    for (name, cells) in rows {
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    }
    out.push('\n');
}

/// Fresh connections with default settings: the first and second request's latency per
/// transport, p50 / p99 in ms.
fn fresh_connections_section(md: &mut String, columns: &[String], results: &[EngineResult]) {
    if results.iter().all(|r| r.fresh_connections.is_empty()) {
        return;
    }
    let count = results
        .iter()
        .flat_map(|r| &r.fresh_connections)
        .map(|row| row.second_request.count)
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        md,
        "## Fresh connections, default settings\n\n{count} connections per transport, one at a \
         time, to the server with its default settings (padding on for TCP and TLS, default \
         cost limits): `server.version`, then `blockchain.headers.subscribe`, each timed from \
         its write to its answer. p50 / p99 in ms. ElectrumX answers the second request in \
         0.3 ms on TCP; a server whose padding spent the warm-up budget on the first reply \
         answers it after its one-second padding timer.\n"
    );
    let mut rows = Vec::new();
    for transport in ["tcp", "ssl", "ws", "wss"] {
        let cell = |r: &EngineResult, pick: fn(&FreshConnectionRow) -> &Latency| {
            r.fresh_connections
                .iter()
                .find(|row| row.transport == transport)
                .map_or("—".into(), |row| {
                    let l = pick(row);
                    format!("{:.2} / {:.2}", l.p50_ms, l.p99_ms)
                })
        };
        rows.push((
            format!("{transport}: second request"),
            results
                .iter()
                .map(|r| cell(r, |row| &row.second_request))
                .collect(),
        ));
        rows.push((
            format!("{transport}: first request"),
            results
                .iter()
                .map(|r| cell(r, |row| &row.first_request))
                .collect(),
        ));
    }
    table(md, "", columns, &rows);
}

/// Writes `report.md` and the SVGs into `dir`; returns the report's path.
pub fn write(
    dir: &Path,
    info: &RunInfo,
    fetch: Option<&FetchResult>,
    results: &[EngineResult],
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut plots = Vec::new();
    if results.iter().any(|r| r.sync.is_some()) {
        plot_sync(&dir.join("sync_progress.svg"), results)?;
        plots.push((
            "Initial sync: transactions indexed over time",
            "sync_progress.svg",
        ));
        plot_disk(&dir.join("disk.svg"), results)?;
        plots.push((
            "Bytes on disk after the sync and after compaction",
            "disk.svg",
        ));
    }
    let mut cdfs = Vec::new();
    for r in results.iter().filter(|r| !r.queries.is_empty()) {
        let sessions = r
            .queries
            .iter()
            .map(|c| c.sessions)
            .filter(|s| *s > 1)
            .min()
            .unwrap_or(1);
        let file = format!("latency_cdf_{}.svg", slug(&r.name));
        plot_cdf(&dir.join(&file), r, sessions)?;
        cdfs.push((r.name.clone(), sessions, file));
    }
    if results.iter().any(|r| !r.queries.is_empty()) {
        plot_p99(&dir.join("latency_p99.svg"), results)?;
        plots.push((
            "p50 (solid) and p99 (hollow) latency per method at the middle concurrency",
            "latency_p99.svg",
        ));
    }

    let columns: Vec<String> = results.iter().map(|r| r.name.clone()).collect();
    let mut md = String::new();
    let _ = writeln!(md, "# anode benchmark report: profile `{}`\n", info.profile);
    let _ = writeln!(md, "Command: `{}`  ", info.command);
    let _ = writeln!(
        md,
        "Started {}; the whole run took {:.0} s ({:.1} min).\n",
        utc(info.started_unix),
        info.total_seconds,
        info.total_seconds / 60.0
    );
    let m = &info.machine;
    let _ = writeln!(md, "## Machine and versions\n");
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| CPU | {} ({} cores) |", m.cpu, m.cores);
    let _ = writeln!(md, "| RAM | {:.1} GiB |", m.ram_gib);
    let _ = writeln!(md, "| disks | {} |", m.disks.join("; "));
    let _ = writeln!(md, "| OS | {}, kernel {} |", m.os, m.kernel);
    let _ = writeln!(
        md,
        "| load average at start | {} (other work on a shared machine shows here) |",
        m.load_at_start
    );
    let _ = writeln!(md, "| anode | {} |", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(md, "| rustc | {} |", env!("ANODE_BENCH_RUSTC"));
    for r in results.iter().filter(|r| !r.engine_version.is_empty()) {
        let _ = writeln!(md, "| {} | {} |", r.name, r.engine_version);
    }
    let _ = writeln!(
        md,
        "| profile | {} (at least {} transactions, `mainnet-like`, plus the hot segment) |",
        info.profile, info.plan.txs
    );
    if let Some(seed) = info.seed {
        let _ = writeln!(md, "| seed | {seed} |");
    }
    if let Some(cache) = info.cache_mb {
        let _ = writeln!(md, "| cache_mb | {cache} |");
    }
    md.push('\n');
    if !info.peer {
        let _ = writeln!(
            md,
            "The stack runs with limits raised for benchmarking (not the defaults): {}.\n",
            BENCH_CONFIG
                .iter()
                .filter(|(k, _)| !matches!(*k, "network" | "services"))
                .map(|(k, v)| format!("`{k}={v}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            md,
            "Server and clients share the machine (the clients run in the engine's process on a \
             runtime of their own), as does the simulator that plays the node.\n"
        );
    }

    if let Some(first) = results.iter().find(|r| r.chain.blocks > 0) {
        let _ = writeln!(
            md,
            "## Chain\n\nBitcoin regtest, {} blocks, {} transactions, {} MB of blocks{}.\n",
            first.chain.blocks,
            num(first.chain.txs as f64),
            mb(first.chain.block_bytes),
            if info.peer {
                String::new()
            } else {
                format!(
                    "; the simulator built it in {:.1} s",
                    first.chain.build_seconds
                )
            }
        );
        if first.chain.hot_txs > 0 {
            let _ = writeln!(
                md,
                "After the `mainnet-like` blocks, a hot segment of {} blocks, {} transactions \
                 gives a script of its own to each history size no mainnet-like script has \
                 within {:.0}% ({}): chains of 1-input, 2-output payments from the hot script \
                 to fresh scripts, change back to the hot script.\n",
                first.chain.hot_blocks,
                count(first.chain.hot_txs),
                100.0 * super::chain::HISTORY_TOLERANCE,
                first
                    .chain
                    .hot_sizes
                    .iter()
                    .map(|s| count(*s))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if !first.chain.history.is_empty() {
            let rows: Vec<(String, Vec<String>)> = first
                .chain
                .history
                .iter()
                .map(|t| {
                    (
                        count(t.wanted),
                        vec![count(t.txs), format!("`{}`", t.scripthash)],
                    )
                })
                .collect();
            let _ = writeln!(
                md,
                "`get_history` targets (the script whose history is closest to each wanted \
                 size):\n"
            );
            table(
                &mut md,
                "wanted txs",
                &["actual txs".to_string(), "script hash".to_string()],
                &rows,
            );
        }
    }

    if results.iter().any(|r| r.sync.is_some()) {
        let _ = writeln!(md, "## Initial sync\n");
        let cell = |f: &dyn Fn(&super::results::SyncResult) -> String| -> Vec<String> {
            results
                .iter()
                .map(|r| r.sync.as_ref().map_or("failed".into(), f))
                .collect()
        };
        let limit = fetch.map(|f| f.tx_per_s);
        let mut rows = vec![
            ("wall s".to_string(), cell(&|s| format!("{:.1}", s.seconds))),
            ("blocks/s".to_string(), cell(&|s| num(s.blocks_per_s))),
            ("tx/s".to_string(), cell(&|s| num(s.tx_per_s))),
        ];
        if let Some(limit) = limit {
            rows.push((
                "% of fetch+parse".into(),
                cell(&|s| format!("{:.1}%", 100.0 * s.tx_per_s / limit)),
            ));
        }
        rows.extend([
            ("peak RSS MB".to_string(), cell(&|s| mb(s.peak_rss))),
            (
                "of which before the sync (simulator's chain) MB".to_string(),
                cell(&|s| mb(s.baseline_rss)),
            ),
            (
                "bytes written MB (/proc write_bytes)".to_string(),
                cell(&|s| mb(s.write_bytes)),
            ),
            (
                "disk after sync MB".to_string(),
                cell(&|s| mb(s.disk_after_sync)),
            ),
            (
                "disk peak during the sync MB (0.5 s samples)".to_string(),
                cell(&|s| mb(s.disk_peak)),
            ),
            (
                "disk after compaction MB".to_string(),
                cell(&|s| s.disk_after_compaction.map_or("n/a".into(), mb)),
            ),
            (
                "compaction s".to_string(),
                cell(&|s| {
                    s.compaction_seconds
                        .map_or("n/a".into(), |c| format!("{c:.1}"))
                }),
            ),
        ]);
        table(&mut md, "", &columns, &rows);
        if let Some(f) = fetch {
            let _ = writeln!(
                md,
                "Fetch+parse alone (the simulator over HTTP, no index): {} blocks, {} txs in {:.2} s = {} tx/s.\n",
                f.blocks,
                num(f.txs as f64),
                f.seconds,
                num(f.tx_per_s)
            );
        }
        for r in results {
            if let Some(s) = &r.sync {
                let _ = writeln!(md, "- {} compaction: {}", r.name, s.compaction_note);
            }
        }
        let _ = writeln!(
            md,
            "- Bytes written: the engine process's `write_bytes` (`/proc/<pid>/io`) over the sync. \
             The kernel counts a page-cache page when it is first dirtied, so a page rewritten \
             before writeback counts once: short runs under-count rewrites.\n\
             - The progress curve samples the indexer's tip (blocks applied, flushed or not) \
             every 0.5 s; the writer is locked while it flushes, so a flush shows as a straight \
             segment between the samples before and after it.\n"
        );
    }

    if results.iter().any(|r| !r.queries.is_empty()) {
        let _ = writeln!(
            md,
            "## Queries\n\nEach method runs for {} s at each concurrency, every session in a \
             closed loop (next request when the answer arrives; every session sends at least \
             one). Cells: answers per second, p50 / p99 latency in ms. A `get_history` answer \
             with fewer entries than the script's history counts as an error.\n",
            info.plan.cell_seconds
        );
        let mut levels: Vec<usize> = results
            .iter()
            .flat_map(|r| r.queries.iter().map(|c| c.sessions))
            .collect();
        levels.sort_unstable();
        levels.dedup();
        for sessions in levels {
            let _ = writeln!(
                md,
                "**{sessions} concurrent session{}**\n",
                if sessions == 1 { "" } else { "s" }
            );
            let labels = labels_at(results, sessions);
            let rows: Vec<(String, Vec<String>)> = labels
                .iter()
                .map(|(key, label)| {
                    let cells = results
                        .iter()
                        .map(|r| match find(r, sessions, key) {
                            Some(c) if c.skipped.is_some() => "not run ¹".into(),
                            Some(c) => {
                                let mut s = format!(
                                    "{}/s · {} / {}",
                                    num(c.per_s),
                                    ms(c.latency.p50_ms),
                                    ms(c.latency.p99_ms)
                                );
                                if c.errors > 0 {
                                    let _ = write!(s, " ({} errors)", c.errors);
                                }
                                if c.one_request_each {
                                    s.push_str(" ²");
                                }
                                if c.label != *label {
                                    let _ = write!(s, " [{}]", c.label);
                                }
                                s
                            }
                            None => "—".into(),
                        })
                        .collect();
                    (label.clone(), cells)
                })
                .collect();
            table(&mut md, "method", &columns, &rows);
        }
        if let Some(why) = results
            .iter()
            .flat_map(|r| r.queries.iter())
            .find_map(|c| c.skipped.as_ref())
        {
            let _ = writeln!(md, "¹ {why}.\n");
        }
        if results
            .iter()
            .flat_map(|r| r.queries.iter())
            .any(|c| c.one_request_each)
        {
            let _ = writeln!(
                md,
                "² every session sent exactly one request, all at once, instead of a closed loop \
                 (the largest history above {} sessions): the cell's time is that of the slowest \
                 of these answers, and answers per second is sessions / that time.\n",
                info.plan
                    .heavy_history_one_request_above
                    .map_or_else(|| "?".to_string(), |n| n.to_string())
            );
        }
    }

    if results.iter().any(|r| r.storm.is_some()) {
        let _ = writeln!(md, "## Wallet storm\n");
        if let Some(s) = results.iter().find_map(|r| r.storm.as_ref()) {
            let _ = writeln!(
                md,
                "{} sessions connect at once; each subscribes to headers, then to {} scripts in \
                 batches of {} (waiting for each batch's answer); {} distinct scripts of the chain \
                 in all. Time from the first connect until every status is back.\n",
                s.sessions, s.scripts_per_session, s.batch, s.distinct_scripts
            );
        }
        let cell = |f: &dyn Fn(&super::results::StormResult) -> String| -> Vec<String> {
            results
                .iter()
                .map(|r| r.storm.as_ref().map_or("—".into(), f))
                .collect()
        };
        let rows = vec![
            (
                "all statuses back, s".to_string(),
                cell(&|s| format!("{:.2}", s.seconds)),
            ),
            ("statuses/s".to_string(), cell(&|s| num(s.statuses_per_s))),
            (
                "sessions done".to_string(),
                cell(&|s| format!("{} of {}", s.completed_sessions, s.sessions)),
            ),
            (
                "statuses returned".to_string(),
                cell(&|s| s.statuses.to_string()),
            ),
            ("errors".to_string(), cell(&|s| s.errors.to_string())),
            (
                "per-session done p50 / p99 s".to_string(),
                cell(&|s| {
                    format!(
                        "{:.2} / {:.2}",
                        s.session_done.p50_ms / 1e3,
                        s.session_done.p99_ms / 1e3
                    )
                }),
            ),
        ];
        table(&mut md, "", &columns, &rows);
    }

    if results.iter().any(|r| !r.tip.is_empty()) {
        let _ = writeln!(
            md,
            "## New blocks\n\nA block of fresh transactions (none seen in the mempool) is mined \
             at the simulator; times from then. The storm's sessions stay connected and \
             subscribed (headers and their scripts). The node is polled every 50 ms.\n"
        );
        let n = results.iter().map(|r| r.tip.len()).max().unwrap_or(0);
        let mut rows = Vec::new();
        for i in 0..n {
            let get = |f: &dyn Fn(&super::results::TipResult) -> String| -> Vec<String> {
                results
                    .iter()
                    .map(|r| r.tip.get(i).map_or("—".into(), f))
                    .collect()
            };
            let txs = results
                .iter()
                .find_map(|r| r.tip.get(i))
                .map_or(0, |t| t.block_txs);
            rows.push((
                format!("{txs}-tx block: indexed, s"),
                get(&|t| format!("{:.3}", t.index_seconds)),
            ));
            rows.push((
                format!("{txs}-tx block: header to first / half / all sessions, s"),
                get(&|t| {
                    format!(
                        "{:.3} / {:.3} / {:.3} ({} of {})",
                        t.first_header_seconds,
                        t.median_header_seconds,
                        t.all_headers_seconds,
                        t.notified_sessions,
                        t.sessions
                    )
                }),
            ));
            rows.push((
                format!("{txs}-tx block: script notifications (last at, s)"),
                get(&|t| format!("{} ({:.3})", t.script_notifications, t.last_script_seconds)),
            ));
        }
        table(&mut md, "", &columns, &rows);
    }

    if results.iter().any(|r| !r.mempool.is_empty()) {
        let _ = writeln!(md, "## Mempool ingest\n\nTransactions added to the simulator's mempool at once; time until the index's mempool holds them all.\n");
        let n = results.iter().map(|r| r.mempool.len()).max().unwrap_or(0);
        let rows: Vec<(String, Vec<String>)> = (0..n)
            .map(|i| {
                let txs = results
                    .iter()
                    .find_map(|r| r.mempool.get(i))
                    .map_or(0, |m| m.txs);
                (
                    format!("{} txs: s (tx/s)", num(txs as f64)),
                    results
                        .iter()
                        .map(|r| {
                            r.mempool.get(i).map_or("—".into(), |m| {
                                format!("{:.2} ({})", m.seconds, num(m.tx_per_s))
                            })
                        })
                        .collect(),
                )
            })
            .collect();
        table(&mut md, "", &columns, &rows);
    }

    if results.iter().any(|r| !r.reorg.is_empty()) {
        let _ = writeln!(md, "## Reorganisations\n\nThe simulator replaces the last N blocks with a branch of N+1 (the replaced blocks' transactions confirmed again in its first block); time until the index's tip is the new branch's.\n");
        let n = results.iter().map(|r| r.reorg.len()).max().unwrap_or(0);
        let rows: Vec<(String, Vec<String>)> = (0..n)
            .map(|i| {
                let depth = results
                    .iter()
                    .find_map(|r| r.reorg.get(i))
                    .map_or(0, |m| m.depth);
                (
                    format!("depth {depth}: s"),
                    results
                        .iter()
                        .map(|r| {
                            r.reorg
                                .get(i)
                                .map_or("—".into(), |m| format!("{:.3}", m.seconds))
                        })
                        .collect(),
                )
            })
            .collect();
        table(&mut md, "", &columns, &rows);
    }

    fresh_connections_section(&mut md, &columns, results);

    let _ = writeln!(md, "## Plots\n");
    for (title, file) in &plots {
        let _ = writeln!(md, "**{title}**\n\n![{title}]({file})\n");
    }
    for (name, sessions, file) in &cdfs {
        let _ = writeln!(md, "**Latency distribution, {name}, {sessions} sessions**\n\n![latency CDF {name}]({file})\n");
    }

    let failures: Vec<String> = results
        .iter()
        .flat_map(|r| r.failures.iter().map(move |f| format!("- {}: {f}", r.name)))
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(md, "## Failures\n\n{}\n", failures.join("\n"));
    }
    let path = dir.join("report.md");
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The method part of a label (without the script's history size, which differs by chain).
fn key(label: &str) -> String {
    label.split(" (").next().unwrap_or(label).to_string()
        + label.find(" (").map(|_| "#").unwrap_or("")
}

/// Row keys and labels at `sessions`, in first-seen order; the n-th `get_history` is its own row.
fn labels_at(results: &[EngineResult], sessions: usize) -> Vec<((String, usize), String)> {
    let mut out: Vec<((String, usize), String)> = Vec::new();
    for r in results {
        let mut seen: Vec<String> = Vec::new();
        for c in r.queries.iter().filter(|c| c.sessions == sessions) {
            let k = key(&c.label);
            let nth = seen.iter().filter(|s| **s == k).count();
            seen.push(k.clone());
            if !out.iter().any(|(key, _)| key.0 == k && key.1 == nth) {
                out.push(((k, nth), c.label.clone()));
            }
        }
    }
    out
}

fn find<'a>(
    r: &'a EngineResult,
    sessions: usize,
    wanted: &(String, usize),
) -> Option<&'a QueryCell> {
    r.queries
        .iter()
        .filter(|c| c.sessions == sessions && key(&c.label) == wanted.0)
        .nth(wanted.1)
}

fn palette(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    COLORS[i % COLORS.len()]
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {e:?}")
}

fn plot_sync(path: &Path, results: &[EngineResult]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let series: Vec<(&str, &[Sample])> = results
        .iter()
        .filter_map(|r| {
            r.sync
                .as_ref()
                .map(|s| (r.name.as_str(), s.samples.as_slice()))
        })
        .collect();
    let max_t = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let max_tx = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.2))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption("Initial sync progress", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_t * 1.05, 0.0..max_tx * 1.05)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("transactions indexed")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(plot_err)?;
    for (i, (name, samples)) in series.iter().enumerate() {
        let color = palette(i);
        chart
            .draw_series(LineSeries::new(
                samples.iter().map(|p| (p.0, p.2 as f64)),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

fn plot_disk(path: &Path, results: &[EngineResult]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (800, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let bars: Vec<(&str, u64, Option<u64>)> = results
        .iter()
        .filter_map(|r| {
            r.sync
                .as_ref()
                .map(|s| (r.name.as_str(), s.disk_after_sync, s.disk_after_compaction))
        })
        .collect();
    let max = bars
        .iter()
        .map(|b| b.1.max(b.2.unwrap_or(0)))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        / 1048576.0;
    let n = bars.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Database size (MB): after sync (filled), after compaction (hollow)",
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n, 0.0..max * 1.1)
        .map_err(plot_err)?;
    let names: Vec<String> = bars.iter().map(|b| b.0.to_string()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.26 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("MB")
        .draw()
        .map_err(plot_err)?;
    for (i, (_, after_sync, after_compaction)) in bars.iter().enumerate() {
        let x = i as f64;
        let color = palette(i);
        let synced = *after_sync as f64 / 1048576.0;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x + 0.15, 0.0), (x + 0.48, synced)],
                color.filled(),
            )))
            .map_err(plot_err)?;
        if let Some(c) = after_compaction {
            let compacted = *c as f64 / 1048576.0;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x + 0.52, 0.0), (x + 0.85, compacted)],
                    color.stroke_width(2),
                )))
                .map_err(plot_err)?;
        }
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

fn plot_cdf(path: &Path, result: &EngineResult, sessions: usize) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let cells: Vec<&QueryCell> = result
        .queries
        .iter()
        .filter(|c| c.sessions == sessions && !c.latency.cdf_ms.is_empty())
        .collect();
    let lo = cells
        .iter()
        .flat_map(|c| c.latency.cdf_ms.iter().copied())
        .fold(f64::MAX, f64::min)
        .clamp(0.001, 1.0);
    let hi = cells
        .iter()
        .flat_map(|c| c.latency.cdf_ms.iter().copied())
        .fold(lo * 10.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: latency CDF, {sessions} sessions", result.name),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((lo * 0.9..hi * 1.1).log_scale(), 0.0..1.0)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("latency, ms (log scale)")
        .y_desc("fraction of requests")
        .draw()
        .map_err(plot_err)?;
    for (i, cell) in cells.iter().enumerate() {
        let color = palette(i);
        let points: Vec<(f64, f64)> = cell
            .latency
            .cdf_ms
            .iter()
            .enumerate()
            .map(|(q, v)| (v.max(lo), q as f64 / 50.0))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(plot_err)?
            .label(cell.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// p50 and p99 per method and engine at the middle concurrency, as points on a log axis.
fn plot_p99(path: &Path, results: &[EngineResult]) -> anyhow::Result<()> {
    let mut levels: Vec<usize> = results
        .iter()
        .flat_map(|r| r.queries.iter().map(|c| c.sessions))
        .collect();
    levels.sort_unstable();
    levels.dedup();
    let sessions = levels.get(levels.len() / 2).copied().unwrap_or(1);
    let labels = labels_at(results, sessions);
    let root = SVGBackend::new(path, (900, 120 + 40 * labels.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let all: Vec<f64> = results
        .iter()
        .flat_map(|r| r.queries.iter().filter(|c| c.sessions == sessions))
        .flat_map(|c| [c.latency.p50_ms, c.latency.p99_ms])
        .filter(|v| *v > 0.0)
        .collect();
    let lo = all
        .iter()
        .copied()
        .fold(f64::MAX, f64::min)
        .clamp(0.001, 1.0);
    let hi = all.iter().copied().fold(lo * 10.0, f64::max);
    let n = labels.len().max(1) as f64;
    let names: Vec<String> = labels.iter().map(|l| l.1.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Latency per method, {sessions} sessions (ms, log scale)"),
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(220)
        .build_cartesian_2d((lo * 0.8..hi * 1.25).log_scale(), 0.0..n)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .y_labels(labels.len() * 2 + 1)
        .y_label_formatter(&|y| {
            let i = y.floor() as usize;
            if (y - y.floor() - 0.5).abs() < 0.26 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc("ms")
        .draw()
        .map_err(plot_err)?;
    let engines = results.len().max(1) as f64;
    for (e, r) in results.iter().enumerate() {
        let color = palette(e);
        let mut p50 = Vec::new();
        let mut p99 = Vec::new();
        for (i, key) in labels.iter().enumerate() {
            if let Some(c) = find(r, sessions, &key.0) {
                let y = i as f64 + (e as f64 + 0.5) / engines;
                p50.push((c.latency.p50_ms.max(lo), y));
                p99.push((c.latency.p99_ms.max(lo), y));
            }
        }
        chart
            .draw_series(p50.iter().map(|p| Circle::new(*p, 5, color.filled())))
            .map_err(plot_err)?
            .label(r.name.clone())
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        chart
            .draw_series(
                p99.iter()
                    .map(|p| Circle::new(*p, 5, color.stroke_width(2))),
            )
            .map_err(plot_err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}
