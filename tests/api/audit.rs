//! The audit log: every mutation audited, refusals with their reason.

use crate::common::*;
use crate::*;

/// Every mutation leaves an audit row written with the change: who (token name and role,
/// never the secret), what, on which target, the diff with secrets redacted, the request id
/// and the source; refusals (403, 409, 422, 429) are recorded with their reason; the
/// listing filters and pages. The route table and the audited actions agree.
#[test]
fn every_mutation_is_audited_and_refusals_carry_their_reason() {
    use overseer::api::audit::{ACTIONS, NOT_AUDITED};
    let db = TestDb::new();
    let o = TestApp::start(&db, "[scheduler]\nenabled = false");

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
