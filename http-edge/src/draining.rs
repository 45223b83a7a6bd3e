//! The shutdown switch and the count of requests in flight: once flipped, new requests get 503
//! while those already running finish; past the in-flight limit, requests are shed with 503.
//!
//! The listener keeps accepting while draining so that late clients get a clear 503 rather
//! than a refused connection; the runtime stops it once [`Draining::idle`] resolves or its
//! deadline passes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use tokio::sync::Notify;

use crate::refusal::{refuse, Refused};
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

/// Counts a request in flight until dropped, however the request ends (also when its client
/// goes away).
pub struct InFlightGuard(Draining);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Lets a request in unless the edge is draining (503; `/healthz` still answers) or already
/// has its limit of requests in flight (503 at once rather than a growing queue).
pub fn admit(state: &AppState, path: &str) -> Result<InFlightGuard, Refused> {
    let draining = &state.draining;
    if draining.is_draining() && path != "/healthz" {
        return Err(refuse(
            path,
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down; retry on another instance".into(),
        ));
    }
    let in_flight = draining.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let guard = InFlightGuard(draining.clone());
    if in_flight > state.protection.max_in_flight {
        return Err(refuse(
            path,
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is at its limit of requests in flight; retry shortly".into(),
        ));
    }
    Ok(guard)
}
