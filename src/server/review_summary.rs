//! The reviews answered, logged once a minute at info level: per route, how many were patched,
//! allowed, denied, warned about, or could not be answered.
//!
//! Each review's own line is at debug level for the ones patched or allowed (the common case:
//! at info level its JSON line cost about as much as the whole answer to a `/healthz` request),
//! and at info level for the ones denied or warned about (a user's mistake to fix). This line
//! keeps the default log showing that the API server calls the webhook and what it decides.
//! The same counts are the `llm_autoscale_admission_requests_total` metric.

use std::time::Duration;

use tokio::task::JoinHandle;

use super::metrics::Metrics;

/// How often the line is written (only when reviews were answered since the last one).
pub const INTERVAL: Duration = Duration::from_secs(60);

/// The routes counted.
const ROUTES: [&str; 2] = ["mutate", "validate"];

/// The decisions counted, in the order of [`Counts`].
const DECISIONS: [&str; 7] = [
    "patched",
    "allowed",
    "denied",
    "warned",
    "bad_request",
    "internal_error",
    "too_large",
];

/// Reviews of one route by decision ([`DECISIONS`]' order).
type Counts = [u64; 7];

/// The counts since the last line, per route, keeping the totals seen.
#[derive(Debug, Default)]
pub struct Tally {
    seen: [Counts; 2],
}

impl Tally {
    /// The counts of each route since the last call, given the totals now (`None` for a route
    /// with none).
    pub fn since_last(&mut self, totals: [Counts; 2]) -> [Option<Counts>; 2] {
        let mut out = [None; 2];
        for ((seen, now), out) in self.seen.iter_mut().zip(totals).zip(&mut out) {
            let mut delta = [0; 7];
            for ((d, s), n) in delta.iter_mut().zip(seen.iter()).zip(now) {
                *d = n.saturating_sub(*s);
            }
            *seen = now;
            *out = delta.iter().any(|d| *d > 0).then_some(delta);
        }
        out
    }
}

/// Writes the line every [`INTERVAL`] until aborted.
pub fn spawn(metrics: Metrics) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tally = Tally::default();
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let totals = ROUTES.map(|route| metrics.admission_counts(route, DECISIONS));
            for (route, counts) in ROUTES.iter().zip(tally.since_last(totals)) {
                if let Some(counts) = counts {
                    log(route, counts);
                }
            }
        }
    })
}

fn log(route: &str, [patched, allowed, denied, warned, bad, internal, large]: Counts) {
    tracing::info!(
        route,
        interval_seconds = INTERVAL.as_secs(),
        patched,
        allowed,
        denied,
        warned,
        bad_request = bad,
        internal_error = internal,
        too_large = large,
        "admission reviews answered"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_counts_the_reviews_since_the_last() {
        let mut tally = Tally::default();
        assert_eq!(tally.since_last([[0; 7]; 2]), [None, None]);
        let first = [[3, 1, 0, 0, 0, 0, 0], [0; 7]];
        assert_eq!(tally.since_last(first), [Some(first[0]), None]);
        // Nothing new: no line.
        assert_eq!(tally.since_last(first), [None, None]);
        let second = [[5, 1, 1, 0, 0, 0, 0], [0, 2, 0, 0, 0, 0, 0]];
        assert_eq!(
            tally.since_last(second),
            [Some([2, 0, 1, 0, 0, 0, 0]), Some([0, 2, 0, 0, 0, 0, 0])]
        );
    }

    #[test]
    fn counts_are_read_from_the_metrics() {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.admission("mutate", "patched", Duration::from_micros(50));
        metrics.admission("mutate", "patched", Duration::from_micros(50));
        metrics.admission("mutate", "denied", Duration::from_micros(50));
        assert_eq!(
            metrics.admission_counts("mutate", DECISIONS),
            [2, 0, 1, 0, 0, 0, 0]
        );
        assert_eq!(metrics.admission_counts("validate", DECISIONS), [0; 7]);
    }
}
