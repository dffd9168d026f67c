//! Durations as people write them ("30s", "5m", "1h30m", "250ms"), bounded.

use std::time::Duration;

/// The longest duration any setting may have: 10 years (of 365.25 days).
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 31_557_600);

/// Parses a duration like "30s", "5m", "1h30m", "250ms", at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("not a duration like \"30s\" or \"5m\" ({e})"))?;
    if d > MAX_DURATION {
        return Err("at most 10 years".to_string());
    }
    Ok(d)
}

/// The shortest human form ("1m 30s").
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
