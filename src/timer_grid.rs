//! One grid for the whole process's periodic timers. An idle fleet of 2,000 agents spends
//! its CPU on waking up: each agent's ping and health beat, at its own phase, is a wakeup of
//! the runtime of its own. Deadlines placed on a grid common to the process (counted from the
//! first use) fire together, so the runtime wakes once for all that fall on a grid point; each
//! function says which way it rounds, so that no interval grows past what its caller
//! promises.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

static BASE: OnceLock<Instant> = OnceLock::new();

fn base() -> Instant {
    *BASE.get_or_init(Instant::now)
}

/// The grid point of `grid` at or before `at` (never before `floor`): for a periodic
/// deadline that may come early but not late.
pub fn round_down(at: Instant, grid: Duration, floor: Instant) -> Instant {
    let base = base();
    if grid.is_zero() || at <= base {
        return at;
    }
    let steps = (at - base).as_nanos() / grid.as_nanos();
    let point = base + nanos(steps * grid.as_nanos());
    point.max(floor)
}

/// The first grid point of `grid` after `now`: a beat at most `grid` away.
pub fn next_point(now: Instant, grid: Duration) -> Instant {
    let base = base();
    if grid.is_zero() || now < base {
        return now + grid;
    }
    let steps = (now - base).as_nanos() / grid.as_nanos() + 1;
    base + nanos(steps * grid.as_nanos())
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deadlines_of_different_phases_meet_on_the_grid_and_keep_their_promise() {
        let grid = Duration::from_millis(100);
        let start = base();
        let mut points = std::collections::BTreeSet::new();
        for phase_ms in 0..50 {
            let now = start + Duration::from_millis(1000 + phase_ms);
            let want = now + Duration::from_secs(10);
            let at = round_down(want, grid, now);
            assert!(
                at <= want && want - at < grid,
                "{phase_ms}: early by < grid"
            );
            points.insert(at);
            let beat = next_point(now, Duration::from_millis(3750));
            assert!(beat > now && beat - now <= Duration::from_millis(3750));
        }
        assert!(
            points.len() <= 2,
            "50 phases met on {} points",
            points.len()
        );
        // Never before the floor (a grid coarser than the interval).
        let now = start + Duration::from_millis(1234);
        let at = round_down(now + Duration::from_millis(10), Duration::from_secs(1), now);
        assert_eq!(at, now);
    }
}
