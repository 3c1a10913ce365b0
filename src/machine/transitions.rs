//! The moments the transitions of [`super::logic`] are made of: the start of an attempt (after
//! a backoff or at once), the auth hold, choosing a node and taking SystemInfo's answers, a
//! node chosen, a resync begun, a node left for maintenance or waited for, and the counters and
//! phase changes each records.

use tokio::time::Instant;

use super::{Action, Count, Machine, NodeAnswer, Poll, SleepKind, State};
use crate::vocab::{Cause, MAX_REFUSALS, Phase, ReconnectScope, ResyncReason, SigninReason};

pub(super) type Out = Vec<Action>;

/// The XMPP session is up, or down for `cause`: the machine's own record and the published one.
pub(super) fn xmpp_link(m: &mut Machine, up: bool, cause: Option<Cause>, out: &mut Out) {
    m.xmpp_up = up;
    out.push(Action::XmppLink { up, cause });
}

pub(super) fn count(m: &mut Machine, c: Count, out: &mut Out) {
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

pub(super) fn phase(m: &mut Machine, p: Phase, cause: Option<Cause>, out: &mut Out) {
    let ready = p == Phase::Steady && !m.ready_sent;
    m.ready_sent |= ready;
    out.push(Action::Phase {
        phase: p,
        cause,
        ready,
    });
}

pub(super) fn signed_in(m: &mut Machine, signins: &[SigninReason], out: &mut Out) {
    for r in signins {
        count(m, Count::Signin(*r), out);
    }
}

pub(super) fn stop(m: &mut Machine, out: &mut Out) {
    m.state = State::Stopping;
    out.push(Action::NotifyStopping);
    phase(m, Phase::Stopping, None, out);
    out.push(Action::Stop);
}

/// A reload changed the connection: the driver ended the session; start over on any node.
pub(super) fn reconnect_reload(m: &mut Machine, out: &mut Out) {
    xmpp_link(m, false, Some(Cause::Reload), out);
    m.node = None;
    m.xmpp_failing_since = None;
    m.down_since = None;
    m.confirmed = None;
}

/// The top of a recovery attempt: after a backoff delay when `delay`, else at once.
pub(super) fn attempt(m: &mut Machine, now: Instant, delay: bool, out: &mut Out) {
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
pub(super) fn hold(m: &mut Machine, now: Instant, out: &mut Out) {
    hold_for(m, 1, now, out);
}

/// The auth hold after `refusals` refused passwords (at most [`MAX_REFUSALS`]): one
/// `auth_retry` each, so that the rate stays one per `auth_retry`.
pub(super) fn hold_for(m: &mut Machine, refusals: u32, now: Instant, out: &mut Out) {
    let until = now + m.timing.auth_retry * refusals.clamp(1, MAX_REFUSALS);
    m.state = State::AuthHold { until };
    out.push(Action::Sleep {
        until,
        kind: SleepKind::AuthHold,
    });
}

/// Choose a node: the one just seen in service, else SystemInfo from the current node on.
pub(super) fn choose(m: &mut Machine, out: &mut Out) {
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

pub(super) fn answered(
    m: &mut Machine,
    start: usize,
    k: usize,
    mut fallback: Option<usize>,
    answer: NodeAnswer,
    now: Instant,
    out: &mut Out,
) {
    let node = (start + k) % m.nodes;
    // The current node's REST says IN_SERVICE, but its XMPP has failed every login for
    // `failover_after`: REST alone does not keep an agent routable, so the others are asked
    // (the current node stays the fallback when none serves).
    let xmpp_stuck = k == 0
        && m.nodes > 1
        && m.node == Some(node)
        && m.xmpp_failing_since
            .is_some_and(|t| now.saturating_duration_since(t) >= m.timing.failover_after);
    let cause = match answer {
        NodeAnswer::InService if xmpp_stuck => {
            fallback = fallback.or(Some(node));
            Cause::XmppUnreachable
        }
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
        NodeAnswer::Failed { cause, .. } if cause.is_auth() => {
            // SystemInfo refused the credentials too: the auth hold, not the backoff.
            count(m, Count::AuthFailure, out);
            phase(m, cause.auth_phase(), Some(cause), out);
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
    // The current node was down from when it was asked, not from when the answer gave up.
    if k == 0 && m.node == Some(node) && cause != Cause::Maintenance {
        if let Some(at) = m.asked_at {
            let since = m.down_since.get_or_insert(at);
            *since = (*since).min(at);
        }
    }
    let next = k + 1;
    // The other nodes only once the current one has been down for `failover_after` (at
    // once when it is in maintenance mode).
    let stuck = xmpp_stuck
        || m.xmpp_failing_since
            .is_some_and(|t| now.saturating_duration_since(t) >= m.timing.failover_after);
    if next < m.nodes && (m.node.is_none() || m.migrating || stuck || may_fail_over(m, now)) {
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

pub(super) fn may_fail_over(m: &mut Machine, now: Instant) -> bool {
    let since = *m.down_since.get_or_insert(now);
    now.saturating_duration_since(since) >= m.timing.failover_after
}

/// `node` is in service: fail over to it if it is not the current one, then log in (unless
/// the session is up) and resync.
pub(super) fn chosen(m: &mut Machine, node: usize, out: &mut Out) {
    let moved = m.node.is_some_and(|old| old != node);
    if let Some(from) = m.node.filter(|&old| old != node) {
        out.push(Action::FailOver { from, to: node });
        count(m, Count::Failover, out);
        m.xmpp_up = false;
        m.xmpp_failing_since = None;
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

pub(super) fn resync(m: &mut Machine, node: usize, out: &mut Out) {
    m.state = State::Resyncing { node };
    phase(m, Phase::Resyncing, None, out);
    out.push(Action::Resync {
        node,
        signins_before: m.counters.signins,
        maintenance: m.migrating,
    });
}

/// The node left service with the session kept: wait for it (or for the other).
pub(super) fn node_down(m: &mut Machine, node: usize, cause: Cause, now: Instant, out: &mut Out) {
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
    wait(m, node, now, out);
}

/// Wait for `node` with the session kept; the next poll one `systeminfo_poll` from `now`.
pub(super) fn wait(m: &mut Machine, node: usize, now: Instant, out: &mut Out) {
    m.state = State::Waiting {
        node,
        poll: Poll::At(now + m.timing.systeminfo_poll),
    };
    out.push(Action::Wait { node });
}

/// The poll during a wait for `node`: ask `asked` (the node itself first, then each other
/// node in turn).
pub(super) fn poll(m: &mut Machine, node: usize, asked: usize, out: &mut Out) {
    m.state = State::Waiting {
        node,
        poll: Poll::Asking(asked),
    };
    out.push(Action::AskSystemInfo { node: asked });
}

/// The node asked after `asked` in a poll for `node`: the other nodes in order, none after
/// the last.
pub(super) fn next_polled(m: &Machine, node: usize, asked: usize) -> Option<usize> {
    let from = if asked == node { 0 } else { asked + 1 };
    (from..m.nodes).find(|k| *k != node)
}

/// Steady ends for a resync: on the same node without asking SystemInfo when the session is
/// up. Only a repair counts as a failure in `time_to_ready`.
pub(super) fn resync_wanted(
    m: &mut Machine,
    node: usize,
    reason: ResyncReason,
    now: Instant,
    out: &mut Out,
) {
    if reason.is_failure() {
        m.failure_at.get_or_insert(now);
    }
    m.confirmed = m.xmpp_up.then_some(node);
    attempt(m, now, false, out);
}
