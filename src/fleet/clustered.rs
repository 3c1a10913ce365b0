//! Cluster mode's part of a fleet's runtime ([`super::cluster`] holds the pieces): connecting
//! to etcd and keeping the lease ([`Cluster::start`]), the round that claims, releases and
//! hands over, starting and stopping agents to match what this host owns and may run, the
//! in-band fence (an XMPP conflict), and the hand-over of every agent at a planned stop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::cluster::gate::Gate;
use super::cluster::lease::Lease;
use super::cluster::status::Status;
use super::cluster::store::Store;
use super::{Fleet, FleetConfig, read, write};
use crate::app::AppError;

/// How long a burst of etcd changes is let settle before the round it calls for.
pub(super) const WATCH_SETTLE: Duration = Duration::from_millis(50);

/// How long a host's stop may spend handing its agents over (the fleet unit's
/// `TimeoutStopSec` is 60 s).
pub(super) const HANDOVER_BUDGET: Duration = Duration::from_secs(40);

/// Cluster mode's part of a fleet.
pub(super) struct Cluster {
    /// This host's handle on etcd (the rounds'; the lease's keeper has its own).
    pub(super) store: Store,
    /// The lease as its keeper last published it.
    pub(super) lease: watch::Receiver<Lease>,
    /// The fence every agent's requests pass.
    pub(super) gate: Gate,
    /// Stops the lease's keeper (which then revokes the lease).
    pub(super) keeper_stop: CancellationToken,
    pub(super) keeper: JoinHandle<()>,
    /// Every usable agent file, by agent id: the agents this host may be given.
    pub(super) catalog: BTreeMap<String, PathBuf>,
    /// What the API and metrics show.
    pub(super) status: Arc<std::sync::RwLock<Status>>,
    /// Rounds that succeeded (claims after the first are takeovers).
    pub(super) rounds: u64,
    /// Agents handed over per round at most (the login cap's second's worth).
    pub(super) batch: usize,
    /// The bound on one round.
    pub(super) round_limit: Duration,
    /// Agents another session displaced (an XMPP conflict: the in-band fence), with the
    /// ownership's revision then and when: not run again here under that same ownership
    /// until `auth_retry` has passed (as a single agent holds after a conflict).
    pub(super) displaced: BTreeMap<String, (i64, Instant)>,
}

fn status_of(c: &Cluster) -> std::sync::RwLockWriteGuard<'_, Status> {
    write(&c.status)
}

impl Cluster {
    /// Connects to etcd and starts keeping this host's lease (it joins at once when etcd
    /// answers; until then the host runs no agent).
    pub(super) async fn start(
        cfg: &super::cluster::config::ClusterConfig,
        fleet: &FleetConfig,
    ) -> Result<Self, AppError> {
        let timeout = (cfg.lease_ttl / 5).clamp(Duration::from_millis(500), Duration::from_secs(2));
        let store = Store::connect(cfg, timeout)
            .await
            .map_err(|e| AppError::Cluster(e.to_string()))?;
        let (tx, lease) = watch::channel(Lease::default());
        let keeper_stop = CancellationToken::new();
        let keeper = tokio::spawn(super::cluster::lease::keep(
            store.clone(),
            cfg.clone(),
            tx,
            keeper_stop.clone(),
        ));
        let status = Status {
            member: cfg.member.clone(),
            ..Status::default()
        };
        info!(member = %cfg.member, prefix = %cfg.prefix, "cluster mode: this host runs only the agents it owns on etcd");
        Ok(Self {
            store,
            gate: Gate::new(lease.clone()),
            lease,
            keeper_stop,
            keeper,
            catalog: BTreeMap::new(),
            status: Arc::new(std::sync::RwLock::new(status)),
            rounds: 0,
            displaced: BTreeMap::new(),
            batch: (fleet.max_logins_per_second.ceil() as usize).max(1),
            round_limit: cfg.lease_ttl / 2,
        })
    }
}

impl Fleet {
    /// Whether the agent `id` runs here now: this host owns it and may act.
    pub(super) fn runs(&self, id: &str) -> bool {
        self.cluster.as_ref().is_none_or(|c| {
            let status = read_status(c);
            status.turn.owned.contains_key(id) && status.acting(Instant::now())
        })
    }

    /// One round of cluster mode: read etcd, claim, release, hand over; then start and stop
    /// agents to match what this host owns.
    pub(super) async fn round(&mut self) {
        let Some(c) = &mut self.cluster else { return };
        let now = Instant::now();
        let lease = c.lease.borrow().clone();
        let mut hand_over = Vec::new();
        if lease.id.is_some() && lease.may_act(now) {
            c.store.set_lease(lease.id);
            let agents: Vec<String> = c.catalog.keys().cloned().collect();
            let round = super::cluster::turn::turn(&mut c.store, &agents, lease.may_claim(now));
            match tokio::time::timeout(c.round_limit, round).await {
                Ok(Ok(t)) => {
                    let mut status = status_of(c);
                    if c.rounds > 0 && !t.claimed.is_empty() {
                        info!(
                            agents = t.claimed.len(),
                            "claimed agents that had no owner (a host died or left, or a file is new)"
                        );
                        status.takeovers += t.claimed.len() as u64;
                    }
                    hand_over = t
                        .hand_over
                        .iter()
                        .take(c.batch)
                        .map(|(a, _)| a.clone())
                        .collect();
                    status.turn = t;
                    status.round_failed = false;
                    drop(status);
                    c.rounds += 1;
                }
                Ok(Err(e)) => {
                    let _ = tokio::time::timeout(c.round_limit, c.store.redial()).await;
                    if !status_of(c).round_failed {
                        warn!(error = %e, "cluster round failed: keeping what this host owns");
                    }
                    status_of(c).round_failed = true;
                }
                Err(_) => {
                    let _ = tokio::time::timeout(c.round_limit, c.store.redial()).await;
                    if !status_of(c).round_failed {
                        warn!("cluster round timed out: keeping what this host owns");
                    }
                    status_of(c).round_failed = true;
                }
            }
        }
        {
            let was = status_of(c).acting(now);
            let mut status = status_of(c);
            status.lease = lease.clone();
            status.held = c.gate.held();
            if was && !status.acting(now) && !self.running.is_empty() {
                status.fenced += 1;
            }
        }
        self.hand_over(hand_over, "handed over to the member hashing now names")
            .await;
        self.apply().await;
    }

    /// A watch on the cluster's records, if etcd answers.
    pub(super) async fn watch(&self) -> Option<etcd_client::WatchStream> {
        let c = self.cluster.as_ref()?;
        tokio::time::timeout(c.round_limit, c.store.watch())
            .await
            .ok()?
            .ok()
    }

    /// A planned stop in cluster mode: every agent moves to the others in batches at the
    /// login cap (or faster, to finish within [`HANDOVER_BUDGET`]), each closed here with no
    /// stop policy and released at once, so that its next owner, told by its watch, logs it
    /// in while the next batch waits: the routing gap per agent is about one login.
    pub(super) async fn hand_over_all(&mut self) {
        let Some(c) = &self.cluster else { return };
        let acting = read_status(c).acting(Instant::now());
        let mut files: Vec<PathBuf> = self.running.keys().cloned().collect();
        if !acting || files.is_empty() {
            let n = files.len();
            for file in files {
                self.set_down(&file, "this host stops").await;
            }
            if n > 0 {
                warn!(
                    agents = n,
                    "stopping while fenced: the agents are free when the lease expires"
                );
            }
            return;
        }
        let per_batch = c.batch.max(
            files
                .len()
                .div_ceil(HANDOVER_BUDGET.as_secs().max(1) as usize),
        );
        info!(
            agents = files.len(),
            per_batch, "this host stops: handing every agent over"
        );
        if let Some(c) = &mut self.cluster {
            if let Err(e) = c.store.withdraw().await {
                warn!(error = %e, "cannot leave the members: the agents move when the lease goes");
            }
        }
        while !files.is_empty() {
            let batch: Vec<String> = files
                .drain(..per_batch.min(files.len()))
                .filter_map(|f| self.running.get(&f).map(|r| r.id.clone()))
                .collect();
            self.hand_over(batch, "this host stops: handed over").await;
            if !files.is_empty() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// Stops each agent of `moving` here (no stop policy; `why` in its log line), then releases it for the member
    /// that should own it; a release that fails is tried again by the next round.
    pub(super) async fn hand_over(&mut self, moving: Vec<String>, why: &str) {
        if moving.is_empty() {
            return;
        }
        let Some(c) = &self.cluster else { return };
        let files: Vec<PathBuf> = moving
            .iter()
            .filter_map(|agent| c.catalog.get(agent).cloned())
            .collect();
        for file in &files {
            self.set_down(file, why).await;
        }
        let Some(c) = &mut self.cluster else { return };
        match c.store.release(&moving).await {
            Ok(()) => {
                info!(agents = moving.len(), "handed over");
                let mut status = status_of(c);
                status.handovers += moving.len() as u64;
                for a in &moving {
                    status.turn.owned.remove(a);
                    status.turn.owners.remove(a);
                }
            }
            Err(e) => warn!(error = %e, "hand-over not released: the next round tries again"),
        }
    }

    /// Starts the agents this host owns and may run, stops the others (without their stop
    /// policy), and forgets the tasks that ended (fenced).
    pub(super) async fn apply(&mut self) {
        let now = Instant::now();
        // The in-band fence: an agent whose session another took (the same resource logged
        // in elsewhere) has lost its ownership as far as Finesse is concerned.
        let conflicted: Vec<(String, PathBuf)> = self
            .running
            .iter()
            .filter(|(_, r)| {
                read(&self.roster.agents)
                    .get(&r.id)
                    .is_some_and(|m| m.api.shared.snapshot().phase == crate::vocab::Phase::Conflict)
            })
            .map(|(f, r)| (r.id.clone(), f.clone()))
            .collect();
        for (id, file) in conflicted {
            self.set_down(
                &file,
                "another session took its XMPP resource: ownership lost in-band",
            )
            .await;
            if let Some(c) = &mut self.cluster {
                let revision = read_status(c).turn.owned.get(&id).copied().unwrap_or(0);
                warn!(agent = %id, revision, "XMPP conflict in cluster mode: the agent is not run here again under this ownership until auth_retry has passed");
                c.displaced.insert(id, (revision, now));
                status_of(c).displaced += 1;
            }
        }
        let hold = self.config.base.recovery.auth_retry;
        let Some(c) = &mut self.cluster else { return };
        c.displaced
            .retain(|_, (_, since)| now.duration_since(*since) < hold);
        let wanted: BTreeSet<String> = {
            let status = read_status(c);
            if status.acting(now) {
                status
                    .turn
                    .owned
                    .iter()
                    .filter(|(id, rev)| c.displaced.get(*id).is_none_or(|(r, _)| r != *rev))
                    .map(|(id, _)| id.clone())
                    .collect()
            } else {
                BTreeSet::new()
            }
        };
        let catalog = c.catalog.clone();
        let ended: Vec<PathBuf> = self
            .running
            .iter()
            .filter(|(_, r)| r.task.is_finished() || !wanted.contains(&r.id))
            .map(|(f, _)| f.clone())
            .collect();
        for file in ended {
            self.set_down(&file, "not owned here, or this host is fenced")
                .await;
        }
        for id in wanted {
            let Some(file) = catalog.get(&id) else {
                continue;
            };
            if self.running.contains_key(file) {
                continue;
            }
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let started = self
                .config
                .load_agent(file)
                .map_err(|e| e.to_string())
                .and_then(|config| self.start(file, config, text).map_err(|e| e.to_string()));
            if let Err(e) = started {
                error!(file = %file.display(), error = %e, "agent file refused: that agent does not run");
                write(&self.roster.bad).insert(file.clone(), e);
            }
        }
    }
}

fn read_status(c: &Cluster) -> std::sync::RwLockReadGuard<'_, Status> {
    read(&c.status)
}
