//! `GET /api/v1/kinds`: the job kinds this build runs and who may create or change jobs of
//! each — what the dashboard's job forms offer, so no client keeps its own copy of the list
//! or of the rule that a kind running the user's code needs the admin role.

use actix_web::{get, web};
use serde::Serialize;

use super::auth::AsViewer;
use super::error::ErrorBody;
use super::ApiState;

/// A job kind.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Kind {
    /// `noop`, `http`, `notify`, `browser`, `command`.
    pub name: &'static str,
    /// Its runs execute the user's own code on the host.
    pub runs_code: bool,
    /// The least role that may create or change a job of this kind: `operator` or `admin`.
    pub role: &'static str,
}

/// Every job kind, by name.
#[utoipa::path(tag = "jobs", security(("bearer" = [])), responses(
    (status = 200, body = Vec<Kind>), (status = 401, body = ErrorBody),
))]
#[get("/kinds")]
pub async fn list(_caller: AsViewer, state: web::Data<ApiState>) -> web::Json<Vec<Kind>> {
    web::Json(
        state
            .kinds
            .all()
            .map(|k| Kind {
                name: k.name(),
                runs_code: k.runs_code(),
                role: if k.runs_code() { "admin" } else { "operator" },
            })
            .collect(),
    )
}
