//! Fleet mode's API on the one listener, with the same guard as a single agent's:
//!
//! - `GET /v1/agents`: every agent with its phase, cause and readiness, and every agent file
//!   that could not be used, with its error;
//! - `/v1/agents/{id}/…`: that agent's own API (`state`, `events`, `dialogs/{d}/actions`,
//!   `media/{m}/state|routable`, `readyz`, `healthz`, `metrics`), the same handlers and rules
//!   as a single-agent daemon's;
//! - `GET /v1/cluster`: in cluster mode, the members, what each owns, this host's lease and
//!   fencing state (404 without `[cluster]`);
//! - `GET /healthz`: the process (every agent's loop makes progress);
//! - `GET /readyz`: at least `ready_ratio` of the agents (bad files count as not ready) are
//!   steady and ready;
//! - `GET /metrics`: every agent's families with an `agent` label, and the fleet's totals.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::json;
use tower::ServiceExt as _;

use crate::api::{ApiState, guard};
use crate::published::STALL;
use crate::view::Readiness;
use crate::vocab::Phase;

/// One running agent.
#[derive(Clone)]
pub struct Member {
    /// Its file in the agents directory.
    pub file: PathBuf,
    /// Its API state (the single-agent handlers run on it).
    pub api: ApiState,
    /// Its API router.
    pub router: Router,
}

/// The fleet's agents, shared with the fleet runtime (which adds and removes them).
#[derive(Clone, Default)]
pub struct Roster {
    /// Running agents by id.
    pub agents: Arc<RwLock<BTreeMap<String, Member>>>,
    /// Agent files that cannot be used, with why.
    pub bad: Arc<RwLock<BTreeMap<PathBuf, String>>>,
}

impl Roster {
    fn members(&self) -> Vec<(String, Member)> {
        read(&self.agents)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the fleet handlers share.
#[derive(Clone)]
pub struct FleetApi {
    /// The agents.
    pub roster: Roster,
    /// `[fleet] ready_ratio` (a reload of the fleet file sets it anew).
    pub ready_ratio: Arc<RwLock<f64>>,
    /// Who may drive the API.
    pub guard: Arc<guard::RequestGuard>,
    /// Cluster mode's view (none without `[cluster]`).
    pub cluster: Option<Arc<RwLock<super::cluster::status::Status>>>,
}

/// The fleet's router.
pub fn router(state: FleetApi) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/agents", get(list))
        .route("/v1/cluster", get(cluster))
        .route("/v1/agents/{id}/{*rest}", any(dispatch))
        .layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            guard::check,
        ))
        .with_state(state)
}

/// True when the agent's own `/readyz` would say so.
fn is_ready(api: &ApiState) -> bool {
    api.shared.snapshot().readiness() == Readiness::Ready
}

async fn list(State(f): State<FleetApi>) -> Response {
    // A cluster host past its deadline runs nothing, whatever its tasks last reported.
    let fenced = f
        .cluster
        .as_ref()
        .is_some_and(|c| !read(c).acting(tokio::time::Instant::now()));
    let agents: Vec<_> = f
        .roster
        .members()
        .into_iter()
        .filter(|_| !fenced)
        .map(|(id, m)| {
            let v = m.api.shared.snapshot();
            json!({
                "id": id, "file": m.file, "phase": v.phase, "cause": v.cause,
                "node": v.node, "ready": is_ready(&m.api),
            })
        })
        .collect();
    let bad: Vec<_> = read(&f.roster.bad)
        .iter()
        .map(|(file, error)| json!({ "file": file, "error": error }))
        .collect();
    Json(json!({ "agents": agents, "bad": bad })).into_response()
}

async fn cluster(State(f): State<FleetApi>) -> Response {
    match &f.cluster {
        Some(c) => Json(read(c).to_json(tokio::time::Instant::now())).into_response(),
        None => {
            let body = json!({ "error": "not in cluster mode: the fleet file has no [cluster]", "field": null });
            (StatusCode::NOT_FOUND, Json(body)).into_response()
        }
    }
}

async fn healthz(State(f): State<FleetApi>) -> Response {
    let stalled: Vec<String> = f
        .roster
        .members()
        .into_iter()
        .filter(|(_, m)| m.api.shared.since_beat() >= STALL)
        .map(|(id, _)| id)
        .collect();
    if stalled.is_empty() {
        Json(json!({ "ok": true })).into_response()
    } else {
        let body = json!({ "ok": false, "stalled": stalled });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// (ready, total): bad files count in the total.
fn readiness(f: &FleetApi) -> (usize, usize) {
    let members = f.roster.members();
    let ready = members.iter().filter(|(_, m)| is_ready(&m.api)).count();
    (ready, members.len() + read(&f.roster.bad).len())
}

async fn readyz(State(f): State<FleetApi>) -> Response {
    let (ready, total) = readiness(&f);
    let ratio = *read(&f.ready_ratio);
    let ok = total > 0 && ready as f64 >= ratio * total as f64;
    let body = json!({ "ready": ok, "steady": ready, "agents": total, "ratio": ratio });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(f): State<FleetApi>) -> Response {
    // One pass over the roster: each agent's families and its phase.
    let mut phases: BTreeMap<&str, u64> = Phase::ALL.iter().map(|p| (p.as_str(), 0)).collect();
    let mut parts: Vec<(String, String)> = Vec::new();
    for (id, m) in f.roster.members() {
        *phases
            .entry(m.api.shared.snapshot().phase.as_str())
            .or_default() += 1;
        parts.push((id, (m.api.metrics)()));
    }
    let mut totals = String::from(
        "# HELP finesse_taskd_fleet_agents Agents of the fleet by phase (config_error: unusable files).\n\
         # TYPE finesse_taskd_fleet_agents gauge\n",
    );
    for (phase, n) in &phases {
        totals.push_str(&format!(
            "finesse_taskd_fleet_agents{{phase=\"{phase}\"}} {n}\n"
        ));
    }
    let bad = read(&f.roster.bad).len();
    totals.push_str(&format!(
        "finesse_taskd_fleet_agents{{phase=\"config_error\"}} {bad}\n"
    ));
    if let Some(c) = &f.cluster {
        totals.push_str(&read(c).metrics(tokio::time::Instant::now()));
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        super::metrics::merge(&parts, &totals),
    )
        .into_response()
}

/// `/v1/agents/{id}/{rest}` → the agent's `/v1/{rest}` (`/readyz`, `/healthz`, `/metrics`
/// as they are).
async fn dispatch(
    State(f): State<FleetApi>,
    Path((id, rest)): Path<(String, String)>,
    req: Request,
) -> Response {
    let Some(member) = read(&f.roster.agents).get(&id).cloned() else {
        let body = json!({ "error": format!("no agent {id}"), "field": null });
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    let path = match rest.as_str() {
        "readyz" | "healthz" | "metrics" => format!("/{rest}"),
        _ => format!("/v1/{rest}"),
    };
    let (mut parts, body) = req.into_parts();
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    match format!("{path}{query}").parse::<Uri>() {
        Ok(uri) => parts.uri = uri,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    }
    // A new request, not `parts` as they are: their extensions hold this router's path
    // parameters (`id`, `rest`), which the agent's router would see before its own
    // (`/v1/dialogs/{id}/actions` would find three).
    let mut inner = Request::new(Body::new(body));
    *inner.method_mut() = parts.method;
    *inner.uri_mut() = parts.uri;
    *inner.version_mut() = parts.version;
    *inner.headers_mut() = parts.headers;
    match member.router.oneshot(inner).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}
