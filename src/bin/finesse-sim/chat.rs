//! A tiny chat-session service, the kind of backend a task's dialog points at: `GET` or
//! `HEAD /sessions/{id}` answers 200 (alive), 404 (gone, with the service's own
//! `X-Session-State: gone` header and JSON body), a proxy's bare 404 (`proxy404`: the same
//! status, neither marker), 503 (error) or never (hang), as the admin API sets per session. Unknown sessions are gone. Every probe is counted, so tests can
//! check how many a client made.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::locks::lock;

/// How a session answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// 200.
    Alive,
    /// 404 from the service: `X-Session-State: gone`, `{"error":"session_gone"}`.
    Gone,
    /// 404 from a proxy in front of it: an HTML page, no marker.
    Proxy404,
    /// 503.
    Error,
    /// Never answers.
    Hang,
    /// Answers 503 after 400 ms (a slow, failing backend).
    Slow,
}

/// The sessions and the probe counts.
#[derive(Default)]
pub struct Chat {
    modes: Mutex<HashMap<String, Mode>>,
    probes: Mutex<HashMap<String, u64>>,
    in_flight: Mutex<(u64, u64)>,
}

/// Counts a probe in flight until it is answered or its client goes away.
struct InFlight<'a>(&'a Chat);

impl<'a> InFlight<'a> {
    fn new(chat: &'a Chat) -> Self {
        let mut f = lock(&chat.in_flight);
        f.0 += 1;
        f.1 = f.1.max(f.0);
        Self(chat)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(&self.0.in_flight).0 -= 1;
    }
}

impl Chat {
    /// Sets a session's mode.
    pub fn set(&self, id: &str, mode: Mode) {
        lock(&self.modes).insert(id.to_owned(), mode);
    }

    /// The most probes that were in flight at once.
    pub fn max_in_flight(&self) -> u64 {
        lock(&self.in_flight).1
    }

    /// Probes received per session.
    pub fn probes(&self) -> HashMap<String, u64> {
        lock(&self.probes).clone()
    }
}

/// The service's router.
pub fn router(chat: Arc<Chat>) -> Router {
    Router::new()
        .route("/sessions/{id}", get(session))
        .with_state(chat)
}

async fn session(State(chat): State<Arc<Chat>>, Path(id): Path<String>) -> Response {
    *lock(&chat.probes).entry(id.clone()).or_default() += 1;
    let _in_flight = InFlight::new(&chat);
    let mode = lock(&chat.modes).get(&id).copied().unwrap_or(Mode::Gone);
    match mode {
        Mode::Alive => (StatusCode::OK, "alive").into_response(),
        Mode::Gone => (
            StatusCode::NOT_FOUND,
            [("x-session-state", "gone")],
            r#"{"error":"session_gone"}"#,
        )
            .into_response(),
        Mode::Proxy404 => (
            StatusCode::NOT_FOUND,
            "<html><head><title>404 Not Found</title></head><body>nginx</body></html>",
        )
            .into_response(),
        Mode::Error => (StatusCode::SERVICE_UNAVAILABLE, "error").into_response(),
        Mode::Slow => {
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            (StatusCode::SERVICE_UNAVAILABLE, "slow").into_response()
        }
        Mode::Hang => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
    }
}
