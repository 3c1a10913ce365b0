//! The transitions of the recovery machine: one function per kind of moment (an input in a
//! state, the start of an attempt, a node chosen, a failure that leaves steady). Every change
//! of phase, cause, counter or readiness is made here and only here.

use tokio::time::Instant;

use super::transitions::{
    Out, answered, attempt, choose, count, hold, hold_for, next_polled, node_down, phase, poll,
    reconnect_reload, resync, resync_wanted, signed_in, stop, wait, xmpp_link,
};
use super::{
    Action, AuthFacts, Count, Input, Machine, NodeAnswer, Poll, Reload, SleepKind, State, WaitEnd,
};
use crate::vocab::{Cause, Phase, ReconnectScope, ResyncReason};

/// `cause` when it is an auth cause, else `auth_failed` (a refusal is always about the
/// credentials).
fn auth_cause(cause: Cause) -> Cause {
    if cause.is_auth() {
        cause
    } else {
        Cause::AuthFailed
    }
}

/// `auth_failed` as it reads now: `auth_expired` once the SSO refresh token has expired,
/// `auth_mode_mismatch` while the site's auth mode disagrees with the config. The layers
/// below only know "401" or "not-authorized".
fn refined(facts: AuthFacts, cause: Cause) -> Cause {
    match cause {
        Cause::AuthFailed if facts.expired => Cause::AuthExpired,
        Cause::AuthFailed if facts.mode_mismatch => Cause::AuthModeMismatch,
        other => other,
    }
}

/// Every cause `input` carries, refined by [`refined`].
fn refine(facts: AuthFacts, input: Input) -> Input {
    let r = |c| refined(facts, c);
    match input {
        Input::SystemInfo {
            node,
            answer: NodeAnswer::Failed { cause, malformed },
        } => Input::SystemInfo {
            node,
            answer: NodeAnswer::Failed {
                cause: r(cause),
                malformed,
            },
        },
        Input::ConnectFailed { cause, refusals } => Input::ConnectFailed {
            cause: r(cause),
            refusals,
        },
        Input::ResyncFailed {
            cause,
            malformed,
            signins,
        } => Input::ResyncFailed {
            cause: r(cause),
            malformed,
            signins,
        },
        Input::CredentialsRejected { cause } => Input::CredentialsRejected { cause: r(cause) },
        other => other,
    }
}

pub(super) fn step(m: &mut Machine, input: Input, now: Instant, out: &mut Out) {
    if m.state == State::Stopping {
        return;
    }
    if let Input::AuthFacts(facts) = input {
        m.auth = facts;
        return;
    }
    match (m.state, refine(m.auth, input)) {
        (_, Input::Stop) => stop(m, out),
        (_, Input::Malformed) => count(m, Count::Malformed, out),
        (State::Idle, Input::Start) => choose(m, out),
        (State::Idle, Input::StartHeld { until }) if until > now => {
            phase(m, Phase::AuthFailed, Some(Cause::AuthFailed), out);
            m.state = State::AuthHold { until };
            out.push(Action::Sleep {
                until,
                kind: SleepKind::AuthHold,
            });
        }
        (State::Idle, Input::StartHeld { .. }) => choose(m, out),
        (
            State::Choosing {
                start, k, fallback, ..
            },
            Input::SystemInfo { node, answer },
        ) if node == (start + k) % m.nodes => answered(m, start, k, fallback, answer, now, out),
        (State::Connecting { node }, Input::Connected { pending }) => {
            m.xmpp_failing_since = None;
            xmpp_link(m, true, None, out);
            match pending {
                Some(cause) => node_down(m, node, cause, now, out),
                None => resync(m, node, out),
            }
        }
        (State::Connecting { .. }, Input::ConnectFailed { cause, refusals }) => {
            xmpp_link(m, false, Some(cause), out);
            if refusals > 0 {
                let cause = auth_cause(cause);
                count(m, Count::AuthFailure, out);
                phase(m, cause.auth_phase(), Some(cause), out);
                hold_for(m, refusals, now, out);
            } else {
                m.xmpp_failing_since.get_or_insert(now);
                phase(m, Phase::Recovering, Some(cause), out);
                attempt(m, now, true, out);
            }
        }
        (State::Resyncing { node }, Input::Resynced { signins, refused }) => {
            m.migrating = false;
            signed_in(m, &signins, out);
            count(m, Count::Resync, out);
            m.down_since = None;
            phase(m, Phase::Steady, None, out);
            if let Some(at) = m.failure_at.take() {
                count(
                    m,
                    Count::TimeToReady(now.saturating_duration_since(at)),
                    out,
                );
            }
            // A refused sign-in is retried on the recovery backoff, which does not reset
            // while one is outstanding.
            let retry_at = refused.then(|| now + m.backoff.next_delay());
            m.state = State::Steady {
                node,
                reset_at: (!refused).then(|| now + m.timing.healthy_after),
                resync_at: (!m.timing.resync_every.is_zero()).then(|| now + m.timing.resync_every),
                retry_at,
            };
            out.push(Action::Steady { node });
        }
        (
            State::Resyncing { .. },
            Input::ResyncFailed {
                cause,
                malformed,
                signins,
            },
        ) => {
            signed_in(m, &signins, out);
            if malformed {
                count(m, Count::Malformed, out);
            }
            if cause == Cause::RestUnreachable {
                out.push(Action::RestDown(cause));
            }
            if cause.is_auth() {
                // A REST 401: the same hold as a rejected XMPP login, never the backoff.
                count(m, Count::AuthFailure, out);
                phase(m, cause.auth_phase(), Some(cause), out);
                hold(m, now, out);
            } else {
                phase(m, Phase::Recovering, Some(cause), out);
                attempt(m, now, true, out);
            }
        }
        (State::Steady { .. }, Input::LinkDown { cause }) => {
            m.failure_at.get_or_insert(now);
            xmpp_link(m, false, Some(cause), out);
            count(
                m,
                Count::Reconnect {
                    scope: ReconnectScope::Xmpp,
                    cause,
                },
                out,
            );
            if cause == Cause::Conflict {
                // Another session took our resource: reconnecting at once would only kick
                // it in turn. Hold as long as after a rejected password.
                phase(m, Phase::Conflict, Some(Cause::Conflict), out);
                hold(m, now, out);
            } else {
                phase(m, Phase::Recovering, Some(cause), out);
                attempt(m, now, true, out);
            }
        }
        // A REST 401 seen in steady state (an API action, a password changed mid-session):
        // nothing carrying the password goes out until the hold has passed.
        (
            state @ (State::Steady { .. } | State::Waiting { .. }),
            Input::CredentialsRejected { cause },
        ) => {
            if matches!(state, State::Steady { .. }) {
                m.failure_at.get_or_insert(now);
            }
            let cause = auth_cause(cause);
            count(m, Count::AuthFailure, out);
            phase(m, cause.auth_phase(), Some(cause), out);
            hold(m, now, out);
        }
        (State::Steady { node, .. }, Input::NodeDown { cause }) => {
            m.failure_at.get_or_insert(now);
            node_down(m, node, cause, now, out);
        }
        (State::Steady { node, .. }, Input::ResyncWanted { reason }) => {
            resync_wanted(m, node, reason, now, out)
        }
        // Maintenance mode: move to the other node now, without waiting `failover_after`.
        (State::Steady { node, .. }, Input::Maintenance) if m.nodes > 1 => {
            count(
                m,
                Count::Reconnect {
                    scope: ReconnectScope::Node,
                    cause: Cause::Maintenance,
                },
                out,
            );
            phase(m, Phase::Recovering, Some(Cause::Maintenance), out);
            m.migrating = true;
            m.confirmed = None;
            let start = (node + 1) % m.nodes;
            m.state = State::Choosing {
                start,
                k: 0,
                cause: Cause::Maintenance,
                fallback: None,
            };
            out.push(Action::AskSystemInfo { node: start });
        }
        (
            State::Steady {
                node,
                reset_at,
                resync_at,
                retry_at,
            },
            Input::Timer,
        ) => {
            let reset_at = match reset_at {
                Some(t) if now >= t => {
                    m.backoff.reset();
                    None
                }
                other => other,
            };
            m.state = State::Steady {
                node,
                reset_at,
                resync_at,
                retry_at,
            };
            if retry_at.is_some_and(|t| now >= t) {
                resync_wanted(m, node, ResyncReason::SigninRetry, now, out);
            } else if resync_at.is_some_and(|t| now >= t) {
                resync_wanted(m, node, ResyncReason::Periodic, now, out);
            }
        }
        (
            State::Steady {
                node,
                resync_at,
                retry_at: None,
                ..
            },
            Input::SigninRefused,
        ) => {
            m.state = State::Steady {
                node,
                reset_at: None,
                resync_at,
                retry_at: Some(now + m.backoff.next_delay()),
            };
        }
        (State::Steady { node, .. }, Input::Reloaded(r)) => match r {
            Reload::Refused | Reload::Unchanged => {}
            Reload::Resync => resync_wanted(m, node, ResyncReason::Reload, now, out),
            Reload::Reconnect | Reload::CredentialsChanged => {
                reconnect_reload(m, out);
                attempt(m, now, false, out);
            }
        },
        // The poll of a wait: the node first, then each other node; the first in service
        // ends the wait (the node's own answer as if it had said so itself).
        (
            State::Waiting {
                node,
                poll: Poll::At(at),
            },
            Input::Timer,
        ) if now >= at => poll(m, node, node, out),
        (
            State::Waiting {
                node,
                poll: Poll::Asking(asked),
            },
            Input::SystemInfo { node: k, answer },
        ) if k == asked => {
            let back = matches!(answer, NodeAnswer::InService | NodeAnswer::Maintenance);
            if back && asked == node {
                m.down_since = None;
                m.confirmed = Some(node);
                attempt(m, now, false, out);
            } else if back {
                attempt(m, now, false, out);
            } else {
                match next_polled(m, node, asked) {
                    Some(other) => poll(m, node, other, out),
                    None => wait(m, node, now, out),
                }
            }
        }
        (State::Waiting { node, .. }, Input::WaitEnded(end)) => {
            match end {
                WaitEnd::Back => m.confirmed = Some(node),
                WaitEnd::LinkLost => xmpp_link(m, false, Some(Cause::XmppLost), out),
            }
            attempt(m, now, false, out);
        }
        (State::Backoff { until }, Input::Timer) if now >= until => choose(m, out),
        (State::AuthHold { until }, Input::Timer) if now >= until => attempt(m, now, false, out),
        // Only a new password ends an auth hold early; other changes wait it out.
        (State::AuthHold { .. }, Input::Reloaded(Reload::CredentialsChanged)) => {
            reconnect_reload(m, out);
            attempt(m, now, false, out);
        }
        (State::AuthHold { .. }, Input::Reloaded(Reload::Reconnect)) => reconnect_reload(m, out),
        (State::Backoff { .. } | State::Waiting { .. }, Input::Reloaded(r)) => {
            if matches!(r, Reload::Reconnect | Reload::CredentialsChanged) {
                reconnect_reload(m, out);
            }
            m.confirmed = None;
            attempt(m, now, false, out);
        }
        // Anything else is not expected in this state (an outcome of an operation that was
        // not asked for, a timer not yet due): nothing changes.
        _ => {}
    }
}
