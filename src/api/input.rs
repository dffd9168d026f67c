//! The input gate: the one place every `/api/v1` request passes before any extractor reads
//! it. It runs after authentication and records what is wrong with the input instead of
//! answering; the role extractors ([`super::auth`]) answer with it after the role check, so
//! the order of refusals is always 401 → 403 → input (413, 400, 422) → the handler's own.
//!
//! What it refuses:
//! - a declared body larger than `server.body_limit` (413), without reading it;
//! - U+0000 anywhere in the path or the query string (400): PostgreSQL stores no NUL in
//!   text, so it could only come back as a 500;
//! - U+0000 in any string or key of a JSON body (422 naming the field's path). The body is
//!   read here (at most the limit) and handed on unchanged.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{Error, HttpMessage};
use futures_util::StreamExt;
use serde_json::Value;

use super::error::ApiError;
use super::request_id::BodyLimit;

/// What the gate found wrong, kept in the request's extensions for the role extractors.
#[derive(Debug, Clone)]
pub struct InputProblem(pub ApiError);

/// True when percent-decoding `raw` yields a NUL byte (`%00`).
fn has_encoded_nul(raw: &str) -> bool {
    raw.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

/// The JSON path of the first string or key holding U+0000, in the same notation as
/// validation errors (`metadata.note`, `payload.steps[2].text`); `""` for the root.
pub fn nul_path(v: &Value) -> Option<String> {
    fn walk(v: &Value, path: &mut String) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Value::Object(map) => map.iter().any(|(k, item)| {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&k.replace('\0', "\\u0000"));
                let found = k.contains('\0') || walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = String::new();
    walk(v, &mut path).then_some(path)
}

fn check_target(req: &ServiceRequest) -> Option<ApiError> {
    if has_encoded_nul(req.path()) {
        return Some(ApiError::bad_request(
            "the path contains U+0000 (NUL), which no name or id can hold",
        ));
    }
    if has_encoded_nul(req.query_string()) {
        return Some(ApiError::bad_request(
            "the query string contains U+0000 (NUL), which no filter can match",
        ));
    }
    None
}

fn is_json(req: &ServiceRequest) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.trim_start().to_ascii_lowercase();
            v.starts_with("application/json") || v.contains("+json")
        })
}

/// Reads the body (at most `limit` bytes). `Ok(None)` when it is larger.
async fn read_body(payload: &mut Payload, limit: usize) -> Result<Option<Bytes>, Error> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        if buf.len() + chunk.len() > limit {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf.freeze()))
}

/// Checks a JSON body for U+0000 (written `\u0000` in JSON; a raw NUL byte is not JSON and
/// the extractor refuses it). Only a body that mentions it is parsed here.
fn check_body(body: &[u8]) -> Option<ApiError> {
    let mentions = body
        .windows(6)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && &w[2..] == b"0000");
    if !mentions {
        return None;
    }
    // A body that does not parse is the extractor's to refuse (400 / 422).
    let value: Value = serde_json::from_slice(body).ok()?;
    let path = nul_path(&value)?;
    Some(if path.is_empty() {
        ApiError::unprocessable("the body contains U+0000 (NUL), which cannot be stored")
    } else {
        ApiError::invalid_field(&path, "contains U+0000 (NUL), which cannot be stored")
    })
}

/// The gate (wrapped inside the authentication middleware of `/api/v1`).
pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let limit = req
        .app_data::<BodyLimit>()
        .map(|l| l.0)
        .unwrap_or(usize::MAX);
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut problem = check_target(&req);
    if problem.is_none() && declared.is_some_and(|n| n > limit) {
        // Refused before anything reads a byte of it.
        problem = Some(ApiError::payload_too_large(limit));
    }
    let has_body = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) && declared != Some(0);
    if problem.is_none() && has_body && is_json(&req) {
        let mut payload = req.take_payload();
        match read_body(&mut payload, limit).await? {
            None => problem = Some(ApiError::payload_too_large(limit)),
            Some(body) => {
                problem = check_body(&body);
                req.set_payload(Payload::from(body));
            }
        }
    }
    if let Some(p) = problem {
        req.extensions_mut().insert(InputProblem(p));
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_boxed_body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_path_of_a_nul() {
        assert_eq!(nul_path(&json!({"a": "x"})), None);
        assert_eq!(
            nul_path(&json!({"metadata": {"note": "a\u{0}b"}})).as_deref(),
            Some("metadata.note")
        );
        assert_eq!(
            nul_path(&json!({"payload": {"steps": [{"type": "goto"}, {"text": "\u{0}"}]}}))
                .as_deref(),
            Some("payload.steps[1].text")
        );
        assert_eq!(
            nul_path(&json!({"tags": ["ok", "\u{0}"]})).as_deref(),
            Some("tags[1]")
        );
        assert_eq!(nul_path(&json!("\u{0}")).as_deref(), Some(""));
        assert!(nul_path(&json!({"k\u{0}": 1})).is_some());
    }

    #[test]
    fn only_a_real_nul_counts() {
        // An escaped backslash followed by "u0000" is text, not NUL.
        assert!(check_body(br#"{"a": "\\u0000"}"#).is_none());
        assert!(check_body(br#"{"a": "\u0000"}"#).is_some());
        assert!(check_body(br#"{"a": "plain"}"#).is_none());
        // Malformed bodies are left to the extractor.
        assert!(check_body(br#"{"a": "\u0000""#).is_none());
    }

    #[test]
    fn encoded_nul_in_the_target() {
        assert!(has_encoded_nul("/api/v1/jobs/a%00b"));
        assert!(has_encoded_nul("tag=%00"));
        assert!(!has_encoded_nul("tag=%2500"));
        assert!(!has_encoded_nul("/api/v1/jobs/a100"));
    }
}
