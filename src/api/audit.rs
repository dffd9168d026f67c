//! The audit log's HTTP side: which routes are mutations and what their action is called,
//! the [`Audit`] extractor a mutating handler uses to write its row in its own transaction,
//! the middleware that records refused and failed attempts, and `GET /api/v1/audit`.
//!
//! A handler that changed something writes `audit.entry(target, diff)` with
//! `db::audit::record` on the connection of its change, then calls [`Audit::committed`].
//! The middleware writes a row for every answer of a mutating route that was not committed
//! that way: a refusal (4xx) or failure (5xx) with its reason — and, should a handler ever
//! forget, its success too (logged as an error: the row is then not transactional).

use std::future::{ready, Ready};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{get, web, Error, FromRequest, HttpMessage, HttpRequest};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::{AsAdmin, Caller};
use super::error::{ApiError, ErrorBody};
use super::request_id::RequestId;
use super::ApiState;
use crate::db::audit::{self as db_audit, Entry, Filter, Row};

/// Every route that changes something, with its action's name (method, route template,
/// action). `tests/api/audit.rs` checks it against the route table: every write method is here
/// or in [`NOT_AUDITED`].
pub const ACTIONS: &[(&str, &str, &str)] = &[
    ("POST", "/api/v1/actors/{name}/crash", "actor.crash"),
    ("POST", "/api/v1/browser/live", "browser.live"),
    ("PUT", "/api/v1/flags/{name}", "flag.set"),
    ("DELETE", "/api/v1/flags/{name}", "flag.reset"),
    ("POST", "/api/v1/jobs", "job.create"),
    ("PATCH", "/api/v1/jobs/{key}", "job.update"),
    ("DELETE", "/api/v1/jobs/{key}", "job.cancel"),
    ("POST", "/api/v1/jobs/{key}/pause", "job.pause"),
    ("POST", "/api/v1/jobs/{key}/resume", "job.resume"),
    ("POST", "/api/v1/jobs/{key}/trigger", "job.trigger"),
    (
        "DELETE",
        "/api/v1/jobs/{key}/once-keys/{once_key}",
        "once_key.forget",
    ),
    ("POST", "/api/v1/notifications/test", "notification.test"),
    (
        "POST",
        "/api/v1/notifications/{id}/resend",
        "notification.resend",
    ),
    ("PUT", "/api/v1/quotas/{name}", "quota.put"),
    ("DELETE", "/api/v1/quotas/{name}", "quota.delete"),
    ("POST", "/api/v1/quotas/{name}/consume", "quota.consume"),
    ("POST", "/api/v1/quotas/{name}/refund", "quota.refund"),
    ("POST", "/api/v1/runs/{id}/requeue", "run.requeue"),
    ("POST", "/ui/login", "ui.login"),
    ("POST", "/ui/logout", "ui.logout"),
];

/// Routes with a write method that are not audited, and why.
pub const NOT_AUDITED: &[(&str, &str, &str)] = &[
    (
        "POST",
        "/api/v1/schedules/preview",
        "computes fire times; changes nothing",
    ),
    (
        "POST",
        "/api/v1/browser/live/{id}/input",
        "a live view's input (typed text is never stored); the view's own row is written when \
         it opens and completed when it ends",
    ),
    (
        "POST",
        "/api/v1/runs/{id}/progress",
        "a run's own output (its run token), kept in its run",
    ),
    (
        "POST",
        "/api/v1/runs/{id}/hand-over",
        "a run's own request (its run token) for a person, shown in its run's `waiting`",
    ),
    (
        "POST",
        "/api/v1/runs/{id}/notice",
        "a run's own output (its run token), sent as its notification",
    ),
];

/// The action of a route, if it is audited.
pub fn action_of(method: &str, template: &str) -> Option<&'static str> {
    ACTIONS
        .iter()
        .find(|(m, t, _)| *m == method && *t == template)
        .map(|(_, _, a)| *a)
}

/// The default target of an audited route: its resource and the path's key
/// (`/api/v1/jobs/{key}/pause` → `job/<key>`).
fn default_target(action: &str, req: &HttpRequest) -> Option<String> {
    let resource = action.split('.').next().unwrap_or(action);
    let key = req
        .match_info()
        .iter()
        .find(|(k, _)| ["key", "name", "id"].contains(k))
        .map(|(_, v)| v.to_string())?;
    Some(format!("{resource}/{key}"))
}

/// The error code and message of an answer, left by `ApiError::error_response` for the
/// middleware (the body itself is already serialized).
#[derive(Clone, Debug)]
pub struct ErrorInfo {
    pub code: &'static str,
    pub message: String,
}

/// Set on a request once its audit row has been committed.
#[derive(Clone, Default)]
struct Committed(Arc<AtomicBool>);

/// What every row of a request has in common; a mutating handler takes it as an argument.
pub struct Audit {
    base: Entry,
    committed: Committed,
}

impl Audit {
    /// The audit of a request handled outside the route table's actions (the dashboard's
    /// login and logout, through `api::session`).
    pub(super) fn for_action(req: &HttpRequest, action: &str) -> Self {
        Self::from_request(req, action)
    }

    fn from_request(req: &HttpRequest, action: &str) -> Self {
        let caller = req.extensions().get::<Caller>().cloned();
        let committed = req
            .extensions()
            .get::<Committed>()
            .cloned()
            .unwrap_or_default();
        let state = req.app_data::<web::Data<ApiState>>();
        Audit {
            base: Entry {
                at: Utc::now(),
                actor: caller.as_ref().map(|c| c.name.clone()),
                role: caller.as_ref().map(|c| match c.run {
                    Some(_) => "run".to_string(),
                    None => c.role.to_string(),
                }),
                run_id: caller
                    .as_ref()
                    .and_then(|c| c.run.as_ref().map(|g| g.run_id)),
                action: action.to_string(),
                target: default_target(action, req),
                outcome: "ok",
                status: 200,
                reason: None,
                diff: None,
                request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
                source: source_of(req),
                node_id: state.map(|s| s.node_id),
            },
            committed,
        }
    }

    /// The row of a success: `target` (None keeps the route's), `diff` (redacted here).
    pub fn entry(&self, target: Option<String>, diff: Option<Value>) -> Entry {
        let mut e = self.base.clone();
        e.at = Utc::now();
        if target.is_some() {
            e.target = target;
        }
        e.diff = diff.map(|d| crate::stdx::secrets::redact_json(&d));
        e
    }

    /// The row of a refusal decided inside the handler's transaction (a quota refused):
    /// written there, so the middleware does not write another.
    pub fn refusal(&self, status: u16, reason: String, diff: Option<Value>) -> Entry {
        let mut e = self.entry(None, diff);
        e.outcome = "refused";
        e.status = status as i16;
        e.reason = Some(reason);
        e
    }

    /// The row was committed with the change: the middleware writes none.
    pub fn committed(&self) {
        self.committed.0.store(true, Ordering::Release);
    }

    /// Writes `entry` by itself (for changes outside the database: an actor crashed, a
    /// test notification's delivery) and marks the request committed.
    pub async fn record_alone(&self, state: &ApiState, entry: Entry) -> Result<(), ApiError> {
        state.db.run(move |c| db_audit::record(c, &entry)).await?;
        self.committed();
        Ok(())
    }
}

impl FromRequest for Audit {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let template = req.match_pattern().unwrap_or_default();
        let action = action_of(req.method().as_str(), &template)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{} {template}", req.method()));
        ready(Ok(Audit::from_request(req, &action)))
    }
}

/// The client's address as the rate limits see it (behind a trusted proxy: from
/// `X-Forwarded-For`).
fn source_of(req: &HttpRequest) -> Option<String> {
    let peer = req.peer_addr()?;
    let trusted = req
        .app_data::<web::Data<ApiState>>()
        .map(|s| s.config.server.trusted_proxies.clone())
        .unwrap_or_default();
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    Some(super::rate_limit::client_addr(peer.ip(), forwarded, &trusted).to_string())
}

/// App-wide middleware: for an audited route, writes the row of an answer that the handler
/// did not commit (a refusal or failure, with its reason).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let write = !matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS");
    let committed = Committed::default();
    if write {
        req.extensions_mut().insert(committed.clone());
    }
    let res = next.call(req).await?.map_into_boxed_body();
    if !write || committed.0.load(Ordering::Acquire) {
        return Ok(res);
    }
    let template = res.request().match_pattern().unwrap_or_default();
    let Some(action) = action_of(res.request().method().as_str(), &template) else {
        return Ok(res);
    };
    let status = res.status();
    let mut entry = Audit::from_request(res.request(), action).base;
    entry.status = status.as_u16() as i16;
    if status.is_success() || status.is_redirection() {
        tracing::error!(
            action,
            "a mutation answered without its audit row; recorded after it"
        );
    } else {
        entry.outcome = if status.is_server_error() {
            "failed"
        } else {
            "refused"
        };
        entry.reason = Some(match res.response().extensions().get::<ErrorInfo>() {
            Some(info) => format!("{}: {}", info.code, info.message),
            None => status.canonical_reason().unwrap_or("refused").to_string(),
        });
    }
    if let Some(state) = res.request().app_data::<web::Data<ApiState>>() {
        if let Err(e) = state.db.run(move |c| db_audit::record(c, &entry)).await {
            tracing::warn!(action, error = %e, "could not write an audit row");
        }
    }
    Ok(res)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// A token's name.
    actor: Option<String>,
    /// An action (`job.update`), or every action of a resource (`job.`).
    action: Option<String>,
    /// A target (`job/nightly`), or every target of a resource (`job/`).
    target: Option<String>,
    /// ok, refused or failed.
    outcome: Option<String>,
    /// From this instant (RFC 3339), inclusive.
    since: Option<DateTime<Utc>>,
    /// Until this instant (RFC 3339), exclusive.
    until: Option<DateTime<Utc>>,
    /// 1 to 500 (default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    items: Vec<Row>,
    /// Absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// The audit log, newest first, with keyset pagination.
#[utoipa::path(tag = "audit", security(("bearer" = [])), params(AuditQuery), responses(
    (status = 200, body = AuditPage), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 422, body = ErrorBody),
))]
#[get("/audit")]
pub async fn list(
    _caller: AsAdmin,
    state: web::Data<ApiState>,
    q: web::Query<AuditQuery>,
) -> Result<web::Json<AuditPage>, ApiError> {
    let q = q.into_inner();
    let limit = super::jobs::check_limit(q.limit)?;
    if let Some(o) = &q.outcome {
        if !["ok", "refused", "failed"].contains(&o.as_str()) {
            return Err(ApiError::invalid_field(
                "outcome",
                "expected ok, refused or failed",
            ));
        }
    }
    let before_id = match &q.cursor {
        None => None,
        Some(c) => Some(c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::invalid_field("cursor", "not a cursor from a previous page")
        })?),
    };
    let filter = Filter {
        actor: q.actor,
        action: q.action,
        target: q.target,
        outcome: q.outcome,
        since: q.since,
        until: q.until,
        before_id,
    };
    let items = state
        .db
        .run(move |c| db_audit::list(c, &filter, limit + 1))
        .await?;
    let (items, next_cursor) = super::cursor::page(items, limit, |r| r.id.to_string());
    Ok(web::Json(AuditPage { items, next_cursor }))
}
