//! The state the supervisor publishes: phase, node, cause, link states, the media and dialog
//! views and the counters. The local API serves it; health is computed from it, not from
//! separate flags. It never holds the password.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::events::EventBus;
use crate::model::{DialogDiff, DialogView, MediaView};

/// Where the supervisor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// First connection.
    Starting,
    /// A link or the node is down; waiting or retrying.
    Recovering,
    /// Media GET, corrections and Dialog LIST.
    Resyncing,
    /// All links up and the view in sync.
    Steady,
    /// Credentials rejected; waiting `auth_retry` before one more try.
    AuthFailed,
    /// Another session took our XMPP resource.
    Conflict,
    /// Shutting down.
    Stopping,
}

/// Counters since start.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    /// XMPP or REST recoveries started after a loss.
    pub reconnects: u64,
    /// Switches to the other node.
    pub failovers: u64,
    /// Completed resyncs.
    pub resyncs: u64,
    /// Sign-in PUTs sent.
    pub signins: u64,
    /// Sign-ins sent to correct drifted settings.
    pub drift_corrections: u64,
    /// Malformed notifications or bodies.
    pub malformed: u64,
}

/// The published state.
#[derive(Debug, Clone)]
pub struct StateView {
    /// Agent id.
    pub agent: String,
    /// Phase.
    pub phase: Phase,
    /// Current node URL.
    pub node: Option<String>,
    /// Why the last failure happened (cleared when steady).
    pub cause: Option<String>,
    /// REST reachable.
    pub rest_up: bool,
    /// XMPP session up.
    pub xmpp_up: bool,
    /// Media by MRD id.
    pub media: BTreeMap<u32, MediaView>,
    /// Dialogs by id.
    pub dialogs: BTreeMap<String, DialogView>,
    /// Counters.
    pub counters: Counters,
    /// When the last resync completed.
    pub last_resync_at: Option<SystemTime>,
    /// When the phase last changed.
    pub phase_since: Instant,
}

impl StateView {
    /// The `/v1/state` document.
    pub fn to_json(&self) -> Value {
        let up = |b: bool| if b { "up" } else { "down" };
        json!({
            "agent": self.agent,
            "phase": self.phase,
            "node": self.node,
            "cause": self.cause,
            "links": { "rest": up(self.rest_up), "xmpp": up(self.xmpp_up) },
            "media": self.media.values().collect::<Vec<_>>(),
            "dialogs": self.dialogs.values().collect::<Vec<_>>(),
            "counters": self.counters,
            "lastResyncAt": self.last_resync_at.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
        })
    }
}

/// State shared between the supervisor and the API.
pub struct Shared {
    /// The view.
    pub view: Mutex<StateView>,
    /// Every change of the view, as events.
    pub events: EventBus,
    /// Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
    /// sd_notify.
    pub notifier: crate::notify::Notifier,
    /// The current phase, for waiters.
    pub phase: tokio::sync::watch::Sender<Phase>,
    started: Instant,
    beat_ms: AtomicU64,
}

impl Shared {
    /// A fresh state for `agent`, keeping `ring` events for resumes.
    pub fn new(agent: &str, ring: usize) -> Self {
        Self {
            view: Mutex::new(StateView {
                agent: agent.to_owned(),
                phase: Phase::Starting,
                node: None,
                cause: None,
                rest_up: false,
                xmpp_up: false,
                media: BTreeMap::new(),
                dialogs: BTreeMap::new(),
                counters: Counters::default(),
                last_resync_at: None,
                phase_since: Instant::now(),
            }),
            events: EventBus::new(ring),
            metrics: crate::metrics::Metrics::new(),
            notifier: crate::notify::Notifier::from_env(),
            phase: tokio::sync::watch::channel(Phase::Starting).0,
            started: Instant::now(),
            beat_ms: AtomicU64::new(0),
        }
    }

    /// Stores a media view; emits `media.changed` when it differs.
    pub fn set_media(&self, view: MediaView) {
        let changed = self.with(|v| v.media.insert(view.id, view.clone()).as_ref() != Some(&view));
        if changed {
            self.events
                .publish("media.changed", json!({ "media": view }));
        }
    }

    /// Adds or updates a dialog; emits `dialog.added` or `dialog.changed`.
    pub fn upsert_dialog(&self, view: DialogView) {
        let old = self.with(|v| v.dialogs.insert(view.id.clone(), view.clone()));
        match old {
            None => {
                self.events.publish(
                    "dialog.added",
                    json!({ "dialog": view, "mediaId": view.media_id }),
                );
            }
            Some(old) if old != view => {
                self.events.publish(
                    "dialog.changed",
                    json!({ "dialog": view, "mediaId": view.media_id }),
                );
            }
            Some(_) => {}
        }
    }

    /// Removes a dialog; emits `dialog.removed` when it was held.
    pub fn remove_dialog(&self, id: &str) {
        if let Some(old) = self.with(|v| v.dialogs.remove(id)) {
            self.events.publish(
                "dialog.removed",
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
    pub fn set_link(&self, link: &str, up: bool, cause: Option<&str>) {
        let (changed, node) = self.with(|v| {
            let slot = if link == "xmpp" {
                &mut v.xmpp_up
            } else {
                &mut v.rest_up
            };
            let changed = *slot != up;
            *slot = up;
            (changed, v.node.clone())
        });
        if changed {
            let kind = if up { "link.up" } else { "link.down" };
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

    /// The main loop made progress (also pings the systemd watchdog).
    pub fn beat(&self) {
        self.beat_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.notifier.progress();
    }

    /// Time since the main loop last made progress.
    pub fn since_beat(&self) -> std::time::Duration {
        let now = self.started.elapsed().as_millis() as u64;
        std::time::Duration::from_millis(now.saturating_sub(self.beat_ms.load(Ordering::Relaxed)))
    }
}
