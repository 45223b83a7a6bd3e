//! Wall-clock helpers; every persisted timestamp is UTC.

use chrono::{DateTime, SecondsFormat, Utc};

/// Now as integer microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// Microseconds since the epoch rendered as RFC 3339 UTC with microsecond precision.
pub fn micros_to_rfc3339(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}
