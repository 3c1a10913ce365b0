//! The desired READY/NOT_READY an integrator sets through the API: only a state change
//! Finesse accepted becomes the state the daemon restores after a sign-in.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use support::daemon::{Daemon, DaemonConfig};
use support::{AGENT, MRD, Sim};

const LIMIT: Duration = Duration::from_secs(30);

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
    sim.admin(
        Method::POST,
        &format!("/admin/agents/{AGENT}/forced-logout"),
        None,
    )
    .await;
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
