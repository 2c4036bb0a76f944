//! i. The built-in scaler end to end: a Deployment on `backend: builtin` is admitted (the
//! webhook injects the sidecar), the reconciler applies its ScaledObject and writes the
//! namespace's token Secret; two simulated pods run the stored sidecar in real collector
//! processes (resolved as the kubelet would, the token and the scaler's CA from that Secret),
//! exporting over TLS to the product's scaler; KEDA's operator and the HPA controller ask the
//! scaler, KEDA over TLS too (`enableTLS`, the CA from its `--ca-dir`). Active follows the
//! activation target (2 waiting is not above it, 8 is), the HPA scales 1 → 2 → 4 on queue
//! depth (AverageValue: ceil(sum / 5)), and when the sidecars stop the scaler's answers turn
//! into errors and KEDA's fallback holds 3 replicas. Opting out removes the ScaledObject and
//! the namespace's token Secret.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::thread;
use std::time::Duration;

use base64::Engine;
use llm_autoscale_webhook::scaler::trust::{self, TrustKey};
use serde_json::Value;

use crate::collector_process::{self, Collector};
use crate::fake_metrics::{MetricsEndpoint, vllm_metrics};
use crate::kubelet::{self, PodFacts};
use crate::scaler_clients::{Keda, Tls, channel};
use crate::scaling::{Scenario, pod_name};
use crate::scaling_plane::ScalingPlane;

const MODEL: &str = "m";
const SIDECAR: &str = "llm-autoscale-collector";
/// KEDA's default polling interval, the period of its scale loop (which sets `Active`) when
/// `min-replicas` is above 0.
const KEDA_POLL: Duration = Duration::from_secs(30);

pub(crate) fn builtin_scaler_scales(plane: &ScalingPlane) {
    let s = Scenario::new(plane, "builtin", "builtin-model");
    // One model server both simulated pods scrape on 127.0.0.1 (each pod's own loopback).
    let server = MetricsEndpoint::start(vllm_metrics(MODEL, 0.0, 1.0, 0.1));
    let port = server.port().to_string();
    s.apply(
        1,
        &[
            ("backend", "builtin"),
            ("preset", "queue-depth"),
            ("operation-over-time", "last_one"),
            ("target", "5"),
            ("activation-target", "2"),
            ("min-replicas", "1"),
            ("max-replicas", "5"),
            ("fallback-replicas", "3"),
            ("fallback-failure-threshold", "2"),
            ("metrics-port", &port),
            ("scrape-interval", "1s"),
            ("scale-down-stabilization", "0s"),
        ],
    );
    let so = s.wait_scaled_object();
    let trigger = &so["spec"]["triggers"][0];
    assert_eq!(trigger["type"], "external", "{so}");
    assert_eq!(
        trigger["metadata"]["scalerAddress"],
        plane.scaler.scaler.to_string(),
        "{so}"
    );
    assert_eq!(trigger["metadata"]["enableTLS"], "true", "{so}");
    let metadata: Vec<(String, String)> = trigger["metadata"]
        .as_object()
        .expect("metadata")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();

    // The reconciler wrote the namespace's token and the scaler's CA.
    let secret = wait_secret(&s);
    let token = secret[trust::SECRET_KEY].clone();
    assert_eq!(secret["ca.crt"], plane.scaler_ca, "the Secret holds the CA");
    let key = TrustKey::new(plane.trust_key.as_bytes()).expect("the trust key");
    assert!(
        trust::verify(&key, &s.ns, &token),
        "the Secret holds the namespace's token"
    );

    // Two pods run the sidecar the webhook injected into the stored Deployment.
    let deployment = s.get("deployment", &s.name).expect("the Deployment");
    let template = &deployment["spec"]["template"];
    let sidecar = template["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == SIDECAR)
        .unwrap_or_else(|| panic!("no sidecar in the stored Deployment: {deployment}"))
        .clone();
    let binary = collector_process::build();
    let mut collectors: Vec<Collector> = ["b1c2d", "e3f4g"]
        .iter()
        .zip(pod_ips())
        .map(|(suffix, ip)| {
            let pod = pod_name(&s.name, suffix);
            let facts = pod_facts(&s.ns, &pod, ip, &secret);
            let resolved = kubelet::resolve(&sidecar, &template["spec"], &facts)
                .unwrap_or_else(|e| panic!("resolving the sidecar like the kubelet: {e}"));
            Collector::start(&pod, &binary, &resolved.argv, &resolved.env)
        })
        .collect();

    let runtime = tokio::runtime::Runtime::new().expect("a runtime for the gRPC client");
    let tls = Tls {
        ca_pem: &plane.scaler_ca,
        domain: "localhost",
    };
    let mut keda = runtime.block_on(async {
        let connection = channel(&plane.scaler.scaler.to_string(), Some(tls)).await;
        Keda::over(connection.expect("TLS to the scaler"))
    });
    let mut value = || {
        let pairs: Vec<(&str, &str)> = metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        runtime.block_on(keda.value(&pairs))
    };
    let mut wait_value = |want: f64, collectors: &mut Vec<Collector>| {
        s.cp().wait_for(
            &format!("the scaler to answer {want}"),
            crate::scaling::WAIT,
            || {
                collectors.iter_mut().for_each(Collector::assert_running);
                value().ok() == Some(want)
            },
        );
    };

    wait_value(0.0, &mut collectors);
    s.wait_condition("Ready", "True");
    s.wait_condition("Active", "False");

    // One waiting on each pod: 2, not above the activation target.
    server.set(vllm_metrics(MODEL, 1.0, 1.0, 0.1));
    wait_value(2.0, &mut collectors);
    thread::sleep(KEDA_POLL + Duration::from_secs(5));
    assert_eq!(
        s.condition("Active").as_deref(),
        Some("False"),
        "2 is not above 2"
    );
    assert_eq!(s.replicas(), 1);

    // Four on each: 8 → active, and the HPA wants ceil(8 / 5) = 2.
    server.set(vllm_metrics(MODEL, 4.0, 1.0, 0.1));
    wait_value(8.0, &mut collectors);
    s.wait_condition("Active", "True");
    s.wait_replicas(2, "8 waiting, target 5");

    // Eight on each: ceil(16 / 5) = 4.
    server.set(vllm_metrics(MODEL, 8.0, 1.0, 0.1));
    wait_value(16.0, &mut collectors);
    s.wait_replicas(4, "16 waiting, target 5");

    // The sidecars stop: after the staleness window the scaler answers errors, and after two
    // failed reads KEDA's fallback holds 3 replicas.
    collectors.iter_mut().for_each(Collector::stop);
    s.cp().wait_for(
        "the scaler to answer an error",
        crate::scaling::WAIT,
        || value().is_err_and(|e| e.code() == tonic::Code::Unavailable),
    );
    s.wait_replicas(3, "sidecars stopped: fallback-replicas 3");
    s.wait_condition("Fallback", "True");

    // Opting out: the reconciler deletes the ScaledObject, and with the namespace's last
    // built-in trigger gone, its token Secret.
    s.cp().kubectl_ok(&[
        "annotate",
        "deployment",
        "-n",
        &s.ns,
        &s.name,
        "llm-autoscale.io/enabled=false",
        "--overwrite",
    ]);
    s.cp().wait_for(
        "the ScaledObject and the token Secret to go",
        crate::scaling::WAIT,
        || s.scaled_object().is_none() && s.get("secret", trust::SECRET_NAME).is_none(),
    );
}

/// The namespace's Secret (key → decoded value), once the reconciler has written it.
fn wait_secret(s: &Scenario<'_>) -> BTreeMap<String, String> {
    s.cp().wait_for(
        "the reconciler's token Secret",
        crate::scaling::WAIT,
        || s.get("secret", trust::SECRET_NAME).is_some(),
    );
    let secret: Value = s.get("secret", trust::SECRET_NAME).expect("the Secret");
    assert_eq!(
        secret["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "llm-autoscale-webhook"
    );
    secret["data"]
        .as_object()
        .expect("the Secret's data")
        .iter()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or_default())
                .expect("base64");
            (k.clone(), String::from_utf8(bytes).expect("UTF-8"))
        })
        .collect()
}

/// Loopback addresses standing in for the two pods' IPs (their collectors bind health and
/// telemetry ports there), away from 127.0.0.1 and the plane's 127.100.0.0/24.
fn pod_ips() -> Vec<IpAddr> {
    let pid = std::process::id();
    let (a, b) = (1 + (pid / 250 % 250) as u8, 1 + (pid % 250) as u8);
    (0..2)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, a, b.max(1), 200 + i)))
        .collect()
}

/// The downward-API facts and Secrets of one simulated pod.
fn pod_facts(ns: &str, pod: &str, ip: IpAddr, secret: &BTreeMap<String, String>) -> PodFacts {
    PodFacts {
        name: pod.to_string(),
        namespace: ns.to_string(),
        uid: format!("00000000-0000-4000-8000-{:012x}", pod.len()),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        node_name: "gpu-node-1".into(),
        service_account: "default".into(),
        pod_ip: ip.to_string(),
        host_ip: "127.0.0.1".into(),
        node_allocatable_cpu: "8".into(),
        node_allocatable_memory: "32Gi".into(),
        secrets: BTreeMap::from([(trust::SECRET_NAME.to_string(), secret.clone())]),
    }
}
