//! Self-fencing: Finesse checks no fencing token, so a host must stop acting for its agents on
//! its own before etcd can give them to another. The rule, on the monotonic clock: a lease
//! renewal proves the lease alive only as of the moment it was *sent* (its answer may come
//! late), so the lease is known to live until that moment plus the TTL; this host acts only
//! until then minus a margin (for clock rate differences and the time one request takes once
//! decided). A renewal answered late, or out of order, never moves the deadline back; a
//! process that was paused (SIGSTOP, a stalled VM) finds its deadline passed when it wakes,
//! because it asks before every request.
//!
//! The margin must also exceed etcd's election timeout: etcd 3.4 renews a lease on the leader
//! alone, so a leader cut from the others keeps renewing until it steps down, one election
//! timeout later (seen on a real cluster: a renewal 1.3 s after the quorum was lost, with the
//! default 1 s; `tests/cluster_store.rs`). Another host may take over only after the TTL from
//! *its* view, so a renewal the old leader granted late is what the margin absorbs.

use std::time::Duration;

use tokio::time::Instant;

/// A renewal on its way: when it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewal {
    sent: Instant,
}

/// The fencing state of one host's lease.
#[derive(Debug, Clone)]
pub struct Fence {
    ttl: Duration,
    margin: Duration,
    /// The latest send time of a renewal that succeeded.
    proven: Option<Instant>,
}

impl Fence {
    /// A fence for a lease of `ttl`, acting until `ttl - margin` after the last renewal sent
    /// that succeeded. Nothing is proven yet: the host may not act.
    pub fn new(ttl: Duration, margin: Duration) -> Self {
        Self {
            ttl,
            margin: margin.min(ttl),
            proven: None,
        }
    }

    /// The margin used for `ttl`: a fifth of it, at least 1 s and at most 3 s (etcd's own
    /// leader election can take about a second; a request already decided takes less).
    pub fn default_margin(ttl: Duration) -> Duration {
        (ttl / 5).clamp(Duration::from_secs(1), Duration::from_secs(3))
    }

    /// A renewal (or the grant) is sent now.
    pub fn sending(&self, now: Instant) -> Renewal {
        Renewal { sent: now }
    }

    /// `renewal` succeeded: the lease lived when it was sent.
    pub fn renewed(&mut self, renewal: Renewal) {
        self.proven = Some(self.proven.map_or(renewal.sent, |p| p.max(renewal.sent)));
    }

    /// The lease was lost for certain (revoked, expired, not found): act no more.
    pub fn lost(&mut self) {
        self.proven = None;
    }

    /// Until when this host may act, if it may at all.
    pub fn deadline(&self) -> Option<Instant> {
        self.proven.map(|p| p + self.ttl - self.margin)
    }

    /// Whether this host may send a request for its agents at `now`.
    pub fn may_act(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now < d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);
    const MARGIN: Duration = Duration::from_secs(2);

    #[tokio::test(start_paused = true)]
    async fn nothing_proven_acts_not_and_a_renewal_proves_from_when_it_was_sent() {
        let mut f = Fence::new(TTL, MARGIN);
        assert!(!f.may_act(Instant::now()));
        let sent = f.sending(Instant::now());
        // The answer takes 3 s: the lease is proven as of the send, not the answer.
        tokio::time::advance(Duration::from_secs(3)).await;
        f.renewed(sent);
        assert_eq!(f.deadline(), Some(sent.sent + TTL - MARGIN));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(f.may_act(Instant::now()), "7 s after the send");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!f.may_act(Instant::now()), "8 s after the send: fenced");
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_answer_to_an_older_renewal_never_moves_the_deadline_back() {
        let mut f = Fence::new(TTL, MARGIN);
        let old = f.sending(Instant::now());
        tokio::time::advance(Duration::from_secs(2)).await;
        let new = f.sending(Instant::now());
        f.renewed(new);
        let deadline = f.deadline();
        f.renewed(old);
        assert_eq!(f.deadline(), deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_process_finds_its_deadline_passed_when_it_wakes() {
        let mut f = Fence::new(TTL, MARGIN);
        f.renewed(f.sending(Instant::now()));
        // SIGSTOP for 30 s: the monotonic clock ran on.
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(!f.may_act(Instant::now()));
        f.lost();
        assert_eq!(f.deadline(), None);
    }

    #[test]
    fn the_default_margin_is_a_fifth_of_the_ttl_within_one_to_three_seconds() {
        assert_eq!(Fence::default_margin(TTL), Duration::from_secs(2));
        assert_eq!(
            Fence::default_margin(Duration::from_secs(3)),
            Duration::from_secs(1)
        );
        assert_eq!(
            Fence::default_margin(Duration::from_secs(60)),
            Duration::from_secs(3)
        );
    }
}
