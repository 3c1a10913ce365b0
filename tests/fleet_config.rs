//! Fleet mode as an operator sets it up: the shipped fleet example passes `check-config`,
//! `check-config` names every bad agent file (exit 78) and every table in the wrong file,
//! and the fleet's systemd unit is as hardened as the per-agent one.

mod support;

use std::path::Path;
use std::process::Command;

fn taskd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_finesse-taskd"))
}

/// The shipped fleet example in `dir`, with its paths pointed into `dir`.
fn example(dir: &Path) {
    let root = env!("CARGO_MANIFEST_DIR");
    let fleet = std::fs::read_to_string(format!("{root}/config/fleet.toml"))
        .unwrap()
        .replace("ca_file = \"/etc/finesse-taskd/ca.pem\"", "");
    std::fs::write(dir.join("fleet.toml"), fleet).unwrap();
    std::fs::create_dir(dir.join("agents.d")).unwrap();
    let pw = dir.join("1001001.password");
    std::fs::write(&pw, "secret\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let agent = std::fs::read_to_string(format!("{root}/config/agents.d/1001001.toml"))
        .unwrap()
        .replace(
            "\"/etc/finesse-taskd/passwords/1001001\"",
            &format!("{pw:?}"),
        );
    std::fs::write(dir.join("agents.d/1001001.toml"), agent).unwrap();
}

fn check(dir: &Path) -> (i32, String) {
    let out = taskd()
        .args(["check-config", dir.join("fleet.toml").to_str().unwrap()])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn the_shipped_fleet_example_passes_check_config() {
    let dir = tempfile::tempdir().unwrap();
    example(dir.path());
    let (code, text) = check(dir.path());
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("1001001.toml: valid (agent 1001001)"),
        "{text}"
    );
    assert!(text.contains("1 agent files, 0 invalid"), "{text}");
}

#[test]
fn check_config_names_each_bad_agent_file_and_each_table_in_the_wrong_file() {
    let dir = tempfile::tempdir().unwrap();
    example(dir.path());
    let agents = dir.path().join("agents.d");
    std::fs::write(
        agents.join("limit.toml"),
        "[agent]\nid = \"1001002\"\npassword = \"x\"\n[[media]]\nid = 5002\nmax_dialog_limit = 11\ninterrupt_action = \"ACCEPT\"\n",
    )
    .unwrap();
    std::fs::write(
        agents.join("shared.toml"),
        "[agent]\nid = \"1001003\"\npassword = \"x\"\n[finesse]\nnodes = []\n",
    )
    .unwrap();
    let (code, text) = check(dir.path());
    assert_eq!(code, 78, "{text}");
    assert!(
        text.contains("limit.toml") && text.contains("media[0].max_dialog_limit"),
        "{text}"
    );
    assert!(
        text.contains("shared.toml") && text.contains("finesse: belongs in the fleet file"),
        "{text}"
    );
    assert!(text.contains("3 agent files, 2 invalid"), "{text}");
    // And a fleet file that holds an agent's table.
    let fleet = dir.path().join("fleet.toml");
    let mut text = std::fs::read_to_string(&fleet).unwrap();
    text.push_str("\n[[media]]\nid = 5002\n");
    std::fs::write(&fleet, text).unwrap();
    let (code, text) = check(dir.path());
    assert_eq!(code, 78, "{text}");
    assert!(text.contains("media: belongs in an agent file"), "{text}");
}

#[test]
fn the_fleet_unit_scores_an_exposure_of_at_most_1_5() {
    let unit = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/finesse-taskd-fleet.service"
    );
    let (score, line) = support::unit::exposure(unit);
    assert!(score <= 1.5, "{line}");
    let body = std::fs::read_to_string(unit).unwrap();
    for setting in [
        "ExecStart=/usr/bin/finesse-taskd fleet --config /etc/finesse-taskd/fleet.toml",
        "RestartPreventExitStatus=78",
        "DynamicUser=yes",
        "StateDirectory=finesse-taskd/fleet",
        "LimitCORE=0",
        "MemoryDenyWriteExecute=yes",
        "UMask=0077",
    ] {
        assert!(body.lines().any(|l| l == setting), "{setting} missing");
    }
}

#[test]
fn check_config_validates_the_cluster_table_and_names_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    example(dir.path());
    let fleet = dir.path().join("fleet.toml");
    let base = std::fs::read_to_string(&fleet).unwrap();
    let cluster = "\n[cluster]\nendpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"/finesse-taskd/site-1/\"\nmember = \"host-a\"\n";
    std::fs::write(&fleet, format!("{base}{cluster}")).unwrap();
    let (code, text) = check(dir.path());
    assert_eq!(code, 0, "{text}");
    for (bad, key) in [
        ("lease_ttl = \"2m\"\n", "cluster.lease_ttl"),
        ("on_quorum_loss = \"hope\"\n", "cluster.on_quorum_loss"),
        ("members = 3\n", "cluster"),
    ] {
        std::fs::write(&fleet, format!("{base}{cluster}{bad}")).unwrap();
        let (code, text) = check(dir.path());
        assert_eq!(code, 78, "{bad}: {text}");
        assert!(text.contains(key), "{bad}: {text}");
    }
    let remote = cluster.replace("http://127.0.0.1:2379", "http://etcd.example.com:2379");
    std::fs::write(&fleet, format!("{base}{remote}")).unwrap();
    let (code, text) = check(dir.path());
    assert_eq!(code, 78, "{text}");
    assert!(
        text.contains("cluster.endpoints") && text.contains("https"),
        "{text}"
    );
}

#[test]
fn a_bound_of_no_login_in_flight_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    example(dir.path());
    let fleet = dir.path().join("fleet.toml");
    let text = std::fs::read_to_string(&fleet)
        .unwrap()
        .replace("[fleet]\n", "[fleet]\nmax_logins_in_flight = 0\n");
    std::fs::write(&fleet, text).unwrap();
    let (code, text) = check(dir.path());
    assert_eq!(code, 78, "{text}");
    assert!(text.contains("fleet.max_logins_in_flight"), "{text}");
}
