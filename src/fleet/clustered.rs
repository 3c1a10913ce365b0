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
use super::cluster::pace::Pace;
use super::cluster::status::Status;
use super::cluster::store::Store;
use super::{Fleet, FleetConfig, read, write};
use crate::app::AppError;

/// How long a burst of etcd changes is let settle before the round it calls for.
pub(super) const WATCH_SETTLE: Duration = Duration::from_millis(50);

/// How long a host's stop may spend handing its agents over (the fleet unit's
/// `TimeoutStopSec` is 60 s).
pub(super) const HANDOVER_BUDGET: Duration = Duration::from_secs(48);

/// The part of [`HANDOVER_BUDGET`] kept for agents whose next owner never said it was ready
/// (they are then released anyway, at the login cap, and claimed when their owner can).
const UNREADY_RESERVE: Duration = Duration::from_secs(8);

/// How long an agent started here counts against what this host says it is ready for, at
/// most (one that cannot log in stops holding up the others' hand-over).
const ARRIVAL_LIMIT: Duration = Duration::from_secs(30);

/// How often a stopping host looks again for next owners that are ready, between the
/// changes its watch reports.
const READY_POLL: Duration = Duration::from_millis(250);

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
    /// Agents started here lately that have not reached steady yet, and since when: each
    /// takes one of the logins this host says it is ready for.
    pub(super) arriving: BTreeMap<String, Instant>,
    /// The awaited agents this host last told etcd it is ready for.
    pub(super) said_ready: Vec<String>,
    /// How many it may say it is ready for.
    pub(super) pace: Pace,
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
        // One second of the login cap: a round's hand-overs, and the ready window's ceiling.
        let batch = (fleet.max_logins_per_second.ceil() as usize).max(1);
        Ok(Self {
            store,
            gate: Gate::new(lease.clone()),
            lease,
            keeper_stop,
            keeper,
            catalog: BTreeMap::new(),
            status: Arc::new(std::sync::RwLock::new(status)),
            rounds: 0,
            arriving: BTreeMap::new(),
            said_ready: Vec::new(),
            pace: Pace::new(batch),
            displaced: BTreeMap::new(),
            batch,
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
                        .ready_to_hand_over()
                        .take(c.batch)
                        .map(str::to_owned)
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
        self.hand_over(
            hand_over,
            "handed over to the member hashing now names, ready for it",
        )
        .await;
        self.apply().await;
        self.say_ready().await;
    }

    /// Tells etcd which awaited agents this host can log in at once: as many as [`Pace`]
    /// allows (what it brought to steady in the last second, within its login cap), less the
    /// agents started here that are still on their way to steady. Their owners hand them
    /// over on reading it, so that an agent moves only when its login here can begin, and
    /// its gap is about one login.
    async fn say_ready(&mut self) {
        let now = Instant::now();
        let Some(c) = &mut self.cluster else { return };
        // Only the arriving agents are looked at (not every agent of the host, every round).
        {
            let roster = read(&self.roster.agents);
            let pace = &mut c.pace;
            c.arriving.retain(|id, since| {
                // Not in the roster: it stopped here (moved on, fenced, displaced).
                let Some(member) = roster.get(id) else {
                    return false;
                };
                if member.api.shared.snapshot().phase == crate::vocab::Phase::Steady {
                    pace.landed(now);
                    return false;
                }
                now.duration_since(*since) < ARRIVAL_LIMIT
            });
        }
        let room = c.pace.window(now, c.arriving.len());
        let ready: Vec<String> = {
            let status = read_status(c);
            if status.acting(now) {
                status.turn.awaiting.iter().take(room).cloned().collect()
            } else {
                Vec::new()
            }
        };
        if ready == c.said_ready {
            return;
        }
        match tokio::time::timeout(c.round_limit, c.store.say_ready(&ready)).await {
            Ok(Ok(())) => {
                status_of(c).ready_for.clone_from(&ready);
                c.said_ready = ready;
            }
            Ok(Err(e)) => warn!(error = %e, "cannot say which agents this host is ready for"),
            Err(_) => warn!("saying which agents this host is ready for timed out"),
        }
    }

    /// A watch on the cluster's records, if etcd answers.
    pub(super) async fn watch(&self) -> Option<etcd_client::WatchStream> {
        let c = self.cluster.as_ref()?;
        tokio::time::timeout(c.round_limit, c.store.watch())
            .await
            .ok()?
            .ok()
    }

    /// A planned stop in cluster mode: the host leaves the members, and each agent moves as
    /// soon as the member that hashing now names says it is ready to log it in (closed here,
    /// released at once, claimed and logged in there: the routing gap is about one login).
    /// Agents whose next owner is not ready by the last [`UNREADY_RESERVE`] of
    /// [`HANDOVER_BUDGET`] (or that nobody is left to take) are released anyway, at the login
    /// cap.
    pub(super) async fn hand_over_all(&mut self) {
        let Some(c) = &self.cluster else { return };
        let began = Instant::now();
        let acting = read_status(c).acting(began);
        let files: Vec<PathBuf> = self.running.keys().cloned().collect();
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
        info!(
            agents = files.len(),
            "this host stops: handing every agent over as its next owner is ready"
        );
        if let Some(c) = &mut self.cluster {
            if let Err(e) = c.store.withdraw().await {
                warn!(error = %e, "cannot leave the members: the agents move when the lease goes");
            }
        }
        let mut watch = self.watch().await;
        let until = began + HANDOVER_BUDGET.saturating_sub(UNREADY_RESERVE);
        while !self.running.is_empty() && Instant::now() < until {
            let Some(c) = &mut self.cluster else { return };
            let limit = c.round_limit;
            let found = tokio::time::timeout(limit, async {
                let members = c.store.members().await?;
                let ready = c.store.ready().await?;
                Ok::<_, super::cluster::store::StoreError>((members, ready))
            })
            .await;
            let (members, ready) = match found {
                Ok(Ok(found)) => found,
                Ok(Err(e)) => {
                    warn!(error = %e, "cannot read who is ready: the rest go at the deadline");
                    break;
                }
                Err(_) => {
                    warn!("reading who is ready timed out: the rest go at the deadline");
                    break;
                }
            };
            if members.is_empty() {
                info!("no other member is left to hand over to");
                break;
            }
            let live: BTreeSet<&str> = members.iter().map(|m| m.name.as_str()).collect();
            let batch = c.batch;
            let moving: Vec<String> = self
                .running
                .values()
                .map(|r| r.id.clone())
                .filter(|id| ready.get(id).is_some_and(|m| live.contains(m.as_str())))
                .take(batch)
                .collect();
            if moving.is_empty() {
                // Nothing ready yet: wait for a change (a member saying it is ready).
                match &mut watch {
                    Some(w) => {
                        let _ = tokio::time::timeout(READY_POLL, w.message()).await;
                    }
                    None => tokio::time::sleep(READY_POLL).await,
                }
            } else {
                self.hand_over(moving, "this host stops: handed over to a ready next owner")
                    .await;
            }
        }
        let mut files: Vec<PathBuf> = self.running.keys().cloned().collect();
        if files.is_empty() {
            return;
        }
        let Some(c) = &mut self.cluster else { return };
        let left = (began + HANDOVER_BUDGET).saturating_duration_since(Instant::now());
        let per_batch = c
            .batch
            .max(files.len().div_ceil(left.as_secs().max(1) as usize));
        warn!(
            agents = files.len(),
            per_batch, "this host stops: handing over the agents whose next owner is not ready"
        );
        status_of(c).handovers_unready += files.len() as u64;
        while !files.is_empty() {
            let batch: Vec<String> = files
                .drain(..per_batch.min(files.len()))
                .filter_map(|f| self.running.get(&f).map(|r| r.id.clone()))
                .collect();
            self.hand_over(
                batch,
                "this host stops: handed over, its next owner not ready",
            )
            .await;
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
            match started {
                Ok(()) => {
                    if let Some(c) = &mut self.cluster {
                        c.arriving.insert(id, now);
                    }
                }
                Err(e) => {
                    error!(file = %file.display(), error = %e, "agent file refused: that agent does not run");
                    write(&self.roster.bad).insert(file.clone(), e);
                }
            }
        }
    }
}

fn read_status(c: &Cluster) -> std::sync::RwLockReadGuard<'_, Status> {
    read(&c.status)
}
