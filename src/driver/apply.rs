//! How one event from the XMPP link changes the agent's view: Media, dialog and SystemInfo
//! notifications, asynchronous errors, presence and link loss. Each returns why steady state
//! must end, if it must (a resync, a wait for the node, a reconnect); the loop acts on it.

use tracing::warn;

use super::{Exit, Supervisor};
use crate::finesse::model::Notification;
use crate::model::{DialogView, MediaView, needs_sign_in, settings_drift};
use crate::xmpp::link::LinkEvent;

impl Supervisor {
    /// Events read while setting up are applied as in steady state.
    pub(super) fn link_requeue(&mut self, ev: LinkEvent) {
        if matches!(ev, LinkEvent::Update { .. }) {
            self.shared.metrics.notification("buffered");
        }
        let _ = self.apply(ev);
    }

    /// Applies one link event to the view; returns why steady state must end, if it must.
    pub(super) fn apply(&mut self, ev: LinkEvent) -> Option<Exit> {
        match ev {
            LinkEvent::Up => None,
            LinkEvent::Down => {
                // Silent past the soft timeout: the ping went unanswered (a dead link), as
                // opposed to a socket that closed or broke.
                let cause = if self.link.silent_for() >= self.cfg.xmpp.ping_interval {
                    "xmpp_ping_timeout"
                } else {
                    "xmpp_lost"
                };
                warn!(
                    cause,
                    silent_ms = self.link.silent_for().as_millis() as u64,
                    "XMPP session lost"
                );
                self.shared.set_link("xmpp", false, Some(cause));
                Some(Exit::Lost(cause))
            }
            LinkEvent::IqResult { .. } => None,
            LinkEvent::FinessePresence(true) => None,
            LinkEvent::FinessePresence(false) => {
                warn!("finesse presence UNAVAILABLE");
                Some(Exit::Wait("finesse_unavailable"))
            }
            LinkEvent::Malformed { node, error } => {
                warn!(%node, %error, "malformed notification");
                self.shared.metrics.notification("malformed");
                self.shared.with(|v| v.counters.malformed += 1);
                None
            }
            LinkEvent::Update { node, update } => {
                self.shared.metrics.notification("applied");
                self.apply_update(&node, *update)
            }
        }
    }

    pub(super) fn apply_update(
        &mut self,
        node: &str,
        update: crate::finesse::model::Update,
    ) -> Option<Exit> {
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
                Some(Exit::Wait("out_of_service"))
            }
            Notification::SystemInfo(_) => None,
            Notification::Media(m) => {
                let Some(id) = m.mrd() else {
                    self.shared.with(|v| v.counters.malformed += 1);
                    return None;
                };
                let want = self.cfg.media.iter().find(|c| c.id == id)?.clone();
                self.shared
                    .set_media(MediaView::from_media(id, &m, Some(&want)));
                if needs_sign_in(m.state()) {
                    Some(Exit::Resync("media_signed_out"))
                } else if settings_drift(&m, &want) {
                    Some(Exit::Resync("settings_drift"))
                } else {
                    None
                }
            }
            Notification::DialogsAdded(list) => {
                for d in list {
                    if let Some(view) = self.upsert_dialog(d) {
                        // A task arriving offered or accepted may point at a dead session.
                        if matches!(view.state.as_str(), "OFFERED" | "ACCEPTED") {
                            if let Some(g) = &self.orphans {
                                g.watch(&view);
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
            self.shared.with(|v| v.counters.malformed += 1);
            return None;
        };
        if d.id.trim().is_empty() {
            warn!(mrd, "dialog without <id> ignored");
            self.shared.with(|v| v.counters.malformed += 1);
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
