//! The driver: the I/O half of recovery. It owns the REST client, the XMPP link, the command
//! queue and the reloads, performs what the [`Machine`] asks for (ask SystemInfo, log in,
//! resync, hold steady state, wait for a node, sleep) and feeds each outcome back as an
//! [`Input`]. It decides nothing about recovery itself: phase, cause, counters and readiness
//! come from the machine's actions, which it writes into what the agent publishes.
//!
//! - [`connect`]: one SystemInfo request, and the XMPP login with presence and subscriptions.
//! - [`resync`]: Media GET, sign-in or correction or state change, Dialog LIST.
//! - [`steady`]: steady state (notifications, commands, reloads, the machine's timers) and
//!   the wait for a node to come back.
//! - [`apply`]: what one link event changes in the view, and what it asks of the machine.
//! - [`control`]: API commands, reloads and the stop policy.
//! - [`credentials`]: the password or SSO token pair, its refresh, and what a refusal means.
//!
//! Watchdog pings follow progress: every input fed to the machine, every REST answer in a
//! resync and every step of a login counts, and idle waits beat on a timer. A single step
//! that hangs longer than the watchdog is a real hang.

mod apply;
mod connect;
mod control;
mod credentials;
mod desired;
mod memo;
mod persist;
mod resync;
mod steady;
pub mod test_hook;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clients::{Clients, Provider};
use crate::command::Request;
use crate::config::{Config, Loaded};
use crate::finesse::model::SystemInfo;
use crate::finesse::rest::Rest;
use crate::machine::{Action, Count, Input, Machine, NodeAnswer, SleepKind, State};
use crate::published::{STALL, Shared, Watcher};
use crate::vocab::LinkKind;
use crate::xmpp::link::Link;

/// Errors that stop the daemon before it starts.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The TLS or HTTP client cannot be built from the configuration.
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// The driver of one agent.
pub struct Driver {
    cfg: Config,
    rest: Rest,
    link: Link,
    tls: Arc<rustls::ClientConfig>,
    /// Who builds the REST client and TLS configuration, and the cap logins wait for.
    provider: Arc<dyn Provider>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    machine: Machine,
    /// The node the machine last chose (for commands and the stop policy).
    node: Option<usize>,
    /// The SystemInfo that chose a node (ports and domain for the XMPP login).
    last_info: Option<SystemInfo>,
    commands: tokio::sync::mpsc::Receiver<Request>,
    reloads: tokio::sync::mpsc::UnboundedReceiver<Loaded>,
    watcher: Option<Watcher>,
    hook: test_hook::StallHook,
    /// The operation being performed (resumed when an input does not move the machine).
    current: Option<Action>,
    /// What is remembered per MRD between resyncs.
    memo: memo::Memo,
    /// While the password is held back after a refusal: until then.
    held_until: Option<Instant>,
    /// The config file's own desired states (before the API's are put on top).
    file_desired: desired::Wanted,
    /// The MRDs the API made unroutable (restored after a sign-in).
    unroutable: std::collections::BTreeSet<u32>,
    /// The SSO token pair and its refresh state (`auth = "sso"` only).
    sso: Option<credentials::SsoRun>,
}

impl Driver {
    /// Builds the driver; nothing connects yet.
    pub fn new(
        mut cfg: Config,
        shared: Arc<Shared>,
        shutdown: CancellationToken,
        commands: tokio::sync::mpsc::Receiver<Request>,
        reloads: tokio::sync::mpsc::UnboundedReceiver<Loaded>,
        provider: Arc<dyn Provider>,
    ) -> Result<Self, SetupError> {
        let sso = credentials::SsoRun::new(&cfg);
        let Clients { tls, rest } =
            provider.clients(&cfg, Self::credentials(&cfg, sso.as_ref()))?;
        // The one random draw at the edge: everything the machine decides follows from it.
        let seed: u64 = rand::random();
        tracing::debug!(seed, "recovery machine seeded");
        let machine = Machine::new(&cfg.recovery, cfg.nodes.len(), seed);
        let file_desired = desired::file_values(&cfg.media);
        desired::overlay(cfg.state_dir.as_deref(), &mut cfg.media);
        let unroutable = desired::unroutable(cfg.state_dir.as_deref());
        Ok(Self {
            cfg,
            rest,
            link: Link::new().with_ping_counter(shared.metrics.xmpp_pings()),
            tls,
            provider,
            shared,
            shutdown,
            machine,
            node: None,
            last_info: None,
            commands,
            reloads,
            watcher: None,
            hook: test_hook::StallHook::from_env(),
            current: None,
            memo: memo::Memo::default(),
            held_until: None,
            file_desired,
            unroutable,
            sso,
        })
    }

    /// Dialogs worth a check are handed to `watcher` (the orphan guard).
    pub fn with_watcher(mut self, watcher: Watcher) -> Self {
        self.watcher = Some(watcher);
        self
    }

    /// Runs until shutdown, then applies the stop policy.
    pub async fn run(mut self) {
        let mut input = match self.persisted_hold() {
            Some(until) => {
                warn!(
                    remaining_ms =
                        until.saturating_duration_since(Instant::now()).as_millis() as u64,
                    "an earlier run's password refusal is still being waited out"
                );
                Input::StartHeld { until }
            }
            None => Input::Start,
        };
        loop {
            let now = Instant::now();
            // The facts first: the machine names any refusal in `input` from them.
            self.machine.step(Input::AuthFacts(self.auth_facts()), now);
            let actions = self.machine.step(input, now);
            self.publish_counters();
            self.shared.beat();
            let mut operation = None;
            for action in actions {
                if action.is_operation() {
                    operation = Some(action);
                } else {
                    self.record(action);
                }
            }
            let Some(op) = operation else {
                // The machine stayed where it was: keep doing what it asked for last.
                input = self.resume().await;
                continue;
            };
            if op == Action::Stop {
                let accepted = self.memo.settle(None);
                self.accept_desired(accepted);
                break;
            }
            if !matches!(op, Action::Steady { .. }) {
                // Leaving steady state: actions Finesse accepted and did not refuse so far
                // are answered now, not left waiting through a recovery.
                let accepted = self.memo.settle(None);
                self.accept_desired(accepted);
            }
            if !matches!(op, Action::Sleep { .. }) {
                // Not waiting any more (a sleep sets it, and keeps it through a reload).
                self.shared.with(|v| v.next_attempt_at = None);
            }
            self.current = Some(op.clone());
            input = self.perform(op).await;
        }
        self.apply_stop_policy().await;
    }

    /// Carries out one action that takes no time.
    fn record(&mut self, action: Action) {
        match action {
            Action::Phase {
                phase,
                cause,
                ready,
            } => {
                if phase == crate::vocab::Phase::Steady {
                    self.clear_hold();
                }
                self.shared.set_phase(phase, cause, ready);
            }
            Action::Count(c) => self.count(c),
            Action::SetNode(idx) => {
                self.node = Some(idx);
                let url = self.cfg.nodes[idx]
                    .as_str()
                    .trim_end_matches('/')
                    .to_owned();
                self.shared.with(|v| v.node = Some(url));
                self.shared.set_link(LinkKind::Rest, true, None);
            }
            Action::RestDown(cause) => self.shared.set_link(LinkKind::Rest, false, Some(cause)),
            Action::XmppLink { up, cause } => self.shared.set_link(LinkKind::Xmpp, up, cause),
            Action::FailOver { from, to } => {
                info!(from = %self.cfg.nodes[from], to = %self.cfg.nodes[to], "failing over");
                self.link.drop_session();
            }
            Action::NotifyStopping => self.shared.notifier.stopping(),
            _ => {}
        }
    }

    /// A counter the machine bumped, into the metrics (the view's counters are the machine's
    /// own, copied by [`Self::publish_counters`]).
    fn count(&self, c: Count) {
        let m = &self.shared.metrics;
        match c {
            Count::Reconnect { scope, cause } => m.reconnect(scope, cause),
            Count::Failover => m.failover(),
            Count::Resync => m.resync(),
            Count::Signin(reason) => m.signin(reason),
            Count::Malformed => {}
            Count::AuthFailure => m.auth_failure(),
            Count::TimeToReady(d) => m.ready_after(d.as_secs_f64()),
        }
    }

    /// The machine is the one counter of the view's counters: they are copied after each step.
    fn publish_counters(&self) {
        let counters = self.machine.counters().clone();
        self.shared.with(|v| v.counters = counters);
    }

    /// Performs one operation and returns its outcome.
    async fn perform(&mut self, op: Action) -> Input {
        match op {
            Action::AskSystemInfo { node } => {
                let polled = matches!(
                    self.machine.state(),
                    State::Waiting { node: waited, .. } if waited == node
                );
                let input = self.ask_system_info(node).await;
                if polled
                    && matches!(
                        input,
                        Input::SystemInfo {
                            answer: NodeAnswer::InService | NodeAnswer::Maintenance,
                            ..
                        }
                    )
                {
                    info!(node = %self.cfg.nodes[node], via = "poll", "node back in service");
                }
                input
            }
            Action::Connect { node } => self.connect_xmpp(node).await,
            Action::Resync {
                node,
                signins_before,
                maintenance,
            } => {
                // After an auth hold the session may still be up: the due SSO refresh
                // comes here then, not before a login.
                if let Err(cause) = self.before_login(node).await {
                    return Input::ResyncFailed {
                        cause,
                        malformed: false,
                        signins: Vec::new(),
                    };
                }
                self.resync(node, signins_before, maintenance).await
            }
            Action::Steady { node } => self.steady(node).await,
            Action::Wait { node } => self.wait_in_service(node).await,
            Action::Sleep { until, kind } => {
                self.held_until = (kind == SleepKind::AuthHold).then_some(until);
                let conflict = self.shared.snapshot().phase == crate::vocab::Phase::Conflict;
                if kind == SleepKind::AuthHold
                    && (!conflict || self.provider.conflict_hold_outlives_run())
                {
                    self.persist_hold(until);
                }
                if let SleepKind::Backoff { attempt } = kind {
                    let delay = until.saturating_duration_since(Instant::now());
                    info!(
                        delay_ms = delay.as_millis() as u64,
                        attempt, "retrying after backoff"
                    );
                }
                self.sleep(until).await
            }
            // Not operations: `run` records them and never passes them here.
            Action::Stop
            | Action::Phase { .. }
            | Action::Count(_)
            | Action::SetNode(_)
            | Action::RestDown(_)
            | Action::XmppLink { .. }
            | Action::FailOver { .. }
            | Action::NotifyStopping => Input::Timer,
        }
    }

    /// Feeds an input that never starts an operation (a malformed notification) and records
    /// what the machine made of it.
    fn feed(&mut self, input: Input) {
        for action in self.machine.step(input, Instant::now()) {
            if !action.is_operation() {
                self.record(action);
            }
        }
        self.publish_counters();
    }

    /// The machine took an input without moving (a timer in steady state, a reload that
    /// changed nothing): carry on with the current operation.
    async fn resume(&mut self) -> Input {
        match self.current.clone() {
            Some(Action::Steady { node }) => self.steady(node).await,
            Some(Action::Sleep { until, .. }) => self.sleep(until).await,
            Some(Action::Wait { node }) => self.wait_in_service(node).await,
            _ => Input::Stop,
        }
    }

    /// Sleeps until `until` in short steps (so health keeps beating): a timer, a reload or
    /// shutdown, whichever comes first.
    async fn sleep(&mut self, until: Instant) -> Input {
        let at = std::time::SystemTime::now() + until.saturating_duration_since(Instant::now());
        self.shared.with(|v| v.next_attempt_at = Some(at));
        loop {
            self.shared.beat();
            let now = Instant::now();
            if now >= until {
                if matches!(self.machine.state(), crate::machine::State::Backoff { .. }) {
                    info!("attempt started");
                }
                return Input::Timer;
            }
            let step = (until - now).min(self.beat_every());
            tokio::select! {
                () = self.shutdown.cancelled() => return Input::Stop,
                () = tokio::time::sleep(step) => {}
                Some(loaded) = self.reloads.recv() => return Input::Reloaded(self.reload(loaded)),
                // During the auth hold an action is answered at once, unsent.
                Some(req) = self.commands.recv(), if self.held_until.is_some() => {
                    self.refuse_held(req);
                }
            }
        }
    }

    /// How often the loop must show progress: a quarter of the systemd watchdog interval, and
    /// at least four times within /healthz's stall limit.
    fn beat_every(&self) -> Duration {
        let most = STALL / 4;
        self.shared
            .notifier
            .watchdog()
            .map_or(most, |w| (w / 4).clamp(Duration::from_millis(10), most))
    }
}
