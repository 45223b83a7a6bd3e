//! `GET /metrics` over a real cluster: requests by route template, store commits and batch
//! sizes from the nodes, geo upstream calls, in the Prometheus text format.

use std::time::Duration;

use serde_json::json;
use troupe_tests::{eventually, TestCluster};

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_commits_and_geo_calls() {
    let mut c = TestCluster::new();
    c.start_node("n1", &["master", "worker"], &["w"], &[]);
    c.start_node(
        "n2",
        &["events", "geo"],
        &[],
        &["--geo-url", "http://127.0.0.1:9"],
    );
    c.start_edge(&[]);
    c.wait_groups(&[
        "troupe.master",
        "troupe.worker",
        "troupe.events",
        "troupe.geo",
    ])
    .await;
    for i in 0..3 {
        let (s, _) = c
            .post_json("/jobs?wait=true", json!({"text": format!("m{i}")}))
            .await;
        assert_eq!(s, 200);
    }
    let (s, _) = c
        .get_json("/jobs/01a205c1-94c4-764d-913c-7cce756c045d")
        .await;
    assert_eq!(s, 404);
    let (s, b) = c
        .post_json("/event/submit/", json!({"name": "local"}))
        .await;
    assert_eq!(s, 202);
    let event = format!("/event/{}", b["data"]["task_id"].as_str().unwrap());
    eventually(Duration::from_secs(10), "event located", || async {
        let (s, b) = c.get_json(&event).await;
        s == 200 && b["data"]["geo_status"] != "pending"
    })
    .await;

    let r = c.client.get(c.url("/metrics")).send().await.unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    let jobs = r#"troupe_http_requests_total{route="/jobs",method="POST",status="200"}"#;
    assert_eq!(value(&text, jobs), Some(3.0), "{text}");
    let missing = r#"troupe_http_requests_total{route="/jobs/{id}",method="GET",status="404"}"#;
    assert_eq!(value(&text, missing), Some(1.0));
    let commits = r#"troupe_store_commit_seconds_count{node="n1",store="master.redb"}"#;
    assert!(
        value(&text, commits).unwrap() >= 3.0,
        "a commit per job at least"
    );
    let batches = r#"troupe_store_batches_per_commit_sum{node="n1",store="master.redb"}"#;
    assert!(
        value(&text, batches).unwrap() >= 6.0,
        "submit, dispatch and outcome writes"
    );
    assert_eq!(
        value(&text, r#"troupe_node_reporting{node="n2"}"#),
        Some(1.0)
    );
    // Each job: submit, await and the worker's report through the master; a run on the worker.
    let handled = |actor: &str, node: &str| {
        value(
            &text,
            &format!(r#"troupe_actor_messages_total{{node="{node}",actor="{actor}"}}"#),
        )
        .unwrap_or(0.0)
    };
    assert!(handled("master", "n1") >= 9.0, "{text}");
    assert!(handled("worker", "n1") >= 3.0, "{text}");
    assert!(handled("events", "n2") >= 1.0, "{text}");
    let busy = value(
        &text,
        r#"troupe_actor_busy_seconds_total{node="n1",actor="master"}"#,
    )
    .unwrap();
    assert!(busy > 0.0 && busy < 10.0, "{busy}");
    // A loopback event costs no upstream call.
    assert_eq!(value(&text, "troupe_geo_upstream_calls_total"), Some(0.0));
    assert!(value(&text, "troupe_geo_local_total").unwrap() >= 1.0);
    // Every histogram ends with its +Inf bucket equal to its count.
    let inf = r#"troupe_http_request_duration_seconds_bucket{route="/jobs",le="+Inf"}"#;
    assert_eq!(value(&text, inf), Some(3.0));
}
