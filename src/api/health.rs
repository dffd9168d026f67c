//! `/health` (liveness), `/ready` (readiness) and `/metrics` (Prometheus text).

use std::time::Duration;

use actix_web::{get, web, HttpResponse};
use serde::Serialize;

use super::ApiState;
use crate::actors::database::{self, Health};
use crate::supervisor::{ActorState, GetStatus, Restart};

#[derive(Serialize, utoipa::ToSchema)]
pub struct Liveness {
    status: &'static str,
    version: &'static str,
}

/// Liveness: the process answers HTTP.
#[utoipa::path(tag = "health", responses((status = 200, body = Liveness)))]
#[get("/health")]
pub async fn health() -> web::Json<Liveness> {
    web::Json(Liveness {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FailingCheck {
    /// `database`, `migrations`, `supervisor` or `actor:<name>`.
    pub check: String,
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    pub failing: Vec<FailingCheck>,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Readiness: the database answers, migrations are applied, every permanent actor runs and
/// the supervisor is not in meltdown. 503 lists the failing checks.
#[utoipa::path(tag = "health", responses(
    (status = 200, body = Readiness),
    (status = 503, body = Readiness, description = "not ready; `failing` says why"),
))]
#[get("/ready")]
pub async fn ready(state: web::Data<ApiState>) -> HttpResponse {
    let mut failing = Vec::new();
    // The database actor owns the database's health (it probes every couple of seconds);
    // readiness asks it rather than probing around it.
    let db_health = match state.directory.database() {
        Some(db) => tokio::time::timeout(CHECK_TIMEOUT, db.send(database::CurrentHealth))
            .await
            .map_err(|_| format!("no answer within {}s", CHECK_TIMEOUT.as_secs()))
            .and_then(|r| r.map_err(|_| "the database actor is restarting".to_string()))
            .and_then(|h| h.ok_or_else(|| "not probed yet".to_string())),
        None => Err("the database actor is restarting".to_string()),
    };
    match db_health {
        Ok(Health::Up) => {}
        Ok(Health::PendingMigrations) => failing.push(FailingCheck {
            check: "migrations".into(),
            message: "pending migrations: run `overseer migrate run`".into(),
        }),
        Ok(Health::Down(e)) | Err(e) => failing.push(FailingCheck {
            check: "database".into(),
            message: e,
        }),
    }
    match state.supervisor.send(GetStatus).await {
        Ok(status) => {
            if let Some(actor) = status.meltdown {
                failing.push(FailingCheck {
                    check: "supervisor".into(),
                    message: format!("meltdown: actor `{actor}` exceeded the restart intensity"),
                });
            }
            for a in status.actors {
                if a.restart == Restart::Permanent && a.state != ActorState::Running {
                    failing.push(FailingCheck {
                        check: format!("actor:{}", a.name),
                        message: format!("actor `{}` is {:?}", a.name, a.state).to_lowercase(),
                    });
                }
            }
        }
        Err(e) => failing.push(FailingCheck {
            check: "supervisor".into(),
            message: format!("supervisor unreachable: {e}"),
        }),
    }
    if failing.is_empty() {
        HttpResponse::Ok().json(Readiness {
            status: "ready",
            failing,
        })
    } else {
        HttpResponse::ServiceUnavailable().json(Readiness {
            status: "not_ready",
            failing,
        })
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(tag = "health", responses((status = 200, content_type = "text/plain", body = String)))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.prometheus.render())
}
