//! The scheduler API (seed 004): `/api/tasks` and `/api/tasks/{id}` with its payload routes;
//! every route also answers under `/api/task/...`, the spelling of the brief's examples.
//!
//! Error body of this family: `{"error": {"code": "...", "message": "...", "field": "..."}}`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use troupe_actors::groups;
use troupe_actors::protocol::page::Page;
use troupe_actors::protocol::tasks::{
    NewTask, PayloadKeyDelete, PayloadPatch, SchedulerMsg, Task, TaskError, TaskFilter, TaskPatch,
    TaskStatus,
};
use troupe_actors::rpc::{self, CallError};
use troupe_actors::scheduler::start_time;
use troupe_actors::time::micros_to_rfc3339;

use super::doc::{schema, RouteDoc};
use super::json_body::{self, JsonBodyError};
use crate::AppState;

/// The brief's examples write `/api/task/...`; its API says `/api/tasks`. Both are served.
const BASES: [&str; 2] = ["/api/tasks", "/api/task"];

pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for base in BASES {
        router = router
            .route(base, get(list).post(create).fallback(method_not_allowed))
            .route(
                &format!("{base}/{{id}}"),
                get(one)
                    .patch(change)
                    .delete(remove)
                    .fallback(method_not_allowed),
            )
            .route(
                &format!("{base}/{{id}}/payload"),
                patch(change_payload).fallback(method_not_allowed),
            )
            .route(
                &format!("{base}/{{id}}/payload/{{key}}"),
                delete(remove_payload_key).fallback(method_not_allowed),
            );
    }
    router
}

#[derive(Debug)]
pub struct TasksError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl TasksError {
    pub fn new(status: StatusCode, message: String) -> Self {
        let code = match status {
            StatusCode::BAD_REQUEST => "invalid_request",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "internal",
        };
        Self {
            status,
            code,
            message,
            field: None,
        }
    }

    fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_string()),
            ..Self::new(StatusCode::BAD_REQUEST, message.into())
        }
    }
}

impl IntoResponse for TasksError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(field) = self.field {
            error["field"] = json!(field);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<TaskError> for TasksError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::Invalid { field, message } => Self::invalid(&field, message),
            TaskError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, m),
            TaskError::Conflict(m) => Self::new(StatusCode::CONFLICT, m),
            TaskError::Storage(m) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, m),
        }
    }
}

impl From<CallError> for TasksError {
    fn from(e: CallError) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the scheduler is unavailable: {e}"),
        )
    }
}

async fn method_not_allowed() -> TasksError {
    TasksError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this method is not allowed on this route".into(),
    )
}

/// A task as the API shows it: times in RFC 3339 UTC, payload and result as JSON.
pub fn task_json(t: &Task) -> Value {
    let parse = |text: &Option<String>| {
        text.as_deref()
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .unwrap_or(Value::Null)
    };
    let mut body = json!({
        "id": t.id,
        "start": start_time::render(t.start),
        "title": t.title,
        "worker": t.worker,
        "status": t.status.as_str(),
        "payload": parse(&t.payload),
        "created_at": micros_to_rfc3339(t.created_at),
        "updated_at": micros_to_rfc3339(t.updated_at),
        "attempts": t.attempts,
    });
    if t.status == TaskStatus::Succeeded {
        body["result"] = parse(&t.result);
    }
    if t.error.is_some() {
        body["error"] = json!(t.error);
    }
    body
}

fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, TasksError> {
    json_body::object(headers, body).map_err(|e| match e {
        JsonBodyError::WrongContentType(_) => {
            TasksError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.message())
        }
        JsonBodyError::Invalid(m) => TasksError::invalid("body", m),
    })
}

/// A key that may be absent (`None`), null (`Some(None)`) or a string.
fn opt_string(obj: &Map<String, Value>, key: &str) -> Result<Option<Option<String>>, TasksError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(TasksError::invalid(key, format!("{key} must be a string"))),
    }
}

fn start_field(obj: &Map<String, Value>) -> Result<Option<i64>, TasksError> {
    match opt_string(obj, "start")?.flatten() {
        None => Ok(None),
        Some(s) => start_time::parse(&s)
            .map(Some)
            .map_err(|m| TasksError::invalid("start", m)),
    }
}

/// A payload key: absent, null, or a JSON object (as JSON text).
fn payload_field(obj: &Map<String, Value>) -> Result<Option<Option<String>>, TasksError> {
    match obj.get("payload") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v @ Value::Object(_)) => Ok(Some(Some(v.to_string()))),
        Some(_) => Err(TasksError::invalid(
            "payload",
            "payload must be a JSON object",
        )),
    }
}

async fn call<T: Send + 'static>(
    state: &AppState,
    build: impl FnOnce(ractor::RpcReplyPort<T>) -> SchedulerMsg,
) -> Result<T, TasksError> {
    Ok(rpc::call(groups::SCHEDULER, build, state.config.call_timeout).await?)
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), TasksError> {
    let obj = json_body(&headers, &body)?;
    let new = NewTask {
        start: start_field(&obj)?,
        title: opt_string(&obj, "title")?.flatten(),
        worker: opt_string(&obj, "worker")?.flatten(),
        status: opt_string(&obj, "status")?.flatten(),
        payload: payload_field(&obj)?.flatten(),
    };
    let task = call(&state, |r| SchedulerMsg::Create(new, r)).await?.0?;
    Ok((StatusCode::CREATED, Json(task_json(&task))))
}

async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, TasksError> {
    let page = Page::parse(
        q.get("page_num").map(String::as_str),
        q.get("page_size").map(String::as_str),
    )
    .map_err(|errors| {
        let field = if errors[0].starts_with("page_num") {
            "page_num"
        } else {
            "page_size"
        };
        TasksError::invalid(field, errors.join("; "))
    })?;
    let status = match q.get("status") {
        None => None,
        Some(s) => Some(TaskStatus::parse(s).ok_or_else(|| {
            TasksError::invalid(
                "status",
                format!("unknown status {s:?}; one of SCHEDULED, RUNNING, SUCCEEDED, FAILED"),
            )
        })?),
    };
    let time = |key: &str| -> Result<Option<i64>, TasksError> {
        q.get(key)
            .map(|s| start_time::parse(s).map_err(|m| TasksError::invalid(key, m)))
            .transpose()
    };
    let filter = TaskFilter {
        // Names are stored trimmed (the create trims them), so the filter is too.
        worker: q.get("worker").map(|w| w.trim().to_string()),
        status,
        from: time("from")?,
        to: time("to")?,
        page,
    };
    let found = call(&state, |r| SchedulerMsg::List(filter, r)).await?.0?;
    Ok(Json(json!({
        "tasks": found.tasks.iter().map(task_json).collect::<Vec<_>>(),
        "page_num": page.num,
        "page_size": page.size,
        "total": found.total,
    })))
}

async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, TasksError> {
    let task = call(&state, |r| SchedulerMsg::Get(id, r)).await?.0?;
    Ok(Json(task_json(&task)))
}

async fn change(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, TasksError> {
    let obj = json_body(&headers, &body)?;
    let patch = TaskPatch {
        id,
        start: start_field(&obj)?,
        title: opt_string(&obj, "title")?,
        worker: match opt_string(&obj, "worker")? {
            Some(None) => return Err(TasksError::invalid("worker", "worker cannot be removed")),
            w => w.flatten(),
        },
        status: opt_string(&obj, "status")?.flatten(),
        payload: payload_field(&obj)?,
    };
    let task = call(&state, |r| SchedulerMsg::Patch(patch, r)).await?.0?;
    Ok(Json(task_json(&task)))
}

async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, TasksError> {
    call(&state, |r| SchedulerMsg::Delete(id, r)).await?.0?;
    Ok(StatusCode::NO_CONTENT)
}

async fn change_payload(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, TasksError> {
    let keys = Value::Object(json_body(&headers, &body)?).to_string();
    let task = call(&state, |r| {
        SchedulerMsg::PatchPayload(PayloadPatch { id, keys }, r)
    })
    .await?
    .0?;
    Ok(Json(task_json(&task)))
}

async fn remove_payload_key(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
) -> Result<Json<Value>, TasksError> {
    let task = call(&state, |r| {
        SchedulerMsg::DeletePayloadKey(PayloadKeyDelete { id, key }, r)
    })
    .await?
    .0?;
    Ok(Json(task_json(&task)))
}

/// A task as [`task_json`] renders it.
fn task_schema() -> Value {
    schema::object(
        json!({
            "id": schema::id(),
            "start": schema::date_time(),
            "title": schema::nullable_string(),
            "worker": {"type": "string"},
            "status": status_schema(),
            "payload": {"type": "object", "nullable": true},
            "created_at": schema::date_time(),
            "updated_at": schema::date_time(),
            "attempts": {"type": "integer", "minimum": 0},
            "result": {"nullable": true, "description": "the worker's result, once SUCCEEDED"},
            "error": {"type": "string", "description": "why it FAILED"},
        }),
        &[
            "id",
            "start",
            "title",
            "worker",
            "status",
            "payload",
            "created_at",
            "updated_at",
            "attempts",
        ],
    )
}

fn status_schema() -> Value {
    json!({"type": "string", "enum": ["SCHEDULED", "RUNNING", "SUCCEEDED", "FAILED"]})
}

/// The operations of one spelling of the base path.
fn docs_under(base: &str) -> Vec<RouteDoc> {
    use troupe_actors::scheduler::{MAX_TITLE_CHARS, MAX_WORKER_CHARS};
    const JSON: &str = "application/json";
    // Trimmed, not empty, no control characters (`char::is_control`).
    let worker = json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_WORKER_CHARS,
        "pattern": r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        "description": "one of the cluster's workers (GET /cluster)",
    });
    let title = json!({"type": "string", "maxLength": MAX_TITLE_CHARS, "nullable": true});
    let start = {
        let mut s = schema::time_input();
        s["description"] = json!(format!(
            "in the future; {}",
            s["description"].as_str().unwrap_or("")
        ));
        s["example"] = json!("2099-12-31T01:30:00Z");
        s
    };
    let payload = json!({
        "type": "object",
        "nullable": true,
        "description": "{\"job\": \"write\", \"text\"}, {\"job\": \"question\", \"action\", ...}, or anything else to echo",
    });
    let id = format!("{base}/{{id}}");
    vec![
        RouteDoc::new(
            "GET",
            base,
            "Tasks sorted by start, filtered by worker, status, from, to",
            "tasks",
        )
        .paginated()
        .query("worker", schema::string())
        .query("status", status_schema())
        .query("from", schema::time_input())
        .query("to", schema::time_input())
        .ok(
            200,
            schema::object(
                json!({
                    "tasks": {"type": "array", "items": task_schema()},
                    "page_num": {"type": "integer", "minimum": 1},
                    "page_size": {"type": "integer", "minimum": 1},
                    "total": {"type": "integer", "minimum": 0},
                }),
                &["tasks", "page_num", "page_size", "total"],
            ),
        )
        .errors(&[400]),
        RouteDoc::new("POST", base, "Schedule a task", "tasks")
            .body(
                JSON,
                schema::with_example(
                    schema::object(
                        json!({
                            "start": start,
                            "title": title,
                            "worker": worker,
                            "status": {"type": "string", "enum": ["SCHEDULED"], "nullable": true},
                            "payload": payload,
                        }),
                        &["start", "worker"],
                    ),
                    json!({
                        "start": "2099-12-31T01:30:00Z",
                        "title": "hello",
                        "worker": "worker-1",
                        "payload": {"key1": "value1", "key2": {"key2_1": "value2_1"}},
                    }),
                ),
            )
            .ok(201, task_schema())
            .errors(&[400, 415]),
        RouteDoc::new("GET", id.clone(), "One task", "tasks")
            .path_param("id", schema::id())
            .ok(200, task_schema())
            .errors(&[404]),
        RouteDoc::new("PATCH", id.clone(), "Change a task's fields", "tasks")
            .path_param("id", schema::id())
            .body(
                JSON,
                schema::object(
                    json!({
                        "start": start,
                        "title": title,
                        "worker": worker,
                        "status": {
                            "type": "string",
                            "enum": ["SCHEDULED", "RUNNING", "SUCCEEDED", "FAILED"],
                            "description": "only the task's current status (it changes as the task runs)",
                        },
                        "payload": payload,
                    }),
                    &[],
                ),
            )
            .ok(200, task_schema())
            .errors(&[400, 404, 409, 415]),
        RouteDoc::new(
            "DELETE",
            id.clone(),
            "Delete a task that is not running",
            "tasks",
        )
        .path_param("id", schema::id())
        .ok_empty(204)
        .errors(&[404, 409]),
        RouteDoc::new(
            "PATCH",
            format!("{id}/payload"),
            "Add or replace first-level payload keys",
            "tasks",
        )
        .path_param("id", schema::id())
        .body(
            JSON,
            json!({"type": "object", "description": "the keys to set, each with its new value"}),
        )
        .ok(200, task_schema())
        .errors(&[400, 404, 409, 415]),
        RouteDoc::new(
            "DELETE",
            format!("{id}/payload/{{key}}"),
            "Remove one payload key",
            "tasks",
        )
        .path_param("id", schema::id())
        .ok(200, task_schema())
        .errors(&[404, 409]),
    ]
}

/// The operations this module serves on the public listener (see `crate::openapi`), under
/// both spellings, like its router.
pub fn docs() -> Vec<RouteDoc> {
    BASES.iter().flat_map(|base| docs_under(base)).collect()
}
