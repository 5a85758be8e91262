// Build scripts talk to cargo through stdout.
#![allow(clippy::print_stdout)]
//! Records the versions the benchmark report names: the compiler, and the storage-engine
//! crates as resolved in the workspace's Cargo.lock.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=ANODE_BENCH_RUSTC={}", version.trim());

    let lock_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock");
    println!("cargo:rerun-if-changed={lock_path}");
    let lock = std::fs::read_to_string(lock_path).unwrap_or_default();
    let mut found = Vec::new();
    let mut name: Option<String> = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take()) {
            if [
                "rocksdb",
                "librocksdb-sys",
                "heed",
                "lmdb-master-sys",
                "rusqlite",
                "libsqlite3-sys",
            ]
            .contains(&n.as_str())
            {
                found.push(format!("{n} {}", v.trim_matches('"')));
            }
        }
    }
    println!(
        "cargo:rustc-env=ANODE_BENCH_ENGINE_CRATES={}",
        found.join(", ")
    );
}
