//! The local API's request bodies, parsed without I/O so that they can be fuzzed
//! (`fuzz/fuzz_targets/api_json.rs`): each parser takes the raw bytes and gives the typed
//! request or a [`Rejection`], always a 4xx that names the field at fault (`body` when the
//! bytes are not the expected JSON object at all). Bodies above [`MAX_BODY`] are refused
//! before they are read (413).

use serde::Deserialize;
use utoipa::ToSchema;

use crate::config::DesiredState;
use crate::vocab::DialogAction;

/// Request bodies above this are refused with 413.
pub const MAX_BODY: usize = 64 * 1024;

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 400, or 413 for a body above [`MAX_BODY`].
    pub status: u16,
    /// What is wrong, for the client.
    pub message: String,
    /// The field at fault (`body` for the whole).
    pub field: String,
}

fn reject(status: u16, message: impl Into<String>, field: &str) -> Rejection {
    Rejection {
        status,
        message: message.into(),
        field: field.to_owned(),
    }
}

/// Deserializes `bytes`, naming the field of any error.
fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, Rejection> {
    if bytes.len() > MAX_BODY {
        return Err(reject(413, format!("body above {MAX_BODY} bytes"), "body"));
    }
    // serde would also take a struct from an array.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(reject(400, "the body must be a JSON object", "body"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // An unknown key is named in the message, not in the path.
        let unknown = (inner.to_string().split('`').nth(1))
            .filter(|name| !name.is_empty())
            .map(str::to_owned);
        let field = match path.as_str() {
            "." | "" => unknown
                .filter(|_| inner.is_data())
                .unwrap_or_else(|| "body".into()),
            p => p.to_owned(),
        };
        reject(400, format!("invalid JSON body: {inner}"), &field)
    })?;
    de.end()
        .map_err(|e| reject(400, format!("invalid JSON body: {e}"), "body"))?;
    Ok(value)
}

/// The body of `POST /v1/dialogs/{dialog}/actions`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// The action (any case).
    #[schema(value_type = DialogAction)]
    action: String,
    /// The target (an address or a queue), for the actions that take one.
    #[serde(default)]
    target: Option<String>,
}

/// `POST /v1/dialogs/{id}/actions`: `{"action": "...", "target": "..."?}`.
pub fn dialog_action(bytes: &[u8]) -> Result<(DialogAction, Option<String>), Rejection> {
    let b: ActionBody = parse(bytes)?;
    let Some(action) = DialogAction::parse(&b.action.trim().to_ascii_uppercase()) else {
        let all: Vec<&str> = DialogAction::ALL.iter().map(|a| a.as_str()).collect();
        return Err(reject(
            400,
            format!("unknown action {:?}; one of {}", b.action, all.join(", ")),
            "action",
        ));
    };
    Ok((action, b.target))
}

/// The body of `PUT /v1/media/{media}/state`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StateBody {
    /// `READY` or `NOT_READY` (any case).
    #[schema(schema_with = desired_states)]
    state: String,
    /// The reason code, with `NOT_READY` (ignored with `READY`).
    #[serde(default, deserialize_with = "integral")]
    #[schema(value_type = Option<u32>)]
    reason_code_id: Option<u32>,
}

/// A number JSON Schema calls an integer: `7` or `7.0` (not `7.5`), within `u32`.
fn integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX))
            .map(|f| f as u64)
    });
    whole
        .and_then(|v| u32::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::custom(format!("{n} is not a reason code (0..=4294967295)"))
        })
}

/// The states an MRD can be set to.
fn desired_states() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(DesiredState::CHOICES.iter().map(|(t, _)| *t)))
        .build()
}

/// `PUT /v1/media/{id}/state`: `{"state": "READY"|"NOT_READY", "reasonCodeId": n?}` (the
/// reason only with NOT_READY).
pub fn media_state(bytes: &[u8]) -> Result<(DesiredState, Option<u32>), Rejection> {
    let b: StateBody = parse(bytes)?;
    let upper = b.state.trim().to_ascii_uppercase();
    let Some(&(_, state)) = DesiredState::CHOICES.iter().find(|(t, _)| *t == upper) else {
        return Err(reject(
            400,
            format!("state {:?}: use READY or NOT_READY", b.state),
            "state",
        ));
    };
    let reason = b.reason_code_id.filter(|_| state == DesiredState::NotReady);
    Ok((state, reason))
}

/// The body of `PUT /v1/media/{media}/routable`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutableBody {
    /// Whether the MRD is routable.
    routable: bool,
}

/// `PUT /v1/media/{id}/routable`: `{"routable": true|false}`.
pub fn routable(bytes: &[u8]) -> Result<bool, Rejection> {
    Ok(parse::<RoutableBody>(bytes)?.routable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rejection_is_a_4xx_naming_its_field() {
        let cases: [(&[u8], &str); 10] = [
            (b"{\"action\": 7}", "action"),
            (b"{}", "action"),
            (b"{\"action\": \"ACCEPT\", \"extra\": 1}", "extra"),
            (b"{\"action\": \"DANCE\"}", "action"),
            (b"not json", "body"),
            (b"{\"action\": \"ACCEPT\"} trailing", "body"),
            (b"[1, 2]", "body"),
            (b"{\"action\": \"ACCEPT\", \"target\": []}", "target"),
            (b"", "body"),
            (b"{\"\": 1}", "body"),
        ];
        for (body, field) in cases {
            let e = dialog_action(body).expect_err(&String::from_utf8_lossy(body));
            assert_eq!(e.status, 400);
            assert_eq!(
                e.field,
                field,
                "{}: {}",
                String::from_utf8_lossy(body),
                e.message
            );
        }
        let e = media_state(b"{\"state\": \"READY\", \"reasonCodeId\": -1}").unwrap_err();
        assert_eq!(e.field, "reasonCodeId", "{}", e.message);
        let e = routable(b"{\"routable\": \"yes\"}").unwrap_err();
        assert_eq!(e.field, "routable", "{}", e.message);
        let big = vec![b' '; MAX_BODY + 1];
        assert_eq!(routable(&big).unwrap_err().status, 413);
    }

    fn holds(
        bytes: &[u8],
        r: Result<(), Rejection>,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        use proptest::prelude::*;
        match r {
            Err(e) => {
                prop_assert!((400..500).contains(&e.status), "{:?}", e);
                prop_assert!(!e.field.is_empty(), "{:?}", e);
                prop_assert!(bytes.len() <= MAX_BODY || e.status == 413);
            }
            Ok(()) => prop_assert!(bytes.len() <= MAX_BODY),
        }
        Ok(())
    }

    proptest::proptest! {
        /// The fuzz target's property (fuzz/fuzz_targets/api_json.rs) on JSON-like input,
        /// run on every test run.
        #[test]
        fn any_body_is_accepted_or_refused_with_a_4xx_naming_a_field(
            text in r#"[ {}\[\]":,a-zA-Z0-9_.\-]{0,80}"#,
            pad in 0usize..3,
        ) {
            let mut bytes = text.into_bytes();
            if pad == 2 {
                bytes.resize(MAX_BODY + 1, b' ');
            }
            holds(&bytes, dialog_action(&bytes).map(|_| ()))?;
            holds(&bytes, media_state(&bytes).map(|_| ()))?;
            holds(&bytes, routable(&bytes).map(|_| ()))?;
        }
    }

    #[test]
    fn well_formed_bodies_parse() {
        assert_eq!(
            dialog_action(b"{\"action\": \" transfer \", \"target\": \"q1\"}").unwrap(),
            (DialogAction::Transfer, Some("q1".into()))
        );
        assert_eq!(
            media_state(b"{\"state\": \"not_ready\", \"reasonCodeId\": 12}").unwrap(),
            (DesiredState::NotReady, Some(12))
        );
        assert_eq!(
            media_state(b"{\"state\": \"READY\", \"reasonCodeId\": 12}")
                .unwrap()
                .1,
            None
        );
        assert!(!routable(b"{\"routable\": false}").unwrap());
    }
}
