//! The machine a run happened on, as the report states it.

use serde::{Deserialize, Serialize};

/// CPU, memory, disks, OS and load.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model (`/proc/cpuinfo`)
    pub cpu: String,
    /// logical cores available to this process
    pub cores: usize,
    /// total memory, GiB
    pub ram_gib: f64,
    /// block devices and whether the kernel calls them rotational
    pub disks: Vec<String>,
    /// OS name (`/etc/os-release`)
    pub os: String,
    /// kernel release
    pub kernel: String,
    /// load averages when the run started (other work on the machine)
    pub load_at_start: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Machine {
    /// Reads the facts from `/proc`, `/sys` and `/etc`.
    pub fn detect() -> Machine {
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let ram_kb: f64 = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let mut disks = Vec::new();
        if let Ok(entries) = std::fs::read_dir("/sys/block") {
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    !n.starts_with("loop") && !n.starts_with("zram") && !n.starts_with("ram")
                })
                .collect();
            names.sort();
            for name in names {
                let rotational = read(&format!("/sys/block/{name}/queue/rotational"));
                let kind = match rotational.trim() {
                    "0" => "non-rotational (SSD or virtual)",
                    "1" => "rotational (as the kernel reports it; virtio disks often say so whatever the medium)",
                    _ => "unknown",
                };
                let sectors: u64 = read(&format!("/sys/block/{name}/size"))
                    .trim()
                    .parse()
                    .unwrap_or(0);
                disks.push(format!("{name}: {} GiB, {kind}", (sectors * 512) >> 30));
            }
        }
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ram_gib: ram_kb / (1024.0 * 1024.0),
            disks,
            os,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            load_at_start: read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time (civil calendar from days since the epoch).
pub fn utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}
