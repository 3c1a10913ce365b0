//! The supervisor: one loop that holds the REST and XMPP sessions, notices when either dies,
//! recovers with jittered backoff and A/B failover, and resyncs the agent's media and dialogs.
//!
//! 1. **Choose a node**: GET SystemInfo on the current node first, then the other; the first
//!    IN_SERVICE one wins. A switch counts as a failover.
//! 2. **XMPP**: log in to that node's host (port from the config or SystemInfo; the JID is
//!    `<id>@<xmppDomain>/<resource>`), send presence, subscribe to `/Media`, `/Dialogs/Media`
//!    and SystemInfo with the full JID. A rejected password moves to `auth_failed` and waits
//!    `auth_retry`, so the daemon can never lock the account.
//! 3. **Resync** ([`resync`]): Media GET, sign-in or correction or state change, Dialog LIST.
//!    Notifications arriving meanwhile stay queued in the link and are applied afterwards, in
//!    order, so nothing offered or closed mid-resync is lost.
//! 4. **Steady**: apply notifications. XMPP loss → back to 1 after a backoff delay.
//!    SystemInfo OUT_OF_SERVICE or `finesse` presence UNAVAILABLE → keep the session, wait for
//!    the node to come back (polling SystemInfo), and resync; if the other node is in
//!    service meanwhile, fail over.

mod apply;
pub mod command;
mod connect;
mod control;
mod resync;
pub mod state;
mod steady;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::config::Config;
use crate::finesse::rest::Rest;
use crate::xmpp::link::Link;
use state::{Phase, Shared};

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    /// The configuration cannot be used (e.g. a bad CA).
    #[error("{0}")]
    Setup(String),
}

/// Why the steady loop ended.
enum Exit {
    Shutdown,
    /// Reconnect (after a backoff delay), with this cause.
    Lost(&'static str),
    /// Keep the session; wait for the node and resync.
    Wait(&'static str),
    /// Resync now (a notification showed the media signed out or drifted).
    Resync(&'static str),
}

/// The supervisor.
pub struct Supervisor {
    cfg: Config,
    rest: Rest,
    link: Link,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    backoff: Backoff,
    node: Option<usize>,
    /// Since when the current node has been seen down (for `failover_after`).
    down_since: Option<Instant>,
    commands: tokio::sync::mpsc::Receiver<command::Request>,
    /// When the current outage was detected (for time-to-ready).
    failure_at: Option<Instant>,
    /// READY=1 went out (after the first resync).
    ready_sent: std::sync::atomic::AtomicBool,
    /// SIGHUP arrivals.
    reloads: tokio::sync::mpsc::UnboundedReceiver<()>,
    /// A reload arrived while waiting; apply it at the top of the loop.
    reload_pending: bool,
    /// Test hook (`FINESSE_TASKD_TEST_STALL_FILE`): while this file exists, the main loop
    /// stops, as a hung daemon would, so a test can see the watchdog pings stop.
    stall_file: Option<std::path::PathBuf>,
    /// The orphan-dialog guard, when an MRD has a probe.
    orphans: Option<crate::orphan::Guard>,
    /// A node just seen in service (an IN_SERVICE SystemInfo, or steady with a notification
    /// asking for a resync): the next attempt skips asking SystemInfo again.
    confirmed: Option<usize>,
    /// The last SystemInfo that chose a node.
    last_info: Option<crate::finesse::model::SystemInfo>,
    tls: Arc<tokio_xmpp::rustls::ClientConfig>,
}

impl Supervisor {
    /// Builds the supervisor; nothing connects yet.
    pub fn new(
        cfg: Config,
        shared: Arc<Shared>,
        shutdown: CancellationToken,
        commands: tokio::sync::mpsc::Receiver<command::Request>,
    ) -> Result<Self, Fatal> {
        let rest = Rest::new(
            &cfg.agent_id,
            cfg.password.clone(),
            cfg.ca_pem.as_deref(),
            cfg.request_timeout,
            cfg.max_body,
        )
        .map_err(Fatal::Setup)?;
        let tls = connect::tls_config(cfg.ca_pem.as_deref()).map_err(Fatal::Setup)?;
        let backoff = Backoff::new(&cfg.recovery);
        Ok(Self {
            cfg,
            rest,
            link: Link::new(),
            shared,
            shutdown,
            backoff,
            node: None,
            down_since: None,
            commands,
            failure_at: None,
            ready_sent: std::sync::atomic::AtomicBool::new(false),
            reloads: tokio::sync::mpsc::unbounded_channel().1,
            reload_pending: false,
            orphans: None,
            confirmed: None,
            last_info: None,
            stall_file: std::env::var_os("FINESSE_TASKD_TEST_STALL_FILE")
                .map(std::path::PathBuf::from),
            tls,
        })
    }

    fn set_phase(&self, phase: Phase, cause: Option<&str>) {
        let (changed, node, took) = self.shared.with(|v| {
            let changed = v.phase != phase || v.cause.as_deref() != cause;
            let took = v.phase_since.elapsed();
            if v.phase != phase {
                v.phase_since = Instant::now();
            }
            v.phase = phase;
            if cause.is_some() || phase == Phase::Steady {
                v.cause = cause.map(str::to_owned);
            }
            (changed, v.node.clone(), took)
        });
        self.shared.phase.send_replace(phase);
        if changed {
            let status = format!(
                "{phase:?} on {}{}",
                node.as_deref().unwrap_or("no node"),
                cause.map(|c| format!(" ({c})")).unwrap_or_default()
            );
            if phase == Phase::Steady
                && !self
                    .ready_sent
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                self.shared.notifier.ready(&status);
            } else {
                self.shared.notifier.status(&status);
            }
            info!(phase = ?phase, cause = cause.unwrap_or(""), node = node.as_deref().unwrap_or(""), previous_ms = took.as_millis() as u64, "phase");
            self.shared.events.publish(
                "phase",
                serde_json::json!({ "phase": phase, "cause": cause, "node": node }),
            );
        }
        self.shared.beat();
    }

    /// Sleeps `d` in short steps (so health keeps beating); false when shutdown came first.
    async fn pause(&mut self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            self.shared.beat();
            let now = Instant::now();
            if now >= until {
                return true;
            }
            let step = (until - now).min(self.beat_every());
            tokio::select! {
                () = self.shutdown.cancelled() => return false,
                () = tokio::time::sleep(step) => {}
                Some(()) = self.reloads.recv() => {
                    self.reload_pending = true;
                    return true;
                }
            }
        }
    }

    /// How often the loop must show progress: a quarter of the systemd watchdog interval, and
    /// at least four times within /healthz's stall limit.
    fn beat_every(&self) -> Duration {
        let most = crate::api::STALL / 4;
        self.shared
            .notifier
            .watchdog()
            .map_or(most, |w| (w / 4).clamp(Duration::from_millis(10), most))
    }

    /// Test hook: while the stall file exists the main loop makes no progress (the thread
    /// stays free, as with an await that never completes).
    async fn stall_hook(&self) {
        if let Some(path) = &self.stall_file {
            while path.exists() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Dialogs are checked by `guard` (see [`crate::orphan`]).
    pub fn with_orphans(mut self, guard: crate::orphan::Guard) -> Self {
        self.orphans = Some(guard);
        self
    }

    /// Reloads are taken from `rx` (SIGHUP).
    pub fn with_reloads(mut self, rx: tokio::sync::mpsc::UnboundedReceiver<()>) -> Self {
        self.reloads = rx;
        self
    }

    /// Runs until shutdown.
    pub async fn run(mut self) -> Result<(), Fatal> {
        let mut delay = false;
        loop {
            if std::mem::take(&mut self.reload_pending) {
                let _ = self.reload();
                // The nodes may have changed: ask SystemInfo again.
                self.confirmed = None;
                delay = false;
            }
            if delay {
                let d = self.backoff.next_delay();
                info!(
                    delay_ms = d.as_millis() as u64,
                    attempt = self.backoff.attempts(),
                    "retrying after backoff"
                );
                if !self.pause(d).await {
                    break;
                }
                info!(attempt = self.backoff.attempts(), "attempt started");
            }
            delay = true;
            if self.shutdown.is_cancelled() {
                break;
            }
            let known = self
                .confirmed
                .take()
                .filter(|&i| i < self.cfg.nodes.len())
                .zip(self.last_info.clone());
            let chosen = match known {
                Some(k) => Some(k),
                None => self.choose_node().await,
            };
            let Some((idx, info)) = chosen else {
                continue;
            };
            if let Some(old) = self.node.filter(|old| *old != idx) {
                info!(from = %self.cfg.nodes[old], to = %self.cfg.nodes[idx], "failing over");
                self.shared.with(|v| v.counters.failovers += 1);
                self.shared.metrics.failover();
                self.link.drop_session();
            }
            self.node = Some(idx);
            self.shared.with(|v| {
                v.node = Some(
                    self.cfg.nodes[idx]
                        .as_str()
                        .trim_end_matches('/')
                        .to_owned(),
                );
            });
            self.shared.set_link("rest", true, None);
            if !self.link.is_up() {
                match self.connect_xmpp(idx, &info).await {
                    Ok(()) => {}
                    Err(auth) if auth => {
                        self.shared.metrics.auth_failure();
                        self.set_phase(Phase::AuthFailed, Some("auth_failed"));
                        if !self.pause(self.cfg.recovery.auth_retry).await {
                            break;
                        }
                        delay = false;
                        continue;
                    }
                    Err(_) => continue,
                }
            }
            if !self.resync_or_cause(idx).await {
                continue;
            }
            let outcome = self.steady(idx).await;
            self.failure_at.get_or_insert_with(Instant::now);
            match outcome {
                Exit::Shutdown => break,
                Exit::Lost(_) if self.link.lost_to_conflict() => {
                    // Another session took our resource. Reconnecting at once would only
                    // kick it in turn: report it and wait as long as after a bad password.
                    warn!("XMPP stream error: conflict (another session uses this resource)");
                    self.shared.with(|v| v.counters.reconnects += 1);
                    self.shared.metrics.reconnect("xmpp", "conflict");
                    self.set_phase(Phase::Conflict, Some("conflict"));
                    if !self.pause(self.cfg.recovery.auth_retry).await {
                        break;
                    }
                    delay = false;
                }
                Exit::Lost(cause) => {
                    self.shared.with(|v| v.counters.reconnects += 1);
                    self.shared.metrics.reconnect("xmpp", cause);
                    self.set_phase(Phase::Recovering, Some(cause));
                }
                Exit::Wait(cause) => {
                    self.shared.metrics.reconnect("node", cause);
                    self.set_phase(Phase::Recovering, Some(cause));
                    if !self.wait_in_service(idx).await {
                        break;
                    }
                    delay = false;
                }
                Exit::Resync(cause) => {
                    info!(cause, "resync requested by a notification");
                    self.confirmed = self.link.is_up().then_some(idx);
                    delay = false;
                }
            }
        }
        self.shared.notifier.stopping();
        self.set_phase(Phase::Stopping, None);
        self.apply_stop_policy().await;
        Ok(())
    }
}
