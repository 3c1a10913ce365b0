//! The daemon as a well-behaved XMPP client on a real Prosody: it pings every
//! `ping_interval` even while notifications keep arriving, it answers IQs sent to it (a ping
//! with a result, anything else with an error), and it believes pubsub events only from the
//! pubsub service: a second account forging a SystemInfo and a dialog DELETE changes nothing.

mod support;

use std::time::Duration;

use serde_json::json;
use support::daemon::{Daemon, DaemonConfig};
use support::xmpp::{Agent, OTHER, OTHER_PASSWORD, daemon_jid};
use support::{AGENT, Sim, dialog_ids, metric};
use tokio_xmpp::Stanza;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::minidom::Element;

const LIMIT: Duration = Duration::from_secs(30);

async fn pings(d: &Daemon) -> f64 {
    metric(&d.metrics().await, "finesse_taskd_xmpp_pings_total").unwrap_or(0.0)
}

#[tokio::test]
async fn pings_go_out_every_interval_while_notifications_keep_arriving() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(
        &sim,
        DaemonConfig {
            ping: ("1s", "1s"),
            ..Default::default()
        },
    )
    .await;
    let before = pings(&d).await;
    // A notification every 300 ms for 5 s: the link is never silent, so a client that only
    // pings after silence would send nothing.
    let update = "<Update><data><user><id>1001001</id></user></data><event>put</event>\
                  <requestId></requestId><source>/finesse/api/User/1001001</source></Update>";
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        sim.admin(
            reqwest::Method::POST,
            "/admin/nodes/A/inject",
            Some(json!({
                "pubsub_node": format!("/finesse/api/User/{AGENT}/Media"),
                "payload": update,
            })),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let sent = pings(&d).await - before;
    assert!(
        (4.0..=7.0).contains(&sent),
        "one ping a second under traffic, got {sent} in 5 s"
    );
    let s = d.wait_steady(LIMIT).await;
    assert_eq!(s["counters"]["reconnects"], 0, "{s}");
}

#[tokio::test]
async fn iqs_sent_to_the_daemon_are_answered() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    let other = Agent::connect_as(
        &sim.info,
        "A",
        OTHER,
        OTHER_PASSWORD,
        finesse_taskd::xmpp::TlsMode::Direct,
    )
    .await;
    other
        .ping_jid(daemon_jid(&sim.info))
        .await
        .expect("a ping is answered with a result");
    let err = other
        .unknown_iq(daemon_jid(&sim.info))
        .await
        .expect_err("an unknown IQ is answered with an error");
    assert!(
        err.to_lowercase().contains("serviceunavailable")
            || err.to_lowercase().contains("service-unavailable"),
        "{err}"
    );
    other.close().await;
    assert_eq!(d.wait_steady(LIMIT).await["counters"]["reconnects"], 0);
}

/// A pubsub event message carrying `update` as Finesse would, from whoever sends it.
fn forged_event(to: Jid, node: &str, update: &str) -> Stanza {
    let escaped = quick_xml::escape::escape(update);
    let xml = format!(
        "<message xmlns='jabber:client' to='{to}' type='headline'>\
         <event xmlns='http://jabber.org/protocol/pubsub#event'><items node='{node}'>\
         <item id='forged'><notification xmlns='urn:xmpp:push:0'>{escaped}</notification>\
         </item></items></event></message>"
    );
    let message: Element = xml.parse().expect("a message element");
    Stanza::try_from(message).expect("a message stanza")
}

#[tokio::test]
async fn a_forged_event_from_a_second_account_changes_nothing_and_emits_nothing() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    let id = sim.offer(json!({})).await;
    d.wait_dialog(&id).await;
    let mut events = d.events(None).await;
    let other = Agent::connect_as(
        &sim.info,
        "A",
        OTHER,
        OTHER_PASSWORD,
        finesse_taskd::xmpp::TlsMode::Direct,
    )
    .await;
    let out_of_service = "<Update><data><SystemInfo><status>OUT_OF_SERVICE</status></SystemInfo></data>\
                          <event>put</event><requestId></requestId><source>/finesse/api/SystemInfo</source></Update>";
    let delete = format!(
        "<Update><data><dialogs><Dialog><id>{id}</id><state>CLOSED</state><mediaProperties><mediaId>5002</mediaId></mediaProperties></Dialog></dialogs></data>\
         <event>DELETE</event><requestId></requestId><source>/finesse/api/User/{AGENT}/Media/5002/Dialogs</source></Update>"
    );
    other
        .send(forged_event(
            daemon_jid(&sim.info),
            "/finesse/api/SystemInfo",
            out_of_service,
        ))
        .await;
    other
        .send(forged_event(
            daemon_jid(&sim.info),
            &format!("/finesse/api/User/{AGENT}/Dialogs/Media"),
            &delete,
        ))
        .await;
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let m = d.metrics().await;
        if metric(&m, "finesse_taskd_notifications_total{result=\"spoofed\"}") >= Some(2.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "both forgeries counted as spoofed: {m}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = d.state().await;
    assert_eq!(s["phase"], "steady", "{s}");
    assert!(dialog_ids(&s).contains(&id), "the dialog is still held");
    // Nothing reached the task application: no event after the subscription began.
    let got = tokio::time::timeout(Duration::from_millis(500), events.recv()).await;
    if let Ok(Some(ev)) = got {
        panic!("an event reached the application: {ev}");
    }
    d.wait_log("pubsub event from someone other than the pubsub service")
        .await;
    other.close().await;
}
