//! Maintenance: the once-per-cluster duties, River-style — three actors on every node, of
//! which only the elected leader's act:
//! - `elector.rs` — the leadership lease (`db::leader`), renewed every third of
//!   `zombie.lease`; a leader that dies or freezes stops renewing and another node takes over
//!   once the lease expired (within 2 × lease). It also watches for nodes gone silent with
//!   running runs and asks the rescuer to sweep at once.
//! - `rescuer.rs` — zombie sweeps and rescue, every `zombie.sweep_interval`.
//! - `cleaner.rs` — retention: run history, notifications, the audit log, quota windows,
//!   dashboard sessions, every `runs.prune_interval`.
//!
//! Who leads is the [`Leadership`] the elector keeps (in `Deps`): held only until a little
//! after the last renewal, so a dead or frozen elector's node stops acting by itself.

pub mod cleaner;
pub mod elector;
pub mod rescuer;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Whether this node holds the maintenance lease, as the elector last found.
#[derive(Clone, Debug, Default)]
pub struct Leadership(Arc<Mutex<Option<Instant>>>);

impl Leadership {
    /// The lease was renewed now, for `lease`: held for half of it (renewals come every
    /// third), so a node whose elector stopped renewing stops acting before another leads.
    pub fn renewed(&self, lease: Duration) {
        if let Ok(mut until) = self.0.lock() {
            *until = Some(Instant::now() + lease / 2);
        }
    }

    /// Another node leads, or the lease could not be read.
    pub fn lost(&self) {
        if let Ok(mut until) = self.0.lock() {
            *until = None;
        }
    }

    /// Whether this node leads now.
    pub fn held(&self) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|u| *u)
            .is_some_and(|until| Instant::now() < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leadership_lapses_by_itself_without_renewals() {
        let l = Leadership::default();
        assert!(!l.held());
        l.renewed(Duration::from_secs(60));
        assert!(l.held());
        l.lost();
        assert!(!l.held());
        l.renewed(Duration::ZERO);
        assert!(!l.held(), "a renewal for no time holds nothing");
    }
}
