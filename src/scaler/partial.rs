//! What one replica holds for a query, and the union of several replicas' holdings.
//!
//! A sidecar's exports go to whichever replica its connection reached, so one series' samples
//! may be spread over replicas (a reconnect moves it). The replica that answers asks its peers
//! for their [`Partial`]s and merges them: the union of the samples, each point once (keyed by
//! the time the sidecar stamped), the latest receive time per series. The union is
//! associative, commutative and idempotent, so the answer does not depend on which replica
//! answers, in which order the peers reply, or on a point held twice.

use std::collections::BTreeMap;

use super::histogram::HistogramError;
use super::series::{Samples, SeriesKey};

/// One series as a replica holds it for a query: its samples in the window and when that
/// replica last received it.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesWindow {
    pub key: SeriesKey,
    pub last_seen_ms: i64,
    pub samples: Samples,
}

#[cfg(test)]
impl SeriesWindow {
    /// Gauge `m` of `pod`, last received at `seen`, with these `(at_ms, value)` points (for
    /// the scaler's unit tests).
    pub fn gauge(pod: &str, seen: i64, points: &[(i64, f64)]) -> SeriesWindow {
        SeriesWindow {
            key: SeriesKey::new("m", vec![("pod".into(), pod.into())]),
            last_seen_ms: seen,
            samples: Samples::Gauge(
                points
                    .iter()
                    .map(|&(at_ms, value)| super::series::At { at_ms, value })
                    .collect(),
            ),
        }
    }
}

/// Every matching series one replica holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Partial {
    pub series: Vec<SeriesWindow>,
}

/// The union of `partials`, one entry per series (in key order). Histograms of one series
/// over different bounds cannot be joined: the error names them.
pub fn merge(partials: Vec<Partial>) -> Result<Vec<SeriesWindow>, HistogramError> {
    let mut by_key: BTreeMap<SeriesKey, SeriesWindow> = BTreeMap::new();
    for p in partials {
        for s in p.series {
            // Joined into an empty copy even when first: samples from the wire end up ordered.
            let held = by_key.entry(s.key.clone()).or_insert_with(|| SeriesWindow {
                key: s.key.clone(),
                last_seen_ms: s.last_seen_ms,
                samples: s.samples.empty_like(),
            });
            held.last_seen_ms = held.last_seen_ms.max(s.last_seen_ms);
            held.samples.union(s.samples)?;
        }
    }
    Ok(by_key.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn series_spread_over_replicas_join() {
        let a = Partial {
            series: vec![
                SeriesWindow::gauge("p1", 10, &[(1, 1.0)]),
                SeriesWindow::gauge("p2", 5, &[(1, 9.0)]),
            ],
        };
        let b = Partial {
            series: vec![SeriesWindow::gauge("p1", 20, &[(2, 2.0), (1, 1.0)])],
        };
        let merged = merge(vec![a, b]).unwrap();
        assert_eq!(
            merged,
            vec![
                SeriesWindow::gauge("p1", 20, &[(1, 1.0), (2, 2.0)]),
                SeriesWindow::gauge("p2", 5, &[(1, 9.0)])
            ]
        );
    }

    proptest! {
        /// Any split of the points over replicas, any order of replies, a point held twice:
        /// the same union.
        #[test]
        fn merge_does_not_depend_on_the_split(
            points in prop::collection::btree_map(0i64..100, 0.0f64..10.0, 0..30),
            owners in prop::collection::vec(0usize..3, 30),
            twice in 0usize..30,
        ) {
            let points: Vec<(i64, f64)> = points.into_iter().collect();
            let mut replicas: Vec<Vec<(i64, f64)>> = vec![Vec::new(); 3];
            for (i, p) in points.iter().enumerate() {
                replicas[owners[i]].push(*p);
            }
            if let Some(p) = points.get(twice) {
                replicas[(owners[twice] + 1) % 3].push(*p);
            }
            let partials: Vec<Partial> = replicas
                .iter()
                .enumerate()
                .map(|(i, pts)| Partial { series: vec![SeriesWindow::gauge("p", i as i64, pts)] })
                .collect();
            let mut reversed = partials.clone();
            reversed.reverse();
            let whole = merge(vec![Partial { series: vec![SeriesWindow::gauge("p", 2, &points)] }]).unwrap();
            prop_assert_eq!(&merge(partials).unwrap(), &whole);
            prop_assert_eq!(&merge(reversed).unwrap(), &whole);
        }
    }
}
