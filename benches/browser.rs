//! Browser session latency (release build, Debian's Chromium, a page served on loopback): a
//! warm session (browser already running) runs `goto` + `domcontentloaded` + `extract` on
//! the page the previous run parked, as `browser` jobs with default settings do; p50/p99 over N runs (default 1,000). Also the
//! cold launch of a profile, anti-detection on and off, a click, 4 profiles at once, and the
//! end-to-end figure of a `browser` job in a real `overseer serve` (triggered, fired,
//! executed, recorded). Run: `cargo bench --bench browser` (N to change the count).

#[path = "../tests/common/mod.rs"]
mod common;

use common::pages;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use overseer::browser::script::{self as steps, Step};
use overseer::browser::{BrowserRun, Pool, PoolConfig};
use serde_json::json;

fn main() {
    if std::env::var("TRACE").is_ok() {
        tracing_subscriber::fmt()
            .with_env_filter("overseer::browser=debug")
            .with_writer(std::io::stderr)
            .init();
    }
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let pages = pages::Pages::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut problems = overseer::stdx::problems::Problems::default();
    let script: Vec<Step> = steps::parse(
        &json!([
            {"goto": {"url": pages.url("/form"), "wait_until": "domcontentloaded"}},
            {"extract": {"selector": ".job", "all": true, "into": "jobs"}},
        ]),
        "steps",
        &overseer::browser::script::Limits::default(),
        &mut problems,
    );
    assert!(problems.is_empty());
    actix::System::new().block_on(async move {
        let pool = Pool::new(pool_config(tmp.path(), 1, true), None);
        let run = || BrowserRun {
            run_id: uuid::Uuid::new_v4(),
            profile: "bench".into(),
            steps: script.clone().into(),
            viewport: None,
            user_agent: None,
            locale: "en-US".into(),
            timezone: None,
            step_timeout: None,
            secrets: BTreeMap::new(),
            consume: None,
            once: None,
            notify: None,
            person: None,
            context: serde_json::json!({}),
            span: tracing::Span::none(),
        };
        let cold = Instant::now();
        pool.run(run()).await.expect("first run");
        let cold_ms = cold.elapsed().as_secs_f64() * 1000.0;
        println!("cold: launch + first run {cold_ms:.0} ms");
        common::table_row("browser, cold: Chromium launch + first run", &format!("{cold_ms:.0} ms"), "");
        let warm = |label: &'static str, pool: std::rc::Rc<Pool>, r: BrowserRun, n: usize| async move {
            let mut samples = Vec::with_capacity(n);
            let all = Instant::now();
            for _ in 0..n {
                let mut r = r.clone();
                r.run_id = uuid::Uuid::new_v4();
                let t = Instant::now();
                let out = pool.run(r).await.expect("run").output;
                samples.push(t.elapsed().as_secs_f64() * 1000.0);
                assert!(out["extracted"].is_object(), "{out}");
            }
            let total = all.elapsed().as_secs_f64();
            samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
            println!(
                "warm, {label}: {n} runs, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {:.1} runs/s",
                pct(0.50),
                pct(0.99),
                samples[samples.len() - 1],
                n as f64 / total
            );
            common::table_row(
                &format!("browser, warm session, {label}, {n} runs"),
                &format!("p50 {:.1} ms, p99 {:.1} ms", pct(0.50), pct(0.99)),
                "",
            );
        };
        let pool = std::rc::Rc::new(pool);
        warm(
            "anti_detection on (parked page reused + goto + domcontentloaded + extract + park)",
            pool.clone(),
            run(),
            n,
        )
        .await;
        // A click costs what a hand costs with anti-detection: a pointer path ≥ 150 ms and a
        // press of 50–150 ms, by design.
        warm("anti_detection on, the same + one click", pool.clone(), with_click(run()), n.min(100)).await;
        // Chromium's own view of the same navigation: navigation start → DOMContentLoaded as
        // the page measures it (a separate pass, with one more extract to read it).
        let mut timed = run();
        let mut p = overseer::stdx::problems::Problems::default();
        std::sync::Arc::make_mut(&mut timed.steps).extend(steps::parse(
            &json!([{"extract": {"selector": "#nav-ms", "into": "nav_ms"}}]),
            "steps",
            &overseer::browser::script::Limits::default(),
            &mut p,
        ));
        let mut in_page: Vec<f64> = Vec::new();
        for _ in 0..n.min(200) {
            let out = pool.run(timed.clone()).await.expect("run").output;
            if let Some(ms) = out["extracted"]["nav_ms"].as_str().and_then(|s| s.parse().ok()) {
                in_page.push(ms);
            }
        }
        in_page.sort_by(|a, b| a.partial_cmp(b).unwrap());
        if let Some(ms) = in_page.get(in_page.len() / 2) {
            println!(
                "warm: inside Chromium, navigation start → DOMContentLoaded p50 {ms:.1} ms over {} runs (the rest of a run is CDP, waking the page and the steps)",
                in_page.len()
            );
            common::table_row(
                "… of which inside Chromium: navigation start → `DOMContentLoaded`, as the page measures it",
                &format!("p50 {ms:.1} ms"),
                "",
            );
        }
        // RSS of one browser: every process of the profile (main, zygote, GPU/utility,
        // renderer), after the warm runs.
        let rss = profile_rss_kib(&tmp.path().join("profiles/bench"));
        println!("RSS of one browser (all its processes, one page open between runs): {} MiB", rss / 1024);
        common::table_row(
            "browser RSS (sum over all processes of one Chromium; an upper bound)",
            &format!("{} MiB", rss / 1024),
            "",
        );
        pool.close_all().await;

        // The same warm runs with the flag off (main-world Runtime on, Chromium's identity):
        // what anti-detection costs per run.
        let off = std::rc::Rc::new(Pool::new(pool_config(tmp.path(), 1, false), None));
        let mut plain = run();
        plain.profile = "bench-off".into();
        off.run(plain.clone()).await.expect("first run");
        warm("anti_detection off (the same)", off.clone(), plain.clone(), n).await;
        warm("anti_detection off, the same + one click", off.clone(), with_click(plain), n.min(100)).await;
        off.close_all().await;

        // Throughput with 4 profiles at once (4 browsers), n runs in all.
        let pool = std::rc::Rc::new(Pool::new(pool_config(tmp.path(), 4, true), None));
        let per = n / 4;
        let started = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let pool = pool.clone();
                let mut r = run();
                r.profile = format!("p{i}");
                actix::spawn(async move {
                    for _ in 0..per {
                        let mut r = r.clone();
                        r.run_id = uuid::Uuid::new_v4();
                        pool.run(r).await.expect("run");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "4 profiles at once: {} runs in {secs:.2} s = {:.1} runs/s (including 4 cold launches)",
            per * 4,
            (per * 4) as f64 / secs
        );
        common::table_row(
            &format!("browser, 4 profiles at once (4 Chromiums, {} runs incl. 4 cold launches)", per * 4),
            &format!("{:.1} runs/s", (per * 4) as f64 / secs),
            "",
        );
        pool.close_all().await;
    });
    end_to_end(&pages, n.min(200));
}

/// A `browser` job in a real `overseer serve` (its own managed cluster), triggered `n` times
/// one after the other: trigger (= fire) → run recorded, from the run's own timestamps.
fn end_to_end(pages: &pages::Pages, n: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let o = common::Spawn::managed(&tmp.path().join("state"))
        .toml("[browser]\nidle_timeout = \"600s\"\n")
        .start();
    o.wait_ready(Duration::from_secs(60));
    let job = json!({
        "name": "e2e", "kind": "browser", "schedule": {"cron": "0 0 29 2 *", "timezone": "UTC"},
        "payload": {"profile": "e2e", "steps": [
            {"goto": {"url": pages.url("/form"), "wait_until": "domcontentloaded"}},
            {"extract": {"selector": ".job", "all": true, "into": "jobs"}},
        ]},
    });
    let a = o.post("/api/v1/jobs", o.admin(), Some(&job.to_string()));
    assert_eq!(a.status, 201, "{}", a.text);
    let ms = |a: &serde_json::Value, b: &serde_json::Value| -> f64 {
        let t = |v: &serde_json::Value| {
            chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap()
        };
        (t(b) - t(a)).num_microseconds().unwrap() as f64 / 1000.0
    };
    let (mut total, mut work) = (Vec::new(), Vec::new());
    // The first run launches the browser: not counted.
    for i in 0..=n {
        let a = o.post("/api/v1/jobs/e2e/trigger", o.admin(), None);
        assert_eq!(a.status, 201, "{}", a.text);
        let id = a.json()["id"].as_str().unwrap().to_string();
        let run = common::wait_for("the run recorded", Duration::from_secs(60), || {
            let r = o.get(&format!("/api/v1/runs/{id}"), o.admin()).json();
            (r["state"] == "succeeded").then_some(r)
        });
        if i > 0 {
            total.push(ms(&run["fire_at"], &run["finished_at"]));
            work.push(ms(&run["began_at"], &run["finished_at"]));
        }
    }
    for v in [&mut total, &mut work] {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    let p = |v: &[f64], q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    println!(
        "end to end, a browser job in overseer serve, {n} triggered runs: fire → recorded p50 {:.1} ms, p99 {:.1} ms (of which the browser work, began → recorded: p50 {:.1} ms)",
        p(&total, 0.5),
        p(&total, 0.99),
        p(&work, 0.5)
    );
    common::table_row(
        &format!("browser job end to end in `overseer serve` (trigger = fire → run recorded), {n} runs, warm"),
        &format!("p50 {:.1} ms, p99 {:.1} ms", p(&total, 0.5), p(&total, 0.99)),
        "",
    );
}

/// The pool's settings for the runs here: profiles and artifacts under `dir`.
fn pool_config(dir: &std::path::Path, max_browsers: usize, stealth: bool) -> PoolConfig {
    PoolConfig {
        executable: overseer::browser::process::find_executable().expect("chromium on PATH"),
        profiles_dir: dir.join("profiles"),
        artifacts_dir: dir.join("artifacts"),
        max_browsers,
        idle_timeout: Duration::from_secs(600),
        launch_timeout: Duration::from_secs(30),
        step_timeout: Duration::from_secs(30),
        stealth: overseer::browser::Stealth::always(stealth),
        max_pages: 4,
        politeness: Default::default(),
    }
}

/// The run with one click at its end.
fn with_click(mut r: BrowserRun) -> BrowserRun {
    let mut p = overseer::stdx::problems::Problems::default();
    std::sync::Arc::make_mut(&mut r.steps).extend(steps::parse(
        &json!([{"click": {"selector": "#go"}}]),
        "steps",
        &overseer::browser::script::Limits::default(),
        &mut p,
    ));
    assert!(p.is_empty());
    r
}

fn profile_rss_kib(profile: &std::path::Path) -> u64 {
    let needle = profile.to_string_lossy().to_string();
    let mut total = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmd).contains(&needle) {
            continue;
        }
        total += std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}
