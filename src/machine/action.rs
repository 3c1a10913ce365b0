//! What comes out of the recovery machine: [`Action`]s, records to make at once, counters to
//! bump, and at most one operation for the driver.

use std::time::Duration;

use tokio::time::Instant;

use crate::vocab::{Cause, Phase, ReconnectScope, SigninReason};

/// A counter the driver bumps (in the view and the metrics).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Count {
    /// A recovery started: the metric by scope and cause, and for the XMPP scope the view's
    /// `reconnects` too.
    Reconnect {
        /// The link or the node.
        scope: ReconnectScope,
        /// Why.
        cause: Cause,
    },
    /// A switch to another node.
    Failover,
    /// A completed resync.
    Resync,
    /// A sign-in sent (a drift correction also counts in `drift_corrections`).
    Signin(SigninReason),
    /// A malformed notification or body.
    Malformed,
    /// Credentials rejected.
    AuthFailure,
    /// Steady again this long after a failure was detected.
    TimeToReady(Duration),
}

/// Why the driver sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SleepKind {
    /// Backoff before retry `attempt`.
    Backoff {
        /// The retry's number since the last reset.
        attempt: u32,
    },
    /// Holding after a rejected password or a conflict.
    AuthHold,
}

/// What the driver must do. At most one of the operations (the variants from
/// [`Action::AskSystemInfo`] on) comes out of one step, and always last; the driver performs
/// the others at once, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Publish the phase and cause (READY=1 with it when `ready`).
    Phase {
        /// The phase.
        phase: Phase,
        /// The cause (`None` keeps the published one, except in steady, which clears it).
        cause: Option<Cause>,
        /// First steady: tell systemd READY=1.
        ready: bool,
    },
    /// Bump a counter.
    Count(Count),
    /// The current node is now this one (publish it; REST reached it).
    SetNode(usize),
    /// No node answered in service (or a resync could not reach it): the REST link is down
    /// for this cause.
    RestDown(Cause),
    /// The XMPP session is up, or down for this cause (published as `links.xmpp` and a
    /// `link.up` / `link.down` event when it changes).
    XmppLink {
        /// Up.
        up: bool,
        /// Why it is down.
        cause: Option<Cause>,
    },
    /// Leave `from` for `to`: end the session on `from`.
    FailOver {
        /// The old node.
        from: usize,
        /// The new node.
        to: usize,
    },
    /// Tell systemd STOPPING=1.
    NotifyStopping,
    /// Operation: GET SystemInfo on this node; answer with [`Input::SystemInfo`].
    AskSystemInfo {
        /// The node.
        node: usize,
    },
    /// Operation: log in to XMPP on this node and set the session up; answer with
    /// [`Input::Connected`] or [`Input::ConnectFailed`].
    Connect {
        /// The node.
        node: usize,
    },
    /// Operation: resync on this node; answer with [`Input::Resynced`] or
    /// [`Input::ResyncFailed`].
    Resync {
        /// The node.
        node: usize,
        /// Sign-ins sent before this resync (the first one ever is the `initial`).
        signins_before: u64,
        /// The resync follows a maintenance-mode migration: mark each signed-in MRD with
        /// the maintenance reason code afterwards.
        maintenance: bool,
    },
    /// Operation: steady state on this node until it ends ([`Input::LinkDown`],
    /// [`Input::NodeDown`], [`Input::ResyncWanted`], [`Input::Reloaded`]); feed
    /// [`Input::Timer`] when [`Machine::deadline`] passes.
    Steady {
        /// The node.
        node: usize,
    },
    /// Operation: keep the session and wait for the node; answer with [`Input::WaitEnded`].
    Wait {
        /// The node.
        node: usize,
    },
    /// Operation: sleep until `until` (then [`Input::Timer`]), unless a reload or a stop
    /// comes first.
    Sleep {
        /// The deadline.
        until: Instant,
        /// Why.
        kind: SleepKind,
    },
    /// Operation: apply the stop policy and end.
    Stop,
}

impl Action {
    /// True for the operations (the driver's long-running work).
    pub fn is_operation(&self) -> bool {
        !matches!(
            self,
            Self::Phase { .. }
                | Self::Count(_)
                | Self::SetNode(_)
                | Self::RestDown(_)
                | Self::XmppLink { .. }
                | Self::FailOver { .. }
                | Self::NotifyStopping
        )
    }
}
