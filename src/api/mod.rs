//! The local HTTP API for the agent's task application, on loopback TCP or a Unix socket:
//!
//! - `GET /healthz` (the main loop makes progress), `GET /readyz` (phase is steady and no
//!   eligible MRD has a refused sign-in),
//!   `GET /v1/state` (the view);
//! - `GET /v1/events`: Server-Sent Events, one JSON object per event with a monotonic `seq`,
//!   resumable with `Last-Event-ID` from a bounded ring (`resync.required` past it);
//! - `POST /v1/dialogs/{id}/actions`, `PUT /v1/media/{id}/state`, `PUT /v1/media/{id}/routable`:
//!   queued to the driver, which sends each to the current node exactly once, waiting up
//!   to `action_wait` for steady, else 503 with `Retry-After`;
//! - `GET /metrics`: Prometheus text;
//! - `GET /v1/openapi.json`: this API's OpenAPI 3.1 document ([`doc`]), derived from the
//!   handlers' annotations and answer types (also in `contrib/openapi.json`).
//!
//! It never calls Finesse itself.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tokio::sync::mpsc;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod bodies;
pub mod doc;
pub mod guard;
pub mod serve;
mod sse;

use doc::{Accepted, ErrorBody, Health, Ready, Security, StateAnswer};

use crate::command::{Command, CommandError, Request};
use crate::published::{STALL, Shared};
use crate::reconcile::may;
use crate::view::Readiness;
use crate::vocab::Cause;

pub use bodies::MAX_BODY;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The published state.
    pub shared: Arc<Shared>,
    /// Where requests for Finesse go.
    pub commands: mpsc::Sender<Request>,
    /// How long an action may wait for steady.
    pub action_wait: Duration,
    /// Finesse's request timeout (added to the wait for the answer).
    pub request_timeout: Duration,
    /// Renders `/metrics`.
    pub metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// Who may drive the API (see [`guard`]).
    pub guard: Arc<guard::RequestGuard>,
    /// One permit per event-stream client (`[api] max_sse_clients`).
    pub sse_slots: Arc<tokio::sync::Semaphore>,
}

/// The document's frame: title, version, the token scheme.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "finesse-taskd local API",
        description = "The local API of one agent's finesse-taskd: its state, its event \
            stream, and the actions its task application sends to Finesse through it. Only \
            local clients: a foreign Host is answered 421, a foreign Origin 403, a missing \
            token 401 (when the daemon has one). Within /v1 things are only added.",
        license(name = "Apache-2.0")
    ),
    modifiers(&Security),
    components(schemas(doc::Event))
)]
struct Frame;

/// The routes with their documentation.
fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(Frame::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(view))
        .routes(routes!(sse::events))
        .routes(routes!(dialog_action))
        .routes(routes!(media_state))
        .routes(routes!(media_routable))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}

/// The routes and the document, built once: a fleet builds a router per agent, and the
/// document (hundreds of small allocations) need not be built, and dropped, with each.
fn parts() -> &'static (Router<ApiState>, utoipa::openapi::OpenApi) {
    static PARTS: std::sync::OnceLock<(Router<ApiState>, utoipa::openapi::OpenApi)> =
        std::sync::OnceLock::new();
    PARTS.get_or_init(|| routes().split_for_parts())
}

/// The single agent's OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    parts().1.clone()
}

/// The API router, behind its guard.
pub fn router(state: ApiState) -> Router {
    let guard = state.guard.clone();
    guard::protect(routes_only(), &guard).with_state(state)
}

/// The API router without a guard of its own: for a fleet's agent, whose requests come only
/// through the fleet's router and its guard (host, origin and CORS, token), once.
pub fn unguarded_router(state: ApiState) -> Router {
    routes_only().with_state(state)
}

fn routes_only() -> Router<ApiState> {
    parts().0.clone().layer(DefaultBodyLimit::max(MAX_BODY))
}

fn error(status: StatusCode, message: impl Into<String>, field: Option<&str>) -> Response {
    (status, Json(ErrorBody::new(message, field))).into_response()
}

/// A request body sent as `application/json` (415 otherwise: a form or a `text/plain` post
/// needs no CORS preflight, so a web page could send one), read whole within [`MAX_BODY`]
/// (413). Its JSON is parsed by [`bodies`].
pub struct JsonBody(Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for JsonBody {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be application/json",
                Some("Content-Type"),
            ));
        }
        Bytes::from_request(req, state)
            .await
            .map(JsonBody)
            .map_err(|e| error(e.status(), e.body_text(), Some("body")))
    }
}

/// The 400 for an MRD id in the path that is not one (as JSON, like every error).
fn not_a_media_id(text: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        format!("{text:?} is not an MRD id"),
        Some("media"),
    )
}

/// The process makes progress.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses(
        (status = 200, description = "The daemon's loop makes progress", body = Health),
        (status = 503, description = "The loop has stalled", body = Health),
        doc::Open,
    ))]
async fn healthz(State(s): State<ApiState>) -> Response {
    let since = s.shared.since_beat();
    if since < STALL {
        Json(Health {
            ok: true,
            stalled_ms: None,
        })
        .into_response()
    } else {
        let body = Health {
            ok: false,
            stalled_ms: Some(u64::try_from(since.as_millis()).unwrap_or(u64::MAX)),
        };
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// Steady, and signed in to every MRD the agent can work in.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready for work", body = Ready),
        (status = 503, description = "Not steady, or a sign-in refused", body = Ready),
        doc::Open, doc::Unauthorized,
    ))]
async fn readyz(State(s): State<ApiState>) -> Response {
    let v = s.shared.snapshot();
    let not = |phase, cause, media| {
        let body = Ready {
            ready: false,
            phase: Some(phase),
            cause: Some(cause),
            media,
        };
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    };
    match v.readiness() {
        Readiness::Ready => Json(Ready {
            ready: true,
            phase: None,
            cause: None,
            media: None,
        })
        .into_response(),
        Readiness::SigninRefused(refused) => not(v.phase, Some(Cause::SigninFailed), Some(refused)),
        Readiness::NotSteady => not(v.phase, v.cause, None),
    }
}

/// The agent as the daemon sees it.
#[utoipa::path(get, path = "/v1/state", tag = "state",
    responses(
        (status = 200, description = "The state", body = StateAnswer),
        doc::Open, doc::Unauthorized,
    ))]
async fn view(State(s): State<ApiState>) -> Response {
    // The event id read before the view: a client that fetches the state and then resumes
    // the event stream from `lastEventId` misses nothing (it may see a change twice, and
    // applying an event is idempotent).
    let last = s.shared.events.last_seq();
    let answer = StateAnswer {
        state: s.shared.snapshot().doc(),
        last_event_id: s.shared.events.event_id(last),
        last_seq: last,
    };
    Json(answer).into_response()
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "contract",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = Object),
        doc::Open, doc::Unauthorized,
    ))]
async fn openapi() -> Response {
    Json(document()).into_response()
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses(
        (status = 200, description = "The metrics", body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        doc::Open, doc::Unauthorized,
    ))]
async fn metrics(State(s): State<ApiState>) -> Response {
    let body = (s.metrics)();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Queues a command and waits for its answer.
async fn submit(s: &ApiState, command: Command) -> Response {
    let deadline = tokio::time::Instant::now() + s.action_wait;
    let Some(mut ticket) = Request::queue(&s.commands, command, deadline).await else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is stopping",
            None,
        );
    };
    // Until the deadline the driver may take the request; then it is either given up here
    // (never sent: safe to retry) or the driver has it and its answer is awaited.
    let answer = match tokio::time::timeout_at(deadline, &mut ticket.answer).await {
        Ok(answer) => Some(answer),
        Err(_) if ticket.abandon() => None,
        Err(_) => {
            let limit = s.request_timeout + Duration::from_secs(1);
            match tokio::time::timeout(limit, &mut ticket.answer).await {
                Ok(answer) => Some(answer),
                Err(_) => Some(Ok(Err(CommandError::OutcomeUnknown(
                    "no answer in time".into(),
                )))),
            }
        }
    };
    let unavailable = || {
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Finesse session is recovering; retry later",
            None,
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        r
    };
    match answer {
        Some(Ok(Ok(()))) => {
            (StatusCode::ACCEPTED, Json(Accepted { accepted: true })).into_response()
        }
        Some(Ok(Err(CommandError::NotFound(m)))) => error(StatusCode::NOT_FOUND, m, None),
        Some(Ok(Err(CommandError::NotAllowed(m)))) => {
            error(StatusCode::CONFLICT, m, Some("action"))
        }
        Some(Ok(Err(CommandError::Finesse(m)))) => error(StatusCode::BAD_GATEWAY, m, None),
        Some(Ok(Err(CommandError::AuthFailed))) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "auth_failed", None)
        }
        // Sent, or perhaps sent, with no answer: never invite a retry (no Retry-After).
        Some(Ok(Err(CommandError::OutcomeUnknown(_)))) => {
            error(StatusCode::GATEWAY_TIMEOUT, "outcome_unknown", None)
        }
        // Given up unsent, dropped unsent by the driver, or Finesse unreachable before
        // anything went out: safe to retry.
        Some(Ok(Err(CommandError::Unavailable(_)))) | Some(Err(_)) | None => unavailable(),
    }
}

fn rejected(r: bodies::Rejection) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    error(status, r.message, Some(&r.field))
}

/// An action on a dialog (ACCEPT, CLOSE, TRANSFER, …), sent to Finesse once.
#[utoipa::path(post, path = "/v1/dialogs/{dialog}/actions", tag = "actions",
    params(("dialog" = String, Path, description = "The dialog's id")),
    request_body(content = bodies::ActionBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Finesse accepted it", body = Accepted),
        doc::Refusals, doc::Open, doc::Unauthorized,
    ))]
async fn dialog_action(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Response {
    let (action, target) = match bodies::dialog_action(&body) {
        Ok(b) => b,
        Err(r) => return rejected(r),
    };
    // Answer what the daemon already knows at once; the driver checks again before sending.
    match s.shared.with(|v| v.dialogs.get(&id).cloned()) {
        None => return error(StatusCode::NOT_FOUND, format!("no dialog {id}"), None),
        Some(d) if !may(&d, action) => {
            return error(
                StatusCode::CONFLICT,
                format!("{action} is not allowed in state {}", d.state),
                Some("action"),
            );
        }
        Some(_) => {}
    }
    submit(&s, Command::DialogAction { id, action, target }).await
}

/// Sets an MRD's state (READY, or NOT_READY with a reason), kept after every sign-in.
#[utoipa::path(put, path = "/v1/media/{media}/state", tag = "actions",
    params(("media" = u32, Path, description = "The MRD's id")),
    request_body(content = bodies::StateBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Finesse accepted it", body = Accepted),
        doc::Refusals, doc::Open, doc::Unauthorized,
    ))]
async fn media_state(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Response {
    media_command(&s, &id, |mrd| {
        let (state, reason) = bodies::media_state(&body)?;
        Ok(Command::SetState { mrd, state, reason })
    })
    .await
}

/// Sends the command `build` makes for the MRD of the path's `id` (a JSON 400 naming `media`
/// when it is not an MRD id, the body's rejection when the body is wrong).
async fn media_command(
    s: &ApiState,
    id: &str,
    build: impl FnOnce(u32) -> Result<Command, bodies::Rejection>,
) -> Response {
    let Ok(mrd) = id.parse::<u32>() else {
        return not_a_media_id(id);
    };
    match build(mrd) {
        Ok(command) => submit(s, command).await,
        Err(r) => rejected(r),
    }
}

/// Sets whether an MRD is routable.
#[utoipa::path(put, path = "/v1/media/{media}/routable", tag = "actions",
    params(("media" = u32, Path, description = "The MRD's id")),
    request_body(content = bodies::RoutableBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Finesse accepted it", body = Accepted),
        doc::Refusals, doc::Open, doc::Unauthorized,
    ))]
async fn media_routable(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Response {
    media_command(&s, &id, |mrd| {
        let routable = bodies::routable(&body)?;
        Ok(Command::SetRoutable { mrd, routable })
    })
    .await
}

#[cfg(test)]
mod tests;
