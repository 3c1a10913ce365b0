//! The IdS's admin side: `POST /admin/sso/{agent}/token` issues a pair in Cisco's JSON shape
//! (what an operator gets from the browser flow) and makes its token the agent's XMPP
//! password; `POST /admin/sso/{agent}/expire-refresh` ends the agent's refresh tokens now;
//! `GET /admin/sso/{agent}` counts issues, refreshes and refusals (and lists every token
//! issued, for a test's secrets audit); and the `sso_*` fields of
//! `/admin/behaviour` change lifetimes and shapes at run time.

use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Admin;
use crate::cluster::lock;
use crate::ids::IdsSettings;

fn known(st: &Admin, agent: &str) -> bool {
    lock(&st.cluster.truth).agents.contains_key(agent)
}

pub(super) async fn issue(State(st): State<Admin>, Path(agent): Path<String>) -> Response {
    if !known(&st, &agent) {
        return (StatusCode::NOT_FOUND, format!("unknown agent {agent}")).into_response();
    }
    let grant = lock(&st.cluster.ids).issue(&agent, SystemTime::now());
    if let Err(e) = st.cluster.set_xmpp_password(&agent, &grant.token).await {
        return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")).into_response();
    }
    Json(grant.json(&st.cluster.domain)).into_response()
}

pub(super) async fn expire_refresh(State(st): State<Admin>, Path(agent): Path<String>) -> Response {
    let n = lock(&st.cluster.ids).expire_refresh(&agent, SystemTime::now());
    Json(json!({ "agent": agent, "expired": n })).into_response()
}

pub(super) async fn stats(State(st): State<Admin>, Path(agent): Path<String>) -> Response {
    let ids = lock(&st.cluster.ids);
    let s = ids.stats.get(&agent).cloned().unwrap_or_default();
    let tokens = ids.issued_to(&agent);
    Json(json!({ "enabled": ids.enabled, "stats": s, "tokens": tokens })).into_response()
}

/// The `sso_*` fields of a behaviour patch.
#[derive(Debug, Default)]
pub(super) struct SsoPatch {
    pub(super) sso_token_lifetime_ms: Option<u64>,
    pub(super) sso_refresh_lifetime_ms: Option<u64>,
    pub(super) sso_jwt: Option<bool>,
    pub(super) sso_returns_refresh_token: Option<bool>,
    pub(super) sso_refresh_forms: Option<String>,
    pub(super) sso_xmpp_stale_once: Option<bool>,
}

impl SsoPatch {
    /// Checks the patch (before anything is changed).
    pub(super) fn check(&self) -> Result<(), String> {
        match self.sso_refresh_forms.as_deref() {
            Some(v) if !["both", "post", "query"].contains(&v) => {
                Err(format!("sso_refresh_forms {v:?}: one of both, post, query"))
            }
            _ => Ok(()),
        }
    }

    /// Applies the patch.
    pub(super) fn apply(self, ids: &mut crate::ids::Ids) {
        if let Some(v) = self.sso_xmpp_stale_once {
            ids.stale_xmpp_once = v;
        }
        let s = &mut ids.settings;
        if let Some(ms) = self.sso_token_lifetime_ms {
            s.token_lifetime = Duration::from_millis(ms.max(1_000));
        }
        if let Some(ms) = self.sso_refresh_lifetime_ms {
            s.refresh_lifetime = Duration::from_millis(ms);
        }
        if let Some(v) = self.sso_jwt {
            s.jwt = v;
        }
        if let Some(v) = self.sso_returns_refresh_token {
            s.returns_refresh_token = v;
        }
        if let Some(v) = self.sso_refresh_forms {
            s.refresh_forms = v;
        }
    }
}

/// The settings as `/admin/behaviour` shows them.
pub(super) fn shown(s: &IdsSettings) -> serde_json::Value {
    json!({
        "sso_token_lifetime_ms": s.token_lifetime.as_millis() as u64,
        "sso_refresh_lifetime_ms": s.refresh_lifetime.as_millis() as u64,
        "sso_jwt": s.jwt,
        "sso_returns_refresh_token": s.returns_refresh_token,
        "sso_refresh_forms": s.refresh_forms,
    })
}
