//! Restart intensity and backoff: pure arithmetic over a clock the caller passes in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::SupervisorConfig;

/// What the supervisor does after a child died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart after this delay.
    RestartAfter(Duration),
    /// Too many restarts in the window: stop restarting, escalate.
    Meltdown,
}

/// OTP-style restart intensity: more than `max_restarts` restarts within `window` is a
/// meltdown. The backoff doubles with each restart of the same child inside the window.
#[derive(Debug)]
pub struct RestartPolicy {
    max_restarts: u32,
    window: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    /// Restarts of any child, newest last (the intensity counts them all).
    recent: VecDeque<(Instant, &'static str)>,
}

impl RestartPolicy {
    pub fn new(cfg: &SupervisorConfig) -> Self {
        Self {
            max_restarts: cfg.max_restarts,
            window: cfg.restart_window,
            backoff_initial: cfg.backoff_initial,
            backoff_max: cfg.backoff_max,
            recent: VecDeque::new(),
        }
    }

    /// Records that `child` died at `now` and decides what to do.
    pub fn on_death(&mut self, child: &'static str, now: Instant) -> Decision {
        while let Some((at, _)) = self.recent.front() {
            if now.duration_since(*at) > self.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.push_back((now, child));
        if self.recent.len() > self.max_restarts as usize {
            return Decision::Meltdown;
        }
        let same_child = self.recent.iter().filter(|(_, c)| *c == child).count() as u32;
        Decision::RestartAfter(self.backoff(same_child))
    }

    /// Backoff before the `n`th restart (1-based) of a child inside the window.
    pub fn backoff(&self, n: u32) -> Duration {
        crate::stdx::backoff::exponential(
            self.backoff_initial,
            self.backoff_max,
            n.saturating_sub(1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SupervisorConfig {
        SupervisorConfig {
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            exit_on_meltdown: true,
        }
    }

    #[test]
    fn backoff_doubles_from_100ms_and_caps_at_5s() {
        let p = RestartPolicy::new(&cfg());
        let got: Vec<u128> = (1..=9).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(p.backoff(1000), Duration::from_secs(5));
    }

    #[test]
    fn more_than_five_restarts_in_sixty_seconds_is_a_meltdown() {
        let mut p = RestartPolicy::new(&cfg());
        let t0 = Instant::now();
        for i in 0..5 {
            let d = p.on_death("node", t0 + Duration::from_secs(i));
            assert!(matches!(d, Decision::RestartAfter(_)), "restart {i}");
        }
        assert_eq!(
            p.on_death("node", t0 + Duration::from_secs(10)),
            Decision::Meltdown
        );
    }

    #[test]
    fn restarts_outside_the_window_are_forgotten() {
        let mut p = RestartPolicy::new(&cfg());
        let t0 = Instant::now();
        for i in 0..20u64 {
            // One death every 15 s: never more than 5 in any 60 s window.
            let d = p.on_death("node", t0 + Duration::from_secs(15 * i));
            assert!(matches!(d, Decision::RestartAfter(_)), "death {i}: {d:?}");
        }
    }

    #[test]
    fn intensity_counts_every_child_but_backoff_is_per_child() {
        let mut p = RestartPolicy::new(&cfg());
        let t0 = Instant::now();
        assert_eq!(
            p.on_death("a", t0),
            Decision::RestartAfter(Duration::from_millis(100))
        );
        assert_eq!(
            p.on_death("b", t0),
            Decision::RestartAfter(Duration::from_millis(100))
        );
        assert_eq!(
            p.on_death("a", t0),
            Decision::RestartAfter(Duration::from_millis(200))
        );
        p.on_death("b", t0);
        p.on_death("c", t0);
        assert_eq!(p.on_death("c", t0), Decision::Meltdown);
    }
}
