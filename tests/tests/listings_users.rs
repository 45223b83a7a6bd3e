//! Seed 002 end to end: the listing and user services on a node other than the edge's, their
//! API on the internal listener exactly as the brief's examples, the public API layer, and a
//! kill -9 of the services' node.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use troupe_tests::{eventually, TestCluster};

const DATA_GROUPS: &[&str] = &["troupe.listing", "troupe.user"];

/// The JSON's skeleton: every value replaced by its type, so two bodies compare by shape.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().take(1).map(shape).collect()),
        Value::String(_) => json!("string"),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!("int"),
        Value::Number(_) => json!("float"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

async fn data_cluster(extra_edge: &[&str]) -> TestCluster {
    let mut c = TestCluster::new();
    c.start_node("n1", &["listing", "user"], &[], &[]);
    c.start_edge(extra_edge);
    c.wait_groups(DATA_GROUPS).await;
    c
}

fn internal(c: &TestCluster, path: &str) -> String {
    format!("http://{}{path}", c.internal_http)
}

async fn form_post(c: &TestCluster, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = c
        .client
        .post(internal(c, path))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn get(c: &TestCluster, url: String) -> (u16, Value) {
    let r = c.client.get(url).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_briefs_examples_answer_with_the_briefs_shapes() {
    let c = data_cluster(&[]).await;
    let listing = json!({"id": 1, "user_id": 1, "listing_type": "rent", "price": 6000,
                         "created_at": 1475820997000000i64, "updated_at": 1475820997000000i64});
    let user = json!({"id": 1, "name": "Suresh Subramaniam",
                      "created_at": 1475820997000000i64, "updated_at": 1475820997000000i64});

    // The brief's curl example, on an empty system (the listing service does not check users).
    let (s, b) = form_post(
        &c,
        "/listings",
        &[
            ("user_id", "1"),
            ("listing_type", "rent"),
            ("price", "4500"),
        ],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        shape(&b),
        shape(&json!({"result": true, "listing": listing}))
    );
    assert_eq!(b["listing"]["id"], 1);
    assert_eq!(b["listing"]["price"], 4500);
    assert_eq!(b["listing"]["created_at"], b["listing"]["updated_at"]);
    let micros = b["listing"]["created_at"].as_i64().unwrap();
    assert!(
        micros > 1_700_000_000_000_000,
        "created_at is in microseconds: {micros}"
    );

    let (s, b) = get(&c, internal(&c, "/listings")).await;
    assert_eq!(s, 200);
    assert_eq!(
        shape(&b),
        shape(&json!({"result": true, "listings": [listing]}))
    );

    let (s, b) = form_post(&c, "/users", &[("name", "Suresh Subramaniam")]).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(shape(&b), shape(&json!({"result": true, "user": user})));
    assert_eq!(b["user"]["name"], "Suresh Subramaniam");
    let (s, b) = get(&c, internal(&c, "/users/1")).await;
    assert_eq!(s, 200);
    assert_eq!(shape(&b), shape(&json!({"result": true, "user": user})));
    let (s, b) = get(&c, internal(&c, "/users")).await;
    assert_eq!(s, 200);
    assert_eq!(shape(&b), shape(&json!({"result": true, "users": [user]})));

    let (s, b) = c
        .post_json("/public-api/users", json!({"name": "Lorel Ipsum"}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(shape(&b), shape(&json!({"user": user})));
    let new_user = b["user"]["id"].as_i64().unwrap();
    let (s, b) = c
        .post_json(
            "/public-api/listings",
            json!({"user_id": new_user, "listing_type": "rent", "price": 6000}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(shape(&b), shape(&json!({"listing": listing})));

    let (s, b) = c.get_json("/public-api/listings").await;
    assert_eq!(s, 200);
    let mut public_listing = listing.clone();
    public_listing.as_object_mut().unwrap().remove("user_id");
    public_listing["user"] = user.clone();
    assert_eq!(
        shape(&b),
        shape(&json!({"result": true, "listings": [public_listing]}))
    );
    assert_eq!(b["listings"][0]["user"]["name"], "Lorel Ipsum");
    assert!(b["listings"][0].get("user_id").is_none());
    // Listing 1 belongs to user 1, which exists now.
    assert_eq!(b["listings"][1]["user"]["name"], "Suresh Subramaniam");
}

/// Messages the user actor has handled, as `/metrics` reports them.
async fn user_actor_messages(c: &TestCluster) -> f64 {
    let text = c
        .client
        .get(c.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = r#"troupe_actor_messages_total{node="n1",actor="user"} "#;
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_public_page_asks_for_all_its_users_in_one_message() {
    let mut c = data_cluster(&[]).await;
    for i in 1..=4 {
        let (s, _) = form_post(&c, "/users", &[("name", &format!("User {i}"))]).await;
        assert_eq!(s, 200);
        let (s, _) = form_post(
            &c,
            "/listings",
            &[
                ("user_id", &i.to_string()),
                ("listing_type", "rent"),
                ("price", "100"),
            ],
        )
        .await;
        assert_eq!(s, 200);
    }
    // A new edge knows no user yet.
    c.kill("edge");
    c.restart("edge");
    c.wait_groups(DATA_GROUPS).await;
    let before = user_actor_messages(&c).await;
    let (s, page) = c.get_json("/public-api/listings").await;
    // The count goes up as the actor finishes a message, a moment after it replied.
    eventually(
        Duration::from_secs(10),
        "the user actor's count",
        || async { user_actor_messages(&c).await > before },
    )
    .await;
    assert_eq!(s, 200, "{page}");
    let names: Vec<&str> = page["listings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["user"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["User 4", "User 3", "User 2", "User 1"]);
    assert_eq!(user_actor_messages(&c).await - before, 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_are_newest_first_and_filters_use_the_user() {
    let c = data_cluster(&[]).await;
    for i in 1..=15 {
        let user = if i % 3 == 0 { "7" } else { "8" };
        let (s, _) = form_post(
            &c,
            "/listings",
            &[
                ("user_id", user),
                ("listing_type", "sale"),
                ("price", &(i * 100).to_string()),
            ],
        )
        .await;
        assert_eq!(s, 200);
    }
    let ids = |b: &Value| -> Vec<i64> {
        b["listings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_i64().unwrap())
            .collect()
    };
    let (_, p1) = get(&c, internal(&c, "/listings")).await;
    assert_eq!(ids(&p1), (6..=15).rev().collect::<Vec<_>>());
    let (_, p2) = get(&c, internal(&c, "/listings?page_num=2")).await;
    assert_eq!(ids(&p2), (1..=5).rev().collect::<Vec<_>>());
    let (s, p3) = get(&c, internal(&c, "/listings?page_num=3")).await;
    assert_eq!((s, ids(&p3)), (200, vec![]));
    let (_, mine) = get(&c, internal(&c, "/listings?user_id=7&page_size=4")).await;
    assert_eq!(ids(&mine), vec![15, 12, 9, 6]);
    let (_, rest) = get(
        &c,
        internal(&c, "/listings?user_id=7&page_size=4&page_num=2"),
    )
    .await;
    assert_eq!(ids(&rest), vec![3]);
    let (_, public) = c
        .get_json("/public-api/listings?user_id=8&page_size=2")
        .await;
    assert_eq!(ids(&public), vec![14, 13]);
    assert_eq!(
        public["listings"][0]["user"],
        Value::Null,
        "user 8 does not exist"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_with_errors_that_name_the_field() {
    let c = data_cluster(&[]).await;
    let errors = |b: &Value| {
        b["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let has = |b: &Value, field: &str| errors(b).iter().any(|e| e.starts_with(field));

    let (s, b) = form_post(
        &c,
        "/listings",
        &[("user_id", "1"), ("listing_type", "rent"), ("price", "0")],
    )
    .await;
    assert_eq!((s, b["result"].clone()), (400, json!(false)));
    assert_eq!(errors(&b), vec!["price must be greater than 0"]);
    let (s, b) = form_post(&c, "/listings", &[("user_id", "x"), ("price", "1.5")]).await;
    assert_eq!(s, 400);
    assert!(has(&b, "user_id") && has(&b, "price"), "{b}");
    let (s, b) = form_post(
        &c,
        "/listings",
        &[("user_id", "1"), ("listing_type", "buy"), ("price", "5")],
    )
    .await;
    assert!(s == 400 && has(&b, "listing_type"), "{b}");
    let (s, b) = form_post(&c, "/listings", &[]).await;
    assert_eq!(s, 400);
    assert_eq!(errors(&b).len(), 3, "{b}");
    for q in [
        "page_num=0",
        "page_size=0",
        "page_size=101",
        "page_num=x",
        "user_id=abc",
    ] {
        let (s, b) = get(&c, internal(&c, &format!("/listings?{q}"))).await;
        let field = q.split('=').next().unwrap();
        assert!(s == 400 && has(&b, field), "{q}: {b}");
    }
    let (s, b) = form_post(&c, "/users", &[("name", "   ")]).await;
    assert!(s == 400 && has(&b, "name"), "{b}");
    let (s, b) = form_post(&c, "/users", &[("name", &"n".repeat(257))]).await;
    assert!(s == 400 && has(&b, "name"), "{b}");
    let (s, b) = get(&c, internal(&c, "/users/42")).await;
    assert_eq!((s, b["result"].clone()), (404, json!(false)));
    let (s, b) = get(&c, internal(&c, "/nowhere")).await;
    assert_eq!((s, b["result"].clone()), (404, json!(false)));
    let r = c
        .client
        .post(internal(&c, "/users"))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    let (s, b) = c
        .post_json(
            "/public-api/listings",
            json!({"user_id": 99, "listing_type": "rent", "price": 5}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(errors(&b), vec!["user_id 99 does not exist"]);
    // Every mistake in one answer, the rules' and the missing user's.
    let (s, b) = c
        .post_json(
            "/public-api/listings",
            json!({"user_id": 99, "listing_type": "x", "price": 0}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        errors(&b),
        vec![
            "listing_type must be rent or sale, not \"x\"",
            "price must be greater than 0",
            "user_id 99 does not exist"
        ]
    );
    let (s, b) = c
        .post_json(
            "/public-api/listings",
            json!({"user_id": "1", "listing_type": 3, "price": 5}),
        )
        .await;
    assert!(
        s == 400 && has(&b, "user_id") && has(&b, "listing_type"),
        "{b}"
    );
    let (s, b) = c.post_json("/public-api/users", json!({})).await;
    assert!(s == 400 && has(&b, "name"), "{b}");
    let r = c
        .client
        .post(c.url("/public-api/users"))
        .form(&[("name", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // The media type must be JSON, not merely begin like it.
    let r = c
        .client
        .post(c.url("/public-api/users"))
        .header("content-type", "application/jsonx")
        .body(r#"{"name": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = c
        .client
        .post(c.url("/public-api/users"))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["result"], false);
    let (s, b) = c.get_json("/public-api/listings?page_size=500").await;
    assert!(s == 400 && has(&b, "page_size"), "{b}");
    // A form is read strictly: no silent pick between repeats, no replacement characters.
    for (body, message) in [
        (
            "user_id=1&user_id=2&listing_type=rent&price=5",
            "user_id is given more than once",
        ),
        ("name=%FF%FE", "name is not valid UTF-8"),
    ] {
        let path = if body.starts_with("name") {
            "/users"
        } else {
            "/listings"
        };
        let r = c
            .client
            .post(internal(&c, path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        // `result` leads, as in the brief's bodies.
        let text = r.text().await.unwrap();
        assert_eq!(
            text,
            format!(r#"{{"result":false,"errors":["{message}"]}}"#)
        );
    }
    // Nothing above was stored.
    let (_, all) = get(&c, internal(&c, "/listings")).await;
    assert_eq!(all["listings"], json!([]));
    let (_, users) = get(&c, internal(&c, "/users")).await;
    assert_eq!(users["users"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_service_node_is_a_503_and_comes_back_with_every_listing() {
    let mut c = data_cluster(&["--call-timeout", "2s"]).await;
    for name in ["Ana", "Bo"] {
        let (s, _) = c
            .post_json("/public-api/users", json!({"name": name}))
            .await;
        assert_eq!(s, 200);
    }
    for i in 0..6 {
        let (s, b) = c
            .post_json(
                "/public-api/listings",
                json!({"user_id": 1 + i % 2, "listing_type": "rent", "price": 1000 + i}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    let (_, before) = c.get_json("/public-api/listings").await;
    assert_eq!(before["listings"].as_array().unwrap().len(), 6);

    let (_, listings_before) = get(&c, internal(&c, "/listings?page_size=100")).await;
    let (_, users_before) = get(&c, internal(&c, "/users?page_size=100")).await;
    assert_eq!(users_before["users"].as_array().unwrap().len(), 2);

    c.kill("n1");
    let start = Instant::now();
    let (s, b) = c.get_json("/public-api/listings").await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["result"], false);
    assert!(b["errors"][0].as_str().unwrap().contains("unavailable"));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "503 took {:?}",
        start.elapsed()
    );
    // The user service's own API answers for its data: down means 503, even for a user the
    // edge has seen.
    let (s, b) = get(&c, internal(&c, "/users/1")).await;
    assert_eq!(s, 503, "{b}");
    // A create with its own mistakes is still a 400 that names them, not a 503 to retry.
    let (s, b) = c
        .post_json(
            "/public-api/listings",
            json!({"user_id": 99, "listing_type": "rent", "price": 0}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["errors"], json!(["price must be greater than 0"]));

    c.restart("n1");
    c.wait_groups(DATA_GROUPS).await;
    let (s, after) = c.get_json("/public-api/listings").await;
    assert_eq!(s, 200);
    assert_eq!(after, before);
    // Read from the restarted stores themselves, not through the edge's cache of users.
    let (_, listings_after) = get(&c, internal(&c, "/listings?page_size=100")).await;
    let (_, users_after) = get(&c, internal(&c, "/users?page_size=100")).await;
    assert_eq!(listings_after, listings_before);
    assert_eq!(users_after, users_before);
    // Ids continue after the restart; none is reused.
    let (_, b) = c
        .post_json("/public-api/users", json!({"name": "Cy"}))
        .await;
    assert_eq!(b["user"]["id"], 3);
    let (_, b) = c
        .post_json(
            "/public-api/listings",
            json!({"user_id": 3, "listing_type": "sale", "price": 9}),
        )
        .await;
    assert_eq!(b["listing"]["id"], 7, "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_service_node_is_a_503_within_the_call_timeout() {
    let c = data_cluster(&["--call-timeout", "1s"]).await;
    let (s, _) = c
        .post_json("/public-api/users", json!({"name": "Ana"}))
        .await;
    assert_eq!(s, 200);
    // A stopped process keeps its TCP connections open: only the call's deadline notices.
    c.freeze("n1").await;
    let start = Instant::now();
    let (s, b) = get(&c, internal(&c, "/users?page_size=5")).await;
    let took = start.elapsed();
    c.send_signal("n1", Signal::SIGCONT);
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["result"], false);
    assert!(
        b["errors"][0]
            .as_str()
            .unwrap()
            .contains("user service unavailable"),
        "{b}"
    );
    assert!(
        took >= Duration::from_secs(1),
        "answered before the deadline: {took:?}"
    );
    assert!(took < Duration::from_secs(4), "503 took {took:?}");
    // Back from the stop, it answers again (once the edge has its session back, if it gave
    // the silent peer up meanwhile).
    eventually(Duration::from_secs(20), "user 1 served again", || async {
        let (s, b) = get(&c, internal(&c, "/users/1")).await;
        (s, b["user"]["name"].clone()) == (200, json!("Ana"))
    })
    .await;
}
