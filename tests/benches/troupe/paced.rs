//! The events scenario of the geolocation issue: a steady 200 events/s while the stand-in API
//! stalls 10% of its calls by up to 5 s, then the politeness figures of the run.
//!
//! The load is open-loop: each request leaves at its own time on a fixed schedule, whatever the
//! earlier ones are doing, and its latency counts from that time. A closed loop would slow down
//! with a stalled server and so hide the very stalls this scenario is about.
//!
//! After the load it waits until every accepted event is located or failed (the geo-throttle
//! works through them at the API's 5 calls/s), then reads the stand-in's `/stats`: the most
//! calls it saw in any one-second window and how many it had to refuse with a 429.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use reqwest::Client;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::cluster::Cluster;
use crate::http;
use crate::load::{LoadResult, Tally};
use crate::report::Target;

/// Events per second sent, as the issue sets it.
pub const RATE: u32 = 200;
/// What the stand-in does: 10% of calls answered up to 5 s late, at most 5 calls per second.
pub const STUB_ARGS: [&str; 6] = ["--hiccup-prob", "0.1", "--hiccup-max", "5s", "--rate", "5"];
const STUB_RATE: u64 = 5;
/// Distinct public addresses the events come from: enough that the API is called throughout
/// the run (100 lookups take 20 s at 5/s), few enough that every event settles soon after.
const ADDRESSES: u32 = 100;
/// How long to wait for the last events to be located after the load ends.
const SETTLE_WITHIN: Duration = Duration::from_secs(180);

/// What became of the events sent.
pub struct Outcome {
    pub load: LoadResult,
    /// Responses with a 5xx status (a subset of the load's errors).
    pub server_errors: u64,
    /// `geo_status` counts once settled, `failed` only when it carries a reason.
    pub settled: BTreeMap<String, u64>,
    /// Events still pending when [`SETTLE_WITHIN`] ran out.
    pub unsettled: u64,
    pub stub_stats: Value,
}

/// Sends `RATE` events per second for `warmup + measure` (only the measured part counts), then
/// waits for every accepted event to settle.
pub async fn run(
    cluster: &Cluster,
    warmup: Duration,
    measure: Duration,
) -> Result<Outcome, String> {
    let client = Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let url = cluster.url("/event/submit/");
    let interval = Duration::from_secs_f64(1.0 / f64::from(RATE));
    let total = ((warmup + measure).as_secs_f64() * f64::from(RATE)).round() as u64;
    let start = Instant::now();
    let measured_from = start + warmup;
    let mut sent = JoinSet::new();
    for seq in 0..total {
        let due = start + interval.mul_f64(seq as f64);
        tokio::time::sleep_until(due.into()).await;
        let request = client
            .post(&url)
            .header("x-forwarded-for", address(seq))
            .json(&json!({ "name": format!("paced event {seq}"), "status_code": 200 }));
        sent.spawn(async move {
            let reply = http::send_for_body(request).await;
            (due, Instant::now(), reply)
        });
    }
    let mut tally = Tally::new();
    let (mut ids, mut server_errors) = (Vec::new(), 0);
    while let Some(joined) = sent.join_next().await {
        let (due, done, reply) = joined.map_err(|e| format!("a request task failed: {e}"))?;
        let outcome = match reply {
            Ok(body) => task_id(&body).map(|id| ids.push(id)),
            Err(e) => {
                server_errors += u64::from(e.starts_with('5'));
                Err(e)
            }
        };
        if due >= measured_from {
            tally.record(outcome, done - due);
        }
    }
    let load = tally.into_result(measure);
    let (settled, unsettled) = settle(cluster, &client, ids).await;
    let stub_stats = cluster.stub_stats(&client).await?;
    Ok(Outcome {
        load,
        server_errors,
        settled,
        unsettled,
        stub_stats,
    })
}

/// A public address out of `ADDRESSES`, spread over the stand-in's table.
fn address(seq: u64) -> String {
    let n = (seq % u64::from(ADDRESSES)) as u8;
    format!("81.{}.{}.7", 10 + n / 10, n)
}

fn task_id(body: &[u8]) -> Result<String, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("reply not JSON: {e}"))?;
    v["data"]["task_id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no task_id in {v}"))
}

/// Polls the events still pending until none is or the deadline passes; counts the outcomes.
async fn settle(
    cluster: &Cluster,
    client: &Client,
    ids: Vec<String>,
) -> (BTreeMap<String, u64>, u64) {
    let deadline = Instant::now() + SETTLE_WITHIN;
    let mut settled = BTreeMap::new();
    let mut pending = ids;
    while !pending.is_empty() && Instant::now() < deadline {
        let states: Vec<(String, Option<String>)> = stream::iter(pending)
            .map(|id| async move {
                let state = geo_state(client, &cluster.url(&format!("/event/{id}"))).await;
                (id, state)
            })
            .buffer_unordered(32)
            .collect()
            .await;
        pending = Vec::new();
        for (id, state) in states {
            match state {
                Some(s) => *settled.entry(s).or_insert(0) += 1,
                None => pending.push(id),
            }
        }
        if !pending.is_empty() {
            // A benchmark may poll: the geo-throttle drains at 5 calls/s, nothing to await.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    (settled, pending.len() as u64)
}

/// `Some("done")`, `Some("failed")` (with a reason) or `Some("failed without a reason")` once
/// the event is settled; `None` while it is pending or could not be read.
async fn geo_state(client: &Client, url: &str) -> Option<String> {
    let v: Value = client.get(url).send().await.ok()?.json().await.ok()?;
    let data = &v["data"];
    match data["geo_status"].as_str()? {
        "pending" => None,
        "failed" if data["geo_error"].as_str().is_none_or(str::is_empty) => {
            Some("failed without a reason".into())
        }
        other => Some(other.to_string()),
    }
}

/// The targets for this scenario, checked against one run.
pub fn targets(o: &Outcome) -> Vec<Target> {
    let name = format!("events at {RATE}/s, API stalling 10% of calls");
    let p99 = o.load.quantile_ms(0.99);
    let max_window = o.stub_stats["max_in_window"].as_u64();
    let rejected = o.stub_stats["rejected"].as_u64();
    let settled_ok = o.unsettled == 0 && !o.settled.contains_key("failed without a reason");
    let summary: Vec<String> = o.settled.iter().map(|(k, n)| format!("{n} {k}")).collect();
    vec![
        Target {
            target: format!("{name}: p99 <= 20 ms"),
            measured: p99.map_or("-".into(), |p| format!("{p:.2} ms")),
            met: p99.map(|p| p <= 20.0),
        },
        Target {
            target: format!("{name}: zero 5xx"),
            measured: format!(
                "{} 5xx of {} sent",
                o.server_errors,
                o.load.ok + o.load.errors
            ),
            met: Some(o.server_errors == 0),
        },
        Target {
            target: format!("API never sees more than {STUB_RATE} calls in a second"),
            measured: max_window.map_or("-".into(), |m| format!("at most {m}")),
            met: max_window.map(|m| m <= STUB_RATE),
        },
        Target {
            target: "API never answers us 429".into(),
            measured: rejected.map_or("-".into(), |r| format!("{r} refused")),
            met: rejected.map(|r| r == 0),
        },
        Target {
            target: "every event ends done, or failed with a reason".into(),
            measured: format!("{}; {} still pending", summary.join(", "), o.unsettled),
            met: Some(settled_ok),
        },
    ]
}
