//! The API's contract with its document: every route in the OpenAPI document with the
//! least role it needs (the auth matrix), and schemathesis against a live server.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::*;
use crate::*;

#[test]
fn openapi_document_covers_every_route_and_auth_matrix_holds() {
    let db = TestDb::new();
    let o = TestApp::start(&db, "[debug]\nfault_injection = true");

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
                            ("POST", "/api/v1/browser/live"),
                            ("POST", "/api/v1/browser/live/{id}/input"),
                            ("POST", "/api/v1/runs/{id}/hand-over"),
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
    let o = TestApp::start(
        &db,
        "[scheduler]\nenabled = false\n\
             [[quotas]]\nname = \"q\"\nlimits = { day = 1000000 }\n\
             [[jobs]]\nname = \"existing\"\nkind = \"noop\"\nschedule = { every = \"1h\" }",
    );
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
        // Opening a live view drives a real browser to the generated address: traffic that
        // must not leave loopback (tests/live.rs covers the route).
        .args(["--exclude-path", "/api/v1/browser/live"])
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
