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

pub mod command;
mod resync;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::xmlstream::Timeouts;
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::config::Config;
use crate::finesse::model::{Notification, SystemInfo};
use crate::finesse::rest::{Rest, RestError, error_chain};
use crate::model::{DialogView, MediaView, needs_sign_in, settings_drift};
use crate::xmpp::link::{Link, LinkEvent};
use crate::xmpp::session::{LoginParams, is_auth_error};
use crate::xmpp::{Connector, TlsMode};
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
    /// blocks, as a hung daemon would, so a test can see the watchdog pings stop.
    stall_file: Option<std::path::PathBuf>,
    /// The orphan-dialog guard, when an MRD has a probe.
    orphans: Option<crate::orphan::Guard>,
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
        let tls = tls_config(cfg.ca_pem.as_deref()).map_err(Fatal::Setup)?;
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

    /// How often the loop must show progress: every second, or a quarter of the systemd
    /// watchdog interval if that is shorter.
    fn beat_every(&self) -> Duration {
        let second = Duration::from_secs(1);
        self.shared
            .notifier
            .watchdog()
            .map_or(second, |w| (w / 4).clamp(Duration::from_millis(10), second))
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

    /// Re-reads the config file. Invalid: keep running on the old one and say why. Valid:
    /// apply it; changed nodes, credentials, CA or XMPP settings end the session (reconnect),
    /// changed media settings or desired states lead to a resync (one corrective sign-in at
    /// most). `Some` when steady state must end.
    fn reload(&mut self) -> Option<Exit> {
        self.shared.notifier.reloading();
        let status = |s: &Self| format!("{:?}", s.shared.snapshot().phase);
        let new = match Config::load(&self.cfg.source) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "reload refused: keeping the running configuration");
                self.shared.notifier.ready(&status(self));
                return None;
            }
        };
        for w in &new.warnings {
            warn!("{w}");
        }
        let reconnect = new.nodes != self.cfg.nodes
            || new.agent_id != self.cfg.agent_id
            || new.password != self.cfg.password
            || new.ca_pem != self.cfg.ca_pem
            || new.xmpp.port != self.cfg.xmpp.port
            || new.xmpp.tls != self.cfg.xmpp.tls
            || new.xmpp.domain != self.cfg.xmpp.domain
            || new.xmpp.resource != self.cfg.xmpp.resource
            || new.xmpp.ping_interval != self.cfg.xmpp.ping_interval
            || new.xmpp.ping_timeout != self.cfg.xmpp.ping_timeout;
        let resync = new.media != self.cfg.media;
        if new.api_listen != self.cfg.api_listen {
            warn!("api.listen changed: it takes effect at the next restart");
        }
        match (
            Rest::new(
                &new.agent_id,
                new.password.clone(),
                new.ca_pem.as_deref(),
                new.request_timeout,
                new.max_body,
            ),
            tls_config(new.ca_pem.as_deref()),
        ) {
            (Ok(rest), Ok(tls)) => {
                self.rest = rest;
                self.tls = tls;
            }
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %e, "reload refused: keeping the running configuration");
                self.shared.notifier.ready(&status(self));
                return None;
            }
        }
        self.backoff = Backoff::new(&new.recovery);
        self.cfg = new;
        info!(reconnect, resync, "configuration reloaded");
        self.shared.notifier.ready(&status(self));
        if reconnect {
            self.link.drop_session();
            self.shared.set_link("xmpp", false, Some("reload"));
            self.node = None;
            self.down_since = None;
            Some(Exit::Resync("reload"))
        } else if resync {
            Some(Exit::Resync("reload"))
        } else {
            None
        }
    }

    /// Applies `[shutdown] on_stop` to every MRD on the current node, within its timeout.
    async fn apply_stop_policy(&self) {
        let policy = &self.cfg.shutdown;
        let state = match policy.on_stop.as_str() {
            "logout" => "LOGOUT",
            "not_ready" => "NOT_READY",
            _ => return,
        };
        let Some(idx) = self.node else { return };
        let node = self.cfg.nodes[idx].clone();
        let all = async {
            for m in &self.cfg.media {
                match self
                    .rest
                    .set_state(&node, m.id, state, policy.reason_code_id)
                    .await
                {
                    Ok(_) => info!(mrd = m.id, state, "stop policy applied"),
                    Err(e) => warn!(mrd = m.id, state, error = %e, "stop policy failed"),
                }
            }
        };
        if tokio::time::timeout(policy.timeout, all).await.is_err() {
            warn!(
                timeout_ms = policy.timeout.as_millis() as u64,
                "stop policy timed out"
            );
        }
    }

    /// Runs until shutdown.
    pub async fn run(mut self) -> Result<(), Fatal> {
        let mut delay = false;
        loop {
            if std::mem::take(&mut self.reload_pending) {
                let _ = self.reload();
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
            }
            delay = true;
            if self.shutdown.is_cancelled() {
                break;
            }
            let Some((idx, info)) = self.choose_node().await else {
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
                    delay = false;
                }
            }
        }
        self.shared.notifier.stopping();
        self.set_phase(Phase::Stopping, None);
        self.apply_stop_policy().await;
        Ok(())
    }

    /// SystemInfo on the current node first, then the others; the first in service wins. The
    /// others are only considered once the current node has been down for `failover_after`.
    async fn choose_node(&mut self) -> Option<(usize, SystemInfo)> {
        let n = self.cfg.nodes.len();
        let start = self.node.unwrap_or(0);
        let mut cause = "rest_unreachable";
        for k in 0..n {
            let idx = (start + k) % n;
            if k > 0 && self.node.is_some() && !self.may_fail_over() {
                break;
            }
            let url = self.cfg.nodes[idx].clone();
            let result = tokio::select! {
                () = self.shutdown.cancelled() => return None,
                r = self.rest.system_info(&url) => r,
            };
            match result {
                Ok(info) if info.in_service() => {
                    if k == 0 {
                        self.down_since = None;
                    }
                    return Some((idx, info));
                }
                Ok(info) => {
                    cause = "out_of_service";
                    info!(node = %url, status = %info.status, "node not in service");
                }
                Err(e) => {
                    cause = e.cause();
                    if matches!(e, RestError::Malformed(_)) {
                        self.shared.with(|v| v.counters.malformed += 1);
                    }
                    warn!(node = %url, error = %e, "SystemInfo failed");
                }
            }
        }
        if self.node.is_some() && self.down_since.is_none() {
            self.down_since = Some(Instant::now());
        }
        self.shared.set_link("rest", false, Some(cause));
        let phase = if self.shared.with(|v| v.counters.resyncs) == 0 {
            Phase::Starting
        } else {
            Phase::Recovering
        };
        self.set_phase(phase, Some(cause));
        None
    }

    /// True once the current node has been down for `failover_after`.
    fn may_fail_over(&mut self) -> bool {
        let since = *self.down_since.get_or_insert_with(Instant::now);
        since.elapsed() >= self.cfg.recovery.failover_after
    }

    fn login_params(&self, idx: usize, info: &SystemInfo) -> Result<LoginParams, String> {
        let url = &self.cfg.nodes[idx];
        let host = url.host_str().unwrap_or("localhost");
        let domain = self
            .cfg
            .xmpp
            .domain
            .clone()
            .unwrap_or_else(|| info.xmpp_domain.trim().to_owned());
        if domain.is_empty() {
            return Err("SystemInfo names no xmppDomain and the config sets none".into());
        }
        let node_info = if idx == 0 {
            info.primary_node.as_ref()
        } else {
            info.secondary_node.as_ref()
        };
        let from_info = node_info.and_then(|n| {
            let p = if self.cfg.xmpp.tls == TlsMode::Direct {
                &n.xmpp_secure_port
            } else {
                &n.xmpp_port
            };
            p.as_deref().and_then(|p| p.trim().parse::<u16>().ok())
        });
        let port = self
            .cfg
            .xmpp
            .port
            .or(from_info)
            .unwrap_or(match self.cfg.xmpp.tls {
                TlsMode::Direct => 5223,
                _ => 5222,
            });
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .map_err(|e| format!("{host}:{port}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}:{port}: no address"))?;
        let jid: Jid = format!("{}@{domain}/{}", self.cfg.agent_id, self.cfg.xmpp.resource)
            .parse()
            .map_err(|e| format!("JID: {e}"))?;
        Ok(LoginParams {
            connector: Connector::new(addr, self.cfg.xmpp.tls, self.tls.clone()),
            jid,
            password: self.cfg.password.expose().to_owned(),
            timeouts: Timeouts {
                read_timeout: self.cfg.xmpp.ping_interval,
                response_timeout: self.cfg.xmpp.ping_timeout,
            },
            disable_sm: true,
        })
    }

    /// Logs in, sends presence and subscribes. `Err(true)` = credentials rejected.
    async fn connect_xmpp(&mut self, idx: usize, info: &SystemInfo) -> Result<(), bool> {
        let params = match self.login_params(idx, info) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "cannot build the XMPP login");
                self.set_phase(Phase::Recovering, Some("xmpp_config"));
                return Err(false);
            }
        };
        // A server that accepts TCP and then says nothing must not hold us forever.
        let limit = self.cfg.request_timeout + self.cfg.xmpp.ping_timeout;
        let connected = tokio::select! {
            () = self.shutdown.cancelled() => return Err(false),
            r = tokio::time::timeout(limit, self.link.connect(&params)) => match r {
                Ok(r) => r,
                Err(_) => {
                    warn!(timeout_ms = limit.as_millis() as u64, "XMPP login timed out");
                    self.set_phase(Phase::Recovering, Some("xmpp_timeout"));
                    return Err(false);
                }
            },
        };
        if let Err(e) = connected {
            let auth = is_auth_error(&e);
            warn!(error = %error_chain(&e), auth, "XMPP login failed");
            if !auth {
                self.set_phase(Phase::Recovering, Some("xmpp_unreachable"));
            }
            return Err(auth);
        }
        // Wait for the stream to report the new session, then set it up.
        let deadline = Instant::now() + self.cfg.request_timeout;
        let mut up = false;
        let mut pending: Vec<String> = Vec::new();
        while Instant::now() < deadline {
            if up && pending.is_empty() {
                break;
            }
            let ev = tokio::select! {
                () = self.shutdown.cancelled() => return Err(false),
                () = tokio::time::sleep_until(deadline) => break,
                ev = self.link.next() => ev,
            };
            match ev {
                Some(LinkEvent::Up) => {
                    up = true;
                    self.shared.set_link("xmpp", true, None);
                    self.link.send_presence().await;
                    let pubsub: Jid = match format!("pubsub.{}", params.jid.domain()).parse() {
                        Ok(j) => j,
                        Err(_) => return Err(false),
                    };
                    let me = &params.jid;
                    for node in [
                        format!("/finesse/api/User/{}/Media", self.cfg.agent_id),
                        format!("/finesse/api/User/{}/Dialogs/Media", self.cfg.agent_id),
                        "/finesse/api/SystemInfo".to_owned(),
                    ] {
                        pending.push(self.link.subscribe(&pubsub, me, &node).await);
                    }
                }
                Some(LinkEvent::IqResult { id, ok }) => {
                    if pending.contains(&id) && !ok {
                        warn!(%id, "a pubsub subscription was refused");
                    }
                    pending.retain(|p| *p != id);
                }
                Some(LinkEvent::Down) | None => break,
                Some(other) => self.link_requeue(other),
            }
        }
        if !(up && pending.is_empty()) {
            warn!(
                up,
                pending = pending.len(),
                "XMPP session set-up incomplete"
            );
            self.link.drop_session();
            self.shared.set_link("xmpp", false, Some("xmpp_setup"));
            self.set_phase(Phase::Recovering, Some("xmpp_setup"));
            return Err(false);
        }
        info!(jid = %params.jid, addr = %params.connector_addr(), "XMPP session up");
        Ok(())
    }

    /// Events read while setting up are applied as in steady state.
    fn link_requeue(&mut self, ev: LinkEvent) {
        if matches!(ev, LinkEvent::Update { .. }) {
            self.shared.metrics.notification("buffered");
        }
        let _ = self.apply(ev);
    }

    async fn resync_or_cause(&mut self, idx: usize) -> bool {
        self.set_phase(Phase::Resyncing, None);
        let shutdown = self.shutdown.clone();
        let result = tokio::select! {
            () = shutdown.cancelled() => return false,
            r = resync::run(self, idx) => r,
        };
        match result {
            Ok(()) => {
                self.down_since = None;
                self.set_phase(Phase::Steady, None);
                if let Some(at) = self.failure_at.take() {
                    self.shared.metrics.ready_after(at.elapsed().as_secs_f64());
                }
                true
            }
            Err(e) => {
                warn!(error = %e, "resync failed");
                if matches!(e, RestError::Malformed(_)) {
                    self.shared.with(|v| v.counters.malformed += 1);
                }
                if matches!(e, RestError::Transport(_)) {
                    self.shared.set_link("rest", false, Some(e.cause()));
                }
                if matches!(e, RestError::Unauthorized) {
                    self.shared.metrics.auth_failure();
                }
                let phase = if matches!(e, RestError::Unauthorized) {
                    Phase::AuthFailed
                } else {
                    Phase::Recovering
                };
                self.set_phase(phase, Some(e.cause()));
                false
            }
        }
    }

    async fn steady(&mut self, idx: usize) -> Exit {
        let since = Instant::now();
        let mut reset_done = false;
        let mut tick = tokio::time::interval(self.beat_every());
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return Exit::Shutdown,
                _ = tick.tick() => {
                    if let Some(path) = &self.stall_file {
                        while path.exists() {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    self.shared.beat();
                    if !reset_done && since.elapsed() >= self.cfg.recovery.healthy_after {
                        self.backoff.reset();
                        reset_done = true;
                    }
                    let every = self.cfg.recovery.resync_every;
                    if !every.is_zero() && since.elapsed() >= every {
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

    /// Carries out one API request on node `idx`, unless its caller is gone or it expired.
    async fn handle(&mut self, idx: usize, req: command::Request) {
        use command::{Command, CommandError};
        if req.reply.is_closed() || Instant::now() > req.deadline {
            info!(command = ?req.command, "request expired while recovering; not sent");
            return;
        }
        let node = self.cfg.nodes[idx].clone();
        let rest_err = |e: RestError| match e {
            RestError::Transport(m) => CommandError::Unavailable(m),
            RestError::Server { status } => CommandError::Unavailable(format!("HTTP {status}")),
            RestError::Client { status: 404, .. } => {
                CommandError::NotFound("Finesse does not know it".into())
            }
            RestError::Client { status, errors } => CommandError::Finesse(format!(
                "HTTP {status}: {}",
                errors
                    .iter()
                    .map(|e| format!("{} {}", e.data, e.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            other => CommandError::Finesse(other.to_string()),
        };
        let result = match req.command {
            Command::DialogAction { id, action, target } => {
                let held = self.shared.with(|v| v.dialogs.get(&id).cloned());
                match held {
                    None => Err(CommandError::NotFound(format!("no dialog {id}"))),
                    Some(d)
                        if !crate::model::allowed_actions(&d.state).contains(&action.as_str()) =>
                    {
                        Err(CommandError::NotAllowed(format!(
                            "{action} is not allowed in state {}",
                            d.state
                        )))
                    }
                    Some(_) => {
                        info!(%id, %action, "dialog action");
                        self.rest
                            .dialog_action(&node, &id, &action, target.as_deref())
                            .await
                            .map_err(rest_err)
                    }
                }
            }
            Command::SetState { mrd, state, reason } => {
                match self.cfg.media.iter_mut().find(|m| m.id == mrd) {
                    None => Err(CommandError::NotFound(format!(
                        "MRD {mrd} is not configured"
                    ))),
                    Some(m) => {
                        m.state = state.clone();
                        m.reason_code_id = reason;
                        info!(mrd, %state, ?reason, "desired state changed by the API");
                        self.rest
                            .set_state(&node, mrd, &state, reason)
                            .await
                            .map(|_| ())
                            .map_err(rest_err)
                    }
                }
            }
            Command::SetRoutable { mrd, routable } => {
                if self.cfg.media.iter().any(|m| m.id == mrd) {
                    self.rest
                        .set_routable(&node, mrd, routable)
                        .await
                        .map(|_| ())
                        .map_err(rest_err)
                } else {
                    Err(CommandError::NotFound(format!(
                        "MRD {mrd} is not configured"
                    )))
                }
            }
        };
        let _ = req.reply.send(result);
    }

    /// Applies one link event to the view; returns why steady state must end, if it must.
    fn apply(&mut self, ev: LinkEvent) -> Option<Exit> {
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

    fn apply_update(&mut self, node: &str, update: crate::finesse::model::Update) -> Option<Exit> {
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
                for d in &list {
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
                    self.upsert_dialog(&d);
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

    fn upsert_dialog(&mut self, d: &crate::finesse::model::Dialog) -> Option<DialogView> {
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

    /// Keeps the XMPP session and polls SystemInfo until the node is back (or the other is
    /// in service, which the next pass picks up). False on shutdown.
    async fn wait_in_service(&mut self, idx: usize) -> bool {
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

impl LoginParams {
    fn connector_addr(&self) -> String {
        format!("{:?}", self.connector)
    }
}

fn tls_config(ca_pem: Option<&[u8]>) -> Result<Arc<tokio_xmpp::rustls::ClientConfig>, String> {
    match ca_pem {
        Some(pem) => Connector::client_config_from_pem(pem).map_err(|e| format!("ca_file: {e}")),
        None => {
            let mut roots = tokio_xmpp::rustls::RootCertStore::empty();
            // No extra CA: trust the platform store, as tokio-xmpp itself would.
            for cert in rustls_native_certs_fallback() {
                let _ = roots.add(cert);
            }
            let provider = Arc::new(tokio_xmpp::rustls::crypto::aws_lc_rs::default_provider());
            let cfg = tokio_xmpp::rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(cfg))
        }
    }
}

fn rustls_native_certs_fallback() -> Vec<tokio_xmpp::rustls::pki_types::CertificateDer<'static>> {
    let path = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
    let Ok(pem) = std::fs::read(path) else {
        return Vec::new();
    };
    use tokio_xmpp::rustls::pki_types::pem::PemObject;
    tokio_xmpp::rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect()
}
