//! The command-line client: `overseer jobs|runs|quotas|notifications|status …` talk to a
//! running overseer over its API (the same routes and rules as curl), print tables or
//! `--json`, and exit with a code a shell script can rely on ([`Exit`]).
//!
//! `jobs apply -f FILE` takes the same TOML as `[[jobs]]` in the configuration (one or many)
//! and upserts each by name: created when new, changed (payload, schedule, policy, tags,
//! metadata, quota) when it exists — the way to keep one's automations in git.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// Exit codes of client commands.
pub mod exit {
    pub const OK: i32 = 0;
    /// overseer could not be reached, or failed (5xx).
    pub const UNREACHABLE: i32 = 1;
    /// Bad arguments or input file.
    pub const USAGE: i32 = 2;
    /// 401 or 403: no token, a wrong one, or a role too small.
    pub const DENIED: i32 = 3;
    /// 404.
    pub const NOT_FOUND: i32 = 4;
    /// 409, 422, 429: the request was refused as it stands.
    pub const REFUSED: i32 = 5;
}

/// Where and as whom the client talks.
pub struct Target {
    pub url: String,
    pub token: Option<String>,
    pub json: bool,
}

/// A failed command: what to print, and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Self {
            code: exit::USAGE,
            message: message.into(),
        }
    }
}

/// The token: `OVERSEER_TOKEN`, else the file given, else (for a local overseer) the
/// embedded default's `<state_dir>/admin.token` when it exists.
pub fn token(explicit_file: Option<&Path>, state_dir: &Path, url: &str) -> Option<String> {
    if let Ok(t) = std::env::var("OVERSEER_TOKEN") {
        if !t.trim().is_empty() {
            return Some(t.trim().to_string());
        }
    }
    let local = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]" || h == "::1");
    let file: Option<PathBuf> = match explicit_file {
        Some(f) => Some(f.to_path_buf()),
        None if local => Some(state_dir.join("admin.token")),
        None => None,
    };
    file.and_then(|f| std::fs::read_to_string(f).ok())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

struct Api<'a> {
    target: &'a Target,
    http: reqwest::Client,
}

impl Api<'_> {
    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.target.url.trim_end_matches('/'));
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| Failure {
            code: exit::USAGE,
            message: e.to_string(),
        })?;
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.target.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.map_err(|e| Failure {
            code: exit::UNREACHABLE,
            message: format!("cannot reach overseer at {}: {e}", self.target.url),
        })?;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let code = match status {
            401 | 403 => exit::DENIED,
            404 => exit::NOT_FOUND,
            409 | 413 | 415 | 422 | 429 => exit::REFUSED,
            400 => exit::USAGE,
            _ => exit::UNREACHABLE,
        };
        let err = &value["error"];
        let mut message = format!(
            "{status}: {}",
            err["message"].as_str().unwrap_or("request failed")
        );
        if let Some(fields) = err["fields"].as_array() {
            for f in fields {
                message.push_str(&format!(
                    "\n  {}: {}",
                    f["path"].as_str().unwrap_or(""),
                    f["message"].as_str().unwrap_or("")
                ));
            }
        }
        Err(Failure { code, message })
    }
}

/// One client command.
pub enum Request {
    JobsList {
        state: Option<String>,
        kind: Option<String>,
        tag: Option<String>,
        limit: Option<u32>,
    },
    JobsGet(String),
    JobsApply(PathBuf),
    JobAction(&'static str, String),
    JobsDelete(String),
    RunsList {
        job: Option<String>,
        state: Option<String>,
        limit: Option<u32>,
    },
    RunsGet(String),
    RunsRequeue(String),
    QuotasList,
    QuotasGet(String),
    NotificationsList {
        state: Option<String>,
        limit: Option<u32>,
    },
    BrowserOpen {
        profile: String,
        url: Option<String>,
    },
    Status,
}

/// Percent-encodes one path segment.
fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

/// Runs a client command; prints its result on stdout; returns the exit code.
pub fn run(target: &Target, request: Request) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("overseer: {e}");
            return exit::UNREACHABLE;
        }
    };
    let http = reqwest::Client::builder()
        .user_agent(concat!("overseer-cli/", env!("CARGO_PKG_VERSION")))
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap_or_default();
    let api = Api { target, http };
    match runtime.block_on(execute(&api, request)) {
        Ok(out) => {
            if !out.is_empty() {
                crate::stdx::stdout::print(format_args!("{out}\n"));
            }
            exit::OK
        }
        Err(f) => {
            eprintln!("overseer: {}", f.message);
            f.code
        }
    }
}

async fn execute(api: &Api<'_>, request: Request) -> Result<String, Failure> {
    let json = api.target.json;
    let show = |v: &Value, table: fn(&Value) -> String| -> String {
        if json {
            serde_json::to_string_pretty(v).unwrap_or_default()
        } else {
            table(v)
        }
    };
    let lim = |l: Option<u32>| l.map(|n| n.to_string());
    Ok(match request {
        Request::JobsList {
            state,
            kind,
            tag,
            limit,
        } => {
            let q = query(&[
                ("state", state),
                ("kind", kind),
                ("tag", tag),
                ("limit", lim(limit)),
            ]);
            let v = api.call("GET", &format!("/api/v1/jobs{q}"), None).await?;
            show(&v["items"], jobs_table)
        }
        Request::JobsGet(name) => {
            let v = api
                .call("GET", &format!("/api/v1/jobs/{}", seg(&name)), None)
                .await?;
            show(&v, |v| serde_json::to_string_pretty(v).unwrap_or_default())
        }
        Request::JobsApply(file) => apply(api, &file).await?,
        Request::JobAction(action, name) => {
            let v = api
                .call(
                    "POST",
                    &format!("/api/v1/jobs/{}/{action}", seg(&name)),
                    None,
                )
                .await?;
            if json {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            } else if action == "trigger" {
                format!("triggered {name}: run {}", v["id"].as_str().unwrap_or("?"))
            } else {
                format!("{name}: {}", v["state"].as_str().unwrap_or("?"))
            }
        }
        Request::JobsDelete(name) => {
            let v = api
                .call("DELETE", &format!("/api/v1/jobs/{}", seg(&name)), None)
                .await?;
            show(&v, |v| {
                format!(
                    "{}: {}",
                    v["name"].as_str().unwrap_or("?"),
                    v["state"].as_str().unwrap_or("?")
                )
            })
        }
        Request::BrowserOpen { profile, url } => {
            let mut body = serde_json::json!({ "profile": profile });
            if let Some(url) = url {
                body["url"] = Value::String(url);
            }
            let v = api
                .call("POST", "/api/v1/browser/live", Some(&body))
                .await?;
            if json {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            } else {
                format!(
                    "live view of {} open: {}{}\nLog in to the dashboard there and drive it; press Done when finished. \
                     The profile's runs wait until then.",
                    v["profile"].as_str().unwrap_or("?"),
                    api.target.url.trim_end_matches('/'),
                    v["link"].as_str().unwrap_or("")
                )
            }
        }
        Request::RunsList { job, state, limit } => {
            let q = query(&[("job", job), ("state", state), ("limit", lim(limit))]);
            let v = api.call("GET", &format!("/api/v1/runs{q}"), None).await?;
            show(&v["items"], runs_table)
        }
        Request::RunsGet(id) => {
            let v = api
                .call("GET", &format!("/api/v1/runs/{}", seg(&id)), None)
                .await?;
            show(&v, |v| serde_json::to_string_pretty(v).unwrap_or_default())
        }
        Request::RunsRequeue(id) => {
            let v = api
                .call("POST", &format!("/api/v1/runs/{}/requeue", seg(&id)), None)
                .await?;
            show(&v, |v| {
                format!(
                    "requeued as run {} (attempt {})",
                    v["id"].as_str().unwrap_or("?"),
                    v["attempt"]
                )
            })
        }
        Request::QuotasList => {
            let v = api.call("GET", "/api/v1/quotas", None).await?;
            show(&v, quotas_table)
        }
        Request::QuotasGet(name) => {
            let v = api
                .call("GET", &format!("/api/v1/quotas/{}", seg(&name)), None)
                .await?;
            if json {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            } else {
                quotas_table(&json!([v]))
            }
        }
        Request::NotificationsList { state, limit } => {
            let q = query(&[("state", state), ("limit", lim(limit))]);
            let v = api
                .call("GET", &format!("/api/v1/notifications{q}"), None)
                .await?;
            show(&v["items"], notifications_table)
        }
        Request::Status => status(api).await?,
    })
}

/// `jobs apply -f FILE`: each `[[jobs]]` entry created or changed, by name.
async fn apply(api: &Api<'_>, file: &Path) -> Result<String, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
    let doc: toml::Value =
        toml::from_str(&text).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
    let doc = serde_json::to_value(doc).map_err(|e| Failure::usage(e.to_string()))?;
    let jobs = doc
        .get("jobs")
        .and_then(Value::as_array)
        .filter(|j| !j.is_empty())
        .ok_or_else(|| {
            Failure::usage(format!(
                "{}: expected one or more [[jobs]] entries",
                file.display()
            ))
        })?;
    let mut lines = Vec::new();
    let mut results = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let name = job
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| Failure::usage(format!("jobs.{i}.name: required")))?;
        let in_job = |f: Failure| Failure {
            code: f.code,
            message: format!("job `{name}` (jobs.{i}): {}", f.message),
        };
        let existing = api
            .call("GET", &format!("/api/v1/jobs/{}", seg(name)), None)
            .await;
        let (what, v) = match existing {
            Err(f) if f.code == exit::NOT_FOUND => (
                "created",
                api.call("POST", "/api/v1/jobs", Some(job))
                    .await
                    .map_err(in_job)?,
            ),
            Err(f) => return Err(in_job(f)),
            Ok(current) => {
                if current["kind"] != job["kind"] {
                    return Err(in_job(Failure {
                        code: exit::REFUSED,
                        message: format!(
                            "is a {} job; its kind cannot change (delete it first)",
                            current["kind"].as_str().unwrap_or("?")
                        ),
                    }));
                }
                let mut change = serde_json::Map::new();
                for k in ["payload", "schedule", "policy", "tags", "metadata", "quota"] {
                    if let Some(v) = job.get(k) {
                        change.insert(k.to_string(), v.clone());
                    }
                }
                (
                    "updated",
                    api.call(
                        "PATCH",
                        &format!("/api/v1/jobs/{}", seg(name)),
                        Some(&Value::Object(change)),
                    )
                    .await
                    .map_err(in_job)?,
                )
            }
        };
        lines.push(format!("{what} {name}"));
        results.push(json!({"name": name, "result": what, "job": v}));
    }
    Ok(if api.target.json {
        serde_json::to_string_pretty(&results).unwrap_or_default()
    } else {
        lines.join("\n")
    })
}

async fn status(api: &Api<'_>) -> Result<String, Failure> {
    let ready = api.call("GET", "/ready", None).await;
    let ready = match ready {
        Ok(v) => v,
        // 503 carries the failing checks.
        Err(f) if f.code == exit::UNREACHABLE && f.message.starts_with("503") => {
            json!({"status": "not ready", "detail": f.message})
        }
        Err(f) => return Err(f),
    };
    let actors = api.call("GET", "/api/v1/actors", None).await?;
    let nodes = api.call("GET", "/api/v1/nodes", None).await?;
    let leader = api.call("GET", "/api/v1/leader", None).await?;
    let pending = api
        .call("GET", "/api/v1/runs?state=pending&limit=1000", None)
        .await?;
    let running = api
        .call("GET", "/api/v1/runs?state=running&limit=1000", None)
        .await?;
    let failed = api
        .call("GET", "/api/v1/notifications?state=failed&limit=1000", None)
        .await?;
    let count = |v: &Value| v["items"].as_array().map_or(0, Vec::len);
    let summary = json!({
        "ready": ready, "actors": actors["actors"], "nodes": nodes, "leader": leader,
        "runs": {"pending": count(&pending), "running": count(&running)},
        "notifications_failed": count(&failed),
    });
    if api.target.json {
        return Ok(serde_json::to_string_pretty(&summary).unwrap_or_default());
    }
    let mut out = String::new();
    let ready_word = ready["status"].as_str().unwrap_or("ready").to_string();
    out.push_str(&format!("ready: {ready_word}\n"));
    if let Some(d) = ready["detail"].as_str() {
        out.push_str(&format!("  {d}\n"));
    }
    out.push_str(&format!(
        "runs: {} pending, {} running; failed notifications: {}\n",
        count(&pending),
        count(&running),
        count(&failed)
    ));
    out.push_str(&format!(
        "leader: {}\n\n",
        leader["lease"]["node_id"].as_str().unwrap_or("none")
    ));
    out.push_str(&table(
        &["ACTOR", "STATE", "RESTARTS", "LAST FAILURE"],
        actors["actors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        vec![
                            s(&x["name"]),
                            s(&x["state"]),
                            s(&x["restarts"]),
                            s(&x["last_failure"]["message"]),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default(),
    ));
    Ok(out.trim_end().to_string())
}

/// A value as a table cell.
fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(t) => t.clone(),
        other => other.to_string(),
    }
}

fn table(head: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(head.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

fn schedule_text(s: &Value) -> String {
    for k in ["cron", "every", "at"] {
        if let Some(v) = s.get(k).and_then(Value::as_str) {
            let tz = s
                .get("timezone")
                .and_then(Value::as_str)
                .map(|t| format!(" ({t})"))
                .unwrap_or_default();
            return format!("{k} {v}{tz}");
        }
    }
    s.to_string()
}

fn jobs_table(items: &Value) -> String {
    table(
        &["NAME", "KIND", "STATE", "SCHEDULE", "NEXT FIRE"],
        items
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|j| {
                        vec![
                            s(&j["name"]),
                            s(&j["kind"]),
                            s(&j["state"]),
                            schedule_text(&j["schedule"]),
                            s(&j["next_fire_at"]),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default(),
    )
}

fn runs_table(items: &Value) -> String {
    table(
        &["ID", "STATE", "ATTEMPT", "FIRE AT", "FINISHED", "ERROR"],
        items
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        vec![
                            s(&r["id"]),
                            s(&r["state"]),
                            s(&r["attempt"]),
                            s(&r["fire_at"]),
                            s(&r["finished_at"]),
                            s(&r["error_kind"]),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default(),
    )
}

fn quotas_table(items: &Value) -> String {
    let mut rows = Vec::new();
    for q in items.as_array().into_iter().flatten() {
        for w in q["windows"].as_array().into_iter().flatten() {
            rows.push(vec![
                s(&q["name"]),
                s(&w["window"]),
                s(&w["used"]),
                s(&w["limit"]),
                s(&w["remaining"]),
                s(&w["resets_at"]),
            ]);
        }
    }
    table(
        &["QUOTA", "WINDOW", "USED", "LIMIT", "REMAINING", "RESETS AT"],
        rows,
    )
}

fn notifications_table(items: &Value) -> String {
    table(
        &["ID", "EVENT", "CHANNEL", "STATE", "ATTEMPTS", "SUBJECT"],
        items
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|n| {
                        vec![
                            s(&n["id"]),
                            s(&n["event"]),
                            s(&n["channel"]),
                            s(&n["state"]),
                            s(&n["attempts"]),
                            s(&n["subject"]),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests;
