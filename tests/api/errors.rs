//! Bad input gets a clear error and loses nothing: one error shape with request ids, NUL
//! anywhere is a 4xx, absurd intervals and dates are refused with their bound.

use std::time::Duration;

use crate::common::*;

#[test]
fn errors_have_one_shape_with_request_ids() {
    let db = TestDb::new();
    let (spawn, tmp) = Spawn::with_db(&db);
    let o = spawn
        .toml("[log]\nlevel = \"debug\"")
        .start_with_tmp(Some(tmp));

    // Unknown route: JSON 404 with a generated request id, echoed in the header.
    let a = o.get("/nope", None);
    assert_eq!(a.status, 404);
    let body = a.json();
    assert_eq!(body["error"]["code"], "not_found");
    let rid = a.request_id.clone().expect("x-request-id header");
    assert_eq!(body["error"]["request_id"], rid.as_str());
    assert!(uuid::Uuid::parse_str(&rid).is_ok(), "{rid}");

    // An incoming request id is kept.
    let a = request(
        "GET",
        &o.url("/api/v1/flags"),
        None,
        &[("X-Request-Id", "trace-42.abc")],
        None,
    );
    assert_eq!(a.status, 401);
    assert_eq!(a.request_id.as_deref(), Some("trace-42.abc"));
    assert_eq!(a.json()["error"]["request_id"], "trace-42.abc");
    // ...but not a hostile one.
    let a = request(
        "GET",
        &o.url("/health"),
        None,
        &[("X-Request-Id", "bad id with spaces")],
        None,
    );
    assert_ne!(a.request_id.as_deref(), Some("bad id with spaces"));

    // A method the path does not have: 405 with `Allow`, in the same JSON shape.
    let a = request("DELETE", &o.url("/health"), None, &[], None);
    assert_eq!(a.status, 405, "{}", a.text);
    assert_eq!(a.json()["error"]["code"], "method_not_allowed");
    let res = ureq::delete(&o.url("/health")).call();
    let Err(ureq::Error::Status(405, r)) = res else {
        panic!("expected 405")
    };
    assert_eq!(r.header("allow"), Some("GET"));
    let a = request(
        "PUT",
        &o.url("/api/v1/jobs/some-job"),
        o.admin(),
        &[],
        Some("{}"),
    );
    assert_eq!(a.status, 405, "{}", a.text);
    let a = request(
        "GET",
        &o.url("/api/v1/jobs/some-job/nope"),
        o.admin(),
        &[],
        None,
    );
    assert_eq!(a.status, 404, "{}", a.text);

    // Fault injection is off by default: the crash route is a 404 even for an admin.
    let a = o.post("/api/v1/actors/node/crash", o.admin(), None);
    assert_eq!(a.status, 404, "{}", a.text);
    assert_eq!(o.actor("node")["restarts"], 0);

    // A body over server.body_limit: 413, before any handler reads it.
    let big = "x".repeat(70 * 1024);
    let a = request(
        "POST",
        &o.url("/api/v1/actors/node/crash"),
        o.admin(),
        &[],
        Some(&big),
    );
    assert_eq!(a.status, 413, "{}", a.text);
    assert_eq!(a.json()["error"]["code"], "payload_too_large");

    // Every request's log lines carry its id.
    let a = request(
        "GET",
        &o.url("/api/v1/nope"),
        o.admin(),
        &[("X-Request-Id", "find-me-123")],
        None,
    );
    assert_eq!(a.status, 404);
    o.logs.wait_json(
        "a log line with the request id",
        Duration::from_secs(5),
        |v| v.to_string().contains("find-me-123"),
    );
}

/// U+0000 cannot be stored by PostgreSQL: anywhere in a body, a query filter or a path key it
/// is refused at the boundary with a JSON 4xx (422 naming the field for bodies, 400 for the
/// query and the path), never a 500. Refusals come in order: 401, 403, then the input.
#[test]
fn nul_anywhere_in_the_input_is_a_4xx_never_a_500() {
    let db = TestDb::new();
    let o = TestApp::start(
        &db,
        "[[quotas]]\nname = \"q\"\nlimits = { day = 5 }\n\
             [[jobs]]\nname = \"existing\"\nkind = \"noop\"\nschedule = { every = \"1h\" }",
    );
    let admin = o.admin();
    let nul = "\\u0000";
    let bodies: Vec<(&str, &str, String, &str)> = vec![
        (
            "POST",
            "/api/v1/jobs",
            format!(
                r#"{{"name": "m", "kind": "noop", "schedule": {{"every": "1h"}}, "metadata": {{"note": "a{nul}b"}}}}"#
            ),
            "metadata.note",
        ),
        (
            "POST",
            "/api/v1/jobs",
            format!(
                r##"{{"name": "b", "kind": "browser", "schedule": {{"every": "1h"}}, "payload": {{"steps": [{{"goto": {{"url": "http://127.0.0.1:1/"}}}}, {{"type": {{"selector": "#a", "text": "x{nul}"}}}}]}}}}"##
            ),
            "payload.steps[1].type.text",
        ),
        (
            "POST",
            "/api/v1/jobs",
            format!(
                r#"{{"name": "n", "kind": "notify", "schedule": {{"every": "1h"}}, "payload": {{"subject": "s{nul}", "body": "b"}}}}"#
            ),
            "payload.subject",
        ),
        (
            "POST",
            "/api/v1/jobs",
            format!(
                r#"{{"name": "n", "kind": "notify", "schedule": {{"every": "1h"}}, "payload": {{"subject": "s", "body": "{nul}"}}}}"#
            ),
            "payload.body",
        ),
        (
            "POST",
            "/api/v1/jobs",
            format!(r#"{{"name": "x{nul}", "kind": "noop", "schedule": {{"every": "1h"}}}}"#),
            "name",
        ),
        (
            "PATCH",
            "/api/v1/jobs/existing",
            format!(r#"{{"metadata": {{"note": "{nul}"}}}}"#),
            "metadata.note",
        ),
        (
            "PATCH",
            "/api/v1/jobs/existing",
            format!(r#"{{"tags": ["ok", "{nul}"]}}"#),
            "tags[1]",
        ),
    ];
    for (method, path, body, field) in &bodies {
        let a = request(method, &o.url(path), admin, &[], Some(body));
        assert_eq!(a.status, 422, "{method} {path} {body}: {}", a.text);
        let err = a.json();
        assert_eq!(err["error"]["fields"][0]["path"], *field, "{}", a.text);
    }
    for (method, path) in [
        ("GET", "/api/v1/jobs?tag=%00"),
        ("GET", "/api/v1/jobs?name_prefix=a%00"),
        ("GET", "/api/v1/jobs?kind=%00"),
        ("GET", "/api/v1/runs?job=%00"),
        ("GET", "/api/v1/notifications?channel=%00"),
        ("GET", "/api/v1/jobs/a%00b"),
        ("POST", "/api/v1/jobs/%00/pause"),
        ("GET", "/api/v1/quotas/a%00"),
        ("DELETE", "/api/v1/quotas/a%00"),
    ] {
        let a = request(method, &o.url(path), admin, &[], None);
        assert_eq!(a.status, 400, "{method} {path}: {}", a.text);
        assert_eq!(a.json()["error"]["code"], "bad_request", "{}", a.text);
    }
    // Numbers at the edge of f64 are stored and read back (jsonb writes them out in full).
    let edge = r#"{"metadata": {"max": 1.7976931348623157e+308, "tiny": 1.9415028787907164e-136, "big": 1.3644087621286399e+150}}"#;
    let a = request(
        "PATCH",
        &o.url("/api/v1/jobs/existing"),
        admin,
        &[],
        Some(edge),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["metadata"]["max"], serde_json::json!(f64::MAX));
    let a = o.get("/api/v1/jobs/existing", admin);
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["metadata"]["max"], serde_json::json!(f64::MAX));
    let a = request(
        "PATCH",
        &o.url("/api/v1/jobs/existing"),
        admin,
        &[],
        Some(r#"{"metadata": {}}"#),
    );
    assert_eq!(a.status, 200, "{}", a.text);

    // Nothing was stored, nothing changed.
    let jobs = o.get("/api/v1/jobs", admin).json();
    let names: Vec<&str> = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["existing"]);
    assert_eq!(
        o.get("/api/v1/jobs/existing", admin).json()["metadata"],
        serde_json::json!({})
    );

    // Authenticate and authorise before the body: a viewer's malformed JSON is 403, a large
    // body without a token is 401, a viewer's NUL is 403.
    let viewer = Some(o.tokens.viewer.as_str());
    let a = request(
        "POST",
        &o.url("/api/v1/jobs"),
        viewer,
        &[],
        Some("{not json"),
    );
    assert_eq!(a.status, 403, "{}", a.text);
    let a = request(
        "POST",
        &o.url("/api/v1/jobs"),
        viewer,
        &[],
        Some(&bodies[0].2),
    );
    assert_eq!(a.status, 403, "{}", a.text);
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(200 * 1024));
    let a = request("POST", &o.url("/api/v1/jobs"), None, &[], Some(&big));
    assert_eq!(a.status, 401, "{}", a.text);
    let a = request("POST", &o.url("/api/v1/jobs"), viewer, &[], Some(&big));
    assert_eq!(a.status, 403, "{}", a.text);
    let a = request("POST", &o.url("/api/v1/jobs"), admin, &[], Some(&big));
    assert_eq!(a.status, 413, "{}", a.text);
    // The operator's malformed JSON is still the extractor's 400.
    let a = request(
        "POST",
        &o.url("/api/v1/jobs"),
        Some(o.tokens.operator.as_str()),
        &[],
        Some("{not json"),
    );
    assert_eq!(a.status, 400, "{}", a.text);
}

/// Absurd values are refused with a 422 that says the bound, not stored (or a 500 later).
#[test]
fn absurd_intervals_and_dates_are_refused_with_their_bound() {
    let db = TestDb::new();
    let o = TestApp::start(&db, "");
    for (schedule, policy, field, says) in [
        (
            r#"{"every": "9999999999999h"}"#,
            "{}",
            "schedule.every",
            "10 years",
        ),
        (
            r#"{"at": "0000-01-01T00:00:00Z"}"#,
            "{}",
            "schedule.at",
            "1970 to 9999",
        ),
        (
            r#"{"every": "1h", "start": "0001-01-01T00:00:00+00:00"}"#,
            "{}",
            "schedule.start",
            "1970 to 9999",
        ),
        (
            r#"{"every": "1h"}"#,
            r#"{"timeout": "99999999h"}"#,
            "policy.timeout",
            "10 years",
        ),
    ] {
        let body = format!(
            r#"{{"name": "absurd", "kind": "noop", "schedule": {schedule}, "policy": {policy}}}"#
        );
        let a = o.post("/api/v1/jobs", o.admin(), Some(&body));
        assert_eq!(a.status, 422, "{body}: {}", a.text);
        let err = a.json();
        let fields = err["error"]["fields"].as_array().unwrap();
        assert!(
            fields
                .iter()
                .any(|f| f["path"] == field && f["message"].as_str().unwrap().contains(says)),
            "{body}: {}",
            a.text
        );
    }
    let a = o.get("/api/v1/runs?since=0000-01-01T00:00:00Z", o.admin());
    assert!(a.status == 422 || a.status == 400, "{}", a.text);
    assert_eq!(
        o.get("/api/v1/jobs", o.admin()).json()["items"],
        serde_json::json!([])
    );
}
