//! Running as a service: the systemd unit's security exposure, `check-config`, SIGHUP reload
//! (valid and invalid), the shutdown policies (checked in the simulator's request log), and
//! sd_notify (READY, STATUS, WATCHDOG from the main loop only, STOPPING) on a test socket.

mod support;

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use support::Sim;
use support::daemon::{Daemon, DaemonConfig};

const LIMIT: Duration = Duration::from_secs(30);
const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/systemd/finesse-taskd@.service"
);

#[test]
fn the_unit_scores_an_exposure_of_at_most_1_5_and_has_the_required_settings() {
    let (score, line) = support::unit::exposure(UNIT);
    eprintln!("systemd-analyze security exposure: {score}");
    assert!(score <= 1.5, "{line}");
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for setting in [
        "Type=notify",
        "WatchdogSec=30s",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "LoadCredential=password:/etc/finesse-taskd/%i.password",
        "ExecStartPre=/usr/bin/finesse-taskd check-config --config /etc/finesse-taskd/%i.toml",
        "ExecReload=/usr/bin/finesse-taskd check-config --config /etc/finesse-taskd/%i.toml",
        "DynamicUser=yes",
        "User=finesse-taskd-%i",
        "RuntimeDirectory=finesse-taskd/%i",
        "StateDirectory=finesse-taskd/%i",
        "LimitCORE=0",
        "LimitNOFILE=8192",
        "MemoryMax=256M",
        "TasksMax=64",
        "MemoryDenyWriteExecute=yes",
        "UMask=0077",
    ] {
        assert!(unit.lines().any(|l| l == setting), "{setting} missing");
    }
}

fn taskd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_finesse-taskd"))
}

#[test]
fn a_taken_api_address_exits_69_so_that_systemd_restarts_it() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let path = dir.path().join("a.toml");
    std::fs::write(
        &path,
        format!(
            "[agent]\nid = \"1\"\npassword_file = {pw:?}\n[finesse]\nnodes = [\"https://127.0.0.1:9\"]\n\
             [[media]]\nid = 5002\nmax_dialog_limit = 3\ninterrupt_action = \"ACCEPT\"\n\
             [api]\nlisten = \"{addr}\"\n"
        ),
    )
    .unwrap();
    let out = taskd()
        .args(["run", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot bind the local API"));
    drop(taken);
}

/// A state directory another user could write (and plant a symlink or a forged refusal record
/// in) is refused with 78 naming it; a missing one is created private.
#[test]
fn a_state_directory_others_can_write_exits_78_and_a_missing_one_is_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = |state: &std::path::Path| {
        let path = dir.path().join("a.toml");
        std::fs::write(
            &path,
            format!(
                "[agent]\nid = \"1\"\npassword_file = {pw:?}\nstate_dir = {state:?}\n\
                 [finesse]\nnodes = [\"https://127.0.0.1:9\"]\n\
                 [[media]]\nid = 5002\nmax_dialog_limit = 3\ninterrupt_action = \"ACCEPT\"\n\
                 [api]\nlisten = \"127.0.0.1:0\"\n"
            ),
        )
        .unwrap();
        path
    };
    let out = taskd()
        .args(["run", "--config", config(&state).to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("writable by group or others") && err.contains(state.to_str().unwrap()),
        "{err}"
    );
    // A missing one is made (0700) and the daemon runs; SIGTERM stops it.
    let fresh = dir.path().join("new/state");
    let mut child = taskd()
        .args(["run", "--config", config(&fresh).to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !fresh.exists() {
        assert!(std::time::Instant::now() < deadline, "not created");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn check_config_exits_0_for_a_valid_file_and_78_naming_the_key_for_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let good = format!(
        "[agent]\nid = \"1\"\npassword_file = {pw:?}\n[finesse]\nnodes = [\"https://a.example:8445\"]\n\
         [[media]]\nid = 5002\nmax_dialog_limit = 3\ninterrupt_action = \"ACCEPT\"\n"
    );
    let path = dir.path().join("a.toml");
    std::fs::write(&path, &good).unwrap();
    let out = taskd()
        .args(["check-config", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
    let out = taskd()
        .args(["check-config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("\"max_dialog_limit\": 3") && printed.contains("<redacted>"),
        "{printed}"
    );
    assert!(
        !printed.contains("secret"),
        "the password is redacted: {printed}"
    );
    std::fs::write(
        &path,
        good.replace("max_dialog_limit = 3", "max_dialog_limit = 0"),
    )
    .unwrap();
    let out = taskd()
        .args(["check-config", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("media[0].max_dialog_limit") && err.contains("a.toml"),
        "{err}"
    );
    let out = taskd()
        .args(["--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(78),
        "run with a missing file exits 78 too"
    );
    let out = taskd().arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("finesse-taskd "));
    for sub in ["run", "check-config"] {
        let out = taskd().args([sub, "--help"]).output().unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("--config"),
            "{sub} --help"
        );
    }
}

#[tokio::test]
async fn sighup_applies_a_valid_config_with_one_sign_in_and_keeps_running_on_an_invalid_one() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start(&sim, DaemonConfig::default()).await;
    d.wait_steady(LIMIT).await;
    let path = d.config_path();
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        original.replace("max_dialog_limit = 3", "max_dialog_limit = 11"),
    )
    .unwrap();
    d.signal(Signal::SIGHUP);
    sim.eventually(LIMIT, "reload refused logged", || async {
        d.log().contains("reload refused")
    })
    .await;
    d.wait_log("media[0].max_dialog_limit").await; // the reason is logged
    let s = d.wait_steady(LIMIT).await;
    assert_eq!(
        s["media"][0]["maxDialogLimit"], 3,
        "still on the old config"
    );
    std::fs::write(
        &path,
        original.replace("max_dialog_limit = 3", "max_dialog_limit = 4"),
    )
    .unwrap();
    d.signal(Signal::SIGHUP);
    sim.eventually(LIMIT, "new settings on A", || async {
        sim.media_truth().await["settings"]["A"]["maxDialogLimit"] == 4
    })
    .await;
    d.wait_state(LIMIT, "steady with the new limit", |s| {
        s["phase"] == "steady" && s["media"][0]["maxDialogLimit"] == 4
    })
    .await;
    assert_eq!(
        sim.login_puts(None).await.len(),
        2,
        "one corrective sign-in"
    );
    d.wait_log("configuration reloaded").await;
}

async fn stop_with(policy: &str) -> (Sim, Vec<Value>) {
    let sim = Sim::start(&[]).await;
    let mut d = Daemon::start(
        &sim,
        DaemonConfig {
            extra_toml: format!(
                "[shutdown]\non_stop = \"{policy}\"\nreason_code_id = 15\ntimeout = \"3s\"\n"
            ),
            ..Default::default()
        },
    )
    .await;
    d.wait_steady(LIMIT).await;
    let before = sim.requests().await.len();
    d.signal(Signal::SIGTERM);
    let status = tokio::time::timeout(Duration::from_secs(10), d.child.wait())
        .await
        .expect("stops")
        .unwrap();
    assert!(status.success());
    let after: Vec<Value> = sim
        .requests()
        .await
        .into_iter()
        .skip(before)
        .filter(|r| r["method"] == "PUT")
        .collect();
    (sim, after)
}

#[tokio::test]
async fn stop_policy_logout_signs_out_of_each_mrd_with_the_reason() {
    let (sim, puts) = stop_with("logout").await;
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(
        puts[0]["body"],
        "<Media><state>LOGOUT</state><reasonCodeId>15</reasonCodeId></Media>"
    );
    let m = sim.media_truth().await;
    assert_eq!(
        (m["state"].clone(), m["reasonCodeId"].clone()),
        (json!("LOGOUT"), json!(15))
    );
}

#[tokio::test]
async fn stop_policy_not_ready_leaves_the_agent_signed_in_but_not_ready() {
    let (sim, puts) = stop_with("not_ready").await;
    assert_eq!(puts.len(), 1, "{puts:?}");
    let m = sim.media_truth().await;
    assert_eq!(
        (
            m["base"].clone(),
            m["reasonCodeId"].clone(),
            m["loginNode"].clone()
        ),
        (json!("NOT_READY"), json!(15), json!("A"))
    );
}

#[tokio::test]
async fn stop_policy_leave_sends_nothing() {
    let (sim, puts) = stop_with("leave").await;
    assert!(puts.is_empty(), "{puts:?}");
    assert_eq!(sim.media_truth().await["base"], "READY");
}

#[tokio::test]
async fn sd_notify_sends_ready_status_watchdog_and_stopping_and_the_watchdog_stops_when_the_loop_stalls()
 {
    let sim = Sim::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = tokio::net::UnixDatagram::bind(&sock_path).unwrap();
    let stall = dir.path().join("stall");
    let mut d = Daemon::start(
        &sim,
        DaemonConfig {
            env: vec![
                ("NOTIFY_SOCKET".into(), sock_path.display().to_string()),
                ("WATCHDOG_USEC".into(), "400000".into()),
                (
                    "FINESSE_TASKD_TEST_STALL_FILE".into(),
                    stall.display().to_string(),
                ),
            ],
            ..Default::default()
        },
    )
    .await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, String)>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf).await {
            let _ = tx.send((
                tokio::time::Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !seen.iter().any(|m| m.contains("READY=1")) {
        let (_, m) = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("READY=1")
            .unwrap();
        seen.push(m);
    }
    assert!(
        seen.iter()
            .any(|m| m.contains("READY=1") && m.contains("STATUS=Steady on https://127.0.0.1")),
        "{seen:?}"
    );
    // Pings keep coming while the loop runs…
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(1200);
    while let Ok(Some((_, m))) = tokio::time::timeout_at(until, rx.recv()).await {
        pings += usize::from(m.contains("WATCHDOG=1"));
    }
    assert!(pings >= 3, "about one ping per 100 ms: {pings}");
    // …and stop while it is stalled.
    std::fs::write(&stall, "").unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    while rx.try_recv().is_ok() {}
    let quiet_until = tokio::time::Instant::now() + Duration::from_millis(1500);
    let mut stalled_pings = 0;
    while let Ok(Some((_, m))) = tokio::time::timeout_at(quiet_until, rx.recv()).await {
        stalled_pings += usize::from(m.contains("WATCHDOG=1"));
    }
    assert_eq!(
        stalled_pings, 0,
        "no watchdog ping from a stalled main loop"
    );
    std::fs::remove_file(&stall).unwrap();
    let (_, m) = tokio::time::timeout(LIMIT, async {
        loop {
            let x = rx.recv().await.unwrap();
            if x.1.contains("WATCHDOG=1") {
                return x;
            }
        }
    })
    .await
    .expect("pings resume");
    assert!(m.contains("WATCHDOG=1"));
    d.signal(Signal::SIGHUP);
    let reload = tokio::time::timeout(LIMIT, async {
        let mut got = Vec::new();
        loop {
            let (_, m) = rx.recv().await.unwrap();
            got.push(m.clone());
            if m.contains("READY=1") {
                return got;
            }
        }
    })
    .await
    .expect("RELOADING then READY");
    let reloading = reload
        .iter()
        .position(|m| m.contains("RELOADING=1") && m.contains("MONOTONIC_USEC="))
        .expect("RELOADING=1 with MONOTONIC_USEC");
    assert!(
        reloading < reload.len() - 1,
        "READY=1 after RELOADING=1: {reload:?}"
    );
    d.signal(Signal::SIGTERM);
    let stopping = tokio::time::timeout(LIMIT, async {
        loop {
            let (_, m) = rx.recv().await.unwrap();
            if m.contains("STOPPING=1") {
                return m;
            }
        }
    })
    .await
    .expect("STOPPING=1");
    assert!(stopping.contains("STOPPING=1"));
    let _ = tokio::time::timeout(Duration::from_secs(10), d.child.wait()).await;
}

#[tokio::test]
async fn the_password_can_come_from_a_systemd_credential() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start(
        &sim,
        DaemonConfig {
            credential: true,
            ..Default::default()
        },
    )
    .await;
    let s = d.wait_steady(LIMIT).await;
    assert_eq!(s["counters"]["signins"], 1);
    assert!(
        std::fs::read_to_string(d.config_path())
            .unwrap()
            .contains("password_credential = \"password\"")
    );
    assert!(!d.log().contains(support::PASSWORD));
}
