//! Quotas with real PostgreSQL and real processes: the API, all-or-nothing consumption across
//! windows, refunds, deferral and resumption of runs, the enforcement flag, and contention from
//! four overseer processes and 64 concurrent consumers with a kill -9 in the middle.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::*;
use diesel::RunQueryDsl;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

fn put(o: &TestApp, name: &str, body: Value) -> Answer {
    request(
        "PUT",
        &o.url(&format!("/api/v1/quotas/{name}")),
        Some(&o.tokens.operator),
        &[],
        Some(&body.to_string()),
    )
}

fn consume(o: &TestApp, name: &str, cost: i64) -> Answer {
    o.post(
        &format!("/api/v1/quotas/{name}/consume"),
        Some(&o.tokens.operator),
        Some(&json!({ "cost": cost }).to_string()),
    )
}

fn window(q: &Value, kind: &str) -> Value {
    q["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == kind)
        .cloned()
        .unwrap()
}

#[derive(diesel::QueryableByName)]
struct Used {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    used: i64,
}

fn used(db: &TestDb, quota: &str, kind: &str) -> i64 {
    diesel::sql_query(format!(
        "SELECT COALESCE(sum(used), 0)::bigint AS used FROM quota_usage \
         WHERE quota = '{quota}' AND window_kind = '{kind}' AND window_end > now()"
    ))
    .get_result::<Used>(&mut db.conn())
    .unwrap()
    .used
}

#[test]
fn the_api_creates_reads_consumes_and_refuses_with_retry_after() {
    let db = TestDb::new();
    let o = TestApp::start(
        &db,
        "[[quotas]]\nname = \"declared\"\nlimits = { day = 5 }\ntimezone = \"Europe/Berlin\"\n",
    );
    let a = put(
        &o,
        "linkedin:messages",
        json!({"limits": {"hour": 3, "day": 5}, "timezone": "America/New_York", "week_start": "sunday"}),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    let q = a.json();
    assert_eq!(q["limits"], json!({"hour": 3, "day": 5}));
    assert_eq!(window(&q, "day")["remaining"], 5);
    let a = put(
        &o,
        "linkedin:messages",
        json!({"limits": {"hour": 3, "day": 5}, "timezone": "America/New_York"}),
    );
    assert_eq!(a.status, 200, "replaced");

    // All or nothing: 2 fit both windows; 2 more would fit the day but not the hour.
    assert_eq!(consume(&o, "linkedin:messages", 2).status, 200);
    let refused = consume(&o, "linkedin:messages", 2);
    assert_eq!(refused.status, 429, "{}", refused.text);
    let secs: i64 = refused.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=3601).contains(&secs), "Retry-After {secs}");
    let body = refused.json();
    assert_eq!(body["error"]["code"], "quota_exhausted");
    assert_eq!(window(&body, "hour")["used"], 2);
    assert_eq!(
        used(&db, "linkedin:messages", "day"),
        2,
        "nothing taken from the day"
    );
    assert_eq!(
        consume(&o, "linkedin:messages", 1).status,
        200,
        "1 still fits"
    );

    let one = o.get("/api/v1/quotas/linkedin:messages", o.admin()).json();
    assert_eq!(window(&one, "hour")["remaining"], 0);
    assert_eq!(window(&one, "day")["remaining"], 2);
    let all = o.get("/api/v1/quotas", o.admin()).json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[0]["name"], "declared");
    assert_eq!(all[0]["source"], "config");

    // Mistakes are the caller's, with the field.
    let bad = |a: Answer, path: &str| {
        assert_eq!(a.status, 422, "{}", a.text);
        let fields = a.json()["error"]["fields"].clone();
        assert!(
            fields.as_array().unwrap().iter().any(|f| f["path"] == path),
            "{path} in {fields}"
        );
    };
    bad(put(&o, "q", json!({"limits": {"day": 0}})), "limits.day");
    bad(
        put(&o, "q", json!({"limits": {"month": 1}})),
        "limits.month",
    );
    bad(
        put(
            &o,
            "q",
            json!({"limits": {"day": 1}, "timezone": "Mars/Base"}),
        ),
        "timezone",
    );
    bad(put(&o, "q", json!({})), "limits");
    bad(put(&o, "Bad_Name", json!({"limits": {"day": 1}})), "name");
    bad(consume(&o, "linkedin:messages", 0), "cost");
    bad(consume(&o, "linkedin:messages", 4), "cost"); // above the hour's limit: never fits
    assert_eq!(consume(&o, "nope", 1).status, 404);
    assert_eq!(
        o.post(
            "/api/v1/quotas/linkedin:messages/consume",
            Some(&o.tokens.viewer),
            Some("{}")
        )
        .status,
        403
    );

    // Declared quotas belong to the configuration; used quotas cannot disappear.
    assert_eq!(
        put(&o, "declared", json!({"limits": {"day": 9}})).status,
        409
    );
    let del = |name: &str| {
        request(
            "DELETE",
            &o.url(&format!("/api/v1/quotas/{name}")),
            Some(&o.tokens.operator),
            &[],
            None,
        )
    };
    assert_eq!(del("declared").status, 409);
    let job = json!({"name": "uses-it", "kind": "noop", "schedule": {"every": "1h"},
                     "quota": [{"name": "linkedin:messages"}], "paused": true});
    assert_eq!(
        o.post("/api/v1/jobs", o.admin(), Some(&job.to_string()))
            .status,
        201
    );
    let a = del("linkedin:messages");
    assert_eq!(a.status, 409);
    assert!(a.text.contains("uses-it"), "{}", a.text);
    let bad_job = json!({"name": "x", "kind": "noop", "schedule": {"every": "1h"},
                         "quota": [{"name": "linkedin:messages", "cost": -1}]});
    let a = o.post("/api/v1/jobs", o.admin(), Some(&bad_job.to_string()));
    assert_eq!(a.status, 422);
    assert_eq!(a.json()["error"]["fields"][0]["path"], "quota.0.cost");
    // A quota that does not exist is named, not accepted to fail every run.
    let unknown = json!({"name": "y", "kind": "noop", "schedule": {"every": "1h"},
                         "quota": [{"name": "linkedin:messages"}, {"name": "no-such"}]});
    let a = o.post("/api/v1/jobs", o.admin(), Some(&unknown.to_string()));
    assert_eq!(a.status, 422, "{}", a.text);
    assert_eq!(a.json()["error"]["fields"][0]["path"], "quota.1.name");

    let m = o.get("/metrics", None).text;
    assert!(
        m.contains("overseer_quota_consumed_total{quota=\"linkedin:messages\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("overseer_quota_rejected_total{quota=\"linkedin:messages\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("overseer_quota_remaining{quota=\"linkedin:messages\",window=\"day\"} 2"),
        "{m}"
    );
}

#[test]
fn runs_over_quota_are_deferred_once_notified_and_resume() {
    let db = TestDb::new();
    let o = TestApp::start(&db, "");
    assert_eq!(
        put(&o, "site:actions", json!({"limits": {"day": 1}})).status,
        201
    );
    for i in 0..3 {
        let job = json!({
            "name": format!("act-{i}"), "kind": "noop",
            "schedule": {"at": Utc::now().to_rfc3339()},
            "quota": [{"name": "site:actions", "cost": 1}],
        });
        assert_eq!(
            o.post("/api/v1/jobs", o.admin(), Some(&job.to_string()))
                .status,
            201
        );
    }
    let runs = wait_for("one run succeeded, two deferred", T, || {
        let items = o.get("/api/v1/runs", o.admin()).json()["items"].clone();
        let items = items.as_array().cloned().unwrap_or_default();
        let ok = items.iter().filter(|r| r["state"] == "succeeded").count();
        let deferred = items.iter().filter(|r| r["state"] == "deferred").count();
        (ok == 1 && deferred == 2).then_some(items)
    });
    for r in runs.iter().filter(|r| r["state"] == "deferred") {
        assert_eq!(r["attempt"], 1, "no attempt used");
        let due: chrono::DateTime<Utc> = r["due_at"].as_str().unwrap().parse().unwrap();
        assert!(
            due > Utc::now() + chrono::Duration::minutes(1),
            "until the day resets: {due}"
        );
        assert!(r["node_id"].is_null());
    }
    assert_eq!(
        used(&db, "site:actions", "day"),
        1,
        "refused runs took nothing"
    );
    // One quota.exhausted per quota and window, however many runs were refused.
    let notes = wait_for("quota.exhausted recorded", T, || {
        let items = o
            .get("/api/v1/notifications?event=quota.exhausted", o.admin())
            .json()["items"]
            .clone();
        (!items.as_array().unwrap().is_empty()).then_some(items)
    });
    assert_eq!(notes.as_array().unwrap().len(), 1, "{notes}");
    assert_eq!(notes[0]["data"]["quota"], "site:actions");

    // The day is over (as far as the runs know) and there is room again: they resume.
    assert_eq!(
        put(&o, "site:actions", json!({"limits": {"day": 3}})).status,
        200
    );
    diesel::sql_query("UPDATE runs SET due_at = now() WHERE state = 'deferred'")
        .execute(&mut db.conn())
        .unwrap();
    wait_for("all three succeeded", T, || {
        let items = o.get("/api/v1/runs?state=succeeded", o.admin()).json()["items"].clone();
        (items.as_array().unwrap().len() == 3).then_some(())
    });
    assert_eq!(used(&db, "site:actions", "day"), 3);
}

#[test]
fn a_failed_run_refunds_when_its_job_says_so() {
    let db = TestDb::new();
    let o = TestApp::start(&db, "");
    assert_eq!(
        put(&o, "mail:sends", json!({"limits": {"day": 10}})).status,
        201
    );
    for (name, refund) in [("refunds", true), ("keeps", false)] {
        let job = json!({
            "name": name, "kind": "http",
            "schedule": {"at": Utc::now().to_rfc3339()},
            "payload": {"url": "http://127.0.0.1:9/", "timeout": "1s"},
            "policy": {"max_retries": 0},
            "quota": [{"name": "mail:sends", "cost": 2, "refund_on_failure": refund}],
        });
        assert_eq!(
            o.post("/api/v1/jobs", o.admin(), Some(&job.to_string()))
                .status,
            201
        );
    }
    wait_for("both runs failed", T, || {
        let items = o.get("/api/v1/runs?state=failed", o.admin()).json()["items"].clone();
        (items.as_array().unwrap().len() == 2).then_some(())
    });
    wait_for("only the refunding job's units came back", T, || {
        (used(&db, "mail:sends", "day") == 2).then_some(())
    });
    let m = o.get("/metrics", None).text;
    assert!(
        m.contains("overseer_quota_refunded_total{quota=\"mail:sends\"} 2"),
        "{m}"
    );
}

#[test]
fn with_enforcement_off_over_limit_use_is_admitted_and_counted() {
    let db = TestDb::new();
    let o = TestApp::start(&db, "[flags]\nquota_enforcement = false\n");
    assert_eq!(put(&o, "q", json!({"limits": {"hour": 1}})).status, 201);
    assert_eq!(consume(&o, "q", 1).status, 200);
    assert_eq!(consume(&o, "q", 1).status, 200, "admitted over the limit");
    assert_eq!(used(&db, "q", "hour"), 2, "still counted");
    let m = o.get("/metrics", None).text;
    assert!(
        m.contains("overseer_quota_over_limit_total{quota=\"q\"} 1"),
        "{m}"
    );
    o.logs.wait_json("over-limit use is logged", T, |v| {
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("over the limit, admitted"))
    });
}

#[test]
fn four_processes_and_64_consumers_admit_exactly_the_limit() {
    const LIMIT: usize = 1000;
    let db = TestDb::new();
    let mut nodes: Vec<TestApp> = (0..4).map(|_| TestApp::start(&db, "")).collect();
    assert_eq!(
        put(&nodes[0], "hot", json!({"limits": {"day": LIMIT}})).status,
        201
    );
    let urls: Vec<String> = nodes
        .iter()
        .map(|o| o.url("/api/v1/quotas/hot/consume"))
        .collect();
    // Each process has its own tokens.
    let tokens: Vec<String> = nodes.iter().map(|o| o.tokens.operator.clone()).collect();
    let admitted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let unknown = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let (urls, tokens) = (urls.clone(), tokens.clone());
            let (admitted, refused, unknown, killed) = (
                admitted.clone(),
                refused.clone(),
                unknown.clone(),
                killed.clone(),
            );
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(10))
                    .build();
                let mut refusals = 0;
                for n in 0..200 {
                    // Node 0 is killed mid-way; after that, only the others are used.
                    let mut target = (i + n) % 4;
                    if target == 0 && killed.load(Ordering::SeqCst) {
                        target = 1 + (i % 3);
                    }
                    let res = agent
                        .post(&urls[target])
                        .set("Authorization", &format!("Bearer {}", tokens[target]))
                        .set("Content-Type", "application/json")
                        .send_string("{\"cost\": 1}");
                    match res {
                        Ok(r) if r.status() == 200 => {
                            admitted.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(ureq::Error::Status(429, _)) => {
                            refused.fetch_add(1, Ordering::SeqCst);
                            refusals += 1;
                            if refusals >= 3 {
                                break;
                            }
                        }
                        // The killed node: the consumption may or may not have committed.
                        _ => {
                            unknown.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    wait_for("a third of the quota used", T, || {
        (admitted.load(Ordering::SeqCst) >= LIMIT / 3).then_some(())
    });
    nodes[0].signal(Signal::SIGKILL);
    killed.store(true, Ordering::SeqCst);
    nodes[0].wait_exit(T);
    for t in threads {
        t.join().unwrap();
    }
    let used = used(&db, "hot", "day") as usize;
    let (ok, no, lost) = (
        admitted.load(Ordering::SeqCst),
        refused.load(Ordering::SeqCst),
        unknown.load(Ordering::SeqCst),
    );
    println!("admitted {ok}, refused {no}, unknown (killed node) {lost}, used {used}");
    assert_eq!(used, LIMIT, "exactly the limit was used");
    assert!(ok <= LIMIT, "never more admissions than the limit");
    assert!(
        ok + lost >= LIMIT,
        "every used unit was answered or lost with the killed node"
    );
    assert!(no >= 64, "every consumer was refused in the end");
    // The survivors agree.
    let q = nodes[1].get("/api/v1/quotas/hot", nodes[1].admin()).json();
    assert_eq!(window(&q, "day")["used"], LIMIT);
    assert_eq!(window(&q, "day")["remaining"], 0);
    drop(nodes);
}

/// The quota counter actor, started by a supervisor on a clock the test moves: a full hour
/// window refuses, and the next hour admits again — time passes by setting the clock, not by
/// waiting an hour (or sleeping at all).
#[test]
fn the_quota_counter_follows_its_clock_into_the_next_window() {
    use overseer::actors::quota::{Consume, Consumed, QuotaCounter, NAME};
    use overseer::stdx::clock::ManualClock;
    use overseer::supervisor::{ChildSpec, Restart, Supervisor};

    let db = TestDb::migrated();
    let loaded = overseer::config::load(&overseer::config::Sources::default()).unwrap();
    let config = Arc::new(loaded.config);
    let pool = overseer::db::Db::new(&db.url, 4, Duration::from_secs(5));
    {
        let def = overseer::quota::QuotaDef::parse(
            "messages",
            &json!({"limits": {"hour": 2}, "timezone": "UTC"}),
        )
        .unwrap();
        overseer::db::quotas::upsert(&mut pool.get_blocking().unwrap(), &def, "api", Utc::now())
            .unwrap();
    }
    // 09:10 on a fixed day: the hour window is 09:00–10:00.
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-12-01T09:10:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let clock = Arc::new(ManualClock::new(t0));
    let deps = overseer::actors::Deps {
        config: config.clone(),
        db: pool,
        node_id: uuid::Uuid::new_v4(),
        directory: Default::default(),
        routing: Arc::new(overseer::notify::Routing::from_config(&config.notify)),
        clock: clock.clone(),
        flags: overseer::flags::Live::fixed(config.flags),
        kinds: std::sync::Arc::new(overseer::declarative::kinds(&config)),
        leadership: Default::default(),
    };
    actix::System::new().block_on(async move {
        let d = deps.clone();
        let spec = ChildSpec::new(NAME, Restart::Permanent, move |lifeline| {
            QuotaCounter::new(&d, lifeline)
        });
        let _supervisor = actix::Actor::start(Supervisor::new(
            config.supervisor.clone(),
            vec![spec],
            None,
            std::sync::Arc::new(overseer::stdx::clock::SystemClock),
        ));
        let deadline = std::time::Instant::now() + T;
        let counter = loop {
            if let Some(c) = deps.directory.quota_counter() {
                break c;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the counter never started"
            );
            actix_rt::task::yield_now().await;
        };
        let consume = || {
            counter.send(Consume {
                quota: "messages".into(),
                cost: 1,
                audit: None,
            })
        };
        for _ in 0..2 {
            let c = consume().await.unwrap().unwrap();
            assert!(matches!(c, Consumed::Admitted { .. }), "{c:?}");
        }
        match consume().await.unwrap().unwrap() {
            Consumed::Refused { retry_at, .. } => {
                assert_eq!(
                    retry_at,
                    t0 + chrono::Duration::minutes(50),
                    "the next hour"
                )
            }
            other => panic!("a full window must refuse: {other:?}"),
        }
        // The clock reaches the next hour: room again, without waiting for it.
        clock.advance(chrono::Duration::minutes(50));
        let c = consume().await.unwrap().unwrap();
        assert!(matches!(c, Consumed::Admitted { .. }), "{c:?}");
        actix::System::current().stop();
    });
}
