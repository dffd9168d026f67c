//! Dashboard sessions: what logging in and out does, and who a session cookie belongs to.
//! Both sides use it: `api::auth` accepts a session cookie in place of a bearer token (with
//! `api::csrf` on every change), and the dashboard's pages (`ui`) log people in and out
//! through it and only render. A session is a random id in a cookie (`HttpOnly`,
//! `SameSite=Strict`, `Secure` over TLS) whose SHA-256 is stored (`db::ui_sessions`), valid
//! until it has been idle for `[ui] session_idle`.

use std::path::PathBuf;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{web, HttpRequest};
use chrono::Utc;
use diesel::Connection;

use super::audit::Audit;
use super::auth::TokenSet;
use super::ApiState;
use crate::db::ui_sessions::{self, Session};
use crate::db::DbError;
use crate::stdx::secrets::{hash_token, new_token};

/// The session cookie.
pub const COOKIE: &str = "overseer_session";

/// The session of a request's cookie, if it is valid.
pub async fn current(req: &HttpRequest) -> Result<Option<Session>, DbError> {
    let Some(id) = req.cookie(COOKIE).map(|c| c.value().to_string()) else {
        return Ok(None);
    };
    let state = req
        .app_data::<web::Data<ApiState>>()
        .ok_or_else(|| DbError::Unavailable("no application state".into()))?;
    lookup(state, &id).await
}

/// The session with this id, if it is valid (not idle for longer than `[ui] session_idle`);
/// using it counts as activity.
pub async fn lookup(state: &ApiState, id: &str) -> Result<Option<Session>, DbError> {
    let hash = hash_token(id);
    let now = Utc::now();
    let idle = chrono::Duration::from_std(state.config.ui.session_idle)
        .unwrap_or(chrono::Duration::minutes(30));
    state
        .db
        .run(move |c| ui_sessions::touch(c, &hash, now - idle, now))
        .await
}

/// The session cookie: `HttpOnly`, `SameSite=Strict`, `Secure` when served over TLS.
fn cookie(req: &HttpRequest, value: String) -> Cookie<'static> {
    Cookie::build(COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req.connection_info().scheme() == "https")
        .finish()
}

/// What the login page tells someone who has no token yet.
pub enum LoginHint {
    /// No tokens are configured: the bootstrap admin token is in this file on the host.
    AdminTokenFile(PathBuf),
    /// Tokens are configured: make one with `overseer token new`.
    MakeToken,
}

pub fn login_hint(req: &HttpRequest) -> LoginHint {
    match req.app_data::<web::Data<ApiState>>() {
        Some(state) if state.config.auth.tokens.is_empty() => {
            LoginHint::AdminTokenFile(state.config.state_path("admin.token"))
        }
        _ => LoginHint::MakeToken,
    }
}

/// Why a login did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginRefused {
    /// Not a valid token (401).
    Invalid,
    /// Too many wrong tokens from this address: try again in this many seconds (429).
    Limited(u64),
    /// The session could not be stored (503).
    Unavailable,
}

/// Logs in with an API token: a new session (its cookie returned) with the token's name and
/// role, and its audit row in the same transaction. A wrong token is audited as refused and
/// counts against the source address, as on the API.
pub async fn log_in(req: &HttpRequest, token: &str) -> Result<Cookie<'static>, LoginRefused> {
    let audit = Audit::for_action(req, "ui.login");
    let (Some(state), Some(tokens)) = (
        req.app_data::<web::Data<ApiState>>(),
        req.app_data::<web::Data<TokenSet>>(),
    ) else {
        return Err(LoginRefused::Unavailable);
    };
    let Some(caller) = tokens.authenticate(token.trim()) else {
        let refusal = audit.refusal(401, "unauthorized: not a valid token".into(), None);
        let _ = audit.record_alone(state, refusal).await;
        let limited = req
            .app_data::<web::Data<super::rate_limit::Limits>>()
            .and_then(|l| l.anonymous_request(req).err());
        return Err(match limited {
            Some(wait) => LoginRefused::Limited(super::rate_limit::retry_after_secs(wait)),
            None => LoginRefused::Invalid,
        });
    };
    let (id, id_hash) = new_token("");
    let (csrf, _) = new_token("");
    let now = Utc::now();
    let (name, role) = (caller.name.clone(), caller.role.to_string());
    let mut entry = audit.entry(Some(format!("token/{name}")), None);
    entry.actor = Some(name.clone());
    entry.role = Some(role.clone());
    entry.status = 303;
    let created = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                ui_sessions::create(c, &id_hash, &name, &role, &csrf, now)?;
                crate::db::audit::record(c, &entry)
            })
        })
        .await;
    if created.is_err() {
        return Err(LoginRefused::Unavailable);
    }
    audit.committed();
    tracing::info!(caller = %caller.name, role = %caller.role, "dashboard login");
    Ok(cookie(req, id))
}

/// Why a logout was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LogoutRefused {
    /// The form's CSRF token is not the session's (403).
    Csrf,
}

/// Logs out: the session is deleted (audited) when the form carries its CSRF token. Returns
/// the cookie that removes the session cookie (also when there was no live session).
pub async fn log_out(req: &HttpRequest, csrf: &str) -> Result<Cookie<'static>, LogoutRefused> {
    let audit = Audit::for_action(req, "ui.logout");
    let state = req.app_data::<web::Data<ApiState>>();
    let id = req.cookie(COOKIE).map(|c| c.value().to_string());
    match (state, id) {
        (Some(state), Some(id)) => match lookup(state, &id).await {
            Ok(Some(s)) if super::csrf::matches(&s.csrf, csrf) => {
                let hash = hash_token(&id);
                let mut entry = audit.entry(Some(format!("token/{}", s.token_name)), None);
                entry.actor = Some(s.token_name.clone());
                entry.role = Some(s.role.clone());
                entry.status = 303;
                let deleted = state
                    .db
                    .run(move |c| {
                        c.transaction(|c| {
                            ui_sessions::delete(c, &hash)?;
                            crate::db::audit::record(c, &entry)
                        })
                    })
                    .await;
                if deleted.is_ok() {
                    audit.committed();
                }
            }
            Ok(Some(_)) => return Err(LogoutRefused::Csrf),
            // No live session: nothing changed.
            _ => audit.committed(),
        },
        // No session: nothing changed.
        _ => audit.committed(),
    }
    let mut gone = cookie(req, String::new());
    gone.make_removal();
    Ok(gone)
}
