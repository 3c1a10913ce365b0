//! Tests of the pure resync decisions.

use super::*;
use crate::config::{InterruptAction, LogoutAction};

fn want() -> MediaConfig {
    MediaConfig {
        id: 5002,
        max_dialog_limit: 3,
        interrupt_action: InterruptAction::Accept,
        dialog_logout_action: LogoutAction::Close,
        state: DesiredState::Ready,
        reason_code_id: None,
        orphan_probe: None,
    }
}

fn media(state: &str, limit: &str) -> Media {
    Media {
        id: Some("5002".into()),
        state: Some(state.into()),
        max_dialog_limit: Some(limit.into()),
        interrupt_action: Some("ACCEPT".into()),
        dialog_logout_action: Some("CLOSE".into()),
        ..Default::default()
    }
}

#[test]
fn signed_out_or_failed_over_media_needs_a_sign_in() {
    for s in ["LOGOUT", "WORK", "WORK_NOT_READY", ""] {
        assert_eq!(decide(&media(s, "3"), &want()), MediaAction::SignIn, "{s}");
    }
}

#[test]
fn drifted_settings_need_a_correction_even_while_working() {
    assert_eq!(
        decide(&media("ACTIVE", "1"), &want()),
        MediaAction::CorrectSettings
    );
    let mut m = media("READY", "3");
    m.dialog_logout_action = Some("TRANSFER".into());
    assert_eq!(decide(&m, &want()), MediaAction::CorrectSettings);
}

#[test]
fn idle_state_is_restored_but_work_is_left_alone() {
    assert_eq!(
        decide(&media("NOT_READY", "3"), &want()),
        MediaAction::SetState {
            state: DesiredState::Ready,
            reason: None
        }
    );
    assert_eq!(decide(&media("READY", "3"), &want()), MediaAction::Nothing);
    assert_eq!(decide(&media("ACTIVE", "3"), &want()), MediaAction::Nothing);
    let mut nr = want();
    nr.state = DesiredState::NotReady;
    nr.reason_code_id = Some(12);
    let mut m = media("NOT_READY", "3");
    m.reason_code_id = Some("7".into());
    assert_eq!(
        decide(&m, &nr),
        MediaAction::SetState {
            state: DesiredState::NotReady,
            reason: Some(12)
        }
    );
    m.reason_code_id = Some("12".into());
    assert_eq!(decide(&m, &nr), MediaAction::Nothing);
}

fn dv(id: &str, state: &str) -> DialogView {
    DialogView {
        id: id.into(),
        media_id: 5002,
        state: state.into(),
        participant_state: state.into(),
        actions: Vec::new(),
        call_variables: BTreeMap::new(),
    }
}

#[test]
fn diff_finds_added_removed_and_changed_dialogs_of_one_mrd_only() {
    let mut local = BTreeMap::new();
    local.insert("a".to_owned(), dv("a", "OFFERED"));
    local.insert("b".to_owned(), dv("b", "ACTIVE"));
    let mut other = dv("x", "ACTIVE");
    other.media_id = 9;
    local.insert("x".to_owned(), other);
    let list = vec![dv("a", "ACCEPTED"), dv("c", "OFFERED")];
    let d = diff(&local, 5002, &list);
    assert_eq!(d.added, vec![dv("c", "OFFERED")]);
    assert_eq!(d.removed, vec![dv("b", "ACTIVE")]);
    assert_eq!(d.changed, vec![dv("a", "ACCEPTED")]);
    apply(&mut local, &d);
    assert_eq!(
        local.keys().cloned().collect::<Vec<_>>(),
        vec!["a", "c", "x"]
    );
}

#[test]
fn a_correction_that_did_not_take_is_not_sent_again_on_that_node_for_those_settings() {
    let drifted = media("READY", "1");
    assert_eq!(decide(&drifted, &want()), MediaAction::CorrectSettings);
    let p = Persistent {
        node: 0,
        asked: sign_in_of(&want()),
        fields: vec![Setting::MaxDialogLimit],
    };
    assert_eq!(
        decide_remembering(&drifted, &want(), 0, Some(&p)),
        MediaAction::Nothing
    );
    // Another node, or other settings asked for: corrected once more.
    assert_eq!(
        decide_remembering(&drifted, &want(), 1, Some(&p)),
        MediaAction::CorrectSettings
    );
    let other = MediaConfig {
        max_dialog_limit: 4,
        ..want()
    };
    assert_eq!(
        decide_remembering(&drifted, &other, 0, Some(&p)),
        MediaAction::CorrectSettings
    );
    // Signed out meanwhile: a fresh sign-in, whatever is remembered.
    assert_eq!(
        decide_remembering(&media("LOGOUT", ""), &want(), 0, Some(&p)),
        MediaAction::SignIn
    );
}
