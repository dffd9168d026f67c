//! Every hot query of the scheduler, the notifier and the API, EXPLAINed on 100,000 jobs,
//! 100,000 runs and 100,000 notifications:
//! none may scan `jobs` or `runs` sequentially. The SQL mirrors db/jobs.rs and db/runs.rs;
//! when a query there changes, change it here.

mod common;

use common::*;
use diesel::RunQueryDsl;

#[derive(diesel::QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
    line: String,
}

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
}

#[test]
fn hot_queries_use_indexes_at_100k_rows() {
    let db = TestDb::migrated();
    let mut c = db.conn();
    diesel::sql_query(
        "INSERT INTO jobs (id, name, kind, payload, schedule, policy, state, next_fire_at, tags) \
         SELECT gen_random_uuid(), 'job-' || lpad(g::text, 6, '0'), \
                CASE WHEN g % 2 = 0 THEN 'noop' ELSE 'http' END, '{}', \
                '{\"kind\": \"every\", \"every\": \"1h\"}', '{}', \
                CASE WHEN g % 10 = 0 THEN 'paused' ELSE 'active' END, \
                now() + (g % 43200) * interval '1 minute', \
                ARRAY['tag-' || (g % 100)] \
         FROM generate_series(1, 100000) g",
    )
    .execute(&mut c)
    .unwrap();
    diesel::sql_query(
        "WITH j AS (SELECT id, row_number() OVER (ORDER BY name) AS rn FROM jobs) \
         INSERT INTO runs (id, job_id, fire_at, attempt, state, due_at, queued_at, finished_at) \
         SELECT gen_random_uuid(), j.id, now() - (g % 1000) * interval '1 minute', 1, \
                CASE WHEN g % 100 = 0 THEN 'pending' WHEN g % 100 = 1 THEN 'running' \
                     WHEN g % 100 = 2 THEN 'failed' ELSE 'succeeded' END, \
                now() - (g % 1000) * interval '1 minute', now() - (g % 1000) * interval '1 minute', \
                CASE WHEN g % 100 > 1 THEN now() - (g % 1000) * interval '1 minute' END \
         FROM generate_series(1, 100000) g JOIN j ON j.rn = (g % 100000) + 1",
    )
    .execute(&mut c)
    .unwrap();
    // 100,000 notifications, 1 % pending.
    diesel::sql_query(
        "INSERT INTO notifications (event, severity, subject, body, channel, dedupe_key, state, \
                                    next_attempt_at, created_at) \
         SELECT 'job.failed', 'error', 's', 'b', CASE WHEN g % 2 = 0 THEN 'log' ELSE 'hook' END, \
                'k' || g, CASE WHEN g % 100 = 0 THEN 'pending' ELSE 'sent' END, \
                now() - (g % 1000) * interval '1 minute', now() - (g % 1000) * interval '1 hour' \
         FROM generate_series(1, 100000) g",
    )
    .execute(&mut c)
    .unwrap();
    diesel::sql_query("ANALYZE notifications")
        .execute(&mut c)
        .unwrap();
    diesel::sql_query("ANALYZE jobs").execute(&mut c).unwrap();
    diesel::sql_query("ANALYZE runs").execute(&mut c).unwrap();
    let job_id = diesel::sql_query("SELECT id::text AS id FROM jobs WHERE name = 'job-050000'")
        .get_result::<Id>(&mut c)
        .unwrap()
        .id;
    let run_id = diesel::sql_query("SELECT id::text AS id FROM runs LIMIT 1")
        .get_result::<Id>(&mut c)
        .unwrap()
        .id;

    let queries: Vec<(&str, String)> = vec![
        ("fire: due jobs", "SELECT * FROM jobs WHERE state = 'active' AND next_fire_at <= now() ORDER BY next_fire_at LIMIT 500 FOR UPDATE SKIP LOCKED".into()),
        ("fire: busy jobs", format!("SELECT DISTINCT job_id FROM runs WHERE job_id = ANY(ARRAY['{job_id}'::uuid]) AND state IN ('pending', 'running')")),
        ("fire: move next_fire_at", format!("UPDATE jobs SET next_fire_at = v.next FROM unnest(ARRAY['{job_id}'::uuid], ARRAY[now()]) AS v(id, next) WHERE jobs.id = v.id")),
        ("scheduler: next due job", "SELECT min(next_fire_at) FROM jobs WHERE state = 'active'".into()),
        ("scheduler: next due run", "SELECT min(due_at) FROM runs WHERE state = 'pending'".into()),
        ("scheduler: pending/running counts", "SELECT count(*) FROM runs WHERE state = 'pending'".into()),
        ("dispatch: claim", "WITH picked AS (SELECT r.id FROM runs r \
            WHERE r.state = 'pending' AND r.due_at <= now() \
              AND (r.overlap <> 'queue' OR (NOT EXISTS (SELECT 1 FROM runs x WHERE x.job_id = r.job_id AND x.state = 'running') \
                AND r.id = (SELECT y.id FROM runs y WHERE y.job_id = r.job_id AND y.state = 'pending' ORDER BY y.due_at, y.fire_at, y.attempt LIMIT 1))) \
            ORDER BY r.priority DESC, r.due_at LIMIT 64 FOR UPDATE SKIP LOCKED), \
            claimed AS (UPDATE runs SET state = 'running' FROM picked WHERE runs.id = picked.id RETURNING runs.id, runs.job_id) \
            SELECT c.id, j.name, j.kind, j.payload FROM claimed c JOIN jobs j ON j.id = c.job_id".into()),
        ("complete: fenced update", format!("UPDATE runs SET state = v.state FROM unnest(ARRAY['{run_id}'::uuid], ARRAY['succeeded']) AS v(id, state) \
            WHERE runs.id = v.id AND runs.state = 'running' AND runs.node_id = '{job_id}'")),
        ("heartbeat", format!("UPDATE runs SET heartbeat_at = now() WHERE id = ANY(ARRAY['{run_id}'::uuid]) AND state = 'running'")),
        ("api: runs of a job", format!("SELECT * FROM runs WHERE job_id = '{job_id}' ORDER BY queued_at DESC, id DESC LIMIT 101")),
        ("api: runs by state", "SELECT * FROM runs WHERE state = 'failed' ORDER BY queued_at DESC, id DESC LIMIT 101".into()),
        ("api: runs newest first", "SELECT * FROM runs ORDER BY queued_at DESC, id DESC LIMIT 101".into()),
        ("api: runs in a time range", "SELECT * FROM runs WHERE queued_at >= now() - interval '1 hour' AND queued_at < now() ORDER BY queued_at DESC, id DESC LIMIT 101".into()),
        ("api: jobs page", "SELECT * FROM jobs WHERE name > 'job-050000' ORDER BY name LIMIT 101".into()),
        ("api: jobs by state", "SELECT * FROM jobs WHERE state = 'paused' ORDER BY name LIMIT 101".into()),
        ("api: jobs by kind", "SELECT * FROM jobs WHERE kind = 'http' ORDER BY name LIMIT 101".into()),
        ("api: jobs by tag", "SELECT * FROM jobs WHERE tags @> ARRAY['tag-7'] ORDER BY name LIMIT 101".into()),
        ("api: job by name", "SELECT * FROM jobs WHERE name = 'job-000042'".into()),
        ("requeue: latest attempt", format!("SELECT max(attempt) FROM runs WHERE job_id = '{job_id}' AND fire_at = now()")),
        ("cancel: pending runs of a job", format!("UPDATE runs SET state = 'cancelled' WHERE job_id = '{job_id}' AND state IN ('pending', 'deferred')")),
        ("prune", "DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE \
            (state IN ('succeeded', 'missed', 'cancelled') AND finished_at < now() - interval '30 days') \
            OR (state IN ('failed', 'timed_out', 'zombie') AND finished_at < now() - interval '90 days') LIMIT 5000)".into()),
        ("notifier: claim", "UPDATE notifications n SET attempts = n.attempts + 1, next_attempt_at = now() + interval '15 seconds' \
            WHERE n.id = ANY(ARRAY(SELECT id FROM notifications WHERE state = 'pending' AND next_attempt_at <= now() \
                  ORDER BY next_attempt_at LIMIT 500 FOR UPDATE SKIP LOCKED)) RETURNING n.id".into()),
        ("notifier: record", format!("UPDATE notifications n SET state = v.state FROM unnest(ARRAY['{run_id}'::uuid], ARRAY['sent']) AS v(id, state) \
            WHERE n.id = v.id AND n.state = 'pending'")),
        ("scheduler: promote deferred", "UPDATE runs SET state = 'pending' WHERE state = 'deferred' AND due_at <= now()".into()),
        ("scheduler: next deferred run", "SELECT min(due_at) FROM runs WHERE state = 'deferred'".into()),
        ("fire: busy jobs (with deferred)", format!("SELECT DISTINCT job_id FROM runs WHERE job_id = ANY(ARRAY['{job_id}'::uuid]) AND state IN ('pending', 'running', 'deferred')")),
        ("notifier: backlog", "SELECT count(*) FROM notifications WHERE state = 'pending'".into()),
        ("dashboard: runs per minute", "SELECT date_trunc('minute', finished_at) AS at, count(*), \
            count(*) FILTER (WHERE state IN ('failed', 'timed_out', 'zombie')) FROM runs \
            WHERE finished_at IS NOT NULL AND finished_at >= now() - interval '1 hour' GROUP BY 1 ORDER BY 1".into()),
        ("api: notifications newest first", "SELECT * FROM notifications ORDER BY created_at DESC, id DESC LIMIT 101".into()),
        ("prune: notifications", "DELETE FROM notifications WHERE id = ANY(ARRAY(SELECT id FROM notifications \
            WHERE created_at < now() - interval '30 days' AND state <> 'pending' ORDER BY created_at LIMIT 5000))".into()),
    ];
    let mut failures = Vec::new();
    for (name, sql) in &queries {
        let plan: Vec<PlanLine> = diesel::sql_query(format!("EXPLAIN {sql}"))
            .load(&mut c)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = plan
            .iter()
            .map(|l| l.line.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        println!("-- {name}\n{text}\n");
        if text.contains("Seq Scan on jobs")
            || text.contains("Seq Scan on runs")
            || text.contains("Seq Scan on notifications")
        {
            failures.push(format!("{name}:\n{text}"));
        }
    }
    assert!(
        failures.is_empty(),
        "sequential scans:\n{}",
        failures.join("\n\n")
    );
}
