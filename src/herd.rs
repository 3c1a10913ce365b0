//! The fleet's herd cap: one token bucket for XMPP logins and Media sign-ins, one for REST
//! requests, shared by every agent of a fleet (governor's rate limiters). Each agent keeps its
//! own jittered backoff; the buckets are the hard ceiling a Finesse node sees when a whole
//! fleet comes back at once. A single-agent daemon has none.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The shared buckets.
#[derive(Debug)]
pub struct Herd {
    logins: DefaultDirectRateLimiter,
    requests: DefaultDirectRateLimiter,
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

impl Herd {
    /// Buckets of `logins` and `requests` per second.
    pub fn new(logins: f64, requests: f64) -> Arc<Self> {
        Arc::new(Self {
            logins: bucket(logins),
            requests: bucket(requests),
        })
    }

    /// Waits for a login (XMPP login or Media sign-in) slot.
    pub async fn login(&self) {
        self.logins.until_ready().await;
    }

    /// Waits for a REST request slot.
    pub async fn request(&self) {
        self.requests.until_ready().await;
    }
}
