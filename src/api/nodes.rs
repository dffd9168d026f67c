//! `GET /api/v1/nodes`: the overseer processes registered on this database.

use actix_web::{get, web};

use super::auth::AsViewer;
use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::db::nodes::{self, Node};

const MAX_NODES: i64 = 1000;

#[utoipa::path(tag = "nodes", security(("bearer" = [])), responses(
    (status = 200, body = Vec<Node>),
    (status = 401, body = ErrorBody),
    (status = 503, body = ErrorBody),
))]
#[get("/nodes")]
pub async fn list(
    _caller: AsViewer,
    state: web::Data<ApiState>,
) -> Result<web::Json<Vec<Node>>, ApiError> {
    let rows = state.db.run(|c| nodes::list(c, MAX_NODES)).await?;
    Ok(web::Json(rows))
}
