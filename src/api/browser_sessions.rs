//! `GET /api/v1/browser/sessions`: browser profiles per machine and the state of their
//! browser (from the `browser_sessions` table).

use actix_web::{get, web};

use super::auth::AsViewer;
use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::db::browser_sessions::{self, BrowserSession};

/// Every profile known on every machine: running (with Chromium's pid), closed or crashed,
/// with its launch, crash and run counts.
#[utoipa::path(tag = "browser", security(("bearer" = [])), responses(
    (status = 200, body = Vec<BrowserSession>), (status = 401, body = ErrorBody),
))]
#[get("/browser/sessions")]
pub async fn list(
    _caller: AsViewer,
    state: web::Data<ApiState>,
) -> Result<web::Json<Vec<BrowserSession>>, ApiError> {
    Ok(web::Json(state.db.run(browser_sessions::list).await?))
}
