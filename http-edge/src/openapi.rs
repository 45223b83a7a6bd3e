//! `GET /openapi.json`: an OpenAPI 3 document of the public listener, generated from the route
//! lists each routes module keeps beside its router (`docs()`), so a route and its entry are
//! written in one place. A test calls every documented operation on a running edge to prove
//! each one exists.

use serde_json::{json, Map, Value};

use crate::routes;

/// One documented operation.
#[derive(Debug, Clone)]
pub struct RouteDoc {
    pub method: &'static str,
    /// With `{param}` placeholders, as axum writes them.
    pub path: String,
    pub summary: &'static str,
    /// The API family (an OpenAPI tag): its error body shape.
    pub family: &'static str,
    /// `application/json`, `application/x-www-form-urlencoded`, or none.
    pub body: Option<&'static str>,
    pub success: u16,
    pub errors: &'static [u16],
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

fn error_schema(family: &str) -> Value {
    match family {
        "jobs" | "health" => {
            json!({"type": "object", "properties": {"error": {"type": "string"}, "field": {"type": "string"}}})
        }
        "listings" => {
            json!({"type": "object", "properties": {"result": {"type": "boolean"}, "errors": {"type": "array", "items": {"type": "string"}}}})
        }
        "questions" => {
            json!({"type": "object", "properties": {"Code": {"type": "integer"}, "message": {"type": "string"}}})
        }
        "tasks" => {
            json!({"type": "object", "properties": {"error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}}})
        }
        _ => {
            json!({"type": "object", "properties": {"status": {"type": "string"}, "data": {"type": "object"}, "message": {"type": "string"}}})
        }
    }
}

pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in public_routes() {
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut responses = Map::new();
        responses.insert(r.success.to_string(), json!({"description": "success", "content": {"application/json": {"schema": {"type": "object"}}}}));
        for code in r.errors.iter().chain(&[401, 429, 503]) {
            responses.insert(
                code.to_string(),
                json!({
                    "description": "error",
                    "content": {"application/json": {"schema": error_schema(r.family)}}
                }),
            );
        }
        let mut op = json!({
            "summary": r.summary,
            "tags": [r.family],
            "parameters": params,
            "responses": responses,
        });
        if let Some(ct) = r.body {
            op["requestBody"] =
                json!({"required": true, "content": {ct: {"schema": {"type": "object"}}}});
        }
        paths
            .entry(r.path.clone())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("object")
            .insert(r.method.to_ascii_lowercase(), op);
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
