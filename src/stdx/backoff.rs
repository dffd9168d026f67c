//! Exponential backoff: the one formula every retry in overseer uses (supervisor restarts,
//! notification deliveries, circuit open periods, hand-backs).

use std::time::Duration;

/// `initial · 2^step`, capped at `max` (step 0 is `initial`); never overflows.
pub fn exponential(initial: Duration, max: Duration, step: u32) -> Duration {
    let factor = 2u32.saturating_pow(step.min(31));
    initial.checked_mul(factor).unwrap_or(max).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let (i, m) = (Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(exponential(i, m, 0), Duration::from_millis(100));
        assert_eq!(exponential(i, m, 1), Duration::from_millis(200));
        assert_eq!(exponential(i, m, 5), Duration::from_millis(3200));
        assert_eq!(exponential(i, m, 6), m);
        assert_eq!(exponential(i, m, u32::MAX), m);
        assert_eq!(exponential(Duration::MAX, m, 3), m);
    }
}
