//! How one event from the XMPP link changes the agent's view: Media, dialog and SystemInfo
//! notifications, asynchronous errors, presence and link loss. Each returns the input the
//! machine must see, if any (the link lost, the node out of service, a resync wanted).

use tracing::warn;

use super::Driver;
use crate::finesse::model::Notification;
use crate::machine::Input;
use crate::metrics::NotificationResult;
use crate::reconcile::{DialogView, drifted, needs_sign_in, sign_in_of};
use crate::vocab::{Cause, ResyncReason};
use crate::xmpp::link::LinkEvent;

impl Driver {
    /// An event read while setting up a session, applied as in steady state; returns the
    /// wait it asks for (a node out of service, `finesse` unavailable), if any.
    pub(super) fn apply_during_setup(&mut self, ev: LinkEvent) -> Option<Cause> {
        if matches!(ev, LinkEvent::Update { .. }) {
            self.shared
                .metrics
                .notification(NotificationResult::Buffered);
        }
        match self.apply(ev) {
            Some(Input::NodeDown { cause }) => Some(cause),
            _ => None,
        }
    }

    /// Applies one link event to the view; returns the input for the machine, if any.
    pub(super) fn apply(&mut self, ev: LinkEvent) -> Option<Input> {
        match ev {
            LinkEvent::Up => None,
            LinkEvent::Down { cause } => Some(Input::LinkDown { cause }),
            LinkEvent::IqResult { .. } => None,
            LinkEvent::Spoofed { from } => {
                // Only Finesse's pubsub service speaks for Finesse: changes nothing, emits
                // nothing.
                if let Some(suppressed) = self.memo.log_limit.allow("spoofed") {
                    warn!(%from, suppressed, "pubsub event from someone other than the pubsub service dropped");
                }
                self.shared
                    .metrics
                    .notification(NotificationResult::Spoofed);
                None
            }
            LinkEvent::FinessePresence(true) => None,
            LinkEvent::FinessePresence(false) => {
                warn!("finesse presence UNAVAILABLE");
                Some(Input::NodeDown {
                    cause: Cause::FinesseUnavailable,
                })
            }
            LinkEvent::Malformed { node, error } => {
                if let Some(suppressed) = self.memo.log_limit.allow("malformed") {
                    warn!(%node, %error, suppressed, "malformed notification");
                }
                self.shared
                    .metrics
                    .notification(NotificationResult::Malformed);
                self.feed(Input::Malformed);
                None
            }
            LinkEvent::Update { node, update } => {
                self.shared
                    .metrics
                    .notification(NotificationResult::Applied);
                self.apply_update(&node, *update)
            }
        }
    }

    /// A notification that decoded to nothing usable: logged (rate-limited) with the reason
    /// and the node, and counted as malformed.
    pub(super) fn unusable(&mut self, node: &str, reason: &'static str) {
        if let Some(suppressed) = self.memo.log_limit.allow(reason) {
            warn!(%node, reason, suppressed, "notification with nothing usable");
        }
        self.feed(Input::Malformed);
    }

    pub(super) fn apply_update(
        &mut self,
        node: &str,
        update: crate::finesse::model::Update,
    ) -> Option<Input> {
        let agent = self.cfg.agent_id.clone();
        let mine = format!("/finesse/api/User/{agent}/");
        let foreign = |p: &str| p.starts_with("/finesse/api/User/") && !p.starts_with(&mine);
        if foreign(node) || foreign(update.source.trim()) {
            warn!(%node, "notification for another agent ignored");
            return None;
        }
        let source_mrd = update.source_mrd();
        let request_id = update.request_id;
        match update.notification {
            Notification::SystemInfo(s) if !s.in_service() => {
                warn!(status = %s.status, "SystemInfo: node not in service");
                Some(Input::NodeDown {
                    cause: Cause::OutOfService,
                })
            }
            Notification::SystemInfo(s) if s.in_maintenance() => {
                warn!("SystemInfo: node in maintenance mode, moving to the other node");
                Some(Input::Maintenance)
            }
            Notification::SystemInfo(_) => None,
            Notification::Media(m) => {
                // Published on `/Media` or on the per-MRD node: the MRD is the document's
                // id, else the one its source names.
                let Some(id) = m.mrd().or(source_mrd) else {
                    self.unusable(node, "a Media notification that names no MRD");
                    return None;
                };
                let want = self.cfg.media.iter().find(|c| c.id == id)?.clone();
                let idx = self.node.unwrap_or(0);
                super::resync::publish(self, idx, id, &m, &want);
                // Not eligible: never signed in. Refused: retried on the backoff, not on
                // every notification. Persistent drift: not corrected again.
                if !m.is_eligible() || self.memo.refused.contains_key(&id) {
                    return None;
                }
                let persistent = self.memo.persistent(id, idx, &sign_in_of(&want)).is_some();
                let reason = if needs_sign_in(m.state()) {
                    ResyncReason::MediaSignedOut
                } else if !drifted(&m, &want).is_empty() && !persistent {
                    ResyncReason::SettingsDrift
                } else {
                    return None;
                };
                Some(Input::ResyncWanted { reason })
            }
            Notification::DialogsAdded(list) => {
                for d in list {
                    if let Some(view) = self.upsert_dialog(d, source_mrd) {
                        // A task arriving offered or accepted may point at a dead session.
                        if matches!(view.state.as_str(), "OFFERED" | "ACCEPTED") {
                            if let Some(watch) = &self.watcher {
                                watch(&view);
                            }
                        }
                    }
                }
                None
            }
            Notification::DialogsRemoved(list) => {
                for d in &list {
                    self.shared.remove_dialog(d.id.trim());
                }
                None
            }
            Notification::DialogChanged(d) => {
                if d.state.trim().eq_ignore_ascii_case("CLOSED") {
                    self.shared.remove_dialog(d.id.trim());
                } else {
                    self.upsert_dialog(d, source_mrd);
                }
                None
            }
            Notification::Errors(errors) => {
                if let Some(e) = errors.iter().find(|e| !e.is_already_logged_in()) {
                    if self.memo.refuse_outcome(request_id.trim(), e.constant()) {
                        warn!(error = e.constant(), "Finesse refused a dialog action");
                        return None;
                    }
                }
                if let Some(mrd) = self.memo.pending.remove(request_id.trim()) {
                    if let Some(e) = errors.iter().find(|e| !e.is_already_logged_in()) {
                        warn!(
                            mrd,
                            error = e.constant(),
                            "Finesse refused the sign-in; retrying on the recovery backoff"
                        );
                        let failure = self.memo.refuse(mrd, e.constant());
                        if let Some(mut view) = self.shared.with(|v| v.media.get(&mrd).cloned()) {
                            view.signin = Some(failure);
                            self.shared.set_media(view);
                        }
                        return Some(Input::SigninRefused);
                    }
                }
                for e in errors {
                    if !e.is_already_logged_in() {
                        warn!(code = %e.data, message = %e.message, mrd = %e.media, "asynchronous Finesse error");
                    }
                }
                None
            }
            Notification::Other => None,
        }
    }

    /// Stores a dialog from a notification; its MRD is its `mediaId`, else the one the
    /// update's source names, else the one the dialog is already held under.
    pub(super) fn upsert_dialog(
        &mut self,
        d: crate::finesse::model::Dialog,
        source_mrd: Option<u32>,
    ) -> Option<DialogView> {
        if d.id.trim().is_empty() {
            if self.memo.log_limit.allow("dialog without id").is_some() {
                warn!(mrd = ?d.mrd().or(source_mrd), "dialog without <id> ignored");
            }
            self.feed(Input::Malformed);
            return None;
        }
        let held = self
            .shared
            .with(|v| v.dialogs.get(d.id.trim()).map(|h| h.media_id));
        let Some(mrd) = d.mrd().or(source_mrd).or(held) else {
            self.unusable("", "a dialog that names no MRD");
            return None;
        };
        if !self.cfg.media.iter().any(|m| m.id == mrd) {
            warn!(id = %d.id, mrd, "dialog for an unknown MRD or without id ignored");
            return None;
        }
        let view = DialogView::from_dialog(d, mrd);
        self.shared.upsert_dialog(view.clone());
        Some(view)
    }
}
