//! Steady state and the wait for a node to come back. Steady state applies notifications,
//! serves commands and reloads, and sleeps until the next thing is due (the health beat, or a
//! deadline of the machine: the backoff reset, the periodic resync, or the SSO token's
//! refresh); it returns the first input the machine must see. The wait keeps the XMPP session and polls SystemInfo until
//! the node is in service again, or the other node is.

use tokio::time::Instant;
use tracing::info;

use super::Driver;
use crate::finesse::model::Notification;
use crate::machine::{Input, WaitEnd};
use crate::vocab::Cause;
use crate::xmpp::link::LinkEvent;

impl Driver {
    /// Steady state on node `idx` until something needs the machine.
    pub(super) async fn steady(&mut self, idx: usize) -> Input {
        // Timers only where something is due (an idle daemon wakes for little else than the
        // XMPP ping): the next beat and the machine's next deadline.
        let mut beat_at = Instant::now();
        loop {
            let due = self.machine.deadline();
            let outcome = self.memo.next_outcome();
            let refresh = self.refresh_at();
            let next = [Some(beat_at), due, outcome, refresh]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(beat_at);
            tokio::select! {
                () = self.shutdown.cancelled() => return Input::Stop,
                () = tokio::time::sleep_until(next) => {
                    let now = Instant::now();
                    let accepted = self.memo.settle(Some(now));
                    self.accept_desired(accepted);
                    if now >= beat_at {
                        self.hook.hold().await;
                        self.shared.beat();
                        // On the process's grid: a fleet's agents beat together.
                        beat_at = crate::timer_grid::next_point(Instant::now(), self.beat_every());
                    }
                    if refresh.is_some_and(|r| now >= r) {
                        if let Err(Some(cause)) = self.refresh_token(idx).await {
                            return Input::CredentialsRejected { cause };
                        }
                    }
                    if due.is_some_and(|d| now >= d) {
                        return Input::Timer;
                    }
                }
                ev = self.link.next() => {
                    let Some(ev) = ev else {
                        return Input::LinkDown { cause: Cause::XmppClosed };
                    };
                    if let Some(input) = self.apply(ev) {
                        if let Input::ResyncWanted { reason } = &input {
                            info!(cause = %reason, "resync requested by a notification");
                        }
                        return input;
                    }
                }
                Some(req) = self.commands.recv() => {
                    if let Some(input) = self.handle(idx, req).await {
                        return input;
                    }
                }
                Some(loaded) = self.reloads.recv() => return Input::Reloaded(self.reload(loaded)),
            }
        }
    }

    /// Keeps the XMPP session while node `idx` is out of service, until the machine's next
    /// poll is due ([`Input::Timer`]: the machine then asks SystemInfo, this node first and
    /// then the others), a notification says it is back, the link is lost, or a reload.
    pub(super) async fn wait_in_service(&mut self, idx: usize) -> Input {
        let url = self.cfg.nodes[idx].clone();
        let deadline = self
            .machine
            .deadline()
            .unwrap_or_else(|| Instant::now() + self.cfg.recovery.systeminfo_poll);
        // Meanwhile, notifications still count (an IN_SERVICE SystemInfo ends the wait).
        loop {
            let ev = tokio::select! {
                () = self.shutdown.cancelled() => return Input::Stop,
                () = tokio::time::sleep_until(deadline) => return Input::Timer,
                Some(loaded) = self.reloads.recv() => return Input::Reloaded(self.reload(loaded)),
                ev = self.link.next() => ev,
            };
            self.shared.beat();
            match ev {
                None | Some(LinkEvent::Down { .. }) => return Input::WaitEnded(WaitEnd::LinkLost),
                Some(LinkEvent::Update { update, .. }) if matches!(&update.notification, Notification::SystemInfo(s) if s.in_service()) =>
                {
                    info!(node = %url, via = "notification", "node back in service");
                    return Input::WaitEnded(WaitEnd::Back);
                }
                Some(other) => {
                    let _ = self.apply(other);
                }
            }
        }
    }
}
