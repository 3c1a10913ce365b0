//! Steady state and the wait for a node to come back. Steady state applies notifications,
//! serves commands and reloads, and sleeps until the next thing is due (the health beat, the
//! backoff reset, the periodic resync). The wait keeps the XMPP session and polls SystemInfo
//! until the node is in service again, or the other node is.

use tokio::time::Instant;
use tracing::info;

use super::{Exit, Supervisor};
use crate::finesse::model::Notification;
use crate::xmpp::link::LinkEvent;

impl Supervisor {
    /// Steady state on node `idx` until something ends it.
    pub(super) async fn steady(&mut self, idx: usize) -> Exit {
        let since = Instant::now();
        // Timers only where something is due (an idle daemon wakes for little else than
        // the XMPP ping): the next beat, the backoff reset, the periodic resync.
        let mut reset_at = Some(since + self.cfg.recovery.healthy_after);
        let every = self.cfg.recovery.resync_every;
        let resync_at = (!every.is_zero()).then(|| since + every);
        let mut beat_at = since;
        loop {
            let next = [Some(beat_at), reset_at, resync_at]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(beat_at);
            tokio::select! {
                () = self.shutdown.cancelled() => return Exit::Shutdown,
                () = tokio::time::sleep_until(next) => {
                    let now = Instant::now();
                    if now >= beat_at {
                        self.stall_hook().await;
                        self.shared.beat();
                        beat_at = Instant::now() + self.beat_every();
                    }
                    if reset_at.is_some_and(|t| now >= t) {
                        self.backoff.reset();
                        reset_at = None;
                    }
                    if resync_at.is_some_and(|t| now >= t) {
                        return Exit::Resync("periodic");
                    }
                }
                ev = self.link.next() => {
                    let Some(ev) = ev else { return Exit::Lost("xmpp_closed") };
                    if let Some(exit) = self.apply(ev) {
                        return exit;
                    }
                }
                Some(req) = self.commands.recv() => self.handle(idx, req).await,
                Some(()) = self.reloads.recv() => {
                    if let Some(exit) = self.reload() {
                        return exit;
                    }
                }
            }
        }
    }

    /// Keeps the XMPP session and polls SystemInfo until the node is back (or the other is
    /// in service, which the next pass picks up). False on shutdown.
    pub(super) async fn wait_in_service(&mut self, idx: usize) -> bool {
        let url = self.cfg.nodes[idx].clone();
        self.down_since.get_or_insert_with(Instant::now);
        loop {
            let poll = self.cfg.recovery.systeminfo_poll;
            let deadline = Instant::now() + poll;
            // Meanwhile, notifications still count (an IN_SERVICE SystemInfo ends the wait).
            loop {
                let ev = tokio::select! {
                    () = self.shutdown.cancelled() => return false,
                    () = tokio::time::sleep_until(deadline) => break,
                    ev = self.link.next() => ev,
                };
                match ev {
                    None | Some(LinkEvent::Down) => {
                        self.shared.set_link("xmpp", false, Some("xmpp_lost"));
                        return true;
                    }
                    Some(LinkEvent::Update { update, .. }) if matches!(&update.notification, Notification::SystemInfo(s) if s.in_service()) =>
                    {
                        info!(node = %url, via = "notification", "node back in service");
                        self.confirmed = Some(idx);
                        return true;
                    }
                    Some(other) => {
                        let _ = self.apply(other);
                    }
                }
            }
            self.shared.beat();
            match self.rest.system_info(&url).await {
                Ok(info) if info.in_service() => {
                    self.down_since = None;
                    info!(node = %url, via = "poll", "node back in service");
                    self.confirmed = Some(idx);
                    return true;
                }
                _ => {
                    // The other node may be in service: let the main loop decide.
                    for (k, other) in self.cfg.nodes.iter().enumerate() {
                        if k != idx
                            && self
                                .rest
                                .system_info(other)
                                .await
                                .is_ok_and(|i| i.in_service())
                        {
                            return true;
                        }
                    }
                }
            }
        }
    }
}
