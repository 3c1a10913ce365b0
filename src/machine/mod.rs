//! The recovery state machine, sans I/O (in the style of quinn-proto's and rumqttc's state):
//! [`Machine::step`] takes one [`Input`] and the time, and returns the [`Action`]s to carry
//! out. It knows nothing of sockets or tokio; the driver performs the actions and feeds their
//! outcomes back. Only the machine changes the phase, the cause, the counters and readiness,
//! and its timers (the backoff, the auth hold, the healthy-reset and the periodic resync) are
//! deadlines it holds, which the driver sleeps until and reports with [`Input::Timer`].
//!
//! One recovery pass: ask SystemInfo node by node (the other node only once the current one
//! has been down for `failover_after`), log in to XMPP on the chosen node, resync, then stay
//! steady until something ends it: a lost link (backoff, or the auth hold after a
//! `conflict`), a node out of service (wait for it), or a notification, a reload or the
//! periodic timer asking for a resync.

mod action;
mod input;
mod logic;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
mod transitions;

use crate::vocab::Cause;

use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::config::RecoveryConfig;
use crate::view::Counters;
pub use action::{Action, Count, SleepKind};
pub use input::{AuthFacts, Input, NodeAnswer, Reload, WaitEnd};

/// Where the machine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Before [`Input::Start`].
    Idle,
    /// Asking SystemInfo: `k` nodes asked so far, starting at `start`.
    Choosing {
        /// The first node asked.
        start: usize,
        /// The node now asked is `(start + k) % n`.
        k: usize,
        /// The last failure's cause.
        cause: Cause,
        /// A node in maintenance mode, used when no other is in service.
        fallback: Option<usize>,
    },
    /// Logging in to XMPP.
    Connecting {
        /// The node.
        node: usize,
    },
    /// Resyncing.
    Resyncing {
        /// The node.
        node: usize,
    },
    /// Steady.
    Steady {
        /// The node.
        node: usize,
        /// The backoff resets at this time.
        reset_at: Option<Instant>,
        /// The periodic resync is due at this time.
        resync_at: Option<Instant>,
        /// A refused sign-in is retried at this time.
        retry_at: Option<Instant>,
    },
    /// The node is not in service; waiting with the session kept, and polling SystemInfo
    /// every `systeminfo_poll`: the node first, then each other node.
    Waiting {
        /// The node.
        node: usize,
        /// The next poll, or the node being asked now.
        poll: Poll,
    },
    /// Backing off before the next attempt.
    Backoff {
        /// Until then.
        until: Instant,
    },
    /// Holding after a rejected password or a conflict.
    AuthHold {
        /// Until then.
        until: Instant,
    },
    /// Stopped (terminal).
    Stopping,
}

/// Where the wait for a node is in its poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// The next poll is due then.
    At(Instant),
    /// Asking this node's SystemInfo (the waited-for node, then each other node).
    Asking(usize),
}

/// The recovery state machine of one agent.
#[derive(Debug)]
pub struct Machine {
    timing: RecoveryConfig,
    nodes: usize,
    backoff: Backoff,
    state: State,
    node: Option<usize>,
    confirmed: Option<usize>,
    down_since: Option<Instant>,
    failure_at: Option<Instant>,
    xmpp_up: bool,
    ready_sent: bool,
    counters: Counters,
    /// Moving off a node in maintenance mode (no `failover_after` wait).
    migrating: bool,
    /// What a refusal of the credentials means now.
    auth: AuthFacts,
    /// Since when logins to the current node fail (not for the credentials) although its
    /// REST may answer IN_SERVICE: past `failover_after`, the other node is tried.
    xmpp_failing_since: Option<Instant>,
    /// When the SystemInfo now awaited was asked: a node that fails to answer was down for
    /// as long as the question waited (a blackholed node's connect timeout is down time).
    asked_at: Option<Instant>,
}

impl Machine {
    /// A machine for `nodes` nodes with this timing; nothing happens before [`Input::Start`].
    /// Its random draws (the backoff's jitter) come from an rng seeded with `seed`: the same
    /// seed and inputs give the same actions.
    pub fn new(timing: &RecoveryConfig, nodes: usize, seed: u64) -> Self {
        Self {
            timing: timing.clone(),
            nodes: nodes.max(1),
            backoff: Backoff::new(timing, seed),
            state: State::Idle,
            node: None,
            confirmed: None,
            down_since: None,
            failure_at: None,
            asked_at: None,
            xmpp_up: false,
            ready_sent: false,
            counters: Counters::default(),
            migrating: false,
            auth: AuthFacts::default(),
            xmpp_failing_since: None,
        }
    }

    /// Takes a new configuration (after a reload): timing and node count. The backoff
    /// starts over.
    pub fn reconfigure(&mut self, timing: &RecoveryConfig, nodes: usize) {
        self.timing = timing.clone();
        self.nodes = nodes.max(1);
        let old = std::mem::replace(&mut self.backoff, Backoff::new(timing, 0));
        self.backoff = old.reconfigured(timing);
    }

    /// Where the machine is.
    pub fn state(&self) -> State {
        self.state
    }

    /// The counters it has counted: the only source of the published ones.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The next deadline the driver must report with [`Input::Timer`], if any.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Backoff { until }
            | State::AuthHold { until }
            | State::Waiting {
                poll: Poll::At(until),
                ..
            } => Some(until),
            State::Steady {
                reset_at,
                resync_at,
                retry_at,
                ..
            } => [reset_at, resync_at, retry_at].into_iter().flatten().min(),
            _ => None,
        }
    }

    /// Steps the machine with `input` at `now`.
    pub fn step(&mut self, input: Input, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        logic::step(self, input, now, &mut out);
        if out
            .iter()
            .any(|a| matches!(a, Action::AskSystemInfo { .. }))
        {
            self.asked_at = Some(now);
        }
        out
    }
}
