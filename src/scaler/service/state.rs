//! The running scaler's state: the store behind a lock, the clock, the trust key, the
//! activity notifications and the peers; the pure core does the deciding.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use tokio::sync::Notify;

use super::metrics::{ACCEPTED, ScalerMetrics};
use super::peers::Peers;
use crate::scaler::answer::{Answer, AnswerError, evaluate};
use crate::scaler::partial::{self, Partial};
use crate::scaler::points::{Rejection, decode};
use crate::scaler::query::Query;
use crate::scaler::series::Workload;
use crate::scaler::store::{Limit, Limits, Selection, Store};
use crate::scaler::trust::{self, TrustKey};

/// How often a limit that keeps dropping one workload's points is logged.
const DROP_LOG_EVERY: Duration = Duration::from_secs(60);

/// Milliseconds since the epoch, this replica's clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What the answering side needs besides the store.
#[derive(Clone, Debug)]
pub struct Behaviour {
    /// A series not received for this long does not answer; none left is an error.
    pub staleness: Duration,
    pub limits: Limits,
}

/// One replica of the scaler.
pub struct Scaler {
    store: RwLock<Store>,
    behaviour: Behaviour,
    /// Keys a token may be signed with (several while one is rotated); none: no check.
    trust: Vec<TrustKey>,
    pub metrics: ScalerMetrics,
    activity: Mutex<HashMap<Workload, Arc<Notify>>>,
    peers: Peers,
    drops_logged: Mutex<HashMap<(Workload, Limit), Instant>>,
}

/// What one export did, for the OTLP answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    pub accepted: usize,
    /// Refused or dropped (the OTLP partial-success count).
    pub rejected: usize,
    /// Of those, refused for a missing or wrong credential.
    pub untrusted: usize,
}

impl Scaler {
    pub fn new(
        behaviour: Behaviour,
        trust: Vec<TrustKey>,
        metrics: ScalerMetrics,
        peers: Peers,
    ) -> Scaler {
        Scaler {
            store: RwLock::new(Store::new(behaviour.limits)),
            behaviour,
            trust,
            metrics,
            activity: Mutex::new(HashMap::new()),
            peers,
            drops_logged: Mutex::new(HashMap::new()),
        }
    }

    pub fn trusts(&self) -> bool {
        !self.trust.is_empty()
    }

    /// Checks and stores one export; `authorization` is the header the sidecar sent.
    pub fn ingest(
        &self,
        request: &ExportMetricsServiceRequest,
        authorization: Option<&str>,
    ) -> Ingested {
        let started = Instant::now();
        let mut decoded = decode(request);
        trust::admit(
            &mut decoded,
            &self.trust,
            authorization.and_then(trust::bearer),
        );
        for (why, n) in &decoded.rejected {
            self.metrics.points(why.as_str(), *n);
        }
        let rejected = decoded.rejected_points();
        let untrusted = decoded
            .rejected
            .iter()
            .filter(|(why, _)| *why == Rejection::Untrusted)
            .map(|(_, n)| n)
            .sum();
        let report = {
            let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
            let report = store.ingest(decoded.points, now_ms());
            self.metrics.series.set(store.series_count() as i64);
            self.metrics.workloads.set(store.workload_count() as i64);
            report
        };
        self.metrics.points(ACCEPTED, report.accepted);
        for (w, limit, n) in &report.dropped {
            self.metrics.points(limit.as_str(), *n);
            self.log_drop(w, *limit, *n);
        }
        self.notify(&report.touched);
        self.metrics.ingested(started.elapsed());
        Ingested {
            accepted: report.accepted,
            rejected: rejected + report.dropped_points(),
            untrusted,
        }
    }

    /// One line per workload and limit per [`DROP_LOG_EVERY`]: which limit, how much.
    fn log_drop(&self, w: &Workload, limit: Limit, n: usize) {
        let mut logged = self
            .drops_logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = (w.clone(), limit);
        if logged
            .get(&key)
            .is_some_and(|at| at.elapsed() < DROP_LOG_EVERY)
        {
            return;
        }
        logged.insert(key, Instant::now());
        let limits = self.behaviour.limits;
        tracing::warn!(
            workload = %w,
            limit = limit.as_str(),
            series_per_workload = limits.series_per_workload,
            total_series = limits.total_series,
            dropped_points = n,
            "scaler: a series limit is dropping new series' points (existing series keep their data); raise --series-per-workload / --total-series or send fewer series"
        );
    }

    /// Forgets series of pods that stopped reporting; returns how many.
    pub fn forget(&self) -> usize {
        let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
        let n = store.forget(now_ms());
        self.metrics.series.set(store.series_count() as i64);
        self.metrics.workloads.set(store.workload_count() as i64);
        self.metrics.forgotten.inc_by(n as u64);
        n
    }

    /// This replica's own holdings for `sel` at `now_ms` (also what peers are given).
    pub fn holdings(&self, sel: &Selection, now_ms: i64) -> Partial {
        self.store
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .partial(sel, now_ms)
    }

    /// The answer to `q`: this replica's holdings and its peers', merged.
    pub async fn answer(&self, q: &Query) -> Result<Answer, AnswerError> {
        let max = self.behaviour.limits.retention_ms;
        if q.selection.window_ms > max {
            return Err(AnswerError::WindowTooLong {
                window_seconds: q.selection.window_ms / 1000,
                retention_seconds: max / 1000,
            });
        }
        let now = now_ms();
        let mut partials = vec![self.holdings(&q.selection, now)];
        partials.extend(self.peers.holdings(&q.selection, now, &self.metrics).await);
        let series = partial::merge(partials).map_err(|source| AnswerError::Histogram {
            metric: q.selection.metric.clone(),
            source,
        })?;
        evaluate(
            q,
            &series,
            now,
            i64::try_from(self.behaviour.staleness.as_millis()).unwrap_or(i64::MAX),
        )
    }

    /// Signalled whenever `w` receives points (for `StreamIsActive`).
    pub fn activity_of(&self, w: &Workload) -> Arc<Notify> {
        let mut map = self.activity.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(w.clone()).or_default().clone()
    }

    /// Drops `w`'s notification when no stream waits on it any more.
    pub fn release_activity(&self, w: &Workload) {
        let mut map = self.activity.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(w).is_some_and(|n| Arc::strong_count(n) == 1) {
            map.remove(w);
        }
    }

    fn notify(&self, touched: &[Workload]) {
        let map = self.activity.lock().unwrap_or_else(PoisonError::into_inner);
        if map.is_empty() {
            return;
        }
        for w in touched {
            if let Some(n) = map.get(w) {
                n.notify_waiters();
            }
        }
    }
}
