//! HTTP load against the cluster: one keep-alive client per connection, the requests of each
//! scenario, and the data they need (users and listings created through the public API).

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use reqwest::{Client, RequestBuilder};
use serde_json::{json, Value};
use troupe_actors::time::{micros_to_rfc3339, now_micros};

use crate::cli::Timing;
use crate::load::{self, LoadResult, Outcome};

/// Builds the request numbered `seq` on a connection's client.
pub type BuildRequest = Arc<dyn Fn(&Client, u64) -> RequestBuilder + Send + Sync>;

/// Addresses sent as `X-Forwarded-For` (the edge trusts 127.0.0.1): a few public ones, so the
/// geo-throttle looks each up once and then answers from its cache.
const CLIENT_IPS: [&str; 5] = [
    "8.8.8.8",
    "1.1.1.1",
    "9.9.9.9",
    "208.67.222.222",
    "81.2.69.160",
];

/// `n` clients, each holding its own keep-alive connection.
pub fn clients(n: usize) -> Result<Arc<Vec<Client>>, String> {
    (0..n)
        .map(|_| {
            Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(1)
                .build()
                .map_err(|e| format!("cannot build an HTTP client: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Arc::new)
}

/// One connection per client, each sending the next request as soon as it has read the last
/// response.
pub async fn run(timing: Timing, clients: Arc<Vec<Client>>, build: BuildRequest) -> LoadResult {
    load::drive(timing, clients.len(), move |worker, seq| {
        let request = build(&clients[worker], seq);
        send(request)
    })
    .await
}

/// Sends and reads the whole body; non-2xx is an error carrying status and body.
async fn send(request: RequestBuilder) -> Outcome {
    send_for_body(request).await.map(drop)
}

/// As [`send`], keeping the body of a success; an error starts with the status code.
pub async fn send_for_body(request: RequestBuilder) -> Result<axum::body::Bytes, String> {
    let response = request
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("reading the body: {e}"))?;
    if status.is_success() {
        Ok(body)
    } else {
        let shown = &body[..body.len().min(200)];
        Err(format!("{status}: {}", String::from_utf8_lossy(shown)))
    }
}

pub fn get(url: String) -> BuildRequest {
    Arc::new(move |c, _| c.get(&url))
}

pub fn create_user(base: &str) -> BuildRequest {
    let url = format!("{base}/public-api/users");
    Arc::new(move |c, seq| c.post(&url).json(&user_body(seq)))
}

pub fn create_listing(base: &str, users: Arc<Vec<u64>>) -> BuildRequest {
    let url = format!("{base}/public-api/listings");
    Arc::new(move |c, seq| c.post(&url).json(&listing_body(&users, seq)))
}

pub fn submit_job_and_wait(base: &str) -> BuildRequest {
    let url = format!("{base}/jobs?wait=true");
    Arc::new(move |c, seq| {
        c.post(&url)
            .json(&json!({ "text": format!("bench job {seq}") }))
    })
}

pub fn submit_event(base: &str) -> BuildRequest {
    let url = format!("{base}/event/submit/");
    Arc::new(move |c, seq| {
        c.post(&url)
            .header(
                "x-forwarded-for",
                CLIENT_IPS[seq as usize % CLIENT_IPS.len()],
            )
            .json(&json!({ "name": "EC2 Instance Offline", "status_code": "2" }))
    })
}

pub fn search(base: &str) -> BuildRequest {
    let url = format!("{base}/api/v1/json");
    Arc::new(move |c, _| {
        c.post(&url)
            .json(&json!({ "action": "search", "term": "retry" }))
    })
}

/// Tasks due an hour from now on worker-1 (none comes due during the run).
pub fn create_task(base: &str) -> BuildRequest {
    let url = format!("{base}/api/tasks");
    let start = micros_to_rfc3339(now_micros() + 3_600_000_000);
    Arc::new(move |c, seq| {
        c.post(&url).json(&json!({
            "start": start,
            "title": format!("bench task {seq}"),
            "worker": "worker-1",
            "payload": { "n": seq },
        }))
    })
}

fn user_body(seq: u64) -> Value {
    json!({ "name": format!("Bench User {seq}") })
}

fn listing_body(users: &[u64], seq: u64) -> Value {
    json!({
        "user_id": users[seq as usize % users.len()],
        "listing_type": if seq.is_multiple_of(2) { "rent" } else { "sale" },
        "price": 1000 + (seq % 9000) as i64,
    })
}

/// Creates `users` users and `listings` listings through the public API; returns the user ids.
pub async fn seed(
    client: &Client,
    base: &str,
    users: u64,
    listings: u64,
) -> Result<Arc<Vec<u64>>, String> {
    let ids: Vec<u64> = stream::iter(0..users)
        .map(|seq| create(client, format!("{base}/public-api/users"), user_body(seq)))
        .buffered(8)
        .map_ok(|v| v["user"]["id"].as_u64())
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .collect::<Option<_>>()
        .ok_or("a created user has no id")?;
    let ids = Arc::new(ids);
    stream::iter(0..listings)
        .map(|seq| {
            let url = format!("{base}/public-api/listings");
            create(client, url, listing_body(&ids, seq))
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(ids)
}

/// POSTs a JSON body; the reply's JSON on a 2xx, else an error naming URL, status and body.
pub async fn create(client: &Client, url: String, body: Value) -> Result<Value, String> {
    let response = client
        .post(&url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(value)
    } else {
        Err(format!("POST {url}: {status} {value}"))
    }
}

/// The body of one real listings page, to size the bare axum baseline.
pub async fn fetch_page(client: &Client, url: &str) -> Result<axum::body::Bytes, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: {}", response.status()));
    }
    response
        .bytes()
        .await
        .map_err(|e| format!("GET {url}: {e}"))
}
