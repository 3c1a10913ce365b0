//! Fleet mode keeps each agent's safety promises on the one listener and the one process: a
//! password changed for one agent holds only that agent (its refusals one per `auth_retry`
//! across SIGHUPs and restarts of the whole fleet, the simulator's lockout never triggered,
//! the others steady), and a web page can drive no agent through `/v1/agents/{id}/…` while
//! the task application drives every action there.

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::fleet::{AGENTS, Fleet};
use support::{AGENT, Sim};

/// The agent whose password an admin changes.
const CHANGED: &str = "1001002";

fn phase_of<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == id))
        .map_or(&Value::Null, |a| &a["phase"])
}

async fn truth_of(sim: &Sim, id: &str) -> Value {
    sim.admin(Method::GET, &format!("/admin/truth/{id}"), None)
        .await
}

#[tokio::test]
async fn one_agents_changed_password_holds_only_that_agent_and_never_locks_it() {
    let sim = Sim::start(&[]).await;
    sim.test_lockout_policy().await;
    let mut fleet = Fleet::start(&sim, "", &AGENTS).await;
    let ids: Vec<&str> = AGENTS.iter().map(|(id, _)| *id).collect();
    fleet
        .wait("three steady", |v| {
            ids.iter().all(|id| phase_of(v, id) == "steady")
        })
        .await;
    sim.set_password(CHANGED, "rotated-by-an-admin").await;
    // Every agent logs in again: only the changed one is refused.
    sim.prosody("A", "kill").await;
    sim.prosody("A", "start").await;
    let started = Instant::now();
    let mut moves = 0;
    while started.elapsed() < Duration::from_secs(12) {
        let at = started.elapsed().as_millis() / 2000;
        if at > moves {
            moves = at;
            if moves % 3 == 0 {
                fleet.restart().await;
            } else {
                fleet.hup();
            }
        }
        assert_eq!(truth_of(&sim, CHANGED).await["lockouts"], 0, "locked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = fleet
        .wait("the others steady, the changed one held", |v| {
            phase_of(v, CHANGED) == "auth_failed"
                && ids
                    .iter()
                    .filter(|id| **id != CHANGED)
                    .all(|id| phase_of(v, id) == "steady")
        })
        .await;
    let truth = truth_of(&sim, CHANGED).await;
    let times = support::refusals_at(&truth);
    println!("{moves} moves; {CHANGED} refused at {times:?} ms; {v}");
    assert!(!times.is_empty(), "the changed password was refused");
    // One per auth_retry (2 s, less the simulator's lateness reading the server's log).
    support::assert_one_refusal_per(&times, 1900);
    for id in ids.iter().filter(|id| **id != CHANGED) {
        let t = truth_of(&sim, id).await;
        assert_eq!(t["refusalsAtMs"], json!([]), "{id} was never refused: {t}");
    }
    // Each agent's readiness on its own.
    let (status, ready) = fleet.get(&format!("/v1/agents/{CHANGED}/readyz")).await;
    assert_eq!((status, &ready["phase"]), (503, &json!("auth_failed")));
    assert_eq!(
        fleet.get(&format!("/v1/agents/{AGENT}/readyz")).await.0,
        200
    );
    // It says when it tries again (between tries; not while one is under way).
    let deadline = Instant::now() + support::fleet::LIMIT;
    loop {
        let (_, state) = fleet.get(&format!("/v1/agents/{CHANGED}/state")).await;
        if state["phase"] == "auth_failed" && state["nextAttemptAt"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "no nextAttemptAt: {state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The operator writes the new password into the agent's file and reloads: the gate opens
    // at once for that agent.
    std::fs::write(
        fleet.dir.path().join(format!("{CHANGED}.password")),
        "rotated-by-an-admin\n",
    )
    .unwrap();
    fleet.hup();
    fleet
        .wait("all three steady", |v| {
            ids.iter().all(|id| phase_of(v, id) == "steady")
        })
        .await;
    assert_eq!(truth_of(&sim, CHANGED).await["lockouts"], 0);
}

#[tokio::test]
async fn a_web_page_can_drive_no_agent_of_a_fleet() {
    let sim = Sim::start(&[]).await;
    let fleet = Fleet::start(&sim, "", &AGENTS[..1]).await;
    fleet
        .wait("steady", |v| phase_of(v, AGENT) == "steady")
        .await;
    let id = sim.offer(json!({})).await;
    let held = |v: &Value| {
        v["dialogs"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["id"] == id))
    };
    let deadline = Instant::now() + support::fleet::LIMIT;
    while !held(&fleet.get(&format!("/v1/agents/{AGENT}/state")).await.1) {
        assert!(Instant::now() < deadline, "dialog {id} never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("{}/v1/agents/{AGENT}/dialogs/{id}/actions", fleet.api);
    let post = |content_type: &'static str, origin: Option<&'static str>| {
        let mut req = fleet
            .http
            .post(&url)
            .header("content-type", content_type)
            .body(r#"{"action":"ACCEPT"}"#);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    assert_eq!(post("text/plain", None).await.unwrap().status(), 415);
    let foreign = post("application/json", Some("http://evil.example"));
    assert_eq!(foreign.await.unwrap().status(), 403);
    // DNS rebinding: the fleet's own paths and each agent's are refused for a foreign Host.
    for path in [
        "/v1/agents",
        &format!("/v1/agents/{AGENT}/state"),
        "/metrics",
    ] {
        let r = fleet
            .http
            .get(format!("{}{path}", fleet.api))
            .header("host", "evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 421, "{path}");
    }
    assert_eq!(sim.dialog_puts().await, 0, "nothing reached Finesse");
    // The task application itself still drives it.
    let r = post("application/json", None).await.unwrap();
    let status = r.status();
    assert_eq!(status, 202, "{}", r.text().await.unwrap_or_default());
    assert_eq!(sim.dialog_puts().await, 1);
    // And every path with parameters of its own reaches the agent's handler.
    let r = fleet
        .http
        .put(format!("{}/v1/agents/{AGENT}/media/5002/state", fleet.api))
        .json(&json!({ "state": "NOT_READY", "reasonCodeId": 12 }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(status.is_success(), "{status}: {}", r.text().await.unwrap());
    let deadline = Instant::now() + support::fleet::LIMIT;
    loop {
        let (_, state) = fleet.get(&format!("/v1/agents/{AGENT}/state")).await;
        if state["media"][0]["desiredReasonCodeId"] == 12 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the break never applied: {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
