//! The upstream call budget: at most `rate` call starts in any sliding window, and a pause
//! after the upstream says 429.
//!
//! A sliding log rather than a token bucket (e.g. governor's GCRA): a bucket lets a burst and
//! the calls right after it land within one second, which the upstream counts as too many.
//! The window is a little longer than a second so that jitter between our start and the
//! upstream's arrival time cannot squeeze `rate + 1` calls into its one-second window.
//!
//! A new budget starts with its window full: the instance it replaces (a node killed and
//! restarted at once, or a restarted geo-throttle) may have spent the whole budget just before,
//! and the upstream still counts those calls. Waiting one window is cheaper than a 429 and needs
//! nothing on disk.

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
    /// A budget whose first call may start one window after `now`.
    pub fn new(rate: u32, now: Instant) -> Self {
        let rate = rate.max(1) as usize;
        Self {
            rate,
            starts: std::iter::repeat_n(now, rate).collect(),
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
        let mut b = Budget::new(5, t0 - WINDOW);
        b.pause(t0, Duration::from_secs(2));
        assert_eq!(
            b.try_take(t0 + Duration::from_secs(1)),
            Err(t0 + Duration::from_secs(2))
        );
        assert!(b.try_take(t0 + Duration::from_secs(2)).is_ok());
    }

    #[test]
    fn a_new_budget_waits_one_window_then_grants_the_rate() {
        let t0 = Instant::now();
        let mut b = Budget::new(3, t0);
        assert_eq!(b.try_take(t0), Err(t0 + WINDOW));
        assert_eq!(b.try_take(t0 + WINDOW / 2), Err(t0 + WINDOW));
        for _ in 0..3 {
            assert!(b.try_take(t0 + WINDOW).is_ok());
        }
        assert!(b.try_take(t0 + WINDOW).is_err());
    }

    /// Granted start times, asking at `t0 + gaps` (a refused caller asks again when told).
    fn drive(b: &mut Budget, t0: Instant, gaps: &[u64]) -> Vec<Instant> {
        let mut granted = Vec::new();
        let mut now = t0;
        for gap in gaps {
            now += Duration::from_millis(*gap);
            match b.try_take(now) {
                Ok(()) => granted.push(now),
                Err(retry_at) => {
                    assert!(retry_at > now);
                    assert!(
                        b.try_take(retry_at).is_ok(),
                        "told a time with no slot free"
                    );
                    granted.push(retry_at);
                    now = retry_at;
                }
            }
        }
        granted
    }

    /// The most starts within any one second.
    fn busiest_second(mut starts: Vec<Instant>) -> usize {
        starts.sort();
        (0..starts.len())
            .map(|i| {
                starts[i..]
                    .iter()
                    .take_while(|u| u.duration_since(starts[i]) < Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
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
            let granted = drive(&mut Budget::new(rate, t0), t0, &gaps);
            let busiest = busiest_second(granted);
            prop_assert!(busiest <= rate as usize, "{busiest} starts within 1 s");
        }

        /// An instance spends its budget as it likes, dies, and a new one starts any time
        /// later: the upstream, which sees both, never gets more than `rate` in one second.
        #[test]
        fn a_restart_never_puts_more_than_rate_in_any_second(
            rate in 1u32..8,
            before in proptest::collection::vec(0u64..400, 1..60),
            down_for in 0u64..1500,
            after in proptest::collection::vec(0u64..400, 1..60),
        ) {
            let t0 = Instant::now();
            let mut starts = drive(&mut Budget::new(rate, t0), t0, &before);
            let restart = *starts.last().unwrap() + Duration::from_millis(down_for);
            starts.extend(drive(&mut Budget::new(rate, restart), restart, &after));
            let busiest = busiest_second(starts);
            prop_assert!(busiest <= rate as usize, "{busiest} starts within 1 s");
        }
    }
}
