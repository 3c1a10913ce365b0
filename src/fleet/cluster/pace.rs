//! How many awaited agents a host says it is ready for: as many as it has brought to steady
//! in the last second, plus a little to grow on, less those still on their way, and never
//! more than its login cap allows in a second. Self-clocked like a transport's window: when
//! its XMPP server logs agents in fast, the window opens to the cap; when the server is
//! saturated, the window shrinks to what it does in a second, so that an agent handed over
//! waits about a second for its login rather than in a queue. Pure: the fleet tells it when
//! an agent landed (reached steady) and asks it for the window.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// How far back the landings count.
const SPAN: Duration = Duration::from_secs(1);

/// Agents a host is ready for beyond what it landed in the last second (so that an idle
/// host starts, and a fast one grows).
const PROBE: usize = 2;

/// The window's state.
#[derive(Debug, Clone)]
pub struct Pace {
    /// When agents landed, within the last [`SPAN`].
    landed: VecDeque<Instant>,
    /// The most agents ready at once: one second of the login cap.
    cap: usize,
}

impl Pace {
    /// A window of at most `cap`.
    pub fn new(cap: usize) -> Self {
        Self {
            landed: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// An agent started here reached steady at `now`.
    pub fn landed(&mut self, now: Instant) {
        self.landed.push_back(now);
        self.forget(now);
    }

    fn forget(&mut self, now: Instant) {
        while self
            .landed
            .front()
            .is_some_and(|t| now.duration_since(*t) >= SPAN)
        {
            self.landed.pop_front();
        }
    }

    /// How many more agents to say ready for at `now`, with `arriving` agents still on their
    /// way to steady here.
    pub fn window(&mut self, now: Instant, arriving: usize) -> usize {
        self.forget(now);
        (self.landed.len() + PROBE)
            .min(self.cap)
            .saturating_sub(arriving)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_idle_host_starts_small_and_a_fast_one_opens_to_its_cap() {
        let mut p = Pace::new(50);
        let now = Instant::now();
        assert_eq!(p.window(now, 0), PROBE);
        // Each agent lands in 100 ms: the window grows with what lands.
        let mut t = now;
        for _ in 0..6 {
            t += Duration::from_millis(100);
            let w = p.window(t, 0);
            for _ in 0..w {
                p.landed(t);
            }
        }
        assert_eq!(p.window(t, 0), 50, "capped at one second of logins");
    }

    #[tokio::test(start_paused = true)]
    async fn a_saturated_server_keeps_the_window_at_what_it_does_in_a_second() {
        let mut p = Pace::new(50);
        let mut t = Instant::now();
        // The server brings 10 agents a second to steady, whatever is asked of it.
        for _ in 0..50 {
            t += Duration::from_millis(100);
            p.landed(t);
        }
        assert_eq!(p.window(t, 0), 10 + PROBE);
        // Those still on their way count against it.
        assert_eq!(p.window(t, 7), 10 + PROBE - 7);
        assert_eq!(p.window(t, 40), 0);
        // Nothing lands for a second: back to the probe.
        t += Duration::from_millis(1500);
        assert_eq!(p.window(t, 0), PROBE);
    }
}
