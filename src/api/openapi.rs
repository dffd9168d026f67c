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
    // The statuses every route shares are added here, once, rather than on each handler;
    // the document says what the server does (schemathesis checks it in the tests).
    let mut value = match serde_json::to_value(&doc) {
        Ok(v) => v,
        Err(_) => return doc,
    };
    common_responses(&mut value);
    serde_json::from_value(value).unwrap_or(doc)
}

/// Statuses that come from the layers every route passes, not from one handler.
const SHARED: &[(&str, &str, Reach)] = &[
    (
        "400",
        "Malformed request: a bad path or query parameter, U+0000 in the path or query, a body that is not JSON",
        Reach::All,
    ),
    ("401", "Missing or invalid bearer token", Reach::Api),
    (
        "429",
        "Over an API rate limit (`server.rate_limit`); `Retry-After` says when to retry",
        Reach::Api,
    ),
    (
        "503",
        "The database is unavailable; try again",
        Reach::Api,
    ),
    ("413", "The body is larger than server.body_limit", Reach::Body),
    (
        "415",
        "The body is not application/json",
        Reach::Body,
    ),
    (
        "422",
        "Invalid fields (each with its JSON path), U+0000 in a body",
        Reach::Body,
    ),
];

#[derive(Clone, Copy, PartialEq)]
enum Reach {
    /// Every operation.
    All,
    /// Every `/api/v1` operation.
    Api,
    /// Operations with a request body.
    Body,
}

fn common_responses(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let error = serde_json::json!({
        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
    });
    for (path, item) in paths.iter_mut() {
        let api = path.starts_with("/api/v1/");
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for op in ops.values_mut() {
            let has_body = op.get("requestBody").is_some();
            if let Some(params) = op.get_mut("parameters").and_then(|p| p.as_array_mut()) {
                for param in params.iter_mut() {
                    if param["name"] == "limit" && param["in"] == "query" {
                        param["schema"]["minimum"] = 1.into();
                        param["schema"]["maximum"] = super::jobs::MAX_LIMIT.into();
                    }
                }
            }
            let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else {
                continue;
            };
            for (status, description, reach) in SHARED {
                let applies = match reach {
                    Reach::All => true,
                    Reach::Api => api,
                    Reach::Body => has_body,
                };
                if applies && !responses.contains_key(*status) {
                    responses.insert(
                        status.to_string(),
                        serde_json::json!({"description": description, "content": error}),
                    );
                }
            }
        }
    }
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
