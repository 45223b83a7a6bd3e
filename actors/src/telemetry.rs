//! This process's counters for `/metrics`: store commits (latency, batch size), supervisor
//! restarts, and each service actor's messages handled and time busy. The node-info actor
//! hands a snapshot to the edge, which renders it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::wire_type;

/// Upper bounds of the latency buckets, in seconds (Prometheus `le`).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Upper bounds of the batch-size buckets (writes per commit).
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0,
];

/// A Prometheus-style histogram: a count per bucket (not cumulative), a sum and a count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.buckets.len() != bounds.len() {
            self.buckets = vec![0; bounds.len()];
        }
        if let Some(i) = bounds.iter().position(|b| value <= *b) {
            self.buckets[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }
}

/// Commits of one store file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreStats {
    pub commit_seconds: Histogram,
    pub batches_per_commit: Histogram,
    pub failures: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeMetrics {
    pub node: String,
    /// By store file name (e.g. `master.redb`).
    pub stores: BTreeMap<String, StoreStats>,
    /// Restarts by supervised child name.
    pub restarts: BTreeMap<String, u64>,
    /// Jobs, questions and tasks running now, by worker name.
    pub running: BTreeMap<String, i64>,
    /// Load by actor kind (`listing`, `master`, ...).
    pub actors: BTreeMap<String, ActorLoad>,
}

/// Messages an actor handled and the time it spent in its handler. ractor 0.16 cannot tell a
/// mailbox's length; an actor busy close to one second per second is one whose mailbox grows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActorLoad {
    pub messages: u64,
    pub busy_seconds: f64,
}

wire_type!(NodeMetrics);

#[derive(Default)]
struct Registry {
    stores: BTreeMap<String, StoreStats>,
    restarts: BTreeMap<String, u64>,
    running: BTreeMap<String, Arc<AtomicI64>>,
    actors: Vec<&'static LoadCounter>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn with<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
    f(&mut r)
}

pub fn record_commit(store: &str, batches: usize, took: Duration, ok: bool) {
    with(|r| {
        let s = r.stores.entry(store.to_string()).or_default();
        s.commit_seconds
            .observe(LATENCY_BUCKETS, took.as_secs_f64());
        s.batches_per_commit.observe(BATCH_BUCKETS, batches as f64);
        if !ok {
            s.failures += 1;
        }
    });
}

pub fn record_restart(child: &str) {
    with(|r| *r.restarts.entry(child.to_string()).or_default() += 1);
}

/// The gauge of work running on a worker; the worker moves it as work starts and ends.
pub fn running_gauge(worker: &str) -> Arc<AtomicI64> {
    with(|r| r.running.entry(worker.to_string()).or_default().clone())
}

/// One actor kind's load on this node, as a `static` beside the actor: counting a message takes
/// two atomic adds, no lock (it runs for every message the service actors handle).
pub struct LoadCounter {
    actor: &'static str,
    messages: AtomicU64,
    busy_nanos: AtomicU64,
    registered: AtomicBool,
}

impl LoadCounter {
    pub const fn new(actor: &'static str) -> Self {
        Self {
            actor,
            messages: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
            registered: AtomicBool::new(false),
        }
    }

    /// Counts one message and the time until the guard is dropped: the first line of a handler.
    pub fn busy(&'static self) -> Busy {
        if !self.registered.swap(true, Ordering::Relaxed) {
            with(|r| r.actors.push(self));
        }
        Busy {
            counter: self,
            started: Instant::now(),
        }
    }

    fn load(&self) -> ActorLoad {
        ActorLoad {
            messages: self.messages.load(Ordering::Relaxed),
            busy_seconds: self.busy_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

pub struct Busy {
    counter: &'static LoadCounter,
    started: Instant,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let took = self.started.elapsed().as_nanos() as u64;
        self.counter.messages.fetch_add(1, Ordering::Relaxed);
        self.counter.busy_nanos.fetch_add(took, Ordering::Relaxed);
    }
}

pub fn snapshot(node: &str) -> NodeMetrics {
    with(|r| NodeMetrics {
        node: node.to_string(),
        stores: r.stores.clone(),
        restarts: r.restarts.clone(),
        running: r
            .running
            .iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
            .collect(),
        actors: r
            .actors
            .iter()
            .map(|c| (c.actor.to_string(), c.load()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket() {
        let mut h = Histogram::default();
        h.observe(&[1.0, 10.0], 0.5);
        h.observe(&[1.0, 10.0], 5.0);
        h.observe(&[1.0, 10.0], 50.0);
        assert_eq!(h.buckets, vec![1, 1]);
        assert_eq!(h.count, 3);
        assert_eq!(h.sum, 55.5);
    }
}
