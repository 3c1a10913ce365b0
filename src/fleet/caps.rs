//! The fleet's caps (the "herd cap"): one token bucket for XMPP logins and Media sign-ins, one
//! for REST requests, shared by every agent of a fleet (governor's rate limiters). Each agent
//! keeps its own jittered backoff; the buckets are the hard ceiling a Finesse node sees when a
//! whole fleet comes back at once. A single-agent daemon has none.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::throttle::{Throttle, Wait};

/// The shared buckets.
#[derive(Debug)]
pub struct Caps {
    /// The rates they were built for (a reload rebuilds them only when these change).
    pub rates: Rates,
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

/// `[fleet] max_logins_per_second` and `max_requests_per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// XMPP logins and Media sign-ins per second.
    pub logins: f64,
    /// REST requests per second.
    pub requests: f64,
}

impl Caps {
    /// Buckets for these rates.
    pub fn new(rates: Rates) -> Arc<Self> {
        Arc::new(Self {
            rates,
            logins: bucket(rates.logins),
            requests: bucket(rates.requests),
        })
    }
}

impl Throttle for Caps {
    fn login(&self) -> Wait<'_> {
        Box::pin(self.logins.until_ready())
    }

    fn request(&self) -> Wait<'_> {
        Box::pin(self.requests.until_ready())
    }
}
