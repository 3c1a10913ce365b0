//! The driver's control paths: requests from the local API (carried out only while
//! steady, dropped unsent once expired), SIGHUP reloads, and the stop policy.

use tokio::time::Instant;
use tracing::{info, warn};

use super::Driver;
use crate::clients::Clients;
use crate::command::{self, Command, CommandError};
use crate::config::{Config, Loaded, OnStop};
use crate::finesse::rest::RestError;
use crate::machine::{Input, Reload};

impl Driver {
    /// Takes the configuration read anew for a reload. Invalid: keep running on the old one
    /// and say why. Valid: apply what [`Config::change`] says it changes: nodes, credentials,
    /// CA or XMPP settings end the session (reconnect), media settings or desired states lead
    /// to a resync (one corrective sign-in at most), recovery timing goes to the machine.
    pub(super) fn reload(&mut self, loaded: Loaded) -> Reload {
        self.shared.notifier.reloading();
        let status = |s: &Self| format!("{:?}", s.shared.snapshot().phase);
        let mut new = match loaded {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "reload refused: keeping the running configuration");
                self.shared.notifier.ready(&status(self));
                return Reload::Refused;
            }
        };
        for w in &new.warnings {
            warn!("{w}");
        }
        let file_desired = super::desired::file_values(&new.media);
        super::desired::overlay(new.state_dir.as_deref(), &mut new.media);
        let change = Config::change(&self.cfg, &new);
        if !change.next_start.is_empty() {
            warn!(keys = ?change.next_start, "these settings take effect at the next restart");
        }
        let sso = super::credentials::SsoRun::reloaded(&new, self.sso.as_ref());
        let credentials = Self::credentials(&new, sso.as_ref());
        match self.provider.clients(&new, credentials) {
            Ok(Clients { tls, rest }) => {
                self.rest = rest;
                self.tls = tls;
                self.sso = sso;
            }
            Err(e) => {
                warn!(error = %e, "reload refused: keeping the running configuration");
                self.shared.notifier.ready(&status(self));
                return Reload::Refused;
            }
        }
        self.machine.reconfigure(&new.recovery, new.nodes.len());
        self.cfg = new;
        self.file_desired = file_desired;
        self.persist_desired();
        info!(reconnect = change.reconnect, resync = change.resync, keys = ?change.keys, "configuration reloaded");
        self.shared.notifier.ready(&status(self));
        if change.reconnect {
            self.link.drop_session();
            self.node = None;
        }
        if change.credentials
            && self.held_until.is_some_and(|t| Instant::now() < t)
            && !self.new_credentials_may_try()
        {
            warn!(
                "these credentials were refused within the lockout window, or one more refusal would come too close to the lockout: the hold goes on"
            );
            Reload::Reconnect
        } else if change.credentials {
            Reload::CredentialsChanged
        } else if change.reconnect {
            Reload::Reconnect
        } else if change.resync {
            Reload::Resync
        } else {
            Reload::Unchanged
        }
    }

    /// Applies `[shutdown] on_stop` to every MRD on the current node, within its timeout.
    pub(super) async fn apply_stop_policy(&self) {
        if self.held_until.is_some_and(|t| Instant::now() < t) {
            warn!("credentials rejected: the stop policy is not sent");
            return;
        }
        let policy = &self.cfg.shutdown;
        let state = match policy.on_stop {
            OnStop::Logout => "LOGOUT",
            OnStop::NotReady => "NOT_READY",
            OnStop::Leave => return,
        };
        let Some(idx) = self.node else { return };
        let node = self.cfg.nodes[idx].clone();
        let all = async {
            for m in &self.cfg.media {
                match self
                    .rest
                    .set_state(&node, m.id, state, policy.reason_code_id)
                    .await
                {
                    Ok(_) => info!(mrd = m.id, state, "stop policy applied"),
                    Err(e) => warn!(mrd = m.id, state, error = %e, "stop policy failed"),
                }
            }
        };
        if tokio::time::timeout(policy.timeout, all).await.is_err() {
            warn!(
                timeout_ms = policy.timeout.as_millis() as u64,
                "stop policy timed out"
            );
        }
    }

    /// Carries out one API request on node `idx`, unless its caller is gone or it expired.
    pub(super) async fn handle(&mut self, idx: usize, req: command::Request) -> Option<Input> {
        if req.reply.is_closed() || Instant::now() > req.deadline || !req.take() {
            info!(command = ?req.command, "request expired while recovering; not sent");
            return None;
        }
        let node = self.cfg.nodes[idx].clone();
        let rest_err = |e: RestError| match e {
            RestError::Unauthorized => CommandError::AuthFailed,
            RestError::Transport(m) => CommandError::Unavailable(m),
            RestError::Ambiguous(m) => CommandError::OutcomeUnknown(m),
            RestError::Server { status } => CommandError::Unavailable(format!("HTTP {status}")),
            RestError::Client { status: 404, .. } => {
                CommandError::NotFound("Finesse does not know it".into())
            }
            RestError::Client { status, errors } => CommandError::Finesse(format!(
                "HTTP {status}: {}",
                errors
                    .iter()
                    .map(|e| format!("{} {}", e.data, e.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            other => CommandError::Finesse(other.to_string()),
        };
        let mut accepted = None;
        let mut desired = None;
        let result = match req.command {
            Command::DialogAction { id, action, target } => {
                let held = self.shared.with(|v| v.dialogs.get(&id).cloned());
                match held {
                    None => Err(CommandError::NotFound(format!("no dialog {id}"))),
                    Some(d) if !crate::reconcile::may(&d, action) => Err(CommandError::NotAllowed(
                        format!("{action} is not allowed in state {}", d.state),
                    )),
                    Some(_) => {
                        info!(%id, %action, "dialog action");
                        let rid = crate::finesse::rest::request_id();
                        let element = self.cfg.transfer_target_element.as_str();
                        let target = target.as_deref().map(|t| (element, t));
                        let sent = self
                            .rest
                            .dialog_action(&node, &id, action, target, &rid)
                            .await
                            .map_err(rest_err);
                        accepted = sent.is_ok().then_some(rid);
                        sent
                    }
                }
            }
            Command::SetState { mrd, state, reason } => {
                if self.cfg.media.iter().any(|m| m.id == mrd) {
                    let rid = crate::finesse::rest::request_id();
                    let sent = self
                        .rest
                        .set_state_as(&node, mrd, state.as_str(), reason, &rid)
                        .await
                        .map(|_| ())
                        .map_err(rest_err);
                    // Only what Finesse accepted, and did not refuse by its `requestId`
                    // within `outcome_wait`, becomes the state restored after a sign-in.
                    if sent.is_ok() {
                        accepted = Some(rid);
                        desired = Some(super::memo::Desired { mrd, state, reason });
                    }
                    sent
                } else {
                    Err(CommandError::NotFound(format!(
                        "MRD {mrd} is not configured"
                    )))
                }
            }
            Command::SetRoutable { mrd, routable } => {
                if self.cfg.media.iter().any(|m| m.id == mrd) {
                    let sent = self
                        .rest
                        .set_routable(&node, mrd, routable)
                        .await
                        .map(|_| ())
                        .map_err(rest_err);
                    if sent.is_ok() {
                        self.want_routable(mrd, routable);
                    }
                    sent
                } else {
                    Err(CommandError::NotFound(format!(
                        "MRD {mrd} is not configured"
                    )))
                }
            }
        };
        // An accepted action's answer waits `outcome_wait` for an asynchronous refusal.
        if let Some(request_id) = accepted.filter(|_| !self.cfg.outcome_wait.is_zero()) {
            self.memo.outcomes.push(super::memo::Outcome {
                request_id,
                reply: req.reply,
                until: Instant::now() + self.cfg.outcome_wait,
                desired,
            });
            return None;
        }
        self.accept_desired(desired);
        let rejected = result == Err(CommandError::AuthFailed);
        let _ = req.reply.send(result);
        // The password was refused: hold everything that carries it.
        rejected.then(|| Input::CredentialsRejected {
            cause: self.auth_cause(),
        })
    }

    /// State changes Finesse accepted and did not refuse become the desired states.
    pub(super) fn accept_desired(
        &mut self,
        changes: impl IntoIterator<Item = super::memo::Desired>,
    ) {
        let mut changed = false;
        for d in changes {
            if let Some(m) = self.cfg.media.iter_mut().find(|m| m.id == d.mrd) {
                m.state = d.state;
                m.reason_code_id = d.reason;
                info!(mrd = d.mrd, state = %d.state, reason = ?d.reason, "desired state changed by the API");
                changed = true;
                self.shared.with(|v| {
                    if let Some(view) = v.media.get_mut(&d.mrd) {
                        view.desired_state = Some(d.state.as_str().to_owned());
                        view.desired_reason_code_id = d.reason;
                    }
                });
            }
        }
        if changed {
            self.persist_desired();
        }
    }

    /// Answers a request at once, unsent, while the password is held back.
    pub(super) fn refuse_held(&mut self, req: command::Request) {
        if req.take() {
            info!(command = ?req.command, "credentials rejected: not sent");
            let _ = req.reply.send(Err(CommandError::AuthFailed));
        }
    }
}
