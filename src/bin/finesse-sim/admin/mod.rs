//! The JSON admin API, on its own loopback port: the simulator's info, the truth, the request
//! log, per-node Prosody controls and faults, each node's network (latency, stalls,
//! blackholes), task routing, and the CCE-side failures
//! (settings drift, forced logout, double PG failure, a changed password). The paths and
//! bodies are listed in the README under "Simulator".

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::cluster::{Cluster, Faults, RestMode, lock};
use crate::network::Link;
use crate::truth::{OpError, lockout_remaining, reported_state};

mod behaviour;
mod cce;
mod sso;
use behaviour::{get_behaviour, put_behaviour};
use cce::{dialog_action, double_pg, drift, end_dialog, forced_logout, offer, password};

#[derive(Clone)]
pub(super) struct Admin {
    pub(super) cluster: Arc<Cluster>,
    info: Arc<Value>,
}

/// The admin router. `info` is the JSON printed at start-up.
pub fn router(cluster: Arc<Cluster>, info: Value) -> Router {
    let st = Admin {
        cluster,
        info: Arc::new(info),
    };
    Router::new()
        .route(
            "/admin/info",
            get(|State(st): State<Admin>| async move { Json((*st.info).clone()) }),
        )
        .route("/admin/truth", get(truth_all))
        .route("/admin/truth/{agent}", get(truth_one))
        .route("/admin/requests", get(requests).delete(clear_requests))
        .route(
            "/admin/nodes/{node}/faults",
            get(get_faults).put(put_faults),
        )
        .route("/admin/nodes/{node}/prosody/{op}", post(prosody_op))
        .route("/admin/nodes/{node}/network", get(get_network))
        .route("/admin/nodes/{node}/network/{link}", put(put_network))
        .route("/admin/relays", post(new_relay))
        .route("/admin/relays/{id}/network", put(put_relay_network))
        .route("/admin/behaviour", get(get_behaviour).put(put_behaviour))
        .route("/admin/sso/{agent}", get(sso::stats))
        .route("/admin/sso/{agent}/token", post(sso::issue))
        .route(
            "/admin/sso/{agent}/expire-refresh",
            post(sso::expire_refresh),
        )
        .route("/admin/agents/{agent}/media/{mrd}/offer", post(offer))
        .route("/admin/agents/{agent}/media/{mrd}/drift", post(drift))
        .route(
            "/admin/agents/{agent}/media/{mrd}/double-pg-failure",
            post(double_pg),
        )
        .route("/admin/agents/{agent}/forced-logout", post(forced_logout))
        .route("/admin/agents/{agent}/password", put(password))
        .route("/admin/dialogs/{id}/end", post(end_dialog))
        .route("/admin/chat/sessions/{id}", put(chat_session))
        .route("/admin/chat/probes", get(chat_probes))
        .route("/admin/nodes/{node}/inject", post(inject))
        .route(
            "/admin/nodes/{node}/override",
            put(set_override).delete(clear_overrides),
        )
        .route("/admin/dialogs/{id}/action", post(dialog_action))
        .with_state(st)
}

pub(super) fn err(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

pub(super) fn op_err(e: OpError) -> Response {
    match e {
        OpError::Http {
            status, message, ..
        } => err(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            message,
        ),
        OpError::Arm { message, .. } => err(StatusCode::CONFLICT, message),
    }
}

fn agent_json(cluster: &Cluster, agent: &str) -> Option<Value> {
    let truth = lock(&cluster.truth);
    let a = truth.agents.get(agent)?;
    let now = Instant::now();
    let node_name = |i: usize| cluster.nodes.get(i).map(|n| n.name.clone());
    let media: Vec<Value> = a
        .media
        .iter()
        .map(|(id, m)| {
            let settings: BTreeMap<String, Value> = cluster
                .nodes
                .iter()
                .map(|n| {
                    (
                        n.name.clone(),
                        json!(m.settings.get(n.index).cloned().flatten()),
                    )
                })
                .collect();
            let views: BTreeMap<String, Value> = cluster
                .nodes
                .iter()
                .filter_map(|n| {
                    let v = truth.media_view(agent, *id, n.index)?;
                    Some((n.name.clone(), json!({
                        "state": v.state, "reasonCodeId": v.reason_code_id, "routable": v.routable,
                        "settings": v.settings,
                    })))
                })
                .collect();
            json!({
                "id": id,
                "state": reported_state(m),
                "base": m.base,
                "reasonCodeId": m.reason_code_id,
                "routable": m.routable,
                "loginNode": m.login_node.and_then(node_name),
                "settings": settings,
                "views": views,
                "dialogs": m.dialogs.values().collect::<Vec<_>>(),
            })
        })
        .collect();
    let presence: BTreeMap<String, bool> = cluster
        .nodes
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                lock(&n.presence).get(agent).is_some_and(|p| p.0),
            )
        })
        .collect();
    Some(json!({
        "id": a.id,
        "locked": lockout_remaining(a, now).is_some(),
        "lockouts": a.lockouts,
        "xmppAuthFailures": a.xmpp_auth_failures,
        "refusalsAtMs": a
            .refusals
            .iter()
            .map(|t| t.saturating_duration_since(cluster.started).as_millis() as u64)
            .collect::<Vec<_>>(),
        "presence": presence,
        "media": media,
    }))
}

async fn truth_all(State(st): State<Admin>) -> Response {
    let ids: Vec<String> = lock(&st.cluster.truth).agents.keys().cloned().collect();
    let agents: Vec<Value> = ids
        .iter()
        .filter_map(|id| agent_json(&st.cluster, id))
        .collect();
    Json(json!({ "agents": agents })).into_response()
}

async fn truth_one(State(st): State<Admin>, Path(agent): Path<String>) -> Response {
    match agent_json(&st.cluster, &agent) {
        Some(v) => Json(v).into_response(),
        None => err(StatusCode::NOT_FOUND, format!("unknown agent {agent}")),
    }
}

#[derive(Deserialize)]
struct RequestQuery {
    node: Option<String>,
    since: Option<u64>,
}

async fn requests(State(st): State<Admin>, Query(q): Query<RequestQuery>) -> Response {
    let log = lock(&st.cluster.requests);
    let records: Vec<_> = log
        .iter()
        .filter(|r| q.since.is_none_or(|s| r.seq > s))
        .filter(|r| {
            q.node
                .as_ref()
                .is_none_or(|n| r.node.eq_ignore_ascii_case(n))
        })
        .cloned()
        .collect();
    drop(log);
    let per_node = |count: fn(&crate::cluster::Node) -> u64| -> serde_json::Map<_, _> {
        st.cluster
            .nodes
            .iter()
            .map(|n| (n.name.clone(), count(n).into()))
            .collect()
    };
    let connections = per_node(|n| n.connections.load(std::sync::atomic::Ordering::Relaxed));
    let ws_sessions = per_node(|n| n.ws_sessions.load(std::sync::atomic::Ordering::Relaxed));
    Json(json!({ "requests": records, "connections": connections, "wsSessions": ws_sessions }))
        .into_response()
}

async fn clear_requests(State(st): State<Admin>) -> Response {
    lock(&st.cluster.requests).clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn get_faults(State(st): State<Admin>, Path(node): Path<String>) -> Response {
    match st.cluster.node(&node) {
        Some(n) => Json(n.faults()).into_response(),
        None => err(StatusCode::NOT_FOUND, format!("unknown node {node}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsPatch {
    out_of_service: Option<bool>,
    rest: Option<RestMode>,
    http_500: Option<bool>,
    finesse_unavailable: Option<bool>,
    drop_notifications: Option<bool>,
    delay_ms: Option<u64>,
    maintenance: Option<bool>,
}

async fn put_faults(
    State(st): State<Admin>,
    Path(node): Path<String>,
    Json(p): Json<FaultsPatch>,
) -> Response {
    let Some(n) = st.cluster.node(&node).cloned() else {
        return err(StatusCode::NOT_FOUND, format!("unknown node {node}"));
    };
    let before = n.faults();
    let mut after: Faults = before.clone();
    after.out_of_service = p.out_of_service.unwrap_or(after.out_of_service);
    after.rest = p.rest.unwrap_or(after.rest);
    after.http_500 = p.http_500.unwrap_or(after.http_500);
    after.finesse_unavailable = p.finesse_unavailable.unwrap_or(after.finesse_unavailable);
    after.drop_notifications = p.drop_notifications.unwrap_or(after.drop_notifications);
    after.delay_ms = p.delay_ms.unwrap_or(after.delay_ms);
    after.maintenance = p.maintenance.unwrap_or(after.maintenance);
    n.faults.send_replace(after.clone());
    let ports = lock(&st.cluster.truth).behaviour.systeminfo_ports;
    if before.out_of_service != after.out_of_service || before.maintenance != after.maintenance {
        st.cluster.publish_system_info(&n, ports);
        if before.out_of_service && !after.out_of_service {
            // Back in service, Finesse republishes the agents' state.
            let effects = st.cluster.all_media_effects();
            st.cluster.notify_node(&n, &effects);
        }
    }
    if before.finesse_unavailable != after.finesse_unavailable {
        n.publisher.set_available(!after.finesse_unavailable);
    }
    Json(after).into_response()
}

/// The node's network, each link's conditions.
fn network_json(n: &crate::cluster::Node) -> Value {
    Link::ALL
        .into_iter()
        .map(|l| {
            let c = n.network.get(l);
            (
                l.as_str().to_owned(),
                json!({ "rtt_ms": c.rtt().as_millis() as u64, "conditions": c }),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

async fn get_network(State(st): State<Admin>, Path(node): Path<String>) -> Response {
    match st.cluster.node(&node) {
        Some(n) => Json(network_json(n)).into_response(),
        None => err(StatusCode::NOT_FOUND, format!("unknown node {node}")),
    }
}

/// `PUT /admin/nodes/{node}/network/{link}` (`rest`, `xmpp` or `all`) with a patch of the
/// link's conditions ([`crate::network::Conditions::patched`]); open connections follow.
async fn put_network(
    State(st): State<Admin>,
    Path((node, link)): Path<(String, String)>,
    Json(patch): Json<Value>,
) -> Response {
    let Some(n) = st.cluster.node(&node).cloned() else {
        return err(StatusCode::NOT_FOUND, format!("unknown node {node}"));
    };
    let links: Vec<Link> = match (link.as_str(), Link::parse(&link)) {
        ("all", _) => Link::ALL.to_vec(),
        (_, Some(l)) => vec![l],
        _ => {
            return err(
                StatusCode::NOT_FOUND,
                format!("unknown link {link} (rest, xmpp, all)"),
            );
        }
    };
    let mut changed = Vec::new();
    for l in &links {
        match n.network.get(*l).patched(&patch) {
            Ok(c) => changed.push((*l, c)),
            Err(e) => return err(StatusCode::BAD_REQUEST, e),
        }
    }
    for (l, c) in changed {
        tracing::info!(node = %n.name, link = l.as_str(), conditions = ?c, "network changed");
        n.network.set(l, c);
    }
    Json(network_json(&n)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRelay {
    to: std::net::SocketAddr,
}

/// `POST /admin/relays` with `{"to": "127.0.0.1:port"}`: a relay to that loopback address,
/// `{"id", "listen"}`.
async fn new_relay(State(st): State<Admin>, Json(body): Json<NewRelay>) -> Response {
    match crate::network::relay::Relay::start(body.to).await {
        Ok(relay) => {
            let listen = relay.listen;
            let mut relays = lock(&st.cluster.relays);
            relays.push(Arc::new(relay));
            Json(json!({ "id": relays.len() - 1, "listen": listen.to_string() })).into_response()
        }
        Err(e) => err(StatusCode::BAD_REQUEST, e),
    }
}

/// `PUT /admin/relays/{id}/network` with a patch of the relay's conditions.
async fn put_relay_network(
    State(st): State<Admin>,
    Path(id): Path<usize>,
    Json(patch): Json<Value>,
) -> Response {
    let Some(relay) = lock(&st.cluster.relays).get(id).cloned() else {
        return err(StatusCode::NOT_FOUND, format!("unknown relay {id}"));
    };
    match relay.get().patched(&patch) {
        Ok(c) => {
            tracing::info!(relay = id, upstream = %relay.upstream, conditions = ?c, "relay network changed");
            relay.set(c);
            Json(json!({ "id": id, "conditions": c })).into_response()
        }
        Err(e) => err(StatusCode::BAD_REQUEST, e),
    }
}

async fn prosody_op(State(st): State<Admin>, Path((node, op)): Path<(String, String)>) -> Response {
    let Some(n) = st.cluster.node(&node).cloned() else {
        return err(StatusCode::NOT_FOUND, format!("unknown node {node}"));
    };
    let mut guard = n.prosody.lock().await;
    let Some(p) = guard.as_mut() else {
        return err(
            StatusCode::CONFLICT,
            "this simulator did not spawn Prosody (--spawn-prosody)",
        );
    };
    let result = match op.as_str() {
        "stop" => p.stop().await,
        "kill" => p.kill().await,
        "freeze" => p.freeze(),
        "thaw" => p.thaw(),
        "start" => p.start().await,
        "restart" => p.restart().await,
        other => return err(StatusCode::NOT_FOUND, format!("unknown operation {other}")),
    };
    drop(guard);
    if let Err(e) = result {
        return err(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"));
    }
    let mut publisher_online = n.publisher.is_online();
    if matches!(op.as_str(), "start" | "restart" | "thaw") {
        publisher_online = n.publisher.wait_online(Duration::from_secs(15)).await;
    }
    Json(json!({ "node": n.name, "op": op, "publisherOnline": publisher_online })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InjectBody {
    /// The pubsub node, e.g. /finesse/api/User/{id}/Dialogs/Media.
    pubsub_node: String,
    /// The notification text as published (normally an `<Update>` document).
    payload: String,
}

/// Publishes raw text as a notification on a node (for bad-input tests).
async fn inject(
    State(st): State<Admin>,
    Path(node): Path<String>,
    Json(b): Json<InjectBody>,
) -> Response {
    let Some(n) = st.cluster.node(&node).cloned() else {
        return err(StatusCode::NOT_FOUND, format!("unknown node {node}"));
    };
    let push = lock(&st.cluster.truth).behaviour.push_namespace;
    n.publisher.publish(&b.pubsub_node, b.payload, push);
    StatusCode::NO_CONTENT.into_response()
}

async fn set_override(
    State(st): State<Admin>,
    Path(node): Path<String>,
    Json(o): Json<crate::cluster::Override>,
) -> Response {
    let Some(n) = st.cluster.node(&node).cloned() else {
        return err(StatusCode::NOT_FOUND, format!("unknown node {node}"));
    };
    lock(&st.cluster.overrides).insert((n.index, o.path.clone()), o);
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_overrides(State(st): State<Admin>, Path(node): Path<String>) -> Response {
    let Some(n) = st.cluster.node(&node).cloned() else {
        return err(StatusCode::NOT_FOUND, format!("unknown node {node}"));
    };
    lock(&st.cluster.overrides).retain(|(i, _), _| *i != n.index);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatBody {
    mode: crate::chat::Mode,
}

async fn chat_session(
    State(st): State<Admin>,
    Path(id): Path<String>,
    Json(b): Json<ChatBody>,
) -> Response {
    st.cluster.chat.set(&id, b.mode);
    Json(json!({ "session": id, "mode": b.mode })).into_response()
}

async fn chat_probes(State(st): State<Admin>) -> Response {
    Json(json!({ "probes": st.cluster.chat.probes(), "maxInFlight": st.cluster.chat.max_in_flight() })).into_response()
}
