//! `GET /api/v1/circuits`: the per-domain circuit breakers of browser runs.

use actix_web::{get, web};

use super::auth::AsViewer;
use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::db::circuits::{self, Circuit};

/// Every domain a browser run has visited, with its breaker's state.
#[utoipa::path(tag = "circuits", security(("bearer" = [])), responses(
    (status = 200, body = Vec<Circuit>), (status = 401, body = ErrorBody),
))]
#[get("/circuits")]
pub async fn list(
    _caller: AsViewer,
    state: web::Data<ApiState>,
) -> Result<web::Json<Vec<Circuit>>, ApiError> {
    Ok(web::Json(state.db.run(circuits::list).await?))
}
