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
