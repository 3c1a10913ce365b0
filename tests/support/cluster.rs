//! Hosts of a cluster (`finesse-taskd fleet` with `[cluster]`) as real processes on one
//! machine, each with its own fleet file, its own copy of the shared agents directory and
//! its own source address (127.0.0.2, .3, …) so that the simulator tells them apart; one
//! simulator whose agents are a range, one three-member etcd.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use finesse_taskd::fleet::cluster::hrw;
use reqwest::Method;
use serde_json::{Value, json};

use super::Sim;
use super::etcd::Etcd;
use super::fleet::{Fleet, agent_file, spawn};

/// One cluster test at a time in a test binary: each runs three etcd members, the simulator
/// with its XMPP server and three fleet processes, which is all two cores hold with margin
/// for the timing a fence depends on.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// The first agent id of the range.
pub const FIRST: u64 = 2_000_000;

/// The cluster's `lease_ttl` in these tests.
pub const TTL: Duration = Duration::from_secs(3);

/// The agent ids of a range of `n`.
pub fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| (FIRST + i as u64).to_string()).collect()
}

/// A simulator whose agents are `FIRST..FIRST+n`, each with password `herd-<i>-secret`.
pub async fn range_sim(n: usize, extra: &[&str]) -> Sim {
    let dir = tempfile::Builder::new()
        .prefix("sim-range-")
        .tempdir()
        .unwrap()
        .keep();
    let config = dir.join("sim.toml");
    std::fs::write(
        &config,
        format!(
            "domain = \"finesse.test\"\nagents = {{ first = {FIRST}, count = {n}, mrds = [5002], password = \"herd-{{n}}-secret\" }}\n\
             [[mrds]]\nid = 5002\nname = \"Chat_MRD\"\ninterruptible = true\n"
        ),
    )
    .unwrap();
    Sim::start_on(config, extra).await
}

/// One host: a fleet process with `[cluster]`.
pub struct Host {
    pub name: String,
    /// The source address its REST and XMPP connections leave from.
    pub source: String,
    pub fleet: Fleet,
}

impl Host {
    /// Starts host number `k` (source address 127.0.0.<k+2>) of the cluster on `etcd`,
    /// for the `n` agents of `sim`'s range; each `(from, to)` of `edits` is replaced in its
    /// fleet file (`[cluster]` is last: a line added to its end is one of its keys).
    pub async fn start(
        sim: &Sim,
        etcd: &Etcd,
        k: usize,
        n: usize,
        edits: &[(String, String)],
    ) -> Host {
        let name = format!("host-{k}");
        let source = format!("127.0.0.{}", k + 2);
        let dir = tempfile::Builder::new().prefix("host-").tempdir().unwrap();
        std::fs::create_dir(dir.path().join("agents")).unwrap();
        let fleet = format!(
            "[fleet]\nagents_dir = \"agents\"\nstate_dir = \"state\"\nmax_logins_per_second = 50\n\
             max_requests_per_second = 200\n\n\
             [finesse]\nnodes = {nodes}\nca_file = {ca:?}\nrequest_timeout = \"2s\"\n\
             source_address = \"{source}\"\n\n\
             [xmpp]\nping_interval = \"1s\"\nping_timeout = \"1s\"\n{transport}\n\
             [recovery]\nfirst_retry_window = \"300ms\"\nbackoff_initial = \"200ms\"\n\
             backoff_max = \"1s\"\nsysteminfo_poll = \"300ms\"\nhealthy_after = \"5s\"\n\
             failover_after = \"30s\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n\n\
             [log]\nformat = \"json\"\n\n{cluster}lease_ttl = \"{ttl}s\"\n",
            nodes = sim.nodes_toml(),
            ca = sim.info.ca_file,
            cluster = etcd.cluster_toml(&name, "/finesse-taskd/test/"),
            ttl = TTL.as_secs(),
            // `FINESSE_TEST_XMPP_TRANSPORT=websocket`: the hosts speak XMPP over WebSocket.
            transport = match std::env::var("FINESSE_TEST_XMPP_TRANSPORT").as_deref() {
                Ok("websocket") => "transport = \"websocket\"\n",
                _ => "",
            },
        );
        let fleet = edits
            .iter()
            .fold(fleet, |text, (from, to)| text.replace(from, to));
        std::fs::write(dir.path().join("fleet.toml"), fleet).unwrap();
        for (i, id) in ids(n).iter().enumerate() {
            let text = agent_file(dir.path(), id, &format!("herd-{i}-secret"));
            std::fs::write(dir.path().join("agents").join(format!("{id}.toml")), text).unwrap();
        }
        let log_path = dir.path().join("fleet.log");
        let (child, addr) = spawn(dir.path(), &log_path).await;
        Host {
            name,
            source,
            fleet: Fleet {
                child,
                api: format!("http://{addr}"),
                dir,
                log_path,
                http: reqwest::Client::new(),
            },
        }
    }

    /// The agents this host runs, with their phases.
    pub async fn agents(&self) -> BTreeMap<String, String> {
        let Ok(r) = self
            .fleet
            .http
            .get(format!("{}/v1/agents", self.fleet.api))
            .timeout(Duration::from_secs(2))
            .send()
            .await
        else {
            return BTreeMap::new();
        };
        let v: Value = r.json().await.unwrap_or(Value::Null);
        v["agents"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|a| {
                        (
                            a["id"].as_str().unwrap_or("").to_owned(),
                            a["phase"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `/v1/cluster`.
    pub async fn cluster(&self) -> Value {
        self.fleet.get("/v1/cluster").await.1
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.fleet.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
    }
}

/// Which hosts run each agent, and in which phase: agent -> [(host, phase)].
pub async fn placement(hosts: &[&Host]) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for h in hosts {
        for (id, phase) in h.agents().await {
            out.entry(id).or_default().push((h.name.clone(), phase));
        }
    }
    out
}

/// Waits until each of the `n` agents runs steady on exactly one of `hosts`, checking at
/// every look that no agent runs on two hosts at once; the final placement.
pub async fn wait_placed(
    hosts: &[&Host],
    n: usize,
    limit: Duration,
    what: &str,
) -> BTreeMap<String, String> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let p = placement(hosts).await;
        for (id, on) in &p {
            let live: Vec<_> = on.iter().filter(|(_, ph)| ph == "steady").collect();
            assert!(
                live.len() <= 1,
                "{what}: agent {id} steady on two hosts: {on:?}"
            );
        }
        let placed = steady_on_one(&p);
        if placed.len() == n && p.len() == n {
            return placed;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what}: timed out; placement {p:?}\n{}", logs(hosts, 40));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each agent steady on exactly one host, with that host.
fn steady_on_one(p: &BTreeMap<String, Vec<(String, String)>>) -> BTreeMap<String, String> {
    p.iter()
        .filter(|(_, on)| on.len() == 1 && on[0].1 == "steady")
        .map(|(id, on)| (id.clone(), on[0].0.clone()))
        .collect()
}

/// The last `n` lines of each host's log, for a failure's message.
fn logs(hosts: &[&Host], n: usize) -> String {
    hosts
        .iter()
        .map(|h| format!("--- {}:\n{}\n", h.name, tail(&h.fleet.log(), n)))
        .collect()
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The simulator's request log as (seq, agent, source address), for agents' own requests.
pub async fn requests_by_source(sim: &Sim) -> Vec<(u64, String, String)> {
    sim.requests()
        .await
        .iter()
        .filter_map(|r| {
            let user = r["user"].as_str()?.to_owned();
            let peer = r["peer"].as_str()?;
            let ip = peer.rsplit_once(':').map_or(peer, |(ip, _)| ip).to_owned();
            Some((r["seq"].as_u64().unwrap_or(0), user, ip))
        })
        .collect()
}

/// Agents in these tests.
pub const N: usize = 12;

/// How long a takeover may take here: the TTL, a round, the logins, with room for a loaded
/// machine; far inside the forced-logout window the simulator is given.
pub const LIMIT: Duration = Duration::from_secs(40);

/// Starts the simulator (forced logout after 20 s of lost presence: a takeover must beat
/// it), etcd and `hosts` hosts, and waits until every agent is steady on one of them.
pub async fn cluster(hosts: usize) -> (Sim, Etcd, Vec<Host>, BTreeMap<String, String>) {
    cluster_edited(hosts, &[]).await
}

/// [`cluster`] with `edits` in every host's fleet file.
pub async fn cluster_edited(
    hosts: usize,
    edits: &[(String, String)],
) -> (Sim, Etcd, Vec<Host>, BTreeMap<String, String>) {
    let sim = range_sim(N, &[]).await;
    sim.behaviour(json!({ "forced_logout_after_ms": 20_000 }))
        .await;
    let etcd = Etcd::start().await;
    let mut all = Vec::new();
    for k in 0..hosts {
        all.push(Host::start(&sim, &etcd, k, N, edits).await);
    }
    let refs: Vec<&Host> = all.iter().collect();
    let placed = wait_hashed(&refs, LIMIT, "start").await;
    (sim, etcd, all, placed)
}

/// Waits until every agent is steady on the host that hashing names among `hosts` (the
/// hosts that started first took everything; hand-overs then spread it).
pub async fn wait_hashed(hosts: &[&Host], limit: Duration, what: &str) -> BTreeMap<String, String> {
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

pub fn on<'a>(placed: &'a BTreeMap<String, String>, host: &str) -> BTreeSet<&'a str> {
    placed
        .iter()
        .filter(|(_, h)| *h == host)
        .map(|(a, _)| a.as_str())
        .collect()
}

/// Every agent of the range is still signed in at Finesse (no forced logout, no sign-out).
pub async fn all_signed_in(sim: &Sim) {
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

/// Watches `hosts` for `span`: every look finds each agent steady on the host `placed` gives
/// it (nothing moved, nothing stopped).
pub async fn unmoved_for(
    hosts: &[&Host],
    placed: &BTreeMap<String, String>,
    span: Duration,
    what: &str,
) {
    let end = tokio::time::Instant::now() + span;
    while tokio::time::Instant::now() < end {
        let p = placement(hosts).await;
        if &steady_on_one(&p) != placed {
            panic!(
                "{what}: an agent moved or stopped: {p:?}\n{}",
                logs(hosts, 30)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The agents the simulator saw requests for, and from which source, after request `since`.
pub async fn sources_since(sim: &Sim, since: u64, agent: &str) -> Vec<String> {
    requests_by_source(sim)
        .await
        .into_iter()
        .filter(|(seq, a, _)| *seq > since && a == agent)
        .map(|(_, _, ip)| ip)
        .collect()
}

/// The sequence number of the simulator's last logged request.
pub async fn last_seq(sim: &Sim) -> u64 {
    sim.requests()
        .await
        .last()
        .and_then(|r| r["seq"].as_u64())
        .unwrap_or(0)
}
