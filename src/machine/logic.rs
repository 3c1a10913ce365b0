//! The transitions of the recovery machine: one function per kind of moment (an input in a
//! state, the start of an attempt, a node chosen, a failure that leaves steady). Every change
//! of phase, cause, counter or readiness is made here and only here.

use tokio::time::Instant;

use super::{Action, Count, Input, Machine, NodeAnswer, Reload, SleepKind, State, WaitEnd};
use crate::vocab::{Cause, Phase, ReconnectScope, ResyncReason, SigninReason};

type Out = Vec<Action>;

pub(super) fn step(m: &mut Machine, input: Input, now: Instant, out: &mut Out) {
    if m.state == State::Stopping {
        return;
    }
    match (m.state, input) {
        (_, Input::Stop) => stop(m, out),
        (_, Input::Malformed) => count(m, Count::Malformed, out),
        (State::Idle, Input::Start) => choose(m, out),
        (
            State::Choosing {
                start, k, fallback, ..
            },
            Input::SystemInfo { node, answer },
        ) if node == (start + k) % m.nodes => answered(m, start, k, fallback, answer, now, out),
        (State::Connecting { node }, Input::Connected { pending }) => {
            m.xmpp_up = true;
            match pending {
                Some(cause) => node_down(m, node, cause, now, out),
                None => resync(m, node, out),
            }
        }
        (State::Connecting { .. }, Input::ConnectFailed { cause, auth }) => {
            m.xmpp_up = false;
            if auth {
                count(m, Count::AuthFailure, out);
                phase(m, Phase::AuthFailed, Some(Cause::AuthFailed), out);
                hold(m, now, out);
            } else {
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
            let p = if cause == Cause::AuthFailed {
                count(m, Count::AuthFailure, out);
                Phase::AuthFailed
            } else {
                Phase::Recovering
            };
            phase(m, p, Some(cause), out);
            attempt(m, now, true, out);
        }
        (State::Steady { .. }, Input::LinkDown { cause }) => {
            m.failure_at.get_or_insert(now);
            m.xmpp_up = false;
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
        (State::Steady { node, .. }, Input::NodeDown { cause }) => {
            m.failure_at.get_or_insert(now);
            node_down(m, node, cause, now, out);
        }
        (State::Steady { node, .. }, Input::ResyncWanted { reason }) => {
            resync_wanted(m, node, reason, now, out)
        }
        // Maintenance mode: move to the other node now, without waiting `failover_after`.
        (State::Steady { node, .. }, Input::Maintenance) if m.nodes > 1 => {
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
            Reload::Reconnect => {
                reconnect_reload(m);
                attempt(m, now, false, out);
            }
        },
        (State::Waiting { node }, Input::WaitEnded(end)) => {
            match end {
                WaitEnd::Back { poll } => {
                    if poll {
                        m.down_since = None;
                    }
                    m.confirmed = Some(node);
                }
                WaitEnd::OtherInService => {}
                WaitEnd::LinkLost => m.xmpp_up = false,
            }
            attempt(m, now, false, out);
        }
        (State::Backoff { until }, Input::Timer) if now >= until => choose(m, out),
        (State::AuthHold { until }, Input::Timer) if now >= until => attempt(m, now, false, out),
        // A reload that changes nothing the login uses does not end an auth hold early.
        (State::AuthHold { .. }, Input::Reloaded(Reload::Reconnect)) => {
            reconnect_reload(m);
            attempt(m, now, false, out);
        }
        (State::Backoff { .. } | State::Waiting { .. }, Input::Reloaded(r)) => {
            if r == Reload::Reconnect {
                reconnect_reload(m);
            }
            m.confirmed = None;
            attempt(m, now, false, out);
        }
        // Anything else is not expected in this state (an outcome of an operation that was
        // not asked for, a timer not yet due): nothing changes.
        _ => {}
    }
}

fn count(m: &mut Machine, c: Count, out: &mut Out) {
    let n = &mut m.counters;
    match c {
        Count::Reconnect {
            scope: ReconnectScope::Xmpp,
            ..
        } => n.reconnects += 1,
        Count::Failover => n.failovers += 1,
        Count::Resync => n.resyncs += 1,
        Count::Signin(reason) => {
            n.signins += 1;
            if reason == SigninReason::Drift {
                n.drift_corrections += 1;
            }
        }
        Count::Malformed => n.malformed += 1,
        Count::Reconnect { .. } | Count::AuthFailure | Count::TimeToReady(_) => {}
    }
    out.push(Action::Count(c));
}

fn phase(m: &mut Machine, p: Phase, cause: Option<Cause>, out: &mut Out) {
    let ready = p == Phase::Steady && !m.ready_sent;
    m.ready_sent |= ready;
    out.push(Action::Phase {
        phase: p,
        cause,
        ready,
    });
}

fn signed_in(m: &mut Machine, signins: &[SigninReason], out: &mut Out) {
    for r in signins {
        count(m, Count::Signin(*r), out);
    }
}

fn stop(m: &mut Machine, out: &mut Out) {
    m.state = State::Stopping;
    out.push(Action::NotifyStopping);
    phase(m, Phase::Stopping, None, out);
    out.push(Action::Stop);
}

/// A reload changed the connection: the driver ended the session; start over on any node.
fn reconnect_reload(m: &mut Machine) {
    m.xmpp_up = false;
    m.node = None;
    m.down_since = None;
    m.confirmed = None;
}

/// The top of a recovery attempt: after a backoff delay when `delay`, else at once.
fn attempt(m: &mut Machine, now: Instant, delay: bool, out: &mut Out) {
    if delay {
        let d = m.backoff.next_delay();
        let until = now + d;
        m.state = State::Backoff { until };
        out.push(Action::Sleep {
            until,
            kind: SleepKind::Backoff {
                attempt: m.backoff.attempts(),
            },
        });
    } else {
        choose(m, out);
    }
}

/// The auth hold: nothing carrying the credentials until `auth_retry` has passed.
fn hold(m: &mut Machine, now: Instant, out: &mut Out) {
    let until = now + m.timing.auth_retry;
    m.state = State::AuthHold { until };
    out.push(Action::Sleep {
        until,
        kind: SleepKind::AuthHold,
    });
}

/// Choose a node: the one just seen in service, else SystemInfo from the current node on.
fn choose(m: &mut Machine, out: &mut Out) {
    if let Some(node) = m.confirmed.take().filter(|&i| i < m.nodes) {
        return chosen(m, node, out);
    }
    let start = m.node.filter(|&i| i < m.nodes).unwrap_or(0);
    m.state = State::Choosing {
        start,
        k: 0,
        cause: Cause::RestUnreachable,
        fallback: None,
    };
    out.push(Action::AskSystemInfo { node: start });
}

fn answered(
    m: &mut Machine,
    start: usize,
    k: usize,
    mut fallback: Option<usize>,
    answer: NodeAnswer,
    now: Instant,
    out: &mut Out,
) {
    let node = (start + k) % m.nodes;
    let cause = match answer {
        NodeAnswer::InService => {
            if k == 0 && !m.migrating {
                m.down_since = None;
            }
            return chosen(m, node, out);
        }
        NodeAnswer::Maintenance => {
            // Serves, but desktops must leave it: the others are asked at once.
            m.migrating = true;
            fallback = fallback.or(Some(node));
            Cause::Maintenance
        }
        NodeAnswer::Failed {
            cause: Cause::AuthFailed,
            ..
        } => {
            // SystemInfo refused the credentials too: the auth hold, not the backoff.
            count(m, Count::AuthFailure, out);
            phase(m, Phase::AuthFailed, Some(Cause::AuthFailed), out);
            return hold(m, now, out);
        }
        NodeAnswer::NotInService => Cause::OutOfService,
        NodeAnswer::Failed { cause, malformed } => {
            if malformed {
                count(m, Count::Malformed, out);
            }
            cause
        }
    };
    let next = k + 1;
    // The other nodes only once the current one has been down for `failover_after` (at
    // once when it is in maintenance mode).
    if next < m.nodes && (m.node.is_none() || m.migrating || may_fail_over(m, now)) {
        m.state = State::Choosing {
            start,
            k: next,
            cause,
            fallback,
        };
        out.push(Action::AskSystemInfo {
            node: (start + next) % m.nodes,
        });
        return;
    }
    if let Some(node) = fallback {
        // No other node serves: stay on the one in maintenance while it still does.
        m.migrating = false;
        return chosen(m, node, out);
    }
    if m.node.is_some() && m.down_since.is_none() {
        m.down_since = Some(now);
    }
    out.push(Action::RestDown(cause));
    let p = if m.counters.resyncs == 0 {
        Phase::Starting
    } else {
        Phase::Recovering
    };
    phase(m, p, Some(cause), out);
    attempt(m, now, true, out);
}

fn may_fail_over(m: &mut Machine, now: Instant) -> bool {
    let since = *m.down_since.get_or_insert(now);
    now.saturating_duration_since(since) >= m.timing.failover_after
}

/// `node` is in service: fail over to it if it is not the current one, then log in (unless
/// the session is up) and resync.
fn chosen(m: &mut Machine, node: usize, out: &mut Out) {
    let moved = m.node.is_some_and(|old| old != node);
    if let Some(from) = m.node.filter(|&old| old != node) {
        out.push(Action::FailOver { from, to: node });
        count(m, Count::Failover, out);
        m.xmpp_up = false;
    }
    m.migrating &= moved;
    m.node = Some(node);
    out.push(Action::SetNode(node));
    if m.xmpp_up {
        resync(m, node, out);
    } else {
        m.state = State::Connecting { node };
        out.push(Action::Connect { node });
    }
}

fn resync(m: &mut Machine, node: usize, out: &mut Out) {
    m.state = State::Resyncing { node };
    phase(m, Phase::Resyncing, None, out);
    out.push(Action::Resync {
        node,
        signins_before: m.counters.signins,
        maintenance: m.migrating,
    });
}

/// The node left service with the session kept: wait for it (or for the other).
fn node_down(m: &mut Machine, node: usize, cause: Cause, now: Instant, out: &mut Out) {
    count(
        m,
        Count::Reconnect {
            scope: ReconnectScope::Node,
            cause,
        },
        out,
    );
    phase(m, Phase::Recovering, Some(cause), out);
    m.down_since.get_or_insert(now);
    m.state = State::Waiting { node };
    out.push(Action::Wait { node });
}

/// Steady ends for a resync: on the same node without asking SystemInfo when the session is
/// up. Only a repair counts as a failure in `time_to_ready`.
fn resync_wanted(m: &mut Machine, node: usize, reason: ResyncReason, now: Instant, out: &mut Out) {
    if reason.is_failure() {
        m.failure_at.get_or_insert(now);
    }
    m.confirmed = m.xmpp_up.then_some(node);
    attempt(m, now, false, out);
}
