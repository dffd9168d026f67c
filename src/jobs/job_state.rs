//! Job states and their transition table: the single source for what may follow what.
//!
//! ```text
//!            pause               resume
//!  active ─────────► paused ─────────► active
//!    │  ▲
//!    │  └──────────── completed       (its definition changed: the schedule fires again)
//!    └──────────────► completed       (the schedule has no next fire)
//!
//!  active | paused | completed ──────► cancelled   (never fires again; terminal)
//! ```
//! Every state change is one conditional statement (`UPDATE jobs … WHERE state = <from>`,
//! `db::jobs::transition`): a change that lost a race to another one changes nothing and
//! says so, instead of undoing it (a pause landing after a cancel made the job fire again).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Active,
    Paused,
    Completed,
    Cancelled,
}

/// A stored state that is none of ours (a row written by something else).
#[derive(Debug, thiserror::Error)]
#[error("unknown job state `{0}`")]
pub struct UnknownJobState(pub String);

impl JobState {
    pub const ALL: [JobState; 4] = [
        JobState::Active,
        JobState::Paused,
        JobState::Completed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Active => "active",
            JobState::Paused => "paused",
            JobState::Completed => "completed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The transition table.
    pub fn can_become(self, next: JobState) -> bool {
        use JobState::*;
        matches!(
            (self, next),
            (Active, Paused | Completed | Cancelled)
                | (Paused, Active | Cancelled)
                | (Completed, Active | Cancelled)
        )
    }

    /// The states a job can become `next` from.
    pub fn sources_of(next: JobState) -> Vec<JobState> {
        Self::ALL
            .into_iter()
            .filter(|s| s.can_become(next))
            .collect()
    }
}

impl TryFrom<String> for JobState {
    type Error = UnknownJobState;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s).ok_or(UnknownJobState(s))
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::JobState::*;
    use super::*;

    #[test]
    fn cancelled_is_terminal() {
        for n in JobState::ALL {
            assert!(!Cancelled.can_become(n), "cancelled -> {n}");
        }
    }

    #[test]
    fn the_documented_transitions() {
        assert!(Active.can_become(Paused) && Paused.can_become(Active));
        assert!(Active.can_become(Completed) && Completed.can_become(Active));
        assert!(!Paused.can_become(Completed), "a paused job does not fire");
        assert!(!Active.can_become(Active), "not a change");
        assert_eq!(
            JobState::sources_of(Cancelled),
            vec![Active, Paused, Completed]
        );
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
            assert_eq!(JobState::try_from(s.to_string()).ok(), Some(s));
        }
        assert!(JobState::try_from("gone".to_string()).is_err());
    }
}
