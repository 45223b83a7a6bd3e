//! One log line per request: method, path, status, latency and request id (errors at warn, so
//! every refused request can be found by its id); and the request's count and latency for
//! `/metrics`, labelled by its route template (not its path: ids would explode the series).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

pub async fn log_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let took = started.elapsed();
    state
        .http_metrics
        .record(&route, method.as_str(), status, took);
    let micros = took.as_micros() as u64;
    if status >= 400 {
        tracing::warn!(%method, %path, status, micros, %request_id, "request");
    } else {
        tracing::info!(%method, %path, status, micros, %request_id, "request");
    }
    response
}
