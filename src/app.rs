//! The wiring of one agent's daemon: what it publishes, the command queue, the orphan guard, the local
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
use crate::clients::{Own, Provider};
use crate::config::{Config, Loaded};
use crate::driver::{Driver, SetupError};
use crate::orphan::OrphanGuard;
use crate::published::Shared;

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
    /// The state directory cannot be made, or others can write it.
    #[error(transparent)]
    StateDir(#[from] crate::state_dir::StateDirError),
    /// Cluster mode's etcd client cannot be set up (its certificates cannot be used).
    #[error("cannot set up the cluster's etcd client: {0}")]
    Cluster(String),
    /// The signal handlers cannot be installed.
    #[error("cannot install the signal handlers: {0}")]
    Signals(std::io::Error),
}

/// What the caller controls: `shutdown` stops the daemon, each message on `reloads` is a
/// SIGHUP.
pub struct Control {
    /// Cancel to stop (the stop policy runs, then [`run`] returns).
    pub shutdown: CancellationToken,
    /// One message per reload request.
    pub reloads: mpsc::UnboundedReceiver<()>,
}

/// What the owner of one agent controls: `shutdown` stops it, and each reload hands it its
/// configuration read anew (or why it could not be read).
pub struct AgentControl {
    /// Cancel to stop (the stop policy runs).
    pub shutdown: CancellationToken,
    /// One configuration per reload.
    pub reloads: mpsc::UnboundedReceiver<Loaded>,
}

/// One agent, built and not yet running: its API state (for a router) and its driver.
pub struct Agent {
    /// What its API handlers share.
    pub api: ApiState,
    driver: Driver,
}

impl Agent {
    /// Builds one agent's published state, command queue, orphan guard and driver.
    pub fn new(
        config: Config,
        control: AgentControl,
        provider: Arc<dyn Provider>,
    ) -> Result<Self, AppError> {
        let AgentControl { shutdown, reloads } = control;
        if let Some(dir) = &config.state_dir {
            crate::state_dir::prepare(dir)?;
        }
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
            let g = OrphanGuard::new(
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
            guard: Arc::new(crate::api::guard::RequestGuard::new(
                &config.api_listen,
                config.api_origins.clone(),
                config.api_token.clone(),
            )),
            sse_slots: Arc::new(tokio::sync::Semaphore::new(
                config.api_limits.max_sse_clients,
            )),
        };
        let mut driver = Driver::new(config, shared, shutdown, commands_rx, reloads, provider)?;
        if let Some(g) = guard {
            driver = driver.with_watcher(Box::new(move |d| g.watch(d)));
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
    let Control {
        shutdown,
        mut reloads,
    } = control;
    let listen_cfg = config.clone();
    // Each SIGHUP reads the file again here; the driver takes what it reads.
    let (reload_tx, reloaded) = mpsc::unbounded_channel();
    let source = config.source.clone();
    tokio::spawn(async move {
        while reloads.recv().await.is_some() {
            if reload_tx.send(Config::load(&source)).is_err() {
                break;
            }
        }
    });
    let control = AgentControl {
        shutdown: shutdown.clone(),
        reloads: reloaded,
    };
    let agent = Agent::new(config, control, Arc::new(Own))?;
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

/// Installs the signal handlers, then runs `daemon` with them: SIGTERM/SIGINT stop it,
/// SIGHUP reloads.
pub async fn with_signals<F, Fut>(daemon: F) -> Result<(), AppError>
where
    F: FnOnce(Control) -> Fut,
    Fut: std::future::Future<Output = Result<(), AppError>>,
{
    // Installed before anything announces that the daemon is up: a SIGTERM or SIGHUP sent
    // right after "local API listening" must reach these handlers, not the default action
    // (which would kill the daemon without its stop policy).
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return Err(AppError::Signals(e));
        }
    };
    let shutdown = CancellationToken::new();
    let (reload_tx, reloads) = tokio::sync::mpsc::unbounded_channel();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { info!("SIGTERM: stopping"); break; }
                _ = int.recv() => { info!("SIGINT: stopping"); break; }
                _ = hup.recv() => {
                    info!("SIGHUP: reloading the configuration");
                    let _ = reload_tx.send(());
                }
            }
        }
        signals.cancel();
    });
    daemon(Control { shutdown, reloads }).await
}
