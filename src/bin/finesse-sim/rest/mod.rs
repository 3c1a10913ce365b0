//! One node's Finesse REST API (axum): SystemInfo, User, Media (GET, PUT), MediaList, the
//! nonvoice Dialogs LIST and Dialog actions, with Basic auth, the sign-in lockout, the
//! `requestId` echo, the request log, and the per-node faults (hang, 500, OUT_OF_SERVICE);
//! and XMPP over WebSocket on the same port ([`ws`]).

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};

use crate::cluster::{Cluster, RequestRecord, RestMode, lock};
use crate::config::ErrorForm;
use crate::truth::{MediaRequest, OpError};
use crate::xml::{self, ApiError};

mod auth;
mod sso;
mod ws;
use auth::{authenticate, basic_credentials, request_id, with_request_id};

/// Request bodies above this size are refused.
const MAX_BODY: usize = 1 << 20;

#[derive(Clone)]
struct NodeState {
    cluster: Arc<Cluster>,
    node: usize,
}

/// The REST router of node `node`.
pub fn router(cluster: Arc<Cluster>, node: usize) -> Router {
    let state = NodeState { cluster, node };
    Router::new()
        .route("/finesse/api/SystemInfo", get(system_info))
        .route("/finesse/api/User/{id}", get(get_user))
        .route("/finesse/api/User/{id}/Media", get(get_media_list))
        .route(
            "/finesse/api/User/{id}/Media/{mrd}",
            get(get_media).put(put_media),
        )
        .route(
            "/finesse/api/User/{id}/Media/{mrd}/Dialogs",
            get(get_dialogs),
        )
        .route("/finesse/api/Dialog/{id}", put(put_dialog))
        .route(
            "/desktop/sso/token",
            get(sso::token_get).post(sso::refresh_post),
        )
        .route("/ws", get(ws::front_end))
        .route("/ws/", get(ws::front_end))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            faults_and_log,
        ))
        .with_state(state)
}

fn xml_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [("content-type", "application/xml")], body).into_response()
}

fn error_response(status: u16, error_type: &str, message: &str, data: &str) -> Response {
    xml_response(
        status,
        xml::api_errors_sync(&ApiError {
            data,
            media: "",
            message,
            error_type,
        }),
    )
}

async fn not_found() -> Response {
    error_response(404, "Not Found", "unknown resource", "")
}

/// Logs every request, then applies the node's faults before the handler runs.
async fn faults_and_log(State(st): State<NodeState>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let peer = parts
        .extensions
        .get::<crate::cluster::Peer>()
        .map(|p| p.0.to_string());
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return error_response(400, "Bad Request", "request body too large", "");
    };
    let node = &st.cluster.nodes[st.node];
    let user = basic_credentials(&parts.headers).map(|(u, _)| u);
    let auth_scheme = auth::scheme(&parts.headers);
    let token_seq =
        auth::bearer_token(&parts.headers).and_then(|t| lock(&st.cluster.ids).seq_of(&t));
    let seq = st.cluster.log_request(RequestRecord {
        seq: 0,
        node: node.name.clone(),
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        time: String::new(),
        at_ms: 0,
        status: 0,
        user,
        auth: auth_scheme,
        token_seq,
        peer,
    });
    let is_system_info = parts.uri.path() == "/finesse/api/SystemInfo";
    let canned = lock(&st.cluster.overrides)
        .get(&(st.node, parts.uri.path().to_owned()))
        .cloned();
    if let Some(o) = canned {
        let status = StatusCode::from_u16(o.status).unwrap_or(StatusCode::OK);
        let body = o.body.repeat(o.repeat.max(1));
        let response = (status, [("content-type", o.content_type.clone())], body).into_response();
        st.cluster.log_status(seq, o.status);
        return response;
    }
    let faults = node.faults();
    if faults.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(faults.delay_ms)).await;
    }
    let response = if faults.rest == RestMode::Hang {
        // Accept and never answer while the fault lasts; then give up with a 503.
        let mut watch = node.faults.subscribe();
        let _ = watch.wait_for(|f| f.rest != RestMode::Hang).await;
        error_response(
            503,
            "Service Unavailable",
            "request was held by a hang fault",
            "",
        )
    } else if faults.http_500 && !is_system_info {
        error_response(500, "Generic Error", "internal server error", "")
    } else if faults.out_of_service && !is_system_info {
        error_response(503, "Service Unavailable", "Finesse is OUT_OF_SERVICE", "")
    } else {
        next.run(Request::from_parts(parts, Body::from(bytes)))
            .await
    };
    st.cluster.log_status(seq, response.status().as_u16());
    response
}

/// Answers an operation: 202 and notifications, or the error in its configured form.
fn answer(
    st: &NodeState,
    result: Result<Vec<crate::truth::Effect>, OpError>,
    request_id: &str,
    error_path: String,
    error_source: String,
) -> Response {
    match result {
        Ok(effects) => {
            st.cluster.notify(&effects, request_id);
            xml_response(202, String::new())
        }
        Err(OpError::Http {
            status,
            error_type,
            message,
            data,
        }) => error_response(status, &error_type, &message, &data),
        Err(OpError::Arm {
            code,
            message,
            error_type,
            mrd,
        }) => {
            let (code, mrd) = (code.to_string(), mrd.to_string());
            let e = ApiError {
                data: &code,
                media: &mrd,
                message: &message,
                error_type: &error_type,
            };
            let (form, event, push) = {
                let t = lock(&st.cluster.truth);
                (
                    t.behaviour.arm_errors,
                    t.event("PUT"),
                    t.behaviour.push_namespace,
                )
            };
            match form {
                ErrorForm::Sync => xml_response(400, xml::api_errors_sync(&e)),
                ErrorForm::Async => {
                    let update = xml::update(
                        &xml::api_errors_async(&e),
                        &event,
                        request_id,
                        &error_source,
                    );
                    st.cluster
                        .publish(&st.cluster.nodes[st.node], &error_path, update, push);
                    xml_response(202, String::new())
                }
            }
        }
    }
}

async fn system_info(State(st): State<NodeState>) -> Response {
    let ports = lock(&st.cluster.truth).behaviour.systeminfo_ports;
    // SystemInfo needs no credentials (Cisco's client integration reads it first).
    xml_response(
        200,
        st.cluster.system_info(&st.cluster.nodes[st.node], ports),
    )
}

async fn get_user(
    State(st): State<NodeState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    // The user by loginId or by loginName (Cisco's client integration looks it up so).
    let (id, login_name) = {
        let ids = lock(&st.cluster.ids);
        let id = ids.login_id(&name);
        let login_name = ids.login_name(&id);
        (id, login_name)
    };
    if let Err(r) = authenticate(&st, &headers, Some(&id)) {
        return *r;
    }
    let truth = lock(&st.cluster.truth);
    match truth.agents.get(&id) {
        Some(agent) => {
            let mrds: Vec<u32> = agent.media.keys().copied().collect();
            xml_response(200, xml::user(agent, &login_name, &mrds))
        }
        None => error_response(404, "User Not Found", "UNKNOWN_USER", "4023"),
    }
}

async fn get_media_list(
    State(st): State<NodeState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authenticate(&st, &headers, Some(&id)) {
        return *r;
    }
    let truth = lock(&st.cluster.truth);
    let Some(agent) = truth.agents.get(&id) else {
        return error_response(404, "User Not Found", "UNKNOWN_USER", "4023");
    };
    let mut body = String::from("<MediaList>");
    for mrd in agent.media.keys() {
        if let Some(m) = truth.mrds.get(mrd) {
            body.push_str(&xml::media(
                &id,
                *mrd,
                m,
                truth.media_view(&id, *mrd, st.node).as_ref(),
                truth.get_shape(),
            ));
        }
    }
    body.push_str("</MediaList>");
    xml_response(200, body)
}

async fn get_media(
    State(st): State<NodeState>,
    Path((id, mrd)): Path<(String, u32)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authenticate(&st, &headers, Some(&id)) {
        return *r;
    }
    let truth = lock(&st.cluster.truth);
    let Some(m) = truth.mrds.get(&mrd) else {
        return error_response(404, "Not Found", &format!("unknown MRD {mrd}"), "");
    };
    let view = truth.media_view(&id, mrd, st.node);
    xml_response(
        200,
        xml::media(&id, mrd, m, view.as_ref(), truth.get_shape()),
    )
}

async fn put_media(
    State(st): State<NodeState>,
    Path((id, mrd)): Path<(String, u32)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Err(r) = authenticate(&st, &headers, Some(&id)) {
        return *r;
    }
    let rid = request_id(&headers);
    let fields = match crate::body::read_fields(&body, "Media") {
        Ok(f) => f,
        Err(e) => return with_request_id(error_response(400, "Bad Request", &e, ""), &rid),
    };
    let req = MediaRequest {
        state: fields.get("state").cloned(),
        max_dialog_limit: fields.get("maxDialogLimit").cloned(),
        interrupt_action: fields.get("interruptAction").cloned(),
        dialog_logout_action: fields.get("dialogLogoutAction").cloned(),
        reason_code_id: fields.get("reasonCodeId").cloned(),
        routable: fields.get("routable").cloned(),
    };
    let result = lock(&st.cluster.truth).put_media(st.node, &id, mrd, &req, SystemTime::now());
    let response = answer(
        &st,
        result,
        &rid,
        format!("/finesse/api/User/{id}/Media"),
        format!("/finesse/api/User/{id}/Media/{mrd}"),
    );
    with_request_id(response, &rid)
}

async fn get_dialogs(
    State(st): State<NodeState>,
    Path((id, mrd)): Path<(String, u32)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authenticate(&st, &headers, Some(&id)) {
        return *r;
    }
    let truth = lock(&st.cluster.truth);
    let Some(media) = truth.agents.get(&id).and_then(|a| a.media.get(&mrd)) else {
        return error_response(404, "Not Found", &format!("unknown MRD {mrd} for {id}"), "");
    };
    let name = truth.mrds.get(&mrd).map(|m| m.name.as_str()).unwrap_or("");
    let mut body = String::from("<Dialogs>");
    for d in media.dialogs.values() {
        body.push_str(&xml::dialog(d, name));
    }
    body.push_str("</Dialogs>");
    xml_response(200, body)
}

async fn put_dialog(
    State(st): State<NodeState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let user = match authenticate(&st, &headers, None) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let rid = request_id(&headers);
    let fields = match crate::body::read_fields(&body, "Dialog") {
        Ok(f) => f,
        Err(e) => return with_request_id(error_response(400, "Bad Request", &e, ""), &rid),
    };
    let Some(action) = fields
        .get("requestedAction")
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
    else {
        return with_request_id(
            error_response(400, "Parameter Missing", "requestedAction is required", ""),
            &rid,
        );
    };
    let result = lock(&st.cluster.truth).dialog_action(
        Some(st.node),
        &user,
        &id,
        &action,
        SystemTime::now(),
    );
    let response = answer(
        &st,
        result,
        &rid,
        format!("/finesse/api/User/{user}/Dialogs/Media"),
        format!("/finesse/api/Dialog/{id}"),
    );
    with_request_id(response, &rid)
}
