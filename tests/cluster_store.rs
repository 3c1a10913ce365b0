//! Cluster mode's ownership records on a real etcd (three members of Debian's etcd-server,
//! mutual TLS): two hosts never own one agent, a dead host's agents are free for the others
//! once its lease expires, and the loss of one etcd member, or of the leader, moves nothing.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use finesse_taskd::fleet::cluster::config::ClusterConfig;
use finesse_taskd::fleet::cluster::hrw;
use finesse_taskd::fleet::cluster::store::Store;
use support::etcd::Etcd;

const TIMEOUT: Duration = Duration::from_secs(3);

fn config(etcd: &Etcd, member: &str) -> ClusterConfig {
    let file = etcd.dir.path().join(format!("{member}.toml"));
    let text = etcd.cluster_toml(member, "/finesse-taskd/test/");
    std::fs::write(&file, &text).unwrap();
    let all: toml::Table = toml::from_str(&text).unwrap();
    ClusterConfig::parse(&file, all["cluster"].clone()).unwrap()
}

async fn host(etcd: &Etcd, member: &str, ttl: Duration) -> Store {
    let mut s = Store::connect(&config(etcd, member), TIMEOUT)
        .await
        .unwrap();
    s.join(ttl, 1.0).await.unwrap();
    s
}

fn agents(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{}", 2_000_000 + i)).collect()
}

#[tokio::test]
async fn two_hosts_never_own_one_agent_and_a_dead_hosts_agents_are_claimed_by_the_survivor() {
    let etcd = Etcd::start().await;
    let mut a = host(&etcd, "host-a", Duration::from_secs(3)).await;
    let mut b = host(&etcd, "host-b", Duration::from_secs(30)).await;
    let members = b.members().await.unwrap();
    let names: BTreeSet<&str> = members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["host-a", "host-b"]));
    let all = agents(200);
    let mine: Vec<String> = all
        .iter()
        .filter(|id| hrw::owner(id, &members).unwrap().name == "host-a")
        .cloned()
        .collect();
    let won_a = a.claim(&mine).await.unwrap();
    assert_eq!(won_a.len(), mine.len());
    // b asks for everything (as after a wrong view of the members): it gets only the rest.
    let won_b = b.claim(&all).await.unwrap();
    assert_eq!(won_b.len(), all.len() - mine.len());
    assert!(won_b.keys().all(|id| !won_a.contains_key(id)), "two owners");
    let owners = b.owners().await.unwrap();
    assert_eq!(owners.len(), all.len());
    for id in &mine {
        assert_eq!(owners[id].member, "host-a");
        assert_eq!(
            owners[id].revision, won_a[id],
            "the revision is the ownership's identity"
        );
    }
    // b gives up the whole list: only its own keys go (one transaction, a nested one per
    // agent), and host-a's stay.
    b.release(&all).await.unwrap();
    let owners = b.owners().await.unwrap();
    assert_eq!(owners.len(), mine.len());
    assert!(owners.values().all(|o| o.member == "host-a"));
    // What a member says it is ready for, the others read; an empty list withdraws it.
    b.say_ready(&["9000001".into(), "9000002".into()])
        .await
        .unwrap();
    let ready = a.ready().await.unwrap();
    assert_eq!(ready.get("9000002").map(String::as_str), Some("host-b"));
    assert_eq!(ready.len(), 2);
    b.say_ready(&[]).await.unwrap();
    assert!(a.ready().await.unwrap().is_empty());
    assert_eq!(b.claim(&all).await.unwrap().len(), all.len() - mine.len());
    // host-a dies: it stops renewing. Within its TTL its records go, and b takes its agents.
    drop(a);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = b.members().await.unwrap();
        if left.iter().all(|m| m.name != "host-a") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "host-a's lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let taken = b.claim(&all).await.unwrap();
    assert_eq!(taken.len(), mine.len(), "the dead host's agents, no more");
    let owners = b.owners().await.unwrap();
    assert!(owners.values().all(|o| o.member == "host-b"));
    // A planned stop gives everything up at once.
    b.leave().await.unwrap();
    let mut c = host(&etcd, "host-c", Duration::from_secs(30)).await;
    assert!(c.owners().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_loss_of_one_etcd_member_and_then_of_the_leader_moves_no_agent() {
    let mut etcd = Etcd::start().await;
    let mut a = host(&etcd, "host-a", Duration::from_secs(10)).await;
    let all = agents(100);
    let won = a.claim(&all).await.unwrap();
    assert_eq!(won.len(), all.len());
    let before = a.owners().await.unwrap();
    let leader = etcd.wait_leader(Duration::from_secs(10)).await;
    let follower = (leader + 1) % 3;
    etcd.kill(follower).await;
    assert!(a.renew().await.unwrap(), "renewed with one member down");
    assert_eq!(a.owners().await.unwrap(), before);
    etcd.restart(follower);
    etcd.kill(leader).await;
    let elected = etcd.wait_leader(Duration::from_secs(15)).await;
    assert_ne!(elected, leader);
    // Renewals go on (the client moves to a live member) well inside the TTL.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match a.renew().await {
            Ok(true) => break,
            other => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no renewal after the leader's loss: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert_eq!(a.owners().await.unwrap(), before, "no agent moved");
}

/// etcd 3.4 renews a lease on the leader alone, without the quorum: a leader cut from the
/// others goes on renewing until it steps down, an election timeout (1 s here) later. This is
/// why the fence's margin must exceed etcd's election timeout; after it, no renewal passes.
#[tokio::test]
async fn without_a_quorum_renewals_stop_within_an_election_timeout() {
    let mut etcd = Etcd::start().await;
    let mut a = host(&etcd, "host-a", Duration::from_secs(10)).await;
    assert!(a.renew().await.unwrap());
    let leader = etcd.wait_leader(Duration::from_secs(10)).await;
    etcd.kill((leader + 1) % 3).await;
    etcd.kill((leader + 2) % 3).await;
    let cut = tokio::time::Instant::now();
    let mut last_ok = None;
    while cut.elapsed() < Duration::from_secs(6) {
        let renewed = tokio::time::timeout(Duration::from_secs(2), a.renew()).await;
        if matches!(renewed, Ok(Ok(true))) {
            last_ok = Some(cut.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("last renewal without a quorum: {last_ok:?} after the cut");
    assert!(
        last_ok.is_none_or(|t| t < Duration::from_millis(2_500)),
        "renewals went on {last_ok:?} after the quorum was lost"
    );
}
