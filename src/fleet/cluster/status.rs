//! What a host shows of the cluster: `/v1/cluster` (the members, their leases, which agents
//! each owns, this host's fencing state) and the fleet's cluster metrics. Written by the
//! fleet after each round and each change of the lease; read by the API.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use utoipa::ToSchema;

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

/// What a host does while etcd has no quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuorumLoss {
    /// Stops acting at its lease's deadline.
    Fence,
    /// Keeps the agents it runs, claims nothing.
    Keep,
}

/// This host's lease.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaseDoc {
    /// The lease's id (hex), once granted.
    pub id: Option<String>,
    /// The last call to etcd was answered.
    pub reachable: bool,
    /// How long this host may still act without another renewal.
    pub acts_for_ms: Option<u64>,
    /// How long the last renewal took.
    pub renewal_ms: Option<u64>,
    /// Renewals that failed in a row.
    pub renewal_failures: u64,
    /// Leases found expired when etcd answered again.
    pub lost: u64,
    /// `[cluster] on_quorum_loss`.
    pub on_quorum_loss: QuorumLoss,
}

/// A live member and what it owns.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberDoc {
    /// Its name.
    pub name: String,
    /// Its weight.
    pub weight: f64,
    /// How many agents it owns.
    pub owns: usize,
    /// Which.
    pub agents: Vec<String>,
}

/// An agent this host owns.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OwnedDoc {
    /// The agent.
    pub agent: String,
    /// The ownership's identity (its key's create revision).
    pub revision: i64,
}

/// The `/v1/cluster` document.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDoc {
    /// This host's name.
    pub member: String,
    /// This host may act (its lease is proven).
    pub acting: bool,
    /// Its lease.
    pub lease: LeaseDoc,
    /// The live members.
    pub members: Vec<MemberDoc>,
    /// What this host owns.
    pub owned: Vec<OwnedDoc>,
    /// Agents taken since its first round.
    pub takeovers: u64,
    /// Agents handed to another member.
    pub handovers: u64,
    /// Of those, agents handed over before their next owner was ready.
    pub handovers_unready: u64,
    /// Agents another member owns that should be this host's.
    pub awaiting: usize,
    /// The awaited agents this host said it is ready for.
    pub ready_for: Vec<String>,
    /// Times this host stopped its agents at its deadline.
    pub fenced: u64,
    /// Agents stopped here because another session took their XMPP resource.
    pub displaced: u64,
    /// Requests held at the fence.
    pub held_requests: u64,
    /// The last round failed (etcd did not answer).
    pub last_round_failed: bool,
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
    pub fn doc(&self, now: Instant) -> ClusterDoc {
        let mut owned_by: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (agent, o) in &self.turn.owners {
            owned_by.entry(&o.member).or_default().push(agent.clone());
        }
        let members = self
            .turn
            .members
            .iter()
            .map(|m| {
                let agents = owned_by.remove(m.name.as_str()).unwrap_or_default();
                MemberDoc {
                    name: m.name.clone(),
                    weight: m.weight,
                    owns: agents.len(),
                    agents,
                }
            })
            .collect();
        let owned = self
            .turn
            .owned
            .iter()
            .map(|(agent, revision)| OwnedDoc {
                agent: agent.clone(),
                revision: *revision,
            })
            .collect();
        ClusterDoc {
            member: self.member.clone(),
            acting: self.acting(now),
            lease: LeaseDoc {
                id: self.lease.id.map(|id| format!("{id:x}")),
                reachable: self.lease.reachable,
                acts_for_ms: self
                    .lease
                    .deadline
                    .map(|d| ms(d.saturating_duration_since(now))),
                renewal_ms: self.lease.latency.map(ms),
                renewal_failures: self.lease.failures,
                lost: self.lease.lost,
                on_quorum_loss: if self.lease.keep {
                    QuorumLoss::Keep
                } else {
                    QuorumLoss::Fence
                },
            },
            members,
            owned,
            takeovers: self.takeovers,
            handovers: self.handovers,
            handovers_unready: self.handovers_unready,
            awaiting: self.turn.awaiting.len(),
            ready_for: self.ready_for.clone(),
            fenced: self.fenced,
            displaced: self.displaced,
            held_requests: self.held,
            last_round_failed: self.round_failed,
        }
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
