//! The simulated cluster: the shared truth, the nodes with their fault switches, the request
//! log, and the fan-out that turns truth [`Effect`]s into per-node notifications.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::prosody::Prosody;
use crate::publisher::PublisherHandle;
use crate::truth::{Effect, Truth};
use crate::xml;

/// How a node's REST listener behaves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestMode {
    /// Answers normally.
    #[default]
    Up,
    /// The listener is closed: connections are refused, open ones are dropped.
    Refused,
    /// Requests are accepted and never answered.
    Hang,
}

/// One node's fault switches. Every field can be switched on and off at run time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// CTI lost: SystemInfo OUT_OF_SERVICE, every other REST call 503, no events.
    pub out_of_service: bool,
    /// REST listener behaviour.
    pub rest: RestMode,
    /// Every REST call but SystemInfo answers 500 (CTI loss not yet detected).
    pub http_500: bool,
    /// The `finesse` publisher's presence is UNAVAILABLE (Tomcat down).
    pub finesse_unavailable: bool,
    /// Notifications are dropped silently.
    pub drop_notifications: bool,
    /// Every REST answer is delayed this long (a slow Finesse), in milliseconds.
    pub delay_ms: u64,
    /// Finesse maintenance mode (12.6+) on this node: SystemInfo shows `finesseMMode`
    /// IN_PROGRESS (status stays IN_SERVICE), and desktops must move to the other node.
    pub maintenance: bool,
}

/// One REST request as the node saw it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    /// Position in the log, from 1.
    pub seq: u64,
    /// Node name.
    pub node: String,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Request body (XML), if any.
    pub body: String,
    /// RFC 3339 time with milliseconds.
    pub time: String,
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
    /// The status answered (0 while unanswered, e.g. hanging).
    pub status: u16,
    /// The Basic-auth user, if any.
    pub user: Option<String>,
    /// The `Authorization` scheme, lower case (`basic`, `bearer`), if any.
    pub auth: Option<String>,
    /// The IdS's sequence number of the Bearer token sent, if it issued it.
    pub token_seq: Option<u64>,
    /// The client's address and port (tells apart processes that bind their own source
    /// addresses, such as hosts of a cluster on one machine).
    pub peer: Option<String>,
}

/// The client address of a REST connection, handed to the request log.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// A simulated Finesse node.
pub struct Node {
    /// Position (0 = side A).
    pub index: usize,
    /// Its name ("A", "B").
    pub name: String,
    /// Host it reports.
    pub host: String,
    /// Base URL of its REST listener.
    pub rest_url: String,
    /// REST port.
    pub rest_port: u16,
    /// XMPP STARTTLS port.
    pub xmpp_port: u16,
    /// XMPP direct-TLS port.
    pub xmpp_secure_port: u16,
    /// The XMPP server's own ports (STARTTLS, direct TLS) behind the two above, which the
    /// node's network forwards to; the simulator's publisher connects to them directly.
    pub xmpp_server_ports: (u16, u16),
    /// The network between the agents and this node, per link.
    pub network: crate::network::Network,
    /// Fault switches; the listener watches them.
    pub faults: watch::Sender<Faults>,
    /// The node's XMPP publisher.
    pub publisher: PublisherHandle,
    /// Its Prosody, when the simulator spawned it.
    pub prosody: tokio::sync::Mutex<Option<Prosody>>,
    /// Agents whose presence this node's publisher sees: id -> (available, since).
    pub presence: Mutex<HashMap<String, (bool, Instant)>>,
    /// REST connections accepted (each one cost its client a TCP and a TLS handshake).
    pub connections: std::sync::atomic::AtomicU64,
    /// XMPP-over-WebSocket sessions relayed by the HTTPS front end.
    pub ws_sessions: std::sync::atomic::AtomicU64,
}

impl Node {
    /// The node's current faults.
    pub fn faults(&self) -> Faults {
        self.faults.borrow().clone()
    }

    /// SystemInfo status this node reports.
    pub fn status(&self) -> &'static str {
        if self.faults.borrow().out_of_service {
            "OUT_OF_SERVICE"
        } else {
            "IN_SERVICE"
        }
    }

    /// The address block SystemInfo shows for this node.
    pub fn addr(&self) -> xml::NodeAddr {
        xml::NodeAddr {
            host: self.host.clone(),
            https_port: self.rest_port,
            xmpp_port: self.xmpp_port,
            xmpp_secure_port: self.xmpp_secure_port,
        }
    }
}

/// The whole simulator state.
pub struct Cluster {
    /// CCE truth.
    pub truth: Mutex<Truth>,
    /// The nodes, side A first.
    pub nodes: Vec<Arc<Node>>,
    /// XMPP domain.
    pub domain: String,
    /// Every REST request received.
    pub requests: Mutex<VecDeque<RequestRecord>>,
    /// When the simulator started.
    pub started: Instant,
    /// Notification count per node (published, dropped).
    pub published: Mutex<Vec<(u64, u64)>>,
    /// The chat-session service behind the tasks.
    pub chat: Arc<crate::chat::Chat>,
    /// Canned REST answers by (node, path), for bad-input tests.
    pub overrides: Mutex<HashMap<(usize, String), Override>>,
    /// The IdS (SSO mode and its tokens).
    pub ids: Mutex<crate::ids::Ids>,
    /// Relays to other loopback services, by id (their index).
    pub relays: Mutex<Vec<Arc<crate::network::relay::Relay>>>,
}

/// A canned REST answer that replaces the normal one for a path.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// The path (without query) it applies to.
    pub path: String,
    /// HTTP status.
    #[serde(default = "ok_status")]
    pub status: u16,
    /// The body.
    #[serde(default)]
    pub body: String,
    /// The body is repeated this many times (to build huge bodies).
    #[serde(default = "one")]
    pub repeat: usize,
    /// Content-Type.
    #[serde(default = "xml_type")]
    pub content_type: String,
}

fn ok_status() -> u16 {
    200
}
fn one() -> usize {
    1
}
fn xml_type() -> String {
    "application/xml".into()
}

/// The request log keeps at most this many entries.
pub const REQUEST_LOG_CAP: usize = 100_000;

pub use crate::locks::lock;

impl crate::publisher::NodeState for Node {
    fn name(&self) -> &str {
        &self.name
    }

    fn presence(&self) -> &Mutex<HashMap<String, (bool, Instant)>> {
        &self.presence
    }

    fn finesse_unavailable(&self) -> bool {
        self.faults().finesse_unavailable
    }
}

impl Cluster {
    /// Makes `password` (an SSO access token) the agent's XMPP password on every node.
    pub async fn set_xmpp_password(&self, agent: &str, password: &str) -> anyhow::Result<()> {
        for n in &self.nodes {
            if let Some(p) = n.prosody.lock().await.as_mut() {
                p.set_password(agent, password).await?;
            }
        }
        Ok(())
    }

    /// The node by name (case-insensitive) or index.
    pub fn node(&self, name: &str) -> Option<&Arc<Node>> {
        self.nodes.iter().find(|n| {
            n.name.eq_ignore_ascii_case(name) || name.parse::<usize>().ok() == Some(n.index)
        })
    }

    /// Appends to the request log and returns the record's sequence number.
    pub fn log_request(&self, mut record: RequestRecord) -> u64 {
        let mut log = lock(&self.requests);
        record.seq = log.back().map_or(1, |r| r.seq + 1);
        record.at_ms = self.started.elapsed().as_millis() as u64;
        record.time = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
        let seq = record.seq;
        if log.len() >= REQUEST_LOG_CAP {
            log.pop_front();
        }
        log.push_back(record);
        seq
    }

    /// Records the status a logged request was answered with.
    pub fn log_status(&self, seq: u64, status: u16) {
        let mut log = lock(&self.requests);
        if let Some(r) = log.iter_mut().rev().find(|r| r.seq == seq) {
            r.status = status;
        }
    }

    /// Publishes `effects` on every node that is up, each node rendering its own view.
    /// `request_id` is the `requestId` header of the request that caused them, if any.
    pub fn notify(&self, effects: &[Effect], request_id: &str) {
        if effects.is_empty() {
            return;
        }
        let truth = lock(&self.truth);
        let push = truth.behaviour.push_namespace;
        for node in &self.nodes {
            for effect in effects {
                let (path, update) = render(&truth, node.index, effect, request_id);
                self.publish(node, &path, update, push);
            }
        }
    }

    /// A Media effect for every media of every agent.
    pub fn all_media_effects(&self) -> Vec<Effect> {
        let truth = lock(&self.truth);
        truth
            .agents
            .values()
            .flat_map(|a| {
                a.media.keys().map(|mrd| Effect::Media {
                    agent: a.id.clone(),
                    mrd: *mrd,
                })
            })
            .collect()
    }

    /// Publishes `effects` on one node only.
    pub fn notify_node(&self, node: &Node, effects: &[Effect]) {
        let (rendered, push): (Vec<(String, String)>, bool) = {
            let truth = lock(&self.truth);
            let rendered = effects
                .iter()
                .map(|e| render(&truth, node.index, e, ""))
                .collect();
            (rendered, truth.behaviour.push_namespace)
        };
        for (path, update) in rendered {
            self.publish(node, &path, update, push);
        }
    }

    /// Publishes one `<Update>` on one node (in the push namespace when `push`), unless that
    /// node publishes nothing right now. The caller reads `push` from the behaviour, so this
    /// takes no lock on the truth (callers often hold it).
    pub fn publish(&self, node: &Node, path: &str, update: String, push: bool) {
        let faults = node.faults();
        let dropped = faults.out_of_service || faults.drop_notifications;
        let mut counts = lock(&self.published);
        if let Some(c) = counts.get_mut(node.index) {
            if dropped { c.1 += 1 } else { c.0 += 1 }
        }
        if !dropped {
            node.publisher.publish(path, update, push);
        }
    }

    /// Publishes a SystemInfo update from `node` (even while it is out of service: this is
    /// how Finesse announces it).
    pub fn publish_system_info(&self, node: &Node, with_ports: bool) {
        let data = self.system_info(node, with_ports);
        let (event, push) = {
            let t = lock(&self.truth);
            (t.event("PUT"), t.behaviour.push_namespace)
        };
        let update = xml::update(&data, &event, "", "/finesse/api/SystemInfo");
        node.publisher
            .publish("/finesse/api/SystemInfo", update, push);
    }

    /// The SystemInfo document as `node` serves it.
    pub fn system_info(&self, node: &Node, with_ports: bool) -> String {
        let primary = self.nodes.first().map(|n| n.addr());
        let secondary = self.nodes.get(1).map(|n| n.addr());
        match primary {
            Some(p) => xml::system_info(
                node.status(),
                &self.domain,
                &p,
                secondary.as_ref(),
                with_ports,
                node.faults().maintenance,
                lock(&self.ids).enabled,
            ),
            None => String::new(),
        }
    }
}

/// The pubsub node and `<Update>` one node publishes for one effect.
fn render(truth: &Truth, node: usize, effect: &Effect, request_id: &str) -> (String, String) {
    match effect {
        Effect::Media { agent, mrd } => {
            let path = if truth.behaviour.media_per_mrd_node {
                format!("/finesse/api/User/{agent}/Media/{mrd}")
            } else {
                format!("/finesse/api/User/{agent}/Media")
            };
            let source = format!("/finesse/api/User/{agent}/Media/{mrd}");
            let view = truth.media_view(agent, *mrd, node);
            let data = truth
                .mrds
                .get(mrd)
                .map(|m| xml::media(agent, *mrd, m, view.as_ref(), truth.notification_shape()))
                .unwrap_or_default();
            let update = xml::media_update(
                &data,
                &truth.event("PUT"),
                request_id,
                &source,
                truth.behaviour.cisco_element_order,
            );
            (path, update)
        }
        Effect::Dialog { event, dialog } => {
            let path = format!("/finesse/api/User/{}/Dialogs/Media", dialog.agent);
            let name = truth
                .mrds
                .get(&dialog.mrd)
                .map(|m| m.name.as_str())
                .unwrap_or("");
            let body = xml::dialog(dialog, name);
            let (data, source) = if *event == "PUT" {
                // A changed dialog under a lower-camel wrapper: the object itself inside it,
                // or (switch off) its fields directly.
                let inner = if truth.behaviour.changed_dialog_wrapper {
                    body.as_str()
                } else {
                    body.strip_prefix("<Dialog>")
                        .and_then(|b| b.strip_suffix("</Dialog>"))
                        .unwrap_or(&body)
                };
                (
                    format!("<dialog>{inner}</dialog>"),
                    format!("/finesse/api/Dialog/{}", dialog.id),
                )
            } else {
                (
                    format!("<dialogs>{body}</dialogs>"),
                    format!(
                        "/finesse/api/User/{}/Media/{}/Dialogs",
                        dialog.agent, dialog.mrd
                    ),
                )
            };
            (
                path,
                xml::update(&data, &truth.event(event), request_id, &source),
            )
        }
    }
}
