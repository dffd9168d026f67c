//! `POST /api/v1/schedules/preview`: the next fire times of a schedule, in its timezone —
//! what the dashboard shows while a job is being written (DST included).

use actix_web::{post, web};
use chrono::Utc;
use serde_json::{json, Value};

use super::auth::AsViewer;
use super::error::{ApiError, ErrorBody};
use crate::jobs::schedule::Schedule;
use crate::stdx::problems::Problems;

/// The body: `{"schedule": {...}, "count": 10}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation only: the handler reads the body as JSON
pub struct PreviewBody {
    /// As in a job: `{"cron": "0 9 * * *", "timezone": "Europe/Berlin"}`, `{"every": "1h"}`
    /// or `{"at": "2026-12-24T18:00:00+01:00"}`.
    #[schema(value_type = Object)]
    schedule: Value,
    /// 1 to 100 (default 10).
    count: Option<u32>,
}

/// The next fire times of a schedule from now, in UTC and in the schedule's timezone.
#[utoipa::path(tag = "jobs", security(("bearer" = [])),
    request_body = PreviewBody,
    responses((status = 200, body = Object), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
#[post("/schedules/preview")]
pub async fn preview(
    _caller: AsViewer,
    body: web::Json<Value>,
) -> Result<web::Json<Value>, ApiError> {
    let body = body.into_inner();
    let Some(obj) = body.as_object() else {
        return Err(ApiError::invalid_field(
            "",
            "expected {\"schedule\": {...}}",
        ));
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !["schedule", "count"].contains(&k.as_str()))
    {
        return Err(ApiError::invalid_field(k, "unknown field"));
    }
    let count = match obj.get("count") {
        None => 10,
        Some(c) => match c.as_u64() {
            Some(n) if (1..=100).contains(&n) => n as usize,
            _ => return Err(ApiError::invalid_field("count", "expected 1 to 100")),
        },
    };
    let now = Utc::now();
    let mut p = Problems::default();
    let schedule = Schedule::parse(
        obj.get("schedule").unwrap_or(&Value::Null),
        "schedule",
        now,
        &mut p,
    );
    let schedule = match schedule {
        Some(s) if p.is_empty() => s,
        _ => return Err(ApiError::invalid(p.into_vec())),
    };
    let tz = match &schedule {
        Schedule::Cron { tz, .. } => Some(*tz),
        _ => None,
    };
    let mut fires = Vec::new();
    let mut next = schedule.initial_fire(now);
    while let Some(at) = next {
        if fires.len() >= count {
            break;
        }
        let local = tz.map(|tz| at.with_timezone(&tz).to_rfc3339());
        fires.push(json!({"at": at, "local": local}));
        next = schedule.next_after(at);
    }
    Ok(web::Json(json!({
        "timezone": tz.map(|t| t.name().to_string()).unwrap_or_else(|| "UTC".into()),
        "fires": fires,
    })))
}
