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

use super::Supervisor;
use super::state::Phase;
use crate::finesse::model::Media;
use crate::finesse::rest::{PutOutcome, RestError};
use crate::model::{self, DialogView, MediaAction, MediaView, needs_sign_in, settings_drift};

/// How often, and how many times, a Media GET is repeated while waiting for an outcome.
const CONFIRM_STEP: Duration = Duration::from_millis(100);
const CONFIRM_TRIES: u32 = 50;

pub(super) async fn run(s: &mut Supervisor, idx: usize) -> Result<(), RestError> {
    let node = s.cfg.nodes[idx].clone();
    let (mut added, mut removed, mut changed) = (0usize, 0usize, 0usize);
    for want in s.cfg.media.clone() {
        let mut media = s.rest.media(&node, want.id).await?;
        match model::decide(&media, &want) {
            MediaAction::SignIn => {
                info!(mrd = want.id, state = media.state(), "signing in");
                let first = s.shared.with(|v| {
                    v.counters.signins += 1;
                    v.counters.signins == 1
                });
                let reason = match media.state() {
                    _ if first => "initial",
                    "LOGOUT" => "logout",
                    _ => "failover",
                };
                s.shared.metrics.signin(reason);
                s.rest.sign_in(&node, &want).await?;
                media = confirm(s, &node, want.id, |m| !needs_sign_in(m.state())).await?;
                // A fresh sign-in lands NOT_READY with no reason, whatever work the agent
                // holds (the MRD may then read ACTIVE): set the desired base state now.
                if want.state == "READY" || want.reason_code_id.is_some() {
                    info!(mrd = want.id, to = %want.state, "setting the desired state after sign-in");
                    s.rest
                        .set_state(&node, want.id, &want.state, want.reason_code_id)
                        .await?;
                    media = confirm(s, &node, want.id, |m| {
                        m.state() == want.state || !matches!(m.state(), "READY" | "NOT_READY")
                    })
                    .await?;
                }
            }
            MediaAction::CorrectSettings => {
                info!(mrd = want.id, limit = ?media.limit(), interrupt = ?media.interrupt_action, logout = ?media.dialog_logout_action, "settings drifted; signing in again");
                s.shared.with(|v| {
                    v.counters.signins += 1;
                    v.counters.drift_corrections += 1;
                });
                s.shared.metrics.signin("drift");
                let outcome = s.rest.sign_in(&node, &want).await?;
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
            s.rest.set_state(&node, want.id, &state, reason).await?;
            media = confirm(s, &node, want.id, |m| m.state() == state).await?;
        }
        s.shared
            .set_media(MediaView::from_media(want.id, &media, Some(&want)));

        let list = s.rest.dialogs(&node, want.id).await?;
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
        if let Some(g) = &s.orphans {
            for a in &d.added {
                g.watch(a);
            }
        }
    }
    s.shared.metrics.resync();
    s.shared.with(|v| {
        v.counters.resyncs += 1;
        v.last_resync_at = Some(SystemTime::now());
    });
    info!(added, removed, changed, "resync completed");
    s.shared.events.publish(
        "resync.completed",
        serde_json::json!({ "added": added, "removed": removed, "changed": changed }),
    );
    Ok(())
}

/// GETs the media until `ok` holds (bounded); returns the last one read.
async fn confirm(
    s: &Supervisor,
    node: &Url,
    mrd: u32,
    ok: impl Fn(&Media) -> bool,
) -> Result<Media, RestError> {
    let mut media = s.rest.media(node, mrd).await?;
    for _ in 0..CONFIRM_TRIES {
        if ok(&media) {
            break;
        }
        s.shared.beat();
        tokio::time::sleep(CONFIRM_STEP).await;
        media = s.rest.media(node, mrd).await?;
    }
    Ok(media)
}

impl Supervisor {
    /// Runs the resync on node `idx`: steady when it succeeds, else the phase and cause of
    /// the failure (false).
    pub(super) async fn resync_or_cause(&mut self, idx: usize) -> bool {
        self.set_phase(Phase::Resyncing, None);
        let shutdown = self.shutdown.clone();
        let result = tokio::select! {
            () = shutdown.cancelled() => return false,
            r = run(self, idx) => r,
        };
        match result {
            Ok(()) => {
                self.down_since = None;
                self.set_phase(Phase::Steady, None);
                if let Some(at) = self.failure_at.take() {
                    self.shared.metrics.ready_after(at.elapsed().as_secs_f64());
                }
                true
            }
            Err(e) => {
                warn!(error = %e, "resync failed");
                if matches!(e, RestError::Malformed(_)) {
                    self.shared.with(|v| v.counters.malformed += 1);
                }
                if matches!(e, RestError::Transport(_)) {
                    self.shared.set_link("rest", false, Some(e.cause()));
                }
                if matches!(e, RestError::Unauthorized) {
                    self.shared.metrics.auth_failure();
                }
                let phase = if matches!(e, RestError::Unauthorized) {
                    Phase::AuthFailed
                } else {
                    Phase::Recovering
                };
                self.set_phase(phase, Some(e.cause()));
                false
            }
        }
    }
}
