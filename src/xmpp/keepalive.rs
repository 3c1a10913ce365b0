//! The link's keep-alive and IQ manners, as decisions without I/O: a client ping every
//! `ping_interval` whatever arrives (Cisco's Notification Service expects one at least every
//! 20 s), the session declared lost when a ping goes unanswered for `ping_timeout`, and an
//! answer to every IQ the server sends (a ping with a result, anything else with
//! `service-unavailable`, as RFC 6120 wants). The link sends what these return.

use tokio::time::Instant;
use tokio_xmpp::Stanza;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::ping::Ping;
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

/// The client's own pings: one every `ping_interval`, each answered within `ping_timeout`.
#[derive(Debug)]
pub(super) struct Pinger {
    pub(super) ping_interval: std::time::Duration,
    pub(super) ping_timeout: std::time::Duration,
    next_at: Instant,
    awaiting: Option<(String, Instant)>,
    /// The last ping went unanswered (the session's loss is a ping timeout).
    pub(super) missed: bool,
    count: u64,
    counter: Option<prometheus_client::metrics::counter::Counter>,
}

/// What the ping timer asks for.
#[derive(Debug)]
pub(super) enum Tick {
    /// The ping went unanswered: the session is lost.
    Lost,
    /// Send this ping (its id is awaited from the moment it is sent).
    Send(Box<Stanza>, String),
    /// Nothing yet.
    Idle,
}

/// What an IQ from the server asks for.
#[derive(Debug)]
pub(super) enum IqTurn {
    /// It answered our ping: the link is alive.
    PingAnswered,
    /// It answered another IQ of ours.
    Answered {
        /// Its id.
        id: String,
        /// False for an error.
        ok: bool,
    },
    /// The server asked something: send this answer.
    Reply(Box<Stanza>),
}

/// When the ping after one sent at `now` goes out: a ping interval later, rounded down to the
/// process's grid (a hundredth of the interval), so that a fleet's pings leave in groups and
/// the runtime wakes once per group, never later than the interval.
fn next_ping(now: Instant, ping_interval: std::time::Duration) -> Instant {
    crate::timer_grid::round_down(now + ping_interval, ping_interval / 100, now)
}

impl Pinger {
    /// Pings for a session that starts at `now`; `count` and `counter` carry over from the
    /// session before.
    pub(super) fn new(
        ping_interval: std::time::Duration,
        ping_timeout: std::time::Duration,
        now: Instant,
    ) -> Self {
        Self {
            ping_interval,
            ping_timeout,
            next_at: next_ping(now, ping_interval),
            awaiting: None,
            missed: false,
            count: 0,
            counter: None,
        }
    }

    /// The same pings, counting into `counter` and numbering on from `count`.
    pub(super) fn counting(
        mut self,
        count: u64,
        counter: Option<prometheus_client::metrics::counter::Counter>,
    ) -> Self {
        self.count = count;
        self.counter = counter;
        self
    }

    /// How many pings were sent, and where they are counted.
    pub(super) fn tally(&self) -> (u64, Option<prometheus_client::metrics::counter::Counter>) {
        (self.count, self.counter.clone())
    }

    /// When the link must next act for the pings.
    pub(super) fn due(&self) -> Instant {
        self.awaiting
            .as_ref()
            .map_or(self.next_at, |(_, deadline)| (*deadline).min(self.next_at))
    }

    /// The ping timer at `now`: lost when the ping went unanswered, else the next ping when
    /// it is due.
    pub(super) fn tick(&mut self, now: Instant) -> Tick {
        if self
            .awaiting
            .as_ref()
            .is_some_and(|(_, deadline)| now >= *deadline)
        {
            self.missed = true;
            self.awaiting = None;
            return Tick::Lost;
        }
        if now < self.next_at {
            return Tick::Idle;
        }
        self.next_at = next_ping(now, self.ping_interval);
        if self.awaiting.is_some() {
            return Tick::Idle;
        }
        self.count += 1;
        if let Some(c) = &self.counter {
            c.inc();
        }
        let id = format!("ping{}", self.count);
        Tick::Send(Box::new(Iq::from_get(id.clone(), Ping).into()), id)
    }

    /// The ping `id` left at `now`: its answer is due within `ping_timeout`.
    pub(super) fn sent(&mut self, id: String, now: Instant) {
        self.awaiting = Some((id, now + self.ping_timeout));
    }

    /// What to do with `iq` from the server.
    pub(super) fn on_iq(&mut self, iq: Iq) -> IqTurn {
        match iq {
            Iq::Result { id, .. } | Iq::Error { id, .. }
                if self.awaiting.as_ref().is_some_and(|(p, _)| *p == id) =>
            {
                // Any answer to our ping, even an error, shows the link alive.
                self.awaiting = None;
                IqTurn::PingAnswered
            }
            Iq::Result { id, .. } => IqTurn::Answered { id, ok: true },
            Iq::Error { id, .. } => IqTurn::Answered { id, ok: false },
            Iq::Get {
                from, id, payload, ..
            } if payload.is("ping", "urn:xmpp:ping") => IqTurn::Reply(Box::new(
                Iq::Result {
                    from: None,
                    to: from,
                    id,
                    payload: None,
                }
                .into(),
            )),
            Iq::Get { from, id, .. } | Iq::Set { from, id, .. } => {
                let error = StanzaError::new(
                    ErrorType::Cancel,
                    DefinedCondition::ServiceUnavailable,
                    "en",
                    "",
                );
                let mut answer = Iq::from_error(id, error);
                if let Some(to) = from {
                    answer = answer.with_to(to);
                }
                IqTurn::Reply(Box::new(answer.into()))
            }
        }
    }
}
