//! Run states and their transition table: the single source for what may follow what.
//!
//! ```text
//!             ┌──────────► missed            (a fire later than misfire_grace)
//!             │
//!  pending ───┼──────────► running ──┬──► succeeded
//!     ▲  │    │                      ├──► failed      (error; retried as a new attempt)
//!     │  │    │                      ├──► timed_out   (exceeded timeout; retried likewise)
//!     │  │    │                      └──► zombie      (worker died or hung; zombie issue)
//!     │  ▼    │
//!  deferred   └──────────► cancelled  (from any non-terminal state)
//! ```
//! `deferred` is waiting, not failing (quotas, circuit breakers): it returns to `pending`.
//! A run refused by a quota when its executor takes it goes `running → deferred` (no attempt
//! is used: the job never ran).
//! A retry is a new row (attempt + 1), never a transition of a terminal row.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Pending,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Missed,
    Zombie,
    Cancelled,
    Deferred,
}

impl RunState {
    pub const ALL: [RunState; 9] = [
        RunState::Pending,
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
        RunState::TimedOut,
        RunState::Missed,
        RunState::Zombie,
        RunState::Cancelled,
        RunState::Deferred,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::TimedOut => "timed_out",
            RunState::Missed => "missed",
            RunState::Zombie => "zombie",
            RunState::Cancelled => "cancelled",
            RunState::Deferred => "deferred",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            RunState::Pending | RunState::Running | RunState::Deferred
        )
    }

    /// The transition table.
    pub fn can_become(self, next: RunState) -> bool {
        use RunState::*;
        matches!(
            (self, next),
            (Pending, Running | Missed | Deferred | Cancelled)
                | (Deferred, Pending | Cancelled)
                | (
                    Running,
                    Succeeded | Failed | TimedOut | Zombie | Cancelled | Deferred | Pending
                )
        )
    }
}

/// A stored state that is none of ours.
#[derive(Debug, thiserror::Error)]
#[error("unknown run state `{0}`")]
pub struct UnknownRunState(pub String);

impl TryFrom<String> for RunState {
    type Error = UnknownRunState;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s).ok_or(UnknownRunState(s))
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::RunState::*;
    use super::*;

    #[test]
    fn terminal_states_go_nowhere() {
        for s in RunState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for n in RunState::ALL {
                assert!(!s.can_become(n), "{s} -> {n}");
            }
        }
    }

    #[test]
    fn the_documented_transitions() {
        assert!(Pending.can_become(Running));
        assert!(Pending.can_become(Missed));
        assert!(Running.can_become(Succeeded));
        assert!(Running.can_become(TimedOut));
        assert!(Running.can_become(Zombie));
        assert!(Deferred.can_become(Pending));
        // Handed back: claimed here but never taken by an executor.
        assert!(Running.can_become(Pending));
        assert!(
            !Pending.can_become(Succeeded),
            "a run must start before it succeeds"
        );
        assert!(
            !Running.can_become(Missed),
            "a started run cannot be missed"
        );
        for s in [Pending, Running, Deferred] {
            assert!(s.can_become(Cancelled), "{s} can be cancelled");
        }
        for s in RunState::ALL {
            assert_eq!(RunState::parse(s.as_str()), Some(s));
        }
    }
}
