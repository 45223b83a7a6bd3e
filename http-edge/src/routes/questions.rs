//! The question API (seed 003): `POST /api/v1/json`.
//!
//! Error body of this family: `{"Code": <status>, "message": "<what went wrong; how to ask>"}`.
//! Every error is logged with the request id.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use troupe_actors::groups;
use troupe_actors::protocol::master::MasterMsg;
use troupe_actors::protocol::questions::{Ask, Question, QuestionError};
use troupe_actors::question::parse::{self, ParseError};
use troupe_actors::rpc::{self, CallError};

use super::doc::{schema, RouteDoc};
use super::json_body;
use crate::AppState;

/// Questions are small; anything bigger is a mistake or an attack.
pub const MAX_QUESTION_BYTES: usize = 64 * 1024;
const HOW_TO_ASK: &str = "POST /api/v1/json with a JSON object: {\"action\": \"search\", \
     \"term\": \"...\", \"nresults\": N, \"n_before\": N, \"n_after\": N, \"dictionary\": \"name\"}, \
     {\"action\": \"all\", \"dictionary\": \"name\"} or {\"action\": \"list\", \"folder\": \"...\", \
     \"pattern\": \"*.txt\"}";

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/json",
        post(ask).fallback(|| async {
            QuestionApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this route only takes POST".into(),
            )
        }),
    )
}

#[derive(Debug)]
pub struct QuestionApiError {
    pub status: StatusCode,
    pub message: String,
}

impl QuestionApiError {
    pub fn new(status: StatusCode, message: String) -> Self {
        Self { status, message }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message.into())
    }
}

impl IntoResponse for QuestionApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "Code": self.status.as_u16(),
            "message": format!("{} (how to ask: {HOW_TO_ASK})", self.message),
        });
        (self.status, Json(body)).into_response()
    }
}

impl From<QuestionError> for QuestionApiError {
    fn from(e: QuestionError) -> Self {
        let status = match &e {
            QuestionError::BadRequest(_) => StatusCode::BAD_REQUEST,
            QuestionError::Forbidden(_) => StatusCode::FORBIDDEN,
            QuestionError::NotFound(_) => StatusCode::NOT_FOUND,
            QuestionError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            QuestionError::TimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
            QuestionError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl From<CallError> for QuestionApiError {
    fn from(e: CallError) -> Self {
        let status = match e {
            CallError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self::new(status, format!("the question service is unavailable: {e}"))
    }
}

async fn ask(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match answer(&state, &headers, body).await {
        Ok(results) => {
            Json(json!({"nr of entries": results.len(), "results": results})).into_response()
        }
        Err(e) => {
            let request_id = headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::warn!(request_id, status = e.status.as_u16(), message = %e.message, "question refused");
            e.into_response()
        }
    }
}

async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<String>, QuestionApiError> {
    json_body::require_json(headers)
        .map_err(|e| QuestionApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.message()))?;
    let too_large = |size: &str| {
        QuestionApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is {size} bytes; questions are at most {MAX_QUESTION_BYTES}"),
        )
    };
    let body = body.map_err(|e| match e.status() {
        // Over the edge's own body limit: the same answer as over the question limit.
        StatusCode::PAYLOAD_TOO_LARGE => too_large("too many"),
        status => QuestionApiError::new(status, format!("cannot read the body: {e}")),
    })?;
    if body.len() > MAX_QUESTION_BYTES {
        return Err(too_large(&body.len().to_string()));
    }
    let question = parse_question(&body)?;
    let wait = state.config.question_timeout;
    let ask = Ask {
        question,
        wait_ms: wait.as_millis() as u64,
    };
    // The master's own deadline is `wait`; give its answer a moment to travel back.
    let answer = rpc::call(
        groups::MASTER,
        |r| MasterMsg::Ask(ask, r),
        wait + std::time::Duration::from_secs(2),
    )
    .await?;
    Ok(answer.0?)
}

/// Turns the JSON body into a question: 400 for bad JSON or keys, 501 for an unknown action.
fn parse_question(body: &[u8]) -> Result<Question, QuestionApiError> {
    let obj = json_body::parse_object(body).map_err(|e| QuestionApiError::bad(e.message()))?;
    parse::from_json(&obj).map_err(|e| match e {
        ParseError::Invalid(m) => QuestionApiError::bad(m),
        ParseError::UnknownAction(m) => QuestionApiError::new(StatusCode::NOT_IMPLEMENTED, m),
    })
}

/// The operations this module serves on the public listener (see `crate::openapi`).
pub fn docs() -> Vec<RouteDoc> {
    use troupe_actors::question::runner::MAX_CONTEXT;
    let action = |name: &str| json!({"type": "string", "enum": [name]});
    // A plain file name in the dictionaries folder: no separator, not starting with a dot.
    let dictionary = json!({
        "type": "string",
        "pattern": r"^[^./\\\x00][^/\\\x00]*$",
        "nullable": true,
        "description": "a dictionary's file name, with or without .txt (default: quotes)",
    });
    let context =
        json!({"type": "integer", "minimum": 0, "maximum": MAX_CONTEXT, "nullable": true});
    let search = schema::object(
        json!({
            "action": action("search"),
            "term": {
                "type": "string",
                "minLength": 1,
                "pattern": r"^[^\n\x00]+$",
                "description": "one line; literal unless regex is true",
            },
            "nresults": {
                "type": "integer",
                "format": "int64",
                "minimum": i64::MIN,
                "maximum": i64::MAX,
                "nullable": true,
                "description": "0, negative or absent: all",
            },
            "n_before": context,
            "n_after": context,
            "dictionary": dictionary,
            "regex": {"type": "boolean", "nullable": true, "description": "term is an extended regular expression"},
        }),
        &["action", "term"],
    );
    let all = schema::object(
        json!({"action": action("all"), "dictionary": dictionary}),
        &["action"],
    );
    let list = schema::object(
        json!({
            "action": action("list"),
            "folder": {
                "type": "string",
                "pattern": r"^[^\x00]*$",
                "description": "relative to the listing root, without ..; \"\" or \".\" is the root",
            },
            "pattern": {"type": "string", "nullable": true, "description": "a glob, e.g. *.txt"},
        }),
        &["action", "folder"],
    );
    // A key the action does not take is refused (400), so the document says so.
    let (mut search, mut all, mut list) = (search, all, list);
    for body in [&mut search, &mut all, &mut list] {
        body["additionalProperties"] = json!(false);
    }
    vec![RouteDoc::new(
        "POST",
        "/api/v1/json",
        "Ask a question: search, all or list",
        "questions",
    )
    .body(
        "application/json",
        schema::with_example(
            json!({"oneOf": [search, all, list]}),
            json!({"action": "search", "term": "retry", "nresults": 2, "n_before": 1, "n_after": 0, "dictionary": "quotes"}),
        ),
    )
    .ok(
        200,
        schema::object(
            json!({
                "nr of entries": {"type": "integer", "minimum": 0},
                "results": {"type": "array", "items": {"type": "string"}},
            }),
            &["nr of entries", "results"],
        ),
    )
    .errors(&[400, 403, 404, 405, 413, 415, 500, 501, 504])]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(body: &str) -> u16 {
        parse_question(body.as_bytes()).unwrap_err().status.as_u16()
    }

    #[test]
    fn each_mistake_has_its_status() {
        assert_eq!(status("{"), 400);
        assert_eq!(status("[]"), 400);
        assert_eq!(status(r#"{"action":"search"}"#), 400);
        assert_eq!(status(r#"{"action":"dance"}"#), 501);
    }
}
