//! `finesse-taskd status` against real daemons: the summary over TCP and over a Unix socket
//! found through `--config` (with the API token the config names), `--json`, the exit codes,
//! and a fleet's list.

mod support;

use std::process::Command;
use std::time::Duration;

use support::Sim;
use support::daemon::{Daemon, DaemonConfig};

fn status(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_finesse-taskd"))
        .arg("status")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_steady_daemon_is_summarised_and_exits_0_and_a_dead_api_exits_69() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    let api = d.api.clone();
    let (code, out, err) = status(&["--api", &api]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("agent 1001001: steady, node https://"),
        "{out}"
    );
    assert!(out.contains("links rest up, xmpp up"), "{out}");
    assert!(
        out.contains("MRD 5002: READY (desired READY), routable, settings in sync"),
        "{out}"
    );
    assert!(
        out.contains("dialogs: 0") && out.contains("counters: reconnects 0"),
        "{out}"
    );
    let (code, out, _) = status(&["--api", &api, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["phase"], "steady");
    // Not ready: 1.
    sim.prosody("A", "kill").await;
    sim.faults("A", serde_json::json!({ "rest": "refused" }))
        .await;
    d.wait_state(Duration::from_secs(10), "not steady", |s| {
        s["phase"] != "steady"
    })
    .await;
    let (code, out, _) = status(&["--api", &api]);
    assert_eq!(code, 1, "{out}");
    drop(d);
    let (code, _, err) = status(&["--api", &api]);
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("cannot reach the daemon's API"), "{err}");
}

#[tokio::test]
async fn status_finds_a_unix_socket_and_its_token_through_the_config() {
    let sim = Sim::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let token_file = dir.path().join("api.token");
    std::fs::write(&token_file, "0123456789abcdef0123\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let d = Daemon::start(
        &sim,
        DaemonConfig {
            listen: format!("unix:{}", socket.display()),
            api_extra: format!("token_file = {token_file:?}\n"),
            ..Default::default()
        },
    )
    .await;
    let config = d.config_path();
    let config = config.to_str().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out, err) = status(&["--config", config]);
        if code == 0 {
            assert!(out.starts_with("agent 1001001: steady"), "{out}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never steady: {code} {out}{err}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Without the token, the API refuses (the guard), and status says so.
    let (code, _, err) = status(&["--api", &format!("unix:{}", socket.display())]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the API answered 401"), "{err}");
}
