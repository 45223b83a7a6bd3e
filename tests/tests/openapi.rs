//! `/openapi.json` describes the public listener: it is a valid-looking OpenAPI 3 document,
//! and every operation it lists is answered by a real edge (never "no route", never 405).

use serde_json::Value;
use troupe_tests::TestCluster;

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
}
