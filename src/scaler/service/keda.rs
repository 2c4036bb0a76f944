//! KEDA's external scaler (proto/externalscaler.proto) answered from the store, and the peer
//! protocol's `Holdings`.
//!
//! How KEDA calls it (kedacore/keda v2.21.0 pkg/scalers/external_scaler.go): `GetMetricSpec`
//! for the HPA's target (KEDA prefixes the metric name with `s<trigger index>-` and strips it
//! again before `GetMetrics`); `GetMetricsAndActivity` calls `GetMetrics`, then `IsActive`,
//! and any error fails the read (counted towards `fallback`); an `external-push` trigger also
//! holds `StreamIsActive` open, and KEDA's scale loop activates the workload on every `true`
//! it receives (pkg/scaling/scale_handler.go, `startPushScalers`: `false` is ignored there,
//! deactivation goes through the polled path). `StreamMetricSpec` is optional: Unimplemented
//! makes KEDA keep polling `GetMetricSpec`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use tonic::{Request, Response, Status};

use super::proto::externalscaler::external_scaler_server::ExternalScaler;
use super::proto::externalscaler::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec,
    MetricValue, ScaledObjectRef,
};
use super::proto::peer;
use super::proto::peer::scaler_peer_server::ScalerPeer;
use super::state::Scaler;
use super::wire;
use crate::scaler::answer::{Answer, AnswerError, Demand};
use crate::scaler::query::{Query, Reading};

/// `StreamIsActive` looks again at least this often (staleness can change the answer without
/// new points) ...
const STREAM_RECHECK: Duration = Duration::from_secs(1);
/// ... and at most this often, however fast points arrive.
const STREAM_MIN_GAP: Duration = Duration::from_millis(200);

pub struct KedaScaler(pub Arc<Scaler>);

/// The query of a `ScaledObjectRef`, or `InvalidArgument` listing every problem.
fn query_of(r: &ScaledObjectRef) -> Result<Query, Status> {
    let metadata = r
        .scaler_metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Query::from_metadata(&metadata).map_err(|problems| {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        Status::invalid_argument(format!(
            "ScaledObject {}/{}: {}",
            r.namespace,
            r.name,
            text.join("; ")
        ))
    })
}

/// The metric name given to KEDA: the query's metric (and percentile) in the characters a
/// Kubernetes metric name allows, e.g. `vllm-num-requests-waiting`,
/// `vllm-time-to-first-token-seconds-p90`.
pub fn metric_name(q: &Query) -> String {
    let mut name: String = q
        .selection
        .metric
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if let Reading::Percentile { percentile, .. } = &q.reading {
        name.push_str(&percentile.suffix().replace('_', "-"));
    }
    name.trim_matches('-').to_string()
}

fn status_of(e: &AnswerError) -> Status {
    match e {
        AnswerError::NoSeries { .. } => Status::not_found(e.to_string()),
        AnswerError::Stale { .. } | AnswerError::EmptyWindow { .. } => {
            Status::unavailable(e.to_string())
        }
        _ => Status::failed_precondition(e.to_string()),
    }
}

fn outcome(a: &Result<Answer, AnswerError>) -> &'static str {
    match a {
        Ok(Answer {
            demand: Demand::NoDemand { .. },
            ..
        }) => "no_demand",
        Ok(_) => "value",
        Err(_) => "error",
    }
}

impl KedaScaler {
    /// Answers `r` for `rpc`, counting the outcome and its time.
    async fn answer(&self, rpc: &'static str, r: &ScaledObjectRef) -> Result<Answer, Status> {
        let started = Instant::now();
        let q = match query_of(r) {
            Ok(q) => q,
            Err(status) => {
                self.0.metrics.answered(rpc, "invalid", started.elapsed());
                return Err(status);
            }
        };
        let a = self.0.answer(&q).await;
        self.0.metrics.answered(rpc, outcome(&a), started.elapsed());
        a.map_err(|e| {
            tracing::debug!(scaled_object = %format!("{}/{}", r.namespace, r.name), error = %e, "scaler: no answer");
            status_of(&e)
        })
    }
}

type Pushed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalScaler for KedaScaler {
    async fn is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        let a = self.answer("IsActive", request.get_ref()).await?;
        Ok(Response::new(IsActiveResponse { result: a.active }))
    }

    type StreamIsActiveStream = Pushed<IsActiveResponse>;

    /// Sends the activity at once, then each time it changes: looked at again when the
    /// workload's points arrive (at most every 200 ms) and every second. An error sends
    /// nothing (KEDA ignores `false` here, and its polled reads report the error).
    async fn stream_is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let r = request.into_inner();
        let q = query_of(&r)?;
        let scaler = self.0.clone();
        let workload = q.selection.workload();
        let stream = futures::stream::unfold(
            (scaler, q, workload, None::<bool>),
            |(scaler, q, workload, last)| async move {
                let notify = workload.as_ref().map(|w| scaler.activity_of(w));
                let mut last = last;
                loop {
                    if let Ok(a) = scaler.answer(&q).await {
                        if last != Some(a.active) {
                            last = Some(a.active);
                            let item = Ok(IsActiveResponse { result: a.active });
                            drop(notify);
                            return Some((item, (scaler, q, workload, last)));
                        }
                    }
                    match &notify {
                        Some(n) => {
                            let _ = tokio::time::timeout(STREAM_RECHECK, n.notified()).await;
                        }
                        None => tokio::time::sleep(STREAM_RECHECK).await,
                    }
                    tokio::time::sleep(STREAM_MIN_GAP).await;
                }
            },
        );
        Ok(Response::new(Box::pin(StreamGuard {
            inner: Box::pin(stream),
            release: Some((self.0.clone(), workload_of(&r))),
        })))
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        let q = query_of(request.get_ref())?;
        Ok(Response::new(GetMetricSpecResponse {
            metric_specs: vec![MetricSpec {
                metric_name: metric_name(&q),
                // KEDA reads the float when it is set (`TargetSizeFloat > 0`), the integer
                // otherwise (external_scaler.go, buildMetricSpecs).
                target_size: q.target.ceil() as i64,
                target_size_float: q.target,
            }],
        }))
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let req = request.into_inner();
        let r = req
            .scaled_object_ref
            .ok_or_else(|| Status::invalid_argument("scaledObjectRef is missing"))?;
        let a = self.answer("GetMetrics", &r).await?;
        Ok(Response::new(GetMetricsResponse {
            metric_values: vec![MetricValue {
                metric_name: req.metric_name,
                metric_value: a.value.ceil() as i64,
                metric_value_float: a.value,
            }],
        }))
    }

    type StreamMetricSpecStream = Pushed<GetMetricSpecResponse>;

    /// Targets never change without a new ScaledObject: KEDA keeps polling `GetMetricSpec`.
    async fn stream_metric_spec(
        &self,
        _request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamMetricSpecStream>, Status> {
        Err(Status::unimplemented(
            "targets come from the trigger's metadata: poll GetMetricSpec",
        ))
    }
}

fn workload_of(r: &ScaledObjectRef) -> Option<crate::scaler::series::Workload> {
    query_of(r).ok()?.selection.workload()
}

/// Releases the workload's notification when KEDA closes the stream.
struct StreamGuard {
    inner: Pushed<IsActiveResponse>,
    release: Option<(Arc<Scaler>, Option<crate::scaler::series::Workload>)>,
}

impl Stream for StreamGuard {
    type Item = Result<IsActiveResponse, Status>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        // The stream's own handle on the notification went with `inner`.
        self.inner = Box::pin(futures::stream::empty());
        if let Some((scaler, Some(w))) = self.release.take() {
            scaler.release_activity(&w);
        }
    }
}

pub struct PeerService(pub Arc<Scaler>);

#[tonic::async_trait]
impl ScalerPeer for PeerService {
    async fn holdings(
        &self,
        request: Request<peer::Selection>,
    ) -> Result<Response<peer::Partial>, Status> {
        let (sel, now_ms) = wire::selection_from_wire(request.into_inner());
        Ok(Response::new(wire::partial_to_wire(
            &self.0.holdings(&sel, now_ms),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_kubernetes_accepts() {
        let q = |pairs: &[(&str, &str)]| {
            Query::from_metadata(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
            .unwrap()
        };
        assert_eq!(
            metric_name(&q(&[
                (
                    "metricQuery",
                    "sum(vllm:num_requests_waiting{deployment=d})"
                ),
                ("targetValue", "5")
            ])),
            "vllm-num-requests-waiting"
        );
        assert_eq!(
            metric_name(&q(&[
                (
                    "metricQuery",
                    "vllm:time_to_first_token_seconds{deployment=d}"
                ),
                ("percentile", "99.9"),
                ("targetValue", "1")
            ])),
            "vllm-time-to-first-token-seconds-p99-9"
        );
    }
}
