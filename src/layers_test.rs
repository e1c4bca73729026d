//! The house rule made executable: every `crate::…` reference in `src/` points down the layer
//! order that `docs/architecture.md` writes down, and no two files of one layer use each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer order, bottom first, from the line of docs/architecture.md that starts `Layers`.
fn layer_order(root: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(root.join("docs/architecture.md"))
        .expect("docs/architecture.md states the layer order");
    let line = text
        .lines()
        .find(|line| line.starts_with("Layers, bottom first:"))
        .expect("a line 'Layers, bottom first: `a` → `b` → …' in docs/architecture.md");
    line.split('→')
        .map(|part| {
            part.rsplit(':')
                .next()
                .unwrap()
                .trim()
                .trim_matches(|c: char| c == '`' || c == '.' || c.is_whitespace())
                .to_string()
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The layer a file belongs to: its folder under `src/`, or its own name for a top-level file.
fn layer_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The names that follow `prefix` (`crate::`, `super::`) in `text`.
fn referenced(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            names.insert(name);
        }
        // `crate::{a, b}` and `super::{a, b}`: every name in the braces.
        if rest.starts_with('{') {
            let group = &rest[1..rest.find('}').unwrap_or(rest.len())];
            for item in group.split(',') {
                let item: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !item.is_empty() {
                    names.insert(item);
                }
            }
        }
    }
    names
}

/// Every reference from a file to a layer above its own, as "file -> layer".
fn upward_references(root: &Path, order: &[String]) -> Vec<String> {
    let src = root.join("src");
    let rank = |layer: &str| order.iter().position(|known| known == layer);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let layer = layer_of(&src, &file);
        if layer == "lib" || layer == "layers_test" {
            continue; // declares the modules; this test
        }
        let own = rank(&layer).unwrap_or_else(|| {
            panic!(
                "{layer} ({}) is not in the layer order of docs/architecture.md",
                file.display()
            )
        });
        let text = std::fs::read_to_string(&file).unwrap();
        let prefix = if layer == "main" {
            "graphpilot::"
        } else {
            "crate::"
        };
        for target in referenced(&text, prefix) {
            if let Some(target_rank) = rank(&target)
                && target_rank > own
            {
                wrong.push(format!(
                    "{} -> {target}",
                    file.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    wrong
}

/// Cycles among sibling files (not `mod.rs`) that use each other through `super::`.
fn sibling_cycles(root: &Path) -> Vec<String> {
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut uses: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for file in &files {
        if file.file_name().is_some_and(|name| name == "mod.rs") || file.parent() == Some(&src) {
            continue;
        }
        let dir = file.parent().unwrap();
        let text = std::fs::read_to_string(file).unwrap();
        for name in referenced(&text, "super::") {
            let sibling = dir.join(format!("{name}.rs"));
            if sibling.exists() && &sibling != file {
                uses.entry(file.clone()).or_default().insert(sibling);
            }
        }
    }
    // A cycle of any length: a file that reaches itself again through its siblings.
    let mut cycles = Vec::new();
    for start in uses.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((file, path)) = stack.pop() {
            for next in uses.get(&file).into_iter().flatten() {
                if next == start {
                    // Reported once, from its smallest file.
                    if path.iter().all(|member| member >= start) {
                        let names: Vec<String> = path
                            .iter()
                            .map(|member| member.strip_prefix(root).unwrap().display().to_string())
                            .collect();
                        cycles.push(names.join(" -> "));
                    }
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    cycles
}

#[test]
fn every_import_points_down_the_documented_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let order = layer_order(root);
    assert!(order.len() >= 10, "{order:?}");
    let wrong = upward_references(root, &order);
    assert!(
        wrong.is_empty(),
        "imports that point up the layer order {order:?} (docs/architecture.md):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_two_files_of_a_layer_use_each_other() {
    let cycles = sibling_cycles(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_check_sees_an_upward_import() {
    assert!(referenced("use crate::http::ApiError;", "crate::").contains("http"));
    assert!(referenced("use crate::{store, model};", "crate::").contains("model"));
    assert!(!referenced("let my_crate::x = 1;", "crate::").contains("x"));
}
