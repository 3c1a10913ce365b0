//! SSO against the simulator's IdS (`finesse-sim --sso`, real Prosody or ejabberd): token
//! pairs with a 6 s lifetime, so that refreshes come every 4.5 s.
//!
//! - REST carries only the current Bearer token and is never refused; an XMPP server restart
//!   after refreshes logs in with the newest token (the server accepts only that one).
//! - A restart resumes from the pair kept in the state directory, not the stale file.
//! - An expired refresh token shows `auth_expired`, with one refresh attempt per
//!   `auth_retry`, and a new pair dropped into the token file ends it.
//! - A password daemon against an SSO site shows `auth_mode_mismatch`; a token issued for
//!   another agent is refused after the loginName lookup.

mod support;

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use support::daemon::{Daemon, DaemonConfig};
use support::{Sim, metric};

/// A simulator in SSO mode whose tokens live `lifetime_ms`, and a first pair from it.
async fn sso_sim(patch: Value) -> (Sim, Value) {
    let sim = Sim::start(&["--sso"]).await;
    let mut p = json!({ "sso_token_lifetime_ms": 6000 });
    if let (Some(all), Some(more)) = (p.as_object_mut(), patch.as_object()) {
        all.extend(more.clone());
    }
    sim.behaviour(p).await;
    let pair = sim.sso_issue().await;
    assert!(pair["refresh_token"].is_string(), "{pair}");
    (sim, pair)
}

fn sso_cfg(pair: &Value, state_dir: &std::path::Path) -> DaemonConfig {
    DaemonConfig {
        sso_tokens: Some(pair.to_string()),
        env: vec![(
            "STATE_DIRECTORY".into(),
            state_dir.to_string_lossy().into_owned(),
        )],
        ..Default::default()
    }
}

/// Requests that carried credentials, with their scheme and status.
fn credentialed(requests: &[Value]) -> Vec<&Value> {
    requests
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/finesse/api/User"))
        })
        .collect()
}

#[tokio::test]
async fn refreshes_keep_rest_on_bearer_and_an_xmpp_restart_logs_in_with_the_newest_token() {
    let (sim, pair) = sso_sim(json!({})).await;
    let state_dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_steady(&sim, sso_cfg(&pair, state_dir.path())).await;
    sim.eventually(Duration::from_secs(30), "two refreshes", || async {
        sim.sso_stats().await["stats"]["refreshes"].as_u64() >= Some(2)
    })
    .await;
    let reconnects = d.state().await["counters"]["reconnects"].as_u64().unwrap();
    // The server now accepts only the newest token as the agent's password.
    sim.prosody("A", "kill").await;
    sim.prosody("A", "start").await;
    d.wait_state(
        Duration::from_secs(30),
        "steady after the XMPP restart",
        |s| s["phase"] == "steady" && s["counters"]["reconnects"].as_u64() > Some(reconnects),
    )
    .await;
    let truth = sim.truth().await;
    assert_eq!(
        truth["xmppAuthFailures"], 0,
        "a stale token was sent: {truth}"
    );
    let stats = sim.sso_stats().await;
    let requests = sim.requests().await;
    let sent = credentialed(&requests);
    assert!(sent.len() >= 4, "{} credentialed requests", sent.len());
    for r in &sent {
        assert_eq!(r["auth"], "bearer", "{r}");
        assert_ne!(r["status"], 401, "{r}");
    }
    assert!(
        requests.iter().all(|r| r["auth"] != "basic"),
        "Basic was sent"
    );
    // The token names the agent by its loginName: looked up once, to the loginId.
    let lookups: Vec<&Value> = requests
        .iter()
        .filter(|r| r["path"] == "/finesse/api/User/alovelace")
        .collect();
    assert_eq!(lookups.len(), 1, "{lookups:?}");
    assert_eq!(lookups[0]["status"], 200);
    d.wait_log("the SSO token's loginName resolves to this agent")
        .await;
    // The calls after the last refresh carry the newest token.
    let newest = stats["stats"]["newestSeq"].as_u64().unwrap();
    let last = sent.last().unwrap();
    assert!(
        last["token_seq"].as_u64() >= Some(newest - 1),
        "{last} vs {stats}"
    );
    let m = d.metrics().await;
    assert!(
        metric(&m, "finesse_taskd_sso_refreshes_total{outcome=\"ok\"}") >= Some(2.0),
        "{m}"
    );
    let log = d.log();
    for token in stats["tokens"].as_array().unwrap() {
        let t = token.as_str().unwrap();
        assert!(!log.contains(t), "a token is in the log");
        assert!(
            !d.state().await.to_string().contains(t),
            "a token is in the state"
        );
    }
}

#[tokio::test]
async fn a_restart_resumes_from_the_kept_pair_not_the_stale_token_file() {
    let written = SystemTime::now();
    let (sim, pair) = sso_sim(json!({})).await;
    let state_dir = tempfile::tempdir().unwrap();
    let mut cfg = sso_cfg(&pair, state_dir.path());
    cfg.sso_written = Some(written);
    let d = Daemon::start_steady(&sim, cfg.clone()).await;
    let kept_file = state_dir.path().join("sso-token.json");
    sim.eventually(Duration::from_secs(30), "a refreshed pair kept", || async {
        kept_file.exists()
    })
    .await;
    let kept = std::fs::read_to_string(&kept_file).unwrap();
    let kept: Value = serde_json::from_str(&kept).unwrap();
    assert_ne!(
        kept["token"], pair["token"],
        "the refreshed pair was not kept"
    );
    assert_eq!(
        kept["refresh_token"], pair["refresh_token"],
        "Cisco keeps the refresh token"
    );
    drop(d);
    let before = sim.sso_stats().await["stats"].clone();
    let since = sim.requests().await.len();
    let d = Daemon::start_steady(&sim, cfg).await;
    let requests = sim.requests().await;
    let after = &requests[since..];
    let first = credentialed(after)
        .first()
        .map(|r| (*r).clone())
        .expect("a credentialed request after the restart");
    assert_eq!(first["status"], 200, "{first}");
    // The kept pair is not yet due: the restart uses it as is, with no refresh first (the
    // file's pair is past 75 % of its life and would have to be refreshed).
    assert_eq!(
        first["token_seq"], before["newestSeq"],
        "the restart did not use the kept token: {first} {before}"
    );
    let refreshed_first = after
        .iter()
        .take_while(|r| r["seq"] != first["seq"])
        .any(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/desktop/sso/token"))
        });
    assert!(
        !refreshed_first,
        "a refresh came before the first call: {after:?}"
    );
    d.wait_steady(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_expired_refresh_token_shows_auth_expired_with_one_refresh_per_auth_retry() {
    // Opaque tokens: the daemon cannot read the refresh token's expiry and must ask.
    let (sim, pair) = sso_sim(json!({ "sso_jwt": false })).await;
    let state_dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_steady(&sim, sso_cfg(&pair, state_dir.path())).await;
    sim.admin(
        reqwest::Method::POST,
        &format!("/admin/sso/{}/expire-refresh", support::AGENT),
        None,
    )
    .await;
    let s = d
        .wait_state(Duration::from_secs(20), "auth_expired", |s| {
            s["phase"] == "auth_expired"
        })
        .await;
    assert_eq!(s["cause"], "auth_expired", "{s}");
    d.wait_log("sign in once with a browser").await;
    // Watch the attempts for a while: at most one per auth_retry (2 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while sim.sso_stats().await["stats"]["refusedRefreshes"].as_u64() < Some(3) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "three refused refreshes never came: {}\nlog:\n{}",
            sim.sso_stats().await["stats"],
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = sim.sso_stats().await["stats"].clone();
    let at: Vec<u64> = stats["refreshAtMs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let refused = stats["refusedRefreshes"].as_u64().unwrap() as usize;
    let attempts = &at[at.len() - refused..];
    for w in attempts.windows(2) {
        assert!(
            w[1] - w[0] >= 1_900,
            "refresh attempts {attempts:?} closer than auth_retry"
        );
    }
    // The operator installs a new pair: no reload needed, the next attempt takes it.
    let fresh = sim.sso_issue().await;
    let file = d.config_path().with_file_name("sso.json");
    std::fs::write(&file, fresh.to_string()).unwrap();
    d.wait_steady(Duration::from_secs(20)).await;
}

#[tokio::test]
async fn a_password_daemon_at_an_sso_site_shows_auth_mode_mismatch() {
    let sim = Sim::start(&["--sso"]).await;
    let d = Daemon::start(&sim, DaemonConfig::default()).await;
    let s = d
        .wait_state(Duration::from_secs(20), "auth_mode_mismatch", |s| {
            s["phase"] == "auth_mode_mismatch"
        })
        .await;
    assert_eq!(s["cause"], "auth_mode_mismatch", "{s}");
    d.wait_log("systemAuthMode disagrees with [agent] auth")
        .await;
    assert_eq!(d.log_count("SystemInfo's systemAuthMode disagrees with [agent] auth: set auth = \"sso\" (README, Single sign-on) if the site's mode is right"), 1);
}

#[tokio::test]
async fn a_site_serving_only_the_tech_notes_query_form_is_refreshed_through_it() {
    let (sim, pair) = sso_sim(json!({ "sso_refresh_forms": "query" })).await;
    let state_dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_steady(&sim, sso_cfg(&pair, state_dir.path())).await;
    let kept = state_dir.path().join("sso-token.json");
    sim.eventually(Duration::from_secs(30), "a refreshed pair kept", || async {
        kept.exists()
    })
    .await;
    let requests = sim.requests().await;
    let refreshes: Vec<(&str, u64)> = requests
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/desktop/sso/token"))
        })
        .map(|r| (r["method"].as_str().unwrap(), r["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        refreshes[..2],
        [("POST", 405), ("GET", 200)],
        "{refreshes:?}"
    );
    d.wait_steady(Duration::from_secs(5)).await;
    // The query form puts the refresh token in the URL: never in the log.
    assert!(!d.log().contains(pair["refresh_token"].as_str().unwrap()));
}

#[tokio::test]
async fn a_token_the_xmpp_server_refuses_right_after_a_refresh_is_refreshed_again_not_held() {
    let (sim, pair) = sso_sim(json!({ "sso_token_lifetime_ms": 12000 })).await;
    let state_dir = tempfile::tempdir().unwrap();
    // The agent waits for A's XMPP server to come back: this is about the token, not a
    // failover (on a loaded machine the restart can outlast the test default's 1 s, and XMPP
    // failing for `failover_after` moves the agent to B).
    let cfg = DaemonConfig {
        failover_after: "60s",
        ..sso_cfg(&pair, state_dir.path())
    };
    let d = Daemon::start_steady(&sim, cfg).await;
    sim.behaviour(json!({ "sso_xmpp_stale_once": true })).await;
    sim.eventually(Duration::from_secs(30), "a refresh", || async {
        sim.sso_stats().await["stats"]["refreshes"].as_u64() >= Some(1)
    })
    .await;
    // The servers still hold the old token; the daemon logs in with the new one.
    sim.prosody("A", "kill").await;
    sim.prosody("A", "start").await;
    d.wait_log("refreshing once more").await;
    d.wait_state(Duration::from_secs(20), "steady again", |s| {
        s["phase"] == "steady" && s["links"]["xmpp"] == "up"
    })
    .await;
    let log = d.log();
    assert!(!log.contains("\"phase\":\"AuthFailed\""), "it held:\n{log}");
    assert_eq!(sim.sso_stats().await["stats"]["refreshes"], 2);
}

#[tokio::test]
async fn a_token_issued_for_another_agent_is_refused_after_the_login_name_lookup() {
    let sim = Sim::start(&["--sso"]).await;
    let other = sim
        .admin(reqwest::Method::POST, "/admin/sso/1001002/token", None)
        .await;
    let state_dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&sim, sso_cfg(&other, state_dir.path())).await;
    let s = d
        .wait_state(Duration::from_secs(20), "auth_failed", |s| {
            s["phase"] == "auth_failed"
        })
        .await;
    assert_eq!(s["cause"], "auth_failed", "{s}");
    d.wait_log("the SSO token was issued for another agent")
        .await;
    // Nothing was sent as this agent with the other agent's token.
    let requests = sim.requests().await;
    assert!(
        requests.iter().all(|r| !r["path"]
            .as_str()
            .unwrap()
            .starts_with("/finesse/api/User/1001001")),
        "{requests:?}"
    );
}

#[tokio::test]
async fn a_refused_refresh_holds_like_a_rejected_password_once_per_auth_retry() {
    // A pair whose refresh token the IdS does not know (revoked): the access token works
    // until the refresh, which is refused with 401.
    let (sim, mut pair) = sso_sim(json!({})).await;
    pair["refresh_token"] = json!("revoked-refresh-token");
    let state_dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_steady(&sim, sso_cfg(&pair, state_dir.path())).await;
    let s = d
        .wait_state(Duration::from_secs(20), "auth_failed", |s| {
            s["phase"] == "auth_failed"
        })
        .await;
    assert_eq!(s["cause"], "auth_failed", "{s}");
    d.wait_log("the SSO token refresh was refused").await;
    // Each later attempt waits auth_retry (2 s): count them over 7 s.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let at: Vec<u64> = sim
        .requests()
        .await
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/desktop/sso/token"))
        })
        .map(|r| r["at_ms"].as_u64().unwrap())
        .collect();
    assert!((2..=5).contains(&at.len()), "{at:?}");
    for w in at.windows(2) {
        assert!(
            w[1] - w[0] >= 1_900,
            "refreshes {at:?} closer than auth_retry"
        );
    }
    assert_eq!(sim.truth().await["lockouts"], 0);
}

#[tokio::test]
async fn a_refresh_failing_with_5xx_is_retried_before_the_token_expires_without_a_hold() {
    let (sim, pair) = sso_sim(json!({ "sso_token_lifetime_ms": 12000 })).await;
    let state_dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_steady(&sim, sso_cfg(&pair, state_dir.path())).await;
    // Every REST call but SystemInfo answers 500 while the refresh falls due (at 9 s).
    sim.faults("A", json!({ "http_500": true })).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while d.log_count("SSO token refresh failed; retrying while the token is still valid") < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failed refresh:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.faults("A", json!({ "http_500": false })).await;
    d.wait_log("SSO token refreshed").await;
    let log = d.log();
    assert!(!log.contains("\"phase\":\"AuthFailed\""), "it held:\n{log}");
    assert!(
        !log.contains("\"phase\":\"AuthExpired\""),
        "it held:\n{log}"
    );
    assert_eq!(d.state().await["phase"], "steady");
}
