//! `/api/v1/jobs/{key}/once-keys`: the `once` blocks of a browser job that have run (done),
//! are running, or were left uncertain by a run that died inside them; forgetting one lets
//! its block run again.

use actix_web::{delete, get, web, HttpResponse};
use diesel::Connection;
use serde::{Deserialize, Serialize};

use super::auth::{AsOperator, AsViewer};
use super::error::{ApiError, ErrorBody};
use super::jobs::{check_limit, load};
use super::ApiState;
use crate::db::once_keys::{self, OnceKey};

#[derive(Serialize, utoipa::ToSchema)]
pub struct OnceKeyPage {
    pub items: Vec<OnceKey>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OnceKeyQuery {
    pub limit: Option<i64>,
    /// the last key of the previous page
    pub cursor: Option<String>,
}

/// A job's once keys, ordered by key.
#[utoipa::path(tag = "jobs", security(("bearer" = [])),
    params(("key" = String, Path, description = "job id or name"), OnceKeyQuery),
    responses((status = 200, body = OnceKeyPage), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[get("/jobs/{key}/once-keys")]
pub async fn list(
    _caller: AsViewer,
    state: web::Data<ApiState>,
    key: web::Path<String>,
    q: web::Query<OnceKeyQuery>,
) -> Result<web::Json<OnceKeyPage>, ApiError> {
    let q = q.into_inner();
    let limit = check_limit(q.limit)?;
    let job = load(&state, key.into_inner()).await?;
    let cursor = q.cursor;
    let items = state
        .db
        .run(move |c| once_keys::list(c, job.id, cursor.as_deref(), limit + 1))
        .await?;
    let mut items = items;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|k| k.key.clone())
    } else {
        None
    };
    Ok(web::Json(OnceKeyPage { items, next_cursor }))
}

/// Forget a once key: its block may run again (for a message that was not sent after all).
#[utoipa::path(tag = "jobs", security(("bearer" = [])),
    params(("key" = String, Path, description = "job id or name"),
           ("once_key" = String, Path, description = "the once key, URL-encoded")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
#[delete("/jobs/{key}/once-keys/{once_key}")]
pub async fn forget(
    _caller: AsOperator,
    audit: super::audit::Audit,
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (key, once_key) = path.into_inner();
    let job = load(&state, key).await?;
    let mut entry = audit.entry(
        Some(format!("job/{}", job.name)),
        Some(serde_json::json!({ "once_key": once_key })),
    );
    entry.status = 204;
    let forgotten = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let forgotten = once_keys::forget(c, job.id, &once_key)?;
                if forgotten {
                    crate::db::audit::record(c, &entry)?;
                }
                Ok(forgotten)
            })
        })
        .await?;
    if forgotten {
        audit.committed();
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found("no such once key"))
    }
}
