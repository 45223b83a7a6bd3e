//! The command line of the benchmark.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Measures a real troupe cluster against baselines measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "troupe-bench")]
pub struct Options {
    /// A short run: 2 s per scenario after a 0.5 s warm-up (default 10 s after 2 s).
    #[arg(long)]
    pub quick: bool,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Run only scenarios whose name contains this (case-insensitive; repeat for more). The
    /// baselines they compare to run too.
    #[arg(long, value_name = "SUBSTRING")]
    pub only: Vec<String>,
    /// Concurrent connections (HTTP) or callers (RPC, next to a single caller).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub connections: u16,
    /// Seconds measured per scenario (overrides the default and --quick).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Seconds of warm-up per scenario, not measured (overrides the default and --quick).
    #[arg(long, value_name = "SECS")]
    pub warmup: Option<f64>,
    /// The cluster's log level (`RUST_LOG`). The default leaves out the edge's access log
    /// lines; `info` keeps them, as a deployment would.
    #[arg(long, default_value = "warn")]
    pub log: String,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    pub bench: bool,
}

/// How long each scenario runs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub measure: Duration,
}

impl Options {
    pub fn timing(&self) -> Timing {
        let (warmup, measure) = if self.quick { (0.5, 2.0) } else { (2.0, 10.0) };
        Timing {
            warmup: Duration::from_secs_f64(self.warmup.unwrap_or(warmup).max(0.0)),
            measure: Duration::from_secs_f64(self.duration.unwrap_or(measure).max(0.1)),
        }
    }

    /// Whether `--only` selects a scenario of this name.
    pub fn selects(&self, scenario: &str) -> bool {
        let name = scenario.to_lowercase();
        self.only.is_empty()
            || self
                .only
                .iter()
                .any(|s| name.contains(&s.trim().to_lowercase()))
    }
}
