//! Every hot query of the scheduler, the executor, the zombie detector, the notifier, the
//! quota counter and the API, EXPLAINed on 100,000 jobs, runs, notifications and quota
//! windows: none may scan those tables sequentially. Statements written as SQL are the
//! code's own constants (`db::…::*_SQL`), prepared with the parameter types their binds
//! use and EXPLAINed with sample values; those written with diesel's query builder (the
//! due-jobs and busy-jobs reads of a fire, the heartbeat, the API's listings) are mirrored
//! here by hand, marked `mirror`.

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
         SELECT CASE WHEN g % 2 = 0 THEN gen_random_uuid() ELSE \
                  (lpad(to_hex((extract(epoch FROM now() - (g % 1000) * interval '1 minute') * 1000)::int8), 12, '0') \
                   || '7' || lpad(to_hex(g % 4096), 3, '0') || '8' || substr(md5(g::text), 1, 15))::uuid END, \
                j.id, now() - (g % 1000) * interval '1 minute', 1, \
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
    // 100,000 quota windows over 1,000 quotas.
    diesel::sql_query(
        "INSERT INTO quotas (name, day_limit) SELECT 'q' || g, 100 FROM generate_series(1, 1000) g",
    )
    .execute(&mut c)
    .unwrap();
    diesel::sql_query(
        "INSERT INTO quota_usage (quota, window_kind, window_start, window_end, used) \
         SELECT 'q' || (g % 1000 + 1), 'day', date_trunc('day', now()) - (g / 1000) * interval '1 day', \
                date_trunc('day', now()) - (g / 1000 - 1) * interval '1 day', g % 100 \
         FROM generate_series(0, 99999) g",
    )
    .execute(&mut c)
    .unwrap();
    diesel::sql_query("ANALYZE quota_usage")
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

    use overseer::db::{fire, notifications, quotas, runs};
    let day = "date_trunc('day', now())";
    // The code's own statements: (name, SQL, parameter types, sample values).
    let own: Vec<(&str, &str, &str, String)> = vec![
        ("fire: move next_fire_at", fire::MOVE_NEXT_FIRE_SQL, "uuid[], timestamptz[], text[], timestamptz",
            format!("ARRAY['{job_id}'::uuid], ARRAY[now()], ARRAY['active'], now()")),
        ("fire: insert the runs", runs::INSERT_SQL,
            "uuid[], uuid[], timestamptz[], int4[], text[], int2[], text[], int4[], timestamptz[], \
             timestamptz[], timestamptz[], text[], text[], uuid[], timestamptz[], timestamptz[], int8[]",
            format!("ARRAY[gen_random_uuid()], ARRAY['{job_id}'::uuid], ARRAY[now()], ARRAY[1], \
                     ARRAY['running'], ARRAY[5::int2], ARRAY['skip'], ARRAY[1], ARRAY[now()], ARRAY[now()], \
                     ARRAY[NULL::timestamptz], ARRAY[NULL::text], ARRAY[NULL::text], ARRAY['{job_id}'::uuid], \
                     ARRAY[now()], ARRAY[now()], ARRAY[0::int8]")),
        ("dispatch: claim", runs::CLAIM_SQL, "uuid, timestamptz, bigint",
            format!("'{job_id}', now(), 64")),
        ("complete: fenced update", runs::COMPLETE_SQL,
            "uuid[], text[], jsonb[], text[], text[], timestamptz, uuid, timestamptz[], timestamptz[]",
            format!("ARRAY['{run_id}'::uuid], ARRAY['succeeded'], ARRAY[NULL::jsonb], ARRAY[NULL::text], ARRAY[NULL::text], now(), '{job_id}', ARRAY[NULL::timestamptz], ARRAY[now()]")),
        ("zombie sweep: running runs", runs::RUNNING_SQL, "", String::new()),
        ("zombie: rescue", runs::RESCUE_SQL, "uuid[], text[], timestamptz",
            format!("ARRAY['{run_id}'::uuid], ARRAY['node_dead'], now()")),
        ("prune: runs", runs::PRUNE_SQL, "timestamptz, timestamptz, bigint",
            "now() - interval '30 days', now() - interval '90 days', 5000".into()),
        ("dashboard: runs per minute", runs::ACTIVITY_SQL, "timestamptz, boolean",
            "now() - interval '1 hour', false".into()),
        ("gauges: the cluster's backlog", runs::BACKLOG_SQL, "", String::new()),
        ("notifier: claim", notifications::CLAIM_SQL, "bigint, bigint", "500, 15000".into()),
        ("notifier: record", notifications::RECORD_SQL, "uuid[], text[], timestamptz[], text[], timestamptz",
            format!("ARRAY['{run_id}'::uuid], ARRAY['sent'], ARRAY[now()], ARRAY[NULL::text], now()")),
        ("prune: notifications", notifications::PRUNE_SQL, "timestamptz, bigint",
            "now() - interval '30 days', 5000".into()),
        ("consume_batch: create windows", quotas::ENSURE_WINDOWS_SQL, "text, text[], timestamptz[], timestamptz[]",
            format!("'q7', ARRAY['day'], ARRAY[{day}], ARRAY[{day} + interval '1 day']")),
        ("consume_batch: lock windows", quotas::LOCK_WINDOWS_SQL, "text, text[], timestamptz[]",
            format!("'q7', ARRAY['day'], ARRAY[{day}]")),
        ("consume_batch: add usage", quotas::ADD_USAGE_SQL, "text, text[], timestamptz[], bigint",
            format!("'q7', ARRAY['day'], ARRAY[{day}], 1")),
    ];
    let mut queries: Vec<(&str, String)> = Vec::new();
    for (i, (name, sql, types, values)) in own.iter().enumerate() {
        let types = if types.is_empty() {
            String::new()
        } else {
            format!("({types})")
        };
        diesel::sql_query(format!("PREPARE own_{i} {types} AS {sql}"))
            .execute(&mut c)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let args = if values.is_empty() {
            String::new()
        } else {
            format!("({values})")
        };
        queries.push((name, format!("EXECUTE own_{i}{args}")));
    }
    // Mirrors of statements written with diesel's query builder. The run listing's two
    // parts (db::runs::list): time-ordered ids by the primary key, older runs by the partial
    // index; the id bounds are the UUIDv7 floors of a time.
    let v7 = |t: &str| {
        format!(
            "(lpad(to_hex((extract(epoch FROM {t}) * 1000)::int8), 12, '0') || '70008000000000000000')::uuid"
        )
    };
    let older =
        "NOT (id >= '01a23933-6800-7000-8000-000000000000' AND substring(id::text, 15, 1) = '7')";
    let upper = v7("now() + interval '1 day'");
    let lower = v7("now() - interval '1 hour' - interval '1 day'");
    let mirrored: Vec<(&str, String)> = vec![
        ("fire: due jobs (mirror)", "SELECT * FROM jobs WHERE state = 'active' AND next_fire_at <= now() ORDER BY next_fire_at LIMIT 500 FOR UPDATE SKIP LOCKED".into()),
        ("fire: busy jobs (mirror)", format!("SELECT DISTINCT job_id FROM runs WHERE job_id = ANY(ARRAY['{job_id}'::uuid]) AND state IN ('pending', 'running', 'deferred')")),
        ("scheduler: next due job (mirror)", "SELECT min(next_fire_at) FROM jobs WHERE state = 'active'".into()),
        ("scheduler: next due run (mirror)", "SELECT min(due_at) FROM runs WHERE state = 'pending'".into()),
        ("scheduler: pending/running counts (mirror)", "SELECT count(*) FROM runs WHERE state = 'pending'".into()),
        ("heartbeat (mirror)", format!("UPDATE runs SET heartbeat_at = now() WHERE id = ANY(ARRAY['{run_id}'::uuid]) AND state = 'running' AND node_id = '{job_id}' RETURNING id")),
        ("api: runs of a job, by id (mirror)", format!("SELECT * FROM runs WHERE job_id = '{job_id}' AND id >= '01a23933-6800-7000-8000-000000000000' AND id < {upper} ORDER BY id DESC LIMIT 101")),
        ("api: runs of a job, older (mirror)", format!("SELECT * FROM runs WHERE job_id = '{job_id}' AND {older} ORDER BY queued_at DESC, id DESC LIMIT 101")),
        ("api: runs by state, by id (mirror)", format!("SELECT * FROM runs WHERE state = 'failed' AND id >= '01a23933-6800-7000-8000-000000000000' AND id < {upper} ORDER BY id DESC LIMIT 101")),
        ("api: runs by state, older (mirror)", format!("SELECT * FROM runs WHERE state = 'failed' AND {older} ORDER BY queued_at DESC, id DESC LIMIT 101")),
        ("api: runs newest first, by id (mirror)", format!("SELECT * FROM runs WHERE id >= '01a23933-6800-7000-8000-000000000000' AND id < {upper} ORDER BY id DESC LIMIT 101")),
        ("api: runs newest first, older (mirror)", format!("SELECT * FROM runs WHERE {older} ORDER BY queued_at DESC, id DESC LIMIT 101")),
        ("api: runs in a time range, by id (mirror)", format!("SELECT * FROM runs WHERE queued_at >= now() - interval '1 hour' AND queued_at < now() AND id >= '01a23933-6800-7000-8000-000000000000' AND id < {upper} AND id >= {lower} ORDER BY id DESC LIMIT 101")),
        ("api: runs in a time range, older (mirror)", format!("SELECT * FROM runs WHERE queued_at >= now() - interval '1 hour' AND queued_at < now() AND {older} ORDER BY queued_at DESC, id DESC LIMIT 101")),
        ("api: jobs page (mirror)", "SELECT * FROM jobs WHERE name > 'job-050000' ORDER BY name LIMIT 101".into()),
        ("api: jobs by state (mirror)", "SELECT * FROM jobs WHERE state = 'paused' ORDER BY name LIMIT 101".into()),
        ("api: jobs by kind (mirror)", "SELECT * FROM jobs WHERE kind = 'http' ORDER BY name LIMIT 101".into()),
        ("api: jobs by tag (mirror)", "SELECT * FROM jobs WHERE tags @> ARRAY['tag-7'] AND tags <> '{}' ORDER BY name LIMIT 101".into()),
        ("api: job by name (mirror)", "SELECT * FROM jobs WHERE name = 'job-000042'".into()),
        ("requeue: latest attempt (mirror)", format!("SELECT max(attempt) FROM runs WHERE job_id = '{job_id}' AND fire_at = now()")),
        ("cancel: pending runs of a job (mirror)", format!("UPDATE runs SET state = 'cancelled' WHERE job_id = '{job_id}' AND state IN ('pending', 'deferred')")),
        ("scheduler: promote deferred (mirror)", "UPDATE runs SET state = 'pending' WHERE state = 'deferred' AND due_at <= now()".into()),
        ("scheduler: next deferred run (mirror)", "SELECT min(due_at) FROM runs WHERE state = 'deferred'".into()),
        ("notifier: backlog (mirror)", "SELECT count(*) FROM notifications WHERE state = 'pending'".into()),
        ("api: notifications newest first (mirror)", "SELECT * FROM notifications ORDER BY created_at DESC, id DESC LIMIT 101".into()),
    ];
    queries.extend(mirrored);
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
        if ["jobs", "runs", "notifications", "quota_usage"]
            .iter()
            .any(|t| {
                text.contains(&format!("Seq Scan on {t} "))
                    || text.ends_with(&format!("Seq Scan on {t}"))
            })
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

/// runs.job_id has no foreign key (migration 000017: its per-row check cost every fire); a
/// job deleted by hand still takes its runs — and their run tokens — with it.
#[test]
fn a_job_deleted_by_hand_takes_its_runs_along() {
    let db = TestDb::migrated();
    let mut c = db.conn();
    diesel::sql_query(
        "INSERT INTO jobs (id, name, kind, payload, schedule, policy, state, next_fire_at) VALUES \
         ('00000000-0000-4000-8000-000000000001', 'gone', 'noop', '{}', '{\"every\": \"1h\"}', '{}', 'active', now()), \
         ('00000000-0000-4000-8000-000000000002', 'kept', 'noop', '{}', '{\"every\": \"1h\"}', '{}', 'active', now())",
    )
    .execute(&mut c)
    .unwrap();
    diesel::sql_query(
        "INSERT INTO runs (id, job_id, fire_at, attempt, state, due_at) \
         SELECT gen_random_uuid(), j, now() - g * interval '1 hour', 1, 'succeeded', now() \
         FROM unnest(ARRAY['00000000-0000-4000-8000-000000000001', \
                           '00000000-0000-4000-8000-000000000002']::uuid[]) j, \
              generate_series(1, 3) g",
    )
    .execute(&mut c)
    .unwrap();
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let runs_of = |c: &mut diesel::PgConnection, id: &str| {
        diesel::sql_query(format!(
            "SELECT count(*) AS n FROM runs WHERE job_id = '{id}'"
        ))
        .get_result::<N>(c)
        .unwrap()
        .n
    };
    diesel::sql_query("DELETE FROM jobs WHERE name = 'gone'")
        .execute(&mut c)
        .unwrap();
    assert_eq!(runs_of(&mut c, "00000000-0000-4000-8000-000000000001"), 0);
    assert_eq!(runs_of(&mut c, "00000000-0000-4000-8000-000000000002"), 3);
}

/// The run insert skips a (job, fire, attempt) that already has its run — an anti-join, not
/// `ON CONFLICT` (db::runs::INSERT_SQL) — and inserts the rest of the batch.
#[test]
fn the_run_insert_skips_a_fire_that_already_has_its_run() {
    use overseer::db::runs::{insert_many, NewRun};
    let db = TestDb::migrated();
    let mut c = db.conn();
    let job = uuid::Uuid::now_v7();
    let now = chrono::Utc::now();
    let fire = |at: chrono::DateTime<chrono::Utc>| NewRun::pending(job, 5, "skip", at, 1, at, now);
    let first = fire(now - chrono::Duration::hours(1));
    assert_eq!(
        insert_many(&mut c, std::slice::from_ref(&first)).unwrap(),
        1
    );
    // The same fire again (a new id), beside a new one: only the new one is inserted.
    let again = fire(first.fire_at);
    let next = fire(now);
    assert_eq!(
        insert_many(&mut c, &[again.clone(), next.clone()]).unwrap(),
        1
    );
    #[derive(diesel::QueryableByName)]
    struct Ids {
        #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Uuid>)]
        ids: Vec<uuid::Uuid>,
    }
    let ids = diesel::sql_query(format!(
        "SELECT array_agg(id ORDER BY fire_at) AS ids FROM runs WHERE job_id = '{job}'"
    ))
    .get_result::<Ids>(&mut c)
    .unwrap()
    .ids;
    assert_eq!(ids, vec![first.id, next.id]);
    assert!(first.id < next.id, "run ids are time-ordered (v7)");
}

/// The job and quota name rules and the metadata size limit hold in the database too
/// (migrations 000018 and 000019 rewrote them so that a fire's job update does not pay for
/// them): names of 1–128 characters, the first a lower-case letter or digit.
#[test]
fn the_name_rules_hold_in_the_database() {
    let db = TestDb::migrated();
    let mut c = db.conn();
    let long = "a".repeat(128);
    let too_long = "a".repeat(129);
    for (name, ok) in [
        ("a", true),
        ("a.b_c-d9", true),
        (long.as_str(), true),
        (too_long.as_str(), false),
        ("", false),
        ("-a", false),
        (".a", false),
        ("aB", false),
        ("a b", false),
        ("a:b", false),
    ] {
        let job = diesel::sql_query(format!(
            "INSERT INTO jobs (id, name, kind, schedule, policy) \
             VALUES (gen_random_uuid(), '{name}', 'noop', '{{}}', '{{}}')"
        ))
        .execute(&mut c);
        assert_eq!(job.is_ok(), ok, "job name {name:?}: {job:?}");
    }
    // Metadata: at most 8 KiB as JSON text (migration 000019: a trigger on writes that set
    // it, not a CHECK that every fire's job update re-evaluated).
    let meta = |bytes: usize| format!("jsonb_build_object('x', repeat('y', {bytes}))");
    let insert = diesel::sql_query(format!(
        "INSERT INTO jobs (id, name, kind, schedule, policy, metadata) \
         VALUES (gen_random_uuid(), 'meta', 'noop', '{{}}', '{{}}', {})",
        meta(8000)
    ))
    .execute(&mut c);
    assert!(insert.is_ok(), "{insert:?}");
    for (sql, ok) in [
        (
            format!(
                "UPDATE jobs SET metadata = {} WHERE name = 'meta'",
                meta(8200)
            ),
            false,
        ),
        (
            "UPDATE jobs SET next_fire_at = now() WHERE name = 'meta'".to_string(),
            true,
        ),
        (
            format!(
                "INSERT INTO jobs (id, name, kind, schedule, policy, metadata) \
                  VALUES (gen_random_uuid(), 'meta2', 'noop', '{{}}', '{{}}', {})",
                meta(9000)
            ),
            false,
        ),
    ] {
        let r = diesel::sql_query(&sql).execute(&mut c);
        assert_eq!(r.is_ok(), ok, "{sql}: {r:?}");
        if let Err(e) = r {
            assert!(
                matches!(
                    e,
                    diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::CheckViolation,
                        _
                    )
                ),
                "{e:?}"
            );
        }
    }
    for (name, ok) in [
        ("linkedin:messages", true),
        (too_long.as_str(), false),
        (":a", false),
    ] {
        let quota = diesel::sql_query(format!(
            "INSERT INTO quotas (name, day_limit) VALUES ('{name}', 1)"
        ))
        .execute(&mut c);
        assert_eq!(quota.is_ok(), ok, "quota name {name:?}: {quota:?}");
    }
}

/// The run listing (db::runs::list) pages newest first through both kinds of run: those
/// with time-ordered ids by id, then the older ones (random v4 ids, v7 ids before
/// `LISTED_BY_ID_FROM`) by `(queued_at, id)` — every run once, in order, across pages.
#[test]
fn the_run_listing_pages_through_older_and_time_ordered_runs() {
    use overseer::db::runs::{insert_many, list, NewRun, RunFilter};
    let db = TestDb::migrated();
    let mut c = db.conn();
    let job = uuid::Uuid::now_v7();
    let now = chrono::Utc::now();
    // Older runs: v4 ids queued 4, 3 and 2 hours ago, and a v7 id from before the switch.
    let mut older = Vec::new();
    for (i, hours) in [4, 3, 2].into_iter().enumerate() {
        let id = uuid::Uuid::new_v4();
        older.push((now - chrono::Duration::hours(hours), id));
        diesel::sql_query(format!(
            "INSERT INTO runs (id, job_id, fire_at, attempt, state, due_at, queued_at, finished_at) \
             VALUES ('{id}', '{job}', now() - interval '{i} days', 1, 'succeeded', now(), '{}', now())",
            older[i].0.to_rfc3339()
        ))
        .execute(&mut c)
        .unwrap();
    }
    let early_v7 = uuid::Uuid::from_u128(0x019a_0000_0000_7000_8000_0000_0000_0001);
    older.push((now - chrono::Duration::hours(1), early_v7));
    diesel::sql_query(format!(
        "INSERT INTO runs (id, job_id, fire_at, attempt, state, due_at, queued_at, finished_at) \
         VALUES ('{early_v7}', '{job}', now() - interval '9 days', 1, 'failed', now(), '{}', now())",
        older[3].0.to_rfc3339()
    ))
    .execute(&mut c)
    .unwrap();
    // Runs of today's code: time-ordered ids.
    let new: Vec<NewRun> = (0..3)
        .map(|i| {
            NewRun::pending(
                job,
                5,
                "skip",
                now + chrono::Duration::minutes(i),
                1,
                now,
                now,
            )
        })
        .collect();
    assert_eq!(insert_many(&mut c, &new).unwrap(), 3);
    let mut expected: Vec<uuid::Uuid> = new.iter().map(|r| r.id).collect();
    expected.sort_by(|a, b| b.cmp(a));
    older.sort();
    expected.extend(older.iter().rev().map(|(_, id)| *id));

    for filter in [
        RunFilter::default(),
        RunFilter {
            job_id: Some(job),
            ..Default::default()
        },
        RunFilter {
            since: Some(now - chrono::Duration::hours(5)),
            until: Some(now + chrono::Duration::hours(1)),
            ..Default::default()
        },
    ] {
        let mut seen = Vec::new();
        let mut f = filter.clone();
        loop {
            let page = list(&mut c, &f, 2).unwrap();
            seen.extend(page.iter().map(|r| r.id));
            match page.last() {
                Some(last) if page.len() == 2 => f.before = Some((last.queued_at, last.id)),
                _ => break,
            }
        }
        assert_eq!(seen, expected, "{filter:?}");
    }
    // A state filter keeps the order: the one failed run.
    let failed = RunFilter {
        state: Some("failed".into()),
        ..Default::default()
    };
    let ids: Vec<_> = list(&mut c, &failed, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, vec![early_v7]);
    // A time range that ends before the new runs leaves them out.
    let before_new = RunFilter {
        until: Some(now - chrono::Duration::minutes(30)),
        ..Default::default()
    };
    let ids: Vec<_> = list(&mut c, &before_new, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        ids,
        older.iter().rev().map(|(_, id)| *id).collect::<Vec<_>>()
    );
}
