//! The operator's files in `contrib/`: the Prometheus alerting rules pass `promtool check
//! rules`, the Grafana dashboard is valid JSON, and every metric either names is exported by
//! a running fleet (whose `/metrics` holds every family a single agent has, plus the fleet's)
//! once it has seen a dialog and a reconnect.

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use support::Sim;
use support::fleet::{AGENTS, Fleet};

const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/contrib/prometheus/finesse-taskd.rules.yml"
);
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/contrib/grafana/finesse-taskd.json"
);

/// Every `finesse_taskd_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("finesse_taskd_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The family a sample name belongs to (`_total`, `_bucket`, `_sum`, `_count` dropped).
fn family(name: &str) -> &str {
    ["_total", "_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

#[test]
fn the_alerting_rules_pass_promtool() {
    let out = Command::new("promtool")
        .args(["check", "rules", RULES])
        .output()
        .expect(
            "promtool must be installed (scripts/install-deps.sh installs Debian's prometheus)",
        );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SUCCESS: 10 rules found"), "{text}");
}

#[tokio::test]
async fn every_metric_the_rules_and_the_dashboard_name_is_exported() {
    let rules = std::fs::read_to_string(RULES).unwrap();
    let dashboard = std::fs::read_to_string(DASHBOARD).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("valid JSON");
    let panels = parsed["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6, "{} panels", panels.len());
    let named: BTreeSet<String> = metric_names(&rules)
        .into_iter()
        .chain(metric_names(&dashboard))
        .collect();
    assert!(named.len() >= 10, "{named:?}");

    let sim = Sim::start(&[]).await;
    let fleet = Fleet::start(&sim, "", &AGENTS[..1]).await;
    fleet
        .wait("steady", |v| v["agents"][0]["phase"] == "steady")
        .await;
    // Families with labels show once they have a sample: a dialog, a reconnect.
    sim.offer(serde_json::json!({})).await;
    sim.prosody("A", "kill").await;
    sim.prosody("A", "start").await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, s) = fleet
            .get(&format!("/v1/agents/{}/state", AGENTS[0].0))
            .await;
        if s["phase"] == "steady" && s["counters"]["reconnects"].as_u64() >= Some(1) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no reconnect: {s}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let metrics = fleet
        .http
        .get(format!("{}/metrics", fleet.api))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exported: BTreeSet<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    // The cluster's families are exported only in cluster mode: tests/cluster.rs checks them.
    for name in named
        .iter()
        .filter(|n| !n.starts_with("finesse_taskd_cluster_"))
    {
        assert!(
            exported.contains(family(name)),
            "{name} is named in contrib/ but not exported; exported: {exported:?}"
        );
    }
}
