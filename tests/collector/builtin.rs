//! The `builtin` backend's sidecar in real collectors, exporting to the built-in scaler for
//! real (the product's binary, `scaler --trust-key-file`): the collectors present their
//! namespace's token from the Secret (resolved as the kubelet resolves a `secretKeyRef`), the
//! scaler stores their gauges and delta histograms, and KEDA's calls with the rendered
//! triggers' metadata get the fleet's queue depth and p90 — which follows the fake model
//! server's latency phases within bucket interpolation error, reads "no demand" when idle,
//! and turns into an error once the sidecars stop.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use llm_autoscale_webhook::config::WebhookConfig;
use llm_autoscale_webhook::keda::ScaledObject;
use llm_autoscale_webhook::scaler::trust::{self, TrustKey};
use serde_json::json;

use super::fake_vllm::{FakeVllm, Values};
use super::latency_histogram::{Phase, bucket_of, bucket_width};
use super::process::{self, Collector};
use super::scaler_clients::{Keda, Tls, channel};
use super::scaler_process::ScalerProcess;
use super::{NAMESPACE, PODS, WAIT, pod_ips, render_with, start_collectors};

/// The model server, listening as in its pods: on loopback and on each pod IP.
async fn fake_vllm_in_pods(ips: &[IpAddr]) -> FakeVllm {
    let mut listen = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    for ip in ips {
        if !listen.contains(ip) {
            listen.push(*ip);
        }
    }
    FakeVllm::start(&listen, Values::default())
        .await
        .expect("fake vLLM server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_sidecars_feed_the_scaler_for_real() {
    let binary = tokio::task::spawn_blocking(process::build)
        .await
        .expect("collector build");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("trust-key");
    let key_text = "0123456789abcdef".repeat(3);
    std::fs::write(&key_file, &key_text).unwrap();
    let key = TrustKey::new(key_text.as_bytes()).unwrap();
    let scaler = ScalerProcess::start(
        "builtin",
        &[
            format!("--trust-key-file={}", key_file.display()),
            "--staleness=4s".into(),
        ],
    );

    let ips = pod_ips(4);
    let vllm = fake_vllm_in_pods(&ips).await;
    vllm.set_latency_phase(Phase::Fast);

    let mut deployment = super::vllm_deployment(vllm.port());
    let annotations = &mut deployment["metadata"]["annotations"];
    annotations["llm-autoscale.io/backend"] = json!("builtin");
    annotations["llm-autoscale.io/triggers"] = json!(
        r#"[{"preset":"queue-depth","operation-over-time":"last_one"},{"preset":"ttft-p90","window":"10s"}]"#
    );
    let config = WebhookConfig {
        builtin_otlp_endpoint: scaler.otlp.to_string(),
        builtin_scaler_address: scaler.scaler.to_string(),
        ..WebhookConfig::default()
    };
    let (template, sidecar, so) = render_builtin(&deployment, &config);
    let trigger = |name: &str| -> Vec<(String, String)> {
        let t = so.spec.triggers.iter().find(|t| t.name == name).unwrap();
        t.metadata.clone().into_iter().collect()
    };
    let (queue, ttft) = (trigger("queue_depth"), trigger("ttft_p90"));

    // The namespace's Secret, as the reconciler writes it.
    let secrets = BTreeMap::from([(
        trust::SECRET_NAME.to_string(),
        BTreeMap::from([(
            trust::SECRET_KEY.to_string(),
            trust::token_for(&key, NAMESPACE),
        )]),
    )]);
    let mut collectors = start_collectors(&binary, &template, &sidecar, &ips, &secrets);

    let mut keda = Keda::connect(&scaler.scaler_url()).await;
    let mut until = Until {
        keda: &mut keda,
        collectors: &mut collectors,
    };

    // Queue depth: 7 waiting on each of the two pods.
    let want = Values::default().num_requests_waiting * PODS.len() as f64;
    let _ = until
        .answer(&queue, "the fleet's queue depth", |v| v.ok() == Some(want))
        .await;

    // The fleet's p90 of the last 10 s of requests follows the phases: once the window holds
    // only a phase's requests, the value lies in the bucket of that phase's true p90 (so
    // within bucket interpolation error of it).
    for phase in [Phase::Fast, Phase::Slow, Phase::Fast] {
        vllm.set_latency_phase(phase);
        let truth = phase.true_percentile(90.0);
        let error = bucket_width(truth);
        let got = until
            .answer(&ttft, &format!("a {phase:?} p90"), |v| {
                v.is_ok_and(|v| bucket_of(v) == bucket_of(truth) && (v - truth).abs() <= error)
            })
            .await;
        eprintln!("builtin: {phase:?}: true p90 {truth}, fleet p90 {got:?}");
    }

    // No request at all: the pods still report, so it is no demand (0), not an error.
    vllm.set_latency_phase(Phase::Idle);
    let _ = until
        .answer(&ttft, "no demand while idle", |v| v.ok() == Some(0.0))
        .await;

    // Every point came with its namespace's token, and nothing was refused.
    assert!(scaler.metric("llm_autoscale_scaler_points_total{result=\"accepted\"}") > 0.0);
    let text = scaler.metrics_text();
    assert!(!text.contains("result=\"untrusted\""), "{text}");
    assert!(
        !text.contains("result=\"cumulative\""),
        "deltas only: {text}"
    );

    // The sidecars stop: past the staleness window the triggers are errors (KEDA's fallback).
    until.collectors.iter_mut().for_each(Collector::stop);
    until.collectors.clear();
    let _ = until
        .answer(&queue, "an error once the sidecars stopped", |v| {
            v.is_err_and(|s| s.code() == tonic::Code::Unavailable)
        })
        .await;
}

/// Asks the scaler as KEDA does until the answer satisfies a test.
struct Until<'a> {
    keda: &'a mut Keda,
    collectors: &'a mut Vec<Collector>,
}

impl Until<'_> {
    /// Polls `GetMetrics` with a trigger's metadata until `done`; fails if a collector exits
    /// unexpectedly, or after [`WAIT`].
    async fn answer(
        &mut self,
        metadata: &[(String, String)],
        what: &str,
        done: impl Fn(Result<f64, tonic::Status>) -> bool,
    ) -> Result<f64, tonic::Status> {
        let pairs: Vec<(&str, &str)> = metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let start = Instant::now();
        loop {
            let got = self.keda.value(&pairs).await;
            if done(got.clone()) {
                return got;
            }
            for c in self.collectors.iter_mut() {
                c.assert_running();
            }
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for {what}; last answer {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// `--builtin-scaler-tls`: the sidecar rendered with it, in real collectors, reads the
/// scaler's CA from its namespace's Secret (as the reconciler writes it: token and `ca.crt`,
/// resolved as the kubelet resolves a `secretKeyRef`) and exports over TLS to the scaler,
/// which serves a certificate issued by that CA (rcgen) for the name in
/// `--builtin-otlp-endpoint`; KEDA's calls with the rendered triggers' metadata
/// (`enableTLS`) reach it over TLS and get the fleet's queue depth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_sidecars_export_to_the_scaler_over_tls() {
    use base64::Engine;
    use llm_autoscale_webhook::certs::{Ca, ServingRequest};
    use llm_autoscale_webhook::reconcile::token;

    let binary = tokio::task::spawn_blocking(process::build)
        .await
        .expect("collector build");
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate(1).unwrap();
    let serving = ca
        .issue(&ServingRequest {
            dns_names: vec!["localhost".into()],
            ips: Vec::new(),
            validity_days: 1,
        })
        .unwrap();
    let (cert, tls_key, key_file) = (
        dir.path().join("tls.crt"),
        dir.path().join("tls.key"),
        dir.path().join("trust-key"),
    );
    std::fs::write(&cert, &serving.cert_pem).unwrap();
    std::fs::write(&tls_key, &serving.key_pem).unwrap();
    let key_text = "fedcba9876543210".repeat(3);
    std::fs::write(&key_file, &key_text).unwrap();
    let key = TrustKey::new(key_text.as_bytes()).unwrap();
    let scaler = ScalerProcess::start(
        "builtin-tls",
        &[
            format!("--trust-key-file={}", key_file.display()),
            format!("--scaler-tls-cert={}", cert.display()),
            format!("--scaler-tls-key={}", tls_key.display()),
        ],
    );

    let ips = pod_ips(5);
    let vllm = fake_vllm_in_pods(&ips).await;
    let mut deployment = super::vllm_deployment(vllm.port());
    let annotations = &mut deployment["metadata"]["annotations"];
    annotations["llm-autoscale.io/backend"] = json!("builtin");
    annotations["llm-autoscale.io/operation-over-time"] = json!("last_one");
    // The certificate's name, not the address it listens on.
    let (otlp, address) = (
        format!("localhost:{}", scaler.otlp.port()),
        format!("localhost:{}", scaler.scaler.port()),
    );
    let config = WebhookConfig {
        builtin_otlp_endpoint: otlp,
        builtin_scaler_address: address.clone(),
        builtin_scaler_tls: true,
        ..WebhookConfig::default()
    };
    let (template, sidecar, so) = render_builtin(&deployment, &config);
    let trigger = &so.spec.triggers[0];
    assert_eq!(trigger.meta("enableTLS"), Some("true"));
    let queue: Vec<(String, String)> = trigger.metadata.clone().into_iter().collect();

    // The namespace's Secret as the reconciler writes it, decoded as the kubelet does.
    let secret = token::secret(
        token::Content {
            key: Some(&key),
            ca: Some(ca.cert_pem()),
        },
        NAMESPACE,
    )
    .expect("a Secret");
    let data: BTreeMap<String, String> = secret["data"]
        .as_object()
        .expect("data")
        .iter()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or_default())
                .expect("base64");
            (k.clone(), String::from_utf8(bytes).expect("UTF-8"))
        })
        .collect();
    let secrets = BTreeMap::from([(trust::SECRET_NAME.to_string(), data)]);
    let mut collectors = start_collectors(&binary, &template, &sidecar, &ips, &secrets);

    let tls = Tls {
        ca_pem: ca.cert_pem(),
        domain: "localhost",
    };
    let mut keda = Keda::over(
        channel(&address, Some(tls))
            .await
            .expect("TLS to the scaler"),
    );
    let mut until = Until {
        keda: &mut keda,
        collectors: &mut collectors,
    };
    let want = Values::default().num_requests_waiting * PODS.len() as f64;
    let got = until
        .answer(&queue, "the fleet's queue depth over TLS", |v| {
            v.ok() == Some(want)
        })
        .await;
    eprintln!("builtin over TLS: queue depth {got:?}");
    assert!(scaler.metric("llm_autoscale_scaler_points_total{result=\"accepted\"}") > 0.0);
    let text = scaler.metrics_text();
    assert!(!text.contains("result=\"untrusted\""), "{text}");
}

/// The webhook's mutation of `deployment` on the builtin backend: the pod template, its
/// collector sidecar and the ScaledObject with the triggers KEDA asks the scaler with.
fn render_builtin(
    deployment: &serde_json::Value,
    config: &WebhookConfig,
) -> (serde_json::Value, serde_json::Value, ScaledObject) {
    let (template, sidecar, mutation) = render_with(deployment, config);
    let so = serde_json::to_value(mutation.scaled_object.expect("a ScaledObject"))
        .and_then(serde_json::from_value)
        .expect("the ScaledObject as KEDA reads it");
    (template, sidecar, so)
}
