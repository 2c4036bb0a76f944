//! [`Partial`] and [`Selection`] to and from the peer protocol's messages.

use std::collections::VecDeque;
use std::sync::Arc;

use super::proto::peer;
use crate::scaler::partial::{Partial, SeriesWindow};
use crate::scaler::series::{At, Delta, Samples, SeriesKey, Window};
use crate::scaler::store::Selection;

fn labels_to_wire(labels: &[(String, String)]) -> Vec<peer::Label> {
    labels
        .iter()
        .map(|(key, value)| peer::Label {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

fn labels_from_wire(labels: Vec<peer::Label>) -> Vec<(String, String)> {
    labels.into_iter().map(|l| (l.key, l.value)).collect()
}

/// The request for `sel` as the asking replica sees it at `now_ms`.
pub fn selection_to_wire(sel: &Selection, now_ms: i64) -> peer::Selection {
    peer::Selection {
        metric: sel.metric.clone(),
        selector: labels_to_wire(&sel.selector),
        window_ms: sel.window_ms,
        now_ms,
    }
}

/// The selection and the asking replica's clock.
pub fn selection_from_wire(s: peer::Selection) -> (Selection, i64) {
    (
        Selection {
            metric: s.metric,
            selector: labels_from_wire(s.selector),
            window_ms: s.window_ms,
        },
        s.now_ms,
    )
}

pub fn partial_to_wire(p: &Partial) -> peer::Partial {
    peer::Partial {
        series: p.series.iter().map(series_to_wire).collect(),
    }
}

fn series_to_wire(s: &SeriesWindow) -> peer::SeriesWindow {
    use peer::series_window::Samples as W;
    let samples = match &s.samples {
        Samples::Gauge(g) => W::Gauges(peer::Gauges {
            at_ms: g.iter().map(|a| a.at_ms).collect(),
            value: g.iter().map(|a| a.value).collect(),
        }),
        Samples::Delta(d) => W::Deltas(peer::Deltas {
            at_ms: d.iter().map(|a| a.at_ms).collect(),
            value: d.iter().map(|a| a.value.value).collect(),
            interval_ms: d.iter().map(|a| a.value.interval_ms).collect(),
        }),
        Samples::Histogram { bounds, windows } => W::Histograms(peer::Histograms {
            bounds: bounds.to_vec(),
            windows: windows
                .iter()
                .map(|w| peer::HistogramWindow {
                    at_ms: w.at_ms,
                    counts: w.value.counts.to_vec(),
                    sum: w.value.sum,
                    interval_ms: w.value.interval_ms,
                })
                .collect(),
        }),
    };
    peer::SeriesWindow {
        metric: s.key.metric.clone(),
        labels: labels_to_wire(s.key.labels()),
        last_seen_ms: s.last_seen_ms,
        samples: Some(samples),
    }
}

/// A peer's holdings; series without samples or with mismatched columns are left out.
pub fn partial_from_wire(p: peer::Partial) -> Partial {
    Partial {
        series: p.series.into_iter().filter_map(series_from_wire).collect(),
    }
}

fn series_from_wire(s: peer::SeriesWindow) -> Option<SeriesWindow> {
    use peer::series_window::Samples as W;
    let samples = match s.samples? {
        W::Gauges(g) if g.at_ms.len() == g.value.len() => Samples::Gauge(
            g.at_ms
                .into_iter()
                .zip(g.value)
                .map(|(at_ms, value)| At { at_ms, value })
                .collect(),
        ),
        W::Deltas(d) if d.at_ms.len() == d.value.len() && d.value.len() == d.interval_ms.len() => {
            Samples::Delta(
                d.at_ms
                    .into_iter()
                    .zip(d.value)
                    .zip(d.interval_ms)
                    .map(|((at_ms, value), interval_ms)| At {
                        at_ms,
                        value: Delta { value, interval_ms },
                    })
                    .collect(),
            )
        }
        W::Histograms(h) => {
            let shape = h.bounds.len() + 1;
            let windows: VecDeque<At<Window>> = h
                .windows
                .into_iter()
                .filter(|w| w.counts.len() == shape)
                .map(|w| At {
                    at_ms: w.at_ms,
                    value: Window {
                        counts: w.counts.into_boxed_slice(),
                        sum: w.sum,
                        interval_ms: w.interval_ms,
                    },
                })
                .collect();
            Samples::Histogram {
                bounds: Arc::from(h.bounds),
                windows,
            }
        }
        _ => return None,
    };
    Some(SeriesWindow {
        key: SeriesKey::new(s.metric, labels_from_wire(s.labels)),
        last_seen_ms: s.last_seen_ms,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partials_survive_the_wire() {
        let key = SeriesKey::new("m", vec![("pod".into(), "p".into())]);
        let p = Partial {
            series: vec![
                SeriesWindow {
                    key: key.clone(),
                    last_seen_ms: 9,
                    samples: Samples::Gauge(
                        [At {
                            at_ms: 1,
                            value: 2.0,
                        }]
                        .into(),
                    ),
                },
                SeriesWindow {
                    key: key.renamed("c"),
                    last_seen_ms: 9,
                    samples: Samples::Delta(
                        [At {
                            at_ms: 1,
                            value: Delta {
                                value: 3.0,
                                interval_ms: 5,
                            },
                        }]
                        .into(),
                    ),
                },
                SeriesWindow {
                    key: key.renamed("h"),
                    last_seen_ms: 9,
                    samples: Samples::Histogram {
                        bounds: Arc::from(&[1.0][..]),
                        windows: [At {
                            at_ms: 1,
                            value: Window {
                                counts: vec![1, 2].into_boxed_slice(),
                                sum: 2.5,
                                interval_ms: 5,
                            },
                        }]
                        .into(),
                    },
                },
            ],
        };
        assert_eq!(partial_from_wire(partial_to_wire(&p)), p);
        let sel = Selection {
            metric: "m".into(),
            selector: vec![("a".into(), "b".into())],
            window_ms: 60_000,
        };
        assert_eq!(selection_from_wire(selection_to_wire(&sel, 7)), (sel, 7));
    }
}
