//! `llm-autoscale-webhook doctor` against a real control plane: each condition that stands
//! between a workload and scaling is broken on purpose, and the built binary, run as a user
//! runs it (KUBECONFIG, `-o json`), must name it with its check and exit 1; a healthy workload
//! exits 0. One [`ScalingPlane`] (KEDA's operator and metrics adapter, the HPA controller,
//! Prometheus, the product's webhook and reconciler, installed from the chart's render) serves
//! every case.
//!
//! Doctor runs as the on-call user the chart's doctor ClusterRole is bound to
//! (`doctor.subjects` in `chart_install::install`), with a token of its own: every request it
//! makes is checked by the API server against the chart's RBAC. At the end the API server's
//! audit log of that user's requests is compared with src/doctor/gather/api_reads.rs, which the
//! chart's role grants exactly (tests/chart/rbac.rs).
//!
//! Answers through the API server's service proxy cannot be had here (Services have no
//! endpoints a proxy could dial; the request itself is made and authorized), so Prometheus and the KEDA OTel add-on are reached through
//! `--prometheus-url` and `--addon-url` at loopback servers: the real Prometheus, and for the
//! add-on (which the Go module proxy does not serve, so it cannot be built here) a loopback
//! server answering `GET /memstore/data` in the shape of kedify/otel-add-on rest/api.go
//! `getMetricData`. The built-in scaler is the real scaler process of the plane, asked at
//! `--builtin-scaler-url`. The proxy paths are unit-tested (src/doctor/address.rs,
//! src/doctor/gather/builtin.rs).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use llm_autoscale_webhook::doctor::gather::API_READS;
use llm_autoscale_webhook::scaler::trust::{self, TrustKey};
use serde_json::{Value, json};

use crate::cluster::ControlPlane;
use crate::fake_metrics::{MetricsEndpoint, gateway_metrics};
use crate::prometheus::write_target;
use crate::scaling_plane::ScalingPlane;

const WAIT: Duration = Duration::from_secs(180);

/// Runs `doctor -o json ARGS` against the control plane as the on-call user: (exit code,
/// report).
fn doctor(cp: &ControlPlane, args: &[&str]) -> (i32, Value) {
    doctor_with(&cp.user_kubeconfig(), args)
}

/// [`doctor`] with the credentials of `kubeconfig`.
fn doctor_with(kubeconfig: &Path, args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_llm-autoscale-webhook"))
        .arg("doctor")
        .args(["-o", "json"])
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run llm-autoscale-webhook doctor");
    let code = out.status.code().unwrap_or(-1);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor {args:?} (exit {code}) printed no JSON report ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, report)
}

/// Every finding of the report with this check id.
fn findings<'a>(report: &'a Value, check: &str) -> Vec<&'a Value> {
    let cluster = report["cluster"].as_array().into_iter().flatten();
    let workloads = report["workloads"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|w| w["findings"].as_array().into_iter().flatten());
    cluster
        .chain(workloads)
        .filter(|f| f["check"] == check)
        .collect()
}

/// The finding of `check` with `severity`; panics with the report when there is none.
fn named<'a>(report: &'a Value, check: &str, severity: &str) -> &'a Value {
    findings(report, check)
        .into_iter()
        .find(|f| f["severity"] == severity)
        .unwrap_or_else(|| panic!("no {severity} {check} in {report:#}"))
}

fn apply(cp: &ControlPlane, object: &Value) {
    cp.kubectl_stdin_ok(&["apply", "-f", "-"], &object.to_string());
}

fn deployment(ns: &str, name: &str, annotations: &[(&str, &str)]) -> Value {
    let ann: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (format!("llm-autoscale.io/{k}"), json!(v)))
        .collect();
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "annotations": ann},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0",
                                     "ports": [{"name": "http", "containerPort": 8000}]}]}}}
    })
}

fn wait_scaled_object(cp: &ControlPlane, ns: &str, name: &str) -> Value {
    let get = || crate::product::get_json(cp, &["scaledobject", "-n", ns, name]);
    cp.wait_for(&format!("ScaledObject {ns}/{name}"), WAIT, || {
        get().is_some()
    });
    get().expect("the ScaledObject")
}

#[test]
fn doctor_names_what_blocks_scaling() {
    let mut plane = ScalingPlane::start();
    let cp = &plane.cp;
    let prometheus = plane.prometheus.url.clone();
    for ns in [
        "doc-prom",
        "doc-empty",
        "doc-otel",
        "doc-foreign",
        BUILTIN_NS,
    ] {
        cp.kubectl_ok(&["create", "namespace", ns]);
    }

    // A router metric in Prometheus, for a workload that scales on it.
    let router = MetricsEndpoint::start(gateway_metrics("m", 1.0));
    write_target(&plane.targets, "doc-prom", "llm-router", router.port());
    let query = "sum(router_queue_depth{model=\"m\"})";
    let prom = |extra: &[(&'static str, &str)], ns: &str| {
        let mut a = vec![
            ("enabled", "true"),
            ("backend", "prometheus"),
            ("prometheus-address", prometheus.as_str()),
            ("max-replicas", "3"),
            ("target", "5"),
        ];
        a.extend_from_slice(extra);
        deployment(ns, "m", &a)
    };
    apply(cp, &prom(&[("query", query)], "doc-prom"));
    apply(cp, &prom(&[("query", "sum(no_such_metric)")], "doc-empty"));

    healthy_then_paused_and_competing(cp, &prometheus);
    empty_prometheus_answer(cp, &prometheus);
    otel_metric_path(cp);
    excluded_namespace_and_invalid_annotations(cp);
    foreign_scaled_object_that_never_wakes(cp);
    webhook_trust_and_endpoints(cp);
    keda_metrics_api_gone(cp);
    a_workload_that_does_not_exist(cp);
    builtin_series_absent_held_then_stale(&plane);
    builtin_scaler_tls_trust(&plane);
    requests_were_what_the_chart_grants(cp);
    plane.scaler.kill();
    builtin_scaler_stopped(&plane);
}

const BUILTIN_NS: &str = "doc-builtin";

/// doctor's arguments for the builtin workload: the scaler's gRPC port by URL, over TLS with
/// the CA of its certificate (the plane's scaler serves TLS), and the webhook's settings that
/// make its triggers builtin ones, rendered with TLS.
fn builtin_args(plane: &ScalingPlane) -> Vec<String> {
    let ca = plane.cp.work_dir().join("doctor-scaler-ca.crt");
    std::fs::write(&ca, &plane.scaler_ca).expect("write the scaler's CA for doctor");
    vec![
        "-n".into(),
        BUILTIN_NS.into(),
        "deploy/m".into(),
        "--builtin-scaler-url".into(),
        format!("https://{}", plane.scaler.scaler),
        "--builtin-scaler-ca".into(),
        ca.display().to_string(),
        format!("--builtin-scaler-address={}", plane.scaler.scaler),
        "--builtin-scaler-tls=true".into(),
    ]
}

fn doctor_builtin(plane: &ScalingPlane) -> (i32, Value) {
    let args = builtin_args(plane);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    doctor(&plane.cp, &args)
}

/// The plane's webhook renders TLS towards the scaler, and doctor is told so
/// (`--builtin-scaler-tls`): the namespace's Secret holds the CA the reconciler wrote from
/// `--scaler-tls-ca` (read whole, through the on-call user's RBAC); KEDA's operator (a
/// process here, so no Deployment at first) is not known, then a Deployment shaped as KEDA's
/// chart renders it has nothing at `/custom/ca`, then a Secret there.
fn builtin_scaler_tls_trust(plane: &ScalingPlane) {
    let cp = &plane.cp;
    let doctor_tls = || doctor_builtin(plane);
    let (_, report) = doctor_tls();
    let ca = named(&report, "builtin-scaler-ca", "ok");
    assert!(
        ca["message"]
            .to_string()
            .contains("holds 1 PEM certificate"),
        "{ca}"
    );
    named(&report, "keda-ca-dir", "warning");

    cp.kubectl_ok(&["create", "namespace", "doc-keda"]);
    let operator = |mounted: bool| {
        let (mounts, volumes) = match mounted {
            true => (
                json!([{"name": "scaler-ca", "mountPath": "/custom/ca", "readOnly": true}]),
                json!([{"name": "scaler-ca", "secret": {"secretName": "llm-autoscale-scaler-ca"}}]),
            ),
            false => (json!([]), json!([])),
        };
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "keda-operator", "namespace": "doc-keda",
                         "labels": {"app.kubernetes.io/name": "keda-operator"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "keda-operator"}}, "template": {
                "metadata": {"labels": {"app": "keda-operator"}},
                "spec": {"containers": [{"name": "keda-operator", "image": "ghcr.io/kedacore/keda:2.21.0",
                    "args": ["--leader-elect", "--zap-log-level=info"],
                    "volumeMounts": mounts}], "volumes": volumes}}}
        })
    };
    apply(cp, &operator(false));
    let (_, report) = doctor_tls();
    let bare = named(&report, "keda-ca-dir", "error");
    assert!(bare["message"].to_string().contains("/custom/ca"), "{bare}");
    apply(cp, &operator(true));
    let (_, report) = doctor_tls();
    let mounted = named(&report, "keda-ca-dir", "ok");
    assert!(
        mounted["message"]
            .to_string()
            .contains("Secret llm-autoscale-scaler-ca"),
        "{mounted}"
    );
    cp.kubectl_ok(&["delete", "deployment", "-n", "doc-keda", "keda-operator"]);
    cp.kubectl_ok(&["delete", "namespace", "doc-keda", "--wait=false"]);
}

/// A builtin workload whose sidecars send nothing: the scaler answers KEDA's GetMetrics with
/// NotFound, and doctor gives its reason. Points arrive with the namespace's token: the series
/// are held. No more points past the scaler's staleness (10 s in the plane): stale, named.
/// The token Secret the reconciler wrote is found.
fn builtin_series_absent_held_then_stale(plane: &ScalingPlane) {
    use crate::scaler_clients::{Tls, channel, export_over, gauge, stamped};
    let cp = &plane.cp;
    apply(
        cp,
        &deployment(
            BUILTIN_NS,
            "m",
            &[
                ("enabled", "true"),
                ("backend", "builtin"),
                ("preset", "queue-depth"),
                ("min-replicas", "1"),
                ("max-replicas", "3"),
                ("target", "5"),
            ],
        ),
    );
    wait_scaled_object(cp, BUILTIN_NS, "m");
    cp.wait_for("the reconciler to write the token Secret", WAIT, || {
        crate::product::get_json(cp, &["secret", "-n", BUILTIN_NS, trust::SECRET_NAME]).is_some()
    });

    let (code, report) = doctor_builtin(plane);
    assert_eq!(code, 1, "{report:#}");
    named(&report, "builtin-scaler-reachable", "ok");
    named(&report, "builtin-token", "ok");
    let absent = named(&report, "builtin-series", "error");
    let message = absent["message"].as_str().unwrap_or_default();
    assert!(message.contains("(NotFound)"), "{absent}");
    assert!(
        absent["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("sidecar"),
        "{absent}"
    );

    let key = TrustKey::new(plane.trust_key.as_bytes()).expect("the trust key");
    let token = trust::token_for(&key, BUILTIN_NS);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime for the OTLP client");
    let point = gauge(
        "vllm:num_requests_waiting",
        stamped(BUILTIN_NS, "m", "m-5d8f7-abcde"),
        3.0,
    );
    // Over TLS, as the rendered sidecar exports (the scaler's certificate names localhost).
    let tls = Tls {
        ca_pem: &plane.scaler_ca,
        domain: "localhost",
    };
    let rejected = runtime
        .block_on(async {
            let connection = channel(&plane.scaler.otlp.to_string(), Some(tls)).await?;
            export_over(connection, Some(&token), vec![point]).await
        })
        .expect("the scaler takes the export");
    assert_eq!(rejected, 0);
    let (_, report) = doctor_builtin(plane);
    let held = named(&report, "builtin-series", "ok");
    assert!(
        held["message"]
            .as_str()
            .unwrap_or_default()
            .contains("answers 3"),
        "{held}"
    );

    cp.wait_for("doctor to call the series stale", WAIT, || {
        let (code, report) = doctor_builtin(plane);
        code == 1
            && findings(&report, "builtin-series").iter().any(|f| {
                f["severity"] == "error"
                    && f["message"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("(Unavailable)")
            })
    });
}

/// The scaler stopped: doctor says it does not answer, with where it was asked.
fn builtin_scaler_stopped(plane: &ScalingPlane) {
    let (code, report) = doctor_builtin(plane);
    assert_eq!(code, 1, "{report:#}");
    let down = named(&report, "builtin-scaler-reachable", "error");
    assert!(
        down["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("https://{}", plane.scaler.scaler)),
        "{down}"
    );
    assert!(findings(&report, "builtin-series").is_empty(), "{report:#}");
}

/// The Prometheus workload scales: exit 0, each layer checked. Then KEDA's pause annotation
/// and a second HPA on the same Deployment: both named, exit 1.
fn healthy_then_paused_and_competing(cp: &ControlPlane, prometheus: &str) {
    wait_scaled_object(cp, "doc-prom", "m");
    let args = ["-n", "doc-prom", "deploy/m", "--prometheus-url", prometheus];
    // KEDA makes the HPA and the HPA controller reads the metric within seconds. Until the
    // controller's first sync the HPA has no conditions, and doctor says nothing about them.
    cp.wait_for(
        "doctor to find nothing blocking doc-prom/m, the HPA's conditions written",
        WAIT,
        || {
            let (code, report) = doctor(cp, &args);
            code == 0
                && findings(&report, "hpa-conditions")
                    .iter()
                    .any(|f| f["severity"] == "ok")
        },
    );
    let (_, report) = doctor(cp, &args);
    for check in [
        "webhook-configuration",
        "webhook-certificate",
        "keda-crd",
        "keda-metrics-api",
        "opt-in",
        "annotations",
        "scaledobject",
        "scaledobject-sync",
        "scaledobject-ready",
        "hpa",
        "hpa-conditions",
        "competing-scaler",
        "prometheus-query",
    ] {
        named(&report, check, "ok");
    }
    assert_eq!(report["summary"]["blocks_scaling"], false, "{report:#}");

    // The chart's doctor ClusterRole hides nothing doctor needs: the admin gets the same answer.
    let (code, as_admin) = doctor_with(cp.kubeconfig(), &args);
    assert_eq!(code, 0, "{as_admin:#}");
    assert_eq!(as_admin["summary"], report["summary"]);
    let (code, all) = doctor(cp, &[]);
    assert!(code == 0 || code == 1, "listing every namespace: {all:#}");

    cp.kubectl_ok(&[
        "annotate",
        "scaledobject",
        "-n",
        "doc-prom",
        "m",
        "autoscaling.keda.sh/paused=true",
    ]);
    let cpu_hpa = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "cpu", "namespace": "doc-prom"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "m"},
                 "minReplicas": 1, "maxReplicas": 2,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                              "target": {"type": "Utilization", "averageUtilization": 80}}}]}
    });
    apply(cp, &cpu_hpa);
    let (code, report) = doctor(cp, &args);
    assert_eq!(code, 1, "{report:#}");
    let paused = named(&report, "scaledobject-paused", "error");
    assert!(
        paused["fix"]
            .as_str()
            .unwrap()
            .contains("autoscaling.keda.sh/paused-"),
        "{paused}"
    );
    let competing = named(&report, "competing-scaler", "error");
    assert!(
        competing["message"].as_str().unwrap().contains("HPA cpu"),
        "{competing}"
    );

    // The same, as people read it.
    let out = Command::new(env!("CARGO_BIN_EXE_llm-autoscale-webhook"))
        .args([
            "doctor",
            "-n",
            "doc-prom",
            "deploy/m",
            "--prometheus-url",
            prometheus,
        ])
        .env("KUBECONFIG", cp.user_kubeconfig())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("e2e: doctor -n doc-prom deploy/m:\n{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Deployment doc-prom/m"), "{text}");
    assert!(
        text.contains("error   scaledobject-paused  ScaledObject m"),
        "{text}"
    );
    assert!(
        text.contains("fix: kubectl -n doc-prom annotate scaledobject m"),
        "{text}"
    );
    assert!(text.contains("BLOCKED:"), "{text}");
}

/// A query Prometheus answers with no series: KEDA reads 0 and the workload never scales up.
fn empty_prometheus_answer(cp: &ControlPlane, prometheus: &str) {
    wait_scaled_object(cp, "doc-empty", "m");
    let (code, report) = doctor(
        cp,
        &[
            "-n",
            "doc-empty",
            "deploy/m",
            "--prometheus-url",
            prometheus,
        ],
    );
    assert_eq!(code, 1, "{report:#}");
    let f = named(&report, "prometheus-query", "error");
    assert!(f["message"].as_str().unwrap().contains("no series"), "{f}");
}

/// The otel backend: the sidecar injected and current; KEDA's own reason for the
/// ScaledObject's Ready condition; the metric absent from the add-on's store, then present
/// for this workload; the add-on's error-if-not-found setting with a fallback.
fn otel_metric_path(cp: &ControlPlane) {
    apply(
        cp,
        &deployment(
            "doc-otel",
            "m",
            &[
                ("enabled", "true"),
                ("max-replicas", "4"),
                ("fallback-replicas", "2"),
                ("fallback-failure-threshold", "3"),
            ],
        ),
    );
    wait_scaled_object(cp, "doc-otel", "m");
    let ready_reason = || {
        crate::product::get_json(cp, &["scaledobject", "-n", "doc-otel", "m"]).and_then(|so| {
            so["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Ready" && c["status"] != "Unknown")
                .and_then(|c| c["reason"].as_str().map(str::to_owned))
        })
    };
    cp.wait_for("KEDA to judge doc-otel/m", WAIT, || {
        ready_reason().is_some()
    });
    let reason = ready_reason().expect("KEDA's Ready reason");

    let store = MetricsEndpoint::start("{}".into());
    let url = format!("http://127.0.0.1:{}", store.port());
    let args = ["-n", "doc-otel", "deploy/m", "--addon-url", url.as_str()];
    let (code, report) = doctor(cp, &args);
    assert_eq!(code, 1, "{report:#}");
    named(&report, "sidecar", "ok");
    let ready = findings(&report, "scaledobject-ready")[0];
    assert!(
        ready["message"].as_str().unwrap().contains(&reason),
        "{ready}"
    );
    named(&report, "addon-reachable", "ok");
    let missing = named(&report, "metric-in-store", "error");
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains("vllm:num_requests_waiting"),
        "{missing}"
    );
    // No add-on Service yet, so no Deployment whose setting could be read.
    let unknown = named(&report, "addon-error-if-not-found", "info");
    assert!(
        unknown["message"].as_str().unwrap().contains("not found"),
        "{unknown}"
    );

    // The add-on as its chart installs it, without METRIC_STORE_ERROR_IF_NOT_FOUND.
    let addon = |env: Value| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "keda-otel-scaler", "namespace": "keda"},
            "spec": {"selector": {"matchLabels": {"app": "keda-otel-scaler"}}, "template": {
                "metadata": {"labels": {"app": "keda-otel-scaler"}},
                "spec": {"containers": [{"name": "main", "image": "ghcr.io/kedify/otel-add-on:v0.1.4", "env": env}]}}}
        })
    };
    apply(
        cp,
        &addon(json!([{"name": "METRIC_STORE_RETENTION_SECONDS", "value": "120"}])),
    );
    apply(
        cp,
        &json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "keda-otel-scaler", "namespace": "keda"},
            "spec": {"selector": {"app": "keda-otel-scaler"}, "ports": [
                {"name": "keda-external-scaler", "port": 4318},
                {"name": "rest-api", "port": 9090}]}
        }),
    );
    store.set(
        json!({"vllm:num_requests_waiting": [{
            "labels": {"deployment": "m", "namespace": "doc-otel", "pod": "m-7c9d5f8b6d-a1b2c"},
            "data": [{"value": 2, "time": 1}], "aggregatesOverTime": {"last_one": 2}, "lastUpdate": 1}]})
        .to_string(),
    );
    let (_, report) = doctor(cp, &args);
    let present = named(&report, "metric-in-store", "ok");
    assert!(
        present["message"].as_str().unwrap().contains("1 series"),
        "{present}"
    );
    let setting = named(&report, "addon-error-if-not-found", "warning");
    assert!(
        setting["message"]
            .as_str()
            .unwrap()
            .contains("fallback never fires"),
        "{setting}"
    );

    apply(
        cp,
        &addon(json!([{"name": "METRIC_STORE_ERROR_IF_NOT_FOUND", "value": "true"}])),
    );
    let (_, report) = doctor(cp, &args);
    named(&report, "addon-error-if-not-found", "ok");
}

/// Deployments in the webhook's own namespace, which its namespaceSelector excludes: one
/// opted in (stored without a sidecar), one with invalid annotations (stored, never refused).
fn excluded_namespace_and_invalid_annotations(cp: &ControlPlane) {
    let ns = "llm-autoscale-system";
    apply(
        cp,
        &deployment(ns, "unseen", &[("enabled", "true"), ("max-replicas", "2")]),
    );
    apply(
        cp,
        &deployment(
            ns,
            "invalid",
            &[
                ("enabled", "true"),
                ("max-replicas", "2"),
                ("target", "600m"),
            ],
        ),
    );
    let (code, report) = doctor(cp, &["-n", ns, "deploy/unseen"]);
    assert_eq!(code, 1, "{report:#}");
    let excluded = named(&report, "webhook-selector", "error");
    assert!(
        excluded["message"].as_str().unwrap().contains(ns),
        "{excluded}"
    );
    let sidecar = named(&report, "sidecar", "error");
    assert!(
        sidecar["message"]
            .as_str()
            .unwrap()
            .contains("SidecarMissing"),
        "{sidecar}"
    );

    let (code, report) = doctor(cp, &["-n", ns, "deploy/invalid"]);
    assert_eq!(code, 1, "{report:#}");
    let invalid = named(&report, "annotations", "error");
    let message = invalid["message"].as_str().unwrap();
    assert!(
        message.contains("llm-autoscale.io/target") && message.contains("600m"),
        "{invalid}"
    );

    // Listing the namespace reports both.
    let (_, report) = doctor(cp, &["-n", ns]);
    let names: Vec<&str> = report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["name"].as_str())
        .collect();
    assert!(
        names.contains(&"unseen") && names.contains(&"invalid"),
        "{names:?}"
    );
}

/// A hand-written ScaledObject of the name the product would use, there before the opt-in:
/// the reconciler leaves it alone; it scales to zero on the workload's own sidecar metric,
/// so it would never wake.
fn foreign_scaled_object_that_never_wakes(cp: &ControlPlane) {
    let ns = "doc-foreign";
    apply(cp, &deployment(ns, "m", &[]));
    apply(
        cp,
        &json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "m", "namespace": ns},
            "spec": {"scaleTargetRef": {"name": "m"}, "minReplicaCount": 0, "maxReplicaCount": 3,
                     "triggers": [{"type": "external", "name": "queue", "metadata": {
                         "scalerAddress": "keda-otel-scaler.keda.svc:4318",
                         "metricQuery": format!("sum(vllm:num_requests_waiting{{deployment=m,namespace={ns}}})"),
                         "targetValue": "5"}}]}
        }),
    );
    apply(
        cp,
        &deployment(ns, "m", &[("enabled", "true"), ("max-replicas", "3")]),
    );
    let (code, report) = doctor(cp, &["-n", ns, "deploy/m"]);
    assert_eq!(code, 1, "{report:#}");
    let foreign = named(&report, "scaledobject", "error");
    assert!(
        foreign["message"]
            .as_str()
            .unwrap()
            .contains("not managed by"),
        "{foreign}"
    );
    named(&report, "scale-to-zero-wake", "error");
}

/// The Deployment webhook's caBundle swapped for another CA's (made by the product's own
/// `certs`): the handshake the API server makes fails. Then the webhook pointed at a Service
/// without endpoints. Restored after each.
fn webhook_trust_and_endpoints(cp: &ControlPlane) {
    let original = crate::product::get_json(
        cp,
        &["mutatingwebhookconfiguration", "llm-autoscale-webhook"],
    )
    .expect("the product's MutatingWebhookConfiguration");
    let other = cp.work_dir().join("other-ca");
    let out = Command::new(env!("CARGO_BIN_EXE_llm-autoscale-webhook"))
        .args(["certs", "--out-dir"])
        .arg(&other)
        .output()
        .expect("run certs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let patch = |ops: Value| {
        cp.kubectl_ok(&[
            "patch",
            "mutatingwebhookconfiguration",
            "llm-autoscale-webhook",
            "--type=json",
            &format!("-p={ops}"),
        ]);
    };
    patch(json!([{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": bundle}]));
    let (code, report) = doctor(cp, &["-n", "doc-prom"]);
    assert_eq!(code, 1, "{report:#}");
    let cert = named(&report, "webhook-certificate", "error");
    assert!(
        cert["subject"]
            .as_str()
            .unwrap()
            .contains("deployments.llm-autoscale.io"),
        "{cert}"
    );
    assert!(
        cert["message"]
            .as_str()
            .unwrap()
            .contains("invalid peer certificate"),
        "{cert}"
    );

    patch(
        json!([{"op": "replace", "path": "/webhooks/0/clientConfig", "value": {
        "service": {"namespace": "llm-autoscale-system", "name": "llm-autoscale-webhook",
                    "path": "/mutate", "port": 443},
        "caBundle": original["webhooks"][0]["clientConfig"]["caBundle"]}}]),
    );
    let (code, report) = doctor(cp, &["-n", "doc-prom"]);
    assert_eq!(code, 1, "{report:#}");
    let endpoints = named(&report, "webhook-endpoints", "error");
    assert!(
        endpoints["message"]
            .as_str()
            .unwrap()
            .contains("no ready endpoints"),
        "{endpoints}"
    );
    named(&report, "webhook-certificate", "info");

    patch(json!([{"op": "replace", "path": "/webhooks/0/clientConfig",
                  "value": original["webhooks"][0]["clientConfig"]}]));
    let (_, report) = doctor(cp, &["-n", "doc-prom"]);
    named(&report, "webhook-certificate", "ok");
}

/// KEDA's metrics adapter unregistered: HPAs cannot read any trigger.
fn keda_metrics_api_gone(cp: &ControlPlane) {
    cp.kubectl_ok(&["delete", "apiservice", "v1beta1.external.metrics.k8s.io"]);
    let (code, report) = doctor(cp, &["-n", "doc-empty"]);
    assert_eq!(code, 1, "{report:#}");
    named(&report, "keda-metrics-api", "error");
}

/// A workload named on the command line that does not exist: nothing to check, exit 2.
fn a_workload_that_does_not_exist(cp: &ControlPlane) {
    let out = Command::new(env!("CARGO_BIN_EXE_llm-autoscale-webhook"))
        .args(["doctor", "-n", "doc-prom", "inferenceservice/absent"])
        .env("KUBECONFIG", cp.user_kubeconfig())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run doctor");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("inferenceservice/absent not found in namespace doc-prom"),
        "{stderr}"
    );
}

/// What doctor asked the API server for in this test, as the audit log records it, is what
/// the chart's role grants (src/doctor/gather/api_reads.rs), none of it refused. That includes
/// `get` on `services/proxy`: without `--addon-url`, doctor asks the add-on's Service through
/// the proxy; the API server authorizes the request, then answers 404, as no Endpoints exist
/// for the Service here.
fn requests_were_what_the_chart_grants(cp: &ControlPlane) {
    let events = cp.audit_events();
    let requests: BTreeSet<(String, String, String)> = events
        .iter()
        .map(|e| {
            let text = |p: &str| e.pointer(p).and_then(Value::as_str).unwrap_or_default();
            let resource = match (text("/objectRef/resource"), text("/objectRef/subresource")) {
                ("", _) => format!("non-resource {}", text("/requestURI")),
                (r, "") => r.to_string(),
                (r, sub) => format!("{r}/{sub}"),
            };
            (
                text("/objectRef/apiGroup").to_string(),
                resource,
                text("/verb").to_string(),
            )
        })
        .collect();
    let refused: Vec<&Value> = events
        .iter()
        .filter(|e| e.pointer("/responseStatus/code") == Some(&json!(403)))
        .collect();
    assert!(refused.is_empty(), "requests refused by RBAC: {refused:#?}");
    let secrets: Vec<&Value> = events
        .iter()
        .filter(|e| e.pointer("/objectRef/resource") == Some(&json!("secrets")))
        .collect();
    assert!(
        !secrets.is_empty(),
        "the builtin case reads the token Secret"
    );
    assert!(
        secrets
            .iter()
            .all(|e| e.pointer("/objectRef/name") == Some(&json!(trust::SECRET_NAME))),
        "doctor reads no other Secret: {secrets:#?}"
    );
    let granted: BTreeSet<(String, String, String)> = API_READS
        .iter()
        .flat_map(|r| {
            r.verbs
                .iter()
                .map(|v| (r.group.to_string(), r.resource.to_string(), v.to_string()))
        })
        .collect();
    assert_eq!(
        requests,
        granted,
        "doctor's requests ({} audit events) and src/doctor/gather/api_reads.rs",
        events.len()
    );
}
