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
//! - `GET /metrics`: Prometheus text.
//!
//! It never calls Finesse itself.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::mpsc;

pub mod bodies;
pub mod guard;
pub mod serve;
mod sse;

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

/// The API router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/state", get(view))
        .route("/v1/events", get(sse::events))
        .route("/v1/dialogs/{id}/actions", post(dialog_action))
        .route("/v1/media/{id}/state", put(media_state))
        .route("/v1/media/{id}/routable", put(media_routable))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            guard::check,
        ))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>, field: Option<&str>) -> Response {
    (
        status,
        Json(json!({ "error": message.into(), "field": field })),
    )
        .into_response()
}

async fn healthz(State(s): State<ApiState>) -> Response {
    let since = s.shared.since_beat();
    if since < STALL {
        Json(json!({ "ok": true })).into_response()
    } else {
        let body = json!({ "ok": false, "stalledMs": since.as_millis() as u64 });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

async fn readyz(State(s): State<ApiState>) -> Response {
    let v = s.shared.snapshot();
    match v.readiness() {
        Readiness::Ready => Json(json!({ "ready": true })).into_response(),
        Readiness::SigninRefused(refused) => {
            let body = json!({
                "ready": false, "phase": v.phase, "cause": Cause::SigninFailed, "media": refused,
            });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
        Readiness::NotSteady => {
            let body = json!({ "ready": false, "phase": v.phase, "cause": v.cause });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

async fn view(State(s): State<ApiState>) -> Response {
    // The event id read before the view: a client that fetches the state and then resumes
    // the event stream from `lastEventId` misses nothing (it may see a change twice, and
    // applying an event is idempotent).
    let last = s.shared.events.last_seq();
    let mut v = s.shared.snapshot().to_json();
    v["lastEventId"] = json!(s.shared.events.event_id(last));
    v["lastSeq"] = json!(last);
    Json(v).into_response()
}

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
            (StatusCode::ACCEPTED, Json(json!({ "accepted": true }))).into_response()
        }
        Some(Ok(Err(CommandError::NotFound(m)))) => error(StatusCode::NOT_FOUND, m, None),
        Some(Ok(Err(CommandError::NotAllowed(m)))) => {
            error(StatusCode::CONFLICT, m, Some("action"))
        }
        Some(Ok(Err(CommandError::Finesse(m)))) => error(StatusCode::BAD_GATEWAY, m, None),
        Some(Ok(Err(CommandError::AuthFailed))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "auth_failed" })),
        )
            .into_response(),
        // Sent, or perhaps sent, with no answer: never invite a retry (no Retry-After).
        Some(Ok(Err(CommandError::OutcomeUnknown(_)))) => (
            StatusCode::GATEWAY_TIMEOUT,
            Json(json!({ "error": "outcome_unknown" })),
        )
            .into_response(),
        // Given up unsent, dropped unsent by the driver, or Finesse unreachable before
        // anything went out: safe to retry.
        Some(Ok(Err(CommandError::Unavailable(_)))) | Some(Err(_)) | None => unavailable(),
    }
}

fn rejected(r: bodies::Rejection) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    error(status, r.message, Some(&r.field))
}

async fn dialog_action(State(s): State<ApiState>, Path(id): Path<String>, body: Bytes) -> Response {
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

async fn media_state(State(s): State<ApiState>, Path(id): Path<u32>, body: Bytes) -> Response {
    match bodies::media_state(&body) {
        Ok((state, reason)) => {
            let command = Command::SetState {
                mrd: id,
                state,
                reason,
            };
            submit(&s, command).await
        }
        Err(r) => rejected(r),
    }
}

async fn media_routable(State(s): State<ApiState>, Path(id): Path<u32>, body: Bytes) -> Response {
    match bodies::routable(&body) {
        Ok(routable) => submit(&s, Command::SetRoutable { mrd: id, routable }).await,
        Err(r) => rejected(r),
    }
}

#[cfg(test)]
mod tests;
