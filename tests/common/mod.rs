//! The test harness: a real PostgreSQL cluster (started with overseer's own managed-cluster
//! code, shared by every test process, a fresh database per test), the real `overseer`
//! binary started as a child process on 127.0.0.1:0, and waits on conditions with deadlines.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection, RunQueryDsl};
use nix::fcntl::{Flock, FlockArg};
use overseer::config::database_url::DatabaseUrl;
use overseer::db::cluster::{ClusterOptions, ManagedCluster};
use serde_json::Value;

pub mod http;
pub mod live;
pub mod otlp;
pub mod otp;
pub mod pages;
pub mod probes;
pub mod sink;
pub mod social;

pub const BIN: &str = env!("CARGO_BIN_EXE_overseer");

/// Polls `cond` until it returns `Some`, failing the test with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

pub struct TestCluster {
    pub cluster: ManagedCluster,
}

/// The shared test cluster, started on first use (by whichever test process gets there first;
/// a file lock serialises the start). It is left running for the next test process;
/// `scripts/test` stops it at the end of the run.
pub fn cluster() -> &'static TestCluster {
    static CLUSTER: OnceLock<TestCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let root = std::env::temp_dir().join("overseer-test-pg");
        std::fs::create_dir_all(&root).expect("test cluster root");
        let lock = File::create(std::env::temp_dir().join("overseer-test-pg.lock"))
            .expect("test cluster lock file");
        let _guard = Flock::lock(lock, FlockArg::LockExclusive).expect("lock test cluster");
        let opts = ClusterOptions {
            dir: root.join("cluster"),
            ephemeral: false,
            settings: vec![
                ("fsync".into(), "off".into()),
                ("synchronous_commit".into(), "off".into()),
                ("full_page_writes".into(), "off".into()),
                ("max_connections".into(), "400".into()),
            ],
        };
        let cluster = ManagedCluster::start(&opts).expect("start the test PostgreSQL cluster");
        TestCluster { cluster }
    })
}

/// A database of its own for one test, dropped at the end.
pub struct TestDb {
    pub name: String,
    pub url: DatabaseUrl,
}

impl TestDb {
    pub fn new() -> Self {
        let c = cluster();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(c.cluster.url_for("postgres").expose())
            .expect("connect to the test cluster");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .expect("create test database");
        let url = c.cluster.url_for(&name);
        Self { name, url }
    }

    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(self.url.expose()).expect("connect to test database")
    }

    pub fn migrated() -> Self {
        let db = Self::new();
        overseer::db::migrations::run_pending(&mut db.conn()).expect("migrate");
        db
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) =
            PgConnection::establish(cluster().cluster.url_for("postgres").expose())
        {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The overseer process

/// Captured stderr lines (JSON logs), shared with the reader thread.
#[derive(Clone, Default)]
pub struct Logs(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Logs {
    pub fn lines(&self) -> Vec<String> {
        self.0 .0.lock().unwrap().clone()
    }
    pub fn text(&self) -> String {
        self.lines().join("\n")
    }
    /// Waits until a log line (parsed as JSON) satisfies `pred`; returns it.
    pub fn wait_json(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.0;
        let mut lines = lock.lock().unwrap();
        let mut seen = 0;
        loop {
            for line in &lines[seen..] {
                if let Ok(v) = serde_json::from_str::<Value>(line) {
                    if pred(&v) {
                        return v;
                    }
                }
            }
            seen = lines.len();
            let now = Instant::now();
            if now > deadline {
                panic!(
                    "timed out waiting for log line: {what}\nlogs:\n{}",
                    lines.join("\n")
                );
            }
            lines = cvar.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }
}

pub struct Tokens {
    pub admin: String,
    pub operator: String,
    pub viewer: String,
}

/// Options for one overseer process.
pub struct Spawn {
    pub db: Option<DatabaseUrl>,
    pub state_dir: PathBuf,
    pub extra_toml: String,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    /// Configure admin/operator/viewer tokens (off: the bootstrap token file is used).
    pub configure_tokens: bool,
    /// Run in this directory with the shipped `state_dir` (`./var`, relative): `state_dir`
    /// is then `<dir>/var` and is not passed to the process.
    pub workdir: Option<PathBuf>,
}

pub struct TestApp {
    pub child: Child,
    pub addr: String,
    pub logs: Logs,
    pub tokens: Tokens,
    pub state_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

fn token_entry(name: &str, role: &str) -> (String, String) {
    let (token, hash) = overseer::api::auth::new_token();
    (
        token,
        format!("[[auth.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{hash}\"\n"),
    )
}

impl Spawn {
    /// On a fresh test database, with a private state dir.
    pub fn with_db(db: &TestDb) -> (Self, tempfile::TempDir) {
        let tmp = tempfile::tempdir().unwrap();
        (
            Self {
                db: Some(db.url.clone()),
                state_dir: tmp.path().join("state"),
                extra_toml: String::new(),
                env: Vec::new(),
                args: Vec::new(),
                configure_tokens: true,
                workdir: None,
            },
            tmp,
        )
    }

    /// On the managed (embedded) cluster in `state_dir`.
    pub fn managed(state_dir: &Path) -> Self {
        Self {
            db: None,
            state_dir: state_dir.to_path_buf(),
            extra_toml: String::new(),
            env: Vec::new(),
            args: Vec::new(),
            configure_tokens: true,
            workdir: None,
        }
    }

    /// Runs the process in `dir` with the shipped relative `state_dir = "./var"`.
    pub fn in_dir(mut self, dir: &Path) -> Self {
        self.state_dir = dir.join("var");
        self.workdir = Some(dir.to_path_buf());
        self
    }

    pub fn toml(mut self, extra: &str) -> Self {
        self.extra_toml.push_str(extra);
        self.extra_toml.push('\n');
        self
    }

    /// Starts the process; returns once it logged its listening address.
    pub fn start(self) -> TestApp {
        self.start_with_tmp(None)
    }

    pub fn start_with_tmp(self, tmp: Option<tempfile::TempDir>) -> TestApp {
        std::fs::create_dir_all(&self.state_dir).unwrap();
        let (admin, a) = token_entry("test-admin", "admin");
        let (operator, o) = token_entry("test-operator", "operator");
        let (viewer, v) = token_entry("test-viewer", "viewer");
        let config_path = self.state_dir.join("test-config.toml");
        let mut toml = self.extra_toml.clone();
        if self.configure_tokens {
            toml.push_str(&a);
            toml.push_str(&o);
            toml.push_str(&v);
        }
        std::fs::write(&config_path, &toml).unwrap();

        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(&config_path).arg("serve");
        cmd.args(&self.args);
        cmd.env_remove("DATABASE_URL")
            .env_remove("OVERSEER_CONFIG")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("OVERSEER__") {
                cmd.env_remove(k);
            }
        }
        match &self.workdir {
            Some(dir) => cmd.current_dir(dir),
            None => cmd.env("OVERSEER__STATE_DIR", &self.state_dir),
        };
        cmd.env("OVERSEER__SERVER__BIND", "127.0.0.1:0")
            .env("OVERSEER__SERVER__SHUTDOWN_TIMEOUT", "10s")
            .env("OVERSEER__LOG__FORMAT", "json");
        if let Some(url) = &self.db {
            cmd.env("OVERSEER__DATABASE__URL", url.expose());
        }
        // Tests poll the API every 20 ms and load tests flood it: rate limits out of the way,
        // unless the test is about them (it sets `[server.rate_limit]`).
        if !toml.contains("[server.rate_limit]") {
            for key in [
                "RATE",
                "BURST",
                "SCRIPTS_RATE",
                "SCRIPTS_BURST",
                "ANONYMOUS_RATE",
                "ANONYMOUS_BURST",
            ] {
                cmd.env(format!("OVERSEER__SERVER__RATE_LIMIT__{key}"), "1000000");
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn overseer");
        let logs = Logs::default();
        let stderr = child.stderr.take().unwrap();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let (lock, cvar) = &*logs.0;
                    lock.lock().unwrap().push(line);
                    cvar.notify_all();
                }
            });
        }
        let mut o = TestApp {
            child,
            addr: String::new(),
            logs,
            tokens: Tokens {
                admin,
                operator,
                viewer,
            },
            state_dir: self.state_dir.clone(),
            _tmp: tmp,
        };
        let line = o
            .logs
            .wait_json("admin API listening", Duration::from_secs(60), |v| {
                v["message"] == "admin API listening"
            });
        o.addr = line["addr"].as_str().unwrap().to_string();
        o
    }
}

/// An HTTP answer: status, headers we look at, and the body parsed as JSON (or text).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub request_id: Option<String>,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

pub fn request(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let mut req = agent().request(method, url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let res = match body {
        Some(b) => req.set("Content-Type", "application/json").send_string(b),
        None => req.call(),
    };
    let res = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    Answer {
        status: res.status(),
        request_id: res.header("x-request-id").map(str::to_string),
        content_type: res.content_type().to_string(),
        retry_after: res.header("retry-after").map(str::to_string),
        text: res.into_string().unwrap_or_default(),
    }
}

/// How long the harness waits for an app to be ready and for a run to end.
pub const APP_TIMEOUT: Duration = Duration::from_secs(60);

impl TestApp {
    /// An overseer on a fresh test database and a private state dir, with `toml` layered
    /// over the defaults, once it is ready.
    pub fn start(db: &TestDb, toml: &str) -> TestApp {
        let (spawn, tmp) = Spawn::with_db(db);
        let app = spawn.toml(toml).start_with_tmp(Some(tmp));
        app.wait_ready(APP_TIMEOUT);
        app
    }

    /// Creates a job as the admin (201 expected); returns it.
    pub fn create_job(&self, body: &Value) -> Value {
        self.create_job_as(self.admin(), body)
    }

    /// Creates a job with `token` (201 expected); returns it.
    pub fn create_job_as(&self, token: Option<&str>, body: &Value) -> Value {
        let a = self.post("/api/v1/jobs", token, Some(&body.to_string()));
        assert_eq!(a.status, 201, "create {body}: {}", a.text);
        a.json()
    }

    /// Every run of `job`, newest first.
    pub fn runs(&self, job: &str) -> Vec<Value> {
        let a = self.get(&format!("/api/v1/runs?job={job}&limit=1000"), self.admin());
        assert_eq!(a.status, 200, "{}", a.text);
        a.json()["items"].as_array().cloned().unwrap_or_default()
    }

    /// The latest run of `job` once `pred` holds for it.
    pub fn wait_run(&self, job: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        wait_for(&format!("a run of {job}"), timeout, || {
            self.runs(job).into_iter().next().filter(|r| pred(r))
        })
    }

    /// The latest run of `job` once it has ended (any state but pending, running and
    /// deferred).
    pub fn finished_run(&self, job: &str, timeout: Duration) -> Value {
        self.wait_run(job, timeout, |r| {
            !matches!(
                r["state"].as_str(),
                Some("pending" | "running" | "deferred") | None
            )
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
    pub fn get(&self, path: &str, token: Option<&str>) -> Answer {
        request("GET", &self.url(path), token, &[], None)
    }
    pub fn post(&self, path: &str, token: Option<&str>, body: Option<&str>) -> Answer {
        request("POST", &self.url(path), token, &[], body)
    }
    pub fn put(&self, path: &str, token: Option<&str>, body: &str) -> Answer {
        request("PUT", &self.url(path), token, &[], Some(body))
    }
    pub fn patch(&self, path: &str, token: Option<&str>, body: &str) -> Answer {
        request("PATCH", &self.url(path), token, &[], Some(body))
    }
    pub fn admin(&self) -> Option<&str> {
        Some(self.tokens.admin.as_str())
    }
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), sig).expect("signal overseer");
    }
    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        wait_for("overseer to exit", timeout, || {
            self.child.try_wait().unwrap()
        })
    }
    pub fn wait_ready(&self, timeout: Duration) {
        wait_for("/ready = 200", timeout, || {
            (self.get("/ready", None).status == 200).then_some(())
        });
    }
    pub fn actor(&self, name: &str) -> Value {
        let list = self.get("/api/v1/actors", self.admin()).json();
        list["actors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no actor {name} in {list}"))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("OVERSEER_TEST_LOGS").is_some() {
            eprintln!(
                "---- logs of the overseer under test ----\n{}",
                self.logs.text()
            );
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the overseer binary to completion (for CLI commands).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("OVERSEER_CONFIG");
    for (k, _) in std::env::vars() {
        if k.starts_with("OVERSEER__") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run overseer");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// For the benchmarks (they include this file)

/// One row of the README's Performance table, printed by a benchmark (`scripts/bench`
/// collects them): what was measured, the figure, the target if there is one.
pub fn table_row(what: &str, figure: &str, target: &str) {
    println!("| {what} | {figure} | {target} |");
}

/// A size from the environment (`BURN_N=…`), or the default.
pub fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A new, migrated database `name` on a benchmark's own cluster.
pub fn fresh_db(pg: &ManagedCluster, name: &str) -> DatabaseUrl {
    let mut admin = PgConnection::establish(pg.url_for("postgres").expose()).unwrap();
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .unwrap();
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .unwrap();
    let url = pg.url_for(name);
    overseer::db::migrations::run_pending(&mut PgConnection::establish(url.expose()).unwrap())
        .unwrap();
    url
}

/// Processes whose command line contains every one of `needles`.
pub fn processes_with(needles: &[&str]) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let c = String::from_utf8_lossy(&c);
                    needles.iter().all(|n| c.contains(n))
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Chromium processes whose command line mentions `dir`.
pub fn chromium_under(dir: &Path) -> Vec<i32> {
    processes_with(&["chrom", &dir.to_string_lossy()])
}

/// The Python of `target/py` with Playwright (scripts/test installs it from PyPI; no browser
/// is downloaded: scripts drive Debian's Chromium). `OVERSEER_PYTHON` overrides it.
pub fn python_with_playwright() -> String {
    let python = std::env::var("OVERSEER_PYTHON")
        .unwrap_or_else(|_| format!("{}/target/py/bin/python", env!("CARGO_MANIFEST_DIR")));
    let ok = Command::new(&python)
        .args(["-c", "import playwright.sync_api"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{python} has no playwright: run ./scripts/test, which installs it"
    );
    python
}
