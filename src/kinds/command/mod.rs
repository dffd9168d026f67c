//! `command`: runs one of the user's own programs under supervision.
//!
//! Payload: `program` (absolute, or a name looked up on `[command] path`; it must match
//! `[command] allowed`), `args`, `env` (values are strings or `{"secret": NAME}`), `cwd`
//! (default `<work_dir>/<job name>`), `kill_grace` (default 10 s), `output_limit` (bytes per
//! stream, default 1 MiB), `success_exit_codes` (default `[0]`), `quotas` (names the run
//! token may consume) and `browser_profile` (the profile's browser, held for this run alone,
//! its DevTools websocket in `OVERSEER_CDP_URL`; closed when the run ends).
//!
//! The program runs through the [`shim`] in a process group of its own with a cleared
//! environment (`[command] pass_env`, PATH, the job's `env` and the run context
//! `OVERSEER_*`), stdin closed. A timeout, cancel, rescue or shutdown ends the group
//! (SIGTERM, SIGKILL after `kill_grace`); so does overseer's death (the shim's death signal);
//! and when the program exits, whatever it left in its group is ended too. stdout and stderr
//! are captured concurrently into the run's artifacts `stdout.log` / `stderr.log` (truncated
//! at `output_limit` with a marker), their last lines into the output, every secret value
//! scrubbed. A JSON object written to `$OVERSEER_OUTPUT` becomes `output.result`.
//!
//! Why one file of ~690 lines: it is the kind's whole contract — the payload's validation,
//! what a run gets (environment, token, profile hold) and how its result is read — in the
//! order a run meets them; the mechanics are in rooms of their own (`settings`, `shim`,
//! `process`, `output`).

pub mod output;
pub mod process;
pub mod settings;
pub mod shim;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use serde_json::{json, Value};

use self::output::Captured;
use self::process::Exit;
use self::settings::{valid_env_name, CommandConfig};
use super::{object_with_fields, JobKind, RunContext, RunError};
use crate::jobs::run_error::RunErrorKind;
use crate::stdx::duration::{format_duration, parse_duration};
use crate::stdx::problems::Problems;

pub struct Command;

const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(10);
const MAX_KILL_GRACE: Duration = Duration::from_secs(600);
const DEFAULT_OUTPUT_LIMIT: u64 = 1 << 20;
const MAX_OUTPUT_LIMIT: u64 = 1 << 30;
/// Largest `$OVERSEER_OUTPUT` file read.
const MAX_RESULT_BYTES: u64 = 1 << 20;
/// After the program's group is gone, how long its output pipes may stay open (held by a
/// process that left the group) before the run stops reading them.
const PIPE_DRAIN: Duration = Duration::from_secs(5);

/// What every command run of this node shares: the settings and where things go.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: CommandConfig,
    /// `<work_dir>/<job name>` is a job's default working directory.
    pub work_dir: PathBuf,
    /// `<artifacts_dir>/<run id>/` holds `stdout.log` and `stderr.log`.
    pub artifacts_dir: PathBuf,
    /// `$OVERSEER_OUTPUT` files live here while their run runs.
    pub results_dir: PathBuf,
}

impl Settings {
    pub fn for_tests() -> Self {
        Self {
            config: CommandConfig::default(),
            work_dir: std::env::temp_dir().join("overseer-work"),
            artifacts_dir: std::env::temp_dir().join("overseer-artifacts"),
            results_dir: std::env::temp_dir().join("overseer-results"),
        }
    }
}

/// The payload, parsed (the stored one was validated at creation).
struct Payload {
    program: String,
    args: Vec<String>,
    env: BTreeMap<String, EnvValue>,
    cwd: Option<String>,
    kill_grace: Duration,
    output_limit: u64,
    success_exit_codes: Vec<i32>,
    quotas: Vec<String>,
    browser_profile: Option<String>,
}

enum EnvValue {
    Plain(String),
    Secret(String),
}

fn parse(payload: &Value) -> Payload {
    let strings = |k: &str| -> Vec<String> {
        payload
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let env = payload
        .get("env")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| {
                    let value = match v {
                        Value::String(s) => EnvValue::Plain(s.clone()),
                        other => EnvValue::Secret(other.get("secret")?.as_str()?.to_string()),
                    };
                    Some((k.clone(), value))
                })
                .collect()
        })
        .unwrap_or_default();
    Payload {
        program: payload
            .get("program")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        args: strings("args"),
        env,
        cwd: payload
            .get("cwd")
            .and_then(Value::as_str)
            .map(str::to_string),
        kill_grace: payload
            .get("kill_grace")
            .and_then(Value::as_str)
            .and_then(|s| parse_duration(s).ok())
            .unwrap_or(DEFAULT_KILL_GRACE),
        output_limit: payload
            .get("output_limit")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_OUTPUT_LIMIT),
        success_exit_codes: payload
            .get("success_exit_codes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_i64().map(|c| c as i32))
                    .collect()
            })
            .unwrap_or_else(|| vec![0]),
        quotas: strings("quotas"),
        browser_profile: payload
            .get("browser_profile")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

impl JobKind for Command {
    fn name(&self) -> &'static str {
        "command"
    }

    fn runs_code(&self) -> bool {
        true
    }

    fn validate(&self, payload: &Value, path: &str, p: &mut Problems) {
        let expected = "an object with at least `program`";
        let fields = [
            "program",
            "args",
            "env",
            "cwd",
            "kill_grace",
            "output_limit",
            "browser_profile",
            "success_exit_codes",
            "quotas",
        ];
        if !object_with_fields(payload, path, expected, &fields, p) {
            return;
        }
        let at = |k: &str| format!("{path}.{k}");
        match payload.get("program").and_then(Value::as_str) {
            Some(s) if !s.is_empty() && s.len() <= 4096 && !s.contains('\0') => {}
            _ => p.add(
                &at("program"),
                "expected an absolute path or a program name on [command] path",
            ),
        }
        if let Some(args) = payload.get("args") {
            match args.as_array() {
                Some(a) if a.len() <= 1000 => {
                    for (i, v) in a.iter().enumerate() {
                        if v.as_str().is_none_or(|s| s.len() > 32 * 1024) {
                            p.add(
                                &format!("{path}.args.{i}"),
                                "expected a string (up to 32 KiB)",
                            );
                        }
                    }
                }
                _ => p.add(&at("args"), "expected an array of up to 1000 strings"),
            }
        }
        if let Some(env) = payload.get("env") {
            match env.as_object() {
                Some(o) => {
                    for (k, v) in o {
                        let key = format!("{path}.env.{k}");
                        if !valid_env_name(k) {
                            p.add(
                                &key,
                                "expected a variable name like API_BASE ([A-Za-z_][A-Za-z0-9_]*, \
                                 not OVERSEER_*)",
                            );
                        }
                        let ok = match v {
                            Value::String(s) => s.len() <= 32 * 1024,
                            Value::Object(o) => {
                                o.len() == 1
                                    && o.get("secret")
                                        .and_then(Value::as_str)
                                        .is_some_and(crate::stdx::names::secret)
                            }
                            _ => false,
                        };
                        if !ok {
                            p.add(&key, "expected a string or {\"secret\": \"NAME\"}");
                        }
                    }
                }
                None => p.add(&at("env"), "expected an object of variables"),
            }
        }
        if let Some(cwd) = payload.get("cwd") {
            if !cwd
                .as_str()
                .is_some_and(|s| settings::plain_absolute(std::path::Path::new(s)))
            {
                p.add(&at("cwd"), "expected an absolute directory path");
            }
        }
        if let Some(g) = payload.get("kill_grace") {
            let ok = g
                .as_str()
                .map(parse_duration)
                .is_some_and(|d| d.is_ok_and(|d| d <= MAX_KILL_GRACE));
            if !ok {
                p.add(
                    &at("kill_grace"),
                    format!(
                        "expected a duration like \"10s\", at most {}",
                        format_duration(MAX_KILL_GRACE)
                    ),
                );
            }
        }
        if let Some(l) = payload.get("output_limit") {
            if l.as_u64()
                .is_none_or(|n| !(1..=MAX_OUTPUT_LIMIT).contains(&n))
            {
                p.add(
                    &at("output_limit"),
                    format!("expected bytes per stream, from 1 to {MAX_OUTPUT_LIMIT}"),
                );
            }
        }
        if let Some(c) = payload.get("success_exit_codes") {
            let ok = c.as_array().is_some_and(|a| {
                !a.is_empty()
                    && a.len() <= 256
                    && a.iter().all(|v| v.as_u64().is_some_and(|n| n <= 255))
            });
            if !ok {
                p.add(
                    &at("success_exit_codes"),
                    "expected a non-empty array of exit codes from 0 to 255",
                );
            }
        }
        if let Some(q) = payload.get("quotas") {
            match q.as_array() {
                Some(a) => {
                    for (i, v) in a.iter().enumerate() {
                        if !v.as_str().is_some_and(crate::stdx::names::quota) {
                            p.add(&format!("{path}.quotas.{i}"), "expected a quota name");
                        }
                    }
                }
                None => p.add(&at("quotas"), "expected an array of quota names"),
            }
        }
        if let Some(b) = payload.get("browser_profile") {
            if !b.as_str().is_some_and(crate::stdx::names::profile) {
                p.add(
                    &at("browser_profile"),
                    "expected a profile name (letters, digits, - and _)",
                );
            }
        }
    }

    fn references(&self, payload: &Value, path: &str) -> Vec<crate::jobs::Reference> {
        let mut refs = vec![crate::jobs::Reference {
            path: format!("{path}.program"),
            to: crate::jobs::Referent::Program,
            name: payload
                .get("program")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        }];
        if let Some(a) = payload.get("quotas").and_then(Value::as_array) {
            refs.extend(a.iter().enumerate().filter_map(|(i, v)| {
                Some(crate::jobs::Reference {
                    path: format!("{path}.quotas.{i}"),
                    to: crate::jobs::Referent::Quota,
                    name: v.as_str()?.to_string(),
                })
            }));
        }
        refs
    }

    fn execute(
        &self,
        ctx: RunContext,
        payload: Value,
    ) -> LocalBoxFuture<'static, Result<Value, RunError>> {
        Box::pin(run(ctx, parse(&payload)))
    }
}

/// Starts `f` on a thread of its own now; the future is its answer (`None` if the thread
/// could not start or ended without one).
fn from_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> impl std::future::Future<Output = Option<T>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let started = std::thread::Builder::new()
        .name("command-io".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .is_ok();
    async move {
        if started {
            rx.await.ok()
        } else {
            None
        }
    }
}

async fn run(ctx: RunContext, p: Payload) -> Result<Value, RunError> {
    let settings = ctx.command.clone();
    // The configuration may have changed since the job was created.
    let program = settings
        .config
        .permits(&p.program)
        .map_err(|e| RunError::new(RunErrorKind::CommandNotAllowed, e.to_string()))?;
    let mut secrets: Vec<String> = Vec::new();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for name in &settings.config.pass_env {
        if let Ok(v) = std::env::var(name) {
            env.insert(name.clone(), v);
        }
    }
    env.insert("PATH".into(), settings.config.path.clone());
    for (k, v) in &p.env {
        let value = match v {
            EnvValue::Plain(s) => s.clone(),
            EnvValue::Secret(name) => {
                let s = ctx.secret(name)?;
                secrets.push(s.clone());
                s
            }
        };
        env.insert(k.clone(), value);
    }
    let grants = super::system::Grants {
        run_id: ctx.run_id,
        attempt: ctx.attempt,
        quotas: p.quotas.clone(),
    };
    let token = ctx.services.tokens.issue(grants).await?;
    // Revoked however the run ends (also when its future is dropped).
    let _revoke = Revoke {
        tokens: ctx.services.tokens.clone(),
        run_id: ctx.run_id,
    };
    secrets.push(token.clone());
    let artifacts = settings.artifacts_dir.join(ctx.run_id.to_string());
    let result_file = settings.results_dir.join(format!("{}.json", ctx.run_id));
    let io = |what: &str, e: std::io::Error| {
        RunError::new(RunErrorKind::CommandIo, format!("{what}: {e}"))
    };
    // The file system is prepared on a thread of its own, not on the executor's event loop.
    let prepared = {
        let (artifacts, results_dir, result_file) = (
            artifacts.clone(),
            settings.results_dir.clone(),
            result_file.clone(),
        );
        let (cwd, work_dir, job) = (
            p.cwd.clone(),
            settings.work_dir.clone(),
            ctx.job_name.clone(),
        );
        from_thread(move || {
            prepare(
                &artifacts,
                &results_dir,
                &result_file,
                cwd.as_deref(),
                &work_dir,
                &job,
            )
        })
        .await
        .unwrap_or_else(|| {
            Err(RunError::new(
                RunErrorKind::CommandIo,
                "the preparing thread ended",
            ))
        })?
    };
    let Prepared {
        cwd,
        stdout_file,
        stderr_file,
    } = prepared;
    let context = [
        ("OVERSEER_RUN_ID", ctx.run_id.to_string()),
        ("OVERSEER_JOB_NAME", ctx.job_name.clone()),
        ("OVERSEER_FIRE_AT", ctx.fire_at.to_rfc3339()),
        ("OVERSEER_ATTEMPT", ctx.attempt.to_string()),
        ("OVERSEER_IDEMPOTENCY_KEY", ctx.idempotency_key()),
        ("OVERSEER_API_URL", ctx.api_url.clone()),
        ("OVERSEER_RUN_TOKEN", token),
        (
            "OVERSEER_OUTPUT",
            result_file.to_string_lossy().into_owned(),
        ),
    ];
    env.extend(context.into_iter().map(|(k, v)| (k.to_string(), v)));
    // The profile's browser, for this run alone, released however the run ends.
    let mut browser_died = None;
    let _release = match &p.browser_profile {
        Some(profile) => {
            let release = Release {
                browsers: ctx.services.browsers.clone(),
                run_id: ctx.run_id,
            };
            let held = ctx
                .services
                .browsers
                .hold(ctx.run_id, profile.clone())
                .await?;
            env.insert("OVERSEER_CDP_URL".into(), held.cdp_url);
            browser_died = Some(held.died);
            Some(release)
        }
        None => None,
    };
    // On this thread: the shim's death signal follows the thread that started it.
    let started = process::start(&process::Spec {
        program: &program,
        args: &p.args,
        env: &env,
        cwd: &cwd,
        kill_grace: p.kill_grace,
    })
    .map_err(|e| {
        RunError::new(
            RunErrorKind::CommandStart,
            format!("could not start the shim: {e}"),
        )
    })?;
    let process::Started {
        mut child,
        group,
        stdout,
        stderr,
    } = started;
    tracing::info!(run_id = %ctx.run_id, program = %program.display(), group = group.id(), "command started");
    let scrub: Vec<Vec<u8>> = secrets.iter().map(|s| s.as_bytes().to_vec()).collect();
    let limit = p.output_limit;
    let (s1, s2) = (scrub.clone(), scrub);
    let out = from_thread(move || output::capture(stdout, Some(stdout_file), limit, &s1));
    let err = from_thread(move || output::capture(stderr, Some(stderr_file), limit, &s2));
    let readers = futures_util::future::join(out, err);
    // Dropping this future (timeout, cancel) drops `group`, which ends the group.
    let status = from_thread(move || child.wait());
    let died = async move {
        match browser_died {
            Some(mut died) => {
                let _ = died.changed().await;
            }
            None => std::future::pending().await,
        }
    };
    // The program asked for a person (`POST /api/v1/runs/{id}/hand-over`) and nobody came.
    let gave_up = ctx.waiting.clone();
    let status = tokio::select! {
        status = status => status,
        _ = died => {
            let mut group = group;
            from_thread(move || group.end()).await;
            return Err(RunError::new(
                RunErrorKind::BrowserCrashed,
                "the profile's browser died during the run; the program was ended",
            ));
        }
        why = gave_up.given_up() => {
            let mut group = group;
            from_thread(move || group.end()).await;
            return Err(RunError::new(
                RunErrorKind::PersonTimeout,
                format!("{why}; the program was ended"),
            ));
        }
    };
    let mut group = group;
    let leftovers = from_thread(move || group.end()).await.unwrap_or(false);
    let (out, err) = match tokio::time::timeout(PIPE_DRAIN, readers).await {
        Ok((o, e)) => (o.unwrap_or_default(), e.unwrap_or_default()),
        Err(_) => (Captured::default(), Captured::default()),
    };
    let exit = match status {
        Some(Ok(s)) => Exit::of(s),
        Some(Err(e)) => return Err(io("waiting for the program", e)),
        None => {
            return Err(RunError::new(
                RunErrorKind::CommandIo,
                "lost the program's status",
            ))
        }
    };
    let (result, result_error) = {
        let (file, secrets) = (result_file.clone(), secrets.clone());
        from_thread(move || {
            let read = read_result(&file, &secrets);
            let _ = std::fs::remove_file(&file);
            read
        })
        .await
        .unwrap_or((None, Some("the result file could not be read".into())))
    };
    let mut output = json!({
        "program": program.to_string_lossy(),
        "stdout_tail": out.tail,
        "stderr_tail": err.tail,
        "stdout_bytes": out.bytes,
        "stderr_bytes": err.bytes,
        "truncated": out.truncated || err.truncated,
        "artifacts": ["stdout.log", "stderr.log"],
        "leftovers_ended": leftovers,
    });
    match &exit {
        Exit::Code(c) => output["exit_code"] = json!(c),
        Exit::Signal(s) => output["signal"] = json!(s),
    }
    if let Some(r) = result {
        output["result"] = r;
    }
    if let Some(why) = result_error {
        output["result_error"] = json!(why);
    }
    if let Some(e) = out.write_error.or(err.write_error) {
        output["artifact_error"] = json!(e);
    }
    let succeeded = matches!(exit, Exit::Code(c) if p.success_exit_codes.contains(&c));
    if succeeded {
        return Ok(output);
    }
    let last = err
        .tail
        .last()
        .map(|l| format!("; stderr: {l}"))
        .unwrap_or_default();
    let message = match exit {
        Exit::Code(c) => format!("exited with code {c}{last}"),
        Exit::Signal(s) => format!("killed by signal {s}{last}"),
    };
    Err(RunError::new(RunErrorKind::ExitStatus, message).with_output(output))
}

/// Releases the held profile when the run ends, however it ends.
struct Release {
    browsers: std::sync::Arc<dyn super::system::Browsers>,
    run_id: uuid::Uuid,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.browsers.release(self.run_id);
    }
}

/// What a run's program starts with on disk.
struct Prepared {
    cwd: PathBuf,
    stdout_file: std::fs::File,
    stderr_file: std::fs::File,
}

/// The run's directories and files: artifacts (`stdout.log`, `stderr.log`), no stale
/// `$OVERSEER_OUTPUT`, the working directory (the job's `cwd`, which must exist, or
/// `<work_dir>/<job>`, created). Blocking: called on a thread of its own.
fn prepare(
    artifacts: &std::path::Path,
    results_dir: &std::path::Path,
    result_file: &std::path::Path,
    cwd: Option<&str>,
    work_dir: &std::path::Path,
    job: &str,
) -> Result<Prepared, RunError> {
    let io = |what: &str, e: std::io::Error| {
        RunError::new(RunErrorKind::CommandIo, format!("{what}: {e}"))
    };
    std::fs::create_dir_all(artifacts).map_err(|e| io("creating the artifacts directory", e))?;
    std::fs::create_dir_all(results_dir).map_err(|e| io("creating the results directory", e))?;
    let _ = std::fs::remove_file(result_file);
    let cwd = match cwd {
        Some(c) => {
            let dir = PathBuf::from(c);
            if !dir.is_dir() {
                return Err(RunError::new(
                    RunErrorKind::CommandCwd,
                    format!("the working directory {c} does not exist"),
                ));
            }
            dir
        }
        None => process::working_dir(None, work_dir, job)
            .map_err(|e| io("creating the working directory", e))?,
    };
    let stdout_file = std::fs::File::create(artifacts.join("stdout.log"))
        .map_err(|e| io("creating stdout.log", e))?;
    let stderr_file = std::fs::File::create(artifacts.join("stderr.log"))
        .map_err(|e| io("creating stderr.log", e))?;
    Ok(Prepared {
        cwd,
        stdout_file,
        stderr_file,
    })
}

/// Revokes the run token when the run ends, however it ends.
struct Revoke {
    tokens: std::sync::Arc<dyn super::system::RunTokens>,
    run_id: uuid::Uuid,
}

impl Drop for Revoke {
    fn drop(&mut self) {
        self.tokens.revoke(self.run_id);
    }
}

/// `$OVERSEER_OUTPUT`: a JSON object becomes `output.result`; anything else is dropped with
/// the reason. Secrets are scrubbed from it.
fn read_result(path: &std::path::Path, secrets: &[String]) -> (Option<Value>, Option<String>) {
    let Ok(meta) = std::fs::metadata(path) else {
        return (None, None);
    };
    if meta.len() > MAX_RESULT_BYTES {
        return (
            None,
            Some(format!(
                "the result file has {} bytes; at most {MAX_RESULT_BYTES} are read",
                meta.len()
            )),
        );
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => crate::stdx::secrets::scrub(&t, secrets),
        Err(e) => {
            return (
                None,
                Some(format!("the result file could not be read: {e}")),
            )
        }
    };
    if text.trim().is_empty() {
        return (None, None);
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => (Some(v), None),
        Ok(_) => (
            None,
            Some("the result file holds JSON that is not an object".into()),
        ),
        Err(e) => (
            None,
            Some(format!("the result file is not valid JSON: {e}")),
        ),
    }
}
