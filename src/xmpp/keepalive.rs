//! The link's keep-alive and IQ manners, as decisions without I/O: a client ping every
//! `ping_interval` whatever arrives (Cisco's Notification Service expects one at least every
//! 20 s), the session declared lost when a ping goes unanswered for `ping_timeout`, and an
//! answer to every IQ the server sends (a ping with a result, anything else with
//! `service-unavailable`, as RFC 6120 wants). The link sends what these return.
//!
//! An answer counts only from whom the question went to: the ping goes to the server, so its
//! answer must come from the server (no `from`, the domain, or the account's bare JID), and
//! every id is drawn at random, so another account can neither guess one nor fake liveness.

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
    /// Who may answer our pings: the server's domain and the account's bare JID (lower case).
    server: Vec<String>,
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
    /// It answered another IQ of ours (the link checks the sender against the one asked).
    Answered {
        /// Its id.
        id: String,
        /// False for an error.
        ok: bool,
        /// Who answered.
        from: Option<tokio_xmpp::jid::Jid>,
    },
    /// An answer to our ping from someone other than the server: dropped.
    Forged {
        /// Who sent it.
        from: String,
    },
    /// The server asked something: send this answer.
    Reply(Box<Stanza>),
}

/// An IQ id nobody can guess: `prefix` and 64 random bits.
pub(super) fn random_id(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
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
            server: Vec::new(),
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

    /// The same pings, answered only by `domain` or `account` (the bare JID) or without a
    /// `from`.
    pub(super) fn answered_by(mut self, domain: &str, account: &str) -> Self {
        self.server = vec![domain.to_ascii_lowercase(), account.to_ascii_lowercase()];
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
        let id = random_id("ping");
        Tick::Send(Box::new(Iq::from_get(id.clone(), Ping).into()), id)
    }

    /// The ping `id` left at `now`: its answer is due within `ping_timeout`.
    pub(super) fn sent(&mut self, id: String, now: Instant) {
        self.awaiting = Some((id, now + self.ping_timeout));
    }

    /// True when `from` may answer a ping (the server, or no `from` at all).
    fn is_server(&self, from: Option<&tokio_xmpp::jid::Jid>) -> bool {
        from.is_none_or(|j| {
            let bare = j.to_bare().as_str().to_ascii_lowercase();
            self.server.is_empty() || self.server.contains(&bare)
        })
    }

    /// What to do with `iq` from the server.
    pub(super) fn on_iq(&mut self, iq: Iq) -> IqTurn {
        match iq {
            Iq::Result {
                ref id, ref from, ..
            }
            | Iq::Error {
                ref id, ref from, ..
            } if self.awaiting.as_ref().is_some_and(|(p, _)| p == id) => {
                if !self.is_server(from.as_ref()) {
                    return IqTurn::Forged {
                        from: from.as_ref().map(|j| j.to_string()).unwrap_or_default(),
                    };
                }
                // Any answer to our ping, even an error, shows the link alive.
                self.awaiting = None;
                IqTurn::PingAnswered
            }
            Iq::Result { id, from, .. } => IqTurn::Answered { id, ok: true, from },
            Iq::Error { id, from, .. } => IqTurn::Answered {
                id,
                ok: false,
                from,
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(p: &mut Pinger, round: u32) -> String {
        let now = Instant::now() + p.ping_interval * (round * 2 + 1);
        match p.tick(now) {
            Tick::Send(_, id) => {
                p.sent(id.clone(), now);
                id
            }
            other => panic!("no ping: {other:?}"),
        }
    }

    fn result(id: &str, from: Option<&str>) -> Iq {
        Iq::Result {
            from: from.map(|f| f.parse().unwrap()),
            to: None,
            id: id.to_owned(),
            payload: None,
        }
    }

    #[test]
    fn a_ping_answer_counts_only_from_the_server_and_ids_cannot_be_guessed() {
        let mut p = Pinger::new(
            std::time::Duration::from_secs(10),
            std::time::Duration::from_secs(5),
            Instant::now(),
        )
        .answered_by("finesse.local", "1001001@finesse.local");
        let id = sent(&mut p, 0);
        assert!(id.len() > 16, "{id}");
        let forged = p.on_iq(result(&id, Some("1001002@finesse.local/x")));
        assert!(matches!(forged, IqTurn::Forged { .. }), "{forged:?}");
        assert!(
            p.awaiting.is_some(),
            "still awaited: a forgery shows no liveness"
        );
        assert!(matches!(
            p.on_iq(result(&id, Some("finesse.local"))),
            IqTurn::PingAnswered
        ));
        let next = sent(&mut p, 1);
        assert_ne!(next, id);
        assert!(matches!(p.on_iq(result(&next, None)), IqTurn::PingAnswered));
        let again = sent(&mut p, 2);
        assert!(matches!(
            p.on_iq(result(&again, Some("1001001@finesse.local/taskd"))),
            IqTurn::PingAnswered
        ));
    }
}
