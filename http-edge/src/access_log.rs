//! One log line per request: method, path, status, latency and request id. Errors log at warn,
//! so every refused request can be found by its id.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

pub async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let micros = started.elapsed().as_micros() as u64;
    if status >= 400 {
        tracing::warn!(%method, %path, status, micros, %request_id, "request");
    } else {
        tracing::info!(%method, %path, status, micros, %request_id, "request");
    }
    response
}
