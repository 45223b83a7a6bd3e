//! `GET /openapi.json`: an OpenAPI 3 document of the public listener, generated from the route
//! lists each routes module keeps beside its router (`docs()`), so a route and its entry are
//! written in one place. Each entry states the operation's query parameters and request body
//! as JSON Schema with the limits its handler enforces, so a schema-driven client or fuzzer
//! can build meaningful requests. A test calls every documented operation on a running edge
//! to prove each one exists and accepts its documented query parameters.

use serde_json::{json, Map, Value};

use crate::routes;
use crate::routes::doc::{schema, RouteDoc};

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
