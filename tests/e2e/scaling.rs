//! Admitted configurations really scale: each scenario `kubectl apply`s a
//! Deployment carrying the product's annotations, the product's reconciler
//! creates the ScaledObject, and KEDA's operator (0 ↔ 1) and the real HPA
//! controller (1 ↔ N, reading KEDA's external metrics API) move
//! `spec.replicas`. The test only sets what the fake pods report and reads
//! replicas and statuses.
//!
//! All scenarios share one [`ScalingPlane`] and run at the same time, each in
//! its own namespace, so a slow decision in one does not add to the others.
//!
//! Where the numbers come from (the HPA controller's replica calculator,
//! `pkg/controller/podautoscaler/replica_calculator.go` in Kubernetes
//! v1.34.4): for a KEDA trigger of metricType `AverageValue` (the product's
//! `sum`/`count`), desired = ceil(value / target), compared with the
//! Deployment's `status.replicas`; for `Value` (`avg`/`min`/`max`), desired
//! = ceil(value / target × Running-and-Ready pods). With no Deployment
//! controller, [`Scenario::replicas`] copies `spec.replicas` into
//! `status.replicas` as that controller would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::ControlPlane;
use crate::fake_metrics::{MetricsEndpoint, gateway_metrics, ttft_histogram, vllm_metrics};
use crate::product::get_json;
use crate::prometheus::{Prometheus, write_target};
use crate::scaling_plane::{ScalingPlane, start_product_webhook};

/// Generous: every decision here takes seconds, but CI machines are slow.
pub(crate) const WAIT: Duration = Duration::from_secs(180);
const MODEL: &str = "m";

/// One Deployment under test in its own namespace.
pub(crate) struct Scenario<'a> {
    plane: &'a ScalingPlane,
    pub(crate) ns: String,
    pub(crate) name: String,
}

impl<'a> Scenario<'a> {
    pub(crate) fn new(plane: &'a ScalingPlane, ns: &str, name: &str) -> Scenario<'a> {
        plane.cp.kubectl_ok(&["create", "namespace", ns]);
        Scenario {
            plane,
            ns: ns.into(),
            name: name.into(),
        }
    }

    pub(crate) fn cp(&self) -> &ControlPlane {
        &self.plane.cp
    }

    pub(crate) fn log(&self, msg: &str) {
        eprintln!("e2e: scaling/{}: {msg}", self.ns);
    }

    /// The Deployment with `replicas` and the product's annotations
    /// (`llm-autoscale.io/` + key), applied with kubectl; the product's
    /// reconciler then creates its ScaledObject.
    pub(crate) fn apply(&self, replicas: i64, annotations: &[(&str, &str)]) {
        let out = self.cp().kubectl_stdin(
            &["apply", "-f", "-"],
            &deployment(&self.ns, &self.name, replicas, annotations).to_string(),
        );
        assert!(
            out.status.success(),
            "kubectl apply of {}/{} failed: {}",
            self.ns,
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn get(&self, kind: &str, name: &str) -> Option<Value> {
        get_json(self.cp(), &[kind, "-n", &self.ns, name])
    }

    /// The Deployment's `spec.replicas`, after copying it into
    /// `status.replicas` (what the Deployment controller would report once
    /// the pods exist; the HPA divides by it).
    pub(crate) fn replicas(&self) -> i64 {
        let d = self.get("deployment", &self.name).expect("the Deployment");
        let spec = d["spec"]["replicas"].as_i64().expect("spec.replicas");
        if d["status"]["replicas"].as_i64().unwrap_or(0) != spec {
            self.cp().kubectl_ok(&[
                "patch",
                "deployment",
                "-n",
                &self.ns,
                &self.name,
                "--subresource=status",
                "--type=merge",
                &format!("-p={}", json!({"status": {"replicas": spec}})),
            ]);
        }
        spec
    }

    pub(crate) fn wait_replicas(&self, want: i64, why: &str) {
        let start = Instant::now();
        self.cp().wait_for(
            &format!("{}/{}: {why}: replicas {want}", self.ns, self.name),
            WAIT,
            || self.replicas() == want,
        );
        self.log(&format!(
            "{why}: replicas {want} after {:.1?}",
            start.elapsed()
        ));
    }

    pub(crate) fn scaled_object(&self) -> Option<Value> {
        self.get("scaledobject", &self.name)
    }

    /// The ScaledObject, once the product's reconciler has applied it.
    pub(crate) fn wait_scaled_object(&self) -> Value {
        self.cp()
            .wait_for("the reconciler's ScaledObject", WAIT, || {
                self.scaled_object().is_some()
            });
        self.scaled_object().unwrap()
    }

    /// The status (`"True"`, `"False"`, `"Unknown"`) of the ScaledObject's
    /// condition `kind`.
    pub(crate) fn condition(&self, kind: &str) -> Option<String> {
        let so = self.scaled_object()?;
        so["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == kind)
            .and_then(|c| c["status"].as_str())
            .map(str::to_owned)
    }

    pub(crate) fn wait_condition(&self, kind: &str, want: &str) {
        self.cp().wait_for(
            &format!("{}/{}: ScaledObject {kind}={want}", self.ns, self.name),
            WAIT,
            || self.condition(kind).as_deref() == Some(want),
        );
    }

    /// The HPA KEDA's operator made for the ScaledObject
    /// (`keda-hpa-<name>`, `getDefaultHpaName` in KEDA's `controllers/keda/hpa.go`).
    pub(crate) fn hpa(&self) -> Option<Value> {
        self.get("hpa", &format!("keda-hpa-{}", self.name))
    }

    /// The PromQL of the ScaledObject's first trigger.
    pub(crate) fn trigger_query(&self) -> String {
        let so = self.scaled_object().expect("the ScaledObject");
        so["spec"]["triggers"][0]["metadata"]["query"]
            .as_str()
            .expect("a prometheus trigger's query")
            .to_owned()
    }

    /// A simulated pod named `pod` serving `body`, scraped by Prometheus
    /// with `namespace`/`pod` labels.
    pub(crate) fn metrics_pod(&self, pod: &str, body: String) -> MetricsEndpoint {
        let endpoint = MetricsEndpoint::start(body);
        write_target(&self.plane.targets, &self.ns, pod, endpoint.port());
        endpoint
    }

    /// A Pod object `pod` matching the Deployment's selector, marked
    /// Running and Ready in its status (no kubelet does it here).
    pub(crate) fn running_ready_pod(&self, pod: &str) {
        let manifest = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "namespace": self.ns, "labels": {"app": self.name}},
            "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0"}]},
        });
        // The namespace's `default` ServiceAccount, which Pod admission
        // requires, appears shortly after the namespace.
        self.cp()
            .wait_for("a Pod to be admitted", Duration::from_secs(60), || {
                self.cp()
                    .kubectl_stdin(&["apply", "-f", "-"], &manifest.to_string())
                    .status
                    .success()
            });
        let status = json!({"status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
        }});
        self.cp().kubectl_ok(&[
            "patch",
            "pod",
            "-n",
            &self.ns,
            pod,
            "--subresource=status",
            "--type=merge",
            &format!("-p={status}"),
        ]);
    }
}

/// A vLLM Deployment with `replicas`, opted in with the given annotations.
fn deployment(ns: &str, name: &str, replicas: i64, annotations: &[(&str, &str)]) -> Value {
    let mut ann = serde_json::Map::new();
    ann.insert("llm-autoscale.io/enabled".into(), json!("true"));
    for (k, v) in annotations {
        ann.insert(format!("llm-autoscale.io/{k}"), json!(v));
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "annotations": ann},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "vllm",
                    "image": "vllm/vllm-openai:v0.11.0",
                    "args": ["--model", MODEL],
                    "ports": [{"name": "http", "containerPort": 8000}],
                }]},
            },
        },
    })
}

/// A name shaped like a ReplicaSet's pod of Deployment `deploy`
/// (`<deploy>-<pod-template-hash>-<5 characters>`).
pub(crate) fn pod_name(deploy: &str, suffix: &str) -> String {
    assert_eq!(suffix.len(), 5);
    format!("{deploy}-7c9d5f8b6d-{suffix}")
}

/// Waits until Prometheus answers `promql` with `want` (so KEDA's scaler,
/// which runs the same query, sees it too).
fn wait_prometheus(cp: &ControlPlane, prometheus: &Prometheus, promql: &str, want: f64) {
    cp.wait_for(
        &format!("Prometheus to answer {promql} with {want}"),
        WAIT,
        || {
            prometheus
                .query(promql)
                .is_some_and(|v| (v - want).abs() < 1e-9)
        },
    );
}

/// Parses a Kubernetes quantity as the HPA status writes metric values
/// (`925m`, `14`, `1500m`).
fn quantity(q: &str) -> f64 {
    match q.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().expect("a milli quantity") / 1000.0,
        None => q.parse().expect("a plain quantity"),
    }
}

/// a. 0 → 1 on a zero-safe trigger: a user-written PromQL on a router
/// metric, which exists with no model pod at all. KEDA's operator, not the
/// HPA, activates a Deployment at zero: the HPA controller leaves a target
/// with 0 replicas alone (`ScalingDisabled` in Kubernetes'
/// `pkg/controller/podautoscaler/horizontal.go`), and KEDA's scale loop
/// scales it to max(minReplicaCount, 1) once a trigger is active
/// (`RequestScale`/`scaleFromZeroOrIdle` in KEDA's
/// `pkg/scaling/executor/scale_scaledobjects.go`); the prometheus scaler is
/// active when the query's value exceeds `activationThreshold`, default 0
/// (`GetMetricsAndActivity` in `pkg/scalers/prometheus_scaler.go`).
fn scale_from_zero(plane: &ScalingPlane) {
    let s = Scenario::new(plane, "scale-from-zero", "gateway-model");
    let gateway = MetricsEndpoint::start(gateway_metrics(MODEL, 0.0));
    write_target(&plane.targets, &s.ns, "llm-router", gateway.port());
    let query = format!("sum(router_queue_depth{{model=\"{MODEL}\"}})");
    wait_prometheus(&plane.cp, &plane.prometheus, &query, 0.0);

    s.apply(
        0,
        &[
            ("backend", "prometheus"),
            ("prometheus-address", &plane.prometheus.url),
            ("min-replicas", "0"),
            ("max-replicas", "3"),
            ("query", &query),
            ("target", "5"),
            ("polling-interval", "2s"),
            ("cooldown-period", "10s"),
        ],
    );
    let so = s.wait_scaled_object();
    assert_eq!(so["spec"]["minReplicaCount"], 0, "{so}");
    assert_eq!(so["spec"]["pollingInterval"], 2, "{so}");
    assert_eq!(s.trigger_query(), query);

    // The router reports nothing queued: KEDA evaluates the trigger
    // (Ready, not Active) and the Deployment stays at zero over several
    // polling intervals.
    s.wait_condition("Ready", "True");
    s.wait_condition("Active", "False");
    for _ in 0..4 {
        assert_eq!(s.replicas(), 0, "scaled up with nothing queued");
        thread::sleep(Duration::from_secs(2));
    }

    // Three requests queue at the router: KEDA's operator activates.
    gateway.set(gateway_metrics(MODEL, 3.0));
    wait_prometheus(&plane.cp, &plane.prometheus, &query, 3.0);
    s.wait_replicas(1, "router queue 3");
    s.wait_condition("Active", "True");
}

/// c. 1 → N → 1 on queue depth with the product's default PromQL: three
/// simulated pods report 14 waiting requests in all; target 5 per replica
/// → ceil(14 / 5) = 3. Then nothing waits → back to min-replicas.
fn queue_depth_up_and_down(plane: &ScalingPlane) {
    let s = Scenario::new(plane, "queue-depth", "queue-model");
    let pods: Vec<MetricsEndpoint> = ["a1b2c", "d3e4f", "g5h6j"]
        .iter()
        .map(|suffix| {
            s.metrics_pod(
                &pod_name(&s.name, suffix),
                vllm_metrics(MODEL, 0.0, 1.0, 0.1),
            )
        })
        .collect();
    s.apply(
        1,
        &[
            ("backend", "prometheus"),
            ("prometheus-address", &plane.prometheus.url),
            ("preset", "queue-depth"),
            ("target", "5"),
            ("min-replicas", "1"),
            ("max-replicas", "5"),
            ("scale-down-stabilization", "0s"),
        ],
    );
    s.wait_scaled_object();
    let query = s.trigger_query();
    assert!(
        query.starts_with("sum(vllm:num_requests_waiting{namespace=\"queue-depth\""),
        "{query}"
    );
    s.wait_condition("Ready", "True");
    wait_prometheus(&plane.cp, &plane.prometheus, &query, 0.0);
    s.cp().wait_for("KEDA's HPA", WAIT, || s.hpa().is_some());
    assert_eq!(s.replicas(), 1);

    for (pod, waiting) in pods.iter().zip([5.0, 5.0, 4.0]) {
        pod.set(vllm_metrics(MODEL, waiting, 8.0, 0.5));
    }
    wait_prometheus(&plane.cp, &plane.prometheus, &query, 14.0);
    s.wait_replicas(3, "14 waiting, target 5");

    for pod in &pods {
        pod.set(vllm_metrics(MODEL, 0.0, 0.0, 0.1));
    }
    wait_prometheus(&plane.cp, &plane.prometheus, &query, 0.0);
    s.wait_replicas(1, "nothing waiting");
}

/// d. Fallback: the Prometheus this ScaledObject reads goes away; after
/// more than `fallback-failure-threshold` failed reads KEDA answers the HPA
/// with fallback-replicas × target, so the HPA holds fallback-replicas, and
/// sets the ScaledObject's `Fallback` condition (`GetMetricsWithFallback`,
/// `doFallback`, `updateStatus` in KEDA's `pkg/fallback/fallback.go`).
/// KEDA's operator does not scale on errors itself when a fallback is set
/// (`RequestScale` in `pkg/scaling/executor/scale_scaledobjects.go`).
fn fallback_when_prometheus_is_down(plane: &ScalingPlane) {
    let s = Scenario::new(plane, "fallback", "fallback-model");
    // A Prometheus of its own, so stopping it leaves the other scenarios
    // alone.
    let own = Prometheus::start(&plane.cp, "prometheus-fallback", &plane.targets);
    let _pod = s.metrics_pod(
        &pod_name(&s.name, "k7m8n"),
        vllm_metrics(MODEL, 1.0, 2.0, 0.3),
    );
    s.apply(
        1,
        &[
            ("backend", "prometheus"),
            ("prometheus-address", &own.url),
            ("preset", "queue-depth"),
            ("target", "5"),
            ("min-replicas", "1"),
            ("max-replicas", "5"),
            ("fallback-replicas", "2"),
            ("fallback-failure-threshold", "2"),
        ],
    );
    let so = s.wait_scaled_object();
    assert_eq!(so["spec"]["fallback"]["replicas"], 2, "{so}");
    assert_eq!(so["spec"]["fallback"]["failureThreshold"], 2, "{so}");
    s.wait_condition("Ready", "True");
    wait_prometheus(&plane.cp, &own, &s.trigger_query(), 1.0);
    // The HPA reads the metric through KEDA before Prometheus goes: one
    // waiting request, target 5 → 1 replica.
    s.cp().wait_for("the HPA to read the metric", WAIT, || {
        s.hpa()
            .is_some_and(|h| h["status"]["currentMetrics"][0]["external"]["current"].is_object())
    });
    assert_eq!(s.replicas(), 1);
    assert_ne!(s.condition("Fallback").as_deref(), Some("True"));

    plane.cp.stop(&own.name);
    s.wait_replicas(2, "Prometheus down, fallback-replicas 2");
    s.wait_condition("Fallback", "True");
}

/// e. A mean (`Value`) trigger: preset kv-cache averages
/// `vllm:kv_cache_usage_perc` over the pods; two Running+Ready pods report
/// 0.9 and 0.95 against a target of 0.8 → the HPA reads 0.925 and wants
/// ceil(0.925 / 0.8 × 2) = 3 replicas.
fn kv_cache_mean(plane: &ScalingPlane) {
    let s = Scenario::new(plane, "kv-cache", "kv-model");
    let names = [pod_name(&s.name, "p2q3r"), pod_name(&s.name, "s4t5v")];
    let pods: Vec<MetricsEndpoint> = names
        .iter()
        .map(|p| s.metrics_pod(p, vllm_metrics(MODEL, 0.0, 1.0, 0.5)))
        .collect();
    for p in &names {
        s.running_ready_pod(p);
    }
    s.apply(
        2,
        &[
            ("backend", "prometheus"),
            ("prometheus-address", &plane.prometheus.url),
            ("preset", "kv-cache"),
            ("target", "0.8"),
            ("min-replicas", "1"),
            ("max-replicas", "5"),
        ],
    );
    let so = s.wait_scaled_object();
    assert_eq!(so["spec"]["triggers"][0]["metricType"], "Value", "{so}");
    let query = s.trigger_query();
    assert!(
        query.starts_with("avg(vllm:kv_cache_usage_perc{"),
        "{query}"
    );
    s.wait_condition("Ready", "True");
    wait_prometheus(&plane.cp, &plane.prometheus, &query, 0.5);
    assert_eq!(s.replicas(), 2);

    pods[0].set(vllm_metrics(MODEL, 0.0, 1.0, 0.9));
    pods[1].set(vllm_metrics(MODEL, 0.0, 1.0, 0.95));
    wait_prometheus(&plane.cp, &plane.prometheus, &query, 0.925);
    s.cp().wait_for("the HPA to read the mean 0.925", WAIT, || {
        s.hpa().is_some_and(|h| {
            h["status"]["currentMetrics"][0]["external"]["current"]["value"]
                .as_str()
                .is_some_and(|v| (quantity(v) - 0.925).abs() < 0.005)
        })
    });
    s.wait_replicas(3, "mean KV cache 0.925, target 0.8, 2 ready pods");
}

/// f. The llm-d WVA seed: the `wva` backend's ScaledObject, pointed at a
/// Prometheus that is not there, is accepted by KEDA's webhook and operator
/// (the HPA `wva-keda-hpa-<name>` with the integration's policies exists),
/// and the unreachable Prometheus shows as KEDA's fallback (a scaler error),
/// not as a rejected ScaledObject.
fn wva_seed(plane: &ScalingPlane) {
    let s = Scenario::new(plane, "wva", "vllme-deployment");
    s.apply(
        1,
        &[
            ("backend", "wva"),
            ("max-replicas", "10"),
            ("prometheus-address", "https://127.0.0.1:1"),
            ("prometheus-unsafe-ssl", "true"),
            ("wva-accelerator-type", "A100"),
        ],
    );
    let so = s.wait_scaled_object();
    assert_eq!(
        so["spec"]["triggers"][0]["name"], "wva-desired-replicas",
        "{so}"
    );
    let hpa_name = format!("wva-keda-hpa-{}", s.name);
    s.cp().wait_for("KEDA's HPA for the WVA seed", WAIT, || {
        s.get("hpa", &hpa_name).is_some()
    });
    let hpa = s.get("hpa", &hpa_name).expect("the HPA");
    assert_eq!(
        hpa["spec"]["behavior"]["scaleUp"]["policies"][1],
        json!({"type": "Pods", "value": 5, "periodSeconds": 15}),
        "{hpa}"
    );
    s.wait_condition("Fallback", "True");
    s.log("WVA seed: HPA with the integration's policies, fallback on the unreachable Prometheus");
}

/// g. Dynamo's seed: the external-push trigger at a scaler that is not
/// there. KEDA accepts the ScaledObject; its Ready condition is False for a
/// connection failure, never for a validation error.
fn dynamo_seed(plane: &ScalingPlane) {
    let s = Scenario::new(plane, "dynamo", "llm-worker-deployment");
    s.apply(
        1,
        &[
            ("backend", "external"),
            ("scaler-address", "127.0.0.1:1"),
            (
                "scaler-metadata",
                r#"{"component":"llm-worker","endpoint":"kv-router","threshold":"0.7"}"#,
            ),
            ("scaler-push", "true"),
            ("min-replicas", "1"),
            ("max-replicas", "10"),
        ],
    );
    let so = s.wait_scaled_object();
    assert_eq!(so["spec"]["triggers"][0]["type"], "external-push", "{so}");
    s.wait_condition("Ready", "False");
    let so = s.scaled_object().expect("the ScaledObject");
    let ready = so["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    let message = ready["message"].as_str().unwrap_or_default().to_lowercase();
    s.log(&format!("Dynamo seed: Ready=False: {ready}"));
    // KEDA's external scaler logs the failed GetMetricSpec call and returns no metric
    // (pkg/scalers/external_scaler.go, GetMetricSpecForScaling), so the operator reports
    // "no metric specs returned from scalers" (controllers/keda/hpa.go): the scaler could not
    // be reached. A spec KEDA refuses would say what is wrong with it instead.
    assert!(
        ["connection", "unavailable", "refused", "dial"]
            .iter()
            .any(|w| message.contains(w))
            || message.contains("no metric specs returned from scalers"),
        "Ready is False for the unreachable scaler: {ready}"
    );
    assert!(
        !message.contains("validat") && !message.contains("invalid"),
        "not a validation error: {ready}"
    );
}

/// h. A latency trigger on the prometheus backend (preset ttft-p90: p90 time to first token,
/// target 1 s, `Value`): two Running+Ready pods serve vLLM's histogram, each finishing 20
/// requests a second. All at 0.2 s, the fleet's p90 over the last minute is under 0.25 s and
/// the HPA keeps min-replicas (ceil(0.25 / 1 × 2) = 1); when half of them take 2 s the p90
/// rises towards 2.2 s; above 1.5 s the HPA wants ceil(p90 / 1 × 2) ≥ 4 = max-replicas.
/// KEDA's webhook admits the trigger's query and its operator makes the ScaledObject Ready.
fn ttft_p90_scales_out(plane: &ScalingPlane) {
    let s = Scenario::new(plane, "latency", "ttft-model");
    let names = [pod_name(&s.name, "w6x7y"), pod_name(&s.name, "z8a9b")];
    let pods: Vec<MetricsEndpoint> = names
        .iter()
        .map(|p| s.metrics_pod(p, ttft_histogram(MODEL, 0, 0)))
        .collect();
    for p in &names {
        s.running_ready_pod(p);
    }
    let slow = Arc::new(AtomicBool::new(false));
    let slow_phase = Arc::clone(&slow);
    // Served until the test process ends, like the endpoints themselves.
    thread::spawn(move || {
        let (mut fast, mut slow) = (0, 0);
        loop {
            if slow_phase.load(Ordering::SeqCst) {
                fast += 5;
                slow += 5;
            } else {
                fast += 10;
            }
            for pod in &pods {
                pod.set(ttft_histogram(MODEL, fast, slow));
            }
            thread::sleep(Duration::from_millis(500));
        }
    });
    s.apply(
        1,
        &[
            ("backend", "prometheus"),
            ("prometheus-address", &plane.prometheus.url),
            ("preset", "ttft-p90"),
            ("min-replicas", "1"),
            ("max-replicas", "4"),
        ],
    );
    let so = s.wait_scaled_object();
    assert_eq!(so["spec"]["triggers"][0]["metricType"], "Value", "{so}");
    let query = s.trigger_query();
    assert!(query.starts_with("histogram_quantile(0.9, "), "{query}");
    s.wait_condition("Ready", "True");
    let p90 = |below: bool, limit: f64| {
        plane
            .prometheus
            .query(&query)
            .is_some_and(|v| (v < limit) == below)
    };
    s.cp().wait_for("a fast p90", WAIT, || p90(true, 0.25));
    s.cp().wait_for("the HPA to read the p90", WAIT, || {
        s.hpa()
            .is_some_and(|h| h["status"]["currentMetrics"][0]["external"]["current"].is_object())
    });
    assert_eq!(s.replicas(), 1);

    slow.store(true, Ordering::SeqCst);
    s.cp().wait_for("a slow p90", WAIT, || p90(false, 1.5));
    s.log(&format!("p90 {:?}", plane.prometheus.query(&query)));
    s.wait_replicas(4, "p90 TTFT over 1.5 s, target 1 s, 2 ready pods");
}

/// A named scenario.
type Named = (&'static str, fn(&ScalingPlane));

/// Runs `scenarios` at once; every one runs to its end, then the test fails
/// naming each that failed (its panic message is printed as it happens).
fn run_all(plane: &ScalingPlane, scenarios: &[Named]) {
    let failed: Vec<&str> = thread::scope(|scope| {
        let handles: Vec<_> = scenarios
            .iter()
            .map(|(name, run)| (*name, scope.spawn(move || run(plane))))
            .collect();
        handles
            .into_iter()
            .filter_map(|(name, h)| h.join().is_err().then_some(name))
            .collect()
    });
    assert!(failed.is_empty(), "scaling scenarios failed: {failed:?}");
}

#[test]
fn admitted_configurations_scale() {
    let t0 = Instant::now();
    let plane = ScalingPlane::start();
    let started = t0.elapsed();
    run_all(
        &plane,
        &[
            ("a: 0 → 1 on a router metric", scale_from_zero),
            ("c: 1 → 3 → 1 on queue depth", queue_depth_up_and_down),
            (
                "d: fallback when Prometheus is down",
                fallback_when_prometheus_is_down,
            ),
            ("e: mean KV cache (Value)", kv_cache_mean),
            ("f: the llm-d WVA seed", wva_seed),
            ("g: the Dynamo seed", dynamo_seed),
            ("h: p90 time to first token", ttft_p90_scales_out),
            (
                "i: the built-in scaler: activation, 1 → N, fallback",
                crate::builtin::builtin_scaler_scales,
            ),
        ],
    );
    eprintln!(
        "e2e: admitted_configurations_scale: plane {:.1?}, scenarios {:.1?}",
        started,
        t0.elapsed() - started
    );
}

/// b. A scale-to-zero configuration that could never wake up is refused at
/// `kubectl apply`: with the default backend (the OTel add-on fed by the
/// pods' own sidecars) there is no pod and so no data at zero replicas.
#[test]
fn never_waking_scale_to_zero_is_refused() {
    let cp = ControlPlane::start();
    cp.kubectl_ok(&["create", "namespace", "llm-autoscale-system"]);
    cp.kubectl_ok(&["create", "namespace", "never-wake"]);
    let _webhook = start_product_webhook(&cp);
    let manifest = deployment(
        "never-wake",
        "sleepy-model",
        1,
        &[
            ("min-replicas", "0"),
            ("max-replicas", "3"),
            ("preset", "queue-depth"),
        ],
    );
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], &manifest.to_string());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "admitted: {stderr}");
    assert!(
        stderr.contains("llm-autoscale.io/min-replicas") && stderr.contains("never wake"),
        "the denial names min-replicas and why: {stderr}"
    );
    assert!(
        get_json(&cp, &["deployment", "-n", "never-wake", "sleepy-model"]).is_none(),
        "nothing stored"
    );
}
