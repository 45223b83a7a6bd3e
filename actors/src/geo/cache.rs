//! Answers per address, kept for a TTL and bounded in size (the oldest entry goes first).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::protocol::geo::GeoAnswer;

#[derive(Debug)]
pub struct Cache {
    entries: HashMap<IpAddr, (GeoAnswer, Instant)>,
    ttl: Duration,
    capacity: usize,
}

impl Cache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// The answer for `ip` if it has not expired at `now`.
    pub fn get(&mut self, ip: IpAddr, now: Instant) -> Option<GeoAnswer> {
        match self.entries.get(&ip) {
            Some((answer, expires)) if *expires > now => Some(answer.clone()),
            Some(_) => {
                self.entries.remove(&ip);
                None
            }
            None => None,
        }
    }

    pub fn put(&mut self, ip: IpAddr, answer: GeoAnswer, now: Instant) {
        if !self.entries.contains_key(&ip) && self.entries.len() >= self.capacity {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(ip, _)| *ip)
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(ip, (answer, now + self.ttl));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::protocol::geo::{GeoAnswer, GeoFailure};

    #[derive(Debug, Clone)]
    enum Step {
        Put(u8),
        Get(u8),
        Advance(u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u8..6).prop_map(Step::Put),
            (0u8..6).prop_map(Step::Get),
            (0u64..1500).prop_map(Step::Advance),
        ]
    }

    fn answer(tag: usize) -> GeoAnswer {
        GeoAnswer(Err(GeoFailure {
            reason: tag.to_string(),
            retryable: false,
        }))
    }

    proptest! {
        /// Driven by paused tokio time: an entry is served exactly until its TTL has passed,
        /// the newest put wins, and the cache never holds more than its capacity.
        #[test]
        fn entries_live_for_their_ttl_within_capacity(steps in proptest::collection::vec(step(), 1..80)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
            rt.block_on(async {
                let ttl = Duration::from_millis(1000);
                let mut cache = Cache::new(ttl, 4);
                // The model: what was put last, and when.
                let mut model: HashMap<u8, (usize, Instant)> = HashMap::new();
                for (i, s) in steps.into_iter().enumerate() {
                    let now = Instant::now();
                    match s {
                        Step::Put(k) => {
                            cache.put(IpAddr::from([10, 0, 0, k]), answer(i), now);
                            model.insert(k, (i, now));
                        }
                        Step::Get(k) => {
                            let got = cache.get(IpAddr::from([10, 0, 0, k]), now);
                            match model.get(&k) {
                                // Possibly evicted for room; if present it must be the latest.
                                Some((tag, at)) if now < *at + ttl => {
                                    if let Some(g) = got {
                                        prop_assert_eq!(g, answer(*tag));
                                    }
                                }
                                _ => prop_assert!(got.is_none(), "expired entry served"),
                            }
                        }
                        Step::Advance(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
                    }
                    prop_assert!(cache.len() <= 4);
                }
                Ok(())
            })?;
        }
    }
}
