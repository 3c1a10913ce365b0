//! The orphan-dialog guard: before a task whose chat or email session is dead stays with the
//! agent as a zombie, probe the session and, after enough consecutive "gone" answers, close
//! the dialog (or only report it).
//!
//! The pure parts are the URL template (in `config`) and [`step`], which turns one probe result into
//! the next count and verdict; [`OrphanGuard`] runs the probes (bounded concurrency per MRD) and
//! closes through the same command queue as the local API, so the CLOSE reaches Finesse
//! exactly once, on the current node, and only while steady.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::command::{Command, Request};
use crate::config::{GoneMarker, ProbeAction, ProbeConfig, ProbeMethod};
use crate::published::Shared;
use crate::view::DialogView;
use crate::vocab::{DialogAction, EventKind};

/// One probe's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// A status in `gone_status`.
    Gone,
    /// Any other 1xx-4xx answer: the session exists.
    Alive,
    /// Timeout, connection error or 5xx: no verdict, and never "gone".
    Unknown,
}

/// What to do after a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Probe again after the interval.
    Again,
    /// The session is alive: stop.
    Alive,
    /// `attempts` consecutive gone answers: an orphan.
    Orphan,
}

/// The next consecutive-gone count and the verdict, from the current count and a probe.
pub fn step(count: u32, probe: Probe, attempts: u32) -> (u32, Verdict) {
    match probe {
        Probe::Alive => (0, Verdict::Alive),
        Probe::Unknown => (0, Verdict::Again),
        Probe::Gone if count + 1 >= attempts => (count + 1, Verdict::Orphan),
        Probe::Gone => (count + 1, Verdict::Again),
    }
}

/// The most of a gone answer's body searched for the marker.
const MARKER_BODY: usize = 64 * 1024;

/// True when a gone-status answer carries what only the session service sends (or the
/// operator accepted bare statuses).
async fn marked(marker: &GoneMarker, mut r: reqwest::Response) -> bool {
    if let Some((name, value)) = &marker.header {
        let found = r.headers().get_all(name.as_str()).iter().any(|v| {
            value.as_ref().is_none_or(|want| {
                v.to_str()
                    .is_ok_and(|v| v.trim().eq_ignore_ascii_case(want))
            })
        });
        if found {
            return true;
        }
    }
    if let Some(text) = &marker.body_contains {
        let mut body = Vec::new();
        while body.len() < MARKER_BODY {
            match r.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(MARKER_BODY);
        if String::from_utf8_lossy(&body).contains(text.as_str()) {
            return true;
        }
    }
    let bare = marker.bare_status;
    if !bare {
        tracing::debug!(status = %r.status(), "a gone status without the configured marker: not counted");
    }
    bare
}

/// A URL with userinfo and query removed, for logs.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            if u.query().is_some() {
                u.set_query(Some("redacted"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable URL>".into(),
    }
}

struct Mrd {
    cfg: ProbeConfig,
    http: reqwest::Client,
    slots: Arc<Semaphore>,
}

/// The guard; cheap to clone.
#[derive(Clone)]
pub struct OrphanGuard {
    mrds: Arc<HashMap<u32, Mrd>>,
    running: Arc<Mutex<HashSet<String>>>,
    shared: Arc<Shared>,
    commands: mpsc::Sender<Request>,
    cancel: CancellationToken,
}

impl OrphanGuard {
    /// A guard for the MRDs that have a probe configured.
    pub fn new(
        probes: BTreeMap<u32, ProbeConfig>,
        shared: Arc<Shared>,
        commands: mpsc::Sender<Request>,
        cancel: CancellationToken,
    ) -> Result<Self, String> {
        let mut mrds = HashMap::new();
        for (id, cfg) in probes {
            let http = crate::tls::client_config(cfg.ca_pem.as_deref())
                .and_then(|tls| {
                    crate::tls::http_client(&tls, crate::tls::HttpSettings::both(cfg.timeout))
                })
                .map_err(|e| format!("orphan_probe.ca_file: {e}"))?;
            let slots = Arc::new(Semaphore::new(cfg.max_in_flight));
            mrds.insert(id, Mrd { cfg, http, slots });
        }
        Ok(Self {
            mrds: Arc::new(mrds),
            running: Arc::default(),
            shared,
            commands,
            cancel,
        })
    }

    /// Starts probing `d` unless its MRD has no probe or it is already being probed.
    pub fn watch(&self, d: &DialogView) {
        let Some(mrd) = self.mrds.get(&d.media_id) else {
            return;
        };
        let url = match mrd.cfg.url.render(d) {
            Ok(url) => url,
            Err(why) => {
                warn!(id = %d.id, reason = %why, "orphan probe skipped");
                return;
            }
        };
        if !self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(d.id.clone())
        {
            return;
        }
        let guard = self.clone();
        let d = d.clone();
        tokio::spawn(async move {
            guard.probe_loop(&d, &url).await;
            guard
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&d.id);
        });
    }

    async fn probe_once(&self, mrd: &Mrd, url: &str) -> Probe {
        let Ok(_slot) = mrd.slots.acquire().await else {
            return Probe::Unknown;
        };
        let req = if mrd.cfg.method == ProbeMethod::Head {
            mrd.http.head(url)
        } else {
            mrd.http.get(url)
        };
        match req.send().await {
            Ok(r) if mrd.cfg.gone_status.contains(&r.status().as_u16()) => {
                if marked(&mrd.cfg.marker, r).await {
                    Probe::Gone
                } else {
                    // Perhaps a proxy's own 404: no verdict.
                    Probe::Unknown
                }
            }
            Ok(r) if r.status().is_server_error() => Probe::Unknown,
            Ok(_) => Probe::Alive,
            Err(_) => Probe::Unknown,
        }
    }

    async fn probe_loop(&self, d: &DialogView, url: &str) {
        let Some(mrd) = self.mrds.get(&d.media_id) else {
            return;
        };
        let shown = redact(url);
        let mut count = 0;
        let mut state = d.state.clone();
        // Bounded: a target that stays unknown is given up after a few rounds.
        for _ in 0..(mrd.cfg.attempts * 3 + 3) {
            let Some(held) = self.shared.with(|v| v.dialogs.get(&d.id).cloned()) else {
                return;
            };
            if held.state != state {
                state = held.state.clone();
                count = 0;
            }
            let probe = tokio::select! {
                () = self.cancel.cancelled() => return,
                p = self.probe_once(mrd, url) => p,
            };
            let (next, verdict) = step(count, probe, mrd.cfg.attempts);
            count = next;
            match verdict {
                Verdict::Alive => return,
                Verdict::Orphan => {
                    self.orphaned(mrd, &held, &shown).await;
                    return;
                }
                Verdict::Again => {}
            }
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(mrd.cfg.interval) => {}
            }
        }
    }

    async fn submit(&self, id: &str, action: DialogAction) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let command = Command::DialogAction {
            id: id.to_owned(),
            action,
            target: None,
        };
        let Some(ticket) = Request::queue(&self.commands, command, deadline).await else {
            return false;
        };
        matches!(ticket.answer.await, Ok(Ok(())))
    }

    async fn orphaned(&self, mrd: &Mrd, d: &DialogView, url: &str) {
        let action = mrd.cfg.action.as_str();
        warn!(id = %d.id, probe = %url, action, "orphan dialog: its session is gone");
        self.shared.metrics.orphan(&d.media_id.to_string(), action);
        self.shared.events.publish(
            EventKind::DialogOrphaned,
            json!({ "dialog": d, "mediaId": d.media_id, "action": action, "probe": url }),
        );
        if mrd.cfg.action != ProbeAction::Close {
            return;
        }
        // An offered task cannot be closed directly: accept it first.
        if d.state == "OFFERED" {
            if !self.submit(&d.id, DialogAction::Accept).await {
                warn!(id = %d.id, "orphan: ACCEPT before CLOSE failed");
                return;
            }
            for _ in 0..100 {
                let now = self
                    .shared
                    .with(|v| v.dialogs.get(&d.id).map(|x| x.state.clone()));
                if now.as_deref() != Some("OFFERED") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if self.submit(&d.id, DialogAction::Close).await {
            info!(id = %d.id, "orphan dialog closed");
        } else {
            warn!(id = %d.id, "orphan: CLOSE failed");
        }
    }
}

#[cfg(test)]
mod tests;
