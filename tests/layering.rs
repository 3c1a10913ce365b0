//! The layering rule, checked on the source: each top-level module of the daemon uses only
//! modules listed before it in [`ORDER`] (so there are no upward imports and no circles), the
//! files of one folder (`config/raw.rs`, `config/sso.rs`, …) import one another in no circle
//! either, and the simulator uses nothing of the daemon and has no circles among its own
//! modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The daemon's modules from the bottom up. The one place the allowed direction is written.
#[rustfmt::skip]
const ORDER: &[&str] = &[
    // 0: the shared vocabulary
    "secret", "sso", "vocab", "view", "tls", "config", "command", "state_dir", "throttle", "timer_grid", "telemetry",
    // 1: protocols and outputs
    "finesse", "clients", "xmpp", "events", "metrics", "notify", "backoff", "refresh", "refusals",
    // 2: the agent's view
    "reconcile", "published",
    // 3: recovery
    "machine", "driver",
    // 4: around the driver
    "orphan", "api",
    // 5: wiring
    "app", "fleet", "status", "cli",
];

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

/// The top-level module a file under `root` belongs to.
fn module_of(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The top-level modules a file names as `crate::name`, comments aside.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                refs.insert(name);
            }
            rest = after;
        }
    }
    refs
}

fn graph(root: &Path, skip: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let m = module_of(root, &f);
        if skip.contains(&m.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let refs = g.entry(m.clone()).or_default();
        refs.extend(crate_refs(&text).into_iter().filter(|r| *r != m));
    }
    g
}

/// The sibling modules a file of folder `folder` names, as `super::name` (from a file directly
/// in the folder) or `crate::folder::name` (from anywhere in it), comments aside.
fn sibling_refs(text: &str, folder: &str, direct: bool) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let long = format!("crate::{folder}::");
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut prefixes = vec![long.as_str()];
        if direct {
            prefixes.push("super::");
        }
        for prefix in prefixes {
            for (at, _) in code.match_indices(prefix) {
                let before = &code[..at];
                let name: String = code[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // Only the start of a path; `super::super::x` climbs out of the folder.
                let starts = !before.ends_with("::")
                    && !before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
                if starts && !name.is_empty() && name != "super" {
                    refs.insert(name);
                }
            }
        }
    }
    refs
}

/// For each folder module (`src/<folder>/`), which of its child modules use which others.
/// `mod.rs` is the folder itself (it may use its children) and is left out.
fn folder_graphs(root: &Path) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() || dir.file_name().is_some_and(|n| n == "bin") {
            continue;
        }
        let folder = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        let children: BTreeSet<String> = files
            .iter()
            .map(|f| module_of(&dir, f))
            .filter(|m| m != "mod")
            .collect();
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for f in &files {
            let child = module_of(&dir, f);
            if child == "mod" {
                continue;
            }
            let direct = f.parent() == Some(dir.as_path());
            let text = std::fs::read_to_string(f).unwrap();
            let refs = g.entry(child.clone()).or_default();
            refs.extend(
                sibling_refs(&text, &folder, direct)
                    .into_iter()
                    .filter(|r| *r != child && children.contains(r)),
            );
        }
        out.insert(folder, g);
    }
    out
}

/// A circle in `g`, if there is one (depth-first search for a back edge).
fn circle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut circle = path[at..].to_vec();
            circle.push(m.to_owned());
            return Some(circle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_owned());
        for r in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(r, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|m| visit(m, g, &mut Vec::new(), &mut done))
}

#[test]
fn no_folder_of_the_daemon_imports_in_a_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let circles: Vec<String> = folder_graphs(&root)
        .iter()
        .filter_map(|(folder, g)| circle(g).map(|c| format!("{folder}: {}", c.join(" -> "))))
        .collect();
    assert!(
        circles.is_empty(),
        "modules inside a folder import in a circle:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_daemon_imports_only_downward() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&root, &["bin", "main", "lib"]);
    let rank = |m: &str| ORDER.iter().position(|o| *o == m);
    let mut wrong = Vec::new();
    for (m, refs) in &g {
        let Some(mine) = rank(m) else {
            wrong.push(format!("{m} is not listed in ORDER (add it to its layer)"));
            continue;
        };
        for r in refs {
            match rank(r) {
                Some(theirs) if theirs < mine => {}
                Some(_) => wrong.push(format!("{m} uses {r}, which is not below it")),
                None => wrong.push(format!("{m} uses {r}, which is not listed in ORDER")),
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
    assert_eq!(
        g.keys().count(),
        ORDER.len(),
        "every module in ORDER exists"
    );
}

#[test]
fn the_simulator_shares_nothing_with_the_daemon_and_has_no_circles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin/finesse-sim");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            !text.contains("finesse_taskd"),
            "{} uses the daemon's library",
            f.display()
        );
    }
    let g = graph(&root, &["main"]);
    if let Some(c) = circle(&g) {
        panic!(
            "the simulator's modules import in a circle: {}",
            c.join(" -> ")
        );
    }
}

#[test]
fn the_checker_sees_an_upward_import_and_a_circle() {
    let refs = crate_refs("use crate::api::STALL; // crate::published\n/// [`crate::driver`]\n");
    assert_eq!(refs.into_iter().collect::<Vec<_>>(), vec!["api".to_owned()]);
}

#[test]
fn the_folder_checker_sees_siblings_and_a_circle() {
    let refs = sibling_refs(
        "use super::raw::RawAgent; use crate::config::sso::Auth; super::super::vocab; // super::x\n",
        "config",
        true,
    );
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        vec!["raw".to_owned(), "sso".to_owned()]
    );
    // From a file deeper in the folder, `super::` is its own parent, not the folder.
    assert!(sibling_refs("use super::raw::X;", "config", false).is_empty());
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("raw", vec!["sso"]),
        ("sso", vec!["secrets"]),
        ("secrets", vec!["raw"]),
        ("check", vec!["raw"]),
    ]
    .into_iter()
    .map(|(m, rs)| (m.to_owned(), rs.into_iter().map(str::to_owned).collect()))
    .collect();
    let c = circle(&g).expect("a circle");
    assert_eq!(c.first(), c.last());
    assert_eq!(c.len(), 4);
    let mut acyclic = g.clone();
    acyclic.get_mut("secrets").unwrap().clear();
    assert_eq!(circle(&acyclic), None);
}
