//! The local API against finesse-sim + Prosody, all real processes: the event stream across a
//! failover, Last-Event-ID resumes, actions during recovery (sent exactly once), the desired
//! state surviving a forced logout, metrics, bad input, and the Unix socket.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::daemon::{Daemon, DaemonConfig};
use support::{MRD, Sim, dialog_ids};

const LIMIT: Duration = Duration::from_secs(30);

/// A client's view built only from events.
#[derive(Default)]
struct Applied {
    dialogs: BTreeMap<String, Value>,
    media: BTreeMap<u64, Value>,
    kinds: Vec<String>,
    last_seq: u64,
}

impl Applied {
    fn apply(&mut self, e: &Value) {
        let kind = e["type"].as_str().unwrap().to_owned();
        if let Some(seq) = e["seq"].as_u64() {
            assert!(
                seq > self.last_seq || kind == "resync.required",
                "seq must grow: {e}"
            );
            self.last_seq = seq;
        }
        match kind.as_str() {
            "dialog.added" | "dialog.changed" => {
                self.dialogs.insert(
                    e["dialog"]["id"].as_str().unwrap().to_owned(),
                    e["dialog"].clone(),
                );
            }
            "dialog.removed" => {
                self.dialogs.remove(e["dialog"]["id"].as_str().unwrap());
            }
            "media.changed" => {
                self.media
                    .insert(e["media"]["id"].as_u64().unwrap(), e["media"].clone());
            }
            _ => {}
        }
        self.kinds.push(kind);
    }
}

#[tokio::test]
async fn an_sse_client_across_a_failover_sees_the_links_and_the_resync_and_ends_equal_to_the_state()
{
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    let kept = sim.offer(json!({})).await;
    d.wait_dialog(&kept).await;
    let mut events = d.events(Some(0)).await;
    let mut applied = Applied::default();
    sim.faults("A", json!({ "rest": "refused" })).await;
    sim.prosody("A", "kill").await;
    let s = d
        .wait_state(LIMIT, "steady on B", |s| {
            s["phase"] == "steady" && s["node"] == sim.node("B").rest.as_str()
        })
        .await;
    let last = s["lastSeq"].as_u64().unwrap();
    while applied.last_seq < last {
        let e = tokio::time::timeout(LIMIT, events.recv())
            .await
            .expect("event")
            .expect("stream");
        applied.apply(&e);
    }
    for kind in ["link.down", "link.up", "resync.completed", "phase"] {
        assert!(
            applied.kinds.iter().any(|k| k == kind),
            "{kind} missing from {:?}",
            applied.kinds
        );
    }
    let state = d.state().await;
    assert_eq!(
        applied.dialogs.keys().cloned().collect::<BTreeSet<_>>(),
        dialog_ids(&state)
    );
    assert_eq!(dialog_ids(&state), sim.truth_dialog_ids().await);
    assert_eq!(applied.media[&u64::from(MRD)], state["media"][0]);
}

#[tokio::test]
async fn last_event_id_replays_missed_events_and_an_overflowed_ring_says_resync_required() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(
        &sim,
        DaemonConfig {
            api_extra: "event_ring = 16\n".into(),
            ..Default::default()
        },
    )
    .await;
    let from = d.state().await["lastSeq"].as_u64().unwrap();
    let one = sim.offer(json!({})).await;
    d.wait_dialog(&one).await;
    let mut resumed = d.events(Some(from)).await;
    let first = tokio::time::timeout(LIMIT, resumed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first["seq"], from + 1, "{first}");
    drop(resumed);
    for _ in 0..10 {
        let id = sim.offer(json!({})).await;
        sim.admin(Method::POST, &format!("/admin/dialogs/{id}/end"), None)
            .await;
    }
    d.wait_state(LIMIT, "ring overflowed", |s| {
        s["lastSeq"].as_u64().unwrap() > from + 17
    })
    .await;
    let mut stale = d.events(Some(from)).await;
    let first = tokio::time::timeout(LIMIT, stale.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first["type"], "resync.required", "{first}");
}

#[tokio::test]
async fn an_accept_sent_during_recovery_is_delivered_exactly_once_after_steady() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(
        &sim,
        DaemonConfig {
            failover_after: "60s",
            ..Default::default()
        },
    )
    .await;
    let id = sim.offer(json!({})).await;
    d.wait_dialog(&id).await;
    sim.faults("A", json!({ "out_of_service": true })).await;
    d.wait_state(LIMIT, "recovering", |s| s["phase"] == "recovering")
        .await;
    let url = format!("{}/v1/dialogs/{id}/actions", d.api);
    let http = d.http().clone();
    let pending = tokio::spawn(async move {
        http.post(url)
            .json(&json!({ "action": "ACCEPT" }))
            .timeout(LIMIT)
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dialog_puts = |log: &[Value]| {
        log.iter()
            .filter(|r| {
                r["method"] == "PUT" && r["path"] == format!("/finesse/api/Dialog/{id}").as_str()
            })
            .count()
    };
    assert_eq!(
        dialog_puts(&sim.requests().await),
        0,
        "nothing sent while recovering"
    );
    sim.faults("A", json!({ "out_of_service": false })).await;
    let resp = pending.await.unwrap().unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(dialog_puts(&sim.requests().await), 1, "sent exactly once");
    d.wait_dialog_in(&id, "ACCEPTED").await;
}

#[tokio::test]
async fn an_action_that_cannot_wait_is_refused_with_503_and_never_sent() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(
        &sim,
        DaemonConfig {
            failover_after: "60s",
            api_extra: "action_wait = \"300ms\"\n".into(),
            ..Default::default()
        },
    )
    .await;
    let id = sim.offer(json!({})).await;
    d.wait_dialog(&id).await;
    sim.faults("A", json!({ "out_of_service": true })).await;
    d.wait_state(LIMIT, "recovering", |s| s["phase"] == "recovering")
        .await;
    let r = d.post_action(&id, &json!({ "action": "ACCEPT" })).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    sim.faults("A", json!({ "out_of_service": false })).await;
    d.wait_steady(LIMIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let puts = sim
        .requests()
        .await
        .into_iter()
        .filter(|r| r["path"] == format!("/finesse/api/Dialog/{id}").as_str())
        .count();
    assert_eq!(puts, 0, "an expired request is dropped, not sent late");
}

#[tokio::test]
async fn a_not_ready_set_through_the_api_survives_a_forced_logout() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    let r = d
        .http()
        .put(format!("{}/v1/media/{MRD}/state", d.api))
        .json(&json!({ "state": "NOT_READY", "reasonCodeId": 7 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let m = sim.media_truth().await;
    assert_eq!(
        (m["base"].clone(), m["reasonCodeId"].clone()),
        (json!("NOT_READY"), json!(7))
    );
    sim.forced_logout().await;
    sim.eventually(LIMIT, "signed in again as NOT_READY/7", || async {
        let m = sim.media_truth().await;
        m["loginNode"] == "A" && m["base"] == "NOT_READY" && m["reasonCodeId"] == json!(7)
    })
    .await;
    d.wait_steady(LIMIT).await;
    let r = d
        .http()
        .put(format!("{}/v1/media/{MRD}/routable", d.api))
        .json(&json!({ "routable": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(sim.media_truth().await["routable"], false);
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_move_with_the_scenarios() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    let scrape = || async {
        let text = d.metrics().await;
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
        let get = |name: &str, label: Option<(&str, &str)>| -> f64 {
            parsed
                .samples
                .iter()
                .filter(|s| {
                    s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v))
                })
                .map(|s| match s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => 0.0,
                })
                .sum()
        };
        (
            get("finesse_taskd_resyncs_total", None),
            get("finesse_taskd_signins_total", Some(("reason", "initial"))),
            get("finesse_taskd_failovers_total", None),
            get("finesse_taskd_phase", Some(("phase", "steady"))),
            get("finesse_taskd_link_up", Some(("link", "xmpp"))),
            get("finesse_taskd_signins_total", Some(("reason", "failover"))),
            get("finesse_taskd_xmpp_round_trips_total", None),
        )
    };
    let before = scrape().await;
    assert_eq!(
        (before.0, before.1, before.2, before.3, before.4),
        (1.0, 1.0, 0.0, 1.0, 1.0)
    );
    sim.faults("A", json!({ "rest": "refused" })).await;
    sim.prosody("A", "kill").await;
    d.wait_state(LIMIT, "steady on B", |s| {
        s["phase"] == "steady" && s["node"] == sim.node("B").rest.as_str()
    })
    .await;
    let after = scrape().await;
    assert_eq!(after.2, 1.0, "one failover");
    assert_eq!(after.5, 1.0, "one failover sign-in");
    assert!(after.0 >= 2.0);
    // A login waits at least for TCP, TLS, the stream features, SASL and the bind.
    eprintln!(
        "XMPP round trips: first login {}, failover {}",
        before.6,
        after.6 - before.6
    );
    assert!(before.6 >= 5.0, "{before:?}");
    assert!(after.6 - before.6 >= 5.0, "{after:?}");
    let text = d.metrics().await;
    assert!(
        text.contains("finesse_taskd_time_to_ready_seconds_bucket"),
        "{text}"
    );
    assert!(!text.contains(support::PASSWORD));
}

#[tokio::test]
async fn bad_requests_get_clear_errors_naming_the_field() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    let id = sim.offer(json!({})).await;
    d.wait_dialog(&id).await;
    let post = |path: String, body: String| {
        let http = d.http().clone();
        let url = format!("{}{path}", d.api);
        async move {
            http.post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = post(format!("/v1/dialogs/{id}/actions"), "{not json".into()).await;
    assert_eq!(r.status(), 400);
    let r = post(
        format!("/v1/dialogs/{id}/actions"),
        r#"{"action":"DANCE"}"#.into(),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "action");
    let r = post(
        format!("/v1/dialogs/{id}/actions"),
        r#"{"actoin":"ACCEPT"}"#.into(),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = post(
        "/v1/dialogs/1_2_3/actions".into(),
        r#"{"action":"ACCEPT"}"#.into(),
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = post(
        format!("/v1/dialogs/{id}/actions"),
        r#"{"action":"START"}"#.into(),
    )
    .await;
    assert_eq!(r.status(), 409, "START is not allowed while OFFERED");
    let big = format!(
        r#"{{"action":"ACCEPT","target":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let r = post(format!("/v1/dialogs/{id}/actions"), big).await;
    assert_eq!(r.status(), 413);
    let r = d
        .http()
        .put(format!("{}/v1/media/{MRD}/state", d.api))
        .json(&json!({ "state": "SLEEPING" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "state");
    let r = d
        .http()
        .put(format!("{}/v1/media/9999/state", d.api))
        .json(&json!({ "state": "READY" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let puts = sim
        .requests()
        .await
        .into_iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap_or("")
                .starts_with("/finesse/api/Dialog/")
        })
        .count();
    assert_eq!(puts, 0, "no refused request reached Finesse");
}

#[tokio::test]
async fn the_api_can_listen_on_a_unix_socket_with_mode_0660() {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = Sim::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let d = Daemon::start(
        &sim,
        DaemonConfig {
            listen: format!("unix:{}", path.display()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(d.api, format!("http://unix:{}", path.display()));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let mut body = String::new();
    for _ in 0..300 {
        let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: taskd\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        body.clear();
        s.read_to_string(&mut body).await.unwrap();
        if body.starts_with("HTTP/1.1 200") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
}
