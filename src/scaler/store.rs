//! The series this replica received, bounded: at most so many series per workload and in
//! all, samples kept for the longest window a query may ask, and series whose pods stopped
//! reporting forgotten after a while.
//!
//! Pure: time comes in as milliseconds, and every decision (accept, drop, forget) is returned
//! for the caller to count and log.

use std::collections::HashMap;

use super::partial::{Partial, SeriesWindow};
use super::series::{Incoming, Samples, Series, SeriesKey, Workload};

/// A data point ready for the store: a series, the time the sidecar stamped, its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub key: SeriesKey,
    pub workload: Workload,
    pub at_ms: i64,
    pub value: Incoming,
}

/// The store's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Series one workload may hold (its pods × its metrics × their label sets).
    pub series_per_workload: usize,
    /// Series in all.
    pub total_series: usize,
    /// How long samples are kept: the longest window a query may ask.
    pub retention_ms: i64,
    /// A series not received for this long is forgotten (a pod that is gone).
    pub forget_after_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            series_per_workload: 2_000,
            total_series: 500_000,
            retention_ms: 5 * 60 * 1000,
            forget_after_ms: 10 * 60 * 1000,
        }
    }
}

/// Which limit dropped data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Limit {
    SeriesPerWorkload,
    TotalSeries,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::SeriesPerWorkload => "series_per_workload",
            Limit::TotalSeries => "total_series",
        }
    }
}

/// What one ingest did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IngestReport {
    /// Points stored.
    pub accepted: usize,
    /// New series created.
    pub created: usize,
    /// Points dropped because a new series would pass a limit: per workload and limit.
    pub dropped: Vec<(Workload, Limit, usize)>,
    /// Workloads that received points (for prompt activity pushes).
    pub touched: Vec<Workload>,
}

impl IngestReport {
    fn drop_point(&mut self, w: &Workload, limit: Limit) {
        match self
            .dropped
            .iter_mut()
            .find(|(dw, l, _)| dw == w && *l == limit)
        {
            Some((_, _, n)) => *n += 1,
            None => self.dropped.push((w.clone(), limit, 1)),
        }
    }

    /// Points dropped in all.
    pub fn dropped_points(&self) -> usize {
        self.dropped.iter().map(|(_, _, n)| n).sum()
    }
}

/// Which series a query reads, and over which span.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub metric: String,
    pub selector: Vec<(String, String)>,
    pub window_ms: i64,
}

impl Selection {
    /// The workload the selector names, when it names both `namespace` and `deployment`.
    pub fn workload(&self) -> Option<Workload> {
        let get = |k: &str| {
            self.selector
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        Some(Workload {
            namespace: get(super::series::NAMESPACE)?,
            deployment: get(super::series::DEPLOYMENT)?,
        })
    }
}

/// The series, by workload.
#[derive(Debug, Default)]
pub struct Store {
    workloads: HashMap<Workload, HashMap<SeriesKey, Series>>,
    total: usize,
    limits: Limits,
}

impl Store {
    pub fn new(limits: Limits) -> Store {
        Store {
            workloads: HashMap::new(),
            total: 0,
            limits,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Series held.
    pub fn series_count(&self) -> usize {
        self.total
    }

    /// Workloads with at least one series.
    pub fn workload_count(&self) -> usize {
        self.workloads.len()
    }

    /// Stores `points` received at `now_ms`. A point of a series already held is always
    /// stored; one that would start a new series past a limit is dropped and reported.
    pub fn ingest(&mut self, points: Vec<Point>, now_ms: i64) -> IngestReport {
        let mut report = IngestReport::default();
        let keep_from = now_ms - self.limits.retention_ms;
        for p in points {
            if !report.touched.contains(&p.workload) {
                report.touched.push(p.workload.clone());
            }
            let held = self.workloads.get(&p.workload).map_or(0, HashMap::len);
            let series = self.workloads.entry(p.workload.clone()).or_default();
            if let Some(s) = series.get_mut(&p.key) {
                s.push(p.at_ms, p.value, now_ms, keep_from);
                report.accepted += 1;
                continue;
            }
            let limit = if held >= self.limits.series_per_workload {
                Some(Limit::SeriesPerWorkload)
            } else if self.total >= self.limits.total_series {
                Some(Limit::TotalSeries)
            } else {
                None
            };
            if let Some(limit) = limit {
                if series.is_empty() {
                    self.workloads.remove(&p.workload);
                }
                report.drop_point(&p.workload, limit);
                continue;
            }
            let mut s = Series::new(&p.value, now_ms);
            s.push(p.at_ms, p.value, now_ms, keep_from);
            series.insert(p.key, s);
            self.total += 1;
            report.created += 1;
            report.accepted += 1;
        }
        report
    }

    /// Forgets series not received since `now_ms - forget_after`; returns how many.
    pub fn forget(&mut self, now_ms: i64) -> usize {
        let cutoff = now_ms - self.limits.forget_after_ms;
        let mut forgotten = 0;
        self.workloads.retain(|_, series| {
            let before = series.len();
            series.retain(|_, s| s.last_seen_ms >= cutoff);
            forgotten += before - series.len();
            !series.is_empty()
        });
        self.total -= forgotten;
        forgotten
    }

    /// What this replica holds for `sel` at `now_ms`: every matching series with its samples
    /// of the window and when it was last received. `X_count` and `X_sum` read the histogram
    /// `X`'s windows as counters.
    pub fn partial(&self, sel: &Selection, now_ms: i64) -> Partial {
        let from = now_ms - sel.window_ms;
        let mut out = Partial::default();
        let mut visit = |series: &HashMap<SeriesKey, Series>| {
            for (key, s) in series {
                if !key.matches(&sel.selector) {
                    continue;
                }
                if let Some(samples) = read_as(key, &s.samples, &sel.metric, from) {
                    out.series.push(SeriesWindow {
                        key: key.renamed(&sel.metric),
                        last_seen_ms: s.last_seen_ms,
                        samples,
                    });
                }
            }
        };
        match sel.workload() {
            Some(w) => {
                if let Some(series) = self.workloads.get(&w) {
                    visit(series);
                }
            }
            None => self.workloads.values().for_each(visit),
        }
        out
    }
}

/// The samples of series `key` since `from` as metric `metric` reads them: the series itself,
/// or a histogram's count or sum per window as delta counters.
fn read_as(key: &SeriesKey, samples: &Samples, metric: &str, from: i64) -> Option<Samples> {
    if key.metric == metric {
        return Some(samples.since(from));
    }
    let (base, field) = metric
        .strip_suffix("_count")
        .map(|b| (b, HistogramField::Count))
        .or_else(|| {
            metric
                .strip_suffix("_sum")
                .map(|b| (b, HistogramField::Sum))
        })?;
    if key.metric != base {
        return None;
    }
    let Samples::Histogram { windows, .. } = samples else {
        return None;
    };
    Some(Samples::Delta(
        windows
            .iter()
            .filter(|w| w.at_ms >= from)
            .map(|w| super::series::At {
                at_ms: w.at_ms,
                value: super::series::Delta {
                    value: match field {
                        HistogramField::Count => w.value.counts.iter().sum::<u64>() as f64,
                        HistogramField::Sum => w.value.sum,
                    },
                    interval_ms: w.value.interval_ms,
                },
            })
            .collect(),
    ))
}

#[derive(Clone, Copy)]
enum HistogramField {
    Count,
    Sum,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scaler::series::{Delta, Window};

    fn workload(d: &str) -> Workload {
        Workload {
            namespace: "ns".into(),
            deployment: d.into(),
        }
    }

    fn point(metric: &str, d: &str, pod: &str, at_ms: i64, v: f64) -> Point {
        let w = workload(d);
        Point {
            key: SeriesKey::new(
                metric,
                vec![
                    ("namespace".into(), w.namespace.clone()),
                    ("deployment".into(), w.deployment.clone()),
                    ("pod".into(), pod.into()),
                ],
            ),
            workload: w,
            at_ms,
            value: Incoming::Gauge(v),
        }
    }

    fn sel(metric: &str, d: &str, window_ms: i64) -> Selection {
        Selection {
            metric: metric.into(),
            selector: vec![
                ("deployment".into(), d.into()),
                ("namespace".into(), "ns".into()),
            ],
            window_ms,
        }
    }

    fn limits(per_workload: usize, total: usize) -> Limits {
        Limits {
            series_per_workload: per_workload,
            total_series: total,
            retention_ms: 60_000,
            forget_after_ms: 120_000,
        }
    }

    #[test]
    fn limits_drop_new_series_and_say_which() {
        let mut s = Store::new(limits(2, 3));
        let r = s.ingest(
            vec![
                point("m", "a", "p1", 1, 1.0),
                point("m", "a", "p2", 1, 1.0),
                point("m", "a", "p3", 1, 1.0),
                point("m", "b", "p1", 1, 1.0),
                point("m", "c", "p1", 1, 1.0),
                // An existing series still takes points at the limit.
                point("m", "a", "p1", 2, 2.0),
            ],
            10,
        );
        assert_eq!(r.accepted, 4);
        assert_eq!(r.created, 3);
        assert_eq!(
            r.dropped,
            vec![
                (workload("a"), Limit::SeriesPerWorkload, 1),
                (workload("c"), Limit::TotalSeries, 1)
            ]
        );
        assert_eq!(r.dropped_points(), 2);
        assert_eq!(s.series_count(), 3);
        assert_eq!(
            s.workload_count(),
            2,
            "a dropped workload leaves no empty entry"
        );
    }

    #[test]
    fn vanished_pods_are_forgotten() {
        let mut s = Store::new(limits(10, 10));
        s.ingest(vec![point("m", "a", "old", 0, 1.0)], 0);
        s.ingest(vec![point("m", "a", "new", 100_000, 1.0)], 100_000);
        assert_eq!(s.forget(130_000), 1);
        assert_eq!(s.series_count(), 1);
        assert_eq!(s.forget(300_000), 1);
        assert_eq!(s.workload_count(), 0);
    }

    #[test]
    fn partial_reads_the_window_of_matching_series() {
        let mut s = Store::new(limits(10, 10));
        for at in [0, 10_000, 20_000, 30_000] {
            s.ingest(
                vec![
                    point("m", "a", "p1", at, at as f64),
                    point("m", "b", "p1", at, 0.0),
                    point("other", "a", "p1", at, 0.0),
                ],
                at,
            );
        }
        let p = s.partial(&sel("m", "a", 15_000), 30_000);
        assert_eq!(p.series.len(), 1);
        assert_eq!(p.series[0].samples.len(), 2, "the samples at 20 s and 30 s");
        assert_eq!(p.series[0].last_seen_ms, 30_000);
        // Without a workload in the selector every workload is read.
        let all = Selection {
            metric: "m".into(),
            selector: vec![("pod".into(), "p1".into())],
            window_ms: 60_000,
        };
        assert_eq!(s.partial(&all, 30_000).series.len(), 2);
        // Retention: nothing older than a minute is kept.
        s.ingest(vec![point("m", "a", "p1", 100_000, 1.0)], 100_000);
        let p = s.partial(&sel("m", "a", 1_000_000), 100_000);
        assert_eq!(p.series[0].samples.len(), 1);
    }

    #[test]
    fn a_histograms_count_and_sum_read_as_counters() {
        let mut s = Store::new(limits(10, 10));
        let mut p = point("h", "a", "p1", 5_000, 0.0);
        p.value = Incoming::Histogram {
            bounds: vec![1.0],
            window: Window {
                counts: vec![3, 1].into_boxed_slice(),
                sum: 4.5,
                interval_ms: 5_000,
            },
        };
        s.ingest(vec![p], 5_000);
        let count = s.partial(&sel("h_count", "a", 60_000), 5_000);
        assert_eq!(count.series[0].key.metric, "h_count");
        let Samples::Delta(d) = &count.series[0].samples else {
            panic!("delta")
        };
        assert_eq!(
            d[0].value,
            Delta {
                value: 4.0,
                interval_ms: 5_000
            }
        );
        let sum = s.partial(&sel("h_sum", "a", 60_000), 5_000);
        let Samples::Delta(d) = &sum.series[0].samples else {
            panic!("delta")
        };
        assert_eq!(d[0].value.value, 4.5);
        assert!(
            s.partial(&sel("g_count", "a", 60_000), 5_000)
                .series
                .is_empty()
        );
    }
}
