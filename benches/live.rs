//! The live view, end to end in a real `overseer serve` (managed PostgreSQL, Debian's
//! Chromium, pages on loopback), through its documented protocol (server-sent frames, JSON
//! input over HTTP), anti-detection off so that the window is 1280×800:
//! - frames per second while the page changes (an animation);
//! - from an input event (a key, POSTed) to the frame showing its effect: p50/p99 over N
//!   presses (default 200) on an otherwise still page;
//! - frames and CPU (overseer and its Chromium, from /proc) while nothing changes.
//!
//! Run: `cargo bench --bench live`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::http::{Reply, Response, Server};
use common::live::{input, Follower};
use serde_json::json;

const ANIMATED: &str = "<!doctype html><html><body style='margin:0'><div id=box \
    style='width:100vw;height:100vh;font:64px sans-serif'></div><script>let n=0;\
    function tick(){n++;const b=document.getElementById('box');b.textContent='frame '+n;\
    b.style.background='hsl('+(n*7%360)+',60%,70%)';requestAnimationFrame(tick)}tick()</script></body></html>";
const KEYS: &str = "<!doctype html><html><body style='margin:0'><div id=box \
    style='width:100vw;height:100vh;font:64px sans-serif'>press a key</div><script>let n=0;\
    addEventListener('keydown',()=>{n++;const b=document.getElementById('box');b.textContent='keys '+n;\
    b.style.background='hsl('+(n*37%360)+',60%,70%)'})</script></body></html>";

/// CPU time (user + system, in clock ticks) of these processes.
fn cpu_ticks(pids: &[i32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .map(|s| {
            let rest = &s[s.rfind(')').unwrap() + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
        })
        .sum()
}

fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let server = Server::start(Duration::from_secs(60), |req| {
        let body = if req.path.starts_with("/keys") {
            KEYS
        } else {
            ANIMATED
        };
        Reply::Send(Response::new(200, "text/html", body))
    });
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let o = common::Spawn::managed(&state)
        .toml("[flags]\nanti_detection = false\n[browser]\nlive_idle = \"10m\"\n")
        .start();
    o.wait_ready(Duration::from_secs(60));
    let token = o.tokens.operator.clone();
    let a = o.post(
        "/api/v1/browser/live",
        Some(&token),
        Some(&json!({"profile": "bench", "url": server.url("/anim")}).to_string()),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.json()["id"].as_str().unwrap().to_string();
    let mut ev = Follower::start(&o, &id, &token);
    let first = ev.wait("a frame", Duration::from_secs(30), |n, _| n == "frame");
    let (w, h) = (
        first["width"].as_f64().unwrap(),
        first["height"].as_f64().unwrap(),
    );

    // Frames while the page changes.
    ev.frames_within(Duration::from_secs(1));
    let span = Duration::from_secs(5);
    let frames = ev.frames_within(span);
    let fps = frames as f64 / span.as_secs_f64();
    println!(
        "live view: {fps:.1} frames/s at {w}×{h} while the page changes ({frames} in {span:?})"
    );
    common::table_row(
        &format!("live view: frames/s at {w}×{h}, page animating"),
        &format!("{fps:.1} frames/s"),
        "≥ 10",
    );

    // A still page: no frames, and the CPU it costs.
    input(
        &o,
        &id,
        &token,
        vec![json!({"type": "navigate", "url": server.url("/keys")})],
    );
    ev.wait_at("/keys", Duration::from_secs(30));
    ev.settle(Duration::from_secs(1), Duration::from_secs(30));
    let mut pids = common::chromium_under(&state);
    pids.push(o.pid().as_raw());
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let (t0, c0) = (Instant::now(), cpu_ticks(&pids));
    let still = ev.frames_within(Duration::from_secs(5));
    let cpu = (cpu_ticks(&pids) - c0) as f64 / hz / t0.elapsed().as_secs_f64() * 100.0;
    println!("live view, page still for 5 s: {still} frames, CPU {cpu:.1}% of one core (overseer and {} Chromium processes)", pids.len() - 1);
    common::table_row(
        "live view, page still (5 s): frames, CPU of overseer + Chromium",
        &format!("{still} frames, {cpu:.1}% of a core"),
        "no CPU",
    );

    // Input to the frame that shows it.
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        ev.drain();
        let t = Instant::now();
        input(
            &o,
            &id,
            &token,
            vec![
                json!({"type": "key", "action": "down", "key": "a"}),
                json!({"type": "key", "action": "up", "key": "a"}),
            ],
        );
        ev.wait("the frame of the key", Duration::from_secs(10), |n, _| {
            n == "frame"
        });
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
        // The page is still again before the next press.
        ev.settle(Duration::from_millis(150), Duration::from_secs(10));
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "live view: input → frame showing it, {n} key presses: p50 {:.1} ms, p99 {:.1} ms",
        p(0.5),
        p(0.99)
    );
    common::table_row(
        &format!("live view: input (key POSTed) → the frame showing it, {n} presses"),
        &format!("p50 {:.1} ms, p99 {:.1} ms", p(0.5), p(0.99)),
        "p50 ≤ 150 ms",
    );
    input(&o, &id, &token, vec![json!({"type": "done"})]);
}
