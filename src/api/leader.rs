//! `GET /api/v1/leader`: which node holds the maintenance lease (zombie sweeps, pruning).

use actix_web::{get, web};
use serde::Serialize;
use uuid::Uuid;

use super::auth::AsViewer;
use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::db::leader::{self, Lease};

#[derive(Serialize, utoipa::ToSchema)]
pub struct Leadership {
    /// The lease, if any node holds or held one (check `expires_at`).
    pub lease: Option<Lease>,
    /// The node answering this request.
    pub this_node: Uuid,
    pub this_node_is_leader: bool,
}

#[utoipa::path(tag = "leader", security(("bearer" = [])), responses(
    (status = 200, body = Leadership), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody),
))]
#[get("/leader")]
pub async fn get(
    _caller: AsViewer,
    state: web::Data<ApiState>,
) -> Result<web::Json<Leadership>, ApiError> {
    let lease = state
        .db
        .run(|c| leader::current(c, leader::MAINTENANCE))
        .await?;
    let this_node = state.node_id;
    let now = chrono::Utc::now();
    let this_node_is_leader = lease
        .as_ref()
        .is_some_and(|l| l.node_id == this_node && l.expires_at > now);
    Ok(web::Json(Leadership {
        lease,
        this_node,
        this_node_is_leader,
    }))
}
