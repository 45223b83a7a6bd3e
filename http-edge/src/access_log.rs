//! One log line per request: method, path, status, latency and request id (errors at warn, so
//! every refused request can be found by its id); and the request's count and latency for
//! `/metrics`, labelled by its route template (not its path: ids would explode the series).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode};

use crate::AppState;

/// What the line needs from the request, taken before the request moves on.
pub struct Entry {
    started: Instant,
    method: Method,
    pub path: String,
    route: String,
    request_id: String,
}

impl Entry {
    pub fn begin(request: &Request, request_id: &HeaderValue) -> Self {
        Self {
            started: Instant::now(),
            method: request.method().clone(),
            path: request.uri().path().to_string(),
            route: request
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", |m| m.as_str())
                .to_string(),
            request_id: request_id.to_str().unwrap_or("-").to_string(),
        }
    }

    pub fn finish(self, state: &AppState, status: StatusCode) {
        let status = status.as_u16();
        let took = self.started.elapsed();
        state
            .http_metrics
            .record(&self.route, self.method.as_str(), status, took);
        let micros = took.as_micros() as u64;
        let (method, path, request_id) = (&self.method, &self.path, &self.request_id);
        if status >= 400 {
            tracing::warn!(%method, %path, status, micros, %request_id, "request");
        } else {
            tracing::info!(%method, %path, status, micros, %request_id, "request");
        }
    }
}
