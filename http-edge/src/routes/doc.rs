//! The vocabulary the routes modules describe their operations in: [`RouteDoc`] (method, path,
//! parameters, bodies, statuses) and the JSON Schema pieces they share ([`schema`]). Each routes
//! module builds its `docs()` from these beside its `router()`.
//!
//! Owns the description of one operation, not the document: `crate::openapi` gathers the
//! routes' `docs()` and assembles `/openapi.json` (ids, the statuses every route answers, the
//! families' error bodies). This module sits below the routes and must import none of them.

use serde_json::{json, Value};

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
    /// Error statuses of this route; those any route can answer are added by
    /// `crate::openapi::document`.
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
