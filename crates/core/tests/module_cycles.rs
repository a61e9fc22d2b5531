//! No import cycles between the top-level modules of any crate (docs/architecture.md, "The
//! layers"): each crate reads bottom-up, so a newcomer can learn `wire` without `consensus`, and
//! `consensus` without the node. Crates themselves cannot form cycles (Cargo refuses them); this
//! test holds the modules inside each crate to the same rule.
//!
//! A module depends on another when its code (not its comments) names `crate::other`, or `use
//! super::other` from a file one level down. Tests are read the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to: `consensus/replica.rs` → `consensus`.
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

/// Identifiers that follow `prefix` in `code`.
fn names_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    code.match_indices(prefix)
        .map(|(i, _)| {
            let rest = &code[i + prefix.len()..];
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|n| !n.is_empty())
        .collect()
}

fn module_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| top_module(src, f)).collect();
    let mut graph = Graph::new();
    for file in &files {
        let from = top_module(src, file);
        let text = std::fs::read_to_string(file).unwrap();
        let code: String =
            text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
        let depth = file.strip_prefix(src).unwrap().components().count();
        let mut targets = names_after(&code, "crate::");
        if depth == 2 {
            // `super::x` from `consensus/replica.rs` is `crate::x` only when `consensus` is
            // `crate`'s child, which it is; from deeper files it stays inside the module.
            targets.extend(names_after(&code, "use super::"));
        }
        for to in targets {
            if to != from && modules.contains(to) {
                graph.entry(from.clone()).or_default().insert(to.to_string());
            }
        }
    }
    graph
}

/// A cycle in the graph, if there is one, as the path that closes it.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_a_cycle_between_its_modules() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(crates).unwrap() {
        let src = entry.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        let graph = module_graph(&src);
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{}: the modules import each other in a circle: {}", src.display(), cycle.join(" → "));
        }
        checked += 1;
    }
    assert!(checked >= 8, "found only {checked} crates");
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut g = Graph::new();
    g.entry("wire".into()).or_default().insert("evidence".into());
    g.entry("evidence".into()).or_default().insert("consensus".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("consensus".into()).or_default().insert("wire".into());
    let cycle = find_cycle(&g).expect("wire → evidence → consensus → wire");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
}
