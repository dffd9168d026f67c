//! The shipped Prometheus alerts and Grafana dashboard (`config/monitoring/`): every metric
//! they name is one a live overseer exports (after a little work: runs, a failure, a
//! quota, a notification), the rules pass `promtool check rules`, every alert has unit tests
//! that pass `promtool test rules`, and every dashboard query is valid PromQL.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/monitoring")
}

fn promtool() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
        .expect("promtool is needed (Debian package `prometheus`; scripts/test installs it)")
}

fn promtool_ok(args: &[&str], cwd: &Path) -> String {
    let out = std::process::Command::new(promtool())
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// Every `overseer_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("overseer_") {
        let start = i + at;
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end].is_ascii_digit()
                || bytes[end] == b'_')
        {
            end += 1;
        }
        if before_ok {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
    out
}

/// The metric names a scrape contains (histograms also under their `_bucket`, `_sum`,
/// `_count` series).
fn exported(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_string())
        .collect()
}

/// Alert names of the rules file, and those its unit tests check.
fn alert_names(rules: &str, key: &str) -> BTreeSet<String> {
    rules
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix(key))
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn shipped_alerts_and_dashboard_name_only_real_metrics_and_pass_promtool() {
    let db = TestDb::new();
    let o = TestApp::start(&db, "");

    // A little of everything the dashboard shows: a quota used up and refused, a run that
    // succeeds, one that fails (a job.failed notification to the log channel).
    let put = o.put(
        "/api/v1/quotas/posts",
        o.admin(),
        r#"{"limits": {"hour": 1}}"#,
    );
    assert_eq!(put.status, 201, "{}", put.text);
    assert_eq!(
        o.post("/api/v1/quotas/posts/consume", o.admin(), None)
            .status,
        200
    );
    assert_eq!(
        o.post("/api/v1/quotas/posts/consume", o.admin(), None)
            .status,
        429
    );
    for (name, kind, payload) in [
        ("ok", "noop", json!({})),
        (
            "broken",
            "http",
            json!({"url": "http://127.0.0.1:9/", "timeout": "1s"}),
        ),
    ] {
        let body = json!({"name": name, "kind": kind, "payload": payload,
            "schedule": {"at": Utc::now().to_rfc3339()}, "policy": {"max_retries": 0}});
        let a = o.post("/api/v1/jobs", o.admin(), Some(&body.to_string()));
        assert_eq!(a.status, 201, "{}", a.text);
    }
    let scrape = wait_for("every metric the shipped files name", T, || {
        let scrape = o.get("/metrics", None).text;
        let have = exported(&scrape);
        let done = have.contains("overseer_notification_delivery_duration_seconds_count")
            && have.contains("overseer_runs_oldest_due_seconds")
            && scrape.contains("overseer_runs_finished_total{kind=\"http\",state=\"failed\"} 1");
        done.then_some(scrape)
    });
    let have = exported(&scrape);

    let alerts = std::fs::read_to_string(dir().join("alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir().join("alerts.test.yml")).unwrap();
    let dashboard_text = std::fs::read_to_string(dir().join("grafana-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&dashboard_text).expect("the dashboard is JSON");

    // Every metric named in a query exists (a histogram by its series).
    let mut exprs: Vec<String> = Vec::new();
    for p in dashboard["panels"].as_array().unwrap() {
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    let used_in_dashboard: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    let used_in_alerts = metric_names(&alerts);
    let missing: Vec<&String> = used_in_dashboard
        .iter()
        .chain(&used_in_alerts)
        .filter(|name| !(have.contains(*name) || have.contains(&format!("{name}_count"))))
        .collect();
    assert!(
        missing.is_empty(),
        "used by config/monitoring but not exported: {missing:?}\n{scrape}"
    );
    // The topics the issue asks for are there.
    for needed in [
        "overseer_runs_finished_total",
        "overseer_run_lateness_seconds_bucket",
        "overseer_run_duration_seconds_bucket",
        "overseer_zombies_detected_total",
        "overseer_quota_remaining",
        "overseer_circuits_open",
        "overseer_browser_sessions",
        "overseer_browser_crashes_total",
        "overseer_notifications_pending",
        "overseer_notifications_total",
        "overseer_actor_restarts_total",
        "overseer_database_up",
    ] {
        assert!(
            used_in_dashboard.contains(needed),
            "the dashboard shows no {needed}"
        );
    }
    let ids: Vec<i64> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        ids.iter().collect::<BTreeSet<_>>().len(),
        "panel ids are unique"
    );
    for p in dashboard["panels"].as_array().unwrap() {
        let g = &p["gridPos"];
        assert!(
            g["x"].as_i64().unwrap() + g["w"].as_i64().unwrap() <= 24,
            "{}",
            p["title"]
        );
    }
    assert_eq!(dashboard["uid"], "overseer");

    // The rules pass promtool; every alert has a unit test, and they pass.
    promtool_ok(&["check", "rules", "alerts.yml"], &dir());
    promtool_ok(&["test", "rules", "alerts.test.yml"], &dir());
    let defined = alert_names(&alerts, "alert:");
    let tested = alert_names(&tests, "alertname:");
    assert_eq!(
        defined, tested,
        "every alert has unit tests, and only those"
    );
    for needed in [
        "OverseerMeltdown",
        "OverseerDatabaseDown",
        "OverseerRunsStuck",
        "OverseerZombiesRising",
        "OverseerQuotaExhausted",
        "OverseerCircuitOpen",
        "OverseerNotificationsFailing",
        "OverseerLeaderMissing",
    ] {
        assert!(defined.contains(needed), "no alert {needed}");
    }

    // Every dashboard query is valid PromQL: checked as recording rules (Grafana's
    // variables replaced by what they expand to).
    let check = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "5m")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    std::fs::write(check.path().join("dashboard.yml"), rules).unwrap();
    let out = promtool_ok(&["check", "rules", "dashboard.yml"], check.path());
    assert!(
        out.contains(&format!("{} rules found", exprs.len())),
        "{out}"
    );
}
