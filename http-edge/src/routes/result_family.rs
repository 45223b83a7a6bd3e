//! The error family of seed 002's APIs (listings, users, public API):
//! `{"result": false, "errors": ["<message naming its field>", ...]}`.

use axum::extract::OriginalUri;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use troupe_actors::protocol::service_error::ServiceError;
use troupe_actors::rpc::CallError;

#[derive(Debug)]
pub struct ResultError {
    pub status: StatusCode,
    pub errors: Vec<String>,
}

impl ResultError {
    pub fn bad_request(errors: Vec<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            errors,
        }
    }

    pub fn one(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            errors: vec![message.into()],
        }
    }

    pub fn unavailable(service: &str, e: CallError) -> Self {
        Self::one(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{service} service unavailable: {e}"),
        )
    }

    pub fn from_service(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(errors) => Self::bad_request(errors),
            ServiceError::Storage(m) => Self::one(StatusCode::INTERNAL_SERVER_ERROR, m),
        }
    }
}

/// A struct, not `json!`, so that `result` comes first as in the brief's bodies.
#[derive(Serialize)]
struct ErrorBody {
    result: bool,
    errors: Vec<String>,
}

impl IntoResponse for ResultError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            result: false,
            errors: self.errors,
        };
        (self.status, Json(body)).into_response()
    }
}

// `OriginalUri`: inside a nested router the plain URI has lost its prefix.
pub async fn not_found(method: Method, OriginalUri(uri): OriginalUri) -> ResultError {
    ResultError::one(
        StatusCode::NOT_FOUND,
        format!("no route for {method} {}", uri.path()),
    )
}

pub async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ResultError {
    ResultError::one(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Parses an optional integer parameter; the error names it.
pub fn int_param(name: &str, value: Option<&str>) -> Result<Option<i64>, String> {
    match value.map(str::trim) {
        None => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("{name} must be an integer, not {s:?}")),
    }
}
