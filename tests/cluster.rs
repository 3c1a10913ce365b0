//! Cluster mode (`[cluster]` in the fleet file) with real parts: three fleet processes as
//! hosts (each from its own source address), a three-member etcd with mutual TLS, and the
//! simulator with its XMPP server. Each fault is real (`kill -9`, SIGSTOP, SIGTERM, a host
//! that joins) and each outcome is checked from the outside: every agent ends steady on
//! exactly one host, never on two at once, with no new sign-in (the agents stayed signed in
//! at Finesse), no forced logout, and, for a paused host, no request from its address for an
//! agent after another host took it.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use finesse_taskd::xmpp::TlsMode;
use nix::sys::signal::Signal;
use support::cluster::{
    Host, LIMIT, N, TTL, all_signed_in, cluster, cluster_edited, ids, on, one_at_a_time, placement,
    requests_by_source, wait_hashed, wait_placed,
};
use support::xmpp::Agent;

/// The agents `hosts` have claimed after their first round, in all.
async fn takeovers(hosts: &[&Host]) -> u64 {
    let mut n = 0;
    for h in hosts {
        n += h.cluster().await["takeovers"].as_u64().unwrap_or(0);
    }
    n
}

#[tokio::test]
async fn a_killed_hosts_agents_are_taken_over_by_the_survivors_with_no_sign_in() {
    let _one = one_at_a_time().await;
    let (sim, _etcd, mut hosts, placed) = cluster(3).await;
    let victim = on(&placed, "host-1");
    assert!(
        !victim.is_empty(),
        "hashing gives host-1 some of {N}: {placed:?}"
    );
    let sign_ins = sim.login_puts(None).await.len();
    let taken_before = takeovers(&[&hosts[0], &hosts[2]]).await;
    hosts[1].fleet.child.kill().await.unwrap();
    let survivors = [&hosts[0], &hosts[2]];
    let after = wait_placed(&survivors, N, LIMIT, "takeover").await;
    for a in &victim {
        assert_ne!(after[*a], "host-1");
    }
    // The survivors kept their own agents where they were.
    for (a, h) in &placed {
        if h != "host-1" {
            assert_eq!(&after[a], h, "agent {a} moved although its host lives");
        }
    }
    assert_eq!(
        sim.login_puts(None).await.len(),
        sign_ins,
        "a takeover signs nobody in: the agents were still signed in"
    );
    all_signed_in(&sim).await;
    assert_eq!(
        takeovers(&survivors).await - taken_before,
        victim.len() as u64,
        "each of the dead host's agents is taken once"
    );
    // Every cluster family the alerting rules name is exported by a cluster host.
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/prometheus/finesse-taskd.rules.yml"
    ))
    .unwrap();
    let metrics = survivors[0]
        .fleet
        .http
        .get(format!("{}/metrics", survivors[0].fleet.api))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let named: BTreeSet<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("finesse_taskd_cluster_"))
        .collect();
    assert!(named.len() >= 3, "{named:?}");
    for name in named {
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "{name} is named in the rules and not exported:\n{metrics}"
        );
    }
    for h in survivors {
        assert!(
            !h.fleet.log().contains("\"conflict\""),
            "{}: a conflict was seen",
            h.name
        );
    }
}

#[tokio::test]
async fn a_paused_host_is_fenced_and_gets_its_share_back_only_by_hand_over() {
    let _one = one_at_a_time().await;
    let (sim, _etcd, hosts, placed) = cluster(3).await;
    let victim: BTreeSet<String> = on(&placed, "host-1")
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert!(!victim.is_empty());
    hosts[1].signal(Signal::SIGSTOP);
    let survivors = [&hosts[0], &hosts[2]];
    let during = wait_placed(&survivors, N, LIMIT, "takeover from a paused host").await;
    // Each taken agent's last request from a survivor before the paused host wakes.
    let mark = requests_by_source(&sim).await.last().map_or(0, |r| r.0);
    tokio::time::sleep(TTL).await;
    hosts[1].signal(Signal::SIGCONT);
    let refs: Vec<&Host> = hosts.iter().collect();
    let end = wait_hashed(&refs, LIMIT, "after the paused host woke").await;
    // It woke past its deadline: its agents were stopped there, not driven.
    let c = hosts[1].cluster().await;
    assert!(
        c["fenced"].as_u64().unwrap_or(0) >= 1
            || hosts[1]
                .fleet
                .log()
                .contains("fenced: this host's lease is not proven"),
        "{c}"
    );
    // No request from the woken host for an agent before it owned that agent again: after
    // the mark, each agent's requests come from its survivor owner, then (if handed back)
    // from host-1, never host-1 first and a survivor after.
    let log = requests_by_source(&sim).await;
    for agent in &victim {
        let sources: Vec<&str> = log
            .iter()
            .filter(|(seq, a, _)| *seq > mark && a == agent)
            .map(|(_, _, ip)| ip.as_str())
            .collect();
        let first_woken = sources.iter().position(|ip| *ip == hosts[1].source);
        if let Some(i) = first_woken {
            assert!(
                sources[i..].iter().all(|ip| *ip == hosts[1].source),
                "agent {agent}: host-1 acted while {} still did: {sources:?}",
                during[agent]
            );
            assert_eq!(
                end[agent], "host-1",
                "host-1 acted for an agent it does not own"
            );
        }
    }
    all_signed_in(&sim).await;
    // Its agents were stopped with their sessions down: tokio-xmpp's worker ends by a
    // panic then, which is quieted (telemetry::WORKER_END); no other panic is.
    for h in &hosts {
        assert!(!h.fleet.log().contains("panicked"), "{}: a panic", h.name);
    }
}

#[tokio::test]
async fn a_stopped_host_hands_its_agents_over_and_a_joining_host_takes_about_its_share() {
    let _one = one_at_a_time().await;
    // A long lease: whatever moves within LIMIT moved by hand-over, never by an expiry.
    let long = vec![(
        format!("lease_ttl = \"{}s\"", TTL.as_secs()),
        "lease_ttl = \"30s\"".to_owned(),
    )];
    assert!(LIMIT < Duration::from_secs(30) * 2);
    let (sim, etcd, mut hosts, placed) = cluster_edited(2, &long).await;
    let sign_ins = sim.login_puts(None).await.len();
    // A third host joins: agents move to it by hand-over, about a third of them.
    hosts.push(Host::start(&sim, &etcd, 2, N, &long).await);
    let refs: Vec<&Host> = hosts.iter().collect();
    let joined = wait_hashed(&refs, LIMIT, "after a join").await;
    let moved = joined.iter().filter(|(a, h)| placed[*a] != **h).count();
    let to_new = on(&joined, "host-2").len();
    assert!(to_new > 0, "the joining host got nothing: {joined:?}");
    assert_eq!(
        moved, to_new,
        "only agents for the new host moved: {placed:?} -> {joined:?}"
    );
    assert!(to_new <= N / 2, "{to_new} of {N} moved to the third host");
    // A planned stop of host-0 (SIGTERM): its agents go to the others, nobody signed out.
    let leaving = on(&joined, "host-0").len();
    hosts[0].signal(Signal::SIGTERM);
    let _ = tokio::time::timeout(Duration::from_secs(20), hosts[0].fleet.child.wait()).await;
    let rest = [&hosts[1], &hosts[2]];
    // Within 20 s, inside the 30 s lease: handed over, not left to expire.
    let end = wait_hashed(&rest, Duration::from_secs(20), "after a planned stop").await;
    let log = hosts[0].fleet.log();
    assert_eq!(
        log.matches("this host stops: handed over to a ready next owner")
            .count(),
        leaving,
        "each of host-0's agents was handed over once its next owner was ready for it"
    );
    assert!(!log.contains("its next owner not ready"), "{log}");
    assert!(end.values().all(|h| h != "host-0"));
    assert_eq!(
        sim.login_puts(None).await.len(),
        sign_ins,
        "moving {moved} agents to a new host and {leaving} off a stopped one signs nobody in"
    );
    all_signed_in(&sim).await;
    let p = placement(&rest).await;
    assert_eq!(p.len(), N);
    // `finesse-taskd status` shows the host's part of the cluster.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_finesse-taskd"))
        .args(["status", "--api", &hosts[1].fleet.api])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("cluster: member host-1, acting, lease ")
            && text.contains("host-2 owns")
            && text.contains("fleet: "),
        "{text}"
    );
}

#[tokio::test]
async fn a_rolling_restart_of_every_host_moves_each_agent_by_hand_over_and_signs_nobody_out() {
    let _one = one_at_a_time().await;
    // A long lease: an agent that moved did so by hand-over, never by an expiry.
    let long = vec![(
        format!("lease_ttl = \"{}s\"", TTL.as_secs()),
        "lease_ttl = \"30s\"".to_owned(),
    )];
    let (sim, etcd, mut hosts, _) = cluster_edited(3, &long).await;
    let sign_ins = sim.login_puts(None).await.len();
    for k in 0..hosts.len() {
        // Host k stops (an upgrade): its agents go to the two others by hand-over...
        let mine = on(&placement_steady(&hosts).await, &hosts[k].name).len();
        hosts[k].signal(Signal::SIGTERM);
        let stopped = tokio::time::timeout(Duration::from_secs(55), hosts[k].fleet.child.wait())
            .await
            .expect("a stopping host exits within its hand-over budget")
            .unwrap();
        assert!(stopped.success(), "host-{k} exited with {stopped}");
        let log = hosts[k].fleet.log();
        assert_eq!(
            log.matches("this host stops: handed over to a ready next owner")
                .count(),
            mine,
            "host-{k}: each agent waited for its next owner"
        );
        assert!(!log.contains("its next owner not ready"), "{log}");
        let rest: Vec<&Host> = hosts.iter().filter(|h| h.name != hosts[k].name).collect();
        wait_hashed(&rest, Duration::from_secs(20), "a host stopped").await;
        // ...and comes back (upgraded): it gets its share back by hand-over.
        hosts[k] = Host::start(&sim, &etcd, k, N, &long).await;
        let all: Vec<&Host> = hosts.iter().collect();
        wait_hashed(&all, LIMIT, "a host came back").await;
    }
    assert_eq!(
        sim.login_puts(None).await.len(),
        sign_ins,
        "a rolling restart signs nobody in"
    );
    all_signed_in(&sim).await;
    for h in &hosts {
        assert!(
            !h.fleet.log().contains("\"cause\":\"conflict\""),
            "{}: an XMPP conflict: two sessions for one agent",
            h.name
        );
    }
}

/// Where each agent is steady now, on `hosts`.
async fn placement_steady(hosts: &[Host]) -> std::collections::BTreeMap<String, String> {
    let refs: Vec<&Host> = hosts.iter().collect();
    wait_placed(&refs, N, LIMIT, "steady").await
}

#[tokio::test]
async fn a_session_that_takes_an_agents_resource_stops_it_here_and_no_host_fights_back() {
    let _one = one_at_a_time().await;
    let (sim, _etcd, hosts, placed) = cluster(3).await;
    let (agent, owner) = placed
        .iter()
        .find(|(_, h)| *h == "host-1")
        .map(|(a, h)| (a.clone(), h.clone()))
        .expect("host-1 owns an agent");
    let index = ids(N).iter().position(|a| *a == agent).unwrap();
    // Someone logs in with the agent's own resource (as a second owner would): the host's
    // session is displaced with <conflict/>.
    let intruder = Agent::connect_full(
        &sim.info,
        "A",
        &agent,
        &format!("herd-{index}-secret"),
        TlsMode::Direct,
        "taskd",
    )
    .await;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while hosts[1].agents().await.contains_key(&agent) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{agent} still runs on {owner}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(hosts[1].cluster().await["displaced"], 1);
    // Not run again here, and no other host takes it (etcd still names host-1): nobody
    // logs in to displace the intruder in turn.
    let refs: Vec<&Host> = hosts.iter().collect();
    for _ in 0..(3 * TTL.as_secs() * 5) {
        let p = placement(&refs).await;
        assert!(!p.contains_key(&agent), "{agent} runs again: {p:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        intruder.ping().await.is_ok(),
        "the intruder's session was displaced in turn"
    );
}
