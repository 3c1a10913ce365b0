//! Fleet mode: many agents in one process (`finesse-taskd fleet`). Each agent keeps its own
//! XMPP session, state machine and driver, exactly as a single-agent daemon runs them; they
//! share the runtime, the caps ([`caps`]), one TLS configuration, HTTP client and the nodes'
//! SystemInfo answers ([`pool`]), and one API listener ([`api`], with [`metrics`] merged).
//!
//! A SIGHUP reads the fleet file ([`config`]) and the agents directory again: what changed in
//! the shared resources is rebuilt (the pool for a new CA or timeout, the caps for new rates,
//! `ready_ratio` at once), a new file starts its agent, a removed file stops its agent (with
//! its stop policy), and every running agent is handed its configuration read anew: the agent
//! file may be unchanged while the password file it names changed (a rotation). A reload that
//! changes nothing leaves the agent untouched. A file that cannot be used stops only its
//! agent, and is shown in `/v1/agents` and the metrics. The API's address takes effect at the
//! next start.
//!
//! With `[cluster]` ([`cluster`]), the fleet runs only the agents its host owns on etcd: a
//! round every second (and at each change of the lease) claims what hashing gives this host,
//! hands over what it gives another, and starts and stops agents to match. An agent stopped
//! because it runs elsewhere, or because this host is fenced, is stopped without its stop
//! policy (it is not leaving Finesse, it is moving); so is every agent at a stop of the
//! process, whose lease is then revoked so that the others take its agents at once.

pub mod api;
pub mod caps;
pub mod cluster;
mod clustered;
pub mod config;
mod metrics;
pub mod pool;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, error, info, warn};

use clustered::{Cluster, WATCH_SETTLE};

use crate::api::{guard::RequestGuard, unguarded_router};
use crate::app::{Agent, AgentControl, AppError, Control};
use crate::config::{Config, ConfigError, Loaded};
use api::{FleetApi, Member, Roster};
pub use config::{FleetConfig, is_fleet_file};
use pool::Pool;

/// A running agent of the fleet.
struct Running {
    id: String,
    stop: CancellationToken,
    reload: mpsc::UnboundedSender<Loaded>,
    task: JoinHandle<()>,
    /// The file's text when it was last applied (a changed file reloads this agent).
    text: String,
}

/// The fleet's state between reloads.
struct Fleet {
    config: FleetConfig,
    /// The shared clients and caps every agent is built with.
    pool: Pool,
    /// `[fleet] ready_ratio`, as the API reads it.
    ready_ratio: Arc<std::sync::RwLock<f64>>,
    roster: Roster,
    running: BTreeMap<PathBuf, Running>,
    shutdown: CancellationToken,
    cluster: Option<Cluster>,
}

fn read<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Fleet {
    /// Starts the agent of `file` with `config`.
    fn start(&mut self, file: &Path, config: Config, text: String) -> Result<(), AppError> {
        let id = config.agent_id.clone();
        let stop = self.shutdown.child_token();
        let (reload, reloads) = mpsc::unbounded_channel();
        let control = AgentControl {
            shutdown: stop.clone(),
            reloads,
        };
        let agent = Agent::new(config, control, Arc::new(self.pool.clone()))?;
        let member = Member {
            file: file.to_path_buf(),
            router: unguarded_router(agent.api.clone()),
            api: agent.api.clone(),
        };
        write(&self.roster.agents).insert(id.clone(), member);
        let span = tracing::info_span!("agent", id = %id);
        let gate = self.cluster.as_ref().map(|c| c.gate.clone());
        let run = agent.run();
        let roster = self.roster.agents.clone();
        let me = id.clone();
        let task = tokio::spawn(
            async move {
                let Some(gate) = gate else {
                    return run.await;
                };
                tokio::select! {
                    () = run => {}
                    () = gate.fenced() => {
                        warn!("fenced: this host's lease is not proven; the agent is stopped here with no further request");
                        // Not shown as running a moment longer than it runs.
                        write(&roster).remove(&me);
                    }
                }
            }
            .instrument(span),
        );
        info!(agent = %id, file = %file.display(), "agent started");
        self.running.insert(
            file.to_path_buf(),
            Running {
                id,
                stop,
                reload,
                task,
                text,
            },
        );
        Ok(())
    }

    /// Stops the agent of `file` (its stop policy runs) and waits for it.
    async fn stop(&mut self, file: &Path) {
        if let Some(r) = self.running.remove(file) {
            info!(agent = %r.id, file = %file.display(), "agent file removed: stopping the agent");
            r.stop.cancel();
            let _ = r.task.await;
            write(&self.roster.agents).remove(&r.id);
        }
    }

    /// Stops the agent of `file` without its stop policy (it runs elsewhere now, or this host
    /// is fenced): its XMPP session is closed, nothing is sent to Finesse.
    async fn set_down(&mut self, file: &Path, why: &str) {
        if let Some(r) = self.running.remove(file) {
            info!(agent = %r.id, why, "agent stopped here, without its stop policy");
            r.task.abort();
            let _ = r.task.await;
            write(&self.roster.agents).remove(&r.id);
        }
    }

    /// Brings the running agents in line with the agents directory. `reload` reloads every
    /// running agent (a SIGHUP: a password file may have changed under an unchanged agent
    /// file; a reload that changes nothing leaves the agent untouched).
    /// `refused` is the fleet file's error when it could not be read again: an agent whose file
    /// changed is then refused its reload too (its shared tables are not known).
    async fn sync(&mut self, reload: bool, refused: Option<&ConfigError>) {
        let files = match self.config.agent_files() {
            Ok(f) => f,
            Err(e) => {
                error!(error = %e, "cannot read the agents directory; keeping the running agents");
                return;
            }
        };
        let gone: Vec<PathBuf> = self
            .running
            .keys()
            .filter(|f| !files.contains(f))
            .cloned()
            .collect();
        for file in gone {
            self.stop(&file).await;
        }
        write(&self.roster.bad).retain(|f, _| files.contains(f));
        if let Some(c) = &mut self.cluster {
            c.catalog.retain(|_, f| files.contains(f));
        }
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if let Some(r) = self.running.get(&file) {
                if r.text != text {
                    info!(agent = %r.id, "agent file changed: reloading that agent");
                }
                if reload || r.text != text {
                    let loaded = match refused {
                        Some(e) => Err(e.clone()),
                        None => self.config.load_agent(&file),
                    };
                    let _ = r.reload.send(loaded);
                    if let Some(r) = self.running.get_mut(&file) {
                        r.text = text;
                    }
                }
                continue;
            }
            let started = self
                .config
                .load_agent(&file)
                .map_err(|e| e.to_string())
                .and_then(|config| {
                    let id = config.agent_id.clone();
                    let taken = self.running.values().any(|r| r.id == id);
                    if taken {
                        return Err(format!("agent {id} is already run from another file"));
                    }
                    if let Some(c) = &mut self.cluster {
                        if c.catalog.get(&id).is_some_and(|f| *f != file) {
                            return Err(format!("agent {id} is already named by another file"));
                        }
                        c.catalog.insert(id.clone(), file.clone());
                        if !self.runs(&id) {
                            return Ok(());
                        }
                    }
                    self.start(&file, config, text).map_err(|e| e.to_string())
                });
            match started {
                Ok(()) => {
                    write(&self.roster.bad).remove(&file);
                }
                Err(e) => {
                    error!(file = %file.display(), error = %e, "agent file refused: that agent does not run");
                    write(&self.roster.bad).insert(file, e);
                }
            }
        }
    }
}

/// Runs a fleet until `control.shutdown` is cancelled; each message on `control.reloads`
/// re-reads the fleet file and the agents directory.
pub async fn run(config: FleetConfig, control: Control) -> Result<(), AppError> {
    let Control {
        shutdown,
        mut reloads,
    } = control;
    let base = config.base.clone();
    let mut pool = Pool::new(&base, config.rates()).map_err(|e| AppError::Setup(e.into()))?;
    let cluster = match &config.cluster {
        Some(c) => Some(Cluster::start(c, &config).await?),
        None => None,
    };
    if let Some(c) = &cluster {
        pool = pool.behind(c.gate.clone());
    }
    let roster = Roster::default();
    let ready_ratio = Arc::new(std::sync::RwLock::new(config.ready_ratio));
    let api = api::router(FleetApi {
        roster: roster.clone(),
        ready_ratio: ready_ratio.clone(),
        guard: Arc::new(RequestGuard::new(
            &base.api_listen,
            base.api_origins.clone(),
            base.api_token.clone(),
        )),
        cluster: cluster.as_ref().map(|c| c.status.clone()),
    });
    let mut lease = cluster.as_ref().map(|c| c.lease.clone());
    let mut fleet = Fleet {
        config,
        pool,
        ready_ratio,
        roster,
        running: BTreeMap::new(),
        shutdown: shutdown.clone(),
        cluster,
    };
    fleet.sync(false, None).await;
    let api_task = crate::app::listen(&base, api, shutdown.clone()).await?;
    let mut rounds = tokio::time::interval(Duration::from_secs(1));
    rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let clustered = fleet.cluster.is_some();
    let mut watch: Option<etcd_client::WatchStream> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(()) = reloads.recv() => fleet.reload().await,
            _ = rounds.tick(), if clustered => {
                if watch.is_none() {
                    watch = fleet.watch().await;
                }
                fleet.round().await;
            }
            changed = async {
                match &mut watch {
                    Some(w) => w.message().await,
                    None => std::future::pending().await,
                }
            } => match changed {
                Ok(Some(_)) => {
                    // A burst of changes (a batch of claims, a lease's keys) is one round.
                    tokio::time::sleep(WATCH_SETTLE).await;
                    if let Some(w) = &mut watch {
                        while let Some(Ok(Some(_))) = w.message().now_or_never() {}
                    }
                    fleet.round().await;
                }
                Ok(None) | Err(_) => watch = None,
            },
            changed = async {
                match &mut lease {
                    Some(l) => l.changed().await,
                    None => std::future::pending().await,
                }
            }, if clustered => match changed {
                Ok(()) => fleet.round().await,
                Err(_) => lease = None,
            },
        }
    }
    if fleet.cluster.is_some() {
        fleet.hand_over_all().await;
    }
    if let Some(c) = fleet.cluster.take() {
        // Then the lease goes, and with it every key left (an agent whose release failed).
        c.keeper_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), c.keeper).await;
    }
    for (_, r) in std::mem::take(&mut fleet.running) {
        let _ = tokio::time::timeout(Duration::from_secs(30), r.task).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), api_task).await;
    Ok(())
}

impl Fleet {
    /// A SIGHUP: the fleet file again (the shared resources rebuilt where it changed), then the
    /// agents directory. A refused fleet file keeps the running one, and its agents.
    async fn reload(&mut self) {
        let new = match FleetConfig::load(&self.config.source) {
            Ok(new) => new,
            Err(e) => {
                warn!(error = %e, "fleet file refused: keeping the running configuration");
                self.sync(false, Some(&e)).await;
                return;
            }
        };
        if new.shared_text() != self.config.shared_text() {
            info!("fleet file changed: every agent reloads with it");
        }
        if new.base.api_listen != self.config.base.api_listen {
            warn!("api.listen changed: it takes effect at the next restart");
        }
        match self.pool.rebuild(&new.base, new.rates()) {
            Ok(rebuilt) if rebuilt != pool::Rebuilt::default() => {
                info!(
                    clients = rebuilt.clients,
                    caps = rebuilt.caps,
                    "fleet's shared clients or caps rebuilt"
                );
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "fleet file refused: its CA cannot be used; keeping the running configuration");
                let e = ConfigError::new(&new.source, "finesse.ca_file", e.to_string());
                self.sync(false, Some(&e)).await;
                return;
            }
        }
        *self
            .ready_ratio
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = new.ready_ratio;
        self.config = new;
        self.sync(true, None).await;
    }
}
