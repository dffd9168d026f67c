//! `GET /api/v1/flags`: the feature flags in effect (read-only).

use actix_web::{get, web};

use super::auth::{Caller, Role};
use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::config::Flags;

#[utoipa::path(tag = "flags", security(("bearer" = [])), responses(
    (status = 200, body = Flags),
    (status = 401, body = ErrorBody),
))]
#[get("/flags")]
pub async fn list(
    caller: Caller,
    state: web::Data<ApiState>,
) -> Result<web::Json<Flags>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(web::Json(state.config.flags))
}
