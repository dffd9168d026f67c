//! The admin HTTP API (actix-web): one file per resource, one error type, bearer auth on
//! `/api/v1`, request ids, metrics per route, and an OpenAPI document generated from the
//! handlers themselves (utoipa-actix-web collects every `service(...)`).
//!
//! **Invariant:** handlers reach actors only through typed messages (to the supervisor);
//! they touch PostgreSQL only through `Db::run`.

pub mod actors;
pub mod audit;
pub mod auth;
pub mod browser_sessions;
pub mod circuits;
pub mod csrf;
pub mod error;
pub mod flags;
pub mod hand_over;
pub mod health;
pub mod input;
pub mod jobs;
pub mod kinds;
pub mod leader;
pub mod live;
pub mod metrics_mw;
pub mod nodes;
pub mod notifications;
pub mod once_keys;
pub mod openapi;
pub mod quotas;
pub mod rate_limit;
pub mod request_id;
pub mod runs;
pub mod schedules;
pub mod session;
pub mod stats;

use std::net::SocketAddr;
use std::sync::Arc;

use actix::Addr;
use actix_web::dev::Server;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use metrics_exporter_prometheus::PrometheusHandle;
use tracing_actix_web::TracingLogger;
use utoipa_actix_web::{scope, AppExt};

use self::auth::TokenSet;
use self::error::ApiError;
use crate::config::Config;
use crate::db::Db;
use crate::supervisor::Supervisor;

/// What handlers share (as `web::Data<ApiState>`).
pub struct ApiState {
    pub config: Arc<Config>,
    pub db: Db,
    pub supervisor: Addr<Supervisor>,
    /// Where the scheduler is now (to wake it when a job is created or triggered here).
    pub directory: crate::actors::directory::Directory,
    /// This process's node id.
    pub node_id: uuid::Uuid,
    /// Notification channels (for `POST /api/v1/notifications/test`).
    pub routing: Arc<crate::notify::Routing>,
    pub prometheus: PrometheusHandle,
    pub openapi: Arc<String>,
    /// The feature flags in effect (shared with the actors).
    pub flags: crate::flags::Live,
    /// The job kinds (the same registry the actors run jobs with).
    pub kinds: Arc<crate::kinds::Registry>,
}

/// Registers every route; used both to serve and to build the OpenAPI document, so the
/// document cannot miss a route registered here.
fn routes<T>(app: utoipa_actix_web::UtoipaApp<T>) -> utoipa_actix_web::UtoipaApp<T>
where
    T: actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Error = actix_web::Error,
        InitError = (),
    >,
{
    app.service(health::health)
        .service(health::ready)
        .service(health::metrics)
        .service(
            scope("/api/v1")
                // Outermost first: authenticate, then the input gate.
                .wrap(from_fn(input::middleware))
                .wrap(from_fn(auth::middleware))
                .service(openapi::openapi_json)
                .service(flags::list)
                .service(flags::set)
                .service(flags::reset)
                .service(audit::list)
                .service(actors::list)
                .service(actors::crash)
                .service(nodes::list)
                .service(leader::get)
                .service(jobs::create)
                .service(jobs::list)
                .service(jobs::get_one)
                .service(jobs::update)
                .service(jobs::cancel)
                .service(jobs::pause)
                .service(jobs::resume)
                .service(jobs::trigger)
                .service(kinds::list)
                .service(schedules::preview)
                .service(stats::runs)
                .service(once_keys::list)
                .service(once_keys::forget)
                .service(runs::list)
                .service(runs::get_one)
                .service(runs::requeue)
                .service(runs::artifact)
                .service(runs::progress)
                .service(runs::notice)
                .service(hand_over::ask)
                .service(hand_over::status)
                .service(circuits::list)
                .service(browser_sessions::list)
                .service(live::open)
                .service(live::list)
                .service(live::events)
                .service(live::input)
                .service(notifications::list)
                .service(notifications::test)
                .service(notifications::resend)
                .service(quotas::list)
                .service(quotas::get_one)
                .service(quotas::put)
                .service(quotas::remove)
                .service(quotas::consume)
                .service(quotas::refund),
        )
}

/// The OpenAPI document of every route.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, doc) = routes(App::new().into_utoipa_app()).split_for_parts();
    openapi::finish(doc)
}

fn json_error(
    body_limit: usize,
) -> impl Fn(JsonPayloadError, &actix_web::HttpRequest) -> actix_web::Error + Clone {
    move |err, _| {
        let api = match &err {
            JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                ApiError::payload_too_large(body_limit)
            }
            JsonPayloadError::ContentType => ApiError::new(
                actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected Content-Type: application/json",
            ),
            JsonPayloadError::Deserialize(e) if e.is_data() => {
                ApiError::unprocessable(format!("invalid request body: {e}"))
            }
            other => ApiError::bad_request(format!("malformed JSON body: {other}")),
        };
        api.into()
    }
}

/// The path templates of every route and their methods, from the OpenAPI document (the
/// route table itself): a request no route takes is 405 with `Allow` when its path exists
/// under other methods, 404 otherwise.
#[derive(Debug, Default)]
pub struct RouteMethods(Vec<(Vec<String>, Vec<String>)>);

impl RouteMethods {
    /// From the served document (JSON), so it is built once.
    pub fn from_document(doc: &str) -> Self {
        let value: serde_json::Value = serde_json::from_str(doc).unwrap_or_default();
        let mut routes = Vec::new();
        if let Some(paths) = value["paths"].as_object() {
            for (path, item) in paths {
                let segments = path.split('/').map(str::to_string).collect();
                let mut methods: Vec<String> = item
                    .as_object()
                    .map(|m| {
                        m.keys()
                            .filter(|k| {
                                ["get", "post", "put", "patch", "delete"].contains(&k.as_str())
                            })
                            .map(|k| k.to_ascii_uppercase())
                            .collect()
                    })
                    .unwrap_or_default();
                methods.sort();
                routes.push((segments, methods));
            }
        }
        Self(routes)
    }

    /// The methods the routes matching `path` answer (empty: no such path).
    pub fn allowed(&self, path: &str) -> Vec<String> {
        let given: Vec<&str> = path.split('/').collect();
        let mut out: Vec<String> = Vec::new();
        for (template, methods) in &self.0 {
            let matches = template.len() == given.len()
                && template.iter().zip(&given).all(|(t, g)| {
                    if t.starts_with('{') && t.ends_with('}') {
                        !g.is_empty()
                    } else {
                        t == g
                    }
                });
            if matches {
                out.extend(methods.iter().cloned());
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

async fn no_route(
    req: actix_web::HttpRequest,
    routes: web::Data<RouteMethods>,
) -> Result<actix_web::HttpResponse, ApiError> {
    let allowed = routes.allowed(req.path());
    if allowed.is_empty() {
        return Err(ApiError::not_found("no such route"));
    }
    let err = ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed here; allowed: {}",
            req.method(),
            allowed.join(", ")
        ),
    );
    let mut res = actix_web::ResponseError::error_response(&err);
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&allowed.join(", ")) {
        res.headers_mut().insert(actix_web::http::header::ALLOW, v);
    }
    Ok(res)
}

/// Binds the admin API and returns the server (not yet awaited) and its bound addresses.
/// `pages` adds the routes served beside the API on the same listener (the dashboard,
/// outside the OpenAPI document): `app` passes `ui::configure`, so the API knows nothing of
/// the dashboard's pages.
pub fn server(
    state: ApiState,
    tokens: TokenSet,
    bind: SocketAddr,
    pages: fn(&mut web::ServiceConfig),
) -> std::io::Result<(Server, Vec<SocketAddr>)> {
    let config = state.config.clone();
    let body_limit = config.server.body_limit;
    let state = web::Data::new(state);
    let tokens = web::Data::new(tokens);
    let route_methods = web::Data::new(RouteMethods::from_document(&state.openapi));
    let limits = web::Data::new(rate_limit::Limits::new(
        &config.server.rate_limit,
        &config.server.trusted_proxies,
    ));
    let mut http = HttpServer::new(move || {
        let app = App::new()
            .app_data(state.clone())
            .app_data(limits.clone())
            .app_data(tokens.clone())
            .app_data(route_methods.clone())
            .app_data(request_id::BodyLimit(body_limit))
            .app_data(
                web::JsonConfig::default()
                    .limit(body_limit)
                    .error_handler(json_error(body_limit)),
            )
            .app_data(web::PayloadConfig::new(body_limit))
            .app_data(web::PathConfig::default().error_handler(|e: PathError, _| {
                ApiError::not_found(format!("bad path parameter: {e}")).into()
            }))
            .app_data(
                web::QueryConfig::default().error_handler(|e: QueryPayloadError, _| {
                    ApiError::bad_request(format!("bad query parameter: {e}")).into()
                }),
            )
            .into_utoipa_app();
        routes(app)
            .map(|app| {
                app.configure(pages)
                    .default_service(web::to(no_route))
                    .wrap(from_fn(audit::middleware))
                    .wrap(from_fn(metrics_mw::middleware))
                    .wrap(TracingLogger::<request_id::RequestSpan>::new())
                    .wrap(from_fn(request_id::middleware))
            })
            .into_app()
    })
    .disable_signals()
    .shutdown_timeout(config.server.shutdown_timeout.as_secs().max(1));
    if config.server.workers > 0 {
        http = http.workers(config.server.workers);
    } else {
        http = http.workers(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .min(4),
        );
    }
    let http = http.bind(bind)?;
    let addrs = http.addrs();
    Ok((http.run(), addrs))
}

/// Keyset cursors for lists ordered by (time, id), newest first: opaque to clients.
pub mod cursor {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    /// One page of a keyset listing: `items` were read with `limit + 1`; a row beyond the
    /// limit means there is a next page, which starts after the page's last item.
    pub fn page<T>(
        mut items: Vec<T>,
        limit: i64,
        cursor_of: impl Fn(&T) -> String,
    ) -> (Vec<T>, Option<String>) {
        if items.len() as i64 <= limit {
            return (items, None);
        }
        items.truncate(limit.max(0) as usize);
        let next = items.last().map(cursor_of);
        (items, next)
    }

    pub fn encode(at: DateTime<Utc>, id: Uuid) -> String {
        hex::encode(format!("{}|{}", at.to_rfc3339(), id))
    }

    pub fn decode(c: &str) -> Option<(DateTime<Utc>, Uuid)> {
        let text = String::from_utf8(hex::decode(c).ok()?).ok()?;
        let (t, id) = text.split_once('|')?;
        Some((
            DateTime::parse_from_rfc3339(t).ok()?.with_timezone(&Utc),
            Uuid::parse_str(id).ok()?,
        ))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn a_page_has_a_cursor_only_when_a_row_beyond_the_limit_was_read() {
            let cursor = |x: &i32| x.to_string();
            assert_eq!(super::page(vec![1, 2, 3], 3, cursor), (vec![1, 2, 3], None));
            assert_eq!(
                super::page(vec![1, 2, 3, 4], 3, cursor),
                (vec![1, 2, 3], Some("3".to_string()))
            );
            assert_eq!(super::page(Vec::<i32>::new(), 3, cursor), (vec![], None));
        }
    }
}
