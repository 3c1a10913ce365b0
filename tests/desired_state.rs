//! The desired READY/NOT_READY an integrator sets through the API: only a state change
//! Finesse accepted becomes the state the daemon restores after a sign-in.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::daemon::{Daemon, DaemonConfig};
use support::{MRD, Sim};

const LIMIT: Duration = Duration::from_secs(30);

/// A daemon whose state directory is `state` (as systemd's `StateDirectory=` gives it).
fn with_state_dir(state: &tempfile::TempDir) -> DaemonConfig {
    DaemonConfig {
        env: vec![(
            "STATE_DIRECTORY".to_owned(),
            state.path().display().to_string(),
        )],
        ..Default::default()
    }
}

#[tokio::test]
async fn a_state_change_finesse_refused_does_not_become_the_desired_state() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    assert_eq!(sim.media_truth().await["base"], "READY");
    sim.faults("A", json!({ "http_500": true })).await;
    let r = d
        .http()
        .put(format!("{}/v1/media/{MRD}/state", d.api))
        .json(&json!({ "state": "NOT_READY", "reasonCodeId": 7 }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_server_error(), "refused: {}", r.status());
    assert_eq!(sim.media_truth().await["base"], "READY");
    sim.faults("A", json!({ "http_500": false })).await;
    d.wait_steady(LIMIT).await;
    // A forced logout makes the daemon sign in again and restore what it believes is wanted.
    sim.forced_logout().await;
    sim.eventually(LIMIT, "signed in again as READY", || async {
        let m = sim.media_truth().await;
        m["loginNode"] == "A" && m["base"] == "READY"
    })
    .await;
    d.wait_steady(LIMIT).await;
    let m = sim.media_truth().await;
    assert_eq!(
        m["base"], "READY",
        "the refused NOT_READY was restored: {m}"
    );
}

/// A state change Finesse answered 202 and then refused asynchronously (by its `requestId`),
/// and one answered with a redirect, are both errors to the caller and neither becomes the
/// state restored after the next forced logout.
#[tokio::test]
async fn a_state_change_refused_later_or_redirected_does_not_become_the_desired_state() {
    let sim = Sim::start(&[]).await;
    let state = tempfile::tempdir().unwrap();
    let d = Daemon::start_steady(&sim, with_state_dir(&state)).await;
    let put = |body: Value| {
        let (http, url) = (d.http(), format!("{}/v1/media/{MRD}/state", d.api));
        async move { http.put(url).json(&body).send().await.unwrap() }
    };
    for patch in [
        json!({ "arm_errors": "async", "refuse_state_changes": { "constant": "E_ARM_STAT_AGENT_STATE_INVALID", "code": 28 } }),
        json!({ "refuse_state_changes": null, "redirect_state_changes": true }),
    ] {
        sim.admin(
            reqwest::Method::PUT,
            "/admin/behaviour",
            Some(patch.clone()),
        )
        .await;
        let r = put(json!({ "state": "NOT_READY", "reasonCodeId": 7 })).await;
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert!(
            status.is_client_error() || status.is_server_error(),
            "{patch}: refused, not {status}: {body}"
        );
        assert_eq!(sim.media_truth().await["base"], "READY", "{patch}");
        d.wait_steady(LIMIT).await;
    }
    sim.admin(
        reqwest::Method::PUT,
        "/admin/behaviour",
        Some(json!({ "redirect_state_changes": false })),
    )
    .await;
    let s = d.state().await;
    assert_eq!(s["media"][0]["desiredState"], "READY", "{s}");
    // The next sign-in restores READY, not the refused NOT_READY.
    sim.forced_logout().await;
    sim.eventually(LIMIT, "signed in again", || async {
        sim.media_truth().await["loginNode"] == "A"
    })
    .await;
    d.wait_steady(LIMIT).await;
    let m = sim.media_truth().await;
    assert_eq!(m["base"], "READY", "a refused NOT_READY was restored: {m}");
    // An accepted change still becomes desired (after outcome_wait without a refusal).
    let r = put(json!({ "state": "NOT_READY", "reasonCodeId": 7 })).await;
    assert!(r.status().is_success(), "{}", r.status());
    let s = d
        .wait_state(LIMIT, "NOT_READY desired", |s| {
            s["media"][0]["desiredState"] == "NOT_READY"
        })
        .await;
    assert_eq!(s["media"][0]["desiredReasonCodeId"], 7, "{s}");
}

/// SIGHUP and waits until the daemon says it reloaded.
async fn reload(d: &Daemon) {
    let before = d.log_count("configuration reloaded");
    d.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = tokio::time::Instant::now() + LIMIT;
    while d.log_count("configuration reloaded") == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reload: {}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Forces a logout and waits until the daemon signed the agent in again on A with a Media
/// truth that `back` accepts.
async fn forced_logout_until(sim: &Sim, d: &Daemon, what: &str, back: impl Fn(&Value) -> bool) {
    sim.forced_logout().await;
    sim.eventually(LIMIT, what, || async {
        let m = sim.media_truth().await;
        m["loginNode"] == "A" && back(&m)
    })
    .await;
    d.wait_steady(LIMIT).await;
}

/// Forces a logout and waits until the daemon signed the agent in again as `base`/`reason`.
async fn forced_logout_comes_back_as(sim: &Sim, d: &Daemon, base: &str, reason: Value) {
    let what = format!("signed in again as {base}/{reason}");
    forced_logout_until(sim, d, &what, |m| {
        m["base"] == base && m["reasonCodeId"] == reason
    })
    .await;
}

#[tokio::test]
async fn a_break_set_through_the_api_survives_sighup_and_restart_until_the_file_changes() {
    let sim = Sim::start(&[]).await;
    let state = tempfile::tempdir().unwrap();
    let cfg = || with_state_dir(&state);
    let d = Daemon::start_steady(&sim, cfg()).await;
    let r = d
        .http()
        .put(format!("{}/v1/media/{MRD}/state", d.api))
        .json(&json!({ "state": "NOT_READY", "reasonCodeId": 12 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // A SIGHUP with the file unchanged keeps the break.
    reload(&d).await;
    forced_logout_comes_back_as(&sim, &d, "NOT_READY", json!(12)).await;
    // So does a restart (an upgrade).
    drop(d);
    let d = Daemon::start_steady(&sim, cfg()).await;
    assert_eq!(sim.media_truth().await["base"], "NOT_READY");
    forced_logout_comes_back_as(&sim, &d, "NOT_READY", json!(12)).await;
    // The operator changes the file's state: the file wins.
    let path = d.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let changed = text.replacen(
        "state = \"READY\"",
        "state = \"NOT_READY\"\nreason_code_id = 3",
        1,
    );
    assert_ne!(text, changed, "the media table has a state line");
    std::fs::write(&path, changed).unwrap();
    reload(&d).await;
    forced_logout_comes_back_as(&sim, &d, "NOT_READY", json!(3)).await;
}

/// Forces a logout and waits until the agent is signed in again with `routable`.
async fn forced_logout_comes_back_routable(sim: &Sim, d: &Daemon, routable: bool) {
    let what = format!("signed in again with routable {routable}");
    forced_logout_until(sim, d, &what, |m| m["routable"] == routable).await;
}

#[tokio::test]
async fn not_routable_set_through_the_api_survives_sighup_restart_and_a_new_sign_in() {
    let sim = Sim::start(&[]).await;
    let state = tempfile::tempdir().unwrap();
    let cfg = || with_state_dir(&state);
    let d = Daemon::start_steady(&sim, cfg()).await;
    let put = |d: &Daemon, routable: bool| {
        d.http()
            .put(format!("{}/v1/media/{MRD}/routable", d.api))
            .json(&json!({ "routable": routable }))
            .send()
    };
    assert_eq!(put(&d, false).await.unwrap().status(), 202);
    assert_eq!(sim.media_truth().await["routable"], false);
    // A sign-in lands routable; the daemon puts the API's choice back, after a SIGHUP too.
    reload(&d).await;
    forced_logout_comes_back_routable(&sim, &d, false).await;
    // And after a restart (an upgrade), which leaves the live session as it is.
    drop(d);
    let d = Daemon::start_steady(&sim, cfg()).await;
    assert_eq!(sim.media_truth().await["routable"], false);
    forced_logout_comes_back_routable(&sim, &d, false).await;
    // Routable again through the API: a new sign-in stays routable.
    assert_eq!(put(&d, true).await.unwrap().status(), 202);
    forced_logout_comes_back_routable(&sim, &d, true).await;
    let recorded = std::fs::read_to_string(state.path().join("unroutable")).unwrap();
    assert_eq!(recorded, "", "nothing left to restore");
}

/// A record the state directory cannot take (here the desired state's name is held by a
/// directory, which a rename cannot replace) is logged, counted and shown in `/v1/state`,
/// since a restart would forget it; the next write that succeeds clears the mark.
#[tokio::test]
async fn a_failed_write_to_the_state_directory_is_counted_and_shown_until_one_succeeds() {
    let sim = Sim::start(&[]).await;
    let state = tempfile::tempdir().unwrap();
    let d = Daemon::start_steady(&sim, with_state_dir(&state)).await;
    let s = d.state().await;
    assert_eq!(s["stateWriteFailures"], json!([]), "{s}");
    let blocker = state.path().join("desired-state");
    let _ = std::fs::remove_file(&blocker);
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("keep"), "").unwrap();
    let put = |state: &'static str| {
        let (http, url) = (d.http(), format!("{}/v1/media/{MRD}/state", d.api));
        async move {
            let body = json!({ "state": state, "reasonCodeId": 7 });
            http.put(url).json(&body).send().await.unwrap()
        }
    };
    assert!(put("NOT_READY").await.status().is_success());
    let s = d
        .wait_state(LIMIT, "a failed write shown", |s| {
            s["stateWriteFailures"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        })
        .await;
    let failure = &s["stateWriteFailures"][0];
    assert_eq!(failure["record"], "desired-state", "{s}");
    assert!(
        failure["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{s}"
    );
    let m = d.metrics().await;
    assert_eq!(
        support::metric(
            &m,
            "finesse_taskd_state_writes_failed_total{record=\"desired-state\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        support::metric(
            &m,
            "finesse_taskd_state_write_failing{record=\"desired-state\"}"
        ),
        Some(1.0)
    );
    assert!(d.log().contains("cannot write to the state directory"));
    // The directory takes the record again: the next change is written and the mark cleared.
    std::fs::remove_dir_all(&blocker).unwrap();
    assert!(put("READY").await.status().is_success());
    d.wait_state(LIMIT, "the mark cleared", |s| {
        s["stateWriteFailures"] == json!([])
    })
    .await;
    let m = d.metrics().await;
    assert_eq!(
        support::metric(
            &m,
            "finesse_taskd_state_write_failing{record=\"desired-state\"}"
        ),
        Some(0.0)
    );
    assert!(blocker.is_file(), "the desired state was written");
}
