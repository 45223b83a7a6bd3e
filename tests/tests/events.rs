//! Events with geolocation (seed 001) against the stand-in geolocation API, with real
//! processes. Politeness is checked by counting at the stub (`/stats`), never by timing.

use std::time::Duration;

use serde_json::{json, Value};
use troupe_tests::{eventually_some, free_port, troupe_bin, TestCluster};

/// A `troupe geoip-stub` for one test, stopped on drop.
struct Stub {
    child: std::process::Child,
    url: String,
}

impl Stub {
    fn start(args: &[&str]) -> Self {
        let port = free_port();
        let child = std::process::Command::new(troupe_bin())
            .args(["geoip-stub", "--http", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn stats(&self) -> Value {
        let client = reqwest::Client::new();
        let url = format!("{}/stats", self.url);
        let answered = eventually_some(Duration::from_secs(10), "the stub's stats", || async {
            client.get(&url).send().await.ok()
        })
        .await;
        answered.json().await.unwrap()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn events_cluster(stub: &Stub, geo_args: &[&str]) -> TestCluster {
    let mut c = TestCluster::new();
    let mut args = vec!["--geo-url", stub.url.as_str()];
    args.extend_from_slice(geo_args);
    c.start_node("n1", &["events", "geo"], &[], &args);
    c.start_edge(&["--trusted-proxies", "127.0.0.1"]);
    c
}

async fn submit(c: &TestCluster, ip: &str, body: Value) -> (u16, Value) {
    let r = c
        .client
        .post(c.url("/event/submit/"))
        .header("x-forwarded-for", ip)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn wait_settled(c: &TestCluster, ids: &[String], within: Duration) -> Vec<Value> {
    let mut settled = Vec::new();
    for id in ids {
        let url = format!("/event/{id}");
        let event = eventually_some(within, &format!("event {id} settled"), || async {
            // A 503 while a restarted node rejoins is an answer to retry, not a settled event.
            let (s, b) = c.get_json(&url).await;
            (s == 200 && b["data"]["geo_status"] != "pending").then(|| b["data"].clone())
        })
        .await;
        settled.push(event);
    }
    settled
}

#[tokio::test(flavor = "multi_thread")]
async fn events_are_located_politely_once_per_address() {
    let stub = Stub::start(&["--rate", "5"]);
    let c = events_cluster(&stub, &[]);
    c.wait_groups(&["troupe.events", "troupe.geo"]).await;
    // 12 distinct public addresses, 4 events each, plus private ones that cost nothing.
    let ips: Vec<String> = (1..=12).map(|i| format!("81.{i}.69.{}", 100 + i)).collect();
    let mut ids = Vec::new();
    for round in 0..4 {
        for ip in &ips {
            let (s, b) = submit(
                &c,
                ip,
                json!({"name": format!("e{round}"), "status_code": round}),
            )
            .await;
            assert_eq!(s, 202, "{b}");
            assert_eq!(b["status"], "success");
            ids.push(b["data"]["task_id"].as_str().unwrap().to_string());
        }
    }
    let (s, private) = submit(&c, "10.9.8.7", json!({"name": "inside"})).await;
    assert_eq!(s, 202);
    ids.push(private["data"]["task_id"].as_str().unwrap().to_string());

    let settled = wait_settled(&c, &ids, Duration::from_secs(60)).await;
    let stats = stub.stats().await;
    assert!(
        stats["max_in_window"].as_u64().unwrap() <= 5,
        "over the rate: {stats}"
    );
    assert_eq!(stats["rejected"], 0, "a 429 caused by us: {stats}");
    assert!(
        stats["served"].as_u64().unwrap() <= ips.len() as u64,
        "{stats}"
    );
    for e in &settled[..48] {
        assert_eq!(e["geo_status"], "done", "{e}");
        assert!(
            e["geo"]["city"].is_string() && e["geo"]["iso_code"].is_string(),
            "{e}"
        );
    }
    let inside = settled.last().unwrap();
    assert_eq!(inside["geo_status"], "failed");
    assert!(inside["geo_error"].as_str().unwrap().contains("private"));
    assert_eq!(inside["ip"], "10.9.8.7");
    // The same address always lands in the same place.
    let first = &settled[0];
    let again = &settled[12];
    assert_eq!(first["ip"], again["ip"]);
    assert_eq!(first["geo"], again["geo"]);

    // Fetch, newest first, filtered from the geo indexes.
    let iso = first["geo"]["iso_code"].as_str().unwrap();
    let city = first["geo"]["city"].as_str().unwrap();
    let (s, by_iso) = c
        .get_json(&format!("/event/fetch/?iso_code={}", iso.to_lowercase()))
        .await;
    assert_eq!(s, 200);
    let expected = settled
        .iter()
        .filter(|e| e["geo"]["iso_code"] == iso)
        .count();
    assert_eq!(by_iso["data"]["total"], expected);
    let (_, by_city) = c
        .get_json(&format!(
            "/event/fetch?city_name={}&status_code=0&page_size=100",
            urlencode(city)
        ))
        .await;
    for e in by_city["data"]["events"].as_array().unwrap() {
        assert_eq!(
            (e["geo"]["city"].as_str(), e["status_code"].as_i64()),
            (Some(city), Some(0))
        );
    }
    let (_, page) = c.get_json("/event/fetch/?page_size=5&page_num=2").await;
    let times: Vec<&str> = page["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["created_at"].as_str().unwrap())
        .collect();
    assert_eq!(times.len(), 5);
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    assert_eq!(page["data"]["total"], 49);
    let (_, none) = c.get_json("/event/fetch/?dateto=2000-01-01").await;
    assert_eq!(none["data"]["total"], 0);
    let (_, today) = c
        .get_json(&format!(
            "/event/fetch/?datefrom={}",
            &first["created_at"].as_str().unwrap()[..10]
        ))
        .await;
    assert_eq!(today["data"]["total"], 49);
}

#[tokio::test(flavor = "multi_thread")]
async fn place_filters_match_names_in_any_case_beyond_ascii() {
    let stub = Stub::start(&[]);
    let c = events_cluster(&stub, &[]);
    c.wait_groups(&["troupe.events", "troupe.geo"]).await;
    // The stub's built-in table places this address in São Paulo.
    let (_, b) = submit(&c, "85.19.3.3", json!({"name": "sp", "status_code": 7})).await;
    let id = b["data"]["task_id"].as_str().unwrap().to_string();
    let e = &wait_settled(&c, std::slice::from_ref(&id), Duration::from_secs(20)).await[0];
    assert_eq!(e["geo"]["city"], "São Paulo", "{e}");
    for city in ["SÃO PAULO", "são paulo"] {
        for also in ["", "&status_code=7", "&iso_code=br"] {
            let url = format!("/event/fetch/?city_name={}{also}", urlencode(city));
            let (s, page) = c.get_json(&url).await;
            assert_eq!(
                (s, page["data"]["total"].clone()),
                (200, json!(1)),
                "{url}: {page}"
            );
            assert_eq!(page["data"]["events"][0]["task_id"], id.as_str(), "{url}");
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_briefs_validation_cases() {
    let stub = Stub::start(&[]);
    let c = events_cluster(&stub, &[]);
    c.wait_groups(&["troupe.events"]).await;
    let (s, b) = submit(
        &c,
        "8.8.8.8",
        json!({"name": "EC2 Instance Offline", "status_code": "2"}),
    )
    .await;
    assert_eq!((s, b["status"].clone()), (202, json!("success")));
    let (s, _) = submit(&c, "8.8.8.8", json!({})).await;
    assert_eq!(s, 202, "partial data is allowed");
    let (s, _) = submit(&c, "8.8.8.8", json!({"status_code": 503})).await;
    assert_eq!(s, 202);
    let (s, _) = submit(&c, "8.8.8.8", json!({"name": "x".repeat(120)})).await;
    assert_eq!(s, 202);
    for (body, field) in [
        (json!({"name": "x".repeat(121)}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"status_code": "two"}), "status_code"),
        (json!({"status_code": 2.5}), "status_code"),
        (json!([1, 2]), "body"),
    ] {
        let (s, b) = submit(&c, "8.8.8.8", body.clone()).await;
        assert_eq!(
            (s, b["status"].clone()),
            (400, json!("fail")),
            "{body}: {b}"
        );
        assert!(b["data"][field].is_string(), "{body}: {b}");
    }
    let r = c
        .client
        .post(c.url("/event/submit"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["status"], "fail", "{b}");
    assert_eq!(b.as_object().unwrap().len(), 2, "only status and data: {b}");
    let why = b["data"]["body"].as_str().unwrap_or_default();
    assert!(
        why.contains("Content-Type") && why.contains("text/plain"),
        "{b}"
    );
    let r = c
        .client
        .post(c.url("/event/submit"))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        (b["status"].clone(), b["data"]["body"].is_string()),
        (json!("fail"), true)
    );
    let (s, b) = c
        .get_json("/event/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!((s, b["status"].clone()), (404, json!("fail")));
    let (s, b) = c.get_json("/event/fetch/?page_size=0").await;
    assert_eq!((s, b["status"].clone()), (400, json!("fail")));
    let (s, b) = c.get_json("/event/fetch/?datefrom=someday").await;
    assert!(s == 400 && b["data"]["datefrom"].is_string(), "{b}");
    // Without a trusted proxy the header is ignored: the TCP peer is the event's address.
    let mut plain = TestCluster::new();
    plain.start_node(
        "n1",
        &["events", "geo"],
        &[],
        &["--geo-url", stub.url.as_str()],
    );
    plain.start_edge(&[]);
    plain.wait_groups(&["troupe.events"]).await;
    let (_, b) = submit(&plain, "8.8.8.8", json!({"name": "spoof"})).await;
    let id = b["data"]["task_id"].as_str().unwrap();
    let (_, e) = plain.get_json(&format!("/event/{id}")).await;
    assert_eq!(e["data"]["ip"], "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_freegeoip_shape_maps_to_the_same_record() {
    let stub = Stub::start(&[]);
    let c = events_cluster(&stub, &["--geo-api", "freegeoip"]);
    c.wait_groups(&["troupe.events", "troupe.geo"]).await;
    let (_, b) = submit(&c, "8.8.8.8", json!({"name": "free"})).await;
    let id = b["data"]["task_id"].as_str().unwrap().to_string();
    let e = &wait_settled(&c, &[id], Duration::from_secs(20)).await[0];
    assert_eq!(e["geo_status"], "done", "{e}");
    let info: Value = reqwest::get(format!("{}/info?ip=8.8.8.8", stub.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(e["geo"]["city"], info["city"]);
    assert_eq!(e["geo"]["iso_code"], info["country"]["iso_code"]);
    assert_eq!(e["geo"]["time_zone"], info["location"]["time_zone"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_is_honoured_and_every_event_still_ends_located() {
    // The upstream allows 2 calls a second; we are told 10 (a misconfiguration): its 429s and
    // their period_remaining must slow us down rather than be retried into. One call in
    // flight, so no call can already be on its way when a 429 arrives.
    let stub = Stub::start(&["--rate", "2"]);
    let c = events_cluster(
        &stub,
        &[
            "--geo-rate",
            "10",
            "--geo-attempts",
            "20",
            "--geo-max-in-flight",
            "1",
        ],
    );
    c.wait_groups(&["troupe.events", "troupe.geo"]).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let (_, b) = submit(&c, &format!("82.{i}.1.1"), json!({"name": "busy"})).await;
        ids.push(b["data"]["task_id"].as_str().unwrap().to_string());
    }
    let settled = wait_settled(&c, &ids, Duration::from_secs(60)).await;
    assert!(
        settled.iter().all(|e| e["geo_status"] == "done"),
        "{settled:?}"
    );
    let stats = stub.stats().await;
    assert!(
        stats["rejected"].as_u64().unwrap() > 0,
        "the stub never had to say 429: {stats}"
    );
    assert_eq!(
        stats["early"], 0,
        "a call came before period_remaining ran out: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn events_the_upstream_keeps_failing_on_end_failed_with_the_reason() {
    // Nothing listens there: every call fails in a way worth retrying, forever.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let mut c = TestCluster::new();
    c.start_node(
        "n1",
        &["events", "geo"],
        &[],
        &["--geo-url", nowhere.as_str(), "--geo-attempts", "1"],
    );
    c.start_edge(&["--trusted-proxies", "127.0.0.1"]);
    c.wait_groups(&["troupe.events", "troupe.geo"]).await;
    let mut ids = Vec::new();
    for ip in ["84.1.1.1", "84.1.1.1", "84.2.2.2"] {
        let (s, b) = submit(&c, ip, json!({"name": "unlucky"})).await;
        assert_eq!(s, 202, "{b}");
        ids.push(b["data"]["task_id"].as_str().unwrap().to_string());
    }
    for e in wait_settled(&c, &ids, Duration::from_secs(60)).await {
        assert_eq!(e["geo_status"], "failed", "{e}");
        let reason = e["geo_error"].as_str().unwrap_or_default();
        assert!(
            reason.contains("rounds") && reason.contains("cannot reach the geolocation API"),
            "{e}"
        );
        assert!(e["geo"].is_null(), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn events_accepted_before_a_kill_are_located_after_restart() {
    // A stub so slow to answer that nothing is located before the kill. The node comes back
    // against the same stub: its calls just before the kill still count in the stub's window,
    // so a restarted throttle that spends its whole budget at once is caught here.
    let stub = Stub::start(&["--hiccup-prob", "1", "--hiccup-max", "5s", "--seed", "7"]);
    let mut c = events_cluster(&stub, &[]);
    c.wait_groups(&["troupe.events", "troupe.geo"]).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let (s, b) = submit(&c, &format!("83.{i}.2.2"), json!({"name": "before"})).await;
        assert_eq!(s, 202);
        ids.push(b["data"]["task_id"].as_str().unwrap().to_string());
    }
    // Killed only once it has spent its whole budget: the restart lands inside that window.
    eventually_some(Duration::from_secs(10), "the first calls", || async {
        (stub.stats().await["requests"].as_u64() >= Some(5)).then_some(())
    })
    .await;
    let mut pending = 0;
    for id in &ids {
        pending +=
            (c.get_json(&format!("/event/{id}")).await.1["data"]["geo_status"] == "pending") as u64;
    }
    c.kill("n1");
    c.restart("n1");
    c.wait_groups(&["troupe.events", "troupe.geo"]).await;
    let settled = wait_settled(&c, &ids, Duration::from_secs(60)).await;
    assert!(
        settled.iter().all(|e| e["geo_status"] == "done"),
        "{settled:?}"
    );
    assert!(
        pending > 0,
        "the slow stub answered everything before the kill"
    );
    let stats = stub.stats().await;
    assert!(
        stats["max_in_window"].as_u64().unwrap() <= 5,
        "over the rate across the restart: {stats}"
    );
    assert_eq!(stats["rejected"], 0, "a 429 caused by us: {stats}");
}
