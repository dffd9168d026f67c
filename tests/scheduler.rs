//! The scheduler end to end: the jobs API and its validation, execution of `noop` and
//! `http` jobs, retries and dead letters, misfires and catch-up, timeouts, overlap,
//! declarative jobs, restarts, and exactly-once across processes.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::sink::Sink;
use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

fn op(o: &TestApp) -> Option<&str> {
    Some(o.tokens.operator.as_str())
}

fn create(o: &TestApp, body: Value) -> Value {
    o.create_job_as(op(o), &body)
}

fn runs_of(o: &TestApp, job: &str) -> Vec<Value> {
    o.runs(job)
}

fn wait_runs(o: &TestApp, job: &str, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    wait_for(what, T, || {
        let runs = runs_of(o, job);
        pred(&runs).then_some(runs)
    })
}

fn count(runs: &[Value], state: &str) -> usize {
    runs.iter().filter(|r| r["state"] == state).count()
}

fn ago(secs: i64) -> String {
    (Utc::now() - chrono::Duration::seconds(secs)).to_rfc3339()
}

#[test]
fn the_jobs_api_validates_every_field_and_never_answers_500() {
    let db = TestDb::new();
    let o = TestApp::start(&db, "");
    let cases: Vec<(Value, &[&str])> = vec![
        (
            json!({"name": "a", "kind": "noop", "schedule": {"cron": "0 25 * * *"}}),
            &["schedule.cron"],
        ),
        (
            json!({"name": "a", "kind": "noop", "schedule": {"cron": "0 9 * * *", "timezone": "Europe/Nowhere"}}),
            &["schedule.timezone"],
        ),
        (
            json!({"name": "a", "kind": "noop", "schedule": {"every": "999ms"}}),
            &["schedule.every"],
        ),
        (
            json!({"name": "a", "kind": "fax", "schedule": {"every": "1m"}}),
            &["kind"],
        ),
        (
            json!({"name": "a", "kind": "http", "payload": {"url": 42}, "schedule": {"every": "1m"}}),
            &["payload.url"],
        ),
        (
            json!({"name": "a", "kind": "noop", "schedule": {"every": "1m"}, "metadata": {"x": "y".repeat(9000)}}),
            &["metadata"],
        ),
        (json!({"name": "A!", "kind": "noop"}), &["name", "schedule"]),
        (
            json!({"name": "a", "kind": "noop", "schedule": {"at": "soon"}, "policy": {"overlap": "maybe", "max_retries": -1}}),
            &["schedule.at", "policy.overlap", "policy.max_retries"],
        ),
        (json!([1, 2, 3]), &[""]),
    ];
    for (body, paths) in cases {
        let a = o.post("/api/v1/jobs", op(&o), Some(&body.to_string()));
        assert_eq!(a.status, 422, "{body}: {}", a.text);
        let err = a.json();
        assert_eq!(err["error"]["code"], "validation_failed");
        let got: Vec<String> = err["error"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect();
        for p in paths {
            assert!(got.iter().any(|g| g == p), "{body}: {p} not in {got:?}");
        }
    }
    // Malformed JSON is a 400, a wrong content type 415, never a 500.
    let a = o.post("/api/v1/jobs", op(&o), Some("{not json"));
    assert_eq!(a.status, 400, "{}", a.text);
    let a = request(
        "POST",
        &o.url("/api/v1/jobs"),
        op(&o),
        &[("Content-Type", "text/plain")],
        None,
    );
    assert!(a.status == 415 || a.status == 400, "{}", a.text);

    // Duplicates: 409. Idempotency-Key: the retry gets the first answer, once.
    let body = json!({"name": "report", "kind": "noop", "schedule": {"cron": "0 9 * * MON-FRI", "timezone": "Europe/Berlin"}, "tags": ["daily"]});
    let first = request(
        "POST",
        &o.url("/api/v1/jobs"),
        op(&o),
        &[("Idempotency-Key", "k-1")],
        Some(&body.to_string()),
    );
    assert_eq!(first.status, 201);
    let again = request(
        "POST",
        &o.url("/api/v1/jobs"),
        op(&o),
        &[("Idempotency-Key", "k-1")],
        Some(&body.to_string()),
    );
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.json()["id"], first.json()["id"]);
    let other = json!({"name": "report2", "kind": "noop", "schedule": {"every": "1h"}});
    let reused = request(
        "POST",
        &o.url("/api/v1/jobs"),
        op(&o),
        &[("Idempotency-Key", "k-1")],
        Some(&other.to_string()),
    );
    assert_eq!(reused.status, 409, "{}", reused.text);
    let dup = o.post("/api/v1/jobs", op(&o), Some(&body.to_string()));
    assert_eq!(dup.status, 409);
    assert_eq!(dup.json()["error"]["code"], "conflict");

    // Reads by name and by id; unknown → 404.
    let id = first.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        o.get("/api/v1/jobs/report", op(&o)).json()["id"],
        id.as_str()
    );
    assert_eq!(
        o.get(&format!("/api/v1/jobs/{id}"), op(&o)).json()["name"],
        "report"
    );
    assert_eq!(o.get("/api/v1/jobs/nope", op(&o)).status, 404);

    // Pagination and filters.
    for i in 0..25 {
        create(
            &o,
            json!({"name": format!("bulk-{i:02}"), "kind": "noop", "schedule": {"every": "1h"}, "tags": [if i % 2 == 0 { "even" } else { "odd" }], "paused": true}),
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/jobs?name_prefix=bulk-&limit=10&cursor={c}"),
            None => "/api/v1/jobs?name_prefix=bulk-&limit=10".to_string(),
        };
        let page = o.get(&path, op(&o)).json();
        for j in page["items"].as_array().unwrap() {
            seen.push(j["name"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    let evens = o
        .get("/api/v1/jobs?tag=even&state=paused&limit=1000", op(&o))
        .json();
    assert_eq!(evens["items"].as_array().unwrap().len(), 13);
    assert_eq!(o.get("/api/v1/jobs?limit=1001", op(&o)).status, 422);
    assert_eq!(o.get("/api/v1/jobs?state=sleeping", op(&o)).status, 422);
    assert_eq!(o.get("/api/v1/jobs?cursor=zz", op(&o)).status, 422);
    assert_eq!(o.get("/api/v1/runs?state=sleeping", op(&o)).status, 422);
    assert_eq!(o.get("/api/v1/runs?since=yesterday", op(&o)).status, 422);
    assert_eq!(o.get("/api/v1/runs/not-a-uuid", op(&o)).status, 404);

    // PATCH merges the policy; name and kind are fixed.
    let a = request(
        "PATCH",
        &o.url("/api/v1/jobs/report"),
        op(&o),
        &[],
        Some(r#"{"policy": {"priority": 9}}"#),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["priority"], 9);
    let a = request(
        "PATCH",
        &o.url("/api/v1/jobs/report"),
        op(&o),
        &[],
        Some(r#"{"kind": "http"}"#),
    );
    assert_eq!(a.status, 422);
    // Pause/resume state machine, cancel.
    assert_eq!(
        o.post("/api/v1/jobs/report/resume", op(&o), None).status,
        409
    );
    assert_eq!(
        o.post("/api/v1/jobs/report/pause", op(&o), None).json()["state"],
        "paused"
    );
    assert_eq!(
        o.post("/api/v1/jobs/report/resume", op(&o), None).json()["state"],
        "active"
    );
    let a = request("DELETE", &o.url("/api/v1/jobs/report"), op(&o), &[], None);
    assert_eq!(a.json()["state"], "cancelled");
    assert_eq!(
        o.post("/api/v1/jobs/report/trigger", op(&o), None).status,
        409
    );
    assert!(!o.logs.text().contains("\"status\":500"));
}

#[test]
fn http_jobs_run_retry_and_end_as_dead_letters_that_can_be_requeued() {
    let db = TestDb::new();
    let o = TestApp::start(&db, "");
    let sink = Sink::start();
    let job = create(
        &o,
        json!({
            "name": "status-check", "kind": "http",
            "payload": {"url": sink.url, "headers": {"x-probe": "1"}},
            "schedule": {"at": Utc::now().to_rfc3339()},
        }),
    );
    let runs = wait_runs(&o, "status-check", "a succeeded run", |r| {
        count(r, "succeeded") == 1
    });
    let run = &runs[0];
    assert_eq!(run["output"]["status"], 200);
    assert_eq!(run["output"]["body_excerpt"], "ok");
    let key = format!(
        "{}:{}",
        job["id"].as_str().unwrap(),
        run["fire_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap()
            .to_rfc3339()
    );
    assert_eq!(
        sink.counts().get(&key),
        Some(&1),
        "idempotency key {key} in {:?}",
        sink.counts()
    );
    assert_eq!(
        o.get("/api/v1/jobs/status-check", op(&o)).json()["state"],
        "completed"
    );

    // Failing: 2 retries 1 s apart, then a dead letter; events in the logs.
    sink.respond_with(503);
    create(
        &o,
        json!({
            "name": "flaky", "kind": "http", "payload": {"url": sink.url},
            "schedule": {"at": Utc::now().to_rfc3339()},
            "policy": {"max_retries": 2, "retry_delays": ["1s"]},
        }),
    );
    let runs = wait_runs(&o, "flaky", "three failed attempts", |r| {
        count(r, "failed") == 3
    });
    let mut attempts: Vec<i64> = runs
        .iter()
        .map(|r| r["attempt"].as_i64().unwrap())
        .collect();
    attempts.sort();
    assert_eq!(attempts, [1, 2, 3]);
    assert!(runs.iter().all(|r| r["error_kind"] == "unexpected_status"));
    let by_attempt: HashMap<i64, &Value> = runs
        .iter()
        .map(|r| (r["attempt"].as_i64().unwrap(), r))
        .collect();
    let t = |a: i64, f: &str| {
        by_attempt[&a][f]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap()
    };
    assert!(
        t(2, "due_at") - t(1, "finished_at") >= chrono::Duration::milliseconds(990),
        "retry delay respected"
    );
    assert_eq!(
        t(1, "fire_at"),
        t(3, "fire_at"),
        "retries keep the fire they belong to"
    );
    o.logs.wait_json("job.failed", T, |v| {
        v["event"] == "job.failed" && v["job"] == "flaky"
    });
    o.logs.wait_json("job.retry_scheduled", T, |v| {
        v["event"] == "job.retry_scheduled"
    });
    let dead = o
        .get("/api/v1/runs?job=flaky&state=failed&limit=1", op(&o))
        .json()["items"][0]
        .clone();
    assert_eq!(dead["attempt"], 3, "the newest is listed first");

    // Requeue the dead letter once the receiver is healthy; an older attempt is refused.
    sink.respond_with(200);
    let older = runs.iter().find(|r| r["attempt"] == 1).unwrap();
    let a = o.post(
        &format!("/api/v1/runs/{}/requeue", older["id"].as_str().unwrap()),
        op(&o),
        None,
    );
    assert_eq!(a.status, 409, "{}", a.text);
    let a = o.post(
        &format!("/api/v1/runs/{}/requeue", dead["id"].as_str().unwrap()),
        op(&o),
        None,
    );
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.json()["attempt"], 4);
    wait_runs(&o, "flaky", "the requeued attempt succeeds", |r| {
        count(r, "succeeded") == 1
    });
    let a = o.get(
        &format!("/api/v1/runs/{}", dead["id"].as_str().unwrap()),
        Some(&o.tokens.viewer),
    );
    assert_eq!(a.json()["state"], "failed", "history is kept");
    let metrics = o.get("/metrics", None).text;
    assert!(
        metrics.contains("overseer_runs_finished_total{kind=\"http\",state=\"failed\"} 3"),
        "{metrics}"
    );
}

#[test]
fn misfires_are_recorded_and_caught_up_per_policy() {
    let db = TestDb::new();
    let o = TestApp::start(&db, "");
    // Two minutes late with a 60 s grace: missed, then caught up as attempt 2, now.
    create(
        &o,
        json!({"name": "late", "kind": "noop", "schedule": {"at": ago(120)}}),
    );
    let runs = wait_runs(&o, "late", "missed + caught up", |r| {
        count(r, "missed") == 1 && count(r, "succeeded") == 1
    });
    let missed = runs.iter().find(|r| r["state"] == "missed").unwrap();
    assert_eq!(
        (missed["attempt"].as_i64(), missed["error_kind"].as_str()),
        (Some(1), Some("misfire"))
    );
    let caught = runs.iter().find(|r| r["state"] == "succeeded").unwrap();
    assert_eq!(caught["attempt"], 2);
    o.logs.wait_json("job.missed", T, |v| {
        v["event"] == "job.missed" && v["job"] == "late"
    });

    // Late but inside the grace: it just runs, with its lateness recorded.
    create(
        &o,
        json!({"name": "tardy", "kind": "noop", "schedule": {"at": ago(10)}}),
    );
    let runs = wait_runs(&o, "tardy", "one run", |r| count(r, "succeeded") == 1);
    assert_eq!(runs.len(), 1);
    assert!(
        runs[0]["lateness_ms"].as_i64().unwrap() >= 10_000,
        "{}",
        runs[0]
    );

    // catch_up = skip: recorded, not run.
    create(
        &o,
        json!({"name": "skipper", "kind": "noop", "schedule": {"at": ago(300)}, "policy": {"catch_up": "skip"}}),
    );
    let runs = wait_runs(&o, "skipper", "a miss", |r| count(r, "missed") == 1);
    assert_eq!(runs.len(), 1);

    // No retries left: a miss is a failure.
    create(
        &o,
        json!({"name": "strict", "kind": "noop", "schedule": {"at": ago(300)}, "policy": {"max_retries": 0}}),
    );
    wait_runs(&o, "strict", "a miss", |r| count(r, "missed") == 1);
    o.logs.wait_json("job.failed for the miss", T, |v| {
        v["event"] == "job.failed" && v["job"] == "strict"
    });

    // A recurring job paused through ten fires (its clock moved back by ten minutes, in the
    // table): on resume the misses are one run covering them, and catch_up = latest runs once.
    let job = create(
        &o,
        json!({"name": "minutely", "kind": "noop", "schedule": {"cron": "* * * * *"},
        "policy": {"misfire_grace": "5s"}}),
    );
    assert_eq!(
        o.post("/api/v1/jobs/minutely/pause", op(&o), None).status,
        200
    );
    {
        use diesel::RunQueryDsl;
        diesel::sql_query(format!(
            "UPDATE jobs SET next_fire_at = next_fire_at - interval '10 minutes' WHERE id = '{}'",
            job["id"].as_str().unwrap()
        ))
        .execute(&mut db.conn())
        .unwrap();
    }
    assert_eq!(
        o.post("/api/v1/jobs/minutely/resume", op(&o), None).status,
        200
    );
    let runs = wait_runs(&o, "minutely", "the backlog handled", |r| {
        count(r, "missed") == 1 && count(r, "succeeded") >= 1
    });
    let missed = runs.iter().find(|r| r["state"] == "missed").unwrap();
    assert!(missed["covers"].as_i64().unwrap() >= 9, "{missed}");
    assert_eq!(
        count(&runs, "succeeded"),
        1,
        "one catch-up run for all the misses"
    );
    assert_eq!(
        o.get("/api/v1/jobs/minutely", op(&o)).json()["state"],
        "active"
    );
}

#[test]
fn timeouts_and_overlap_policies() {
    let db = TestDb::new();
    let o = TestApp::start(&db, "");
    create(
        &o,
        json!({"name": "slow", "kind": "noop", "payload": {"sleep_ms": 5000},
        "schedule": {"at": Utc::now().to_rfc3339()},
        "policy": {"timeout": "200ms", "max_retries": 1, "retry_delays": ["1s"]}}),
    );
    let runs = wait_runs(&o, "slow", "two timed-out attempts", |r| {
        count(r, "timed_out") == 2
    });
    assert!(runs.iter().all(|r| r["error_kind"] == "timeout"));
    // Each attempt ended at its timeout: not before, and long before the 5 s it would have run.
    // (The upper margin covers recording results in a batch on a loaded 2-core machine.)
    for r in &runs {
        let ts = |k: &str| {
            chrono::DateTime::parse_from_rfc3339(r[k].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc)
        };
        let ran = (ts("finished_at") - ts("started_at")).to_std().unwrap();
        assert!(
            ran >= Duration::from_millis(200) && ran < Duration::from_millis(1500),
            "attempt {} ran {ran:?} against a 200 ms timeout",
            r["attempt"]
        );
    }

    // A 2.5 s run fired every second.
    let body = |name: &str, overlap: &str| {
        json!({"name": name, "kind": "noop", "payload": {"sleep_ms": 2500},
        "schedule": {"every": "1s"}, "policy": {"overlap": overlap, "max_retries": 0}})
    };
    create(&o, body("ov-skip", "skip"));
    create(&o, body("ov-queue", "queue"));
    create(&o, body("ov-allow", "allow"));
    let skip = wait_runs(&o, "ov-skip", "skips", |r| {
        count(r, "cancelled") >= 2 && count(r, "succeeded") >= 1
    });
    assert!(skip
        .iter()
        .filter(|r| r["state"] == "cancelled")
        .all(|r| r["error_kind"] == "overlap"));
    let parse = |r: &Value, f: &str| r[f].as_str().map(|s| s.parse::<DateTime<Utc>>().unwrap());
    let overlapping = |runs: &[Value]| {
        let spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = runs
            .iter()
            .filter_map(|r| Some((parse(r, "started_at")?, parse(r, "finished_at")?)))
            .collect();
        spans
            .iter()
            .enumerate()
            .any(|(i, a)| spans.iter().skip(i + 1).any(|b| a.0 < b.1 && b.0 < a.1))
    };
    let queue = wait_runs(&o, "ov-queue", "queued runs done", |r| {
        count(r, "succeeded") >= 3
    });
    assert!(!overlapping(&queue), "queue runs one at a time");
    assert_eq!(count(&queue, "cancelled"), 0, "queue skips nothing");
    let allow = wait_runs(&o, "ov-allow", "parallel runs", |r| {
        count(r, "succeeded") >= 3
    });
    assert!(overlapping(&allow), "allow runs alongside");
    for name in ["ov-skip", "ov-queue", "ov-allow"] {
        o.post(&format!("/api/v1/jobs/{name}/pause"), op(&o), None);
    }
}

#[derive(diesel::QueryableByName)]
struct CountRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[test]
fn declarative_jobs_are_upserted_and_paused_when_removed() {
    let db = TestDb::new();
    let tmp = tempfile::tempdir().unwrap();
    let jobs_dir = tmp.path().join("jobs.d");
    std::fs::create_dir_all(&jobs_dir).unwrap();
    std::fs::write(
        jobs_dir.join("10-extra.toml"),
        "[[jobs]]\nname = \"from-dir\"\nkind = \"noop\"\nschedule = { cron = \"0 9 * * *\", timezone = \"America/New_York\" }\n",
    )
    .unwrap();
    let conf = format!(
        "[scheduler]\njobs_dir = \"{}\"\n[[jobs]]\nname = \"hourly-report\"\nkind = \"noop\"\nschedule = {{ cron = \"@hourly\" }}\ntags = [\"ops\"]\n",
        jobs_dir.display()
    );
    let spawn_with = |extra: &str| {
        let mut s = Spawn::with_db(&db).0;
        s.state_dir = tmp.path().join("state");
        s.toml(extra).start()
    };
    let o = spawn_with(&conf);
    o.wait_ready(T);
    let j = o.get("/api/v1/jobs/hourly-report", op(&o)).json();
    assert_eq!(
        (j["source"].as_str(), j["state"].as_str()),
        (Some("config"), Some("active"))
    );
    assert_eq!(
        o.get("/api/v1/jobs/from-dir", op(&o)).json()["schedule"]["timezone"],
        "America/New_York"
    );
    // Written the API's way: an audit row in the job's transaction, by `config`, naming the
    // file and the key it came from.
    let audit = |o: &TestApp, job: &str| -> Vec<Value> {
        let a = o.get(&format!("/api/v1/audit?target=job/{job}"), o.admin());
        assert_eq!(a.status, 200, "{}", a.text);
        a.json()["items"].as_array().unwrap().clone()
    };
    let rows = audit(&o, "hourly-report");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (
            rows[0]["actor"].as_str(),
            rows[0]["action"].as_str(),
            rows[0]["outcome"].as_str()
        ),
        (Some("config"), Some("job.create"), Some("ok")),
        "{rows:?}"
    );
    let source = rows[0]["source"].as_str().unwrap();
    assert!(
        source.contains("test-config.toml") && source.contains("jobs.0"),
        "{source}"
    );
    assert_eq!(rows[0]["diff"]["schedule"]["cron"], "@hourly", "{rows:?}");
    let rows = audit(&o, "from-dir");
    assert!(
        rows[0]["source"]
            .as_str()
            .unwrap()
            .contains("10-extra.toml"),
        "{rows:?}"
    );
    drop(o);

    // Started again unchanged: nothing written, no audit row.
    let o = spawn_with(&conf);
    assert_eq!(audit(&o, "hourly-report").len(), 1);
    drop(o);

    // Changed in place: updated, same id, audited with what changed.
    let conf2 = conf.replace("@hourly", "@daily");
    let o = spawn_with(&conf2);
    let j2 = o.get("/api/v1/jobs/hourly-report", op(&o)).json();
    assert_eq!(j2["id"], j["id"]);
    assert_eq!(j2["schedule"]["cron"], "@daily");
    let rows = audit(&o, "hourly-report");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["action"], "job.update", "{rows:?}");
    assert_eq!(rows[0]["actor"], "config", "{rows:?}");
    assert_eq!(
        rows[0]["diff"]["schedule.cron"],
        json!({"from": "@hourly", "to": "@daily"}),
        "{rows:?}"
    );
    drop(o);

    // Removed: paused, not deleted, with a log line.
    std::fs::remove_file(jobs_dir.join("10-extra.toml")).unwrap();
    let o = spawn_with(&format!(
        "[scheduler]\njobs_dir = \"{}\"\n",
        jobs_dir.display()
    ));
    assert_eq!(
        o.get("/api/v1/jobs/hourly-report", op(&o)).json()["state"],
        "paused"
    );
    assert_eq!(
        o.get("/api/v1/jobs/from-dir", op(&o)).json()["state"],
        "paused"
    );
    o.logs.wait_json("paused log", T, |v| {
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("no longer in the configuration"))
    });
    let rows = audit(&o, "hourly-report");
    assert_eq!(
        (rows[0]["actor"].as_str(), rows[0]["action"].as_str()),
        (Some("config"), Some("job.pause")),
        "{rows:?}"
    );
    drop(o);

    // A declarative job whose reference does not resolve stops start-up, and none of the
    // configuration's jobs is written: one transaction for all of them.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[jobs]]\nname = \"fresh\"\nkind = \"noop\"\nschedule = { every = \"1h\" }\n\
         [[jobs]]\nname = \"greedy\"\nkind = \"noop\"\nschedule = { every = \"1h\" }\n\
         quota = [{ name = \"nope\", cost = 1 }]\n",
    )
    .unwrap();
    let state_2 = tmp.path().join("state-2");
    let (code, _, err) = run_cli(
        &["--config", bad.to_str().unwrap(), "serve"],
        &[
            ("OVERSEER__DATABASE__URL", db.url.expose()),
            ("OVERSEER__STATE_DIR", state_2.to_str().unwrap()),
            ("OVERSEER__SERVER__BIND", "127.0.0.1:0"),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("jobs.1.quota.0.name"), "{err}");
    let mut conn = db.conn();
    let fresh: i64 = diesel::RunQueryDsl::get_result::<CountRow>(
        diesel::sql_query("SELECT count(*) AS n FROM jobs WHERE name = 'fresh'"),
        &mut conn,
    )
    .unwrap()
    .n;
    assert_eq!(
        fresh, 0,
        "a job of a configuration that did not start was written"
    );

    // A bad declarative job stops start-up with the key and the file.
    std::fs::write(
        jobs_dir.join("20-bad.toml"),
        "[[jobs]]\nname = \"x\"\nkind = \"noop\"\nschedule = { every = \"1ms\" }\n",
    )
    .unwrap();
    let (code, _, err) = run_cli(
        &["config", "check"],
        &[("OVERSEER__SCHEDULER__JOBS_DIR", jobs_dir.to_str().unwrap())],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("schedule.every") && err.contains("20-bad.toml"),
        "{err}"
    );
}

#[test]
fn jobs_survive_restarts_and_kill_9() {
    let db = TestDb::new();
    let tmp = tempfile::tempdir().unwrap();
    let spawn = || {
        let mut s = Spawn::with_db(&db).0;
        s.state_dir = tmp.path().join("state");
        s.start()
    };
    let o = spawn();
    o.wait_ready(T);
    create(
        &o,
        json!({"name": "heartbeat", "kind": "noop", "schedule": {"every": "1s"}}),
    );
    wait_runs(&o, "heartbeat", "first run", |r| count(r, "succeeded") >= 1);
    o.signal(nix::sys::signal::Signal::SIGKILL);
    drop(o);
    let o = spawn();
    o.wait_ready(T);
    let before = count(&runs_of(&o, "heartbeat"), "succeeded");
    wait_runs(&o, "heartbeat", "runs after the restart", |r| {
        count(r, "succeeded") >= before + 2
    });
    o.logs.wait_json("rehydrated", T, |v| {
        v["message"] == "scheduler rehydrated from the tables"
    });
}

#[test]
fn old_runs_are_pruned_by_retention() {
    let db = TestDb::new();
    let o = TestApp::start(
        &db,
        "[runs]\nretention = \"1s\"\nfailed_retention = \"1h\"\nprune_interval = \"1s\"",
    );
    create(
        &o,
        json!({"name": "brief", "kind": "noop", "schedule": {"at": Utc::now().to_rfc3339()}}),
    );
    create(
        &o,
        json!({"name": "broken", "kind": "noop", "payload": {"fail": true},
        "schedule": {"at": Utc::now().to_rfc3339()}, "policy": {"max_retries": 0}}),
    );
    wait_runs(&o, "brief", "a run", |r| count(r, "succeeded") == 1);
    wait_runs(&o, "broken", "a dead letter", |r| count(r, "failed") == 1);
    // The success goes after its 1 s retention; the dead letter stays (1 h).
    wait_runs(&o, "brief", "the run pruned", |r| r.is_empty());
    assert_eq!(count(&runs_of(&o, "broken"), "failed"), 1);
    o.logs
        .wait_json("prune log", T, |v| v["message"] == "old runs pruned");
}

#[test]
fn http_header_secrets_are_sent_but_never_stored_shown_or_logged() {
    const TOKEN: &str = "tok-9f8e7d6c5b4a";
    let db = TestDb::new();
    let o = TestApp::start(
        &db,
        &format!("[browser.secrets]\nAPI_TOKEN = \"{TOKEN}\"\n"),
    );
    let sink = Sink::start();
    create(
        &o,
        json!({
            "name": "with-secret", "kind": "http",
            "payload": {"url": sink.url, "headers": {"authorization": {"secret": "API_TOKEN"}}},
            "schedule": {"at": Utc::now().to_rfc3339()},
        }),
    );
    let runs = wait_runs(&o, "with-secret", "a succeeded run", |r| {
        count(r, "succeeded") == 1
    });
    let sent = sink.requests();
    assert_eq!(
        sent[0].headers.get("authorization").map(String::as_str),
        Some(TOKEN)
    );
    let job = o.get("/api/v1/jobs/with-secret", op(&o)).text;
    assert!(job.contains("API_TOKEN") && !job.contains(TOKEN), "{job}");
    assert!(!runs[0].to_string().contains(TOKEN));
    // A secret that is not configured fails the run naming it, not a value.
    create(
        &o,
        json!({
            "name": "missing-secret", "kind": "http",
            "payload": {"url": sink.url, "headers": {"x-key": {"secret": "NOT_SET"}}},
            "schedule": {"at": Utc::now().to_rfc3339()},
            "policy": {"max_retries": 0},
        }),
    );
    let runs = wait_runs(&o, "missing-secret", "a failed run", |r| {
        count(r, "failed") == 1
    });
    assert_eq!(runs[0]["error_kind"], "secret_missing");
    // With retries left it is not retried: it would fail the same way until the
    // configuration changes. A retry would be written with the failure, in its transaction.
    create(
        &o,
        json!({
            "name": "missing-secret-retries", "kind": "http",
            "payload": {"url": sink.url, "headers": {"x-key": {"secret": "NOT_SET"}}},
            "schedule": {"at": Utc::now().to_rfc3339()},
            "policy": {"max_retries": 3, "retry_delays": ["0s"]},
        }),
    );
    let runs = wait_runs(&o, "missing-secret-retries", "a failed run", |r| {
        count(r, "failed") == 1
    });
    assert_eq!(runs.len(), 1, "retried: {runs:?}");
    assert_eq!(runs[0]["attempt"], 1);
    // A malformed reference is refused at creation, naming the header.
    let a = o.post(
        "/api/v1/jobs",
        op(&o),
        Some(
            &json!({"name": "bad", "kind": "http", "schedule": {"every": "1h"},
                    "payload": {"url": sink.url, "headers": {"x-key": {"secret": "lower"}}}})
            .to_string(),
        ),
    );
    assert_eq!(a.status, 422, "{}", a.text);
    assert_eq!(
        a.json()["error"]["fields"][0]["path"],
        "payload.headers.x-key"
    );
    assert!(!o.logs.text().contains(TOKEN), "the token reached the logs");
}

/// Takes a one-slot node's slot with the job `blocker`: a request to the sink that hangs
/// until the job's `timeout` ends it (the run then times out).
fn hold_the_only_slot(o: &TestApp, sink: &Sink, timeout: &str) {
    sink.hang(true);
    create(
        o,
        json!({"name": "blocker", "kind": "http", "schedule": {"at": Utc::now().to_rfc3339()},
               "payload": {"url": format!("{}/hang", sink.url)},
               "policy": {"timeout": timeout, "max_retries": 0}}),
    );
    wait_for("the blocker holds the slot", T, || {
        (sink.hanging() == 1).then_some(())
    });
}

#[test]
fn waiting_runs_start_by_priority_when_a_slot_frees() {
    let db = TestDb::new();
    let sink = Sink::start();
    let o = TestApp::start(&db, "[scheduler]\nmax_concurrency = 1\n");
    hold_the_only_slot(&o, &sink, "2s");
    // Four runs wait for it, triggered lowest priority first.
    let never = json!({"cron": "0 0 29 2 *", "timezone": "UTC"});
    for (name, priority) in [("p2", 2), ("p5", 5), ("p7", 7), ("p9", 9)] {
        create(
            &o,
            json!({"name": name, "kind": "noop", "schedule": never, "policy": {"priority": priority}}),
        );
        let a = o.post(&format!("/api/v1/jobs/{name}/trigger"), op(&o), None);
        assert_eq!(a.status, 201, "{}", a.text);
    }
    for name in ["p2", "p5", "p7", "p9"] {
        assert_eq!(
            runs_of(&o, name)[0]["state"],
            "pending",
            "{name} waits for the slot"
        );
    }
    let started: Vec<(String, DateTime<Utc>)> = ["p2", "p5", "p7", "p9"]
        .iter()
        .map(|name| {
            let runs = wait_runs(&o, name, &format!("{name} succeeded"), |r| {
                count(r, "succeeded") == 1
            });
            let at = runs[0]["started_at"].as_str().unwrap().parse().unwrap();
            (name.to_string(), at)
        })
        .collect();
    let mut by_start = started.clone();
    by_start.sort_by_key(|(_, at)| *at);
    let order: Vec<&str> = by_start.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        order,
        ["p9", "p7", "p5", "p2"],
        "highest priority first: {started:?}"
    );
    assert_eq!(runs_of(&o, "blocker")[0]["state"], "timed_out");
}

/// With every slot taken, a due job is held back (not fired as a pending run) while it is
/// less than half its misfire grace late, then fired as a pending run — never turned into a
/// miss — and it runs once the slot frees. Jobs due while a slot is free start directly.
#[test]
fn due_jobs_wait_for_a_slot_without_becoming_misses() {
    let db = TestDb::new();
    let sink = Sink::start();
    let o = TestApp::start(&db, "[scheduler]\nmax_concurrency = 1\n");
    hold_the_only_slot(&o, &sink, "4s");
    // Due now with a 2 s grace: held back for about 1 s, then fired (pending), run at 4 s.
    create(
        &o,
        json!({"name": "patient", "kind": "noop", "schedule": {"at": Utc::now().to_rfc3339()},
               "policy": {"misfire_grace": "2s", "max_retries": 0}}),
    );
    let fired = wait_runs(&o, "patient", "the held-back job fired", |r| !r.is_empty());
    assert_eq!(
        fired[0]["state"], "pending",
        "fired before its grace ran out: {fired:?}"
    );
    let lateness_at_fire = (fired[0]["queued_at"]
        .as_str()
        .unwrap()
        .parse::<DateTime<Utc>>()
        .unwrap()
        - fired[0]["fire_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap())
    .num_milliseconds();
    assert!(
        (900..2000).contains(&lateness_at_fire),
        "held back about half its grace (1 s), fired {lateness_at_fire} ms late"
    );
    let done = wait_runs(&o, "patient", "the held-back job ran", |r| {
        count(r, "succeeded") == 1
    });
    assert_eq!(done.len(), 1, "one run, no miss: {done:?}");
    assert_eq!(runs_of(&o, "blocker")[0]["state"], "timed_out");
}

/// A cancel raced by pause, resume and trigger on the same job, round after round: the job
/// ends cancelled, and nothing made after the cancel runs. Before every state change was one
/// conditional statement, a pause or resume that had checked the state just before the cancel
/// committed wrote its own state over `cancelled` (the job fired again), and a trigger let
/// through the same way left a pending run of a cancelled job that ran.
#[test]
fn a_cancel_raced_by_pause_resume_and_trigger_stays_cancelled() {
    let db = TestDb::new();
    let o = TestApp::start(&db, "");
    let rounds = 40;
    let mut refused = HashMap::<&str, usize>::new();
    for round in 0..rounds {
        let name = format!("race-{round}");
        // Active, but its own schedule fires next year: every run here is a trigger's, and
        // each takes 5 s, so a run made before the cancel is still open when the cancel
        // reaches it (and is cancelled): none may succeed.
        create(
            &o,
            json!({"name": name, "kind": "noop", "schedule": {"cron": "0 0 1 1 *"},
                   "payload": {"sleep_ms": 5000}}),
        );
        if round % 2 == 1 {
            // Half the rounds start paused, so that resume has something to race with.
            assert_eq!(
                o.post(&format!("/api/v1/jobs/{name}/pause"), op(&o), None)
                    .status,
                200
            );
        }
        let barrier = std::sync::Barrier::new(5);
        let answers: Vec<(&str, u16)> = std::thread::scope(|s| {
            let calls: Vec<_> = [
                ("cancel", "DELETE", ""),
                ("pause", "POST", "/pause"),
                ("resume", "POST", "/resume"),
                ("trigger", "POST", "/trigger"),
                ("trigger", "POST", "/trigger"),
            ]
            .into_iter()
            .map(|(what, method, suffix)| {
                let (barrier, o, name) = (&barrier, &o, &name);
                s.spawn(move || {
                    let path = format!("/api/v1/jobs/{name}{suffix}");
                    barrier.wait();
                    let a = match method {
                        "DELETE" => request("DELETE", &o.url(&path), op(o), &[], None),
                        _ => o.post(&path, op(o), None),
                    };
                    (what, a.status)
                })
            })
            .collect();
            calls.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (what, status) in &answers {
            match (*what, *status) {
                ("cancel", 200) | ("trigger", 201) | ("pause" | "resume", 200) => {}
                (w, 409) if w != "cancel" => *refused.entry(w).or_default() += 1,
                other => panic!("round {round}: {other:?} ({answers:?})"),
            }
        }
        let job = o.get(&format!("/api/v1/jobs/{name}"), op(&o)).json();
        assert_eq!(job["state"], "cancelled", "round {round}: {answers:?}");
    }
    // Nothing of a cancelled job is left to run, and nothing of it ran to the end.
    let settled = wait_for("every run of the raced jobs settled", T, || {
        let all: Vec<(Value, Vec<Value>)> = (0..rounds)
            .map(|r| {
                let name = format!("race-{r}");
                let job = o.get(&format!("/api/v1/jobs/{name}"), op(&o)).json();
                (job, runs_of(&o, &name))
            })
            .collect();
        let open = |r: &Value| {
            matches!(
                r["state"].as_str(),
                Some("pending" | "running" | "deferred")
            )
        };
        all.iter()
            .all(|(_, runs)| !runs.iter().any(open))
            .then_some(all)
    });
    for (job, runs) in &settled {
        assert_eq!(job["state"], "cancelled", "{job}");
        for r in runs {
            assert_eq!(
                r["state"], "cancelled",
                "a run of a cancelled job ran: {r} of {job}"
            );
        }
    }
    eprintln!("refused as having lost the race: {refused:?}");
}
