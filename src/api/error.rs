//! The one error type of the API. Every error response has the shape
//! `{"error": {"code": "snake_case_code", "message": "...", "request_id": "..."}}`.
//!
//! Levels (as in crates.io): `anyhow` outside the request path, `DbError` in db code, and
//! [`ApiError`] at the HTTP boundary. A lost database is 503, diesel's NotFound is 404, and a
//! user's mistake is never a 500.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::DbError;
use crate::stdx::problems::FieldError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// For 422: every bad field with its JSON path.
    pub fields: Vec<FieldError>,
    /// For 429 and 503: the `Retry-After` header, in seconds.
    pub retry_after: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case: clients match on it.
    pub code: String,
    pub message: String,
    pub request_id: String,
    /// Present on validation errors: each bad field with its JSON path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
            retry_after: None,
        }
    }

    /// 429: over an API rate limit.
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        let secs = super::rate_limit::retry_after_secs(wait);
        Self {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; retry in {secs} s"),
            )
        }
    }

    /// 422 listing every bad field.
    pub fn invalid(fields: Vec<FieldError>) -> Self {
        let message = match fields.as_slice() {
            [one] => format!("invalid field `{}`: {}", one.path, one.message),
            many => format!("{} invalid fields", many.len()),
        };
        Self {
            fields,
            ..Self::unprocessable(message)
        }
    }

    /// 422 for one bad field.
    pub fn invalid_field(path: &str, message: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError {
            path: path.to_string(),
            message: message.into(),
        }])
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body exceeds the limit of {limit} bytes"),
        )
    }
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log for this request id",
        )
    }

    /// The response body, with the current request's id.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
                request_id: super::request_id::current(),
                fields: self.fields.clone(),
            },
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            res.insert_header(("Retry-After", secs.to_string()));
        }
        let mut res = res.json(self.body());
        // For the audit log's reason: the message and each bad field.
        let mut message = self.message.clone();
        for f in self
            .fields
            .iter()
            .filter(|f| !self.message.contains(&f.path))
        {
            message.push_str(&format!("; {}: {}", f.path, f.message));
        }
        res.extensions_mut().insert(super::audit::ErrorInfo {
            code: self.code,
            message,
        });
        res
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => ApiError::not_found("no such resource"),
            DbError::Unavailable(_) => ApiError::unavailable("the database is unavailable"),
            DbError::Conflict(what) => ApiError::conflict(format!("already exists ({what})")),
            other => {
                tracing::error!(error = %other, "database error");
                ApiError::internal()
            }
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        tracing::warn!(error = %e, "actor unreachable");
        ApiError::unavailable("an actor is unavailable (restarting?)")
    }
}
