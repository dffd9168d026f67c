//! Scheduler benchmarks (release build, a PostgreSQL cluster of its own with default
//! durability: fsync on). Prints its figures; the README quotes them.
//!
//! - burn-down: N `noop` jobs due now (default 100,000) → jobs/s until every run is recorded;
//! - lateness: 1,000 fires/s spread evenly for a while → p50/p99 of began_at − fire_at (when
//!   the executor started the work; started_at − fire_at beside it, the scheduler's wake-up);
//! - restart: with 1,000,000 stored jobs, time from `serve` to the first dispatch, and RSS;
//! - rescue: 1,000 runs in flight on a node killed with SIGKILL → all pending again;
//! - outbox: 20,000 pending notifications → delivered to a loopback webhook, notifications/s;
//! - burn-down again with two processes on the same database;
//! - steady: 2,000 fires/s for 60 s with pruning running → lateness, and the runs table's
//!   heap and index sizes every 10 s (STEADY_RATE, STEADY_SECS).
//!
//! Run: `cargo bench --bench scheduler` (BURN_N, LATENESS_SECS, RESTART_JOBS to change sizes;
//! RESCUE_N, OUTBOX_N; BURN_PROCS=1,1,2 for which burn-downs; BENCH=burn|steady|lateness|restart|rescue|outbox to run one; PG_STATEMENTS=1
//! loads pg_stat_statements and prints, after the burn-down, where PostgreSQL spent its time
//! per statement; BENCH_SQL runs SQL — one or several statements — on the burn-down's database
//! after its jobs are inserted and before overseer starts, e.g.
//! `BENCH_SQL="ALTER ROLE CURRENT_USER SET random_page_cost = 1.1"`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{env_num, fresh_db, wait_for, Spawn};
use diesel::{Connection, PgConnection, RunQueryDsl};
use overseer::config::database_url::DatabaseUrl;
use overseer::db::cluster::{ClusterOptions, ManagedCluster};

#[derive(diesel::QueryableByName)]
struct N {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Pct {
    #[diesel(sql_type = diesel::sql_types::Double)]
    p50: f64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    p99: f64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    max: f64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn count(c: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<N>(c).unwrap().n
}

fn spawn(url: &DatabaseUrl, state: &std::path::Path, extra: &str) -> common::TestApp {
    let mut s = Spawn::managed(state);
    s.db = Some(url.clone());
    s.toml(extra).start()
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name (in parentheses): field 14 utime, 15 stime, in clock ticks.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds used by every running PostgreSQL process.
fn postgres_cpu_secs() -> f64 {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(cpu_secs)
        .sum()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn burn_down(pg: &ManagedCluster, tmp: &std::path::Path, procs: usize, nth: usize) {
    let n = env_num("BURN_N", 100_000);
    let url = fresh_db(pg, &format!("bench_burn_{nth}_{procs}"));
    let mut c = PgConnection::establish(url.expose()).unwrap();
    diesel::sql_query(format!(
        "INSERT INTO jobs (id, name, kind, payload, schedule, policy, next_fire_at) \
         SELECT gen_random_uuid(), 'burn-' || g, 'noop', '{{}}', \
                jsonb_build_object('kind', 'at', 'at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')), \
                '{{\"misfire_grace\": \"1h\"}}', now() \
         FROM generate_series(1, {n}) g"
    ))
    .execute(&mut c)
    .unwrap();
    if let Ok(sql) = std::env::var("BENCH_SQL") {
        // Several statements allowed (a simple-protocol batch), e.g. a planner setting per role.
        diesel::connection::SimpleConnection::batch_execute(&mut c, &sql).unwrap();
    }
    diesel::sql_query("ANALYZE").execute(&mut c).unwrap();
    let statements = std::env::var("PG_STATEMENTS").is_ok_and(|v| v == "1");
    if statements {
        diesel::sql_query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&mut c)
            .unwrap();
        diesel::sql_query("SELECT pg_stat_statements_reset()")
            .execute(&mut c)
            .unwrap();
    }
    let nodes: Vec<common::TestApp> = (0..procs)
        .map(|i| {
            spawn(
                &url,
                &tmp.join(format!("burn-{nth}-{procs}-{i}")),
                "[scheduler]\nmax_concurrency = 1024\nbatch_size = 1000",
            )
        })
        .collect();
    let started = Instant::now();
    let cpu_of =
        |nodes: &[common::TestApp]| nodes.iter().map(|o| cpu_secs(o.child.id())).sum::<f64>();
    let (cpu0, pg0) = (cpu_of(&nodes), postgres_cpu_secs());
    let wal = |c: &mut PgConnection| {
        (
            count(c, "SELECT wal_bytes::int8 AS n FROM pg_stat_wal"),
            count(c, "SELECT wal_fpi AS n FROM pg_stat_wal"),
        )
    };
    let (wal0, fpi0) = wal(&mut c);
    // Poll gently (a question every 250 ms) so the measuring does not compete for the 2
    // cores; the finish time is read from the table, not from when the poll noticed.
    // Done when no job is left to fire and no run waits or runs (partial indexes: a cheap
    // question, unlike counting the succeeded runs, which scans the table; the ORDER BY
    // keeps the planner on them — with every job active at ANALYZE time it chose a
    // sequential scan, which read past all the completed jobs at every poll, 3 % of the CPU;
    // runs first: while any run is in flight the jobs are not looked at).
    loop {
        if count(
            &mut c,
            "SELECT (EXISTS (SELECT 1 FROM runs WHERE state IN ('pending', 'running') \
                             ORDER BY job_id LIMIT 1) \
                     OR EXISTS (SELECT 1 FROM jobs WHERE state = 'active' \
                                ORDER BY next_fire_at LIMIT 1))::int::int8 AS n",
        ) == 0
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "burn-down did not finish"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let (cpu, pg_cpu) = (cpu_of(&nodes) - cpu0, postgres_cpu_secs() - pg0);
    let (wal1, fpi1) = wal(&mut c);
    println!(
        "burn-down WAL: {:.0} bytes per run, {} full-page images ({:.0} % of the bytes at most)",
        (wal1 - wal0) as f64 / n as f64,
        fpi1 - fpi0,
        ((fpi1 - fpi0) as f64 * 8192.0 * 100.0 / (wal1 - wal0).max(1) as f64).min(100.0)
    );
    println!(
        "burn-down CPU: overseer {cpu:.1} s ({:.0} µs per run), PostgreSQL {pg_cpu:.1} s ({:.0} µs per run)",
        cpu * 1e6 / n as f64,
        pg_cpu * 1e6 / n as f64
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) AS n FROM runs WHERE state = 'succeeded'"
        ),
        n as i64,
        "every job ran once, successfully"
    );
    #[derive(diesel::QueryableByName)]
    struct Span {
        #[diesel(sql_type = diesel::sql_types::Double)]
        secs: f64,
    }
    let secs = diesel::sql_query(
        "SELECT extract(epoch FROM max(finished_at) - min(queued_at))::float8 AS secs FROM runs",
    )
    .get_result::<Span>(&mut c)
    .unwrap()
    .secs;
    let procs_text = if procs == 1 {
        "1 process".to_string()
    } else {
        format!("{procs} processes")
    };
    println!(
        "burn-down: {n} noop jobs due now → all runs recorded in {secs:.2} s = {:.0} jobs/s ({procs_text}, max_concurrency 1024, batch 1000 each)",
        n as f64 / secs
    );
    common::table_row(
        &format!("burn-down: {n} `noop` jobs due now, until every run is recorded ({procs_text})"),
        &format!("{:.0} jobs/s ({secs:.1} s)", n as f64 / secs),
        if procs == 1 {
            "20,000 jobs/s"
        } else {
            "more than 1 process"
        },
    );
    if statements {
        statement_report(&mut c, n);
    }
    drop(nodes);
}

/// Steady state: `STEADY_RATE` fires/s (default 2,000) for `STEADY_SECS` (default 60) with
/// pruning running (runs kept 20 s, pruned every 5 s): lateness, and the size of the tables
/// and their indexes at the end (does autovacuum keep up?).
fn steady(pg: &ManagedCluster, tmp: &std::path::Path) {
    let secs = env_num("STEADY_SECS", 60);
    let rate = env_num("STEADY_RATE", 2000);
    let url = fresh_db(pg, "bench_steady");
    let mut c = PgConnection::establish(url.expose()).unwrap();
    diesel::sql_query(format!(
        "WITH t0 AS (SELECT date_trunc('second', now()) + interval '2 seconds' AS t) \
         INSERT INTO jobs (id, name, kind, payload, schedule, policy, next_fire_at) \
         SELECT gen_random_uuid(), 'steady-' || g, 'noop', '{{}}', \
                jsonb_build_object('kind', 'every', 'every', '1s', 'start', \
                    to_char((t + g * interval '1 second' / {rate}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')), \
                '{{\"overlap\": \"allow\"}}', t + g * interval '1 second' / {rate} \
         FROM generate_series(0, {rate} - 1) g, t0"
    ))
    .execute(&mut c)
    .unwrap();
    let size = |c: &mut PgConnection| -> (i64, i64, i64, i64) {
        #[derive(diesel::QueryableByName)]
        struct S {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            heap: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            indexes: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            live: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            dead: i64,
        }
        let s: S = diesel::sql_query(
            "SELECT pg_table_size('runs') AS heap, pg_indexes_size('runs') AS indexes, \
                    n_live_tup AS live, n_dead_tup AS dead \
             FROM pg_stat_user_tables WHERE relname = 'runs'",
        )
        .get_result(c)
        .unwrap();
        (s.heap, s.indexes, s.live, s.dead)
    };
    let o = spawn(
        &url,
        &tmp.join("steady"),
        "[scheduler]\nmax_concurrency = 512\n[runs]\nretention = \"20s\"\nfailed_retention = \"20s\"\nprune_interval = \"5s\"",
    );
    let warmup = Duration::from_secs(5);
    let t0 = Instant::now();
    let mut samples = Vec::new();
    while t0.elapsed() < warmup + Duration::from_secs(secs as u64) {
        std::thread::sleep(Duration::from_secs(10));
        samples.push((t0.elapsed().as_secs(), size(&mut c)));
    }
    drop(o);
    // What pruning left: the runs of about the last 20 s.
    let pct: Pct = diesel::sql_query(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l) * 1000 AS p50, \
                percentile_cont(0.99) WITHIN GROUP (ORDER BY l) * 1000 AS p99, \
                max(l) * 1000 AS max, count(*) AS n \
         FROM (SELECT extract(epoch FROM began_at - fire_at)::float8 AS l FROM runs \
               WHERE attempt = 1 AND began_at IS NOT NULL) s",
    )
    .get_result(&mut c)
    .unwrap();
    let mb = |b: i64| b as f64 / 1048576.0;
    println!(
        "steady state: {rate} fires/s for {secs} s with pruning (kept 20 s): lateness (began_at − fire_at) of the last 20 s of runs kept: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
        pct.n, pct.p50, pct.p99, pct.max
    );
    for (at, (heap, idx, live, dead)) in &samples {
        println!(
            "  at {at:>3} s: runs heap {:.1} MB, indexes {:.1} MB, {live} live / {dead} dead rows",
            mb(*heap),
            mb(*idx)
        );
    }
    let (heap, idx, _, _) = samples.last().map(|s| s.1).unwrap_or_default();
    common::table_row(
        &format!("steady state: {rate} fires/s for {secs} s, pruning on (runs kept 20 s)"),
        &format!(
            "p50 {:.1} ms, p99 {:.1} ms; runs heap {:.0} MB + indexes {:.0} MB at the end",
            pct.p50,
            pct.p99,
            mb(heap),
            mb(idx)
        ),
        "p99 ≤ 50 ms; size flat",
    );
}

/// Where PostgreSQL spent its time during the burn-down, per statement (pg_stat_statements):
/// total and per-call time, calls, rows, and the share of all statement time.
fn statement_report(c: &mut PgConnection, runs: usize) {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        query: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        calls: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        rows: i64,
        #[diesel(sql_type = diesel::sql_types::Double)]
        total_ms: f64,
        #[diesel(sql_type = diesel::sql_types::Double)]
        share: f64,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query, calls, rows, \
                total_exec_time AS total_ms, \
                100 * total_exec_time / sum(total_exec_time) OVER () AS share \
         FROM pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         ORDER BY total_exec_time DESC LIMIT 12",
    )
    .load(c)
    .unwrap();
    println!("where PostgreSQL's time went ({runs} runs), by statement:");
    println!("| statement | calls | rows | total ms | µs per run | share |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        println!(
            "| `{}` | {} | {} | {:.0} | {:.1} | {:.1} % |",
            r.query.replace('|', "\\|"),
            r.calls,
            r.rows,
            r.total_ms,
            r.total_ms * 1000.0 / runs as f64,
            r.share
        );
    }
}

fn lateness(pg: &ManagedCluster, tmp: &std::path::Path) {
    let secs = env_num("LATENESS_SECS", 20);
    let url = fresh_db(pg, "bench_lateness");
    let mut c = PgConnection::establish(url.expose()).unwrap();
    // 1,000 jobs every second, anchors 1 ms apart: 1,000 fires/s spread over each second,
    // starting 2 s from now.
    diesel::sql_query(
        "WITH t0 AS (SELECT date_trunc('second', now()) + interval '2 seconds' AS t) \
         INSERT INTO jobs (id, name, kind, payload, schedule, policy, next_fire_at) \
         SELECT gen_random_uuid(), 'tick-' || g, 'noop', '{}', \
                jsonb_build_object('kind', 'every', 'every', '1s', 'start', \
                    to_char((t + g * interval '1 millisecond') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')), \
                '{\"overlap\": \"allow\"}', t + g * interval '1 millisecond' \
         FROM generate_series(0, 999) g, t0",
    )
    .execute(&mut c)
    .unwrap();
    let o = spawn(
        &url,
        &tmp.join("lateness"),
        "[scheduler]\nmax_concurrency = 256",
    );
    let warmup = Duration::from_secs(3);
    let t0 = Instant::now();
    wait_for(
        "the measured window",
        Duration::from_secs(secs as u64 + 30),
        || (t0.elapsed() >= warmup + Duration::from_secs(secs as u64)).then_some(()),
    );
    drop(o);
    // The fires the window should hold: one per millisecond (the anchors are 1 ms apart)
    // from the end of the warm-up to the last fire measured.
    let expected: i64 = count(
        &mut c,
        &format!(
            "SELECT (extract(epoch FROM (SELECT max(fire_at) FROM runs WHERE began_at IS NOT NULL) \
                     - ((SELECT min(fire_at) FROM runs) + interval '{} seconds')) * 1000)::bigint AS n",
            warmup.as_secs()
        ),
    );
    let mut pct = |column: &str| -> Pct {
        diesel::sql_query(format!(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l) * 1000 AS p50, \
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY l) * 1000 AS p99, \
                    max(l) * 1000 AS max, count(*) AS n \
             FROM (SELECT extract(epoch FROM {column} - fire_at)::float8 AS l FROM runs \
                   WHERE attempt = 1 AND {column} IS NOT NULL \
                     AND fire_at > (SELECT min(fire_at) FROM runs) + interval '{} seconds') s",
            warmup.as_secs()
        ))
        .get_result(&mut c)
        .unwrap()
    };
    let began = pct("began_at");
    let claimed = pct("started_at");
    println!(
        "lateness at 1,000 fires/s for {secs} s, when the work began (began_at − fire_at): n={} of {expected} fires, p50={:.2} ms p99={:.2} ms max={:.2} ms",
        began.n, began.p50, began.p99, began.max
    );
    println!(
        "  the scheduler's wake-up alone (started_at − fire_at, taken in the fire transaction): p50={:.2} ms p99={:.2} ms max={:.2} ms",
        claimed.p50, claimed.p99, claimed.max
    );
    common::table_row(
        &format!("lateness at 1,000 fires/s for {secs} s, fire → the executor starts the work (began_at − fire_at, n={} of {expected})", began.n),
        &format!("p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", began.p50, began.p99, began.max),
        "p99 ≤ 20 ms",
    );
    common::table_row(
        "… the scheduler's wake-up alone (started_at − fire_at)",
        &format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            claimed.p50, claimed.p99, claimed.max
        ),
        "",
    );
    assert_eq!(began.n, expected, "every fire in the window was measured");
}

fn restart(pg: &ManagedCluster, tmp: &std::path::Path) {
    let jobs = env_num("RESTART_JOBS", 1_000_000);
    let url = fresh_db(pg, "bench_restart");
    let mut c = PgConnection::establish(url.expose()).unwrap();
    // Baseline RSS with an empty jobs table.
    let o = spawn(&url, &tmp.join("restart0"), "");
    o.wait_ready(Duration::from_secs(60));
    let rss_empty = rss_kib(o.child.id());
    drop(o);
    let fill = Instant::now();
    diesel::sql_query(format!(
        "INSERT INTO jobs (id, name, kind, payload, schedule, policy, next_fire_at) \
         SELECT gen_random_uuid(), 'stored-' || g, 'noop', '{{}}', \
                '{{\"kind\": \"cron\", \"cron\": \"0 3 * * *\", \"timezone\": \"UTC\"}}', '{{}}', \
                now() + interval '1 hour' + (g % 86400) * interval '1 second' \
         FROM generate_series(1, {jobs}) g"
    ))
    .execute(&mut c)
    .unwrap();
    diesel::sql_query("ANALYZE").execute(&mut c).unwrap();
    println!(
        "restart: stored {jobs} jobs in {:.1} s",
        fill.elapsed().as_secs_f64()
    );
    // One job due now: the first dispatch.
    diesel::sql_query(
        "INSERT INTO jobs (id, name, kind, payload, schedule, policy, next_fire_at) \
         VALUES (gen_random_uuid(), 'due-now', 'noop', '{}', \
                 jsonb_build_object('kind', 'at', 'at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')), \
                 '{\"misfire_grace\": \"1h\"}', now())",
    )
    .execute(&mut c)
    .unwrap();
    let spawned_at = chrono::Utc::now();
    let o = spawn(&url, &tmp.join("restart1"), "");
    #[derive(diesel::QueryableByName)]
    struct Started {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
        started_at: Option<chrono::DateTime<chrono::Utc>>,
    }
    let first = wait_for("the first dispatch", Duration::from_secs(60), || {
        diesel::sql_query("SELECT min(started_at) AS started_at FROM runs")
            .get_result::<Started>(&mut c)
            .unwrap()
            .started_at
    });
    let to_dispatch = (first - spawned_at).num_milliseconds();
    o.wait_ready(Duration::from_secs(60));
    let rss_full = rss_kib(o.child.id());
    println!(
        "restart with {jobs} stored jobs: serve → first dispatch {to_dispatch} ms; RSS {} MiB (empty table: {} MiB)",
        rss_full / 1024,
        rss_empty / 1024
    );
    common::table_row(
        &format!("restart with {jobs} stored jobs: `serve` → first dispatch"),
        &format!("{to_dispatch} ms"),
        "≤ 1 s",
    );
    common::table_row(
        &format!("RSS with {jobs} stored jobs / with none"),
        &format!("{} MiB / {} MiB", rss_full / 1024, rss_empty / 1024),
        "flat",
    );
    drop(o);
}

/// Rescue latency: 1,000 runs in flight on a node that is killed; time until all of them
/// are pending (or running) again as attempt 2, with the test configuration of the
/// zombie-detection issue (1 s sweeps, 3 s node timeout, 2 s lease).
fn rescue(pg: &ManagedCluster, tmp: &std::path::Path) {
    let n = env_num("RESCUE_N", 1000);
    let url = fresh_db(pg, "bench_rescue");
    let mut c = PgConnection::establish(url.expose()).unwrap();
    diesel::sql_query(format!(
        "INSERT INTO jobs (id, name, kind, payload, schedule, policy, next_fire_at) \
         SELECT gen_random_uuid(), 'hang-' || g, 'noop', '{{\"sleep_ms\": 600000}}', \
                jsonb_build_object('kind', 'at', 'at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')), \
                '{{\"misfire_grace\": \"1h\", \"max_retries\": 1, \"retry_delays\": [\"0s\"]}}', now() \
         FROM generate_series(1, {n}) g"
    ))
    .execute(&mut c)
    .unwrap();
    let fast = "[node]\nheartbeat_interval = \"500ms\"\n[scheduler]\nheartbeat_interval = \"500ms\"\nmax_concurrency = 2000\n\
                [zombie]\nsweep_interval = \"1s\"\nnode_timeout = \"3s\"\nheartbeat_timeout = \"10s\"\nlease = \"2s\"";
    let mut a = spawn(&url, &tmp.join("rescue-a"), fast);
    wait_for("all runs in flight", Duration::from_secs(120), || {
        (count(
            &mut c,
            "SELECT count(*) AS n FROM runs WHERE state = 'running'",
        ) >= n as i64)
            .then_some(())
    });
    // The rescuer must not pick up the retries before we measure: it runs nothing itself.
    let b = spawn(
        &url,
        &tmp.join("rescue-b"),
        &fast.replace("max_concurrency = 2000", "max_concurrency = 1"),
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(a.child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    a.child.wait().unwrap();
    let killed = Instant::now();
    loop {
        if count(&mut c, "SELECT count(*) AS n FROM runs WHERE attempt = 2") >= n as i64 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "rescue did not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "rescue: {n} runs in flight on a killed node → all pending again after {:.2} s (node_timeout 3 s, sweeps 1 s, lease 2 s)",
        killed.elapsed().as_secs_f64()
    );
    common::table_row(
        &format!("rescue: {n} runs in flight on a node killed with SIGKILL → all pending again (1 s sweeps, 3 s node timeout, 2 s lease)"),
        &format!("{:.1} s", killed.elapsed().as_secs_f64()),
        "≤ 5 s",
    );
    drop(b);
}

fn outbox(pg: &ManagedCluster, tmp: &std::path::Path) {
    let n = env_num("OUTBOX_N", 20_000);
    let url = fresh_db(pg, "bench_outbox");
    let mut c = PgConnection::establish(url.expose()).unwrap();
    let sink = common::sink::Sink::start();
    let o = spawn(
        &url,
        &tmp.join("outbox"),
        &format!(
            "[notify]\npoll_interval = \"100ms\"\n\
             [[notify.channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\nsecret = \"k\"\n\
             [[notify.routes]]\nevents = [\"none\"]\nchannels = [\"hook\"]\n",
            sink.url
        ),
    );
    o.wait_ready(Duration::from_secs(60));
    let started = Instant::now();
    diesel::sql_query(format!(
        "INSERT INTO notifications (event, severity, subject, body, channel, dedupe_key) \
         SELECT 'job.failed', 'error', 'job j-' || g || ' failed: dead letter', \
                'Job `j-' || g || '` failed and has no retry left.', 'hook', 'bench:' || g \
         FROM generate_series(1, {n}) g"
    ))
    .execute(&mut c)
    .unwrap();
    loop {
        if count(
            &mut c,
            "SELECT count(*) AS n FROM notifications WHERE state = 'sent'",
        ) >= n as i64
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "outbox did not drain"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = started.elapsed().as_secs_f64();
    let distinct = sink.counts().len();
    println!(
        "outbox: {n} notifications → loopback webhook (HMAC-signed) in {secs:.2} s = {:.0} notifications/s; {} requests, {distinct} distinct keys",
        n as f64 / secs,
        sink.total()
    );
    common::table_row(
        &format!("outbox: {n} pending notifications → HMAC-signed webhook on loopback, until all recorded `sent` (1 process)"),
        &format!("{:.0} notifications/s ({secs:.1} s)", n as f64 / secs),
        "≥ 2,000/s",
    );
    drop(o);
}

fn main() {
    let which = std::env::var("BENCH").unwrap_or_default();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut pg = ManagedCluster::start(&ClusterOptions {
        dir: tmp.path().join("pg"),
        ephemeral: false,
        settings: vec![
            ("shared_buffers".into(), "512MB".into()),
            (
                "log_min_duration_statement".into(),
                std::env::var("PG_LOG_MS").unwrap_or("-1".into()),
            ),
        ]
        .into_iter()
        .chain(
            std::env::var("PG_STATEMENTS")
                .is_ok_and(|v| v == "1")
                .then(|| {
                    [
                        (
                            "shared_preload_libraries".into(),
                            "pg_stat_statements".into(),
                        ),
                        ("pg_stat_statements.track".into(), "all".into()),
                    ]
                })
                .into_iter()
                .flatten(),
        )
        .collect(),
    })
    .expect("start the benchmark cluster");
    println!("PostgreSQL: managed cluster, fsync on (default durability), same machine");
    if which.is_empty() || which == "burn" {
        // BURN_PROCS=1,1,2: which burn-downs to run, in order (repeat one to see the noise).
        let procs = std::env::var("BURN_PROCS").unwrap_or("1,2".into());
        for (i, p) in procs.split(',').enumerate() {
            let p: usize = p
                .trim()
                .parse()
                .expect("BURN_PROCS: numbers separated by commas");
            burn_down(&pg, tmp.path(), p, i);
        }
    }
    if which.is_empty() || which == "steady" {
        steady(&pg, tmp.path());
    }
    if which.is_empty() || which == "lateness" {
        lateness(&pg, tmp.path());
    }
    if which.is_empty() || which == "restart" {
        restart(&pg, tmp.path());
    }
    if which.is_empty() || which == "rescue" {
        rescue(&pg, tmp.path());
    }
    if which.is_empty() || which == "outbox" {
        outbox(&pg, tmp.path());
    }
    if let Ok(dir) = std::env::var("KEEP_PG_LOG") {
        let _ = std::fs::copy(tmp.path().join("pg/postgres.log"), dir);
    }
    pg.stop().unwrap();
}
