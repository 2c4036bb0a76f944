//! A delta histogram: the requests one window added to each bucket, as the sidecar sends
//! them after `cumulative_to_delta`; merged over windows and pods, and the percentile of the
//! merged distribution.
//!
//! The percentile interpolates linearly inside the bucket that holds the rank (from 0 in the
//! first bucket when its bound is positive), as Prometheus' `histogram_quantile` and the
//! collector's `extract_percentile_metric` do (collector-contrib v0.161.0
//! processor/transformprocessor `internal/metrics/func_extract_percentile_metric.go`); a rank in
//! the `+Inf` bucket reads as the last finite bound. So the value is exact to the bucket: it
//! lies in the bucket that holds the true percentile of the requests counted.

use std::sync::Arc;

/// Why a histogram cannot be built or merged.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum HistogramError {
    #[error("{counts} bucket counts for {bounds} bounds (expected bounds + 1)")]
    Shape { counts: usize, bounds: usize },
    #[error("bucket bounds are not finite and strictly increasing")]
    Bounds,
    #[error("bucket bounds differ: {0:?} and {1:?}")]
    BoundsDiffer(Arc<[f64]>, Arc<[f64]>),
}

/// Requests per bucket over some window. `counts[i]` counts values in
/// `(bounds[i-1], bounds[i]]`; the last count is the `+Inf` bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct DeltaHistogram {
    bounds: Arc<[f64]>,
    counts: Vec<u64>,
    sum: f64,
}

impl DeltaHistogram {
    /// A histogram of `counts` over `bounds` (shared between the windows of one series).
    pub fn new(bounds: Arc<[f64]>, counts: Vec<u64>, sum: f64) -> Result<Self, HistogramError> {
        if counts.len() != bounds.len() + 1 {
            return Err(HistogramError::Shape {
                counts: counts.len(),
                bounds: bounds.len(),
            });
        }
        let increasing = bounds.windows(2).all(|w| matches!(w, [a, b] if a < b));
        if !increasing || bounds.iter().any(|b| !b.is_finite()) {
            return Err(HistogramError::Bounds);
        }
        Ok(DeltaHistogram {
            bounds,
            counts,
            sum,
        })
    }

    /// An empty histogram over `bounds` (the identity of [`merge`](Self::merge)).
    pub fn empty(bounds: Arc<[f64]>) -> Self {
        let counts = vec![0; bounds.len() + 1];
        DeltaHistogram {
            bounds,
            counts,
            sum: 0.0,
        }
    }

    pub fn bounds(&self) -> &Arc<[f64]> {
        &self.bounds
    }

    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Requests counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Sum of the requests' values.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Adds `other`'s requests. Associative and commutative; histograms over other bounds are
    /// refused (their buckets cannot be split).
    pub fn merge(&mut self, other: &DeltaHistogram) -> Result<(), HistogramError> {
        if !Arc::ptr_eq(&self.bounds, &other.bounds) && self.bounds != other.bounds {
            return Err(HistogramError::BoundsDiffer(
                self.bounds.clone(),
                other.bounds.clone(),
            ));
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine = mine.saturating_add(*theirs);
        }
        self.sum += other.sum;
        Ok(())
    }

    /// The `percentile` (0 < p < 100) of the counted requests, interpolated in its bucket;
    /// `None` when nothing was counted.
    pub fn percentile(&self, percentile: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = percentile / 100.0 * total as f64;
        let mut below = 0u64;
        for (i, &n) in self.counts.iter().enumerate() {
            let through = below + n;
            if n > 0 && through as f64 >= rank {
                return Some(self.interpolate(i, rank - below as f64, n));
            }
            below = through;
        }
        self.bounds.last().copied()
    }

    /// The value at `into` requests of the `n` in bucket `i`.
    fn interpolate(&self, i: usize, into: f64, n: u64) -> f64 {
        let upper = self.bounds.get(i).copied();
        let lower = match i.checked_sub(1) {
            Some(prev) => self.bounds.get(prev).copied(),
            None => None,
        };
        match (lower, upper) {
            // The +Inf bucket: nothing is known above the last bound.
            (Some(lower), None) => lower,
            (None, Some(upper)) if upper <= 0.0 => upper,
            (lower, Some(upper)) => {
                let lower = lower.unwrap_or(0.0);
                lower + (upper - lower) * (into / n as f64).clamp(0.0, 1.0)
            }
            (None, None) => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bounds(b: &[f64]) -> Arc<[f64]> {
        Arc::from(b)
    }

    /// vLLM's TTFT buckets up to 10 s (`vllm/v1/metrics/loggers.py`).
    const TTFT: [f64; 16] = [
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ];

    fn of(values: &[f64], b: &Arc<[f64]>) -> DeltaHistogram {
        let mut counts = vec![0u64; b.len() + 1];
        for v in values {
            let i = b.iter().position(|bound| v <= bound).unwrap_or(b.len());
            counts[i] += 1;
        }
        DeltaHistogram::new(b.clone(), counts, values.iter().sum()).unwrap()
    }

    #[test]
    fn shape_and_bounds_are_checked() {
        assert_eq!(
            DeltaHistogram::new(bounds(&[1.0]), vec![1], 0.0),
            Err(HistogramError::Shape {
                counts: 1,
                bounds: 1
            })
        );
        assert_eq!(
            DeltaHistogram::new(bounds(&[2.0, 1.0]), vec![0, 0, 0], 0.0),
            Err(HistogramError::Bounds)
        );
        assert_eq!(
            DeltaHistogram::new(bounds(&[1.0, f64::INFINITY]), vec![0, 0, 0], 0.0),
            Err(HistogramError::Bounds)
        );
    }

    #[test]
    fn percentile_interpolates_in_the_bucket() {
        let b = bounds(&[0.5, 1.0, 2.0]);
        // 10 requests: 4 in (0, 0.5], 4 in (0.5, 1], 2 in (1, 2].
        let h = DeltaHistogram::new(b.clone(), vec![4, 4, 2, 0], 7.0).unwrap();
        assert_eq!(h.count(), 10);
        // Rank 5 is the first of the second bucket's 4: a quarter into (0.5, 1].
        assert_eq!(h.percentile(50.0), Some(0.625));
        // Rank 9 is half-way into (1, 2].
        assert_eq!(h.percentile(90.0), Some(1.5));
        // Rank 2 of the first bucket, interpolated from 0.
        assert_eq!(h.percentile(20.0), Some(0.25));
        let inf = DeltaHistogram::new(b.clone(), vec![0, 0, 1, 9], 0.0).unwrap();
        assert_eq!(
            inf.percentile(90.0),
            Some(2.0),
            "the +Inf bucket reads as the last bound"
        );
        assert_eq!(DeltaHistogram::empty(b).percentile(90.0), None);
    }

    #[test]
    fn merge_adds_and_refuses_other_bounds() {
        let b = bounds(&[1.0, 2.0]);
        let mut a = DeltaHistogram::new(b.clone(), vec![1, 2, 3], 1.0).unwrap();
        a.merge(&DeltaHistogram::new(b.clone(), vec![1, 0, 1], 2.0).unwrap())
            .unwrap();
        assert_eq!(a.counts(), &[2, 2, 4]);
        assert_eq!(a.sum(), 3.0);
        let other = DeltaHistogram::empty(bounds(&[1.0, 3.0]));
        assert!(matches!(
            a.merge(&other),
            Err(HistogramError::BoundsDiffer(..))
        ));
        // Equal bounds in another allocation merge.
        a.merge(&DeltaHistogram::empty(bounds(&[1.0, 2.0])))
            .unwrap();
    }

    /// The bucket (lower, upper] of `bounds` holding `v` (lower 0 for the first).
    fn bucket_of(v: f64, b: &[f64]) -> (f64, f64) {
        match b.iter().position(|bound| v <= *bound) {
            Some(0) => (0.0, b[0]),
            Some(i) => (b[i - 1], b[i]),
            None => (b[b.len() - 1], f64::INFINITY),
        }
    }

    proptest! {
        /// Random pods, each with a few windows of random latencies: the percentile of the
        /// merged histograms lies in the bucket of the true percentile of every request (the
        /// nearest-rank value), so it is off by at most that bucket's width; in the +Inf
        /// bucket it is the last bound.
        #[test]
        fn merged_percentile_is_within_the_true_values_bucket(
            pods in prop::collection::vec(
                prop::collection::vec(prop::collection::vec(0.0001f64..15.0, 0..40), 1..4),
                1..6,
            ),
            p in 1.0f64..99.9,
        ) {
            let b = bounds(&TTFT);
            let mut merged = DeltaHistogram::empty(b.clone());
            let mut all: Vec<f64> = Vec::new();
            for windows in &pods {
                for w in windows {
                    merged.merge(&of(w, &b)).unwrap();
                    all.extend(w);
                }
            }
            prop_assert_eq!(merged.count(), all.len() as u64);
            let estimate = merged.percentile(p);
            if all.is_empty() {
                prop_assert_eq!(estimate, None);
                return Ok(());
            }
            all.sort_by(f64::total_cmp);
            let rank = (p / 100.0 * all.len() as f64).ceil().max(1.0) as usize;
            let truth = all[rank - 1];
            let estimate = estimate.unwrap();
            let (lower, upper) = bucket_of(truth, &TTFT);
            if upper.is_infinite() {
                prop_assert_eq!(estimate, lower);
            } else {
                prop_assert!(
                    lower <= estimate && estimate <= upper,
                    "p{p}: estimate {estimate} outside the true value {truth}'s bucket ({lower}, {upper}]"
                );
                prop_assert!((estimate - truth).abs() <= upper - lower);
            }
        }

        /// Merging is associative and commutative: any grouping of the same windows gives the
        /// same histogram (what lets scaler replicas merge partial states in any order).
        #[test]
        fn merge_is_associative_and_commutative(
            windows in prop::collection::vec(prop::collection::vec(0.0001f64..15.0, 0..20), 1..8),
            split in 0usize..8,
        ) {
            let b = bounds(&TTFT);
            let hs: Vec<DeltaHistogram> = windows.iter().map(|w| of(w, &b)).collect();
            let fold = |items: &[DeltaHistogram]| {
                let mut acc = DeltaHistogram::empty(b.clone());
                for h in items {
                    acc.merge(h).unwrap();
                }
                acc
            };
            let whole = fold(&hs);
            let split = split.min(hs.len());
            let mut left = fold(&hs[..split]);
            left.merge(&fold(&hs[split..])).unwrap();
            let mut reversed = hs.clone();
            reversed.reverse();
            prop_assert_eq!(whole.counts(), left.counts());
            let backwards = fold(&reversed);
            prop_assert_eq!(whole.counts(), backwards.counts());
        }
    }
}
