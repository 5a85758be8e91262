//! Shared helpers for the vector tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The real block and transaction vectors, kept in the repository at `coins/tests/data/vectors`
/// with their source and licence (`coins/tests/data/vectors/README.md`).
/// Panics (fails the test) with a clear message when they are missing.
pub fn vectors_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/vectors");
    assert!(
        dir.join("blocks").is_dir() && dir.join("transactions").is_dir(),
        "test vectors not found at {} (expected blocks/ and transactions/ there)",
        dir.display()
    );
    dir
}

/// Every file of a vector folder (with or without `.json`), sorted.
pub fn vector_files(sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(vectors_dir().join(sub))
        .expect("read vector dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// File name without `.json`.
pub fn stem(p: &std::path::Path) -> String {
    let name = p.file_name().unwrap().to_string_lossy().to_string();
    name.strip_suffix(".json").unwrap_or(&name).to_string()
}

/// (coin, net) from `<coin>_<network>_<label>`.
pub fn coin_net(stem: &str) -> (String, String) {
    let mut it = stem.splitn(3, '_');
    let coin = it.next().unwrap_or("").to_string();
    let net = it.next().unwrap_or("").to_string();
    (coin, net)
}

/// Hex with all whitespace removed (some vectors have spaces inside hex strings).
pub fn clean_hex(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

pub fn unhex(s: &str) -> Vec<u8> {
    anode_coins::hex_decode(&clean_hex(s)).expect("hex")
}

pub fn load_json(p: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).expect("read vector")).expect("vector JSON")
}
