//! `GET /api/v1/stats/runs`: what the dashboard's overview charts show — runs finished per
//! minute over the last hour, and failures per hour over the last day.

use actix_web::{get, web};
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Serialize;

use super::auth::AsViewer;
use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::db::runs::{self as db_runs, Bucket};

#[derive(Serialize, utoipa::ToSchema)]
pub struct RunStats {
    /// 60 buckets of one minute, oldest first (empty minutes as zeros).
    pub last_hour: Vec<Bucket>,
    /// 24 buckets of one hour, oldest first.
    pub last_day: Vec<Bucket>,
}

/// Every bucket from `start`, `step` apart, `n` of them: zeros where nothing finished.
fn filled(found: Vec<Bucket>, start: DateTime<Utc>, step: Duration, n: i32) -> Vec<Bucket> {
    (0..n)
        .map(|i| {
            let at = start + step * i;
            found
                .iter()
                .find(|b| b.at == at)
                .cloned()
                .unwrap_or(Bucket {
                    at,
                    finished: 0,
                    failed: 0,
                })
        })
        .collect()
}

/// Runs finished per minute (last hour) and per hour (last day), with how many failed.
#[utoipa::path(tag = "runs", security(("bearer" = [])),
    responses((status = 200, body = RunStats), (status = 401, body = ErrorBody)))]
#[get("/stats/runs")]
pub async fn runs(
    _caller: AsViewer,
    state: web::Data<ApiState>,
) -> Result<web::Json<RunStats>, ApiError> {
    let now = Utc::now();
    let minute = now.duration_trunc(Duration::minutes(1)).unwrap_or(now);
    let hour = now.duration_trunc(Duration::hours(1)).unwrap_or(now);
    let (hour_start, day_start) = (minute - Duration::minutes(59), hour - Duration::hours(23));
    let (per_minute, per_hour) = state
        .db
        .run(move |c| {
            Ok((
                db_runs::activity(c, hour_start, false)?,
                db_runs::activity(c, day_start, true)?,
            ))
        })
        .await?;
    Ok(web::Json(RunStats {
        last_hour: filled(per_minute, hour_start, Duration::minutes(1), 60),
        last_day: filled(per_hour, day_start, Duration::hours(1), 24),
    }))
}
