//! One module per API family.

pub mod health;
pub mod jobs;

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
