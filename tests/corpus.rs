//! The corpus of Finesse documents in `tests/corpus/`, each following one of Cisco's published
//! examples (element names, order and omissions; see its first comment and the README there),
//! read with the daemon's own readers: every document decodes to what the test states, and
//! every document Cisco published malformed is refused with an error.

use finesse_taskd::finesse::model::{
    ApiErrors, Dialogs, Media, MediaList, Notification, SystemInfo, Update,
};
use finesse_taskd::reconcile::{Setting, drifted};

fn doc(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn update(name: &str) -> Update {
    Update::decode(&doc(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The settings the daemon asks for in the tests: 3 / ACCEPT / CLOSE on 5002, and on 5003 the
/// values Cisco's non-interruptible example reports except interruptAction, which is asked as
/// ACCEPT (Finesse reports IGNORE for a non-interruptible MRD whatever was asked).
fn want(mrd: u32) -> finesse_taskd::config::MediaConfig {
    use finesse_taskd::config::{DesiredState, InterruptAction, LogoutAction, MediaConfig};
    let (limit, logout) = if mrd == 5002 {
        (3, LogoutAction::Close)
    } else {
        (2, LogoutAction::Transfer)
    };
    MediaConfig {
        id: mrd,
        max_dialog_limit: limit,
        interrupt_action: InterruptAction::Accept,
        dialog_logout_action: logout,
        state: DesiredState::NotReady,
        reason_code_id: None,
        orphan_probe: None,
    }
}

#[test]
fn media_signed_in_has_every_setting_and_no_drift() {
    let m = Media::parse(&doc("media-signed-in.xml")).unwrap();
    assert_eq!(m.mrd(), Some(5002));
    assert_eq!(m.state(), "NOT_READY");
    assert_eq!(m.reason(), Some(21));
    assert_eq!(m.limit(), Some(3));
    assert_eq!(m.is_interruptible(), Some(true));
    assert_eq!(m.interrupt_action.as_deref().map(str::trim), Some("ACCEPT"));
    assert_eq!(m.is_routable(), Some(true));
    assert!(m.is_eligible());
    assert!(drifted(&m, &want(5002)).is_empty());
}

#[test]
fn media_outside_any_skill_group_is_not_eligible_and_carries_no_settings() {
    let m = Media::parse(&doc("media-not-in-skill-group.xml")).unwrap();
    assert_eq!(m.mrd(), Some(5002));
    assert!(!m.is_eligible());
    assert_eq!(m.limit(), None);
    assert_eq!(m.interrupt_action, None);
    assert_eq!(m.dialog_logout_action, None);
    assert!(drifted(&m, &want(5002)).is_empty(), "unknown is not drift");
}

#[test]
fn a_non_interruptible_mrd_reporting_ignore_is_not_drift() {
    let m = Media::parse(&doc("media-non-interruptible.xml")).unwrap();
    assert_eq!(m.mrd(), Some(5003));
    assert_eq!(m.is_interruptible(), Some(false));
    assert_eq!(m.interrupt_action.as_deref().map(str::trim), Some("IGNORE"));
    assert!(drifted(&m, &want(5003)).is_empty());
    // The same document for an interruptible MRD would be drift.
    let mut interruptible = m.clone();
    interruptible.interruptible = Some("true".into());
    assert_eq!(
        drifted(&interruptible, &want(5003)),
        vec![Setting::InterruptAction]
    );
}

#[test]
fn a_media_without_interrupt_action_leaves_it_unknown() {
    let m = Media::parse(&doc("media-object-no-interruptaction.xml")).unwrap();
    assert_eq!(m.interrupt_action, None);
    assert_eq!(m.limit(), Some(3));
    assert!(drifted(&m, &want(5002)).is_empty());
}

#[test]
fn media_lists_hold_eligible_and_ineligible_mrds() {
    let l = MediaList::parse(&doc("medialist.xml")).unwrap();
    let ids: Vec<_> = l.media.iter().map(|m| m.mrd()).collect();
    assert_eq!(ids, vec![Some(5002), Some(5003)]);
    assert!(l.media.iter().all(Media::is_eligible));
    let mixed = MediaList::parse(&doc("medialist-mixed.xml")).unwrap();
    let eligible: Vec<_> = mixed.media.iter().map(Media::is_eligible).collect();
    assert_eq!(eligible, vec![true, false]);
}

#[test]
fn dialog_lists_decode_with_entities_and_actions() {
    let l = Dialogs::parse(&doc("dialogs-list.xml")).unwrap();
    assert_eq!(l.dialogs.len(), 2);
    let d = &l.dialogs[0];
    assert_eq!(d.id.trim(), "150001_7_1");
    assert_eq!(d.state.trim(), "OFFERED");
    assert_eq!(d.mrd(), Some(5002));
    let vars = &d.media_properties.callvariables.variables;
    assert!(
        vars.iter().any(|v| v.value == "Jane <jane@customer.test>"),
        "{vars:?}"
    );
    assert_eq!(d.participants.participant[0].actions.action, vec!["ACCEPT"]);
    let active = &l.dialogs[1];
    assert_eq!(
        active.participants.participant[0].actions.action,
        vec!["PAUSE", "WRAP_UP", "TRANSFER", "CLOSE"]
    );
    assert!(
        Dialogs::parse(&doc("dialogs-list-empty.xml"))
            .unwrap()
            .dialogs
            .is_empty()
    );
}

#[test]
fn cisco_media_notification_decodes_in_its_order_with_a_lower_case_event() {
    let u = update("notification-media.xml");
    assert_eq!(u.event, "PUT");
    assert_eq!(u.source_mrd(), Some(5002));
    let Notification::Media(m) = u.notification else {
        panic!("{:?}", u.notification)
    };
    assert_eq!(m.interrupt_action, None);
    assert!(drifted(&m, &want(5002)).is_empty());
}

#[test]
fn dialog_notifications_decode_in_all_four_forms() {
    let added = update("notification-dialogs-post.xml");
    assert!(
        matches!(&added.notification, Notification::DialogsAdded(l) if l.len() == 1 && l[0].id.trim() == "150001_7_1"),
        "{added:?}"
    );
    let removed = update("notification-dialogs-delete.xml");
    assert!(
        matches!(&removed.notification, Notification::DialogsRemoved(l) if l[0].id.trim() == "150001_7_1"),
        "{removed:?}"
    );
    for (file, state) in [
        ("notification-dialog-put.xml", "ACCEPTED"),
        ("notification-dialog-put-flat.xml", "ACTIVE"),
        ("notification-dialog-put-wrapped.xml", "PAUSED"),
        ("notification-dialog-put-bare.xml", "WRAPPING_UP"),
    ] {
        let u = update(file);
        let Notification::DialogChanged(d) = &u.notification else {
            panic!("{file}: {:?}", u.notification)
        };
        assert_eq!(d.id.trim(), "150001_7_1", "{file}");
        assert_eq!(d.state.trim(), state, "{file}");
        assert!(
            !d.participants.participant[0].actions.action.is_empty(),
            "{file}"
        );
    }
}

#[test]
fn errors_are_told_apart_by_their_constant_not_their_number() {
    let sync = ApiErrors::parse(&doc("apierrors-sync-already-logged-in.xml")).unwrap();
    assert!(sync.errors[0].is_already_logged_in());
    let routable = ApiErrors::parse(&doc("apierrors-routable-mode.xml")).unwrap();
    assert_eq!(routable.errors[0].data.trim(), "1");
    assert!(!routable.errors[0].is_already_logged_in());
    assert_eq!(
        routable.errors[0].constant(),
        "E_ARM_STAT_ALREADY_IN_REQUESTED_AGENT_MODE"
    );
    let not_in = ApiErrors::parse(&doc("apierrors-not-logged-in.xml")).unwrap();
    assert_eq!(not_in.errors[0].mrd(), Some(5003));
    let auth = ApiErrors::parse(&doc("apierrors-invalid-authorization.xml")).unwrap();
    assert_eq!(auth.errors[0].mrd(), None);
    assert!(auth.errors[0].message.contains("don't"));
    for (file, constant, already, mrd) in [
        (
            "async-error-already-logged-in.xml",
            "E_ARM_STAT_AGENT_ALREADY_LOGGED_IN",
            true,
            Some(5002),
        ),
        (
            "async-error-routable-mode.xml",
            "E_ARM_STAT_ALREADY_IN_REQUESTED_AGENT_MODE",
            false,
            Some(5002),
        ),
        (
            "async-error-cc-offline.xml",
            "E_ARM_STAT_CC_OFFLINE",
            false,
            Some(5003),
        ),
        (
            "async-error-lowercase-event.xml",
            "E_ARM_STAT_AGENT_ALREADY_LOGGED_IN",
            true,
            Some(5002),
        ),
    ] {
        let u = update(file);
        assert_eq!(u.event, "PUT", "{file}");
        let Notification::Errors(e) = &u.notification else {
            panic!("{file}: {:?}", u.notification)
        };
        assert_eq!(e[0].constant(), constant, "{file}");
        assert_eq!(e[0].is_already_logged_in(), already, "{file}");
        assert_eq!(e[0].mrd().or(u.source_mrd()), mrd, "{file}");
    }
    let user_level = update("async-error-capture-invalid-state.xml");
    assert_eq!(user_level.source_mrd(), None, "a User error names no MRD");
    let Notification::Errors(e) = update("async-error-capture-peripheral.xml").notification else {
        panic!("errors")
    };
    assert_eq!(e[0].constant(), "CF_INVALID_LOGON_DEVICE_SPECIFIED");
}

#[test]
fn a_whole_stanza_with_the_push_namespace_and_an_escaped_payload_decodes() {
    use tokio_xmpp::minidom::Element;
    let text = doc("xmpp-message-async-error.xml");
    let body = &text[text.find("-->").map_or(0, |at| at + 3)..];
    let xml = body
        .find("<message")
        .map(|at| &body[at..])
        .expect("a message element");
    // On the wire the stanza inherits the stream's default namespace.
    let xml = xml.replacen("<message ", "<message xmlns=\"jabber:client\" ", 1);
    let message: Element = xml.parse().expect("the stanza parses");
    let event = message
        .children()
        .find(|c| c.name() == "event")
        .expect("a pubsub event");
    let found = finesse_taskd::xmpp::link::notifications(event);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "/finesse/api/User/1001001/Media");
    let u = Update::decode(&found[0].1).unwrap();
    assert!(matches!(&u.notification, Notification::Errors(e) if e[0].is_already_logged_in()));
}

#[test]
fn system_info_of_12_5_and_12_6_and_maintenance() {
    let old = SystemInfo::parse(&doc("systeminfo-12.5.xml")).unwrap();
    assert!(old.in_service());
    assert_eq!(old.xmpp_pub_sub_domain.trim(), "pubsub.finesse.test");
    assert!(!old.in_maintenance());
    assert!(!old.is_sso());
    assert_eq!(
        old.node_for_host("FIN-B.finesse.test", None)
            .map(|n| n.xmpp_port.clone()),
        Some(None)
    );
    let new = SystemInfo::parse(&doc("systeminfo-12.6.xml")).unwrap();
    assert!(!new.in_maintenance());
    let b = new.node_for_host("fin-b.finesse.test", Some(8445)).unwrap();
    assert_eq!(b.xmpp_secure_port.as_deref().map(str::trim), Some("5223"));
    let decl = SystemInfo::parse(&doc("systeminfo-12.6-decl.xml")).unwrap();
    assert!(!decl.in_service());
    assert_eq!(decl.status.trim(), "OUT_OF_SERVICE");
    let mm = SystemInfo::parse(&doc("systeminfo-12.6-maintenance.xml")).unwrap();
    assert!(mm.in_service() && mm.in_maintenance());
}

#[test]
fn every_document_cisco_published_malformed_is_refused_with_an_error() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("malformed-") {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let error = if name.contains("notification") {
            Update::decode(&text).err().map(|e| e.to_string())
        } else if name.contains("apierrors") {
            ApiErrors::parse(&text).err().map(|e| e.to_string())
        } else if name.contains("dialog") {
            // A voice Dialog GET: read as a one-dialog document.
            Dialogs::parse(&format!("<Dialogs>{}</Dialogs>", strip_comments(&text)))
                .err()
                .map(|e| e.to_string())
        } else {
            Media::parse(&text).err().map(|e| e.to_string())
        };
        let error = error.unwrap_or_else(|| panic!("{name} was accepted"));
        assert!(error.starts_with("malformed "), "{name}: {error}");
        println!("{name}: {error}");
    }
    assert!(seen >= 6, "the corpus has its malformed documents ({seen})");
}

fn strip_comments(text: &str) -> String {
    let mut out = text.to_owned();
    while let (Some(a), Some(b)) = (out.find("<!--"), out.find("-->")) {
        out.replace_range(a..b + 3, "");
    }
    out
}
