//! The daemon over a network that misbehaves the way real ones do, made by the simulator's
//! network (`finesse-sim --rtt`, `PUT /admin/nodes/{node}/network/{link}`): a link that goes
//! silent with nothing closed, a link that answers only one way, a node whose new connections
//! are accepted and never answered, and resets. Each asserts the outcome (where the agent
//! ends up, what was signed in, that no dialog was lost), not a duration, except detection,
//! whose bound is the daemon's own promise. `scripts/test.sh` runs them on loopback and again
//! at 40 ms of round trip (`FINESSE_TEST_RTT`).

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::daemon::{Daemon, DaemonConfig};
use support::{Sim, dialog_ids};

const LIMIT: Duration = Duration::from_secs(30);

/// The link the daemon's XMPP crosses: the XMPP ports, or over WebSocket the node's HTTPS
/// port (`FINESSE_TEST_XMPP_TRANSPORT=websocket`), which REST shares.
fn xmpp_link() -> &'static str {
    match std::env::var("FINESSE_TEST_XMPP_TRANSPORT").as_deref() {
        Ok("websocket") => "rest",
        _ => "xmpp",
    }
}

/// A daemon steady on A that stays there through a fault (`failover_after` 60 s).
async fn staying(sim: &Sim) -> Daemon {
    let cfg = DaemonConfig {
        failover_after: "60s",
        ..Default::default()
    };
    Daemon::start_steady(sim, cfg).await
}

/// The test daemon's `ping_interval` + `ping_timeout` (1 s + 1 s), the bound on detecting a
/// silent link, plus a round trip and slack for a loaded 2-core machine.
fn detection_bound() -> Duration {
    Duration::from_secs(2) + support::test_rtt().unwrap_or_default() + Duration::from_secs(3)
}

/// Applies `patch` to A's XMPP link and checks that the daemon finds the link dead within
/// the ping's bound.
async fn silence(sim: &Sim, d: &Daemon, patch: serde_json::Value, what: &str) {
    let stalled = Instant::now();
    sim.network("A", xmpp_link(), patch).await;
    d.wait_state(LIMIT, &format!("the {what} found"), |s| {
        s["links"]["xmpp"] == "down"
    })
    .await;
    let found = stalled.elapsed();
    eprintln!("{what} found in {} ms", found.as_millis());
    assert!(found < detection_bound(), "{what} found after {found:?}");
}

/// Waits until the agent is steady on B, moved there by one failover with one sign-in;
/// returns the state.
async fn moved_to_b(sim: &Sim, d: &Daemon) -> serde_json::Value {
    let s = d
        .wait_state(LIMIT, "steady on B", |s| {
            s["phase"] == "steady" && s["node"] == sim.node("B").rest.as_str()
        })
        .await;
    assert_eq!(s["counters"]["failovers"], 1, "{s}");
    assert_eq!(sim.login_puts(Some("B")).await.len(), 1, "one sign-in on B");
    s
}

/// A link that goes silent (nothing passes either way, nothing is closed: a stateful firewall
/// that dropped the flow) is found by the ping within its bound; its node stays silent to new
/// connections too, so the agent moves to the other node with one sign-in there, and the
/// dialog offered meanwhile is there.
#[tokio::test]
async fn a_silent_xmpp_link_is_found_by_ping_and_the_agent_moves_to_the_other_node() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    silence(&sim, &d, json!({ "stall": true }), "silent link").await;
    d.wait_log("xmpp_ping_timeout").await;
    let offered = sim.offer(json!({})).await;
    moved_to_b(&sim, &d).await;
    let s = d
        .wait_state(LIMIT, "the outage's dialog", |s| {
            dialog_ids(s).contains(&offered)
        })
        .await;
    assert_eq!(dialog_ids(&s), sim.truth_dialog_ids().await);
}

/// Half-open: the daemon's bytes reach the node, nothing comes back. Only the ping can tell,
/// and it does; once the link carries both ways again the agent is steady on A with no
/// sign-in (nothing drifted).
#[tokio::test]
async fn a_half_open_link_is_found_by_ping_and_recovered_on_the_same_node_without_a_sign_in() {
    let sim = Sim::start(&[]).await;
    let d = staying(&sim).await;
    let half_open = json!({ "downstream": { "stall": true } });
    silence(&sim, &d, half_open, "half-open link").await;
    let offered = sim.offer(json!({})).await;
    sim.network(
        "A",
        xmpp_link(),
        json!({ "downstream": { "stall": false } }),
    )
    .await;
    let s = d
        .wait_state(LIMIT, "steady on A with the outage's dialog", |s| {
            s["phase"] == "steady" && dialog_ids(s).contains(&offered)
        })
        .await;
    assert_eq!(s["node"], sim.node("A").rest.as_str());
    assert_eq!(s["counters"]["failovers"], 0);
    assert_eq!(sim.login_puts(Some("A")).await.len(), 1, "no new sign-in");
}

/// A node whose new connections are accepted and never answered, REST and XMPP alike (a load
/// balancer that lost its pool, a firewall that drops after the handshake), while its open
/// connections are reset: every try there ends at `connect_timeout`, not at a request's or a
/// login's whole time, and the agent is steady on the other node, signed in once there,
/// with the dialog offered meanwhile.
#[tokio::test]
async fn a_blackholed_node_is_given_up_at_the_connect_timeout_and_the_agent_moves() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(
        &sim,
        DaemonConfig {
            timeouts: ("8s", "1s"),
            ..Default::default()
        },
    )
    .await;
    let offered = sim.offer(json!({})).await;
    d.wait_dialog(&offered).await;
    sim.network("A", "all", json!({ "blackhole": true, "reset": true }))
        .await;
    let s = moved_to_b(&sim, &d).await;
    assert_eq!(dialog_ids(&s), sim.truth_dialog_ids().await);
    assert!(dialog_ids(&s).contains(&offered));
    // Each try at A ended at connect_timeout (1 s), not at the request's 8 s.
    let tries = attempt_durations(&d.log(), "SystemInfo failed");
    assert!(!tries.is_empty(), "no try at A failed");
    for t in &tries {
        assert!(*t < Duration::from_secs(4), "a try took {t:?}: {tries:?}");
    }
}

/// How long each try that ended with a log line holding `failed` took, from the daemon's own
/// JSON log: from the `attempt started` before it.
fn attempt_durations(log: &str, failed: &str) -> Vec<Duration> {
    let mut started: Option<humantime::Timestamp> = None;
    let mut out = Vec::new();
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(at) = v["timestamp"].as_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let message = v["fields"]["message"].as_str().unwrap_or_default();
        if message == "attempt started" {
            started = Some(at);
        } else if message == failed {
            if let Some(from) = started.take() {
                let (from, at): (std::time::SystemTime, std::time::SystemTime) =
                    (from.into(), at.into());
                out.push(at.duration_since(from).unwrap_or_default());
            }
        }
    }
    out
}

/// A reset (a NAT or proxy that dropped its state and answers RST) is a loss the daemon sees
/// at once; it comes back on the same node without a sign-in.
#[tokio::test]
async fn a_reset_xmpp_connection_is_reconnected_on_the_same_node_without_a_sign_in() {
    let sim = Sim::start(&[]).await;
    let d = staying(&sim).await;
    sim.network("A", xmpp_link(), json!({ "reset": true }))
        .await;
    d.wait_state(LIMIT, "the reset seen", |s| s["links"]["xmpp"] == "down")
        .await;
    sim.network("A", xmpp_link(), json!({ "reset": false }))
        .await;
    let s = d
        .wait_state(LIMIT, "steady again", |s| {
            s["phase"] == "steady" && s["counters"]["reconnects"].as_u64() >= Some(1)
        })
        .await;
    assert_eq!(s["node"], sim.node("A").rest.as_str());
    assert_eq!(sim.login_puts(Some("A")).await.len(), 1, "no new sign-in");
}

/// The simulator's network really sits between the agents and the node: a fresh HTTPS
/// request (a TLS 1.3 handshake, then the request: two round trips at least) takes at least
/// two of the round trips asked for.
#[tokio::test]
async fn a_round_trip_set_on_a_node_delays_what_crosses_it() {
    let sim = Sim::start(&[]).await;
    let body = sim.network("A", "rest", json!({ "rtt_ms": 200 })).await;
    assert_eq!(body["rest"]["rtt_ms"], 200, "{body}");
    let started = Instant::now();
    let (status, _) = sim.get("A", "/finesse/api/SystemInfo").await;
    assert_eq!(status, 200);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400), "took {took:?}");
    // The other node is untouched.
    let started = Instant::now();
    sim.get("B", "/finesse/api/SystemInfo").await;
    assert!(started.elapsed() < took, "B was slowed too");
}
