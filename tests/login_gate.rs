//! The login gate: when Finesse starts refusing the password in the middle of a session (an
//! expiry, an admin reset) while XMPP stays up, nothing carrying the old password goes out
//! faster than `auth_retry` allows (not even across a restart), API actions are answered at
//! once without being sent, and the simulator's lockout (5 bad passwords in the window) never
//! triggers.

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::daemon::{Daemon, DaemonConfig};
use support::{AGENT, Sim, dialog_ids};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_password_changed_mid_session_never_locks_the_account_and_actions_are_not_sent() {
    let sim = Sim::start(&[]).await;
    // The site's policy as the daemon is told it: 5 bad passwords in 4 s lock for a minute.
    sim.behaviour(json!({
        "lockout_attempts": 5,
        "lockout_window_ms": 4000,
        "lockout_duration_ms": 60000,
    }))
    .await;
    let d = Daemon::start_steady(
        &sim,
        DaemonConfig {
            resync_every: "500ms",
            auth_retry: "1s",
            ..Default::default()
        },
    )
    .await;
    let id = sim.offer(json!({})).await;
    d.wait_state(LIMIT, "dialog held", |s| dialog_ids(s).contains(&id))
        .await;
    sim.admin(
        Method::PUT,
        &format!("/admin/agents/{AGENT}/password"),
        Some(json!({ "password": "rotated-by-an-admin" })),
    )
    .await;
    let started = Instant::now();
    let mut answers: Vec<u16> = Vec::new();
    while started.elapsed() < Duration::from_secs(8) {
        let r = d
            .http()
            .post(format!("{}/v1/dialogs/{id}/actions", d.api))
            .json(&json!({ "action": "ACCEPT" }))
            .send()
            .await
            .unwrap();
        answers.push(r.status().as_u16());
        assert_eq!(sim.truth().await["lockouts"], 0, "the account was locked");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let requests = sim.requests().await;
    let refused: Vec<&Value> = requests.iter().filter(|r| r["status"] == 401).collect();
    let dialog_puts = requests
        .iter()
        .filter(|r| {
            r["method"] == "PUT"
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/finesse/api/Dialog/"))
        })
        .count();
    println!(
        "{} answers {:?}; {} REST 401s in 8 s; {dialog_puts} dialog PUTs",
        answers.len(),
        answers,
        refused.len()
    );
    assert!(
        refused.len() <= 8 + 2,
        "at most one refused request per auth_retry (1 s): {}",
        refused.len()
    );
    assert!(
        dialog_puts <= 1,
        "actions are answered unsent once the gate is closed"
    );
    let held = answers.iter().filter(|s| **s == 503).count();
    assert!(
        held >= answers.len() - 2,
        "answered 503 auth_failed: {answers:?}"
    );
    let s = d.state().await;
    assert_eq!(s["phase"], "auth_failed", "{s}");
    // The password is fixed at Finesse: the next try after the hold goes through.
    sim.admin(
        Method::PUT,
        &format!("/admin/agents/{AGENT}/password"),
        Some(json!({ "password": support::PASSWORD })),
    )
    .await;
    d.wait_steady(LIMIT).await;
    assert_eq!(sim.truth().await["lockouts"], 0);
}

#[tokio::test]
async fn a_restart_inside_an_auth_hold_waits_it_out_unless_the_password_changed() {
    let sim = Sim::start(&[]).await;
    let state = tempfile::tempdir().unwrap();
    let env = vec![(
        "STATE_DIRECTORY".to_owned(),
        state.path().display().to_string(),
    )];
    let wrong = || DaemonConfig {
        password: "not-the-password".into(),
        auth_retry: "1h",
        env: env.clone(),
        ..Default::default()
    };
    let first = Daemon::start(&sim, wrong()).await;
    first
        .wait_state(LIMIT, "auth_failed", |s| s["phase"] == "auth_failed")
        .await;
    // The refusal came from XMPP's SASL (the first login step after SystemInfo).
    let sent = sim.requests().await.len();
    let hold = state.path().join("auth-held-until");
    assert!(hold.exists(), "the hold is recorded in the state directory");
    let text = std::fs::read_to_string(&hold).unwrap();
    assert!(
        !text.contains("not-the-password"),
        "no password on disk: {text}"
    );
    drop(first);

    // `systemctl restart` with the same wrong password: the hold is not restarted from zero.
    let second = Daemon::start(&sim, wrong()).await;
    second
        .wait_state(LIMIT, "auth_failed", |s| s["phase"] == "auth_failed")
        .await;
    // An absence: watch for a few retry windows. Every login starts with a SystemInfo GET
    // before XMPP and REST, so no request at all means no password went out either way.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = sim.requests().await;
    assert_eq!(
        after.len(),
        sent,
        "the restarted daemon began a login inside the hold: {after:?}"
    );
    second
        .wait_log("an earlier run's password refusal is still being waited out")
        .await;
    drop(second);

    // The operator fixes the password and restarts: it starts at once and forgets the hold.
    let third = Daemon::start(
        &sim,
        DaemonConfig {
            auth_retry: "1h",
            env: env.clone(),
            ..Default::default()
        },
    )
    .await;
    third.wait_steady(LIMIT).await;
    assert!(!hold.exists(), "a working password clears the record");
    assert_eq!(sim.truth().await["lockouts"], 0);
}
