//! The only module that prints to the terminal (everything else logs through `tracing`).
#![allow(clippy::print_stdout)]

use crate::config::RawConfig;

/// Prints the effective configuration, one option per line with its source.
pub fn print_config(raw: &RawConfig) {
    for (key, value, source) in raw.iter() {
        let shown = if key == "daemon_url" {
            crate::daemon::hide_credentials(value)
        } else {
            value.to_string()
        };
        println!("{key:<26} = {shown:<40} # {source}");
    }
}

/// Tells the operator where the simulator listens.
pub fn simulator_ready(url: &str, genesis: &str, custom_genesis: bool) {
    println!("simulator listening: DAEMON_URL={url}");
    println!(
        "genesis {genesis}{}",
        if custom_genesis {
            " (the simulator's own genesis)"
        } else {
            ""
        }
    );
    println!("control: sim_mine N, sim_add_mempool N, sim_reorg DEPTH, sim_outage MS (JSON-RPC); Ctrl-C stops");
}

/// Prints generated text as it is (`anode config reference`, `anode config example`).
pub fn print_text(text: &str) {
    print!("{text}");
}

/// Prints an answer line by line (`anode rpc`).
pub fn print_lines(lines: &[String]) {
    for line in lines {
        println!("{line}");
    }
}

/// Prints a JSON value, indented (`anode rpc --json`).
pub fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}

/// The demo's summary: where to connect and what its own wallet check saw.
pub fn print_demo(
    addrs: &[(crate::config::ServiceKind, std::net::SocketAddr)],
    db_dir: &std::path::Path,
    check: &crate::demo::SelfCheck,
    elapsed: std::time::Duration,
) {
    println!("anode demo: a simulated Bitcoin regtest chain, indexed and served");
    println!("  database        {}", db_dir.display());
    for (kind, addr) in addrs {
        println!("  listening       {kind}://{addr}");
    }
    println!(
        "  self-check      {} over {} scripts: {} history entries, {} merkle proofs verified against headers, tip {}",
        check.server_version, check.scripts, check.history_entries, check.proofs_verified, check.tip_height
    );
    println!("  ready in        {:.1} s", elapsed.as_secs_f64());
    if let Some((_, addr)) = addrs
        .iter()
        .find(|(kind, _)| *kind == crate::config::ServiceKind::Tcp)
    {
        println!(
            "  try             electrum --regtest --oneserver --server {}:{}:t",
            addr.ip(),
            addr.port()
        );
    }
}

/// Prints why the binary stops, on standard error.
#[allow(clippy::print_stderr)]
pub fn print_error(error: &anyhow::Error) {
    eprintln!("Error: {}", error_report(error));
}

/// An error and its causes, each said once. Many error types (ours, and the engines' and the
/// standard library's) repeat their source's text in their own message; printing the chain
/// as anyhow does would then show the same cause two to four times ("Address already in use"
/// under three headings). A cause whose text the message above it already contains is left
/// out.
pub fn error_report(error: &anyhow::Error) -> String {
    let mut shown: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || shown.iter().any(|s| s.contains(&text)) {
            continue;
        }
        shown.push(text);
    }
    let mut report = shown.first().cloned().unwrap_or_default();
    match &shown[..] {
        [] | [_] => {}
        [_, rest @ ..] if rest.len() == 1 => {
            report.push_str("\n\nCaused by:\n    ");
            report.push_str(&rest[0]);
        }
        [_, rest @ ..] => {
            report.push_str("\n\nCaused by:");
            for (i, cause) in rest.iter().enumerate() {
                report.push_str(&format!("\n    {i}: {cause}"));
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot listen on tcp://:50001 (0.0.0.0:50001): {source}")]
    struct Listen {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let io_text = io.to_string();
        let error = anyhow::Error::new(Listen { source: io }).context("starting the server");
        let report = error_report(&error);
        assert_eq!(report.matches(&io_text).count(), 1, "{report}");
        assert_eq!(
            report,
            format!(
                "starting the server\n\nCaused by:\n    cannot listen on tcp://:50001 \
                 (0.0.0.0:50001): {io_text}"
            )
        );
    }

    #[test]
    fn distinct_causes_are_all_kept_and_numbered() {
        let error = anyhow::anyhow!("disk full")
            .context("flushing block 5")
            .context("indexing stopped");
        assert_eq!(
            error_report(&error),
            "indexing stopped\n\nCaused by:\n    0: flushing block 5\n    1: disk full"
        );
        assert_eq!(error_report(&anyhow::anyhow!("alone")), "alone");
    }
}
