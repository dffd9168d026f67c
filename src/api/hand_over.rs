//! `/api/v1/runs/{id}/hand-over`: a command run's program asks for a person (a one-time
//! code, a checkpoint in the browser profile it holds). A live view of its held browser
//! opens, the run shows **waiting for a person**, `run.needs_person` goes out, its executor
//! slot is free and its timeout stops counting; the program blocks on the answer or polls
//! it. Nobody within `timeout`: the program is ended and the run fails with
//! `person_timeout`.

use std::time::Duration;

use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;
use tokio::sync::watch;
use uuid::Uuid;

use super::auth::AsOperatorOrRun;
use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::actors::browser::AttachHeld;
use crate::actors::executor::{HandOver, HandOverOf, HandOverState, StartHandOver};
use crate::stdx::duration::parse_duration;

/// How long a hand-over waits for a person when the program does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The longest one request blocks; a program waits longer by asking again.
const MAX_WAIT: Duration = Duration::from_secs(300);

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandOverRequest {
    /// What the person is asked to do, shown with the link (no secret belongs here).
    pub reason: String,
    /// How long to wait for a person (1s to 24h; default 30m).
    #[serde(default)]
    pub timeout: Option<String>,
    /// How long this request blocks for the answer (0s: answer at once; default and at most
    /// 5m). Poll `GET` (or ask again) to wait longer.
    #[serde(default)]
    pub wait: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct WaitQuery {
    /// How long to block for a change from `waiting` (default 0s, at most 5m).
    pub wait: Option<String>,
}

fn duration(
    field: &str,
    v: Option<&str>,
    default: Duration,
    max: Duration,
) -> Result<Duration, ApiError> {
    match v {
        None => Ok(default),
        Some(s) => match parse_duration(s) {
            Ok(d) if d <= max => Ok(d),
            _ => Err(ApiError::invalid_field(
                field,
                format!(
                    "expected a duration up to {}, like \"30s\"",
                    crate::stdx::duration::format_duration(max)
                ),
            )),
        },
    }
}

/// Waits up to `wait` for the hand-over to leave `waiting`; its state then.
async fn answer(mut rx: watch::Receiver<HandOver>, wait: Duration) -> HttpResponse {
    let _ = tokio::time::timeout(wait, rx.wait_for(|h| h.state != HandOverState::Waiting)).await;
    let now = rx.borrow().clone();
    HttpResponse::Ok().json(now)
}

/// Ask for a person: opens a live view of the browser the run holds (`payload.
/// browser_profile`), marks the run waiting and sends `run.needs_person`; then blocks up to
/// `wait` for the answer (`done` when the person pressed Continue, `timed_out` when nobody
/// came: the program is then ended). Asking again while one is open joins it. For the
/// run's own token, or an operator.
#[utoipa::path(tag = "runs", security(("bearer" = [])), params(("id" = Uuid, Path, description = "run id")),
    request_body = HandOverRequest,
    responses((status = 200, body = HandOver), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
#[post("/runs/{id}/hand-over")]
pub async fn ask(
    caller: AsOperatorOrRun,
    state: web::Data<ApiState>,
    id: web::Path<Uuid>,
    body: web::Json<HandOverRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.may_report_on(id)?;
    let body = body.into_inner();
    if body.reason.trim().is_empty() || body.reason.chars().count() > 500 {
        return Err(ApiError::invalid_field(
            "reason",
            "required: up to 500 characters",
        ));
    }
    let timeout = duration(
        "timeout",
        body.timeout.as_deref(),
        DEFAULT_TIMEOUT,
        Duration::from_secs(86_400),
    )?;
    if timeout < Duration::from_secs(1) {
        return Err(ApiError::invalid_field("timeout", "at least 1s"));
    }
    let wait = duration("wait", body.wait.as_deref(), MAX_WAIT, MAX_WAIT)?;
    super::runs::running_run(&state, id).await?;
    // No executor here (the scheduler is off on this node): the run runs elsewhere.
    let executor = state
        .directory
        .executor()
        .ok_or_else(|| ApiError::conflict("the run is not running on this node"))?;
    let gone = |_| ApiError::unavailable("the executor is restarting");
    if let Some(rx) = executor.send(HandOverOf(id)).await.map_err(gone)? {
        return Ok(answer(rx, wait).await);
    }
    let pool = state
        .directory
        .browser_pool()
        .ok_or_else(|| ApiError::unavailable("the browser pool is not running on this node"))?;
    let view = pool
        .send(AttachHeld {
            run_id: id,
            reason: body.reason.clone(),
        })
        .await
        .map_err(|_| ApiError::unavailable("the browser pool is restarting"))?
        .map_err(ApiError::conflict)?;
    let rx = executor
        .send(StartHandOver {
            run_id: id,
            reason: body.reason,
            timeout,
            view,
        })
        .await
        .map_err(gone)?
        .map_err(ApiError::conflict)?;
    Ok(answer(rx, wait).await)
}

/// How the run's hand-over stands, after blocking up to `wait` for it to leave `waiting`.
#[utoipa::path(tag = "runs", security(("bearer" = [])), params(("id" = Uuid, Path, description = "run id"), WaitQuery),
    responses((status = 200, body = HandOver), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
#[get("/runs/{id}/hand-over")]
pub async fn status(
    caller: AsOperatorOrRun,
    state: web::Data<ApiState>,
    id: web::Path<Uuid>,
    q: web::Query<WaitQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.may_report_on(id)?;
    let wait = duration("wait", q.wait.as_deref(), Duration::ZERO, MAX_WAIT)?;
    let none =
        || ApiError::not_found("the run asked for no person (or is not running on this node)");
    // No executor on this node (the scheduler is off): no run here asked for anyone.
    let executor = state.directory.executor().ok_or_else(none)?;
    let rx = executor
        .send(HandOverOf(id))
        .await
        .map_err(|_| ApiError::unavailable("the executor is restarting"))?
        .ok_or_else(|| {
            ApiError::not_found("the run asked for no person (or is not running on this node)")
        })?;
    Ok(answer(rx, wait).await)
}
