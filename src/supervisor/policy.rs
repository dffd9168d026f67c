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

/// Deaths within a sliding window, keyed by who died: the restart intensity of the
/// supervisor (keyed by child name) and of the browser pool's sessions (keyed by profile).
#[derive(Debug)]
pub struct Intensity<K> {
    window: Duration,
    /// Deaths, newest last.
    recent: VecDeque<(Instant, K)>,
}

impl<K: PartialEq> Intensity<K> {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            recent: VecDeque::new(),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Forgets deaths older than the window at `now`.
    fn forget_old(&mut self, now: Instant) {
        while let Some((at, _)) = self.recent.front() {
            if now.saturating_duration_since(*at) > self.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
    }

    /// Records a death of `key` at `now`.
    pub fn record(&mut self, key: K, now: Instant) {
        self.forget_old(now);
        self.recent.push_back((now, key));
    }

    /// Deaths of anyone within the window at `now`.
    pub fn total(&mut self, now: Instant) -> usize {
        self.forget_old(now);
        self.recent.len()
    }

    /// Deaths of `key` within the window at `now`.
    pub fn of(&mut self, key: &K, now: Instant) -> usize {
        self.forget_old(now);
        self.recent.iter().filter(|(_, k)| k == key).count()
    }
}

/// OTP-style restart intensity: more than `max_restarts` restarts within `window` is a
/// meltdown. The backoff doubles with each restart of the same child inside the window.
#[derive(Debug)]
pub struct RestartPolicy {
    max_restarts: u32,
    backoff_initial: Duration,
    backoff_max: Duration,
    /// Restarts of any child (the intensity counts them all).
    deaths: Intensity<&'static str>,
}

impl RestartPolicy {
    pub fn new(cfg: &SupervisorConfig) -> Self {
        Self {
            max_restarts: cfg.max_restarts,
            backoff_initial: cfg.backoff_initial,
            backoff_max: cfg.backoff_max,
            deaths: Intensity::new(cfg.restart_window),
        }
    }

    /// Records that `child` died at `now` and decides what to do.
    pub fn on_death(&mut self, child: &'static str, now: Instant) -> Decision {
        self.deaths.record(child, now);
        if self.deaths.total(now) > self.max_restarts as usize {
            return Decision::Meltdown;
        }
        let same_child = self.deaths.of(&child, now) as u32;
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
    fn intensity_counts_per_key_within_its_window() {
        let mut i = Intensity::new(Duration::from_secs(60));
        let t0 = Instant::now();
        i.record("p".to_string(), t0);
        i.record("q".to_string(), t0 + Duration::from_secs(30));
        assert_eq!(i.of(&"p".to_string(), t0 + Duration::from_secs(60)), 1);
        assert_eq!(i.total(t0 + Duration::from_secs(60)), 2);
        assert_eq!(i.of(&"p".to_string(), t0 + Duration::from_secs(61)), 0);
        assert_eq!(i.total(t0 + Duration::from_secs(61)), 1);
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
