//! The web dashboard at `/ui/`, served by overseer itself: a login page (an API token makes
//! a server-side session: cookie `HttpOnly`, `SameSite=Strict`, idle expiry), the app shell
//! and its embedded assets (no CDN, no build step). The app reads and steers everything
//! through `/api/v1`, with the session cookie instead of a bearer token; `api::auth`
//! accepts it, and for every mutation demands the session's CSRF token in `X-CSRF-Token`.
//! Every page is served with a strict Content-Security-Policy (no inline script or style).

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::Utc;

use crate::api::auth::TokenSet;
use crate::api::ApiState;
use crate::stdx::secrets::{hash_token, new_token};

/// The session cookie.
pub const COOKIE: &str = "overseer_session";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

fn page(status: actix_web::http::StatusCode, html: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The session cookie: `HttpOnly`, `SameSite=Strict`, `Secure` when served over TLS.
fn session_cookie(req: &HttpRequest, value: String) -> Cookie<'static> {
    Cookie::build(COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req.connection_info().scheme() == "https")
        .finish()
}

/// The session of a request's cookie, if it is valid (also used by `api::auth`).
pub async fn session(
    state: &ApiState,
    req: &HttpRequest,
) -> Result<Option<crate::db::ui_sessions::Session>, crate::db::DbError> {
    let Some(id) = req.cookie(COOKIE).map(|c| c.value().to_string()) else {
        return Ok(None);
    };
    lookup(state, &id).await
}

/// The session with this id, if it is valid (not idle for longer than `[ui] session_idle`).
pub async fn lookup(
    state: &ApiState,
    id: &str,
) -> Result<Option<crate::db::ui_sessions::Session>, crate::db::DbError> {
    let hash = hash_token(id);
    let now = Utc::now();
    let idle = chrono::Duration::from_std(state.config.ui.session_idle)
        .unwrap_or(chrono::Duration::minutes(30));
    state
        .db
        .run(move |c| crate::db::ui_sessions::touch(c, &hash, now - idle, now))
        .await
}

fn login_page(state: &ApiState, error: Option<&str>) -> String {
    let hint = if state.config.auth.tokens.is_empty() {
        format!(
            "<p class=\"hint\">First login: the admin token is in <code>{}</code> on the \
             overseer host.</p>",
            escape(&state.config.state_path("admin.token").display().to_string())
        )
    } else {
        "<p class=\"hint\">Make a token with <code>overseer token new --role viewer</code>.</p>"
            .to_string()
    };
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>overseer · log in</title><link rel=\"stylesheet\" href=\"/ui/app.css\"></head>\
         <body class=\"login\"><main><h1>overseer</h1>{error}\
         <form method=\"post\" action=\"/ui/login\"><label for=\"token\">API token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
         <button id=\"login\" type=\"submit\">Log in</button></form>{hint}</main></body></html>"
    )
}

#[get("/ui/login")]
pub async fn login_form(state: web::Data<ApiState>) -> HttpResponse {
    page(actix_web::http::StatusCode::OK, login_page(&state, None))
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    token: String,
}

#[post("/ui/login")]
pub async fn login(
    req: HttpRequest,
    audit: crate::api::audit::Audit,
    state: web::Data<ApiState>,
    tokens: web::Data<TokenSet>,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let Some(caller) = tokens.authenticate(form.token.trim()) else {
        let refusal = audit.refusal(401, "unauthorized: not a valid token".into(), None);
        let _ = audit.record_alone(&state, refusal).await;
        // Wrong tokens count against the source address, as on the API.
        let limited = req
            .app_data::<web::Data<crate::api::rate_limit::Limits>>()
            .and_then(|l| l.anonymous_request(&req).err());
        if let Some(wait) = limited {
            let secs = crate::api::rate_limit::retry_after_secs(wait);
            let mut res = page(
                actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                login_page(
                    &state,
                    Some(&format!("Too many attempts; try again in {secs} s.")),
                ),
            );
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&secs.to_string()) {
                res.headers_mut()
                    .insert(actix_web::http::header::RETRY_AFTER, v);
            }
            return res;
        }
        return page(
            actix_web::http::StatusCode::UNAUTHORIZED,
            login_page(&state, Some("That token is not valid.")),
        );
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
            use diesel::Connection;
            c.transaction(|c| {
                crate::db::ui_sessions::create(c, &id_hash, &name, &role, &csrf, now)?;
                crate::db::audit::record(c, &entry)
            })
        })
        .await;
    if created.is_ok() {
        audit.committed();
    }
    if created.is_err() {
        return page(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            login_page(&state, Some("The database is unavailable; try again.")),
        );
    }
    tracing::info!(caller = %caller.name, role = %caller.role, "dashboard login");
    let cookie = session_cookie(&req, id);
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/"))
        .cookie(cookie)
        .finish()
}

#[derive(serde::Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

#[post("/ui/logout")]
pub async fn logout(
    req: HttpRequest,
    audit: crate::api::audit::Audit,
    state: web::Data<ApiState>,
    form: web::Form<LogoutForm>,
) -> HttpResponse {
    if let Some(id) = req.cookie(COOKIE).map(|c| c.value().to_string()) {
        if let Ok(Some(s)) = lookup(&state, &id).await {
            if crate::api::csrf::matches(&s.csrf, &form.csrf) {
                let hash = hash_token(&id);
                let mut entry = audit.entry(Some(format!("token/{}", s.token_name)), None);
                entry.actor = Some(s.token_name.clone());
                entry.role = Some(s.role.clone());
                entry.status = 303;
                let deleted = state
                    .db
                    .run(move |c| {
                        use diesel::Connection;
                        c.transaction(|c| {
                            crate::db::ui_sessions::delete(c, &hash)?;
                            crate::db::audit::record(c, &entry)
                        })
                    })
                    .await;
                if deleted.is_ok() {
                    audit.committed();
                }
            } else {
                return HttpResponse::Forbidden().body("missing or wrong CSRF token");
            }
        } else {
            audit.committed(); // no live session: nothing changed
        }
    } else {
        audit.committed(); // no session: nothing changed
    }
    let mut gone = session_cookie(&req, String::new());
    gone.make_removal();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/login"))
        .cookie(gone)
        .finish()
}

/// The app shell: the session's role and CSRF token travel in `<meta>` tags (a strict CSP
/// allows no inline script).
#[get("/ui/")]
pub async fn shell(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    let s = match session(&state, &req).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/ui/login"))
                .finish()
        }
        Err(_) => {
            return page(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "<!doctype html><p>The database is unavailable.</p>".into(),
            )
        }
    };
    page(
        actix_web::http::StatusCode::OK,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta name=\"csrf\" content=\"{csrf}\"><meta name=\"role\" content=\"{role}\">\
             <meta name=\"caller\" content=\"{name}\">\
             <title>overseer</title><link rel=\"stylesheet\" href=\"/ui/app.css\">\
             <script src=\"/ui/app.js\" defer></script></head><body>\
             <header><nav aria-label=\"main\"><a href=\"#/\" id=\"nav-overview\">Overview</a>\
             <a href=\"#/jobs\" id=\"nav-jobs\">Jobs</a><a href=\"#/runs\" id=\"nav-runs\">Runs</a>\
             <a href=\"#/quotas\" id=\"nav-quotas\">Quotas</a>\
             <a href=\"#/notifications\" id=\"nav-notifications\">Notifications</a>\
             <a href=\"#/browsers\" id=\"nav-browsers\">Browsers</a>\
             <a href=\"#/flags\" id=\"nav-flags\">Flags</a>{audit}</nav>\
             <form method=\"post\" action=\"/ui/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <span class=\"who\">{name} ({role})</span><button id=\"logout\" type=\"submit\">Log out</button></form>\
             </header><main id=\"main\" aria-live=\"polite\"></main></body></html>",
            csrf = escape(&s.csrf),
            role = escape(&s.role),
            name = escape(&s.token_name),
            audit = if s.role == "admin" {
                "<a href=\"#/audit\" id=\"nav-audit\">Audit</a>"
            } else {
                ""
            },
        ),
    )
}

#[get("/ui")]
pub async fn root() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}

#[get("/ui/app.js")]
pub async fn app_js() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/javascript; charset=utf-8"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(APP_JS)
}

#[get("/ui/app.css")]
pub async fn app_css() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/css; charset=utf-8"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(APP_CSS)
}

/// The dashboard's routes (not part of the OpenAPI document: pages, not API).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(root)
        .service(shell)
        .service(login_form)
        .service(login)
        .service(logout)
        .service(app_js)
        .service(app_css);
}
