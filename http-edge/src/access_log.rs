//! One log line per request: method, path, status, latency and request id (errors at warn, so
//! every refused request can be found by its id); and the request's count and latency for
//! `/metrics`, labelled by its route template (not its path: ids would explode the series).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode, Uri};

use crate::AppState;

/// What the line needs from the request, taken before the request moves on (reference-counted
/// clones, no copies).
pub struct Entry {
    started: Instant,
    method: Method,
    uri: Uri,
    route: Option<MatchedPath>,
    request_id: HeaderValue,
}

impl Entry {
    pub fn begin(request: &Request, request_id: &HeaderValue) -> Self {
        Self {
            started: Instant::now(),
            method: request.method().clone(),
            uri: request.uri().clone(),
            route: request.extensions().get::<MatchedPath>().cloned(),
            request_id: request_id.clone(),
        }
    }

    pub fn path(&self) -> &str {
        self.uri.path()
    }

    pub fn finish(self, state: &AppState, status: StatusCode) {
        let status = status.as_u16();
        let took = self.started.elapsed();
        let route = self.route.as_ref().map_or("unmatched", |m| m.as_str());
        state
            .http_metrics
            .record(route, self.method.as_str(), status, took);
        let micros = took.as_micros() as u64;
        let (method, path) = (&self.method, self.uri.path());
        let request_id = self.request_id.to_str().unwrap_or("-");
        if status >= 400 {
            tracing::warn!(%method, %path, status, micros, %request_id, "request");
        } else {
            tracing::info!(%method, %path, status, micros, %request_id, "request");
        }
    }
}
