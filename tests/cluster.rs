//! Cluster mode (`[cluster]` in the fleet file) with real parts: three fleet processes as
//! hosts (each from its own source address), a three-member etcd with mutual TLS, and the
//! simulator with its XMPP server. Each fault is real (`kill -9`, SIGSTOP, SIGTERM, a host
//! that joins) and each outcome is checked from the outside: every agent ends steady on
//! exactly one host, never on two at once, with no new sign-in (the agents stayed signed in
//! at Finesse), no forced logout, and, for a paused host, no request from its address for an
//! agent after another host took it.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use finesse_taskd::fleet::cluster::hrw;
use nix::sys::signal::Signal;
use reqwest::Method;
use serde_json::json;
use support::Sim;
use support::cluster::{Host, TTL, ids, placement, range_sim, requests_by_source, wait_placed};
use support::etcd::Etcd;

/// Agents in these tests.
const N: usize = 12;

/// How long a takeover may take here: the TTL, a round, the logins, with room for a loaded
/// machine; far inside the forced-logout window the simulator is given.
const LIMIT: Duration = Duration::from_secs(40);

/// Starts the simulator (forced logout after 20 s of lost presence: a takeover must beat
/// it), etcd and `hosts` hosts, and waits until every agent is steady on one of them.
async fn cluster(hosts: usize) -> (Sim, Etcd, Vec<Host>, BTreeMap<String, String>) {
    let sim = range_sim(N, &[]).await;
    sim.behaviour(json!({ "forced_logout_after_ms": 20_000 }))
        .await;
    let etcd = Etcd::start().await;
    let mut all = Vec::new();
    for k in 0..hosts {
        all.push(Host::start(&sim, &etcd, k, N, "").await);
    }
    let refs: Vec<&Host> = all.iter().collect();
    let placed = wait_hashed(&refs, LIMIT, "start").await;
    (sim, etcd, all, placed)
}

/// Waits until every agent is steady on the host that hashing names among `hosts` (the
/// hosts that started first took everything; hand-overs then spread it).
async fn wait_hashed(hosts: &[&Host], limit: Duration, what: &str) -> BTreeMap<String, String> {
    let members: Vec<hrw::Member> = hosts
        .iter()
        .map(|h| hrw::Member {
            name: h.name.clone(),
            weight: 1.0,
        })
        .collect();
    let want: BTreeMap<String, String> = ids(N)
        .into_iter()
        .map(|a| {
            let owner = hrw::owner(&a, &members)
                .map(|m| m.name.clone())
                .unwrap_or_default();
            (a, owner)
        })
        .collect();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let placed = wait_placed(hosts, N, limit, what).await;
        if placed == want {
            return placed;
        }
        if tokio::time::Instant::now() > deadline {
            let mut state = String::new();
            for h in hosts {
                state.push_str(&format!(
                    "--- {}: {}\n{}\n",
                    h.name,
                    h.cluster().await,
                    h.fleet
                        .log()
                        .lines()
                        .rev()
                        .take(25)
                        .collect::<Vec<_>>()
                        .join("\n")
                ));
            }
            panic!("{what}: placement {placed:?} is not hashing's {want:?}\n{state}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn on<'a>(placed: &'a BTreeMap<String, String>, host: &str) -> BTreeSet<&'a str> {
    placed
        .iter()
        .filter(|(_, h)| *h == host)
        .map(|(a, _)| a.as_str())
        .collect()
}

/// Every agent of the range is still signed in at Finesse (no forced logout, no sign-out).
async fn all_signed_in(sim: &Sim) {
    for id in ids(N) {
        let t = sim
            .admin(Method::GET, &format!("/admin/truth/{id}"), None)
            .await;
        let states: Vec<&str> = t["media"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["state"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            !states.is_empty() && states.iter().all(|s| *s != "LOGOUT"),
            "agent {id} was signed out: {t}"
        );
    }
}

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
        c["fenced"].as_u64().unwrap_or(0) >= 1 || hosts[1].fleet.log().contains("fenced"),
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
}

#[tokio::test]
async fn a_stopped_host_hands_its_agents_over_and_a_joining_host_takes_about_its_share() {
    let (sim, etcd, mut hosts, placed) = cluster(2).await;
    let sign_ins = sim.login_puts(None).await.len();
    // A third host joins: agents move to it by hand-over, about a third of them.
    hosts.push(Host::start(&sim, &etcd, 2, N, "").await);
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
    let end = wait_hashed(&rest, LIMIT, "after a planned stop").await;
    assert!(end.values().all(|h| h != "host-0"));
    assert_eq!(
        sim.login_puts(None).await.len(),
        sign_ins,
        "moving {moved} agents to a new host and {leaving} off a stopped one signs nobody in"
    );
    all_signed_in(&sim).await;
    let p = placement(&rest).await;
    assert_eq!(p.len(), N);
}
