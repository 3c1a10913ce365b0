//! The layering rule, checked on the source: each top-level module of the daemon uses only
//! modules listed before it in [`ORDER`] (so there are no upward imports and no circles), and
//! the simulator uses nothing of the daemon and has no circles among its own modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The daemon's modules from the bottom up. The one place the allowed direction is written.
#[rustfmt::skip]
const ORDER: &[&str] = &[
    // 0: the shared vocabulary
    "secret", "sso", "vocab", "view", "tls", "config", "command", "herd", "cadence",
    // 1: protocols and outputs
    "finesse", "xmpp", "events", "metrics", "notify", "backoff",
    // 2: the agent's view
    "model", "hub",
    // 3: recovery
    "machine", "driver",
    // 4: around the driver
    "orphan", "api",
    // 5: wiring
    "app", "fleet", "status",
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
    // Depth-first search for a back edge.
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
    for m in g.keys() {
        if let Some(circle) = visit(m, &g, &mut Vec::new(), &mut done) {
            panic!(
                "the simulator's modules import in a circle: {}",
                circle.join(" -> ")
            );
        }
    }
}

#[test]
fn the_checker_sees_an_upward_import_and_a_circle() {
    let refs = crate_refs("use crate::api::STALL; // crate::hub\n/// [`crate::driver`]\n");
    assert_eq!(refs.into_iter().collect::<Vec<_>>(), vec!["api".to_owned()]);
}
