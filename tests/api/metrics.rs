//! The metrics scrape (checked by promtool) and log hygiene.

use std::time::Duration;

use crate::common::*;

fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[test]
fn metrics_scrape_passes_promtool_and_tokens_never_reach_logs() {
    let db = TestDb::new();
    let (spawn, tmp) = Spawn::with_db(&db);
    // Debug level: every request logs a line inside its span (with the caller's name).
    let o = spawn
        .toml("[log]\nlevel = \"debug\"")
        .start_with_tmp(Some(tmp));
    o.wait_ready(Duration::from_secs(30));
    for token in [&o.tokens.admin, &o.tokens.viewer, &o.tokens.operator] {
        assert_eq!(o.get("/api/v1/actors", Some(token)).status, 200);
    }
    assert_eq!(
        o.get("/api/v1/flags", Some("ovs_wrong_secret_value"))
            .status,
        401
    );

    let text = o.get("/metrics", None).text;
    for needle in [
        "# HELP overseer_http_requests_total",
        "# TYPE overseer_http_request_duration_seconds histogram",
        "overseer_http_requests_total{method=\"GET\",route=\"/api/v1/actors\",status=\"200\"} 3",
        "overseer_actor_up{actor=\"node\"} 1",
        "overseer_actor_up{actor=\"database\"} 1",
        "overseer_build_info{version=",
        "overseer_database_up 1",
        "le=\"0.005\"",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }

    let promtool = which("promtool")
        .expect("promtool is needed (Debian package `prometheus`; scripts/test installs it)");
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let logs = o.logs.text();
    assert!(
        logs.contains("request finished"),
        "request logs were captured"
    );
    assert!(logs.contains("test-admin"), "the caller's name is logged");
    for secret in [&o.tokens.admin, &o.tokens.viewer, &o.tokens.operator] {
        assert!(!logs.contains(secret.as_str()), "a token reached the logs");
        assert!(!logs.contains(&secret[4..]), "a token reached the logs");
    }
    assert!(
        !logs.contains("ovs_wrong_secret_value"),
        "a presented token reached the logs"
    );
}
