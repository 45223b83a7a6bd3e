//! The shutdown switch and the count of requests in flight: once flipped, new requests get 503
//! while those already running finish; past the in-flight limit, requests are shed with 503.
//!
//! The listener keeps accepting while draining so that late clients get a clear 503 rather
//! than a refused connection; the runtime stops it once [`Draining::idle`] resolves or its
//! deadline passes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::Notify;

use crate::AppState;

#[derive(Debug, Clone, Default)]
pub struct Draining {
    flag: Arc<AtomicBool>,
    in_flight: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

impl Draining {
    pub fn start(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.idle.notify_waiters();
    }

    pub fn is_draining(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Resolves when no accepted request is running.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Decrements the in-flight count however the request ends (also when its client goes away).
struct InFlightGuard(Draining);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

pub async fn refuse_while_draining(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let draining = &state.draining;
    if draining.is_draining() && request.uri().path() != "/healthz" {
        return crate::routes::error_for_path(
            request.uri().path(),
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down; retry on another instance".into(),
        );
    }
    let in_flight = draining.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _guard = InFlightGuard(draining.clone());
    // Past the limit, a 503 at once rather than a growing queue.
    if in_flight > state.protection.max_in_flight {
        return crate::routes::error_for_path(
            request.uri().path(),
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is at its limit of requests in flight; retry shortly".into(),
        );
    }
    next.run(request).await
}
