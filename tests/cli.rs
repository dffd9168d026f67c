//! The command line: migrations (up, down, up leaves the same schema), `config check`,
//! `token new`, `--version`.

mod common;

use common::*;

fn schema_dump(db: &TestDb) -> String {
    let pg_dump = cluster().cluster.bin_dir().join("pg_dump");
    let out = std::process::Command::new(pg_dump)
        .args(["--schema-only", "--no-owner", "--no-privileges", "-d"])
        .arg(db.url.expose())
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // pg_dump's \restrict / \unrestrict lines carry a random key per dump.
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn migrations_up_down_up_leave_an_identical_schema() {
    let db = TestDb::new();
    let env = [("DATABASE_URL", db.url.expose())];

    let (code, out, err) = run_cli(&["migrate", "status"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().all(|l| l.starts_with("pending ")), "{out}");
    let versions = out.lines().count();
    assert!(versions >= 1);

    let (code, out, err) = run_cli(&["migrate", "run"], &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("applied ")).count(),
        versions
    );
    let first = schema_dump(&db);
    assert!(first.contains("CREATE TABLE public.nodes"), "{first}");

    // Down all the way, then up again.
    for _ in 0..versions {
        let (code, out, err) = run_cli(&["migrate", "revert"], &env);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("reverted "), "{out}");
    }
    let empty = schema_dump(&db);
    assert!(!empty.contains("public.nodes"), "down.sql drops everything");
    let (code, _, err) = run_cli(&["migrate", "run"], &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(schema_dump(&db), first, "up, down, up changed the schema");

    let (code, out, _) = run_cli(&["migrate", "status"], &env);
    assert_eq!(code, 0);
    assert!(out.lines().all(|l| l.starts_with("applied ")), "{out}");
    let (_, out, _) = run_cli(&["migrate", "run"], &env);
    assert_eq!(out.trim(), "no pending migrations");
}

#[test]
fn config_check_prints_the_effective_config_redacted_or_exits_2() {
    let (code, out, err) = run_cli(
        &["config", "check"],
        &[
            (
                "DATABASE_URL",
                "postgresql+asyncpg://app:s3cr3t-pw@db.example:5432/jobs",
            ),
            ("OVERSEER__SERVER__BIND", "127.0.0.1:9999"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("bind = \"127.0.0.1:9999\""), "{out}");
    // The shipped relative state dir, shown as the absolute path everything will use.
    let cwd = std::env::current_dir().unwrap();
    assert!(
        out.contains(&format!("state_dir = \"{}\"", cwd.join("var").display())),
        "{out}"
    );
    assert!(
        out.contains("postgresql://app:***@db.example:5432/jobs"),
        "{out}"
    );
    assert!(!out.contains("s3cr3t-pw") && !err.contains("s3cr3t-pw"));

    // Each error path: exit 2, the key, the source, what was expected; no secret echoed.
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Env, &[&str])] = &[
        (
            &[("OVERSEER__SERVER__BIND", "everywhere")],
            &[
                "server.bind",
                "OVERSEER__SERVER__BIND",
                "IP address and port",
            ],
        ),
        (
            &[("DATABASE_URL", "sqlite:///jobs.sqlite")],
            &["database.url", "DATABASE_URL", "postgresql+psycopg2://"],
        ),
        (
            &[("DATABASE_URL", "mysql://root:hunter2@h/db")],
            &["database.url", "DATABASE_URL", "`mysql`"],
        ),
        (
            &[("OVERSEER__SUPERVISOR__MAX_RESTARTS", "-1")],
            &[
                "supervisor.max_restarts",
                "OVERSEER__SUPERVISOR__MAX_RESTARTS",
            ],
        ),
        (&[("OVERSEER__NOPE__KEY", "1")], &["nope", "unknown key"]),
        (
            &[("ANTI_DETECTION_ENABLED", "perhaps")],
            &["flags.anti_detection", "ANTI_DETECTION_ENABLED", "boolean"],
        ),
    ];
    for (env, needles) in cases {
        let (code, out, err) = run_cli(&["config", "check"], env);
        assert_eq!(code, 2, "{env:?}: {out}{err}");
        for n in *needles {
            assert!(err.contains(n), "{env:?}: {n:?} not in {err}");
        }
        assert!(!err.contains("hunter2"), "{err}");
    }

    // A file: the key and the file's path; OVERSEER_CONFIG works like --config.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[server]\nbody_limit = \"big\"\n").unwrap();
    let (code, _, err) = run_cli(
        &["config", "check"],
        &[("OVERSEER_CONFIG", path.to_str().unwrap())],
    );
    assert_eq!(code, 2);
    assert!(err.contains("server.body_limit"), "{err}");
    assert!(err.contains(path.to_str().unwrap()), "{err}");
    let (code, _, err) = run_cli(
        &["--config", "/nonexistent/overseer.toml", "config", "check"],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/overseer.toml"), "{err}");

    // serve refuses to start on a bad configuration, with the same exit code.
    let (code, _, err) = run_cli(&["serve"], &[("OVERSEER__SERVER__BIND", "nowhere")]);
    assert_eq!(code, 2, "{err}");

    // The shipped example configuration is valid.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/production.toml");
    let (code, out, err) = run_cli(&["--config", example, "config", "check"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("format = \"json\""), "{out}");
}

#[test]
fn token_new_prints_a_token_once_and_its_config_entry() {
    let (code, out, err) = run_cli(&["token", "new", "--role", "operator", "--name", "ci"], &[]);
    assert_eq!(code, 0, "{err}");
    let token = out.trim();
    assert!(token.starts_with("ovs_"), "{out}");
    let hash = overseer::api::auth::hash_token(token);
    assert!(err.contains(&format!("sha256 = \"{hash}\"")), "{err}");
    assert!(err.contains("role = \"operator\""), "{err}");
    assert!(!err.contains(token), "the token is printed once, on stdout");

    let (code, _, err) = run_cli(&["token", "new", "--role", "root"], &[]);
    assert_eq!(code, 2, "{err}");

    let (code, out, _) = run_cli(&["--version"], &[]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("overseer {}", env!("CARGO_PKG_VERSION"))
    );
}

/// A declarative job naming a quota or a channel that does not exist, or running a program
/// `[command] allowed` does not list, stops start-up with a configuration error naming the
/// key (exit 2), as the API refuses the same job with a 422.
#[test]
fn a_declarative_job_naming_a_missing_quota_or_channel_stops_start_up() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cases = [
        (
            "[[quotas]]\nname = \"messages\"\nlimits = { day = 5 }\n\
             [[jobs]]\nname = \"fine\"\nkind = \"noop\"\nschedule = { every = \"1h\" }\n\
             quota = [{ name = \"messages\", cost = 1 }]\n\
             [[jobs]]\nname = \"greet\"\nkind = \"noop\"\nschedule = { every = \"1h\" }\n\
             quota = [{ name = \"mesages\", cost = 1 }]\n",
            "jobs.1.quota.0.name",
            "no quota named `mesages`",
        ),
        (
            "[[jobs]]\nname = \"remind\"\nkind = \"notify\"\nschedule = { every = \"1h\" }\n\
             payload = { channels = [\"log\", \"slack\"], subject = \"hi\" }\n",
            "jobs.0.payload.channels.1",
            "no channel named `slack`",
        ),
        (
            "[[quotas]]\nname = \"messages\"\nlimits = { day = 5 }\n\
             [[jobs]]\nname = \"browse\"\nkind = \"browser\"\nschedule = { every = \"1h\" }\n\
             payload = { profile = \"p\", steps = [{ goto = { url = \"http://127.0.0.1:9/\" } }, { consume = { quota = \"other\" } }] }\n",
            "jobs.0.payload.steps.1.consume.quota",
            "no quota named `other`",
        ),
        (
            "[[jobs]]\nname = \"script\"\nkind = \"command\"\nschedule = { every = \"1h\" }\n\
             payload = { program = \"/bin/true\" }\n",
            "jobs.0.payload.program",
            "command jobs are off: [command] allowed lists no program",
        ),
        (
            "[command]\nallowed = [\"/opt/automations/*\"]\n\
             [[jobs]]\nname = \"script\"\nkind = \"command\"\nschedule = { every = \"1h\" }\n\
             payload = { program = \"/bin/true\", quotas = [\"nope\"] }\n",
            "jobs.0.payload.program",
            "`/bin/true` is not allowed by [command] allowed",
        ),
        (
            "[command]\nallowed = [\"/bin/true\"]\n\
             [[jobs]]\nname = \"script\"\nkind = \"command\"\nschedule = { every = \"1h\" }\n\
             payload = { program = \"/bin/true\", quotas = [\"nope\"] }\n",
            "jobs.0.payload.quotas.0",
            "no quota named `nope`",
        ),
    ];
    for (toml, key, says) in cases {
        let config = dir.path().join("overseer.toml");
        std::fs::write(&config, toml).unwrap();
        let (code, _, err) = run_cli(
            &["--config", config.to_str().unwrap(), "serve"],
            &[
                ("OVERSEER__DATABASE__URL", db.url.expose()),
                ("OVERSEER__STATE_DIR", state.to_str().unwrap()),
                ("OVERSEER__SERVER__BIND", "127.0.0.1:0"),
            ],
        );
        assert_eq!(code, 2, "{toml}\n{err}");
        assert!(err.contains(key) && err.contains(says), "{key}: {err}");
        assert!(
            err.contains(config.to_str().unwrap()),
            "names the file: {err}"
        );
    }
    // Nothing was upserted from a configuration that failed.
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let n = diesel::sql_query("SELECT count(*) AS n FROM jobs")
        .get_result::<N>(&mut db.conn())
        .unwrap()
        .n;
    assert_eq!(n, 0);
}

/// The client commands against a real overseer: `jobs apply` upserts from TOML, every
/// command prints a table or `--json`, and errors have exit codes a script can rely on.
#[test]
fn client_commands_drive_a_running_overseer() {
    let db = TestDb::new();
    let o = TestApp::start(&db, "");
    let url = format!("http://{}", o.addr);
    let admin = o.tokens.admin.clone();
    let cli = |token: &str, args: &[&str]| {
        let mut all = vec!["--url", url.as_str()];
        all.extend_from_slice(args);
        run_cli(&all, &[("OVERSEER_TOKEN", token)])
    };
    let json = |out: &str| -> serde_json::Value {
        serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.toml");
    std::fs::write(
        &file,
        "[[jobs]]\nname = \"greet\"\nkind = \"noop\"\nschedule = { cron = \"0 0 29 2 *\" }\ntags = [\"cli\"]\n\
         [[jobs]]\nname = \"broken\"\nkind = \"noop\"\nschedule = { cron = \"0 0 29 2 *\" }\n\
         payload = { fail = true }\npolicy = { max_retries = 0 }\n",
    )
    .unwrap();
    let (code, out, err) = cli(&admin, &["jobs", "apply", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "created greet\ncreated broken");
    std::fs::write(
        &file,
        "[[jobs]]\nname = \"greet\"\nkind = \"noop\"\nschedule = { cron = \"0 0 29 2 *\" }\ntags = [\"cli\", \"changed\"]\n",
    )
    .unwrap();
    let (code, out, err) = cli(&admin, &["jobs", "apply", "-f", file.to_str().unwrap()]);
    assert_eq!((code, out.trim()), (0, "updated greet"), "{err}");
    let (code, out, _) = cli(&admin, &["--json", "jobs", "get", "greet"]);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["tags"], serde_json::json!(["changed", "cli"]));
    let (code, out, _) = cli(&admin, &["jobs", "list"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("NAME"), "{out}");
    assert!(
        out.contains("greet") && out.contains("cron 0 0 29 2 *"),
        "{out}"
    );
    let (code, out, _) = cli(&admin, &["--json", "jobs", "list", "--tag", "changed"]);
    assert_eq!(code, 0);
    assert_eq!(json(&out).as_array().unwrap().len(), 1, "{out}");

    // Pause, resume, trigger; the run appears in `runs list`.
    assert_eq!(
        cli(&admin, &["jobs", "pause", "greet"]).1.trim(),
        "greet: paused"
    );
    assert_eq!(
        cli(&admin, &["jobs", "resume", "greet"]).1.trim(),
        "greet: active"
    );
    let (code, out, err) = cli(&admin, &["jobs", "trigger", "greet"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("triggered greet: run "), "{out}");
    let (code, _, _) = cli(&admin, &["jobs", "trigger", "broken"]);
    assert_eq!(code, 0);
    let failed = wait_for(
        "the broken run failed",
        std::time::Duration::from_secs(30),
        || {
            let (_, out, _) = cli(
                &admin,
                &[
                    "--json", "runs", "list", "--job", "broken", "--state", "failed",
                ],
            );
            json(&out).as_array()?.first().cloned()
        },
    );
    let id = failed["id"].as_str().unwrap().to_string();
    let (code, out, _) = cli(&admin, &["--json", "runs", "get", &id]);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["error_kind"], "noop_failure");
    let (code, out, err) = cli(&admin, &["runs", "requeue", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(attempt 2)"), "{out}");
    let (code, out, _) = cli(&admin, &["runs", "list", "--job", "greet"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("ID"), "{out}");

    // Quotas, notifications, status.
    let q = o.put(
        "/api/v1/quotas/messages",
        o.admin(),
        &serde_json::json!({"limits": {"day": 5}}).to_string(),
    );
    assert!(q.status == 200 || q.status == 201, "{}", q.text);
    let (code, out, _) = cli(&admin, &["quotas", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("messages") && out.contains("day"), "{out}");
    let (code, out, _) = cli(&admin, &["--json", "quotas", "get", "messages"]);
    assert_eq!((code, json(&out)["name"].clone()), (0, "messages".into()));
    let (code, out, _) = cli(&admin, &["--json", "notifications", "list"]);
    assert_eq!(code, 0);
    assert!(json(&out).is_array(), "{out}");
    let (code, out, err) = cli(&admin, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ready: ready"), "{out}");
    assert!(out.contains("ACTOR") && out.contains("scheduler"), "{out}");
    let (code, out, _) = cli(&admin, &["--json", "status"]);
    assert_eq!(code, 0);
    assert!(json(&out)["actors"].is_array(), "{out}");

    // Exit codes.
    assert_eq!(cli(&admin, &["jobs", "get", "nope"]).0, 4, "not found");
    let (code, _, err) = cli(&o.tokens.viewer, &["jobs", "trigger", "greet"]);
    assert_eq!(code, 3, "denied: {err}");
    assert_eq!(cli("ovs_wrong", &["jobs", "list"]).0, 3, "a wrong token");
    std::fs::write(
        &file,
        "[[jobs]]\nname = \"bad\"\nkind = \"noop\"\nschedule = { cron = \"61 * * * *\" }\n",
    )
    .unwrap();
    let (code, _, err) = cli(&admin, &["jobs", "apply", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 5, "refused: {err}");
    assert!(
        err.contains("job `bad` (jobs.0)") && err.contains("schedule.cron"),
        "{err}"
    );
    std::fs::write(&file, "not toml [[").unwrap();
    assert_eq!(
        cli(&admin, &["jobs", "apply", "-f", file.to_str().unwrap()]).0,
        2
    );
    let (code, _, err) = run_cli(
        &["--url", "http://127.0.0.1:9", "jobs", "list"],
        &[("OVERSEER_TOKEN", admin.as_str())],
    );
    assert_eq!(code, 1, "unreachable: {err}");
}

#[test]
fn migrations_can_be_looked_at_before_they_run_and_reverted_to_a_version() {
    let db = TestDb::new();
    let env = [("DATABASE_URL", db.url.expose())];
    let empty = schema_dump(&db);
    // A dry run prints every pending migration with its SQL and changes nothing.
    let (code, out, err) = run_cli(&["migrate", "run", "--dry-run"], &env);
    assert_eq!(code, 0, "{err}");
    let pending: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("-- pending "))
        .collect();
    assert!(pending.len() >= 3, "{out}");
    assert!(out.contains("CREATE TABLE nodes"), "the SQL itself: {out}");
    assert_eq!(schema_dump(&db), empty, "a dry run changed the schema");
    let (_, status, _) = run_cli(&["migrate", "status"], &env);
    assert!(
        status.lines().all(|l| l.starts_with("pending ")),
        "{status}"
    );

    let (code, _, err) = run_cli(&["migrate", "run"], &env);
    assert_eq!(code, 0, "{err}");
    let full = schema_dump(&db);
    let (_, status, _) = run_cli(&["migrate", "status"], &env);
    let versions: Vec<&str> = status
        .lines()
        .map(|l| {
            // "applied VERSION YYYY-MM-DD HH:MM:SS UTC"
            let parts: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(parts[0], "applied", "{l}");
            assert_eq!(parts.len(), 5, "applied with its time: {l}");
            parts[1]
        })
        .collect();
    assert_eq!(versions.len(), pending.len());

    // Back to the third newest: the two newest are reverted, newest first.
    let target = versions[versions.len() - 3];
    let (code, out, err) = run_cli(&["migrate", "revert", "--to", target], &env);
    assert_eq!(code, 0, "{err}");
    let reverted: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("reverted "))
        .collect();
    assert_eq!(
        reverted,
        [versions[versions.len() - 1], versions[versions.len() - 2]],
        "{out}"
    );
    let (_, status, _) = run_cli(&["migrate", "status"], &env);
    let states: Vec<&str> = status
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "pending").count(),
        2,
        "{status}"
    );
    let partial = schema_dump(&db);
    // The dry run now shows exactly those two, and still changes nothing.
    let (_, out, _) = run_cli(&["migrate", "run", "--dry-run"], &env);
    let again: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("-- pending "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        again,
        [versions[versions.len() - 2], versions[versions.len() - 1]]
    );
    assert_eq!(schema_dump(&db), partial);
    // Nothing newer than the target is left: a second revert --to does nothing.
    let (code, out, _) = run_cli(&["migrate", "revert", "--to", target], &env);
    assert_eq!(code, 0);
    assert!(out.contains("nothing newer than"), "{out}");
    // Run again: the schema is what it was.
    let (code, _, err) = run_cli(&["migrate", "run"], &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        schema_dump(&db),
        full,
        "revert --to then run changed the schema"
    );
    // An unknown version is refused, naming it; nothing is reverted.
    let (code, out, err) = run_cli(&["migrate", "revert", "--to", "19990101000000"], &env);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("19990101000000"), "{err}");
    assert_eq!(schema_dump(&db), full);
}

/// Runs the binary with its stdout a pipe whose reader is already gone (`… | head -1` once
/// `head` has its line): what it exits with, and what it said on stderr.
fn run_into_closed_pipe(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let (reader, writer) = nix::unistd::pipe().unwrap();
    drop(reader);
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("OVERSEER_CONFIG")
        .stdout(std::process::Stdio::from(writer))
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `overseer jobs get X | head -1` and friends: when stdout closes, the CLI ends quietly
/// with status 0, like any Unix tool (it panicked with a backtrace before).
#[test]
fn a_closed_stdout_ends_the_cli_quietly() {
    let (code, err) = run_into_closed_pipe(&["config", "check"], &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let db = TestDb::new();
    let o = TestApp::start(&db, "");
    let a = o.post(
        "/api/v1/jobs",
        o.admin(),
        Some(r#"{"name": "x", "kind": "noop", "schedule": {"every": "1h"}}"#),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    let url = format!("http://{}", o.addr);
    for args in [
        &["--url", url.as_str(), "jobs", "get", "x"][..],
        &["--url", url.as_str(), "--json", "jobs", "list"][..],
    ] {
        let (code, err) = run_into_closed_pipe(args, &[("OVERSEER_TOKEN", &o.tokens.admin)]);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}
