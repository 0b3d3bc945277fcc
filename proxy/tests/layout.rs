//! The shape rules of `docs/architecture.md`, checked on the sources: the
//! top-level modules import each other without a circle, `smi` and `pnp`
//! never import each other, and no source file grows past
//! [`LINES_BEFORE_TESTS_MAX`] lines before its tests.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest a source file may be before its `#[cfg(test)]` part.
const LINES_BEFORE_TESTS_MAX: usize = 800;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read the source directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level module a file belongs to (`smi` for `src/smi/codec.rs`,
/// `udi` for `src/udi.rs`); None for the crate roots.
fn module_of(root: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The part of a file before its tests (a `tests.rs` file is all tests).
fn before_tests(file: &Path, text: &str) -> usize {
    if file.file_name().is_some_and(|n| n == "tests.rs")
        || file.components().any(|c| c.as_os_str() == "tests")
    {
        return 0;
    }
    text.lines()
        .position(|l| l.trim_start().starts_with("#[cfg(test)]"))
        .unwrap_or_else(|| text.lines().count())
}

/// Module -> the other top-level modules its non-test code names.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let root = src();
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&root, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("read a source file");
        let code: Vec<&str> = text.lines().take(before_tests(&file, &text)).collect();
        let deps = graph.entry(module.clone()).or_default();
        for line in code {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for (i, _) in line.match_indices("crate::") {
                let rest = &line[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    deps.insert(name);
                }
            }
        }
    }
    graph
}

#[test]
fn top_level_modules_import_each_other_without_a_circle() {
    let graph = imports();
    // Depth-first search for a back edge, reporting the circle it closes.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(circle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("import circle: {}", circle.join(" -> "));
        }
    }
}

#[test]
fn smi_and_pnp_never_import_each_other() {
    let graph = imports();
    assert!(!graph["smi"].contains("pnp"), "smi imports pnp");
    assert!(!graph["pnp"].contains("smi"), "pnp imports smi");
}

#[test]
fn no_source_file_is_long_before_its_tests() {
    let root = src();
    let mut files = Vec::new();
    sources(&root, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).expect("read a source file");
            let n = before_tests(f, &text);
            (n > LINES_BEFORE_TESTS_MAX).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "over {LINES_BEFORE_TESTS_MAX} lines before tests: {long:#?}"
    );
}
