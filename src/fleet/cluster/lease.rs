//! This host's lease, kept alive beside the fleet: granted (and the host registered as a
//! member) when there is none, renewed every third of its TTL, and its fencing deadline
//! ([`super::fence`]) published to every part of the host that acts for an agent. A renewal
//! that etcd answers with no TTL means the lease is gone for certain (it expired while this
//! host could not reach etcd): the host acts no more and joins again with a new lease, owning
//! nothing. A failed renewal changes nothing by itself: the deadline simply comes closer.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::config::{ClusterConfig, QuorumLoss};
use super::fence::Fence;
use super::store::Store;

/// What the host knows of its lease.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lease {
    /// The lease's id, once granted.
    pub id: Option<i64>,
    /// Until when this host may act (none: it may not).
    pub deadline: Option<Instant>,
    /// The last call to etcd was answered.
    pub reachable: bool,
    /// `on_quorum_loss = "keep"`: while etcd cannot be reached, act on past the deadline.
    pub keep: bool,
    /// How long the last successful renewal took.
    pub latency: Option<Duration>,
    /// Renewals that failed (etcd unreachable, no answer).
    pub failures: u64,
    /// Leases lost for certain (expired while away).
    pub lost: u64,
}

impl Lease {
    /// Whether this host may act for its agents at `now`: before its deadline, or, under
    /// `keep`, for as long as its lease is not known to be lost (etcd without a quorum, or
    /// out of reach, says nothing either way; only an answer that the lease is gone stops it).
    pub fn may_act(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now < d) || (self.keep && self.id.is_some())
    }

    /// Whether this host may take agents it does not own yet (never without etcd).
    pub fn may_claim(&self, now: Instant) -> bool {
        self.reachable && self.deadline.is_some_and(|d| now < d)
    }
}

/// How often the lease is renewed: a third of its TTL.
pub fn renew_every(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_millis(500))
}

/// Keeps this host's lease until `stop`, publishing each change on `out`; then revokes it
/// (every agent this host owns is free at once).
pub async fn keep(
    mut store: Store,
    cfg: ClusterConfig,
    out: watch::Sender<Lease>,
    stop: CancellationToken,
) {
    let mut fence = Fence::new(cfg.lease_ttl, Fence::default_margin(cfg.lease_ttl));
    let keep = cfg.on_quorum_loss == QuorumLoss::Keep;
    let mut warned = false;
    loop {
        let sent = Instant::now();
        let renewal = fence.sending(sent);
        let answer = if store.lease().is_none() {
            store.join(cfg.lease_ttl, cfg.weight).await.map(|id| {
                info!(member = %cfg.member, lease = id, "joined the cluster");
                true
            })
        } else {
            store.renew().await
        };
        let mut lost = false;
        let reachable = answer.is_ok();
        match answer {
            Ok(true) => {
                fence.renewed(renewal);
                if warned {
                    info!("etcd answers again: the lease is renewed");
                    warned = false;
                }
            }
            Ok(false) => {
                warn!(lease = ?store.lease(), "the lease is gone (it expired while etcd could not be reached): acting no more, joining again");
                fence.lost();
                store.forget();
                lost = true;
            }
            Err(e) => {
                // The next try goes out on new connections.
                let _ = tokio::time::timeout(renew_every(cfg.lease_ttl), store.redial()).await;
                if !warned {
                    warn!(error = %e, "the lease cannot be renewed: this host stops acting at its deadline unless etcd answers");
                    warned = true;
                }
            }
        }
        out.send_modify(|l| {
            l.id = store.lease();
            l.deadline = fence.deadline();
            l.reachable = reachable;
            l.keep = keep;
            if reachable && !lost {
                l.latency = Some(sent.elapsed());
            }
            l.failures += u64::from(!reachable);
            l.lost += u64::from(lost);
        });
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(if lost { Duration::ZERO } else { renew_every(cfg.lease_ttl) }) => {}
        }
    }
    out.send_modify(|l| {
        l.deadline = None;
        l.keep = false;
    });
    match store.leave().await {
        Ok(()) => info!("left the cluster: this host's agents are free for the others"),
        Err(e) => {
            warn!(error = %e, "the lease could not be revoked: this host's agents are free when it expires")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_acts_before_its_deadline_and_under_keep_until_its_lease_is_known_lost() {
        let now = Instant::now();
        let mut l = Lease {
            id: Some(1),
            deadline: Some(now + Duration::from_secs(5)),
            reachable: true,
            ..Lease::default()
        };
        assert!(l.may_act(now) && l.may_claim(now));
        let later = now + Duration::from_secs(6);
        assert!(!l.may_act(later), "the deadline passed");
        l.reachable = false;
        assert!(!l.may_act(later), "fence: stop at the deadline");
        l.keep = true;
        assert!(l.may_act(later), "keep: etcd away, act on");
        assert!(!l.may_claim(later), "but claim nothing");
        l.reachable = true;
        assert!(
            l.may_act(later),
            "keep: etcd answers without renewing (no quorum): act on"
        );
        assert!(!l.may_claim(later));
        l.id = None;
        assert!(!l.may_act(later), "keep: the lease is known lost: stop");
        assert_eq!(
            renew_every(Duration::from_secs(10)),
            Duration::from_secs(10) / 3
        );
    }
}
