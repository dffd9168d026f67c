//! `command` jobs with real processes: shell and Python programs, exit codes, results
//! through `$OVERSEER_OUTPUT`, a 100 MB flood of output, secrets scrubbed from both streams,
//! a SIGTERM-ignoring forking script on timeout, kill -9 of overseer mid-run, the run
//! token's permissions and expiry, quotas consumed from scripts on two processes, and who
//! may create command jobs for which programs.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);
const SECRET: &str = "s3cr3t-Value-0f-the-API-key";

/// A directory of test programs, allowed by `[command] allowed`.
struct Programs {
    _dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Programs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        Self { _dir: dir, bin }
    }

    /// Writes an executable script; returns its path.
    fn script(&self, name: &str, text: &str) -> String {
        let path = self.bin.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn toml(&self) -> String {
        format!(
            "[command]\nallowed = [\"{}/*\", \"/usr/bin/python3\"]\n\
             [browser.secrets]\nAPI_KEY = \"{SECRET}\"\n\
             [scheduler]\nheartbeat_interval = \"500ms\"\n",
            self.bin.display()
        )
    }
}

/// A job that fires once, now.
fn once(name: &str, payload: Value, policy: Value) -> Value {
    json!({"name": name, "kind": "command", "schedule": {"at": chrono::Utc::now().to_rfc3339()},
           "payload": payload, "policy": policy})
}

/// The job's latest run once it is in a terminal state.
fn finished(o: &TestApp, job: &str, timeout: Duration) -> Value {
    wait_for(&format!("a finished run of {job}"), timeout, || {
        let runs = o.get(&format!("/api/v1/runs?job={job}"), o.admin()).json();
        runs["items"]
            .as_array()?
            .iter()
            .find(|r| {
                !matches!(
                    r["state"].as_str(),
                    Some("pending" | "running" | "deferred")
                )
            })
            .cloned()
    })
}

fn artifact(o: &TestApp, run: &Value, name: &str) -> Answer {
    o.get(
        &format!(
            "/api/v1/runs/{}/artifacts/{name}",
            run["id"].as_str().unwrap()
        ),
        o.admin(),
    )
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s[s.rfind(')').unwrap() + 2..]
                .split(' ')
                .next()
                .unwrap_or("");
            state != "Z" && state != "X"
        })
        .unwrap_or(false)
}

/// The pids a script wrote, one per line, once it wrote `want` of them.
fn pids(file: &Path, want: usize) -> Vec<i32> {
    wait_for("the script's pids", T, || {
        let text = std::fs::read_to_string(file).ok()?;
        let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        (pids.len() >= want).then_some(pids)
    })
}

#[test]
fn a_shell_script_runs_with_its_context_a_clean_environment_and_its_result() {
    let db = TestDb::new();
    let p = Programs::new();
    let script = p.script(
        "context.sh",
        r#"#!/bin/sh
echo "run=$OVERSEER_RUN_ID job=$OVERSEER_JOB_NAME attempt=$OVERSEER_ATTEMPT"
echo "key=$OVERSEER_IDEMPOTENCY_KEY fire=$OVERSEER_FIRE_AT"
echo "api=$OVERSEER_API_URL"
echo "leak=${LEAKY_VAR:-none} mine=$MY_SETTING path=$PATH"
echo "secret on stdout: $API_TOKEN"
echo "secret on stderr: $API_TOKEN and the run token $OVERSEER_RUN_TOKEN" >&2
echo "stdin: $(cat)"
echo "cwd: $(pwd)"
printf '{"sent": 3, "echo": "%s"}' "$API_TOKEN" > "$OVERSEER_OUTPUT"
"#,
    );
    let (spawn, tmp) = Spawn::with_db(&db);
    let mut spawn = spawn.toml(&p.toml());
    spawn.env.push(("LEAKY_VAR".into(), "leaked".into()));
    let o = spawn.start_with_tmp(Some(tmp));
    o.wait_ready(T);
    let job = o.create_job(&once(
        "context",
        json!({"program": script, "env": {"MY_SETTING": "42", "API_TOKEN": {"secret": "API_KEY"}}}),
        json!({}),
    ));
    let run = finished(&o, "context", T);
    assert_eq!(run["state"], "succeeded", "{run}");
    let out = &run["output"];
    assert_eq!(out["exit_code"], 0);
    assert_eq!(out["result"], json!({"sent": 3, "echo": "***"}), "{out}");
    let stdout = out["stdout_tail"].as_array().unwrap();
    let line = |prefix: &str| -> String {
        stdout
            .iter()
            .filter_map(Value::as_str)
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix}: {out}"))
            .to_string()
    };
    let id = run["id"].as_str().unwrap();
    assert_eq!(
        line("run="),
        format!("run={id} job=context attempt=1"),
        "{out}"
    );
    let fire_at = chrono::DateTime::parse_from_rfc3339(run["fire_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        line("key="),
        format!(
            "key={}:{} fire={}",
            job["id"].as_str().unwrap(),
            fire_at.with_timezone(&chrono::Utc).to_rfc3339(),
            fire_at.with_timezone(&chrono::Utc).to_rfc3339()
        )
    );
    assert_eq!(line("api="), format!("api=http://{}", o.addr));
    assert_eq!(
        line("leak="),
        "leak=none mine=42 path=/usr/local/bin:/usr/bin:/bin"
    );
    assert_eq!(line("secret on stdout"), "secret on stdout: ***");
    assert_eq!(line("stdin"), "stdin: ");
    assert_eq!(
        line("cwd"),
        format!("cwd: {}", o.state_dir.join("work/context").display())
    );
    let stderr = out["stderr_tail"].to_string();
    assert!(
        stderr.contains("secret on stderr: *** and the run token ***"),
        "{stderr}"
    );
    // Both streams are artifacts, scrubbed too; the logs never carry the secret.
    let so = artifact(&o, &run, "stdout.log");
    assert_eq!(so.status, 200);
    assert!(
        so.content_type.starts_with("text/plain"),
        "{}",
        so.content_type
    );
    assert!(so.text.contains("secret on stdout: ***\n"), "{}", so.text);
    let se = artifact(&o, &run, "stderr.log");
    assert!(
        se.text
            .contains("secret on stderr: *** and the run token ***"),
        "{}",
        se.text
    );
    for text in [&so.text, &se.text, &run.to_string(), &o.logs.text()] {
        assert!(!text.contains(SECRET), "a secret leaked: {text}");
        assert!(!text.contains("ovr_"), "a run token leaked: {text}");
    }
    // The result file is gone with the run.
    assert!(!o
        .state_dir
        .join(format!("command-results/{id}.json"))
        .exists());
}

#[test]
fn exit_codes_decide_the_outcome_and_a_bad_result_is_explained() {
    let db = TestDb::new();
    let p = Programs::new();
    let script = p.script(
        "exit.sh",
        "#!/bin/sh\necho \"about to exit $1\" >&2\necho 'not json' > \"$OVERSEER_OUTPUT\"\nexit \"$1\"\n",
    );
    let python = p.script(
        "report.py",
        "import json, os, sys\n\
         print('from python', sys.version_info[0])\n\
         json.dump({'contacts': ['ann', 'bob'], 'n': 2}, open(os.environ['OVERSEER_OUTPUT'], 'w'))\n",
    );
    let o = TestApp::start(&db, &p.toml());
    o.create_job(&once(
        "three",
        json!({"program": script, "args": ["3"]}),
        json!({}),
    ));
    o.create_job(&once(
        "three-ok",
        json!({"program": script, "args": ["3"], "success_exit_codes": [0, 3]}),
        json!({}),
    ));
    o.create_job(&once(
        "python",
        json!({"program": "/usr/bin/python3", "args": [python]}),
        json!({}),
    ));
    let failed = finished(&o, "three", T);
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["error_kind"], "exit_status");
    assert_eq!(
        failed["error_message"],
        "exited with code 3; stderr: about to exit 3"
    );
    assert_eq!(failed["output"]["exit_code"], 3);
    let ok = finished(&o, "three-ok", T);
    assert_eq!(ok["state"], "succeeded", "{ok}");
    assert!(ok["output"].get("result").is_none());
    assert!(
        ok["output"]["result_error"]
            .as_str()
            .unwrap()
            .starts_with("the result file is not valid JSON"),
        "{ok}"
    );
    let py = finished(&o, "python", T);
    assert_eq!(py["state"], "succeeded", "{py}");
    assert_eq!(
        py["output"]["result"],
        json!({"contacts": ["ann", "bob"], "n": 2})
    );
    assert_eq!(py["output"]["stdout_tail"], json!(["from python 3"]));
}

fn rss_hwm_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// 100 MB on stdout: read to the end without stalling the program, the artifact stops at
/// the limit with a marker, and overseer's memory stays flat.
#[test]
fn a_flood_of_output_is_bounded_and_never_stalls_the_program() {
    let db = TestDb::new();
    let p = Programs::new();
    let script = p.script(
        "flood.sh",
        "#!/bin/sh\nyes 'all work and no play makes a chatty script' | head -c 100000000\n\
         echo done >&2\n",
    );
    let o = TestApp::start(&db, &p.toml());
    let before = rss_hwm_kib(o.pid().as_raw());
    o.create_job(&once(
        "flood",
        json!({"program": script, "output_limit": 65536}),
        json!({"timeout": "50s"}),
    ));
    let run = finished(&o, "flood", Duration::from_secs(90));
    assert_eq!(run["state"], "succeeded", "{run}");
    let out = &run["output"];
    assert_eq!(out["stdout_bytes"], 100_000_000);
    assert_eq!(out["truncated"], true);
    assert_eq!(out["stderr_tail"], json!(["done"]));
    let kept = artifact(&o, &run, "stdout.log").text;
    assert!(
        kept.ends_with("\n[overseer: output truncated at 65536 bytes (output_limit)]\n"),
        "{}",
        &kept[kept.len().saturating_sub(200)..]
    );
    assert_eq!(
        kept.len(),
        65536 + "\n[overseer: output truncated at 65536 bytes (output_limit)]\n".len()
    );
    let after = rss_hwm_kib(o.pid().as_raw());
    println!("overseer peak RSS before {before} KiB, after a 100 MB flood {after} KiB");
    assert!(
        after < before + 32 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
}

/// The script ignores SIGTERM and forks grandchildren that ignore it too: at the timeout the
/// whole group gets SIGTERM, then SIGKILL after `kill_grace`; nothing survives.
#[test]
fn a_timeout_ends_the_whole_group_even_when_it_ignores_sigterm() {
    let db = TestDb::new();
    let p = Programs::new();
    let pid_file = p.bin.join("pids.txt");
    let script = p.script(
        "stubborn.sh",
        &format!(
            "#!/bin/sh\ntrap '' TERM\necho $$ >> {f}\nsleep 1000 &\necho $! >> {f}\n\
             (trap '' TERM; sleep 1000 & echo $! >> {f}; wait) &\necho $! >> {f}\nwait\n",
            f = pid_file.display()
        ),
    );
    let o = TestApp::start(&db, &p.toml());
    o.create_job(&once(
        "stubborn",
        json!({"program": script, "kill_grace": "1s"}),
        json!({"timeout": "2s", "max_retries": 0}),
    ));
    let pids = pids(&pid_file, 4);
    assert!(
        pids.iter().all(|&p| alive(p)),
        "the script and its children run"
    );
    let run = finished(&o, "stubborn", T);
    assert_eq!(run["state"], "timed_out", "{run}");
    assert_eq!(run["error_kind"], "timeout");
    wait_for(
        "every process of the group gone",
        Duration::from_secs(15),
        || pids.iter().all(|&p| !alive(p)).then_some(()),
    );
}

/// overseer killed with -9 while a forking script runs: the shim's death signal ends the
/// group (no child left), another node rescues the run and the retry succeeds.
#[test]
fn kill_9_of_overseer_leaves_no_child_and_the_run_is_rescued_and_retried_once() {
    let db = TestDb::new();
    let p = Programs::new();
    let pid_file = p.bin.join("pids.txt");
    let script = p.script(
        "long.sh",
        &format!(
            "#!/bin/sh\nif [ \"$OVERSEER_ATTEMPT\" = 1 ]; then\n  trap '' TERM\n  echo $$ >> {f}\n  \
             sleep 1000 &\n  echo $! >> {f}\n  wait\nfi\necho \"attempt $OVERSEER_ATTEMPT done\"\n",
            f = pid_file.display()
        ),
    );
    let fast = "[node]\nheartbeat_interval = \"500ms\"\n\
                [zombie]\nsweep_interval = \"1s\"\nnode_timeout = \"3s\"\nheartbeat_timeout = \"10s\"\nlease = \"2s\"\n";
    let config = format!("{}{fast}", p.toml());
    let mut a = TestApp::start(&db, &config);
    a.create_job(&once(
        "long",
        json!({"program": script, "kill_grace": "1s"}),
        json!({"max_retries": 1, "retry_delays": ["1s"]}),
    ));
    let pids = pids(&pid_file, 2);
    a.signal(nix::sys::signal::Signal::SIGKILL);
    a.wait_exit(T);
    wait_for(
        "no process of the killed node's run left",
        Duration::from_secs(15),
        || pids.iter().all(|&p| !alive(p)).then_some(()),
    );
    let b = TestApp::start(&db, &config);
    let run = wait_for("the retry succeeded on the other node", T, || {
        let runs = b.get("/api/v1/runs?job=long", b.admin()).json();
        runs["items"]
            .as_array()?
            .iter()
            .find(|r| r["state"] == "succeeded")
            .cloned()
    });
    assert_eq!(run["attempt"], 2, "{run}");
    assert_eq!(run["output"]["stdout_tail"], json!(["attempt 2 done"]));
    let runs = b.get("/api/v1/runs?job=long", b.admin()).json();
    let states: Vec<&str> = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 2, "one rescue, one retry: {runs}");
    assert!(states.contains(&"zombie"), "{states:?}");
}

/// What the run token may do (its quotas, its run's progress and notices) and may not (any
/// other route or quota, another run), and that it dies with the run.
#[test]
fn the_run_token_is_scoped_to_its_run_and_dies_with_it() {
    let db = TestDb::new();
    let p = Programs::new();
    let token_file = p.bin.join("token.txt");
    let script = p.script(
        "token.py",
        &format!(
            r#"import json, os, urllib.request
api, token, run = os.environ["OVERSEER_API_URL"], os.environ["OVERSEER_RUN_TOKEN"], os.environ["OVERSEER_RUN_ID"]
open("{f}", "w").write(token)
def call(method, path, body=None):
    req = urllib.request.Request(api + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={{"Authorization": "Bearer " + token, "Content-Type": "application/json"}})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
other = "00000000-0000-4000-8000-000000000000"
got = {{
    "consume_mine": call("POST", "/api/v1/quotas/messages/consume", {{"cost": 2}}),
    "refund_mine": call("POST", "/api/v1/quotas/messages/refund", {{"cost": 1}}),
    "read_mine": call("GET", "/api/v1/quotas/messages"),
    "consume_other": call("POST", "/api/v1/quotas/other/consume"),
    "read_other": call("GET", "/api/v1/quotas/other"),
    "list_jobs": call("GET", "/api/v1/jobs"),
    "list_runs": call("GET", "/api/v1/runs"),
    "create_job": call("POST", "/api/v1/jobs", {{"name": "x", "kind": "noop", "schedule": {{"every": "1h"}}}}),
    "progress_mine": call("POST", "/api/v1/runs/" + run + "/progress", {{"note": "2 of 5"}}),
    "progress_other": call("POST", "/api/v1/runs/" + other + "/progress", {{"note": "x"}}),
    "notice_mine": call("POST", "/api/v1/runs/" + run + "/notice", {{"subject": "hello from a script"}}),
    "notice_other": call("POST", "/api/v1/runs/" + other + "/notice", {{"subject": "x"}}),
}}
json.dump(got, open(os.environ["OVERSEER_OUTPUT"], "w"))
"#,
            f = token_file.display()
        ),
    );
    let o = TestApp::start(&db, &p.toml());
    for q in ["messages", "other"] {
        let a = o.put(
            &format!("/api/v1/quotas/{q}"),
            o.admin(),
            &json!({"limits": {"day": 10}}).to_string(),
        );
        assert!(a.status == 200 || a.status == 201, "{}", a.text);
    }
    o.create_job(&once(
        "token",
        json!({"program": "/usr/bin/python3", "args": [script], "quotas": ["messages"]}),
        json!({}),
    ));
    let run = finished(&o, "token", T);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(
        run["output"]["result"],
        json!({
            "consume_mine": 200, "refund_mine": 200, "read_mine": 200,
            "consume_other": 403, "read_other": 403,
            "list_jobs": 403, "list_runs": 403, "create_job": 403,
            "progress_mine": 200, "progress_other": 403,
            "notice_mine": 202, "notice_other": 403,
        }),
        "{run}"
    );
    assert_eq!(run["progress"], "2 of 5");
    let used = o.get("/api/v1/quotas/messages", o.admin()).json();
    assert_eq!(
        used["windows"][0]["used"], 1,
        "2 consumed, 1 refunded: {used}"
    );
    // The notice went through the outbox.
    wait_for("the script's notice queued", T, || {
        let n = o.get("/api/v1/notifications?event=run.notice", o.admin());
        n.text.contains("hello from a script").then_some(())
    });
    // Dead with its run: 401, not 403.
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(token.starts_with("ovr_"));
    let after = o.get("/api/v1/quotas/messages", Some(&token));
    assert_eq!(after.status, 401, "{}", after.text);
    let after = o.post("/api/v1/quotas/messages/consume", Some(&token), Some("{}"));
    assert_eq!(after.status, 401, "{}", after.text);
    assert!(!o.logs.text().contains(&token), "the run token was logged");
}

/// Scripts on two processes consume one quota through their run tokens: exactly the limit
/// is admitted, whatever the interleaving.
#[test]
fn scripts_on_two_processes_consume_a_quota_exactly() {
    let db = TestDb::new();
    let p = Programs::new();
    let script = p.script(
        "send.py",
        r#"import json, os, urllib.request
api, token = os.environ["OVERSEER_API_URL"], os.environ["OVERSEER_RUN_TOKEN"]
admitted = refused = 0
for _ in range(6):
    req = urllib.request.Request(api + "/api/v1/quotas/messages/consume", method="POST",
        data=b"{}", headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            admitted += r.status == 200
    except urllib.error.HTTPError as e:
        assert e.code == 429, e.code
        assert int(e.headers["Retry-After"]) >= 1
        refused += 1
json.dump({"admitted": admitted, "refused": refused}, open(os.environ["OVERSEER_OUTPUT"], "w"))
"#,
    );
    let a = TestApp::start(&db, &p.toml());
    let b = TestApp::start(&db, &p.toml());
    let q = a.put(
        "/api/v1/quotas/messages",
        a.admin(),
        &json!({"limits": {"day": 25}}).to_string(),
    );
    assert!(q.status == 200 || q.status == 201, "{}", q.text);
    for i in 0..10 {
        a.create_job(&once(
            &format!("send-{i}"),
            json!({"program": "/usr/bin/python3", "args": [script], "quotas": ["messages"]}),
            json!({}),
        ));
    }
    let mut admitted = 0;
    let mut refused = 0;
    for i in 0..10 {
        let run = finished(&a, &format!("send-{i}"), T);
        assert_eq!(run["state"], "succeeded", "{run}");
        admitted += run["output"]["result"]["admitted"].as_i64().unwrap();
        refused += run["output"]["result"]["refused"].as_i64().unwrap();
    }
    assert_eq!((admitted, refused), (25, 35));
    let used = b.get("/api/v1/quotas/messages", b.admin()).json();
    assert_eq!(used["windows"][0]["used"], 25, "{used}");
}

/// Only admins create or change command jobs, and only for programs `[command] allowed`
/// lists; the kind is off while it lists nothing.
#[test]
fn command_jobs_need_the_admin_role_and_an_allowed_program() {
    let db = TestDb::new();
    let p = Programs::new();
    let ok = p.script("ok.sh", "#!/bin/sh\necho ok\n");
    let job = |program: &str| {
        // A schedule that does not fire during the test: runs come from `trigger` only.
        json!({"name": "c", "kind": "command", "schedule": {"cron": "0 0 29 2 *"},
               "payload": {"program": program}})
        .to_string()
    };
    let off = TestApp::start(&db, "");
    let a = off.post("/api/v1/jobs", off.admin(), Some(&job(&ok)));
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(a.text.contains("payload.program"), "{}", a.text);
    assert!(
        a.text.contains("[command] allowed lists no program"),
        "{}",
        a.text
    );
    drop(off);

    let o = TestApp::start(&db, &p.toml());
    for token in [o.tokens.operator.clone(), o.tokens.viewer.clone()] {
        let a = o.post("/api/v1/jobs", Some(&token), Some(&job(&ok)));
        assert_eq!(a.status, 403, "{}", a.text);
    }
    let a = o.post("/api/v1/jobs", o.admin(), Some(&job("/bin/sh")));
    assert_eq!(a.status, 422, "{}", a.text);
    let err = a.json();
    assert_eq!(
        err["error"]["fields"][0]["path"], "payload.program",
        "{err}"
    );
    assert!(
        err["error"]["fields"][0]["message"]
            .as_str()
            .unwrap()
            .contains("`/bin/sh` is not allowed by [command] allowed"),
        "{err}"
    );
    let a = o.post(
        "/api/v1/jobs",
        o.admin(),
        Some(&job(&format!("{}/../../bin/sh", p.bin.display()))),
    );
    assert_eq!(a.status, 422, "{}", a.text);
    let a = o.post("/api/v1/jobs", o.admin(), Some(&job(&ok)));
    assert_eq!(a.status, 201, "{}", a.text);
    // An operator may not change it either (but may trigger it).
    let a = o.patch(
        "/api/v1/jobs/c",
        Some(&o.tokens.operator),
        &json!({"payload": {"program": ok, "args": ["x"]}}).to_string(),
    );
    assert_eq!(a.status, 403, "{}", a.text);
    let a = o.post("/api/v1/jobs/c/trigger", Some(&o.tokens.operator), None);
    assert_eq!(a.status, 201, "{}", a.text);
    let run = finished(&o, "c", T);
    assert_eq!(run["state"], "succeeded", "{run}");
}

fn example(name: &str) -> String {
    format!("{}/examples/commands/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The shipped Playwright example (examples/commands/login_and_check.py) in the job's
/// browser profile: the first run logs in, the second finds the cookie already there, and a
/// `browser` job on the same profile sees the same login. Between runs the profile's
/// browser is closed (its DevTools endpoint dies with the hold).
#[test]
fn a_playwright_script_drives_the_profile_over_cdp_and_finds_its_login_again() {
    let db = TestDb::new();
    let pages = common::pages::Pages::start();
    let python = python_with_playwright();
    let p = Programs::new();
    let config = format!(
        "{}[browser.secrets]\nSITE_PASSWORD = \"{SECRET}\"\n",
        p.toml()
            .replace("[browser.secrets]\n", "")
            .replace(&format!("API_KEY = \"{SECRET}\"\n"), "")
            .replace(
                "\"/usr/bin/python3\"]",
                &format!("\"/usr/bin/python3\", \"{python}\"]")
            )
    );
    let o = TestApp::start(&db, &config);
    let q = o.put(
        "/api/v1/quotas/messages",
        o.admin(),
        &json!({"limits": {"day": 1}}).to_string(),
    );
    assert!(q.status == 200 || q.status == 201, "{}", q.text);
    let payload = json!({
        "program": python, "args": [example("login_and_check.py")],
        "env": {"SITE_URL": pages.url("/"), "SITE_USER": "dana",
                "SITE_PASSWORD": {"secret": "SITE_PASSWORD"}},
        "browser_profile": "site", "quotas": ["messages"],
    });
    let profile_dir = o.state_dir.join("profiles/site");
    for (i, signed_in_before, may_send) in [(1, false, true), (2, true, false)] {
        o.create_job(&once(
            &format!("login-{i}"),
            payload.clone(),
            json!({"timeout": "60s"}),
        ));
        let run = finished(&o, &format!("login-{i}"), T);
        assert_eq!(run["state"], "succeeded", "{run}");
        assert_eq!(
            run["output"]["result"],
            json!({"was_signed_in": signed_in_before, "who": "Signed in as dana",
                   "may_send": may_send}),
            "{run}"
        );
        assert_eq!(run["progress"], "Signed in as dana");
        assert!(!run.to_string().contains(SECRET));
        wait_for("the held browser closed after the run", T, || {
            chromium_under(&profile_dir).is_empty().then_some(())
        });
    }
    // A browser job on the same profile sees the script's login.
    let a = o.post(
        "/api/v1/jobs",
        o.admin(),
        Some(
            &json!({"name": "account", "kind": "browser",
                    "schedule": {"at": chrono::Utc::now().to_rfc3339()},
                    "payload": {"profile": "site", "steps": [
                        {"goto": {"url": pages.url("/account")}},
                        {"assert_text": {"selector": "#who", "contains": "Signed in as dana"}}]}})
            .to_string(),
        ),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    let run = finished(&o, "account", T);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert!(!o.logs.text().contains(SECRET));
}

/// The shipped shell example (examples/commands/daily_report.sh).
#[test]
fn the_shell_example_reports_through_its_result() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    for f in ["a", "b", "c"] {
        std::fs::write(dir.path().join(f), f).unwrap();
    }
    let config = format!(
        "[command]\nallowed = [\"{}/examples/commands/*\"]\n",
        env!("CARGO_MANIFEST_DIR")
    );
    let o = TestApp::start(&db, &config);
    o.create_job(&once(
        "report",
        json!({"program": example("daily_report.sh"),
                   "env": {"REPORT_DIR": dir.path().to_string_lossy()}}),
        json!({}),
    ));
    let run = finished(&o, "report", T);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(
        run["output"]["result"],
        json!({"files": 3, "dir": dir.path().to_string_lossy()})
    );
    assert_eq!(
        run["output"]["stderr_tail"],
        json!([format!("counted 3 files in {}", dir.path().display())])
    );
}

/// While a command run holds a profile, a browser job on it waits; a Chromium crash during
/// the hold fails the command run as `browser_crashed` and ends its program; then the
/// browser job runs.
#[test]
fn a_held_profile_is_not_shared_and_its_crash_fails_the_command_run() {
    let db = TestDb::new();
    let pages = common::pages::Pages::start();
    let p = Programs::new();
    let pid_file = p.bin.join("pids.txt");
    let script = p.script(
        "hold.sh",
        &format!(
            "#!/bin/sh\ncase \"$OVERSEER_CDP_URL\" in ws://127.0.0.1:*) ;; *) exit 9 ;; esac\n\
             sleep 1000 &\necho $! >> {f}\nwait\n",
            f = pid_file.display()
        ),
    );
    let o = TestApp::start(&db, &p.toml());
    o.create_job(&once(
        "holder",
        json!({"program": script, "browser_profile": "shared", "kill_grace": "1s"}),
        json!({"max_retries": 0}),
    ));
    let sleeper = pids(&pid_file, 1)[0];
    let profile_dir = o.state_dir.join("profiles/shared");
    let browser = wait_for("the held browser", T, || {
        chromium_under(&profile_dir).into_iter().min()
    });
    let a = o.post(
        "/api/v1/jobs",
        o.admin(),
        Some(
            &json!({"name": "visitor", "kind": "browser",
                    "schedule": {"at": chrono::Utc::now().to_rfc3339()},
                    "payload": {"profile": "shared", "steps": [
                        {"goto": {"url": pages.url("/account")}}]}})
            .to_string(),
        ),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    wait_for(
        "the browser job started (and waits for the profile)",
        T,
        || {
            let runs = o.get("/api/v1/runs?job=visitor", o.admin()).json();
            (runs["items"][0]["state"] == "running").then_some(())
        },
    );
    // Kill the main Chromium process (the lowest pid of its group).
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(browser),
        nix::sys::signal::Signal::SIGKILL,
    );
    let held = finished(&o, "holder", T);
    assert_eq!(held["state"], "failed", "{held}");
    assert_eq!(held["error_kind"], "browser_crashed", "{held}");
    wait_for("the program ended with its browser", T, || {
        (!alive(sleeper)).then_some(())
    });
    let visitor = finished(&o, "visitor", T);
    assert_eq!(visitor["state"], "succeeded", "{visitor}");
    assert!(
        visitor["finished_at"].as_str().unwrap() > held["finished_at"].as_str().unwrap(),
        "the browser job ran after the hold: {visitor} {held}"
    );
}

/// Cancelling the job ends its running program's group (the node learns it at its next
/// heartbeat) and the run stays `cancelled`.
#[test]
fn cancelling_the_job_ends_its_running_program() {
    let db = TestDb::new();
    let p = Programs::new();
    let pid_file = p.bin.join("pids.txt");
    let script = p.script(
        "forever.sh",
        &format!(
            "#!/bin/sh\necho $$ >> {f}\nsleep 1000 &\necho $! >> {f}\nwait\n",
            f = pid_file.display()
        ),
    );
    let o = TestApp::start(&db, &p.toml());
    o.create_job(&once(
        "forever",
        json!({"program": script, "kill_grace": "1s"}),
        json!({}),
    ));
    let pids = pids(&pid_file, 2);
    let a = request(
        "DELETE",
        &o.url("/api/v1/jobs/forever"),
        o.admin(),
        &[],
        None,
    );
    assert_eq!(a.status, 200, "{}", a.text);
    wait_for("the program and its child gone", T, || {
        pids.iter().all(|&p| !alive(p)).then_some(())
    });
    let run = finished(&o, "forever", T);
    assert_eq!(run["state"], "cancelled", "{run}");
    assert_eq!(run["error_kind"], "job_cancelled");
    assert!(o.logs.text().contains("no longer running here"));
}

/// A clean shutdown (SIGTERM) waits for a running program most of `server.shutdown_timeout`,
/// then ends its whole group and gives the run back — deferred, the same attempt, with why —
/// instead of leaving it `running` for the zombie detector to fail. The next start runs it
/// again; nothing counts as a failure, so `max_retries = 0` loses nothing.
#[test]
fn a_clean_shutdown_gives_a_running_program_back_and_the_restart_runs_it_again() {
    let db = TestDb::new();
    let p = Programs::new();
    let pid_file = p.bin.join("pids.txt");
    let marker = p.bin.join("started-once");
    let script = p.script(
        "long.sh",
        &format!(
            "#!/bin/sh\nif [ ! -e {m} ]; then\n  touch {m}\n  trap '' TERM\n  echo $$ >> {f}\n  \
             sleep 1000 &\n  echo $! >> {f}\n  wait\nfi\necho \"ran again, attempt $OVERSEER_ATTEMPT\"\n",
            m = marker.display(),
            f = pid_file.display()
        ),
    );
    let config = format!("{}[server]\nshutdown_timeout = \"3s\"\n", p.toml());
    let mut a = TestApp::start(&db, &config);
    a.create_job(&once(
        "long",
        json!({"program": script, "kill_grace": "1s"}),
        json!({"max_retries": 0}),
    ));
    let pids = pids(&pid_file, 2);
    a.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(a.wait_exit(T).code(), Some(0), "{}", a.logs.text());
    wait_for("the program and its child gone", T, || {
        pids.iter().all(|&p| !alive(p)).then_some(())
    });
    assert!(
        a.logs.text().contains("run interrupted by the shutdown"),
        "{}",
        a.logs.text()
    );
    {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName, Debug)]
        struct Left {
            #[diesel(sql_type = diesel::sql_types::Text)]
            state: String,
            #[diesel(sql_type = diesel::sql_types::Integer)]
            attempt: i32,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            error_message: Option<String>,
            #[diesel(sql_type = diesel::sql_types::Bool)]
            unowned: bool,
        }
        let left: Vec<Left> = diesel::sql_query(
            "SELECT state, attempt, error_message, node_id IS NULL AS unowned FROM runs",
        )
        .load(&mut db.conn())
        .unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].state, "deferred", "{left:?}");
        assert_eq!(left[0].attempt, 1, "{left:?}");
        assert!(left[0].unowned, "{left:?}");
        let why = left[0].error_message.as_deref().unwrap_or("");
        assert!(
            why.contains("node shut down") && why.contains("same attempt"),
            "{why}"
        );
        // Its run token went with it, in the same transaction: the run runs again in the
        // same attempt, where the old token would be good again.
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let tokens = diesel::sql_query("SELECT count(*) AS n FROM run_tokens")
            .get_result::<N>(&mut db.conn())
            .unwrap()
            .n;
        assert_eq!(tokens, 0, "the interrupted run's token is left");
    }
    let b = TestApp::start(&db, &config);
    let run = finished(&b, "long", T);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["attempt"], 1, "{run}");
    assert_eq!(
        run["output"]["stdout_tail"],
        json!(["ran again, attempt 1"]),
        "{run}"
    );
    let runs = b.get("/api/v1/runs?job=long", b.admin()).json();
    assert_eq!(runs["items"].as_array().unwrap().len(), 1, "{runs}");
}

/// The README's `command` example as written — its `[command]` section and its job, with
/// `/opt/automations` moved to a temporary directory and the site to loopback — under the
/// shipped relative `state_dir = "./var"`: the program runs in its `cwd`, far from the state
/// dir, and still finds `$OVERSEER_OUTPUT` (before the state dir was made absolute at start,
/// it got `./var/command-results/…`, which does not exist from there, and failed after its
/// work, retry after retry).
#[test]
fn the_readme_command_example_with_cwd_runs_under_the_default_relative_state_dir() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme.find("### Running your own scripts").unwrap()..];
    let toml_block = {
        let start = section.find("```toml\n").unwrap() + "```toml\n".len();
        &section[start..start + section[start..].find("```").unwrap()]
    };
    let body = {
        let start = section.find("-d '{").unwrap() + "-d '".len();
        &section[start..start + section[start..].find("}'\n").unwrap() + 1]
    };
    assert!(body.contains("\"cwd\": \"/opt/automations\""), "{body}");

    let db = TestDb::new();
    let pages = common::pages::Pages::start();
    let home = tempfile::tempdir().unwrap();
    // Where the user keeps their automations, and where overseer is started from.
    let automations = home.path().join("automations");
    let served_from = home.path().join("service");
    std::fs::create_dir_all(automations.join("venv/bin")).unwrap();
    std::fs::create_dir_all(&served_from).unwrap();
    std::os::unix::fs::symlink("/usr/bin/python3", automations.join("venv/bin/python")).unwrap();
    std::fs::write(
        automations.join("greet.py"),
        r#"import json, os, sys, urllib.request
assert os.getcwd() == os.environ["EXPECTED_CWD"], os.getcwd()
assert os.environ["SITE_PASSWORD"], "no password"
cdp = os.environ["OVERSEER_CDP_URL"]
version = json.load(urllib.request.urlopen(
    "http://" + cdp.split("//", 1)[1].split("/", 1)[0] + "/json/version", timeout=10))
api, token = os.environ["OVERSEER_API_URL"], os.environ["OVERSEER_RUN_TOKEN"]
req = urllib.request.Request(api + "/api/v1/quotas/linkedin:messages/consume",
    data=b'{"cost": 1}', method="POST",
    headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=10).read()
limit = int(sys.argv[sys.argv.index("--limit") + 1])
with open(os.environ["OVERSEER_OUTPUT"], "w") as f:
    json.dump({"greeted": 1, "limit": limit, "cwd": os.getcwd(),
               "browser": "Chrome" in version["Browser"]}, f)
"#,
    )
    .unwrap();

    let dir = automations.to_string_lossy();
    let site = pages.url("/");
    let config = format!(
        "{}\n[browser.secrets]\nLINKEDIN_PASSWORD = \"{SECRET}\"\n",
        toml_block.replace("/opt/automations", &dir)
    );
    let body: Value = serde_json::from_str(
        &body
            .replace("/opt/automations", &dir)
            .replace("https://www.linkedin.com", site.trim_end_matches('/')),
    )
    .unwrap();
    let mut body = body;
    body["payload"]["env"]["EXPECTED_CWD"] = json!(dir);

    let (spawn, tmp) = Spawn::with_db(&db);
    let o = spawn
        .in_dir(&served_from)
        .toml(&config)
        .start_with_tmp(Some(tmp));
    o.wait_ready(T);
    let q = o.put(
        "/api/v1/quotas/linkedin:messages",
        o.admin(),
        &json!({"limits": {"day": 20}}).to_string(),
    );
    assert!(q.status == 200 || q.status == 201, "{}", q.text);
    o.create_job(&body);
    let a = o.post("/api/v1/jobs/birthday-greetings/trigger", o.admin(), None);
    assert_eq!(a.status, 201, "{}", a.text);
    let run = finished(&o, "birthday-greetings", T);
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["attempt"], 1, "{run}");
    assert_eq!(
        run["output"]["result"],
        json!({"greeted": 1, "limit": 20, "cwd": dir, "browser": true}),
        "{run}"
    );
    // The state dir is where the shipped default says, and the start-up log shows it whole.
    assert!(served_from.join("var/profiles/linkedin").is_dir());
    let started = o.logs.wait_json("the start-up line", T, |v| {
        v["message"] == "overseer starting"
    });
    assert_eq!(
        started["state_dir"],
        json!(served_from.join("var").to_string_lossy())
    );
    assert!(!o.logs.text().contains(SECRET));
}
