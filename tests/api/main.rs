//! The admin API as a user meets it, by concern (one test binary): `contract` (the auth
//! matrix over every documented route, schemathesis), `errors` (one shape, request ids,
//! body limits, NUL, bounds), `metrics` (promtool, log hygiene), `flags`, `jobs`,
//! `limits`, `audit`.

#[path = "../common/mod.rs"]
mod common;

mod audit;
mod contract;
mod errors;
mod flags;
mod jobs;
mod limits;
mod metrics;

use std::collections::BTreeSet;

/// Every `/api/v1` route and the least role it needs. The test below fails when the OpenAPI
/// document and this table disagree in either direction.
pub(crate) const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/api/v1/openapi.json", "viewer"),
    ("GET", "/api/v1/flags", "viewer"),
    ("PUT", "/api/v1/flags/{name}", "admin"),
    ("DELETE", "/api/v1/flags/{name}", "admin"),
    ("GET", "/api/v1/audit", "admin"),
    ("GET", "/api/v1/actors", "viewer"),
    ("POST", "/api/v1/actors/{name}/crash", "admin"),
    ("GET", "/api/v1/nodes", "viewer"),
    ("GET", "/api/v1/leader", "viewer"),
    ("POST", "/api/v1/jobs", "operator"),
    ("GET", "/api/v1/jobs", "viewer"),
    ("GET", "/api/v1/jobs/{key}", "viewer"),
    ("PATCH", "/api/v1/jobs/{key}", "operator"),
    ("DELETE", "/api/v1/jobs/{key}", "operator"),
    ("POST", "/api/v1/jobs/{key}/pause", "operator"),
    ("POST", "/api/v1/jobs/{key}/resume", "operator"),
    ("POST", "/api/v1/jobs/{key}/trigger", "operator"),
    ("GET", "/api/v1/jobs/{key}/once-keys", "viewer"),
    ("GET", "/api/v1/kinds", "viewer"),
    ("POST", "/api/v1/schedules/preview", "viewer"),
    ("GET", "/api/v1/stats/runs", "viewer"),
    (
        "DELETE",
        "/api/v1/jobs/{key}/once-keys/{once_key}",
        "operator",
    ),
    ("GET", "/api/v1/runs", "viewer"),
    ("GET", "/api/v1/runs/{id}", "viewer"),
    ("POST", "/api/v1/runs/{id}/requeue", "operator"),
    ("POST", "/api/v1/runs/{id}/progress", "operator"),
    ("POST", "/api/v1/runs/{id}/notice", "operator"),
    ("POST", "/api/v1/runs/{id}/hand-over", "operator"),
    ("GET", "/api/v1/runs/{id}/hand-over", "operator"),
    ("GET", "/api/v1/runs/{id}/artifacts/{name}", "viewer"),
    ("GET", "/api/v1/circuits", "viewer"),
    ("GET", "/api/v1/browser/sessions", "viewer"),
    ("POST", "/api/v1/browser/live", "operator"),
    ("GET", "/api/v1/browser/live", "viewer"),
    ("GET", "/api/v1/browser/live/{id}/events", "operator"),
    ("POST", "/api/v1/browser/live/{id}/input", "operator"),
    ("GET", "/api/v1/notifications", "viewer"),
    ("POST", "/api/v1/notifications/test", "admin"),
    ("POST", "/api/v1/notifications/{id}/resend", "operator"),
    ("GET", "/api/v1/quotas", "viewer"),
    ("GET", "/api/v1/quotas/{name}", "viewer"),
    ("PUT", "/api/v1/quotas/{name}", "operator"),
    ("DELETE", "/api/v1/quotas/{name}", "operator"),
    ("POST", "/api/v1/quotas/{name}/consume", "operator"),
    ("POST", "/api/v1/quotas/{name}/refund", "operator"),
];

pub(crate) const PUBLIC: &[(&str, &str)] =
    &[("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics")];

pub(crate) fn documented_routes(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}
