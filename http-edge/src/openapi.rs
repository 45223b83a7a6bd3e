//! `GET /openapi.json`: an OpenAPI 3 document of the public listener, generated from the route
//! lists each routes module keeps beside its router (`docs()`), so a route and its entry are
//! written in one place. Each entry states the operation's query parameters and request body
//! as JSON Schema with the limits its handler enforces, so a schema-driven client or fuzzer
//! can build meaningful requests. A test calls every documented operation on a running edge
//! to prove each one exists and accepts its documented query parameters.

use serde_json::{json, Map, Value};

use crate::routes;

/// One query parameter of an operation.
#[derive(Debug, Clone)]
pub struct QueryParam {
    pub name: &'static str,
    pub required: bool,
    /// The JSON Schema of its value (OpenAPI 3.0 dialect).
    pub schema: Value,
}

/// A request body in one media type.
#[derive(Debug, Clone)]
pub struct BodyDoc {
    /// `application/json` or `application/x-www-form-urlencoded`.
    pub content_type: &'static str,
    /// The JSON Schema of the body (OpenAPI 3.0 dialect).
    pub schema: Value,
}

/// One documented operation. Build it with [`RouteDoc::new`] and the methods after it.
#[derive(Debug, Clone)]
pub struct RouteDoc {
    pub method: &'static str,
    /// With `{param}` placeholders, as axum writes them.
    pub path: String,
    pub summary: &'static str,
    /// The API family (an OpenAPI tag): its error body shape.
    pub family: &'static str,
    /// Schemas of path parameters; a `{param}` not listed here is any string.
    pub path_params: Vec<(&'static str, Value)>,
    pub query: Vec<QueryParam>,
    /// The media types the body may come in; empty when the route reads no body.
    pub body: Vec<BodyDoc>,
    /// Success statuses and the schema of their JSON body (`None`: no body, as with 204).
    pub success: Vec<(u16, Option<Value>)>,
    /// Error statuses of this route; those any route can answer are added by [`document`].
    pub errors: &'static [u16],
}

impl RouteDoc {
    pub fn new(
        method: &'static str,
        path: impl Into<String>,
        summary: &'static str,
        family: &'static str,
    ) -> Self {
        Self {
            method,
            path: path.into(),
            summary,
            family,
            path_params: Vec::new(),
            query: Vec::new(),
            body: Vec::new(),
            success: Vec::new(),
            errors: &[],
        }
    }

    pub fn path_param(mut self, name: &'static str, schema: Value) -> Self {
        self.path_params.push((name, schema));
        self
    }

    /// An optional query parameter.
    pub fn query(mut self, name: &'static str, schema: Value) -> Self {
        self.query.push(QueryParam {
            name,
            required: false,
            schema,
        });
        self
    }

    /// A query parameter the route refuses to do without.
    pub fn required_query(mut self, name: &'static str, schema: Value) -> Self {
        self.query.push(QueryParam {
            name,
            required: true,
            schema,
        });
        self
    }

    /// `page_num` (from 1) and `page_size` (1 to 100), as every paginated route reads them.
    pub fn paginated(self) -> Self {
        self.query(
            "page_num",
            json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": i64::MAX, "default": 1}),
        )
        .query(
            "page_size",
            json!({"type": "integer", "format": "int64", "minimum": 1,
                   "maximum": troupe_actors::protocol::page::MAX_PAGE_SIZE,
                   "default": troupe_actors::protocol::page::DEFAULT_PAGE_SIZE}),
        )
    }

    /// A body in `content_type`; call again for another media type the route also takes.
    pub fn body(mut self, content_type: &'static str, schema: Value) -> Self {
        self.body.push(BodyDoc {
            content_type,
            schema,
        });
        self
    }

    /// A success status with a JSON body of `schema`.
    pub fn ok(mut self, status: u16, schema: Value) -> Self {
        self.success.push((status, Some(schema)));
        self
    }

    /// A success status without a body.
    pub fn ok_empty(mut self, status: u16) -> Self {
        self.success.push((status, None));
        self
    }

    pub fn errors(mut self, errors: &'static [u16]) -> Self {
        self.errors = errors;
        self
    }
}

/// Schemas several route modules share.
pub mod schema {
    use serde_json::{json, Value};

    /// An integer the handler reads as an `i64`.
    pub fn int64(minimum: i64, maximum: i64) -> Value {
        json!({"type": "integer", "format": "int64", "minimum": minimum, "maximum": maximum})
    }

    /// The identifiers troupe makes (UUID v7); any other text is a 404.
    pub fn id() -> Value {
        json!({"type": "string", "format": "uuid"})
    }

    pub fn string() -> Value {
        json!({"type": "string"})
    }

    pub fn nullable_string() -> Value {
        json!({"type": "string", "nullable": true})
    }

    /// An RFC 3339 time, as the APIs that render times as text write them.
    pub fn date_time() -> Value {
        json!({"type": "string", "format": "date-time"})
    }

    /// A time as `start`, `from`, `to`, `datefrom` and `dateto` read it: RFC 3339, ISO 8601
    /// basic form (`20260718T0130`, `20260718T013000Z`), the extended form without a zone, or a
    /// date; no zone means UTC. The schema states the RFC 3339 subset; the rest is in the text.
    pub fn time_input() -> Value {
        json!({
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339; also ISO 8601 basic form (20260718T0130, \
                            20260718T013000Z) or a date (2026-07-18); no zone means UTC",
        })
    }

    /// `schema` with an example (the first request a fuzzer sends, and a reader's model).
    pub fn with_example(mut schema: Value, example: Value) -> Value {
        schema["example"] = example;
        schema
    }

    /// An object with these properties, of which `required` must be present.
    pub fn object(properties: Value, required: &[&str]) -> Value {
        let mut o = json!({"type": "object", "properties": properties});
        if !required.is_empty() {
            o["required"] = json!(required);
        }
        o
    }
}

/// Every operation of the public listener.
pub fn public_routes() -> Vec<RouteDoc> {
    [
        routes::health::docs(),
        routes::jobs::docs(),
        routes::public_api::docs(),
        routes::questions::docs(),
        routes::tasks::docs(),
        routes::events::docs(),
    ]
    .concat()
}

/// Statuses any route of the public listener can answer, from the layers around the routes:
/// 401 without a valid token (when tokens are configured), 408 past the request time limit,
/// 429 past the rate limit, 431 for headers over their limit, 503 while draining, past the
/// in-flight limit, or when the service behind the route is unreachable.
const EVERY_ROUTE: &[u16] = &[401, 408, 429, 431, 503];

/// The error body of each API family; `routes::error_for_path` maps paths to families.
fn error_schema(family: &str) -> Value {
    match family {
        "jobs" => json!({
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
        }),
        // `/readyz` answers 503 with why; the other refusals are the edge's `{"error"}`.
        "health" => json!({
            "type": "object",
            "properties": {
                "error": {"type": "string"},
                "status": {"type": "string"},
                "reason": {"type": "string"},
                "missing": {"type": "array", "items": {"type": "string"}},
            },
        }),
        "listings" => json!({
            "type": "object",
            "required": ["result", "errors"],
            "properties": {
                "result": {"type": "boolean", "enum": [false]},
                "errors": {"type": "array", "items": {"type": "string"}},
            },
        }),
        "questions" => json!({
            "type": "object",
            "required": ["Code", "message"],
            "properties": {"Code": {"type": "integer"}, "message": {"type": "string"}},
        }),
        "tasks" => json!({
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": "string"},
                },
            }},
        }),
        // JSend: "fail" with data naming each field at fault (4xx), "error" with a message (5xx).
        _ => json!({
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": ["fail", "error"]},
                "data": {"type": "object", "additionalProperties": {"type": "string"}},
                "message": {"type": "string"},
            },
        }),
    }
}

/// `post_api_tasks_id_payload` for `POST /api/tasks/{id}/payload`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for part in path.split(|c: char| !c.is_ascii_alphanumeric()) {
        if !part.is_empty() {
            id.push('_');
            id.push_str(part);
        }
    }
    if path.ends_with('/') && path.len() > 1 {
        id.push_str("_slash");
    }
    id
}

fn operation(r: &RouteDoc) -> Value {
    let mut params: Vec<Value> = r
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let schema = r
                .path_params
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, s)| s.clone())
                .unwrap_or_else(schema::string);
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect();
    params.extend(r.query.iter().map(
        |q| json!({"name": q.name, "in": "query", "required": q.required, "schema": q.schema}),
    ));
    let mut responses = Map::new();
    for (status, body) in &r.success {
        let mut response = json!({"description": "success"});
        if let Some(schema) = body {
            response["content"] = json!({"application/json": {"schema": schema}});
        }
        responses.insert(status.to_string(), response);
    }
    let mut errors: Vec<u16> = r.errors.iter().chain(EVERY_ROUTE).copied().collect();
    if !r.body.is_empty() {
        // Bodies over `--max-body-bytes`.
        errors.push(413);
    }
    if r.path.contains('{') {
        // A path parameter that is not UTF-8 once percent-decoded (`/jobs/%FF`).
        errors.push(400);
    }
    errors.sort_unstable();
    errors.dedup();
    for code in errors {
        responses.insert(
            code.to_string(),
            json!({
                "description": "error",
                "content": {"application/json": {"schema": error_schema(r.family)}},
            }),
        );
    }
    let mut op = json!({
        "operationId": operation_id(r.method, &r.path),
        "summary": r.summary,
        "tags": [r.family],
        "parameters": params,
        "responses": responses,
    });
    if !r.body.is_empty() {
        let content: Map<String, Value> = r
            .body
            .iter()
            .map(|b| (b.content_type.to_string(), json!({"schema": b.schema})))
            .collect();
        op["requestBody"] = json!({"required": true, "content": content});
    }
    op
}

pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in public_routes() {
        paths
            .entry(r.path.clone())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("object")
            .insert(r.method.to_ascii_lowercase(), operation(&r));
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "troupe public API", "version": env!("CARGO_PKG_VERSION")},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}, {}],
        "paths": paths,
    })
}

pub async fn serve() -> axum::Json<Value> {
    axum::Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_unique_and_each_states_a_success() {
        let routes = public_routes();
        let mut ids: Vec<String> = routes
            .iter()
            .map(|r| operation_id(r.method, &r.path))
            .collect();
        ids.sort();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "operation ids collide");
        for r in &routes {
            assert!(
                !r.success.is_empty(),
                "{} {} has no success",
                r.method,
                r.path
            );
            for name in r
                .path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            {
                assert!(
                    r.query.iter().all(|q| q.name != name),
                    "{} {}: {name} is a path and a query parameter",
                    r.method,
                    r.path
                );
            }
            if r.method == "GET" || r.method == "DELETE" {
                assert!(r.body.is_empty(), "{} {} reads no body", r.method, r.path);
            }
        }
    }

    #[test]
    fn every_schema_is_an_object_with_a_type() {
        fn check(where_: &str, s: &Value) {
            assert!(s.is_object(), "{where_}: {s}");
            assert!(
                s.get("type").is_some() || s.get("oneOf").is_some() || s.get("anyOf").is_some(),
                "{where_}: no type in {s}"
            );
        }
        for r in public_routes() {
            let at = format!("{} {}", r.method, r.path);
            for q in &r.query {
                check(&at, &q.schema);
            }
            for b in &r.body {
                check(&at, &b.schema);
            }
            for (_, s) in &r.success {
                if let Some(s) = s {
                    check(&at, s);
                }
            }
        }
    }
}
