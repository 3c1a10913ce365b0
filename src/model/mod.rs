//! The agent's local view (media per MRD, dialogs by id) and the pure decisions the resync
//! makes from it: whether a media needs a sign-in, a settings correction or a state change,
//! and how a Dialog LIST differs from what the daemon holds. No I/O here.

use std::collections::BTreeMap;

use crate::config::{DesiredState, MediaConfig};
use crate::finesse::model::{Dialog, Media};
use crate::finesse::rest::SignIn;
use crate::vocab::DialogAction;

pub use crate::view::{DialogDiff, DialogView, MediaView};

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

/// The actions allowed in a nonvoice dialog state (facts file: OFFERED→ACCEPT is Cisco's;
/// the rest is the documented inference).
pub fn allowed_actions(state: &str) -> &'static [DialogAction] {
    use DialogAction::*;
    match state {
        "OFFERED" => &[Accept],
        "ACCEPTED" => &[Start, Close, Transfer],
        "ACTIVE" => &[Pause, WrapUp, Close, Transfer],
        "PAUSED" => &[Resume, Close, Transfer],
        "WRAPPING_UP" | "UNKNOWN" => &[Close],
        _ => &[],
    }
}

/// The sign-in settings of `want`, as the REST client sends them.
pub fn sign_in_of(want: &MediaConfig) -> SignIn {
    SignIn {
        mrd: want.id,
        max_dialog_limit: want.max_dialog_limit,
        interrupt_action: want.interrupt_action,
        dialog_logout_action: want.dialog_logout_action,
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
        state: DesiredState,
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
    let wrong = state != want.state.as_str()
        || (want.state == DesiredState::NotReady && reason != want.reason_code_id);
    if idle && wrong {
        MediaAction::SetState {
            state: want.state,
            reason: want.reason_code_id,
        }
    } else {
        MediaAction::Nothing
    }
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
mod tests;
