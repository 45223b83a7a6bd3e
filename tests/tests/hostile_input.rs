//! Hostile input against every route of a full cluster: random and malformed methods, paths,
//! query strings, headers and bodies. Every answer must be a valid JSON body of the right API
//! family, no 5xx but the 503/504 the design uses, the edge must stay up, and a request that
//! is refused (4xx) must leave every store as it was.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use serde_json::Value;
use troupe_tests::TestCluster;

#[derive(Debug, Clone)]
struct Request {
    /// Sent to the internal listener (the services' own APIs) rather than the public one.
    internal: bool,
    method: &'static str,
    path: String,
    query: String,
    content_type: Option<&'static str>,
    extra_header: Option<(String, String)>,
    body: Vec<u8>,
}

const ROUTES: &[&str] = &[
    "/jobs",
    "/jobs/{}",
    "/public-api/listings",
    "/public-api/users",
    "/public-api/{}",
    "/api/v1/json",
    "/api/v1/{}",
    "/api/tasks",
    "/api/tasks/{}",
    "/api/task/{}/payload",
    "/api/tasks/{}/payload/{}",
    "/event/submit/",
    "/event/submit",
    "/event/fetch/",
    "/event/{}",
    "/{}",
    "/healthz",
    "/readyz",
    "/cluster",
];

/// The services' own APIs, on the internal listener.
const INTERNAL_ROUTES: &[&str] = &["/listings", "/users", "/users/{}", "/listings/{}"];

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("01a205c1-94c4-764d-913c-7cce756c045d".to_string()),
        "[a-z0-9]{0,12}",
        "[%./\\\\a-zA-Z0-9 _~-]{0,40}".prop_map(|s| s.replace(' ', "%20").replace("\\", "%5C")),
        Just("%00".to_string()),
        Just("..%2F..%2Fetc".to_string()),
        Just("%E2%82%AC%F0%9F%98%80".to_string()),
        Just("x".repeat(3000)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,30}".prop_map(Value::String),
        Just(Value::String("x".repeat(70_000))),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("name".to_string()),
                    Just("text".to_string()),
                    Just("action".to_string()),
                    Just("term".to_string()),
                    Just("start".to_string()),
                    Just("worker".to_string()),
                    Just("payload".to_string()),
                    Just("price".to_string()),
                    Just("user_id".to_string()),
                    Just("listing_type".to_string()),
                    Just("status_code".to_string()),
                    Just("status".to_string()),
                    Just("dictionary".to_string()),
                    Just("folder".to_string()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..200),
        Just(b"{\"action\": \"search\", \"term\": ".to_vec()),
        "[a-z_]{1,8}=[^&]{0,20}(&[a-z_]{1,8}=[^&]{0,20}){0,3}".prop_map(String::into_bytes),
        Just(vec![b'a'; 3 * 1024 * 1024]),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    (
        prop::sample::select(vec!["GET", "POST", "PATCH", "DELETE", "PUT"]),
        prop_oneof![
            3 => prop::sample::select(ROUTES.to_vec()).prop_map(|r| (r, false)),
            1 => prop::sample::select(INTERNAL_ROUTES.to_vec()).prop_map(|r| (r, true)),
        ],
        segment(),
        segment(),
        "[a-z_]{0,10}=[^&#]{0,20}(&[a-z_]{1,10}=[^&#]{0,20}){0,4}",
        prop::option::of(prop::sample::select(vec![
            "application/json",
            "application/x-www-form-urlencoded",
            "text/plain",
            "application/json; charset=utf-8",
            "multipart/form-data",
        ])),
        prop::option::of(prop_oneof![
            ("[a-zA-Z-]{1,20}", "[ -~]{0,40}").prop_map(|(k, v)| (k, v)),
            Just((
                "x-forwarded-for".to_string(),
                "not-an-ip, 999.1.1.1".to_string()
            )),
            Just(("x-huge".to_string(), "h".repeat(70 * 1024))),
            Just(("authorization".to_string(), "Bearer nonsense".to_string())),
        ]),
        body(),
    )
        .prop_map(
            |(method, (route, internal), a, b, query, content_type, extra_header, body)| {
                let path = route.replacen("{}", &a, 1).replacen("{}", &b, 1);
                Request {
                    internal,
                    method,
                    path,
                    query,
                    content_type,
                    extra_header,
                    body,
                }
            },
        )
}

/// Each family's error shape, by the path's owner.
fn check_shape(path: &str, status: u16, body: &Value) -> Result<(), String> {
    if status < 400 {
        return Ok(());
    }
    let ok = if path.starts_with("/api/tasks")
        || path.starts_with("/api/task/")
        || path == "/api/task"
    {
        body["error"]["code"].is_string() && body["error"]["message"].is_string()
    } else if path.starts_with("/api/") {
        body["Code"] == status && body["message"].is_string()
    } else if path.starts_with("/event") {
        (body["status"] == "fail" && body["data"].is_object())
            || (body["status"] == "error" && body["message"].is_string())
    } else if ["/public-api", "/listings", "/users"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        body["result"] == false && body["errors"].is_array()
    } else {
        body["error"].is_string() || body["status"].is_string()
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{status} body of the wrong family for {path}: {body}"
        ))
    }
}

/// How much each store holds, as its public API tells.
async fn snapshot(c: &TestCluster) -> Vec<Value> {
    let internal = |p: &str| format!("http://{}{p}", c.internal_http);
    let mut out = Vec::new();
    for url in [
        internal("/listings?page_size=100"),
        internal("/users?page_size=100"),
        c.url("/api/tasks?page_size=100"),
        c.url("/event/fetch/?page_size=100"),
    ] {
        let v: Value = c
            .client
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        out.push(v);
    }
    out
}

/// A client of its own for hostile requests: a connection the edge closes after refusing an
/// upload must not go back to a pool the well-behaved snapshot requests share.
fn hostile_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn send(
    c: &TestCluster,
    client: &reqwest::Client,
    r: &Request,
) -> Result<(u16, Value), String> {
    let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap();
    let target = if r.query.is_empty() {
        r.path.clone()
    } else {
        format!("{}?{}", r.path, r.query)
    };
    let url = if r.internal {
        format!("http://{}{target}", c.internal_http)
    } else {
        c.url(&target)
    };
    let mut req = client.request(method, url).body(r.body.clone());
    if let Some(ct) = r.content_type {
        req = req.header("content-type", ct);
    }
    if let Some((k, v)) = &r.extra_header {
        req = req.header(k.as_str(), v.as_str());
    }
    let response = match req.send().await {
        Ok(resp) => resp,
        // reqwest refused to build it (e.g. an invalid header): nothing reached the edge.
        Err(e) if e.is_builder() => return Ok((0, Value::Null)),
        // An upload over the body limit may be answered, and the connection closed, before the
        // client has finished sending it: the edge refused to read it, as it should.
        Err(e) if r.body.len() > 2 * 1024 * 1024 && e.is_request() => return Ok((0, Value::Null)),
        Err(e) => return Err(format!("the edge did not answer: {e}")),
    };
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|_| {
        format!(
            "{status} body is not JSON: {:?}",
            String::from_utf8_lossy(&bytes)
        )
    })?;
    Ok((status, body))
}

#[test]
fn hostile_requests_get_well_formed_refusals_and_change_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut c = TestCluster::new();
    c.start_all_in_one();
    rt.block_on(c.wait_ready());
    let cases = std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(150);
    let mut runner = TestRunner::new(troupe_tests::proptest_config(cases));
    let hostile = hostile_client();
    let result = runner.run(&request(), |r| {
        rt.block_on(async {
            let before = snapshot(&c).await;
            let (status, body) = send(&c, &hostile, &r).await.map_err(TestCaseError::fail)?;
            if status == 0 {
                return Ok(());
            }
            prop_assert!(
                status < 500 || status == 503 || status == 504,
                "{} {} -> {status} {body}",
                r.method,
                r.path
            );
            check_shape(&r.path, status, &body).map_err(TestCaseError::fail)?;
            if (400..500).contains(&status) {
                let after = snapshot(&c).await;
                prop_assert_eq!(
                    before,
                    after,
                    "refused request changed stored data: {:?}",
                    r.path
                );
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let alive = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), c.get_json("/healthz")).await
    });
    assert_eq!(alive.expect("edge answers").0, 200);
}
