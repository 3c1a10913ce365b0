//! What an agent publishes, where the layers above meet: the [`StateView`] behind a mutex, the event
//! bus, the metrics, the sd_notify sender and the main loop's heartbeat. The driver writes
//! what the machine decided into it; the API, the metrics and the orphan guard read it. It
//! never holds the password.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use tracing::info;

use crate::events::EventBus;
use crate::metrics::{Gauges, Metrics};
use crate::notify::Notifier;
use crate::view::{DialogDiff, DialogView, MediaView, StateView};
use crate::vocab::{Cause, EventKind, LinkKind, Phase};

/// The main loop counts as stuck after this long without progress (`/healthz`).
pub const STALL: Duration = Duration::from_secs(15);

/// Something that wants to see each dialog that arrives offered or accepted, or that a
/// resync brings back (the orphan guard). A callback, so the driver needs no upward import.
pub type Watcher = Box<dyn Fn(&DialogView) + Send + Sync>;

/// State shared between the driver and the API.
pub struct Shared {
    /// The view.
    pub view: Mutex<StateView>,
    /// Every change of the view, as events.
    pub events: EventBus,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// sd_notify.
    pub notifier: Notifier,
    /// The current phase, for waiters.
    pub phase: tokio::sync::watch::Sender<Phase>,
    started: Instant,
    beat_ms: AtomicU64,
}

impl Shared {
    /// A fresh state for `agent`, keeping `ring` events for resumes.
    pub fn new(agent: &str, ring: usize) -> Self {
        Self {
            view: Mutex::new(StateView::new(agent)),
            events: EventBus::new(ring),
            metrics: Metrics::new(),
            notifier: Notifier::from_env(),
            phase: tokio::sync::watch::channel(Phase::Starting).0,
            started: Instant::now(),
            beat_ms: AtomicU64::new(0),
        }
    }

    /// Records the phase and its cause (a steady phase clears the cause). On a change: logs
    /// it, sends STATUS= (READY=1 when `ready`), and emits a `phase` event.
    pub fn set_phase(&self, phase: Phase, cause: Option<Cause>, ready: bool) {
        let (changed, node, took) = self.with(|v| {
            let changed = v.phase != phase || v.cause != cause;
            let took = v.phase_since.elapsed();
            if v.phase != phase {
                v.phase_since = Instant::now();
            }
            v.phase = phase;
            if cause.is_some() || phase == Phase::Steady {
                v.cause = cause;
            }
            (changed, v.node.clone(), took)
        });
        self.phase.send_replace(phase);
        if changed {
            let name = format!("{phase:?}");
            let status = format!(
                "{name} on {}{}",
                node.as_deref().unwrap_or("no node"),
                cause.map(|c| format!(" ({c})")).unwrap_or_default()
            );
            if ready {
                self.notifier.ready(&status);
            } else {
                self.notifier.status(&status);
            }
            info!(phase = %name, cause = cause.map_or("", Cause::as_str), node = node.as_deref().unwrap_or(""), previous_ms = took.as_millis() as u64, "phase");
            self.events.publish(
                EventKind::Phase,
                json!({ "phase": phase, "cause": cause, "node": node }),
            );
        }
    }

    /// Stores a media view; emits `media.changed` when it differs.
    pub fn set_media(&self, view: MediaView) {
        let changed = self.with(|v| v.media.insert(view.id, view.clone()).as_ref() != Some(&view));
        if changed {
            self.events
                .publish(EventKind::MediaChanged, json!({ "media": view }));
        }
    }

    /// Adds or updates a dialog; emits `dialog.added` or `dialog.changed`.
    pub fn upsert_dialog(&self, view: DialogView) {
        let old = self.with(|v| v.dialogs.insert(view.id.clone(), view.clone()));
        let kind = match old {
            None => EventKind::DialogAdded,
            Some(old) if old != view => EventKind::DialogChanged,
            Some(_) => return,
        };
        self.events
            .publish(kind, json!({ "dialog": view, "mediaId": view.media_id }));
    }

    /// Removes a dialog; emits `dialog.removed` when it was held.
    pub fn remove_dialog(&self, id: &str) {
        if let Some(old) = self.with(|v| v.dialogs.remove(id)) {
            self.events.publish(
                EventKind::DialogRemoved,
                json!({ "dialog": old, "mediaId": old.media_id }),
            );
        }
    }

    /// Applies a LIST diff of one MRD as the same dialog events.
    pub fn apply_diff(&self, d: &DialogDiff) {
        for r in &d.removed {
            self.remove_dialog(&r.id);
        }
        for a in d.added.iter().chain(&d.changed) {
            self.upsert_dialog(a.clone());
        }
    }

    /// Records a link state; emits `link.up` / `link.down` on change.
    pub fn set_link(&self, link: LinkKind, up: bool, cause: Option<Cause>) {
        let (changed, node) = self.with(|v| {
            let slot = v.link_mut(link);
            let changed = *slot != up;
            *slot = up;
            (changed, v.node.clone())
        });
        if changed {
            let kind = if up {
                EventKind::LinkUp
            } else {
                EventKind::LinkDown
            };
            self.events
                .publish(kind, json!({ "link": link, "cause": cause, "node": node }));
        }
    }

    /// Runs `f` on the view.
    pub fn with<R>(&self, f: impl FnOnce(&mut StateView) -> R) -> R {
        let mut v = self.view.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut v)
    }

    /// A copy of the view.
    pub fn snapshot(&self) -> StateView {
        self.with(|v| v.clone())
    }

    /// The `/metrics` text, its gauges read from the view.
    pub fn render_metrics(&self) -> String {
        let v = self.snapshot();
        self.metrics.render(&Gauges {
            rest_up: v.rest_up,
            xmpp_up: v.xmpp_up,
            phase: v.phase,
            dialogs: v
                .dialogs
                .values()
                .map(|d| (d.media_id, d.state.as_str()))
                .collect(),
            media: v
                .media
                .values()
                .map(|m| {
                    let persistent = m.drift == crate::view::Drift::Persistent;
                    (m.id, m.eligible, persistent, m.signin.is_some())
                })
                .collect(),
            failing_records: v.write_failures.keys().copied().collect(),
        })
    }

    /// The main loop made progress (also pings the systemd watchdog).
    pub fn beat(&self) {
        self.beat_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.notifier.progress();
    }

    /// Time since the main loop last made progress.
    pub fn since_beat(&self) -> Duration {
        let now = self.started.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.beat_ms.load(Ordering::Relaxed)))
    }
}
