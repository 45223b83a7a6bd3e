//! One module per API family.

mod form;
pub mod health;
pub mod jobs;
pub mod listings;
pub mod public_api;
pub mod result_family;
pub mod users;

use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

/// Unknown routes: 404 with a JSON body naming what was asked for.
pub async fn not_found(method: Method, uri: Uri) -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("no route for {method} {}", uri.path())})),
    )
}
