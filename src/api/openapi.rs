//! `GET /api/v1/openapi.json` and the finishing touches on the generated document.

use actix_web::{get, web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi};

use super::auth::Caller;
use super::error::ErrorBody;
use super::ApiState;

pub fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info = InfoBuilder::new()
        .title("overseer admin API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Every /api/v1 route needs `Authorization: Bearer <token>`. Roles: viewer (reads), \
             operator (jobs, quotas), admin (everything).",
        ))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    doc
}

/// This document.
#[utoipa::path(tag = "meta", security(("bearer" = [])), responses(
    (status = 200, content_type = "application/json", body = Object),
    (status = 401, body = ErrorBody),
))]
#[get("/openapi.json")]
pub async fn openapi_json(_caller: Caller, state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.as_str().to_owned())
}
