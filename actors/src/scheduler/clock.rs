//! The scheduler's clock: wall time at start-up, advanced by tokio's monotonic clock.
//!
//! Driving it from `tokio::time::Instant` makes the scheduler testable with paused time
//! (`tokio::time::pause`/`advance`): timers and "now" move together.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_at_start: i64,
    started: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Self {
            wall_at_start: crate::time::now_micros(),
            started: Instant::now(),
        }
    }

    /// Now, in microseconds since the epoch.
    pub fn now(&self) -> i64 {
        self.wall_at_start + self.started.elapsed().as_micros() as i64
    }

    /// How long until `micros` (zero if it has passed).
    pub fn until(&self, micros: i64) -> Duration {
        Duration::from_micros(micros.saturating_sub(self.now()).max(0) as u64)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
