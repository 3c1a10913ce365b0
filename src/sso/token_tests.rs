//! Token document tests: Cisco's example shape, the JWT expiry and the 75 % rule, a refresh
//! answer without a refresh token, and errors that name the field without quoting a token.

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;

use super::*;

fn jwt(claims: &str) -> String {
    let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!("{}.{}.c2ln", b(r#"{"alg":"RS256"}"#), b(claims))
}

const T0: u64 = 1_800_000_000;

#[test]
fn ciscos_example_shape_reads_with_expiry_from_the_files_time() {
    let text = r#"{"token":"eyJhbGciOi...","refresh_token":"eyJhbGciOi...","expires_in":300,
        "user_id":"jdoe","realm":"r","user_principal":"jdoe@example.test"}"#;
    let at = UNIX_EPOCH + Duration::from_secs(T0);
    let t = TokenSet::from_json(text, at).unwrap();
    assert_eq!(t.user_id.as_deref(), Some("jdoe"));
    assert_eq!(t.expires_at(), at + Duration::from_secs(300));
    assert_eq!(t.refresh_due(0.75), at + Duration::from_secs(225));
    assert_eq!(t.refresh_expires_at(), None);
}

#[test]
fn a_jwt_exp_and_iat_decide_over_the_files_time() {
    let token = jwt(&format!(
        r#"{{"sub":"1001","iat":{T0},"exp":{}}}"#,
        T0 + 400
    ));
    let refresh = jwt(&format!(r#"{{"exp":{}}}"#, T0 + 3600));
    let text = format!(r#"{{"token":"{token}","refresh_token":"{refresh}","expires_in":"300"}}"#);
    let t = TokenSet::from_json(&text, UNIX_EPOCH).unwrap();
    assert_eq!(t.expires_at(), UNIX_EPOCH + Duration::from_secs(T0 + 400));
    assert_eq!(
        t.refresh_due(0.75),
        UNIX_EPOCH + Duration::from_secs(T0 + 300)
    );
    let end = UNIX_EPOCH + Duration::from_secs(T0 + 3600);
    assert!(!t.refresh_expired(end - Duration::from_secs(1)));
    assert!(t.refresh_expired(end));
}

#[test]
fn a_refresh_answer_without_a_refresh_token_keeps_the_old_one() {
    let at = UNIX_EPOCH + Duration::from_secs(T0);
    let t = TokenSet::from_json(
        r#"{"token":"a1","refresh_token":"r1","expires_in":60,"user_id":"jdoe"}"#,
        at,
    )
    .unwrap();
    let later = at + Duration::from_secs(45);
    let r = t
        .refreshed(r#"{"token":"a2","expires_in":120,"realm":"x"}"#, later)
        .unwrap();
    assert_eq!(r.token.expose(), "a2");
    assert_eq!(r.refresh_token.expose(), "r1");
    assert_eq!(r.expires_at(), later + Duration::from_secs(120));
    assert_eq!(r.user_id.as_deref(), Some("jdoe"));
    let r2 = r
        .refreshed(
            r#"{"token":"a3","refresh_token":"r2","expires_in":120}"#,
            later,
        )
        .unwrap();
    assert_eq!(r2.refresh_token.expose(), "r2");
}

#[test]
fn the_kept_copy_reads_back_with_its_own_time() {
    let at = UNIX_EPOCH + Duration::from_millis(T0 * 1000 + 123);
    let t =
        TokenSet::from_json(r#"{"token":"a","refresh_token":"r","expires_in":60}"#, at).unwrap();
    let back = TokenSet::from_json(&t.to_json(), UNIX_EPOCH).unwrap();
    assert_eq!(back, t);
}

#[test]
fn bad_documents_name_the_field_and_never_quote_a_token() {
    let cases = [
        (r#"{"refresh_token":"r","expires_in":60}"#, "token"),
        (
            r#"{"token":"","refresh_token":"r","expires_in":60}"#,
            "token",
        ),
        (r#"{"token":"a","expires_in":60}"#, "refresh_token"),
        (r#"{"token":"a","refresh_token":"r"}"#, "expires_in"),
        (
            r#"{"token":"a","refresh_token":"r","expires_in":"soon"}"#,
            "expires_in",
        ),
        (
            r#"{"token":"a","refresh_token":"r","expires_in":0}"#,
            "expires_in",
        ),
        (
            r#"{"token":"SECRETTOKEN","refresh_token":7,"expires_in":60}"#,
            "(json)",
        ),
        ("<html>", "(json)"),
    ];
    for (text, field) in cases {
        let e = TokenSet::from_json(text, UNIX_EPOCH).unwrap_err();
        assert_eq!(e.field, field, "{text}");
        assert!(!e.to_string().contains("SECRETTOKEN"), "{e}");
    }
}

proptest::proptest! {
    /// Whatever the lifetime, the refresh falls inside it, at 75 % of it.
    #[test]
    fn the_refresh_is_due_inside_the_lifetime(secs in 1u64..1_000_000, at in 0u64..4_000_000_000) {
        let at = UNIX_EPOCH + Duration::from_secs(at);
        let text = format!(r#"{{"token":"a","refresh_token":"r","expires_in":{secs}}}"#);
        let t = TokenSet::from_json(&text, at).unwrap();
        let due = t.refresh_due(0.75);
        proptest::prop_assert!(due >= at && due <= t.expires_at());
        let into = due.duration_since(at).unwrap().as_secs_f64();
        proptest::prop_assert!((into - 0.75 * secs as f64).abs() < 1e-3);
    }
}
