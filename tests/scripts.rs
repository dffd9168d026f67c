//! Browser scripts that do the real work, in real Chromium against a fake social site on
//! loopback: the shipped birthday job (examples/browser) sends at most the quota's messages,
//! each contact once, never twice — not on a second trigger, not after kill -9 or a clean
//! shutdown mid-send, not from two nodes; the shipped application-status job tells of a status only when it
//! changed; templates, loops, conditions and their errors.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::social::{Contact, Social};
use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);
const SECRET: &str = "s0cial-Passw0rd";
const FAST: &str = "[node]\nheartbeat_interval = \"500ms\"\n\
[scheduler]\nheartbeat_interval = \"500ms\"\n\
[zombie]\nsweep_interval = \"1s\"\nnode_timeout = \"3s\"\nheartbeat_timeout = \"10s\"\nlease = \"2s\"\n";

fn config() -> String {
    format!("{FAST}[browser.secrets]\nSOCIAL_PASSWORD = \"{SECRET}\"\n")
}

fn start(db: &TestDb) -> TestApp {
    TestApp::start(db, &config())
}

/// Five contacts with a birthday on the site's today, two without.
fn site() -> Social {
    let c = |id: &str, name: &str, birthday: &str| Contact {
        id: id.into(),
        name: name.into(),
        birthday: birthday.into(),
    };
    Social::start(
        vec![
            c("c1", "Ada Lovelace", "12-01"),
            c("c2", "Grace Hopper", "12-01"),
            c("x1", "Alan Turing", "06-23"),
            c("c3", "Edsger Dijkstra", "12-01"),
            c("c4", "Barbara Liskov", "12-01"),
            c("x2", "Ken Thompson", "02-04"),
            c("c5", "Donald Knuth", "12-01"),
        ],
        "2026-12-01",
    )
}

/// A shipped example job, pointed at the test site and never firing by its schedule (runs
/// are triggered).
fn example(file: &str, site: &Social, name: &str) -> Value {
    let path = format!("{}/examples/browser/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut job: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    job["name"] = json!(name);
    job["metadata"]["site"] = json!(site.base);
    job["schedule"] = json!({"cron": "0 0 29 2 *", "timezone": "Europe/Berlin"});
    job
}

fn put_quota(o: &TestApp, name: &str, day: i64) {
    let a = o.put(
        &format!("/api/v1/quotas/{name}"),
        o.admin(),
        &json!({"limits": {"day": day}}).to_string(),
    );
    assert!(a.status == 200 || a.status == 201, "{}", a.text);
}

/// Triggers the job and waits for that run (and its retries) to end.
fn trigger_and_finish(o: &TestApp, job: &str) -> Value {
    let a = o.post(&format!("/api/v1/jobs/{job}/trigger"), o.admin(), None);
    assert_eq!(a.status, 201, "{}", a.text);
    let fire_at = a.json()["fire_at"].as_str().unwrap().to_string();
    finished_fire(o, job, &fire_at)
}

/// The latest attempt of the fire at `fire_at`, once it is terminal.
fn finished_fire(o: &TestApp, job: &str, fire_at: &str) -> Value {
    wait_for(&format!("the run of {job} at {fire_at}"), T, || {
        let runs = o.get(&format!("/api/v1/runs?job={job}"), o.admin()).json();
        let latest = runs["items"]
            .as_array()?
            .iter()
            .filter(|r| r["fire_at"] == fire_at)
            .max_by_key(|r| r["attempt"].as_i64())?
            .clone();
        (!matches!(
            latest["state"].as_str(),
            Some("pending" | "running" | "deferred")
        ))
        .then_some(latest)
    })
}

fn per_contact(messages: &[(String, String)]) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for (to, _) in messages {
        *n.entry(to.clone()).or_default() += 1;
    }
    n
}

#[test]
fn birthday_greetings_respect_the_quota_and_never_go_twice() {
    let db = TestDb::new();
    let social = site();
    let o = start(&db);
    put_quota(&o, "social:messages", 3);
    o.create_job(&example("birthday-greetings.json", &social, "birthdays"));

    // Day one: 5 birthdays, room for 3.
    let run = trigger_and_finish(&o, "birthdays");
    assert_eq!(run["state"], "succeeded", "{run}");
    let out = &run["output"];
    assert_eq!(out["outcome"], "quota_exhausted", "{out}");
    assert_eq!(out["remaining_items"].as_array().unwrap().len(), 2, "{out}");
    let sent = social.messages();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(per_contact(&sent).values().all(|n| *n == 1), "{sent:?}");
    assert_eq!(sent[0], ("c1".into(), "Happy birthday, Ada!".into()));
    assert!(
        sent.iter().all(|(to, _)| to.starts_with('c')),
        "birthdays only: {sent:?}"
    );
    // The trace shows the loop, its items and the login the first run needed.
    let trace = out["trace"].to_string();
    assert!(trace.contains("steps.2.for_each.steps.0.once"), "{trace}");
    assert!(trace.contains("Ada Lovelace"), "{trace}");
    assert!(!run.to_string().contains(SECRET));

    // Triggered again the same day: nobody twice, and no room for the others.
    let run = trigger_and_finish(&o, "birthdays");
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(social.messages().len(), 3);
    let skipped = run["output"]["trace"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["skipped"] == "done before")
        .count();
    assert_eq!(skipped, 3, "{run}");

    // The next day's window has room (standing in for the reset): the other two.
    put_quota(&o, "social:messages", 6);
    let run = trigger_and_finish(&o, "birthdays");
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["output"]["outcome"], "completed", "{run}");
    let sent = social.messages();
    assert_eq!(
        per_contact(&sent),
        ["c1", "c2", "c3", "c4", "c5"]
            .iter()
            .map(|c| (c.to_string(), 1))
            .collect::<BTreeMap<_, _>>()
    );
    // The keys are listed, and one forgotten lets its block run again.
    let keys = o.get("/api/v1/jobs/birthdays/once-keys", o.admin()).json();
    assert_eq!(keys["items"].as_array().unwrap().len(), 5, "{keys}");
    assert!(keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["state"] == "done"));
    let key = keys["items"][0]["key"].as_str().unwrap().to_string();
    let a = request(
        "DELETE",
        &o.url(&format!(
            "/api/v1/jobs/birthdays/once-keys/{}",
            key.replace(':', "%3A")
        )),
        o.admin(),
        &[],
        None,
    );
    assert_eq!(a.status, 204, "{}", a.text);
    let run = trigger_and_finish(&o, "birthdays");
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(social.messages().len(), 6, "the forgotten one, again");
    assert!(!o.logs.text().contains(SECRET));
}

/// Creates the birthday job, holds the site's sends and triggers it: returns the fire once
/// the first send (to c1) reached the site and hangs there.
fn trigger_until_a_send_hangs(a: &TestApp, social: &Social) -> String {
    put_quota(a, "social:messages", 20);
    a.create_job(&example("birthday-greetings.json", social, "birthdays"));
    social.hold_sends(true);
    let t = a.post("/api/v1/jobs/birthdays/trigger", a.admin(), None);
    assert_eq!(t.status, 201, "{}", t.text);
    let fire_at = t.json()["fire_at"].as_str().unwrap().to_string();
    wait_for("the first send reached the site", T, || {
        (!social.messages().is_empty()).then_some(())
    });
    fire_at
}

/// After a send was cut off: the run that went on reported c1's block uncertain and did not
/// repeat it, everyone else was messaged once, and the key is listed uncertain.
fn only_the_cut_off_send_is_uncertain(b: &TestApp, run: &Value, social: &Social) {
    let uncertain = run["output"]["uncertain"].as_array().unwrap();
    assert_eq!(uncertain.len(), 1, "{run}");
    assert!(
        uncertain[0]["key"]
            .as_str()
            .unwrap()
            .starts_with("birthday:c1:"),
        "{run}"
    );
    let counts = per_contact(&social.messages());
    assert_eq!(counts.get("c1"), Some(&1), "c1 messaged once: {counts:?}");
    assert_eq!(counts.len(), 5, "everyone else was messaged: {counts:?}");
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    let keys = b.get("/api/v1/jobs/birthdays/once-keys", b.admin()).json();
    let states: Vec<&str> = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "uncertain").count(),
        1,
        "{keys}"
    );
}

/// overseer is killed with -9 after the send click reached the site and before the block's
/// key was recorded: the retry on another node does not message that contact again, and
/// says the block is uncertain.
#[test]
fn a_send_cut_off_by_kill_9_is_not_repeated_and_is_reported_uncertain() {
    let db = TestDb::new();
    let social = site();
    let mut a = start(&db);
    let fire_at = trigger_until_a_send_hangs(&a, &social);
    a.signal(nix::sys::signal::Signal::SIGKILL);
    a.wait_exit(T);
    social.hold_sends(false);
    let b = start(&db);
    let run = finished_fire(&b, "birthdays", &fire_at);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["attempt"], 2, "{run}");
    only_the_cut_off_send_is_uncertain(&b, &run, &social);
}

/// A clean shutdown (SIGTERM) while a send hangs: the run is interrupted and given back —
/// the same attempt, not a failure — and its key is uncertain, so the run going on after
/// the restart skips that contact rather than messaging it again, and messages the rest.
#[test]
fn a_send_cut_off_by_a_clean_shutdown_is_not_repeated_and_the_run_goes_on_after_restart() {
    let db = TestDb::new();
    let social = site();
    let (spawn, tmp) = Spawn::with_db(&db);
    let mut a = spawn
        .toml(&format!(
            "{}[server]\nshutdown_timeout = \"3s\"\n",
            config()
        ))
        .start_with_tmp(Some(tmp));
    a.wait_ready(T);
    let fire_at = trigger_until_a_send_hangs(&a, &social);
    a.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(a.wait_exit(T).code(), Some(0), "{}", a.logs.text());
    assert!(
        a.logs.text().contains("run interrupted by the shutdown"),
        "{}",
        a.logs.text()
    );
    social.hold_sends(false);
    let b = start(&db);
    let run = finished_fire(&b, "birthdays", &fire_at);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["attempt"], 1, "the same attempt went on: {run}");
    let runs = b.get("/api/v1/runs?job=birthdays", b.admin()).json();
    assert_eq!(runs["items"].as_array().unwrap().len(), 1, "{runs}");
    only_the_cut_off_send_is_uncertain(&b, &run, &social);
}

/// Two nodes run the job at the same time: each contact is messaged once.
#[test]
fn two_nodes_running_the_same_job_never_message_a_contact_twice() {
    let db = TestDb::new();
    let social = site();
    let a = start(&db);
    let b = start(&db);
    put_quota(&a, "social:messages", 20);
    let mut job = example("birthday-greetings.json", &social, "birthdays");
    job["policy"]["overlap"] = json!("allow");
    a.create_job(&job);
    let (ta, tb) = std::thread::scope(|s| {
        let ta = s.spawn(|| a.post("/api/v1/jobs/birthdays/trigger", a.admin(), None));
        let tb = s.spawn(|| b.post("/api/v1/jobs/birthdays/trigger", b.admin(), None));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert_eq!(
        (ta.status, tb.status),
        (201, 201),
        "{} {}",
        ta.text,
        tb.text
    );
    for t in [ta, tb] {
        let fire_at = t.json()["fire_at"].as_str().unwrap().to_string();
        let run = finished_fire(&a, "birthdays", &fire_at);
        assert_eq!(run["state"], "succeeded", "{run}");
    }
    let counts = per_contact(&social.messages());
    assert_eq!(counts.len(), 5, "{counts:?}");
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
}

/// The shipped application-status job notifies of a status only when it changed.
#[test]
fn application_statuses_notify_only_when_they_change() {
    let db = TestDb::new();
    let social = site();
    social.set_applications(&[
        ("a1", "Acme", "Applied"),
        ("a2", "Globex", "Interview"),
        ("a3", "Initech", "Applied"),
    ]);
    let o = start(&db);
    o.create_job(&example("application-status.json", &social, "applications"));
    let notices = |o: &TestApp| -> Vec<String> {
        let n = o
            .get(
                "/api/v1/notifications?event=run.notice&limit=100",
                o.admin(),
            )
            .json();
        let mut subjects: Vec<String> = n["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["subject"].as_str().unwrap().to_string())
            .collect();
        subjects.sort();
        subjects
    };
    let run = trigger_and_finish(&o, "applications");
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(
        run["output"]["extracted"]["statuses"],
        json!(["Applied", "Interview", "Applied"]),
        "one record per item: {run}"
    );
    assert_eq!(notices(&o), ["Globex: Interview"]);
    social.set_applications(&[
        ("a1", "Acme", "Applied"),
        ("a2", "Globex", "Interview"),
        ("a3", "Initech", "Rejected"),
    ]);
    let run = trigger_and_finish(&o, "applications");
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(notices(&o), ["Globex: Interview", "Initech: Rejected"]);
    let run = trigger_and_finish(&o, "applications");
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(notices(&o).len(), 2, "nothing changed, nothing told");
}

/// A loop may navigate away from its list: its items are found again by index when the list
/// is back, and `visible` decides on what the page shows.
#[test]
fn a_loop_survives_navigation_and_conditions_see_the_page() {
    let db = TestDb::new();
    let social = site();
    social.set_applications(&[
        ("a1", "Acme", "Applied"),
        ("a2", "Globex", "Interview"),
        ("a3", "Initech", "Rejected"),
    ]);
    let o = start(&db);
    let list = social.url("/applications");
    let job = json!({"name": "details", "kind": "browser", "schedule": {"cron": "0 0 29 2 *"},
        "metadata": {"site": social.base}, "policy": {"max_retries": 0},
        "payload": {"profile": "p", "steps": [
            {"goto": {"url": list}},
            {"for_each": {"selector": ".application", "as": "app", "steps": [
                {"goto": {"url": "{{ job.metadata.site }}/applications/{{ app.attr.data-id }}"}},
                {"extract": {"selector": "#detail", "into": "details"}},
                {"if": {"visible": "#back", "then": [{"click": {"selector": "#back"}}],
                        "else": [{"goto": {"url": list}}]}},
                {"wait_for": {"selector": ".application"}},
                {"extract": {"selector": ":scope .status", "into": "statuses"}}]}}]}});
    o.create_job(&job);
    let run = trigger_and_finish(&o, "details");
    assert_eq!(run["state"], "succeeded", "{run}");
    let vars = &run["output"]["extracted"];
    assert_eq!(
        vars["details"],
        json!([
            "Applied since Monday",
            "Interview since Monday",
            "Rejected since Monday"
        ])
    );
    assert_eq!(
        vars["statuses"],
        json!(["Applied", "Interview", "Rejected"])
    );
    let ifs: Vec<&Value> = run["output"]["trace"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "if")
        .collect();
    assert_eq!(ifs.len(), 3);
    assert!(ifs.iter().all(|e| e["result"] == true), "{ifs:?}");
}

/// Bad scripts are refused at creation with the full path; a template that reads nothing
/// fails the run naming the step; `default` fills the hole; `on_error: continue` keeps
/// going and reports the item; `on_exhausted: fail` fails.
#[test]
fn script_errors_name_their_step() {
    let db = TestDb::new();
    let social = site();
    let o = start(&db);
    let job = |name: &str, steps: Value| {
        json!({"name": name, "kind": "browser", "schedule": {"cron": "0 0 29 2 *"},
               "payload": {"profile": "p", "steps": steps}})
    };
    for (steps, path) in [
        (
            json!([{"for_each": {"selector": ".x", "steps": [{"click": {"selector": "{{ item.nme | upper }}"}}]}}]),
            None,
        ),
        (
            json!([{"for_each": {"selector": ".x", "steps": [{"click": {"selector": "{{ contact.text }}"}}]}}]),
            Some("payload.steps.0.for_each.steps.0.click.selector"),
        ),
        (
            json!([{"if": {"exists": "#a", "then": [{"type": {"selector": "#a", "text": "{{ vars.x | shout }}"}}]}}]),
            Some("payload.steps.0.if.then.0.type.text"),
        ),
        (
            json!([{"once": {"key": "k", "steps": [{"consume": {"quota": "social:messages", "on_exhausted": "sometimes"}}]}}]),
            Some("payload.steps.0.once.steps.0.consume.on_exhausted"),
        ),
    ] {
        let a = o.post(
            "/api/v1/jobs",
            o.admin(),
            Some(&job("bad", steps.clone()).to_string()),
        );
        match path {
            None => {
                // Valid: item.nme is only known when it runs.
                assert_eq!(a.status, 201, "{}", a.text);
                request("DELETE", &o.url("/api/v1/jobs/bad"), o.admin(), &[], None);
            }
            Some(path) => {
                assert_eq!(a.status, 422, "{steps}: {}", a.text);
                assert_eq!(a.json()["error"]["fields"][0]["path"], path, "{}", a.text);
            }
        }
    }
    put_quota(&o, "social:messages", 1);
    let url = social.url("/applications");
    social.set_applications(&[("a1", "Acme", "Applied"), ("a2", "Globex", "Interview")]);
    let cases = [
        (
            "hole",
            json!([{"goto": {"url": url}}, {"click": {"selector": "#{{ vars.missing }}"}}]),
        ),
        (
            "filled",
            json!([{"goto": {"url": url}},
                   {"extract": {"selector": ".status", "into": "first"}},
                   {"assert_text": {"selector": "body", "contains": "{{ vars.first | trim | default(\"x\") | truncate(3) }}"}},
                   {"if": {"equals": {"value": "{{ vars.nothing | default(\"\") }}", "to": ""},
                           "then": [{"extract": {"selector": ".status", "all": true, "into": "all"}}]}}]),
        ),
        (
            "continue",
            json!([{"goto": {"url": url}},
                   {"for_each": {"selector": ".application", "on_error": "continue", "steps": [
                       {"if": {"text_contains": {"selector": ":scope .status", "text": "Interview"},
                               "then": [{"click": {"selector": ":scope .no-such-button"}}]}},
                       {"extract": {"selector": ":scope .status", "into": "seen"}}]}}]),
        ),
        (
            "refund",
            json!([{"goto": {"url": url}},
                   {"once": {"key": "r", "steps": [
                       {"consume": {"quota": "social:messages"}},
                       {"click": {"selector": "#no-such-button"}}]}}]),
        ),
        (
            "defer",
            json!([{"goto": {"url": url}},
                   {"consume": {"quota": "social:messages", "on_exhausted": "defer"}}]),
        ),
        (
            "fail",
            json!([{"goto": {"url": url}},
                   {"consume": {"quota": "social:messages", "on_exhausted": "fail"}},
                   {"consume": {"quota": "social:messages", "on_exhausted": "fail"}}]),
        ),
    ];
    for (name, steps) in &cases {
        let mut j = job(name, steps.clone());
        j["policy"] = json!({"max_retries": 0});
        o.create_job(&j);
    }
    let hole = trigger_and_finish(&o, "hole");
    assert_eq!(hole["state"], "failed", "{hole}");
    assert_eq!(hole["error_kind"], "template");
    assert!(
        hole["error_message"]
            .as_str()
            .unwrap()
            .starts_with("step 1 (click): `vars.missing` has no value"),
        "{hole}"
    );
    let filled = trigger_and_finish(&o, "filled");
    assert_eq!(filled["state"], "succeeded", "{filled}");
    assert_eq!(
        filled["output"]["extracted"]["all"],
        json!(["Applied", "Interview"])
    );
    let cont = trigger_and_finish(&o, "continue");
    assert_eq!(cont["state"], "succeeded", "{cont}");
    let errors = cont["output"]["item_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{cont}");
    assert_eq!(errors[0]["index"], 1);
    assert_eq!(errors[0]["kind"], "not_found");
    assert_eq!(
        errors[0]["step"],
        "steps.1.for_each.steps.0.if.then.0.click"
    );
    assert_eq!(cont["output"]["extracted"]["seen"], json!(["Applied"]));
    // A once block that failed gives back what it consumed, and forgets its key.
    let refund = trigger_and_finish(&o, "refund");
    assert_eq!(refund["state"], "failed", "{refund}");
    assert_eq!(refund["error_kind"], "not_found");
    assert!(refund["error_message"]
        .as_str()
        .unwrap()
        .starts_with("step 1.once.steps.1 (click)"));
    let used = o.get("/api/v1/quotas/social:messages", o.admin()).json();
    assert_eq!(used["windows"][0]["used"], 0, "refunded: {used}");
    let keys = o.get("/api/v1/jobs/refund/once-keys", o.admin()).json();
    assert_eq!(keys["items"], json!([]), "{keys}");
    let fail = trigger_and_finish(&o, "fail");
    assert_eq!(fail["state"], "failed", "{fail}");
    assert_eq!(fail["error_kind"], "quota_exhausted", "{fail}");
    // The window is full now: `defer` makes the run wait for its reset (no attempt used).
    let t = o.post("/api/v1/jobs/defer/trigger", o.admin(), None);
    assert_eq!(t.status, 201, "{}", t.text);
    let deferred = wait_for("the run deferred", T, || {
        let runs = o.get("/api/v1/runs?job=defer", o.admin()).json();
        runs["items"]
            .as_array()?
            .iter()
            .find(|r| r["state"] == "deferred")
            .cloned()
    });
    assert_eq!(deferred["attempt"], 1, "{deferred}");
    assert!(
        deferred["due_at"].as_str().unwrap() > deferred["queued_at"].as_str().unwrap(),
        "due at the window's reset: {deferred}"
    );
    assert!(
        deferred["error_message"]
            .as_str()
            .unwrap()
            .contains("social:messages exhausted"),
        "{deferred}"
    );
}
