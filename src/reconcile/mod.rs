//! The agent's local view (media per MRD, dialogs by id) and the pure decisions the resync
//! makes from it: whether a media needs a sign-in, a settings correction or a state change,
//! and how a Dialog LIST differs from what the daemon holds. No I/O here.

use std::collections::BTreeMap;

use crate::config::{DesiredState, MediaConfig};
use crate::finesse::model::{Dialog, Media};
use crate::finesse::rest::SignIn;
use crate::vocab::DialogAction;
pub use crate::vocab::Setting;

pub use crate::view::{DialogDiff, DialogView, Drift, MediaView};

impl MediaView {
    /// The view of a Media document, judged against the desired settings.
    pub fn from_media(id: u32, m: &Media, want: Option<&MediaConfig>) -> Self {
        let fields = want.map(|w| drifted(m, w)).unwrap_or_default();
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
            eligible: m.is_eligible(),
            interruptible: m.is_interruptible(),
            drift: if fields.is_empty() {
                Drift::None
            } else {
                Drift::Drifted
            },
            drift_fields: fields,
            signin: None,
            desired_state: want.map(|w| w.state.as_str().to_owned()),
            desired_reason_code_id: want.and_then(|w| w.reason_code_id),
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
                .first()
                .map(|p| trimmed(p.state.clone()))
                .unwrap_or_default(),
            actions: d
                .participants
                .participant
                .into_iter()
                .next()
                .map(|p| {
                    p.actions
                        .action
                        .into_iter()
                        .map(|a| a.trim().to_ascii_uppercase())
                        .filter(|a| !a.is_empty())
                        .collect()
                })
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

/// True when `action` may be sent for `d`: the participant's `<actions>` list decides when
/// Finesse gave one; the state table above is only the fallback.
pub fn may(d: &DialogView, action: DialogAction) -> bool {
    if d.actions.is_empty() {
        allowed_actions(&d.state).contains(&action)
    } else {
        d.actions.iter().any(|a| a == action.as_str())
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

/// The text of an optional element, or `None` when it is absent or empty (unknown).
fn known(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The sign-in settings a Media document shows differing from the config. A setting the
/// document leaves out (Cisco's Media notification has no `interruptAction`) is unknown, not
/// drifted; `interruptAction` is not compared for an MRD that is not interruptible (Finesse
/// reports IGNORE for it whatever the sign-in asked for).
pub fn drifted(m: &Media, want: &MediaConfig) -> Vec<Setting> {
    let mut out = Vec::new();
    if known(&m.max_dialog_limit).is_some() && m.limit() != Some(want.max_dialog_limit) {
        out.push(Setting::MaxDialogLimit);
    }
    if m.is_interruptible() != Some(false) {
        if let Some(a) = known(&m.interrupt_action) {
            if !a.eq_ignore_ascii_case(want.interrupt_action.as_str()) {
                out.push(Setting::InterruptAction);
            }
        }
    }
    if let Some(a) = known(&m.dialog_logout_action) {
        if !a.eq_ignore_ascii_case(want.dialog_logout_action.as_str()) {
            out.push(Setting::DialogLogoutAction);
        }
    }
    out
}

/// True when any sign-in setting the document shows differs from the config.
pub fn settings_drift(m: &Media, want: &MediaConfig) -> bool {
    !drifted(m, want).is_empty()
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
    /// The agent is in no skill group of this MRD (the GET has no `state`): never sign in.
    Ineligible,
}

/// A drift correction that did not take: the settings still differed after it. It is not
/// sent again until the config, the node or a fresh sign-in changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persistent {
    /// On this node.
    pub node: usize,
    /// For these settings asked.
    pub asked: SignIn,
    /// The settings that still differed.
    pub fields: Vec<Setting>,
}

impl Persistent {
    /// True when it was found on `node` for these settings (so it still holds).
    pub fn applies(&self, node: usize, asked: &SignIn) -> bool {
        self.node == node && &self.asked == asked
    }
}

/// [`decide`], remembering a correction that did not take on `node`: it is not sent again
/// (every resync would otherwise sign in once more, for ever).
pub fn decide_remembering(
    m: &Media,
    want: &MediaConfig,
    node: usize,
    remembered: Option<&Persistent>,
) -> MediaAction {
    match decide(m, want) {
        MediaAction::CorrectSettings
            if remembered.is_some_and(|p| p.applies(node, &sign_in_of(want))) =>
        {
            MediaAction::Nothing
        }
        other => other,
    }
}

/// Decides one MRD's action from its Media GET.
pub fn decide(m: &Media, want: &MediaConfig) -> MediaAction {
    if !m.is_eligible() {
        return MediaAction::Ineligible;
    }
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
