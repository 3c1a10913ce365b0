//! The resync after every new session, failover or return to service (Finesse's recovery
//! contract for task routing), per configured MRD:
//!
//! 1. Media GET. An MRD without a `state` is one the agent has no skill group in: it is shown
//!    as not eligible and never signed in.
//! 2. Signed out (LOGOUT, WORK, WORK_NOT_READY) → sign in with the config's settings. Signed
//!    in with drifted settings → sign in again; "agent already logged in" is the expected
//!    answer. At most one correction per MRD per resync, and one that does not take is
//!    remembered as persistent drift and not repeated (see [`super::memo`]). A sign-in refused
//!    with any other ARM error (at once, or asynchronously with its `requestId`) is shown in
//!    the state and retried on the recovery backoff.
//! 3. GET again until the outcome shows (bounded), then restore the desired READY/NOT_READY
//!    state if the agent is idle in the other one.
//! 4. Dialog LIST, diffed against the held dialogs: added, removed, changed.
//!
//! Notifications that arrive meanwhile are held and handed back to the link afterwards, in
//! order, so nothing offered or closed mid-resync is lost.

use std::time::{Duration, SystemTime};

use reqwest::Url;
use tracing::{info, warn};

use super::Driver;
use crate::config::{DesiredState, MediaConfig};
use crate::finesse::model::{Media, Notification};
use crate::finesse::rest::{PutOutcome, RestError, request_id};
use crate::machine::Input;
use crate::reconcile::Persistent;
use crate::reconcile::{self, DialogView, Drift, MediaAction, MediaView, drifted, sign_in_of};
use crate::vocab::{EventKind, SigninReason};
use crate::xmpp::link::LinkEvent;

/// How often, and how many times, a Media GET is repeated while waiting for an outcome.
const CONFIRM_STEP: Duration = Duration::from_millis(100);
const CONFIRM_TRIES: u32 = 50;

/// What a resync sent and met, whatever its outcome (the machine counts the sign-ins).
#[derive(Debug, Default)]
struct Sent {
    /// Sign-ins sent before this resync.
    before: u64,
    /// Why each sign-in of this resync was sent.
    signins: Vec<SigninReason>,
    /// Link events read while waiting, handed back afterwards.
    held: Vec<LinkEvent>,
}

impl Sent {
    /// Records a sign-in for an MRD that read `state`.
    fn sign_in(&mut self, state: &str) {
        let reason = match state {
            _ if self.before + self.signins.len() as u64 == 0 => SigninReason::Initial,
            "LOGOUT" => SigninReason::Logout,
            _ => SigninReason::Failover,
        };
        self.signins.push(reason);
    }

    /// The ARM constant of an asynchronous refusal of the request `rid`, among the held
    /// events.
    fn refusal(&self, rid: &str) -> Option<String> {
        self.held.iter().find_map(|ev| match ev {
            LinkEvent::Update { update, .. } if update.request_id.trim() == rid => {
                match &update.notification {
                    Notification::Errors(errors) => errors
                        .iter()
                        .find(|e| !e.is_already_logged_in())
                        .map(|e| e.constant().to_owned()),
                    _ => None,
                }
            }
            _ => None,
        })
    }
}

async fn run(s: &mut Driver, idx: usize, sent: &mut Sent) -> Result<(), RestError> {
    let node = s.cfg.nodes[idx].clone();
    let (mut added, mut removed, mut changed) = (0usize, 0usize, 0usize);
    for want in s.cfg.media.clone() {
        let eligible = sync_media(s, idx, &node, &want, sent).await?;
        if !eligible {
            continue;
        }
        let list = s.rest.dialogs(&node, want.id).await?;
        s.shared.beat();
        let views: Vec<DialogView> = list
            .into_iter()
            .map(|d| DialogView::from_dialog(d, want.id))
            .collect();
        let d = s
            .shared
            .with(|v| reconcile::diff(&v.dialogs, want.id, &views));
        added += d.added.len();
        removed += d.removed.len();
        changed += d.changed.len();
        s.shared.apply_diff(&d);
        // Dialogs a resync brings back are the likeliest zombies: check their sessions.
        if let Some(watch) = &s.watcher {
            for a in &d.added {
                watch(a);
            }
        }
    }
    s.shared
        .with(|v| v.last_resync_at = Some(SystemTime::now()));
    info!(added, removed, changed, "resync completed");
    s.shared.events.publish(
        EventKind::ResyncCompleted,
        serde_json::json!({ "added": added, "removed": removed, "changed": changed }),
    );
    Ok(())
}

/// Brings one MRD to the config's settings and state; publishes its view. False when the
/// agent is not eligible for it.
async fn sync_media(
    s: &mut Driver,
    idx: usize,
    node: &Url,
    want: &MediaConfig,
    sent: &mut Sent,
) -> Result<bool, RestError> {
    let mrd = want.id;
    let asked = sign_in_of(want);
    let mut media = s.rest.media(node, mrd).await?;
    s.shared.beat();
    let remembered = s.memo.persistent.get(&mrd);
    match reconcile::decide_remembering(&media, want, idx, remembered) {
        MediaAction::Ineligible => {
            if s.memo.warned_ineligible.insert(mrd) {
                warn!(
                    mrd,
                    "the agent is in no skill group of this MRD (its Media has no state): not signing in"
                );
            }
            s.memo.refused.remove(&mrd);
            s.shared
                .set_media(MediaView::from_media(mrd, &media, Some(want)));
            return Ok(false);
        }
        MediaAction::SignIn => {
            info!(mrd, state = media.state(), "signing in");
            s.memo.persistent.remove(&mrd);
            sent.sign_in(media.state());
            let rid = request_id();
            match s.rest.sign_in(node, asked, &rid).await {
                Ok(_) => {}
                Err(RestError::Client { errors, .. })
                    if errors
                        .iter()
                        .any(|e| e.is_arm() && !e.is_already_logged_in()) =>
                {
                    let constant = errors
                        .iter()
                        .find(|e| !e.is_already_logged_in())
                        .map(|e| e.constant().to_owned())
                        .unwrap_or_default();
                    return refused(s, mrd, &media, want, &constant);
                }
                Err(e) => return Err(e),
            }
            s.shared.beat();
            media = confirm(s, node, mrd, sent, Some(&rid), |m| {
                !reconcile::needs_sign_in(m.state())
            })
            .await?;
            if reconcile::needs_sign_in(media.state()) {
                if let Some(constant) = sent.refusal(&rid) {
                    return refused(s, mrd, &media, want, &constant);
                }
                // The answer may still come: an asynchronous refusal of `rid` is then
                // recognised in steady state.
                s.memo.pending.insert(rid, mrd);
            } else if s.memo.refused.remove(&mrd).is_some() {
                info!(mrd, "signed in after an earlier refusal");
            }
            // A fresh sign-in lands NOT_READY with no reason, whatever work the agent
            // holds (the MRD may then read ACTIVE): set the desired base state now.
            if want.state == DesiredState::Ready || want.reason_code_id.is_some() {
                info!(mrd, to = %want.state, "setting the desired state after sign-in");
                s.rest
                    .set_state(node, mrd, want.state.as_str(), want.reason_code_id)
                    .await?;
                s.shared.beat();
                media = confirm(s, node, mrd, sent, None, |m| {
                    m.state() == want.state.as_str() || !matches!(m.state(), "READY" | "NOT_READY")
                })
                .await?;
            }
        }
        MediaAction::CorrectSettings => {
            info!(mrd, limit = ?media.limit(), interrupt = ?media.interrupt_action, logout = ?media.dialog_logout_action, "settings drifted; signing in again");
            sent.signins.push(SigninReason::Drift);
            let outcome = s.rest.sign_in(node, asked, &request_id()).await?;
            s.shared.beat();
            if outcome == PutOutcome::AlreadyLoggedIn {
                info!(mrd, "agent already logged in: the expected answer");
            }
            media = confirm(s, node, mrd, sent, None, |m| drifted(m, want).is_empty()).await?;
            let fields = drifted(&media, want);
            if !fields.is_empty() {
                warn!(
                    mrd,
                    fields = ?fields,
                    "settings still differ after the correction: persistent drift, not corrected again until the config, the node or a fresh sign-in changes"
                );
                s.memo.persistent.insert(
                    mrd,
                    Persistent {
                        node: idx,
                        asked,
                        fields,
                    },
                );
            }
        }
        MediaAction::SetState { .. } | MediaAction::Nothing => {}
    }
    if let MediaAction::SetState { state, reason } =
        reconcile::desired_state(media.state(), media.reason(), want)
    {
        info!(mrd, from = media.state(), to = %state, "restoring the desired state");
        s.rest.set_state(node, mrd, state.as_str(), reason).await?;
        s.shared.beat();
        media = confirm(s, node, mrd, sent, None, |m| m.state() == state.as_str()).await?;
    }
    // A sign-in lands routable; the API's "not routable" is restored.
    if s.unroutable.contains(&mrd) && media.is_routable() == Some(true) {
        info!(mrd, "restoring routable=false as set through the API");
        s.rest.set_routable(node, mrd, false).await?;
        s.shared.beat();
        media = confirm(s, node, mrd, sent, None, |m| m.is_routable() != Some(true)).await?;
    }
    publish(s, idx, mrd, &media, want);
    Ok(true)
}

/// After a maintenance-mode migration, Cisco asks every client signed in to an MRD to send
/// NOT_READY with reason code 50045 (`[recovery] maintenance_reason_code_id`; 0 = off). It
/// is a marker: Finesse does not change the agent's state for it, and neither does the
/// desired state here.
async fn mark_maintenance(s: &mut Driver, idx: usize) -> Result<(), RestError> {
    let reason = s.cfg.recovery.maintenance_reason_code_id;
    if reason == 0 {
        return Ok(());
    }
    let node = s.cfg.nodes[idx].clone();
    let signed_in: Vec<u32> = s.shared.with(|v| {
        v.media
            .values()
            .filter(|m| m.eligible && !reconcile::needs_sign_in(&m.state))
            .map(|m| m.id)
            .collect()
    });
    for mrd in signed_in {
        info!(
            mrd,
            reason, "maintenance migration done: sending the marker"
        );
        s.rest
            .set_state(&node, mrd, "NOT_READY", Some(reason))
            .await?;
        s.shared.beat();
    }
    Ok(())
}

/// Publishes an MRD's view with what the driver remembers of it. A setting the document
/// leaves out (Cisco's Media notification has no `interruptAction`) keeps its last known value.
pub(super) fn publish(s: &Driver, idx: usize, mrd: u32, media: &Media, want: &MediaConfig) {
    let mut view = MediaView::from_media(mrd, media, Some(want));
    if let Some(old) = s.shared.with(|v| v.media.get(&mrd).cloned()) {
        view.max_dialog_limit = view.max_dialog_limit.or(old.max_dialog_limit);
        view.interrupt_action = view.interrupt_action.or(old.interrupt_action);
        view.dialog_logout_action = view.dialog_logout_action.or(old.dialog_logout_action);
        view.interruptible = view.interruptible.or(old.interruptible);
    }
    if let Some(p) = s.memo.persistent(mrd, idx, &sign_in_of(want)) {
        view.drift = Drift::Persistent;
        view.drift_fields = p.fields.clone();
    }
    view.signin = s.memo.refused.get(&mrd).cloned();
    s.shared.set_media(view);
}

/// A sign-in Finesse refused: remembered, shown, and left for the backoff's retry.
fn refused(
    s: &mut Driver,
    mrd: u32,
    media: &Media,
    want: &MediaConfig,
    constant: &str,
) -> Result<bool, RestError> {
    warn!(
        mrd,
        error = constant,
        "Finesse refused the sign-in; retrying on the recovery backoff"
    );
    s.memo.refuse(mrd, constant);
    let mut view = MediaView::from_media(mrd, media, Some(want));
    view.signin = s.memo.refused.get(&mrd).cloned();
    s.shared.set_media(view);
    Ok(true)
}

/// GETs the media until `ok` holds (bounded), reading the link meanwhile so that an
/// asynchronous refusal of `rid` ends the wait; returns the last one read.
async fn confirm(
    s: &mut Driver,
    node: &Url,
    mrd: u32,
    sent: &mut Sent,
    rid: Option<&str>,
    ok: impl Fn(&Media) -> bool,
) -> Result<Media, RestError> {
    let mut media = s.rest.media(node, mrd).await?;
    s.shared.beat();
    for _ in 0..CONFIRM_TRIES {
        if ok(&media) || rid.is_some_and(|r| sent.refusal(r).is_some()) {
            break;
        }
        let until = tokio::time::Instant::now() + CONFIRM_STEP;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => break,
                ev = s.link.next() => match ev {
                    Some(ev) => sent.held.push(ev),
                    None => break,
                },
            }
        }
        media = s.rest.media(node, mrd).await?;
        s.shared.beat();
    }
    Ok(media)
}

impl Driver {
    /// Runs the resync on node `idx`, as the machine's answer.
    pub(super) async fn resync(
        &mut self,
        idx: usize,
        signins_before: u64,
        maintenance: bool,
    ) -> Input {
        let mut sent = Sent {
            before: signins_before,
            ..Sent::default()
        };
        let shutdown = self.shutdown.clone();
        let result = tokio::select! {
            () = shutdown.cancelled() => return Input::Stop,
            r = async {
                run(self, idx, &mut sent).await?;
                if maintenance {
                    mark_maintenance(self, idx).await?;
                }
                Ok::<(), RestError>(())
            } => r,
        };
        self.link.hand_back(std::mem::take(&mut sent.held));
        let signins = sent.signins;
        match result {
            Ok(()) => Input::Resynced {
                signins,
                refused: !self.memo.refused.is_empty(),
            },
            Err(e) => {
                warn!(error = %e, "resync failed");
                Input::ResyncFailed {
                    cause: e.cause(),
                    malformed: matches!(e, RestError::Malformed(_)),
                    signins,
                }
            }
        }
    }
}
