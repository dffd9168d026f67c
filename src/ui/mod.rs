//! The web dashboard at `/ui/`, served by overseer itself on the admin listener (outside the
//! OpenAPI document). Server side, one file per page — `login.rs` (log in and out),
//! `shell.rs` (the app shell) — rendered by typed templates (maud: a missing value is a
//! compile error, every interpolation is escaped), and `assets.rs` (the embedded CSS and the
//! app's ES modules: one per page under `assets/js/pages/`, shared ones beside them; no CDN,
//! no build step). The app reads and steers everything through `/api/v1` with the session
//! cookie instead of a bearer token. Sessions and CSRF are `api::session` and `api::csrf`,
//! which the API uses too; this module only renders and routes.
//!
//! Every page is served with a strict Content-Security-Policy (no inline script or style).
//!
//! How to add a page: a module in `assets/js/pages/` exporting `render(params)` (and
//! `live = true` if it follows changes), a line in `main.js`'s `PAGES`, a line in `ASSETS`
//! (`assets.rs`), a link in the shell's nav (`shell.rs`).

mod assets;
mod login;
mod shell;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// An HTML page with the dashboard's security headers.
fn page(status: StatusCode, markup: maud::Markup) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.into_string())
}

/// The document around a page's body: head with the stylesheet, and `head_extra`.
fn document(title: &str, head_extra: maud::Markup, body: maud::Markup) -> maud::Markup {
    maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href="/ui/app.css";
                (head_extra)
            }
            (body)
        }
    }
}

/// The dashboard's routes (not part of the OpenAPI document: pages, not API).
pub fn configure(cfg: &mut web::ServiceConfig) {
    shell::configure(cfg);
    login::configure(cfg);
    assets::configure(cfg);
}
