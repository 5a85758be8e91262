//! What the docs and comments promise about the repository itself. Every path they name exists
//! and every section they cite is a heading of the page; and the crates depend on each other as
//! `docs/backends.md`, `src/lib.rs` and `backends/store/src/lib.rs` say: `anode-store` and
//! `anode-coins` on no engine, each engine crate on `anode-store` and its own engine library, and
//! the server on an engine only through the cargo feature of that engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::root;

/// The repository's top-level folders: a path that starts with one of them names a file of ours.
const TOP: &[&str] = &[
    "backends/",
    "benches/",
    "coins/",
    "conformance/",
    "contrib/",
    "docs/",
    "scripts/",
    "src/",
    "tests/",
];

/// Copied third-party data: its READMEs name files of the upstream repositories, not of ours.
const THIRD_PARTY: &[&str] = &["coins/tests/data"];

/// How a file carries prose: all of it (markdown), or in `//` or `#` comments.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Markdown,
    Rust,
    Hash,
}

fn kind(path: &Path) -> Option<Kind> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("md") => Some(Kind::Markdown),
        Some("rs") => Some(Kind::Rust),
        Some("toml" | "sh" | "py" | "service" | "env" | "cfg" | "conf") => Some(Kind::Hash),
        None if path.starts_with("scripts") => Some(Kind::Hash),
        _ => None,
    }
}

/// Every file with prose in it, relative to the root: build output, hidden folders and copied
/// third-party data left out.
fn prose_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| dir.join(e.expect("a directory entry").file_name()))
            .collect();
        entries.sort();
        for rel in entries {
            let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if root().join(&rel).is_dir() {
                let skipped = name.starts_with('.')
                    || name == "target"
                    || THIRD_PARTY.iter().any(|t| rel == Path::new(t));
                if !skipped {
                    walk(&rel, out);
                }
            } else if kind(&rel).is_some() {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new(""), &mut out);
    out
}

/// One line of prose: its number, its text, and whether it is prose (markdown, a comment) or
/// code, where only `docs/` pages (help texts cite them) are looked for.
struct Line {
    number: usize,
    text: String,
    prose: bool,
}

fn lines(kind: Kind, text: &str) -> Vec<Line> {
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let trimmed = line.trim_start();
            let comment = match kind {
                Kind::Markdown => Some(line),
                Kind::Rust => trimmed
                    .strip_prefix("//")
                    .map(|c| c.trim_start_matches(['/', '!'])),
                Kind::Hash => trimmed
                    .strip_prefix('#')
                    .filter(|c| !c.starts_with('!'))
                    .map(|c| c.trim_start_matches('#')),
            };
            Line {
                number: i + 1,
                text: comment.unwrap_or(line).trim().to_string(),
                prose: comment.is_some(),
            }
        })
        .collect()
}

/// Headings of a markdown page (outside code blocks), backticks removed.
fn headings(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.push(line.trim_start_matches('#').trim().replace('`', ""));
        }
    }
    out
}

/// The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces to
/// hyphens, and `-1`, `-2`, … on repeats.
pub fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for heading in headings(text) {
        let slug: String = heading
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let count = seen.entry(slug.clone()).or_default();
        out.insert(match *count {
            0 => slug.clone(),
            n => format!("{slug}-{n}"),
        });
        *count += 1;
    }
    out
}

/// Pages read so far, by path relative to the root.
#[derive(Default)]
pub struct Pages(BTreeMap<PathBuf, String>);

impl Pages {
    pub fn text(&mut self, page: &Path) -> &str {
        self.0.entry(page.to_path_buf()).or_insert_with(|| {
            std::fs::read_to_string(root().join(page))
                .unwrap_or_else(|e| panic!("{}: {e}", page.display()))
        })
    }
}

/// Where a path named in `file` may be relative to: the root, the file's folder, its crate.
fn bases(file: &Path) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::new()];
    let mut dir = file.parent();
    if let Some(d) = dir {
        out.push(d.to_path_buf());
    }
    while let Some(d) = dir {
        if root().join(d).join("Cargo.toml").is_file() {
            out.push(d.to_path_buf());
            break;
        }
        dir = d.parent();
    }
    out
}

/// The section a citation right after a page's path names, when it names one: `, "Heading"`,
/// ``, `name` `` (a heading, or a name the page shows in backticks), or `, Heading words` up to
/// the next punctuation. Lower-case words after the comma are prose, not a citation.
enum Section {
    Quoted(String),
    Code(String),
    Words(String),
}

fn cited_section(after: &str) -> Option<Section> {
    let rest = after
        .strip_prefix(", ")
        .or_else(|| after.strip_prefix(": "))?;
    let until = |s: &str, end: char| s.split(end).next().unwrap_or_default().trim().to_string();
    if let Some(quoted) = rest.strip_prefix('"') {
        Some(Section::Quoted(until(quoted, '"')))
    } else if let Some(code) = rest.strip_prefix('`') {
        Some(Section::Code(until(code, '`')))
    } else if rest.starts_with(|c: char| c.is_ascii_uppercase()) {
        let words = rest
            .split(|c: char| ",;.():\"`".contains(c))
            .next()
            .unwrap_or_default();
        Some(Section::Words(words.trim().to_string()))
    } else {
        None
    }
}

/// Whether `short` is `long` or its first words.
fn leads(long: &str, short: &str) -> bool {
    long.strip_prefix(short)
        .is_some_and(|r| r.is_empty() || r.starts_with(|c: char| !c.is_alphanumeric()))
}

/// Whether `page` has the cited section. A heading may be cited by its first words ("At scale"
/// for "At scale: an index far bigger than memory"), and words may run on past the heading into
/// the sentence ("Padding and why").
fn has_section(page: &str, section: &Section) -> bool {
    let heads: Vec<String> = headings(page).iter().map(|h| h.to_lowercase()).collect();
    match section {
        Section::Quoted(quoted) => {
            let quoted = quoted.to_lowercase();
            heads.iter().any(|h| leads(h, &quoted))
        }
        Section::Code(name) => {
            let name = name.to_lowercase();
            heads
                .iter()
                .any(|h| *h == name || h.strip_suffix('*').is_some_and(|p| name.starts_with(p)))
                || page.contains(&format!("`{name}`"))
        }
        Section::Words(words) => {
            let words = words.to_lowercase();
            heads.iter().any(|h| leads(h, &words) || leads(&words, h))
        }
    }
}

/// Every path to one of our files in `text` (only `docs/` pages unless `prose`), each with where
/// it starts and what follows it. A path that runs into a pattern (`<coin>`, `{a,b}`, `*`) is cut
/// back to its folder.
fn named_paths(text: &str, prose: bool) -> Vec<(usize, String, &str)> {
    let tops: &[&str] = if prose { TOP } else { &["docs/"] };
    let mut out = Vec::new();
    for top in tops {
        for (i, _) in text.match_indices(top) {
            let before = text[..i].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || "/._-~$@".contains(c)) {
                continue;
            }
            let len = text[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || "/._-".contains(c)))
                .unwrap_or(text.len() - i);
            let mut path = text[i..i + len].trim_end_matches(['.', ',']);
            let rest = &text[i + path.len()..];
            if rest.starts_with(['<', '{', '*', '$', '[']) {
                path = &path[..path.rfind('/').map_or(0, |s| s + 1)];
            }
            out.push((i, path.to_string(), rest));
        }
    }
    out
}

/// Failures (`file:line: why`) of the paths, anchors and sections that `file`'s `lines` name,
/// and how many paths were checked.
fn check_lines(file: &Path, lines: &[Line], pages: &mut Pages) -> (Vec<String>, usize) {
    let mut failures = Vec::new();
    let mut checked = 0;
    let bases = bases(file);
    for (i, line) in lines.iter().enumerate() {
        let at = |why: String| format!("{}:{}: {why}", file.display(), line.number);
        // A citation may go on in the next line of the same comment or paragraph.
        let joined = match lines.get(i + 1) {
            Some(next) if next.prose == line.prose && !next.text.is_empty() => {
                format!("{} {}", line.text, next.text)
            }
            _ => line.text.clone(),
        };
        // Tests spell dead paths on purpose, in code; elsewhere code names pages in help texts.
        if !line.prose && file.components().any(|c| c.as_os_str() == "tests") {
            continue;
        }
        let here = named_paths(&joined, line.prose)
            .into_iter()
            .filter(|(start, _, _)| *start < line.text.len());
        for (_, path, rest) in here {
            checked += 1;
            let Some(found) = bases
                .iter()
                .map(|b| b.join(&path))
                .find(|p| root().join(p).exists())
            else {
                failures.push(at(format!("no file or folder `{path}`")));
                continue;
            };
            if !path.ends_with(".md") {
                continue;
            }
            let mut after = rest;
            if let Some(anchored) = rest.strip_prefix('#') {
                let anchor: String = anchored
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
                    .collect();
                after = &anchored[anchor.len()..];
                if !anchors(pages.text(&found)).contains(&anchor) {
                    failures.push(at(format!("no heading for `{path}#{anchor}`")));
                }
            }
            if let Some(section) = cited_section(after) {
                if !has_section(pages.text(&found), &section) {
                    let (Section::Quoted(s) | Section::Code(s) | Section::Words(s)) = &section;
                    failures.push(at(format!("{path} has no section `{s}`")));
                }
            }
        }
    }
    (failures, checked)
}

#[test]
fn every_path_and_section_the_docs_and_comments_name_exists() {
    let mut pages = Pages::default();
    let mut failures = Vec::new();
    let mut checked = 0;
    let files = prose_files();
    // A walk that found nothing would check nothing and pass.
    assert!(
        files.len() > 100,
        "only {} files with prose found",
        files.len()
    );
    for file in &files {
        let bytes = std::fs::read(root().join(file)).expect("a file under the root");
        let text = String::from_utf8_lossy(&bytes);
        let kind = kind(file).expect("listed for its kind");
        let (failed, paths) = check_lines(file, &lines(kind, &text), &mut pages);
        failures.extend(failed);
        checked += paths;
    }
    assert!(checked > 400, "only {checked} named paths found");
    assert!(
        failures.is_empty(),
        "paths and sections that do not exist:\n{}",
        failures.join("\n")
    );
}

#[test]
fn dead_paths_and_sections_are_caught() {
    let mut pages = Pages::default();
    let check = |text: &str, pages: &mut Pages| {
        check_lines(Path::new("src/lib.rs"), &lines(Kind::Rust, text), pages).0
    };
    let dead = [
        "// see docs/no-such-page.md",
        "// `src/no_such_module.rs` does it",
        "// docs/protocol.md, No such section",
        "// docs/protocol.md, \"Padding and more\", docs/protocol.md, \"Pad\"",
        "// docs/protocol.md, `server.no_such_method`",
        "// docs/protocol.md#no-such-anchor",
        "let help = \"see docs/nowhere.md\";",
    ];
    for text in dead {
        assert!(!check(text, &mut pages).is_empty(), "{text} was accepted");
    }
    let alive = [
        "// docs/protocol.md, Padding: why",
        "// docs/protocol.md, Methods by version (one session each)",
        "// docs/protocol.md, \"Padding\"; docs/protocol.md, `server.version`",
        "// docs/performance.md, \"At scale\" (a heading's first words)",
        "// docs/protocol.md, `blockchain.scriptpubkey.get_history`",
        "// docs/protocol.md#version-negotiation, and docs/coins.md, Vector status",
        "// docs/protocol.md, steps 2 and 3 (prose, not a citation)",
        "// `coins/tests/data/vectors/blocks/<coin>_<net>.json`, `backends/{rocksdb,lmdb}`",
        "// the crate's `tests/docs_check.rs` and `store_factory.rs`, a URL's /src/x.rs",
        "let path = \"tests/generated/at/run/time\";",
        // A citation split over two comment lines.
        "// docs/protocol.md, Changes by\n// version",
    ];
    for text in alive {
        assert_eq!(check(text, &mut pages), Vec::<String>::new(), "{text}");
    }
    assert_eq!(
        check("// docs/protocol.md, Changes by\n// nothing", &mut pages).len(),
        1
    );
}

/// A workspace crate as `cargo metadata` describes it.
#[derive(Clone)]
struct Crate {
    /// (dependency, optional) for normal and build dependencies.
    deps: BTreeMap<String, bool>,
    features: BTreeMap<String, Vec<String>>,
}

fn workspace() -> BTreeMap<String, Crate> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
            "--manifest-path",
        ])
        .arg(root().join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .expect("an array")
            .iter()
            .map(|s| s.as_str().expect("a string").to_string())
            .collect()
    };
    json["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].as_str() != Some("dev"))
                .map(|d| {
                    let name = d["name"].as_str().expect("a name").to_string();
                    (name, d["optional"].as_bool().expect("optional"))
                })
                .collect();
            let features = p["features"]
                .as_object()
                .expect("features")
                .iter()
                .map(|(k, v)| (k.clone(), strings(v)))
                .collect();
            let name = p["name"].as_str().expect("a name").to_string();
            (name, Crate { deps, features })
        })
        .collect()
}

/// Each engine: its cargo feature, its crate, and the libraries that crate binds.
const ENGINES: &[(&str, &str, &[&str])] = &[
    (
        "rocksdb",
        "anode-store-rocksdb",
        &["rocksdb", "librocksdb-sys"],
    ),
    (
        "lmdb",
        "anode-store-lmdb",
        &["heed", "heed-traits", "heed-types", "lmdb-master-sys"],
    ),
    (
        "sqlite",
        "anode-store-sqlite",
        &["rusqlite", "libsqlite3-sys"],
    ),
];

fn is_engine(dep: &str) -> bool {
    ENGINES
        .iter()
        .any(|(_, krate, libs)| *krate == dep || libs.contains(&dep))
}

/// Where the crates' dependencies break what the docs say of them.
fn dependency_breaches(crates: &BTreeMap<String, Crate>) -> Vec<String> {
    let mut breaches = Vec::new();
    let none = Crate {
        deps: BTreeMap::new(),
        features: BTreeMap::new(),
    };
    let krate = |name: &str| crates.get(name).unwrap_or(&none);
    for name in ["anode", "anode-store", "anode-coins"]
        .into_iter()
        .chain(ENGINES.iter().map(|(_, name, _)| *name))
    {
        if !crates.contains_key(name) {
            breaches.push(format!("no workspace crate {name}"));
        }
    }
    // backends/store/src/lib.rs: no engine, no server; thiserror and libc, plus tempfile and
    // rand for the optional contract suite.
    let allowed = [
        ("thiserror", false),
        ("libc", false),
        ("tempfile", true),
        ("rand", true),
    ];
    for (dep, optional) in &krate("anode-store").deps {
        if !allowed.contains(&(dep.as_str(), *optional)) {
            breaches.push(format!(
                "anode-store depends on {dep} (optional: {optional}); backends/store/src/lib.rs \
                 allows {allowed:?}"
            ));
        }
    }
    // The coin layer knows neither storage nor server.
    for dep in krate("anode-coins").deps.keys() {
        if dep.starts_with("anode") || is_engine(dep) {
            breaches.push(format!("anode-coins depends on {dep}"));
        }
    }
    // Each engine crate: anode-store and its own engine, never the server or another engine.
    for (_, name, libs) in ENGINES {
        let engine = krate(name);
        if !engine.deps.contains_key("anode-store") {
            breaches.push(format!("{name} does not depend on anode-store"));
        }
        for dep in engine.deps.keys() {
            let ours = dep.starts_with("anode") && dep != "anode-store";
            let foreign = is_engine(dep) && !libs.contains(&dep.as_str());
            if ours || foreign {
                breaches.push(format!("{name} depends on {dep}"));
            }
        }
    }
    // The server: an engine only as its optional crate, behind the feature of the same name.
    let server = krate("anode");
    for (dep, optional) in &server.deps {
        if !is_engine(dep) {
            continue;
        }
        let Some((feature, _, _)) = ENGINES.iter().find(|(_, krate, _)| krate == dep) else {
            breaches.push(format!("anode binds the engine library {dep} directly"));
            continue;
        };
        if !optional {
            breaches.push(format!("anode depends on {dep} whatever its features"));
        }
        let enabled = server.features.get(*feature);
        if !enabled.is_some_and(|f| f.contains(&format!("dep:{dep}"))) {
            breaches.push(format!("anode's feature {feature} does not enable {dep}"));
        }
    }
    for (feature, name, _) in ENGINES {
        if server.deps.get(*name) != Some(&true) {
            breaches.push(format!(
                "anode has no optional {name} for its feature {feature}"
            ));
        }
    }
    breaches
}

#[test]
fn the_crates_depend_on_each_other_as_the_docs_say() {
    let breaches = dependency_breaches(&workspace());
    assert!(breaches.is_empty(), "{}", breaches.join("\n"));
}

/// A change to the workspace's dependencies.
type Change = Box<dyn Fn(&mut BTreeMap<String, Crate>)>;

#[test]
fn dependency_breaches_are_caught() {
    let crates = workspace();
    let breached = |change: &dyn Fn(&mut BTreeMap<String, Crate>)| {
        let mut crates = crates.clone();
        change(&mut crates);
        dependency_breaches(&crates)
    };
    let dep = |krate: &str, dep: &str, optional: bool| {
        let (krate, dep) = (krate.to_string(), dep.to_string());
        move |c: &mut BTreeMap<String, Crate>| {
            c.get_mut(&krate)
                .expect("a crate")
                .deps
                .insert(dep.clone(), optional);
        }
    };
    let breaking: Vec<Change> = vec![
        Box::new(dep("anode-store", "heed", false)),
        Box::new(dep("anode-store", "anode-coins", false)),
        Box::new(dep("anode-store", "rand", false)),
        Box::new(dep("anode-coins", "anode-store", false)),
        Box::new(dep("anode-coins", "rusqlite", true)),
        Box::new(dep("anode-store-lmdb", "anode", false)),
        Box::new(dep("anode-store-sqlite", "rocksdb", false)),
        Box::new(dep("anode", "anode-store-lmdb", false)),
        Box::new(dep("anode", "rusqlite", true)),
        Box::new(|c: &mut BTreeMap<String, Crate>| {
            c.get_mut("anode")
                .expect("anode")
                .features
                .remove("rocksdb");
        }),
        Box::new(|c: &mut BTreeMap<String, Crate>| {
            c.remove("anode-store-sqlite");
        }),
    ];
    for (i, change) in breaking.iter().enumerate() {
        assert!(
            !breached(change.as_ref()).is_empty(),
            "change {i} went unnoticed"
        );
    }
    assert!(breached(&dep("anode", "serde", false)).is_empty());
}

/// docs/backends.md: the server names a concrete engine only in `src/store_factory.rs`.
#[test]
fn only_the_store_factory_names_an_engine() {
    let mut named = Vec::new();
    for file in prose_files() {
        if !file.starts_with("src") || file == Path::new("src/store_factory.rs") {
            continue;
        }
        let text = std::fs::read_to_string(root().join(&file)).expect("a source file");
        for (_, krate, _) in ENGINES {
            let path = krate.replace('-', "_");
            if text.contains(&format!("{path}::")) || text.contains(&format!("use {path}")) {
                named.push(format!("{} names {path}", file.display()));
            }
        }
    }
    assert!(named.is_empty(), "{}", named.join("\n"));
}

/// docs/protocol.md, Methods by version: its table is the one the server dispatches by, column
/// by column, and the versions it says behave alike have the same methods.
#[test]
fn the_method_table_is_the_one_the_server_dispatches_by() {
    use anode::server::{methods_of_version, ProtocolVersion};
    let served = |version: &str| -> BTreeSet<String> {
        let parts: Vec<u32> = version
            .split('.')
            .map(|p| p.parse().expect("a version number"))
            .collect();
        methods_of_version(&ProtocolVersion::new(&parts))
            .into_iter()
            .map(String::from)
            .collect()
    };
    let text = std::fs::read_to_string(root().join("docs/protocol.md")).expect("docs/protocol.md");
    let section = text
        .split("### Methods by version")
        .nth(1)
        .expect("docs/protocol.md has Methods by version");
    let rows: Vec<Vec<String>> = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    let versions: Vec<(usize, String)> = rows[0]
        .iter()
        .enumerate()
        .filter(|(_, h)| h.starts_with("1."))
        .map(|(i, h)| (i, h.clone()))
        .collect();
    assert_eq!(versions.len(), 6, "version columns: {:?}", rows[0]);
    let mut documented: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in &rows[2..] {
        let method = row[0].split('`').nth(1).expect("a method in backticks");
        for (column, version) in &versions {
            let methods = documented.entry(version.clone()).or_default();
            match row[*column].as_str() {
                "Y" => {
                    methods.insert(method.to_string());
                }
                "—" => {}
                other => panic!("{method} in {version}: `{other}` is neither Y nor —"),
            }
        }
    }
    for (_, version) in &versions {
        assert_eq!(
            documented[version],
            served(version),
            "docs/protocol.md, Methods by version, column {version} (left) against the server"
        );
    }
    // The table's own note: 1.4.3 and 1.5 behave as 1.4.2, 1.6.x as 1.6, 1.7.0 as 1.7.
    for (alike, documented_as) in [
        ("1.4.3", "1.4.2"),
        ("1.5", "1.4.2"),
        ("1.6.1", "1.6"),
        ("1.7.0", "1.7"),
    ] {
        assert_eq!(served(alike), served(documented_as), "{alike}");
    }
}
