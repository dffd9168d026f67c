//! `http`: the status check. GET/POST/HEAD a URL with headers, a body, a timeout and the
//! statuses that count as success. Output: status, latency, a bounded body excerpt. A header
//! value may be `{"secret": "NAME"}` (from `[browser.secrets]` or OVERSEER_SECRET_<NAME>):
//! the job stores only the name, and the value is scrubbed from the run's output and errors.
//! Every request carries `Idempotency-Key: <job id>:<fire_at>` so a receiver can drop the
//! duplicate that an at-least-once retry of a killed run may cause.

use std::time::{Duration, Instant};

use futures_util::future::LocalBoxFuture;
use serde_json::{json, Value};

use super::{object_with_fields, JobKind, RunContext, RunError};
use crate::jobs::run_error::RunErrorKind;
use crate::stdx::duration::parse_duration;
use crate::stdx::problems::Problems;

/// Body excerpt kept in the run's output.
pub const EXCERPT_BYTES: usize = 2048;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Http;

/// `{"secret": "NAME"}` as a header value.
fn secret_name(v: &Value) -> Option<&str> {
    v.as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("secret"))
        .and_then(Value::as_str)
}

fn method(payload: &Value) -> &str {
    payload
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("GET")
}

impl JobKind for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn validate(&self, payload: &Value, path: &str, p: &mut Problems) {
        let expected = "an object with at least `url`";
        if !object_with_fields(
            payload,
            path,
            expected,
            &[
                "url",
                "method",
                "headers",
                "body",
                "timeout",
                "expect_status",
            ],
            p,
        ) {
            return;
        }
        match payload
            .get("url")
            .and_then(Value::as_str)
            .map(url::Url::parse)
        {
            Some(Ok(u)) if u.scheme() == "http" || u.scheme() == "https" => {}
            Some(_) => p.add(
                &format!("{path}.url"),
                "expected an http:// or https:// URL",
            ),
            None => p.add(&format!("{path}.url"), "required: the URL to request"),
        }
        if !["GET", "POST", "HEAD"].contains(&method(payload)) {
            p.add(&format!("{path}.method"), "expected GET, POST or HEAD");
        }
        if let Some(h) = payload.get("headers") {
            match h.as_object() {
                Some(map) => {
                    for (k, v) in map {
                        let name_ok = reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_ok();
                        let value_ok = match secret_name(v) {
                            Some(name) => crate::stdx::names::secret(name),
                            None => v
                                .as_str()
                                .is_some_and(|s| reqwest::header::HeaderValue::from_str(s).is_ok()),
                        };
                        if !name_ok || !value_ok {
                            p.add(
                                &format!("{path}.headers.{k}"),
                                "expected a valid header name and a string value or \
                                 {\"secret\": \"NAME\"} (capitals, digits and _)",
                            );
                        }
                    }
                }
                None => p.add(
                    &format!("{path}.headers"),
                    "expected an object of header: value",
                ),
            }
        }
        if let Some(b) = payload.get("body") {
            if !(b.is_string() || b.is_object() || b.is_array()) {
                p.add(
                    &format!("{path}.body"),
                    "expected a string or a JSON object/array",
                );
            }
        }
        if let Some(t) = payload.get("timeout") {
            match t.as_str().map(parse_duration) {
                Some(Ok(d)) if !d.is_zero() && d <= Duration::from_secs(3600) => {}
                _ => p.add(
                    &format!("{path}.timeout"),
                    "expected a duration from 1ms to 1h, like \"10s\"",
                ),
            }
        }
        if let Some(e) = payload.get("expect_status") {
            let ok = e.as_array().is_some_and(|a| {
                !a.is_empty()
                    && a.iter()
                        .all(|s| s.as_u64().is_some_and(|n| (100..600).contains(&n)))
            });
            if !ok {
                p.add(
                    &format!("{path}.expect_status"),
                    "expected a list of HTTP statuses (100-599)",
                );
            }
        }
    }

    fn execute(
        &self,
        ctx: RunContext,
        payload: Value,
    ) -> LocalBoxFuture<'static, Result<Value, RunError>> {
        Box::pin(async move {
            let url = payload
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let verb = method(&payload).to_string();
            let method =
                reqwest::Method::from_bytes(verb.as_bytes()).unwrap_or(reqwest::Method::GET);
            let timeout = payload
                .get("timeout")
                .and_then(Value::as_str)
                .and_then(|s| parse_duration(s).ok())
                .unwrap_or(DEFAULT_TIMEOUT);
            let mut req = ctx
                .http
                .request(method, &url)
                .timeout(timeout)
                .header("Idempotency-Key", ctx.idempotency_key());
            // Secret header values are resolved now, marked sensitive, and scrubbed from
            // whatever the run records.
            let mut secrets: Vec<String> = Vec::new();
            if let Some(headers) = payload.get("headers").and_then(Value::as_object) {
                for (k, v) in headers {
                    if let Some(name) = secret_name(v) {
                        let value = ctx.secret(name)?;
                        let mut hv =
                            reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
                                RunError::new(
                                    RunErrorKind::InvalidSecret,
                                    format!("secret {name} is not a valid header value"),
                                )
                            })?;
                        hv.set_sensitive(true);
                        req = req.header(k.as_str(), hv);
                        secrets.push(value);
                    } else if let Some(v) = v.as_str() {
                        req = req.header(k.as_str(), v);
                    }
                }
            }
            match payload.get("body") {
                Some(Value::String(s)) => req = req.body(s.clone()),
                Some(v @ (Value::Object(_) | Value::Array(_))) => req = req.json(v),
                _ => {}
            }
            let started = Instant::now();
            // The host only: a URL's path and query may carry tokens.
            let host = url::Url::parse(&url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default();
            let span = tracing::debug_span!(
                "http.request",
                otel.name = %format!("{verb} {host}"),
                otel.kind = "client",
                server.address = %host,
                http.response.status_code = tracing::field::Empty,
            );
            let res = tracing::Instrument::instrument(req.send(), span.clone())
                .await
                .map_err(|e| {
                    let kind = if e.is_timeout() {
                        RunErrorKind::HttpTimeout
                    } else {
                        RunErrorKind::HttpError
                    };
                    // Without the URL: it may carry credentials or tokens in its query.
                    RunError::new(
                        kind,
                        crate::stdx::secrets::scrub(&e.without_url().to_string(), &secrets),
                    )
                })?;
            let status = res.status().as_u16();
            span.record("http.response.status_code", status);
            let bytes = res.bytes().await.unwrap_or_default();
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            let excerpt = crate::stdx::secrets::scrub(
                &String::from_utf8_lossy(&bytes[..bytes.len().min(EXCERPT_BYTES)]),
                &secrets,
            );
            let expected = match payload.get("expect_status").and_then(Value::as_array) {
                Some(list) => list.iter().any(|s| s.as_u64() == Some(status as u64)),
                None => (200..300).contains(&status),
            };
            let output = json!({
                "status": status,
                "latency_ms": (latency_ms * 10.0).round() / 10.0,
                "body_excerpt": excerpt,
                "body_bytes": bytes.len(),
            });
            if expected {
                Ok(output)
            } else {
                Err(RunError::new(
                    RunErrorKind::UnexpectedStatus,
                    format!("status {status} is not expected"),
                ))
            }
        })
    }
}
