//! The wiring of one agent's daemon: the hub, the command queue, the orphan guard, the local
//! API on its listener, and the driver, all on the caller's runtime. `main` only adds the
//! CLI, logging, signals and exit codes, so an embedding (or a test) can run the whole daemon
//! in-process with [`run`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::{ApiState, router, serve};
use crate::config::Config;
use crate::driver::{Driver, SetupError};
use crate::hub::Shared;
use crate::orphan::Guard;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The local API cannot listen where the config says.
    #[error("cannot bind the local API on {listen}: {source}")]
    Bind {
        /// The configured address.
        listen: String,
        /// Why.
        source: std::io::Error,
    },
    /// The orphan probe's HTTP client cannot be built.
    #[error("cannot set up the orphan probe: {0}")]
    Orphan(String),
    /// The driver cannot be built (TLS or HTTP client).
    #[error("cannot start: {0}")]
    Setup(#[from] SetupError),
}

/// What the caller controls: `shutdown` stops the daemon, each message on `reloads` is a
/// SIGHUP.
pub struct Control {
    /// Cancel to stop (the stop policy runs, then [`run`] returns).
    pub shutdown: CancellationToken,
    /// One message per reload request.
    pub reloads: mpsc::UnboundedReceiver<()>,
}

/// What a fleet gives each of its agents: the shared herd cap, and how the agent's config
/// is read again on a reload (its file with the fleet's tables).
#[derive(Clone)]
pub struct FleetLink {
    /// The fleet's buckets.
    pub herd: Arc<crate::herd::Herd>,
    /// Reads the agent's config again.
    pub loader: crate::config::Loader,
    /// The fleet's TLS configuration, HTTP client (one connection pool per node) and
    /// SystemInfo answers, when the agent's CA and request timeout are the fleet's.
    pub shared: Option<crate::finesse::share::Pool>,
}

/// One agent, built and not yet running: its API state (for a router) and its driver.
pub struct Agent {
    /// What its API handlers share.
    pub api: ApiState,
    driver: Driver,
}

impl Agent {
    /// Builds one agent's hub, command queue, orphan guard and driver.
    pub fn new(
        config: Config,
        control: Control,
        fleet: Option<FleetLink>,
    ) -> Result<Self, AppError> {
        let Control { shutdown, reloads } = control;
        let shared = Arc::new(Shared::new(&config.agent_id, config.event_ring));
        let (commands_tx, commands_rx) = mpsc::channel(64);
        let probes: BTreeMap<u32, _> = config
            .media
            .iter()
            .filter_map(|m| m.orphan_probe.clone().map(|p| (m.id, p)))
            .collect();
        let guard = if probes.is_empty() {
            None
        } else {
            let g = Guard::new(
                probes,
                shared.clone(),
                commands_tx.clone(),
                shutdown.clone(),
            )
            .map_err(AppError::Orphan)?;
            Some(g)
        };
        let metrics_view = shared.clone();
        let api = ApiState {
            shared: shared.clone(),
            commands: commands_tx,
            action_wait: config.action_wait,
            // An action's answer may also wait for an asynchronous refusal.
            request_timeout: config.request_timeout + config.outcome_wait,
            metrics: Arc::new(move || metrics_view.render_metrics()),
            guard: Arc::new(crate::api::guard::Guard::new(
                &config.api_listen,
                config.api_origins.clone(),
                config.api_token.clone(),
            )),
            sse_slots: Arc::new(tokio::sync::Semaphore::new(
                config.api_limits.max_sse_clients,
            )),
        };
        let mut driver = Driver::new(config, shared, shutdown, commands_rx, reloads)?;
        if let Some(g) = guard {
            driver = driver.with_watcher(Box::new(move |d| g.watch(d)));
        }
        if let Some(f) = fleet {
            driver = driver.with_fleet(f.herd, f.loader, f.shared);
        }
        Ok(Self { api, driver })
    }

    /// Runs the agent until its shutdown token is cancelled (the stop policy included).
    pub async fn run(self) {
        self.driver.run().await;
    }
}

/// Runs one agent's daemon until `control.shutdown` is cancelled.
pub async fn run(config: Config, control: Control) -> Result<(), AppError> {
    let shutdown = control.shutdown.clone();
    let listen_cfg = config.clone();
    let agent = Agent::new(config, control, None)?;
    let api_task = listen(&listen_cfg, router(agent.api.clone()), shutdown.clone()).await?;
    agent.run().await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), api_task).await;
    Ok(())
}

/// Binds the local API and serves it until `stop`.
pub(crate) async fn listen(
    config: &Config,
    api: axum::Router,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, AppError> {
    let bound = serve::bind(&config.api_listen, &config.api_socket)
        .await
        .map_err(|source| AppError::Bind {
            listen: config.api_listen.to_string(),
            source,
        })?;
    match &bound {
        serve::Bound::Tcp(l) => match l.local_addr() {
            Ok(addr) => info!(%addr, agent = %config.agent_id, "local API listening"),
            Err(e) => warn!(error = %e, "local API address unknown"),
        },
        serve::Bound::Unix(_) => {
            info!(addr = %config.api_listen, agent = %config.agent_id, "local API listening")
        }
    }
    let limits = config.api_limits.clone();
    Ok(tokio::spawn(serve::serve(bound, api, limits, stop)))
}
