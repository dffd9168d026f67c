//! The live view (a person drives a profile's browser), in real Chromium against a test site
//! whose login asks for a one-time code, through the documented protocol (tests/common/
//! live.rs, no dashboard). The dashboard's side is in tests/ui.rs.

mod common;

use std::time::Duration;

use common::live::{click, input, press, typing, Follower};
use common::otp::{self, OtpSite};
use common::probes::Probes;
use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);

fn open(o: &TestApp, token: Option<&str>, profile: &str, url: &str) -> common::Answer {
    o.post(
        "/api/v1/browser/live",
        token,
        Some(&json!({"profile": profile, "url": url}).to_string()),
    )
}

fn live_rows(o: &TestApp) -> Vec<Value> {
    let a = o.get("/api/v1/audit?action=browser.live", o.admin());
    assert_eq!(a.status, 200, "{}", a.text);
    a.json()["items"].as_array().unwrap().clone()
}

/// The audit row of view `id` once its end is written.
fn ended_row(o: &TestApp, id: &str) -> Value {
    wait_for("the view's audit row has its end", T, || {
        live_rows(o)
            .into_iter()
            .find(|r| r["diff"]["live_id"] == id && !r["diff"]["ended_at"].is_null())
    })
}

#[test]
fn a_person_logs_in_with_a_one_time_code_and_the_profiles_runs_find_the_login() {
    let site = OtpSite::start();
    let db = TestDb::new();
    let o = TestApp::start(&db, "[browser]\nstep_timeout = \"10s\"");
    let admin = o.tokens.admin.clone();

    // Only operators and admins may take the wheel.
    let a = open(&o, Some(&o.tokens.viewer), "jobboard", &site.url("/login"));
    assert_eq!(a.status, 403, "{}", a.text);
    let a = open(&o, o.admin(), "jobboard", "file:///etc/passwd");
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(a.text.contains("url"), "{}", a.text);

    let a = open(&o, o.admin(), "jobboard", &site.url("/login"));
    assert_eq!(a.status, 201, "{}", a.text);
    let view = a.json();
    let id = view["id"].as_str().unwrap().to_string();
    assert_eq!(view["link"], format!("/ui/#/live/{id}"));
    // One view per profile at a time.
    assert_eq!(
        open(&o, o.admin(), "jobboard", &site.url("/login")).status,
        409
    );
    let a = o.get(
        &format!("/api/v1/browser/live/{id}/events"),
        Some(&o.tokens.viewer),
    );
    assert_eq!(a.status, 403, "{}", a.text);

    let mut ev = Follower::start(&o, &id, &admin);
    let frame = ev.wait("a first frame", T, |n, _| n == "frame");
    assert!(frame["width"].as_f64().unwrap() >= 800.0, "{frame}");
    assert!(
        frame["data"].as_str().unwrap().starts_with("/9j/"),
        "a JPEG"
    );
    ev.wait_at("/login", T);

    input(
        &o,
        &id,
        &admin,
        [
            click(otp::USER_AT),
            typing(otp::USER),
            click(otp::PASSWORD_AT),
            typing(otp::PASSWORD),
            press("Enter"),
        ]
        .concat(),
    );
    ev.wait_at("/code", T);
    input(
        &o,
        &id,
        &admin,
        [click(otp::CODE_AT), typing(otp::CODE), press("Enter")].concat(),
    );
    ev.wait_at("/home", T);
    // Tabs: a link opens a new one, shown at once; back to the first; the new one closed;
    // history back and forward.
    input(
        &o,
        &id,
        &admin,
        vec![json!({"type": "navigate", "url": site.url("/links")})],
    );
    let first = ev.wait_at("/links", T);
    let first_tab = first["active"].as_str().unwrap().to_string();
    input(&o, &id, &admin, click(otp::USER_AT));
    let opened = ev.wait("a second tab, shown", T, |n, v| {
        n == "state"
            && v["tabs"].as_array().is_some_and(|t| t.len() == 2)
            && v["active"] != first_tab.as_str()
    });
    let second_tab = opened["active"].as_str().unwrap().to_string();
    input(
        &o,
        &id,
        &admin,
        vec![json!({"type": "tab", "id": first_tab})],
    );
    ev.wait("the first tab shown again", T, |n, v| {
        n == "state" && v["active"] == first_tab.as_str()
    });
    input(
        &o,
        &id,
        &admin,
        vec![json!({"type": "close_tab", "id": second_tab})],
    );
    ev.wait("one tab left", T, |n, v| {
        n == "state" && v["tabs"].as_array().is_some_and(|t| t.len() == 1)
    });
    input(&o, &id, &admin, vec![json!({"type": "back"})]);
    ev.wait_at("/home", T);
    input(&o, &id, &admin, vec![json!({"type": "forward"})]);
    ev.wait_at("/links", T);
    input(&o, &id, &admin, vec![json!({"type": "done"})]);
    let ended = ev.wait("the end", T, |n, _| n == "ended");
    assert_eq!(ended["reason"], "done");
    assert_eq!(site.logins(), 1);
    // Ended: its input route says so.
    let a = o.post(
        &format!("/api/v1/browser/live/{id}/input"),
        o.admin(),
        Some(r#"{"events":[{"type":"reload"}]}"#),
    );
    assert_eq!(a.status, 404, "{}", a.text);

    // A scheduled run of the profile is logged in: no second login.
    o.create_job(&json!({"name": "applications", "kind": "browser", "schedule": {"at": chrono::Utc::now().to_rfc3339()},
        "payload": {"profile": "jobboard", "steps": [
            {"goto": {"url": site.url("/home")}},
            {"wait_for": {"selector": "#applications", "timeout": "10s"}},
            {"extract": {"selector": "#welcome", "into": "greeting"}}]},
        "policy": {"max_retries": 0}}));
    let run = o.finished_run("applications", T);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(
        run["output"]["extracted"]["greeting"], "Welcome alice",
        "{run}"
    );
    assert_eq!(site.logins(), 1, "the site saw exactly one login");

    // What the site saw at login is what it sees in the runs: one user agent, the same
    // client hints, and not a headless one.
    let at_login = site.seen("/code");
    let in_run = site.seen("/home");
    assert!(!at_login.is_empty() && !in_run.is_empty());
    let (ua, hints) = &at_login[0];
    assert!(!ua.contains("Headless"), "{ua}");
    assert!(
        !hints.is_empty() && !hints.contains("HeadlessChrome"),
        "{hints}"
    );
    for seen in at_login.iter().chain(&in_run) {
        assert_eq!(seen, &at_login[0], "one identity at login and in the runs");
    }

    // One audit row: who, which profile, start, end, duration, why.
    let row = ended_row(&o, &id);
    assert_eq!(row["actor"], "test-admin");
    assert_eq!(row["target"], "profile/jobboard");
    assert_eq!(row["diff"]["end_reason"], "done");
    assert!(row["diff"]["duration_s"].as_f64().unwrap() > 0.0, "{row}");
    assert!(!row["diff"]["started_at"].is_null());

    // What was typed is nowhere: not in the logs, not in the audit log.
    let audit = o.get("/api/v1/audit?limit=500", o.admin()).text;
    for typed in [otp::PASSWORD, otp::CODE] {
        assert!(!o.logs.text().contains(typed), "{typed} in the logs");
        assert!(!audit.contains(typed), "{typed} in the audit log");
    }

    // A view whose page is closed ends by itself (closed), and frees the profile. It shows
    // the probe page (tests/common/probes.rs), which a run of the profile visits next: the
    // same identity on the wire (user agent, every client hint the page asks for, language).
    let probes = Probes::start();
    let second = open(&o, o.admin(), "jobboard", &probes.url("/glance")).json();
    let second_id = second["id"].as_str().unwrap().to_string();
    let mut ev = Follower::start(&o, &second_id, &admin);
    ev.wait_at("/glance", T);
    // Reloaded once: the hints the page asks for (Accept-CH) are sent from then on.
    input(&o, &second_id, &admin, vec![json!({"type": "reload"})]);
    wait_for("the reload reached the probe", T, || {
        (probes.requests("/glance").len() >= 2).then_some(())
    });
    drop(ev);
    let row = ended_row(&o, &second_id);
    assert_eq!(row["diff"]["end_reason"], "closed");
    let a = o.get("/api/v1/browser/live", o.admin());
    assert_eq!(a.json(), json!([]));
    o.create_job(&json!({"name": "glance", "kind": "browser", "schedule": {"at": chrono::Utc::now().to_rfc3339()},
        "payload": {"profile": "jobboard", "steps": [{"goto": {"url": probes.url("/glance")}}]},
        "policy": {"max_retries": 0}}));
    assert_eq!(o.finished_run("glance", T)["state"], "succeeded");
    let seen = probes.requests("/glance");
    let identity = |h: &std::collections::HashMap<String, String>| {
        let mut v: Vec<(String, String)> = h
            .iter()
            .filter(|(k, _)| {
                k.starts_with("sec-ch-ua") || *k == "user-agent" || *k == "accept-language"
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort();
        v
    };
    let (live, run) = (identity(&seen[1]), identity(seen.last().unwrap()));
    assert!(
        live.iter().any(|(k, _)| k == "sec-ch-ua-full-version-list"),
        "{live:?}"
    );
    assert_eq!(
        live, run,
        "the live view and the run show the site one identity"
    );
}

#[test]
fn runs_of_the_profile_wait_while_a_person_drives_it_and_go_on_after_the_idle_timeout() {
    let site = OtpSite::start();
    let db = TestDb::new();
    let o = TestApp::start(&db, "[browser]\nlive_idle = \"3s\"\nstep_timeout = \"10s\"");
    let admin = o.tokens.admin.clone();
    // Opened from the command line, as an operator: it prints the dashboard link.
    let (code, out, err) = run_cli(
        &[
            "--url",
            &o.url(""),
            "browser",
            "open",
            "shared",
            "--url",
            &site.url("/login"),
        ],
        &[("OVERSEER_TOKEN", &o.tokens.operator)],
    );
    assert_eq!(code, 0, "{out}{err}");
    let link = format!("{}/ui/#/live/", o.url(""));
    let id = out
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&link))
        .unwrap_or_else(|| panic!("no dashboard link in {out}"))
        .to_string();
    assert!(!out.contains(&o.tokens.operator), "no token in the link");
    let mut ev = Follower::start(&o, &id, &o.tokens.operator);
    ev.wait_at("/login", T);

    o.create_job(&json!({"name": "waits", "kind": "browser", "schedule": {"at": chrono::Utc::now().to_rfc3339()},
        "payload": {"profile": "shared", "steps": [
            {"goto": {"url": site.url("/code")}},
            {"wait_for": {"selector": "#code-form", "timeout": "10s"}}]},
        "policy": {"max_retries": 0, "timeout": "2m"}}));
    o.wait_run("waits", T, |r| r["state"] == "running");
    // The person goes on (a round trip through the view) while the run waits.
    input(&o, &id, &admin, click(otp::USER_AT));
    input(
        &o,
        &id,
        &admin,
        vec![json!({"type": "navigate", "url": site.url("/login?again=1")})],
    );
    ev.wait("the view at /login?again=1", T, |n, v| {
        n == "state" && v["url"].as_str().is_some_and(|u| u.ends_with("again=1"))
    });
    assert!(
        site.seen("/code").is_empty(),
        "the run did not start while the view held its profile"
    );
    assert_eq!(o.runs("waits")[0]["state"], "running");

    // No input for live_idle: the view ends, and the run goes on.
    let ended = ev.wait("the end", T, |n, _| n == "ended");
    assert_eq!(ended["reason"], "idle");
    let run = o.finished_run("waits", T);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["attempt"], 1);
    let row = ended_row(&o, &id);
    assert_eq!(row["actor"], "test-operator");
    assert_eq!(row["diff"]["end_reason"], "idle");
}

#[test]
fn the_dashboard_drives_a_live_view_with_mouse_touch_and_keyboard() {
    let python = python_with_playwright();
    let site = OtpSite::start();
    let db = TestDb::new();
    let o = TestApp::start(&db, "[browser]\nstep_timeout = \"10s\"");
    let xy = |(x, y): (f64, f64)| format!("{x},{y}");
    let shot = format!(
        "{}/target/ui-screenshots/live.png",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::create_dir_all(std::path::Path::new(&shot).parent().unwrap()).unwrap();
    let out = std::process::Command::new(&python)
        .arg(format!("{}/tests/ui/live.py", env!("CARGO_MANIFEST_DIR")))
        .arg(o.url(""))
        .arg(&o.tokens.operator)
        .arg(site.url("/login"))
        .arg("dash")
        .args([xy(otp::USER_AT), xy(otp::PASSWORD_AT), xy(otp::CODE_AT)])
        .args([otp::USER, otp::PASSWORD, otp::CODE])
        .arg(&shot)
        .output()
        .expect("run live.py");
    assert!(
        out.status.success(),
        "live.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the script's JSON");
    assert_eq!(seen["ended"], "done", "{seen}");
    assert_eq!(seen["console_errors"], json!([]), "{seen}");
    assert!(
        seen["hash"].as_str().unwrap().starts_with("#/live/"),
        "{seen}"
    );
    assert!(seen["tabs"].as_u64().unwrap() >= 1, "{seen}");
    assert_eq!(site.logins(), 1);
    let rows = live_rows(&o);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["actor"], "test-operator");
    let id = rows[0]["diff"]["live_id"].as_str().unwrap().to_string();
    assert_eq!(ended_row(&o, &id)["diff"]["end_reason"], "done");
}

/// The sweeps the rescuer has made so far (from /metrics).
fn sweeps(o: &TestApp) -> u64 {
    let text = o.get("/metrics", None).text;
    text.lines()
        .find(|l| l.starts_with("overseer_zombie_sweep_duration_seconds_count"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

const HAND_OVER_CONFIG: &str = "[browser]\nstep_timeout = \"10s\"\n\
    [browser.secrets]\nJOBBOARD_PASSWORD = \"correct-horse-7\"\n\
    [scheduler]\nmax_concurrency = 1\nheartbeat_interval = \"500ms\"\n\
    [zombie]\nsweep_interval = \"1s\"\nheartbeat_timeout = \"2s\"\ntimeout_grace = \"1s\"\n\
    [[notify.channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"";

/// The job of the issue: log in; when the site asks for a one-time code, hand over to a
/// person until the applications show.
fn login_job(site: &OtpSite, name: &str, hand_over: Value, policy: Value) -> Value {
    json!({"name": name, "kind": "browser", "schedule": {"at": chrono::Utc::now().to_rfc3339()},
        "payload": {"profile": name, "steps": [
            {"goto": {"url": site.url("/login")}},
            {"type": {"selector": "#user", "text": otp::USER}},
            {"type": {"selector": "#password", "text": {"secret": "JOBBOARD_PASSWORD"}}},
            {"press": {"key": "Enter"}},
            {"wait_for": {"selector": "h1", "timeout": "10s"}},
            {"if": {"exists": "#code-form", "then": [{"hand_over": hand_over}]}},
            {"extract": {"selector": "#welcome", "into": "greeting"}}]},
        "policy": policy})
}

#[test]
fn a_run_hands_over_to_a_person_for_the_code_and_goes_on_by_itself() {
    let site = OtpSite::start();
    let db = TestDb::new();
    let o = TestApp::start(&db, HAND_OVER_CONFIG);
    // policy.timeout 12 s: the person's time (longer) does not count against it.
    o.create_job(&login_job(
        &site,
        "jobboard",
        json!({"reason": "one-time code", "until": {"visible": "#applications"}, "timeout": "2m"}),
        json!({"max_retries": 2, "timeout": "12s"}),
    ));
    let waiting = o.wait_run("jobboard", T, |r| {
        !r["waiting"].is_null() || r["state"] != "running" && r["state"] != "pending"
    });
    assert_eq!(waiting["state"], "running", "{waiting}");
    let w = &waiting["waiting"];
    assert_eq!(w["for"], "person");
    assert_eq!(w["reason"], "one-time code");
    let live_id = w["live_id"].as_str().unwrap().to_string();
    assert_eq!(w["link"], format!("/ui/#/live/{live_id}"));
    let a = o.get("/api/v1/browser/live", o.admin()).json();
    assert_eq!(a[0]["id"], live_id.as_str(), "{a}");
    assert_eq!(a[0]["run_id"], waiting["id"], "{a}");

    // run.needs_person, to every channel (no route names it): the log and the webhook.
    let rows = o
        .get("/api/v1/notifications?event=run.needs_person", o.admin())
        .json();
    let mut channels: Vec<String> = rows["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["channel"].as_str().unwrap().to_string())
        .collect();
    channels.sort();
    assert_eq!(channels, ["hook", "log"], "{rows}");
    let body = rows["items"][0]["body"].as_str().unwrap();
    assert!(
        body.contains("one-time code") && body.contains(&format!("/ui/#/live/{live_id}")),
        "{body}"
    );
    assert!(
        !body.contains(&o.tokens.admin) && !body.contains("ovs_"),
        "no token in the link"
    );

    // It holds no slot: with max_concurrency = 1, another job runs meanwhile.
    o.create_job(&json!({"name": "meanwhile", "kind": "noop", "schedule": {"at": chrono::Utc::now().to_rfc3339()}}));
    assert_eq!(o.finished_run("meanwhile", T)["state"], "succeeded");

    // Zombie sweeps pass and leave it running: it heartbeats (heartbeat_timeout 2 s), and
    // its wait does not count against policy.timeout + timeout_grace (13 s) there either.
    let before = sweeps(&o);
    wait_for("thirteen more sweeps (12 s and more)", T, || {
        (sweeps(&o) >= before + 13).then_some(())
    });
    let still = &o.runs("jobboard")[0];
    assert_eq!(still["state"], "running", "{still}");
    assert!(!still["waiting"].is_null());

    // The person enters the code in the run's live view; the run sees the applications and
    // goes on by itself.
    let admin = o.tokens.operator.clone();
    let mut ev = Follower::start(&o, &live_id, &admin);
    let state = ev.wait_at("/code", T);
    assert_eq!(state["reason"], "one-time code");
    input(
        &o,
        &live_id,
        &admin,
        [click(otp::CODE_AT), typing(otp::CODE), press("Enter")].concat(),
    );
    let ended = ev.wait("the view's end", T, |n, _| n == "ended");
    assert_eq!(ended["reason"], "done");
    let run = o.finished_run("jobboard", T);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["attempt"], 1);
    assert!(run["waiting"].is_null());
    assert_eq!(
        run["output"]["extracted"]["greeting"], "Welcome alice",
        "{run}"
    );
    let step = run["output"]["trace"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["action"] == "hand_over")
        .cloned()
        .unwrap();
    assert_eq!(step["by"], "until", "{step}");
    assert!(
        step["ms"].as_u64().unwrap() >= 6000,
        "longer than policy.timeout: {step}"
    );
    assert_eq!(o.runs("jobboard").len(), 1, "one attempt");
    assert_eq!(site.logins(), 1);
    // The person who took over has their audit row, with its end.
    let row = ended_row(&o, &live_id);
    assert_eq!(row["actor"], "test-operator");
    assert_eq!(
        row["target"],
        format!("run/{}", run["id"].as_str().unwrap())
    );
    assert_eq!(row["diff"]["end_reason"], "done");
    let audit = o.get("/api/v1/audit?limit=500", o.admin()).text;
    for typed in [otp::PASSWORD, otp::CODE] {
        assert!(!o.logs.text().contains(typed), "{typed} in the logs");
        assert!(!audit.contains(typed), "{typed} in the audit log");
        assert!(!run.to_string().contains(typed), "{typed} in the run");
    }
}

#[test]
fn nobody_takes_over_the_run_fails_once_and_continue_lets_a_run_go_on() {
    let site = OtpSite::start();
    let db = TestDb::new();
    let o = TestApp::start(&db, HAND_OVER_CONFIG);
    o.create_job(&login_job(
        &site,
        "unattended",
        json!({"reason": "one-time code", "until": {"visible": "#applications"}, "timeout": "2s"}),
        json!({"max_retries": 2}),
    ));
    let run = o.finished_run("unattended", T);
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["error_kind"], "person_timeout", "{run}");
    assert!(run["waiting"].is_null());
    let rows = o
        .get(
            "/api/v1/notifications?event=run.needs_person&channel=hook",
            o.admin(),
        )
        .json();
    assert_eq!(
        rows["items"].as_array().unwrap().len(),
        1,
        "asked once: {rows}"
    );
    // Not retried: asking again would only ask again.
    let failed = o
        .get("/api/v1/notifications?event=job.failed", o.admin())
        .json();
    wait_for("job.failed sent", T, || {
        let n = o
            .get("/api/v1/notifications?event=job.failed", o.admin())
            .json();
        (!n["items"].as_array()?.is_empty()).then_some(())
    });
    assert_eq!(o.runs("unattended").len(), 1, "no retry: {failed}");
    assert_eq!(o.get("/api/v1/browser/live", o.admin()).json(), json!([]));

    // Without `until`, Continue (done) is how it goes on.
    o.create_job(&json!({"name": "manual", "kind": "browser", "schedule": {"at": chrono::Utc::now().to_rfc3339()},
        "payload": {"profile": "manual", "steps": [
            {"goto": {"url": site.url("/login")}},
            {"hand_over": {"reason": "look at it"}},
            {"extract": {"selector": "h1", "into": "title"}}]},
        "policy": {"max_retries": 0}}));
    let waiting = o.wait_run("manual", T, |r| !r["waiting"].is_null());
    let live_id = waiting["waiting"]["live_id"].as_str().unwrap().to_string();
    input(
        &o,
        &live_id,
        &o.tokens.operator,
        vec![json!({"type": "done"})],
    );
    let run = o.finished_run("manual", T);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["output"]["extracted"]["title"], "Log in");
}

/// The shipped example (examples/commands/login_2fa.py): a Playwright program in a held
/// profile asks for a person for the one-time code, blocks, and goes on after Continue; its
/// job's timeout (12 s) does not run while it waits, here or in the zombie detector.
#[test]
fn a_command_run_asks_for_a_person_through_its_run_token() {
    let python = python_with_playwright();
    let site = OtpSite::start();
    let db = TestDb::new();
    let o = TestApp::start(
        &db,
        &format!("{HAND_OVER_CONFIG}\n[command]\nallowed = [\"{python}\"]\n"),
    );
    let example = format!(
        "{}/examples/commands/login_2fa.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let job = |name: &str| {
        json!({"name": name, "kind": "command", "schedule": {"at": chrono::Utc::now().to_rfc3339()},
            "payload": {"program": python, "args": [example],
                "env": {"SITE_URL": site.url("/"), "SITE_USER": otp::USER,
                        "SITE_PASSWORD": {"secret": "JOBBOARD_PASSWORD"}},
                "browser_profile": "jobboard"},
            "policy": {"max_retries": 0, "timeout": "12s"}})
    };
    o.create_job(&job("first-login"));
    let waiting = o.wait_run("first-login", T, |r| {
        !r["waiting"].is_null() || !["pending", "running"].contains(&r["state"].as_str().unwrap())
    });
    assert_eq!(waiting["state"], "running", "{waiting}");
    let w = &waiting["waiting"];
    assert!(
        w["reason"].as_str().unwrap().starts_with("one-time code"),
        "{w}"
    );
    let live_id = w["live_id"].as_str().unwrap().to_string();
    // A viewer may not take over; an operator sees how the hand-over stands.
    let a = o.get(
        &format!("/api/v1/browser/live/{live_id}/events"),
        Some(&o.tokens.viewer),
    );
    assert_eq!(a.status, 403);
    let a = o.get(
        &format!("/api/v1/runs/{}/hand-over", waiting["id"].as_str().unwrap()),
        o.admin(),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["state"], "waiting");

    // The person, longer than the job's timeout: the program waits, not its clock.
    let before = sweeps(&o);
    wait_for("thirteen more sweeps (12 s and more)", T, || {
        (sweeps(&o) >= before + 13).then_some(())
    });
    let operator = o.tokens.operator.clone();
    let mut ev = Follower::start(&o, &live_id, &operator);
    ev.wait_at("/code", T);
    input(
        &o,
        &live_id,
        &operator,
        [click(otp::CODE_AT), typing(otp::CODE), press("Enter")].concat(),
    );
    ev.wait_at("/home", T);
    input(&o, &live_id, &operator, vec![json!({"type": "done"})]);
    let run = o.finished_run("first-login", T);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(
        run["output"]["result"],
        json!({"logged_in_before": false, "greeting": "Welcome alice"}),
        "{run}"
    );
    assert!(run["waiting"].is_null());
    assert_eq!(site.logins(), 1);

    // The next run finds the login in the profile: nobody is asked.
    o.create_job(&job("next"));
    let run = o.finished_run("next", T);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["output"]["result"]["logged_in_before"], true, "{run}");
    let asked = o
        .get(
            "/api/v1/notifications?event=run.needs_person&channel=hook",
            o.admin(),
        )
        .json();
    assert_eq!(asked["items"].as_array().unwrap().len(), 1, "{asked}");
    for typed in [otp::PASSWORD, otp::CODE] {
        assert!(!o.logs.text().contains(typed), "{typed} in the logs");
    }

    // Nobody comes: the program is ended and the run fails with person_timeout.
    let mut unattended = job("unattended");
    unattended["payload"]["browser_profile"] = json!("fresh");
    unattended["payload"]["env"]["HAND_OVER_TIMEOUT"] = json!("2s");
    o.create_job(&unattended);
    let run = o.finished_run("unattended", T);
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["error_kind"], "person_timeout", "{run}");
    assert!(run["waiting"].is_null());
}
