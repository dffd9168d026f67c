//! Supervision and process lifecycle: crash and restart, meltdown, readiness that follows the
//! database, signals, and the managed (embedded default) cluster across restarts and kill -9.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use nix::sys::signal::Signal;
use overseer::db::cluster::{ClusterOptions, ManagedCluster};

const T: Duration = Duration::from_secs(30);

fn ts(v: &serde_json::Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn a_crashed_actor_is_restarted_and_rehydrated_within_a_second() {
    let db = TestDb::new();
    let o = TestApp::start(&db, "[debug]\nfault_injection = true");

    let registered = || {
        o.logs
            .lines()
            .iter()
            .filter(|l| l.contains("\"node registered\""))
            .count() as u64
    };
    for round in 1..=2u64 {
        // From before the crash request to running again, rehydrated (it registered the
        // node row anew), with its restart counted.
        let before = Instant::now();
        let a = o.post("/api/v1/actors/node/crash", o.admin(), None);
        assert_eq!(a.status, 202, "{}", a.text);
        let actor = wait_for("node restarted, rehydrated and running", T, || {
            let a = o.actor("node");
            (a["restarts"] == round && a["state"] == "running" && registered() == round + 1)
                .then_some(a)
        });
        let total = before.elapsed();
        println!("round {round}: crash request to running and rehydrated in {total:?}");
        assert!(total < Duration::from_secs(1), "recovery took {total:?}");
        let failed_at = ts(&actor["last_failure"]["at"]);
        let restarted_at = ts(&actor["started_at"]);
        let latency = (restarted_at - failed_at).to_std().unwrap();
        println!("round {round}: death noticed and actor restarted after {latency:?}");
        assert!(latency < Duration::from_secs(1), "restart took {latency:?}");
        assert!(actor["last_failure"]["message"]
            .as_str()
            .unwrap()
            .contains("panic: fault injection"));
    }
    // Each incarnation rehydrated: it registered the node row again.
    let registrations = o
        .logs
        .lines()
        .iter()
        .filter(|l| l.contains("\"node registered\""))
        .count();
    assert_eq!(registrations, 3, "one registration per incarnation");
    // Every line an actor logs carries its name (the actor's span).
    let line = o
        .logs
        .wait_json("a node log line", T, |v| v["message"] == "node registered");
    assert_eq!(line["span"]["actor"], "node", "{line}");
    // The restart is visible in the metrics and the process is still ready.
    let metrics = o.get("/metrics", None).text;
    assert!(
        metrics.contains("overseer_actor_restarts_total{actor=\"node\"} 2"),
        "{metrics}"
    );
    assert_eq!(o.get("/ready", None).status, 200);
    // Crashing an unknown actor is a 404.
    assert_eq!(
        o.post("/api/v1/actors/nope/crash", o.admin(), None).status,
        404
    );
}

/// Crashes `actor` until the supervisor gives up; returns the number of crashes.
fn crash_until_meltdown(o: &TestApp, actor: &str) -> u64 {
    for n in 1..=6u64 {
        wait_for("actor running before the next crash", T, || {
            let a = o.actor(actor);
            (a["state"] == "running").then_some(())
        });
        let a = o.post(&format!("/api/v1/actors/{actor}/crash"), o.admin(), None);
        assert_eq!(a.status, 202, "crash {n}: {}", a.text);
        if n == 6 {
            return n;
        }
        wait_for("restart counted", T, || {
            (o.actor(actor)["restarts"] == n).then_some(())
        });
    }
    unreachable!()
}

#[test]
fn repeated_crashes_are_a_meltdown_and_ready_names_the_actor() {
    let db = TestDb::new();
    let o = TestApp::start(
        &db,
        "[debug]\nfault_injection = true\n[supervisor]\nexit_on_meltdown = false",
    );
    crash_until_meltdown(&o, "node");
    let ready = wait_for("/ready 503", T, || {
        let a = o.get("/ready", None);
        (a.status == 503).then_some(a)
    });
    let body = ready.json();
    assert_eq!(body["status"], "not_ready");
    let failing = body["failing"].to_string();
    assert!(failing.contains("meltdown: actor `node`"), "{failing}");
    let list = o.get("/api/v1/actors", o.admin()).json();
    assert_eq!(list["meltdown"], "node");
    assert_eq!(o.actor("node")["state"], "failed");
    o.logs
        .wait_json("meltdown event", T, |v| v["event"] == "supervisor.meltdown");
}

#[test]
fn meltdown_exits_non_zero_for_systemd() {
    let db = TestDb::new();
    let (spawn, tmp) = Spawn::with_db(&db);
    let mut o = spawn
        .toml("[debug]\nfault_injection = true")
        .start_with_tmp(Some(tmp));
    o.wait_ready(T);
    crash_until_meltdown(&o, "database");
    let status = o.wait_exit(T);
    assert_eq!(status.code(), Some(70), "meltdown exit code");
}

#[test]
fn ready_follows_the_database_without_a_restart() {
    // A cluster of its own, so that this test can really stop it.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let opts = ClusterOptions {
        dir: tmp.path().join("pg"),
        ephemeral: false,
        settings: vec![("fsync".into(), "off".into())],
    };
    let mut pg = ManagedCluster::start(&opts).unwrap();
    let state = tmp.path().join("state");
    let mut spawn = Spawn::managed(&state);
    spawn.db = Some(pg.url());
    let o = spawn.start();
    o.wait_ready(T);
    let pid = o.child.id();

    pg.stop().unwrap();
    let down = wait_for("/ready 503 while the database is down", T, || {
        let a = o.get("/ready", None);
        (a.status == 503).then_some(a)
    });
    let body = down.json();
    assert_eq!(body["failing"][0]["check"], "database", "{body}");
    // The API says 503 for database-backed routes, not 500.
    let nodes = o.get("/api/v1/nodes", o.admin());
    assert_eq!(nodes.status, 503, "{}", nodes.text);
    assert_eq!(nodes.json()["error"]["code"], "unavailable");
    // Health is about the process, not its dependencies.
    assert_eq!(o.get("/health", None).status, 200);

    let mut pg = ManagedCluster::start(&opts).unwrap();
    o.wait_ready(T);
    assert_eq!(o.child.id(), pid, "same process");
    assert_eq!(o.get("/api/v1/nodes", o.admin()).status, 200);
    // An outage is not a crash: no actor was restarted, and no restart was reported.
    let list = o.get("/api/v1/actors", o.admin()).json();
    let actors = list["actors"].as_array().unwrap();
    assert!(actors.len() >= 8, "{list}");
    for a in actors {
        assert_eq!(a["restarts"], 0, "{a}");
        assert_eq!(a["state"], "running", "{a}");
    }
    assert!(
        !o.logs.text().contains("actor.restarted"),
        "an actor.restarted event was emitted during the outage"
    );
    drop(o);
    pg.stop().unwrap();
}

fn postmaster_running(state: &std::path::Path) -> bool {
    state.join("postgres/data/postmaster.pid").exists()
}

#[test]
fn embedded_default_survives_kill_9_and_stops_its_cluster_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("state");

    // Cold: an empty state dir, no token configured: the bootstrap token file is made.
    let bare = |state: &std::path::Path| {
        let mut spawn = Spawn::managed(state);
        spawn.configure_tokens = false;
        spawn.start()
    };
    let started = Instant::now();
    let mut o = bare(&state);
    o.wait_ready(T);
    println!("cold start to ready: {:?}", started.elapsed());
    assert!(postmaster_running(&state));
    let token_file = state.join("admin.token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let bootstrap = std::fs::read_to_string(&token_file).unwrap();
    assert_eq!(o.get("/api/v1/flags", Some(bootstrap.trim())).status, 200);
    assert!(!o.logs.text().contains(bootstrap.trim()), "token logged");

    // kill -9: the cluster is left running; the next start reuses it.
    o.signal(Signal::SIGKILL);
    o.wait_exit(T);
    assert!(
        postmaster_running(&state),
        "the cluster outlives a crashed overseer"
    );
    let started = Instant::now();
    let mut o = bare(&state);
    o.wait_ready(T);
    println!(
        "warm start (cluster running) to ready: {:?}",
        started.elapsed()
    );
    o.logs.wait_json("reuse", T, |v| {
        v["message"] == "reusing the running managed PostgreSQL cluster"
    });
    // The same token file still works: nothing was lost.
    assert_eq!(o.get("/api/v1/flags", Some(bootstrap.trim())).status, 200);
    let nodes = o.get("/api/v1/nodes", Some(bootstrap.trim())).json();
    assert_eq!(
        nodes.as_array().unwrap().len(),
        2,
        "both runs registered: {nodes}"
    );

    // A second overseer on the same state dir refuses clearly.
    let (code, _, err) = run_cli(
        &["serve"],
        &[
            ("OVERSEER__STATE_DIR", state.to_str().unwrap()),
            ("OVERSEER__SERVER__BIND", "127.0.0.1:0"),
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("in use by another overseer"), "{err}");

    // SIGTERM: exit 0, cluster stopped.
    o.signal(Signal::SIGTERM);
    let status = o.wait_exit(T);
    assert_eq!(status.code(), Some(0));
    assert!(
        !postmaster_running(&state),
        "the cluster is stopped on clean shutdown"
    );

    // Warm start from a stopped cluster, then SIGINT.
    let started = Instant::now();
    let mut o = Spawn::managed(&state).start();
    o.wait_ready(T);
    println!(
        "warm start (cluster stopped) to ready: {:?}",
        started.elapsed()
    );
    o.signal(Signal::SIGINT);
    assert_eq!(o.wait_exit(T).code(), Some(0));
    assert!(!postmaster_running(&state));
}

#[test]
fn ephemeral_cluster_is_deleted_at_exit() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut spawn = Spawn::managed(&tmp.path().join("state"));
    spawn.args.push("--ephemeral".into());
    let mut o = spawn.start();
    o.wait_ready(T);
    let line = o.logs.wait_json("database selected", T, |v| {
        v["message"] == "database selected"
    });
    let url: url::Url = line["database"].as_str().unwrap().parse().unwrap();
    let host = url
        .query_pairs()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let dir = std::path::PathBuf::from(host);
    assert!(dir.join("data/PG_VERSION").exists(), "{dir:?}");
    assert!(
        !tmp.path().join("state/postgres").exists(),
        "not the persistent dir"
    );
    o.signal(Signal::SIGTERM);
    assert_eq!(o.wait_exit(T).code(), Some(0));
    assert!(!dir.exists(), "ephemeral cluster directory removed");
}

#[test]
fn systemd_notify_ready_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let db = TestDb::new();
    let (mut spawn, tmp) = Spawn::with_db(&db);
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    spawn
        .env
        .push(("NOTIFY_SOCKET".into(), sock_path.display().to_string()));
    // A 1 s watchdog: overseer pings every 500 ms and must never leave a whole second
    // between two pings (systemd would kill it).
    spawn.env.push(("WATCHDOG_USEC".into(), "1000000".into()));
    let mut o = spawn.start_with_tmp(Some(tmp));

    let mut buf = [0u8; 512];
    let mut next = || {
        let n = sock
            .recv(&mut buf)
            .expect("a notification before the timeout");
        String::from_utf8_lossy(&buf[..n]).trim().to_string()
    };
    assert_eq!(next(), "READY=1");
    let mut last = Instant::now();
    let mut gaps = Vec::new();
    for _ in 0..6 {
        assert_eq!(next(), "WATCHDOG=1");
        gaps.push(last.elapsed());
        last = Instant::now();
    }
    // The first gap runs from READY; the others are ping to ping.
    let worst = gaps.iter().skip(1).max().copied().unwrap_or_default();
    println!("watchdog gaps: {gaps:?}");
    assert!(
        worst < Duration::from_secs(1),
        "a gap of {worst:?} between pings exceeds the 1 s watchdog"
    );
    o.signal(Signal::SIGTERM);
    let stopping = wait_for("STOPPING=1", T, || {
        let m = next();
        (m == "STOPPING=1").then_some(m)
    });
    assert_eq!(stopping, "STOPPING=1");
    assert_eq!(o.wait_exit(T).code(), Some(0));
}

/// After a meltdown the supervisor no longer answers the watchdog's round trip as healthy:
/// the pings stop, so systemd's watchdog restarts a node that stays up without working.
#[test]
fn the_watchdog_stops_pinging_after_a_meltdown() {
    use std::os::unix::net::UnixDatagram;
    let db = TestDb::new();
    let (mut spawn, tmp) = Spawn::with_db(&db);
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    spawn
        .env
        .push(("NOTIFY_SOCKET".into(), sock_path.display().to_string()));
    spawn.env.push(("WATCHDOG_USEC".into(), "1000000".into()));
    let o = spawn
        .toml("[debug]\nfault_injection = true\n[supervisor]\nexit_on_meltdown = false")
        .start_with_tmp(Some(tmp));
    o.wait_ready(T);
    let mut buf = [0u8; 512];
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = sock.recv(&mut buf).expect("pings while healthy");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("=1"));
    crash_until_meltdown(&o, "node");
    wait_for("the meltdown reported", T, || {
        (o.get("/ready", None).status == 503).then_some(())
    });
    // Drop what was sent before the meltdown (a ping is sent right after a healthy round
    // trip, so none can follow the 503 by more than that step) …
    sock.set_nonblocking(true).unwrap();
    while sock.recv(&mut buf).is_ok() {}
    // … then three watchdog periods without a single ping.
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    match sock.recv(&mut buf) {
        Ok(n) => {
            let m = String::from_utf8_lossy(&buf[..n]).to_string();
            assert!(!m.contains("WATCHDOG=1"), "pinged after the meltdown: {m}");
        }
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
    }
}

/// The schema as PostgreSQL describes it: columns, constraints, indexes, applied migrations.
fn schema_of(db: &TestDb) -> Vec<String> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text)]
        line: String,
    }
    let lines: Vec<Line> = diesel::sql_query(
        "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable \
                || ' ' || coalesce(column_default, '') AS line \
         FROM information_schema.columns WHERE table_schema = 'public' \
         UNION ALL SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) \
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace \
         UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public' \
         UNION ALL SELECT 'migration ' || version FROM __diesel_schema_migrations \
         ORDER BY 1",
    )
    .load(&mut db.conn())
    .unwrap();
    lines.into_iter().map(|l| l.line).collect()
}

/// Nodes of a deployment start together: four `serve` processes on one empty database, ten
/// rounds. Migrations are serialised (an advisory lock); every process becomes ready and the
/// schema is the one a single process makes.
#[test]
fn four_nodes_starting_together_on_an_empty_database_all_become_ready() {
    let reference = TestDb::migrated();
    let expected = schema_of(&reference);
    assert!(expected.iter().any(|l| l.starts_with("column runs.")));
    for round in 0..10 {
        let db = TestDb::new();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let starters: Vec<_> = (0..4)
            .map(|_| {
                let (spawn, tmp) = Spawn::with_db(&db);
                let spawn = spawn.toml(
                    "[[jobs]]\nname = \"declared\"\nkind = \"noop\"\nschedule = { every = \"1h\" }",
                );
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let o = spawn.start_with_tmp(Some(tmp));
                    o.wait_ready(T);
                    o
                })
            })
            .collect();
        let nodes: Vec<TestApp> = starters
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| panic!("round {round}: a node did not become ready"))
            })
            .collect();
        assert_eq!(
            schema_of(&db),
            expected,
            "round {round}: the schema differs"
        );
        drop(nodes);
    }
}
