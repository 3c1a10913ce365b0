//! The orphan-dialog guard against finesse-sim's chat-session service, all real processes:
//! gone sessions are closed after exactly `attempts` probes, unknown answers never close,
//! a session that comes back is spared, only the zombies of a double PG failure are closed,
//! and `report` only reports.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::daemon::{Daemon, DaemonConfig};
use support::{AGENT, MRD, Sim};

const LIMIT: Duration = Duration::from_secs(30);

fn probe_media(sim: &Sim, action: &str, interval: &str) -> String {
    probe_media_with(sim, action, interval, "300ms")
}

fn probe_media_with(sim: &Sim, action: &str, interval: &str, timeout: &str) -> String {
    format!(
        "[[media]]\nid = 5002\nmax_dialog_limit = 5\ninterrupt_action = \"ACCEPT\"\nstate = \"READY\"\n\
         [media.orphan_probe]\nurl = \"{}/sessions/{{callvariable:callVariable1}}\"\nattempts = 3\n\
         gone_header = \"X-Session-State: gone\"\n\
         interval = \"{interval}\"\ntimeout = \"{timeout}\"\naction = \"{action}\"\nmax_in_flight = 2\n",
        sim.info.chat
    )
}

async fn start(sim: &Sim, action: &str, interval: &str, failover_after: &'static str) -> Daemon {
    let d = Daemon::start(
        sim,
        DaemonConfig {
            media: probe_media(sim, action, interval),
            failover_after,
            ..Default::default()
        },
    )
    .await;
    d.wait_steady(LIMIT).await;
    d
}

async fn offer(sim: &Sim, session: &str) -> String {
    sim.offer(json!({ "callVariable1": session })).await
}

async fn closes(sim: &Sim, id: &str) -> usize {
    sim.requests()
        .await
        .iter()
        .filter(|r| {
            r["path"] == format!("/finesse/api/Dialog/{id}").as_str()
                && r["body"]
                    .as_str()
                    .unwrap_or("")
                    .contains("<requestedAction>CLOSE</requestedAction>")
        })
        .count()
}

fn held(s: &Value, id: &str) -> bool {
    s["dialogs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["id"] == id)
}

#[tokio::test]
async fn a_dialog_whose_session_is_gone_is_closed_after_exactly_the_configured_probes() {
    let sim = Sim::start(&[]).await;
    let d = start(&sim, "close", "200ms", "1s").await;
    let id = offer(&sim, "gone-1").await;
    d.wait_state(LIMIT, "dialog held", |s| held(s, &id)).await;
    d.wait_state(LIMIT, "orphan closed", |s| {
        !held(s, &id) && s["phase"] == "steady"
    })
    .await;
    assert_eq!(
        sim.chat_probes("gone-1").await,
        3,
        "exactly `attempts` probes"
    );
    assert_eq!(closes(&sim, &id).await, 1, "one CLOSE");
    assert!(
        sim.media_truth().await["dialogs"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("finesse_taskd_orphans_total{media=\"5002\",action=\"close\"} 1"),
        "{metrics}"
    );
    d.wait_log("orphan dialog").await;
}

#[tokio::test]
async fn a_probe_target_that_hangs_or_answers_5xx_never_closes_a_dialog() {
    let sim = Sim::start(&[]).await;
    sim.chat("hangs", "hang").await;
    sim.chat("fails", "error").await;
    let d = start(&sim, "close", "200ms", "1s").await;
    let a = offer(&sim, "hangs").await;
    let b = offer(&sim, "fails").await;
    sim.eventually(LIMIT, "several probes each", || async {
        sim.chat_probes("hangs").await >= 3 && sim.chat_probes("fails").await >= 4
    })
    .await;
    let s = d.state().await;
    assert!(held(&s, &a) && held(&s, &b), "{s}");
    assert_eq!(sim.dialog_puts().await, 0, "unknown is never gone");
}

/// A proxy or load balancer in front of the session service answers 404 for its own reasons
/// (a route missing during a deploy): the same status, without the service's marker. It must
/// never close a live chat.
#[tokio::test]
async fn a_proxys_bare_404_without_the_services_marker_never_closes_a_dialog() {
    let sim = Sim::start(&[]).await;
    sim.chat("behind-proxy", "proxy404").await;
    // Here the marker is the service's JSON body (the other tests use its header).
    let media = probe_media(&sim, "close", "200ms").replace(
        "gone_header = \"X-Session-State: gone\"",
        "gone_body_contains = \"session_gone\"",
    );
    assert!(media.contains("gone_body_contains"));
    let d = Daemon::start(
        &sim,
        DaemonConfig {
            media,
            ..Default::default()
        },
    )
    .await;
    d.wait_steady(LIMIT).await;
    let live = offer(&sim, "behind-proxy").await;
    let gone = offer(&sim, "really-gone").await;
    sim.eventually(LIMIT, "the really gone session closed", || async {
        closes(&sim, &gone).await == 1
    })
    .await;
    sim.eventually(LIMIT, "more probes than attempts", || async {
        sim.chat_probes("behind-proxy").await >= 5
    })
    .await;
    assert!(held(&d.state().await, &live));
    assert_eq!(closes(&sim, &live).await, 0, "a bare 404 is not gone");
}

#[tokio::test]
async fn probes_in_flight_never_exceed_max_in_flight_after_a_resync_of_many_dialogs() {
    let sim = Sim::start(&[]).await;
    let sessions: Vec<String> = (0..8).map(|i| format!("slow-{i}")).collect();
    for s in &sessions {
        sim.chat(s, "slow").await;
    }
    // The chat service answers after 400 ms (503): each probe holds its slot that long.
    let d = Daemon::start(
        &sim,
        DaemonConfig {
            media: probe_media_with(&sim, "close", "200ms", "2s"),
            failover_after: "60s",
            ..Default::default()
        },
    )
    .await;
    d.wait_steady(LIMIT).await;
    let vars: Vec<Value> = sessions
        .iter()
        .map(|s| json!({ "callVariable1": s }))
        .collect();
    sim.admin(
        Method::POST,
        &format!("/admin/agents/{AGENT}/media/{MRD}/double-pg-failure"),
        Some(json!({ "add": 8, "callVariables": vars })),
    )
    .await;
    d.blip_out_of_service(&sim).await;
    d.wait_state(LIMIT, "eight dialogs held", |s| {
        s["dialogs"].as_array().unwrap().len() == 8
    })
    .await;
    sim.eventually(LIMIT, "every session probed", || async {
        let mut all = true;
        for s in &sessions {
            all &= sim.chat_probes(s).await >= 1;
        }
        all
    })
    .await;
    let v = sim.admin(Method::GET, "/admin/chat/probes", None).await;
    assert_eq!(
        v["maxInFlight"], 2,
        "max_in_flight = 2 bounds the probes at once"
    );
    assert_eq!(sim.dialog_puts().await, 0);
}

#[tokio::test]
async fn a_session_that_comes_back_alive_after_one_gone_answer_is_not_closed() {
    let sim = Sim::start(&[]).await;
    let d = start(&sim, "close", "1s", "1s").await;
    let id = offer(&sim, "flaky").await;
    sim.eventually(LIMIT, "first probe", || async {
        sim.chat_probes("flaky").await >= 1
    })
    .await;
    sim.chat("flaky", "alive").await;
    sim.eventually(LIMIT, "second probe", || async {
        sim.chat_probes("flaky").await >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sim.chat_probes("flaky").await, 2, "alive ends the probing");
    assert!(held(&d.state().await, &id));
    assert_eq!(sim.dialog_puts().await, 0);
}

#[tokio::test]
async fn after_a_double_pg_failure_only_the_zombies_among_the_returned_dialogs_are_closed() {
    let sim = Sim::start(&[]).await;
    sim.chat("live-1", "alive").await;
    sim.chat("live-2", "alive").await;
    let d = start(&sim, "close", "200ms", "60s").await;
    let sessions = ["zombie-1", "zombie-2", "zombie-3", "live-1", "live-2"];
    let vars: Vec<Value> = sessions
        .iter()
        .map(|s| json!({ "callVariable1": s }))
        .collect();
    let v = sim
        .admin(
            Method::POST,
            &format!("/admin/agents/{AGENT}/media/{MRD}/double-pg-failure"),
            Some(json!({ "add": 5, "callVariables": vars })),
        )
        .await;
    let added: Vec<String> = v["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect();
    d.blip_out_of_service(&sim).await;
    let s = d
        .wait_state(LIMIT, "zombies closed", |s| {
            s["phase"] == "steady" && s["dialogs"].as_array().unwrap().len() == 2
        })
        .await;
    for (id, session) in added.iter().zip(sessions) {
        let expect = usize::from(session.starts_with("zombie"));
        assert_eq!(closes(&sim, id).await, expect, "{session}");
        assert_eq!(held(&s, id), expect == 0, "{session}");
    }
}

#[tokio::test]
async fn with_report_nothing_is_closed_but_the_event_and_the_metric_appear() {
    let sim = Sim::start(&[]).await;
    let d = start(&sim, "report", "200ms", "1s").await;
    let mut events = d.events(None).await;
    let id = offer(&sim, "gone-2").await;
    let e = tokio::time::timeout(LIMIT, async {
        loop {
            let e = events.recv().await.unwrap();
            if e["type"] == "dialog.orphaned" {
                return e;
            }
        }
    })
    .await
    .expect("dialog.orphaned event");
    assert_eq!(e["dialog"]["id"], id.as_str());
    assert_eq!(e["action"], "report");
    assert!(e["probe"].as_str().unwrap().ends_with("/sessions/gone-2"));
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("finesse_taskd_orphans_total{media=\"5002\",action=\"report\"} 1"),
        "{metrics}"
    );
    assert_eq!(sim.dialog_puts().await, 0);
    assert!(held(&d.state().await, &id));
}
