//! Rows from steady state on: lost links and conflicts, a node out of service, the periodic
//! resync and `time_to_ready`, resync outcomes, reloads, stray inputs and the stop.

use super::*;
use crate::vocab::{ReconnectScope, ResyncReason, SigninReason};

/// The rows of this part of the table.
pub(super) fn rows() -> Vec<Row> {
    vec![
        Row {
            says: "a conflict shows conflict and holds like a rejected password",
            given: steady(),
            when: (
                500,
                Input::LinkDown {
                    cause: Cause::Conflict,
                },
            ),
            then: |m, a| {
                phase(a) == Some((Phase::Conflict, Some(Cause::Conflict)))
                    && matches!(m.state(), State::AuthHold { .. })
                    && m.counters().reconnects == 1
            },
        },
        Row {
            says: "a lost link counts a reconnect and backs off within the first-retry window",
            given: steady(),
            when: (
                500,
                Input::LinkDown {
                    cause: Cause::XmppPingTimeout,
                },
            ),
            then: |m, a| {
                phase(a) == Some((Phase::Recovering, Some(Cause::XmppPingTimeout)))
                    && m.counters().reconnects == 1
                    && matches!(m.state(), State::Backoff { until } if until <= Instant::now() + Duration::from_millis(2_600))
            },
        },
        Row {
            says: "a node out of service is waited for with the session kept",
            given: steady(),
            when: (
                500,
                Input::NodeDown {
                    cause: Cause::OutOfService,
                },
            ),
            then: |m, a| {
                operation(a) == Some(&Action::Wait { node: 0 })
                    && phase(a) == Some((Phase::Recovering, Some(Cause::OutOfService)))
                    && m.counters().reconnects == 0
            },
        },
        Row {
            says: "a node back by notification is resynced without SystemInfo or a new login",
            given: with(
                steady(),
                &[(
                    500,
                    Input::NodeDown {
                        cause: Cause::OutOfService,
                    },
                )],
            ),
            when: (900, Input::WaitEnded(WaitEnd::Back)),
            then: |_, a| matches!(operation(a), Some(Action::Resync { node: 0, .. })),
        },
        Row {
            says: "a wait polls its node's SystemInfo when systeminfo_poll has passed",
            given: with(
                steady(),
                &[(
                    500,
                    Input::NodeDown {
                        cause: Cause::OutOfService,
                    },
                )],
            ),
            when: (5_500, Input::Timer),
            then: |_, a| operation(a) == Some(&Action::AskSystemInfo { node: 0 }),
        },
        Row {
            says: "a wait's timer before the poll is due asks nothing",
            given: with(
                steady(),
                &[(
                    500,
                    Input::NodeDown {
                        cause: Cause::OutOfService,
                    },
                )],
            ),
            when: (5_400, Input::Timer),
            then: |_, a| a.is_empty(),
        },
        Row {
            says: "a node back on the poll is resynced without a new login",
            given: with(
                steady(),
                &[
                    (
                        500,
                        Input::NodeDown {
                            cause: Cause::OutOfService,
                        },
                    ),
                    (5_500, Input::Timer),
                ],
            ),
            when: (5_600, si(0, OK)),
            then: |_, a| matches!(operation(a), Some(Action::Resync { node: 0, .. })),
        },
        Row {
            says: "a poll that finds its node still out asks the other node",
            given: with(
                steady(),
                &[
                    (
                        500,
                        Input::NodeDown {
                            cause: Cause::OutOfService,
                        },
                    ),
                    (5_500, Input::Timer),
                ],
            ),
            when: (5_600, si(0, NodeAnswer::NotInService)),
            then: |_, a| operation(a) == Some(&Action::AskSystemInfo { node: 1 }),
        },
        Row {
            says: "the other node in service on the poll ends the wait: the machine chooses again",
            given: with(
                steady(),
                &[
                    (
                        500,
                        Input::NodeDown {
                            cause: Cause::OutOfService,
                        },
                    ),
                    (5_500, Input::Timer),
                    (5_600, si(0, NodeAnswer::NotInService)),
                ],
            ),
            when: (5_700, si(1, OK)),
            then: |m, a| {
                matches!(operation(a), Some(Action::AskSystemInfo { .. }))
                    && matches!(m.state(), State::Choosing { .. })
            },
        },
        Row {
            says: "no node in service on the poll: the wait goes on until the next poll",
            given: with(
                steady(),
                &[
                    (
                        500,
                        Input::NodeDown {
                            cause: Cause::OutOfService,
                        },
                    ),
                    (5_500, Input::Timer),
                    (5_600, si(0, NodeAnswer::NotInService)),
                ],
            ),
            when: (5_700, si(1, DOWN)),
            then: |m, a| {
                operation(a) == Some(&Action::Wait { node: 0 })
                    && matches!(
                        m.state(),
                        State::Waiting {
                            node: 0,
                            poll: Poll::At(_)
                        }
                    )
            },
        },
        Row {
            says: "finesse unavailable seen during set-up is acted on: the node is waited for",
            given: vec![(0, Input::Start), (0, si(0, OK))],
            when: (
                0,
                Input::Connected {
                    pending: Some(Cause::FinesseUnavailable),
                },
            ),
            then: |_, a| {
                operation(a) == Some(&Action::Wait { node: 0 })
                    && phase(a) == Some((Phase::Recovering, Some(Cause::FinesseUnavailable)))
                    && has(
                        a,
                        &Action::Count(Count::Reconnect {
                            scope: ReconnectScope::Node,
                            cause: Cause::FinesseUnavailable,
                        }),
                    )
            },
        },
        Row {
            says: "the periodic resync is due resync_every after steady began",
            given: steady(),
            when: (300_000, Input::Timer),
            then: |_, a| matches!(operation(a), Some(Action::Resync { node: 0, .. })),
        },
        Row {
            says: "a periodic resync does not count in time_to_ready",
            given: with(steady(), &[(300_000, Input::Timer)]),
            when: (300_050, resynced()),
            then: |_, a| time_to_ready(a).is_none(),
        },
        Row {
            says: "a lost link counts once in time_to_ready, from its detection to steady",
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
                    (4_000, si(0, OK)),
                    (4_100, Input::Connected { pending: None }),
                ],
            ),
            when: (4_300, resynced()),
            then: |_, a| time_to_ready(a) == Some(Duration::from_millis(3_300)),
        },
        Row {
            says: "a forced logout seen in a notification counts in time_to_ready",
            given: with(
                steady(),
                &[(
                    1_000,
                    Input::ResyncWanted {
                        reason: ResyncReason::MediaSignedOut,
                    },
                )],
            ),
            when: (
                1_200,
                Input::Resynced {
                    signins: vec![SigninReason::Logout],
                    refused: false,
                },
            ),
            then: |m, a| {
                time_to_ready(a) == Some(Duration::from_millis(200)) && m.counters().signins == 1
            },
        },
        Row {
            says: "a resync refused with 401 shows auth_failed and holds, never backs off",
            given: vec![
                (0, Input::Start),
                (0, si(0, OK)),
                (0, Input::Connected { pending: None }),
            ],
            when: (
                0,
                Input::ResyncFailed {
                    cause: Cause::AuthFailed,
                    malformed: false,
                    signins: vec![],
                },
            ),
            then: |_, a| {
                phase(a) == Some((Phase::AuthFailed, Some(Cause::AuthFailed)))
                    && has(a, &Action::Count(Count::AuthFailure))
            },
        },
        Row {
            says: "a drift correction counts as a sign-in and a drift correction",
            given: vec![
                (0, Input::Start),
                (0, si(0, OK)),
                (0, Input::Connected { pending: None }),
            ],
            when: (
                0,
                Input::Resynced {
                    signins: vec![SigninReason::Drift],
                    refused: false,
                },
            ),
            then: |m, _| m.counters().signins == 1 && m.counters().drift_corrections == 1,
        },
        Row {
            says: "the second resync is told how many sign-ins went before",
            given: vec![
                (0, Input::Start),
                (0, si(0, OK)),
                (0, Input::Connected { pending: None }),
                (
                    0,
                    Input::Resynced {
                        signins: vec![SigninReason::Initial],
                        refused: false,
                    },
                ),
            ],
            when: (
                10,
                Input::ResyncWanted {
                    reason: ResyncReason::Reload,
                },
            ),
            then: |_, a| {
                operation(a)
                    == Some(&Action::Resync {
                        node: 0,
                        signins_before: 1,
                        maintenance: false,
                    })
            },
        },
        Row {
            says: "a reload that changes the connection starts over from the first node's SystemInfo",
            given: steady(),
            when: (10, Input::Reloaded(Reload::Reconnect)),
            then: |_, a| operation(a) == Some(&Action::AskSystemInfo { node: 0 }),
        },
        Row {
            says: "an answer from a node that was not asked changes nothing",
            given: vec![(0, Input::Start)],
            when: (0, si(1, OK)),
            then: |m, a| a.is_empty() && matches!(m.state(), State::Choosing { .. }),
        },
        Row {
            says: "a malformed notification is counted without leaving steady",
            given: steady(),
            when: (10, Input::Malformed),
            then: |m, a| {
                a == [Action::Count(Count::Malformed)] && matches!(m.state(), State::Steady { .. })
            },
        },
        Row {
            says: "a stop sends STOPPING, the phase stopping, and the stop operation",
            given: steady(),
            when: (10, Input::Stop),
            then: |_, a| {
                a == [
                    Action::NotifyStopping,
                    Action::Phase {
                        phase: Phase::Stopping,
                        cause: None,
                        ready: false,
                    },
                    Action::Stop,
                ]
            },
        },
        Row {
            says: "maintenance mode on the current node shows recovering and asks the other node at once",
            given: steady(),
            when: (10, Input::Maintenance),
            then: |_, a| {
                operation(a) == Some(&Action::AskSystemInfo { node: 1 })
                    && phase(a) == Some((Phase::Recovering, Some(Cause::Maintenance)))
            },
        },
        Row {
            says: "a migration for maintenance moves without waiting failover_after and marks the resync",
            given: with(steady(), &[(10, Input::Maintenance)]),
            when: (20, si(1, OK)),
            then: |m, a| {
                has(a, &Action::FailOver { from: 0, to: 1 })
                    && m.counters().failovers == 1
                    && operation(a) == Some(&Action::Connect { node: 1 })
            },
        },
        Row {
            says: "the resync after a maintenance migration is marked for the 50045 marker",
            given: with(steady(), &[(10, Input::Maintenance), (20, si(1, OK))]),
            when: (30, Input::Connected { pending: None }),
            then: |_, a| {
                operation(a)
                    == Some(&Action::Resync {
                        node: 1,
                        signins_before: 0,
                        maintenance: true,
                    })
            },
        },
        Row {
            says: "with the other node down, a node in maintenance is kept",
            given: with(steady(), &[(10, Input::Maintenance), (20, si(1, DOWN))]),
            when: (30, si(0, NodeAnswer::Maintenance)),
            then: |m, a| {
                !a.iter().any(|x| matches!(x, Action::FailOver { .. }))
                    && has(a, &Action::SetNode(0))
                    && m.counters().failovers == 0
            },
        },
        Row {
            says: "SystemInfo refusing the credentials holds like a rejected password",
            given: vec![(0, Input::Start)],
            when: (
                0,
                si(
                    0,
                    NodeAnswer::Failed {
                        cause: Cause::AuthFailed,
                        malformed: false,
                    },
                ),
            ),
            then: |m, a| {
                matches!(m.state(), State::AuthHold { .. })
                    && phase(a) == Some((Phase::AuthFailed, Some(Cause::AuthFailed)))
            },
        },
        Row {
            says: "a refused sign-in is retried on the backoff, not at once",
            given: vec![
                (0, Input::Start),
                (0, si(0, OK)),
                (0, Input::Connected { pending: None }),
            ],
            when: (
                0,
                Input::Resynced {
                    signins: vec![SigninReason::Initial],
                    refused: true,
                },
            ),
            then: |m, _| {
                matches!(
                    m.state(),
                    State::Steady {
                        retry_at: Some(_),
                        reset_at: None,
                        ..
                    }
                )
            },
        },
        Row {
            says: "a 401 to an API action in steady state holds like a rejected password",
            given: steady(),
            when: (
                10,
                Input::CredentialsRejected {
                    cause: Cause::AuthFailed,
                },
            ),
            then: |m, a| {
                phase(a) == Some((Phase::AuthFailed, Some(Cause::AuthFailed)))
                    && matches!(m.state(), State::AuthHold { until } if until >= Instant::now() + Duration::from_secs(59))
            },
        },
        Row {
            says: "an SSO refresh token found expired in steady state holds in auth_expired",
            given: steady(),
            when: (
                10,
                Input::CredentialsRejected {
                    cause: Cause::AuthExpired,
                },
            ),
            then: |m, a| {
                phase(a) == Some((Phase::AuthExpired, Some(Cause::AuthExpired)))
                    && matches!(m.state(), State::AuthHold { until } if until >= Instant::now() + Duration::from_secs(59))
            },
        },
        Row {
            says: "nothing happens after a stop",
            given: with(steady(), &[(10, Input::Stop)]),
            when: (
                20,
                Input::LinkDown {
                    cause: Cause::XmppLost,
                },
            ),
            then: |_, a| a.is_empty(),
        },
    ]
}
