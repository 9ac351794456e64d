//! Percentiles and how figures are shown.

use std::time::Duration;

/// Percentiles of individually timed samples, nearest-rank.
pub struct Summary {
    sorted: Vec<Duration>,
}

impl Summary {
    pub fn new(mut samples: Vec<Duration>) -> Summary {
        assert!(!samples.is_empty(), "no samples");
        samples.sort_unstable();
        Summary { sorted: samples }
    }
    /// The sample at quantile `q` (0 < q <= 1), nearest rank.
    pub fn quantile(&self, q: f64) -> Duration {
        let n = self.sorted.len();
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        self.sorted[rank - 1]
    }
    pub fn median(&self) -> Duration {
        self.quantile(0.5)
    }
    pub fn max(&self) -> Duration {
        self.sorted[self.sorted.len() - 1]
    }
    pub fn len(&self) -> usize {
        self.sorted.len()
    }
    /// `label  n=.. p50 .. p90 .. p99 .. p99.9 .. max ..`, one line.
    pub fn line(&self, label: &str) -> String {
        format!(
            "{label:<44} n={:<7} p50 {:>9}  p90 {:>9}  p99 {:>9}  p99.9 {:>9}  max {:>9}",
            self.len(),
            show(self.median()),
            show(self.quantile(0.90)),
            show(self.quantile(0.99)),
            show(self.quantile(0.999)),
            show(self.max()),
        )
    }
}

/// A duration with a unit that keeps 3 significant digits: `812ns`, `4.31µs`, `2.05ms`, `1.20s`.
pub fn show(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1e3 {
        format!("{ns:.0}ns")
    } else if ns < 1e6 {
        format!("{:.2}µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2}ms", ns / 1e6)
    } else {
        format!("{:.2}s", ns / 1e9)
    }
}

/// The median of a few whole-run timings.
pub fn median(runs: &[Duration]) -> Duration {
    let mut sorted = runs.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

/// `met` or `MISSED`, for the target lines.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}
