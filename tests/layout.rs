//! The layout rule of `src/` (README, "Development"): no module imports from a module that imports
//! it, at two levels:
//! - between the crate's top-level modules (`server`, `front_door`, `api`, `exchange`, …);
//! - between the files of one folder (`api/handlers.rs`, `api/docs.rs`, …), its `mod.rs` aside.
//!
//! and the request path reads one way: `server` → `front_door` → `api` → `exchange` → `upstream`
//! → `providers`, none of them importing one before it.
//!
//! It reads the source text: every `crate::<module>` and `super::<file>` outside comments is an
//! import. That is what a reader follows too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The request path, in request order.
const REQUEST_PATH: [&str; 6] = [
    "server",
    "front_door",
    "api",
    "exchange",
    "upstream",
    "providers",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The identifiers following `prefix` in `code` (`crate::api::x` → `api`; `crate::{a, b}` → both).
fn names_after(code: &str, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let group = rest
            .strip_prefix('{')
            .map(|g| &g[..g.find('}').unwrap_or(g.len())]);
        let items: Vec<&str> = match group {
            Some(group) => group.split(',').collect(),
            None => vec![rest],
        };
        for item in items {
            let name: String = item
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names
}

/// The source without comment lines (doc links are not imports).
fn code_of(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("a source file is readable")
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

type Graph = BTreeMap<String, BTreeSet<String>>;

/// A cycle in `graph`, as the path around it, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

struct Source {
    /// Path under `src/`, with `/` separators.
    relative: String,
    code: String,
}

fn sources() -> Vec<Source> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .iter()
        .map(|path| Source {
            relative: path
                .strip_prefix(&src)
                .expect("under src/")
                .to_string_lossy()
                .replace('\\', "/"),
            code: code_of(path),
        })
        .collect()
}

/// `api/handlers.rs` → `api`; `metrics.rs` → `metrics`; `lib.rs`, `main.rs` → none.
fn top_module(relative: &str) -> Option<String> {
    let first = relative.split('/').next()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

fn top_level_graph() -> Graph {
    let sources = sources();
    let modules: BTreeSet<String> = sources
        .iter()
        .filter_map(|s| top_module(&s.relative))
        .collect();
    let mut graph = Graph::new();
    for source in &sources {
        let Some(from) = top_module(&source.relative) else {
            continue;
        };
        let imports = graph.entry(from.clone()).or_default();
        for name in names_after(&source.code, "crate::") {
            if name != from && modules.contains(&name) {
                imports.insert(name);
            }
        }
    }
    graph
}

#[test]
fn no_top_level_module_imports_one_that_imports_it() {
    let graph = top_level_graph();
    assert!(graph.len() > 10, "the scan found the modules: {graph:?}");
    assert!(
        graph["exchange"].contains("upstream"),
        "the scan sees imports: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" → "));
    }
}

#[test]
fn the_request_path_imports_only_forward() {
    let graph = top_level_graph();
    for (i, module) in REQUEST_PATH.iter().enumerate() {
        let imports = graph.get(*module).cloned().unwrap_or_default();
        for earlier in &REQUEST_PATH[..i] {
            assert!(
                !imports.contains(*earlier),
                "`{module}` imports `{earlier}`, which comes before it on the request path"
            );
        }
    }
}

#[test]
fn no_file_imports_a_sibling_that_imports_it() {
    let sources = sources();
    // folder → (file stem → the sibling stems it imports)
    let mut folders: BTreeMap<String, Graph> = BTreeMap::new();
    for source in &sources {
        let Some((folder, file)) = source.relative.rsplit_once('/') else {
            continue;
        };
        let stem = file.strip_suffix(".rs").unwrap_or(file);
        if stem == "mod" {
            continue;
        }
        let siblings: BTreeSet<String> = sources
            .iter()
            .filter_map(|s| s.relative.strip_prefix(&format!("{folder}/")))
            .filter(|f| !f.contains('/'))
            .map(|f| f.trim_end_matches(".rs").to_owned())
            .filter(|f| f != "mod")
            .collect();
        let absolute = format!("crate::{}::", folder.replace('/', "::"));
        let imports: BTreeSet<String> = names_after(&source.code, "super::")
            .into_iter()
            .chain(names_after(&source.code, &absolute))
            .filter(|name| name != stem && siblings.contains(name))
            .collect();
        folders
            .entry(folder.to_owned())
            .or_default()
            .insert(stem.to_owned(), imports);
    }
    assert!(folders.contains_key("api"), "{folders:?}");
    for (folder, graph) in &folders {
        if let Some(cycle) = find_cycle(graph) {
            panic!("import cycle in src/{folder}/: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_scanner_finds_grouped_and_nested_imports_and_cycles() {
    assert_eq!(
        names_after("use crate::{api, exchange::Redeem};", "crate::"),
        ["api", "exchange"]
    );
    assert_eq!(
        names_after("x: my_crate::api", "crate::"),
        Vec::<String>::new()
    );
    let graph: Graph = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(from, to)| (from.to_owned(), BTreeSet::from([to.to_owned()])))
        .collect();
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
