//! The public listener's protections with a real edge: bearer tokens, per-client rate limits,
//! header and body limits, each refusal in the error shape of the route's API family.

use serde_json::{json, Value};
use troupe_tests::TestCluster;

async fn get(
    c: &TestCluster,
    path: &str,
    token: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = c.client.get(c.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.json().await.unwrap_or(Value::Null), headers)
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_guard_the_public_api_but_not_health() {
    let mut c = TestCluster::new();
    let file = c.dir.path().join("tokens");
    std::fs::write(&file, "# ops\nfrom-file\n\n").unwrap();
    c.start_node(
        "n1",
        &["listing", "user", "scheduler", "events", "geo"],
        &[],
        &[],
    );
    c.start_edge(&[
        "--api-token",
        "alpha,beta",
        "--api-token-file",
        file.to_str().unwrap(),
    ]);
    c.token = Some("beta".into());
    c.wait_groups(&["troupe.listing", "troupe.user", "troupe.scheduler"])
        .await;

    for (path, family) in [
        ("/public-api/listings", "result"),
        ("/api/tasks", "error"),
        ("/event/fetch/", "status"),
        ("/api/v1/json", "Code"),
        ("/jobs/x", "error"),
    ] {
        let (s, b, h) = get(&c, path, None).await;
        assert_eq!(s, 401, "{path}: {b}");
        assert!(
            !b[family].is_null(),
            "{path} answers in its family's shape: {b}"
        );
        assert_eq!(h["www-authenticate"], "Bearer");
        let (s, _, _) = get(&c, path, Some("wrong")).await;
        assert_eq!(s, 401, "{path}");
    }
    for token in ["alpha", "beta", "from-file"] {
        let (s, b, _) = get(&c, "/public-api/listings", Some(token)).await;
        assert_eq!(s, 200, "{token}: {b}");
    }
    for open in ["/healthz", "/readyz"] {
        let (s, _, _) = get(&c, open, None).await;
        assert_ne!(s, 401, "{open} stays open");
    }
    // The internal listener is not guarded by the public tokens.
    let r = c
        .client
        .get(format!("http://{}/users", c.internal_http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!c.log("edge").contains("alpha"), "tokens are not logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_client_gets_its_own_rate_limit() {
    let mut c = TestCluster::new();
    c.start_node("n1", &["listing", "user"], &[], &[]);
    c.start_edge(&["--rate-limit", "1,3", "--api-token", "t1,t2,t3"]);
    // The harness polls as a third client, so its requests do not spend t1's budget.
    c.token = Some("t3".into());
    c.wait_groups(&["troupe.listing", "troupe.user"]).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(get(&c, "/public-api/listings", Some("t1")).await.0);
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "the burst is allowed");
    let (s, b, h) = get(&c, "/public-api/listings", Some("t1")).await;
    assert_eq!(s, 429);
    assert_eq!(b["result"], false);
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Another token is another client.
    assert_eq!(get(&c, "/public-api/listings", Some("t2")).await.0, 200);
    // Probes are never limited.
    for _ in 0..5 {
        assert_eq!(get(&c, "/healthz", None).await.0, 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_headers_and_bodies_get_json_refusals() {
    let mut c = TestCluster::new();
    c.start_node("n1", &["scheduler", "listing", "user"], &[], &[]);
    c.start_edge(&[]);
    c.wait_groups(&["troupe.scheduler"]).await;
    let r = c
        .client
        .get(c.url("/api/tasks"))
        .header("x-padding", "p".repeat(70 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        b["error"]["code"], "internal",
        "431 in the tasks family: {b}"
    );
    // A client of its own: the edge may close this connection after refusing the upload.
    let once = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let r = once
        .post(c.url("/public-api/users"))
        .header("content-type", "application/json")
        .body(format!("{{\"name\": \"{}\"}}", "n".repeat(3 * 1024 * 1024)))
        .send()
        .await;
    // The edge may answer before the upload is complete; when the answer arrives, it is JSON.
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["result"], false, "{b}");
    }
    let (s, b) = c.post_json("/api/tasks", json!({"start": "x"})).await;
    assert_eq!((s, b["error"]["field"].clone()), (400, json!("start")));
    let r = c.client.put(c.url("/api/tasks")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_past_the_in_flight_limit_are_shed_at_once() {
    let mut c = TestCluster::new();
    // A master and no worker: `wait=true` jobs stay in flight until their wait runs out.
    c.start_node("n1", &["master"], &[], &[]);
    c.start_edge(&["--max-in-flight", "2", "--wait-timeout", "30s"]);
    c.wait_groups(&["troupe.master"]).await;
    let waiting: Vec<_> = (0..2)
        .map(|i| {
            let req = c
                .client
                .post(c.url("/jobs?wait=true"))
                .json(&json!({"text": format!("w{i}")}));
            tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    troupe_tests::eventually(
        std::time::Duration::from_secs(10),
        "two in flight",
        || async {
            // Probes count too, so the limit shows as 2 others plus this one refused.
            let r = c.client.get(c.url("/healthz")).send().await.unwrap();
            r.status() == 503
        },
    )
    .await;
    let (s, b) = c.post_json("/jobs", json!({"text": "one too many"})).await;
    assert_eq!(s, 503, "{b}");
    assert!(b["error"]
        .as_str()
        .unwrap()
        .contains("limit of requests in flight"));
    for w in waiting {
        w.abort();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn request_ids_time_limits_and_the_access_log() {
    let mut c = TestCluster::new();
    // A master and no worker: a `wait=true` job outlasts the request time limit.
    c.start_node("n1", &["master"], &[], &[]);
    c.start_edge(&["--request-timeout", "2s", "--wait-timeout", "30s"]);
    c.wait_groups(&["troupe.master"]).await;

    let r = c
        .client
        .post(c.url("/jobs?wait=true"))
        .header("x-request-id", "caller-chose-this")
        .json(&json!({"text": "too slow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 408);
    assert_eq!(r.headers()["x-request-id"], "caller-chose-this");
    let b: Value = r.json().await.unwrap();
    assert!(
        b["error"].as_str().unwrap().contains("took too long"),
        "408 in the jobs family: {b}"
    );

    // Without one, the edge makes an id, echoes it and logs it with the request.
    let r = c.client.get(c.url("/jobs/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let made = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
    troupe_tests::eventually(
        std::time::Duration::from_secs(10),
        "both requests in the access log",
        || async {
            let log = c.log("edge");
            let line = |id: &str| {
                log.lines()
                    .find(|l| l.contains(id) && l.contains("access_log"))
                    .map(str::to_string)
            };
            matches!(
                (line("caller-chose-this"), line(&made)),
                (Some(slow), Some(missing))
                    if slow.contains("status=408") && slow.contains("path=/jobs")
                        && missing.contains("status=404") && missing.contains("method=GET")
            )
        },
    )
    .await;
}
