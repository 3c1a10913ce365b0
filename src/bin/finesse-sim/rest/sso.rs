//! `/desktop/sso/token` on each node: the refresh in the developer guide's form (`POST`,
//! form-encoded `token=`, `refresh-token=`, optional `return_user=yes`) and in the tech
//! note's query form (`GET ?cc_username=…&refresh-token=…`), each served or refused (405 /
//! 400) as `IdsSettings::refresh_forms` says. A `GET` without `refresh-token` is the
//! interactive flow: a redirect to the IdS login page, which no test can follow (tests get
//! their first pair from `POST /admin/sso/{agent}/token`). A refreshed token becomes the
//! agent's XMPP password on every node before the answer goes out.

use std::collections::HashMap;
use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::NodeState;
use crate::cluster::{Cluster, lock};
use crate::ids::Refused;

fn refused(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

fn serves(st: &NodeState, form: &str) -> bool {
    let ids = lock(&st.cluster.ids);
    ids.enabled && (ids.settings.refresh_forms == "both" || ids.settings.refresh_forms == form)
}

/// `POST /desktop/sso/token`.
pub(super) async fn refresh_post(State(st): State<NodeState>, body: Bytes) -> Response {
    if !serves(&st, "post") {
        return refused(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let form = url_decode_pairs(&String::from_utf8_lossy(&body));
    match form.get("refresh-token") {
        Some(rt) => refresh(&st.cluster, rt).await,
        None => refused(StatusCode::BAD_REQUEST, "refresh-token is required"),
    }
}

/// `GET /desktop/sso/token`.
pub(super) async fn token_get(
    State(st): State<NodeState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match q.get("refresh-token") {
        Some(_) if !serves(&st, "query") => refused(StatusCode::BAD_REQUEST, "unsupported request"),
        Some(rt) => refresh(&st.cluster, rt).await,
        None => (
            StatusCode::FOUND,
            [("location", "/ids/v1/oauth/authorize?client_id=finesse")],
        )
            .into_response(),
    }
}

fn url_decode_pairs(text: &str) -> HashMap<String, String> {
    text.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

async fn refresh(cluster: &Cluster, refresh_token: &str) -> Response {
    let at_ms = cluster.started.elapsed().as_millis() as u64;
    let (grant, stale) = {
        let mut ids = lock(&cluster.ids);
        let grant = ids.refresh(refresh_token, SystemTime::now(), at_ms);
        let stale = grant.is_ok() && std::mem::take(&mut ids.stale_xmpp_once);
        (grant, stale)
    };
    match grant {
        Ok(grant) => {
            let updated = if stale {
                Ok(())
            } else {
                cluster.set_xmpp_password(&grant.agent, &grant.token).await
            };
            if let Err(e) = updated {
                return refused(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}"));
            }
            Json(grant.json(&cluster.domain)).into_response()
        }
        Err(r @ Refused::Expired) => refused(
            StatusCode::UNAUTHORIZED,
            &format!("refresh {}: sign in again", r.message()),
        ),
        Err(r @ Refused::Unknown) => refused(StatusCode::UNAUTHORIZED, r.message()),
    }
}
