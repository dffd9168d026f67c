//! `/api/v1/quotas`: limits, what is used and left in each window, and consumption for other
//! programs (overseer as their quota authority).

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, put, web, HttpResponse};
use chrono::Utc;
use serde_json::{json, Value};

use super::audit::Audit;
use super::auth::{AsOperator, AsOperatorOrRun, AsViewer, AsViewerOrRun};
use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::actors::quota::{Consume, Consumed, Invalidate, QuotaError, RefundUnits};
use crate::db::quotas as db_quotas;
use crate::db::DbError;
use crate::quota::QuotaDef;
use crate::stdx::names::{quota as valid_name, QUOTA_RULE as NAME_RULE};

fn not_found(e: DbError) -> ApiError {
    match e {
        DbError::NotFound => ApiError::not_found("no such quota"),
        e => e.into(),
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::invalid_field("name", NAME_RULE))
    }
}

/// Every quota with its limits and current windows (used, remaining, reset time).
#[utoipa::path(tag = "quotas", security(("bearer" = [])), responses(
    (status = 200, body = Vec<Object>), (status = 401, body = ErrorBody),
))]
#[get("/quotas")]
pub async fn list(
    _caller: AsViewer,
    state: web::Data<ApiState>,
) -> Result<web::Json<Value>, ApiError> {
    let out = state
        .db
        .run(|c| {
            let now = Utc::now();
            let mut out = Vec::new();
            for row in db_quotas::list(c)? {
                let windows = db_quotas::usage(c, &row.def(), now)?;
                out.push(db_quotas::describe(&row, &windows));
            }
            Ok(out)
        })
        .await?;
    Ok(web::Json(Value::Array(out)))
}

/// One quota.
#[utoipa::path(tag = "quotas", security(("bearer" = [])), params(("name" = String, Path)), responses(
    (status = 200, body = Object), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
))]
#[get("/quotas/{name}")]
pub async fn get_one(
    caller: AsViewerOrRun,
    state: web::Data<ApiState>,
    name: web::Path<String>,
) -> Result<web::Json<Value>, ApiError> {
    let name = name.into_inner();
    caller.may_use_quota(&name)?;
    let out = state
        .db
        .run(move |c| {
            let row = db_quotas::get(c, &name)?;
            let windows = db_quotas::usage(c, &row.def(), Utc::now())?;
            Ok(db_quotas::describe(&row, &windows))
        })
        .await
        .map_err(not_found)?;
    Ok(web::Json(out))
}

/// Create or replace a quota: `{"limits": {"hour"?, "day"?, "week"?}, "timezone"?, "week_start"?}`.
/// The shape of `PUT /api/v1/quotas/{name}` (`QuotaDef::parse` validates it in full).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation only: the handler reads the body as JSON
pub struct QuotaPut {
    /// At least one of `hour`, `day`, `week`, each a whole number above 0
    #[schema(value_type = Object)]
    limits: Value,
    /// IANA timezone of the windows (default UTC)
    timezone: Option<String>,
    /// monday … sunday (default monday)
    week_start: Option<String>,
}

/// The shape of `POST /api/v1/quotas/{name}/consume`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation only
pub struct ConsumeBody {
    /// 1 to 1,000,000 (default 1)
    #[schema(minimum = 1, maximum = 1_000_000)]
    cost: Option<i64>,
}

/// 201 when created, 200 when replaced; 409 for a quota declared in the configuration.
#[utoipa::path(tag = "quotas", security(("bearer" = [])), params(("name" = String, Path)),
    request_body = QuotaPut,
    responses((status = 200, body = Object), (status = 201, body = Object), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[put("/quotas/{name}")]
pub async fn put(
    _caller: AsOperator,
    audit: Audit,
    state: web::Data<ApiState>,
    name: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    check_name(&name)?;
    let def =
        QuotaDef::parse(&name, &body.into_inner()).map_err(|p| ApiError::invalid(p.into_vec()))?;
    let entry = audit.entry(None, None);
    let result = state
        .db
        .run(move |c| {
            c.build_transaction().run(|c| {
                let before = db_quotas::get(c, &def.name).ok();
                if before.as_ref().is_some_and(|b| b.source == "config") {
                    return Ok(Err(()));
                }
                let (row, created) = db_quotas::upsert(c, &def, "api", Utc::now())?;
                let windows = db_quotas::usage(c, &row.def(), Utc::now())?;
                let body = db_quotas::describe(&row, &windows);
                let limits = |b: &Value| {
                    json!({"limits": b["limits"], "timezone": b["timezone"], "week_start": b["week_start"]})
                };
                let diff = match &before {
                    Some(b) => crate::stdx::json_diff::changes(
                        &limits(&db_quotas::describe(b, &[])),
                        &limits(&body),
                        &[],
                    ),
                    None => limits(&body),
                };
                let mut entry = entry;
                entry.status = if created { 201 } else { 200 };
                entry.diff = Some(diff);
                crate::db::audit::record(c, &entry)?;
                Ok(Ok((body, created)))
            })
        })
        .await?;
    let Ok((body, created)) = result else {
        return Err(ApiError::conflict(
            "this quota is declared in the configuration ([[quotas]]); change it there",
        ));
    };
    audit.committed();
    if let Some(q) = state.directory.quota_counter() {
        q.do_send(Invalidate);
    }
    Ok(if created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

/// Delete a quota (and its usage). 409 while a job consumes it or when it is declared in the
/// configuration.
#[utoipa::path(tag = "quotas", security(("bearer" = [])), params(("name" = String, Path)), responses(
    (status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
))]
#[delete("/quotas/{name}")]
pub async fn remove(
    _caller: AsOperator,
    audit: Audit,
    state: web::Data<ApiState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let entry = audit.entry(None, None);
    let outcome = state
        .db
        .run(move |c| {
            c.build_transaction().run(|c| {
                let row = db_quotas::get(c, &name)?;
                if row.source == "config" {
                    return Ok(Err(
                        "this quota is declared in the configuration ([[quotas]]); remove it there"
                            .to_string(),
                    ));
                }
                let users = db_quotas::users(c, &name)?;
                if !users.is_empty() {
                    return Ok(Err(format!(
                        "jobs consume this quota: {}",
                        users.join(", ")
                    )));
                }
                db_quotas::delete(c, &name)?;
                let mut entry = entry;
                entry.status = 204;
                entry.diff = Some(json!({"limits": db_quotas::describe(&row, &[])["limits"]}));
                crate::db::audit::record(c, &entry)?;
                Ok(Ok(()))
            })
        })
        .await
        .map_err(not_found)?;
    outcome.map_err(ApiError::conflict)?;
    audit.committed();
    if let Some(q) = state.directory.quota_counter() {
        q.do_send(Invalidate);
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `{"cost": n}` (default 1) of a consume or refund body.
fn cost_of(body: Option<web::Json<Value>>) -> Result<i64, ApiError> {
    let body = body.map(|b| b.into_inner()).unwrap_or(Value::Null);
    if let Some(obj) = body.as_object() {
        if let Some(k) = obj.keys().find(|k| k.as_str() != "cost") {
            return Err(ApiError::invalid_field(k, "unknown field"));
        }
    } else if !body.is_null() {
        return Err(ApiError::invalid_field(
            "",
            "expected an object like {\"cost\": 1}",
        ));
    }
    match body.get("cost") {
        None => Ok(1),
        Some(c) => match c.as_i64() {
            Some(n) if (1..=1_000_000).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid_field(
                "cost",
                "expected a whole number from 1 to 1000000",
            )),
        },
    }
}

/// Give back units consumed in the current windows (`{"cost": n}`, default 1): what a
/// script took and then did not use. A window never goes below zero. 200 with the windows.
#[utoipa::path(tag = "quotas", security(("bearer" = [])), params(("name" = String, Path)),
    request_body(content = Option<ConsumeBody>, description = "optional; cost defaults to 1"),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
#[post("/quotas/{name}/refund")]
pub async fn refund(
    caller: AsOperatorOrRun,
    audit: Audit,
    state: web::Data<ApiState>,
    name: web::Path<String>,
    body: Option<web::Json<Value>>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    caller.may_use_quota(&name)?;
    let cost = cost_of(body)?;
    let counter = state
        .directory
        .quota_counter()
        .ok_or_else(|| ApiError::unavailable("the quota counter is restarting; try again"))?;
    counter
        .send(RefundUnits {
            quota: name.clone(),
            cost,
            audit: Some(audit.entry(None, Some(json!({ "cost": cost })))),
        })
        .await
        .map_err(|_| ApiError::unavailable("the quota counter is restarting; try again"))?
        .map_err(|e| match e {
            QuotaError::Unknown(_) => ApiError::not_found("no such quota"),
            QuotaError::Unavailable(m) => ApiError::unavailable(m),
            e => ApiError::invalid_field("cost", e.to_string()),
        })?;
    audit.committed();
    let now = Utc::now();
    let q = name.clone();
    let def = state.db.run(move |c| db_quotas::get(c, &q)).await?.def();
    let windows = state
        .db
        .run(move |c| db_quotas::usage(c, &def, now))
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "refunded": cost, "quota": name, "windows": windows,
    })))
}

/// Consume units (`{"cost": n}`, default 1), all windows or none. 200 with the windows after
/// it; 429 with `Retry-After` (seconds) when a window is full.
#[utoipa::path(tag = "quotas", security(("bearer" = [])), params(("name" = String, Path)),
    request_body(content = Option<ConsumeBody>, description = "optional; cost defaults to 1"),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
#[post("/quotas/{name}/consume")]
pub async fn consume(
    caller: AsOperatorOrRun,
    audit: Audit,
    state: web::Data<ApiState>,
    name: web::Path<String>,
    body: Option<web::Json<Value>>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    caller.may_use_quota(&name)?;
    let cost = cost_of(body)?;
    let counter = state
        .directory
        .quota_counter()
        .ok_or_else(|| ApiError::unavailable("the quota counter is restarting; try again"))?;
    let answer = counter
        .send(Consume {
            quota: name.clone(),
            cost,
            audit: Some(audit.entry(None, None)),
        })
        .await
        .map_err(|_| ApiError::unavailable("the quota counter is restarting; try again"))?;
    // Decided: the batch's transaction wrote the row (admitted, refused or too large).
    if matches!(answer, Ok(_) | Err(QuotaError::TooLarge { .. })) {
        audit.committed();
    }
    match answer {
        Ok(Consumed::Admitted { windows, .. }) => Ok(HttpResponse::Ok().json(json!({
            "admitted": true, "quota": name, "cost": cost, "windows": windows,
        }))),
        Ok(Consumed::Refused {
            retry_at,
            blocking,
            windows,
        }) => {
            let secs = (retry_at - Utc::now()).num_seconds().max(0) + 1;
            let err = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exhausted",
                format!(
                    "quota `{name}` has no room for {cost} in this {}; retry at {}",
                    blocking.join(" and "),
                    retry_at.to_rfc3339()
                ),
            );
            let mut body = serde_json::to_value(err.body()).unwrap_or_default();
            body["admitted"] = json!(false);
            body["retry_at"] = json!(retry_at);
            body["windows"] = json!(windows);
            Ok(HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", secs.to_string()))
                .json(body))
        }
        Err(QuotaError::Unknown(_)) => Err(ApiError::not_found("no such quota")),
        Err(e @ QuotaError::TooLarge { .. }) => Err(ApiError::invalid_field("cost", e.to_string())),
        Err(QuotaError::Unavailable(m)) => Err(ApiError::unavailable(m)),
    }
}
