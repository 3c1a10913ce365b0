//! systemd integration through sd_notify: READY=1 after the first resync, STATUS= with the
//! phase and node, RELOADING=1 (with MONOTONIC_USEC) around a reload, STOPPING=1, and
//! WATCHDOG=1. Every call is a no-op without `NOTIFY_SOCKET`.
//!
//! The watchdog ping is sent from [`Notifier::progress`], which the driver calls as its
//! main loop makes progress; there is no detached timer, so a stalled loop stops the pings
//! and systemd restarts the service.

use std::sync::Mutex;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::time::Instant;
use tracing::debug;

/// The sd_notify sender.
pub struct Notifier {
    watchdog: Option<Duration>,
    last_ping: Mutex<Option<Instant>>,
}

impl Default for Notifier {
    fn default() -> Self {
        Self::from_env()
    }
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!(error = %e, "sd_notify failed");
    }
}

impl Notifier {
    /// Reads `WATCHDOG_USEC` (honouring `WATCHDOG_PID`).
    pub fn from_env() -> Self {
        Self {
            watchdog: sd_notify::watchdog_enabled(),
            last_ping: Mutex::new(None),
        }
    }

    /// The watchdog interval systemd asked for, if any.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// The main loop made progress: ping the watchdog (at most every quarter interval).
    pub fn progress(&self) {
        let Some(interval) = self.watchdog else {
            return;
        };
        let mut last = self.last_ping.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= interval / 4) {
            *last = Some(Instant::now());
            send(&[NotifyState::Watchdog]);
        }
    }

    /// READY=1 with a status line.
    pub fn ready(&self, status: &str) {
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// STATUS=.
    pub fn status(&self, status: &str) {
        send(&[NotifyState::Status(status)]);
    }

    /// RELOADING=1 with MONOTONIC_USEC, as `Type=notify-reload` expects.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => send(&[NotifyState::Reloading, now]),
            Err(_) => send(&[NotifyState::Reloading]),
        }
    }

    /// STOPPING=1.
    pub fn stopping(&self) {
        send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }
}
