//! The agent's local view (media per MRD, dialogs by id) and the pure decisions the resync
//! makes from it: whether a media needs a sign-in, a settings correction or a state change,
//! and how a Dialog LIST differs from what the daemon holds. No I/O here.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::MediaConfig;
use crate::finesse::model::{Dialog, Media};

/// One MRD as the daemon knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaView {
    /// MRD id.
    pub id: u32,
    /// State (unknown values kept).
    pub state: String,
    /// Reason code.
    pub reason_code_id: Option<u32>,
    /// Sign-in setting.
    pub max_dialog_limit: Option<u32>,
    /// Sign-in setting.
    pub interrupt_action: Option<String>,
    /// Sign-in setting.
    pub dialog_logout_action: Option<String>,
    /// Routable.
    pub routable: Option<bool>,
    /// Settings differ from the config.
    pub drift: bool,
}

impl MediaView {
    /// The view of a Media document, judged against the desired settings.
    pub fn from_media(id: u32, m: &Media, want: Option<&MediaConfig>) -> Self {
        Self {
            id,
            state: m.state().to_owned(),
            reason_code_id: m.reason(),
            max_dialog_limit: m.limit(),
            interrupt_action: m.interrupt_action.as_deref().map(|s| s.trim().to_owned()),
            dialog_logout_action: m
                .dialog_logout_action
                .as_deref()
                .map(|s| s.trim().to_owned()),
            routable: m.is_routable(),
            drift: want.is_some_and(|w| settings_drift(m, w)),
        }
    }
}

/// One dialog as the daemon knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DialogView {
    /// Dialog id.
    pub id: String,
    /// MRD id.
    pub media_id: u32,
    /// Dialog state.
    pub state: String,
    /// The agent participant's state.
    pub participant_state: String,
    /// Call variables by name.
    pub call_variables: BTreeMap<String, String>,
}

impl DialogView {
    /// The view of a Dialog document (`fallback_mrd` when it names none).
    /// The document's text moves into the view (no copies: this is the notification path).
    pub fn from_dialog(d: Dialog, fallback_mrd: u32) -> Self {
        let media_id = d.mrd().unwrap_or(fallback_mrd);
        Self {
            id: trimmed(d.id),
            media_id,
            state: trimmed(d.state),
            participant_state: d
                .participants
                .participant
                .into_iter()
                .next()
                .map(|p| trimmed(p.state))
                .unwrap_or_default(),
            call_variables: d
                .media_properties
                .callvariables
                .variables
                .into_iter()
                .map(|v| (trimmed(v.name), v.value))
                .collect(),
        }
    }
}

/// `s` without surrounding whitespace, reusing its buffer when there is none.
fn trimmed(s: String) -> String {
    if s.trim().len() == s.len() {
        s
    } else {
        s.trim().to_owned()
    }
}

/// The actions the local API accepts.
pub const ACTIONS: [&str; 7] = [
    "ACCEPT", "START", "PAUSE", "RESUME", "WRAP_UP", "CLOSE", "TRANSFER",
];

/// The actions allowed in a nonvoice dialog state (facts file: OFFERED→ACCEPT is Cisco's;
/// the rest is the documented inference).
pub fn allowed_actions(state: &str) -> &'static [&'static str] {
    match state {
        "OFFERED" => &["ACCEPT"],
        "ACCEPTED" => &["START", "CLOSE", "TRANSFER"],
        "ACTIVE" => &["PAUSE", "WRAP_UP", "CLOSE", "TRANSFER"],
        "PAUSED" => &["RESUME", "CLOSE", "TRANSFER"],
        "WRAPPING_UP" | "UNKNOWN" => &["CLOSE"],
        _ => &[],
    }
}

/// States in which the agent is not (or no longer) signed in on this node.
pub fn needs_sign_in(state: &str) -> bool {
    matches!(state, "" | "LOGOUT" | "WORK" | "WORK_NOT_READY")
}

/// True when any of the three sign-in settings differs from the config.
pub fn settings_drift(m: &Media, want: &MediaConfig) -> bool {
    m.limit() != Some(want.max_dialog_limit)
        || m.interrupt_action.as_deref().map(str::trim) != Some(want.interrupt_action.as_str())
        || m.dialog_logout_action.as_deref().map(str::trim)
            != Some(want.dialog_logout_action.as_str())
}

/// What the resync must do for one MRD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaAction {
    /// Signed out (or on a node it never signed in on): sign in, then set the desired state.
    SignIn,
    /// Signed in with drifted settings: sign in again; "already logged in" is the answer.
    CorrectSettings,
    /// Signed in, settings right, READY/NOT_READY not as desired.
    SetState {
        /// READY or NOT_READY.
        state: String,
        /// With NOT_READY.
        reason: Option<u32>,
    },
    /// Nothing to do (including while the agent works on dialogs).
    Nothing,
}

/// Decides one MRD's action from its Media GET.
pub fn decide(m: &Media, want: &MediaConfig) -> MediaAction {
    let state = m.state();
    if needs_sign_in(state) {
        return MediaAction::SignIn;
    }
    if settings_drift(m, want) {
        return MediaAction::CorrectSettings;
    }
    desired_state(state, m.reason(), want)
}

/// The state change needed, if the agent is idle in the wrong READY/NOT_READY state.
pub fn desired_state(state: &str, reason: Option<u32>, want: &MediaConfig) -> MediaAction {
    let idle = matches!(state, "READY" | "NOT_READY");
    let wrong = state != want.state || (want.state == "NOT_READY" && reason != want.reason_code_id);
    if idle && wrong {
        MediaAction::SetState {
            state: want.state.clone(),
            reason: want.reason_code_id,
        }
    } else {
        MediaAction::Nothing
    }
}

/// How a LIST differs from the local dialogs of one MRD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DialogDiff {
    /// In the LIST, not held.
    pub added: Vec<DialogView>,
    /// Held, not in the LIST.
    pub removed: Vec<DialogView>,
    /// In both, with another state.
    pub changed: Vec<DialogView>,
}

/// Compares the held dialogs of `mrd` with the LIST.
pub fn diff(local: &BTreeMap<String, DialogView>, mrd: u32, list: &[DialogView]) -> DialogDiff {
    let mut d = DialogDiff::default();
    for item in list {
        match local.get(&item.id) {
            None => d.added.push(item.clone()),
            Some(held) if held != item => d.changed.push(item.clone()),
            Some(_) => {}
        }
    }
    for held in local.values().filter(|h| h.media_id == mrd) {
        if !list.iter().any(|i| i.id == held.id) {
            d.removed.push(held.clone());
        }
    }
    d
}

/// Applies a diff.
pub fn apply(local: &mut BTreeMap<String, DialogView>, d: &DialogDiff) {
    for r in &d.removed {
        local.remove(&r.id);
    }
    for a in d.added.iter().chain(&d.changed) {
        local.insert(a.id.clone(), a.clone());
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
