//! When the SSO access token is refreshed, as a value like [`crate::backoff::Backoff`]: the
//! refresh is due when `refresh_at` of the token's lifetime has passed; a refresh that merely
//! failed (5xx, a timeout) is retried on a growing, jittered delay while the token is still
//! valid; a refused one waits `auth_retry` like a rejected password, and so does every
//! refresh after it. The jitter comes from a seeded rng, so a schedule replays exactly.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::config::RecoveryConfig;

/// The shortest wait after a failed refresh.
const FLOOR: Duration = Duration::from_millis(100);

/// The refresh schedule of one token pair.
#[derive(Debug, Clone)]
pub struct RefreshSchedule {
    not_before: Option<Instant>,
    failures: u32,
    rng: StdRng,
}

impl RefreshSchedule {
    /// A schedule with nothing to wait out, drawing its jitter from an rng seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            not_before: None,
            failures: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// When the next refresh may run, given when the token makes it `due`.
    pub fn next_at(&self, due: Instant) -> Instant {
        self.not_before.map_or(due, |nb| nb.max(due))
    }

    /// True while a failed or refused refresh asks to wait.
    pub fn waiting(&self, now: Instant) -> bool {
        self.not_before.is_some_and(|nb| now < nb)
    }

    /// A refresh succeeded (or a new pair was installed): nothing to wait out.
    pub fn succeeded(&mut self) {
        self.not_before = None;
        self.failures = 0;
    }

    /// A refresh failed without a refusal: the wait before the next one (the recovery
    /// backoff's shape: `backoff_initial` growing by `backoff_multiplier` to `backoff_max`,
    /// with `backoff_jitter`), at least 100 ms.
    pub fn failed(&mut self, now: Instant, timing: &RecoveryConfig) -> Duration {
        self.failures += 1;
        let grown = timing
            .backoff_initial
            .mul_f64(
                timing
                    .backoff_multiplier
                    .powi(self.failures.min(16) as i32 - 1),
            )
            .min(timing.backoff_max);
        let jitter = timing.backoff_jitter.clamp(0.0, 1.0);
        let delay = grown
            .mul_f64(1.0 + jitter * (self.rng.r#gen::<f64>() - 0.5))
            .max(FLOOR);
        self.not_before = Some(now + delay);
        delay
    }

    /// A refresh was refused (or could not be sent: the refresh token expired): no other
    /// refresh for `wait` (`auth_retry`).
    pub fn refused(&mut self, now: Instant, wait: Duration) {
        self.not_before = Some(now + wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> RecoveryConfig {
        RecoveryConfig {
            backoff_max: Duration::from_secs(8),
            ..RecoveryConfig::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_due_refresh_runs_at_once_and_failures_wait_longer_each_time_up_to_the_cap() {
        let mut s = RefreshSchedule::new(1);
        let now = Instant::now();
        assert_eq!(s.next_at(now), now, "due: at once");
        assert!(!s.waiting(now));
        let delays: Vec<Duration> = (0..6).map(|_| s.failed(now, &timing())).collect();
        // 1 s, 2 s, 4 s, 8 s, 8 s, 8 s, each ±25 %.
        for (d, base) in delays.iter().zip([1.0, 2.0, 4.0, 8.0, 8.0, 8.0]) {
            let secs = d.as_secs_f64();
            assert!(secs >= base * 0.75 && secs <= base * 1.25, "{delays:?}");
        }
        assert!(s.waiting(now));
        assert_eq!(s.next_at(now), now + delays[5]);
        tokio::time::advance(delays[5]).await;
        assert!(!s.waiting(Instant::now()));
        s.succeeded();
        assert!(s.failed(Instant::now(), &timing()) <= Duration::from_millis(1250));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_waits_auth_retry_even_when_the_token_is_due() {
        let mut s = RefreshSchedule::new(1);
        let now = Instant::now();
        s.refused(now, Duration::from_secs(360));
        assert_eq!(s.next_at(now), now + Duration::from_secs(360));
        assert!(s.waiting(now + Duration::from_secs(359)));
        assert!(!s.waiting(now + Duration::from_secs(360)));
        // A token due later than the wait: its own time.
        let later = now + Duration::from_secs(900);
        assert_eq!(s.next_at(later), later);
    }

    #[test]
    fn the_same_seed_gives_the_same_waits() {
        let run = |seed| {
            let mut s = RefreshSchedule::new(seed);
            let now = Instant::now();
            (0..5).map(|_| s.failed(now, &timing())).collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }
}
