//! What the driver remembers about each MRD between resyncs: a drift correction that did not
//! take (so it is not repeated until the config, the node or a fresh sign-in changes), a
//! sign-in Finesse refused (shown in the state until one succeeds, retried on the recovery
//! backoff), the sign-ins whose asynchronous answer is still due (by `requestId`), the
//! ineligible MRDs already warned about, the rate limit of bad-input log lines, and when the
//! credentials were last proven.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::finesse::rest::SignIn;
use crate::reconcile::Persistent;
use crate::view::SigninFailure;

/// An action Finesse accepted (202): its caller is answered when an asynchronous refusal with
/// its `requestId` arrives, or with success at `until`.
#[derive(Debug)]
pub(super) struct Outcome {
    pub request_id: String,
    pub reply: tokio::sync::oneshot::Sender<Result<(), crate::command::CommandError>>,
    pub until: tokio::time::Instant,
    /// A state change that becomes the desired state only once it has not been refused.
    pub desired: Option<Desired>,
}

/// A desired state asked through the API: MRD, state, reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Desired {
    pub mrd: u32,
    pub state: crate::config::DesiredState,
    pub reason: Option<u32>,
}

/// The per-MRD memory.
#[derive(Debug, Default)]
pub(super) struct Memo {
    pub persistent: BTreeMap<u32, Persistent>,
    pub refused: BTreeMap<u32, SigninFailure>,
    pub pending: HashMap<String, u32>,
    pub warned_ineligible: BTreeSet<u32>,
    /// SystemInfo's `systemAuthMode` disagrees with `[agent] auth` (one error line each time
    /// it starts to).
    pub mode_mismatch: bool,
    /// The SSO token's loginName was resolved to this agent's loginId.
    pub login_id_checked: bool,
    pub log_limit: LogLimit,
    /// Dialog actions accepted by Finesse whose answer waits for an asynchronous refusal.
    pub outcomes: Vec<Outcome>,
    /// This server refused SCRAM channel binding once (auto mode): log in without it.
    pub binding_refused: bool,
    /// A `see-other-uri` the WebSocket server sent, for the next login.
    pub redirect: crate::xmpp::websocket::Redirect,
    /// When the XMPP login accepted the credentials (taken by the resync that follows it):
    /// only credentials just proven may go out in several requests at once.
    pub proven_at: Option<tokio::time::Instant>,
}

impl Memo {
    /// When the next waiting action is due to be answered with success.
    pub fn next_outcome(&self) -> Option<tokio::time::Instant> {
        self.outcomes.iter().map(|o| o.until).min()
    }

    /// Answers with success every waiting action due by `now` (all of them with `None`), and
    /// returns the state changes among them: not refused in time, they become desired.
    #[must_use]
    pub fn settle(&mut self, now: Option<tokio::time::Instant>) -> Vec<Desired> {
        let (due, keep): (Vec<Outcome>, Vec<Outcome>) = std::mem::take(&mut self.outcomes)
            .into_iter()
            .partition(|o| now.is_none_or(|n| n >= o.until));
        self.outcomes = keep;
        let mut accepted = Vec::new();
        for o in due {
            accepted.extend(o.desired);
            let _ = o.reply.send(Ok(()));
        }
        accepted
    }

    /// Answers the action `request_id` with Finesse's refusal, when one waits.
    pub fn refuse_outcome(&mut self, request_id: &str, constant: &str) -> bool {
        let Some(at) = self
            .outcomes
            .iter()
            .position(|o| o.request_id == request_id)
        else {
            return false;
        };
        let o = self.outcomes.swap_remove(at);
        let _ = o.reply.send(Err(crate::command::CommandError::Finesse(
            constant.to_owned(),
        )));
        true
    }

    /// The persistent drift of `mrd`, if it still applies to this node and these settings.
    pub fn persistent(&self, mrd: u32, node: usize, asked: &SignIn) -> Option<&Persistent> {
        self.persistent.get(&mrd).filter(|p| p.applies(node, asked))
    }

    /// Records a refused sign-in of `mrd` with Finesse's constant.
    pub fn refuse(&mut self, mrd: u32, constant: &str) -> SigninFailure {
        let failure = SigninFailure {
            failed: constant.to_owned(),
            at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        };
        self.refused.insert(mrd, failure.clone());
        failure
    }
}

/// At most one log line per `EVERY` for each kind of bad input from the server; the lines
/// left out are counted and reported with the next one.
#[derive(Debug, Default)]
pub(super) struct LogLimit {
    last: HashMap<&'static str, (tokio::time::Instant, u64)>,
}

impl LogLimit {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    /// `Some(suppressed)` when a line of `kind` may be logged now (with how many were left
    /// out since the last one); `None` when it must be left out.
    pub fn allow(&mut self, kind: &'static str) -> Option<u64> {
        let now = tokio::time::Instant::now();
        match self.last.get_mut(kind) {
            Some((at, suppressed)) if now.duration_since(*at) < Self::EVERY => {
                *suppressed += 1;
                None
            }
            Some((at, suppressed)) => {
                *at = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                self.last.insert(kind, (now, 0));
                Some(0)
            }
        }
    }
}
