//! Tidy checks: the invariants ARCHITECTURE.md states, enforced by `cargo test` instead of only
//! written down. Each test reads the workspace as files or asks cargo for its dependency graph
//! (`cargo metadata --offline`, from the lock file), and names what breaks the rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The workspace's root directory (this package's).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file below `dir`, sorted; build output and fuzz artifacts skipped.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if !matches!(
                    name.to_str(),
                    Some("target" | "corpus" | "artifacts" | ".git")
                ) {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The crates of the workspace: `(package name, directory)`.
fn crates() -> Vec<(String, PathBuf)> {
    let metadata = metadata();
    let members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| members.contains(p["id"].as_str().unwrap_or_default()))
        .map(|p| {
            let manifest = PathBuf::from(p["manifest_path"].as_str().expect("manifest_path"));
            let name = p["name"].as_str().expect("name").to_owned();
            (name, manifest.parent().expect("a directory").to_path_buf())
        })
        .collect()
}

/// The platform this test runs on, as `rustc` names it.
fn host() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc names its host")
        .to_owned()
}

/// The workspace's packages and their resolved dependencies for this platform (other platforms'
/// crates are not downloaded, and cargo runs offline).
fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
        ])
        .arg(host())
        .arg("--manifest-path")
        .arg(root().join("Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// The names of the packages `package` depends on for normal builds (not dev or build), all the
/// way down.
fn normal_closure(metadata: &Value, package: &str) -> BTreeSet<String> {
    let packages = metadata["packages"].as_array().expect("packages");
    let nodes = metadata["resolve"]["nodes"].as_array().expect("resolve");
    let name_of: BTreeMap<&str, &str> = packages
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let start = packages
        .iter()
        .find(|p| p["name"] == package)
        .and_then(|p| p["id"].as_str())
        .unwrap_or_else(|| panic!("no package {package}"));
    let mut seen = BTreeSet::new();
    let mut pending = vec![start];
    while let Some(id) = pending.pop() {
        let node = nodes.iter().find(|n| n["id"] == id).expect("resolved node");
        for dep in node["deps"].as_array().into_iter().flatten() {
            let normal = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null());
            let dep_id = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(name_of[dep_id].to_owned()) {
                pending.push(dep_id);
            }
        }
    }
    seen
}

/// The workspace crates `package` depends on directly for normal builds.
fn workspace_deps(metadata: &Value, package: &str) -> BTreeSet<String> {
    let workspace: BTreeSet<String> = crates().into_iter().map(|(name, _)| name).collect();
    let entry = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == package)
        .unwrap_or_else(|| panic!("no package {package}"));
    entry["dependencies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["kind"].is_null())
        .filter_map(|d| d["name"].as_str())
        .filter(|name| workspace.contains(*name))
        .map(str::to_owned)
        .collect()
}

#[test]
fn medex_core_does_no_io() {
    let closure = normal_closure(&metadata(), "medex-core");
    for io in [
        "tokio",
        "hyper",
        "axum",
        "sled",
        "tungstenite",
        "tokio-tungstenite",
        "tokio-postgres",
        "redis",
        "reqwest",
        "mio",
    ] {
        assert!(
            !closure.contains(io),
            "medex-core depends on {io} (through its normal dependencies): the core does no IO"
        );
    }
    for file in rust_files(&root().join("medex-core/src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for io in ["std::fs", "std::net", "std::process", "std::thread::sleep"] {
            assert!(
                !text.contains(io),
                "{} uses {io}: the core does no IO",
                file.display()
            );
        }
    }
}

#[test]
fn crates_depend_only_as_the_architecture_says() {
    let metadata = metadata();
    let allowed: &[(&str, &[&str])] = &[
        ("medex-core", &[]),
        ("medex-store-sled", &["medex-core"]),
        ("medex-store-postgres", &["medex-core"]),
        ("medex-http", &["medex-core"]),
        ("medex-ws", &["medex-core"]),
        ("medex-redis", &["medex-core"]),
    ];
    for (name, _) in crates() {
        let deps = workspace_deps(&metadata, &name);
        match allowed.iter().find(|(crate_name, _)| *crate_name == name) {
            Some((_, may)) => {
                let extra: Vec<_> = deps.iter().filter(|d| !may.contains(&d.as_str())).collect();
                assert!(
                    extra.is_empty(),
                    "{name} depends on {extra:?}; it may depend on {may:?} only"
                );
            }
            // Only the root package composes the crates.
            None => assert_eq!(name, "medex", "{name} is not in the architecture's table"),
        }
    }
}

#[test]
fn every_module_starts_with_its_documentation() {
    let mut undocumented = Vec::new();
    for (_, dir) in crates() {
        for sub in ["src", "tests", "benches", "examples"] {
            for file in rust_files(&dir.join(sub)) {
                // The root package's directory holds the other crates: each checks its own.
                if dir == root()
                    && file
                        .strip_prefix(root())
                        .is_ok_and(|p| p.starts_with("medex-"))
                {
                    continue;
                }
                let text = std::fs::read_to_string(&file).unwrap();
                let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                if !first.starts_with("//!") {
                    undocumented.push(file.display().to_string());
                }
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "modules without a `//!` documentation first: {undocumented:#?}"
    );
}

/// The top-level module a file of `src/` belongs to: `service/orders.rs` is part of `service`.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The modules of the same crate a file's code (not its comments, not its test module) names
/// through `crate::`.
fn uses_of(text: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut in_tests = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            in_tests = true;
        }
        if in_tests || trimmed.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                used.insert(name);
            }
        }
    }
    used
}

/// A cycle in `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
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

#[test]
fn no_crate_imports_in_a_circle() {
    for (name, dir) in crates() {
        let src = dir.join("src");
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in rust_files(&src) {
            if dir == root() && !file.starts_with(root().join("src")) {
                continue;
            }
            // Test modules in files of their own (`service/tests.rs`, `service/tests/…`) may use
            // the test kit, which uses everything.
            let relative = file.strip_prefix(&src).unwrap_or(&file);
            if relative
                .components()
                .any(|c| c.as_os_str() == "tests" || c.as_os_str() == "tests.rs")
            {
                continue;
            }
            let Some(module) = top_module(&src, &file) else {
                continue;
            };
            let text = std::fs::read_to_string(&file).unwrap();
            let uses = graph.entry(module.clone()).or_default();
            uses.extend(uses_of(&text).into_iter().filter(|m| *m != module));
        }
        let modules: BTreeSet<String> = graph.keys().cloned().collect();
        for uses in graph.values_mut() {
            uses.retain(|m| modules.contains(m));
        }
        assert_eq!(
            find_cycle(&graph),
            None,
            "{name}: modules import each other in a circle; leaf modules belong at the bottom"
        );
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            g.entry((*from).into()).or_default().insert((*to).into());
            g.entry((*to).into()).or_default();
        }
        g
    };
    assert_eq!(find_cycle(&graph(&[("a", "b"), ("b", "c")])), None);
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        uses_of("use crate::model::X;\n// crate::doc\n#[cfg(test)]\nuse crate::tests;"),
        BTreeSet::from(["model".to_owned()])
    );
}

#[test]
fn the_readme_lists_every_setting_with_its_default() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let mut missing = Vec::new();
    for (name, default, _) in crate::settings::VARIABLES {
        let row = format!("| `{name}` | {default} |");
        if !readme.contains(&row) {
            missing.push(row);
        }
    }
    assert!(
        missing.is_empty(),
        "README's configuration table lacks these rows (or their defaults differ): {missing:#?}"
    );
}
