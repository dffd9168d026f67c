//! Run artifacts (screenshots) on disk under `<state_dir>/artifacts/<run id>/`, and their
//! pruning with the run history's retention.

use super::*;

/// Writes a run's artifacts on the blocking pool (not on the pool's event loop); returns the
/// names written.
pub(super) async fn save_artifacts(dir: PathBuf, files: Vec<(String, Vec<u8>)>) -> Vec<String> {
    if files.is_empty() {
        return Vec::new();
    }
    tokio::task::spawn_blocking(move || {
        if std::fs::create_dir_all(&dir).is_err() {
            return Vec::new();
        }
        files
            .into_iter()
            .filter(|(name, bytes)| std::fs::write(dir.join(name), bytes).is_ok())
            .map(|(name, _)| name)
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// Deletes run artifact directories last written more than `keep` ago; returns how many.
/// Blocking: call it on the blocking pool.
pub fn prune_artifacts(dir: &std::path::Path, keep: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > keep);
        if old && std::fs::remove_dir_all(e.path()).is_ok() {
            n += 1;
        }
    }
    n
}
