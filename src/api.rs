//! The local HTTP API for the agent's task application: `/healthz` (the main loop makes
//! progress), `/readyz` (phase is steady) and `/v1/state`. It only reads the shared state.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::supervisor::state::{Phase, Shared};

/// The main loop counts as stuck after this long without progress.
pub const STALL: Duration = Duration::from_secs(15);

/// The API router.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/state", get(state))
        .with_state(shared)
}

async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    let since = s.since_beat();
    if since < STALL {
        (StatusCode::OK, Json(json!({ "ok": true }))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ok": false, "stalledMs": since.as_millis() as u64 })),
        )
            .into_response()
    }
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    let v = s.snapshot();
    if v.phase == Phase::Steady {
        (StatusCode::OK, Json(json!({ "ready": true }))).into_response()
    } else {
        let body = json!({ "ready": false, "phase": v.phase, "cause": v.cause });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

async fn state(State(s): State<Arc<Shared>>) -> Response {
    Json(s.snapshot().to_json()).into_response()
}
