//! What a host shows of the cluster: `/v1/cluster` (the members, their leases, which agents
//! each owns, this host's fencing state) and the fleet's cluster metrics. Written by the
//! fleet after each round and each change of the lease; read by the API.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::lease::Lease;
use super::turn::Turn;

/// The host's view of the cluster.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// This host's name.
    pub member: String,
    /// Its lease as last known.
    pub lease: Lease,
    /// The last round's findings.
    pub turn: Turn,
    /// Agents this host has taken since its first round (a dead or leaving host's, or new).
    pub takeovers: u64,
    /// Agents this host has handed to another member.
    pub handovers: u64,
    /// Of those, agents handed over before their next owner said it was ready for them (a
    /// planned stop that ran out of time, or had nobody to hand them to).
    pub handovers_unready: u64,
    /// The awaited agents this host last said it is ready for.
    pub ready_for: Vec<String>,
    /// Times this host stopped its agents at its deadline.
    pub fenced: u64,
    /// Agents stopped here because another session took their XMPP resource.
    pub displaced: u64,
    /// Requests held at the fence.
    pub held: u64,
    /// The last round failed (etcd did not answer).
    pub round_failed: bool,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Status {
    /// Whether this host may act now.
    pub fn acting(&self, now: Instant) -> bool {
        self.lease.may_act(now)
    }

    /// The `/v1/cluster` document.
    pub fn to_json(&self, now: Instant) -> Value {
        let mut owned_by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (agent, o) in &self.turn.owners {
            owned_by.entry(&o.member).or_default().push(agent);
        }
        let members: Vec<Value> = self
            .turn
            .members
            .iter()
            .map(|m| {
                let agents = owned_by.get(m.name.as_str()).cloned().unwrap_or_default();
                json!({ "name": m.name, "weight": m.weight, "owns": agents.len(), "agents": agents })
            })
            .collect();
        let owned: Vec<Value> = self
            .turn
            .owned
            .iter()
            .map(|(agent, revision)| json!({ "agent": agent, "revision": revision }))
            .collect();
        json!({
            "member": self.member,
            "acting": self.acting(now),
            "lease": {
                "id": self.lease.id.map(|id| format!("{id:x}")),
                "reachable": self.lease.reachable,
                "actsForMs": self.lease.deadline.map(|d| ms(d.saturating_duration_since(now))),
                "renewalMs": self.lease.latency.map(ms),
                "renewalFailures": self.lease.failures,
                "lost": self.lease.lost,
                "onQuorumLoss": if self.lease.keep { "keep" } else { "fence" },
            },
            "members": members,
            "owned": owned,
            "takeovers": self.takeovers,
            "handovers": self.handovers,
            "handoversUnready": self.handovers_unready,
            "awaiting": self.turn.awaiting.len(),
            "readyFor": self.ready_for,
            "fenced": self.fenced,
            "displaced": self.displaced,
            "heldRequests": self.held,
            "lastRoundFailed": self.round_failed,
        })
    }

    /// The cluster's metric families (OpenMetrics text, no `# EOF`).
    pub fn metrics(&self, now: Instant) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, value: String| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{}{value}\n",
                if kind == "counter" {
                    format!("{name}_total ")
                } else {
                    format!("{name} ")
                }
            ));
        };
        family(
            "finesse_taskd_cluster_owned_agents",
            "gauge",
            "Agents this host owns on etcd.",
            self.turn.owned.len().to_string(),
        );
        family(
            "finesse_taskd_cluster_members",
            "gauge",
            "Live members of the cluster, as this host last read them.",
            self.turn.members.len().to_string(),
        );
        family(
            "finesse_taskd_cluster_acting",
            "gauge",
            "1 while this host may act for its agents (its lease is proven), else 0.",
            u8::from(self.acting(now)).to_string(),
        );
        family(
            "finesse_taskd_cluster_etcd_reachable",
            "gauge",
            "1 when the last call to etcd was answered, else 0.",
            u8::from(self.lease.reachable).to_string(),
        );
        family(
            "finesse_taskd_cluster_lease_renewal_seconds",
            "gauge",
            "How long the last successful lease renewal took.",
            format!("{:.6}", self.lease.latency.map_or(0.0, |d| d.as_secs_f64())),
        );
        family(
            "finesse_taskd_cluster_takeovers",
            "counter",
            "Agents this host claimed after its first round (another host's, or new).",
            self.takeovers.to_string(),
        );
        family(
            "finesse_taskd_cluster_handovers",
            "counter",
            "Agents this host handed to another member.",
            self.handovers.to_string(),
        );
        family(
            "finesse_taskd_cluster_handovers_unready",
            "counter",
            "Agents handed over before their next owner said it was ready for them (a planned stop out of time).",
            self.handovers_unready.to_string(),
        );
        family(
            "finesse_taskd_cluster_fenced",
            "counter",
            "Times this host stopped its agents at its lease deadline.",
            self.fenced.to_string(),
        );
        family(
            "finesse_taskd_cluster_displaced",
            "counter",
            "Agents stopped here because another session took their XMPP resource (ownership lost in-band).",
            self.displaced.to_string(),
        );
        family(
            "finesse_taskd_cluster_lease_lost",
            "counter",
            "Leases found expired when etcd answered again.",
            self.lease.lost.to_string(),
        );
        out
    }
}
