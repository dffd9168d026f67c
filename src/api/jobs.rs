//! `/api/v1/jobs`: create (idempotent with `Idempotency-Key`), list (keyset pagination),
//! read, change, cancel, pause, resume, trigger. Operators change; viewers read.

use actix_web::http::StatusCode;
use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use chrono::Utc;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::audit::Audit;
use super::auth::{AsOperator, AsViewer, Caller};
use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::actors::scheduler::Wake;
use crate::db::jobs::{self as db_jobs, Job, JobFilter};
use crate::db::runs::{self as db_runs, Run};
use crate::db::DbError;
use crate::jobs::job_state::JobState;
use crate::jobs::JobDef;

mod write;

pub use self::write::{write, Checked, References, Write};

pub const MAX_LIMIT: i64 = 1000;
pub const DEFAULT_LIMIT: i64 = 100;

fn wake(state: &ApiState) {
    if let Some(s) = state.directory.scheduler() {
        s.do_send(Wake);
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct JobPage {
    pub items: Vec<Job>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// active, paused, completed or cancelled
    pub state: Option<String>,
    pub kind: Option<String>,
    pub tag: Option<String>,
    pub name_prefix: Option<String>,
    /// 1 to 1000 (default 100)
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The shape of `POST /api/v1/jobs` (for the OpenAPI document; `JobDef::parse` validates
/// the body in full and names every bad field).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation only: the handler reads the body as JSON
pub struct JobCreate {
    /// `[a-z0-9][a-z0-9._-]{0,127}`, unique
    name: String,
    /// noop, http, notify or browser
    kind: String,
    /// `{at}`, `{every, start?}` or `{cron, timezone?}`
    #[schema(value_type = Object)]
    schedule: Value,
    /// The kind's payload
    #[schema(value_type = Option<Object>)]
    payload: Option<Value>,
    #[schema(value_type = Option<Object>)]
    policy: Option<Value>,
    tags: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    /// Quota claims: `[{name, cost, refund_on_failure, max_per_run}]`
    #[schema(value_type = Option<Vec<Object>>)]
    quota: Option<Value>,
    paused: Option<bool>,
}

/// The shape of `PATCH /api/v1/jobs/{key}`: any of these (name and kind never change).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation only
pub struct JobChange {
    #[schema(value_type = Option<Object>)]
    schedule: Option<Value>,
    #[schema(value_type = Option<Object>)]
    payload: Option<Value>,
    #[schema(value_type = Option<Object>)]
    policy: Option<Value>,
    tags: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    #[schema(value_type = Option<Vec<Object>>)]
    quota: Option<Value>,
}

pub fn check_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid_field(
            "limit",
            format!("expected 1 to {MAX_LIMIT}"),
        )),
    }
}

/// Jobs whose runs execute the user's code on the host (`command`) are created and changed
/// by admins only.
fn require_admin_for_code(
    kinds: &crate::kinds::Registry,
    caller: &Caller,
    kind: &str,
) -> Result<(), ApiError> {
    use crate::jobs::Kinds;
    if kinds.runs_code(kind) {
        caller.require(crate::config::Role::Admin)?;
    }
    Ok(())
}

/// Create a job. 201 with the job; 409 when the name is taken; 422 lists every bad field.
/// With `Idempotency-Key`, a retried identical request returns the first answer.
#[utoipa::path(tag = "jobs", security(("bearer" = [])),
    request_body = JobCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes retries of this request safe")),
    responses(
        (status = 201, body = Job),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "duplicate name, or key reused for another request"),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
))]
#[post("/jobs")]
pub async fn create(
    caller: AsOperator,
    audit: Audit,
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or_default();
    require_admin_for_code(&state.kinds, &caller, kind)?;
    let now = Utc::now();
    let def = JobDef::parse(&body, &*state.kinds, &state.config.scheduler.defaults, now)
        .map_err(ApiError::invalid)?;
    let key = req
        .headers()
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?;
    if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 255) {
        return Err(ApiError::bad_request(
            "Idempotency-Key must be 1 to 255 characters",
        ));
    }
    let request_hash = hex::encode(Sha256::digest(body.to_string().as_bytes()));
    let scoped_key = key.map(|k| format!("{}:{k}", caller.name));
    let entry = audit.entry(None, None);
    let refs = References::of(&state);
    let result = state
        .db
        .run(move |c| {
            c.transaction::<_, DbError, _>(|c| {
                let checked = match refs.check(c, &def)? {
                    Ok(checked) => checked,
                    Err(problems) => return Ok(Err(problems)),
                };
                crate::db::idempotency::once(c, scoped_key.as_deref(), &request_hash, 201, |c| {
                    write(c, checked, Write::Create, "api", entry, now)
                })
                .map(Ok)
            })
        })
        .await;
    match result {
        Ok(Err(problems)) => Err(ApiError::invalid(problems)),
        Ok(Ok(Ok(job))) => {
            audit.committed();
            wake(&state);
            Ok(HttpResponse::Created().json(job))
        }
        Ok(Ok(Err(seen))) if seen.same_request => Ok(HttpResponse::build(
            StatusCode::from_u16(seen.status as u16).unwrap_or(StatusCode::CREATED),
        )
        .insert_header(("Idempotency-Replayed", "true"))
        .json(seen.response)),
        Ok(Ok(Err(_))) => Err(ApiError::conflict(
            "this Idempotency-Key was used for a different request",
        )),
        Err(DbError::Conflict(_)) => Err(ApiError::conflict("a job with this name already exists")),
        Err(e) => Err(e.into()),
    }
}

/// List jobs, ordered by name, with keyset pagination.
#[utoipa::path(tag = "jobs", security(("bearer" = [])), params(JobQuery), responses(
    (status = 200, body = JobPage), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody),
))]
#[get("/jobs")]
pub async fn list(
    _caller: AsViewer,
    state: web::Data<ApiState>,
    q: web::Query<JobQuery>,
) -> Result<web::Json<JobPage>, ApiError> {
    let q = q.into_inner();
    let limit = check_limit(q.limit)?;
    if let Some(s) = &q.state {
        if crate::jobs::job_state::JobState::parse(s).is_none() {
            return Err(ApiError::invalid_field(
                "state",
                "expected active, paused, completed or cancelled",
            ));
        }
    }
    let after_name = match &q.cursor {
        None => None,
        Some(c) => Some(
            hex::decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ApiError::invalid_field("cursor", "not a cursor from a previous page")
                })?,
        ),
    };
    let filter = JobFilter {
        state: q.state,
        kind: q.kind,
        tag: q.tag,
        name_prefix: q.name_prefix,
        after_name,
    };
    let items = state
        .db
        .run(move |c| db_jobs::list(c, &filter, limit + 1))
        .await?;
    let (items, next_cursor) =
        super::cursor::page(items, limit, |j| hex::encode(j.name.as_bytes()));
    Ok(web::Json(JobPage { items, next_cursor }))
}

pub(super) async fn load(state: &ApiState, key: String) -> Result<Job, ApiError> {
    state
        .db
        .run(move |c| db_jobs::find(c, &key))
        .await
        .map_err(|e| match e {
            DbError::NotFound => ApiError::not_found("no such job"),
            e => e.into(),
        })
}

/// One job, by id or name.
#[utoipa::path(tag = "jobs", security(("bearer" = [])), params(("key" = String, Path, description = "job id or name")),
    responses((status = 200, body = Job), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/jobs/{key}")]
pub async fn get_one(
    _caller: AsViewer,
    state: web::Data<ApiState>,
    key: web::Path<String>,
) -> Result<web::Json<Job>, ApiError> {
    Ok(web::Json(load(&state, key.into_inner()).await?))
}

/// Change a job's payload, schedule, policy (merged), tags or metadata.
#[utoipa::path(tag = "jobs", security(("bearer" = [])), params(("key" = String, Path, description = "job id or name")),
    request_body = JobChange,
    responses((status = 200, body = Job), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[patch("/jobs/{key}")]
pub async fn update(
    caller: AsOperator,
    audit: Audit,
    state: web::Data<ApiState>,
    key: web::Path<String>,
    body: web::Json<Value>,
) -> Result<web::Json<Job>, ApiError> {
    let job = load(&state, key.into_inner()).await?;
    require_admin_for_code(&state.kinds, &caller, &job.kind)?;
    let defaults = state.config.scheduler.defaults.clone();
    let now = Utc::now();
    let def = job
        .def(&defaults)
        .ok_or_else(|| ApiError::conflict("the stored job no longer parses; recreate it"))?
        .patch(&body, &*state.kinds, now)
        .map_err(ApiError::invalid)?;
    let entry = audit.entry(None, None);
    let refs = References::of(&state);
    let updated = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let checked = match refs.check(c, &def)? {
                    Ok(checked) => checked,
                    Err(problems) => return Ok(Err(problems)),
                };
                write(c, checked, Write::Replace(&job), "api", entry, now).map(Ok)
            })
        })
        .await?
        .map_err(ApiError::invalid)?;
    audit.committed();
    wake(&state);
    Ok(web::Json(updated))
}

/// Cancel a job: it never fires again; its pending runs are cancelled, and its running ones
/// too (their work is ended within a heartbeat interval). History stays.
#[utoipa::path(tag = "jobs", security(("bearer" = [])), params(("key" = String, Path, description = "job id or name")),
    responses((status = 200, body = Job), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[delete("/jobs/{key}")]
pub async fn cancel(
    _caller: AsOperator,
    audit: Audit,
    state: web::Data<ApiState>,
    key: web::Path<String>,
) -> Result<web::Json<Job>, ApiError> {
    let before = load(&state, key.into_inner()).await?;
    let now = Utc::now();
    let entry = audit.entry(None, None);
    let job = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                // The job first: a trigger holding it waits here, and its run is among the
                // open runs cancelled next.
                // Cancelled already (DELETE is idempotent): the job as it is.
                let job = match db_jobs::transition(c, before.id, JobState::Cancelled, now)? {
                    Ok(job) | Err(db_jobs::Lost(job)) => job,
                };
                let runs = db_runs::cancel_open(c, job.id, now)?;
                let mut entry = job_entry(entry, &job, Some(&before));
                if let Some(d) = entry.diff.as_mut().and_then(Value::as_object_mut) {
                    d.insert("runs_cancelled".into(), serde_json::json!(runs));
                }
                crate::db::audit::record(c, &entry)?;
                Ok::<_, DbError>(job)
            })
        })
        .await?;
    audit.committed();
    Ok(web::Json(job))
}

/// Moves a job from `from` to `to` in one conditional statement; 409 naming its state when
/// it is not in `from` — also when another change (a cancel) got there first.
async fn transition(
    state: &ApiState,
    audit: &Audit,
    key: String,
    from: JobState,
    to: JobState,
) -> Result<Job, ApiError> {
    let job = load(state, key).await?;
    let now = Utc::now();
    let entry = audit.entry(None, None);
    let changed = state
        .db
        .run(move |c| {
            c.transaction(
                |c| match db_jobs::transition_from(c, job.id, &[from], to, now)? {
                    Ok(after) => {
                        crate::db::audit::record(c, &job_entry(entry, &after, Some(&job)))?;
                        Ok(Ok(after))
                    }
                    Err(lost) => Ok::<_, DbError>(Err(lost)),
                },
            )
        })
        .await?;
    let job = changed.map_err(|db_jobs::Lost(now_is)| {
        ApiError::conflict(format!("the job is {}, not {from}", now_is.state))
    })?;
    audit.committed();
    wake(state);
    Ok(job)
}

/// Pause an active job. Fires while paused are recorded as missed when it resumes.
#[utoipa::path(tag = "jobs", security(("bearer" = [])), params(("key" = String, Path, description = "job id or name")),
    responses((status = 200, body = Job), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/jobs/{key}/pause")]
pub async fn pause(
    _caller: AsOperator,
    audit: Audit,
    state: web::Data<ApiState>,
    key: web::Path<String>,
) -> Result<web::Json<Job>, ApiError> {
    Ok(web::Json(
        transition(
            &state,
            &audit,
            key.into_inner(),
            JobState::Active,
            JobState::Paused,
        )
        .await?,
    ))
}

/// Resume a paused job.
#[utoipa::path(tag = "jobs", security(("bearer" = [])), params(("key" = String, Path, description = "job id or name")),
    responses((status = 200, body = Job), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/jobs/{key}/resume")]
pub async fn resume(
    _caller: AsOperator,
    audit: Audit,
    state: web::Data<ApiState>,
    key: web::Path<String>,
) -> Result<web::Json<Job>, ApiError> {
    Ok(web::Json(
        transition(
            &state,
            &audit,
            key.into_inner(),
            JobState::Paused,
            JobState::Active,
        )
        .await?,
    ))
}

/// Run a job now (a fire at the current time), whatever its schedule.
#[utoipa::path(tag = "jobs", security(("bearer" = [])), params(("key" = String, Path, description = "job id or name")),
    responses((status = 201, body = Run), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/jobs/{key}/trigger")]
pub async fn trigger(
    _caller: AsOperator,
    audit: Audit,
    state: web::Data<ApiState>,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = load(&state, key.into_inner()).await?;
    let entry = audit.entry(Some(format!("job/{}", job.name)), None);
    let run = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                // Held until the run is committed: a cancel waits, then cancels it too.
                let Some(job) = db_jobs::lock_unless_cancelled(c, job.id)? else {
                    return Ok(None);
                };
                let run = db_runs::trigger(c, &job, Utc::now())?;
                let mut entry = entry;
                entry.status = 201;
                entry.diff = Some(serde_json::json!({"run_id": run.id, "fire_at": run.fire_at}));
                crate::db::audit::record(c, &entry)?;
                Ok::<_, DbError>(Some(run))
            })
        })
        .await?
        .ok_or_else(|| ApiError::conflict("the job is cancelled"))?;
    audit.committed();
    wake(&state);
    Ok(HttpResponse::Created().json(run))
}

/// A job's audit row: its target `job/<name>`, and as diff the new job (created) or what
/// changed (`before` given); secrets redacted.
pub(super) fn job_entry(
    mut entry: crate::db::audit::Entry,
    job: &Job,
    before: Option<&Job>,
) -> crate::db::audit::Entry {
    const NOISE: &[&str] = &["updated_at", "created_at", "id"];
    let after = serde_json::to_value(job).unwrap_or_default();
    let diff = match before {
        Some(b) => crate::stdx::json_diff::changes(
            &serde_json::to_value(b).unwrap_or_default(),
            &after,
            NOISE,
        ),
        None => {
            let mut after = after;
            if let Some(o) = after.as_object_mut() {
                o.retain(|k, _| !NOISE[..2].contains(&k.as_str()));
            }
            after
        }
    };
    entry.target = Some(format!("job/{}", job.name));
    entry.diff = Some(crate::stdx::secrets::redact_json(&diff));
    entry
}
