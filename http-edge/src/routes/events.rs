//! The event collection API (seed 001): `POST /event/submit/`, `GET /event/{task_id}`,
//! `GET /event/fetch/` (each also without the trailing slash).
//!
//! Bodies are JSend: `{"status": "success", "data": ...}`, `{"status": "fail", "data":
//! {"<field>": "<why>"}}` for the caller's mistakes (400, 404), `{"status": "error", "message"}`
//! for ours (500, 503).

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use troupe_actors::groups;
use troupe_actors::protocol::events::{
    Event, EventError, EventFilter, EventsMsg, GeoStatus, NewEvent,
};
use troupe_actors::protocol::page::Page;
use troupe_actors::rpc::{self, CallError};
use troupe_actors::scheduler::start_time;
use troupe_actors::time::micros_to_rfc3339;

use super::doc::{schema, RouteDoc};
use super::json_body;
use crate::client_ip::client_ip;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/event/submit/", post(submit))
        .route("/event/submit", post(submit))
        .route("/event/fetch/", get(fetch))
        .route("/event/fetch", get(fetch))
        .route("/event/{task_id}", get(one))
}

#[derive(Debug)]
pub enum EventsApiError {
    Fail(StatusCode, Vec<(String, String)>),
    Error(StatusCode, String),
}

impl EventsApiError {
    fn fail(field: &str, why: impl Into<String>) -> Self {
        Self::Fail(
            StatusCode::BAD_REQUEST,
            vec![(field.to_string(), why.into())],
        )
    }
}

impl IntoResponse for EventsApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Fail(status, fields) => {
                let data: serde_json::Map<String, Value> =
                    fields.into_iter().map(|(f, why)| (f, json!(why))).collect();
                (status, Json(json!({"status": "fail", "data": data}))).into_response()
            }
            Self::Error(status, message) => {
                (status, Json(json!({"status": "error", "message": message}))).into_response()
            }
        }
    }
}

impl From<CallError> for EventsApiError {
    fn from(e: CallError) -> Self {
        Self::Error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the events service is unavailable: {e}"),
        )
    }
}

impl From<EventError> for EventsApiError {
    fn from(e: EventError) -> Self {
        match e {
            EventError::Invalid(fields) => Self::Fail(StatusCode::BAD_REQUEST, fields),
            EventError::Storage(m) => Self::Error(StatusCode::INTERNAL_SERVER_ERROR, m),
        }
    }
}

async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), EventsApiError> {
    // This family answers a wrong Content-Type with its own 400, as the brief's clients expect.
    let obj = json_body::object(&headers, &body)
        .map_err(|e| EventsApiError::fail("body", e.message()))?;
    let mut fails = Vec::new();
    let name = match obj.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            fails.push(("name".to_string(), "name must be a string".to_string()));
            None
        }
    };
    let status_code = match obj.get("status_code") {
        None | Some(Value::Null) => None,
        // The service decides whether the text is a number; both spellings reach it as text.
        Some(Value::Number(n)) if n.is_i64() => Some(n.to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            fails.push((
                "status_code".to_string(),
                "status_code must be an integer or a string of digits".to_string(),
            ));
            None
        }
    };
    if !fails.is_empty() {
        return Err(EventsApiError::Fail(StatusCode::BAD_REQUEST, fails));
    }
    let ip = client_ip(peer.ip(), &headers, &state.config.trusted_proxies).to_string();
    let new = NewEvent {
        name,
        status_code,
        ip,
    };
    let id = rpc::call(
        groups::EVENTS,
        |r| EventsMsg::Submit(new, r),
        state.config.call_timeout,
    )
    .await?
    .0?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"data": {"task_id": id}, "status": "success"})),
    ))
}

fn event_json(e: &Event) -> Value {
    let mut body = json!({
        "task_id": e.id,
        "name": e.name,
        "status_code": e.status_code,
        "ip": e.ip,
        "created_at": micros_to_rfc3339(e.created_at),
        "geo": e.geo.as_ref().map(|g| json!({
            "city": g.city,
            "country_name": g.country_name,
            "iso_code": g.iso_code,
            "latitude": g.latitude,
            "longitude": g.longitude,
            "time_zone": g.time_zone,
        })),
    });
    match &e.geo_status {
        GeoStatus::Pending => body["geo_status"] = json!("pending"),
        GeoStatus::Done => body["geo_status"] = json!("done"),
        GeoStatus::Failed(reason) => {
            body["geo_status"] = json!("failed");
            body["geo_error"] = json!(reason);
        }
    }
    body
}

async fn one(
    State(state): State<AppState>,
    Path(task_id): Path<String>,
) -> Result<Json<Value>, EventsApiError> {
    let found = rpc::call(
        groups::EVENTS,
        |r| EventsMsg::Get(task_id.clone(), r),
        state.config.call_timeout,
    )
    .await?
    .0?;
    match found {
        Some(e) => Ok(Json(json!({"status": "success", "data": event_json(&e)}))),
        None => Err(EventsApiError::Fail(
            StatusCode::NOT_FOUND,
            vec![("task_id".into(), format!("no event with id {task_id}"))],
        )),
    }
}

/// `dateto` given as a bare date means the whole of that day.
fn date_bound(key: &str, value: &str, end_of_day: bool) -> Result<i64, EventsApiError> {
    let micros = start_time::parse(value).map_err(|m| EventsApiError::fail(key, m))?;
    let bare_date = value.trim().len() <= 10 && !value.contains('T');
    Ok(if end_of_day && bare_date {
        micros + 86_400_000_000 - 1
    } else {
        micros
    })
}

async fn fetch(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, EventsApiError> {
    let page = Page::parse(
        q.get("page_num").map(String::as_str),
        q.get("page_size").map(String::as_str),
    )
    .map_err(|errors| {
        EventsApiError::Fail(
            StatusCode::BAD_REQUEST,
            errors
                .into_iter()
                .map(|e| (e.split_whitespace().next().unwrap_or("page").to_string(), e))
                .collect(),
        )
    })?;
    let text = |key: &str| {
        q.get(key)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let filter = EventFilter {
        from: q
            .get("datefrom")
            .map(|v| date_bound("datefrom", v, false))
            .transpose()?,
        to: q
            .get("dateto")
            .map(|v| date_bound("dateto", v, true))
            .transpose()?,
        city_name: text("city_name"),
        country_name: text("country_name"),
        iso_code: text("iso_code"),
        status_code: q
            .get("status_code")
            .map(|s| {
                s.trim().parse::<i64>().map_err(|_| {
                    EventsApiError::fail("status_code", "status_code must be an integer")
                })
            })
            .transpose()?,
        page,
    };
    let (events, total) = rpc::call(
        groups::EVENTS,
        |r| EventsMsg::Fetch(filter, r),
        state.config.call_timeout,
    )
    .await?
    .0?;
    Ok(Json(json!({
        "status": "success",
        "data": {
            "events": events.iter().map(event_json).collect::<Vec<_>>(),
            "page_num": page.num,
            "page_size": page.size,
            "total": total,
        }
    })))
}

/// An event as [`event_json`] renders it.
fn event_schema() -> Value {
    let text = schema::nullable_string;
    let number = || json!({"type": "number", "nullable": true});
    let geo = json!({
        "type": "object",
        "nullable": true,
        "properties": {
            "city": text(),
            "country_name": text(),
            "iso_code": text(),
            "latitude": number(),
            "longitude": number(),
            "time_zone": text(),
        },
    });
    schema::object(
        json!({
            "task_id": schema::id(),
            "name": text(),
            "status_code": {"type": "integer", "nullable": true},
            "ip": {"type": "string"},
            "created_at": schema::date_time(),
            "geo": geo,
            "geo_status": {"type": "string", "enum": ["pending", "done", "failed"]},
            "geo_error": {"type": "string"},
        }),
        &[
            "task_id",
            "name",
            "status_code",
            "ip",
            "created_at",
            "geo",
            "geo_status",
        ],
    )
}

fn success(data: Value) -> Value {
    schema::object(
        json!({"status": {"type": "string", "enum": ["success"]}, "data": data}),
        &["status", "data"],
    )
}

/// The operations this module serves on the public listener (see `crate::openapi`).
pub fn docs() -> Vec<RouteDoc> {
    use troupe_actors::events::MAX_NAME_CHARS;
    // Either field may be missing or null; a present one must be valid.
    let event = schema::with_example(
        schema::object(
            json!({
                "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, "nullable": true},
                "status_code": {
                    "anyOf": [
                        {"type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX, "nullable": true},
                        {"type": "string", "pattern": r"^-?[0-9]{1,18}$"},
                    ],
                    "description": "an integer, or a string of digits",
                },
            }),
            &[],
        ),
        json!({"name": "EC2 Instance Offline", "status_code": "2"}),
    );
    let submitted = success(schema::object(
        json!({"task_id": schema::id()}),
        &["task_id"],
    ));
    let page = success(schema::object(
        json!({
            "events": {"type": "array", "items": event_schema()},
            "page_num": {"type": "integer", "minimum": 1},
            "page_size": {"type": "integer", "minimum": 1},
            "total": {"type": "integer", "minimum": 0},
        }),
        &["events", "page_num", "page_size", "total"],
    ));
    let submit = |path: &'static str, summary| {
        RouteDoc::new("POST", path, summary, "events")
            .body("application/json", event.clone())
            .ok(202, submitted.clone())
            .errors(&[400])
    };
    let fetch = |path: &'static str, summary| {
        RouteDoc::new("GET", path, summary, "events")
            .paginated()
            .query("datefrom", schema::time_input())
            .query(
                "dateto",
                json!({
                    "type": "string",
                    "format": "date-time",
                    "description": "as datefrom; a date means the whole of that day",
                }),
            )
            .query("city_name", schema::string())
            .query("country_name", schema::string())
            .query(
                "iso_code",
                json!({"type": "string", "description": "case-insensitive"}),
            )
            .query("status_code", schema::int64(i64::MIN, i64::MAX))
            .ok(200, page.clone())
            .errors(&[400])
    };
    vec![
        submit("/event/submit/", "Store an event; it is geolocated later"),
        submit(
            "/event/submit",
            "Store an event (without the trailing slash)",
        ),
        fetch("/event/fetch/", "Events, newest first, with filters"),
        fetch("/event/fetch", "Events (without the trailing slash)"),
        RouteDoc::new(
            "GET",
            "/event/{task_id}",
            "One event with its geolocation",
            "events",
        )
        .path_param("task_id", schema::id())
        .ok(200, success(event_schema()))
        .errors(&[404]),
    ]
}
