//! A refusal: the whole response sent instead of running the route, when a check before the
//! route (header limit, draining, in-flight limit, token, rate limit) says no. Rendered in the
//! error shape of the API family that owns the path (`routes::error_for_path`).
//!
//! Owns only the type and its making; the checks live in `protect.rs` and `draining.rs`, and
//! `pipeline.rs` sends what they refuse. This module sits below all three and must import none
//! of them.

use axum::http::StatusCode;
use axum::response::Response;

use crate::routes::error_for_path;

/// The response to send instead (boxed: it is the rare path, and keeps `Result`s small).
pub type Refused = Box<Response>;

/// A refusal of a request for `path`; callers may add headers (`Retry-After`, ...) to it.
pub fn refuse(path: &str, status: StatusCode, message: String) -> Refused {
    Box::new(error_for_path(path, status, message))
}
