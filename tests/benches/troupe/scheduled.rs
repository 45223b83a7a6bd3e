//! Scheduled tasks under light load: how long after its `start` a task has run on its worker
//! and is recorded SUCCEEDED.
//!
//! The scheduler issue asks for a task to fire within 100 ms of its start under light load.
//! Firing is not visible from outside, but finishing is: `updated_at - start` of a SUCCEEDED
//! echo task covers the timer, the dispatch through the master to the worker on another node,
//! the (empty) run, the outcome's way back and its commit. It bounds the firing delay from above.

use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use reqwest::Client;
use serde_json::{json, Value};
use troupe_actors::scheduler::start_time;
use troupe_actors::time::now_micros;

use crate::http;
use crate::load::{LoadResult, Tally};

/// Tasks created, and their starts: ten a second, the first two seconds after they are made.
const TASKS: u64 = 50;
const SPACING_MICROS: i64 = 100_000;
const LEAD_MICROS: i64 = 2_000_000;
/// How long after its start a task may take to settle before it counts as lost.
const SETTLE_WITHIN: Duration = Duration::from_secs(30);

/// Creates the tasks, waits for each to settle, and returns the start-to-done latencies.
pub async fn run(client: &Client, base: &str) -> Result<LoadResult, String> {
    let first = now_micros() + LEAD_MICROS;
    let tasks: Vec<(String, i64)> = stream::iter(0..TASKS)
        .map(|n| {
            let start = first + n as i64 * SPACING_MICROS;
            create(client, base, n, start)
        })
        .buffered(8)
        .try_collect()
        .await?;
    if now_micros() >= first {
        return Err("creating the tasks took longer than their lead time".into());
    }
    let mut tally = Tally::new();
    for (id, start) in tasks {
        let (outcome, done) = settled(client, base, &id, start).await;
        let late = Duration::from_micros(done.saturating_sub(start).max(0) as u64);
        tally.record(outcome, late);
    }
    let spread = Duration::from_micros((TASKS as i64 * SPACING_MICROS) as u64);
    Ok(tally.into_result(spread))
}

async fn create(client: &Client, base: &str, n: u64, start: i64) -> Result<(String, i64), String> {
    let body = json!({
        "start": start_time::render(start),
        "title": format!("bench timer {n}"),
        "worker": "worker-1",
        "payload": { "n": n },
    });
    let task = http::create(client, format!("{base}/api/tasks"), body).await?;
    match task["id"].as_str() {
        Some(id) => Ok((id.to_string(), start)),
        None => Err(format!("POST /api/tasks: no id in {task}")),
    }
}

/// Polls a task until it is SUCCEEDED (`Ok`) or FAILED or late past [`SETTLE_WITHIN`]; returns
/// the outcome and its last `updated_at`.
async fn settled(client: &Client, base: &str, id: &str, start: i64) -> (Result<(), String>, i64) {
    let deadline = start + SETTLE_WITHIN.as_micros() as i64;
    loop {
        let v = task(client, &format!("{base}/api/tasks/{id}")).await;
        let updated = v["updated_at"]
            .as_str()
            .and_then(|t| start_time::parse(t).ok())
            .unwrap_or(0);
        match v["status"].as_str() {
            Some("SUCCEEDED") => return (Ok(()), updated),
            Some("FAILED") => return (Err(format!("task {id} failed: {}", v["error"])), updated),
            _ if now_micros() > deadline => {
                return (Err(format!("task {id} not done in time: {v}")), updated)
            }
            // A benchmark may poll: a task's end is not an event it can subscribe to.
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn task(client: &Client, url: &str) -> Value {
    match client.get(url).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}
