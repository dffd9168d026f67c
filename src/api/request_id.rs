//! Request ids, request spans and the error normaliser.
//!
//! Every request gets an id (an incoming `X-Request-Id` is kept when it is sane, else a new
//! UUID); it is echoed in the response, attached to the request's tracing span (so every log
//! line of the request carries it) and put into every error body.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;

use super::error::ApiError;

pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The current request's id ("" outside a request).
pub fn current() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The configured request body limit (`server.body_limit`), as app data.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

fn sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Outermost middleware: assigns the id, scopes it for the request, echoes it, and turns
/// any non-JSON error response (405 from routing, extractor errors) into the one error shape.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = REQUEST_ID
        .scope(id.clone(), next.call(req))
        .await?
        .map_into_boxed_body();
    let status = res.status();
    let is_json = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // The dashboard's own pages (a login refused) stay pages.
    let is_page = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
        && res.request().path().starts_with("/ui/");
    if (status.is_client_error() || status.is_server_error()) && !is_json && !is_page {
        let code = match status.as_u16() {
            404 => "not_found",
            405 => "method_not_allowed",
            413 => "payload_too_large",
            415 => "unsupported_media_type",
            s if s >= 500 => "internal",
            _ => "bad_request",
        };
        let message = status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_string();
        let err = ApiError::new(status, code, message);
        let body = REQUEST_ID.sync_scope(id.clone(), || err.body());
        let new = HttpResponse::build(status).json(body);
        res = res.into_response(new);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HeaderName::from_static(HEADER), v);
    }
    Ok(res)
}

/// tracing-actix-web root span carrying our request id (not its own generated one).
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let id = request
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        // A root span (the trace of this request), whatever thread serves it.
        tracing::info_span!(
            parent: None,
            "http_request",
            otel.name = %format!("{} {route}", request.method()),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            request_id = %id,
            method = %request.method(),
            route = %route,
            status = tracing::field::Empty,
            caller = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let status = match outcome {
            Ok(res) => res.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        span.record("status", status);
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
            tracing::warn!(parent: &span, status, "request failed");
        } else {
            tracing::debug!(parent: &span, status, "request finished");
        }
    }
}
