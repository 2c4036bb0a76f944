//! A time-to-first-token histogram that grows at every scrape by a known distribution, the
//! phase: the fake model server's stand-in for requests finishing between two scrapes.

/// vLLM's bucket bounds for `vllm:time_to_first_token_seconds` (vllm/v1/metrics/loggers.py,
/// the same from 0.8.5 to 0.15.0; also in src/latency.rs).
pub const BOUNDS: [f64; 22] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];

/// What the requests finished between two scrapes look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// 20 requests: 19 spread over 0.1–0.25 s, one at 0.4 s (95 % fast).
    Fast,
    /// 20 requests: 10 spread over 0.1–0.25 s, 10 over 1–2.5 s (half of them slow).
    Slow,
    /// 3 slow requests (2 s): fewer than a window needs.
    Trickle,
    /// No request.
    Idle,
}

impl Phase {
    /// The latencies (seconds) added at one scrape.
    pub fn batch(self) -> Vec<f64> {
        let spread = |n: usize, lo: f64, hi: f64| -> Vec<f64> {
            (0..n)
                .map(|k| lo + (hi - lo) * (k as f64 + 0.5) / n as f64)
                .collect()
        };
        match self {
            Phase::Fast => {
                let mut v = spread(19, 0.1, 0.25);
                v.push(0.4);
                v
            }
            Phase::Slow => {
                let mut v = spread(10, 0.1, 0.25);
                v.extend(spread(10, 1.0, 2.5));
                v
            }
            Phase::Trickle => vec![2.0; 3],
            Phase::Idle => Vec::new(),
        }
    }

    /// The `p`-th percentile (nearest rank) of one batch: the true windowed percentile.
    pub fn true_percentile(self, p: f64) -> f64 {
        percentile(&self.batch(), p)
    }
}

/// Nearest-rank percentile of `values`.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (sorted.len() as f64 * p / 100.0).ceil() as usize;
    sorted[rank.max(1) - 1]
}

/// The index of the bucket holding `v` (`BOUNDS.len()` for `+Inf`).
pub fn bucket_of(v: f64) -> usize {
    BOUNDS.iter().position(|b| v <= *b).unwrap_or(BOUNDS.len())
}

/// The width of the bucket holding `v`: the most bucket interpolation can be off by.
pub fn bucket_width(v: f64) -> f64 {
    let upper = BOUNDS
        .iter()
        .position(|b| v <= *b)
        .unwrap_or(BOUNDS.len() - 1);
    BOUNDS[upper] - if upper == 0 { 0.0 } else { BOUNDS[upper - 1] }
}

/// The cumulative histogram since the server started.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    pub phase: Phase,
    /// Every latency observed, in order.
    pub observed: Vec<f64>,
}

impl LatencyHistogram {
    pub fn new(phase: Phase) -> Self {
        LatencyHistogram {
            phase,
            observed: Vec::new(),
        }
    }

    /// Requests finished since the previous scrape.
    pub fn on_scrape(&mut self) {
        self.observed.extend(self.phase.batch());
    }

    /// The histogram in Prometheus text exposition, as vLLM's prometheus_client writes it.
    pub fn exposition(&self, labels: &str) -> String {
        let name = "vllm:time_to_first_token_seconds";
        let mut out = format!(
            "# HELP {name} Histogram of time to first token in seconds.\n# TYPE {name} histogram\n"
        );
        for b in BOUNDS {
            let n = self.observed.iter().filter(|v| **v <= b).count();
            out.push_str(&format!("{name}_bucket{{{labels},le=\"{b:?}\"}} {n}.0\n"));
        }
        let count = self.observed.len();
        let sum: f64 = self.observed.iter().sum();
        out.push_str(&format!(
            "{name}_bucket{{{labels},le=\"+Inf\"}} {count}.0\n{name}_count{{{labels}}} {count}.0\n{name}_sum{{{labels}}} {sum:?}\n"
        ));
        out
    }
}
