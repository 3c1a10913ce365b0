//! The fence in the path of every request: a fleet's caps ([`crate::throttle::Throttle`]),
//! wrapped so that a slot is given only while this host may act ([`super::lease::Lease`]).
//! Past the deadline a request waits, unsent, until the lease is renewed; the agent is
//! stopped meanwhile ([`Gate::fenced`]). The check comes after the cap's own wait and right
//! before the request goes out, so a process that was paused (SIGSTOP, a stalled VM) and
//! wakes past its deadline sends nothing: tokio's clock is the monotonic one, which runs on
//! while a process is stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;
use tokio::time::Instant;

use super::lease::Lease;
use crate::throttle::{Held, Throttle, Wait};

/// Whether this host may act, as every agent sees it.
#[derive(Debug, Clone)]
pub struct Gate {
    lease: watch::Receiver<Lease>,
    held: Arc<AtomicU64>,
}

impl Gate {
    /// A gate that follows `lease`.
    pub fn new(lease: watch::Receiver<Lease>) -> Self {
        Self {
            lease,
            held: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Returns once this host may act (at once, almost always).
    pub async fn open(&self) {
        let mut lease = self.lease.clone();
        let mut counted = false;
        loop {
            if lease.borrow_and_update().may_act(Instant::now()) {
                return;
            }
            if !counted {
                self.held.fetch_add(1, Ordering::Relaxed);
                counted = true;
            }
            let deadline = lease.borrow().deadline;
            // The deadline may still be ahead under `keep`; wake at whichever comes first.
            let wake = deadline.filter(|d| *d > Instant::now());
            tokio::select! {
                changed = lease.changed() => if changed.is_err() {
                    // The lease's keeper is gone: this host never acts again.
                    std::future::pending::<()>().await;
                },
                () = until(wake) => {}
            }
        }
    }

    /// Returns when this host may no longer act: its deadline passed (or the lease was lost).
    pub async fn fenced(&self) {
        let mut lease = self.lease.clone();
        loop {
            let now = Instant::now();
            let (acting, deadline) = {
                let l = lease.borrow_and_update();
                (l.may_act(now), l.deadline)
            };
            if !acting {
                return;
            }
            let wake = deadline.filter(|d| *d > now);
            tokio::select! {
                changed = lease.changed() => if changed.is_err() { return },
                () = until(wake) => {}
            }
        }
    }

    /// Requests held at the gate so far.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }
}

/// Sleeps until `deadline`; for ever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A fleet's caps behind the gate.
pub struct Fenced {
    caps: Arc<dyn Throttle>,
    gate: Gate,
}

impl Fenced {
    /// `caps`, each slot given only while `gate` is open.
    pub fn new(caps: Arc<dyn Throttle>, gate: Gate) -> Self {
        Self { caps, gate }
    }
}

impl Throttle for Fenced {
    fn login(&self) -> Held<'_> {
        Box::pin(async {
            let slot = self.caps.login().await;
            self.gate.open().await;
            slot
        })
    }

    fn request(&self) -> Wait<'_> {
        Box::pin(async {
            self.caps.request().await;
            self.gate.open().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    struct Free;
    impl Throttle for Free {
        fn login(&self) -> Held<'_> {
            Box::pin(async {
                let slot: crate::throttle::Slot = Box::new(());
                slot
            })
        }
        fn request(&self) -> Wait<'_> {
            Box::pin(async {})
        }
    }

    fn acting(until: Instant) -> Lease {
        Lease {
            id: Some(7),
            deadline: Some(until),
            reachable: true,
            ..Lease::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_deadline_nothing_goes_out_until_a_renewal_and_the_agent_is_fenced_at_it() {
        let start = Instant::now();
        let (tx, rx) = watch::channel(acting(start + Duration::from_secs(8)));
        let gate = Gate::new(rx);
        let fenced = Fenced::new(Arc::new(Free), gate.clone());
        fenced.request().await;
        assert_eq!(gate.held(), 0);

        // The agent is fenced exactly at the deadline.
        let at = tokio::spawn({
            let gate = gate.clone();
            async move {
                gate.fenced().await;
                Instant::now()
            }
        });
        // Paused past the deadline (as a SIGSTOPped process wakes): the next request waits.
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert_eq!(at.await.unwrap() - start, Duration::from_secs(8));
        let waiting = tokio::spawn(async move {
            let _slot = fenced.login().await;
            Instant::now()
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished(), "no request past the deadline");
        assert_eq!(gate.held(), 1);
        // A renewal moves the deadline: the request goes out then, not before.
        tx.send(acting(Instant::now() + Duration::from_secs(8)))
            .unwrap();
        assert_eq!(waiting.await.unwrap() - start, Duration::from_secs(14));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_lease_fences_at_once() {
        let start = Instant::now();
        let (tx, rx) = watch::channel(acting(start + Duration::from_secs(8)));
        let gate = Gate::new(rx);
        let at = tokio::spawn({
            let gate = gate.clone();
            async move {
                gate.fenced().await;
                Instant::now()
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send(Lease::default()).unwrap();
        assert_eq!(at.await.unwrap() - start, Duration::from_secs(1));
    }
}
