//! What another account on the XMPP server can send the daemon, on a real server (Prosody,
//! or ejabberd with `FINESSE_TEST_XMPP_SERVER=ejabberd`): a chat message carrying a
//! `conflict` stream error as an element makes no conflict of the next ordinary session loss,
//! and a stanza over `[xmpp] max_stanza` drops the stream as a counted, recovered fault.

mod support;

use std::time::Duration;

use support::daemon::{Daemon, DaemonConfig};
use support::xmpp::{Agent, OTHER, OTHER_PASSWORD, daemon_jid};
use support::{Sim, metric};
use tokio_xmpp::Stanza;
use tokio_xmpp::minidom::Element;

const LIMIT: Duration = Duration::from_secs(30);

fn stanza(xml: &str) -> Stanza {
    let element: Element = xml.parse().expect("an element");
    Stanza::try_from(element).expect("a stanza")
}

async fn reconnects(d: &Daemon, cause: &str) -> f64 {
    let m = d.metrics().await;
    metric(
        &m,
        &format!("finesse_taskd_reconnects_total{{link=\"xmpp\",cause=\"{cause}\"}}"),
    )
    .unwrap_or(0.0)
}

async fn other_account(sim: &Sim) -> Agent {
    Agent::connect_as(
        &sim.info,
        "A",
        OTHER,
        OTHER_PASSWORD,
        finesse_taskd::xmpp::TlsMode::Direct,
    )
    .await
}

#[tokio::test]
async fn a_conflict_error_sent_in_a_message_by_another_account_is_no_conflict() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    let other = other_account(&sim).await;
    // The bytes the old check looked for, as an element a server forwards inside a message,
    // and as text.
    let to = daemon_jid(&sim.info);
    other
        .send(stanza(&format!(
            "<message xmlns='jabber:client' to='{to}' type='chat'>\
             <body>xmpp-streams &lt;conflict</body>\
             <error xmlns='http://etherx.jabber.org/streams'>\
             <conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>\
             <conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></message>"
        )))
        .await;
    // Let it arrive, then end the session the ordinary way: the server dies and comes back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    other.close().await;
    sim.prosody("A", "kill").await;
    let lost = d
        .wait_state(LIMIT, "the loss noticed", |s| s["phase"] != "steady")
        .await;
    assert_ne!(lost["phase"], "conflict", "{lost}");
    assert_ne!(lost["cause"], "conflict", "{lost}");
    sim.prosody("A", "start").await;
    let s = d.wait_steady(LIMIT).await;
    assert_eq!(s["counters"]["reconnects"], 1, "{s}");
    assert_eq!(reconnects(&d, "conflict").await, 0.0);
}

#[tokio::test]
async fn a_stanza_over_max_stanza_from_another_account_drops_the_stream_and_is_recovered() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(
        &sim,
        DaemonConfig {
            // Below what the XMPP servers let a client send (Prosody: 256 KiB).
            xmpp_extra: "max_stanza = \"64KiB\"\n".into(),
            ..Default::default()
        },
    )
    .await;
    let other = other_account(&sim).await;
    let to = daemon_jid(&sim.info);
    let body = "x".repeat(100 * 1024);
    other
        .send(stanza(&format!(
            "<message xmlns='jabber:client' to='{to}' type='chat'><body>{body}</body></message>"
        )))
        .await;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while reconnects(&d, "xmpp_oversize").await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the oversized stanza was not refused: {}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = d.wait_steady(LIMIT).await;
    assert_eq!(s["counters"]["reconnects"], 1, "{s}");
    d.wait_log("more than a stanza may hold").await;
    // A stanza under the cap is taken as before.
    let small = "y".repeat(8 * 1024);
    other
        .send(stanza(&format!(
            "<message xmlns='jabber:client' to='{to}' type='chat'><body>{small}</body></message>"
        )))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(d.state().await["counters"]["reconnects"], 1);
    other.close().await;
}
