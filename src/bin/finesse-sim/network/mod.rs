//! The network between the agents and a node, made by the simulator itself (no netem, which
//! our machines lack): every connection a client opens to a node's REST port (and its
//! WebSocket front end) or XMPP ports passes through a shaper whose conditions can be changed
//! at any time, per node and per link, from the admin API, the CLI (`--rtt 40ms`, …) and
//! `[network]` in the simulator's config.
//!
//! The conditions are toxiproxy's toxics, which users know, by their meaning here:
//! - `latency_ms` ± `jitter_ms` per direction (toxiproxy `latency`), added to each chunk in
//!   order: a later chunk never overtakes an earlier one, so jitter never reorders bytes;
//! - `bandwidth` in bytes per second per direction (toxiproxy `bandwidth`);
//! - `stall` per direction: the connection stays open and nothing passes, no FIN, no RST
//!   (toxiproxy `timeout` with 0, the silent dead link); one direction alone is a half-open
//!   link;
//! - `blackhole`: new connections are accepted and never answered (what a firewall that drops
//!   after the handshake, or a load balancer that forgot the connection, looks like);
//! - `reset`: every open connection is reset (RST) now and each new one at once (toxiproxy
//!   `reset_peer`);
//! - `slow_close_ms`: a close reaches the other side this much later (toxiproxy
//!   `slow_close`).
//!
//! [`relay`] puts the same conditions between a test's own processes and any other loopback
//! service (etcd for a cluster's hosts).
//!
//! A connection that no toxic touches is carried byte for byte. The simulator's own clients
//! (its publisher) reach the XMPP servers directly, so a fault is always between an agent and
//! the node.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

mod pipe;
mod proxy;
pub mod relay;
#[cfg(test)]
mod tests;

pub use pipe::{carry, swallow};
pub use proxy::forward;

/// One direction's conditions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Direction {
    /// Delay added to each chunk, in milliseconds.
    pub latency_ms: u64,
    /// Each chunk's delay varies uniformly by up to this much either way (never reordering).
    pub jitter_ms: u64,
    /// Bytes per second; 0 is no limit.
    pub bandwidth: u64,
    /// Nothing passes in this direction while set (bytes wait; nothing is closed).
    pub stall: bool,
}

/// One link's conditions (a node's REST port, or its XMPP ports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Conditions {
    /// Client to node.
    pub upstream: Direction,
    /// Node to client.
    pub downstream: Direction,
    /// New connections are accepted and never answered.
    pub blackhole: bool,
    /// Open connections are reset now, new ones at once.
    pub reset: bool,
    /// A close reaches the other side this much later, in milliseconds.
    pub slow_close_ms: u64,
}

impl Conditions {
    /// Symmetric conditions: half of `rtt` each way, `jitter` each way, `bandwidth` each way.
    pub fn symmetric(rtt: Duration, jitter: Duration, bandwidth: u64) -> Self {
        let one_way = Direction {
            latency_ms: u64::try_from(rtt.as_millis() / 2).unwrap_or(u64::MAX),
            jitter_ms: u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX),
            bandwidth,
            stall: false,
        };
        Self {
            upstream: one_way,
            downstream: one_way,
            ..Self::default()
        }
    }

    /// The round trip the latencies add (without jitter).
    pub fn rtt(&self) -> Duration {
        Duration::from_millis(
            self.upstream
                .latency_ms
                .saturating_add(self.downstream.latency_ms),
        )
    }

    /// These conditions with `patch` applied: a JSON object with any of the fields above
    /// (nested objects merge), plus shorthands for both directions at once: `rtt_ms` (half
    /// each way), `jitter_ms`, `bandwidth` and `stall`. An unknown field is an error that
    /// names it.
    pub fn patched(&self, patch: &serde_json::Value) -> Result<Self, String> {
        let serde_json::Value::Object(fields) = patch else {
            return Err("the patch must be a JSON object".into());
        };
        let mut both = serde_json::Map::new();
        let mut own = serde_json::Map::new();
        for (key, value) in fields {
            match key.as_str() {
                "rtt_ms" => {
                    let rtt = value
                        .as_u64()
                        .ok_or("rtt_ms: a whole number of milliseconds")?;
                    both.insert("latency_ms".into(), (rtt / 2).into());
                }
                "jitter_ms" | "bandwidth" | "stall" => {
                    both.insert(key.clone(), value.clone());
                }
                _ => {
                    own.insert(key.clone(), value.clone());
                }
            }
        }
        let mut merged = serde_json::to_value(self).map_err(|e| e.to_string())?;
        merge(&mut merged, &serde_json::Value::Object(own));
        if !both.is_empty() {
            let both = serde_json::Value::Object(both);
            for way in ["upstream", "downstream"] {
                if let Some(d) = merged.get_mut(way) {
                    merge(d, &both);
                }
            }
        }
        serde_path_to_error::deserialize(merged).map_err(|e| e.to_string())
    }
}

/// Merges `patch` into `into` (objects key by key, anything else replaced).
fn merge(into: &mut serde_json::Value, patch: &serde_json::Value) {
    match (into, patch) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// Which of a node's links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    /// The HTTPS port: REST and the XMPP-over-WebSocket front end.
    Rest,
    /// The XMPP ports (STARTTLS and direct TLS).
    Xmpp,
}

impl Link {
    /// Every link.
    pub const ALL: [Link; 2] = [Link::Rest, Link::Xmpp];

    /// The path segment and JSON key.
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Rest => "rest",
            Link::Xmpp => "xmpp",
        }
    }

    /// The link spelled `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == text)
    }
}

/// A node's network: the conditions of each link, watched by its connections.
#[derive(Debug)]
pub struct Network {
    rest: watch::Sender<Conditions>,
    xmpp: watch::Sender<Conditions>,
}

impl Network {
    /// Both links under `initial`.
    pub fn new(initial: Conditions) -> Self {
        Self {
            rest: watch::channel(initial).0,
            xmpp: watch::channel(initial).0,
        }
    }

    fn sender(&self, link: Link) -> &watch::Sender<Conditions> {
        match link {
            Link::Rest => &self.rest,
            Link::Xmpp => &self.xmpp,
        }
    }

    /// The conditions of `link` now.
    pub fn get(&self, link: Link) -> Conditions {
        *self.sender(link).borrow()
    }

    /// Sets the conditions of `link`; open connections follow at once.
    pub fn set(&self, link: Link, conditions: Conditions) {
        self.sender(link).send_replace(conditions);
    }

    /// What a new connection on `link` watches.
    pub fn watch(&self, link: Link) -> watch::Receiver<Conditions> {
        self.sender(link).subscribe()
    }
}
