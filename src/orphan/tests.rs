//! Orphan-guard unit tests: probe URL templates, the consecutive-"gone" rule, and URLs made
//! safe to log.

use super::*;
use crate::config::{Template, Unrenderable};

fn dialog() -> DialogView {
    DialogView {
        id: "150001_7_1".into(),
        media_id: 5002,
        state: "OFFERED".into(),
        participant_state: "OFFERED".into(),
        actions: Vec::new(),
        call_variables: [("callVariable1".to_owned(), "a b/c".to_owned())]
            .into_iter()
            .collect(),
    }
}

#[test]
fn templates_render_fields_url_encoded_and_refuse_unknown_ones() {
    let t =
        Template::parse("https://chat/api/{mediaId}/{callvariable:callVariable1}?d={id}").unwrap();
    assert_eq!(
        t.render(&dialog()).unwrap(),
        "https://chat/api/5002/a%20b%2Fc?d=150001_7_1"
    );
    assert!(
        Template::parse("https://x/{user}")
            .unwrap_err()
            .contains("{user}")
    );
    assert!(Template::parse("https://x/{id").is_err());
    assert_eq!(
        Template::parse("https://x/{callvariable:other}")
            .unwrap()
            .render(&dialog()),
        Err(Unrenderable::Missing("other".into()))
    );
}

#[test]
fn fields_cannot_choose_the_host_and_values_cannot_walk_the_path() {
    for url in [
        "https://{callvariable:host}/x",
        "https://chat.example:{mediaId}/x",
        "https://{id}@chat.example/x",
        "{callvariable:scheme}://chat.example/x",
        "https://chat{id}.example?x",
    ] {
        let e = Template::parse(url).unwrap_err();
        assert!(e.contains("only in the path and the query"), "{url}: {e}");
    }
    assert!(Template::parse("https://chat.example/s/{id}?q={callvariable:x}#{id}").is_ok());
    // The premise: a percent-encoded `..` is still a step up for the URL parser reqwest uses.
    assert_eq!(
        reqwest::Url::parse("https://x/api/%2E%2E/admin")
            .unwrap()
            .path(),
        "/admin"
    );
    let t = Template::parse("https://chat/api/{callvariable:callVariable1}/status").unwrap();
    for (value, want) in [
        ("..", Err(Unrenderable::DotSegment("callVariable1".into()))),
        (".", Err(Unrenderable::DotSegment("callVariable1".into()))),
        (
            "../admin",
            Ok("https://chat/api/..%2Fadmin/status".to_owned()),
        ),
        ("...", Ok("https://chat/api/.../status".to_owned())),
        (
            "%2e%2e",
            Ok("https://chat/api/%252e%252e/status".to_owned()),
        ),
    ] {
        let mut d = dialog();
        d.call_variables
            .insert("callVariable1".into(), value.into());
        let rendered = t.render(&d);
        assert_eq!(rendered, want, "{value:?}");
        if let Ok(url) = rendered {
            let path = reqwest::Url::parse(&url).unwrap().path().to_owned();
            assert!(
                path.starts_with("/api/") && path.ends_with("/status"),
                "{path}"
            );
        }
    }
}

#[test]
fn only_consecutive_gone_answers_make_an_orphan() {
    assert_eq!(step(0, Probe::Gone, 3), (1, Verdict::Again));
    assert_eq!(step(1, Probe::Gone, 3), (2, Verdict::Again));
    assert_eq!(step(2, Probe::Gone, 3), (3, Verdict::Orphan));
    assert_eq!(
        step(2, Probe::Unknown, 3),
        (0, Verdict::Again),
        "unknown breaks the run"
    );
    assert_eq!(step(2, Probe::Alive, 3), (0, Verdict::Alive));
    assert_eq!(step(0, Probe::Gone, 1), (1, Verdict::Orphan));
}

#[test]
fn logged_urls_lose_userinfo_and_query() {
    assert_eq!(
        redact("https://u:p@chat.example/s/1?token=x"),
        "https://chat.example/s/1?redacted"
    );
}
