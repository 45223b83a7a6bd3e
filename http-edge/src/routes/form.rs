//! Reading an `application/x-www-form-urlencoded` body, as the seed 002 services take them.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};

use super::result_family::ResultError;

/// The form's fields; any other declared Content-Type is a 415.
pub fn fields(headers: &HeaderMap, body: &Bytes) -> Result<HashMap<String, String>, ResultError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-www-form-urlencoded");
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(ResultError::one(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be application/x-www-form-urlencoded, not {content_type}"),
        ));
    }
    serde_urlencoded::from_bytes(body)
        .map_err(|e| ResultError::bad_request(vec![format!("body is not a valid form: {e}")]))
}
