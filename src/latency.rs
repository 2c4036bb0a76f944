//! Latency percentiles from histograms: the percentile itself, the window rule, the name of
//! the gauge the sidecar computes, and vLLM's latency histograms with their bucket bounds.
//!
//! The sidecar turns each scrape's cumulative histogram into the delta since the previous
//! scrape (the collector-contrib `cumulativetodelta` processor), drops windows with too few
//! requests, and extracts the percentile from the delta's buckets (the `transform`
//! processor's `extract_percentile_metric`), so the value is the percentile of one scrape
//! interval's requests, not of every request since the model server started.

use crate::annotations::values::{self, Refusal};
use crate::version::Version;

/// Fewest requests a window must hold before its percentile is sent, whatever the percentile.
pub const MIN_WINDOW_REQUESTS: u64 = 10;

/// The first collector-contrib release whose `transform` processor has
/// `extract_percentile_metric` (processor/transformprocessor
/// `internal/metrics/func_extract_percentile_metric.go`: absent in v0.150.0, present in
/// v0.151.0): an older sidecar image cannot compute a percentile.
pub const PERCENTILE_FUNCTION_SINCE: (u32, u32) = (0, 151);

/// Decimal places a percentile may have (`99.999`).
const MAX_PLACES: usize = 3;

/// A percentile strictly between 0 and 100, kept as the decimal the user wrote (canonical).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Percentile {
    text: String,
    /// The percentile times 10^`places`, exactly.
    scaled: u64,
    places: u32,
}

impl Percentile {
    /// `"90"`, `"99.9"`, `"50"`: a plain decimal in (0, 100) with at most three decimals.
    pub fn parse(v: &str) -> Result<Percentile, Refusal> {
        let text = values::decimal(v)?;
        let (int, frac) = text.split_once('.').unwrap_or((text.as_str(), ""));
        let frac = frac.trim_end_matches('0');
        if frac.len() > MAX_PLACES {
            return Err(Refusal {
                reason: format!("more than {MAX_PLACES} decimals"),
                fix: "write a percentile such as \"90\", \"99\" or \"99.9\"".into(),
            });
        }
        let places = frac.len() as u32;
        let scaled = format!("{int}{frac}").parse::<u64>().ok();
        let hundred = 100 * 10u64.pow(places);
        match scaled {
            Some(s) if s > 0 && s < hundred => Ok(Percentile {
                text: if frac.is_empty() {
                    int.to_string()
                } else {
                    format!("{int}.{frac}")
                },
                scaled: s,
                places,
            }),
            _ => Err(Refusal {
                reason: "a percentile is greater than 0 and less than 100".into(),
                fix: "write e.g. \"90\" for the 90th percentile (p90)".into(),
            }),
        }
    }

    /// As written, canonical: `90`, `99.9`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `90.0`, `99.9`: the float literal OTTL's `extract_percentile_metric` takes.
    pub fn ottl_literal(&self) -> String {
        if self.places == 0 {
            format!("{}.0", self.text)
        } else {
            self.text.clone()
        }
    }

    /// `0.9`, `0.999`: the quantile PromQL's `histogram_quantile` takes.
    pub fn quantile(&self) -> String {
        let digits = format!("{:0>width$}", self.scaled, width = self.places as usize + 2);
        let digits = digits.trim_end_matches('0');
        let digits = if digits.is_empty() { "0" } else { digits };
        format!("0.{digits}")
    }

    /// `_p90`, `_p99_9`: the suffix of the gauge's name (letters, digits and `_` only).
    pub fn suffix(&self) -> String {
        format!("_p{}", self.text.replace('.', "_"))
    }

    /// The fewest requests a window needs before its percentile is sent: at least
    /// [`MIN_WINDOW_REQUESTS`], and enough that at least one request of the window lies above
    /// the percentile (⌈100 / (100 − p)⌉: 10 for p90, 20 for p95, 100 for p99), so the value is
    /// never the window's slowest request alone.
    pub fn min_requests(&self) -> u64 {
        let hundred = 100 * 10u64.pow(self.places);
        let above = hundred - self.scaled;
        hundred.div_ceil(above).max(MIN_WINDOW_REQUESTS)
    }
}

/// A percentile of a histogram, taken of each scrape window: what a latency trigger reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowedPercentile {
    /// The histogram's base name (without `_bucket`), e.g. `vllm:time_to_first_token_seconds`.
    pub histogram: String,
    pub percentile: Percentile,
}

impl WindowedPercentile {
    /// The gauge the sidecar computes: `vllm:time_to_first_token_seconds_p90`.
    pub fn gauge_name(&self) -> String {
        format!("{}{}", self.histogram, self.percentile.suffix())
    }
}

/// One of vLLM's latency histograms: its name and bucket bounds (seconds, without `+Inf`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VllmHistogram {
    pub name: &'static str,
    pub bounds: &'static [f64],
    /// The release that added it; `None`: present in every release checked (0.8.5 to 0.15.0).
    pub since: Option<Version>,
}

const TTFT_BOUNDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
const TOKEN_BOUNDS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
const REQUEST_BOUNDS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

const fn histogram(name: &'static str, bounds: &'static [f64]) -> VllmHistogram {
    VllmHistogram {
        name,
        bounds,
        since: None,
    }
}

/// vLLM's latency histograms, read in `vllm/v1/metrics/loggers.py` (and the V0 engine's
/// `vllm/engine/metrics.py`) of releases 0.8.5, 0.9.x, 0.10.x, 0.11.0, 0.11.2, 0.12.0 to
/// 0.15.0: the bucket bounds are the same in all of them. The renamed inter-token histogram
/// is in [`crate::presets::RENAMES`].
pub const VLLM_HISTOGRAMS: [VllmHistogram; 9] = [
    histogram("vllm:time_to_first_token_seconds", TTFT_BOUNDS),
    histogram("vllm:inter_token_latency_seconds", TOKEN_BOUNDS),
    histogram("vllm:time_per_output_token_seconds", TOKEN_BOUNDS),
    VllmHistogram {
        since: Some(Version(0, 11, 0)),
        ..histogram("vllm:request_time_per_output_token_seconds", TOKEN_BOUNDS)
    },
    histogram("vllm:e2e_request_latency_seconds", REQUEST_BOUNDS),
    histogram("vllm:request_queue_time_seconds", REQUEST_BOUNDS),
    histogram("vllm:request_inference_time_seconds", REQUEST_BOUNDS),
    histogram("vllm:request_prefill_time_seconds", REQUEST_BOUNDS),
    histogram("vllm:request_decode_time_seconds", REQUEST_BOUNDS),
];

/// The vLLM latency histogram named `name`.
pub fn vllm_histogram(name: &str) -> Option<&'static VllmHistogram> {
    VLLM_HISTOGRAMS.iter().find(|h| h.name == name)
}

/// Where a target falls among a histogram's bucket bounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TargetPlace {
    /// On a bound: "p > target" is exactly "more than (100 − p) % of the window's requests
    /// took longer than target", whatever the interpolation.
    OnBound,
    /// Between two bounds: the percentile is interpolated there (latencies assumed spread
    /// evenly in the bucket).
    Between(f64, f64),
    /// Below the first bound: every window whose percentile falls in the first bucket reads
    /// as a fraction of that bound (the collector interpolates from 0), so the target would be
    /// crossed with no slow request at all.
    BelowFirst(f64),
    /// At or above the last finite bound: a percentile in the `+Inf` bucket reads as that
    /// bound, so the value never exceeds the target.
    AtOrAboveLast(f64),
}

impl VllmHistogram {
    /// Where `target` (seconds) falls among the bounds.
    pub fn place(&self, target: f64) -> TargetPlace {
        let (Some(&first), Some(&last)) = (self.bounds.first(), self.bounds.last()) else {
            return TargetPlace::OnBound;
        };
        if target < first {
            return TargetPlace::BelowFirst(first);
        }
        if target >= last {
            return TargetPlace::AtOrAboveLast(last);
        }
        if self.bounds.contains(&target) {
            return TargetPlace::OnBound;
        }
        let upper = self
            .bounds
            .iter()
            .copied()
            .find(|b| *b > target)
            .unwrap_or(last);
        let lower = self
            .bounds
            .iter()
            .copied()
            .rev()
            .find(|b| *b < target)
            .unwrap_or(first);
        TargetPlace::Between(lower, upper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &str) -> Percentile {
        Percentile::parse(v).unwrap()
    }

    #[test]
    fn percentiles_parse_exactly() {
        assert_eq!(p("90").as_str(), "90");
        assert_eq!(p("90.0").as_str(), "90");
        assert_eq!(p("99.90").as_str(), "99.9");
        assert_eq!(p("90").ottl_literal(), "90.0");
        assert_eq!(p("99.9").ottl_literal(), "99.9");
        assert_eq!(p("90").quantile(), "0.9");
        assert_eq!(p("99.9").quantile(), "0.999");
        assert_eq!(p("5").quantile(), "0.05");
        assert_eq!(p("0.5").quantile(), "0.005");
        assert_eq!(p("99.9").suffix(), "_p99_9");
        for bad in [
            "0", "100", "100.0", "120", "-5", "p90", "", "90%", "99.9999",
        ] {
            assert!(Percentile::parse(bad).is_err(), "{bad}");
        }
        assert!(
            Percentile::parse("90%")
                .unwrap_err()
                .reason
                .contains("percent")
        );
    }

    #[test]
    fn windows_need_requests_above_the_percentile() {
        assert_eq!(p("50").min_requests(), 10);
        assert_eq!(p("90").min_requests(), 10);
        assert_eq!(p("95").min_requests(), 20);
        assert_eq!(p("99").min_requests(), 100);
        assert_eq!(p("99.9").min_requests(), 1000);
        assert_eq!(p("97").min_requests(), 34);
    }

    #[test]
    fn targets_against_bucket_bounds() {
        let ttft = vllm_histogram("vllm:time_to_first_token_seconds").unwrap();
        assert_eq!(ttft.place(0.5), TargetPlace::OnBound);
        assert_eq!(ttft.place(0.6), TargetPlace::Between(0.5, 0.75));
        assert_eq!(ttft.place(0.0005), TargetPlace::BelowFirst(0.001));
        assert_eq!(ttft.place(2560.0), TargetPlace::AtOrAboveLast(2560.0));
        let queue = vllm_histogram("vllm:request_queue_time_seconds").unwrap();
        assert_eq!(queue.place(0.1), TargetPlace::BelowFirst(0.3));
        assert_eq!(queue.place(0.3), TargetPlace::OnBound);
        assert!(vllm_histogram("vllm:num_requests_waiting").is_none());
    }

    #[test]
    fn bounds_are_increasing() {
        for h in VLLM_HISTOGRAMS {
            assert!(h.bounds.windows(2).all(|w| w[0] < w[1]), "{}", h.name);
            assert!(crate::query::is_metric_name(h.name));
        }
    }
}
