//! The rule that keeps the daemon livable, checked over its sources: data flows one way (sources → log → views →
//! answers) and nothing imports upward. The crates are in that order (labd-schemas, labd-sources, labd-log,
//! labd), which Cargo keeps: it refuses circles between crates. Within the daemon crate each top-level module
//! has a layer (below); a module may use modules of its own layer or lower ones, never a higher one. And no
//! file of these crates takes part in an import circle. Test code (`#[cfg(test)] mod ...`) is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The daemon's layers, bottom to top.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "utilities, no stage of their own",
        &[
            "ids",
            "jobs",
            "limits",
            "process_group",
            "cgroups",
            "watch",
            "web",
            "mailbox",
            "locks",
        ],
    ),
    ("sources → log: ingestion", &["ingest"]),
    ("log → views", &["views"]),
    ("reading the views", &["filter", "replay"]),
    ("analysis over the views", &["analytics"]),
    ("the settings of all of the above", &["config"]),
    (
        "workers (views → events) and the handlers' state",
        &["sweeps", "benchmarks", "alerts", "federation", "state"],
    ),
    ("answers", &["api", "mlflow"]),
    ("wiring", &["daemon"]),
];

/// The daemon crate's sources.
fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The sources of the daemon and of the crates below it.
fn crate_roots() -> Vec<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf();
    vec![
        src(),
        repo.join("eventlog/src"),
        repo.join("sources/src"),
        repo.join("schemas/src"),
    ]
}

/// Every source file of the library (the binaries in `bin/` and `main.rs` use it from outside).
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("source folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "bin") {
                files(&p, out);
            }
        } else if p.extension().is_some_and(|e| e == "rs")
            && p.file_name().is_some_and(|n| n != "main.rs")
        {
            out.push(p);
        }
    }
}

/// The text of a file without its comments and its test module.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("source file");
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]")
            && lines.peek().is_some_and(|n| {
                n.trim_start().starts_with("mod ") || n.trim_start().starts_with("pub mod ")
            })
        {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line.split(" // ").next().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// The module path of a file: `views/live.rs` → `["views", "live"]`, `views/mod.rs` → `["views"]`.
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The file that holds module `path` (or the deepest module of it that is a file).
fn file_of(root: &Path, path: &[String]) -> Option<PathBuf> {
    let mut dir = root.to_path_buf();
    let mut found = Some(root.join("lib.rs"));
    for seg in path {
        let flat = dir.join(format!("{seg}.rs"));
        let nested = dir.join(seg).join("mod.rs");
        if flat.is_file() {
            found = Some(flat);
        } else if nested.is_file() {
            found = Some(nested);
        } else {
            break;
        }
        dir = dir.join(seg);
    }
    found
}

/// The paths a file names within the crate: `crate::a::b` (also inside `use crate::{a, b::c}`) and
/// `super::a`, as module paths from the crate root.
fn references(root: &Path, file: &Path) -> Vec<Vec<String>> {
    let text = code(file);
    let me = module_of(root, file);
    let mut out = Vec::new();
    // The identifiers of a path up to where it ends (`a::b::C;` → a, b, C).
    let ident = |s: &str| -> Vec<String> {
        let mut out = Vec::new();
        for seg in s.split("::") {
            let seg = seg.trim_start();
            let id: String = seg
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if id.is_empty() {
                break;
            }
            let whole = id.len() == seg.len();
            out.push(id);
            if !whole {
                break;
            }
        }
        out
    };
    for (prefix, base) in [
        ("crate::", Vec::new()),
        ("super::", {
            let is_mod = file.file_name().is_some_and(|n| n == "mod.rs");
            let mut parent = me.clone();
            if !is_mod || !parent.is_empty() {
                parent.pop();
            }
            parent
        }),
    ] {
        let mut rest = text.as_str();
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                // A use group: each top-level item names a path.
                let mut depth = 0;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            let mut p = base.clone();
                            p.extend(ident(&item));
                            out.push(p);
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    item.push(c);
                }
                let mut p = base.clone();
                p.extend(ident(&item));
                out.push(p);
            } else {
                let mut p = base.clone();
                p.extend(ident(rest));
                out.push(p);
            }
        }
    }
    out.retain(|p| !p.is_empty() && p[0] != "self");
    out
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

#[test]
fn no_module_imports_one_above_it() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let mut upward = Vec::new();
    let mut unplaced = BTreeSet::new();
    for file in &all {
        let me = module_of(&src(), file);
        let Some(top) = me.first() else { continue };
        let Some(mine) = layer_of(top) else {
            unplaced.insert(top.clone());
            continue;
        };
        for r in references(&src(), file) {
            let Some(theirs) = layer_of(&r[0]) else {
                continue;
            };
            if theirs > mine {
                upward.push(format!(
                    "{} ({}) uses crate::{} ({})",
                    file.strip_prefix(src()).unwrap_or(file).display(),
                    LAYERS[mine].0,
                    r.join("::"),
                    LAYERS[theirs].0
                ));
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules without a layer in tests/layers.rs: {unplaced:?}"
    );
    assert!(upward.is_empty(), "imports upward:\n{}", upward.join("\n"));
}

#[test]
fn no_file_takes_part_in_an_import_circle() {
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for root in crate_roots() {
        let mut all = Vec::new();
        files(&root, &mut all);
        for file in &all {
            let targets = edges.entry(file.clone()).or_default();
            for r in references(&root, file) {
                if let Some(to) = file_of(&root, &r)
                    && to != *file
                    && !to.ends_with("lib.rs")
                {
                    targets.insert(to);
                }
            }
        }
    }
    // Depth-first search; a grey node met again closes a circle.
    fn visit(
        n: &PathBuf,
        edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        state: &mut BTreeMap<PathBuf, u8>,
        stack: &mut Vec<PathBuf>,
        circles: &mut Vec<String>,
    ) {
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m).copied().unwrap_or(0) {
                0 => visit(m, edges, state, stack, circles),
                1 => {
                    let at = stack.iter().position(|s| s == m).unwrap_or(0);
                    let names: Vec<String> = stack[at..]
                        .iter()
                        .chain(std::iter::once(m))
                        .map(|p| {
                            let repo = src().parent().and_then(Path::parent).map(Path::to_path_buf);
                            repo.and_then(|r| p.strip_prefix(r).ok().map(Path::to_path_buf))
                                .unwrap_or_else(|| p.clone())
                                .display()
                                .to_string()
                        })
                        .collect();
                    circles.push(names.join(" → "));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
    }
    let mut state = BTreeMap::new();
    let mut circles = Vec::new();
    for n in edges.keys() {
        if !state.contains_key(n) {
            visit(n, &edges, &mut state, &mut Vec::new(), &mut circles);
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_checker_sees_use_groups_and_super() {
    let file = src().join("daemon.rs");
    let refs = references(&src(), &file);
    assert!(refs.iter().any(|r| r == &["api"]), "{refs:?}");
    assert!(refs.iter().any(|r| r == &["ingest", "pump"]), "{refs:?}");
    let live = references(&src(), &src().join("views/live.rs"));
    assert!(
        live.iter().any(|r| r == &["views", "Views"]),
        "super:: resolves to the parent module: {live:?}"
    );
    assert_eq!(
        file_of(&src(), &["views".into(), "live".into(), "LiveViews".into()]),
        Some(src().join("views/live.rs"))
    );
}
