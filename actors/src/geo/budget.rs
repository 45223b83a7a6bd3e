//! The upstream call budget: at most `rate` call starts in any sliding window, and a pause
//! after the upstream says 429.
//!
//! A sliding log rather than a token bucket (e.g. governor's GCRA): a bucket lets a burst and
//! the calls right after it land within one second, which the upstream counts as too many.
//! The window is a little longer than a second so that jitter between our start and the
//! upstream's arrival time cannot squeeze `rate + 1` calls into its one-second window.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

pub const WINDOW: Duration = Duration::from_millis(1050);

#[derive(Debug)]
pub struct Budget {
    rate: usize,
    starts: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

impl Budget {
    pub fn new(rate: u32) -> Self {
        Self {
            rate: rate.max(1) as usize,
            starts: VecDeque::new(),
            paused_until: None,
        }
    }

    /// Takes a slot now if one is free; otherwise says when to ask again.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Instant> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(until);
            }
            self.paused_until = None;
        }
        while self
            .starts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            self.starts.pop_front();
        }
        if self.starts.len() < self.rate {
            self.starts.push_back(now);
            Ok(())
        } else {
            Err(self.starts[0] + WINDOW)
        }
    }

    /// No call starts before `now + wait` (the upstream's `period_remaining`).
    pub fn pause(&mut self, now: Instant, wait: Duration) {
        let until = now + wait;
        if self.paused_until.is_none_or(|p| p < until) {
            self.paused_until = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_pause_holds_every_call() {
        let t0 = Instant::now();
        let mut b = Budget::new(5);
        b.pause(t0, Duration::from_secs(2));
        assert_eq!(
            b.try_take(t0 + Duration::from_secs(1)),
            Err(t0 + Duration::from_secs(2))
        );
        assert!(b.try_take(t0 + Duration::from_secs(2)).is_ok());
    }

    proptest! {
        /// Whatever the pattern of attempts, the granted starts never put more than `rate`
        /// calls in any one-second window, and a caller told to wait is told a time at which
        /// a slot is really free.
        #[test]
        fn never_more_than_rate_in_any_second(
            rate in 1u32..8,
            gaps in proptest::collection::vec(0u64..400, 1..200),
        ) {
            let t0 = Instant::now();
            let mut b = Budget::new(rate);
            let mut granted: Vec<Instant> = Vec::new();
            let mut now = t0;
            for gap in gaps {
                now += Duration::from_millis(gap);
                match b.try_take(now) {
                    Ok(()) => granted.push(now),
                    Err(retry_at) => {
                        prop_assert!(retry_at > now);
                        prop_assert!(b.try_take(retry_at).is_ok());
                        granted.push(retry_at);
                        now = retry_at;
                    }
                }
            }
            for (i, t) in granted.iter().enumerate() {
                let in_window = granted[i..]
                    .iter()
                    .take_while(|u| u.duration_since(*t) < Duration::from_secs(1))
                    .count();
                prop_assert!(in_window <= rate as usize, "{in_window} starts within 1 s");
            }
        }
    }
}
