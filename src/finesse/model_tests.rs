//! Model tests: captured shapes parse, extra elements are tolerated, unknown values are kept,
//! and what must be refused is refused.

use super::*;

const MEDIA: &str = "<Media><uri>/finesse/api/User/1/Media/5002</uri><id>5002</id><name>Chat</name>\
    <maxDialogLimit>3</maxDialogLimit><interruptAction>ACCEPT</interruptAction>\
    <dialogLogoutAction>CLOSE</dialogLogoutAction><routable>true</routable><state>NOT_READY</state>\
    <reasonCodeId>12</reasonCodeId><ReasonCode><id>12</id></ReasonCode><futureField>x</futureField></Media>";

#[test]
fn media_parses_with_extra_elements_and_reason() {
    let m = Media::parse(MEDIA).unwrap();
    assert_eq!(
        (m.mrd(), m.state(), m.limit(), m.reason()),
        (Some(5002), "NOT_READY", Some(3), Some(12))
    );
    assert_eq!(m.is_routable(), Some(true));
}

#[test]
fn media_outside_the_mrd_has_no_state_and_empty_reason_is_none() {
    let m = Media::parse("<Media><id>5002</id><name>Chat</name></Media>").unwrap();
    assert_eq!((m.state(), m.limit()), ("", None));
    let m =
        Media::parse("<Media><id>1</id><state>READY</state><reasonCodeId></reasonCodeId></Media>")
            .unwrap();
    assert_eq!(m.reason(), None);
}

#[test]
fn unknown_states_are_kept_not_fatal() {
    let d = Dialogs::parse(
        "<Dialogs><Dialog><id>1_2_3</id><state>TELEPORTED</state></Dialog></Dialogs>",
    )
    .unwrap();
    assert_eq!(d.dialogs[0].state, "TELEPORTED");
    assert!(Dialogs::parse("<Dialogs/>").unwrap().dialogs.is_empty());
}

#[test]
fn sync_and_async_error_shapes_both_say_already_logged_in() {
    let sync = ApiErrors::parse("<ApiErrors><ApiError><ErrorData>1</ErrorData><ErrorMedia>5002</ErrorMedia>\
        <ErrorMessage>E_ARM_STAT_AGENT_ALREADY_LOGGED_IN</ErrorMessage><ErrorType>x</ErrorType></ApiError></ApiErrors>").unwrap();
    assert!(sync.errors[0].is_already_logged_in());
    assert_eq!(sync.errors[0].mrd(), Some(5002));
    let update = Update::decode("<Update><data><apiErrors><apiError><errorData>1</errorData><errorMedia>5002</errorMedia>\
        <errorMessage>E_ARM_STAT_AGENT_ALREADY_LOGGED_IN</errorMessage></apiError></apiErrors></data>\
        <event>PUT</event><requestId>r1</requestId><source>/finesse/api/User/1/Media/5002</source></Update>").unwrap();
    let Notification::Errors(e) = update.notification else {
        panic!("errors")
    };
    assert!(e[0].is_already_logged_in());
    assert_eq!(update.request_id, "r1");
}

#[test]
fn updates_classify_media_dialog_add_change_remove_and_system_info() {
    let m = Update::decode(&format!(
        "<Update><data>{MEDIA}</data><event>put</event><source>s</source></Update>"
    ))
    .unwrap();
    assert!(matches!(m.notification, Notification::Media(_)));
    assert_eq!(m.event, "PUT", "event compared case-insensitively");
    let dialog = "<Dialog><id>1_2_3</id><state>OFFERED</state><mediaProperties><mediaId>5002</mediaId></mediaProperties>\
        <participants><Participant><state>OFFERED</state><actions><action>ACCEPT</action></actions></Participant></participants></Dialog>";
    let add = Update::decode(&format!(
        "<Update><data><dialogs>{dialog}</dialogs></data><event>POST</event></Update>"
    ))
    .unwrap();
    let Notification::DialogsAdded(d) = add.notification else {
        panic!("added")
    };
    assert_eq!(
        (d[0].mrd(), d[0].participant_state()),
        (Some(5002), "OFFERED")
    );
    let del = Update::decode(&format!(
        "<Update><data><dialogs>{dialog}</dialogs></data><event>DELETE</event></Update>"
    ))
    .unwrap();
    assert!(matches!(del.notification, Notification::DialogsRemoved(_)));
    let inner = dialog
        .trim_start_matches("<Dialog>")
        .trim_end_matches("</Dialog>");
    let put = Update::decode(&format!(
        "<Update><data><dialog>{inner}</dialog></data><event>PUT</event></Update>"
    ))
    .unwrap();
    assert!(matches!(put.notification, Notification::DialogChanged(d) if d.id == "1_2_3"));
    let si = Update::decode("<Update><data><SystemInfo><status>OUT_OF_SERVICE</status></SystemInfo></data><event>PUT</event></Update>").unwrap();
    assert!(matches!(si.notification, Notification::SystemInfo(s) if !s.in_service()));
}

#[test]
fn doubly_escaped_updates_are_unescaped_once_more() {
    let u = Update::decode("&lt;Update&gt;&lt;data&gt;&lt;Media&gt;&lt;id&gt;1&lt;/id&gt;&lt;/Media&gt;&lt;/data&gt;&lt;/Update&gt;").unwrap();
    assert!(matches!(u.notification, Notification::Media(m) if m.mrd() == Some(1)));
}

#[test]
fn truncated_xml_and_doctype_are_errors_not_panics() {
    assert!(Update::decode("<Update><data><Media><id>1</id>").is_err());
    assert!(Update::decode("<!DOCTYPE x [<!ENTITY a 'aaaa'>]><Update/>").is_err());
    assert!(Media::parse("<html><body>login</body></html>").is_ok_and(|m| m.state().is_empty()));
    assert!(SystemInfo::parse("not xml at all").is_err());
}
