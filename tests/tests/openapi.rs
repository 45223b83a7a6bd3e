//! `/openapi.json` describes the public listener: it is a valid-looking OpenAPI 3 document,
//! every operation it lists is answered by a real edge (never "no route", never 405), every
//! query parameter it documents is accepted with a value its schema allows, and every example
//! body it gives is accepted.

use serde_json::{json, Value};
use troupe_tests::TestCluster;

/// A value `schema` allows: its example, default or first enum value, else the smallest
/// plain one of its type.
fn valid_value(schema: &Value) -> Value {
    for key in ["example", "default"] {
        if let Some(v) = schema.get(key) {
            return v.clone();
        }
    }
    if let Some(first) = schema["enum"].get(0) {
        return first.clone();
    }
    match schema["type"].as_str() {
        Some("integer") => {
            let min = schema["minimum"].as_i64().unwrap_or(i64::MIN);
            let max = schema["maximum"].as_i64().unwrap_or(i64::MAX);
            json!(1.clamp(min, max))
        }
        Some("boolean") => json!(false),
        Some("string") if schema["format"] == "date-time" => json!("2099-01-01T00:00:00Z"),
        Some("string") if schema["format"] == "uuid" => {
            json!("01a205c1-94c4-764d-913c-7cce756c045d")
        }
        Some("string") => json!("x"),
        other => panic!("no valid value for a {other:?} in {schema}"),
    }
}

fn as_query_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_operation_exists() {
    let mut c = TestCluster::new();
    c.start_all_in_one();
    c.wait_ready().await;
    let (s, doc) = c.get_json("/openapi.json").await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{} paths", paths.len());
    let mut operations = 0;
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            assert!(op["responses"].is_object() && op["summary"].is_string());
            let concrete = path
                .replace("{id}", "01a205c1-94c4-764d-913c-7cce756c045d")
                .replace("{task_id}", "01a205c1-94c4-764d-913c-7cce756c045d")
                .replace("{key}", "k");
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = c
                .client
                .request(method.clone(), c.url(&concrete))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            assert_ne!(status, 405, "{method} {path} is documented but not routed");
            assert!(
                !(status == 404 && body.to_string().contains("no route for")),
                "{method} {path} is documented but not routed: {body}"
            );
            operations += 1;
        }
    }
    assert!(operations >= 25, "{operations} operations");

    // The listing example names user 1: make it exist.
    let (s, created) = c
        .post_json("/public-api/users", json!({"name": "Lorel Ipsum"}))
        .await;
    assert_eq!(s, 200, "{created}");
    let user_id = created["user"]["id"].clone();

    // Each operation with documented query parameters, all of them given a value their schema
    // allows (and the example body, when the operation takes one), answers with a success.
    let mut with_query = 0;
    let mut examples = 0;
    for (path, ops) in paths {
        if path.contains('{') {
            continue;
        }
        for (method, op) in ops.as_object().unwrap() {
            let query: Vec<(String, String)> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "query")
                .map(|p| {
                    (
                        p["name"].as_str().unwrap().to_string(),
                        as_query_text(&valid_value(&p["schema"])),
                    )
                })
                .collect();
            let example = op["requestBody"]["content"]["application/json"]["schema"]["example"]
                .clone()
                .as_object()
                .cloned()
                .map(|mut e| {
                    if e.contains_key("user_id") {
                        e.insert("user_id".into(), user_id.clone());
                    }
                    Value::Object(e)
                });
            if query.is_empty() && example.is_none() {
                continue;
            }
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut request = c.client.request(method.clone(), c.url(path)).query(&query);
            if let Some(body) = &example {
                request = request.json(body);
                examples += 1;
            }
            if !query.is_empty() {
                with_query += 1;
            }
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            assert!(
                (200..300).contains(&status),
                "{method} {path} with {query:?} and {example:?}: {status} {body}"
            );
            let documented = &op["responses"][status.to_string()];
            assert!(
                documented.is_object(),
                "{method} {path}: {status} is not documented"
            );
        }
    }
    assert!(
        with_query >= 6,
        "{with_query} operations with query parameters"
    );
    assert!(examples >= 6, "{examples} operations with an example body");
}
