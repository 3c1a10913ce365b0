//! The link's keep-alive and IQ manners: a client ping every `ping_interval` whatever
//! arrives (Cisco's Notification Service expects one at least every 20 s), the session declared
//! lost when a ping goes unanswered for `ping_timeout`, and an answer to every IQ the server
//! sends (a ping with a result, anything else with `service-unavailable`, as RFC 6120 wants).

use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::ping::Ping;
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

use super::link::{Link, LinkEvent};

/// The client's own pings: one every `every`, each answered within `timeout`.
#[derive(Debug)]
pub(super) struct Pinger {
    pub(super) every: std::time::Duration,
    pub(super) timeout: std::time::Duration,
    pub(super) next_at: tokio::time::Instant,
    pub(super) awaiting: Option<(String, tokio::time::Instant)>,
    pub(super) missed: bool,
    pub(super) count: u64,
    pub(super) counter: Option<prometheus_client::metrics::counter::Counter>,
}

impl Pinger {
    pub(super) fn new() -> Self {
        Self {
            every: std::time::Duration::from_secs(10),
            timeout: std::time::Duration::from_secs(5),
            next_at: tokio::time::Instant::now(),
            awaiting: None,
            missed: false,
            count: 0,
            counter: None,
        }
    }

    /// When the link must next act for the pings.
    pub(super) fn due(&self) -> tokio::time::Instant {
        self.awaiting
            .as_ref()
            .map_or(self.next_at, |(_, deadline)| (*deadline).min(self.next_at))
    }
}

impl Link {
    /// When the ping after one sent at `now` goes out: a ping interval later, rounded down to
    /// the process's grid (a hundredth of the interval), so that a fleet's pings leave in
    /// groups and the runtime wakes once per group, never later than the interval.
    fn next_ping(&self, now: tokio::time::Instant) -> tokio::time::Instant {
        let every = self.pinger.every;
        crate::cadence::round_down(now + every, every / 100, now)
    }

    pub(super) fn on_iq(&mut self, iq: Iq) {
        match iq {
            Iq::Result { id, .. } | Iq::Error { id, .. }
                if self.pinger.awaiting.as_ref().is_some_and(|(p, _)| *p == id) =>
            {
                // Any answer to our ping, even an error, shows the link alive.
                self.pinger.awaiting = None;
            }
            Iq::Result { id, .. } => self.queue.push_back(LinkEvent::IqResult { id, ok: true }),
            Iq::Error { id, .. } => self.queue.push_back(LinkEvent::IqResult { id, ok: false }),
            Iq::Get {
                from, id, payload, ..
            } if payload.is("ping", "urn:xmpp:ping") => {
                let answer = Iq::Result {
                    from: None,
                    to: from,
                    id,
                    payload: None,
                };
                self.outbox.push_back((answer.into(), None));
            }
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
                self.outbox.push_back((answer.into(), None));
            }
        }
    }

    /// The ping timer: declares the session lost when the ping went unanswered, else sends
    /// the next one when it is due.
    pub(super) fn on_ping_timer(&mut self) {
        let now = tokio::time::Instant::now();
        if self
            .pinger
            .awaiting
            .as_ref()
            .is_some_and(|(_, deadline)| now >= *deadline)
        {
            self.pinger.missed = true;
            self.pinger.awaiting = None;
            tracing::warn!(
                timeout_ms = self.pinger.timeout.as_millis() as u64,
                "XMPP ping unanswered"
            );
            let cause = self.loss_cause();
            self.drop_session();
            self.queue.push_back(LinkEvent::Down { cause });
            return;
        }
        if now >= self.pinger.next_at {
            self.pinger.next_at = self.next_ping(now);
            if self.pinger.awaiting.is_none() {
                self.pinger.count += 1;
                if let Some(c) = &self.pinger.counter {
                    c.inc();
                }
                let id = format!("ping{}", self.pinger.count);
                let ping = Iq::from_get(id.clone(), Ping);
                self.outbox.push_back((ping.into(), Some(id)));
            }
        }
    }

    /// Sends what the outbox holds; a ping's answer is awaited from the moment it is sent.
    pub(super) async fn flush(&mut self) {
        while let Some((stanza, ping)) = self.outbox.pop_front() {
            let _ = self.stream.send(Box::new(stanza)).await;
            if let Some(id) = ping {
                self.pinger.awaiting =
                    Some((id, tokio::time::Instant::now() + self.pinger.timeout));
            }
        }
    }
}
