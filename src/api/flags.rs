//! `/api/v1/flags`: the feature flags in effect, where each value comes from, and runtime
//! overrides (admin, audited, stored in PostgreSQL: every node follows within
//! `flags::REFRESH`, and a restart keeps them).

use std::collections::BTreeMap;

use actix_web::{delete, get, put, web};
use chrono::Utc;
use diesel::Connection;
use serde_json::{json, Value};

use super::audit::Audit;
use super::auth::{AsAdmin, AsViewer};
use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::flags::{Name, Override, View};

fn name_of(raw: &str) -> Result<Name, ApiError> {
    Name::parse(raw).ok_or_else(|| {
        ApiError::not_found(format!(
            "no flag named `{raw}`; the flags are {}",
            Name::ALL.map(Name::as_str).join(", ")
        ))
    })
}

fn shown(o: Option<&Override>) -> Value {
    match o {
        Some(o) => json!({"percent": o.percent, "set_by": o.set_by, "set_at": o.set_at}),
        None => Value::Null,
    }
}

/// Every flag: its effective value (`enabled`, `percent`), where that comes from (`source`:
/// default, file, env or runtime), the configured value a `DELETE` returns to, and who set
/// an override.
#[utoipa::path(tag = "flags", security(("bearer" = [])), responses(
    (status = 200, body = BTreeMap<String, View>),
    (status = 401, body = ErrorBody),
))]
#[get("/flags")]
pub async fn list(
    _caller: AsViewer,
    state: web::Data<ApiState>,
) -> Result<web::Json<BTreeMap<&'static str, View>>, ApiError> {
    Ok(web::Json(state.flags.views()))
}

/// The body of `PUT /api/v1/flags/{name}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation only
pub struct FlagSetting {
    /// On or off for everything.
    enabled: Option<bool>,
    /// 0 to 100: on for that share of the flag's subjects (anti_detection: profiles, by a
    /// stable hash of the name); other flags take only 0 or 100.
    #[schema(minimum = 0, maximum = 100)]
    percent: Option<u8>,
}

/// Override a flag at runtime: `{"enabled": false}` or `{"percent": 25}`. This node follows at
/// once, every other node within a few seconds; the override survives restarts until it is
/// deleted.
#[utoipa::path(tag = "flags", security(("bearer" = [])),
    params(("name" = String, Path, description = "flag name")),
    request_body = FlagSetting,
    responses((status = 200, body = View), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
#[put("/flags/{name}")]
pub async fn set(
    caller: AsAdmin,
    audit: Audit,
    state: web::Data<ApiState>,
    name: web::Path<String>,
    body: web::Json<Value>,
) -> Result<web::Json<View>, ApiError> {
    let name = name_of(&name)?;
    let percent = crate::flags::parse_setting(name, &body).map_err(ApiError::invalid)?;
    let o = Override {
        percent,
        set_by: caller.name.clone(),
        set_at: Utc::now(),
    };
    let entry = audit.entry(Some(format!("flag/{}", name.as_str())), None);
    let stored = o.clone();
    let from = state.flags.view(name);
    state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let before = crate::db::flags::set(c, name, &stored)?;
                let mut entry = entry;
                entry.diff = Some(json!({
                    "override": {"from": shown(before.as_ref()), "to": shown(Some(&stored))},
                    "percent": {"from": from.percent, "to": stored.percent},
                }));
                crate::db::audit::record(c, &entry)
            })
        })
        .await?;
    audit.committed();
    state.flags.set_one(name, Some(o));
    tracing::info!(flag = name.as_str(), percent, set_by = %caller.name, "flag overridden");
    Ok(web::Json(state.flags.view(name)))
}

/// Remove a flag's runtime override: back to its configured value (on every node within a
/// few seconds). 404 when it has none.
#[utoipa::path(tag = "flags", security(("bearer" = [])),
    params(("name" = String, Path, description = "flag name")),
    responses((status = 200, body = View), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[delete("/flags/{name}")]
pub async fn reset(
    caller: AsAdmin,
    audit: Audit,
    state: web::Data<ApiState>,
    name: web::Path<String>,
) -> Result<web::Json<View>, ApiError> {
    let name = name_of(&name)?;
    let entry = audit.entry(Some(format!("flag/{}", name.as_str())), None);
    let configured = state.flags.view(name);
    let configured = if configured.configured { 100 } else { 0 };
    let removed = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let Some(before) = crate::db::flags::clear(c, name)? else {
                    return Ok(None);
                };
                let mut entry = entry;
                entry.diff = Some(json!({
                    "override": {"from": shown(Some(&before)), "to": null},
                    "percent": {"from": before.percent, "to": configured},
                }));
                crate::db::audit::record(c, &entry)?;
                Ok(Some(before))
            })
        })
        .await?;
    if removed.is_none() {
        return Err(ApiError::not_found(format!(
            "flag `{}` has no runtime override",
            name.as_str()
        )));
    }
    audit.committed();
    state.flags.set_one(name, None);
    tracing::info!(flag = name.as_str(), by = %caller.name, "flag override removed");
    Ok(web::Json(state.flags.view(name)))
}
