//! `/metrics` in the Prometheus text format: this edge's requests by route and status, and
//! what the cluster reports: store commits and supervisor restarts from every node, and the
//! geo-throttle's upstream calls.
//!
//! Metrics from other nodes come through their actors at scrape time (each call bounded by the
//! call timeout); a node that does not answer simply has no series this time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use troupe_actors::telemetry::{Histogram, NodeMetrics, BATCH_BUCKETS, LATENCY_BUCKETS};

/// Requests this edge answered.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    inner: Mutex<HttpInner>,
}

#[derive(Debug, Default)]
struct HttpInner {
    counts: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
}

impl HttpMetrics {
    pub fn record(&self, route: &str, method: &str, status: u16, took: Duration) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *m.counts
            .entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
        m.latency
            .entry(route.to_string())
            .or_default()
            .observe(LATENCY_BUCKETS, took.as_secs_f64());
    }
}

/// The geo-throttle's counters, when it answered.
pub struct GeoCounters {
    pub upstream_calls: u64,
    pub rate_limited: u64,
    pub cache_hits: u64,
    pub joined: u64,
    pub local: u64,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    inner.join(",")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, bounds: &[f64], h: &Histogram, base: &str) {
    let sep = if base.is_empty() { "" } else { "," };
    let mut cumulative = 0;
    for (i, bound) in bounds.iter().enumerate() {
        cumulative += h.buckets.get(i).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "{name}_bucket{{{base}{sep}le=\"{bound}\"}} {cumulative}"
        );
    }
    let _ = writeln!(out, "{name}_bucket{{{base}{sep}le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{base}}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{{base}}} {}", h.count);
}

pub fn render(http: &HttpMetrics, nodes: &[NodeMetrics], geo: Option<GeoCounters>) -> String {
    let mut out = String::new();
    {
        let m = http.inner.lock().unwrap_or_else(|e| e.into_inner());
        header(
            &mut out,
            "troupe_http_requests_total",
            "counter",
            "HTTP requests answered by this edge.",
        );
        for ((route, method, status), n) in &m.counts {
            let status = status.to_string();
            let l = labels(&[("route", route), ("method", method), ("status", &status)]);
            let _ = writeln!(out, "troupe_http_requests_total{{{l}}} {n}");
        }
        header(
            &mut out,
            "troupe_http_request_duration_seconds",
            "histogram",
            "Time to answer, by route.",
        );
        for (route, h) in &m.latency {
            histogram(
                &mut out,
                "troupe_http_request_duration_seconds",
                LATENCY_BUCKETS,
                h,
                &labels(&[("route", route)]),
            );
        }
    }
    header(
        &mut out,
        "troupe_store_commit_seconds",
        "histogram",
        "Time of one group commit (one fsync), by node and store.",
    );
    for n in nodes {
        for (store, s) in &n.stores {
            histogram(
                &mut out,
                "troupe_store_commit_seconds",
                LATENCY_BUCKETS,
                &s.commit_seconds,
                &labels(&[("node", &n.node), ("store", store)]),
            );
        }
    }
    header(
        &mut out,
        "troupe_store_batches_per_commit",
        "histogram",
        "Write batches carried by one commit.",
    );
    for n in nodes {
        for (store, s) in &n.stores {
            histogram(
                &mut out,
                "troupe_store_batches_per_commit",
                BATCH_BUCKETS,
                &s.batches_per_commit,
                &labels(&[("node", &n.node), ("store", store)]),
            );
        }
    }
    header(
        &mut out,
        "troupe_store_commit_failures_total",
        "counter",
        "Group commits that failed.",
    );
    for n in nodes {
        for (store, s) in &n.stores {
            let _ = writeln!(
                out,
                "troupe_store_commit_failures_total{{{}}} {}",
                labels(&[("node", &n.node), ("store", store)]),
                s.failures
            );
        }
    }
    header(
        &mut out,
        "troupe_actor_restarts_total",
        "counter",
        "Restarts of supervised actors.",
    );
    for n in nodes {
        for (child, count) in &n.restarts {
            let _ = writeln!(
                out,
                "troupe_actor_restarts_total{{{}}} {count}",
                labels(&[("node", &n.node), ("actor", child)])
            );
        }
    }
    header(
        &mut out,
        "troupe_actor_messages_total",
        "counter",
        "Messages the service actors of a kind handled on a node.",
    );
    for n in nodes {
        for (actor, load) in &n.actors {
            let l = labels(&[("node", &n.node), ("actor", actor)]);
            let _ = writeln!(out, "troupe_actor_messages_total{{{l}}} {}", load.messages);
        }
    }
    header(
        &mut out,
        "troupe_actor_busy_seconds_total",
        "counter",
        "Time the service actors of a kind spent handling messages on a node; a rate near 1 per \
         actor means its mailbox grows (ractor cannot report a mailbox's length).",
    );
    for n in nodes {
        for (actor, load) in &n.actors {
            let l = labels(&[("node", &n.node), ("actor", actor)]);
            let _ = writeln!(
                out,
                "troupe_actor_busy_seconds_total{{{l}}} {}",
                load.busy_seconds
            );
        }
    }
    header(
        &mut out,
        "troupe_worker_running",
        "gauge",
        "Jobs, questions and tasks running on a worker.",
    );
    for n in nodes {
        for (worker, count) in &n.running {
            let l = labels(&[("node", &n.node), ("worker", worker)]);
            let _ = writeln!(out, "troupe_worker_running{{{l}}} {count}");
        }
    }
    header(
        &mut out,
        "troupe_node_reporting",
        "gauge",
        "Nodes that answered this scrape.",
    );
    for n in nodes {
        let _ = writeln!(
            out,
            "troupe_node_reporting{{{}}} 1",
            labels(&[("node", &n.node)])
        );
    }
    if let Some(g) = geo {
        for (name, help, v) in [
            (
                "troupe_geo_upstream_calls_total",
                "Calls made to the geolocation API, retries included.",
                g.upstream_calls,
            ),
            (
                "troupe_geo_rate_limited_total",
                "Calls the geolocation API answered 429.",
                g.rate_limited,
            ),
            (
                "troupe_geo_cache_hits_total",
                "Lookups answered from the cache.",
                g.cache_hits,
            ),
            (
                "troupe_geo_joined_total",
                "Lookups that joined one in flight for the same address.",
                g.joined,
            ),
            (
                "troupe_geo_local_total",
                "Lookups answered without the API (private, reserved).",
                g.local,
            ),
        ] {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {v}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let http = HttpMetrics::default();
        http.record("/jobs", "POST", 202, Duration::from_micros(300));
        http.record("/jobs", "POST", 202, Duration::from_millis(30));
        let text = render(&http, &[], None);
        assert!(text.contains(
            "troupe_http_requests_total{route=\"/jobs\",method=\"POST\",status=\"202\"} 2"
        ));
        assert!(text.contains(
            "troupe_http_request_duration_seconds_bucket{route=\"/jobs\",le=\"0.0005\"} 1"
        ));
        assert!(text.contains(
            "troupe_http_request_duration_seconds_bucket{route=\"/jobs\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains("troupe_http_request_duration_seconds_count{route=\"/jobs\"} 2"));
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
