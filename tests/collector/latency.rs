//! A latency trigger's sidecar in a real collector: the fake vLLM's time-to-first-token
//! histogram grows at every scrape by a known distribution (fast, then half slow, then fast
//! again, then a trickle of requests, then none), and the collector running the rendered
//! configuration must send, per pod, the p90 of each scrape window — within the bucket
//! interpolation error of the true percentile of the window's requests — back down once the
//! slow phase ends (where a p90 since the server started stays up), and nothing for windows
//! with too few requests or none.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;

use super::fake_vllm::{FakeVllm, MODEL_NAME, Values};
use super::latency_histogram::{Phase, bucket_width, percentile};
use super::otlp_sink::{OtlpSink, Point};
use super::process::{self, Collector};
use super::{
    DEPLOYMENT, NAMESPACE, PODS, WAIT, model_server_ips, pod_ips, render_sidecar, start_collectors,
};

const GAUGE: &str = "vllm:time_to_first_token_seconds_p90";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_percentile_follows_the_window() {
    let binary = tokio::task::spawn_blocking(process::build)
        .await
        .expect("collector build");
    let ips = pod_ips(3);
    let vllm = FakeVllm::start(&model_server_ips(&ips), Values::default())
        .await
        .expect("fake vLLM server");
    vllm.set_latency_phase(Phase::Fast);
    let sink = OtlpSink::start().await.expect("OTLP sink");

    let mut deployment = super::vllm_deployment(vllm.port());
    deployment["metadata"]["annotations"]["llm-autoscale.io/preset"] = json!("ttft-p90");
    let (template, sidecar) = render_sidecar(&deployment, &sink.endpoint());
    let mut collectors = start_collectors(&binary, &template, &sidecar, &ips, &BTreeMap::new());

    let mut phases = Phases {
        sink: &sink,
        vllm: &vllm,
        collectors: &mut collectors,
    };
    phases.expect_windows(Phase::Fast).await;
    phases.expect_windows(Phase::Slow).await;
    phases.expect_windows(Phase::Fast).await;
    // The p90 since the server started is still in the slow range: only the window came down.
    let since_start = percentile(&vllm.latency_histogram().unwrap().observed, 90.0);
    assert!(
        since_start > 1.0,
        "the p90 since start should still be slow, is {since_start}"
    );
    phases.expect_silence(Phase::Trickle).await;
    phases.expect_silence(Phase::Idle).await;

    let points = sink.points();
    let names: BTreeSet<&str> = points.iter().map(|p| p.metric.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([GAUGE]),
        "only the percentile gauge is sent"
    );
    for p in &points {
        assert!(PODS.contains(&p.attr("pod").unwrap_or_default()), "{p:?}");
        assert_eq!(p.attr("deployment"), Some(DEPLOYMENT), "{p:?}");
        assert_eq!(p.attr("namespace"), Some(NAMESPACE), "{p:?}");
        assert_eq!(p.attr("model_name"), Some(MODEL_NAME), "{p:?}");
    }
    for c in &mut collectors {
        c.assert_running();
        // Component names as this collector version spells them (cumulative_to_delta, not
        // the deprecated cumulativetodelta alias).
        assert!(
            !c.log().contains("is deprecated"),
            "collector {} warns about a deprecated name:\n{}",
            c.label(),
            c.log()
        );
    }
}

struct Phases<'a> {
    sink: &'a OtlpSink,
    vllm: &'a FakeVllm,
    collectors: &'a mut Vec<Collector>,
}

impl Phases<'_> {
    /// Switches to `phase` and waits for four windows per pod; the last two (every request in
    /// them of this phase) must be the phase's p90 within the interpolation error.
    async fn expect_windows(&mut self, phase: Phase) {
        self.vllm.set_latency_phase(phase);
        let from = self.sink.points().len();
        let per_pod = self
            .wait(&format!("four {phase:?} windows per pod"), |points| {
                let by_pod = gauges_by_pod(points.get(from..).unwrap_or_default());
                (PODS
                    .iter()
                    .all(|p| by_pod.get(*p).is_some_and(|v| v.len() >= 4)))
                .then_some(by_pod)
            })
            .await;
        let truth = phase.true_percentile(90.0);
        let error = bucket_width(truth);
        eprintln!("{phase:?}: true p90 {truth}, windows per pod {per_pod:?}");
        for (pod, values) in per_pod {
            for v in values.iter().rev().take(2) {
                assert!(
                    (v - truth).abs() <= error,
                    "{pod}, {phase:?}: p90 {v} is not within {error} of the window's true p90 {truth} ({values:?})"
                );
            }
        }
    }

    /// Switches to `phase` (fewer requests per window than the minimum) and checks that no
    /// percentile is sent once its windows hold only its requests.
    async fn expect_silence(&mut self, phase: Phase) {
        self.vllm.set_latency_phase(phase);
        // Three scrapes per pod: from then on every window is of this phase alone.
        let settled = self.vllm.scrapes() + 3 * PODS.len() as u64;
        self.wait_for_scrapes(settled).await;
        let before = gauges(&self.sink.points()).len();
        let later = self.vllm.scrapes() + 3 * PODS.len() as u64;
        self.wait_for_scrapes(later).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let points = self.sink.points();
        let after = gauges(&points);
        assert_eq!(
            after.len(),
            before,
            "{phase:?}: windows of {} requests sent a percentile: {:?}",
            phase.batch().len(),
            after.get(before..)
        );
    }

    async fn wait_for_scrapes(&mut self, n: u64) {
        let vllm = self.vllm;
        self.wait(&format!("{n} scrapes"), |_| {
            (vllm.scrapes() >= n).then_some(())
        })
        .await;
    }

    /// Polls the sink until `done` gives a value; fails if a collector exits or after WAIT.
    async fn wait<T>(&mut self, what: &str, done: impl Fn(&[Point]) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(t) = done(&self.sink.points()) {
                return t;
            }
            for c in self.collectors.iter_mut() {
                c.assert_running();
            }
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for {what}; received {:?}",
                gauges_by_pod(&self.sink.points())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn gauges(points: &[Point]) -> Vec<&Point> {
    points.iter().filter(|p| p.metric == GAUGE).collect()
}

/// The gauge's values per pod, in arrival order.
fn gauges_by_pod(points: &[Point]) -> BTreeMap<String, Vec<f64>> {
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for p in gauges(points) {
        let pod = p.attr("pod").unwrap_or_default().to_string();
        out.entry(pod).or_default().push(p.value);
    }
    out
}
