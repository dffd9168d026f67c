//! The dashboard, driven in real headless Chromium by a Playwright script (tests/ui/
//! dashboard.py, Playwright from PyPI in target/py, Debian's Chromium): login and its
//! cookie, a job created through the form (a bad cron shown at its field), a run appearing
//! without a reload, a failed browser run's screenshot, requeue, CSRF, logout, and a viewer
//! without mutating controls whose forged request is refused. Screenshots of each page go
//! to target/ui-screenshots (the README shows the committed ones from docs/screenshots).

mod common;

use std::time::Duration;

use common::pages::Pages;
use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);

#[test]
fn the_dashboard_in_a_real_browser() {
    let python = python_with_playwright();
    let db = TestDb::new();
    let pages = Pages::start();
    let (spawn, tmp) = Spawn::with_db(&db);
    let o = spawn
        // A webhook nobody listens to, tried once: the failed run's notice fails there.
        .toml(
            "[browser]\nstep_timeout = \"2s\"\n\
             [notify]\npoll_interval = \"100ms\"\nmax_attempts = 1\n\
             [[notify.channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"",
        )
        .start_with_tmp(Some(tmp));
    o.wait_ready(T);
    // A browser run that fails, with its screenshot.
    let job = json!({"name": "broken-page", "kind": "browser", "schedule": {"at": chrono::Utc::now().to_rfc3339()},
        "payload": {"profile": "ui", "steps": [
            {"goto": {"url": pages.url("/delayed")}},
            {"wait_for": {"selector": "#never", "timeout": "1s"}}]},
        "policy": {"max_retries": 0}});
    let a = o.post("/api/v1/jobs", o.admin(), Some(&job.to_string()));
    assert_eq!(a.status, 201, "{}", a.text);
    let failed = wait_for("the browser run failed", T, || {
        let runs = o.get("/api/v1/runs?job=broken-page", o.admin()).json();
        runs["items"]
            .as_array()?
            .iter()
            .find(|r| r["state"] == "failed")
            .cloned()
    });
    wait_for(
        "the failed run's notification failed at the webhook",
        T,
        || {
            let n = o
                .get("/api/v1/notifications?state=failed", o.admin())
                .json();
            (!n["items"].as_array()?.is_empty()).then_some(())
        },
    );
    let second = json!({"name": "second", "kind": "noop", "schedule": {"cron": "0 0 29 2 *"}});
    let a = o.post("/api/v1/jobs", o.admin(), Some(&second.to_string()));
    assert_eq!(a.status, 201, "{}", a.text);
    let shots = format!("{}/target/ui-screenshots", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(&python)
        .arg(format!(
            "{}/tests/ui/dashboard.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(format!("http://{}", o.addr))
        .arg(&o.tokens.admin)
        .arg(&o.tokens.viewer)
        .arg(failed["id"].as_str().unwrap())
        .arg(&shots)
        .output()
        .expect("run the dashboard script");
    assert!(
        out.status.success(),
        "dashboard.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the script's JSON");
    println!("{seen:#}");
    assert_eq!(seen["redirected_to_login"], true, "{seen}");
    assert!(
        seen["login_hint"]
            .as_str()
            .unwrap()
            .contains("overseer token new"),
        "{seen}"
    );
    assert_eq!(seen["wrong_token_error"], "That token is not valid.");
    assert_eq!(seen["readiness"], "Ready");
    let nodes = seen["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{seen}");
    assert!(nodes[0].as_str().unwrap().contains("(leader)"), "{seen}");
    assert_eq!(
        (seen["chart_bars"].clone(), seen["chart_day_bars"].clone()),
        (json!(60), json!(24))
    );
    assert!(
        seen["chart_label"]
            .as_str()
            .unwrap()
            .starts_with("Runs finished per minute, last hour: "),
        "{seen}"
    );
    assert_eq!(
        seen["cookie"],
        json!({"httpOnly": true, "sameSite": "Strict"})
    );
    assert_eq!(seen["field_error_path"], "schedule.cron", "{seen}");
    assert_eq!(seen["run_appeared"], true);
    assert_eq!(seen["not_reloaded"], true);
    assert!(seen["screenshot_width"].as_i64().unwrap() > 100, "{seen}");
    assert!(
        seen["run_error"]
            .as_str()
            .unwrap()
            .starts_with("wait_timeout"),
        "{seen}"
    );
    assert_eq!(seen["requeue_notice"], "requeue: done");
    assert_eq!(seen["preview_fires"], 10, "{seen}");
    assert!(
        seen["preview_first"]
            .as_str()
            .unwrap()
            .contains("T09:00:00+01:00"),
        "Mondays 09:00 in Berlin (winter time): {seen}"
    );
    assert_eq!(seen["resend_notice"], "resend: done");
    assert_eq!(seen["bulk_notice"], "Pause 2 jobs: done", "{seen}");
    assert_eq!(seen["form_error_for"], "payload.url", "{seen}");
    assert_eq!(
        seen["form_kinds"],
        json!(["browser", "command", "http", "noop", "notify"]),
        "an admin may create every kind: {seen}"
    );
    assert_eq!(seen["form_kind_default"], "noop", "{seen}");
    assert_eq!(seen["pages_differ"], true, "{seen}");
    assert_eq!(
        seen["edit_form_url"],
        format!("http://{}/health", o.addr),
        "{seen}"
    );
    assert_eq!(seen["edit_form_error_for"], "schedule.cron", "{seen}");
    let edited = o.get("/api/v1/jobs/form-http", o.admin()).json();
    assert_eq!(edited["schedule"]["cron"], "0 12 29 2 *", "{edited}");
    assert_eq!(
        edited["payload"]["url"],
        format!("http://{}/health", o.addr),
        "kept: {edited}"
    );
    assert_eq!(seen["attempts"], 2, "{seen}");
    let made = o.get("/api/v1/jobs/form-http", o.admin()).json();
    assert_eq!(
        made["payload"]["url"],
        format!("http://{}/health", o.addr),
        "{made}"
    );
    assert_eq!(seen["edit_error_path"], "schedule.cron", "{seen}");
    assert_eq!(seen["edit_notice"], "saved from-ui", "{seen}");
    assert!(
        seen["browser_profile_row"].as_str().unwrap().contains("ui"),
        "{seen}"
    );
    assert_eq!(seen["post_without_csrf"], 403);
    assert!(seen["after_logout"]
        .as_str()
        .unwrap()
        .ends_with("/ui/login"));
    assert!(seen["after_logout_redirect"]
        .as_str()
        .unwrap()
        .ends_with("/ui/login"));
    assert_eq!(seen["api_after_logout"], 401);
    assert_eq!(seen["viewer_buttons"], 0);
    // On a phone no page is wider than the screen, every control has a name, and the
    // keyboard reaches and follows the navigation.
    for (route, overflow) in seen["phone_overflow"].as_object().unwrap() {
        assert!(overflow.as_i64().unwrap() <= 0, "{route} overflows: {seen}");
    }
    assert_eq!(seen["phone_overflow"].as_object().unwrap().len(), 8);
    assert_eq!(seen["unnamed_controls"], json!([]), "{seen}");
    assert_eq!(seen["tab_reaches"], "nav-jobs");
    assert_eq!(seen["enter_opened"], "#/jobs");
    assert_eq!(seen["viewer_audit_link"], 0, "the audit log is for admins");
    assert_eq!(seen["viewer_flag_controls"], 0);
    assert_eq!(seen["flag_value"], "off", "{seen}");
    assert!(
        seen["flag_source"]
            .as_str()
            .unwrap()
            .starts_with("runtime (set by test-admin"),
        "{seen}"
    );
    assert_eq!(seen["rollout_value"], "40% of profiles", "{seen}");
    let flag_actions: Vec<&str> = seen["audit_flag_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        flag_actions,
        ["flag.reset", "flag.reset", "flag.set", "flag.set"],
        "{seen}"
    );
    assert_eq!(seen["viewer_forged_post"], 403);
    assert_eq!(
        seen["console_errors"],
        json!([]),
        "no CSP violation, no script error"
    );
    // The dashboard's actions are in the audit log under the session's token, with the
    // logins (the wrong token's refused) and the logout; none was recorded after the fact.
    let audit = o.get("/api/v1/audit?limit=500", o.admin()).json();
    let rows = audit["items"].as_array().unwrap();
    let has = |action: &str, actor: Option<&str>, outcome: &str| {
        rows.iter().any(|r| {
            r["action"] == action
                && r["outcome"] == outcome
                && actor.is_none_or(|a| r["actor"] == a)
        })
    };
    assert!(has("ui.login", Some("test-admin"), "ok"), "{audit}");
    assert!(has("ui.login", None, "refused"), "{audit}");
    assert!(has("ui.logout", Some("test-admin"), "ok"), "{audit}");
    assert!(has("job.pause", Some("test-admin"), "ok"), "{audit}");
    assert!(has("run.requeue", Some("test-admin"), "ok"), "{audit}");
    // The CSRF-less post was refused before it counted as the session's.
    assert!(
        rows.iter().any(|r| r["action"] == "job.pause"
            && r["status"] == 403
            && r["reason"].as_str().unwrap().contains("CSRF")),
        "{audit}"
    );
    assert!(!o.logs.text().contains("without its audit row"));
    // The requeue made a new attempt of the failed fire.
    let runs = o.get("/api/v1/runs?job=broken-page", o.admin()).json();
    assert!(
        runs["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["attempt"] == 2),
        "{runs}"
    );
    // The job made through the form exists; the CSRF-less pause changed nothing.
    let job = o.get("/api/v1/jobs/from-ui", o.admin()).json();
    assert_eq!(
        job["state"], "active",
        "paused in bulk, resumed in bulk: {job}"
    );
    assert_eq!(job["tags"], json!(["edited-in-ui"]), "{job}");
}

/// Dashboard sessions idle past `[ui] session_idle` are refused, and the leader prunes them.
#[test]
fn idle_dashboard_sessions_are_refused_and_pruned() {
    use diesel::RunQueryDsl;
    let db = TestDb::migrated();
    let hash = |id: &str| overseer::stdx::secrets::hash_token(id);
    for (id, minutes_ago) in [("stale-session", 120), ("fresh-session", 0)] {
        diesel::sql_query(
            "INSERT INTO ui_sessions (id_hash, token_name, role, csrf, created_at, last_seen_at) \
             VALUES ($1, 'someone', 'viewer', 'c', now() - $2 * interval '1 minute', now() - $2 * interval '1 minute')",
        )
        .bind::<diesel::sql_types::Text, _>(hash(id))
        .bind::<diesel::sql_types::Integer, _>(minutes_ago)
        .execute(&mut db.conn())
        .unwrap();
    }
    let o = TestApp::start(&db, "");
    let with_cookie = |id: &str| {
        request(
            "GET",
            &o.url("/api/v1/jobs"),
            None,
            &[("Cookie", &format!("overseer_session={id}"))],
            None,
        )
        .status
    };
    assert_eq!(
        with_cookie("stale-session"),
        401,
        "idle for 2 h, expiry 30 min"
    );
    assert_eq!(with_cookie("fresh-session"), 200);
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    wait_for("the stale session pruned", T, || {
        let n = diesel::sql_query("SELECT count(*) AS n FROM ui_sessions")
            .get_result::<N>(&mut db.conn())
            .unwrap()
            .n;
        (n == 1).then_some(())
    });
}
