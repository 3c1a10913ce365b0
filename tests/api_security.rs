//! Only local clients drive the local API: a web page on the agent's machine (a `text/plain`
//! form post, a foreign `Origin`), a DNS-rebinding page (a foreign `Host`) and, with a token
//! configured, anyone without it are refused before anything reaches Finesse; a non-loopback
//! listen address without a token is a configuration error.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::Sim;
use support::daemon::{Daemon, DaemonConfig};

#[tokio::test]
async fn a_web_page_can_neither_post_actions_nor_read_the_state() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    let id = sim.offer(json!({})).await;
    d.wait_dialog(&id).await;
    let url = format!("{}/v1/dialogs/{id}/actions", d.api);
    // A form or text/plain post needs no CORS preflight: refused for its content type.
    let r = d
        .http()
        .post(&url)
        .header("content-type", "text/plain")
        .body(r#"{"action":"ACCEPT"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // JSON from a page of another origin: refused for its origin.
    let r = d
        .http()
        .post(&url)
        .header("origin", "http://evil.example")
        .json(&json!({ "action": "ACCEPT" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // DNS rebinding: the page's own host name in Host.
    let r = d
        .http()
        .get(format!("{}/v1/state", d.api))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 421);
    assert_eq!(sim.dialog_puts().await, 0, "nothing reached Finesse");
    // The task application itself still drives it.
    let r = d
        .http()
        .post(&url)
        .json(&json!({ "action": "ACCEPT" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(sim.dialog_puts().await, 1);
}

#[tokio::test]
async fn with_a_token_every_request_but_healthz_needs_it() {
    let sim = Sim::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let token = "0123456789abcdef-local-token";
    let file = dir.path().join("api.token");
    support::private_file(&file, token);
    let d = Daemon::start_steady_with_token(
        &sim,
        DaemonConfig {
            api_extra: format!("token_file = {:?}\n", file.display().to_string()),
            ..Default::default()
        },
        token,
    )
    .await;
    let state = format!("{}/v1/state", d.api);
    let r = reqwest::get(&state).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = reqwest::Client::new()
        .get(&state)
        .bearer_auth("wrong-token-of-some-length")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = reqwest::Client::new()
        .get(&state)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["phase"], "steady");
    let r = reqwest::get(format!("{}/healthz", d.api)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(!d.log().contains(token), "the token never reaches the log");
}

#[test]
fn a_non_loopback_listen_address_without_a_token_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "secret").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nid = \"1001001\"\npassword_file = {:?}\n[finesse]\nnodes = [\"https://fin-a.example\"]\n\
             [[media]]\nid = 5002\nmax_dialog_limit = 1\ninterrupt_action = \"ACCEPT\"\n\
             [api]\nlisten = \"0.0.0.0:9471\"\n",
            pw.display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_finesse-taskd"))
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("api.listen"), "{stderr}");
}

#[tokio::test]
async fn an_action_whose_answer_never_comes_is_outcome_unknown_and_sent_once() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    let id = sim.offer(json!({})).await;
    d.wait_dialog(&id).await;
    // Finesse takes the request and never answers (request_timeout is 2 s in the tests).
    sim.faults("A", json!({ "rest": "hang" })).await;
    let r = d.post_action(&id, &json!({ "action": "ACCEPT" })).await;
    assert_eq!(r.status(), 504);
    assert!(
        r.headers().get("retry-after").is_none(),
        "no invitation to retry"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "outcome_unknown");
    sim.faults("A", json!({ "rest": "up" })).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sim.dialog_puts().await, 1, "sent once, never again");
}
