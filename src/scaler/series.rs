//! Series identity and the samples a series holds.
//!
//! A series is a metric name and every data-point attribute the sidecar sends: the model
//! server's own labels plus the `pod`, `deployment` and `namespace` it stamps (the same
//! identity as the KEDA OTel add-on's, without the resource's `host.name`). Its samples are
//! kept by the time the sidecar stamped on them (milliseconds), so a point delivered twice —
//! an export retried, or to two replicas — is one sample.

use std::collections::VecDeque;
use std::sync::Arc;

use super::histogram::{DeltaHistogram, HistogramError};

/// The data-point attributes every series must carry.
pub const POD: &str = "pod";
pub const DEPLOYMENT: &str = "deployment";
pub const NAMESPACE: &str = "namespace";

/// The workload a series belongs to, as its sidecar stamps it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Workload {
    pub namespace: String,
    pub deployment: String,
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.deployment)
    }
}

/// A metric name and its data-point attributes, sorted by key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub metric: String,
    labels: Vec<(String, String)>,
}

impl SeriesKey {
    /// The key of `metric` with `labels` (any order; a repeated key keeps its last value).
    pub fn new(metric: impl Into<String>, mut labels: Vec<(String, String)>) -> SeriesKey {
        labels.reverse();
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        labels.dedup_by(|a, b| a.0 == b.0);
        SeriesKey {
            metric: metric.into(),
            labels,
        }
    }

    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .and_then(|i| self.labels.get(i))
            .map(|(_, v)| v.as_str())
    }

    /// Its workload; `None` without `namespace` or `deployment`.
    pub fn workload(&self) -> Option<Workload> {
        Some(Workload {
            namespace: self.label(NAMESPACE)?.to_string(),
            deployment: self.label(DEPLOYMENT)?.to_string(),
        })
    }

    /// Whether every `key=value` of `selector` is one of its labels (exact matches only, as in
    /// the add-on's grammar; a key the series lacks does not match).
    pub fn matches(&self, selector: &[(String, String)]) -> bool {
        selector
            .iter()
            .all(|(k, v)| self.label(k) == Some(v.as_str()))
    }

    /// The same labels under another metric name (`X` read as `X_count`).
    pub fn renamed(&self, metric: &str) -> SeriesKey {
        SeriesKey {
            metric: metric.to_string(),
            labels: self.labels.clone(),
        }
    }
}

/// A value at the time the sidecar stamped (milliseconds since the epoch).
#[derive(Clone, Debug, PartialEq)]
pub struct At<T> {
    pub at_ms: i64,
    pub value: T,
}

/// What a counter added over `interval_ms` (a delta sum, after `cumulative_to_delta`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Delta {
    pub value: f64,
    pub interval_ms: i64,
}

/// One window of a delta histogram (its bounds are the series').
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub counts: Box<[u64]>,
    pub sum: f64,
    pub interval_ms: i64,
}

/// A series' samples, oldest first, one kind per series.
#[derive(Clone, Debug, PartialEq)]
pub enum Samples {
    /// Gauges (and non-monotonic sums): the value as it was.
    Gauge(VecDeque<At<f64>>),
    /// Monotonic delta sums: what a counter added per interval.
    Delta(VecDeque<At<Delta>>),
    /// Delta histograms over shared bounds.
    Histogram {
        bounds: Arc<[f64]>,
        windows: VecDeque<At<Window>>,
    },
}

/// One incoming value, before it joins a series.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    Gauge(f64),
    Delta(Delta),
    Histogram { bounds: Vec<f64>, window: Window },
}

impl Samples {
    /// Empty samples of `incoming`'s kind.
    fn for_incoming(incoming: &Incoming) -> Samples {
        match incoming {
            Incoming::Gauge(_) => Samples::Gauge(VecDeque::new()),
            Incoming::Delta(_) => Samples::Delta(VecDeque::new()),
            Incoming::Histogram { bounds, .. } => Samples::Histogram {
                bounds: Arc::from(bounds.as_slice()),
                windows: VecDeque::new(),
            },
        }
    }

    /// No samples, of the same kind (and bounds).
    pub fn empty_like(&self) -> Samples {
        match self {
            Samples::Gauge(_) => Samples::Gauge(VecDeque::new()),
            Samples::Delta(_) => Samples::Delta(VecDeque::new()),
            Samples::Histogram { bounds, .. } => Samples::Histogram {
                bounds: bounds.clone(),
                windows: VecDeque::new(),
            },
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Samples::Gauge(s) => s.len(),
            Samples::Delta(s) => s.len(),
            Samples::Histogram { windows, .. } => windows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `incoming` is of this kind (and, for histograms, over the same bounds).
    fn accepts(&self, incoming: &Incoming) -> bool {
        match (self, incoming) {
            (Samples::Gauge(_), Incoming::Gauge(_)) | (Samples::Delta(_), Incoming::Delta(_)) => {
                true
            }
            (Samples::Histogram { bounds, .. }, Incoming::Histogram { bounds: b, .. }) => {
                bounds.as_ref() == b.as_slice()
            }
            _ => false,
        }
    }

    /// Adds `incoming` at `at_ms`, keeping time order; a sample at the same time is replaced.
    /// The caller has checked [`accepts`](Self::accepts).
    fn insert(&mut self, at_ms: i64, incoming: Incoming) {
        match (self, incoming) {
            (Samples::Gauge(s), Incoming::Gauge(v)) => insert_at(s, At { at_ms, value: v }),
            (Samples::Delta(s), Incoming::Delta(d)) => insert_at(s, At { at_ms, value: d }),
            (Samples::Histogram { windows, .. }, Incoming::Histogram { window, .. }) => insert_at(
                windows,
                At {
                    at_ms,
                    value: window,
                },
            ),
            _ => {}
        }
    }

    /// Drops samples stamped before `from_ms`.
    fn prune(&mut self, from_ms: i64) {
        match self {
            Samples::Gauge(s) => prune_before(s, from_ms),
            Samples::Delta(s) => prune_before(s, from_ms),
            Samples::Histogram { windows, .. } => prune_before(windows, from_ms),
        }
    }

    /// The samples stamped at or after `from_ms`, as a new value.
    pub fn since(&self, from_ms: i64) -> Samples {
        fn keep<T: Clone>(s: &VecDeque<At<T>>, from_ms: i64) -> VecDeque<At<T>> {
            s.iter().filter(|a| a.at_ms >= from_ms).cloned().collect()
        }
        match self {
            Samples::Gauge(s) => Samples::Gauge(keep(s, from_ms)),
            Samples::Delta(s) => Samples::Delta(keep(s, from_ms)),
            Samples::Histogram { bounds, windows } => Samples::Histogram {
                bounds: bounds.clone(),
                windows: keep(windows, from_ms),
            },
        }
    }

    /// Adds `other`'s samples (the same series from another replica). Samples at a time already
    /// held are the same point and are kept once; samples of another kind or over other bounds
    /// are left out and reported.
    pub fn union(&mut self, other: Samples) -> Result<(), HistogramError> {
        match (self, other) {
            (Samples::Gauge(a), Samples::Gauge(b)) => union_at(a, b),
            (Samples::Delta(a), Samples::Delta(b)) => union_at(a, b),
            (
                Samples::Histogram { bounds, windows },
                Samples::Histogram {
                    bounds: b,
                    windows: w,
                },
            ) => {
                if *bounds != b {
                    return Err(HistogramError::BoundsDiffer(bounds.clone(), b));
                }
                union_at(windows, w);
            }
            (mine, theirs) => {
                // Another kind: a series whose type changed; the newer kind wins.
                if theirs.latest() > mine.latest() {
                    *mine = theirs;
                }
            }
        }
        Ok(())
    }

    /// The time of the newest sample.
    pub fn latest(&self) -> Option<i64> {
        match self {
            Samples::Gauge(s) => s.back().map(|a| a.at_ms),
            Samples::Delta(s) => s.back().map(|a| a.at_ms),
            Samples::Histogram { windows, .. } => windows.back().map(|a| a.at_ms),
        }
    }

    /// A window as a histogram over the series' bounds.
    pub fn histogram(bounds: &Arc<[f64]>, w: &Window) -> Result<DeltaHistogram, HistogramError> {
        DeltaHistogram::new(bounds.clone(), w.counts.to_vec(), w.sum)
    }
}

fn insert_at<T>(s: &mut VecDeque<At<T>>, a: At<T>) {
    match s.back() {
        None => s.push_back(a),
        Some(last) if last.at_ms < a.at_ms => s.push_back(a),
        _ => {
            let i = s.partition_point(|x| x.at_ms < a.at_ms);
            match s.get_mut(i) {
                Some(same) if same.at_ms == a.at_ms => *same = a,
                _ => s.insert(i, a),
            }
        }
    }
}

fn prune_before<T>(s: &mut VecDeque<At<T>>, from_ms: i64) {
    while s.front().is_some_and(|a| a.at_ms < from_ms) {
        s.pop_front();
    }
}

fn union_at<T>(a: &mut VecDeque<At<T>>, b: VecDeque<At<T>>) {
    for x in b {
        let i = a.partition_point(|y| y.at_ms < x.at_ms);
        if a.get(i).is_none_or(|y| y.at_ms != x.at_ms) {
            a.insert(i, x);
        }
    }
}

/// A series held by the store.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub samples: Samples,
    /// When this replica last received a point of it (its own clock, milliseconds).
    pub last_seen_ms: i64,
}

impl Series {
    pub fn new(incoming: &Incoming, now_ms: i64) -> Series {
        Series {
            samples: Samples::for_incoming(incoming),
            last_seen_ms: now_ms,
        }
    }

    /// Adds a point stamped `at_ms`, received at `now_ms`, and drops samples stamped before
    /// `keep_from_ms`. A point of another kind (or histogram bounds) than the series' starts
    /// the series again: the metric changed type, so its old samples mean something else.
    pub fn push(&mut self, at_ms: i64, incoming: Incoming, now_ms: i64, keep_from_ms: i64) {
        if !self.samples.accepts(&incoming) {
            self.samples = Samples::for_incoming(&incoming);
        }
        self.samples.insert(at_ms, incoming);
        self.samples.prune(keep_from_ms);
        self.last_seen_ms = self.last_seen_ms.max(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(labels: &[(&str, &str)]) -> SeriesKey {
        SeriesKey::new(
            "m",
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn keys_are_sorted_and_match_selectors() {
        let k = key(&[("pod", "p1"), ("deployment", "d"), ("namespace", "ns")]);
        assert_eq!(
            k,
            key(&[("namespace", "ns"), ("pod", "p1"), ("deployment", "d")])
        );
        assert_eq!(
            k.workload(),
            Some(Workload {
                namespace: "ns".into(),
                deployment: "d".into()
            })
        );
        let sel = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert!(k.matches(&sel(&[("deployment", "d")])));
        assert!(k.matches(&[]));
        assert!(!k.matches(&sel(&[("deployment", "e")])));
        assert!(
            !k.matches(&sel(&[("model", "x")])),
            "a missing label never matches"
        );
        assert_eq!(key(&[("pod", "a"), ("pod", "b")]).label("pod"), Some("b"));
        assert_eq!(key(&[("pod", "a")]).workload(), None);
    }

    #[test]
    fn samples_stay_ordered_once_each_and_within_retention() {
        let mut s = Series::new(&Incoming::Gauge(0.0), 0);
        for (at, v) in [(10, 1.0), (30, 3.0), (20, 2.0), (30, 3.5)] {
            s.push(at, Incoming::Gauge(v), 100, 0);
        }
        let Samples::Gauge(g) = &s.samples else {
            panic!("gauge")
        };
        let got: Vec<(i64, f64)> = g.iter().map(|a| (a.at_ms, a.value)).collect();
        assert_eq!(got, [(10, 1.0), (20, 2.0), (30, 3.5)]);
        s.push(40, Incoming::Gauge(4.0), 200, 25);
        assert_eq!(s.samples.len(), 2);
        assert_eq!(s.last_seen_ms, 200);
        // Another kind starts the series again.
        s.push(
            50,
            Incoming::Delta(Delta {
                value: 1.0,
                interval_ms: 5,
            }),
            300,
            25,
        );
        assert!(matches!(&s.samples, Samples::Delta(d) if d.len() == 1));
    }

    #[test]
    fn union_keeps_each_point_once() {
        let g = |pairs: &[(i64, f64)]| {
            Samples::Gauge(
                pairs
                    .iter()
                    .map(|&(at_ms, value)| At { at_ms, value })
                    .collect(),
            )
        };
        let mut a = g(&[(10, 1.0), (30, 3.0)]);
        a.union(g(&[(20, 2.0), (30, 3.0), (40, 4.0)])).unwrap();
        assert_eq!(a, g(&[(10, 1.0), (20, 2.0), (30, 3.0), (40, 4.0)]));
        assert_eq!(a.since(25), g(&[(30, 3.0), (40, 4.0)]));
        let h = |b: &[f64]| Samples::Histogram {
            bounds: Arc::from(b),
            windows: VecDeque::new(),
        };
        assert!(h(&[1.0]).union(h(&[2.0])).is_err());
    }
}
