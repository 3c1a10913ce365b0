//! The resync after every new session, failover or return to service (Finesse's recovery
//! contract for task routing), per configured MRD:
//!
//! 1. Media GET.
//! 2. Signed out (LOGOUT, WORK, WORK_NOT_READY, absent) → sign in with the config's settings.
//!    Signed in with drifted settings → sign in again; "agent already logged in" (code 1,
//!    as a 400 body or as an async notification) is the expected answer. At most one
//!    correction per resync, so a Finesse that keeps drifting cannot cause a sign-in loop.
//! 3. GET again until the settings match (bounded), then restore the desired READY/NOT_READY
//!    state if the agent is idle in the other one.
//! 4. Dialog LIST, diffed against the held dialogs: added, removed, changed.

use std::time::{Duration, SystemTime};

use reqwest::Url;
use tracing::{info, warn};

use super::Driver;
use crate::config::DesiredState;
use crate::finesse::model::Media;
use crate::finesse::rest::{PutOutcome, RestError};
use crate::machine::Input;
use crate::model::{
    self, DialogView, MediaAction, MediaView, needs_sign_in, settings_drift, sign_in_of,
};
use crate::vocab::{EventKind, LinkKind, SigninReason};

/// How often, and how many times, a Media GET is repeated while waiting for an outcome.
const CONFIRM_STEP: Duration = Duration::from_millis(100);
const CONFIRM_TRIES: u32 = 50;

/// The sign-ins a resync sent, whatever its outcome (the machine counts them).
#[derive(Debug, Default)]
struct Sent {
    /// Sign-ins sent before this resync.
    before: u64,
    /// Why each sign-in of this resync was sent.
    signins: Vec<SigninReason>,
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
}

async fn run(s: &mut Driver, idx: usize, sent: &mut Sent) -> Result<(), RestError> {
    let node = s.cfg.nodes[idx].clone();
    let (mut added, mut removed, mut changed) = (0usize, 0usize, 0usize);
    for want in s.cfg.media.clone() {
        let mut media = s.rest.media(&node, want.id).await?;
        s.shared.beat();
        match model::decide(&media, &want) {
            MediaAction::SignIn => {
                info!(mrd = want.id, state = media.state(), "signing in");
                sent.sign_in(media.state());
                s.rest.sign_in(&node, sign_in_of(&want)).await?;
                s.shared.beat();
                media = confirm(s, &node, want.id, |m| !needs_sign_in(m.state())).await?;
                // A fresh sign-in lands NOT_READY with no reason, whatever work the agent
                // holds (the MRD may then read ACTIVE): set the desired base state now.
                if want.state == DesiredState::Ready || want.reason_code_id.is_some() {
                    info!(mrd = want.id, to = %want.state, "setting the desired state after sign-in");
                    s.rest
                        .set_state(&node, want.id, want.state.as_str(), want.reason_code_id)
                        .await?;
                    s.shared.beat();
                    media = confirm(s, &node, want.id, |m| {
                        m.state() == want.state.as_str()
                            || !matches!(m.state(), "READY" | "NOT_READY")
                    })
                    .await?;
                }
            }
            MediaAction::CorrectSettings => {
                info!(mrd = want.id, limit = ?media.limit(), interrupt = ?media.interrupt_action, logout = ?media.dialog_logout_action, "settings drifted; signing in again");
                sent.signins.push(SigninReason::Drift);
                let outcome = s.rest.sign_in(&node, sign_in_of(&want)).await?;
                s.shared.beat();
                if outcome == PutOutcome::AlreadyLoggedIn {
                    info!(
                        mrd = want.id,
                        "agent already logged in: the expected answer"
                    );
                }
                media = confirm(s, &node, want.id, |m| !settings_drift(m, &want)).await?;
                if settings_drift(&media, &want) {
                    warn!(
                        mrd = want.id,
                        "settings still differ after the correction; not retrying in this resync"
                    );
                }
            }
            MediaAction::SetState { .. } | MediaAction::Nothing => {}
        }
        if let MediaAction::SetState { state, reason } =
            model::desired_state(media.state(), media.reason(), &want)
        {
            info!(mrd = want.id, from = media.state(), to = %state, "restoring the desired state");
            s.rest
                .set_state(&node, want.id, state.as_str(), reason)
                .await?;
            s.shared.beat();
            media = confirm(s, &node, want.id, |m| m.state() == state.as_str()).await?;
        }
        s.shared
            .set_media(MediaView::from_media(want.id, &media, Some(&want)));

        let list = s.rest.dialogs(&node, want.id).await?;
        s.shared.beat();
        let views: Vec<DialogView> = list
            .into_iter()
            .map(|d| DialogView::from_dialog(d, want.id))
            .collect();
        let d = s.shared.with(|v| model::diff(&v.dialogs, want.id, &views));
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

/// GETs the media until `ok` holds (bounded); returns the last one read.
async fn confirm(
    s: &Driver,
    node: &Url,
    mrd: u32,
    ok: impl Fn(&Media) -> bool,
) -> Result<Media, RestError> {
    let mut media = s.rest.media(node, mrd).await?;
    s.shared.beat();
    for _ in 0..CONFIRM_TRIES {
        if ok(&media) {
            break;
        }
        tokio::time::sleep(CONFIRM_STEP).await;
        media = s.rest.media(node, mrd).await?;
        s.shared.beat();
    }
    Ok(media)
}

impl Driver {
    /// Runs the resync on node `idx`, as the machine's answer.
    pub(super) async fn resync(&mut self, idx: usize, signins_before: u64) -> Input {
        let mut sent = Sent {
            before: signins_before,
            signins: Vec::new(),
        };
        let shutdown = self.shutdown.clone();
        let result = tokio::select! {
            () = shutdown.cancelled() => return Input::Stop,
            r = run(self, idx, &mut sent) => r,
        };
        let signins = sent.signins;
        match result {
            Ok(()) => Input::Resynced { signins },
            Err(e) => {
                warn!(error = %e, "resync failed");
                if matches!(e, RestError::Transport(_)) {
                    self.shared.set_link(LinkKind::Rest, false, Some(e.cause()));
                }
                Input::ResyncFailed {
                    cause: e.cause(),
                    malformed: matches!(e, RestError::Malformed(_)),
                    signins,
                }
            }
        }
    }
}
