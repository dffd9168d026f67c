//! The app shell (`GET /ui/`): the navigation, the logout form and the `<main>` the page
//! modules render into. The session's role, name and CSRF token travel in `<meta>` tags (a
//! strict CSP allows no inline script); without a session it sends the browser to the login.

use actix_web::http::{header, StatusCode};
use actix_web::{get, web, HttpRequest, HttpResponse};
use maud::html;

use super::{document, page};
use crate::api::session;
use crate::db::ui_sessions::Session;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(root).service(shell);
}

/// The pages in the navigation: (hash route, element id, label, admin only).
const NAV: &[(&str, &str, &str, bool)] = &[
    ("#/", "nav-overview", "Overview", false),
    ("#/jobs", "nav-jobs", "Jobs", false),
    ("#/runs", "nav-runs", "Runs", false),
    ("#/quotas", "nav-quotas", "Quotas", false),
    (
        "#/notifications",
        "nav-notifications",
        "Notifications",
        false,
    ),
    ("#/browsers", "nav-browsers", "Browsers", false),
    ("#/flags", "nav-flags", "Flags", false),
    ("#/audit", "nav-audit", "Audit", true),
];

fn shell_page(s: &Session) -> maud::Markup {
    let admin = s.role == "admin";
    document(
        "overseer",
        html! {
            meta name="csrf" content=(s.csrf);
            meta name="role" content=(s.role);
            meta name="caller" content=(s.token_name);
            script type="module" src="/ui/js/main.js" {}
        },
        html! {
            body {
                header {
                    nav aria-label="main" {
                        @for (href, id, label, admin_only) in NAV {
                            @if admin || !admin_only {
                                a href=(href) id=(id) { (label) }
                            }
                        }
                    }
                    form method="post" action="/ui/logout" {
                        input type="hidden" name="csrf" value=(s.csrf);
                        span.who { (s.token_name) " (" (s.role) ")" }
                        button #logout type="submit" { "Log out" }
                    }
                }
                main #main aria-live="polite" {}
            }
        },
    )
}

#[get("/ui/")]
async fn shell(req: HttpRequest) -> HttpResponse {
    match session::current(&req).await {
        Ok(Some(s)) => page(StatusCode::OK, shell_page(&s)),
        Ok(None) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/ui/login"))
            .finish(),
        Err(_) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            document(
                "overseer",
                html! {},
                html! { body { p { "The database is unavailable." } } },
            ),
        ),
    }
}

#[get("/ui")]
async fn root() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(role: &str) -> Session {
        Session {
            token_name: "ops<1>".into(),
            role: role.into(),
            csrf: "c\"srf".into(),
            last_seen_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn the_shell_carries_the_session_escaped_and_hides_admin_pages() {
        let html = shell_page(&session("operator")).into_string();
        assert!(
            html.contains(r#"<meta name="csrf" content="c&quot;srf">"#),
            "{html}"
        );
        assert!(html.contains("ops&lt;1&gt; (operator)"), "{html}");
        assert!(html.contains(r#"<script type="module" src="/ui/js/main.js"></script>"#));
        assert!(html.contains(r##"href="#/jobs""##) && !html.contains("nav-audit"));
        let html = shell_page(&session("admin")).into_string();
        assert!(html.contains("nav-audit"), "{html}");
    }
}
