//! The bad-input matrix: whatever Finesse (here the simulator, told to misbehave) sends, the
//! daemon keeps running, logs a clear line, counts what is malformed, and keeps what it can.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::daemon::{Daemon, DaemonConfig};
use support::{AGENT, Sim};

const LIMIT: Duration = Duration::from_secs(30);
const DIALOGS_NODE: &str = "/finesse/api/User/1001001/Dialogs/Media";

async fn steady(sim: &Sim) -> Daemon {
    let d = Daemon::start(
        sim,
        DaemonConfig {
            failover_after: "60s",
            ..Default::default()
        },
    )
    .await;
    d.wait_steady(LIMIT).await;
    d
}

async fn inject(sim: &Sim, pubsub_node: &str, payload: &str) {
    sim.admin(
        Method::POST,
        "/admin/nodes/A/inject",
        Some(json!({ "pubsub_node": pubsub_node, "payload": payload })),
    )
    .await;
}

fn dialog(id: &str, state: &str, mrd: u32) -> String {
    format!(
        "<Dialog><id>{id}</id><state>{state}</state><mediaProperties><mediaId>{mrd}</mediaId></mediaProperties>\
         <participants><Participant><state>{state}</state></Participant></participants></Dialog>"
    )
}

fn post(dialogs: &str) -> String {
    format!(
        "<Update><data><dialogs>{dialogs}</dialogs></data><event>POST</event><requestId></requestId><source>/x</source></Update>"
    )
}

fn malformed(s: &Value) -> u64 {
    s["counters"]["malformed"].as_u64().unwrap()
}

fn held(s: &Value, id: &str) -> Option<Value> {
    s["dialogs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .cloned()
}

#[tokio::test]
async fn malformed_notifications_are_counted_and_never_stop_the_daemon() {
    let sim = Sim::start(&[]).await;
    let d = steady(&sim).await;
    inject(
        &sim,
        DIALOGS_NODE,
        "<Update><data><dialogs><Dialog><id>1_1_1</id>",
    )
    .await;
    inject(&sim, DIALOGS_NODE, "<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><Update><event>&b;</event></Update>").await;
    inject(&sim, DIALOGS_NODE, &post(&dialog("", "OFFERED", 5002))).await;
    let s = d
        .wait_state(LIMIT, "three malformed", |s| malformed(s) >= 3)
        .await;
    assert_eq!(s["phase"], "steady");
    d.wait_log("malformed notification").await;
    d.wait_log("dialog without <id> ignored").await;
}

#[tokio::test]
async fn unknown_states_are_kept_and_foreign_or_unknown_mrd_dialogs_are_ignored() {
    let sim = Sim::start(&[]).await;
    let d = steady(&sim).await;
    inject(
        &sim,
        DIALOGS_NODE,
        &post(&dialog("9_9_1", "TELEPORTED", 5002)),
    )
    .await;
    inject(&sim, DIALOGS_NODE, &post(&dialog("9_9_2", "OFFERED", 7777))).await;
    let foreign = post(&dialog("9_9_3", "OFFERED", 5002)).replace(
        "<source>/x</source>",
        "<source>/finesse/api/User/1001002/Media/5002/Dialogs</source>",
    );
    inject(&sim, DIALOGS_NODE, &foreign).await;
    inject(
        &sim,
        DIALOGS_NODE,
        &post(&format!(
            "{}{}",
            dialog("9_9_4", "OFFERED", 5002),
            dialog("9_9_4", "ACCEPTED", 5002)
        )),
    )
    .await;
    let s = d
        .wait_state(LIMIT, "kept dialogs", |s| {
            // The two copies of 9_9_4 are applied one after the other: wait for the last.
            held(s, "9_9_1").is_some() && held(s, "9_9_4").is_some_and(|d| d["state"] == "ACCEPTED")
        })
        .await;
    assert_eq!(
        held(&s, "9_9_1").unwrap()["state"],
        "TELEPORTED",
        "an unknown state is kept"
    );
    assert_eq!(
        held(&s, "9_9_4").unwrap()["state"],
        "ACCEPTED",
        "a duplicate id is one dialog, the last word wins"
    );
    assert!(held(&s, "9_9_2").is_none() && held(&s, "9_9_3").is_none());
    d.wait_log("dialog for an unknown MRD").await;
    d.wait_log("notification for another agent ignored").await;
    assert_eq!(s["phase"], "steady");
}

async fn resync_with_override(sim: &Sim, d: &Daemon, path: &str, o: Value) -> Value {
    let mut o = o;
    o["path"] = json!(path);
    sim.admin(Method::PUT, "/admin/nodes/A/override", Some(o))
        .await;
    d.blip_out_of_service(sim).await;
    d.wait_state(LIMIT, "resync failed", |s| {
        s["phase"] == "recovering" && s["cause"] != "out_of_service"
    })
    .await
}

#[tokio::test]
async fn a_50_mib_body_is_refused_and_the_daemon_recovers_when_it_goes() {
    let sim = Sim::start(&[]).await;
    let d = steady(&sim).await;
    let path = format!("/finesse/api/User/{AGENT}/Media/5002/Dialogs");
    let s = resync_with_override(
        &sim,
        &d,
        &path,
        json!({ "body": "x".repeat(1024 * 1024), "repeat": 50 }),
    )
    .await;
    assert_eq!(s["cause"], "rest_oversized");
    sim.admin(Method::DELETE, "/admin/nodes/A/override", None)
        .await;
    d.wait_steady(LIMIT).await;
}

#[tokio::test]
async fn an_html_login_page_with_200_is_malformed_not_a_media() {
    let sim = Sim::start(&[]).await;
    let d = steady(&sim).await;
    let before = malformed(&d.state().await);
    let path = format!("/finesse/api/User/{AGENT}/Media/5002");
    let html =
        "<html><head><title>Proxy login</title></head><body><form>password</form></body></html>";
    let s = resync_with_override(
        &sim,
        &d,
        &path,
        json!({ "body": html, "content_type": "text/html" }),
    )
    .await;
    assert_eq!(s["cause"], "rest_malformed");
    assert!(malformed(&s) > before);
    sim.admin(Method::DELETE, "/admin/nodes/A/override", None)
        .await;
    d.wait_steady(LIMIT).await;
}

#[tokio::test]
async fn a_system_info_without_nodes_or_domain_keeps_the_daemon_alive_and_recovering() {
    let sim = Sim::start(&[]).await;
    let body = "<SystemInfo><status>IN_SERVICE</status></SystemInfo>";
    for n in ["A", "B"] {
        sim.admin(
            Method::PUT,
            &format!("/admin/nodes/{n}/override"),
            Some(json!({ "path": "/finesse/api/SystemInfo", "body": body })),
        )
        .await;
    }
    let mut d = Daemon::start(&sim, DaemonConfig::default()).await;
    d.wait_state(LIMIT, "recovering with a cause", |s| {
        s["phase"] != "steady" && s["cause"] == "xmpp_config"
    })
    .await;
    d.wait_log("SystemInfo names no xmppDomain").await;
    for n in ["A", "B"] {
        sim.admin(Method::DELETE, &format!("/admin/nodes/{n}/override"), None)
            .await;
    }
    d.wait_steady(LIMIT).await;
    assert!(d.child.try_wait().unwrap().is_none());
}

#[tokio::test]
async fn a_certificate_for_the_wrong_ca_is_refused_on_rest_and_never_trusted() {
    let sim = Sim::start(&[]).await;
    let other = Sim::start(&[]).await;
    // The daemon trusts the other simulator's CA only.
    let mut sim_wrong = Sim::start(&[]).await;
    sim_wrong.info.ca_file = other.info.ca_file.clone();
    sim_wrong.info.nodes = sim.info.nodes.clone();
    let d = Daemon::start(&sim_wrong, DaemonConfig::default()).await;
    let s = d
        .wait_state(LIMIT, "REST unreachable", |s| {
            s["cause"] == "rest_unreachable"
        })
        .await;
    assert_ne!(s["phase"], "steady");
    assert!(
        d.log().to_lowercase().contains("certificate"),
        "the log says why"
    );
    assert!(
        sim.requests().await.iter().all(|r| r["user"] != AGENT),
        "no credentials were sent"
    );
}

#[tokio::test]
async fn an_xmpp_certificate_that_is_wrong_for_the_name_is_refused() {
    let sim = Sim::start(&[]).await;
    // The server's certificate names finesse.test; the daemon is told the domain is another.
    let d = Daemon::start(
        &sim,
        DaemonConfig {
            xmpp_extra: "domain = \"wrong.example\"\n".into(),
            ..Default::default()
        },
    )
    .await;
    let s = d
        .wait_state(LIMIT, "XMPP refused", |s| {
            s["cause"] == "xmpp_unreachable" || s["cause"] == "xmpp_timeout"
        })
        .await;
    assert_ne!(s["phase"], "steady");
    assert_eq!(s["links"]["xmpp"], "down");
    d.wait_log("certificate").await;
}

#[tokio::test]
async fn direct_tls_pointed_at_a_starttls_port_says_so_in_the_log() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start(
        &sim,
        DaemonConfig {
            xmpp_extra: format!("tls = \"direct\"\nport = {}\n", sim.info.nodes[0].xmpp_port),
            ..Default::default()
        },
    )
    .await;
    let s = d
        .wait_state(LIMIT, "XMPP refused", |s| s["cause"] == "xmpp_unreachable")
        .await;
    assert_eq!(s["links"]["xmpp"], "down");
    d.wait_log("this looks like a STARTTLS port").await;
}
