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
    assert!(SystemInfo::parse("not xml at all").is_err());
    assert!(Update::decode("<Update><event>PUT</event><!-- open").is_err());
}

#[test]
fn a_page_that_is_not_the_expected_document_is_an_error_not_an_empty_one() {
    // An HTML login page served with 200 must not read as "no dialogs" (which would drop
    // every dialog the agent holds) or as a Media without state.
    let e = Dialogs::parse("<html><body>login</body></html>").unwrap_err();
    assert!(
        e.to_string().contains("expected <Dialogs>, found <html>"),
        "{e}"
    );
    assert!(Media::parse("<html><body>login</body></html>").is_err());
    assert!(Update::decode("<Media><id>1</id></Media>").is_err());
    assert!(Dialogs::parse("<?xml version='1.0'?>\n<!-- c -->\n<Dialogs/>").is_ok());
}

#[test]
fn entities_cdata_prefixes_and_self_closing_elements_are_read_as_xml_says() {
    let d = Dialogs::parse(
        "<f:Dialogs xmlns:f='urn:x'><f:Dialog><id>1_2_3</id><state/>\
         <mediaProperties><queueName>A &amp; B &#x263A;&#65;</queueName><callvariables>\
         <CallVariable><name>v1</name><value><![CDATA[<b>x</b>]]></value></CallVariable>\
         <other/><callVariable><name>v2</name><value>&lt;2&gt;</value></callVariable>\
         </callvariables></mediaProperties></f:Dialog></f:Dialogs>",
    )
    .unwrap();
    let x = &d.dialogs[0];
    assert_eq!((x.id.as_str(), x.state.as_str()), ("1_2_3", ""));
    assert_eq!(x.media_properties.queue_name, "A & B \u{263A}A");
    let vars: Vec<_> = x
        .media_properties
        .callvariables
        .variables
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_str()))
        .collect();
    assert_eq!(
        vars,
        [("v1", "<b>x</b>"), ("v2", "<2>")],
        "interleaved lists keep every item"
    );
    let e = Media::parse("<Media><id>&custom;</id></Media>").unwrap_err();
    assert!(e.to_string().contains("unknown entity &custom;"), "{e}");
}

#[test]
fn element_names_match_in_any_ascii_case() {
    let sync =
        ApiErrors::parse("<apiErrors><apiError><errorData>1</errorData><ERRORMESSAGE>E_ARM_STAT_AGENT_ALREADY_LOGGED_IN</ERRORMESSAGE></apiError></apiErrors>")
            .unwrap();
    assert!(sync.errors[0].is_already_logged_in());
    // ErrorData 1 alone says nothing: Cisco's routable example uses 1 for another error.
    let bare =
        ApiErrors::parse("<ApiErrors><ApiError><ErrorData>1</ErrorData></ApiError></ApiErrors>")
            .unwrap();
    assert!(!bare.errors[0].is_already_logged_in());
    let u =
        Update::decode("<update><DATA><media><ID>7</ID></media></DATA><Event>put</Event></update>")
            .unwrap();
    assert!(matches!(u.notification, Notification::Media(m) if m.mrd() == Some(7)));
    assert_eq!(u.event, "PUT");
}

#[test]
fn a_byte_order_mark_or_leading_whitespace_before_the_root_is_accepted() {
    assert!(Dialogs::parse("\u{feff}<Dialogs/>").is_ok());
    assert!(Media::parse("\n  <Media><id>1</id></Media>\n").is_ok_and(|m| m.mrd() == Some(1)));
}

#[test]
fn only_in_service_is_in_service_partial_service_is_not() {
    for (status, yes) in [
        ("IN_SERVICE", true),
        (" in_service ", true),
        ("PARTIAL_SERVICE", false),
        ("OUT_OF_SERVICE", false),
        ("SOMETHING_NEW", false),
    ] {
        let info = SystemInfo {
            status: status.into(),
            ..SystemInfo::default()
        };
        assert_eq!(info.in_service(), yes, "{status}");
    }
}
