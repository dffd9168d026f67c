//! Time from `overseer serve` to `/ready` = 200 on the embedded default (release build):
//! cold (empty state dir), warm with the cluster stopped, warm with the cluster left running
//! by a `kill -9`. Run: `cargo bench --bench startup` (ROUNDS=n to change the count).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_overseer");

struct Running {
    child: Child,
    ready_after: Duration,
}

fn start(state: &Path) -> Running {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env("OVERSEER__STATE_DIR", state)
        .env("OVERSEER__SERVER__BIND", "127.0.0.1:0")
        .env("OVERSEER__LOG__FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn overseer");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("overseer exited before listening")
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "admin API listening" {
            break v["addr"].as_str().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let url = format!("http://{addr}/ready");
    loop {
        if let Ok(r) = agent.get(&url).call() {
            if r.status() == 200 {
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            panic!("not ready after 60 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Running {
        child,
        ready_after: started.elapsed(),
    }
}

fn stop(mut r: Running, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(r.child.id() as i32);
    nix::sys::signal::kill(pid, signal).unwrap();
    r.child.wait().unwrap();
}

fn report(name: &str, row: &str, mut xs: Vec<Duration>) {
    xs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<48} n={:<3} min={:>8.1} ms  median={:>8.1} ms  max={:>8.1} ms",
        xs.len(),
        ms(xs[0]),
        ms(xs[xs.len() / 2]),
        ms(xs[xs.len() - 1])
    );
    // A row of the README's table (`scripts/bench`).
    println!(
        "| {row} | median {:.0} ms ({:.0}–{:.0}, n={}) | |",
        ms(xs[xs.len() / 2]),
        ms(xs[0]),
        ms(xs[xs.len() - 1]),
        xs.len()
    );
}

fn main() {
    use nix::sys::signal::Signal;
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let (mut cold, mut warm_stopped, mut warm_running) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let state = tmp.path().join("state");

        let r = start(&state);
        cold.push(r.ready_after);
        stop(r, Signal::SIGTERM);

        let r = start(&state);
        warm_stopped.push(r.ready_after);
        stop(r, Signal::SIGKILL);

        let r = start(&state);
        warm_running.push(r.ready_after);
        stop(r, Signal::SIGTERM);
    }
    println!("serve → /ready = 200 on the embedded default (release build)");
    report(
        "cold: empty state dir (initdb + start)",
        "`serve` → `/ready` = 200, embedded default, cold (empty state dir: initdb + start)",
        cold,
    );
    report(
        "warm: cluster stopped (pg_ctl start)",
        "`serve` → `/ready`, warm (cluster stopped: `pg_ctl start`)",
        warm_stopped,
    );
    report(
        "warm: cluster left running by kill -9 (reuse)",
        "`serve` → `/ready`, warm (cluster left running by `kill -9`: reused)",
        warm_running,
    );
}
