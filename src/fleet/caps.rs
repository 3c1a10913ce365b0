//! The fleet's caps (the "herd cap"): one token bucket for XMPP logins and Media sign-ins, one
//! for REST requests, shared by every agent of a fleet (governor's rate limiters). Each agent
//! keeps its own jittered backoff; the buckets are the hard ceiling a Finesse node sees when a
//! whole fleet comes back at once. A single-agent daemon has none.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use crate::throttle::{Held, Slot, Throttle, Wait};

/// The shared buckets.
#[derive(Debug)]
pub struct Caps {
    /// The rates they were built for (a reload rebuilds them only when these change).
    pub rates: Rates,
    logins: DefaultDirectRateLimiter,
    requests: DefaultDirectRateLimiter,
    in_flight: Arc<Semaphore>,
}

/// A bucket of `per_second`, bursting at most a tenth of a second's worth (at least one).
fn bucket(per_second: f64) -> DefaultDirectRateLimiter {
    let rate = per_second.clamp(0.001, 1_000_000.0);
    let burst = NonZeroU32::new((rate / 10.0).ceil() as u32).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(Duration::from_secs_f64(1.0 / rate))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    RateLimiter::direct(quota)
}

/// `[fleet] max_logins_per_second` and `max_requests_per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// XMPP logins and Media sign-ins per second.
    pub logins: f64,
    /// REST requests per second.
    pub requests: f64,
    /// Logins (XMPP and sign-ins) waiting for their answer at once.
    pub in_flight: usize,
}

impl Caps {
    /// Buckets for these rates.
    pub fn new(rates: Rates) -> Arc<Self> {
        Arc::new(Self {
            rates,
            logins: bucket(rates.logins),
            requests: bucket(rates.requests),
            in_flight: Arc::new(Semaphore::new(rates.in_flight.max(1))),
        })
    }
}

impl Throttle for Caps {
    fn login(&self) -> Held<'_> {
        Box::pin(async {
            // In flight first: a slow server holds the next login here, not in the bucket.
            let permit = self.in_flight.clone().acquire_owned().await.ok();
            self.logins.until_ready().await;
            let slot: Slot = Box::new(permit);
            slot
        })
    }

    fn request(&self) -> Wait<'_> {
        Box::pin(self.requests.until_ready())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn no_more_logins_run_at_once_than_the_cap_however_fast_the_bucket() {
        let caps = Caps::new(Rates {
            logins: 1000.0,
            requests: 1000.0,
            in_flight: 2,
        });
        let a = caps.login().await;
        let _b = caps.login().await;
        let third = tokio::spawn({
            let caps = caps.clone();
            async move {
                let _c = caps.login().await;
            }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            !third.is_finished(),
            "a third login started with two in flight"
        );
        drop(a);
        tokio::time::timeout(Duration::from_secs(1), third)
            .await
            .expect("the third starts when one ends")
            .unwrap();
    }
}
