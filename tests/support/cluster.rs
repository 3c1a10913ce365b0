//! Hosts of a cluster (`finesse-taskd fleet` with `[cluster]`) as real processes on one
//! machine, each with its own fleet file, its own copy of the shared agents directory and
//! its own source address (127.0.0.2, .3, …) so that the simulator tells them apart; one
//! simulator whose agents are a range, one three-member etcd.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::Sim;
use super::etcd::Etcd;
use super::fleet::{Fleet, agent_file, spawn};

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
    /// for the `n` agents of `sim`'s range; `cluster_extra` is added to `[cluster]`.
    pub async fn start(sim: &Sim, etcd: &Etcd, k: usize, n: usize, cluster_extra: &str) -> Host {
        let name = format!("host-{k}");
        let source = format!("127.0.0.{}", k + 2);
        let dir = tempfile::Builder::new().prefix("host-").tempdir().unwrap();
        std::fs::create_dir(dir.path().join("agents")).unwrap();
        let fleet = format!(
            "[fleet]\nagents_dir = \"agents\"\nstate_dir = \"state\"\nmax_logins_per_second = 50\n\
             max_requests_per_second = 200\n\n\
             [finesse]\nnodes = {nodes}\nca_file = {ca:?}\nrequest_timeout = \"2s\"\n\
             source_address = \"{source}\"\n\n\
             [xmpp]\nping_interval = \"1s\"\nping_timeout = \"1s\"\n\n\
             [recovery]\nfirst_retry_window = \"300ms\"\nbackoff_initial = \"200ms\"\n\
             backoff_max = \"1s\"\nsysteminfo_poll = \"300ms\"\nhealthy_after = \"5s\"\n\
             failover_after = \"30s\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n\n\
             [log]\nformat = \"json\"\n\n{cluster}lease_ttl = \"{ttl}s\"\n{cluster_extra}\n",
            nodes = sim.nodes_toml(),
            ca = sim.info.ca_file,
            cluster = etcd.cluster_toml(&name, "/finesse-taskd/test/"),
            ttl = TTL.as_secs(),
        );
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
        let placed: BTreeMap<String, String> = p
            .iter()
            .filter(|(_, on)| on.len() == 1 && on[0].1 == "steady")
            .map(|(id, on)| (id.clone(), on[0].0.clone()))
            .collect();
        if placed.len() == n && p.len() == n {
            return placed;
        }
        if tokio::time::Instant::now() > deadline {
            let logs: String = hosts
                .iter()
                .map(|h| format!("--- {}:\n{}\n", h.name, tail(&h.fleet.log(), 40)))
                .collect();
            panic!("{what}: timed out; placement {p:?}\n{logs}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
