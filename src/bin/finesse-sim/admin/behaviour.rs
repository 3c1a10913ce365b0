//! `GET|PUT /admin/behaviour`: the switches of how the simulated Finesse behaves and which of
//! the shapes the fact sheet allows it speaks, changed at run time.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::Admin;
use crate::cluster::lock;
use crate::config::ErrorForm;

pub(super) async fn get_behaviour(State(st): State<Admin>) -> Response {
    let sso = super::sso::shown(&lock(&st.cluster.ids).settings);
    let t = lock(&st.cluster.truth);
    let b = &t.behaviour;
    let mut shown = json!({
        "arm_errors": b.arm_errors,
        "forced_logout_after_ms": b.forced_logout_after.map(|d| d.as_millis() as u64),
        "lockout_attempts": b.lockout_attempts,
        "lockout_window_ms": b.lockout_window.as_millis() as u64,
        "lockout_duration_ms": b.lockout_duration.as_millis() as u64,
        "systeminfo_ports": b.systeminfo_ports,
        "failover_state": b.failover_state,
        "media_notification_interrupt_action": b.media_notification_interrupt_action,
        "non_interruptible_reports_ignore": b.non_interruptible_reports_ignore,
        "lowercase_events": b.lowercase_events,
        "changed_dialog_wrapper": b.changed_dialog_wrapper,
        "push_namespace": b.push_namespace,
        "routable_error_data_one": b.routable_error_data_one,
        "refuse_signin": b.refuse_signin,
        "refuse_dialog_actions": b.refuse_dialog_actions,
        "refuse_state_changes": b.refuse_state_changes,
        "redirect_state_changes": b.redirect_state_changes,
        "media_per_mrd_node": b.media_per_mrd_node,
        "cisco_element_order": b.cisco_element_order,
        "ws_paths": b.ws_paths,
        "ws_see_other_path": b.ws_see_other_path,
    });
    if let (Some(all), Some(sso)) = (shown.as_object_mut(), sso.as_object()) {
        all.extend(sso.clone());
    }
    Json(shown).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BehaviourPatch {
    sso_token_lifetime_ms: Option<u64>,
    sso_refresh_lifetime_ms: Option<u64>,
    sso_jwt: Option<bool>,
    sso_returns_refresh_token: Option<bool>,
    sso_refresh_forms: Option<String>,
    sso_xmpp_stale_once: Option<bool>,
    arm_errors: Option<ErrorForm>,
    /// 0 disables the forced logout.
    forced_logout_after_ms: Option<u64>,
    lockout_attempts: Option<u32>,
    lockout_window_ms: Option<u64>,
    lockout_duration_ms: Option<u64>,
    systeminfo_ports: Option<bool>,
    failover_state: Option<String>,
    media_notification_interrupt_action: Option<bool>,
    non_interruptible_reports_ignore: Option<bool>,
    lowercase_events: Option<bool>,
    changed_dialog_wrapper: Option<bool>,
    push_namespace: Option<bool>,
    routable_error_data_one: Option<bool>,
    media_per_mrd_node: Option<bool>,
    cisco_element_order: Option<bool>,
    ws_paths: Option<String>,
    ws_see_other_path: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "some")]
    refuse_signin: Option<Option<crate::config::Refusal>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "some")]
    refuse_dialog_actions: Option<Option<crate::config::Refusal>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "some")]
    refuse_state_changes: Option<Option<crate::config::Refusal>>,
    redirect_state_changes: Option<bool>,
}

/// A present field, `null` included, as `Some`.
fn some<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

pub(super) async fn put_behaviour(
    State(st): State<Admin>,
    Json(p): Json<BehaviourPatch>,
) -> Response {
    if let Some(v) = p
        .ws_paths
        .as_deref()
        .filter(|v| !["both", "slash", "bare"].contains(v))
    {
        let body = format!("ws_paths {v:?}: one of both, slash, bare");
        return (axum::http::StatusCode::BAD_REQUEST, body).into_response();
    }
    let sso = super::sso::SsoPatch {
        sso_token_lifetime_ms: p.sso_token_lifetime_ms,
        sso_refresh_lifetime_ms: p.sso_refresh_lifetime_ms,
        sso_jwt: p.sso_jwt,
        sso_returns_refresh_token: p.sso_returns_refresh_token,
        sso_refresh_forms: p.sso_refresh_forms.clone(),
        sso_xmpp_stale_once: p.sso_xmpp_stale_once,
    };
    if let Err(body) = sso.check() {
        return (axum::http::StatusCode::BAD_REQUEST, body).into_response();
    }
    sso.apply(&mut lock(&st.cluster.ids));
    {
        let mut t = lock(&st.cluster.truth);
        let b = &mut t.behaviour;
        if let Some(v) = p.arm_errors {
            b.arm_errors = v;
        }
        if let Some(ms) = p.forced_logout_after_ms {
            b.forced_logout_after = (ms > 0).then(|| Duration::from_millis(ms));
        }
        if let Some(v) = p.lockout_attempts {
            b.lockout_attempts = v.max(1);
        }
        if let Some(ms) = p.lockout_window_ms {
            b.lockout_window = Duration::from_millis(ms);
        }
        if let Some(ms) = p.lockout_duration_ms {
            b.lockout_duration = Duration::from_millis(ms);
        }
        if let Some(v) = p.systeminfo_ports {
            b.systeminfo_ports = v;
        }
        if let Some(v) = p.failover_state {
            b.failover_state = v;
        }
        if let Some(v) = p.ws_paths {
            b.ws_paths = v;
        }
        if let Some(v) = p.ws_see_other_path {
            b.ws_see_other_path = Some(v);
        }
        let flags = [
            (
                p.media_notification_interrupt_action,
                &mut b.media_notification_interrupt_action,
            ),
            (
                p.non_interruptible_reports_ignore,
                &mut b.non_interruptible_reports_ignore,
            ),
            (p.lowercase_events, &mut b.lowercase_events),
            (p.changed_dialog_wrapper, &mut b.changed_dialog_wrapper),
            (p.push_namespace, &mut b.push_namespace),
            (p.routable_error_data_one, &mut b.routable_error_data_one),
            (p.media_per_mrd_node, &mut b.media_per_mrd_node),
            (p.cisco_element_order, &mut b.cisco_element_order),
        ];
        for (patch, slot) in flags {
            if let Some(v) = patch {
                *slot = v;
            }
        }
        if let Some(v) = p.refuse_signin {
            b.refuse_signin = v;
        }
        if let Some(v) = p.refuse_state_changes {
            b.refuse_state_changes = v;
        }
        if let Some(v) = p.redirect_state_changes {
            b.redirect_state_changes = v;
        }
        if let Some(v) = p.refuse_dialog_actions {
            b.refuse_dialog_actions = v;
        }
    }
    get_behaviour(State(st)).await
}
