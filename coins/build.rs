//! Generates one `#[test]` per real vector file in `tests/data/vectors` (docs/coins.md, Vector
//! status) so that `cargo test` names every vector (`tests/vectors.rs` includes the generated
//! file). A missing or empty `blocks/` or `transactions/` folder becomes a test that fails naming
//! the folder, plus a build warning: a checkout without its vectors must not pass by testing
//! nothing. (Failing the build instead would stop anode itself from building without them.)

use std::fmt::Write as _;
use std::path::PathBuf;

fn ident(stem: &str) -> String {
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Embeds every `networks/*.toml` (families in the order of docs/coins.md, Families, first, then
/// any other file by name): a new data file needs no Rust change.
fn embed_networks(manifest: &std::path::Path, out_dir: &std::path::Path) {
    const ORDER: &[&str] = &[
        "bitcoin",
        "legacy",
        "segwit",
        "litecoin",
        "auxpow",
        "equihash",
        "groestlcoin",
        "dash",
        "pos",
        "decred",
        "other",
    ];
    let dir = manifest.join("networks");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(".toml"))
                .collect()
        })
        .unwrap_or_default();
    let rank = |n: &String| {
        let stem = n.trim_end_matches(".toml");
        ORDER.iter().position(|o| *o == stem).unwrap_or(ORDER.len())
    };
    files.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    let mut out = String::from("const BUILTIN: &[(&str, &str)] = &[\n");
    for f in files {
        let path = dir.join(&f);
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(
            out,
            "    ({f:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .ok();
    }
    out.push_str("];\n");
    std::fs::write(out_dir.join("networks.rs"), out)
        .unwrap_or_else(|e| panic!("writing embedded network list: {e}"));
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    embed_networks(&manifest, &out_dir);
    let vectors = manifest.join("tests/data/vectors");
    println!("cargo:rerun-if-changed={}", vectors.display());
    println!("cargo:rerun-if-changed=build.rs");
    let mut out = String::new();
    for (sub, check) in [
        ("blocks", "block_file_test"),
        ("transactions", "tx_file_test"),
    ] {
        let dir = vectors.join(sub);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().is_file())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        writeln!(out, "mod {sub} {{").ok();
        if files.is_empty() {
            let shown = dir.display().to_string().replace('\\', "/");
            println!("cargo:warning=no test vectors in {shown}: the vector tests will fail");
            let why = format!(
                "no test vectors in {shown} (coins/tests/data/vectors/README.md says what belongs \
                 there)"
            );
            writeln!(
                out,
                "    #[test]\n    fn vectors_present() {{ panic!(\"{{}}\", {why:?}); }}"
            )
            .ok();
        }
        for f in files {
            let stem = f.strip_suffix(".json").unwrap_or(&f);
            writeln!(
                out,
                "    #[test]\n    fn {}() {{ super::{check}({:?}); }}",
                ident(stem),
                f
            )
            .ok();
        }
        writeln!(out, "}}").ok();
    }
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("vector_tests.rs");
    std::fs::write(dest, out).unwrap_or_else(|e| panic!("writing generated vector tests: {e}"));
}
