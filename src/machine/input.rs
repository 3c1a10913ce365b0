//! What goes into the recovery machine: [`Input`], with what a SystemInfo request said, what a
//! reload changed and how a wait ended.

use tokio::time::Instant;

use crate::vocab::{Cause, ResyncReason, SigninReason};

/// What one SystemInfo request said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeAnswer {
    /// IN_SERVICE.
    InService,
    /// IN_SERVICE, but in maintenance mode (`finesseMMode` set): desktops must move to the
    /// other node now; this one is used only when no other is in service.
    Maintenance,
    /// Any other status.
    NotInService,
    /// The request failed (`malformed` when the body was not a SystemInfo).
    Failed {
        /// Why.
        cause: Cause,
        /// The body could not be read as SystemInfo.
        malformed: bool,
    },
}

/// What a reload changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The new file is invalid; the running configuration stays.
    Refused,
    /// Nothing that needs a resync or a new session.
    Unchanged,
    /// The media settings or desired states changed: resync.
    Resync,
    /// Nodes, CA or XMPP settings changed: the driver ended the session.
    Reconnect,
    /// The password changed (and the driver ended the session): an auth hold may end.
    CredentialsChanged,
}

/// How the wait for a node ended other than by the machine's own poll (whose answers come
/// as [`Input::SystemInfo`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEnd {
    /// A notification said the node is in service again.
    Back,
    /// The XMPP session was lost meanwhile.
    LinkLost,
}

/// What the driver knows about the credentials that changes what a refusal means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthFacts {
    /// The SSO refresh token has expired (or the IdS said so): `auth_expired`.
    pub expired: bool,
    /// SystemInfo's `systemAuthMode` disagrees with `[agent] auth`: `auth_mode_mismatch`.
    pub mode_mismatch: bool,
}

/// Something that happened, fed to [`Machine::step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The daemon starts.
    Start,
    /// The daemon starts inside an auth hold an earlier run began (persisted): no login
    /// before `until`.
    StartHeld {
        /// The end of the hold.
        until: Instant,
    },
    /// The answer to [`Action::AskSystemInfo`].
    SystemInfo {
        /// The node asked.
        node: usize,
        /// What it said.
        answer: NodeAnswer,
    },
    /// [`Action::Connect`] succeeded. `pending` is what the events read during the set-up
    /// asked for (a node out of service, `finesse` unavailable), acted on at once.
    Connected {
        /// A wait the set-up's events asked for.
        pending: Option<Cause>,
    },
    /// [`Action::Connect`] failed.
    ConnectFailed {
        /// Why.
        cause: Cause,
        /// How many times the server refused the password in this attempt: 0 when the
        /// failure was not about the credentials, 2 when a channel-binding login and its
        /// fallback both were (each refusal is waited out for `auth_retry`).
        refusals: u32,
    },
    /// [`Action::Resync`] completed; these sign-ins were sent.
    Resynced {
        /// Why each sign-in was sent.
        signins: Vec<SigninReason>,
        /// Finesse refused the sign-in of some MRD: retry on the backoff.
        refused: bool,
    },
    /// [`Action::Resync`] failed; these sign-ins were sent before it did.
    ResyncFailed {
        /// Why.
        cause: Cause,
        /// A body was not the expected document.
        malformed: bool,
        /// Why each sign-in was sent.
        signins: Vec<SigninReason>,
    },
    /// Steady state saw the XMPP session end.
    LinkDown {
        /// Why (`conflict` holds like a rejected password).
        cause: Cause,
    },
    /// Steady state saw the node leave service (SystemInfo or `finesse` presence).
    NodeDown {
        /// Why.
        cause: Cause,
    },
    /// Steady state saw Finesse refuse a sign-in asynchronously: retry on the backoff.
    SigninRefused,
    /// Steady state saw the current node enter maintenance mode: migrate now.
    Maintenance,
    /// A request carrying the credentials was refused with 401 outside a resync (or an SSO
    /// refresh was refused, or found its refresh token expired).
    CredentialsRejected {
        /// Why ([`Cause::is_auth`]; any other cause counts as `auth_failed`).
        cause: Cause,
    },
    /// Steady state saw a notification that needs a resync.
    ResyncWanted {
        /// Why.
        reason: ResyncReason,
    },
    /// The wait for the node ended.
    WaitEnded(WaitEnd),
    /// A reload was applied (or refused) by the driver.
    Reloaded(Reload),
    /// What the credentials' state now is (fed before each step; no action of its own).
    AuthFacts(AuthFacts),
    /// A notification or body could not be decoded.
    Malformed,
    /// Time passed: a deadline of [`Machine::deadline`] may be due.
    Timer,
    /// Shutdown.
    Stop,
}
