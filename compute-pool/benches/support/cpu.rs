//! CPU time of the benchmark process, shared by the benchmarks that report
//! records per CPU-second (included with `#[path]`; not a bench target).

/// User + system CPU seconds of this process so far (Linux).
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of /proc/PID/stat (utime, stime), counted after the
    // command name: indexes 11 and 12. Clock ticks are 100 per second on Linux.
    (ticks(11) + ticks(12)) / 100.0
}
