//! The control plane the scaling scenarios run on: [`ControlPlane`] with API
//! aggregation and the HPA controller ([`Options::metrics_aggregation`]),
//! plus everything that decides replica counts in a real cluster:
//!
//! - KEDA v2.21.0's operator, out of cluster: it reconciles ScaledObjects into
//!   HPAs, scales 0 ↔ 1 itself, and serves metrics to the adapter over
//!   mutual-TLS gRPC (`--metrics-service-bind-address`);
//! - KEDA's metrics adapter, the aggregated APIService
//!   `v1beta1.external.metrics.k8s.io`, bound to the cluster IP of Service
//!   `keda/keda-metrics-apiserver` (loopback, so kube-apiserver reaches it
//!   through the Service without a kube-proxy); the Service's EndpointSlice
//!   names an FQDN nothing dials, since with aggregator routing off the API
//!   server proxies to the cluster IP;
//! - kube-controller-manager's HPA controller (sync every 2 s), reading
//!   that API;
//! - a real Prometheus scraping fake vLLM pods ([`crate::prometheus`]);
//! - the product's webhook binary (`serve`: admission and reconciler), installed
//!   from the Helm chart's render, whose webhook configurations point at it by
//!   URL (`chart_install.rs`);
//! - the product's built-in scaler, serving TLS with a certificate of the
//!   harness CA: the webhook renders `--builtin-scaler-tls`, its reconciler
//!   writes that CA into the namespaces' Secrets (`--scaler-tls-ca`) for the
//!   sidecars, and KEDA's operator trusts it from its `--ca-dir` (a directory
//!   holding only `ca.crt`; kedacore/keda `pkg/util/certificates.go`).
//!
//! No kubelet and no Deployment controller run: scenarios set a
//! Deployment's `status.replicas` and write Pod objects themselves.
//!
//! The adapter binds a fixed cluster IP ([`ADAPTER_IP`]) but on a free port,
//! which is also its Service's port, so several planes can run side by side
//! (each with its own API server, Service and adapter).

use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use crate::chart_install;
use crate::cluster::{ControlPlane, Options, free_ports};
use crate::product::{Webhook, free_port};
use crate::prometheus::Prometheus;
use crate::scaler_process::ScalerProcess;

/// Cluster IP of `keda/keda-metrics-apiserver`, inside
/// [`crate::cluster::AGGREGATION_SERVICE_CIDR`]; the adapter listens on it.
pub const ADAPTER_IP: &str = "127.100.0.10";
const KEDA_NS: &str = "keda";
const STARTUP: Duration = Duration::from_secs(120);

pub struct ScalingPlane {
    // Fields drop in order: the webhook stops before the control plane.
    _webhook: Webhook,
    /// The built-in scaler (`builtin` backend), whose key the webhook's reconciler holds.
    pub scaler: ScalerProcess,
    /// The built-in scaler's trust key (the file both read).
    pub trust_key: String,
    /// The CA of the built-in scaler's certificate (PEM), which its clients verify it with.
    pub scaler_ca: String,
    /// Scraping every target in [`targets`](Self::targets).
    pub prometheus: Prometheus,
    /// Directory of Prometheus file-SD target files
    /// ([`crate::prometheus::write_target`]).
    pub targets: PathBuf,
    pub cp: ControlPlane,
}

impl ScalingPlane {
    /// Starts everything and returns once the external metrics API is
    /// served through kube-apiserver and the product's webhook answers.
    pub fn start() -> ScalingPlane {
        let cp = ControlPlane::start_with(Options {
            metrics_aggregation: true,
        });
        cp.kubectl_ok(&["create", "namespace", KEDA_NS]);
        cp.kubectl_ok(&["create", "namespace", "llm-autoscale-system"]);
        let scaler_ca = cp.ca_pem();
        let ca_dir = cp.work_dir().join("scaler-ca");
        fs::create_dir_all(&ca_dir).expect("create the scaler's CA directory");
        let ca_file = ca_dir.join("ca.crt");
        fs::write(&ca_file, &scaler_ca).expect("write the scaler's CA");
        start_keda(&cp, &ca_dir);

        let targets = cp.work_dir().join("targets");
        fs::create_dir_all(&targets).expect("create the targets directory");
        let prometheus = Prometheus::start(&cp, "prometheus", &targets);

        // The built-in scaler, before the webhook that points the builtin backend at it.
        let trust_key = "a-test-trust-key-of-more-than-32-bytes".to_string();
        let key_file = cp.work_dir().join("scaler-trust-key");
        fs::write(&key_file, &trust_key).expect("write the scaler's trust key");
        let (cert, key) = cp.issue_serving_cert(&cp.work_dir().join("scaler-tls"));
        let scaler = ScalerProcess::start(
            "e2e",
            &[
                format!("--trust-key-file={}", key_file.display()),
                "--staleness=10s".into(),
                format!("--scaler-tls-cert={}", cert.display()),
                format!("--scaler-tls-key={}", key.display()),
            ],
        );
        let webhook = start_product_webhook_with(
            &cp,
            &[
                format!("--trust-key-file={}", key_file.display()),
                format!("--builtin-otlp-endpoint={}", scaler.otlp),
                format!("--builtin-scaler-address={}", scaler.scaler),
                "--builtin-scaler-tls=true".into(),
                format!("--scaler-tls-ca={}", ca_file.display()),
            ],
        );

        ScalingPlane {
            _webhook: webhook,
            scaler,
            trust_key,
            scaler_ca,
            prometheus,
            targets,
            cp,
        }
    }
}

/// Installs the chart's render and starts the product's webhook binary
/// (admission and reconciler) as tests/e2e/product.rs does, with the chart's
/// webhook configurations pointed at it, and waits until it answers. Needs the
/// namespace `llm-autoscale-system`.
pub fn start_product_webhook(cp: &ControlPlane) -> Webhook {
    start_product_webhook_with(cp, &[])
}

/// As [`start_product_webhook`], with `extra` arguments for `serve`.
pub fn start_product_webhook_with(cp: &ControlPlane, extra: &[String]) -> Webhook {
    let certs = cp.work_dir().join("webhook-certs");
    let (cert, key) = cp.issue_serving_cert(&certs);
    let port = free_port();
    let kubeconfig = chart_install::install(cp, port);
    let webhook = Webhook::start_with(
        &kubeconfig,
        port,
        (&cert, &key),
        cp.log_dir().join("webhook.log"),
        extra,
    );
    // The webhooks fail open (failurePolicy Ignore): until the server
    // answers, an invalid annotation is admitted. Once it is denied, the
    // webhook serves.
    let probe = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "webhook-probe", "namespace": "default", "annotations": {
            "llm-autoscale.io/enabled": "true",
            "llm-autoscale.io/max-replicas": "2",
            "llm-autoscale.io/target": "600m"}},
        "spec": {"selector": {"matchLabels": {"app": "p"}}, "template": {
            "metadata": {"labels": {"app": "p"}},
            "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0"}]}}}
    })
    .to_string();
    cp.wait_for("the product's webhook to answer", STARTUP, || {
        let out = cp.kubectl_stdin(&["create", "--dry-run=server", "-f", "-"], &probe);
        String::from_utf8_lossy(&out.stderr).contains("llm-autoscale.io/target")
    });
    webhook
}

/// KEDA's operator and metrics adapter, the APIService in front of the
/// adapter, waited for until `external.metrics.k8s.io` answers. The operator
/// trusts the CA files in `ca_dir` for its scalers' TLS (`--ca-dir`,
/// kedacore/keda `cmd/operator/main.go`).
fn start_keda(cp: &ControlPlane, ca_dir: &std::path::Path) {
    // One KEDA CA (the harness CA) and one leaf for the operator's gRPC
    // server, the adapter's gRPC client and the adapter's HTTPS server (the
    // aggregator checks the Service's DNS name).
    let certs = cp.work_dir().join("keda-mtls");
    cp.issue_mutual_tls_dir(
        &certs,
        &[
            "127.0.0.1",
            ADAPTER_IP,
            "keda-metrics-apiserver.keda.svc",
            "keda-metrics-apiserver.keda.svc.cluster.local",
            "localhost",
        ],
    );
    let adapter_port = TcpListener::bind((ADAPTER_IP, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on the adapter's cluster IP");
    let [op_metrics, op_health, op_grpc, adapter_metrics] = free_ports();
    // Read by both (`pkg/util/env_resolver.go`, `pkg/util/watch.go`
    // in KEDA): the namespace KEDA "runs" in, all namespaces watched, and
    // where cluster-scoped objects' secrets live.
    let env = [
        ("POD_NAMESPACE", KEDA_NS),
        ("WATCH_NAMESPACE", ""),
        ("KEDA_CLUSTER_OBJECT_NAMESPACE", KEDA_NS),
    ];
    let kubeconfig = cp.kubeconfig().display().to_string();
    let cert_dir = certs.display().to_string();
    cp.spawn(
        "keda-operator",
        &[
            format!("--kubeconfig={kubeconfig}"),
            format!("--cert-dir={cert_dir}"),
            // Certificates come from the harness; nothing to rotate or
            // patch into webhook configurations or APIServices.
            "--enable-cert-rotation=false".into(),
            "--enable-webhook-patching=false".into(),
            "--enable-apiservice-patching=false".into(),
            "--leader-elect=false".into(),
            format!("--metrics-bind-address=127.0.0.1:{op_metrics}"),
            format!("--health-probe-bind-address=127.0.0.1:{op_health}"),
            format!("--metrics-service-bind-address=127.0.0.1:{op_grpc}"),
            format!("--ca-dir={}", ca_dir.display()),
        ],
        &env,
    );
    cp.spawn(
        "keda-adapter",
        &[
            format!("--kubeconfig={kubeconfig}"),
            format!("--lister-kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            format!("--bind-address={ADAPTER_IP}"),
            format!("--secure-port={adapter_port}"),
            format!("--tls-cert-file={cert_dir}/tls.crt"),
            format!("--tls-private-key-file={cert_dir}/tls.key"),
            format!("--cert-dir={cert_dir}"),
            format!("--metrics-service-address=127.0.0.1:{op_grpc}"),
            format!(
                "--requestheader-client-ca-file={}",
                cp.front_proxy_ca_file().display()
            ),
            // The request-header CA is given; do not read it from
            // kube-system/extension-apiserver-authentication.
            "--authentication-skip-lookup".into(),
            format!("--port={adapter_metrics}"),
        ],
        &env,
    );
    cp.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &adapter_api_service(adapter_port, &cp.ca_bundle_base64()),
    );
    cp.wait_for(
        "external.metrics.k8s.io to be served by KEDA's adapter",
        STARTUP,
        || {
            cp.kubectl(&["get", "--raw", "/apis/external.metrics.k8s.io/v1beta1"])
                .status
                .success()
        },
    );
}

/// Service (cluster IP [`ADAPTER_IP`], no selector), its EndpointSlice and
/// the APIService `v1beta1.external.metrics.k8s.io`, as KEDA's manifests
/// name them.
fn adapter_api_service(port: u16, ca_bundle: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: keda-metrics-apiserver
  namespace: {KEDA_NS}
spec:
  clusterIP: {ADAPTER_IP}
  ports:
  - name: https
    port: {port}
    targetPort: {port}
    protocol: TCP
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: keda-metrics-apiserver
  namespace: {KEDA_NS}
  labels:
    kubernetes.io/service-name: keda-metrics-apiserver
addressType: FQDN
endpoints:
- addresses: [keda-adapter.invalid]
  conditions:
    ready: true
ports:
- name: https
  port: {port}
  protocol: TCP
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta1.external.metrics.k8s.io
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  caBundle: {ca_bundle}
  service:
    name: keda-metrics-apiserver
    namespace: {KEDA_NS}
    port: {port}
"
    )
}
