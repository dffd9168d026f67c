//! The `browser_sessions` recorder: rehydrates the table at the pool's start, then writes
//! every launch, close, death and run of the pool's browsers, in order, from one task.

use crate::browser::SessionEvent;
use crate::db::browser_sessions::{self, Change};
use crate::db::Db;

use super::NAME;

/// Folds a batch of events into row changes, in order; runs are summed per profile.
fn changes(batch: Vec<SessionEvent>) -> Vec<(String, Change)> {
    let mut out: Vec<(String, Change)> = Vec::new();
    let mut runs: std::collections::BTreeMap<String, i64> = Default::default();
    for ev in batch {
        let (profile, change) = match ev {
            SessionEvent::Used { profile } => {
                *runs.entry(profile).or_default() += 1;
                continue;
            }
            SessionEvent::Launched { profile, pid } => (
                profile,
                Change {
                    state: Some("running"),
                    pid: Some(pid),
                    launches: 1,
                    ..Change::default()
                },
            ),
            SessionEvent::LaunchFailed { profile, error } => (
                profile,
                Change {
                    state: Some("crashed"),
                    error: Some(format!("launch failed: {error}")),
                    ..Change::default()
                },
            ),
            SessionEvent::Closed { profile } => (
                profile,
                Change {
                    state: Some("closed"),
                    ..Change::default()
                },
            ),
            SessionEvent::Died { profile } => (
                profile,
                Change {
                    state: Some("crashed"),
                    crashes: 1,
                    error: Some("the browser died (killed, crashed or disconnected)".into()),
                    ..Change::default()
                },
            ),
            SessionEvent::RendererCrashed { profile } => (
                profile,
                Change {
                    crashes: 1,
                    error: Some("a renderer crashed (Inspector.targetCrashed)".into()),
                    ..Change::default()
                },
            ),
        };
        out.push((profile, change));
    }
    out.extend(runs.into_iter().map(|(profile, n)| {
        (
            profile,
            Change {
                runs: n,
                ..Change::default()
            },
        )
    }));
    out
}

/// Rehydrates `browser_sessions`, then records the pool's events in order until the pool
/// (the sender) is gone. A database outage loses rows' freshness, never a run.
pub(super) async fn record_sessions(
    db: Db,
    node_id: uuid::Uuid,
    mut events: tokio::sync::mpsc::UnboundedReceiver<SessionEvent>,
) {
    let host = crate::actors::node::hostname();
    while let Some(first) = events.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = events.try_recv() {
            batch.push(more);
        }
        let h = host.clone();
        let changes = changes(batch);
        let written = db
            .run(move |c| {
                for (profile, change) in &changes {
                    browser_sessions::apply(c, &h, node_id, profile, change)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(actor = NAME, error = %e, "recording browser sessions failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_summed_and_state_changes_kept_in_order() {
        let p = |s: &str| s.to_string();
        let out = changes(vec![
            SessionEvent::Launched {
                profile: p("a"),
                pid: 7,
            },
            SessionEvent::Used { profile: p("a") },
            SessionEvent::Used { profile: p("a") },
            SessionEvent::Died { profile: p("a") },
            SessionEvent::Used { profile: p("b") },
        ]);
        assert_eq!(out.len(), 4);
        assert_eq!(out[0].1.state, Some("running"));
        assert_eq!(out[0].1.pid, Some(7));
        assert_eq!(out[1].1.state, Some("crashed"));
        assert_eq!(out[1].1.crashes, 1);
        assert_eq!((out[2].0.as_str(), out[2].1.runs), ("a", 2));
        assert_eq!((out[3].0.as_str(), out[3].1.runs), ("b", 1));
    }
}
