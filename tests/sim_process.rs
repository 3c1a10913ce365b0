//! finesse-sim as a process: its CLI, its config errors, a clear failure when Prosody is
//! missing, and no Prosody outliving it, whether it is stopped or killed.

mod support;

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::Sim;

fn sim_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_finesse-sim"))
}

async fn ports_closed(sim: &Sim) -> bool {
    for n in &sim.info.nodes {
        for port in [n.xmpp_port, n.xmpp_secure_port] {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return false;
            }
        }
    }
    true
}

async fn wait_closed(sim: &Sim) {
    sim.eventually(Duration::from_secs(10), "Prosody ports closed", || {
        ports_closed(sim)
    })
    .await;
}

#[tokio::test]
async fn killing_the_sim_takes_its_prosody_instances_with_it() {
    let mut sim = Sim::start(&[]).await;
    assert!(
        !ports_closed(&sim).await,
        "Prosody is listening while the sim runs"
    );
    sim.child.start_kill().unwrap();
    sim.child.wait().await.unwrap();
    wait_closed(&sim).await;
}

#[tokio::test]
async fn sigterm_stops_the_sim_and_its_prosody_cleanly() {
    let mut sim = Sim::start(&[]).await;
    let pid = Pid::from_raw(sim.child.id().unwrap() as i32);
    kill(pid, Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), sim.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    wait_closed(&sim).await;
}

#[test]
fn a_missing_prosody_fails_with_the_install_command() {
    let empty = tempfile::tempdir().unwrap();
    let out = sim_bin()
        .args([
            "--config",
            support::sim_config().to_str().unwrap(),
            "--spawn-prosody",
        ])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("apt-get install -y prosody"), "{stderr}");
}

#[test]
fn a_bad_config_exits_78_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[mrds]]\nid = 1\nname = \"x\"\n[[agents]]\nid = \"a\"\npassword = \"p\"\nmrds = [2]\n",
    )
    .unwrap();
    let out = sim_bin()
        .args(["--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("agents[0].mrds") && stderr.contains("bad.toml"),
        "{stderr}"
    );
}

#[test]
fn help_documents_the_simulator_options() {
    let out = sim_bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--config",
        "--spawn-prosody",
        "--smacks",
        "--plain-xmpp",
        "--plain-rest",
        "--admin-listen",
    ] {
        assert!(
            help.contains(option),
            "{option} missing from --help:\n{help}"
        );
    }
}
