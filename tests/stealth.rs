//! Anti-detection against a probe page (tests/common/probes.rs) that reads what today's
//! open-source detectors read, with the `anti_detection` flag on and off, while a script
//! runs every step type on it: no CDP Runtime domain seen from the page, no call of ours in
//! its world, `navigator.webdriver` false in every frame, one identity in page, workers and
//! headers, clicks and keys like a hand, a plausible window that stays the profile's, nothing
//! that looks patched; with the flag off, Chromium's defaults.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::probes::Probes;
use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(90);

fn start(db: &TestDb, extra: &str) -> TestApp {
    TestApp::start(
        db,
        &format!("[browser]\nidle_timeout = \"60s\"\nstep_timeout = \"15s\"\n{extra}"),
    )
}

/// Every step type on the probe page, then its report.
fn probe(o: &TestApp, probes: &Probes, name: &str) -> Value {
    let steps = json!([
        {"goto": {"url": probes.url("/probe"), "wait_until": "load"}},
        {"wait_for": {"selector": "#late", "state": "visible"}},
        {"if": {"exists": "#name",
                "then": [{"extract": {"selector": "#title", "into": "title"}}]}},
        {"for_each": {"selector": "#list .item", "as": "item", "steps": [
            {"extract": {"selector": ":scope .label", "into": "labels"}},
        ]}},
        {"type": {"selector": "#name", "text": "Ada", "clear": true, "delay_ms": 30}},
        {"press": {"key": "Tab"}},
        {"select": {"selector": "#color", "value": "b"}},
        {"assert_text": {"selector": "#title", "contains": "Probe"}},
        {"screenshot": {"full_page": true}},
        {"click": {"selector": "#far"}},
        {"sleep": {"ms": 50}},
        {"click": {"selector": "#finish"}},
        {"wait_for": {"selector": "#report:not(:empty)", "state": "attached"}},
        {"extract": {"selector": "#report", "into": "report"}},
    ]);
    let body = json!({
        "name": name, "kind": "browser", "schedule": {"at": Utc::now().to_rfc3339()},
        "payload": {"profile": "probe", "locale": "de-DE", "steps": steps},
        "policy": {"max_retries": 0},
    });
    let a = o.post("/api/v1/jobs", o.admin(), Some(&body.to_string()));
    assert_eq!(a.status, 201, "{}", a.text);
    let run = wait_for(&format!("{name} finished"), T, || {
        let runs = o.get(&format!("/api/v1/runs?job={name}"), o.admin()).json();
        let run = runs["items"][0].clone();
        matches!(
            run["state"].as_str(),
            Some("succeeded" | "failed" | "timed_out")
        )
        .then_some(run)
    });
    assert_eq!(run["state"], "succeeded", "{run}");
    let extracted = &run["output"]["extracted"];
    assert_eq!(extracted["title"], "Probe page");
    assert_eq!(extracted["labels"], json!(["one", "two"]));
    let report: Value = serde_json::from_str(extracted["report"].as_str().unwrap()).unwrap();
    eprintln!("{name}: {report}");
    report
}

fn ua_of(v: &Value) -> &str {
    v["ua"].as_str().unwrap_or_default()
}

#[test]
fn with_anti_detection_a_probe_page_finds_nothing_automated() {
    let db = TestDb::new();
    let probes = Probes::start();
    let o = start(&db, "");
    let r = probe(&o, &probes, "probe-on");

    // 1. No Runtime domain: what the page logs is never serialized for a debugger.
    assert_eq!(r["runtime"], false, "Runtime.enable seen: {r}");
    // 2. Our JavaScript never ran in the page's world and left nothing there.
    assert_eq!(r["calls"], json!({}), "main-world calls: {}", r["calls"]);
    let globals: Vec<&Value> = r["new_globals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| !g.as_str().unwrap().chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert!(globals.is_empty(), "globals left: {globals:?}");
    assert_eq!(r["automation_flag"], false);
    // 3. navigator.webdriver present and false in every frame; Chrome has none in workers.
    assert_eq!(r["webdriver"]["main"], false, "{r}");
    assert_eq!(r["webdriver"]["has"], true, "{r}");
    assert_eq!(r["webdriver"]["srcdoc"]["webdriver"], false, "{r}");
    assert_eq!(r["webdriver"]["blank"]["webdriver"], false, "{r}");
    for kind in ["dedicated", "shared", "service"] {
        let w = &r["workers"][kind];
        assert!(w.is_object(), "{kind} worker answered: {w}");
        assert_ne!(w["webdriver"], true, "{kind}: {w}");
    }
    // 4. One identity: the user agent everywhere, on the wire, and its client hints.
    let ua = ua_of(&r);
    assert!(
        ua.contains("Chrome/") && !ua.contains("Headless"),
        "user agent: {ua}"
    );
    assert!(ua.contains("X11; Linux"), "{ua}");
    for frame in ["srcdoc", "blank"] {
        assert_eq!(r["webdriver"][frame]["ua"], ua, "{frame}");
    }
    for kind in ["dedicated", "shared", "service"] {
        let w = &r["workers"][kind];
        assert_eq!(ua_of(w), ua, "{kind} worker's user agent");
        assert_eq!(w["platform"], r["platform"], "{kind} worker's platform");
        assert_eq!(w["brands"], r["brands"], "{kind} worker's brands");
    }
    assert!(r["platform"].as_str().unwrap().starts_with("Linux"));
    let major = ua
        .split("Chrome/")
        .nth(1)
        .unwrap()
        .split('.')
        .next()
        .unwrap();
    let brands = r["brands"].as_array().unwrap();
    assert!(
        brands
            .iter()
            .any(|b| b["brand"] == "Chromium" && b["version"] == major),
        "brands agree with the user agent: {brands:?}"
    );
    assert!(brands
        .iter()
        .all(|b| !b["brand"].as_str().unwrap().contains("Headless")));
    let full = r["he"]["fullVersionList"].as_array().unwrap();
    assert!(!full.is_empty(), "high-entropy hints: {}", r["he"]);
    assert!(full.iter().any(|b| b["brand"] == "Chromium"
        && b["version"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{major}."))));
    let arch = match std::env::consts::ARCH {
        "aarch64" | "arm" => "arm",
        _ => "x86",
    };
    assert_eq!(r["he"]["architecture"], arch);
    assert_eq!(
        r["workers"]["dedicated"]["he"], r["he"],
        "page and worker agree"
    );
    assert_eq!(r["languages"], json!(["de-DE", "de"]));
    let page_req = probes.requests("/probe").pop().unwrap();
    assert_eq!(page_req["user-agent"], ua);
    let ch = &page_req["sec-ch-ua"];
    assert!(
        ch.contains("\"Chromium\"")
            && ch.contains(&format!("v=\"{major}\""))
            && !ch.contains("Headless"),
        "Sec-CH-UA: {ch}"
    );
    assert_eq!(page_req["sec-ch-ua-platform"], "\"Linux\"");
    assert_eq!(page_req["sec-ch-ua-mobile"], "?0");
    assert!(page_req["accept-language"].starts_with("de-DE,de"));
    for script in ["/worker.js", "/shared.js", "/sw.js"] {
        let req = probes.requests(script).pop().unwrap_or_default();
        assert_eq!(
            req.get("user-agent").map(String::as_str),
            Some(ua),
            "{script}"
        );
    }
    // 5. Input like a hand: paths, press gaps, trusted events, a wheel, a mouse.
    assert_eq!(r["untrusted"], json!([]), "untrusted events: {r}");
    let clicks = r["clicks"].as_array().unwrap();
    let targets: Vec<&str> = clicks
        .iter()
        .map(|c| c["target"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(targets, ["name", "far", "finish"], "{clicks:?}");
    for c in clicks {
        assert!(c["moves"].as_u64().unwrap() >= 5, "pointer path: {c}");
        assert!(c["move_ms"].as_f64().unwrap() >= 150.0, "path time: {c}");
        // Held like a finger (the input layer waits 55–130 ms between press and release),
        // never an instant click; a busy machine can only delay the release's dispatch, so
        // the upper bound is only "not stuck".
        let press = c["press_ms"].as_f64().unwrap();
        assert!((50.0..=1000.0).contains(&press), "press–release: {c}");
        assert_eq!(c["page_equals_client"], true, "{c}");
        // The screen offset is the window's place plus its toolbars, as in a real window.
        let w = &r["window"];
        assert_eq!(c["screen_dx"], w["at"][0], "{c} {w}");
        let chrome = w["outer"][1].as_f64().unwrap() - w["inner"][1].as_f64().unwrap();
        assert_eq!(
            c["screen_dy"].as_f64().unwrap(),
            w["at"][1].as_f64().unwrap() + chrome,
            "{c} {w}"
        );
        assert!(c["screen_dy"].as_f64().unwrap() > 0.0, "{c}");
    }
    assert!(
        r["counts"]["wheel"].as_u64().unwrap_or(0) >= 1,
        "scrolled by wheel: {r}"
    );
    assert!(r["counts"]["keydown"].as_u64().unwrap() >= 5, "{r}");
    assert_eq!(r["counts"].get("touchstart"), None);
    assert_eq!(r["name_value"], "Ada", "cleared and typed");
    assert_eq!(r["color"], "b", "selected with the keys");
    assert_eq!(r["touch"]["max_touch_points"], 0);
    assert_eq!(r["touch"]["ontouchstart"], false);
    assert_eq!(r["touch"]["pointer_fine"], true);
    assert_eq!(r["touch"]["hover"], true);
    // 6. A plausible window, the profile's own.
    let w = &r["window"];
    let n = |v: &Value, i: usize| v[i].as_u64().unwrap();
    let (inner, outer, screen) = (&w["inner"], &w["outer"], &w["screen"]);
    assert!(n(inner, 0) > 0 && n(outer, 0) >= n(inner, 0), "{w}");
    assert!(n(outer, 1) > n(inner, 1), "{w}");
    assert!(
        n(screen, 0) >= n(outer, 0) && n(screen, 1) >= n(outer, 1),
        "{w}"
    );
    for common_default in [[800, 600], [1280, 720], [780, 441]] {
        assert_ne!(*inner, json!(common_default), "{w}");
        assert_ne!(*outer, json!(common_default), "{w}");
    }
    let expected = overseer::browser::stealth::Window::of_profile("probe");
    assert_eq!(*outer, json!([expected.size.0, expected.size.1]), "{w}");
    assert_eq!(
        *screen,
        json!([expected.screen.0, expected.screen.1]),
        "{w}"
    );
    // 7. Nothing patched, and what belongs together agrees.
    for (k, v) in r["native"].as_object().unwrap() {
        assert_eq!(*v, true, "{k} looks native");
    }
    assert_eq!(
        r["chrome"]["runtime"], "undefined",
        "as on any page of a real Chrome"
    );
    assert_eq!(r["chrome"]["keys"], json!(["loadTimes", "csi", "app"]));
    let consistent = match r["notification"].as_str().unwrap() {
        "default" => r["permission"] == "prompt",
        other => r["permission"] == other,
    };
    assert!(
        consistent,
        "Notification.permission vs permissions.query: {r}"
    );
    assert_eq!(r["pdf_viewer"], true);
    assert!(r["plugins"].as_u64().unwrap() > 0 && r["mime_types"].as_u64().unwrap() > 0);
    assert_eq!(r["visibility"], "visible");

    // The next run takes the page the first one parked (frozen, then woken): the same
    // identity, window and innocence.
    let again = probe(&o, &probes, "probe-on-again");
    for k in [
        "runtime",
        "calls",
        "webdriver",
        "ua",
        "brands",
        "he",
        "window",
        "touch",
        "native",
    ] {
        assert_eq!(again[k], r[k], "{k} on the woken page");
    }
    assert_eq!(again["untrusted"], json!([]));
}

#[test]
fn without_anti_detection_the_probe_page_sees_chromium_defaults() {
    let db = TestDb::new();
    let probes = Probes::start();
    let o = start(&db, "[flags]\nanti_detection = false\n");
    o.logs.wait_json("the flag is logged", T, |v| {
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("anti_detection is off"))
    });
    let r = probe(&o, &probes, "probe-off");
    // chromiumoxide's Runtime domain stays on: the bait is read.
    assert_eq!(r["runtime"], true, "{r}");
    assert_eq!(r["webdriver"]["main"], true, "{r}");
    assert!(ua_of(&r).contains("HeadlessChrome"), "{r}");
    assert!(ua_of(&r["workers"]["service"]).contains("HeadlessChrome"));
    assert_eq!(r["touch"]["pointer_fine"], false, "{r}");
    assert_eq!(r["window"]["screen"], json!([800, 600]), "{r}");
    // What is not a disguise holds either way: our calls stay in their own world.
    assert_eq!(r["calls"], json!({}), "{r}");
    assert_eq!(r["untrusted"], json!([]), "{r}");
    assert_eq!(r["name_value"], "Ada");
    assert_eq!(r["color"], "b");
}

/// A percentage rollout of `anti_detection` set at runtime decides per profile, by a stable
/// hash of its name, when the profile's browser starts: one profile in the share hides
/// automation, one outside it does not; back to on, the idle browser that no longer matches
/// is closed and the next run gets the disguise.
#[test]
fn a_runtime_rollout_of_anti_detection_is_decided_per_profile() {
    use overseer::flags::{in_rollout, Name};
    let db = TestDb::new();
    let probes = Probes::start();
    let o = start(&db, "");
    let set = o.put(
        "/api/v1/flags/anti_detection",
        o.admin(),
        r#"{"percent": 50}"#,
    );
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.json()["source"], "runtime");
    assert_eq!(set.json()["percent"], 50);
    let pick = |inside: bool| {
        (0..100)
            .map(|i| format!("acct-{i}"))
            .find(|p| in_rollout(Name::AntiDetection, p, 50) == inside)
            .unwrap()
    };
    let (inside, outside) = (pick(true), pick(false));
    let glance = |profile: &str, job: &str| -> Value {
        let body = json!({
            "name": job, "kind": "browser", "schedule": {"at": Utc::now().to_rfc3339()},
            "payload": {"profile": profile, "steps": [
                {"goto": {"url": probes.url("/glance")}},
                {"extract": {"selector": "#wd", "into": "webdriver"}},
                {"extract": {"selector": "#ua", "into": "ua"}},
            ]},
            "policy": {"max_retries": 0},
        });
        let a = o.post("/api/v1/jobs", o.admin(), Some(&body.to_string()));
        assert_eq!(a.status, 201, "{}", a.text);
        let run = wait_for(&format!("{job} finished"), T, || {
            let runs = o.get(&format!("/api/v1/runs?job={job}"), o.admin()).json();
            let run = runs["items"][0].clone();
            matches!(run["state"].as_str(), Some("succeeded" | "failed")).then_some(run)
        });
        assert_eq!(run["state"], "succeeded", "{run}");
        run["output"]["extracted"].clone()
    };
    let a = glance(&inside, "in-rollout");
    assert_eq!(a["webdriver"], "false", "{inside}: {a}");
    assert!(!a["ua"].as_str().unwrap().contains("Headless"), "{a}");
    let b = glance(&outside, "out-of-rollout");
    assert_eq!(b["webdriver"], "true", "{outside}: {b}");
    assert!(b["ua"].as_str().unwrap().contains("HeadlessChrome"), "{b}");

    // Back to the configured value (on): the outside profile's idle browser no longer
    // matches, is closed, and its next run is disguised.
    let reset = request(
        "DELETE",
        &o.url("/api/v1/flags/anti_detection"),
        o.admin(),
        &[],
        None,
    );
    assert_eq!(reset.status, 200, "{}", reset.text);
    assert_eq!(reset.json()["source"], "default");
    assert_eq!(reset.json()["enabled"], true);
    let c = glance(&outside, "out-then-in");
    assert_eq!(c["webdriver"], "false", "{outside}: {c}");
}
