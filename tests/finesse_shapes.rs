//! The daemon against the simulator speaking Cisco's published shapes (its default): Media
//! notifications without `interruptAction`, a non-interruptible MRD that reports IGNORE,
//! lower-case events, changed dialogs as `<dialog><Dialog>`, `notification` in
//! `urn:xmpp:push:0`, MRDs the agent has no skill group in, and sign-ins Finesse refuses.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::daemon::{Daemon, DaemonConfig};
use support::{AGENT, Sim};

const LIMIT: Duration = Duration::from_secs(30);

/// `[[media]]` for 5002 (interruptible) and 5003 (not interruptible), both asking ACCEPT.
fn both_mrds() -> String {
    [5002, 5003]
        .iter()
        .map(|id| format!("[[media]]\nid = {id}\nmax_dialog_limit = 2\ninterrupt_action = \"ACCEPT\"\nstate = \"READY\"\n"))
        .collect()
}

fn media_of(state: &Value, mrd: u64) -> Value {
    state["media"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == mrd)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Sign-in PUTs for one MRD.
async fn signins_for(sim: &Sim, mrd: u32) -> usize {
    let path = format!("/finesse/api/User/{AGENT}/Media/{mrd}");
    sim.login_puts(None)
        .await
        .iter()
        .filter(|r| r["path"] == path.as_str())
        .count()
}

#[tokio::test]
async fn with_ciscos_shapes_a_run_of_agent_state_changes_causes_no_corrective_sign_in() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(
        &sim,
        DaemonConfig {
            media: both_mrds(),
            ..Default::default()
        },
    )
    .await;
    let s = d.state().await;
    assert_eq!(
        media_of(&s, 5003)["interruptAction"],
        "IGNORE",
        "the sim reports IGNORE for the non-interruptible MRD"
    );
    assert_eq!(media_of(&s, 5003)["drift"], false, "{s}");
    assert_eq!(s["counters"]["signins"], 2);
    // The agent goes on breaks and back, in both MRDs: each change is a Media notification
    // without interruptAction.
    for round in 0..3 {
        for mrd in [5002, 5003] {
            for body in [
                json!({ "state": "NOT_READY", "reasonCodeId": 12 }),
                json!({ "state": "READY" }),
            ] {
                let r = d
                    .http()
                    .put(format!("{}/v1/media/{mrd}/state", d.api))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert!(
                    r.status().is_success(),
                    "round {round}, {mrd}: {}",
                    r.status()
                );
            }
        }
    }
    // Let the notifications arrive and anything they would trigger run.
    d.wait_state(LIMIT, "READY in both", |s| {
        media_of(s, 5002)["state"] == "READY" && media_of(s, 5003)["state"] == "READY"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = d.wait_steady(LIMIT).await;
    assert_eq!(s["counters"]["drift_corrections"], 0, "{s}");
    assert_eq!(s["counters"]["signins"], 2, "{s}");
    assert_eq!(signins_for(&sim, 5002).await, 1);
    assert_eq!(signins_for(&sim, 5003).await, 1);
    assert_eq!(
        d.log_count("resync requested by a notification"),
        0,
        "no resync from state changes"
    );
}

#[tokio::test]
async fn an_unassigned_mrd_is_never_signed_in_and_the_others_work() {
    let dir = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(support::sim_config())
        .unwrap()
        .replace("mrds = [5002, 5003]", "mrds = [5002]");
    let path = dir.path().join("sim.toml");
    std::fs::write(&path, config).unwrap();
    let sim = Sim::start_with(path, &["--spawn-prosody"]).await;
    let d = Daemon::start_steady(
        &sim,
        DaemonConfig {
            media: both_mrds(),
            resync_every: "400ms",
            ..Default::default()
        },
    )
    .await;
    d.wait_state(LIMIT, "three resyncs", |s| {
        s["counters"]["resyncs"].as_u64() >= Some(3)
    })
    .await;
    let s = d.wait_steady(LIMIT).await;
    assert_eq!(media_of(&s, 5003)["eligible"], false, "{s}");
    assert_eq!(media_of(&s, 5002)["eligible"], true);
    assert_eq!(media_of(&s, 5002)["state"], "READY");
    assert_eq!(signins_for(&sim, 5003).await, 0, "never signed in");
    assert_eq!(signins_for(&sim, 5002).await, 1);
    assert!(d.ready().await);
    let m = d.metrics().await;
    assert_eq!(
        support::metric(&m, "finesse_taskd_media_eligible{media=\"5003\"}"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        support::metric(&m, "finesse_taskd_media_eligible{media=\"5002\"}"),
        Some(1.0)
    );
    d.wait_log("no skill group").await;
    assert_eq!(
        d.log()
            .lines()
            .filter(|l| l.contains("no skill group"))
            .count(),
        1,
        "one warning, not one per resync"
    );
}

async fn a_refused_sign_in_shows_in_readyz(form: &str) {
    let sim = Sim::start(&[]).await;
    sim.behaviour(json!({
        "arm_errors": form,
        "refuse_signin": { "mrd": 5003, "constant": "E_ARM_STAT_CC_OFFLINE", "code": 36 },
    }))
    .await;
    let d = Daemon::start(
        &sim,
        DaemonConfig {
            media: both_mrds(),
            ..Default::default()
        },
    )
    .await;
    let s = d
        .wait_state(LIMIT, "the refusal in the state", |s| {
            media_of(s, 5003)["signin"]["failed"] == "E_ARM_STAT_CC_OFFLINE"
        })
        .await;
    assert!(media_of(&s, 5003)["signin"]["at"].is_string(), "{s}");
    d.wait_steady(LIMIT).await;
    let r = d
        .http()
        .get(format!("{}/readyz", d.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["cause"], "signin_failed", "{body}");
    let m = d.metrics().await;
    assert_eq!(
        support::metric(&m, "finesse_taskd_signin_refused{media=\"5003\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(media_of(&d.state().await, 5002)["state"], "READY");
    // Retried on the backoff (200 ms .. 1 s in the tests), not in a loop.
    let before = signins_for(&sim, 5003).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let retries = signins_for(&sim, 5003).await - before;
    assert!(
        (1..=8).contains(&retries),
        "{retries} retries in 3 s with a 1 s cap"
    );
    // CCE comes back: the next retry signs in and readiness returns.
    sim.behaviour(json!({ "refuse_signin": null })).await;
    d.wait_state(LIMIT, "signed in", |s| {
        media_of(s, 5003)["signin"].is_null() && media_of(s, 5003)["state"] == "READY"
    })
    .await;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !d.ready().await {
        assert!(tokio::time::Instant::now() < deadline, "ready again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_sign_in_refused_asynchronously_shows_in_readyz_and_is_retried_on_the_backoff() {
    a_refused_sign_in_shows_in_readyz("async").await;
}

#[tokio::test]
async fn a_sign_in_refused_with_a_400_shows_in_readyz_and_is_retried_on_the_backoff() {
    a_refused_sign_in_shows_in_readyz("sync").await;
}

#[tokio::test]
async fn the_old_shapes_still_work_when_the_simulator_is_switched_to_them() {
    let sim = Sim::start(&[]).await;
    sim.behaviour(json!({
        "media_notification_interrupt_action": true,
        "non_interruptible_reports_ignore": false,
        "lowercase_events": false,
        "changed_dialog_wrapper": false,
        "push_namespace": false,
    }))
    .await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    let id = sim.offer(json!({})).await;
    d.wait_state(LIMIT, "dialog held", |s| {
        support::dialog_ids(s).contains(&id)
    })
    .await;
    sim.admin(
        Method::POST,
        &format!("/admin/dialogs/{id}/action"),
        Some(json!({ "action": "ACCEPT" })),
    )
    .await;
    d.wait_dialog_in(&id, "ACCEPTED").await;
}

#[tokio::test]
async fn a_changed_dialog_in_ciscos_wrapper_form_reaches_the_state() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    let id = sim.offer(json!({})).await;
    d.wait_state(LIMIT, "dialog held", |s| {
        support::dialog_ids(s).contains(&id)
    })
    .await;
    sim.admin(
        Method::POST,
        &format!("/admin/dialogs/{id}/action"),
        Some(json!({ "action": "ACCEPT" })),
    )
    .await;
    let s = d.wait_dialog_in(&id, "ACCEPTED").await;
    assert_eq!(s["counters"]["malformed"], 0);
}

#[tokio::test]
async fn maintenance_mode_moves_the_agent_within_seconds_and_sends_the_marker_once_per_mrd() {
    let sim = Sim::start(&[]).await;
    // failover_after is a minute: only maintenance mode may move the agent this soon.
    let d = Daemon::start_steady(
        &sim,
        DaemonConfig {
            media: both_mrds(),
            failover_after: "60s",
            ..Default::default()
        },
    )
    .await;
    let b = sim.node("B").rest.trim_end_matches('/').to_owned();
    let started = tokio::time::Instant::now();
    sim.faults("A", json!({ "maintenance": true })).await;
    let s = d
        .wait_state(Duration::from_secs(10), "steady on B", |s| {
            s["phase"] == "steady" && s["node"] == b.as_str()
        })
        .await;
    println!("moved to B in {:?}", started.elapsed());
    assert_eq!(s["counters"]["failovers"], 1);
    assert_eq!(sim.media_truth().await["loginNode"], "B");
    let markers: Vec<Value> = sim
        .requests()
        .await
        .into_iter()
        .filter(|r| {
            r["node"] == "B"
                && r["method"] == "PUT"
                && r["body"]
                    .as_str()
                    .unwrap_or("")
                    .contains("<reasonCodeId>50045</reasonCodeId>")
        })
        .collect();
    let paths: Vec<&str> = markers.iter().filter_map(|r| r["path"].as_str()).collect();
    assert_eq!(
        paths,
        vec![
            format!("/finesse/api/User/{AGENT}/Media/5002"),
            format!("/finesse/api/User/{AGENT}/Media/5003"),
        ],
        "one marker per signed-in MRD"
    );
    // The marker does not change the agent's state, and the daemon does not fight it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = d.wait_steady(LIMIT).await;
    assert_eq!(media_of(&s, 5002)["state"], "READY", "{s}");
    assert_eq!(sim.login_puts(Some("B")).await.len(), 2);
}

/// Posts a dialog action through the local API; returns the status and the body.
async fn act(d: &Daemon, id: &str, body: Value) -> (u16, Value) {
    let r = d.post_action(id, &body).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// An offered dialog, accepted and held by the daemon as ACCEPTED.
async fn accepted_dialog(sim: &Sim, d: &Daemon) -> String {
    let id = sim.offer(json!({})).await;
    d.wait_state(LIMIT, "offered", |s| support::dialog_ids(s).contains(&id))
        .await;
    let (status, body) = act(d, &id, json!({ "action": "ACCEPT" })).await;
    assert_eq!(status, 202, "{body}");
    d.wait_dialog_in(&id, "ACCEPTED").await;
    id
}

#[tokio::test]
async fn a_transfer_carries_its_target_in_the_configured_element_and_the_actions_finesse_allows_are_shown()
 {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(
        &sim,
        DaemonConfig {
            extra_toml: String::new(),
            ..Default::default()
        },
    )
    .await;
    let id = accepted_dialog(&sim, &d).await;
    let s = d.state().await;
    let held = s["dialogs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        held["actions"],
        json!(["START", "CLOSE", "TRANSFER"]),
        "Finesse's <actions> list is in the state: {held}"
    );
    let (status, body) = act(
        &d,
        &id,
        json!({ "action": "TRANSFER", "target": "Chat_Overflow_SS" }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let put = sim
        .requests()
        .await
        .into_iter()
        .rev()
        .find(|r| r["method"] == "PUT" && r["path"] == format!("/finesse/api/Dialog/{id}").as_str())
        .unwrap();
    let sent = put["body"].as_str().unwrap();
    assert!(
        sent.contains("<toAddress>Chat_Overflow_SS</toAddress>"),
        "{sent}"
    );
    assert!(
        sent.contains(&format!("<targetMediaAddress>{AGENT}</targetMediaAddress>")),
        "{sent}"
    );
}

#[tokio::test]
async fn an_action_finesse_refuses_asynchronously_is_answered_502_with_its_constant() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    let id = accepted_dialog(&sim, &d).await;
    sim.behaviour(json!({
        "refuse_dialog_actions": { "constant": "E_ARM_STAT_DO_THIS_WITH_TASK_SENT_RECENTLY", "code": 14 },
    }))
    .await;
    let (status, body) = act(&d, &id, json!({ "action": "START" })).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("E_ARM_STAT_DO_THIS_WITH_TASK_SENT_RECENTLY"),
        "{body}"
    );
    // Without a refusal the answer is 202 once `outcome_wait` has passed.
    sim.behaviour(json!({ "refuse_dialog_actions": null }))
        .await;
    let (status, body) = act(&d, &id, json!({ "action": "START" })).await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn media_notifications_on_the_per_mrd_node_are_routed_by_their_source() {
    let sim = Sim::start(&[]).await;
    sim.behaviour(json!({ "media_per_mrd_node": true })).await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    let resyncs = d.state().await["counters"]["resyncs"].clone();
    // The agent's state changes outside the daemon (another desktop): only the notification
    // on /finesse/api/User/{id}/Media/5002 can tell the daemon.
    let (status, _) = sim
        .put_media(
            "A",
            "<Media><state>NOT_READY</state><reasonCodeId>7</reasonCodeId></Media>",
        )
        .await;
    assert_eq!(status, 202);
    let s = d
        .wait_state(LIMIT, "NOT_READY seen", |s| {
            media_of(s, 5002)["state"] == "NOT_READY" && media_of(s, 5002)["reasonCodeId"] == 7
        })
        .await;
    assert_eq!(
        s["counters"]["resyncs"], resyncs,
        "seen by notification, not by a resync"
    );
}
