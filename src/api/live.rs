//! `/api/v1/browser/live`: a person drives a profile's browser (`browser::live`). Open one
//! (operator), follow it as server-sent events (frames, tabs, its end), send it input. The
//! wire protocol is written down in `docs/LIVE.md`, so scripts drive it as the dashboard does.
//!
//! Each view is one audit row (`browser.live`: who, profile, start), completed with its end
//! and duration when it ends. Frames and typed input are never stored or logged.

use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::audit::Audit;
use super::auth::{AsOperator, AsViewer};
use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::actors::browser::{LiveViews, OpenLive};
use crate::browser::live::{self, LiveHandle, LiveInput, Viewer};
use crate::jobs::run_error::RunErrorKind;

/// How often an event stream with nothing to say sends a comment: proxies keep it open,
/// and a viewer whose page closed is noticed (its write fails) within this.
const KEEPALIVE: Duration = Duration::from_secs(5);

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenRequest {
    /// The profile to drive (created if new), like "jobboard".
    pub profile: String,
    /// Where its first tab goes (http or https); none: a blank tab.
    #[serde(default)]
    pub url: Option<String>,
}

/// A live view.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LiveView {
    pub id: Uuid,
    pub profile: String,
    pub opened_by: String,
    pub started_at: DateTime<Utc>,
    /// Pages following it now.
    pub viewers: usize,
    /// A run's own view (`hand_over`): the run that waits for a person, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its page in the dashboard (log in there; no token is in it).
    pub link: String,
}

impl LiveView {
    fn of(h: &LiveHandle) -> Self {
        LiveView {
            id: h.id,
            profile: h.profile.clone(),
            opened_by: h.opened_by.clone(),
            started_at: h.started_at,
            viewers: h.viewers(),
            run_id: h.run_id,
            reason: h.reason.clone(),
            link: format!("/ui/#/live/{}", h.id),
        }
    }
}

/// Inputs, applied in order.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputBatch {
    pub events: Vec<LiveInput>,
}

fn pool(state: &ApiState) -> Result<actix::Addr<crate::actors::browser::BrowserPool>, ApiError> {
    state
        .directory
        .browser_pool()
        .ok_or_else(|| ApiError::unavailable("the browser pool is not running on this node"))
}

async fn find(state: &ApiState, id: Uuid) -> Result<LiveHandle, ApiError> {
    let views = pool(state)?
        .send(LiveViews)
        .await
        .map_err(|_| ApiError::unavailable("the browser pool is restarting"))?;
    views
        .into_iter()
        .find(|v| v.id == id)
        .ok_or_else(|| ApiError::not_found("no such live view on this node (it may have ended)"))
}

/// An address without its query and fragment (they may carry tokens), for the audit row.
fn bare(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => String::new(),
    }
}

/// Open a live view of a profile: its browser (launched if needed, with the profile's
/// identity) is held by the view until it ends; the profile's runs wait meanwhile.
#[utoipa::path(tag = "browser", security(("bearer" = [])), request_body = OpenRequest, responses(
    (status = 201, body = LiveView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
))]
#[post("/browser/live")]
pub async fn open(
    caller: AsOperator,
    audit: Audit,
    state: web::Data<ApiState>,
    body: web::Json<OpenRequest>,
) -> Result<HttpResponse, ApiError> {
    let OpenRequest { profile, url } = body.into_inner();
    if !crate::stdx::names::profile(&profile) {
        return Err(ApiError::invalid_field(
            "profile",
            "a profile name of a-z, 0-9, - and _ (at most 64), like \"jobboard\"",
        ));
    }
    let url = url
        .map(|u| live::address(&u))
        .transpose()
        .map_err(|e| ApiError::invalid_field("url", e))?;
    let pool = pool(&state)?;
    let views = pool
        .send(LiveViews)
        .await
        .map_err(|_| ApiError::unavailable("the browser pool is restarting"))?;
    if let Some(v) = views.iter().find(|v| v.profile == profile) {
        return Err(ApiError::conflict(format!(
            "profile {profile} already has a live view ({}, opened by {})",
            v.id, v.opened_by
        )));
    }
    let id = Uuid::now_v7();
    let opened = pool
        .send(OpenLive {
            id,
            profile: profile.clone(),
            url: url.clone(),
            opened_by: caller.name.clone(),
        })
        .await
        .map_err(|_| ApiError::unavailable("the browser pool is restarting"))?;
    let handle = opened.map_err(|f| match f.kind {
        RunErrorKind::BrowserBusy => ApiError::conflict(f.message),
        _ => ApiError::unavailable(f.message),
    })?;
    let mut entry = audit.entry(
        Some(format!("profile/{profile}")),
        Some(json!({
            "live_id": id, "profile": profile, "started_at": handle.started_at,
            "url": url.as_deref().map(bare), "ended_at": null,
        })),
    );
    entry.status = 201;
    let recorded = audit.record_alone(&state, entry).await;
    if let Err(e) = recorded {
        // No view without its row.
        handle.end();
        return Err(e);
    }
    Ok(HttpResponse::Created().json(LiveView::of(&handle)))
}

/// The live views open on this node.
#[utoipa::path(tag = "browser", security(("bearer" = [])), responses(
    (status = 200, body = Vec<LiveView>), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody),
))]
#[get("/browser/live")]
pub async fn list(
    _caller: AsViewer,
    state: web::Data<ApiState>,
) -> Result<web::Json<Vec<LiveView>>, ApiError> {
    let views = pool(&state)?
        .send(LiveViews)
        .await
        .map_err(|_| ApiError::unavailable("the browser pool is restarting"))?;
    Ok(web::Json(views.iter().map(LiveView::of).collect()))
}

/// Follow a live view: server-sent events `state` (tabs, address), `frame` (the page as a
/// JPEG, when it changes) and `ended`; see docs/LIVE.md.
#[utoipa::path(tag = "browser", security(("bearer" = [])), params(("id" = Uuid, Path, description = "live view id")),
    responses((status = 200, description = "text/event-stream", content_type = "text/event-stream"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
#[get("/browser/live/{id}/events")]
pub async fn events(
    _caller: AsOperator,
    state: web::Data<ApiState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let handle = find(&state, id.into_inner()).await?;
    let viewer = handle.watch();
    let stream = futures_util::stream::unfold(Stream::new(viewer), |mut s| async move {
        let chunk = s.next().await?;
        Some((Ok::<_, actix_web::Error>(chunk), s))
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}

/// One viewer's event stream.
struct Stream {
    viewer: Viewer,
    /// The first state and frame are sent at once.
    started: bool,
    done: bool,
}

fn event(name: &str, data: &impl Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

impl Stream {
    fn new(viewer: Viewer) -> Self {
        Stream {
            viewer,
            started: false,
            done: false,
        }
    }

    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if let Some(why) = *self.viewer.ended.borrow_and_update() {
            self.done = true;
            return Some(event("ended", &json!({ "reason": why })));
        }
        if !self.started {
            self.started = true;
            let state = self.viewer.state.borrow_and_update().clone();
            let mut out = event("state", &state).to_vec();
            if let Some(f) = self.viewer.frame.borrow_and_update().clone() {
                out.extend_from_slice(&event("frame", &*f));
            }
            return Some(Bytes::from(out));
        }
        let v = &mut self.viewer;
        tokio::select! {
            r = v.frame.changed() => match r {
                Ok(()) => match v.frame.borrow_and_update().clone() {
                    Some(f) => Some(event("frame", &*f)),
                    None => Some(Bytes::from_static(b": no frame\n\n")),
                },
                Err(_) => self.gone(),
            },
            r = v.state.changed() => match r {
                Ok(()) => Some(event("state", &v.state.borrow_and_update().clone())),
                Err(_) => self.gone(),
            },
            r = v.ended.changed() => match r {
                // Said on the next turn (the first check above).
                Ok(()) => Some(Bytes::from_static(b": ending\n\n")),
                Err(_) => self.gone(),
            },
            _ = tokio::time::sleep(KEEPALIVE) => Some(Bytes::from_static(b": keep-alive\n\n")),
        }
    }

    /// The view's task is gone without saying why (its pool stopped).
    fn gone(&mut self) -> Option<Bytes> {
        self.done = true;
        Some(event(
            "ended",
            &json!({ "reason": crate::browser::live::Ended::Stopped }),
        ))
    }
}

/// Send input to a live view: mouse, wheel, keys, text, navigation, tabs, done (see
/// docs/LIVE.md). 204 once queued, in order; 404 once the view has ended.
#[utoipa::path(tag = "browser", security(("bearer" = [])), params(("id" = Uuid, Path, description = "live view id")),
    request_body = InputBatch,
    responses((status = 204, description = "queued"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
#[post("/browser/live/{id}/input")]
pub async fn input(
    caller: AsOperator,
    req: actix_web::HttpRequest,
    state: web::Data<ApiState>,
    id: web::Path<Uuid>,
    body: web::Json<InputBatch>,
) -> Result<HttpResponse, ApiError> {
    let handle = find(&state, id.into_inner()).await?;
    // A person takes over a run's view (`hand_over`): their own audit row, completed when
    // the view ends, as a view they opened has.
    if let Some(run_id) = handle
        .run_id
        .filter(|_| handle.first_input_by(&caller.name))
    {
        let audit = Audit::for_action(&req, "browser.live");
        let entry = audit.entry(
            Some(format!("run/{run_id}")),
            Some(json!({
                "live_id": handle.id, "profile": handle.profile, "run_id": run_id,
                "started_at": Utc::now(), "ended_at": null,
            })),
        );
        audit.record_alone(&state, entry).await?;
        let (db, view) = (state.db.clone(), handle.clone());
        actix_web::rt::spawn(async move {
            let why = view.wait_ended().await;
            let id = view.id;
            let _ = db
                .run(move |c| crate::db::audit::finish_live(c, id, Utc::now(), why.as_str()))
                .await;
        });
    }
    for (i, e) in body.events.iter().enumerate() {
        if let LiveInput::Navigate { url } = e {
            live::address(url)
                .map_err(|m| ApiError::invalid_field(&format!("events[{i}].url"), m))?;
        }
    }
    handle
        .send(body.into_inner().events)
        .await
        .map_err(|e| ApiError::not_found(e.to_string()))?;
    Ok(HttpResponse::NoContent().finish())
}
