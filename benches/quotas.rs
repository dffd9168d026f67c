//! Quota consumption throughput (release build, a PostgreSQL cluster of its own, fsync on):
//! through the QuotaCounter actor in this process and through the HTTP API of a real
//! `overseer serve`, one consumer at a time (uncontended) and 64 at once on one quota
//! (contended). The contended runs use a limit smaller than the demand and check that exactly
//! the limit was admitted. Run: `cargo bench --bench quotas` (N to change the count).

#[path = "../tests/common/mod.rs"]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use common::{env_num, fresh_db, Spawn};
use diesel::{Connection, PgConnection, RunQueryDsl};
use overseer::actors::quota::{Consume, Consumed, QuotaCounter};
use overseer::actors::{directory::Directory, Deps};
use overseer::config::database_url::DatabaseUrl;
use overseer::db::cluster::{ClusterOptions, ManagedCluster};
use overseer::db::Db;
use overseer::supervisor::{ChildSpec, Restart, Supervisor};

fn make_quota(url: &DatabaseUrl, name: &str, day: usize) {
    let mut c = PgConnection::establish(url.expose()).unwrap();
    diesel::sql_query(format!(
        "INSERT INTO quotas (name, day_limit) VALUES ('{name}', {day}) \
         ON CONFLICT (name) DO UPDATE SET day_limit = {day}"
    ))
    .execute(&mut c)
    .unwrap();
}

fn used(url: &DatabaseUrl, name: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct U {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        u: i64,
    }
    let mut c = PgConnection::establish(url.expose()).unwrap();
    diesel::sql_query(format!(
        "SELECT COALESCE(sum(used), 0)::bigint AS u FROM quota_usage \
         WHERE quota = '{name}' AND window_kind = 'day'"
    ))
    .get_result::<U>(&mut c)
    .unwrap()
    .u
}

/// `total` consumptions by `consumers` concurrent tasks through the actor; returns
/// (admitted, seconds).
fn through_actor(url: &DatabaseUrl, quota: &str, consumers: usize, total: usize) -> (usize, f64) {
    let loaded = overseer::config::load(&overseer::config::Sources {
        file: None,
        env: vec![],
    })
    .unwrap();
    let config = Arc::new(loaded.config);
    let db = Db::new(url, 80, Duration::from_secs(5));
    let deps = Deps {
        routing: Arc::new(overseer::notify::Routing::from_config(&config.notify)),
        config: config.clone(),
        db,
        node_id: uuid::Uuid::new_v4(),
        directory: Directory::default(),
        clock: Arc::new(overseer::stdx::clock::SystemClock),
        flags: overseer::flags::Live::fixed(config.flags),
        kinds: std::sync::Arc::new(overseer::declarative::kinds(&config)),
        leadership: Default::default(),
    };
    let quota = quota.to_string();
    actix::System::new().block_on(async move {
        let d = deps.clone();
        let spec = ChildSpec::new(
            overseer::actors::quota::NAME,
            Restart::Permanent,
            move |l| QuotaCounter::new(&d, l),
        );
        let _sup = Supervisor::new(
            config.supervisor.clone(),
            vec![spec],
            None,
            std::sync::Arc::new(overseer::stdx::clock::SystemClock),
        )
        .start();
        let counter = loop {
            if let Some(c) = deps.directory.quota_counter() {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let admitted = Arc::new(AtomicUsize::new(0));
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let tasks: Vec<_> = (0..consumers)
            .map(|_| {
                let (counter, admitted, next, quota) = (
                    counter.clone(),
                    admitted.clone(),
                    next.clone(),
                    quota.clone(),
                );
                actix::spawn(async move {
                    while next.fetch_add(1, Ordering::SeqCst) < total {
                        let r = counter
                            .send(Consume {
                                quota: quota.clone(),
                                cost: 1,
                                audit: None,
                            })
                            .await
                            .unwrap()
                            .unwrap();
                        if matches!(r, Consumed::Admitted { .. }) {
                            admitted.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        actix::System::current().stop();
        (admitted.load(Ordering::SeqCst), secs)
    })
}

/// The same through `POST /api/v1/quotas/{name}/consume` with `consumers` client threads,
/// spread over the given processes.
fn through_api(
    nodes: &[&common::TestApp],
    quota: &str,
    consumers: usize,
    total: usize,
) -> (usize, f64) {
    let targets: Vec<(String, String)> = nodes
        .iter()
        .map(|o| {
            (
                o.url(&format!("/api/v1/quotas/{quota}/consume")),
                o.tokens.operator.clone(),
            )
        })
        .collect();
    let admitted = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..consumers)
        .map(|i| {
            let (url, token) = targets[i % targets.len()].clone();
            let (admitted, next) = (admitted.clone(), next.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().build();
                while next.fetch_add(1, Ordering::SeqCst) < total {
                    match agent
                        .post(&url)
                        .set("Authorization", &format!("Bearer {token}"))
                        .set("Content-Type", "application/json")
                        .send_string("{\"cost\": 1}")
                    {
                        Ok(r) if r.status() == 200 => {
                            admitted.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(ureq::Error::Status(429, _)) => {}
                        other => panic!("unexpected answer: {other:?}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    (
        admitted.load(Ordering::SeqCst),
        started.elapsed().as_secs_f64(),
    )
}

/// Prints decided/s (every answer, admitted or refused) and admitted/s separately, and fails
/// the benchmark when the admitted total is not exactly what the limit allows.
fn report(what: &str, n: usize, admitted: usize, limit: usize, secs: f64, used: i64) {
    println!(
        "{what}: {n} decided in {secs:.2} s = {:.0} decided/s, {admitted} admitted = {:.0} admitted/s (limit {limit}, used {used})",
        n as f64 / secs,
        admitted as f64 / secs,
    );
    assert!(
        admitted == limit.min(n) && used as usize == admitted,
        "{what}: admitted {admitted} and used {used}, but the limit allows exactly {}",
        limit.min(n)
    );
    common::table_row(
        &format!("quota consumes, {what} ({n} requests, limit {limit})"),
        &format!(
            "{:.0} decided/s, {:.0} admitted/s; exactly the limit admitted",
            n as f64 / secs,
            admitted as f64 / secs
        ),
        if limit < n {
            "≥ 5,000 decided/s contended, zero over-admission"
        } else {
            ""
        },
    );
}

fn main() {
    let n = env_num("N", 20_000);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut pg = ManagedCluster::start(&ClusterOptions {
        dir: tmp.path().join("pg"),
        ephemeral: false,
        settings: vec![("shared_buffers".into(), "256MB".into())],
    })
    .expect("start the benchmark cluster");
    println!("PostgreSQL: managed cluster, fsync on (default durability), same machine");
    let url = fresh_db(&pg, "bench_quota");

    // Uncontended: one consumer, one request at a time (latency-bound).
    let single = n / 10;
    make_quota(&url, "actor-1", 1_000_000_000);
    let (a, s) = through_actor(&url, "actor-1", 1, single);
    report(
        "actor, 1 consumer",
        single,
        a,
        1_000_000_000,
        s,
        used(&url, "actor-1"),
    );
    // Contended: 64 consumers, demand 2 × the limit.
    make_quota(&url, "actor-64", n / 2);
    let (a, s) = through_actor(&url, "actor-64", 64, n);
    report(
        "actor, 64 consumers",
        n,
        a,
        n / 2,
        s,
        used(&url, "actor-64"),
    );

    // The supervisor's panic hook records panics for its children; restore printing.
    let _ = std::panic::take_hook();
    let nodes: Vec<common::TestApp> = (0..4)
        .map(|i| {
            let mut spawn = Spawn::managed(&tmp.path().join(format!("state-{i}")));
            spawn.db = Some(url.clone());
            let o = spawn.start();
            o.wait_ready(Duration::from_secs(60));
            o
        })
        .collect();
    make_quota(&url, "api-1", 1_000_000_000);
    let (a, s) = through_api(&[&nodes[0]], "api-1", 1, single);
    report(
        "API, 1 client",
        single,
        a,
        1_000_000_000,
        s,
        used(&url, "api-1"),
    );
    make_quota(&url, "api-64", n / 2);
    let (a, s) = through_api(&[&nodes[0]], "api-64", 64, n);
    report(
        "API, 64 clients, 1 process",
        n,
        a,
        n / 2,
        s,
        used(&url, "api-64"),
    );
    make_quota(&url, "api-4x16", n / 2);
    let all: Vec<&common::TestApp> = nodes.iter().collect();
    let (a, s) = through_api(&all, "api-4x16", 64, n);
    report(
        "API, 64 clients over 4 processes",
        n,
        a,
        n / 2,
        s,
        used(&url, "api-4x16"),
    );
    drop(nodes);
    pg.stop().unwrap();
}
