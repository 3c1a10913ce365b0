//! Transition tests of the recovery machine, one named sentence per row: each row drives a
//! fresh machine through its `given` inputs (with the time they happen at) and checks what
//! one more input makes it do. No I/O, no runtime. The rows are in `start` and `steady`.

mod start;
mod steady;

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::vocab::{Cause, Phase};

pub(super) fn timing() -> RecoveryConfig {
    // The defaults, with a shorter auth hold.
    RecoveryConfig {
        auth_retry: Duration::from_secs(60),
        ..RecoveryConfig::default()
    }
}

fn si(node: usize, answer: NodeAnswer) -> Input {
    Input::SystemInfo { node, answer }
}

const OK: NodeAnswer = NodeAnswer::InService;
const DOWN: NodeAnswer = NodeAnswer::Failed {
    cause: Cause::RestUnreachable,
    malformed: false,
};

fn resynced() -> Input {
    Input::Resynced {
        signins: Vec::new(),
        refused: false,
    }
}

/// Start, node 0 in service, XMPP up, resynced: steady on node 0 at t = 0.
fn steady() -> Vec<(u64, Input)> {
    vec![
        (0, Input::Start),
        (0, si(0, OK)),
        (0, Input::Connected { pending: None }),
        (0, resynced()),
    ]
}

fn with(mut given: Vec<(u64, Input)>, more: &[(u64, Input)]) -> Vec<(u64, Input)> {
    given.extend(more.iter().cloned());
    given
}

fn operation(actions: &[Action]) -> Option<&Action> {
    actions.iter().find(|a| a.is_operation())
}

fn phase(actions: &[Action]) -> Option<(Phase, Option<Cause>)> {
    actions.iter().rev().find_map(|a| match a {
        Action::Phase { phase, cause, .. } => Some((*phase, *cause)),
        _ => None,
    })
}

fn has(actions: &[Action], want: &Action) -> bool {
    actions.contains(want)
}

fn time_to_ready(actions: &[Action]) -> Option<Duration> {
    actions.iter().find_map(|a| match a {
        Action::Count(Count::TimeToReady(d)) => Some(*d),
        _ => None,
    })
}

fn xmpp_unreachable() -> Input {
    Input::ConnectFailed {
        cause: Cause::XmppUnreachable,
        refusals: 0,
    }
}

fn auth_failed() -> Input {
    Input::ConnectFailed {
        cause: Cause::AuthFailed,
        refusals: 1,
    }
}

/// One transition: a sentence, the inputs that lead up to it, the input, and the check.
struct Row {
    says: &'static str,
    given: Vec<(u64, Input)>,
    when: (u64, Input),
    then: fn(&Machine, &[Action]) -> bool,
}

fn rows() -> Vec<Row> {
    let mut all = start::rows();
    all.extend(steady::rows());
    all
}

#[test]
fn each_row_does_what_it_says() {
    let t0 = Instant::now();
    let mut failed = Vec::new();
    for row in rows() {
        let mut m = Machine::new(&timing(), 2, 1);
        for (at, input) in row.given {
            m.step(input, t0 + Duration::from_millis(at));
        }
        let (at, input) = row.when;
        let actions = m.step(input, t0 + Duration::from_millis(at));
        if !(row.then)(&m, &actions) {
            failed.push(format!("{}\n    got {actions:?}", row.says));
        }
    }
    assert!(
        failed.is_empty(),
        "rows that failed:\n{}",
        failed.join("\n")
    );
}

#[test]
fn at_most_one_operation_comes_out_of_a_step_and_it_comes_last() {
    let t0 = Instant::now();
    for row in rows() {
        let mut m = Machine::new(&timing(), 2, 1);
        for (at, input) in row.given.into_iter().chain([row.when]) {
            let a = m.step(input, t0 + Duration::from_millis(at));
            let ops = a.iter().filter(|x| x.is_operation()).count();
            assert!(ops <= 1, "{}: {a:?}", row.says);
            if ops == 1 {
                assert!(
                    a.last().is_some_and(Action::is_operation),
                    "{}: {a:?}",
                    row.says
                );
            }
        }
    }
}
