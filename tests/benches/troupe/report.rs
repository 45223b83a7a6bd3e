//! The figures: one table of scenarios, one of targets, and the same as JSON.

use std::path::Path;

use serde_json::{json, Value};

use crate::load::LoadResult;

/// One measured scenario (or the idle row, which has memory only).
pub struct Row {
    pub scenario: String,
    /// What the rate counts: "req/s", "writes/s", "calls/s".
    pub unit: &'static str,
    pub figures: Option<Figures>,
    /// Peak (or, for the idle row, current) resident set per process, MB.
    pub rss_mb: Vec<(String, f64)>,
    /// The baseline scenario and this rate divided by its rate.
    pub versus: Option<(String, f64)>,
}

pub struct Figures {
    pub rate: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl From<&LoadResult> for Figures {
    fn from(r: &LoadResult) -> Self {
        Self {
            rate: r.rate(),
            p50_ms: r.quantile_ms(0.5),
            p99_ms: r.quantile_ms(0.99),
            p999_ms: r.quantile_ms(0.999),
            max_ms: r.quantile_ms(1.0),
            ok: r.ok,
            errors: r.errors,
            first_error: r.first_error.clone(),
        }
    }
}

/// A target, what was measured for it, and whether it was met (`None`: not measured).
pub struct Target {
    pub target: String,
    pub measured: String,
    pub met: Option<bool>,
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
    /// Targets a scenario checked itself, from figures that are not in its row.
    pub checks: Vec<Target>,
}

impl Report {
    pub fn row(&self, scenario: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.scenario == scenario)
    }

    pub fn rate(&self, scenario: &str) -> Option<f64> {
        Some(self.row(scenario)?.figures.as_ref()?.rate)
    }

    pub fn print(&self) {
        println!();
        print_table(
            &[
                "scenario",
                "rate",
                "p50",
                "p99",
                "p99.9",
                "errors",
                "peak RSS MB",
                "vs baseline",
            ],
            self.rows.iter().map(scenario_cells).collect(),
        );
        println!("(rates: req/s for HTTP, writes/s for redb, calls/s for RPC; latencies in ms;");
        println!(" RSS: peak during the scenario; the idle row shows current RSS before any load;");
        println!(" vs baseline: this rate / the baseline's rate, both measured in this run)");
        for row in &self.rows {
            if let Some(e) = row.figures.as_ref().and_then(|f| f.first_error.as_ref()) {
                println!("first error of {}: {}", row.scenario, truncate(e, 200));
            }
        }
        println!();
        print_table(
            &["target", "measured", "met?"],
            self.targets
                .iter()
                .map(|t| {
                    let met = match t.met {
                        Some(true) => "yes",
                        Some(false) => "NO",
                        None => "not run",
                    };
                    vec![t.target.clone(), t.measured.clone(), met.into()]
                })
                .collect(),
        );
    }

    pub fn write_json(&self, path: &Path, context: Value) -> Result<(), String> {
        let doc = json!({
            "context": context,
            "scenarios": self.rows.iter().map(row_json).collect::<Vec<_>>(),
            "targets": self.targets.iter().map(|t| json!({
                "target": t.target, "measured": t.measured, "met": t.met,
            })).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

fn scenario_cells(row: &Row) -> Vec<String> {
    let dash = || "-".to_string();
    let ms = |v: Option<f64>| v.map_or_else(dash, format_ms);
    let (rate, p50, p99, p999, errors) = match &row.figures {
        Some(f) => (
            format!("{:.0} {}", f.rate, row.unit),
            ms(f.p50_ms),
            ms(f.p99_ms),
            ms(f.p999_ms),
            f.errors.to_string(),
        ),
        None => (dash(), dash(), dash(), dash(), dash()),
    };
    let rss = if row.rss_mb.is_empty() {
        dash()
    } else {
        row.rss_mb
            .iter()
            .map(|(name, mb)| format!("{name} {mb:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let versus = row
        .versus
        .as_ref()
        .map_or_else(dash, |(_, ratio)| format!("{ratio:.2}x"));
    vec![
        row.scenario.clone(),
        rate,
        p50,
        p99,
        p999,
        errors,
        rss,
        versus,
    ]
}

/// Milliseconds with three significant-ish digits below 1 ms (RPC latencies are µs).
fn format_ms(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.2}")
    }
}

fn row_json(row: &Row) -> Value {
    let figures = row.figures.as_ref().map(|f| {
        json!({
            "rate_per_s": f.rate, "unit": row.unit,
            "p50_ms": f.p50_ms, "p99_ms": f.p99_ms, "p999_ms": f.p999_ms, "max_ms": f.max_ms,
            "ok": f.ok, "errors": f.errors, "first_error": f.first_error,
        })
    });
    json!({
        "scenario": row.scenario,
        "figures": figures,
        "rss_mb": row.rss_mb.iter().map(|(n, mb)| (n.clone(), json!(mb))).collect::<serde_json::Map<_, _>>(),
        "baseline": row.versus.as_ref().map(|(b, _)| b),
        "ratio_to_baseline": row.versus.as_ref().map(|(_, r)| r),
    })
}

/// Prints rows under headers, the first column left-aligned and the others right-aligned.
fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for row in rows {
        line(row);
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}
