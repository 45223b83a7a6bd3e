//! Everything the edge does around a request, as one middleware that reads top to bottom:
//!
//! 1. a request id, taken from `X-Request-Id` or made, set on the request and echoed;
//! 2. refusals, each in the error shape of the path's API family: headers over the limit
//!    (431), draining or past the in-flight limit (503), and on the public listener a missing
//!    or wrong token (401) and a client over its rate (429);
//! 3. the route, within the request time limit (408 past it); a handler that panics is a 500
//!    in the family's shape, not a dropped connection;
//! 4. plain-text errors raised below the handlers (body limit, wrong method, unparsable path
//!    or query) rendered as the family's JSON;
//! 5. the access log line and the request metrics.
//!
//! One layer rather than one per step on purpose: axum clones every layer beneath a layer for
//! each request and nests their futures, and with ten layers that bookkeeping was the largest
//! single cost in the edge's profile under the listings benchmark (ARCHITECTURE.md).

use std::future::Future;
use std::panic::AssertUnwindSafe;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;

use crate::refusal::Refused;
use crate::{access_log, draining, protect, AppState};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Tokens and rate limits apply.
    Public,
    /// Services kept from external clients: no tokens, no rate limits.
    Internal,
}

pub async fn around(
    state: AppState,
    mut request: Request,
    next: Next,
    listener: Listener,
) -> Response {
    let state = &state;
    let request_id = request_id(&mut request);
    let entry = access_log::Entry::begin(&request, &request_id);
    let response = match admit(state, &mut request, listener) {
        Err(refused) => *refused,
        Ok(_in_flight) => {
            match tokio::time::timeout(state.config.request_timeout, caught(next.run(request)))
                .await
            {
                Ok(response) => response,
                Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
            }
        }
    };
    let mut response = protect::json_errors(entry.path(), response).await;
    response.headers_mut().insert(X_REQUEST_ID, request_id);
    entry.finish(state, response.status());
    response
}

/// Runs a route; a panic in it becomes a plain 500 (rendered as JSON further on) and an error
/// log line, so the client gets an answer and the connection stays usable.
async fn caught(route: impl Future<Output = Response>) -> Response {
    match AssertUnwindSafe(route).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %what, "a request handler panicked");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The checks before a request may run; the guard counts it in flight until it is answered.
fn admit(
    state: &AppState,
    request: &mut Request,
    listener: Listener,
) -> Result<draining::InFlightGuard, Refused> {
    protect::check_headers(state, request)?;
    let in_flight = draining::admit(state, request.uri().path())?;
    if listener == Listener::Public {
        protect::authenticate(state, request)?;
        protect::rate_limit(state, request)?;
    }
    Ok(in_flight)
}

fn request_id(request: &mut Request) -> HeaderValue {
    if let Some(id) = request.headers().get(&X_REQUEST_ID) {
        return id.clone();
    }
    let made = HeaderValue::try_from(uuid::Uuid::new_v4().to_string())
        .expect("a UUID is a valid header value");
    request.headers_mut().insert(X_REQUEST_ID, made.clone());
    made
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_route_is_a_500() {
        let panics = async { panic!("handler bug") };
        assert_eq!(
            caught(panics).await.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let fine = async { StatusCode::OK.into_response() };
        assert_eq!(caught(fine).await.status(), StatusCode::OK);
    }
}
