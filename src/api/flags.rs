//! `GET /api/v1/flags`: the feature flags in effect (read-only).

use actix_web::{get, web};

use super::auth::AsViewer;
use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::config::Flags;

#[utoipa::path(tag = "flags", security(("bearer" = [])), responses(
    (status = 200, body = Flags),
    (status = 401, body = ErrorBody),
))]
#[get("/flags")]
pub async fn list(
    _caller: AsViewer,
    state: web::Data<ApiState>,
) -> Result<web::Json<Flags>, ApiError> {
    Ok(web::Json(state.config.flags))
}
