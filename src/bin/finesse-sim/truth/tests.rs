//! Unit tests of the truth's pure rules: sign-in per node, already-logged-in, the failover
//! view, dialog actions, routing limits, logout actions and the lockout (with paused time).

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::*;
use crate::config::SimConfig;

fn truth() -> Truth {
    let config: SimConfig = toml::from_str(
        r#"
        [[mrds]]
        id = 5002
        name = "Chat_MRD"
        [[agents]]
        id = "a1"
        password = "pw"
        mrds = [5002]
        "#,
    )
    .unwrap();
    Truth::new(&config)
}

fn login(limit: &str, interrupt: &str) -> MediaRequest {
    MediaRequest {
        state: Some("LOGIN".into()),
        max_dialog_limit: Some(limit.into()),
        interrupt_action: Some(interrupt.into()),
        ..Default::default()
    }
}

fn state(s: &str) -> MediaRequest {
    MediaRequest {
        state: Some(s.into()),
        ..Default::default()
    }
}

const NOW: SystemTime = SystemTime::UNIX_EPOCH;

#[test]
fn sign_in_lands_not_ready_and_routable_with_the_settings_on_that_node_only() {
    let mut t = truth();
    let effects = t
        .put_media(0, "a1", 5002, &login("3", "IGNORE"), NOW)
        .unwrap();
    assert_eq!(effects.len(), 1);
    let a = t.media_view("a1", 5002, 0).unwrap();
    assert_eq!((a.state.as_str(), a.routable), ("NOT_READY", true));
    assert_eq!(a.settings.max_dialog_limit, 3);
    assert_eq!(a.settings.dialog_logout_action, "CLOSE");
    let b = t.media_view("a1", 5002, 1).unwrap();
    assert_eq!(b.state, "WORK_NOT_READY");
    assert_eq!(b.settings, t.default_settings());
}

#[test]
fn signing_in_again_on_the_same_node_resets_settings_keeps_state_and_says_already_logged_in() {
    let mut t = truth();
    t.put_media(0, "a1", 5002, &login("3", "ACCEPT"), NOW)
        .unwrap();
    t.put_media(0, "a1", 5002, &state("READY"), NOW).unwrap();
    t.drift("a1", 5002, 0).unwrap();
    let err = t
        .put_media(0, "a1", 5002, &login("3", "ACCEPT"), NOW)
        .unwrap_err();
    assert_eq!(err, OpError::already_logged_in(5002));
    let v = t.media_view("a1", 5002, 0).unwrap();
    assert_eq!(v.state, "READY");
    assert_eq!(v.settings.max_dialog_limit, 3);
}

#[test]
fn signing_in_on_the_other_node_moves_the_agent_there() {
    let mut t = truth();
    t.put_media(0, "a1", 5002, &login("3", "ACCEPT"), NOW)
        .unwrap();
    assert!(t.put_media(1, "a1", 5002, &state("READY"), NOW).is_err());
    t.put_media(1, "a1", 5002, &login("2", "ACCEPT"), NOW)
        .unwrap();
    assert_eq!(t.media_view("a1", 5002, 1).unwrap().state, "NOT_READY");
    assert_eq!(t.media_view("a1", 5002, 0).unwrap().state, "WORK_NOT_READY");
}

#[test]
fn ready_to_ready_is_ignored_without_notification() {
    let mut t = truth();
    t.put_media(0, "a1", 5002, &login("3", "ACCEPT"), NOW)
        .unwrap();
    assert_eq!(
        t.put_media(0, "a1", 5002, &state("READY"), NOW)
            .unwrap()
            .len(),
        1
    );
    assert!(
        t.put_media(0, "a1", 5002, &state("READY"), NOW)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn bad_sign_in_bodies_name_the_field() {
    let mut t = truth();
    let Err(OpError::Http {
        status, message, ..
    }) = t.put_media(0, "a1", 5002, &login("11", "ACCEPT"), NOW)
    else {
        panic!("expected an HTTP error");
    };
    assert_eq!(status, 400);
    assert!(message.contains("maxDialogLimit"), "{message}");
    let Err(OpError::Http { message, .. }) = t.put_media(0, "a1", 5002, &login("3", "MAYBE"), NOW)
    else {
        panic!("expected an HTTP error");
    };
    assert!(message.contains("interruptAction"), "{message}");
}

#[test]
fn offers_respect_ready_routable_and_max_dialog_limit() {
    let mut t = truth();
    assert!(t.offer("a1", 5002, Offer::default(), NOW).is_err());
    t.put_media(0, "a1", 5002, &login("1", "ACCEPT"), NOW)
        .unwrap();
    assert!(
        t.offer("a1", 5002, Offer::default(), NOW).is_err(),
        "NOT_READY"
    );
    t.put_media(0, "a1", 5002, &state("READY"), NOW).unwrap();
    let (d, _) = t.offer("a1", 5002, Offer::default(), NOW).unwrap();
    assert_eq!(d.state, "OFFERED");
    assert!(
        t.offer("a1", 5002, Offer::default(), NOW).is_err(),
        "limit 1"
    );
    assert_eq!(t.media_view("a1", 5002, 0).unwrap().state, "RESERVED");
}

#[test]
fn dialog_actions_follow_the_state_table() {
    let mut t = truth();
    t.put_media(0, "a1", 5002, &login("3", "ACCEPT"), NOW)
        .unwrap();
    t.put_media(0, "a1", 5002, &state("READY"), NOW).unwrap();
    let (d, _) = t.offer("a1", 5002, Offer::default(), NOW).unwrap();
    assert!(t.dialog_action(Some(0), "a1", &d.id, "START", NOW).is_err());
    for action in ["ACCEPT", "START", "PAUSE", "RESUME", "WRAP_UP"] {
        t.dialog_action(Some(0), "a1", &d.id, action, NOW).unwrap();
    }
    assert_eq!(t.media_view("a1", 5002, 0).unwrap().state, "WORK_READY");
    let effects = t.dialog_action(Some(0), "a1", &d.id, "CLOSE", NOW).unwrap();
    assert!(
        matches!(&effects[0], Effect::Dialog { event: "DELETE", dialog } if dialog.state == "CLOSED")
    );
    assert!(t.find_dialog(&d.id).is_none());
    assert_eq!(t.media_view("a1", 5002, 0).unwrap().state, "READY");
}

#[test]
fn logout_transfers_dialogs_when_dialog_logout_action_is_transfer() {
    let mut t = truth();
    let mut req = login("3", "ACCEPT");
    req.dialog_logout_action = Some("TRANSFER".into());
    t.put_media(0, "a1", 5002, &req, NOW).unwrap();
    t.put_media(0, "a1", 5002, &state("READY"), NOW).unwrap();
    t.offer("a1", 5002, Offer::default(), NOW).unwrap();
    let effects = t.forced_logout("a1", Some(0), NOW);
    let Effect::Dialog { dialog, .. } = &effects[0] else {
        panic!("dialog first")
    };
    assert_eq!(
        dialog.disposition.as_deref(),
        Some("CD_TASK_TRANSFERRED_AGENT_LOGOUT")
    );
    let v = t.media_view("a1", 5002, 0).unwrap();
    assert_eq!((v.state.as_str(), v.reason_code_id), ("LOGOUT", Some(255)));
}

#[test]
fn double_pg_failure_changes_the_set_without_effects() {
    let mut t = truth();
    t.put_media(0, "a1", 5002, &login("3", "ACCEPT"), NOW)
        .unwrap();
    t.put_media(0, "a1", 5002, &state("READY"), NOW).unwrap();
    let (d, _) = t.offer("a1", 5002, Offer::default(), NOW).unwrap();
    let (removed, added) = t.double_pg_failure("a1", 5002, None, 2, NOW).unwrap();
    assert_eq!(removed, vec![d.id]);
    assert_eq!(added.len(), 2);
    assert_eq!(t.agents["a1"].media[&5002].dialogs.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn five_bad_passwords_within_the_window_lock_the_account_for_the_duration() {
    let mut t = truth();
    for _ in 0..4 {
        assert_eq!(
            t.authenticate("a1", "bad", Instant::now()),
            Err(AuthFailure::BadPassword)
        );
    }
    assert_eq!(
        t.authenticate("a1", "pw", Instant::now()),
        Ok(()),
        "a success resets the count"
    );
    for _ in 0..5 {
        let _ = t.authenticate("a1", "bad", Instant::now());
    }
    assert_eq!(
        t.authenticate("a1", "pw", Instant::now()),
        Err(AuthFailure::Locked)
    );
    tokio::time::advance(Duration::from_secs(301)).await;
    assert_eq!(t.authenticate("a1", "pw", Instant::now()), Ok(()));
    assert_eq!(t.agents["a1"].lockouts, 1);
}

#[tokio::test(start_paused = true)]
async fn bad_passwords_spread_beyond_the_window_do_not_lock() {
    let mut t = truth();
    for _ in 0..10 {
        let _ = t.authenticate("a1", "bad", Instant::now());
        tokio::time::advance(Duration::from_secs(76)).await;
    }
    assert_eq!(t.authenticate("a1", "pw", Instant::now()), Ok(()));
    assert_eq!(t.agents["a1"].lockouts, 0);
}
