//! The job relay (seed 000): `POST /jobs`, `GET /jobs/{id}`.
//!
//! Error body of this family: `{"error": "<message>", "field": "<field>"}` (field when one is
//! at fault).

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use troupe_actors::groups;
use troupe_actors::protocol::jobs::{JobLookup, JobStatus, JobView, NewJob};
use troupe_actors::protocol::master::MasterMsg;
use troupe_actors::rpc::{self, CallError};
use troupe_actors::time::micros_to_rfc3339;

use super::doc::{schema, RouteDoc};
use super::form;
use super::json_body::media_type;
use crate::AppState;

/// How long a `wait=true` that ran out may spend asking the job's status before answering.
const STATUS_LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);

/// `body_limit` replaces the edge's body limit on `POST /jobs` (`EdgeConfig::jobs_body_bytes`).
pub fn router(body_limit: usize) -> Router<AppState> {
    Router::new()
        .route(
            "/jobs",
            post(submit).layer(axum::extract::DefaultBodyLimit::max(body_limit)),
        )
        .route("/jobs/{id}", get(job))
}

#[derive(Debug)]
pub enum JobsError {
    BadInput {
        field: &'static str,
        message: String,
    },
    TooLarge(String),
    NotFound(String),
    Unavailable(CallError),
    Internal(String),
}

impl IntoResponse for JobsError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Self::BadInput { field, message } => (
                StatusCode::BAD_REQUEST,
                json!({"error": message, "field": field}),
            ),
            Self::TooLarge(message) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": message, "field": "text"}),
            ),
            Self::NotFound(message) => (StatusCode::NOT_FOUND, json!({"error": message})),
            Self::Unavailable(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": format!("job service unavailable: {e}")}),
            ),
            Self::Internal(message) => {
                (StatusCode::INTERNAL_SERVER_ERROR, json!({"error": message}))
            }
        };
        (status, Json(body)).into_response()
    }
}

impl From<CallError> for JobsError {
    fn from(e: CallError) -> Self {
        Self::Unavailable(e)
    }
}

/// What a `POST /jobs` asks for, from whichever place the client put it.
struct Submission {
    text: String,
    wait: bool,
}

async fn submit(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, JobsError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            JobsError::TooLarge(format!(
                "request body is over {} bytes",
                state.config.jobs_body_bytes()
            ))
        } else {
            JobsError::BadInput {
                field: "body",
                message: format!("cannot read body: {e}"),
            }
        }
    })?;
    let sub = parse_submission(&query, &headers, &body)?;
    if sub.text.len() > state.config.max_text_bytes {
        return Err(JobsError::TooLarge(format!(
            "text is {} bytes; the limit is {}",
            sub.text.len(),
            state.config.max_text_bytes
        )));
    }
    let timeout = state.config.call_timeout;
    let accepted = rpc::call(
        groups::MASTER,
        |reply| MasterMsg::Submit(NewJob { text: sub.text }, reply),
        timeout,
    )
    .await?
    .0
    .map_err(JobsError::Internal)?;
    if !sub.wait {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"job_id": accepted.job_id, "status": "queued"})),
        )
            .into_response());
    }
    let waited = rpc::call(
        groups::MASTER,
        |reply| MasterMsg::AwaitDone(accepted.job_id.clone(), reply),
        state.config.wait_timeout,
    )
    .await;
    match waited {
        Ok(JobLookup(Some(view))) if view.status.is_final() => {
            Ok((StatusCode::OK, Json(view_json(&view))).into_response())
        }
        Ok(_) => Ok(still_pending(&state, accepted, "the master lost track of the wait").await),
        Err(CallError::Timeout { .. }) => Ok(still_pending(
            &state,
            accepted,
            "the job did not finish within the wait timeout",
        )
        .await),
        Err(e) => Ok(still_pending(
            &state,
            accepted,
            &format!("waiting for the job failed: {e}"),
        )
        .await),
    }
}

/// The answer to a `wait=true` whose wait ended without the job's outcome. The job is durably
/// accepted, so this is never an error: a client told "503" would submit it again and the
/// cluster would do it twice. It gets the job id (202) to poll with, and the job as the master
/// knows it now, if it answers at once; the job may even have finished meanwhile.
async fn still_pending(state: &AppState, accepted: JobView, why: &str) -> Response {
    let known = rpc::call(
        groups::MASTER,
        |reply| MasterMsg::Get(accepted.job_id.clone(), reply),
        state.config.call_timeout.min(STATUS_LOOKUP_TIMEOUT),
    )
    .await;
    let status = match known {
        Ok(JobLookup(Some(view))) if view.status.is_final() => {
            return (StatusCode::OK, Json(view_json(&view))).into_response();
        }
        Ok(JobLookup(Some(view))) => view.status,
        _ => accepted.status,
    };
    (
        StatusCode::ACCEPTED,
        Json(json!({
            "job_id": accepted.job_id,
            "status": status.as_str(),
            "message": format!("{why}; GET /jobs/{} tells when it is done", accepted.job_id),
        })),
    )
        .into_response()
}

fn parse_submission(
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Submission, JobsError> {
    let content_type = media_type(headers);
    let mut text = None;
    let mut wait = None;
    if content_type == "application/json" {
        let value: Value = serde_json::from_slice(body).map_err(|e| JobsError::BadInput {
            field: "body",
            message: format!("body is not valid JSON: {e}"),
        })?;
        let Value::Object(obj) = value else {
            return Err(JobsError::BadInput {
                field: "body",
                message: "body must be a JSON object like {\"text\": \"...\"}".into(),
            });
        };
        match obj.get("text") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => text = Some(s.clone()),
            Some(_) => {
                return Err(JobsError::BadInput {
                    field: "text",
                    message: "text must be a string".into(),
                })
            }
        }
        match obj.get("wait") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => wait = Some(*b),
            Some(Value::String(s)) => wait = Some(parse_bool("wait", s)?),
            Some(_) => {
                return Err(JobsError::BadInput {
                    field: "wait",
                    message: "wait must be true or false".into(),
                })
            }
        }
    } else if content_type == "application/x-www-form-urlencoded" {
        let form = form::pairs(body).map_err(|message| JobsError::BadInput {
            field: "body",
            message,
        })?;
        text = form.get("text").cloned();
        if let Some(w) = form.get("wait") {
            wait = Some(parse_bool("wait", w)?);
        }
    } else if !body.is_empty() {
        return Err(JobsError::BadInput {
            field: "body",
            message: format!(
                "unsupported Content-Type {content_type:?}; send JSON, a form, or ?text="
            ),
        });
    }
    if text.is_none() {
        text = query.get("text").cloned();
    }
    if wait.is_none() {
        if let Some(w) = query.get("wait") {
            wait = Some(parse_bool("wait", w)?);
        }
    }
    let text = text.ok_or(JobsError::BadInput {
        field: "text",
        message: "text is required (JSON {\"text\": ...}, a form field, or ?text=)".into(),
    })?;
    if text.is_empty() {
        return Err(JobsError::BadInput {
            field: "text",
            message: "text must not be empty".into(),
        });
    }
    Ok(Submission {
        text,
        wait: wait.unwrap_or(false),
    })
}

fn parse_bool(field: &'static str, s: &str) -> Result<bool, JobsError> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        _ => Err(JobsError::BadInput {
            field,
            message: format!("{field} must be true or false, not {s:?}"),
        }),
    }
}

async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, JobsError> {
    let found = rpc::call(
        groups::MASTER,
        |reply| MasterMsg::Get(id.clone(), reply),
        state.config.call_timeout,
    )
    .await?;
    found
        .0
        .map(|v| Json(view_json(&v)))
        .ok_or_else(|| JobsError::NotFound(format!("no job with id {id}")))
}

fn view_json(v: &JobView) -> Value {
    let mut body = json!({
        "job_id": v.job_id,
        "status": v.status.as_str(),
        "file": v.file,
        "worker": v.worker,
        "node": v.node,
        "created_at": micros_to_rfc3339(v.created_at),
        "updated_at": micros_to_rfc3339(v.updated_at),
    });
    if v.status == JobStatus::Failed {
        body["error"] = json!(v.error);
    }
    body
}

/// A job as `GET /jobs/{id}` and a finished `POST /jobs?wait=true` show it.
fn job_schema() -> Value {
    schema::object(
        json!({
            "job_id": schema::id(),
            "status": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
            "file": schema::nullable_string(),
            "worker": schema::nullable_string(),
            "node": schema::nullable_string(),
            "created_at": schema::date_time(),
            "updated_at": schema::date_time(),
            "error": schema::nullable_string(),
        }),
        &[
            "job_id",
            "status",
            "file",
            "worker",
            "node",
            "created_at",
            "updated_at",
        ],
    )
}

/// The operations this module serves on the public listener (see `crate::openapi`).
pub fn docs() -> Vec<RouteDoc> {
    // `text` must be non-empty and at most `--max-text-bytes` (1 MiB) of UTF-8: a length in
    // characters cannot say that exactly, so the schema states the byte count as characters
    // and a text of multi-byte characters under it may still be a 413.
    let text = json!({"type": "string", "minLength": 1, "maxLength": 1024 * 1024});
    // `wait` is read as a boolean; as text, true/1/yes and false/0/no/"" in any case.
    let submission = schema::with_example(
        schema::object(
            json!({"text": text, "wait": {"type": "boolean", "default": false}}),
            &["text"],
        ),
        json!({"text": "hello"}),
    );
    let mut text_param = text.clone();
    text_param["description"] = json!("read when the body has no text");
    let mut wait_param = json!({"type": "boolean", "default": false});
    wait_param["description"] = json!("read when the body has no wait");
    vec![
        RouteDoc::new(
            "POST",
            "/jobs",
            "Submit a text for a worker to write (JSON, form or ?text=; wait=true waits)",
            "jobs",
        )
        // The body may also be left out for `?text=`; the document states the body form, so
        // that a request valid by it always carries a text.
        .query("text", text_param)
        .query("wait", wait_param)
        .body("application/json", submission.clone())
        .body("application/x-www-form-urlencoded", submission)
        .ok(
            202,
            schema::object(
                json!({
                    "job_id": schema::id(),
                    "status": {"type": "string", "enum": ["queued", "running"]},
                    "message": {"type": "string"},
                }),
                &["job_id", "status"],
            ),
        )
        .ok(200, job_schema())
        .errors(&[400, 413]),
        RouteDoc::new(
            "GET",
            "/jobs/{id}",
            "A job's status, file, worker and node",
            "jobs",
        )
        .path_param("id", schema::id())
        .ok(200, job_schema())
        .errors(&[404]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        h
    }

    #[test]
    fn text_comes_from_json_form_or_query() {
        let q = HashMap::new();
        let s = parse_submission(
            &q,
            &headers("application/json"),
            &Bytes::from(r#"{"text":"a","wait":true}"#),
        )
        .unwrap();
        assert_eq!((s.text.as_str(), s.wait), ("a", true));
        let s = parse_submission(
            &q,
            &headers("application/x-www-form-urlencoded"),
            &Bytes::from("text=b%20c"),
        )
        .unwrap();
        assert_eq!((s.text.as_str(), s.wait), ("b c", false));
        let q: HashMap<_, _> = [
            ("text".to_string(), "d".to_string()),
            ("wait".into(), "true".into()),
        ]
        .into();
        let s = parse_submission(&q, &HeaderMap::new(), &Bytes::new()).unwrap();
        assert_eq!((s.text.as_str(), s.wait), ("d", true));
    }

    #[test]
    fn bad_input_names_the_field() {
        let q = HashMap::new();
        let field = |r: Result<Submission, JobsError>| match r {
            Err(JobsError::BadInput { field, .. }) => field,
            _ => panic!("expected bad input"),
        };
        assert_eq!(
            field(parse_submission(
                &q,
                &headers("application/json"),
                &Bytes::from("{")
            )),
            "body"
        );
        assert_eq!(
            field(parse_submission(
                &q,
                &headers("application/json"),
                &Bytes::from(r#"{"text":""}"#)
            )),
            "text"
        );
        assert_eq!(
            field(parse_submission(
                &q,
                &headers("application/json"),
                &Bytes::from(r#"{"text":5}"#)
            )),
            "text"
        );
        assert_eq!(
            field(parse_submission(&q, &HeaderMap::new(), &Bytes::new())),
            "text"
        );
        assert_eq!(
            field(parse_submission(
                &q,
                &headers("application/json"),
                &Bytes::from(r#"{"text":"x","wait":"maybe"}"#)
            )),
            "wait"
        );
    }
}
