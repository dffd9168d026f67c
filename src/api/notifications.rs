//! `/api/v1/notifications`: the outbox (what was sent, what waits, what failed and why), and
//! a test message to one channel.

use diesel::Connection;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{get, post, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::auth::{AsAdmin, AsOperator, AsViewer};
use super::error::{ApiError, ErrorBody};
use super::jobs::check_limit;
use super::ApiState;
use crate::db::notifications::{self as db_notes, Filter, Notification};
use crate::notify::channel::{Deliverer, Outgoing};

#[derive(Serialize, utoipa::ToSchema)]
pub struct NotificationPage {
    pub items: Vec<Notification>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// pending, sent or failed
    pub state: Option<String>,
    /// event name, like job.failed or reminder
    pub event: Option<String>,
    /// channel name
    pub channel: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Notifications, newest first, with keyset pagination.
#[utoipa::path(tag = "notifications", security(("bearer" = [])), params(NotificationQuery), responses(
    (status = 200, body = NotificationPage), (status = 401, body = ErrorBody),
    (status = 422, body = ErrorBody),
))]
#[get("/notifications")]
pub async fn list(
    _caller: AsViewer,
    state: web::Data<ApiState>,
    q: web::Query<NotificationQuery>,
) -> Result<web::Json<NotificationPage>, ApiError> {
    let q = q.into_inner();
    let limit = check_limit(q.limit)?;
    if let Some(s) = &q.state {
        if !["pending", "sent", "failed"].contains(&s.as_str()) {
            return Err(ApiError::invalid_field(
                "state",
                "expected pending, sent or failed",
            ));
        }
    }
    let before = match &q.cursor {
        None => None,
        Some(c) => Some(super::cursor::decode(c).ok_or_else(|| {
            ApiError::invalid_field("cursor", "not a cursor from a previous page")
        })?),
    };
    let filter = Filter {
        state: q.state,
        event: q.event,
        channel: q.channel,
        before,
    };
    let items = state
        .db
        .run(move |c| db_notes::list(c, &filter, limit + 1))
        .await?;
    let (items, next_cursor) =
        super::cursor::page(items, limit, |x| super::cursor::encode(x.created_at, x.id));
    Ok(web::Json(NotificationPage { items, next_cursor }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// A channel from [[notify.channels]], or "log".
    pub channel: String,
    pub subject: Option<String>,
    pub body: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TestResult {
    pub delivered: bool,
    pub channel: String,
    /// The id the receiver sees (Idempotency-Key, Message-ID).
    pub id: Uuid,
    pub duration_ms: u64,
}

/// Sends a test message to one channel now (not through the outbox). 200 when delivered;
/// 502 with the channel's error when not.
#[utoipa::path(tag = "notifications", security(("bearer" = [])), request_body = TestRequest, responses(
    (status = 200, body = TestResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 422, body = ErrorBody), (status = 502, body = ErrorBody),
))]
#[post("/notifications/test")]
pub async fn test(
    caller: AsAdmin,
    audit: super::audit::Audit,
    state: web::Data<ApiState>,
    body: web::Json<serde_json::Value>,
) -> Result<web::Json<TestResult>, ApiError> {
    // The role is checked before the body, so a viewer hears 403 whatever it sent.
    let body = body.into_inner();
    let text = |field: &str| -> Result<Option<String>, ApiError> {
        match body.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::invalid_field(field, "expected a string")),
        }
    };
    if let Some(obj) = body.as_object() {
        if let Some(k) = obj
            .keys()
            .find(|k| !["channel", "subject", "body"].contains(&k.as_str()))
        {
            return Err(ApiError::invalid_field(k, "unknown field"));
        }
    }
    let channel = text("channel")?.ok_or_else(|| {
        ApiError::invalid_field("channel", "required: a channel from [[notify.channels]]")
    })?;
    if state.routing.channel(&channel).is_none() {
        return Err(ApiError::invalid_field(
            "channel",
            format!("no channel named `{channel}` in [[notify.channels]]"),
        ));
    }
    let req = TestRequest {
        channel,
        subject: text("subject")?,
        body: text("body")?,
    };
    let deliverer = Deliverer::new(state.routing.clone())
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "channel_unusable", e.to_string()))?;
    let msg = Outgoing {
        id: Uuid::new_v4(),
        event: "test".into(),
        severity: "info".into(),
        subject: req
            .subject
            .unwrap_or_else(|| "overseer test notification".into()),
        body: req.body.unwrap_or_else(|| {
            format!(
                "This is a test message from overseer node {}, sent on request.",
                state.node_id
            )
        }),
        data: json!({"node_id": state.node_id, "requested_by": caller.name}),
        channel: req.channel.clone(),
        attempts: 1,
        created_at: Utc::now(),
    };
    let started = Instant::now();
    deliverer.deliver(&msg).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "delivery_failed",
            format!("channel `{}`: {e}", req.channel),
        )
    })?;
    let entry = audit.entry(
        Some(format!("channel/{}", req.channel)),
        Some(json!({"message_id": msg.id})),
    );
    audit.record_alone(&state, entry).await?;
    Ok(web::Json(TestResult {
        delivered: true,
        channel: req.channel,
        id: msg.id,
        duration_ms: started.elapsed().as_millis() as u64,
    }))
}

/// Send a failed notification again (pending now, its attempts counted afresh). 409 when it
/// has not failed.
#[utoipa::path(tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "notification id")),
    responses((status = 200, body = Notification), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/notifications/{id}/resend")]
pub async fn resend(
    _caller: AsOperator,
    audit: super::audit::Audit,
    state: web::Data<ApiState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Notification>, ApiError> {
    let id = id.into_inner();
    let entry = audit.entry(None, None);
    let outcome = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let outcome = db_notes::resend(c, id, Utc::now())?;
                if let Some(Ok(n)) = &outcome {
                    let mut entry = entry;
                    entry.diff = Some(json!({"channel": n.channel, "event": n.event}));
                    crate::db::audit::record(c, &entry)?;
                }
                Ok(outcome)
            })
        })
        .await?;
    if matches!(outcome, Some(Ok(_))) {
        audit.committed();
    }
    match outcome {
        None => Err(ApiError::not_found("no such notification")),
        Some(Err(st)) => Err(ApiError::conflict(format!(
            "only a failed notification is sent again; this one is {st}"
        ))),
        Some(Ok(n)) => Ok(web::Json(n)),
    }
}
