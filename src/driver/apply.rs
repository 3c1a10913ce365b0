//! How one event from the XMPP link changes the agent's view: Media, dialog and SystemInfo
//! notifications, asynchronous errors, presence and link loss. Each returns the input the
//! machine must see, if any (the link lost, the node out of service, a resync wanted).

use tracing::warn;

use super::Driver;
use crate::finesse::model::Notification;
use crate::machine::Input;
use crate::metrics::NotificationResult;
use crate::model::{DialogView, MediaView, needs_sign_in, settings_drift};
use crate::vocab::{Cause, LinkKind, ResyncReason};
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
            LinkEvent::Down { cause } => {
                self.shared.set_link(LinkKind::Xmpp, false, Some(cause));
                Some(Input::LinkDown { cause })
            }
            LinkEvent::IqResult { .. } => None,
            LinkEvent::FinessePresence(true) => None,
            LinkEvent::FinessePresence(false) => {
                warn!("finesse presence UNAVAILABLE");
                Some(Input::NodeDown {
                    cause: Cause::FinesseUnavailable,
                })
            }
            LinkEvent::Malformed { node, error } => {
                warn!(%node, %error, "malformed notification");
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
        match update.notification {
            Notification::SystemInfo(s) if !s.in_service() => {
                warn!(status = %s.status, "SystemInfo: node not in service");
                Some(Input::NodeDown {
                    cause: Cause::OutOfService,
                })
            }
            Notification::SystemInfo(_) => None,
            Notification::Media(m) => {
                let Some(id) = m.mrd() else {
                    self.feed(Input::Malformed);
                    return None;
                };
                let want = self.cfg.media.iter().find(|c| c.id == id)?.clone();
                self.shared
                    .set_media(MediaView::from_media(id, &m, Some(&want)));
                let reason = if needs_sign_in(m.state()) {
                    ResyncReason::MediaSignedOut
                } else if settings_drift(&m, &want) {
                    ResyncReason::SettingsDrift
                } else {
                    return None;
                };
                Some(Input::ResyncWanted { reason })
            }
            Notification::DialogsAdded(list) => {
                for d in list {
                    if let Some(view) = self.upsert_dialog(d) {
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
                    self.upsert_dialog(d);
                }
                None
            }
            Notification::Errors(errors) => {
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

    pub(super) fn upsert_dialog(&mut self, d: crate::finesse::model::Dialog) -> Option<DialogView> {
        let Some(mrd) = d.mrd() else {
            self.feed(Input::Malformed);
            return None;
        };
        if d.id.trim().is_empty() {
            warn!(mrd, "dialog without <id> ignored");
            self.feed(Input::Malformed);
            return None;
        }
        if !self.cfg.media.iter().any(|m| m.id == mrd) {
            warn!(id = %d.id, mrd, "dialog for an unknown MRD or without id ignored");
            return None;
        }
        let view = DialogView::from_dialog(d, mrd);
        self.shared.upsert_dialog(view.clone());
        Some(view)
    }
}
