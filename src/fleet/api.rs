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
//! - `GET /metrics`: every agent's families with an `agent` label, and the fleet's totals;
//! - `GET /v1/openapi.json`: the fleet's OpenAPI document: its own routes, and each agent's
//!   under `/v1/agents/{agent}/` (also in `contrib/openapi-fleet.json`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde::Serialize;
use tower::ServiceExt as _;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{OpenApi, Required};
use utoipa::{OpenApi as _, PartialSchema as _, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::cluster::status::ClusterDoc;
use crate::api::doc::{ErrorBody, Security};
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
    /// Its API router (no guard of its own: the fleet's guards every request, once).
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

/// The document's frame.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "finesse-taskd fleet API",
        description = "The local API of a finesse-taskd fleet: its agents, each one's own API \
            under /v1/agents/{agent}/, and in cluster mode this host's part of the cluster. \
            Only local clients: a foreign Host is answered 421, a foreign Origin 403, a missing \
            token 401 (when the fleet has one). Within /v1 things are only added.",
        license(name = "Apache-2.0")
    ),
    modifiers(&Security),
)]
struct Frame;

/// The fleet's own routes with their documentation.
fn routes() -> OpenApiRouter<FleetApi> {
    OpenApiRouter::with_openapi(Frame::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(list))
        .routes(routes!(cluster))
        .routes(routes!(openapi))
}

/// The fleet's OpenAPI document: its routes, and each agent's API under
/// `/v1/agents/{agent}/` (`/v1/state` there is `/v1/agents/{agent}/state`).
pub fn document() -> OpenApi {
    static DOC: std::sync::OnceLock<OpenApi> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut agent = crate::api::document();
        let agent_param: Parameter = ParameterBuilder::new()
            .name("agent")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some("The agent's id"))
            .schema(Some(String::schema()))
            .build();
        agent
            .paths
            .paths
            .retain(|path, _| path != "/v1/openapi.json");
        for item in agent.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                op.parameters
                    .get_or_insert_with(Vec::new)
                    .insert(0, agent_param.clone());
                op.operation_id = op.operation_id.take().map(|id| format!("agent_{id}"));
                // The fleet's token covers every agent route (an agent's `/healthz` too).
                op.security = None;
                op.responses
                    .responses
                    .entry("404".into())
                    .or_insert_with(|| {
                        utoipa::openapi::ResponseBuilder::new()
                            .description("No such agent here")
                            .into()
                    });
            }
        }
        routes().split_for_parts().1.nest_with_path_composer(
            "/v1/agents/{agent}",
            agent,
            |base, path| format!("{base}/{}", path.strip_prefix("/v1/").unwrap_or(&path[1..])),
        )
    })
    .clone()
}

/// The fleet's router.
pub fn router(state: FleetApi) -> Router {
    let (router, _) = routes().split_for_parts();
    let router = router.route("/v1/agents/{agent}/{*rest}", any(dispatch));
    let guard = state.guard.clone();
    guard::protect(router, &guard).with_state(state)
}

/// One agent in `/v1/agents`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentSummary {
    /// Its id.
    pub id: String,
    /// Its file.
    #[schema(value_type = String)]
    pub file: PathBuf,
    /// Where it is.
    pub phase: Phase,
    /// Why its last failure happened.
    pub cause: Option<crate::vocab::Cause>,
    /// The node in use.
    pub node: Option<String>,
    /// Its `/readyz` would say ready.
    pub ready: bool,
}

/// An agent file that cannot be used.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BadFile {
    /// The file.
    #[schema(value_type = String)]
    pub file: PathBuf,
    /// Why.
    pub error: String,
}

/// `/v1/agents`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentList {
    /// The agents running here.
    pub agents: Vec<AgentSummary>,
    /// The files that cannot be used.
    pub bad: Vec<BadFile>,
}

/// The fleet's `/healthz`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FleetHealth {
    /// Every agent's loop makes progress.
    pub ok: bool,
    /// The agents whose loop stalled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stalled: Option<Vec<String>>,
}

/// The fleet's `/readyz`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FleetReady {
    /// At least `ratio` of the agents are ready.
    pub ready: bool,
    /// Agents ready.
    pub steady: usize,
    /// Agents, bad files included.
    pub agents: usize,
    /// `[fleet] ready_ratio`.
    pub ratio: f64,
}

fn not_found(message: String) -> Response {
    (StatusCode::NOT_FOUND, Json(ErrorBody::new(message, None))).into_response()
}

/// True when the agent's own `/readyz` would say so.
fn is_ready(api: &ApiState) -> bool {
    api.shared.snapshot().readiness() == Readiness::Ready
}

/// The agents, with their phases, and the files that cannot be used.
#[utoipa::path(get, path = "/v1/agents", tag = "fleet",
    responses(
        (status = 200, description = "The agents", body = AgentList),
        crate::api::doc::Open, crate::api::doc::Unauthorized,
    ))]
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
            AgentSummary {
                id,
                file: m.file.clone(),
                phase: v.phase,
                cause: v.cause,
                node: v.node.clone(),
                ready: is_ready(&m.api),
            }
        })
        .collect();
    let bad = read(&f.roster.bad)
        .iter()
        .map(|(file, error)| BadFile {
            file: file.clone(),
            error: error.clone(),
        })
        .collect();
    Json(AgentList { agents, bad }).into_response()
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "contract",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = Object),
        crate::api::doc::Open, crate::api::doc::Unauthorized,
    ))]
async fn openapi() -> Response {
    Json(document()).into_response()
}

/// In cluster mode: the members, what each owns, this host's lease and fencing state.
#[utoipa::path(get, path = "/v1/cluster", tag = "fleet",
    responses(
        (status = 200, description = "This host's view of the cluster", body = ClusterDoc),
        (status = 404, description = "Not in cluster mode (no `[cluster]`)", body = ErrorBody),
        crate::api::doc::Open, crate::api::doc::Unauthorized,
    ))]
async fn cluster(State(f): State<FleetApi>) -> Response {
    match &f.cluster {
        Some(c) => Json(read(c).doc(tokio::time::Instant::now())).into_response(),
        None => not_found("not in cluster mode: the fleet file has no [cluster]".into()),
    }
}

/// Every agent's loop makes progress.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses(
        (status = 200, description = "Every agent's loop makes progress", body = FleetHealth),
        (status = 503, description = "Some agents' loops stalled", body = FleetHealth),
        crate::api::doc::Open,
    ))]
async fn healthz(State(f): State<FleetApi>) -> Response {
    let stalled: Vec<String> = f
        .roster
        .members()
        .into_iter()
        .filter(|(_, m)| m.api.shared.since_beat() >= STALL)
        .map(|(id, _)| id)
        .collect();
    if stalled.is_empty() {
        Json(FleetHealth {
            ok: true,
            stalled: None,
        })
        .into_response()
    } else {
        let body = FleetHealth {
            ok: false,
            stalled: Some(stalled),
        };
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// (ready, total): bad files count in the total.
fn readiness(f: &FleetApi) -> (usize, usize) {
    let members = f.roster.members();
    let ready = members.iter().filter(|(_, m)| is_ready(&m.api)).count();
    (ready, members.len() + read(&f.roster.bad).len())
}

/// At least `[fleet] ready_ratio` of the agents are ready.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Enough agents are ready", body = FleetReady),
        (status = 503, description = "Too few agents are ready", body = FleetReady),
        crate::api::doc::Open, crate::api::doc::Unauthorized,
    ))]
async fn readyz(State(f): State<FleetApi>) -> Response {
    let (ready, total) = readiness(&f);
    let ratio = *read(&f.ready_ratio);
    let ok = total > 0 && ready as f64 >= ratio * total as f64;
    let body = FleetReady {
        ready: ok,
        steady: ready,
        agents: total,
        ratio,
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Every agent's metrics with an `agent` label, and the fleet's (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses(
        (status = 200, description = "The metrics", body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        crate::api::doc::Open, crate::api::doc::Unauthorized,
    ))]
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
        return not_found(format!("no agent {id}"));
    };
    let (mut parts, body) = req.into_parts();
    // The rest of the path as it came (still percent-encoded: `rest` is decoded, and a
    // decoded control character is no URI).
    let raw = parts
        .uri
        .path()
        .strip_prefix("/v1/agents/")
        .and_then(|p| p.split_once('/'))
        .map_or(rest.as_str(), |(_, r)| r)
        .to_owned();
    let path = match raw.as_str() {
        "readyz" | "healthz" | "metrics" => format!("/{raw}"),
        _ => format!("/v1/{raw}"),
    };
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    match format!("{path}{query}").parse::<Uri>() {
        Ok(uri) => parts.uri = uri,
        Err(e) => {
            let body = ErrorBody::new(format!("not a path: {e}"), Some("path"));
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
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
