//! OpenTelemetry export (`[traces]`) against the OTLP/HTTP receiver of `common/otlp.rs`: a
//! browser job's run is one trace — the run's span at its root, the quota gate and the
//! kind's work under it, the browser run under that, one span per script step with a loop's
//! steps under the loop — with the job's name and the run's id as attributes; an API
//! request is a trace of its own; no secret appears in any span; off by default.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::otlp::{Receiver, Span};
use common::pages::Pages;
use common::*;
use serde_json::json;

const T: Duration = Duration::from_secs(60);

#[test]
fn a_runs_trace_nests_its_quota_gate_work_browser_run_and_steps() {
    let db = TestDb::new();
    let receiver = Receiver::start();
    let pages = Pages::start();
    let o = TestApp::start(
        &db,
        &format!(
            "[traces]\nenabled = true\nendpoint = \"{}\"\nservice_name = \"overseer-test\"\nexport_interval = \"200ms\"\n\
             [browser.secrets]\nPASSWORD = \"trace-secret-value-7\"\n",
            receiver.url()
        ),
    );
    let body = json!({
        "name": "traced", "kind": "browser", "schedule": {"at": Utc::now().to_rfc3339()},
        "payload": {"profile": "traces", "steps": [
            {"goto": {"url": pages.url("/form")}},
            {"type": {"selector": "#name", "text": {"secret": "PASSWORD"}}},
            {"for_each": {"selector": "li.job", "as": "role", "steps": [
                {"sleep": {"ms": 1}},
            ]}},
        ]},
        "policy": {"max_retries": 0},
    });
    let created = o.post("/api/v1/jobs", o.admin(), Some(&body.to_string()));
    assert_eq!(created.status, 201, "{}", created.text);
    let run = wait_for("the run finished", T, || {
        let runs = o.get("/api/v1/runs?job=traced", o.admin()).json();
        let run = runs["items"][0].clone();
        matches!(run["state"].as_str(), Some("succeeded" | "failed")).then_some(run)
    });
    assert_eq!(run["state"], "succeeded", "{run}");
    let run_id = run["id"].as_str().unwrap().to_string();

    // The run's spans arrive once each has ended (batches every 200 ms).
    let spans = wait_for("the run's trace", T, || {
        let spans = receiver.spans();
        let root = spans
            .iter()
            .find(|s| s.name == "run traced" && s.attr("run_id") == Some(run_id.as_str()))?;
        let mine: Vec<Span> = spans
            .iter()
            .filter(|s| s.trace_id == root.trace_id)
            .cloned()
            .collect();
        (mine.iter().filter(|s| s.name.starts_with("step ")).count() >= 5).then_some(mine)
    });
    let by_name = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };
    let one = |name: &str| -> &Span {
        let found = by_name(name);
        assert_eq!(found.len(), 1, "one {name} in {spans:#?}");
        found[0]
    };
    let root = one("run traced");
    assert!(
        root.parent_span_id.is_empty(),
        "the run is its trace's root"
    );
    assert_eq!(root.service, "overseer-test");
    assert_eq!(root.attr("job"), Some("traced"));
    assert_eq!(root.attr("kind"), Some("browser"));
    assert_eq!(root.attr("attempt"), Some("1"));
    assert_eq!(root.attr("outcome"), Some("succeeded"));
    let child_of = |s: &Span, parent: &Span| s.parent_span_id == parent.span_id;
    let gate = one("quota.gate");
    assert!(child_of(gate, root));
    let work = one("browser work");
    assert!(child_of(work, root));
    let browser_run = one("browser.run");
    assert!(child_of(browser_run, work), "across the pool's actor");
    assert_eq!(browser_run.attr("profile"), Some("traces"));
    for step in ["step goto", "step type", "step for_each"] {
        assert!(
            child_of(one(step), browser_run),
            "{step} under the browser run"
        );
    }
    let extracts = by_name("step sleep");
    assert_eq!(extracts.len(), 2, "one per list item");
    let for_each = one("step for_each");
    assert!(
        extracts.iter().all(|s| child_of(s, for_each)),
        "the loop's steps under it"
    );
    assert_eq!(one("step type").attr("path"), Some("steps.1.type"));

    // The API request that made the job: a trace of its own.
    let request = wait_for("the request's span", T, || {
        receiver
            .spans()
            .into_iter()
            .find(|s| s.name == "POST /api/v1/jobs")
    });
    assert!(request.parent_span_id.is_empty());
    assert_ne!(request.trace_id, root.trace_id);
    assert_eq!(request.attr("caller"), Some("test-admin"));
    assert_eq!(request.attr("status"), Some("201"));

    // No secret in anything sent: not the typed secret, not a token.
    let sent: Vec<u8> = receiver.bodies.lock().unwrap().concat();
    for secret in ["trace-secret-value-7", o.tokens.admin.as_str()] {
        assert!(
            !sent.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} was exported"
        );
    }
}

#[test]
fn a_failed_run_is_an_error_span_and_traces_are_off_by_default() {
    let db = TestDb::new();
    let receiver = Receiver::start();
    let o = TestApp::start(
        &db,
        &format!(
            "[traces]\nenabled = true\nendpoint = \"{}\"\nexport_interval = \"200ms\"\n",
            receiver.url()
        ),
    );
    let body = json!({
        "name": "refused", "kind": "http", "schedule": {"at": Utc::now().to_rfc3339()},
        "payload": {"url": "http://127.0.0.1:9/?token=abc", "timeout": "2s"},
        "policy": {"max_retries": 0},
    });
    assert_eq!(
        o.post("/api/v1/jobs", o.admin(), Some(&body.to_string()))
            .status,
        201
    );
    let spans = wait_for("the failed run's trace", T, || {
        let spans = receiver.spans();
        let root = spans.iter().find(|s| s.name == "run refused")?.clone();
        let request = spans
            .iter()
            .find(|s| s.trace_id == root.trace_id && s.name == "GET 127.0.0.1")?
            .clone();
        Some((root, request))
    });
    let (root, request) = spans;
    assert_eq!(root.status_code, 2, "ERROR: {root:?}");
    assert_eq!(root.attr("outcome"), Some("failed"));
    assert_eq!(root.attr("error_kind"), Some("http_error"));
    assert_eq!(request.attr("server.address"), Some("127.0.0.1"));
    let sent: Vec<u8> = receiver.bodies.lock().unwrap().concat();
    assert!(
        !sent.windows(9).any(|w| w == b"token=abc"),
        "the URL's query is not exported"
    );

    // Another overseer on the same database, with the defaults: nothing is sent.
    let quiet = Receiver::start();
    let other = TestApp::start(&db, "");
    assert_eq!(other.get("/api/v1/jobs", other.admin()).status, 200);
    assert!(quiet.spans().is_empty());
    assert!(!other.logs.text().contains("exporting traces"));
}
