//! Property test of the recovery machine: random sequences of inputs at random times (any
//! input in any state, as a confused or hostile driver might feed them), with the invariants
//! checked after every step. `PROPTEST_CASES` sets the number of sequences (256 by default;
//! the session note gives the figure of a long local run).

use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::tests::timing;
use super::*;
use crate::vocab::{Cause, Phase, ReconnectScope, ResyncReason, SigninReason};

fn cause() -> impl Strategy<Value = Cause> {
    prop::sample::select(Cause::ALL.to_vec())
}

fn answer() -> impl Strategy<Value = NodeAnswer> {
    prop_oneof![
        3 => Just(NodeAnswer::InService),
        1 => Just(NodeAnswer::Maintenance),
        1 => Just(NodeAnswer::NotInService),
        2 => (cause(), any::<bool>()).prop_map(|(cause, malformed)| NodeAnswer::Failed { cause, malformed }),
    ]
}

fn signins() -> impl Strategy<Value = Vec<SigninReason>> {
    prop::collection::vec(prop::sample::select(SigninReason::ALL.to_vec()), 0..3)
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        1 => Just(Input::Start),
        4 => (0..3usize, answer()).prop_map(|(node, answer)| Input::SystemInfo { node, answer }),
        3 => prop::option::weighted(0.2, prop::sample::select(vec![Cause::OutOfService, Cause::FinesseUnavailable]))
            .prop_map(|pending| Input::Connected { pending }),
        2 => (cause(), 0..=crate::vocab::MAX_REFUSALS).prop_map(|(cause, refusals)| Input::ConnectFailed { cause, refusals }),
        3 => (signins(), prop::bool::weighted(0.2)).prop_map(|(signins, refused)| Input::Resynced { signins, refused }),
        1 => Just(Input::SigninRefused),
        1 => Just(Input::Maintenance),
        1 => cause().prop_map(|cause| Input::CredentialsRejected { cause }),
        1 => (cause(), any::<bool>(), signins()).prop_map(|(cause, malformed, signins)| Input::ResyncFailed { cause, malformed, signins }),
        2 => cause().prop_map(|cause| Input::LinkDown { cause }),
        1 => cause().prop_map(|cause| Input::NodeDown { cause }),
        1 => prop::sample::select(ResyncReason::ALL.to_vec()).prop_map(|reason| Input::ResyncWanted { reason }),
        1 => prop::sample::select(vec![WaitEnd::Back, WaitEnd::LinkLost]).prop_map(Input::WaitEnded),
        1 => prop::sample::select(vec![Reload::Refused, Reload::Unchanged, Reload::Resync, Reload::Reconnect, Reload::CredentialsChanged]).prop_map(Input::Reloaded),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(expired, mode_mismatch)| Input::AuthFacts(AuthFacts { expired, mode_mismatch })),
        1 => Just(Input::Malformed),
        4 => Just(Input::Timer),
        1 => Just(Input::Stop),
    ]
}

/// Inputs with the milliseconds that pass before each.
fn script() -> impl Strategy<Value = Vec<(u64, Input)>> {
    prop::collection::vec(
        (prop_oneof![3 => 0..2_000u64, 1 => 0..120_000u64], input()),
        1..80,
    )
}

/// Is this failure exit from steady one that must count in `time_to_ready`?
fn is_failure_exit(input: &Input) -> bool {
    match input {
        Input::LinkDown { .. } | Input::NodeDown { .. } | Input::CredentialsRejected { .. } => true,
        Input::ResyncWanted { reason } => reason.is_failure(),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// The machine takes its randomness as an input: the same seed and script give the same
    /// actions, step for step, so that any failure above replays exactly.
    #[test]
    fn the_same_seed_and_inputs_give_the_same_actions(seed in any::<u64>(), script in script()) {
        let t0 = Instant::now();
        let run = || {
            let mut m = Machine::new(&timing(), 2, seed);
            let mut now = t0;
            let mut out = vec![m.step(Input::Start, now)];
            for (dt, input) in script.clone() {
                now += Duration::from_millis(dt);
                out.push(m.step(input, now));
            }
            out
        };
        prop_assert_eq!(run(), run());
    }
}

proptest! {
    // No regression files next to the source (the layout stays clean); a failure prints its
    // minimal input, which belongs in the table of `tests` as a row.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_machine_keeps_its_invariants_whatever_it_is_fed(seed in any::<u64>(), script in script()) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut m = Machine::new(&timing(), 2, seed);
        m.step(Input::Start, now);
        let mut failure_pending = false;
        let mut counted = Counters::default();
        for (dt, input) in script {
            now += Duration::from_millis(dt);
            let before = m.state();
            let down_since = m.down_since;
            let xmpp_failing_since = m.xmpp_failing_since;
            let node_before = m.node;
            let migrating = m.migrating;
            let was_steady = matches!(before, State::Steady { .. });
            let actions = m.step(input.clone(), now);

            // One operation at most, and last.
            let ops: Vec<&Action> = actions.iter().filter(|a| a.is_operation()).collect();
            prop_assert!(ops.len() <= 1, "{:?}", actions);
            if !ops.is_empty() {
                prop_assert!(actions.last().is_some_and(Action::is_operation));
            }

            // Stopping is terminal.
            if before == State::Stopping {
                prop_assert!(actions.is_empty());
            }

            // No login, resync or SystemInfo during an auth hold before its deadline, unless
            // the reload changed the credentials (or the daemon stops).
            if let State::AuthHold { until } = before {
                let allowed = matches!(input, Input::Stop | Input::Reloaded(Reload::CredentialsChanged));
                if now < until && !allowed {
                    prop_assert!(ops.is_empty(), "in the hold: {:?} gave {:?}", input, actions);
                }
            }

            // Steady only after a completed resync.
            let steady = actions.iter().any(|a| matches!(a, Action::Phase { phase: Phase::Steady, .. }));
            if steady {
                let after_resync = matches!(before, State::Resyncing { .. })
                    && matches!(input, Input::Resynced { .. });
                prop_assert!(after_resync, "steady after {:?} in {:?}", input, before);
                let now_steady = matches!(m.state(), State::Steady { .. });
                prop_assert!(now_steady, "{:?}", m.state());
            }

            // Every failure that leaves steady counts exactly once in time_to_ready.
            let ttr = actions.iter().filter(|a| matches!(a, Action::Count(Count::TimeToReady(_)))).count();
            if was_steady && is_failure_exit(&input) {
                failure_pending = true;
            }
            if steady {
                prop_assert_eq!(ttr, usize::from(failure_pending), "{:?}", actions);
                failure_pending = false;
            } else {
                prop_assert_eq!(ttr, 0);
            }

            // A failover leaves a node only after failover_after of it being down: its REST, or
            // its XMPP while its REST still answers.
            for a in &actions {
                if let Action::FailOver { from, .. } = a {
                    prop_assert_eq!(Some(*from), node_before);
                    // Only maintenance mode moves without waiting `failover_after`.
                    let since = [down_since, xmpp_failing_since].into_iter().flatten().min().unwrap_or(now);
                    let waited = now.saturating_duration_since(since);
                    prop_assert!(migrating || waited >= timing().failover_after, "failover after {:?}", waited);
                }
            }

            // The counters the driver is told to bump are the machine's own.
            for a in &actions {
                if let Action::Count(c) = a {
                    match c {
                        Count::Reconnect { scope: ReconnectScope::Xmpp, .. } => counted.reconnects += 1,
                        Count::Failover => counted.failovers += 1,
                        Count::Resync => counted.resyncs += 1,
                        Count::Signin(r) => {
                            counted.signins += 1;
                            counted.drift_corrections += u64::from(*r == SigninReason::Drift);
                        }
                        Count::Malformed => counted.malformed += 1,
                        _ => {}
                    }
                }
            }
            prop_assert_eq!(&counted, m.counters());
        }
    }
}
