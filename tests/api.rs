//! The admin API as a user meets it: auth matrix over every documented route, the error
//! shape, request ids, body limits, metrics (checked by promtool) and log hygiene.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

/// Every `/api/v1` route and the least role it needs. The test below fails when the OpenAPI
/// document and this table disagree in either direction.
const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/api/v1/openapi.json", "viewer"),
    ("GET", "/api/v1/flags", "viewer"),
    ("PUT", "/api/v1/flags/{name}", "admin"),
    ("DELETE", "/api/v1/flags/{name}", "admin"),
    ("GET", "/api/v1/audit", "admin"),
    ("GET", "/api/v1/actors", "viewer"),
    ("POST", "/api/v1/actors/{name}/crash", "admin"),
    ("GET", "/api/v1/nodes", "viewer"),
    ("GET", "/api/v1/leader", "viewer"),
    ("POST", "/api/v1/jobs", "operator"),
    ("GET", "/api/v1/jobs", "viewer"),
    ("GET", "/api/v1/jobs/{key}", "viewer"),
    ("PATCH", "/api/v1/jobs/{key}", "operator"),
    ("DELETE", "/api/v1/jobs/{key}", "operator"),
    ("POST", "/api/v1/jobs/{key}/pause", "operator"),
    ("POST", "/api/v1/jobs/{key}/resume", "operator"),
    ("POST", "/api/v1/jobs/{key}/trigger", "operator"),
    ("GET", "/api/v1/jobs/{key}/once-keys", "viewer"),
    ("GET", "/api/v1/kinds", "viewer"),
    ("POST", "/api/v1/schedules/preview", "viewer"),
    ("GET", "/api/v1/stats/runs", "viewer"),
    (
        "DELETE",
        "/api/v1/jobs/{key}/once-keys/{once_key}",
        "operator",
    ),
    ("GET", "/api/v1/runs", "viewer"),
    ("GET", "/api/v1/runs/{id}", "viewer"),
    ("POST", "/api/v1/runs/{id}/requeue", "operator"),
    ("POST", "/api/v1/runs/{id}/progress", "operator"),
    ("POST", "/api/v1/runs/{id}/notice", "operator"),
    ("GET", "/api/v1/runs/{id}/artifacts/{name}", "viewer"),
    ("GET", "/api/v1/circuits", "viewer"),
    ("GET", "/api/v1/browser/sessions", "viewer"),
    ("GET", "/api/v1/notifications", "viewer"),
    ("POST", "/api/v1/notifications/test", "admin"),
    ("POST", "/api/v1/notifications/{id}/resend", "operator"),
    ("GET", "/api/v1/quotas", "viewer"),
    ("GET", "/api/v1/quotas/{name}", "viewer"),
    ("PUT", "/api/v1/quotas/{name}", "operator"),
    ("DELETE", "/api/v1/quotas/{name}", "operator"),
    ("POST", "/api/v1/quotas/{name}/consume", "operator"),
    ("POST", "/api/v1/quotas/{name}/refund", "operator"),
];

const PUBLIC: &[(&str, &str)] = &[("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics")];

fn documented_routes(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[test]
fn openapi_document_covers_every_route_and_auth_matrix_holds() {
    let db = TestDb::new();
    let (spawn, tmp) = Spawn::with_db(&db);
    let o = spawn
        .toml("[debug]\nfault_injection = true")
        .start_with_tmp(Some(tmp));
    o.wait_ready(Duration::from_secs(30));

    let doc = o.get("/api/v1/openapi.json", o.admin()).json();
    assert_eq!(doc["openapi"].as_str().unwrap().chars().next(), Some('3'));
    let documented = documented_routes(&doc);
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .chain(PUBLIC.iter().map(|(m, p)| (m.to_string(), p.to_string())))
        .collect();
    assert_eq!(
        documented, expected,
        "the OpenAPI document and the route table differ"
    );

    let tokens = [
        ("viewer", o.tokens.viewer.clone()),
        ("operator", o.tokens.operator.clone()),
        ("admin", o.tokens.admin.clone()),
    ];
    let rank = |r: &str| {
        ["viewer", "operator", "admin"]
            .iter()
            .position(|x| *x == r)
            .unwrap()
    };
    for (method, path, least) in ROUTES {
        // Unknown names and ids: an authorised call reaches the handler and gets its 404
        // (nothing is crashed or changed); without the role it is refused before.
        let concrete = path
            .replace("{name}", "no-such-actor")
            .replace("{key}", "no-such-job")
            .replace("{once_key}", "no-such-key")
            .replace("{name}", "no-such-name")
            .replace("{id}", "00000000-0000-0000-0000-000000000000");
        let url = o.url(&concrete);
        let body = matches!(*method, "POST" | "PATCH" | "PUT").then_some("{}");
        let none = request(method, &url, None, &[], body);
        assert_eq!(none.status, 401, "{method} {path} without a token");
        assert_eq!(none.json()["error"]["code"], "unauthorized");
        let wrong = request(method, &url, Some("ovs_not_a_token"), &[], body);
        assert_eq!(wrong.status, 401, "{method} {path} with a wrong token");
        for (role, token) in &tokens {
            let a = request(method, &url, Some(token), &[], body);
            if rank(role) < rank(least) {
                assert_eq!(a.status, 403, "{method} {path} as {role}: {}", a.text);
                assert_eq!(a.json()["error"]["code"], "forbidden");
            } else {
                // A route with a name or id in it answers 404 for the unknown one (never
                // 200); one without answers 200. 422 for an empty body that needs fields.
                let expected: &[u16] = if concrete != *path {
                    &[404, 422]
                } else {
                    &[200, 422]
                };
                assert!(
                    expected.contains(&a.status),
                    "{method} {path} as {role}: {} {}",
                    a.status,
                    a.text
                );
                if a.status == 404 {
                    assert!(concrete != *path, "{path} answered 404");
                }
                if a.status == 422 {
                    assert!(
                        [
                            ("POST", "/api/v1/jobs"),
                            ("POST", "/api/v1/notifications/test"),
                            ("POST", "/api/v1/schedules/preview"),
                            ("PUT", "/api/v1/quotas/{name}"),
                        ]
                        .contains(&(*method, *path)),
                        "{method} {path}: 422"
                    );
                }
            }
        }
    }
    for (method, path) in PUBLIC {
        let a = request(method, &o.url(path), None, &[], None);
        assert_eq!(a.status, 200, "{method} {path} is public");
    }
}

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

#[test]
fn flags_come_from_config_and_env() {
    let db = TestDb::new();
    let (mut spawn, tmp) = Spawn::with_db(&db);
    spawn
        .env
        .push(("ANTI_DETECTION_ENABLED".into(), "false".into()));
    spawn
        .env
        .push(("OVERSEER__FLAGS__NOTIFICATIONS".into(), "false".into()));
    let o = spawn.start_with_tmp(Some(tmp));
    let flags = o.get("/api/v1/flags", Some(&o.tokens.viewer)).json();
    let shown = |name: &str| {
        let f = &flags[name];
        (
            f["enabled"].as_bool().unwrap(),
            f["source"].as_str().unwrap().to_string(),
            f["configured_from"].as_str().map(str::to_string),
        )
    };
    assert_eq!(
        shown("anti_detection"),
        (false, "env".into(), Some("ANTI_DETECTION_ENABLED".into())),
        "{flags}"
    );
    assert_eq!(
        shown("notifications"),
        (
            false,
            "env".into(),
            Some("OVERSEER__FLAGS__NOTIFICATIONS".into())
        )
    );
    assert_eq!(shown("zombie_detection"), (true, "default".into(), None));
    assert_eq!(flags["quota_enforcement"]["percent"], 100);
    assert_eq!(flags["anti_detection"]["rollout_by"], "profile");
    o.logs
        .wait_json("startup log naming the flag", Duration::from_secs(5), |v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("anti_detection is off"))
        });
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

fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// U+0000 cannot be stored by PostgreSQL: anywhere in a body, a query filter or a path key it
/// is refused at the boundary with a JSON 4xx (422 naming the field for bodies, 400 for the
/// query and the path), never a 500. Refusals come in order: 401, 403, then the input.
#[test]
fn nul_anywhere_in_the_input_is_a_4xx_never_a_500() {
    let db = TestDb::new();
    let (spawn, tmp) = Spawn::with_db(&db);
    let o = spawn
        .toml(
            "[[quotas]]\nname = \"q\"\nlimits = { day = 5 }\n\
             [[jobs]]\nname = \"existing\"\nkind = \"noop\"\nschedule = { every = \"1h\" }",
        )
        .start_with_tmp(Some(tmp));
    o.wait_ready(Duration::from_secs(30));
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
    let (spawn, tmp) = Spawn::with_db(&db);
    let o = spawn.start_with_tmp(Some(tmp));
    o.wait_ready(Duration::from_secs(30));
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

/// Where `scripts/test` installs schemathesis (a venv under `target/`), or
/// `OVERSEER_SCHEMATHESIS`.
fn schemathesis() -> std::path::PathBuf {
    let path = std::env::var_os("OVERSEER_SCHEMATHESIS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py/bin/schemathesis")
        });
    assert!(
        path.exists(),
        "{} is missing: scripts/test installs schemathesis from PyPI",
        path.display()
    );
    path
}

/// schemathesis against a running overseer (scheduler off, so nothing it creates runs):
/// generated and mutated requests for every operation, with a fixed seed and a bounded
/// number of cases. Fails on any 5xx, an undocumented status, a wrong content type or a
/// response that does not match its schema.
#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let st = schemathesis();
    let db = TestDb::new();
    let (spawn, tmp) = Spawn::with_db(&db);
    let o = spawn
        .toml(
            "[scheduler]\nenabled = false\n\
             [[quotas]]\nname = \"q\"\nlimits = { day = 1000000 }\n\
             [[jobs]]\nname = \"existing\"\nkind = \"noop\"\nschedule = { every = \"1h\" }",
        )
        .start_with_tmp(Some(tmp));
    o.wait_ready(Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    // Names that exist, so that generated requests also reach past the 404s.
    std::fs::write(
        dir.path().join("schemathesis.toml"),
        "[parameters]\nkey = \"existing\"\nname = \"q\"\n",
    )
    .unwrap();
    let doc = dir.path().join("openapi.json");
    std::fs::write(&doc, o.get("/api/v1/openapi.json", o.admin()).text).unwrap();
    // Fixed by default so CI is reproducible; set both to search further.
    let examples = env_num("OVERSEER_SCHEMATHESIS_EXAMPLES", 150).to_string();
    let seed = env_num("OVERSEER_SCHEMATHESIS_SEED", 20261201).to_string();
    let mut child = std::process::Command::new(&st)
        .arg("run")
        .arg(&doc)
        .args(["--url", &format!("http://{}", o.addr)])
        .args(["-H", &format!("Authorization: Bearer {}", o.tokens.admin)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &examples])
        .args(["--seed", &seed, "--generation-database", "none"])
        .args(["--workers", "2", "--request-timeout", "10", "--no-color"])
        .arg("--report-dir")
        .arg(dir.path())
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start schemathesis");
    let out = {
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::BufReader::new(stdout), &mut s).ok();
            s
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(600);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("schemathesis ran past 600 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let text = reader.join().unwrap();
        (status, text)
    };
    println!("{}", out.1);
    assert!(out.0.success(), "schemathesis found problems:\n{}", out.1);
    assert!(
        !o.logs.text().contains("\"status\":500"),
        "a 500 was logged"
    );
}

/// `Idempotency-Key` on job creation: a retried identical request gets the first answer
/// (marked replayed), the same key with another body is a 409, and one job exists.
#[test]
fn job_creation_with_an_idempotency_key_happens_once() {
    let db = TestDb::new();
    let (spawn, tmp) = Spawn::with_db(&db);
    let o = spawn
        .toml("[scheduler]\nenabled = false")
        .start_with_tmp(Some(tmp));
    o.wait_ready(Duration::from_secs(30));
    let post = |body: &str| {
        let res = ureq::post(&o.url("/api/v1/jobs"))
            .set("Authorization", &format!("Bearer {}", o.tokens.admin))
            .set("Content-Type", "application/json")
            .set("Idempotency-Key", "create-once-1")
            .send_string(body);
        let r = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        let replayed = r.header("idempotency-replayed").map(str::to_string);
        (r.status(), replayed, r.into_string().unwrap())
    };
    let body = r#"{"name": "once", "kind": "noop", "schedule": {"every": "1h"}}"#;
    let (status, replayed, first) = post(body);
    assert_eq!((status, replayed.as_deref()), (201, None), "{first}");
    let (status, replayed, again) = post(body);
    assert_eq!(
        (status, replayed.as_deref()),
        (201, Some("true")),
        "{again}"
    );
    let id = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap()["id"].clone();
    assert_eq!(id(&first), id(&again));
    let (status, _, other) =
        post(r#"{"name": "other", "kind": "noop", "schedule": {"every": "1h"}}"#);
    assert_eq!(status, 409, "{other}");
    let jobs = o.get("/api/v1/jobs", o.admin()).json();
    assert_eq!(jobs["items"].as_array().unwrap().len(), 1, "{jobs}");
}

/// The schedule preview the dashboard shows: the next fires in the schedule's timezone,
/// across a daylight-saving change; a bad schedule is a 422 at its field.
#[test]
fn schedule_previews_follow_the_timezone_across_dst() {
    let db = TestDb::new();
    let (spawn, tmp) = Spawn::with_db(&db);
    let o = spawn.start_with_tmp(Some(tmp));
    o.wait_ready(Duration::from_secs(30));
    let body = serde_json::json!({"schedule": {"cron": "0 3 * * 0", "timezone": "Europe/Berlin"}, "count": 60});
    let a = o.post(
        "/api/v1/schedules/preview",
        Some(&o.tokens.viewer),
        Some(&body.to_string()),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(v["timezone"], "Europe/Berlin");
    let fires = v["fires"].as_array().unwrap();
    assert_eq!(fires.len(), 60);
    // Every fire is 03:00 on a Sunday in Berlin, whether the offset is +01:00 or +02:00.
    let mut offsets = std::collections::BTreeSet::new();
    for f in fires {
        let local = chrono::DateTime::parse_from_rfc3339(f["local"].as_str().unwrap()).unwrap();
        assert_eq!(local.format("%H:%M %a").to_string(), "03:00 Sun", "{f}");
        let at = chrono::DateTime::parse_from_rfc3339(f["at"].as_str().unwrap()).unwrap();
        assert_eq!(at, local, "the same instant");
        offsets.insert(local.offset().local_minus_utc());
    }
    assert_eq!(
        offsets.into_iter().collect::<Vec<_>>(),
        [3600, 7200],
        "winter and summer time both seen"
    );
    let bad = o.post(
        "/api/v1/schedules/preview",
        Some(&o.tokens.viewer),
        Some(r#"{"schedule": {"cron": "61 * * * *"}}"#),
    );
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.json()["error"]["fields"][0]["path"], "schedule.cron");
}

#[test]
fn a_flood_from_one_token_is_limited_and_another_token_is_not() {
    let db = TestDb::new();
    let (spawn, tmp) = Spawn::with_db(&db);
    let o = spawn
        .toml(
            "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n\
             [server.rate_limit]\nrate = 2\nburst = 10\nscripts_rate = 2\nscripts_burst = 30\n\
             anonymous_rate = 1\nanonymous_burst = 5\n",
        )
        .start_with_tmp(Some(tmp));
    o.wait_ready(Duration::from_secs(30));
    // The operator floods: its burst passes, then 429 with Retry-After and the standard body.
    let answers: Vec<Answer> = (0..25)
        .map(|_| o.get("/api/v1/jobs", Some(&o.tokens.operator)))
        .collect();
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let limited: Vec<&Answer> = answers.iter().filter(|a| a.status == 429).collect();
    assert!(
        (10..=13).contains(&ok),
        "the burst (10) and what refilled meanwhile: {ok}"
    );
    assert_eq!(ok + limited.len(), 25);
    let one = limited[0];
    assert_eq!(one.json()["error"]["code"], "rate_limited", "{}", one.text);
    assert!(one.json()["error"]["request_id"].is_string());
    let secs: u64 = one.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=2).contains(&secs), "Retry-After: {secs}");
    // Another token is not affected, nor the scripts' budget of the same token.
    assert_eq!(o.get("/api/v1/jobs", Some(&o.tokens.viewer)).status, 200);
    let quota = o.put(
        "/api/v1/quotas/flood",
        o.admin(),
        &serde_json::json!({"limits": {"day": 1000}}).to_string(),
    );
    assert!(quota.status == 200 || quota.status == 201, "{}", quota.text);
    for _ in 0..20 {
        let a = o.post(
            "/api/v1/quotas/flood/consume",
            Some(&o.tokens.operator),
            Some(r#"{"cost": 1}"#),
        );
        assert_eq!(a.status, 200, "{}", a.text);
    }
    // The flooding token gets through again once its bucket refilled.
    let again = wait_for(
        "the operator's bucket refilled",
        Duration::from_secs(10),
        || {
            let a = o.get("/api/v1/jobs", Some(&o.tokens.operator));
            (a.status == 200).then_some(a)
        },
    );
    assert_eq!(again.status, 200);
    // Guessing tokens counts against the address: 401 first, then 429.
    let guesses: Vec<u16> = (0..8)
        .map(|i| o.get("/api/v1/jobs", Some(&format!("ovs_wrong{i}"))).status)
        .collect();
    assert_eq!(&guesses[..5], &[401; 5], "{guesses:?}");
    assert!(guesses[5..].contains(&429), "{guesses:?}");
    // Behind a trusted proxy (127.0.0.1 here) each client has a budget of its own: the one
    // the proxy names in X-Forwarded-For is not the one that was guessing.
    let behind = |client: &str| {
        request(
            "GET",
            &o.url("/api/v1/jobs"),
            Some("ovs_wrong"),
            &[("X-Forwarded-For", client)],
            None,
        )
        .status
    };
    assert_eq!(behind("203.0.113.7"), 401, "a fresh client's first guess");
    let flood: Vec<u16> = (0..8).map(|_| behind("203.0.113.8")).collect();
    assert!(flood.contains(&429), "{flood:?}");
    assert_eq!(
        behind("203.0.113.9"),
        401,
        "another client is not limited by it"
    );
    let m = o.get("/metrics", None).text;
    assert!(
        m.lines()
            .any(|l| l.starts_with("overseer_api_rate_limit_checks_total")
                && l.contains("budget=\"token\"")
                && l.contains("outcome=\"limited\"")),
        "{m}"
    );
}

/// Every mutation leaves an audit row written with the change: who (token name and role,
/// never the secret), what, on which target, the diff with secrets redacted, the request id
/// and the source; refusals (403, 409, 422, 429) are recorded with their reason; the
/// listing filters and pages. The route table and the audited actions agree.
#[test]
fn every_mutation_is_audited_and_refusals_carry_their_reason() {
    use overseer::api::audit::{ACTIONS, NOT_AUDITED};
    let db = TestDb::new();
    let (spawn, tmp) = Spawn::with_db(&db);
    let o = spawn
        .toml("[scheduler]\nenabled = false")
        .start_with_tmp(Some(tmp));
    o.wait_ready(Duration::from_secs(30));

    // Every write method of the route table is audited or said not to be, and every
    // audited action names a real route.
    let doc = o.get("/api/v1/openapi.json", o.admin()).json();
    let documented = documented_routes(&doc);
    for (method, path) in &documented {
        if method == "GET" {
            continue;
        }
        let audited = ACTIONS.iter().any(|(m, p, _)| m == method && p == path);
        let exempt = NOT_AUDITED.iter().any(|(m, p, _)| m == method && p == path);
        assert!(
            audited != exempt,
            "{method} {path}: audited {audited}, exempt {exempt}"
        );
    }
    for (m, p, a) in ACTIONS {
        assert!(
            p.starts_with("/ui/") || documented.contains(&(m.to_string(), p.to_string())),
            "{a}: {m} {p} is not a route"
        );
    }

    let audit = |query: &str| -> Vec<serde_json::Value> {
        let page = o.get(&format!("/api/v1/audit?limit=500{query}"), o.admin());
        assert_eq!(page.status, 200, "{}", page.text);
        page.json()["items"].as_array().unwrap().clone()
    };
    let op = Some(o.tokens.operator.as_str());
    let secret_header = "Bearer audit-secret-value-42";
    let body = serde_json::json!({
        "name": "audited", "kind": "http", "schedule": {"every": "1h"},
        "payload": {"url": "http://127.0.0.1:9/", "headers": {"Authorization": secret_header}},
        "policy": {"max_retries": 1},
    });
    let created = o.post("/api/v1/jobs", op, Some(&body.to_string()));
    assert_eq!(created.status, 201, "{}", created.text);
    let rows = audit("&action=job.create");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["actor"], "test-operator");
    assert_eq!(row["role"], "operator");
    assert_eq!(row["target"], "job/audited");
    assert_eq!(row["outcome"], "ok");
    assert_eq!(row["status"], 201);
    assert_eq!(row["request_id"].as_str(), created.request_id.as_deref());
    assert_eq!(row["source"], "127.0.0.1");
    assert_eq!(row["diff"]["kind"], "http");
    assert_eq!(
        row["diff"]["payload"]["headers"]["Authorization"],
        "[redacted]"
    );

    let patched = o.patch(
        "/api/v1/jobs/audited",
        op,
        r#"{"policy": {"max_retries": 4}}"#,
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    let rows = audit("&action=job.update");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0]["diff"]["policy.max_retries"],
        serde_json::json!({"from": 1, "to": 4}),
        "{}",
        rows[0]
    );
    assert_eq!(o.post("/api/v1/jobs/audited/pause", op, None).status, 200);
    let rows = audit("&action=job.pause");
    assert_eq!(
        rows[0]["diff"]["state"],
        serde_json::json!({"from": "active", "to": "paused"})
    );

    // Refusals: a viewer's pause (403), a duplicate name (409), a bad body (422).
    let v = Some(o.tokens.viewer.as_str());
    assert_eq!(o.post("/api/v1/jobs/audited/resume", v, None).status, 403);
    assert_eq!(
        o.post("/api/v1/jobs", op, Some(&body.to_string())).status,
        409
    );
    let bad = o.post("/api/v1/jobs", op, Some(r#"{"name": "x", "kind": "nope"}"#));
    assert_eq!(bad.status, 422);
    let refused = audit("&outcome=refused");
    let reason = |action: &str, status: u16| -> String {
        refused
            .iter()
            .find(|r| r["action"] == action && r["status"] == status)
            .unwrap_or_else(|| panic!("no refused {action} {status}: {refused:?}"))["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(reason("job.resume", 403).starts_with("forbidden:"));
    assert!(reason("job.create", 409).starts_with("conflict:"));
    assert!(reason("job.create", 422).contains("kind"));
    let by_viewer = audit("&actor=test-viewer");
    assert_eq!(by_viewer.len(), 1, "{by_viewer:?}");
    assert_eq!(by_viewer[0]["target"], "job/audited");
    // The failed duplicate left no second success.
    assert_eq!(audit("&action=job.create&outcome=ok").len(), 1);

    // Quotas: defined, consumed (admitted, then refused by the window) — each call a row.
    let put = o.put("/api/v1/quotas/posts", op, r#"{"limits": {"hour": 1}}"#);
    assert!(put.status == 201, "{}", put.text);
    assert_eq!(o.post("/api/v1/quotas/posts/consume", op, None).status, 200);
    assert_eq!(o.post("/api/v1/quotas/posts/consume", op, None).status, 429);
    let consumed = audit("&action=quota.consume");
    assert_eq!(consumed.len(), 2, "{consumed:?}");
    assert_eq!(consumed[0]["outcome"], "refused");
    assert_eq!(consumed[0]["status"], 429);
    assert!(consumed[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("quota_exhausted"));
    assert_eq!(consumed[1]["outcome"], "ok");
    assert_eq!(consumed[1]["diff"]["admitted"], true);
    assert_eq!(audit("&target=quota/").len(), 3);
    assert_eq!(audit("&action=quota.").len(), 3);

    // Pages: newest first, every row once.
    let all = audit("");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/v1/audit?limit=3&cursor={c}"),
            None => "/api/v1/audit?limit=3".to_string(),
        };
        let page = o.get(&q, o.admin()).json();
        for r in page["items"].as_array().unwrap() {
            seen.push(r["id"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let ids: Vec<i64> = all.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(seen, ids);
    assert!(ids.windows(2).all(|w| w[0] > w[1]));
    let since = o.get("/api/v1/audit?outcome=maybe", o.admin());
    assert_eq!(since.status, 422);

    // The secret never reached the table (or the logs).
    let mut c = db.conn();
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let n: N = diesel::sql_query("SELECT count(*) AS n FROM audit_log WHERE diff::text LIKE '%audit-secret-value%' OR reason LIKE '%audit-secret-value%'")
        .get_result(&mut c)
        .unwrap();
    assert_eq!(n.n, 0);
    assert!(!o.logs.text().contains(&o.tokens.operator));
}

/// A flag overridden through one node holds on a second node within seconds and changes
/// what it does (quota enforcement off: over-limit use admitted), survives the second
/// node's restart, and `DELETE` returns both to the configured value; refusals name the
/// field; every change is audited.
#[test]
fn a_runtime_flag_override_reaches_every_node_and_survives_a_restart() {
    let db = TestDb::new();
    let start = || {
        let (spawn, tmp) = Spawn::with_db(&db);
        let o = spawn
            .toml("[[quotas]]\nname = \"posts\"\nlimits = { hour = 1 }")
            .start_with_tmp(Some(tmp));
        o.wait_ready(Duration::from_secs(30));
        o
    };
    let a = start();
    let mut b = start();
    let flag = |o: &Overseer, name: &str| o.get("/api/v1/flags", o.admin()).json()[name].clone();
    let consume = |o: &Overseer| {
        o.post("/api/v1/quotas/posts/consume", o.admin(), None)
            .status
    };
    assert_eq!(consume(&b), 200);
    assert_eq!(consume(&b), 429, "enforced as configured");

    // Refusals: unknown flag, bad setting, a viewer.
    assert_eq!(
        a.put(
            "/api/v1/flags/warp_drive",
            a.admin(),
            r#"{"enabled": true}"#
        )
        .status,
        404
    );
    let bad = a.put(
        "/api/v1/flags/zombie_detection",
        a.admin(),
        r#"{"percent": 40}"#,
    );
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()["error"]["fields"][0]["path"], "percent");
    let viewer = a.put(
        "/api/v1/flags/quota_enforcement",
        Some(&a.tokens.viewer),
        r#"{"enabled": false}"#,
    );
    assert_eq!(viewer.status, 403);

    let set = a.put(
        "/api/v1/flags/quota_enforcement",
        a.admin(),
        r#"{"enabled": false}"#,
    );
    assert_eq!(set.status, 200, "{}", set.text);
    let v = set.json();
    assert_eq!(
        (v["enabled"].as_bool(), v["source"].as_str()),
        (Some(false), Some("runtime"))
    );
    assert_eq!(v["set_by"], "test-admin");
    assert_eq!(v["configured"], true);
    // Set again: the change replaces the override just set (its audit row says so).
    let again = a.put(
        "/api/v1/flags/quota_enforcement",
        a.admin(),
        r#"{"enabled": false}"#,
    );
    assert_eq!(again.status, 200, "{}", again.text);
    wait_for("node b sees the override", Duration::from_secs(10), || {
        (flag(&b, "quota_enforcement")["source"] == "runtime").then_some(())
    });
    assert_eq!(
        consume(&b),
        200,
        "not enforced any more: admitted over the limit"
    );

    // A restart of b keeps it (read before b is ready).
    b.signal(nix::sys::signal::Signal::SIGTERM);
    b.wait_exit(Duration::from_secs(30));
    let b = start();
    let f = flag(&b, "quota_enforcement");
    assert_eq!(
        (f["enabled"].as_bool(), f["source"].as_str()),
        (Some(false), Some("runtime")),
        "{f}"
    );
    assert_eq!(consume(&b), 200);

    // Back to the configuration, everywhere.
    let reset = request(
        "DELETE",
        &a.url("/api/v1/flags/quota_enforcement"),
        a.admin(),
        &[],
        None,
    );
    assert_eq!(reset.status, 200, "{}", reset.text);
    assert_eq!(reset.json()["source"], "default");
    let again = request(
        "DELETE",
        &a.url("/api/v1/flags/quota_enforcement"),
        a.admin(),
        &[],
        None,
    );
    assert_eq!(again.status, 404);
    wait_for(
        "node b is back to the configured value",
        Duration::from_secs(10),
        || (flag(&b, "quota_enforcement")["source"] == "default").then_some(()),
    );
    assert_eq!(consume(&b), 429);

    let audit = a.get("/api/v1/audit?target=flag/", a.admin()).json();
    let actions: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().into(),
                r["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    for expected in [
        ("flag.set", "ok"),
        ("flag.reset", "ok"),
        ("flag.set", "refused"),
        ("flag.reset", "refused"),
    ] {
        assert!(
            actions.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {actions:?}"
        );
    }
    let sets: Vec<&serde_json::Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "flag.set" && r["outcome"] == "ok")
        .collect();
    assert_eq!(sets.len(), 2, "{sets:?}");
    // Newest first: the second set replaced the first's override.
    assert_eq!(
        sets[0]["diff"]["override"]["from"]["percent"], 0,
        "{}",
        sets[0]
    );
    let set_row = sets[1];
    assert_eq!(
        set_row["diff"]["percent"],
        serde_json::json!({"from": 100, "to": 0})
    );
    assert!(set_row["diff"]["override"]["from"].is_null(), "{set_row}");
    // The reset's row names the override it removed (returned by the DELETE itself).
    let reset_row = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "flag.reset" && r["outcome"] == "ok")
        .unwrap();
    assert_eq!(
        reset_row["diff"]["percent"],
        serde_json::json!({"from": 0, "to": 100}),
        "{reset_row}"
    );
    assert!(
        !reset_row["diff"]["override"]["from"].is_null(),
        "{reset_row}"
    );
}
