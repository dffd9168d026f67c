//! Browser session latency (release build, Debian's Chromium, a page served on loopback): a
//! warm session (browser already running) runs `goto` + `domcontentloaded` + `extract`, each
//! run on a fresh page as a `browser` job does; p50/p99 over N runs (default 1,000). Also the
//! cold launch of a profile. Run: `cargo bench --bench browser` (N to change the count).

#[path = "../tests/common/pages.rs"]
mod pages;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use overseer::browser::steps::{self, Step};
use overseer::browser::{BrowserRun, Pool, PoolConfig};
use serde_json::json;

fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let pages = pages::Pages::start();
    let tmp = tempfile::tempdir().unwrap();
    let executable = overseer::browser::process::find_executable().expect("chromium on PATH");
    let mut problems = overseer::jobs::validate::Problems::default();
    let script: Vec<Step> = steps::parse(
        &json!([
            {"goto": {"url": pages.url("/form"), "wait_until": "domcontentloaded"}},
            {"extract": {"selector": ".job", "all": true, "into": "jobs"}},
        ]),
        "steps",
        &mut problems,
    );
    assert!(problems.is_empty());
    actix::System::new().block_on(async move {
        let pool = Pool::new(PoolConfig {
            executable,
            profiles_dir: tmp.path().join("profiles"),
            artifacts_dir: tmp.path().join("artifacts"),
            max_browsers: 1,
            idle_timeout: Duration::from_secs(600),
            launch_timeout: Duration::from_secs(30),
            step_timeout: Duration::from_secs(30),
            stealth: true,
        });
        let run = || BrowserRun {
            run_id: uuid::Uuid::new_v4(),
            profile: "bench".into(),
            steps: script.clone(),
            viewport: None,
            user_agent: None,
            locale: "en-US".into(),
            timezone: None,
            step_timeout: None,
            secrets: BTreeMap::new(),
            consume: None,
        };
        let cold = Instant::now();
        pool.run(run()).await.expect("first run");
        println!("cold: launch + first run {:.0} ms", cold.elapsed().as_secs_f64() * 1000.0);
        let mut samples = Vec::with_capacity(n);
        let all = Instant::now();
        for _ in 0..n {
            let t = Instant::now();
            let out = pool.run(run()).await.expect("run");
            samples.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(out["extracted"]["jobs"], json!(["Engineer", "Designer"]));
        }
        let total = all.elapsed().as_secs_f64();
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
        println!(
            "warm: {n} runs (new page + goto + domcontentloaded + extract + close page), p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {:.1} runs/s",
            pct(0.50),
            pct(0.99),
            samples[samples.len() - 1],
            n as f64 / total
        );
        pool.close_all().await;
    });
}
