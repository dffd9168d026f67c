//! Request count and duration per method, route template and status.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::Error;

use crate::telemetry::names;

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let res = next.call(req).await?;
    // The template ("/api/v1/actors/{name}/crash"), never the raw path: bounded labels.
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = res.status().as_u16().to_string();
    metrics::counter!(names::HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(names::HTTP_DURATION, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    Ok(res)
}
