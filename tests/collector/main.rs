//! The collector sidecar's configuration, as the webhook renders it, run in a real
//! OpenTelemetry collector (built from tests/collector/builder-config.yaml by
//! scripts/collector-build.sh): the collector scrapes a fake vLLM `/metrics` endpoint and
//! exports OTLP/gRPC to a sink in this test, which checks names, attributes and values per pod.
//!
//! Two collector processes with different pod names stand for two replicas of the
//! Deployment. Each gets its own loopback "pod IP" where the platform allows it, so the ports
//! the config binds on the pod IP do not collide.

mod builtin;
mod fake_vllm;
mod kubelet;
mod latency;
mod latency_histogram;
mod otlp_sink;
mod process;
// Shared with tests/scaler (not every helper is used here).
#[allow(dead_code)]
#[path = "../scaler/clients.rs"]
mod scaler_clients;
#[allow(dead_code)]
#[path = "../scaler/process.rs"]
mod scaler_process;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use llm_autoscale_webhook::config::WebhookConfig;
use llm_autoscale_webhook::mutate::{Mutation, mutate};
use serde_json::{Value, json};

use fake_vllm::{FakeVllm, MODEL_NAME, Values};
use kubelet::PodFacts;
use otlp_sink::{OtlpSink, Point};
use process::Collector;

const DEPLOYMENT: &str = "vllm-llama";
const NAMESPACE: &str = "inference";
const SIDECAR: &str = "llm-autoscale-collector";
/// Pod names of the two simulated replicas.
const PODS: [&str; 2] = ["vllm-llama-7d4b9c-abcde", "vllm-llama-7d4b9c-fghij"];
/// Generous: the first scrape, batching and export take seconds; a loaded machine more.
const WAIT: Duration = Duration::from_secs(180);

/// The default: no metric chosen, so the sidecar forwards queue depth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_config_runs_in_real_collector() {
    run_two_replicas(0, &[], &["vllm:num_requests_waiting"]).await;
}

/// Several triggers: every metric they use is forwarded (gauges and a counter, names with
/// colons and the `_total` suffix unchanged), nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_forwards_every_trigger_metric() {
    let triggers = json!([
        {"preset": "queue-depth"},
        {"preset": "kv-cache"},
        {"preset": "running-requests"},
        {"preset": "token-throughput"}
    ])
    .to_string();
    run_two_replicas(
        1,
        &[("llm-autoscale.io/triggers", &triggers)],
        &[
            "vllm:num_requests_waiting",
            "vllm:kv_cache_usage_perc",
            "vllm:num_requests_running",
            "vllm:generation_tokens_total",
        ],
    )
    .await;
}

/// A trigger on a histogram's `_count` (the request rate): the collector's Prometheus receiver
/// turns the `_bucket`/`_count`/`_sum` series into one histogram of the base name, so the
/// sidecar must forward that name; the KEDA OTel add-on then stores `<name>_count` and
/// `<name>_sum` (kedify/otel-add-on receiver/receiver.go).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_forwards_the_histogram_of_a_count_query() {
    run_two_replicas(
        2,
        &[
            (
                "llm-autoscale.io/metric",
                "vllm:time_to_first_token_seconds_count",
            ),
            ("llm-autoscale.io/target", "2"),
        ],
        &["vllm:time_to_first_token_seconds"],
    )
    .await;
}

/// Mutates a vLLM Deployment carrying the base annotations plus `annotations`, runs the
/// sidecar of two replicas in real collectors and checks that exactly `expected` arrives,
/// with the series identity of each pod. `slot` keeps concurrently running scenarios' pod
/// IPs apart.
async fn run_two_replicas(slot: u8, annotations: &[(&str, &str)], expected: &[&str]) {
    let binary = tokio::task::spawn_blocking(process::build)
        .await
        .expect("collector build");

    let ips = pod_ips(slot);
    let vllm = FakeVllm::start(&model_server_ips(&ips), Values::default())
        .await
        .expect("fake vLLM server");
    let sink = OtlpSink::start().await.expect("OTLP sink");

    let mut deployment = vllm_deployment(vllm.port());
    for (key, value) in annotations {
        deployment["metadata"]["annotations"][*key] = json!(value);
    }
    let (pod_template, sidecar) = render_sidecar(&deployment, &sink.endpoint());
    let mut collectors = start_collectors(&binary, &pod_template, &sidecar, &ips, &BTreeMap::new());

    let expected: BTreeSet<&str> = expected.iter().copied().collect();

    // Wait until every pod's collector delivered every expected metric...
    wait_until(
        &sink,
        &mut collectors,
        "every pod's expected metrics",
        |points| {
            PODS.iter().all(|pod| {
                expected.iter().all(|m| {
                    points
                        .iter()
                        .any(|p| p.metric == *m && p.attr("pod") == Some(pod))
                })
            })
        },
    )
    .await;
    // ...and a few more exports, so metrics that should have been filtered out had every
    // chance to show up.
    let seen = sink.request_count();
    wait_until(&sink, &mut collectors, "further exports", |_| {
        sink.request_count() >= seen + 2 * PODS.len()
    })
    .await;
    for c in &mut collectors {
        c.assert_running();
    }

    let points = sink.points();
    let served = vllm.values();
    assert!(vllm.scrapes() > 0, "the fake vLLM server was never scraped");

    // Only the chosen metrics arrive: vLLM's other metrics, the process/python/http metrics
    // and the receiver's own scrape metrics (`up`, `scrape_*`) are filtered out.
    let names: BTreeSet<&str> = points.iter().map(|p| p.metric.as_str()).collect();
    assert_eq!(
        names, expected,
        "metric names received (left) differ from the chosen ones (right)"
    );

    // Every data point carries the series identity and the served value.
    for p in &points {
        let pod = p.attr("pod").unwrap_or_default();
        assert!(
            PODS.contains(&pod),
            "data point without a known `pod` attribute: {p:?}"
        );
        assert_eq!(
            p.attr("deployment"),
            Some(DEPLOYMENT),
            "`deployment` attribute: {p:?}"
        );
        assert_eq!(
            p.attr("namespace"),
            Some(NAMESPACE),
            "`namespace` attribute: {p:?}"
        );
        assert_eq!(
            p.attr("model_name"),
            Some(MODEL_NAME),
            "the model server's own labels are kept: {p:?}"
        );
        let want = served.get(&p.metric).expect("served metric");
        assert_eq!(p.value, want, "value of {p:?}");
    }

    // Two replicas are two series, not one: what the KEDA OTel add-on keys series by
    // (data-point attributes) differs per pod, and a `sum` over the Deployment adds them up.
    for metric in &expected {
        let mut series: BTreeMap<BTreeMap<String, String>, f64> = BTreeMap::new();
        for p in points.iter().filter(|p| p.metric == *metric) {
            series.insert(p.attributes.clone(), p.value);
        }
        let pods: BTreeSet<&str> = series
            .keys()
            .filter_map(|attrs| attrs.get("pod").map(String::as_str))
            .collect();
        assert_eq!(
            series.len(),
            PODS.len(),
            "{metric}: expected one series per pod, got {series:#?}"
        );
        assert_eq!(pods, PODS.into_iter().collect(), "{metric}: pods of series");
        let sum: f64 = series.values().sum();
        assert_eq!(
            sum,
            served.get(metric).unwrap() * PODS.len() as f64,
            "sum({metric}{{deployment=\"{DEPLOYMENT}\",namespace=\"{NAMESPACE}\"}})"
        );
    }

    // The kubelet's probes of the sidecar (against the pod IP) succeed.
    for (c, ip) in collectors.iter_mut().zip(&ips) {
        for (kind, port, path) in http_probes(&sidecar) {
            let status = http_get_status(*ip, port, &path).await;
            assert!(
                (200..400).contains(&status),
                "{kind} of collector {} (GET http://{ip}:{port}{path}) answered {status}",
                c.label()
            );
        }
    }

    for c in &mut collectors {
        c.assert_running();
        assert!(
            !c.log().contains("\"otlp\" alias is deprecated"),
            "collector {} warns about the deprecated exporter key:\n{}",
            c.label(),
            c.log()
        );
    }
}

/// Polls the sink until `done` holds, failing early (with the collector's log) if a collector
/// exits, and after [`WAIT`].
async fn wait_until(
    sink: &OtlpSink,
    collectors: &mut [Collector],
    what: &str,
    done: impl Fn(&[Point]) -> bool,
) {
    let start = Instant::now();
    loop {
        let points = sink.points();
        if done(&points) {
            return;
        }
        for c in collectors.iter_mut() {
            c.assert_running();
        }
        if start.elapsed() > WAIT {
            let names: BTreeSet<&str> = points.iter().map(|p| p.metric.as_str()).collect();
            panic!(
                "timed out waiting for {what}; the sink received {} requests, {} points, \
                 metrics {names:?}; last points: {:#?}",
                sink.request_count(),
                points.len(),
                points.iter().rev().take(5).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The HTTP probes of a container: (kind, port, path), named ports resolved.
fn http_probes(container: &Value) -> Vec<(&'static str, u16, String)> {
    let mut out = Vec::new();
    for kind in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(get) = container.get(kind).and_then(|p| p.get("httpGet")) else {
            continue;
        };
        let port = match &get["port"] {
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Value::String(name) => container["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"].as_str() == Some(name))
                .and_then(|p| p["containerPort"].as_u64())
                .and_then(|n| u16::try_from(n).ok()),
            _ => None,
        }
        .unwrap_or_else(|| panic!("{kind}: unusable port in {get}"));
        let path = get["path"].as_str().unwrap_or("/").to_string();
        out.push((kind, port, path));
    }
    out
}

/// Status code of `GET http://ip:port/path` (0 when nothing answers).
async fn http_get_status(ip: IpAddr, port: u16, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect((ip, port)).await else {
        return 0;
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response)
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Loopback addresses standing in for the pods' IPs, one per replica. The sidecar binds its
/// health and telemetry ports on the pod IP, so each replica needs its own address; they are
/// taken from a 127.x.y.0/24 picked by process id (and `slot` within it), away from
/// 127.0.0.1 where other local services (and concurrent runs of this test) live. Linux routes
/// all of 127/8 to loopback; elsewhere every replica gets 127.0.0.1 (and replicas whose
/// config binds fixed ports on the pod IP collide).
/// The addresses the model server listens on: loopback and every pod IP (all interfaces of
/// its pod).
fn model_server_ips(pod_ips: &[IpAddr]) -> Vec<IpAddr> {
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    for ip in pod_ips {
        if !ips.contains(ip) {
            ips.push(*ip);
        }
    }
    ips
}

fn pod_ips(slot: u8) -> Vec<IpAddr> {
    let pid = std::process::id();
    let (a, b) = (1 + (pid / 250 % 250) as u8, 1 + (pid % 250) as u8);
    let ips: Vec<IpAddr> = (0..PODS.len())
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, a, b, 10 * (slot + 1) + i as u8)))
        .collect();
    if ips
        .iter()
        .all(|ip| std::net::TcpListener::bind((*ip, 0)).is_ok())
    {
        ips
    } else {
        vec![IpAddr::V4(Ipv4Addr::LOCALHOST); PODS.len()]
    }
}

/// A vLLM Deployment annotated for autoscaling, its model server listening on `port`.
fn vllm_deployment(port: u16) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": DEPLOYMENT,
            "namespace": NAMESPACE,
            "labels": {"app": DEPLOYMENT},
            "annotations": {
                "llm-autoscale.io/enabled": "true",
                "llm-autoscale.io/max-replicas": "4",
                "llm-autoscale.io/metrics-port": port.to_string(),
                "llm-autoscale.io/scrape-interval": "1s"
            }
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": DEPLOYMENT}},
            "template": {
                "metadata": {"labels": {"app": DEPLOYMENT}},
                "spec": {
                    "containers": [{
                        "name": "vllm",
                        "image": "vllm/vllm-openai:v0.11.0",
                        "args": ["--model", MODEL_NAME, "--port", port.to_string()],
                        "ports": [{"name": "http", "containerPort": port}],
                        "resources": {"limits": {"nvidia.com/gpu": "1"}}
                    }]
                }
            }
        }
    })
}

/// The product's mutation of `deployment`, with the sidecar exporting to `otlp_endpoint`:
/// the mutated pod template and the collector sidecar in it.
fn render_sidecar(deployment: &Value, otlp_endpoint: &str) -> (Value, Value) {
    let config = WebhookConfig {
        otlp_endpoint: otlp_endpoint.to_string(),
        ..WebhookConfig::default()
    };
    let (template, sidecar, _) = render_with(deployment, &config);
    (template, sidecar)
}

/// The webhook's mutation of `deployment` under `config`: the pod template, its collector
/// sidecar, and the whole mutation.
fn render_with(deployment: &Value, config: &WebhookConfig) -> (Value, Value, Mutation) {
    let mutation = mutate(deployment, config)
        .unwrap_or_else(|e| panic!("the webhook refused the test Deployment: {e}"));
    for warning in &mutation.warnings {
        eprintln!("mutation warning: {warning}");
    }
    let template = mutation.patched["spec"]["template"].clone();
    let spec = &template["spec"];
    let sidecar = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| spec.get(*k).and_then(Value::as_array).into_iter().flatten())
        .find(|c| c.get("name").and_then(Value::as_str) == Some(SIDECAR))
        .unwrap_or_else(|| panic!("no container named {SIDECAR} in the mutated pod template"))
        .clone();
    (template, sidecar, mutation)
}

/// One collector per simulated replica (`ips` are their pod IPs), started with the sidecar's
/// command line and environment as the kubelet resolves them; `secrets` are the namespace's
/// Secrets its `secretKeyRef`s read.
fn start_collectors(
    binary: &Path,
    template: &Value,
    sidecar: &Value,
    ips: &[IpAddr],
    secrets: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<Collector> {
    PODS.iter()
        .zip(ips)
        .map(|(pod, ip)| {
            let mut facts = pod_facts(template, pod, *ip);
            facts.secrets = secrets.clone();
            let resolved = kubelet::resolve(sidecar, &template["spec"], &facts)
                .unwrap_or_else(|e| panic!("resolving the sidecar like the kubelet: {e}"));
            Collector::start(pod, binary, &resolved.argv, &resolved.env)
        })
        .collect()
}

/// The downward-API facts of one replica of `template`.
fn pod_facts(template: &Value, pod_name: &str, ip: IpAddr) -> PodFacts {
    let strings = |key: &str| -> BTreeMap<String, String> {
        template["metadata"][key]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect()
    };
    let mut labels = strings("labels");
    labels.insert("pod-template-hash".into(), "7d4b9c".into());
    PodFacts {
        name: pod_name.to_string(),
        namespace: NAMESPACE.to_string(),
        uid: format!("00000000-0000-4000-8000-{:012x}", pod_name.len()),
        labels,
        annotations: strings("annotations"),
        node_name: "gpu-node-1".into(),
        service_account: template["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or("default")
            .to_string(),
        pod_ip: ip.to_string(),
        host_ip: "127.0.0.1".into(),
        node_allocatable_cpu: "8".into(),
        node_allocatable_memory: "32Gi".into(),
        secrets: BTreeMap::new(),
    }
}
