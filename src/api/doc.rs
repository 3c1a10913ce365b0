//! The local API as a contract: the answers' types (each handler returns one of them, so the
//! OpenAPI document, which utoipa derives from the same types and the handlers' own
//! annotations, cannot drift from what is sent), and the document's frame: its version,
//! the bearer-token scheme and what every route may answer before its handler runs (the
//! guard's 421, 403 and 401).
//!
//! The versioning rule for `/v1`: within `/v1` a field, an event type, an enum value or a
//! route may be added, never removed, renamed or given another meaning; a client ignores
//! what it does not know. Anything else is `/v2`, served beside `/v1` for a release.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, SecurityRequirement};
use utoipa::{Modify, ToSchema};

use crate::vocab::{Cause, EventKind, Phase};

/// Every refusal and error: what is wrong, and the field at fault when there is one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong (`auth_failed`, `outcome_unknown` and `too_many_event_clients` are
    /// constants a client may test).
    pub error: String,
    /// The request field at fault (`body` for the whole body), if one is.
    pub field: Option<String>,
}

impl ErrorBody {
    /// An error naming `field`, if any.
    pub fn new(error: impl Into<String>, field: Option<&str>) -> Self {
        Self {
            error: error.into(),
            field: field.map(str::to_owned),
        }
    }
}

/// `/healthz`: the daemon's loop makes progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// True while the loop makes progress.
    pub ok: bool,
    /// How long the loop has not made progress, when it has stalled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stalled_ms: Option<u64>,
}

/// `/readyz`: whether the agent can take work, and if not, why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Ready {
    /// Steady, and signed in to every MRD it can work in.
    pub ready: bool,
    /// Where the daemon is (when not ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Why it is not ready (when not ready; `null` while starting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Option<Cause>>,
    /// The MRDs whose sign-in Finesse refused (when that is why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<Vec<u32>>,
}

/// An action was sent to Finesse and Finesse accepted it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Accepted {
    /// Always true.
    pub accepted: bool,
}

/// `/v1/state`: the state document, with the event stream's position when it was read (a
/// client that then follows `/v1/events` from `lastEventId` misses nothing).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateAnswer {
    /// The state (its fields are this document's).
    #[serde(flatten)]
    pub state: crate::view::StateDoc,
    /// The id of the last event published before the state was read.
    pub last_event_id: String,
    /// Its sequence number.
    pub last_seq: u64,
}

/// One event of `/v1/events` (each SSE message's `data`; its `id` is the event id to resume
/// from with `Last-Event-ID`). Each type adds its own fields (`link`, `phase`, `cause`,
/// `node`, `media`, `dialog`, …); a client ignores types and fields it does not know.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Event {
    /// Its sequence number, one more than the last one's.
    pub seq: u64,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
}

/// The bearer-token scheme, and the document's security: a token when the daemon has one
/// (`[api] token_file` or the `api-token` credential), none otherwise (a loopback or Unix
/// socket listener without a token).
pub struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`[api] token_file` or the systemd credential `api-token`; without \
                         one (loopback, Unix socket) no token is asked",
                    ))
                    .build(),
            ),
        );
        doc.security = Some(vec![
            SecurityRequirement::new("token", Vec::<String>::new()),
            SecurityRequirement::default(),
        ]);
    }
}

/// What the guard answers on every route but `/healthz` when the daemon has a token.
#[derive(utoipa::IntoResponses)]
pub enum Unauthorized {
    /// No valid bearer token (`WWW-Authenticate: Bearer`)
    #[response(status = 401)]
    NoToken(ErrorBody),
}

/// What the guard answers on every route, `/healthz` included.
#[derive(utoipa::IntoResponses)]
pub enum Open {
    /// A foreign `Origin` (a web page)
    #[response(status = 403)]
    ForeignOrigin(ErrorBody),
    /// A foreign `Host` (a DNS-rebinding page)
    #[response(status = 421)]
    ForeignHost(ErrorBody),
}

/// What an action route answers when the action was not accepted.
#[derive(utoipa::IntoResponses)]
pub enum Refusals {
    /// The body is not what is documented, or the path's id is not one: `field` names what
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No such dialog or MRD
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Not allowed in its present state
    #[response(status = 409)]
    NotAllowed(ErrorBody),
    /// A body above 64 KiB
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// A body that is not `application/json`
    #[response(status = 415)]
    NotJson(ErrorBody),
    /// Finesse refused it (its constant in `error`)
    #[response(status = 502)]
    Refused(ErrorBody),
    /// The session is recovering (with `Retry-After`: never sent, safe to retry), the
    /// credentials were refused (`auth_failed`) or the daemon is stopping
    #[response(status = 503, headers(("Retry-After" = Option<u32>, description = "Seconds, when a retry is safe")))]
    Unavailable(ErrorBody),
    /// Sent, or perhaps sent, with no answer (`outcome_unknown`): do not retry blindly
    #[response(status = 504)]
    OutcomeUnknown(ErrorBody),
}
