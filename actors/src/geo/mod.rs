//! The geo-throttle: the one owner of the cluster's budget for the external geolocation API.
//!
//! Asked for an address, it answers from, in order: the address itself (private, loopback and
//! reserved ones have no location and never cost a call), its cache (per address, with a TTL),
//! a lookup already in flight for the same address (callers join it), or a new lookup. New
//! lookups go to a pump task that starts at most `rate` calls in any second, holds every call
//! while the upstream's 429 `period_remaining` runs, keeps a bounded number of calls in flight,
//! times each out just above the upstream's worst hiccup, and retries timeouts, 429s and 5xx
//! with capped exponential backoff and jitter (each retry spends budget too).

pub mod budget;
pub mod cache;
pub mod upstream;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::{pg, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::{mpsc, Mutex, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use budget::Budget;
use cache::Cache;
use upstream::{GeoApi, UpstreamError};

use crate::groups;
use crate::protocol::geo::{Fetched, GeoAnswer, GeoFailure, GeoMsg, GeoStats};

#[derive(Debug, Clone)]
pub struct GeoConfig {
    pub url: String,
    pub api: GeoApi,
    /// Upstream calls started per second, at most.
    pub rate: u32,
    /// Per call; just above the upstream's 5 s hiccups.
    pub timeout: Duration,
    pub max_in_flight: usize,
    pub cache_ttl: Duration,
    /// Calls per lookup, first one included.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Cached addresses kept at most; the oldest go first.
    pub cache_size: usize,
}

impl GeoConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            api: GeoApi::GeoipApi,
            rate: 5,
            timeout: Duration::from_millis(6000),
            max_in_flight: 8,
            cache_ttl: Duration::from_secs(3600),
            max_attempts: 5,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            cache_size: 100_000,
        }
    }
}

pub struct GeoState {
    cache: Cache,
    waiting: HashMap<IpAddr, Vec<RpcReplyPort<GeoAnswer>>>,
    to_pump: mpsc::UnboundedSender<IpAddr>,
    pump: JoinHandle<()>,
    stats: GeoStats,
}

pub struct GeoThrottle;

/// Messages handled and time busy, for `/metrics`.
static LOAD: crate::telemetry::LoadCounter = crate::telemetry::LoadCounter::new("geo");

impl Actor for GeoThrottle {
    type Msg = GeoMsg;
    type State = GeoState;
    type Arguments = GeoConfig;

    async fn pre_start(
        &self,
        myself: ActorRef<GeoMsg>,
        config: GeoConfig,
    ) -> Result<GeoState, ActorProcessingErr> {
        let (to_pump, lookups) = mpsc::unbounded_channel();
        let cache = Cache::new(config.cache_ttl, config.cache_size);
        let pump = tokio::spawn(pump(config, lookups, myself.clone()));
        pg::join(groups::GEO.into(), vec![myself.get_cell()]);
        Ok(GeoState {
            cache,
            waiting: HashMap::new(),
            to_pump,
            pump,
            stats: GeoStats::default(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<GeoMsg>,
        msg: GeoMsg,
        state: &mut GeoState,
    ) -> Result<(), ActorProcessingErr> {
        let _busy = LOAD.busy();
        match msg {
            GeoMsg::Locate(ip, reply) => locate(state, &ip, reply),
            GeoMsg::Stats(reply) => {
                let _ = reply.send(state.stats.clone());
            }
            GeoMsg::Fetched(f) => {
                state.stats.upstream_calls += f.calls;
                state.stats.rate_limited += f.rate_limited;
                let Ok(ip) = f.ip.parse::<IpAddr>() else {
                    return Ok(());
                };
                let keep = !matches!(&f.answer.0, Err(e) if e.retryable);
                if keep {
                    state.cache.put(ip, f.answer.clone(), Instant::now());
                }
                for waiter in state.waiting.remove(&ip).unwrap_or_default() {
                    let _ = waiter.send(f.answer.clone());
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<GeoMsg>,
        state: &mut GeoState,
    ) -> Result<(), ActorProcessingErr> {
        state.pump.abort();
        Ok(())
    }
}

fn locate(state: &mut GeoState, ip: &str, reply: RpcReplyPort<GeoAnswer>) {
    let addr = match ip.trim().parse::<IpAddr>() {
        Ok(a) => a,
        Err(_) => {
            state.stats.local += 1;
            let _ = reply.send(GeoAnswer(Err(GeoFailure {
                reason: format!("{ip:?} is not an IP address"),
                retryable: false,
            })));
            return;
        }
    };
    if let Some(kind) = upstream::has_no_location(addr) {
        state.stats.local += 1;
        let _ = reply.send(GeoAnswer(Err(GeoFailure {
            reason: format!("{addr} is {kind}: it has no location"),
            retryable: false,
        })));
        return;
    }
    if let Some(answer) = state.cache.get(addr, Instant::now()) {
        state.stats.cache_hits += 1;
        let _ = reply.send(answer);
        return;
    }
    match state.waiting.get_mut(&addr) {
        Some(waiters) => {
            state.stats.joined += 1;
            waiters.push(reply);
        }
        None => {
            state.waiting.insert(addr, vec![reply]);
            let _ = state.to_pump.send(addr);
        }
    }
}

/// Starts lookups as the budget allows, each in its own task.
async fn pump(
    config: GeoConfig,
    mut lookups: mpsc::UnboundedReceiver<IpAddr>,
    geo: ActorRef<GeoMsg>,
) {
    let client = match reqwest::Client::builder().timeout(config.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot build the geolocation client: {e}");
            return;
        }
    };
    let config = Arc::new(config);
    let budget = Arc::new(Mutex::new(Budget::new(config.rate, Instant::now())));
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    // Lookups live in this set so that aborting the pump (the throttle stopping) ends them too:
    // a restarted throttle's fresh budget only covers calls its predecessor has stopped making.
    let mut lookups_running = JoinSet::new();
    loop {
        tokio::select! {
            next = lookups.recv() => {
                let Some(ip) = next else { return };
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    return;
                };
                let (client, config, budget, geo) =
                    (client.clone(), config.clone(), budget.clone(), geo.clone());
                lookups_running.spawn(async move {
                    let fetched = fetch(&client, &config, &budget, ip).await;
                    drop(permit);
                    let _ = geo.cast(GeoMsg::Fetched(fetched));
                });
            }
            Some(_) = lookups_running.join_next(), if !lookups_running.is_empty() => {}
        }
    }
}

async fn take_turn(budget: &Mutex<Budget>) {
    loop {
        let wait_until = match budget.lock().await.try_take(Instant::now()) {
            Ok(()) => return,
            Err(at) => at,
        };
        tokio::time::sleep_until(wait_until).await;
    }
}

/// One lookup: calls within the budget, retrying what may succeed later.
async fn fetch(
    client: &reqwest::Client,
    config: &GeoConfig,
    budget: &Mutex<Budget>,
    ip: IpAddr,
) -> Fetched {
    let mut calls = 0;
    let mut rate_limited = 0;
    let mut backoff = config.backoff_base;
    let mut last = String::new();
    for attempt in 1..=config.max_attempts {
        take_turn(budget).await;
        calls += 1;
        match upstream::lookup(client, &config.url, config.api, ip).await {
            Ok(geo) => {
                return Fetched {
                    ip: ip.to_string(),
                    answer: GeoAnswer(Ok(geo)),
                    calls,
                    rate_limited,
                }
            }
            Err(UpstreamError::Definitive(reason)) => {
                return Fetched {
                    ip: ip.to_string(),
                    answer: GeoAnswer(Err(GeoFailure {
                        reason,
                        retryable: false,
                    })),
                    calls,
                    rate_limited,
                }
            }
            Err(UpstreamError::RateLimited(wait)) => {
                rate_limited += 1;
                tracing::warn!(%ip, ?wait, "geolocation API says 429; pausing every call");
                budget.lock().await.pause(Instant::now(), wait);
                last = format!("rate limited (told to wait {wait:?})");
            }
            Err(UpstreamError::Transient(reason)) => {
                tracing::debug!(%ip, attempt, %reason, "geolocation call failed; backing off");
                last = reason;
            }
        }
        if attempt < config.max_attempts {
            // Full jitter: a random wait up to the backoff keeps retries from lining up.
            let jittered = backoff.mul_f64(0.5 + fastrand::f64() / 2.0);
            tokio::time::sleep(jittered).await;
            backoff = (backoff * 2).min(config.backoff_max);
        }
    }
    Fetched {
        ip: ip.to_string(),
        answer: GeoAnswer(Err(GeoFailure {
            reason: format!("gave up after {calls} calls: {last}"),
            retryable: true,
        })),
        calls,
        rate_limited,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Many lookups wanting a turn at random moments, under paused tokio time: the turns
        /// the real waiting loop grants never put more than `rate` calls in any second.
        #[test]
        fn turns_keep_the_rate_in_every_second(
            rate in 1u32..7,
            arrivals in proptest::collection::vec(0u64..3000, 1..60),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
            let granted = rt.block_on(async {
                let budget = Arc::new(Mutex::new(Budget::new(rate, Instant::now())));
                let t0 = Instant::now();
                let tasks: Vec<_> = arrivals
                    .into_iter()
                    .map(|ms| {
                        let budget = budget.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                            take_turn(&budget).await;
                            Instant::now().duration_since(t0)
                        })
                    })
                    .collect();
                let mut granted = Vec::new();
                for t in tasks {
                    granted.push(t.await.unwrap());
                }
                granted.sort();
                granted
            });
            for (i, t) in granted.iter().enumerate() {
                let within = granted[i..].iter().take_while(|u| **u - *t < Duration::from_secs(1)).count();
                prop_assert!(within <= rate as usize, "{} turns within 1 s of {:?}", within, t);
            }
        }

        /// We are told a higher rate than the upstream allows, so it answers 429 with
        /// `period_remaining` (counting rejected calls, as the real API does). Lookups that
        /// take their turns through the real waiting loop and pause on each 429: no call lands
        /// inside an announced wait, no second holds more than our rate, and every lookup ends.
        #[test]
        fn a_429_wait_holds_every_call_and_the_rate_still_holds(
            rate in 2u32..10,
            upstream_rate in 1usize..5,
            arrivals in proptest::collection::vec(0u64..3000, 1..40),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
            let (calls, waits) = rt.block_on(async {
                let budget = Arc::new(Mutex::new(Budget::new(rate, Instant::now())));
                let upstream = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::<Instant>::new()));
                let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
                let waits = Arc::new(std::sync::Mutex::new(Vec::new()));
                let t0 = Instant::now();
                let tasks: Vec<_> = arrivals
                    .into_iter()
                    .map(|ms| {
                        let (budget, upstream, calls, waits) =
                            (budget.clone(), upstream.clone(), calls.clone(), waits.clone());
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                            loop {
                                take_turn(&budget).await;
                                let now = Instant::now();
                                calls.lock().unwrap().push(now - t0);
                                // The upstream's sliding second, as the stub keeps it.
                                let period_remaining = {
                                    let mut seen = upstream.lock().unwrap();
                                    while seen.front().is_some_and(|t| now - *t >= Duration::from_secs(1)) {
                                        seen.pop_front();
                                    }
                                    seen.push_back(now);
                                    (seen.len() > upstream_rate).then(|| {
                                        seen[seen.len() - upstream_rate] + Duration::from_secs(1) - now
                                    })
                                };
                                match period_remaining {
                                    None => return,
                                    Some(wait) => {
                                        waits.lock().unwrap().push((now - t0, wait));
                                        budget.lock().await.pause(now, wait);
                                    }
                                }
                            }
                        })
                    })
                    .collect();
                let all = async {
                    for t in tasks {
                        t.await.unwrap();
                    }
                };
                tokio::time::timeout(Duration::from_secs(3600), all)
                    .await
                    .expect("every lookup ends");
                let calls = calls.lock().unwrap().clone();
                let waits = waits.lock().unwrap().clone();
                (calls, waits)
            });
            for (told_at, wait) in &waits {
                let early = calls.iter().find(|c| *told_at < **c && **c < *told_at + *wait);
                prop_assert!(early.is_none(), "a call at {:?} inside the wait told at {:?} for {:?}", early, told_at, wait);
            }
            let mut calls = calls;
            calls.sort();
            for (i, t) in calls.iter().enumerate() {
                let within = calls[i..].iter().take_while(|u| **u - *t < Duration::from_secs(1)).count();
                prop_assert!(within <= rate as usize, "{} calls within 1 s of {:?}", within, t);
            }
        }
    }
}
