//! Parse-speed measurement on real blocks:
//! `cargo run --release -p anode-coins --example parse_speed`.
//!
//! Compares a full `parse_block` (txids, outpoints, output scripts copied into
//! `TxOut`) with the unavoidable part, SHA-256d over every transaction's bytes, to
//! show what the allocations of the parse result cost.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/vectors/blocks");
    for (file, coin, net) in [
        ("bitcoin_mainnet_951658.json", "Bitcoin", "mainnet"),
        ("litecoin_mainnet_2265985.json", "Litecoin", "mainnet"),
        ("lbry_mainnet_1000000.json", "Lbry", "mainnet"),
    ] {
        let text =
            std::fs::read_to_string(dir.join(file)).expect("vector (coins/tests/data/vectors)");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let hex: String = v["block"]
            .as_str()
            .expect("block")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let raw = anode_coins::hex_decode(&hex).expect("hex");
        let c = anode_coins::lookup(coin, net).expect("lookup");
        let height = v["height"].as_u64().map(|h| h as u32);
        let block = c.parse_block(&raw, height).expect("parse");
        let iters = (50_000_000 / raw.len()).max(20);
        let t = Instant::now();
        let mut n = 0usize;
        for _ in 0..iters {
            n += c.parse_block(&raw, height).expect("parse").txs.len();
        }
        let parse = t.elapsed().as_secs_f64() / iters as f64;
        let t = Instant::now();
        let mut x = 0u8;
        for _ in 0..iters {
            for tx in &block.txs {
                x ^= anode_coins::hash::sha256d(&raw[tx.range.clone()])[0];
            }
        }
        let hash_only = t.elapsed().as_secs_f64() / iters as f64;
        let outputs: usize = block.txs.iter().map(|t| t.outputs.len()).sum();
        println!(
            "{file}: {} bytes, {} txs, {outputs} outputs: parse {:.1} us ({:.0} MB/s), \
             sha256d of tx bytes alone {:.1} us; parse/hash = {:.2} [{n} {x}]",
            raw.len(),
            block.txs.len(),
            parse * 1e6,
            raw.len() as f64 / parse / 1e6,
            hash_only * 1e6,
            parse / hash_only,
        );
    }
}
