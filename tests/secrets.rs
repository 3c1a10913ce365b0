//! Secrets audit: with logging at trace, through a cold start and a failover, the agent's
//! password appears nowhere: not in the log (neither as text nor in the base64 forms of
//! Basic auth or SASL PLAIN), not in `/v1/state`, `/metrics` or `check-config` output; and
//! the same for every SSO access and refresh token.

mod support;

use std::time::Duration;

use base64::Engine as _;
use serde_json::json;
use support::daemon::{Daemon, DaemonConfig};
use support::{AGENT, PASSWORD, Sim};

#[tokio::test]
async fn the_password_appears_in_no_log_state_metrics_or_check_config_output() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start(
        &sim,
        DaemonConfig {
            env: vec![("RUST_LOG".into(), "trace".into())],
            ..Default::default()
        },
    )
    .await;
    d.wait_steady(Duration::from_secs(30)).await;
    sim.faults("A", json!({ "rest": "refused" })).await;
    sim.prosody("A", "kill").await;
    d.wait_state(Duration::from_secs(30), "steady on B", |s| {
        s["phase"] == "steady" && s["node"] == sim.node("B").rest.as_str()
    })
    .await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let forms = [
        PASSWORD.to_owned(),
        b64.encode(format!("{AGENT}:{PASSWORD}")),
        b64.encode(format!("\0{AGENT}\0{PASSWORD}")),
        b64.encode(PASSWORD),
    ];
    let log = d.log();
    assert!(
        log.lines().count() > 50 && log.contains("TRACE"),
        "trace logging is on ({} lines)",
        log.lines().count()
    );
    let state = d.state().await.to_string();
    let metrics = d.metrics().await;
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_finesse-taskd"))
        .args(["check-config", d.config_path().to_str().unwrap()])
        .output()
        .unwrap();
    let check = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(check.contains("<redacted>"), "{check}");
    for (what, text) in [
        ("log", &log),
        ("state", &state),
        ("metrics", &metrics),
        ("check-config", &check),
    ] {
        for form in &forms {
            assert!(
                !text.contains(form.as_str()),
                "the password (as {form:?}) leaked into the {what}"
            );
        }
    }
}

#[tokio::test]
async fn a_specific_trace_directive_for_the_xmpp_stream_does_not_dump_the_sasl_plain_credentials() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start(
        &sim,
        DaemonConfig {
            // PLAIN carries the password itself, base64-encoded, in the <auth> element.
            xmpp_extra: "sasl_mechanisms = [\"PLAIN\"]\n".into(),
            env: vec![(
                "RUST_LOG".into(),
                "info,finesse_taskd=trace,tokio_xmpp::xmlstream=trace,tokio_xmpp=trace,xso=trace"
                    .into(),
            )],
            ..Default::default()
        },
    )
    .await;
    d.wait_steady(Duration::from_secs(30)).await;
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{AGENT}\0{PASSWORD}"));
    let log = d.log();
    let targets: std::collections::BTreeSet<String> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["target"].as_str().map(str::to_owned))
        .collect();
    assert!(
        targets
            .iter()
            .any(|t| t.starts_with("finesse_taskd::driver")),
        "the daemon logged: {targets:?}"
    );
    assert!(!log.contains(&plain), "the SASL PLAIN credentials leaked");
    assert!(!log.contains(PASSWORD));
}

/// The same audit for SSO: with trace logging (the XMPP stream included), through refreshes
/// and a failover, no access or refresh token the IdS issued appears in the log (as text,
/// as `Bearer` header, or in the base64 of SASL PLAIN), the state, the metrics or the
/// printed config.
#[tokio::test]
async fn no_sso_token_appears_in_any_log_state_metrics_or_check_config_output() {
    let sim = Sim::start(&["--sso"]).await;
    sim.behaviour(json!({ "sso_token_lifetime_ms": 4000 }))
        .await;
    let pair = sim.sso_issue().await;
    let state_dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        &sim,
        DaemonConfig {
            sso_tokens: Some(pair.to_string()),
            env: vec![
                (
                    "RUST_LOG".into(),
                    "trace,tokio_xmpp::xmlstream=trace,xso=trace".into(),
                ),
                (
                    "STATE_DIRECTORY".into(),
                    state_dir.path().to_string_lossy().into_owned(),
                ),
            ],
            ..Default::default()
        },
    )
    .await;
    d.wait_steady(Duration::from_secs(30)).await;
    sim.eventually(Duration::from_secs(30), "two refreshes", || async {
        sim.sso_stats().await["stats"]["refreshes"].as_u64() >= Some(2)
    })
    .await;
    sim.faults("A", json!({ "rest": "refused" })).await;
    sim.prosody("A", "kill").await;
    d.wait_state(Duration::from_secs(30), "steady on B", |s| {
        s["phase"] == "steady" && s["node"] == sim.node("B").rest.as_str()
    })
    .await;
    let tokens: Vec<String> = sim.sso_stats().await["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    assert!(tokens.len() >= 4, "{tokens:?}");
    let b64 = base64::engine::general_purpose::STANDARD;
    let log = d.log();
    assert!(log.contains("TRACE"), "trace logging is on");
    let state = d.state().await.to_string();
    let metrics = d.metrics().await;
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_finesse-taskd"))
        .args(["check-config", d.config_path().to_str().unwrap()])
        .output()
        .unwrap();
    let check = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        check.contains("\"auth\": \"sso\"") || check.contains("\"auth\":\"sso\""),
        "{check}"
    );
    for token in &tokens {
        let forms = [
            token.clone(),
            b64.encode(format!("\0{AGENT}\0{token}")),
            b64.encode(token),
        ];
        for (what, text) in [
            ("log", &log),
            ("state", &state),
            ("metrics", &metrics),
            ("check-config", &check),
        ] {
            for form in &forms {
                assert!(
                    !text.contains(form.as_str()),
                    "an SSO token leaked into the {what}"
                );
            }
        }
    }
}
