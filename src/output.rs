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
