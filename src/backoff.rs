//! Retry delays, as one small value type over the `backoff` crate (used only as the delay
//! generator, so a later swap to `backon` touches this file alone). The first retry after a
//! healthy period waits a uniform random time in `[0, first_retry_window]`, so that a fleet of
//! daemons that lost the same node does not come back at once; later retries grow
//! exponentially with jitter, capped at `backoff_max`. [`Backoff::reset`] starts over.
//!
//! Every random draw comes from the generator's own seeded rng (the `backoff` crate grows the
//! interval, with its own randomization off), so that a machine given the same seed and the
//! same inputs makes the same decisions: a failing property test replays exactly.

use std::time::Duration;

use backoff::ExponentialBackoff;
use backoff::backoff::Backoff as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::RecoveryConfig;

/// The retry delay generator.
#[derive(Debug)]
pub struct Backoff {
    window: Duration,
    max: Duration,
    jitter: f64,
    inner: ExponentialBackoff,
    attempt: u32,
    rng: StdRng,
}

impl Backoff {
    /// A fresh generator drawing from an rng seeded with `seed`.
    pub fn new(cfg: &RecoveryConfig, seed: u64) -> Self {
        Self::with_rng(cfg, StdRng::seed_from_u64(seed))
    }

    /// A fresh generator for new timing that keeps drawing from this one's rng.
    pub fn reconfigured(self, cfg: &RecoveryConfig) -> Self {
        Self::with_rng(cfg, self.rng)
    }

    fn with_rng(cfg: &RecoveryConfig, rng: StdRng) -> Self {
        let inner = ExponentialBackoff {
            current_interval: cfg.backoff_initial,
            initial_interval: cfg.backoff_initial,
            // The jitter is drawn here, from the seeded rng.
            randomization_factor: 0.0,
            multiplier: cfg.backoff_multiplier,
            max_interval: cfg.backoff_max,
            max_elapsed_time: None,
            ..ExponentialBackoff::default()
        };
        Self {
            window: cfg.first_retry_window,
            max: cfg.backoff_max,
            jitter: cfg.backoff_jitter.clamp(0.0, 1.0),
            inner,
            attempt: 0,
            rng,
        }
    }

    /// The delay before the next retry.
    pub fn next_delay(&mut self) -> Duration {
        self.attempt += 1;
        if self.attempt == 1 {
            let ms = self.window.as_millis() as u64;
            return Duration::from_millis(if ms == 0 {
                0
            } else {
                self.rng.gen_range(0..=ms)
            });
        }
        let interval = self.inner.next_backoff().unwrap_or(self.max).min(self.max);
        // Uniform in interval × [1 - jitter, 1 + jitter], as the `backoff` crate draws it.
        let factor = 1.0 - self.jitter + 2.0 * self.jitter * self.rng.r#gen::<f64>();
        let d = interval.mul_f64(factor).min(self.max);
        // Whole milliseconds: the timer's resolution anyway.
        Duration::from_millis(d.as_millis() as u64)
    }

    /// Retries made since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Starts over (after `healthy_after` of health).
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.inner.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RecoveryConfig {
        RecoveryConfig::default()
    }

    #[test]
    fn first_retry_is_uniform_in_the_window_and_spreads_a_fleet() {
        let delays: Vec<Duration> = (0..200)
            .map(|i| Backoff::new(&cfg(), i).next_delay())
            .collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(2)));
        let early = delays
            .iter()
            .filter(|d| **d < Duration::from_secs(1))
            .count();
        assert!(
            (40..=160).contains(&early),
            "{early} of 200 in the first half"
        );
    }

    #[test]
    fn later_retries_grow_with_jitter_and_stay_under_the_cap() {
        let mut b = Backoff::new(&cfg(), 7);
        b.next_delay();
        let second = b.next_delay();
        assert!(
            second >= Duration::from_millis(500) && second <= Duration::from_millis(1500),
            "{second:?}"
        );
        let mut last = Duration::ZERO;
        for _ in 0..20 {
            last = b.next_delay();
            assert!(last <= Duration::from_secs(60));
        }
        assert!(
            last >= Duration::from_secs(30),
            "reaches the cap region: {last:?}"
        );
        b.reset();
        assert!(
            b.next_delay() <= Duration::from_secs(2),
            "reset goes back to the window"
        );
    }

    #[test]
    fn the_same_seed_draws_the_same_delays_and_another_seed_others() {
        let draw = |seed: u64| {
            let mut b = Backoff::new(&cfg(), seed);
            (0..8).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
        // A reload's new timing keeps drawing from the same rng: still repeatable.
        let again = |seed: u64| {
            let mut b = Backoff::new(&cfg(), seed);
            b.next_delay();
            let mut b = b.reconfigured(&cfg());
            b.next_delay()
        };
        assert_eq!(again(9), again(9));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_loop_under_paused_time_waits_the_sum_of_its_delays() {
        let mut b = Backoff::new(&cfg(), 7);
        let start = tokio::time::Instant::now();
        let mut total = Duration::ZERO;
        for _ in 0..5 {
            let d = b.next_delay();
            total += d;
            tokio::time::sleep(d).await;
        }
        assert_eq!(start.elapsed(), total);
        assert!(total <= Duration::from_secs(2 + 2 * 15));
    }
}
