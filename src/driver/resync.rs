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
//! Round trips: the Media GETs and the LISTs of every MRD go out together (one round trip);
//! a change is confirmed by the GET after Finesse's notification about it, not by polling.
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

/// How recent a login's proof of the credentials must be for a resync to send several
/// credential-bearing requests at once.
const PROVEN_FOR: Duration = Duration::from_secs(5);

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
    let wants = s.cfg.media.clone();
    // Every MRD's Media GET and Dialogs LIST depend on nothing but the session (the
    // subscriptions are confirmed, so what changes after a read arrives as a notification):
    // they go out together, one round trip for all. Only what a Media answer asks for (a
    // sign-in, a state change) waits for it. A LIST of an MRD the agent is not in is dropped.
    // But several requests at once each carry the credentials, and each refusal counts
    // toward the site's lockout: unless the login that just happened proved them, the first
    // goes alone, and the others only once it was not refused.
    let proven = s
        .memo
        .proven_at
        .take()
        .is_some_and(|at| at.elapsed() < PROVEN_FOR);
    let mut first = None;
    if !proven {
        if let Some(w) = wants.first() {
            first = Some(s.rest.media(&node, w.id).await?);
            s.shared.beat();
        }
    }
    let skip = usize::from(first.is_some());
    let (rest_of, lists) = {
        let (rest, node) = (&s.rest, &node);
        futures::future::join(
            futures::future::join_all(wants.iter().skip(skip).map(|w| rest.media(node, w.id))),
            futures::future::join_all(wants.iter().map(|w| rest.dialogs(node, w.id))),
        )
        .await
    };
    s.shared.beat();
    let medias = first.map(Ok).into_iter().chain(rest_of);
    for ((want, media), list) in wants.into_iter().zip(medias).zip(lists) {
        let eligible = sync_media(s, idx, &node, &want, sent, media?).await?;
        if !eligible {
            continue;
        }
        let list = list?;
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

/// Brings one MRD, whose Media read `media`, to the config's settings and state; publishes
/// its view. False when the agent is not eligible for it.
async fn sync_media(
    s: &mut Driver,
    idx: usize,
    node: &Url,
    want: &MediaConfig,
    sent: &mut Sent,
    mut media: Media,
) -> Result<bool, RestError> {
    let mrd = want.id;
    let asked = sign_in_of(want);
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
            let told = match s.rest.sign_in(node, asked, &rid).await {
                Ok(outcome) => Told::from(outcome),
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
            };
            s.shared.beat();
            media = confirm(s, node, mrd, sent, Some(&rid), told, |m| {
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
                let told = s
                    .rest
                    .set_state(node, mrd, want.state.as_str(), want.reason_code_id)
                    .await?;
                s.shared.beat();
                media = confirm(s, node, mrd, sent, None, told.into(), |m| {
                    m.state() == want.state.as_str() || !matches!(m.state(), "READY" | "NOT_READY")
                })
                .await?;
            }
        }
        MediaAction::CorrectSettings => {
            info!(mrd, limit = ?media.limit(), interrupt = ?media.interrupt_action, logout = ?media.dialog_logout_action, "settings drifted; signing in again");
            sent.signins.push(SigninReason::Drift);
            let rid = request_id();
            let outcome = s.rest.sign_in(node, asked, &rid).await?;
            s.shared.beat();
            if outcome == PutOutcome::AlreadyLoggedIn {
                info!(mrd, "agent already logged in: the expected answer");
            }
            // Finesse's word on it may be the asynchronous "already logged in" of `rid`.
            let told = outcome.into();
            let ok = |m: &Media| drifted(m, want).is_empty();
            media = confirm(s, node, mrd, sent, Some(&rid), told, ok).await?;
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
        let told = s.rest.set_state(node, mrd, state.as_str(), reason).await?;
        s.shared.beat();
        let ok = |m: &Media| m.state() == state.as_str();
        media = confirm(s, node, mrd, sent, None, told.into(), ok).await?;
    }
    // A sign-in lands routable; the API's "not routable" is restored.
    if s.unroutable.contains(&mrd) && media.is_routable() == Some(true) {
        info!(mrd, "restoring routable=false as set through the API");
        let told = s.rest.set_routable(node, mrd, false).await?;
        s.shared.beat();
        let ok = |m: &Media| m.is_routable() != Some(true);
        media = confirm(s, node, mrd, sent, None, told.into(), ok).await?;
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

/// How a change Finesse was asked for answered: at once, or later by a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    /// The answer said what happened (`already logged in`): read the Media at once.
    Now,
    /// Accepted (202): Finesse publishes the outcome; wait for its word before reading.
    Later,
}

impl From<PutOutcome> for Told {
    fn from(outcome: PutOutcome) -> Self {
        match outcome {
            PutOutcome::AlreadyLoggedIn => Told::Now,
            PutOutcome::Accepted => Told::Later,
        }
    }
}

/// True when `ev` is Finesse's word on `mrd` (its Media changed) or on request `rid`.
fn concerns(ev: &LinkEvent, mrd: u32, rid: Option<&str>) -> bool {
    let LinkEvent::Update { update, .. } = ev else {
        return false;
    };
    match &update.notification {
        Notification::Media(m) => m.mrd() == Some(mrd),
        Notification::Errors(_) => rid.is_some_and(|r| update.request_id.trim() == r),
        _ => false,
    }
}

/// Reads the media until `ok` holds (bounded); returns the last one read. Every read is a
/// GET (a Media notification may leave settings out), but none is wasted: after a change
/// that Finesse answers later (`told`), and between reads, the link is read until Finesse's
/// notification about this MRD (or an asynchronous refusal of `rid`, which ends the wait)
/// arrives, for at most [`CONFIRM_STEP`]. Events read are held for afterwards.
async fn confirm(
    s: &mut Driver,
    node: &Url,
    mrd: u32,
    sent: &mut Sent,
    rid: Option<&str>,
    told: Told,
    ok: impl Fn(&Media) -> bool,
) -> Result<Media, RestError> {
    if told == Told::Later {
        wait_for_word(s, mrd, sent, rid).await;
    }
    let mut media = s.rest.media(node, mrd).await?;
    s.shared.beat();
    for _ in 0..CONFIRM_TRIES {
        if ok(&media) || rid.is_some_and(|r| sent.refusal(r).is_some()) {
            break;
        }
        wait_for_word(s, mrd, sent, rid).await;
        media = s.rest.media(node, mrd).await?;
        s.shared.beat();
    }
    Ok(media)
}

/// Reads the link for at most [`CONFIRM_STEP`], until an event about `mrd` or `rid`.
async fn wait_for_word(s: &mut Driver, mrd: u32, sent: &mut Sent, rid: Option<&str>) {
    let until = tokio::time::Instant::now() + CONFIRM_STEP;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(until) => return,
            ev = s.link.next() => match ev {
                Some(ev) => {
                    let word = concerns(&ev, mrd, rid);
                    sent.held.push(ev);
                    if word {
                        return;
                    }
                }
                None => return,
            },
        }
    }
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
