//! One module per API family.

pub mod doc;
pub mod events;
mod form;
pub mod health;
pub mod jobs;
pub mod json_body;
pub mod listings;
pub mod metrics;
pub mod public_api;
pub mod questions;
pub mod result_family;
pub mod tasks;
pub mod users;

use axum::extract::OriginalUri;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Unknown routes: 404 in the error shape of the API family the path belongs to.
pub async fn not_found(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    error_for_path(
        uri.path(),
        StatusCode::NOT_FOUND,
        format!("no route for {method} {}", uri.path()),
    )
}

/// An error the edge raises by itself (unknown route, draining), rendered in the body shape of
/// the API family that owns `path`.
pub fn error_for_path(path: &str, status: StatusCode, message: String) -> Response {
    if path.starts_with("/api/tasks") || path.starts_with("/api/task/") || path == "/api/task" {
        tasks::TasksError::new(status, message).into_response()
    } else if path.starts_with("/event") {
        if status.is_server_error() {
            events::EventsApiError::Error(status, message).into_response()
        } else {
            events::EventsApiError::Fail(status, vec![("path".into(), message)]).into_response()
        }
    } else if path.starts_with("/api/") {
        questions::QuestionApiError::new(status, message).into_response()
    } else if ["/public-api", "/listings", "/users"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        result_family::ResultError::one(status, message).into_response()
    } else {
        (status, Json(json!({ "error": message }))).into_response()
    }
}
