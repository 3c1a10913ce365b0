//! The `finesse` publisher of one node: an XMPP session to that node's server that keeps the
//! pubsub nodes, the auto-subscriptions and its own presence, publishes `<Update>` documents as
//! escaped text inside `<notification xmlns="http://jabber.org/protocol/pubsub">`, and watches
//! the agents' presence (for forced logout).
//!
//! It reconnects every 200 ms while its server is down, and drops (and counts) whatever it is
//! asked to publish meanwhile, as a Finesse whose Notification Service is down would.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_xmpp::Stanza;
use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::ping::Ping;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::parsers::pubsub::pubsub::{Create, Item, PubSub, Publish, Subscribe};
use tokio_xmpp::parsers::pubsub::{ItemId, NodeName};
use tokio_xmpp::stanzastream::{Event, StanzaStream, StreamEvent};
use tracing::{debug, info, warn};

use crate::locks::lock;
use crate::xmpp_client::{self, Login};

const PUBSUB_NS: &str = "http://jabber.org/protocol/pubsub";
/// The namespace a real Finesse 12.5 puts `notification` in.
const PUSH_NS: &str = "urn:xmpp:push:0";
const RETRY: Duration = Duration::from_millis(200);

enum Command {
    Publish {
        path: String,
        update: String,
        push: bool,
    },
    Available(bool),
}

/// The cheap, cloneable side of a publisher.
#[derive(Clone)]
pub struct PublisherHandle {
    tx: mpsc::UnboundedSender<Command>,
    online: watch::Receiver<bool>,
}

/// The receiving side, handed to [`run`].
pub struct PublisherInbox {
    rx: mpsc::UnboundedReceiver<Command>,
    online: watch::Sender<bool>,
}

/// A connected pair.
pub fn channel() -> (PublisherHandle, PublisherInbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (online_tx, online_rx) = watch::channel(false);
    (
        PublisherHandle {
            tx,
            online: online_rx,
        },
        PublisherInbox {
            rx,
            online: online_tx,
        },
    )
}

impl PublisherHandle {
    /// Publishes an `<Update>` document on a pubsub node, in a `notification` element of
    /// `urn:xmpp:push:0` when `push`, else of the pubsub namespace.
    pub fn publish(&self, path: &str, update: String, push: bool) {
        let _ = self.tx.send(Command::Publish {
            path: path.into(),
            update,
            push,
        });
    }

    /// Sets the `finesse` user's presence.
    pub fn set_available(&self, available: bool) {
        let _ = self.tx.send(Command::Available(available));
    }

    /// True while the session is up and its nodes and subscriptions are in place.
    pub fn is_online(&self) -> bool {
        *self.online.borrow()
    }

    /// Waits until the publisher is online, or `limit` passes.
    pub async fn wait_online(&self, limit: Duration) -> bool {
        let mut rx = self.online.clone();
        tokio::time::timeout(limit, rx.wait_for(|up| *up))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// What the publisher needs of its node (the cluster's node implements it, so the publisher
/// does not depend on the cluster).
pub trait NodeState: Send + Sync {
    /// The node's name, for logs.
    fn name(&self) -> &str;
    /// Agents whose presence the publisher sees: id -> (available, since).
    fn presence(&self) -> &std::sync::Mutex<std::collections::HashMap<String, (bool, Instant)>>;
    /// The `finesse_unavailable` fault is on.
    fn finesse_unavailable(&self) -> bool;
}

/// What the publisher logs in as and sets up.
pub struct PublisherSpec {
    /// Login parameters for the `finesse` account.
    pub login: Login,
    /// Agent ids served by the cluster.
    pub agents: Vec<String>,
    /// Subscribe agents to their Media and Dialogs/Media nodes.
    pub auto_subscribe_media: bool,
    /// (agent, MRD) of every per-MRD Media node, `/finesse/api/User/{id}/Media/{mrd}`, which
    /// Finesse subscribes its users to by itself.
    pub media_nodes: Vec<(String, u32)>,
}

struct Session {
    stream: StanzaStream,
    pubsub: Jid,
    domain: String,
    ready_id: Option<String>,
    next_id: u64,
}

impl Session {
    async fn send(&mut self, stanza: Stanza) {
        let _ = self.stream.send(Box::new(stanza)).await;
    }

    async fn iq(&mut self, payload: PubSub) {
        self.next_id += 1;
        let iq = Iq::from_set(format!("p{}", self.next_id), payload).with_to(self.pubsub.clone());
        self.send(iq.into()).await;
    }
}

/// Runs the publisher of node `index` until `cancel` fires.
pub async fn run(
    spec: PublisherSpec,
    mut inbox: PublisherInbox,
    node: Arc<dyn NodeState>,
    cancel: CancellationToken,
) {
    let domain = spec.login.domain().to_owned();
    let pubsub = match Jid::new(&format!("pubsub.{domain}")) {
        Ok(j) => j,
        Err(e) => {
            warn!(error = %e, "bad pubsub JID; publisher not started");
            return;
        }
    };
    let stream = xmpp_client::stream(spec.login.clone(), RETRY, cancel.clone());
    let mut s = Session {
        stream,
        pubsub,
        domain,
        ready_id: None,
        next_id: 0,
    };
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            ev = s.stream.next() => match ev {
                None => break,
                Some(Event::Stream(StreamEvent::Reset { .. })) => {
                    info!(node = %node.name(), "publisher online; setting up nodes");
                    {
                        let now = Instant::now();
                        let mut presence = lock(node.presence());
                        for agent in &spec.agents {
                            presence.insert(agent.clone(), (false, now));
                        }
                    }
                    set_up(&mut s, &spec, !node.finesse_unavailable()).await;
                }
                Some(Event::Stream(StreamEvent::Suspended)) => {
                    info!(node = %node.name(), "publisher lost its session");
                    inbox.online.send_replace(false);
                }
                Some(Event::Stream(StreamEvent::Resumed)) => {}
                Some(Event::Stanza(Stanza::Presence(p))) => on_presence(node.presence(), &s.domain, &p),
                Some(Event::Stanza(Stanza::Iq(iq))) => {
                    let id = iq.id().to_owned();
                    if let Iq::Error { error, .. } = &iq {
                        debug!(node = %node.name(), %id, ?error, "pubsub request failed");
                    }
                    if s.ready_id.as_deref() == Some(id.as_str()) {
                        s.ready_id = None;
                        inbox.online.send_replace(true);
                    }
                }
                Some(_) => {}
            },
            Some(cmd) = inbox.rx.recv() => match cmd {
                Command::Publish { path, update, push } => {
                    if !*inbox.online.borrow() {
                        debug!(node = %node.name(), %path, "publisher offline; notification lost");
                        continue;
                    }
                    s.next_id += 1;
                    let payload = Element::builder("notification", if push { PUSH_NS } else { PUBSUB_NS }).append(update).build();
                    let item = Item { id: Some(ItemId(format!("n{}", s.next_id))), publisher: None, payload: Some(payload) };
                    s.iq(PubSub::Publish {
                        publish: Publish { node: NodeName(path), items: vec![item] },
                        publish_options: None,
                    }).await;
                }
                Command::Available(up) => {
                    let presence = if up { Presence::available() } else { Presence::new(PresenceType::Unavailable) };
                    s.send(presence.into()).await;
                }
            },
        }
    }
    inbox.online.send_replace(false);
    let _ = tokio::time::timeout(Duration::from_secs(2), s.stream.close()).await;
}

async fn set_up(s: &mut Session, spec: &PublisherSpec, available: bool) {
    let presence = if available {
        Presence::available()
    } else {
        Presence::new(PresenceType::Unavailable)
    };
    s.send(presence.into()).await;
    let mut nodes = vec![("/finesse/api/SystemInfo".to_owned(), None)];
    for agent in &spec.agents {
        let media = [
            format!("/finesse/api/User/{agent}/Media"),
            format!("/finesse/api/User/{agent}/Dialogs/Media"),
        ];
        for path in media {
            nodes.push((path, Some(agent.clone())));
        }
    }
    // The per-MRD Media nodes: Finesse subscribes its users to these itself (FAQ).
    let mut per_mrd = Vec::new();
    for (agent, mrd) in &spec.media_nodes {
        per_mrd.push((
            format!("/finesse/api/User/{agent}/Media/{mrd}"),
            agent.clone(),
        ));
    }
    for path in nodes
        .iter()
        .map(|(p, _)| p)
        .chain(per_mrd.iter().map(|(p, _)| p))
    {
        s.iq(PubSub::Create {
            create: Create {
                node: Some(NodeName(path.clone())),
            },
            configure: None,
        })
        .await;
    }
    for agent in &spec.agents {
        let Ok(jid) = BareJid::new(&format!("{agent}@{}", s.domain)) else {
            continue;
        };
        for (path, owner) in &nodes {
            let wanted = match owner {
                None => true,
                Some(o) => spec.auto_subscribe_media && o == agent,
            };
            if wanted {
                s.iq(PubSub::Subscribe {
                    subscribe: Some(Subscribe {
                        jid: jid.clone().into(),
                        node: Some(NodeName(path.clone())),
                    }),
                    options: None,
                })
                .await;
            }
        }
    }
    // Stanzas of one session are handled in order: when this ping is answered, every create
    // and subscribe before it has been processed.
    s.next_id += 1;
    let id = format!("ready{}", s.next_id);
    let ping = Iq::from_get(id.clone(), Ping).with_to(Jid::from(
        BareJid::new(&s.domain).unwrap_or_else(|_| s.pubsub.to_bare()),
    ));
    s.ready_id = Some(id);
    s.send(ping.into()).await;
}

fn on_presence(
    presence: &std::sync::Mutex<std::collections::HashMap<String, (bool, Instant)>>,
    domain: &str,
    p: &Presence,
) {
    let Some(from) = p.from.as_ref() else { return };
    if from.domain().as_str() != domain {
        return;
    }
    let Some(user) = from.node() else { return };
    let available = match p.type_ {
        PresenceType::None => true,
        PresenceType::Unavailable => false,
        _ => return,
    };
    let mut map = lock(presence);
    if let Some(entry) = map.get_mut(user.as_str()) {
        if entry.0 != available {
            *entry = (available, Instant::now());
        }
    }
}

/// Waits until every node's publisher (by node name) has set its nodes up: 30 s, plus 25 ms
/// per agent (two pubsub nodes each take time at fleet scale: 2,000 agents need about 40 s).
pub async fn wait_all_online<'a>(
    publishers: impl IntoIterator<Item = (&'a str, &'a PublisherHandle)>,
    agents: usize,
) -> anyhow::Result<()> {
    let limit = Duration::from_secs(30) + Duration::from_millis(25) * agents as u32;
    for (name, publisher) in publishers {
        if !publisher.wait_online(limit).await {
            anyhow::bail!(
                "the publisher of node {name} did not come online within {} s",
                limit.as_secs()
            );
        }
    }
    Ok(())
}
