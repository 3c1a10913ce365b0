//! Fleet mode: many agents in one process (`finesse-taskd fleet`). Each agent keeps its own
//! XMPP session, state machine and driver, exactly as a single-agent daemon runs them; they
//! share the runtime, the herd cap ([`crate::herd`]), one TLS configuration, HTTP client and
//! the nodes' SystemInfo answers ([`crate::finesse::share`]), and one API listener
//! ([`crate::api::fleet`]). A SIGHUP reads the fleet file and the agents directory again:
//! a new file starts its agent, a removed file stops its agent (with its stop policy), and
//! every running agent reloads, which re-reads its files: the agent file may be unchanged
//! while the password file it names changed (a rotation). A reload that changes nothing
//! leaves the agent untouched. A file that cannot be used stops only its agent, and is
//! shown in `/v1/agents` and the metrics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, error, info, warn};

use crate::api::fleet::{FleetApi, Member, Roster};
use crate::api::{guard::Guard, router};
use crate::app::{Agent, AppError, Control, FleetLink};
use crate::config::{Config, FleetConfig, Loader};
use crate::finesse::share::{InfoShare, Pool};
use crate::herd::Herd;

/// A running agent of the fleet.
struct Running {
    id: String,
    stop: CancellationToken,
    reload: mpsc::UnboundedSender<()>,
    task: JoinHandle<()>,
    /// The file's text when it was last applied (a changed file reloads this agent).
    text: String,
}

/// The fleet's state between reloads.
struct Fleet {
    config: FleetConfig,
    herd: Arc<Herd>,
    /// One TLS configuration and one HTTP client (a pool per node) for every agent.
    shared: Option<Pool>,
    roster: Roster,
    running: BTreeMap<PathBuf, Running>,
    shutdown: CancellationToken,
}

fn write<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Fleet {
    /// How an agent's reload reads its config: the fleet file as it is now, then the file.
    fn loader(&self) -> Loader {
        let source = self.config.source.clone();
        Arc::new(move |file: &Path| FleetConfig::load(&source)?.load_agent(file))
    }

    /// Starts the agent of `file` with `config`.
    fn start(&mut self, file: &Path, config: Config, text: String) -> Result<(), AppError> {
        if let Some(dir) = &config.state_dir {
            if let Err(e) = std::fs::create_dir_all(dir) {
                warn!(dir = %dir.display(), error = %e, "cannot create the agent's state directory");
            }
        }
        let id = config.agent_id.clone();
        let stop = self.shutdown.child_token();
        let (reload, reloads) = mpsc::unbounded_channel();
        // The fleet's TLS configuration and connection pool, unless this agent's CA or
        // timeout differ (they come from the shared tables, so only a file edited since).
        let same = config.ca_pem == self.config.base.ca_pem
            && config.request_timeout == self.config.base.request_timeout;
        let link = FleetLink {
            herd: self.herd.clone(),
            loader: self.loader(),
            shared: self.shared.clone().filter(|_| same),
        };
        let control = Control {
            shutdown: stop.clone(),
            reloads,
        };
        let agent = Agent::new(config, control, Some(link))?;
        let member = Member {
            file: file.to_path_buf(),
            router: router(agent.api.clone()),
            api: agent.api.clone(),
        };
        write(&self.roster.agents).insert(id.clone(), member);
        let span = tracing::info_span!("agent", id = %id);
        let task = tokio::spawn(agent.run().instrument(span));
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

    /// Brings the running agents in line with the agents directory. `reload` reloads every
    /// running agent (a SIGHUP: a password file may have changed under an unchanged agent
    /// file; a reload that changes nothing leaves the agent untouched).
    async fn sync(&mut self, reload: bool) {
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
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if let Some(r) = self.running.get(&file) {
                if r.text != text {
                    info!(agent = %r.id, "agent file changed: reloading that agent");
                }
                if reload || r.text != text {
                    let _ = r.reload.send(());
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
    let herd = Herd::new(config.max_logins_per_second, config.max_requests_per_second);
    let roster = Roster::default();
    let api = crate::api::fleet::router(FleetApi {
        roster: roster.clone(),
        ready_ratio: config.ready_ratio,
        guard: Arc::new(Guard::new(
            &base.api_listen,
            base.api_origins.clone(),
            base.api_token.clone(),
        )),
    });
    // SystemInfo answers are shared for half a poll (at most a second): a node's return is
    // seen at most that much later by an agent that did not ask itself.
    let fresh_for = (base.recovery.systeminfo_poll / 2).min(Duration::from_secs(1));
    let shared = crate::tls::client_config(base.ca_pem.as_deref())
        .and_then(|tls| {
            let http = crate::tls::http_client(&tls, base.request_timeout)?;
            Ok(Pool {
                tls,
                http,
                info: Arc::new(InfoShare::new(fresh_for)),
            })
        })
        .map_err(|e| AppError::Setup(e.into()))?;
    let mut fleet = Fleet {
        config,
        herd,
        shared: Some(shared),
        roster,
        running: BTreeMap::new(),
        shutdown: shutdown.clone(),
    };
    fleet.sync(false).await;
    let api_task = crate::app::listen(&base, api, shutdown.clone()).await?;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(()) = reloads.recv() => {
                match FleetConfig::load(&fleet.config.source) {
                    Ok(new) => {
                        if new.shared_text() != fleet.config.shared_text() {
                            info!("fleet file changed: every agent reloads with it");
                        }
                        fleet.config = new;
                        fleet.sync(true).await;
                    }
                    Err(e) => {
                        warn!(error = %e, "fleet file refused: keeping the running configuration");
                        fleet.sync(false).await;
                    }
                }
            }
        }
    }
    for (_, r) in std::mem::take(&mut fleet.running) {
        let _ = tokio::time::timeout(Duration::from_secs(30), r.task).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), api_task).await;
    Ok(())
}
