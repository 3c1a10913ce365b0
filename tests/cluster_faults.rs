//! Cluster mode under etcd's faults and a host cut from etcd alone, with real parts (three
//! fleet processes, three etcd members with mutual TLS, the simulator, whose relays stand
//! between one host and etcd): the loss of one etcd member and of its leader moves no agent;
//! the loss of the quorum stops every host at its deadline under `on_quorum_loss = "fence"`
//! and moves nothing under `"keep"`; a host that cannot reach etcd stops acting before the
//! others take its agents. Each outcome is checked at the simulator: no request from a host
//! for an agent after another took it, no new sign-in, no forced logout.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use support::cluster::{
    Host, LIMIT, N, TTL, all_signed_in, cluster_edited, last_seq, on, one_at_a_time, sources_since,
    unmoved_for, wait_hashed, wait_placed,
};
use support::etcd::Etcd;

fn ttl(secs: u64) -> Vec<(String, String)> {
    vec![(
        format!("lease_ttl = \"{}s\"", TTL.as_secs()),
        format!("lease_ttl = \"{secs}s\""),
    )]
}

#[tokio::test]
async fn the_loss_of_one_etcd_member_and_then_of_the_leader_moves_no_agent() {
    let _one = one_at_a_time().await;
    // A site's TTL (10 s): an election (1 s here) fits well inside its margin.
    let (sim, mut etcd, hosts, placed) = cluster_edited(3, &ttl(10)).await;
    let refs: Vec<&Host> = hosts.iter().collect();
    let sign_ins = sim.login_puts(None).await.len();
    let leader = etcd.wait_leader(Duration::from_secs(10)).await;
    let follower = (leader + 1) % 3;
    etcd.kill(follower).await;
    unmoved_for(&refs, &placed, Duration::from_secs(4), "one member down").await;
    etcd.restart(follower);
    etcd.kill(leader).await;
    assert_ne!(etcd.wait_leader(Duration::from_secs(15)).await, leader);
    unmoved_for(&refs, &placed, Duration::from_secs(6), "the leader lost").await;
    for h in &hosts {
        let c = h.cluster().await;
        assert_eq!(c["fenced"], 0, "{}: {c}", h.name);
        assert_eq!(c["acting"], true, "{}: {c}", h.name);
    }
    assert_eq!(sim.login_puts(None).await.len(), sign_ins);
    all_signed_in(&sim).await;
}

/// Kills two of the three members; the one left has no quorum.
async fn lose_quorum(etcd: &mut Etcd) -> [usize; 2] {
    let leader = etcd.wait_leader(Duration::from_secs(10)).await;
    let gone = [leader, (leader + 1) % 3];
    for i in gone {
        etcd.kill(i).await;
    }
    gone
}

#[tokio::test]
async fn without_a_quorum_fence_stops_every_host_at_its_deadline_and_all_return_with_etcd() {
    let _one = one_at_a_time().await;
    let (sim, mut etcd, hosts, placed) = cluster_edited(3, &[]).await;
    let refs: Vec<&Host> = hosts.iter().collect();
    let sign_ins = sim.login_puts(None).await.len();
    let gone = lose_quorum(&mut etcd).await;
    // Within the TTL every host has stopped acting and runs no agent.
    let deadline = tokio::time::Instant::now() + TTL + Duration::from_secs(5);
    loop {
        let mut running = 0;
        for h in &hosts {
            running += h.agents().await.len();
        }
        if running == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{running} agents still run without a quorum"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for h in &hosts {
        let c = h.cluster().await;
        assert_eq!(c["acting"], false, "{}: {c}", h.name);
    }
    // Fenced: nothing reaches Finesse from any host.
    let mark = last_seq(&sim).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(last_seq(&sim).await, mark, "a fenced host sent a request");
    for i in gone {
        etcd.restart(i);
    }
    // etcd keeps the leases across its election: every host acts again for what it owned.
    let back = wait_hashed(&refs, LIMIT, "etcd back").await;
    assert_eq!(back, placed);
    assert_eq!(sim.login_puts(None).await.len(), sign_ins, "no sign-in");
    all_signed_in(&sim).await;
}

#[tokio::test]
async fn without_a_quorum_keep_keeps_every_agent_where_it_runs() {
    let _one = one_at_a_time().await;
    let keep = vec![(
        format!("lease_ttl = \"{}s\"", TTL.as_secs()),
        format!(
            "lease_ttl = \"{}s\"\non_quorum_loss = \"keep\"",
            TTL.as_secs()
        ),
    )];
    let (sim, mut etcd, hosts, placed) = cluster_edited(3, &keep).await;
    let refs: Vec<&Host> = hosts.iter().collect();
    let sign_ins = sim.login_puts(None).await.len();
    let gone = lose_quorum(&mut etcd).await;
    unmoved_for(
        &refs,
        &placed,
        TTL * 2 + Duration::from_secs(2),
        "keep, no quorum",
    )
    .await;
    for i in gone {
        etcd.restart(i);
    }
    unmoved_for(&refs, &placed, TTL, "keep, etcd back").await;
    assert_eq!(sim.login_puts(None).await.len(), sign_ins);
    all_signed_in(&sim).await;
}

/// Cuts (or heals) the simulator's `relays`: open connections stall, new ones are never
/// answered.
async fn cut(sim: &support::Sim, relays: &[u64], on: bool) {
    for id in relays {
        sim.admin(
            Method::PUT,
            &format!("/admin/relays/{id}/network"),
            Some(json!({ "stall": on, "blackhole": on })),
        )
        .await;
    }
}

#[tokio::test]
async fn a_host_cut_from_etcd_alone_stops_before_the_others_take_its_agents() {
    let _one = one_at_a_time().await;
    let sim = support::cluster::range_sim(N, &[]).await;
    sim.behaviour(json!({ "forced_logout_after_ms": 20_000 }))
        .await;
    let etcd = Etcd::start().await;
    // host-1 reaches etcd through the simulator's relays; the others directly.
    let mut via = Vec::new();
    let mut relays = Vec::new();
    for e in etcd.endpoints() {
        let to = e.trim_start_matches("https://").to_owned();
        let r = sim
            .admin(Method::POST, "/admin/relays", Some(json!({ "to": to })))
            .await;
        relays.push(r["id"].as_u64().expect("relay id"));
        via.push((
            format!("\"{e}\""),
            format!("\"https://{}\"", r["listen"].as_str().expect("listen")),
        ));
    }
    let hosts = vec![
        Host::start(&sim, &etcd, 0, N, &[]).await,
        Host::start(&sim, &etcd, 1, N, &via).await,
        Host::start(&sim, &etcd, 2, N, &[]).await,
    ];
    let refs: Vec<&Host> = hosts.iter().collect();
    let placed = wait_hashed(&refs, LIMIT, "start").await;
    let victim: Vec<String> = on(&placed, "host-1")
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert!(!victim.is_empty());
    let sign_ins = sim.login_puts(None).await.len();
    let mark = last_seq(&sim).await;
    cut(&sim, &relays, true).await;
    let survivors = [&hosts[0], &hosts[2]];
    wait_placed(&survivors, N, LIMIT, "takeover from a host cut from etcd").await;
    // host-1 is fenced, and it stopped before any survivor acted for its agents.
    assert!(hosts[1].agents().await.is_empty());
    assert_eq!(hosts[1].cluster().await["acting"], false);
    for agent in &victim {
        let sources = sources_since(&sim, mark, agent).await;
        if let Some(i) = sources.iter().position(|ip| *ip != hosts[1].source) {
            assert!(
                sources[i..].iter().all(|ip| *ip != hosts[1].source),
                "agent {agent}: host-1 acted after another host took it: {sources:?}"
            );
        }
    }
    for h in &hosts {
        assert!(
            !h.fleet.log().contains("\"cause\":\"conflict\""),
            "{}: an XMPP conflict: two sessions for one agent",
            h.name
        );
    }
    // Healed: host-1 finds its lease gone, joins again and gets its share by hand-over.
    cut(&sim, &relays, false).await;
    let end = wait_hashed(&refs, LIMIT, "healed").await;
    assert_eq!(end, placed);
    assert!(
        hosts[1].cluster().await["lease"]["lost"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );
    assert_eq!(sim.login_puts(None).await.len(), sign_ins, "no sign-in");
    all_signed_in(&sim).await;
}
