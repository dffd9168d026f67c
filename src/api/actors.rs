//! `GET /api/v1/actors` and fault injection (`POST /api/v1/actors/{name}/crash`).

use actix_web::{get, post, web, HttpResponse};
use serde::Serialize;

use super::auth::{AsAdmin, AsViewer};
use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::supervisor::{ActorInfo, CrashChild, CrashError, GetStatus};

#[derive(Serialize, utoipa::ToSchema)]
pub struct ActorList {
    /// The actor whose restarts exceeded the intensity limit, if any.
    pub meltdown: Option<String>,
    pub actors: Vec<ActorInfo>,
}

#[utoipa::path(tag = "actors", security(("bearer" = [])), responses(
    (status = 200, body = ActorList),
    (status = 401, body = ErrorBody),
))]
#[get("/actors")]
pub async fn list(
    _caller: AsViewer,
    state: web::Data<ApiState>,
) -> Result<web::Json<ActorList>, ApiError> {
    let status = state.supervisor.send(GetStatus).await?;
    Ok(web::Json(ActorList {
        meltdown: status.meltdown.map(str::to_string),
        actors: status.actors,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Crashed {
    pub crashed: String,
}

/// Makes the actor panic inside a message handler. Only with `debug.fault_injection = true`;
/// otherwise 404.
#[utoipa::path(tag = "actors", security(("bearer" = [])),
    params(("name" = String, Path, description = "actor name")),
    responses(
        (status = 202, body = Crashed),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "unknown actor, or fault injection off"),
        (status = 409, body = ErrorBody, description = "the actor is not running"),
))]
#[post("/actors/{name}/crash")]
pub async fn crash(
    _caller: AsAdmin,
    audit: super::audit::Audit,
    state: web::Data<ApiState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !state.config.debug.fault_injection {
        return Err(ApiError::not_found(
            "no such route (fault injection is off: debug.fault_injection)",
        ));
    }
    let name = name.into_inner();
    match state.supervisor.send(CrashChild(name.clone())).await? {
        Ok(()) => {
            let mut entry = audit.entry(None, None);
            entry.status = 202;
            audit.record_alone(&state, entry).await?;
            Ok(HttpResponse::Accepted().json(Crashed { crashed: name }))
        }
        Err(e @ CrashError::Unknown(_)) => Err(ApiError::not_found(e.to_string())),
        Err(e @ CrashError::NotRunning(_)) => Err(ApiError::conflict(e.to_string())),
    }
}
