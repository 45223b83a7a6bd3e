//! Reading a JSON-object body, the way every JSON API family here takes one. Each family turns
//! a [`JsonBodyError`] into its own error shape and status (415 for most, 400 for events).

use axum::http::{header, HeaderMap};
use serde_json::{Map, Value};

#[derive(Debug)]
pub enum JsonBodyError {
    /// The declared Content-Type, which is not JSON.
    WrongContentType(String),
    /// Not JSON at all, or JSON but not an object; the message says which.
    Invalid(String),
}

impl JsonBodyError {
    pub fn message(&self) -> String {
        match self {
            Self::WrongContentType(ct) => {
                format!("Content-Type must be application/json, not {ct:?}")
            }
            Self::Invalid(m) => m.clone(),
        }
    }
}

/// The declared media type, lowercased and without parameters (`charset=...`); empty when
/// there is no Content-Type. `application/jsonx` is not `application/json`.
pub fn media_type(headers: &HeaderMap) -> String {
    let Some(declared) = headers.get(header::CONTENT_TYPE) else {
        return String::new();
    };
    // A header that is not even text declares something, and it is no type we take.
    let Ok(declared) = declared.to_str() else {
        return "(unreadable)".into();
    };
    declared
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Checks the Content-Type only.
pub fn require_json(headers: &HeaderMap) -> Result<(), JsonBodyError> {
    if media_type(headers) == "application/json" {
        Ok(())
    } else {
        let declared = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Err(JsonBodyError::WrongContentType(declared.to_string()))
    }
}

/// Parses bytes that must hold one JSON object.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, JsonBodyError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(JsonBodyError::Invalid(
            "the body must be a JSON object".into(),
        )),
        Err(e) => Err(JsonBodyError::Invalid(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// A JSON-object body with a JSON Content-Type.
pub fn object(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, JsonBodyError> {
    require_json(headers)?;
    parse_object(body)
}
