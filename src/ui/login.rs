//! The login page (`GET /ui/login`), logging in with an API token (`POST /ui/login`) and out
//! (`POST /ui/logout`). What a login does — the session, its audit row, the rate limit of
//! wrong tokens — is `api::session`; this renders the outcome.

use actix_web::http::{header, StatusCode};
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use maud::html;

use super::{document, page};
use crate::api::session::{self, LoginHint, LoginRefused, LogoutRefused};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(login_form).service(login).service(logout);
}

fn login_page(hint: &LoginHint, error: Option<&str>) -> maud::Markup {
    document(
        "overseer · log in",
        html! {},
        html! {
            body.login {
                main {
                    h1 { "overseer" }
                    @if let Some(e) = error {
                        p.error role="alert" { (e) }
                    }
                    form method="post" action="/ui/login" {
                        label for="token" { "API token" }
                        input #token name="token" type="password" autocomplete="current-password" required autofocus;
                        button #login type="submit" { "Log in" }
                    }
                    @match hint {
                        LoginHint::AdminTokenFile(path) => p.hint {
                            "First login: the admin token is in " code { (path.display()) } " on the overseer host."
                        },
                        LoginHint::MakeToken => p.hint {
                            "Make a token with " code { "overseer token new --role viewer" } "."
                        },
                    }
                }
            }
        },
    )
}

#[get("/ui/login")]
async fn login_form(req: HttpRequest) -> HttpResponse {
    page(StatusCode::OK, login_page(&session::login_hint(&req), None))
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

#[post("/ui/login")]
async fn login(req: HttpRequest, form: web::Form<LoginForm>) -> HttpResponse {
    let hint = session::login_hint(&req);
    match session::log_in(&req, &form.token).await {
        Ok(cookie) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/ui/"))
            .cookie(cookie)
            .finish(),
        Err(LoginRefused::Invalid) => page(
            StatusCode::UNAUTHORIZED,
            login_page(&hint, Some("That token is not valid.")),
        ),
        Err(LoginRefused::Limited(secs)) => {
            let mut res = page(
                StatusCode::TOO_MANY_REQUESTS,
                login_page(
                    &hint,
                    Some(&format!("Too many attempts; try again in {secs} s.")),
                ),
            );
            if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
        Err(LoginRefused::Unavailable) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            login_page(&hint, Some("The database is unavailable; try again.")),
        ),
    }
}

#[derive(serde::Deserialize)]
struct LogoutForm {
    csrf: String,
}

#[post("/ui/logout")]
async fn logout(req: HttpRequest, form: web::Form<LogoutForm>) -> HttpResponse {
    match session::log_out(&req, &form.csrf).await {
        Ok(gone) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/ui/login"))
            .cookie(gone)
            .finish(),
        Err(LogoutRefused::Csrf) => HttpResponse::Forbidden().body("missing or wrong CSRF token"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_page_escapes_what_it_shows() {
        let hint = LoginHint::AdminTokenFile("/srv/<x>/admin.token".into());
        let html = login_page(&hint, Some("a <b>bad</b> token")).into_string();
        assert!(html.contains("/srv/&lt;x&gt;/admin.token"), "{html}");
        assert!(html.contains("a &lt;b&gt;bad&lt;/b&gt; token"), "{html}");
        assert!(
            html.contains(r#"<form method="post" action="/ui/login">"#),
            "{html}"
        );
        assert!(!html.contains("<script"), "no script on the login page");
        let html = login_page(&LoginHint::MakeToken, None).into_string();
        assert!(html.contains("overseer token new --role viewer") && !html.contains("alert"));
    }
}
