//! The daemon's XMPP link to Finesse's Notification Service: one long-lived [`StanzaStream`]
//! whose reconnector hands every "I need a connection" slot to the owner. The owner (the
//! driver, on the recovery machine's word) decides when and to which node to log in, so
//! backoff, jitter, failover and the stop after a rejected password all live in one place,
//! and no reconnect task is left behind. Liveness comes from tokio-xmpp's two-stage timeouts: after `ping_interval` of
//! silence it pings, and after `ping_timeout` without an answer the session is declared lost.
//! On top of that the link pings the server every `ping_interval` whatever arrives (Cisco:
//! the Notification Service expects a client ping every 20 s) and declares the session lost
//! when one goes unanswered for `ping_timeout`; it answers every IQ get/set the server sends
//! (a ping with a result, anything else with `service-unavailable`, as RFC 6120 requires);
//! and it takes pubsub events only from the pubsub service (anything else is reported as
//! spoofed). A loss is reported with its cause: a `conflict` stream error (seen by the
//! connector's socket wrapper), a ping that went unanswered, or any other loss.

use std::collections::VecDeque;

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_xmpp::Stanza;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::parsers::pubsub::NodeName;
use tokio_xmpp::parsers::pubsub::pubsub::{PubSub, Subscribe};
use tokio_xmpp::stanzastream::{Connection, Event, StanzaStream, StreamEvent};

use super::keepalive::{IqTurn, Pinger, Tick};
use super::scan::Fault;
use super::session::{LoggedIn, LoginFailed, LoginParams, login};
use crate::finesse::model::Update;
use crate::vocab::Cause;

/// What the link reports.
#[derive(Debug)]
pub enum LinkEvent {
    /// A new session is up (state was lost: presence, subscriptions and resync are due).
    Up,
    /// The session was lost: `conflict`, `xmpp_ping_timeout` or `xmpp_lost`.
    Down {
        /// Why.
        cause: Cause,
    },
    /// A Finesse notification.
    Update {
        /// The pubsub node it came from.
        node: String,
        /// The decoded update.
        update: Box<Update>,
    },
    /// A notification whose payload could not be decoded.
    Malformed {
        /// The pubsub node.
        node: String,
        /// Why.
        error: String,
    },
    /// The `finesse` user's presence changed.
    FinessePresence(bool),
    /// A pubsub event from someone other than the pubsub service (dropped).
    Spoofed {
        /// Who sent it.
        from: String,
    },
    /// An IQ of ours was answered.
    IqResult {
        /// Its id.
        id: String,
        /// False for an error answer.
        ok: bool,
    },
}

/// What a login learnt about the server, for the next ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Learnt {
    /// It refuses SCRAM channel binding (auto mode): log in without it from now on.
    pub binding_refused: bool,
}

/// The XMPP link.
pub struct Link {
    pub(super) stream: StanzaStream,
    pub(super) slots: mpsc::UnboundedReceiver<oneshot::Sender<Connection>>,
    pub(super) pending: Option<oneshot::Sender<Connection>>,
    pub(super) kill: Option<CancellationToken>,
    pub(super) up: bool,
    pub(super) queue: VecDeque<LinkEvent>,
    /// Our IQs awaiting an answer: id → the bare JID (lower case) they were sent to.
    pub(super) asked: std::collections::HashMap<String, String>,
    pub(super) publisher: String,
    /// What the scanner of the current connection found (a conflict, an oversize stanza).
    pub(super) faults: mpsc::UnboundedReceiver<Fault>,
    /// The fault that ended the last session, once read.
    pub(super) fault: Option<Fault>,
    /// `[xmpp] max_stanza`.
    pub(super) max_stanza: usize,
    pub(super) last_rx: tokio::time::Instant,
    pub(super) ping_interval: std::time::Duration,
    /// The pubsub service's bare JID, lower-case: the only sender of events.
    pub(super) pubsub: String,
    /// Stanzas to send before waiting again (answers to the server's IQs, our pings).
    pub(super) outbox: VecDeque<(Stanza, Option<String>)>,
    pub(super) pinger: Pinger,
}

impl Link {
    /// A link with no session yet.
    pub fn new() -> Self {
        let (tx, slots) = mpsc::unbounded_channel();
        let reconnector = move |_: Option<String>, slot: oneshot::Sender<Connection>| {
            // The owner holds the slot until it has a connection; it is dropped only when the
            // whole daemon stops.
            let _ = tx.send(slot);
        };
        Self {
            stream: StanzaStream::new(Box::new(reconnector), 64),
            slots,
            pending: None,
            kill: None,
            up: false,
            queue: VecDeque::new(),
            asked: std::collections::HashMap::new(),
            publisher: String::new(),
            faults: mpsc::unbounded_channel().1,
            fault: None,
            max_stanza: usize::MAX,
            last_rx: tokio::time::Instant::now(),
            ping_interval: std::time::Duration::MAX,
            pubsub: String::new(),
            outbox: VecDeque::new(),
            pinger: Pinger::new(
                std::time::Duration::from_secs(10),
                std::time::Duration::from_secs(5),
                tokio::time::Instant::now(),
            ),
        }
    }

    /// The same link, counting its client pings into `counter`.
    pub fn with_ping_counter(
        mut self,
        counter: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        let (count, _) = self.pinger.tally();
        let pinger = std::mem::replace(
            &mut self.pinger,
            Pinger::new(
                std::time::Duration::from_secs(10),
                std::time::Duration::from_secs(5),
                tokio::time::Instant::now(),
            ),
        );
        self.pinger = pinger.counting(count, Some(counter));
        self
    }

    /// Stanzas from the server above `bytes` drop the session (from the next login on).
    pub fn set_max_stanza(&mut self, bytes: u64) {
        self.max_stanza = usize::try_from(bytes).unwrap_or(usize::MAX);
    }

    /// Why the session just ended: another session took the resource, the link went silent
    /// past the ping interval (the ping went unanswered), or it closed or broke.
    pub(super) fn loss_cause(&mut self) -> Cause {
        while let Ok(f) = self.faults.try_recv() {
            self.fault.get_or_insert(f);
        }
        if let Some(fault) = self.fault {
            return match fault {
                Fault::Conflict => Cause::Conflict,
                Fault::Oversize | Fault::TooDeep => {
                    tracing::warn!(
                        ?fault,
                        max_stanza = self.max_stanza,
                        "XMPP stream dropped: the server sent more than a stanza may hold"
                    );
                    Cause::XmppOversize
                }
            };
        }
        if self.pinger.missed || self.silent_for() >= self.ping_interval {
            Cause::XmppPingTimeout
        } else {
            Cause::XmppLost
        }
    }

    /// True while a session is up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Ends the current session, if any (its socket fails; a `Down` event follows).
    pub fn drop_session(&mut self) {
        if let Some(kill) = self.kill.take() {
            kill.cancel();
        }
        self.up = false;
    }

    /// Logs in with `params` and hands the connection to the stream; pubsub events are then
    /// taken only from `pubsub`. Any live session is ended first. On success an `Up` event
    /// follows.
    pub async fn connect(
        &mut self,
        params: &LoginParams,
        pubsub: &Jid,
    ) -> Result<Learnt, LoginFailed> {
        self.drop_session();
        self.publisher = format!("finesse@{}", params.jid.domain());
        self.pubsub = pubsub.to_bare().as_str().to_ascii_lowercase();
        self.ping_interval = params.timeouts.read_timeout;
        self.outbox.clear();
        let (count, counter) = self.pinger.tally();
        self.pinger = Pinger::new(
            params.timeouts.read_timeout,
            params.timeouts.response_timeout,
            tokio::time::Instant::now(),
        )
        .counting(count, counter)
        .answered_by(params.jid.domain().as_str(), params.jid.to_bare().as_str());
        self.asked.clear();
        let kill = CancellationToken::new();
        let mut params = params.clone();
        let (faults_tx, faults) = mpsc::unbounded_channel();
        self.faults = faults;
        self.fault = None;
        params.connector = params
            .connector
            .with_kill_switch(kill.clone())
            .with_scanner(self.max_stanza, faults_tx);
        let logged_in = login(&params).await?;
        let gone = || LoginFailed::before_auth(tokio_xmpp::Error::Disconnected);
        let slot = loop {
            if let Some(slot) = self.pending.take() {
                break slot;
            }
            // The stream asks for a connection right after it loses one; drain its events
            // meanwhile so it can report the loss.
            tokio::select! {
                slot = self.slots.recv() => match slot {
                    Some(s) => self.pending = Some(s),
                    None => return Err(gone()),
                },
                ev = self.stream.next() => match ev {
                    Some(ev) => self.on_event(ev),
                    None => return Err(gone()),
                },
            }
        };
        let LoggedIn {
            connection,
            binding_refused,
        } = logged_in;
        if slot.send(connection).is_err() {
            return Err(gone());
        }
        self.kill = Some(kill);
        // The connection went to the stream; what the login learnt goes back to the caller.
        Ok(Learnt { binding_refused })
    }

    /// How long the session has been silent (nothing received, not even a ping answer).
    pub(super) fn silent_for(&self) -> std::time::Duration {
        self.last_rx.elapsed()
    }

    fn on_event(&mut self, ev: Event) {
        if !matches!(ev, Event::Stream(StreamEvent::Suspended)) {
            self.last_rx = tokio::time::Instant::now();
        }
        match ev {
            Event::Stream(StreamEvent::Reset { .. }) => {
                self.up = true;
                self.queue.push_back(LinkEvent::Up);
            }
            Event::Stream(StreamEvent::Suspended) => {
                if self.up {
                    self.up = false;
                    let cause = self.loss_cause();
                    tracing::warn!(
                        %cause,
                        silent_ms = self.silent_for().as_millis() as u64,
                        "XMPP session lost"
                    );
                    self.queue.push_back(LinkEvent::Down { cause });
                }
            }
            Event::Stream(StreamEvent::Resumed) => {}
            Event::Stanza(Stanza::Message(m)) => {
                let from = m
                    .from
                    .as_ref()
                    .map(|f| f.to_bare().as_str().to_ascii_lowercase());
                let is_event = m.payloads.iter().any(|p| p.name() == "event");
                if is_event && from.as_deref() != Some(self.pubsub.as_str()) {
                    self.queue.push_back(LinkEvent::Spoofed {
                        from: from.unwrap_or_default(),
                    });
                    return;
                }
                for payload in &m.payloads {
                    self.on_payload(payload);
                }
            }
            Event::Stanza(Stanza::Presence(p)) => {
                let Some(from) = p.from.as_ref() else { return };
                if from.to_bare().as_str() != self.publisher {
                    return;
                }
                match p.type_ {
                    PresenceType::None => self.queue.push_back(LinkEvent::FinessePresence(true)),
                    PresenceType::Unavailable => {
                        self.queue.push_back(LinkEvent::FinessePresence(false))
                    }
                    _ => {}
                }
            }
            Event::Stanza(Stanza::Iq(iq)) => match self.pinger.on_iq(iq) {
                IqTurn::PingAnswered => {}
                IqTurn::Answered { id, ok, from } => {
                    match answer(&mut self.asked, &id, from.as_ref()) {
                        Answer::Ours => self.queue.push_back(LinkEvent::IqResult { id, ok }),
                        Answer::Forged => self.queue.push_back(LinkEvent::Spoofed {
                            from: from.map(|j| j.to_string()).unwrap_or_default(),
                        }),
                        Answer::Unknown => {}
                    }
                }
                IqTurn::Forged { from } => self.queue.push_back(LinkEvent::Spoofed { from }),
                IqTurn::Reply(answer) => self.outbox.push_back((*answer, None)),
            },
        }
    }

    fn on_payload(&mut self, payload: &Element) {
        for (node, text) in notifications(payload) {
            let event = match Update::decode(&text) {
                Ok(update) => LinkEvent::Update {
                    node,
                    update: Box::new(update),
                },
                Err(e) => LinkEvent::Malformed {
                    node,
                    error: e.to_string(),
                },
            };
            self.queue.push_back(event);
        }
    }

    /// Puts events read by someone else (a resync waiting for an outcome) back in front of
    /// the queue, in their order.
    pub fn hand_back(&mut self, events: Vec<LinkEvent>) {
        for ev in events.into_iter().rev() {
            self.queue.push_front(ev);
        }
    }

    /// The next event. Cancel-safe: events are queued before they are returned.
    pub async fn next(&mut self) -> Option<LinkEvent> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Some(ev);
            }
            if self.up {
                self.flush().await;
            }
            let due = self.pinger.due();
            // Biased: what the stream already holds (a pong that came while nobody read the
            // link, during a long resync) is taken before the ping timer may judge it missing.
            tokio::select! {
                biased;
                slot = self.slots.recv() => match slot {
                    Some(s) => self.pending = Some(s),
                    None => return None,
                },
                ev = self.stream.next() => match ev {
                    Some(ev) => self.on_event(ev),
                    None => return None,
                },
                () = tokio::time::sleep_until(due), if self.up => self.on_ping_timer(),
            }
        }
    }

    /// The ping timer: declares the session lost when the ping went unanswered, else queues
    /// the next ping when it is due.
    fn on_ping_timer(&mut self) {
        match self.pinger.tick(tokio::time::Instant::now()) {
            Tick::Lost => {
                tracing::warn!(
                    timeout_ms = self.pinger.ping_timeout.as_millis() as u64,
                    "XMPP ping unanswered"
                );
                let cause = self.loss_cause();
                self.drop_session();
                self.queue.push_back(LinkEvent::Down { cause });
            }
            Tick::Send(ping, id) => self.outbox.push_back((*ping, Some(id))),
            Tick::Idle => {}
        }
    }

    /// Sends what the outbox holds; a ping's answer is awaited from the moment it is sent.
    async fn flush(&mut self) {
        while let Some((stanza, ping)) = self.outbox.pop_front() {
            let _ = self.stream.send(Box::new(stanza)).await;
            if let Some(id) = ping {
                self.pinger.sent(id, tokio::time::Instant::now());
            }
        }
    }

    /// Sends available presence (Finesse watches it).
    pub async fn send_presence(&mut self) {
        let _ = self
            .stream
            .send(Box::new(Presence::available().into()))
            .await;
    }

    /// Subscribes `jid` to `node` on `pubsub`; returns the IQ id to wait for.
    pub async fn subscribe(&mut self, pubsub: &Jid, jid: &Jid, node: &str) -> String {
        let id = super::keepalive::random_id("sub");
        self.asked
            .insert(id.clone(), pubsub.to_bare().as_str().to_ascii_lowercase());
        let payload = PubSub::Subscribe {
            subscribe: Some(Subscribe {
                jid: jid.clone(),
                node: Some(NodeName(node.to_owned())),
            }),
            options: None,
        };
        let iq = Iq::from_set(id.clone(), payload).with_to(pubsub.clone());
        let _ = self.stream.send(Box::new(iq.into())).await;
        id
    }
}

/// What an IQ answer is, given the IQs asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// The answer to one of ours, from whom it was sent to (it is no longer awaited).
    Ours,
    /// An awaited id from someone else.
    Forged,
    /// An id we did not ask.
    Unknown,
}

/// An answer counts only from whom the question went to.
fn answer(
    asked: &mut std::collections::HashMap<String, String>,
    id: &str,
    from: Option<&Jid>,
) -> Answer {
    let Some(to) = asked.get(id) else {
        return Answer::Unknown;
    };
    let by = from.map(|j| j.to_bare().as_str().to_ascii_lowercase());
    if by.as_deref() == Some(to.as_str()) {
        asked.remove(id);
        Answer::Ours
    } else {
        Answer::Forged
    }
}

impl Default for Link {
    fn default() -> Self {
        Self::new()
    }
}

/// The pubsub node and the text of each `notification` in a message payload, read as
/// `event/items/item/notification` by local name: servers and Finesse versions differ in the
/// namespace of `notification` (`http://jabber.org/protocol/pubsub`, `urn:xmpp:push:0`), and
/// a client insisting on one would lose them all.
pub fn notifications(payload: &Element) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if payload.name() != "event" {
        return out;
    }
    for items in payload.children().filter(|c| c.name() == "items") {
        let node = items.attr("node").unwrap_or_default();
        for item in items.children().filter(|c| c.name() == "item") {
            for n in item.children().filter(|c| c.name() == "notification") {
                out.push((node.to_owned(), n.text()));
            }
        }
    }
    out
}

#[cfg(test)]
mod answer_tests {
    use super::*;

    #[test]
    fn an_answer_counts_only_from_whom_the_question_went_to() {
        let mut asked = std::collections::HashMap::new();
        asked.insert("sub-1".to_owned(), "pubsub.finesse.local".to_owned());
        let other: Jid = "1001002@finesse.local/x".parse().unwrap();
        let pubsub: Jid = "PubSub.Finesse.local".parse().unwrap();
        assert_eq!(answer(&mut asked, "sub-1", Some(&other)), Answer::Forged);
        assert_eq!(answer(&mut asked, "sub-1", None), Answer::Forged);
        assert_eq!(answer(&mut asked, "sub-2", Some(&pubsub)), Answer::Unknown);
        assert_eq!(answer(&mut asked, "sub-1", Some(&pubsub)), Answer::Ours);
        // Answered once: a replay is nobody's.
        assert_eq!(answer(&mut asked, "sub-1", Some(&pubsub)), Answer::Unknown);
    }
}
