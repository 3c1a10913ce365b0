//! A plain tokio-xmpp client acting as an agent: it connects to one simulated node's Prosody
//! (trusting the run's test CA), sends presence, subscribes, and hands every pubsub
//! notification and presence to the test.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::parsers::ping::Ping;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::parsers::pubsub::NodeName;
use tokio_xmpp::parsers::pubsub::pubsub::{PubSub, Subscribe};
use tokio_xmpp::xmlstream::Timeouts;
use tokio_xmpp::{Client, Event, IqRequest, IqResponse, Stanza};

use finesse_taskd::xmpp::{Connector, TlsMode};

use super::{AGENT, PASSWORD, SimInfo};

/// A second account on the XMPP server: another agent, as hostile as any other user there.
pub const OTHER: &str = "1001002";
/// Its password in `config/sim.toml`.
pub const OTHER_PASSWORD: &str = "agent-1001002-secret";

/// The daemon's full JID (resource `taskd`) on the simulated domain.
pub fn daemon_jid(info: &SimInfo) -> Jid {
    format!("{AGENT}@{}/taskd", info.domain).parse().unwrap()
}

/// What the agent's client saw.
#[derive(Debug, Clone)]
pub enum Seen {
    /// A session came up (`sm` = the server offered stream management).
    Online { sm: bool },
    /// A pubsub item: the node and the unescaped `<Update>` text.
    Notification { node: String, update: String },
    /// Presence from someone.
    Presence { from: String, available: bool },
}

enum Cmd {
    Iq(Option<Jid>, IqRequest, oneshot::Sender<Result<(), String>>),
    Send(Box<Stanza>, oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

/// A connected agent.
pub struct Agent {
    cmd: mpsc::UnboundedSender<Cmd>,
    pub seen: mpsc::UnboundedReceiver<Seen>,
    pub jid: BareJid,
    /// Whether the server offered stream management on the first session.
    pub sm_offered: bool,
    pubsub: Jid,
}

impl Agent {
    /// Connects as the demo agent to node `node` over direct TLS.
    pub async fn connect(info: &SimInfo, node: &str) -> Agent {
        Self::connect_as(info, node, AGENT, PASSWORD, TlsMode::Direct).await
    }

    pub async fn connect_as(
        info: &SimInfo,
        node: &str,
        user: &str,
        password: &str,
        mode: TlsMode,
    ) -> Agent {
        Self::connect_full(info, node, user, password, mode, "test").await
    }

    /// Connects with an explicit resource.
    pub async fn connect_full(
        info: &SimInfo,
        node: &str,
        user: &str,
        password: &str,
        mode: TlsMode,
        resource: &str,
    ) -> Agent {
        let n = info.nodes.iter().find(|n| n.name == node).expect("node");
        let port = if mode == TlsMode::Direct {
            n.xmpp_secure_port
        } else {
            n.xmpp_port
        };
        let ca = std::fs::read(&info.ca_file).expect("CA");
        let tls = Connector::client_config_from_pem(&ca).expect("CA config");
        let addr = format!("127.0.0.1:{port}").parse().expect("addr");
        let jid: Jid = format!("{user}@{}/{resource}", info.domain)
            .parse()
            .expect("jid");
        let timeouts = Timeouts {
            read_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
        };
        let mut client = Client::new_with_connector(
            jid.clone(),
            password.to_owned(),
            // The test clients need no channel binding (ejabberd refuses the one computed).
            Connector::new(addr, mode, tls).without_channel_binding(),
            timeouts,
        );
        let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<Cmd>();
        let (seen_tx, seen_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    ev = client.next() => match ev {
                        None => break,
                        Some(Event::Online { features, resumed, .. }) => {
                            if !resumed {
                                let _ = client.send_stanza(Presence::available().into()).await;
                            }
                            let _ = seen_tx.send(Seen::Online { sm: features.stream_management.is_some() });
                        }
                        Some(Event::Stanza(Stanza::Message(m))) => {
                            for payload in &m.payloads {
                                for seen in notifications(payload) {
                                    let _ = seen_tx.send(seen);
                                }
                            }
                        }
                        Some(Event::Stanza(Stanza::Presence(p))) => {
                            let available = match p.type_ {
                                PresenceType::None => true,
                                PresenceType::Unavailable => false,
                                _ => continue,
                            };
                            let from = p.from.map(|f| f.to_bare().to_string()).unwrap_or_default();
                            let _ = seen_tx.send(Seen::Presence { from, available });
                        }
                        Some(_) => {}
                    },
                    cmd = cmd_rx.recv() => match cmd {
                        None => break,
                        Some(Cmd::Iq(to, req, done)) => {
                            let token = client.send_iq(to, req).await;
                            tokio::spawn(async move {
                                let r = match tokio::time::timeout(Duration::from_secs(3), token).await {
                                    Ok(Ok(IqResponse::Result(_))) => Ok(()),
                                    Ok(Ok(IqResponse::Error(e))) => Err(format!("{e:?}")),
                                    Ok(Err(e)) => Err(format!("{e:?}")),
                                    Err(_) => Err("timeout".to_owned()),
                                };
                                let _ = done.send(r);
                            });
                        }
                        Some(Cmd::Send(stanza, done)) => {
                            let _ = client.send_stanza(*stanza).await;
                            let _ = done.send(());
                        }
                        Some(Cmd::Close(done)) => {
                            let _ = client.send_end().await;
                            let _ = done.send(());
                            return;
                        }
                    },
                }
            }
        });
        let pubsub = format!("pubsub.{}", info.domain)
            .parse()
            .expect("pubsub jid");
        let mut agent = Agent {
            cmd: cmd_tx,
            seen: seen_rx,
            jid: jid.to_bare(),
            sm_offered: false,
            pubsub,
        };
        let online = agent
            .wait_for(Duration::from_secs(10), |s| {
                matches!(s, Seen::Online { .. })
            })
            .await;
        agent.sm_offered = matches!(online, Seen::Online { sm: true });
        agent
    }

    async fn iq(&self, to: Option<Jid>, req: IqRequest) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Iq(to, req, tx))
            .map_err(|_| "client gone".to_owned())?;
        rx.await.map_err(|_| "client gone".to_owned())?
    }

    /// Subscribes the bare JID to a pubsub node.
    pub async fn subscribe(&self, node: &str) {
        let req = IqRequest::Set(
            PubSub::Subscribe {
                subscribe: Some(Subscribe {
                    jid: self.jid.clone().into(),
                    node: Some(NodeName(node.to_owned())),
                }),
                options: None,
            }
            .into(),
        );
        self.iq(Some(self.pubsub.clone()), req)
            .await
            .expect("subscribe");
    }

    /// Subscribes to the agent's Media and Dialogs/Media nodes.
    pub async fn subscribe_media(&self) {
        self.subscribe(&format!("/finesse/api/User/{AGENT}/Media"))
            .await;
        self.subscribe(&format!("/finesse/api/User/{AGENT}/Dialogs/Media"))
            .await;
    }

    /// An XEP-0199 ping to the server: Ok when answered within 3 s.
    pub async fn ping(&self) -> Result<(), String> {
        let domain: Jid = self
            .jid
            .domain()
            .as_str()
            .parse()
            .map_err(|e| format!("{e}"))?;
        self.iq(Some(domain), IqRequest::Get(Ping.into())).await
    }

    /// Pings `to` (another client's full JID): Ok when it answers with a result.
    pub async fn ping_jid(&self, to: Jid) -> Result<(), String> {
        self.iq(Some(to), IqRequest::Get(Ping.into())).await
    }

    /// Sends `to` an IQ get with a payload nobody knows: Err with the error it answers.
    pub async fn unknown_iq(&self, to: Jid) -> Result<(), String> {
        let payload = tokio_xmpp::minidom::Element::builder("query", "urn:example:unknown").build();
        self.iq(Some(to), IqRequest::Get(payload)).await
    }

    /// Sends a raw stanza.
    pub async fn send(&self, stanza: Stanza) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Send(Box::new(stanza), tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Waits for the first event matching `want`, skipping others; panics after `limit`.
    pub async fn wait_for(&mut self, limit: Duration, mut want: impl FnMut(&Seen) -> bool) -> Seen {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.seen.recv()).await {
                Ok(Some(s)) if want(&s) => return s,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("agent client ended"),
                Err(_) => panic!("no matching XMPP event within {limit:?}"),
            }
        }
    }

    /// The next notification whose update contains every one of `parts`.
    pub async fn notification(&mut self, parts: &[&str]) -> (String, String) {
        match self
            .wait_for(Duration::from_secs(10), |s| {
                matches!(s, Seen::Notification { update, .. } if parts.iter().all(|p| update.contains(p)))
            })
            .await
        {
            Seen::Notification { node, update } => (node, update),
            _ => unreachable!(),
        }
    }

    /// The next notification, whatever it is.
    pub async fn next_notification(&mut self) -> (String, String) {
        match self
            .wait_for(Duration::from_secs(10), |s| {
                matches!(s, Seen::Notification { .. })
            })
            .await
        {
            Seen::Notification { node, update } => (node, update),
            _ => unreachable!(),
        }
    }

    /// Closes the session cleanly (presence goes unavailable).
    pub async fn close(self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Close(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
        }
    }
}

/// Pubsub items in a message payload: `event/items/item/notification` (matched by local
/// name, as some servers re-namespace it), with the escaped text read back as XML.
fn notifications(payload: &tokio_xmpp::minidom::Element) -> Vec<Seen> {
    let mut out = Vec::new();
    if payload.name() != "event" {
        return out;
    }
    for items in payload.children().filter(|c| c.name() == "items") {
        let node = items.attr("node").unwrap_or_default().to_owned();
        for item in items.children().filter(|c| c.name() == "item") {
            for n in item.children().filter(|c| c.name() == "notification") {
                out.push(Seen::Notification {
                    node: node.clone(),
                    update: n.text(),
                });
            }
        }
    }
    out
}
