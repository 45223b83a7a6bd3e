//! Resident memory of the troupe processes, from `/proc/<pid>/status`.
//!
//! `VmRSS` is the current resident set, `VmHWM` its peak. Writing `5` to
//! `/proc/<pid>/clear_refs` resets the peak to the current value, so each scenario's peak is
//! its own and not the largest of the run so far.

/// Current resident set in MB.
pub fn current_mb(pid: u32) -> Option<f64> {
    status_kb(pid, "VmRSS:").map(kb_to_mb)
}

/// Peak resident set in MB since start or the last [`reset_peak`].
pub fn peak_mb(pid: u32) -> Option<f64> {
    status_kb(pid, "VmHWM:").map(kb_to_mb)
}

/// Resets the peak; false when the kernel refused (then peaks are since process start).
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn kb_to_mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}
