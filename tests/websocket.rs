//! XMPP over WebSocket (RFC 7395) through the simulated node's HTTPS front end, which relays
//! to the node's real XMPP server (Prosody's `mod_websocket`, or ejabberd's
//! `ejabberd_http_ws`). The recovery scenarios run over WebSocket too
//! (`FINESSE_TEST_XMPP_TRANSPORT=websocket cargo test --test daemon_recovery`).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::daemon::{Daemon, DaemonConfig};
use support::{Sim, dialog_ids};

const LIMIT: Duration = Duration::from_secs(30);

fn over_websocket() -> DaemonConfig {
    DaemonConfig {
        xmpp_extra: "transport = \"websocket\"\n".into(),
        ..Default::default()
    }
}

/// The WebSocket upgrade requests the simulator logged: (path, status).
async fn upgrades(sim: &Sim) -> Vec<(String, u64)> {
    sim.requests()
        .await
        .iter()
        .filter_map(|r| {
            let path = r["path"].as_str().filter(|p| p.starts_with("/ws"))?;
            Some((path.to_owned(), r["status"].as_u64()?))
        })
        .collect()
}

async fn ws_sessions(sim: &Sim, node: &str) -> u64 {
    let log: Value = sim
        .admin(reqwest::Method::GET, "/admin/requests", None)
        .await;
    log["wsSessions"][node].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn a_cold_start_over_websocket_gets_notifications_through_the_https_front_end() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(&sim, over_websocket()).await;
    assert_eq!(ws_sessions(&sim, "A").await, 1, "one session, through /ws/");
    // A dialog arrives only as an XMPP notification: pubsub works over the WebSocket.
    let offered = sim.offer(json!({})).await;
    d.wait_state(LIMIT, "dialog notified", |s| {
        dialog_ids(s).contains(&offered)
    })
    .await;
    assert_eq!(upgrades(&sim).await, [("/ws/".into(), 101)]);
}

#[tokio::test]
async fn a_front_end_that_serves_only_ws_without_the_slash_is_found_after_one_refusal() {
    let sim = Sim::start(&[]).await;
    sim.behaviour(json!({ "ws_paths": "bare" })).await;
    let d = Daemon::start_steady(&sim, over_websocket()).await;
    d.wait_log("trying the other path once").await;
    let paths: Vec<(String, u64)> = sim
        .requests()
        .await
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/ws")))
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_owned(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        paths[..2],
        [("/ws/".into(), 404), ("/ws".into(), 101)],
        "{paths:?}"
    );
    assert_eq!(ws_sessions(&sim, "A").await, 1);
}

#[tokio::test]
async fn a_see_other_uri_in_close_is_where_the_next_login_goes() {
    let sim = Sim::start(&[]).await;
    // The first session is told to go to `/ws` on the same front end instead.
    sim.behaviour(json!({ "ws_see_other_path": "/ws" })).await;
    let d = Daemon::start_steady(&sim, over_websocket()).await;
    d.wait_log("the server asked to reconnect elsewhere").await;
    let paths: Vec<String> = sim
        .requests()
        .await
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/ws")))
        .map(|r| r["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        paths,
        ["/ws/", "/ws"],
        "redirected once, then the named path"
    );
    assert_eq!(
        ws_sessions(&sim, "A").await,
        1,
        "one relayed session after the redirect"
    );
}
