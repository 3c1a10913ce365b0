//! Fleet mode (`finesse-taskd fleet`) against the simulator, as a real process: several
//! agents in one process recover together, a bad agent file stops only its agent, a SIGHUP
//! adds and removes agents and applies a changed fleet file (readiness ratio, caps) without
//! touching the agents, and the herd cap spaces logins and REST requests.

mod support;

use serde_json::{Value, json};

use support::fleet::{AGENTS, Fleet, agent_file};
use support::{Sim, metric};

/// True when exactly `ids` run, all steady (on `node` when given).
fn all_steady(v: &Value, ids: &[&str], node: Option<&str>) -> bool {
    let agents = v["agents"].as_array().cloned().unwrap_or_default();
    agents.len() == ids.len()
        && agents.iter().all(|a| {
            ids.contains(&a["id"].as_str().unwrap_or(""))
                && a["phase"] == "steady"
                && node.is_none_or(|n| a["node"] == n)
        })
}

#[tokio::test]
async fn three_agents_recover_together_and_a_bad_file_stops_only_its_agent() {
    let sim = Sim::start(&[]).await;
    let fleet = Fleet::start(&sim, "ready_ratio = 0.75", &AGENTS).await;
    std::fs::write(
        fleet.agents_dir().join("bad.toml"),
        "[agent]\nid = \"1009999\"\npassword = \"x\"\n[[media]]\nid = 5002\nmax_dialog_limit = 11\ninterrupt_action = \"ACCEPT\"\n",
    )
    .unwrap();
    fleet.hup();
    let ids: Vec<&str> = AGENTS.iter().map(|(id, _)| *id).collect();
    let v = fleet
        .wait("three steady agents and one bad file", |v| {
            all_steady(v, &ids, None) && v["bad"].as_array().is_some_and(|b| b.len() == 1)
        })
        .await;
    let error = v["bad"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("bad.toml") && error.contains("media[0].max_dialog_limit"),
        "{error}"
    );
    let (status, ready) = fleet.get("/readyz").await;
    assert_eq!(
        (status, ready["steady"].clone(), ready["agents"].clone()),
        (200, json!(3), json!(4))
    );
    // Each agent's own API, under its id.
    let (status, state) = fleet.get("/v1/agents/1001002/state").await;
    assert_eq!(status, 200);
    assert_eq!(state["agent"], "1001002", "{state}");
    assert_eq!(fleet.get("/v1/agents/1009999/state").await.0, 404);
    // The operator's summary, for the fleet and for one agent.
    let status = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_finesse-taskd"))
            .arg("status")
            .args(["--api", &fleet.api])
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code(), text)
    };
    let (code, text) = status(&[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.starts_with("fleet: 3 of 4 agents steady, 1 bad agent files"),
        "{text}"
    );
    assert!(text.contains("bad.toml: config error"), "{text}");
    let (code, text) = status(&["--agent", "1001002"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with("agent 1001002: steady"), "{text}");

    // Side A dies: every agent fails over to B.
    sim.faults("A", json!({ "rest": "refused" })).await;
    sim.prosody("A", "kill").await;
    let b = sim.node("B").rest.clone();
    fleet
        .wait("all steady on B", |v| all_steady(v, &ids, Some(b.as_str())))
        .await;
    let truth = sim.admin(reqwest::Method::GET, "/admin/truth", None).await;
    for id in &ids {
        let agent = truth["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == *id);
        let media = agent.and_then(|a| a["media"].as_array()?.iter().find(|m| m["id"] == 5002));
        assert_eq!(
            media.map(|m| &m["loginNode"]),
            Some(&json!("B")),
            "{id}: {truth}"
        );
    }
    let (_, metrics) = {
        let r = fleet
            .http
            .get(format!("{}/metrics", fleet.api))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(
        metric(&metrics, "finesse_taskd_fleet_agents{phase=\"steady\"}"),
        Some(3.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "finesse_taskd_fleet_agents{phase=\"config_error\"}"
        ),
        Some(1.0)
    );
    for id in &ids {
        let series = format!("finesse_taskd_failovers_total{{agent=\"{id}\"}}");
        assert_eq!(metric(&metrics, &series), Some(1.0), "{series}\n{metrics}");
    }
    assert_eq!(
        metrics
            .matches("# TYPE finesse_taskd_failovers counter")
            .count(),
        1
    );
    let per_agent = metrics
        .lines()
        .filter(|l| l.contains("agent=\"1001001\""))
        .count();
    eprintln!("series per agent: {per_agent}");
}

#[tokio::test]
async fn a_sighup_adds_and_removes_agents_and_leaves_the_others_alone() {
    let sim = Sim::start(&[]).await;
    let fleet = Fleet::start(&sim, "", &AGENTS[..2]).await;
    fleet
        .wait("two steady", |v| {
            all_steady(v, &["1001001", "1001002"], None)
        })
        .await;
    let signins = sim.login_puts(None).await.len();
    std::fs::remove_file(fleet.agents_dir().join("1001002.toml")).unwrap();
    let (id, pw) = AGENTS[2];
    std::fs::write(
        fleet.agents_dir().join(format!("{id}.toml")),
        agent_file(fleet.dir.path(), id, pw),
    )
    .unwrap();
    fleet.hup();
    fleet
        .wait("1001001 and 1001003 steady, 1001002 gone", |v| {
            all_steady(v, &["1001001", "1001003"], None)
        })
        .await;
    // Only the new agent signed in; the one left alone kept its session.
    let after = sim.login_puts(None).await;
    let new: Vec<&Value> = after[signins..].iter().collect();
    assert!(
        new.iter()
            .all(|r| r["path"].as_str().unwrap().contains("/User/1001003/")),
        "{new:?}"
    );
    let (_, s) = fleet.get("/v1/agents/1001001/state").await;
    assert_eq!(s["counters"]["reconnects"], 0, "{s}");
    assert!(
        fleet
            .log()
            .contains("agent file removed: stopping the agent")
    );
}

#[tokio::test]
async fn a_sighup_applies_a_changed_fleet_file_to_readiness_and_caps_and_leaves_the_agents_alone() {
    let sim = Sim::start(&[]).await;
    let fleet = Fleet::start(&sim, "ready_ratio = 1.0", &AGENTS[..2]).await;
    std::fs::write(
        fleet.agents_dir().join("bad.toml"),
        "[agent]\nid = \"1009999\"\npassword = \"x\"\n[[media]]\nid = 5002\nmax_dialog_limit = 11\ninterrupt_action = \"ACCEPT\"\n",
    )
    .unwrap();
    fleet.hup();
    fleet
        .wait("two steady and one bad file", |v| {
            all_steady(v, &["1001001", "1001002"], None)
                && v["bad"].as_array().is_some_and(|b| b.len() == 1)
        })
        .await;
    // Two of three ready at a ratio of 1: not ready.
    let (status, ready) = fleet.get("/readyz").await;
    assert_eq!(
        (status, ready["ratio"].clone()),
        (503, json!(1.0)),
        "{ready}"
    );
    let fleet_file = fleet.dir.path().join("fleet.toml");
    let text = std::fs::read_to_string(&fleet_file).unwrap();
    std::fs::write(
        &fleet_file,
        text.replace(
            "ready_ratio = 1.0",
            "ready_ratio = 0.5\nmax_logins_per_second = 3.0",
        ),
    )
    .unwrap();
    fleet.hup();
    let deadline = tokio::time::Instant::now() + support::fleet::LIMIT;
    loop {
        let (status, ready) = fleet.get("/readyz").await;
        if status == 200 {
            assert_eq!(ready["ratio"], json!(0.5), "{ready}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new ready_ratio never took effect: {ready}\nlog:\n{}",
            fleet.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        fleet
            .log()
            .contains("fleet's shared clients or caps rebuilt"),
        "the caps were not rebuilt:\n{}",
        fleet.log()
    );
    // The agents kept their sessions through it.
    for id in ["1001001", "1001002"] {
        let (_, s) = fleet.get(&format!("/v1/agents/{id}/state")).await;
        assert_eq!(s["counters"]["reconnects"], 0, "{s}");
        assert_eq!(s["phase"], "steady", "{s}");
    }
}

#[tokio::test]
async fn the_herd_cap_spaces_sign_ins_and_bounds_rest_requests() {
    let sim = Sim::start(&[]).await;
    let fleet = Fleet::start(
        &sim,
        "max_logins_per_second = 2\nmax_requests_per_second = 10",
        &AGENTS,
    )
    .await;
    let ids: Vec<&str> = AGENTS.iter().map(|(id, _)| *id).collect();
    fleet
        .wait("all steady", |v| all_steady(v, &ids, None))
        .await;
    // Side A's XMPP server restarts: all three log in again at once, under the cap.
    sim.prosody("A", "kill").await;
    sim.prosody("A", "start").await;
    fleet
        .wait("all steady again", |v| all_steady(v, &ids, None))
        .await;
    let requests = sim.requests().await;
    let at: Vec<u64> = requests
        .iter()
        .map(|r| r["at_ms"].as_u64().unwrap())
        .collect();
    // A bucket of 10/s with a burst of 1: at most 11 in any second.
    for (i, t) in at.iter().enumerate() {
        let within = at[i..].iter().take_while(|u| **u < t + 1_000).count();
        assert!(
            within <= 11,
            "{within} REST requests in the second from {t} ms"
        );
    }
    let signins: Vec<u64> = sim
        .login_puts(None)
        .await
        .iter()
        .map(|r| r["at_ms"].as_u64().unwrap())
        .collect();
    assert!(signins.len() >= 3, "{signins:?}");
    // Logins and sign-ins share a bucket of 2/s: sign-ins at least 0.5 s apart, give or take
    // the simulator's clock.
    for w in signins.windows(2) {
        assert!(
            w[1] - w[0] >= 450,
            "sign-ins {signins:?} closer than the cap allows"
        );
    }
}
