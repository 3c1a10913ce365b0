//! Admin handlers for the contact-centre side: routing a task, the customer ending it, an
//! agent action, settings drift, a double PG failure, a forced logout and a password change.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{Admin, err, op_err};
use crate::cluster::lock;
use crate::truth::Offer;

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct OfferBody {
    call_variables: BTreeMap<String, String>,
    force: bool,
}

pub(super) async fn offer(
    State(st): State<Admin>,
    Path((agent, mrd)): Path<(String, u32)>,
    body: Option<Json<OfferBody>>,
) -> Response {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let offer = Offer {
        call_variables: body.call_variables.into_iter().collect(),
        force: body.force,
    };
    let result = lock(&st.cluster.truth).offer(&agent, mrd, offer, SystemTime::now());
    match result {
        Ok((dialog, effects)) => {
            st.cluster.notify(&effects, "");
            (
                StatusCode::CREATED,
                Json(json!({ "dialogId": dialog.id, "dialog": dialog })),
            )
                .into_response()
        }
        Err(e) => op_err(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DriftBody {
    node: String,
    #[serde(default)]
    notify: bool,
}

pub(super) async fn drift(
    State(st): State<Admin>,
    Path((agent, mrd)): Path<(String, u32)>,
    Json(b): Json<DriftBody>,
) -> Response {
    let Some(n) = st.cluster.node(&b.node).cloned() else {
        return err(StatusCode::NOT_FOUND, format!("unknown node {}", b.node));
    };
    if let Err(e) = lock(&st.cluster.truth).drift(&agent, mrd, n.index) {
        return op_err(e);
    }
    if b.notify {
        st.cluster.notify(
            &[crate::truth::Effect::Media {
                agent: agent.clone(),
                mrd,
            }],
            "",
        );
    }
    Json(json!({ "agent": agent, "mrd": mrd, "node": n.name })).into_response()
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct PgBody {
    /// Dialog ids to drop; absent drops them all.
    remove: Option<Vec<String>>,
    /// New ACTIVE dialogs to add.
    add: Option<usize>,
    /// Call variables of the added dialogs, in order (e.g. their chat session ids).
    #[serde(rename = "callVariables")]
    call_variables: Vec<BTreeMap<String, String>>,
}

pub(super) async fn double_pg(
    State(st): State<Admin>,
    Path((agent, mrd)): Path<(String, u32)>,
    body: Option<Json<PgBody>>,
) -> Response {
    let b = body.map(|Json(b)| b).unwrap_or_default();
    let result = lock(&st.cluster.truth).double_pg_failure(
        &agent,
        mrd,
        b.remove,
        b.add.unwrap_or(1),
        SystemTime::now(),
    );
    match result {
        Ok((removed, added)) => {
            let mut truth = lock(&st.cluster.truth);
            for (id, vars) in added.iter().zip(b.call_variables) {
                truth.set_call_variables(id, vars.into_iter().collect());
            }
            Json(json!({ "removed": removed, "added": added })).into_response()
        }
        Err(e) => op_err(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct ForcedBody {
    node: Option<String>,
}

pub(super) async fn forced_logout(
    State(st): State<Admin>,
    Path(agent): Path<String>,
    body: Option<Json<ForcedBody>>,
) -> Response {
    let b = body.map(|Json(b)| b).unwrap_or_default();
    let node = match b
        .node
        .as_deref()
        .map(|n| st.cluster.node(n).map(|n| n.index))
    {
        Some(None) => return err(StatusCode::NOT_FOUND, "unknown node"),
        Some(Some(i)) => Some(i),
        None => None,
    };
    let effects = lock(&st.cluster.truth).forced_logout(&agent, node, SystemTime::now());
    st.cluster.notify(&effects, "");
    Json(json!({ "agent": agent, "effects": effects.len() })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordBody {
    password: String,
}

pub(super) async fn password(
    State(st): State<Admin>,
    Path(agent): Path<String>,
    Json(b): Json<PasswordBody>,
) -> Response {
    {
        let mut t = lock(&st.cluster.truth);
        let Some(a) = t.agents.get_mut(&agent) else {
            return err(StatusCode::NOT_FOUND, format!("unknown agent {agent}"));
        };
        a.password = b.password.clone();
    }
    for n in &st.cluster.nodes {
        if let Some(p) = n.prosody.lock().await.as_mut() {
            if let Err(e) = p.set_password(&agent, &b.password).await {
                return err(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"));
            }
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn end_dialog(State(st): State<Admin>, Path(id): Path<String>) -> Response {
    let result = lock(&st.cluster.truth).customer_end(&id, SystemTime::now());
    match result {
        Ok(effects) => {
            st.cluster.notify(&effects, "");
            Json(json!({ "dialogId": id, "state": "CLOSED" })).into_response()
        }
        Err(e) => op_err(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActionBody {
    action: String,
}

pub(super) async fn dialog_action(
    State(st): State<Admin>,
    Path(id): Path<String>,
    Json(b): Json<ActionBody>,
) -> Response {
    let owner = lock(&st.cluster.truth).find_dialog(&id).map(|(a, _)| a);
    let Some(owner) = owner else {
        return err(StatusCode::NOT_FOUND, format!("no dialog {id}"));
    };
    let result =
        lock(&st.cluster.truth).dialog_action(None, &owner, &id, &b.action, SystemTime::now());
    match result {
        Ok(effects) => {
            st.cluster.notify(&effects, "");
            Json(json!({ "dialogId": id, "action": b.action })).into_response()
        }
        Err(e) => op_err(e),
    }
}
