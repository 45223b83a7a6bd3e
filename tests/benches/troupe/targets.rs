//! The project's performance targets, checked against this run's figures.

use crate::report::{Report, Target};
use crate::{rpc_name, IDLE, LISTINGS_GET, LISTINGS_POST, TASK_TIMERS, USERS_POST};

pub fn evaluate(report: &Report, conns: usize) -> Vec<Target> {
    let mut targets = vec![
        ratio_at_least(report, LISTINGS_GET, 0.25, "bare axum"),
        p99_at_most(report, LISTINGS_GET, 5.0, conns),
    ];
    for post in [USERS_POST, LISTINGS_POST] {
        targets.push(ratio_at_least(report, post, 10.0, "1-fsync redb"));
        targets.push(p99_at_most(report, post, 20.0, conns));
    }
    targets.push(within(report, TASK_TIMERS, 100.0));
    targets.push(rate_at_least(report, &rpc_name(true, conns), 50_000.0));
    targets.push(rate_at_least(report, &rpc_name(false, conns), 1_000_000.0));
    targets.push(rss_at_most(report, IDLE, "idle RSS", 30.0));
    targets.push(rss_at_most(
        report,
        LISTINGS_GET,
        "peak RSS under the listings load",
        100.0,
    ));
    targets
}

fn not_run(target: String) -> Target {
    Target {
        target,
        measured: "-".into(),
        met: None,
    }
}

fn ratio_at_least(report: &Report, scenario: &str, min: f64, baseline: &str) -> Target {
    let target = if min < 1.0 {
        format!("{scenario}: req/s >= {:.0}% of {baseline}", min * 100.0)
    } else {
        format!("{scenario}: req/s >= {min:.0}x {baseline}")
    };
    let Some(row) = report.row(scenario) else {
        return not_run(target);
    };
    let (Some((_, ratio)), Some(f)) = (&row.versus, &row.figures) else {
        return not_run(target);
    };
    let measured = if min < 1.0 {
        format!("{:.1}% ({:.0} req/s)", ratio * 100.0, f.rate)
    } else {
        format!("{ratio:.2}x ({:.0} req/s)", f.rate)
    };
    Target {
        target,
        measured,
        met: Some(*ratio >= min),
    }
}

fn p99_at_most(report: &Report, scenario: &str, max_ms: f64, conns: usize) -> Target {
    let target = format!("{scenario}: p99 <= {max_ms} ms at {conns} connections");
    match report
        .row(scenario)
        .and_then(|r| r.figures.as_ref()?.p99_ms)
    {
        Some(p99) => Target {
            target,
            measured: format!("{p99:.2} ms"),
            met: Some(p99 <= max_ms),
        },
        None => not_run(target),
    }
}

/// Every one of a scenario's operations succeeded, the slowest within `max_ms`.
fn within(report: &Report, scenario: &str, max_ms: f64) -> Target {
    let target = format!("{scenario}: every task, at most {max_ms} ms late");
    match report.row(scenario).and_then(|r| r.figures.as_ref()) {
        Some(f) => {
            let max = f.max_ms.unwrap_or(f64::INFINITY);
            Target {
                target,
                measured: format!(
                    "max {max:.1} ms, {} failed of {}",
                    f.errors,
                    f.ok + f.errors
                ),
                met: Some(f.errors == 0 && max <= max_ms),
            }
        }
        None => not_run(target),
    }
}

fn rate_at_least(report: &Report, scenario: &str, min: f64) -> Target {
    let target = format!("{scenario}: >= {min:.0} calls/s");
    match report.rate(scenario) {
        Some(rate) => Target {
            target,
            measured: format!("{rate:.0} calls/s"),
            met: Some(rate >= min),
        },
        None => not_run(target),
    }
}

/// The largest resident set of any troupe process in `scenario`'s row.
fn rss_at_most(report: &Report, scenario: &str, what: &str, max_mb: f64) -> Target {
    let target = format!("{what} <= {max_mb} MB per process");
    let largest = report
        .row(scenario)
        .and_then(|r| r.rss_mb.iter().max_by(|a, b| a.1.total_cmp(&b.1)).cloned());
    match largest {
        Some((name, mb)) => Target {
            target,
            measured: format!("largest {mb:.1} MB ({name})"),
            met: Some(mb <= max_mb),
        },
        None => not_run(target),
    }
}
