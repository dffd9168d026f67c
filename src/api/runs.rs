//! `/api/v1/runs`: the execution history, one run, and requeueing a dead letter.

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use diesel::Connection;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::{AsOperator, AsOperatorOrRun, AsViewer};
use super::error::{ApiError, ErrorBody};
use super::jobs::check_limit;
use super::ApiState;
use crate::actors::scheduler::Wake;
use crate::db::jobs as db_jobs;
use crate::db::runs::{self as db_runs, RequeueError, Run, RunFilter};
use crate::db::DbError;
use crate::jobs::run_state::RunState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct RunPage {
    pub items: Vec<Run>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// job id or name
    pub job: Option<String>,
    /// pending, running, succeeded, failed, timed_out, missed, zombie, cancelled, deferred
    pub state: Option<String>,
    /// queued at or after (RFC 3339)
    pub since: Option<String>,
    /// queued before (RFC 3339)
    pub until: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

fn time(field: &str, v: &Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    v.as_deref()
        .map(|s| {
            crate::jobs::schedule::parse_instant(s).map_err(|e| ApiError::invalid_field(field, e))
        })
        .transpose()
}

/// Runs, newest first, with keyset pagination.
#[utoipa::path(tag = "runs", security(("bearer" = [])), params(RunQuery), responses(
    (status = 200, body = RunPage), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 422, body = ErrorBody),
))]
#[get("/runs")]
pub async fn list(
    _caller: AsViewer,
    state: web::Data<ApiState>,
    q: web::Query<RunQuery>,
) -> Result<web::Json<RunPage>, ApiError> {
    let q = q.into_inner();
    let limit = check_limit(q.limit)?;
    if let Some(s) = &q.state {
        if RunState::parse(s).is_none() {
            return Err(ApiError::invalid_field("state", "not a run state"));
        }
    }
    let since = time("since", &q.since)?;
    let until = time("until", &q.until)?;
    let before = match &q.cursor {
        None => None,
        Some(c) => Some(super::cursor::decode(c).ok_or_else(|| {
            ApiError::invalid_field("cursor", "not a cursor from a previous page")
        })?),
    };
    let job_key = q.job.clone();
    let state_filter = q.state.clone();
    let items = state
        .db
        .run(move |c| {
            let job_id = match &job_key {
                Some(k) => Some(db_jobs::find(c, k)?.id),
                None => None,
            };
            let filter = RunFilter {
                job_id,
                state: state_filter,
                since,
                until,
                before,
            };
            db_runs::list(c, &filter, limit + 1)
        })
        .await
        .map_err(|e| match e {
            DbError::NotFound => ApiError::not_found("no such job"),
            e => e.into(),
        })?;
    let (items, next_cursor) =
        super::cursor::page(items, limit, |x| super::cursor::encode(x.queued_at, x.id));
    Ok(web::Json(RunPage { items, next_cursor }))
}

/// One run.
#[utoipa::path(tag = "runs", security(("bearer" = [])), params(("id" = Uuid, Path, description = "run id")),
    responses((status = 200, body = Run), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/runs/{id}")]
pub async fn get_one(
    _caller: AsViewer,
    state: web::Data<ApiState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Run>, ApiError> {
    let id = id.into_inner();
    let run = state
        .db
        .run(move |c| db_runs::get(c, id))
        .await
        .map_err(|e| match e {
            DbError::NotFound => ApiError::not_found("no such run"),
            e => e.into(),
        })?;
    Ok(web::Json(run))
}

/// Requeue a dead letter (a failed, timed-out, zombie or missed run that is its fire's
/// latest attempt): a new attempt, due now.
#[utoipa::path(tag = "runs", security(("bearer" = [])), params(("id" = Uuid, Path, description = "run id")),
    responses((status = 201, body = Run), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/runs/{id}/requeue")]
pub async fn requeue(
    _caller: AsOperator,
    audit: super::audit::Audit,
    state: web::Data<ApiState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let entry = audit.entry(None, None);
    let run = state
        .db
        .run(move |c| {
            c.transaction(|c| match db_runs::requeue(c, id, Utc::now()) {
                Ok(run) => {
                    let mut entry = entry;
                    entry.status = 201;
                    entry.diff = Some(serde_json::json!({
                        "new_run_id": run.id, "attempt": run.attempt, "fire_at": run.fire_at,
                    }));
                    crate::db::audit::record(c, &entry)?;
                    Ok(Ok(run))
                }
                Err(e) => Ok(Err(e)),
            })
        })
        .await?;
    match run {
        Ok(run) => {
            audit.committed();
            if let Some(s) = state.directory.scheduler() {
                s.do_send(Wake);
            }
            Ok(HttpResponse::Created().json(run))
        }
        Err(RequeueError::Db(DbError::NotFound)) => Err(ApiError::not_found("no such run")),
        Err(RequeueError::Db(e)) => Err(e.into()),
        Err(e) => Err(ApiError::conflict(e.to_string())),
    }
}

/// A file a run stored (browser screenshots, `failure.png`, `failure.json`). Artifacts live in
/// the state directory of the node that ran the run; another node answers 404 naming it.
#[utoipa::path(tag = "runs", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "run id"), ("name" = String, Path, description = "artifact name, from the run's output")),
    responses((status = 200, description = "the file (image/png or application/json)"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/runs/{id}/artifacts/{name}")]
pub async fn artifact(
    _caller: AsViewer,
    state: web::Data<ApiState>,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, name) = path.into_inner();
    let safe = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !safe {
        return Err(ApiError::not_found("no such artifact"));
    }
    let run = state
        .db
        .run(move |c| db_runs::get(c, id))
        .await
        .map_err(|e| match e {
            DbError::NotFound => ApiError::not_found("no such run"),
            e => e.into(),
        })?;
    let file = state
        .config
        .state_path("artifacts")
        .join(id.to_string())
        .join(&name);
    match web::block(move || std::fs::read(file)).await {
        Ok(Ok(bytes)) => {
            let content_type = if name.ends_with(".png") {
                "image/png"
            } else if name.ends_with(".json") {
                "application/json"
            } else if name.ends_with(".log") {
                "text/plain; charset=utf-8"
            } else {
                "application/octet-stream"
            };
            Ok(HttpResponse::Ok().content_type(content_type).body(bytes))
        }
        _ => Err(ApiError::not_found(match run.node_id {
            Some(node) if node != state.node_id => {
                format!("no artifact `{name}` here; the run ran on node {node}")
            }
            _ => format!("no artifact `{name}` for this run"),
        })),
    }
}

/// A running run's progress note (`{"note": "..."}`, up to 2,000 characters); it also
/// counts as the run's heartbeat. For the run's own token, or an operator. 409 when the run
/// is not running.
#[utoipa::path(tag = "runs", security(("bearer" = [])), params(("id" = Uuid, Path, description = "run id")),
    request_body(content = Object, description = "{\"note\": \"42 of 50 sent\"}"),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[post("/runs/{id}/progress")]
pub async fn progress(
    caller: AsOperatorOrRun,
    state: web::Data<ApiState>,
    id: web::Path<Uuid>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.may_report_on(id)?;
    running_run(&state, id).await?;
    let body = body.into_inner();
    only_fields(&body, &["note"])?;
    let note = text_field(&body, "note", 2000)?.unwrap_or_default();
    let at = Utc::now();
    let n = note.clone();
    let recorded = state
        .db
        .run(move |c| db_runs::progress(c, id, &n, at))
        .await?;
    if !recorded {
        return Err(ApiError::conflict("the run is not running"));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"run_id": id, "progress": note, "at": at})))
}

/// A notice from a running run (`{"subject", "body"?, "severity"?}`): the event `run.notice`,
/// sent through the outbox to the channels the routing rules give it (by default every
/// channel). For the run's own token, or an operator. 409 when the run is not running.
#[utoipa::path(tag = "runs", security(("bearer" = [])), params(("id" = Uuid, Path, description = "run id")),
    request_body(content = Object, description = "{\"subject\": \"…\", \"body\": \"…\", \"severity\": \"info\"}"),
    responses((status = 202, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[post("/runs/{id}/notice")]
pub async fn notice(
    caller: AsOperatorOrRun,
    state: web::Data<ApiState>,
    id: web::Path<Uuid>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.may_report_on(id)?;
    let run = running_run(&state, id).await?;
    let body = body.into_inner();
    only_fields(&body, &["subject", "body", "severity"])?;
    let subject = text_field(&body, "subject", 500)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid_field("subject", "required: a non-empty string"))?;
    let text = text_field(&body, "body", 20_000)?.unwrap_or_default();
    let severity = match text_field(&body, "severity", 20)? {
        None => crate::telemetry::events::Severity::Info,
        Some(s) => crate::telemetry::events::Severity::parse(&s).ok_or_else(|| {
            ApiError::invalid_field("severity", "expected info, warning, error or critical")
        })?,
    };
    let job = state
        .db
        .run(move |c| db_jobs::find(c, &run.job_id.to_string()))
        .await?;
    let notice = crate::notify::Notice {
        event: "run.notice".into(),
        severity,
        subject,
        body: text,
        data: serde_json::json!({"job": job.name, "run_id": id, "attempt": run.attempt}),
        key: format!("run.notice:{id}:{}", Uuid::new_v4()),
    };
    let rows = state.routing.rows_for(&notice, None);
    let queued = state
        .db
        .run(move |c| crate::db::notifications::enqueue(c, &rows))
        .await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({"queued": queued})))
}

/// The run, 404 when there is none, 409 when it is not running.
pub(super) async fn running_run(state: &ApiState, id: Uuid) -> Result<Run, ApiError> {
    let run = state
        .db
        .run(move |c| db_runs::get(c, id))
        .await
        .map_err(|e| match e {
            DbError::NotFound => ApiError::not_found("no such run"),
            e => e.into(),
        })?;
    if run.state != RunState::Running {
        return Err(ApiError::conflict("the run is not running"));
    }
    Ok(run)
}

/// 422 for a field not in `allowed` (or a body that is not an object).
fn only_fields(body: &serde_json::Value, allowed: &[&str]) -> Result<(), ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::invalid_field("", "expected a JSON object"))?;
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::invalid_field(k, "unknown field")),
        None => Ok(()),
    }
}

/// An optional string field of at most `max` characters.
fn text_field(
    body: &serde_json::Value,
    field: &str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid_field(
            field,
            format!("expected a string of at most {max} characters"),
        )),
    }
}
