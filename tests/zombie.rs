//! Zombie detection and leadership with real processes: a node killed with runs in flight,
//! a node frozen with SIGSTOP whose late results must be refused after SIGCONT, a stale
//! heartbeat, and leader failover.

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::*;
use diesel::RunQueryDsl;
use nix::sys::signal::Signal;
use serde_json::json;

const T: Duration = Duration::from_secs(30);
/// The test configuration of the issue: 1 s sweeps, 3 s node timeout, 2 s lease.
const FAST: &str = "[node]\nheartbeat_interval = \"500ms\"\n\
[scheduler]\nheartbeat_interval = \"500ms\"\n\
[zombie]\nsweep_interval = \"1s\"\nnode_timeout = \"3s\"\nheartbeat_timeout = \"10s\"\nlease = \"2s\"";

fn start(db: &TestDb, extra: &str) -> TestApp {
    TestApp::start(db, &format!("{FAST}\n{extra}"))
}

fn node_id(o: &TestApp) -> String {
    o.get("/api/v1/leader", o.admin()).json()["this_node"]
        .as_str()
        .unwrap()
        .to_string()
}

#[derive(diesel::QueryableByName, Debug)]
struct RunRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    job: String,
    #[diesel(sql_type = diesel::sql_types::Int4)]
    attempt: i32,
    #[diesel(sql_type = diesel::sql_types::Text)]
    state: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    node: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    error_kind: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    finished_at: Option<chrono::DateTime<Utc>>,
}

fn runs(db: &TestDb) -> Vec<RunRow> {
    diesel::sql_query(
        "SELECT j.name AS job, r.attempt, r.state, r.node_id::text AS node, r.error_kind, r.finished_at \
         FROM runs r JOIN jobs j ON j.id = r.job_id ORDER BY j.name, r.attempt",
    )
    .load(&mut db.conn())
    .unwrap()
}

fn long_jobs(o: &TestApp, n: usize, sleep_ms: u64) {
    for i in 0..n {
        o.create_job(&json!({
            "name": format!("long-{i}"), "kind": "noop", "payload": {"sleep_ms": sleep_ms},
            "schedule": {"at": Utc::now().to_rfc3339()},
            "policy": {"max_retries": 1, "retry_delays": ["0s"]},
        }));
    }
}

#[test]
fn a_killed_nodes_runs_are_rescued_by_another_node() {
    let db = TestDb::new();
    let a = start(&db, "");
    let a_id = node_id(&a);
    long_jobs(&a, 5, 120_000);
    wait_for("5 runs in flight on A", T, || {
        let r = runs(&db);
        (r.iter()
            .filter(|r| r.state == "running" && r.node.as_deref() == Some(&a_id))
            .count()
            == 5)
            .then_some(())
    });
    let b = start(&db, "");
    let b_id = node_id(&b);
    let mut a = a;
    a.signal(Signal::SIGKILL);
    a.wait_exit(T);
    let killed = Utc::now();
    let rows = wait_for("5 zombies and 5 retries running on B", T, || {
        let r = runs(&db);
        let zombies = r.iter().filter(|r| r.state == "zombie").count();
        let on_b = r
            .iter()
            .filter(|r| r.attempt == 2 && r.state == "running" && r.node.as_deref() == Some(&b_id))
            .count();
        (zombies == 5 && on_b == 5).then_some(r)
    });
    let rescued_at = rows
        .iter()
        .filter(|r| r.state == "zombie")
        .filter_map(|r| r.finished_at)
        .max()
        .unwrap();
    let latency = (rescued_at - killed)
        .to_std()
        .expect("the rescue is recorded after the kill");
    println!("kill -9 → rescued: {latency:?} (node_timeout 3 s + 1 s sweeps)");
    // The documented target is 5 s (node_timeout 3 s + a 1 s sweep + the transaction); the
    // extra second is the margin a loaded 2-core machine needs (measured here: 3.3 s).
    assert!(latency < Duration::from_secs(6), "rescue took {latency:?}");
    for r in rows.iter().filter(|r| r.state == "zombie") {
        assert_eq!(r.error_kind.as_deref(), Some("node_lost"), "{r:?}");
        assert_eq!(r.attempt, 1);
    }
    b.logs
        .wait_json("run.zombie events", T, |v| v["event"] == "run.zombie");
    let m = b.get("/metrics", None).text;
    assert!(
        m.contains("overseer_zombies_detected_total{reason=\"node_lost\"} 5"),
        "{m}"
    );
    assert!(m.contains("overseer_leader 1"), "B leads after A died");
    // Each rescue wrote one run.zombie notification (default routing, channel `log`) in the
    // rescue's transaction, and B's notifier delivered it.
    let notes = wait_for("5 run.zombie notifications sent", T, || {
        let page = b
            .get("/api/v1/notifications?event=run.zombie", b.admin())
            .json();
        let items = page["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 5 && items.iter().all(|n| n["state"] == "sent")).then_some(items)
    });
    assert!(notes
        .iter()
        .all(|n| n["channel"] == "log" && n["severity"] == "warning"));
}

#[test]
fn a_frozen_nodes_late_results_are_refused() {
    let db = TestDb::new();
    let a = start(&db, "");
    let a_id = node_id(&a);
    long_jobs(&a, 3, 6_000);
    wait_for("3 runs in flight on A", T, || {
        let r = runs(&db);
        (r.iter()
            .filter(|r| r.state == "running" && r.node.as_deref() == Some(&a_id))
            .count()
            == 3)
            .then_some(())
    });
    let b = start(&db, "");
    let b_id = node_id(&b);
    a.signal(Signal::SIGSTOP);
    // B takes the lease, sees A silent, rescues A's runs and runs the retries itself.
    let rows = wait_for("retries succeeded on B", Duration::from_secs(60), || {
        let r = runs(&db);
        let done = r
            .iter()
            .filter(|r| {
                r.attempt == 2 && r.state == "succeeded" && r.node.as_deref() == Some(&b_id)
            })
            .count();
        (done == 3).then_some(r)
    });
    assert_eq!(rows.iter().filter(|r| r.state == "zombie").count(), 3);
    // A wakes up; its workers finish attempt 1 and try to record it: refused.
    a.signal(Signal::SIGCONT);
    a.logs
        .wait_json("late results refused", T, |v| v["event"] == "run.refused");
    let rows = wait_for("the refusals settled", T, || {
        let refused = a
            .logs
            .lines()
            .iter()
            .filter(|l| l.contains("\"run.refused\""))
            .count();
        (refused == 3).then(|| runs(&db))
    });
    for job in ["long-0", "long-1", "long-2"] {
        let mine: Vec<_> = rows.iter().filter(|r| r.job == job).collect();
        assert_eq!(mine.len(), 2, "{mine:?}");
        assert_eq!(
            mine[0].state, "zombie",
            "attempt 1 stays a zombie: {mine:?}"
        );
        assert_eq!(mine[1].state, "succeeded", "{mine:?}");
        assert_eq!(
            mine.iter().filter(|r| r.state == "succeeded").count(),
            1,
            "the fire succeeded exactly once"
        );
    }
}

#[test]
fn a_stale_heartbeat_is_a_zombie_and_the_local_worker_is_cancelled() {
    let db = TestDb::new();
    // A long node timeout: only the heartbeat can make this run a zombie. Run heartbeats
    // every 2 s, so a heartbeat set in the past stays there long enough for a 1 s sweep.
    let config = FAST
        .replace("node_timeout = \"3s\"", "node_timeout = \"1h\"")
        .replace("heartbeat_timeout = \"10s\"", "heartbeat_timeout = \"3s\"")
        .replace(
            "[scheduler]\nheartbeat_interval = \"500ms\"",
            "[scheduler]\nheartbeat_interval = \"2s\"",
        );
    let o = TestApp::start(&db, &config);
    long_jobs(&o, 1, 600_000);
    wait_for("the run in flight", T, || {
        runs(&db).iter().any(|r| r.state == "running").then_some(())
    });
    // Freeze its heartbeat in the past (as a frozen event loop would), until the sweep sees it.
    wait_for("heartbeat_timeout rescue", T, || {
        diesel::sql_query(
            "UPDATE runs SET heartbeat_at = now() - interval '1 hour' WHERE state = 'running' AND attempt = 1",
        )
        .execute(&mut db.conn())
        .unwrap();
        runs(&db)
            .iter()
            .any(|r| r.state == "zombie" && r.error_kind.as_deref() == Some("heartbeat_timeout"))
            .then_some(())
    });
    // Cancelled by the detector's message, or by the executor's next heartbeat (which finds
    // the run no longer running here), whichever comes first.
    o.logs.wait_json("the hung worker cancelled", T, |v| {
        v["message"] == "worker cancelled"
    });
    // Its retry runs (attempt 2).
    wait_for("the retry running", T, || {
        runs(&db)
            .iter()
            .any(|r| r.attempt == 2 && r.state == "running")
            .then_some(())
    });
}

#[test]
fn leadership_fails_over_within_two_leases() {
    let db = TestDb::new();
    let a = start(&db, "");
    let b = start(&db, "");
    let leader_of = |o: &TestApp| o.get("/api/v1/leader", o.admin()).json();
    let first = wait_for("a leader", T, || {
        let l = leader_of(&a);
        l["lease"]["node_id"].as_str().map(str::to_string)
    });
    let (mut leader, follower) = if first == node_id(&a) { (a, b) } else { (b, a) };
    assert_eq!(leader_of(&leader)["this_node_is_leader"], true);
    assert_eq!(leader_of(&follower)["this_node_is_leader"], false);
    leader.signal(Signal::SIGKILL);
    leader.wait_exit(T);
    let killed = Instant::now();
    wait_for("the follower leads", T, || {
        (leader_of(&follower)["this_node_is_leader"] == true).then_some(())
    });
    let took = killed.elapsed();
    println!("leader killed → new leader after {took:?} (lease 2 s)");
    // The documented bound is 2 × lease (4 s); 1 s of margin for a loaded 2-core machine
    // (measured here: 1.9 s).
    assert!(
        took <= Duration::from_secs(4) + Duration::from_secs(1),
        "failover took {took:?}"
    );

    // A clean shutdown hands the lease over at once.
    let c = start(&db, "");
    let mut follower = follower;
    let stopping: uuid::Uuid = node_id(&follower).parse().unwrap();
    follower.signal(Signal::SIGTERM);
    assert_eq!(follower.wait_exit(T).code(), Some(0));
    let released = Instant::now();
    // The lease row was given up on the way out, not left to expire.
    {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let held = diesel::sql_query("SELECT count(*) AS n FROM leader_lease WHERE node_id = $1")
            .bind::<diesel::sql_types::Uuid, _>(stopping)
            .get_result::<N>(&mut db.conn())
            .unwrap()
            .n;
        assert_eq!(held, 0, "the stopped leader still holds the lease");
    }
    wait_for("c leads", T, || {
        (leader_of(&c)["this_node_is_leader"] == true).then_some(())
    });
    let took = released.elapsed();
    println!("leader stopped cleanly → new leader after {took:?}");
    // c tries every third of the 2 s lease: it leads within that (plus a loaded machine's
    // margin), well before the lease could have expired.
    assert!(took < Duration::from_millis(1700), "takeover took {took:?}");
}
