//! Rows from the start to the auth hold: choosing a node, logging in, the first resync,
//! failover only after `failover_after`, and the hold after a rejected password.

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::vocab::ResyncReason;

/// The rows of this part of the table.
pub(super) fn rows() -> Vec<Row> {
    vec![
        Row {
            says: "a start asks the first node's SystemInfo",
            given: vec![],
            when: (0, Input::Start),
            then: |_, a| operation(a) == Some(&Action::AskSystemInfo { node: 0 }),
        },
        Row {
            says: "a start inside a persisted auth hold waits it out before any login",
            given: vec![],
            when: (
                0,
                Input::StartHeld {
                    until: Instant::now() + Duration::from_secs(30),
                },
            ),
            then: |m, a| {
                phase(a) == Some((Phase::AuthFailed, Some(Cause::AuthFailed)))
                    && matches!(m.state(), State::AuthHold { .. })
                    && matches!(
                        operation(a),
                        Some(Action::Sleep {
                            kind: SleepKind::AuthHold,
                            ..
                        })
                    )
            },
        },
        Row {
            says: "a node in service becomes the current node and is logged in to",
            given: vec![(0, Input::Start)],
            when: (0, si(0, OK)),
            then: |_, a| {
                has(a, &Action::SetNode(0)) && operation(a) == Some(&Action::Connect { node: 0 })
            },
        },
        Row {
            says: "a session up is resynced, with the phase resyncing",
            given: vec![(0, Input::Start), (0, si(0, OK))],
            when: (0, Input::Connected { pending: None }),
            then: |_, a| {
                phase(a) == Some((Phase::Resyncing, None))
                    && operation(a)
                        == Some(&Action::Resync {
                            node: 0,
                            signins_before: 0,
                            maintenance: false,
                        })
            },
        },
        Row {
            says: "the first completed resync is steady and tells systemd READY=1",
            given: vec![
                (0, Input::Start),
                (0, si(0, OK)),
                (0, Input::Connected { pending: None }),
            ],
            when: (0, resynced()),
            then: |m, a| {
                has(
                    a,
                    &Action::Phase {
                        phase: Phase::Steady,
                        cause: None,
                        ready: true,
                    },
                ) && operation(a) == Some(&Action::Steady { node: 0 })
                    && m.counters().resyncs == 1
            },
        },
        Row {
            says: "a later steady does not send READY=1 again",
            given: with(
                steady(),
                &[(
                    100,
                    Input::ResyncWanted {
                        reason: ResyncReason::Periodic,
                    },
                )],
            ),
            when: (200, resynced()),
            then: |_, a| {
                has(
                    a,
                    &Action::Phase {
                        phase: Phase::Steady,
                        cause: None,
                        ready: false,
                    },
                )
            },
        },
        Row {
            says: "a first node unreachable at start (no current node) asks the second at once",
            given: vec![(0, Input::Start)],
            when: (0, si(0, DOWN)),
            then: |_, a| operation(a) == Some(&Action::AskSystemInfo { node: 1 }),
        },
        Row {
            says: "a current node down for less than failover_after is retried, not left",
            given: with(
                steady(),
                &[
                    (
                        1_000,
                        Input::LinkDown {
                            cause: Cause::XmppLost,
                        },
                    ),
                    (3_500, Input::Timer),
                ],
            ),
            when: (3_500, si(0, DOWN)),
            then: |_, a| {
                has(a, &Action::RestDown(Cause::RestUnreachable))
                    && phase(a) == Some((Phase::Recovering, Some(Cause::RestUnreachable)))
                    && matches!(
                        operation(a),
                        Some(Action::Sleep {
                            kind: SleepKind::Backoff { .. },
                            ..
                        })
                    )
            },
        },
        Row {
            says: "a current node down for failover_after makes the other node asked and chosen",
            given: with(
                steady(),
                &[
                    (
                        1_000,
                        Input::LinkDown {
                            cause: Cause::XmppLost,
                        },
                    ),
                    (3_000, Input::Timer),
                    (3_000, si(0, DOWN)),
                    (14_000, Input::Timer),
                    (14_000, si(0, DOWN)),
                ],
            ),
            when: (14_000, si(1, OK)),
            then: |m, a| {
                has(a, &Action::FailOver { from: 0, to: 1 })
                    && operation(a) == Some(&Action::Connect { node: 1 })
                    && m.counters().failovers == 1
            },
        },
        Row {
            says: "a refusal after the driver reported an expired refresh token is auth_expired",
            given: vec![
                (0, Input::Start),
                (0, si(0, OK)),
                (
                    0,
                    Input::AuthFacts(AuthFacts {
                        expired: true,
                        mode_mismatch: true,
                    }),
                ),
            ],
            when: (0, auth_failed()),
            then: |_, a| phase(a) == Some((Phase::AuthExpired, Some(Cause::AuthExpired))),
        },
        Row {
            says: "a REST 401 while the site's auth mode disagrees is auth_mode_mismatch",
            given: with(
                steady(),
                &[(
                    100,
                    Input::AuthFacts(AuthFacts {
                        expired: false,
                        mode_mismatch: true,
                    }),
                )],
            ),
            when: (
                200,
                Input::CredentialsRejected {
                    cause: Cause::AuthFailed,
                },
            ),
            then: |_, a| phase(a).is_some_and(|(_, cause)| cause == Some(Cause::AuthModeMismatch)),
        },
        Row {
            says: "facts alone change nothing, and a cause other than auth_failed is kept",
            given: vec![(0, Input::Start)],
            when: (
                0,
                Input::AuthFacts(AuthFacts {
                    expired: true,
                    mode_mismatch: false,
                }),
            ),
            then: |m, a| a.is_empty() && matches!(m.state(), State::Choosing { .. }),
        },
        Row {
            says: "XMPP failing for failover_after on a node whose REST says IN_SERVICE fails over",
            given: vec![
                (0, Input::Start),
                (0, si(0, OK)),
                (0, xmpp_unreachable()),
                (11_000, Input::Timer),
                (11_000, si(0, OK)),
            ],
            when: (11_000, si(1, OK)),
            then: |m, a| {
                has(a, &Action::FailOver { from: 0, to: 1 })
                    && operation(a) == Some(&Action::Connect { node: 1 })
                    && m.counters().failovers == 1
            },
        },
        Row {
            says: "a node whose XMPP is stuck is asked first, and the other only then",
            given: vec![
                (0, Input::Start),
                (0, si(0, OK)),
                (0, xmpp_unreachable()),
                (11_000, Input::Timer),
            ],
            when: (11_000, si(0, OK)),
            then: |_, a| operation(a) == Some(&Action::AskSystemInfo { node: 1 }),
        },
        Row {
            says: "XMPP stuck but the other node down too: the login is tried again where REST serves",
            given: vec![
                (0, Input::Start),
                (0, si(0, OK)),
                (0, xmpp_unreachable()),
                (11_000, Input::Timer),
                (11_000, si(0, OK)),
            ],
            when: (11_000, si(1, DOWN)),
            then: |_, a| operation(a) == Some(&Action::Connect { node: 0 }),
        },
        Row {
            says: "a node whose SystemInfo fails only after a long wait (a blackhole's connect timeout) was down from when it was asked: past failover_after the other is asked at once",
            given: with(
                steady(),
                &[
                    (
                        1_000,
                        Input::LinkDown {
                            cause: Cause::XmppLost,
                        },
                    ),
                    (4_000, Input::Timer),
                ],
            ),
            when: (14_100, si(0, DOWN)),
            then: |_, a| operation(a) == Some(&Action::AskSystemInfo { node: 1 }),
        },
        Row {
            says: "an XMPP blip shorter than failover_after stays on the node",
            given: vec![
                (0, Input::Start),
                (0, si(0, OK)),
                (0, xmpp_unreachable()),
                (3_000, Input::Timer),
            ],
            when: (3_000, si(0, OK)),
            then: |_, a| operation(a) == Some(&Action::Connect { node: 0 }),
        },
        Row {
            says: "a rejected password shows auth_failed and holds for auth_retry",
            given: vec![(0, Input::Start), (0, si(0, OK))],
            when: (0, auth_failed()),
            then: |m, a| {
                phase(a) == Some((Phase::AuthFailed, Some(Cause::AuthFailed)))
                    && has(a, &Action::Count(Count::AuthFailure))
                    && matches!(m.state(), State::AuthHold { .. })
                    && matches!(
                        operation(a),
                        Some(Action::Sleep {
                            kind: SleepKind::AuthHold,
                            ..
                        })
                    )
            },
        },
        Row {
            says: "a timer before the auth hold's deadline does nothing",
            given: vec![(0, Input::Start), (0, si(0, OK)), (0, auth_failed())],
            when: (59_999, Input::Timer),
            then: |_, a| a.is_empty(),
        },
        Row {
            says: "the auth hold's deadline starts a new attempt at once",
            given: vec![(0, Input::Start), (0, si(0, OK)), (0, auth_failed())],
            when: (60_000, Input::Timer),
            then: |_, a| operation(a) == Some(&Action::AskSystemInfo { node: 0 }),
        },
        Row {
            says: "a login whose channel-binding attempt and fallback were both refused holds twice as long",
            given: vec![
                (0, Input::Start),
                (0, si(0, OK)),
                (
                    0,
                    Input::ConnectFailed {
                        cause: Cause::AuthFailed,
                        refusals: 2,
                    },
                ),
            ],
            when: (119_999, Input::Timer),
            then: |m, a| a.is_empty() && matches!(m.state(), State::AuthHold { .. }),
        },
        Row {
            says: "a reload that changes nothing the login uses does not end the auth hold",
            given: vec![(0, Input::Start), (0, si(0, OK)), (0, auth_failed())],
            when: (1_000, Input::Reloaded(Reload::Unchanged)),
            then: |m, a| a.is_empty() && matches!(m.state(), State::AuthHold { .. }),
        },
        Row {
            says: "a reload with new credentials ends the auth hold",
            given: vec![(0, Input::Start), (0, si(0, OK)), (0, auth_failed())],
            when: (1_000, Input::Reloaded(Reload::CredentialsChanged)),
            then: |_, a| operation(a) == Some(&Action::AskSystemInfo { node: 0 }),
        },
        Row {
            says: "a reload that changes the nodes but not the password waits the auth hold out",
            given: vec![(0, Input::Start), (0, si(0, OK)), (0, auth_failed())],
            when: (1_000, Input::Reloaded(Reload::Reconnect)),
            // Nothing is sent; the session the reload ended is published down.
            then: |m, a| {
                operation(a).is_none()
                    && a == [Action::XmppLink {
                        up: false,
                        cause: Some(Cause::Reload),
                    }]
                    && matches!(m.state(), State::AuthHold { .. })
            },
        },
        Row {
            says: "a REST 401 in a resync while systemAuthMode disagrees holds in auth_mode_mismatch",
            given: vec![
                (0, Input::Start),
                (0, si(0, OK)),
                (0, Input::Connected { pending: None }),
            ],
            when: (
                0,
                Input::ResyncFailed {
                    cause: Cause::AuthModeMismatch,
                    malformed: false,
                    signins: Vec::new(),
                },
            ),
            then: |m, a| {
                phase(a) == Some((Phase::AuthModeMismatch, Some(Cause::AuthModeMismatch)))
                    && matches!(m.state(), State::AuthHold { .. })
            },
        },
        Row {
            says: "a refused XMPP token login with an expired refresh token holds in auth_expired",
            given: vec![(0, Input::Start), (0, si(0, OK))],
            when: (
                0,
                Input::ConnectFailed {
                    cause: Cause::AuthExpired,
                    refusals: 1,
                },
            ),
            then: |m, a| {
                phase(a) == Some((Phase::AuthExpired, Some(Cause::AuthExpired)))
                    && matches!(m.state(), State::AuthHold { .. })
            },
        },
    ]
}
