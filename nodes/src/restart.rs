//! When `troupe up` brings a dead child back: the `--restart` policy, its backoff and its limit.
//!
//! Owns: the decision only (restart after how long, or give up); `up.rs` acts on it. Like an
//! Erlang supervisor's intensity, the limit counts restarts within a window, so a child that
//! crashes at once on every start stops being restarted, while one that dies now and then is
//! brought back every time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// `--restart`: what to do when a child of `troupe up` exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RestartMode {
    /// Start it again when it exits with an error or is killed by a signal; an exit with
    /// status 0 (a drain someone asked for) leaves it down.
    OnFailure,
    /// Leave every dead child down.
    Never,
}

/// The span over which restarts are counted against the limit.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Wait before the first restart in a window; it doubles with each further one.
const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(8);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Start it again after this wait; this is restart `nth` within the window.
    RestartAfter { delay: Duration, nth: u32 },
    /// It was restarted `limit` times within the window already: it stays down.
    GiveUp { limit: u32 },
    /// The policy leaves it down (`never`, or a clean exit).
    LeaveDown,
}

/// One child's restart history.
#[derive(Debug, Clone)]
pub struct Restarts {
    mode: RestartMode,
    limit: u32,
    recent: VecDeque<Instant>,
}

impl Restarts {
    pub fn new(mode: RestartMode, limit: u32) -> Self {
        Self {
            mode,
            limit,
            recent: VecDeque::new(),
        }
    }

    /// What to do about an exit at `now`; a restart it decides on is counted.
    pub fn after_exit(&mut self, success: bool, now: Instant) -> Verdict {
        if self.mode == RestartMode::Never || success {
            return Verdict::LeaveDown;
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.limit as usize {
            return Verdict::GiveUp { limit: self.limit };
        }
        let delay = FIRST_DELAY
            .saturating_mul(1 << self.recent.len().min(16))
            .min(MAX_DELAY);
        self.recent.push_back(now);
        Verdict::RestartAfter {
            delay,
            nth: self.recent.len() as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_restarted_with_a_doubling_wait_up_to_the_limit() {
        let mut r = Restarts::new(RestartMode::OnFailure, 3);
        let t0 = Instant::now();
        let waits: Vec<Verdict> = (0..4)
            .map(|i| r.after_exit(false, t0 + Duration::from_secs(i)))
            .collect();
        assert_eq!(
            waits,
            [
                Verdict::RestartAfter {
                    delay: Duration::from_millis(250),
                    nth: 1
                },
                Verdict::RestartAfter {
                    delay: Duration::from_millis(500),
                    nth: 2
                },
                Verdict::RestartAfter {
                    delay: Duration::from_secs(1),
                    nth: 3
                },
                Verdict::GiveUp { limit: 3 },
            ]
        );
    }

    #[test]
    fn restarts_older_than_the_window_no_longer_count() {
        let mut r = Restarts::new(RestartMode::OnFailure, 2);
        let t0 = Instant::now();
        assert!(matches!(
            r.after_exit(false, t0),
            Verdict::RestartAfter { .. }
        ));
        assert!(matches!(
            r.after_exit(false, t0 + Duration::from_secs(1)),
            Verdict::RestartAfter { .. }
        ));
        assert_eq!(
            r.after_exit(false, t0 + Duration::from_secs(2)),
            Verdict::GiveUp { limit: 2 }
        );
        // A minute after the first restart, that one has left the window and the wait is
        // back to the second step, not the first: the other restart still counts.
        assert_eq!(
            r.after_exit(false, t0 + WINDOW),
            Verdict::RestartAfter {
                delay: Duration::from_millis(500),
                nth: 2
            }
        );
    }

    #[test]
    fn a_clean_exit_or_never_leaves_the_child_down() {
        let now = Instant::now();
        let mut r = Restarts::new(RestartMode::OnFailure, 5);
        assert_eq!(r.after_exit(true, now), Verdict::LeaveDown);
        let mut r = Restarts::new(RestartMode::Never, 5);
        assert_eq!(r.after_exit(false, now), Verdict::LeaveDown);
    }

    #[test]
    fn the_wait_never_passes_its_cap() {
        let mut r = Restarts::new(RestartMode::OnFailure, 100);
        let now = Instant::now();
        let last = (0..100).map(|_| r.after_exit(false, now)).last();
        assert_eq!(
            last,
            Some(Verdict::RestartAfter {
                delay: MAX_DELAY,
                nth: 100
            })
        );
    }
}
