//! Generates one `#[test]` per real vector file in `../../shared/vectors` so that
//! `cargo test` names every vector (tests/vectors.rs includes the generated file).
//! When the folder is missing, a single test is generated that fails and says so.

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

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let vectors = manifest.join("../../shared/vectors");
    println!(
        "cargo:rerun-if-changed={}",
        vectors.join("blocks").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        vectors.join("transactions").display()
    );
    println!("cargo:rerun-if-changed=build.rs");
    let mut out = String::new();
    let mut any = false;
    for (sub, check) in [
        ("blocks", "block_file_test"),
        ("transactions", "tx_file_test"),
    ] {
        let Ok(rd) = std::fs::read_dir(vectors.join(sub)) else {
            continue;
        };
        let mut files: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        files.sort();
        writeln!(out, "mod {sub} {{").ok();
        for f in files {
            any = true;
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
    if !any {
        writeln!(
            out,
            "#[test]\nfn vectors_folder_present() {{ panic!(\"test vectors not found at {} \
             (the repository needs `shared/` beside it)\"); }}",
            vectors.display().to_string().replace('\\', "/")
        )
        .ok();
    }
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("vector_tests.rs");
    std::fs::write(dest, out).unwrap_or_else(|e| panic!("writing generated vector tests: {e}"));
}
