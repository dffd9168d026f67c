//! Browser jobs with real headless Chromium (Debian's) against pages served on loopback:
//! every step and wait strategy, a login cookie that survives an overseer restart, secrets
//! kept out of logs and output, a Chromium killed in the middle of a run, and no Chromium
//! process left behind (anti-detection: tests/stealth.rs).

mod common;

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use common::pages::Pages;
use common::*;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);
const SECRET: &str = "correct-horse-battery-staple";

fn start_in(db: &TestDb, state_dir: &Path, extra: &str) -> TestApp {
    let mut spawn = Spawn::managed(state_dir);
    spawn.db = Some(db.url.clone());
    spawn
        .env
        .push(("OVERSEER_SECRET_SITE_PASSWORD".into(), SECRET.into()));
    // `extra` may set its own idle_timeout.
    let idle = if extra.contains("idle_timeout") {
        ""
    } else {
        "idle_timeout = \"60s\"\n"
    };
    let o = spawn
        .toml(&format!("[browser]\n{idle}step_timeout = \"10s\"\n{extra}"))
        .start();
    o.wait_ready(T);
    o
}

fn browser_job(o: &TestApp, name: &str, payload: Value, policy: Value) -> String {
    let body = json!({
        "name": name, "kind": "browser", "schedule": {"at": Utc::now().to_rfc3339()},
        "payload": payload, "policy": policy,
    });
    let a = o.post("/api/v1/jobs", o.admin(), Some(&body.to_string()));
    assert_eq!(a.status, 201, "{}", a.text);
    name.to_string()
}

/// The job's last run once it is terminal.

#[test]
fn steps_and_waits_work_on_real_pages() {
    let db = TestDb::new();
    let pages = Pages::start();
    let tmp = tempfile::tempdir().unwrap();
    let o = start_in(&db, &tmp.path().join("state"), "");
    browser_job(
        &o,
        "all-steps",
        json!({
            "profile": "steps",
            "steps": [
                {"goto": {"url": pages.url("/delayed"), "wait_until": "domcontentloaded"}},
                {"wait_for": {"selector": "#late", "state": "visible", "timeout": "5s"}},
                {"extract": {"selector": "#late", "into": "late"}},
                {"goto": {"url": pages.url("/xhr"), "wait_until": "networkidle"}},
                {"extract": {"selector": "#data", "into": "xhr"}},
                {"goto": {"url": pages.url("/form")}},
                {"type": {"selector": "#name", "text": "Grüße ✓ Zoë", "delay_ms": 5}},
                {"select": {"selector": "#color", "value": "g"}},
                {"click": {"selector": "#go"}},
                {"assert_text": {"selector": "#out", "contains": "Grüße ✓ Zoë|g"}},
                {"extract": {"selector": ".job", "all": true, "into": "jobs"}},
                {"extract": {"selector": "#link", "attribute": "href", "into": "href"}},
                {"type": {"selector": "#name", "text": "x", "clear": true, "delay_ms": 0}},
                {"press": {"key": "Enter"}},
                {"screenshot": {"full_page": true}},
                {"sleep": {"ms": 10}},
            ],
        }),
        json!({}),
    );
    let run = o.finished_run("all-steps", T);
    assert_eq!(run["state"], "succeeded", "{run}");
    let out = &run["output"];
    assert_eq!(out["extracted"]["late"], "ready at last");
    assert_eq!(
        out["extracted"]["xhr"], "payload from xhr",
        "networkidle waited for the XHR"
    );
    assert_eq!(out["extracted"]["jobs"], json!(["Engineer", "Designer"]));
    assert_eq!(out["extracted"]["href"], "/elsewhere");
    assert_eq!(out["artifacts"], json!(["step-001.png"]));
    let id = run["id"].as_str().unwrap();
    let png = std::fs::read(
        tmp.path()
            .join(format!("state/artifacts/{id}/step-001.png")),
    )
    .unwrap();
    assert_eq!(&png[..4], b"\x89PNG");

    // A failing step: its index, the URL and a screenshot are kept; a wait that cannot be
    // met ends at its timeout.
    browser_job(
        &o,
        "fails",
        json!({"profile": "steps", "steps": [
            {"goto": {"url": pages.url("/form")}},
            {"wait_for": {"selector": "#never", "timeout": "500ms"}},
        ]}),
        json!({"max_retries": 0}),
    );
    let run = o.finished_run("fails", T);
    assert_eq!(run["state"], "failed");
    assert_eq!(run["error_kind"], "wait_timeout", "{run}");
    let msg = run["error_message"].as_str().unwrap();
    assert!(
        msg.starts_with("step 1 (wait_for)") && msg.contains("/form"),
        "{msg}"
    );
    let id = run["id"].as_str().unwrap();
    let meta: Value = serde_json::from_slice(
        &std::fs::read(
            tmp.path()
                .join(format!("state/artifacts/{id}/failure.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(meta["step"], 1);
    assert!(tmp
        .path()
        .join(format!("state/artifacts/{id}/failure.png"))
        .exists());

    // A page slower than its goto's timeout ends the step at the timeout.
    browser_job(
        &o,
        "slow",
        json!({"profile": "steps", "steps": [
            {"goto": {"url": pages.url("/slow"), "timeout": "1s"}},
        ]}),
        json!({"max_retries": 0}),
    );
    let run = o.finished_run("slow", T);
    assert_eq!(run["error_kind"], "step_timeout", "{run}");
    assert!(
        run["error_message"]
            .as_str()
            .unwrap()
            .starts_with("step 0 (goto): did not finish within 1000 ms"),
        "{run}"
    );

    // Validation names the step.
    let bad = json!({"name": "bad", "kind": "browser", "schedule": {"every": "1h"},
        "payload": {"profile": "steps", "steps": [{"goto": {"url": pages.url("/")}}, {"sleep": {"ms": 60000}}]}});
    let a = o.post("/api/v1/jobs", o.admin(), Some(&bad.to_string()));
    assert_eq!(a.status, 422);
    assert_eq!(
        a.json()["error"]["fields"][0]["path"],
        "payload.steps.1.sleep.ms"
    );
}

#[test]
fn a_login_survives_a_restart_and_secrets_stay_secret() {
    let db = TestDb::new();
    let pages = Pages::start();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let mut o = start_in(&db, &state, "");
    browser_job(
        &o,
        "login",
        json!({"profile": "site", "steps": [
            {"goto": {"url": pages.url("/login")}},
            {"type": {"selector": "#user", "text": "dana", "delay_ms": 5}},
            {"type": {"selector": "#pass", "text": {"secret": "SITE_PASSWORD"}, "delay_ms": 5}},
            {"click": {"selector": "#submit"}},
            {"wait_for": {"selector": "#welcome"}},
            {"extract": {"selector": "#echo", "into": "echo"}},
        ]}),
        json!({}),
    );
    let run = o.finished_run("login", T);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(
        run["output"]["extracted"]["echo"], "you typed ***",
        "scrubbed"
    );
    assert!(!run.to_string().contains(SECRET));
    let profile_dir = state.join("profiles/site");
    assert!(
        !chromium_under(&profile_dir).is_empty(),
        "the browser stays for the next run"
    );

    // A clean stop closes the browser; a new overseer relaunches the profile with its cookie.
    o.signal(Signal::SIGTERM);
    o.wait_exit(T);
    assert!(
        !o.logs.text().contains(SECRET),
        "the secret never reached the logs"
    );
    wait_for("no chromium after shutdown", T, || {
        chromium_under(&state).is_empty().then_some(())
    });
    let o = start_in(&db, &state, "");
    browser_job(
        &o,
        "account",
        json!({"profile": "site", "steps": [
            {"goto": {"url": pages.url("/account")}},
            {"assert_text": {"selector": "#who", "contains": "Signed in as dana"}},
        ]}),
        json!({}),
    );
    assert_eq!(o.finished_run("account", T)["state"], "succeeded");
    // A secret that is not configured fails before any browser starts.
    browser_job(
        &o,
        "no-secret",
        json!({"profile": "site", "steps": [
            {"goto": {"url": pages.url("/login")}},
            {"type": {"selector": "#pass", "text": {"secret": "NOT_SET"}}},
        ]}),
        json!({"max_retries": 0}),
    );
    assert_eq!(
        o.finished_run("no-secret", T)["error_kind"],
        "secret_missing"
    );
    drop(o);
    wait_for("no chromium after the test", T, || {
        chromium_under(&state).is_empty().then_some(())
    });
}

/// This profile's row at `GET /api/v1/browser/sessions`.
fn session_row(o: &TestApp, profile: &str) -> Option<Value> {
    let all = o.get("/api/v1/browser/sessions", o.admin()).json();
    all.as_array()?
        .iter()
        .find(|r| r["profile"] == profile)
        .cloned()
}

#[test]
fn politeness_robots_txt_page_slots_and_session_rows() {
    let db = TestDb::new();
    let pages = Pages::start();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let o = start_in(
        &db,
        &state,
        "max_pages = 1\nrobots_txt = true\nmin_navigation_interval = \"50ms\"\n\
         [browser.navigation_intervals]\n\"127.0.0.1\" = \"700ms\"\n",
    );
    // Two navigations to one domain are at least its interval apart.
    browser_job(
        &o,
        "polite",
        json!({"profile": "polite", "steps": [
            {"goto": {"url": pages.url("/form")}},
            {"goto": {"url": pages.url("/private/ok")}},
        ]}),
        json!({"max_retries": 0}),
    );
    assert_eq!(o.finished_run("polite", T)["state"], "succeeded");
    let (a, b) = (pages.hit_times("/form"), pages.hit_times("/private/ok"));
    assert!(
        b[0].duration_since(a[0]) >= Duration::from_millis(700),
        "navigations {:?} apart",
        b[0].duration_since(a[0])
    );
    // robots.txt disallows /private: the step fails before any request to it.
    browser_job(
        &o,
        "impolite",
        json!({"profile": "polite", "steps": [{"goto": {"url": pages.url("/private")}}]}),
        json!({"max_retries": 0}),
    );
    let run = o.finished_run("impolite", T);
    assert_eq!(run["error_kind"], "robots_disallowed", "{run}");
    assert!(!pages.hits().contains(&"/private".to_string()));
    assert_eq!(
        pages.hit_times("/robots.txt").len(),
        1,
        "robots.txt is fetched once and cached"
    );
    // A run that times out gives its page back: with one page per browser, the next run
    // in the profile gets the slot at once instead of waiting out the hung step.
    browser_job(
        &o,
        "hung",
        json!({"profile": "slot", "steps": [
            {"goto": {"url": pages.url("/form")}},
            {"wait_for": {"selector": "#never", "timeout": "60s"}},
        ]}),
        json!({"max_retries": 0, "timeout": "3s"}),
    );
    assert_eq!(o.finished_run("hung", T)["state"], "timed_out");
    browser_job(
        &o,
        "next",
        json!({"profile": "slot", "step_timeout": "5s", "steps": [
            {"goto": {"url": pages.url("/form")}},
            {"extract": {"selector": ".job", "all": true, "into": "jobs"}},
        ]}),
        json!({"max_retries": 0}),
    );
    let run = o.finished_run("next", T);
    assert_eq!(run["state"], "succeeded", "{run}");
    // The profiles' rows: running with Chromium's pid, one launch each, every run counted.
    let row = wait_for("both runs recorded", T, || {
        session_row(&o, "slot").filter(|r| r["runs"] == 2)
    });
    assert_eq!(row["state"], "running", "{row}");
    assert_eq!(row["launches"], 1, "{row}");
    let pid = row["pid"].as_i64().unwrap() as i32;
    assert!(chromium_under(&state.join("profiles/slot")).contains(&pid));
    // Its Chromium killed while idle: the profile's session fails and is restarted, the dead
    // browser reaped; the next run launches a new one.
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    wait_for("the session restarted", T, || {
        let m = o.get("/metrics", None).text;
        m.contains("overseer_browser_session_restarts_total 1")
            .then_some(())
    });
    let row = wait_for("the death recorded", T, || {
        session_row(&o, "slot").filter(|r| r["state"] == "crashed")
    });
    assert_eq!(row["crashes"], 1, "{row}");
    browser_job(
        &o,
        "after-death",
        json!({"profile": "slot", "steps": [{"goto": {"url": pages.url("/form")}}]}),
        json!({"max_retries": 0}),
    );
    assert_eq!(o.finished_run("after-death", T)["state"], "succeeded");
    let row = wait_for("the relaunch recorded", T, || {
        session_row(&o, "slot").filter(|r| r["launches"] == 2)
    });
    assert_eq!(row["state"], "running", "{row}");
    drop(o);
    wait_for("no chromium left", T, || {
        chromium_under(&state).is_empty().then_some(())
    });
    // A new overseer on the same state finds the rows it left running and closes them.
    let o = start_in(&db, &state, "");
    let row = wait_for("the leftover row closed", T, || {
        session_row(&o, "slot").filter(|r| r["state"] == "closed")
    });
    assert!(row["pid"].is_null(), "{row}");
}

#[test]
fn a_crashed_pool_restarts_with_new_sessions_and_leaves_no_old_browser() {
    let db = TestDb::new();
    let pages = Pages::start();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let o = start_in(&db, &state, "[debug]\nfault_injection = true\n");
    let job = |name: &str| {
        browser_job(
            &o,
            name,
            json!({"profile": "p", "steps": [{"goto": {"url": pages.url("/form")}}]}),
            json!({"max_retries": 0}),
        );
        o.finished_run(name, T)
    };
    assert_eq!(job("before")["state"], "succeeded");
    let old = chromium_under(&state.join("profiles/p"));
    assert!(!old.is_empty());
    let a = o.post("/api/v1/actors/browser_pool/crash", o.admin(), None);
    assert_eq!(a.status, 202, "{}", a.text);
    // The restarted pool kills what the dead one left; the profile's next run gets a new
    // session and a new browser.
    wait_for("the old browser gone", T, || {
        let now = chromium_under(&state.join("profiles/p"));
        now.iter().all(|p| !old.contains(p)).then_some(())
    });
    // The old browser can be gone before the new pool is up (its sessions end with the
    // dead pool): the next run waits until the pool is running again, rehydrated.
    wait_for("the pool running again", T, || {
        let a = o.actor("browser_pool");
        (a["state"] == "running" && a["restarts"] == 1).then_some(())
    });
    let run = job("after");
    assert_eq!(run["state"], "succeeded", "{run}");
    let new = chromium_under(&state.join("profiles/p"));
    assert!(!new.is_empty() && new.iter().all(|p| !old.contains(p)));
    drop(o);
    wait_for("no chromium left", T, || {
        chromium_under(&state).is_empty().then_some(())
    });
}

/// overseer's own trouble is not the site's: with `circuit_failures = 1`, the browser pool
/// crashing under runs of one domain, and a run of that domain that starts while the pool is
/// restarting, leave the domain's circuit closed — that run waits for the pool (deferred, no
/// attempt used) and then succeeds; the site failing its page afterwards still opens it.
/// Before run error kinds were a type, "the browser pool is restarting" was the kind
/// `browser`, which counted: the run failed and opened the circuit of a healthy site.
#[test]
fn a_pool_restart_under_runs_leaves_their_domains_circuit_closed() {
    let db = TestDb::new();
    let pages = Pages::start();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let o = start_in(
        &db,
        &state,
        // The restarted pool comes back after 3 s: long enough to start a run meanwhile.
        "circuit_failures = 1\ncircuit_open = \"60s\"\n[debug]\nfault_injection = true\n\
         [supervisor]\nbackoff_initial = \"3s\"\n",
    );
    let slow = json!({"profile": "cb", "steps": [
        {"goto": {"url": pages.url("/form")}},
        {"wait_for": {"selector": "#never", "timeout": "30s"}},
    ]});
    for name in ["in-flight-1", "in-flight-2"] {
        browser_job(&o, name, slow.clone(), json!({"max_retries": 0}));
    }
    wait_for("both runs on the page", T, || {
        (pages.hits().iter().filter(|h| *h == "/form").count() >= 2).then_some(())
    });
    let a = o.post("/api/v1/actors/browser_pool/crash", o.admin(), None);
    assert_eq!(a.status, 202, "{}", a.text);
    wait_for("the pool down", T, || {
        (o.actor("browser_pool")["state"] != "running").then_some(())
    });
    browser_job(
        &o,
        "during-restart",
        json!({"profile": "cb", "steps": [{"goto": {"url": pages.url("/form")}}]}),
        json!({"max_retries": 0}),
    );
    for name in ["in-flight-1", "in-flight-2"] {
        let run = o.finished_run(name, T);
        assert_eq!(run["state"], "failed", "{run}");
        let kind = run["error_kind"].as_str().unwrap_or_default();
        assert!(
            !overseer::jobs::run_error::RunErrorKind::parse(kind)
                .unwrap()
                .counts_for_circuit(),
            "{run}"
        );
    }
    let run = o.finished_run("during-restart", T);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(
        run["attempt"], 1,
        "waiting for the pool used no attempt: {run}"
    );
    let circuits = o.get("/api/v1/circuits", o.admin()).json();
    let circuits = circuits.as_array().unwrap();
    assert!(
        circuits
            .iter()
            .all(|c| c["state"] == "closed" && c["failures"] == 0),
        "the pool's restart counted against the site: {circuits:?}"
    );
    // The same domain failing its page does open it, at the first failure.
    pages.set_down(true);
    browser_job(
        &o,
        "site-down",
        json!({"profile": "cb", "steps": [
            {"goto": {"url": pages.url("/flaky")}},
            {"assert_text": {"selector": "#state", "contains": "all ok"}},
        ]}),
        json!({"max_retries": 0}),
    );
    assert_eq!(o.finished_run("site-down", T)["error_kind"], "assertion");
    let circuits = o.get("/api/v1/circuits", o.admin()).json();
    assert_eq!(circuits[0]["state"], "open", "{circuits}");
    assert_eq!(circuits[0]["failures"], 1, "{circuits}");
}

#[test]
fn a_killed_chromium_is_replaced_and_the_run_retried_and_none_is_left() {
    let db = TestDb::new();
    let pages = Pages::start();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let o = start_in(&db, &state, "");
    browser_job(
        &o,
        "victim",
        json!({"profile": "crashy", "steps": [
            {"goto": {"url": pages.url("/form")}},
            {"wait_for": {"selector": "#never", "timeout": "20s"}},
        ]}),
        json!({"max_retries": 1, "retry_delays": ["0s"]}),
    );
    // Killed while the run waits on the page.
    wait_for("the page loaded", T, || {
        pages.hits().iter().any(|h| h == "/form").then_some(())
    });
    let pids = chromium_under(&state.join("profiles/crashy"));
    assert!(!pids.is_empty());
    // Kill the whole browser (every process of its group).
    for pid in &pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let run = wait_for(
        "the first attempt failed for the browser's death",
        T,
        || {
            let runs = o.get("/api/v1/runs?job=victim", o.admin()).json();
            runs["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["attempt"] == 1 && r["state"] == "failed")
                .cloned()
        },
    );
    assert_eq!(run["error_kind"], "browser_crashed", "{run}");
    // The retry relaunched the profile (a new process).
    wait_for("a new browser for the retry", T, || {
        let p = chromium_under(&state.join("profiles/crashy"));
        (!p.is_empty() && p.iter().all(|x| !pids.contains(x))).then_some(())
    });
    let m = o.get("/metrics", None).text;
    assert!(m.contains("overseer_browser_crashes_total 1"), "{m}");
    assert!(
        m.contains("overseer_browser_session_restarts_total 1"),
        "the profile's session failed once and was restarted: {m}"
    );
    // browser_sessions records the death and the relaunch.
    let row = wait_for("the relaunch recorded", T, || {
        let row = session_row(&o, "crashy")?;
        (row["launches"] == 2 && row["state"] == "running").then_some(row)
    });
    assert_eq!(row["crashes"], 1, "{row}");
    drop(o);
    wait_for("no chromium left", T, || {
        chromium_under(&state).is_empty().then_some(())
    });
}

#[test]
fn consume_steps_stop_cleanly_at_the_quota_and_at_max_per_run() {
    let db = TestDb::new();
    let pages = Pages::start();
    let tmp = tempfile::tempdir().unwrap();
    let o = start_in(&db, &tmp.path().join("state"), "");
    let a = request(
        "PUT",
        &o.url("/api/v1/quotas/site:msgs"),
        Some(&o.tokens.operator),
        &[],
        Some(r#"{"limits": {"day": 3}}"#),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    let steps = |n: usize| {
        let mut s = vec![json!({"goto": {"url": pages.url("/form")}})];
        for i in 0..n {
            s.push(json!({"consume": {"quota": "site:msgs"}}));
            s.push(json!({"extract": {"selector": "#link", "attribute": "href", "into": format!("sent{i}")}}));
        }
        Value::Array(s)
    };
    let body = json!({
        "name": "capped", "kind": "browser", "schedule": {"at": Utc::now().to_rfc3339()},
        "payload": {"profile": "q", "steps": steps(3)},
        "quota": [{"name": "site:msgs", "cost": 0, "max_per_run": 2}],
    });
    let a = o.post("/api/v1/jobs", o.admin(), Some(&body.to_string()));
    assert_eq!(a.status, 201, "{}", a.text);
    let run = o.finished_run("capped", T);
    assert_eq!(run["state"], "succeeded", "not a failure: {run}");
    let out = &run["output"];
    assert_eq!(out["outcome"], "quota_exhausted");
    assert_eq!(out["stopped_at_step"], 5, "the third consume");
    assert!(
        out["reason"].as_str().unwrap().contains("max_per_run"),
        "{out}"
    );
    assert_eq!(out["extracted"].as_object().unwrap().len(), 2);

    browser_job(
        &o,
        "uncapped",
        json!({"profile": "q", "steps": steps(2)}),
        json!({}),
    );
    let run = o.finished_run("uncapped", T);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["output"]["outcome"], "quota_exhausted");
    assert_eq!(
        run["output"]["stopped_at_step"], 3,
        "the day's third unit was the last"
    );
    assert!(run["output"]["reason"]
        .as_str()
        .unwrap()
        .contains("exhausted for this day"));
    let runs = o.get("/api/v1/runs?job=uncapped", o.admin()).json();
    assert_eq!(runs["items"].as_array().unwrap().len(), 1, "no retry");
    let q = o.get("/api/v1/quotas/site:msgs", o.admin()).json();
    assert_eq!(q["windows"][0]["used"], 3);
}

#[test]
fn a_failing_domain_opens_its_circuit_defers_runs_and_closes_after_a_probe() {
    let db = TestDb::new();
    let pages = Pages::start();
    let tmp = tempfile::tempdir().unwrap();
    let o = start_in(
        &db,
        &tmp.path().join("state"),
        "circuit_failures = 2\ncircuit_open = \"2s\"\n",
    );
    let script = json!({"profile": "cb", "steps": [
        {"goto": {"url": pages.url("/flaky")}},
        {"assert_text": {"selector": "#state", "contains": "all ok"}},
    ]});
    pages.set_down(true);
    for name in ["f1", "f2"] {
        browser_job(&o, name, script.clone(), json!({"max_retries": 0}));
        assert_eq!(o.finished_run(name, T)["error_kind"], "assertion");
    }
    let circuits = o.get("/api/v1/circuits", o.admin()).json();
    assert_eq!(circuits[0]["state"], "open", "{circuits}");
    assert_eq!(circuits[0]["failures"], 2);
    // While open, a run waits (deferred, no attempt used) instead of failing.
    browser_job(&o, "f3", script.clone(), json!({"max_retries": 0}));
    let deferred = wait_for("f3 deferred", T, || {
        let runs = o.get("/api/v1/runs?job=f3", o.admin()).json();
        let r = runs["items"][0].clone();
        (r["state"] == "deferred").then_some(r)
    });
    assert_eq!(deferred["attempt"], 1);
    // The site is back: when the circuit half-opens, f3 is the probe; it closes the circuit.
    pages.set_down(false);
    let run = o.finished_run("f3", T);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["attempt"], 1, "the deferral used no attempt");
    let circuits = o.get("/api/v1/circuits", o.admin()).json();
    assert_eq!(circuits[0]["state"], "closed", "{circuits}");
    let events: Vec<String> = o.get("/api/v1/notifications", o.admin()).json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["event"].as_str().unwrap().to_string())
        .collect();
    assert!(events.contains(&"circuit.opened".to_string()), "{events:?}");
}

#[test]
fn a_crashed_renderer_fails_the_run_fast_and_the_retry_succeeds() {
    let db = TestDb::new();
    let pages = Pages::start();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let o = start_in(&db, &state, "");
    browser_job(
        &o,
        "renderer",
        json!({"profile": "rc", "steps": [
            {"goto": {"url": pages.url("/later")}},
            {"wait_for": {"selector": "#done", "timeout": "10s"}},
        ]}),
        json!({"max_retries": 1, "retry_delays": ["0s"]}),
    );
    wait_for("the page loaded", T, || {
        pages.hits().iter().any(|h| h == "/later").then_some(())
    });
    // Kill the profile's renderer processes (what a renderer crash looks like to CDP).
    let profile = state.join("profiles/rc").to_string_lossy().to_string();
    let renderers = processes_with(&["--type=renderer", &profile]);
    assert!(!renderers.is_empty(), "a renderer runs the page");
    for pid in renderers {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    let first = wait_for("attempt 1 failed for the crash", T, || {
        let runs = o.get("/api/v1/runs?job=renderer", o.admin()).json();
        runs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["attempt"] == 1 && r["state"] == "failed")
            .cloned()
    });
    assert_eq!(first["error_kind"], "renderer_crashed", "{first}");
    let retry = wait_for("attempt 2 finished", T, || {
        let runs = o.get("/api/v1/runs?job=renderer", o.admin()).json();
        runs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| {
                r["attempt"] == 2 && matches!(r["state"].as_str(), Some("succeeded" | "failed"))
            })
            .cloned()
    });
    assert_eq!(retry["state"], "succeeded", "{retry}");
    assert_eq!(retry["output"]["outcome"], "completed");
    drop(o);
    wait_for("no chromium left", T, || {
        chromium_under(&state).is_empty().then_some(())
    });
}

#[test]
fn after_100_open_close_cycles_and_a_crash_no_chromium_is_left() {
    use overseer::browser::{BrowserRun, Pool, PoolConfig};
    let pages = Pages::start();
    let tmp = tempfile::tempdir().unwrap();
    let profiles = tmp.path().join("profiles");
    let mut problems = overseer::stdx::problems::Problems::default();
    let script = overseer::browser::script::parse(
        &json!([{"goto": {"url": pages.url("/form"), "wait_until": "domcontentloaded"}}]),
        "steps",
        &overseer::browser::script::Limits::default(),
        &mut problems,
    );
    let cfg = PoolConfig {
        executable: overseer::browser::process::find_executable().expect("chromium on PATH"),
        profiles_dir: profiles.clone(),
        artifacts_dir: tmp.path().join("artifacts"),
        max_browsers: 2,
        idle_timeout: Duration::from_secs(600),
        launch_timeout: Duration::from_secs(30),
        step_timeout: Duration::from_secs(30),
        stealth: overseer::browser::Stealth::always(true),
        max_pages: 4,
        politeness: Default::default(),
    };
    let run = move |profile: &str| BrowserRun {
        run_id: uuid::Uuid::new_v4(),
        profile: profile.into(),
        steps: script.clone().into(),
        viewport: None,
        user_agent: None,
        locale: "en-US".into(),
        timezone: None,
        step_timeout: None,
        secrets: Default::default(),
        consume: None,
        once: None,
        notify: None,
        person: None,
        context: serde_json::json!({}),
        span: tracing::Span::none(),
    };
    let dir = profiles.clone();
    actix::System::new().block_on(async move {
        let pool = Pool::new(cfg, None);
        for i in 0..100 {
            // Two profiles in turn with room for two: each cycle launches and closes.
            pool.run(run(if i % 2 == 0 { "a" } else { "b" }))
                .await
                .expect("run");
            pool.close_all().await;
        }
        // A crash: the browser's whole group killed while it is up.
        pool.run(run("a")).await.expect("run");
        for (_, pid) in pool.pids() {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
        // The pool notices on the next run and replaces it.
        let again = pool.run(run("a")).await;
        if again.is_err() {
            pool.run(run("a")).await.expect("a new browser");
        }
        pool.close_all().await;
        assert!(
            chromium_under(&dir).is_empty(),
            "{:?}",
            chromium_under(&dir)
        );
    });
}

/// The circuit's arithmetic on the real table, with explicit times: it opens after
/// `failures` consecutive failures, each failed probe doubles its open time up to the cap,
/// and a successful probe closes it — with `circuit.opened` / `circuit.closed` in the outbox.
#[test]
fn a_circuit_doubles_its_open_time_up_to_its_cap_and_tells_when_it_closes() {
    use overseer::db::circuits::{admit, record, Admission, Settings};
    let db = TestDb::migrated();
    let mut c = db.conn();
    let settings = Settings {
        failures: 2,
        open_initial: Duration::from_secs(1),
        open_max: Duration::from_secs(5),
    };
    let mut notify = overseer::notify::settings::NotifyConfig::shipped().unwrap();
    notify.routes = vec![serde_json::from_value(
        serde_json::json!({"events": ["circuit.*"], "channels": ["log"]}),
    )
    .unwrap()];
    let routing = overseer::notify::Routing::from_config(&notify);
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let at = |s: i64| t0 + chrono::Duration::seconds(s);
    let d = "site.example";
    assert_eq!(admit(&mut c, d, at(0)).unwrap(), Admission::Go);
    assert_eq!(
        record(&mut c, d, Some("boom"), at(0), &settings, &routing).unwrap(),
        None
    );
    assert_eq!(
        record(&mut c, d, Some("boom"), at(0), &settings, &routing).unwrap(),
        Some("open")
    );
    // Open for 1 s, then each failed probe doubles it: 2, 4, then the 5 s cap.
    let mut now = 0;
    for expected in [1, 2, 4, 5, 5] {
        assert_eq!(
            admit(&mut c, d, at(now)).unwrap(),
            Admission::Wait(at(now + expected)),
            "open for {expected} s"
        );
        now += expected;
        assert_eq!(admit(&mut c, d, at(now)).unwrap(), Admission::Probe);
        if expected == 5 && now > 13 {
            break;
        }
        assert_eq!(
            record(&mut c, d, Some("still down"), at(now), &settings, &routing).unwrap(),
            Some("open")
        );
    }
    assert_eq!(
        record(&mut c, d, None, at(now), &settings, &routing).unwrap(),
        Some("closed")
    );
    assert_eq!(admit(&mut c, d, at(now)).unwrap(), Admission::Go);
    #[derive(diesel::QueryableByName, Debug)]
    struct E {
        #[diesel(sql_type = diesel::sql_types::Text)]
        event: String,
    }
    use diesel::RunQueryDsl;
    let events: Vec<String> =
        diesel::sql_query("SELECT event FROM notifications ORDER BY created_at, id")
            .load::<E>(&mut c)
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
    assert_eq!(events.first().map(String::as_str), Some("circuit.opened"));
    assert_eq!(
        events.last().map(String::as_str),
        Some("circuit.closed"),
        "{events:?}"
    );
    assert_eq!(events.iter().filter(|e| *e == "circuit.closed").count(), 1);
}

/// A browser unused for `idle_timeout` is closed cleanly (its row says `closed`), and the
/// next run relaunches it.
#[test]
fn an_idle_browser_is_closed_and_relaunched_on_demand() {
    let db = TestDb::new();
    let pages = Pages::start();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let o = start_in(&db, &state, "idle_timeout = \"1s\"");
    let profile_dir = state.join("profiles/idle");
    let steps = json!({"profile": "idle", "steps": [{"goto": {"url": pages.url("/delayed")}}]});
    browser_job(&o, "first", steps.clone(), json!({}));
    assert_eq!(o.finished_run("first", T)["state"], "succeeded");
    wait_for("the idle browser closed", T, || {
        (chromium_under(&profile_dir).is_empty()
            && session_row(&o, "idle").is_some_and(|r| r["state"] == "closed"))
        .then_some(())
    });
    browser_job(&o, "second", steps, json!({}));
    assert_eq!(o.finished_run("second", T)["state"], "succeeded");
    let row = session_row(&o, "idle").unwrap();
    assert_eq!(row["launches"], 2, "relaunched on demand: {row}");
}

#[test]
fn a_profile_whose_browser_keeps_dying_is_refused_until_its_window_passes() {
    let db = TestDb::new();
    let pages = Pages::start();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let o = start_in(&db, &state, "");
    let never = json!({"cron": "0 0 29 2 *", "timezone": "UTC"});
    let body = json!({
        "name": "doomed", "kind": "browser", "schedule": never,
        "payload": {"profile": "doomed", "steps": [
            {"goto": {"url": pages.url("/form")}},
            {"wait_for": {"selector": "#never", "timeout": "20s"}},
        ]},
        "policy": {"max_retries": 0},
    });
    let a = o.post("/api/v1/jobs", o.admin(), Some(&body.to_string()));
    assert_eq!(a.status, 201, "{}", a.text);
    // The latest of `n` runs, once it failed.
    let failed = |n: usize| -> Value {
        wait_for(&format!("run {n} failed"), T, || {
            let runs = o.get("/api/v1/runs?job=doomed&limit=100", o.admin()).json();
            let items = runs["items"].as_array().unwrap().clone();
            (items.len() == n && items[0]["state"] == "failed").then(|| items[0].clone())
        })
    };
    // The profile's session fails five times within its window (SESSION_MAX_FAILURES)...
    for n in 1..=5 {
        let a = o.post("/api/v1/jobs/doomed/trigger", o.admin(), None);
        assert_eq!(a.status, 201, "{}", a.text);
        wait_for(&format!("the page of run {n} loaded"), T, || {
            (pages.hits().iter().filter(|h| *h == "/form").count() == n).then_some(())
        });
        // The whole browser at once: its process group (the pool starts Chromium as the
        // leader of its own), so no renderer is seen dying before the browser.
        let pid = wait_for("the session's pid", T, || {
            session_row(&o, "doomed")
                .filter(|r| r["state"] == "running")
                .and_then(|r| r["pid"].as_i64())
        });
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        let run = failed(n);
        assert_eq!(run["error_kind"], "browser_crashed", "{run}");
    }
    // ... so the next run is refused without launching a browser.
    let a = o.post("/api/v1/jobs/doomed/trigger", o.admin(), None);
    assert_eq!(a.status, 201, "{}", a.text);
    let run = failed(6);
    assert_eq!(run["error_kind"], "browser_unavailable", "{run}");
    assert!(
        run["error_message"]
            .as_str()
            .unwrap()
            .contains("failed 5 times within 60s"),
        "{run}"
    );
    assert!(chromium_under(&state.join("profiles/doomed")).is_empty());
    // Another profile is not affected.
    browser_job(
        &o,
        "healthy",
        json!({"profile": "healthy", "steps": [{"goto": {"url": pages.url("/form")}}]}),
        json!({"max_retries": 0}),
    );
    assert_eq!(o.finished_run("healthy", T)["state"], "succeeded");
}
