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
