//! The load generator: a fixed number of concurrent loops, each issuing one operation after
//! another (closed loop), measured for a fixed time after a warm-up.
//!
//! Only operations that both start and finish inside the measured window count. Latencies of
//! successful operations go into an HDR histogram in microseconds; failures (non-2xx, transport
//! errors, RPC timeouts) are counted, and the first one is kept to show what went wrong.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::cli::Timing;

/// What one operation reports: `Err` carries a short reason.
pub type Outcome = Result<(), String>;

/// The figures of one measured run.
pub struct LoadResult {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Latencies of successful operations, microseconds.
    pub latency_us: Histogram<u64>,
    pub measured: Duration,
}

impl LoadResult {
    /// Successful operations per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.measured.as_secs_f64()
    }

    /// A latency quantile in milliseconds (`None` when nothing succeeded).
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        (!self.latency_us.is_empty()).then(|| self.latency_us.value_at_quantile(q) as f64 / 1000.0)
    }
}

/// Runs `op(worker, seq)` from `concurrency` loops for `timing`. `seq` is unique across loops.
pub async fn drive<F, Fut>(timing: Timing, concurrency: usize, op: F) -> LoadResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let op = Arc::new(op);
    let from = Instant::now() + timing.warmup;
    let window = Window {
        from,
        until: from + timing.measure,
    };
    let loops: Vec<_> = (0..concurrency)
        .map(|worker| {
            let op = op.clone();
            tokio::spawn(async move { one_loop(worker, concurrency, &*op, window).await })
        })
        .collect();
    let mut total = Tally::new();
    for l in loops {
        total.merge(l.await.expect("load loop panicked"));
    }
    total.into_result(timing.measure)
}

#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    until: Instant,
}

async fn one_loop<F, Fut>(worker: usize, stride: usize, op: &F, window: Window) -> Tally
where
    F: Fn(usize, u64) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let mut tally = Tally::new();
    let mut seq = worker as u64;
    loop {
        let sent = Instant::now();
        if sent >= window.until {
            return tally;
        }
        let outcome = op(worker, seq).await;
        let done = Instant::now();
        seq += stride as u64;
        if sent >= window.from && done <= window.until {
            tally.record(outcome, done - sent);
        }
    }
}

/// Operations counted so far: successes with their latencies, failures with the first reason.
pub struct Tally {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    latency_us: Histogram<u64>,
}

impl Tally {
    pub fn new() -> Self {
        Self {
            ok: 0,
            errors: 0,
            first_error: None,
            // 1 µs to 10 min, 3 significant digits.
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds"),
        }
    }

    pub fn record(&mut self, outcome: Outcome, took: Duration) {
        match outcome {
            Ok(()) => {
                self.ok += 1;
                self.latency_us
                    .saturating_record((took.as_micros() as u64).max(1));
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    /// The figures of a run whose counted operations spanned `measured`.
    pub fn into_result(self, measured: Duration) -> LoadResult {
        LoadResult {
            ok: self.ok,
            errors: self.errors,
            first_error: self.first_error,
            latency_us: self.latency_us,
            measured,
        }
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms have the same bounds");
    }
}
