//! The product end to end: the real webhook binary (admission + reconciler), installed from
//! the Helm chart's render (`chart_install.rs`) on a real kube-apiserver, driven by real
//! kubectl. KEDA's own admission webhook judges every ScaledObject the reconciler applies.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::chart_install;
use crate::cluster::ControlPlane;

const NS: &str = "llm";
const WAIT: Duration = Duration::from_secs(60);

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).expect("one YAML document")
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The webhook binary as a child process, stopped (SIGTERM) on drop.
pub(crate) struct Webhook {
    child: Child,
    log: PathBuf,
}

impl Webhook {
    /// Starts `serve` on 127.0.0.1:`port`, talking to the API server with `kubeconfig` (the
    /// chart's ServiceAccount: [`chart_install::install`]).
    pub(crate) fn start(
        kubeconfig: &Path,
        port: u16,
        cert: &Path,
        key: &Path,
        log: PathBuf,
    ) -> Webhook {
        Webhook::start_with(kubeconfig, port, (cert, key), log, &[])
    }

    /// As [`start`](Self::start), with `extra` arguments for `serve`.
    pub(crate) fn start_with(
        kubeconfig: &Path,
        port: u16,
        (cert, key): (&Path, &Path),
        log: PathBuf,
        extra: &[String],
    ) -> Webhook {
        let file = std::fs::File::create(&log).expect("webhook log file");
        let child = Command::new(env!("CARGO_BIN_EXE_llm-autoscale-webhook"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .args(["--log-format", "text"])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAMESPACE", "llm-autoscale-system")
            .env("POD_NAME", format!("webhook-{port}"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(file.try_clone().expect("log handle")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start llm-autoscale-webhook");
        Webhook { child, log }
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(&self.log) {
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("--- webhook log (last lines) ---");
                for l in tail.into_iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

pub(crate) fn get_json(cp: &ControlPlane, args: &[&str]) -> Option<Value> {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.push("-o=json");
    let out = cp.kubectl(&full);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("kubectl -o json"))
}

fn scaled_object(cp: &ControlPlane, name: &str) -> Option<Value> {
    get_json(cp, &["scaledobject", "-n", NS, name])
}

fn deployment(cp: &ControlPlane, name: &str) -> Option<Value> {
    get_json(cp, &["deployment", "-n", NS, name])
}

fn sidecar_of(d: &Value) -> Option<Value> {
    d.pointer("/spec/template/spec/initContainers")
        .and_then(Value::as_array)
        .and_then(|l| {
            l.iter()
                .find(|c| c["name"] == "llm-autoscale-collector")
                .cloned()
        })
}

fn with_annotation(mut doc: Value, key: &str, value: Option<&str>) -> Value {
    let ann = doc["metadata"]["annotations"]
        .as_object_mut()
        .expect("annotations");
    match value {
        Some(v) => {
            ann.insert(key.into(), Value::String(v.into()));
        }
        None => {
            ann.remove(key);
        }
    }
    doc
}

/// Whether an Event with this reason was recorded on the named Deployment.
fn has_event(cp: &ControlPlane, deployment: &str, reason: &str) -> bool {
    get_json(
        cp,
        &[
            "events",
            "-n",
            NS,
            &format!("--field-selector=reason={reason}"),
        ],
    )
    .and_then(|l| l["items"].as_array().cloned())
    .is_some_and(|items| {
        items.iter().any(|e| {
            e["involvedObject"]["kind"] == "Deployment" && e["involvedObject"]["name"] == deployment
        })
    })
}

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn annotated_workloads_get_sidecars_and_scaled_objects() {
    let cp = ControlPlane::start();
    let certs = cp.log_dir().join("../webhook-certs");
    let (cert, key) = cp.issue_serving_cert(&certs);
    let port = free_port();
    cp.kubectl_ok(&["create", "namespace", NS]);
    cp.kubectl_ok(&["create", "namespace", "llm-autoscale-system"]);
    // 0. Opted in before the webhook was installed: never admitted, so never labelled; the
    //    reconciler's metadata watch still finds it (below).
    let mut early = yaml(&read("examples/vllm-deployment.yaml"));
    early["metadata"]["name"] = json!("before-webhook");
    cp.kubectl_stdin_ok(&["apply", "-f", "-"], &early.to_string());
    let kubeconfig = chart_install::install(&cp, port);
    chart_install::assert_doctor_access(&cp);
    let mut webhook = Webhook::start(
        &kubeconfig,
        port,
        &cert,
        &key,
        cp.log_dir().join("webhook.log"),
    );

    // 1. An annotated vLLM Deployment: stored with the sidecar; its ScaledObject appears,
    //    owned by it (and admitted by KEDA's webhook, which is registered with Fail).
    let example = yaml(&read("examples/vllm-deployment.yaml"));
    let name = example["metadata"]["name"].as_str().unwrap().to_string();
    cp.wait_for("the webhook to inject the sidecar", WAIT, || {
        let out = cp.kubectl_stdin(
            &["apply", "--dry-run=server", "-o=json", "-f", "-"],
            &example.to_string(),
        );
        out.status.success()
            && sidecar_of(&serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)).is_some()
    });
    cp.kubectl_ok(&[
        "apply",
        "-f",
        &repo("examples/vllm-deployment.yaml").to_string_lossy(),
    ]);
    let stored = deployment(&cp, &name).expect("stored Deployment");
    let sidecar = sidecar_of(&stored).expect("the stored Deployment has the collector sidecar");
    assert_eq!(sidecar["restartPolicy"], "Always", "native sidecar");
    assert!(
        stored["spec"]["template"]["metadata"]["annotations"]["llm-autoscale.io/status"]
            .as_str()
            .is_some_and(|s| s.contains("\"hash\"")),
        "status annotation recorded"
    );
    let uid = stored["metadata"]["uid"].as_str().unwrap().to_string();
    cp.wait_for("the reconciler to apply the ScaledObject", WAIT, || {
        scaled_object(&cp, &name).is_some()
    });
    let so = scaled_object(&cp, &name).unwrap();
    assert_eq!(so["spec"]["scaleTargetRef"]["name"], name.as_str());
    assert_eq!(so["spec"]["maxReplicaCount"], 4);
    assert_eq!(so["metadata"]["ownerReferences"][0]["uid"], uid.as_str());
    assert_eq!(
        so["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "llm-autoscale-webhook"
    );
    let trigger = &so["spec"]["triggers"][0];
    assert_eq!(trigger["type"], "external");
    assert_eq!(
        trigger["metadata"]["metricQuery"],
        "sum(vllm:num_requests_waiting{deployment=qwen2-7b-vllm,namespace=llm})"
    );
    assert_eq!(trigger["metadata"]["targetValue"], "5");
    cp.wait_for("the ScaledObjectApplied event", WAIT, || {
        has_event(&cp, &name, "ScaledObjectApplied")
    });
    assert_eq!(
        stored["metadata"]["labels"]["llm-autoscale.io/managed"], "true",
        "admitted opted in: labelled for the reconciler's watch"
    );
    cp.wait_for(
        "the ScaledObject of the Deployment the webhook never saw",
        WAIT,
        || scaled_object(&cp, "before-webhook").is_some(),
    );
    cp.wait_for("the SidecarMissing event", WAIT, || {
        has_event(&cp, "before-webhook", "SidecarMissing")
    });
    let early = deployment(&cp, "before-webhook").unwrap();
    assert!(
        sidecar_of(&early).is_none()
            && early["metadata"]["labels"]["llm-autoscale.io/managed"].is_null(),
        "the reconciler never changes a Deployment"
    );

    // 2. Re-applying the same file changes nothing. Client-side apply finds no difference;
    //    an UPDATE of the stored object (what KServe's controller and GitOps tools send)
    //    passes through the webhook and leaves the generation alone; a server-side
    //    apply by another field manager keeps the sidecar as it is.
    let generation = stored["metadata"]["generation"].clone();
    let out = cp.kubectl_ok(&[
        "apply",
        "-f",
        &repo("examples/vllm-deployment.yaml").to_string_lossy(),
    ]);
    assert!(out.contains("unchanged"), "{out}");
    // A label-only patch is an UPDATE of the full object through the webhook; neither the
    // spec nor the annotations change, so neither may the generation.
    cp.kubectl_ok(&[
        "patch",
        "deployment",
        "-n",
        NS,
        &name,
        "--type=merge",
        "-p={\"metadata\":{\"labels\":{\"touched\":\"yes\"}}}",
    ]);
    let after = deployment(&cp, &name).unwrap();
    assert_eq!(
        after["metadata"]["generation"],
        generation,
        "generation changed: spec {} annotations {}",
        serde_json::to_string(&json_patch::diff(&stored["spec"], &after["spec"])).unwrap(),
        serde_json::to_string(&json_patch::diff(
            &stored["metadata"]["annotations"],
            &after["metadata"]["annotations"]
        ))
        .unwrap()
    );
    cp.kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=platform-team",
        "-f",
        &repo("examples/vllm-deployment.yaml").to_string_lossy(),
    ]);
    let after = deployment(&cp, &name).unwrap();
    assert_eq!(
        json_patch::diff(&stored["spec"], &after["spec"]).0.len(),
        0,
        "server-side apply changed the spec"
    );

    // 3. A server-side dry run of a new annotated Deployment creates nothing.
    let mut dry = example.clone();
    dry["metadata"]["name"] = json!("dry-run-only");
    let out = cp.kubectl_stdin_ok(
        &["apply", "--dry-run=server", "-o=json", "-f", "-"],
        &dry.to_string(),
    );
    assert!(
        sidecar_of(&serde_json::from_str(&out).unwrap()).is_some(),
        "dry run shows the mutation"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        deployment(&cp, "dry-run-only").is_none(),
        "dry run stored nothing"
    );
    assert!(
        scaled_object(&cp, "dry-run-only").is_none(),
        "dry run created no ScaledObject"
    );

    // 4. The target annotation changes: the ScaledObject follows.
    let retargeted = with_annotation(example.clone(), "llm-autoscale.io/target", Some("12"));
    cp.kubectl_stdin_ok(&["apply", "-f", "-"], &retargeted.to_string());
    cp.wait_for("the ScaledObject to follow the new target", WAIT, || {
        scaled_object(&cp, &name)
            .is_some_and(|so| so["spec"]["triggers"][0]["metadata"]["targetValue"] == "12")
    });

    // 5. Drift is repaired: a hand edit of the managed ScaledObject is undone, while an
    //    annotation someone else set (KEDA's pause) is kept.
    cp.kubectl_ok(&[
        "annotate",
        "scaledobject",
        "-n",
        NS,
        &name,
        "autoscaling.keda.sh/paused=true",
    ]);
    cp.kubectl_ok(&[
        "patch",
        "scaledobject",
        "-n",
        NS,
        &name,
        "--type=merge",
        "-p={\"spec\":{\"maxReplicaCount\":9}}",
    ]);
    cp.wait_for("the reconciler to repair the drift", WAIT, || {
        scaled_object(&cp, &name).is_some_and(|so| {
            so["spec"]["maxReplicaCount"] == 4
                && so["metadata"]["annotations"]["autoscaling.keda.sh/paused"] == "true"
        })
    });

    // 6. Invalid annotations: kubectl apply fails with our message.
    let invalid = with_annotation(example.clone(), "llm-autoscale.io/target", Some("600m"));
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], &invalid.to_string());
    assert!(!out.status.success(), "invalid annotation admitted");
    let err = stderr_of(&out);
    assert!(
        err.contains("llm-autoscale.io/target: \\\"600m\\\"")
            || err.contains("llm-autoscale.io/target: \"600m\""),
        "{err}"
    );
    assert!(err.contains("0.6"), "{err}");

    // 7. The opt-in goes: the sidecar is stripped and the ScaledObject deleted.
    let opted_out = with_annotation(retargeted, "llm-autoscale.io/enabled", None);
    cp.kubectl_stdin_ok(&["apply", "-f", "-"], &opted_out.to_string());
    let d = deployment(&cp, &name).unwrap();
    assert!(sidecar_of(&d).is_none(), "sidecar removed with the opt-in");
    assert!(
        d["metadata"]["labels"]["llm-autoscale.io/managed"].is_null(),
        "label removed with the opt-in"
    );
    cp.wait_for("the reconciler to delete the ScaledObject", WAIT, || {
        scaled_object(&cp, &name).is_none()
    });
    cp.wait_for("the ScaledObjectDeleted event", WAIT, || {
        has_event(&cp, &name, "ScaledObjectDeleted")
    });

    // 8. A KServe InferenceService from KServe's docs, with our annotations: stored with
    //    autoscalerClass external; its predictor Deployment (created here as KServe would)
    //    gets the sidecar and the ScaledObject.
    let mut isvc = yaml(&read(
        "tests/fixtures/input/kserve-huggingface-annotated.yaml",
    ));
    isvc = with_annotation(isvc, "llm-autoscale.io/sidecar", None);
    isvc = with_annotation(isvc, "sidecar.opentelemetry.io/inject", None);
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], &isvc.to_string());
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("autoscalerClass changed"),
        "warning shown: {}",
        stderr_of(&out)
    );
    let stored_isvc = get_json(&cp, &["inferenceservice", "-n", NS, "huggingface-fbopt"]).unwrap();
    assert_eq!(
        stored_isvc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"],
        "external"
    );
    // The ScaledObject KServe made while the class was `keda`, still there: same name as ours,
    // controlled by the InferenceService, never deleted by KServe when the class changes
    // (kserve/kserve pkg/controller/v1beta1/inferenceservice/reconcilers/keda/keda_reconciler.go).
    let leftover = json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "huggingface-fbopt-predictor", "namespace": NS,
            "labels": {"serving.kserve.io/inferenceservice": "huggingface-fbopt"},
            "ownerReferences": [{"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                "name": "huggingface-fbopt", "uid": stored_isvc["metadata"]["uid"],
                "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"scaleTargetRef": {"name": "huggingface-fbopt-predictor"}, "minReplicaCount": 1,
            "maxReplicaCount": 3, "triggers": [{"type": "prometheus", "metadata": {
                "serverAddress": "http://prometheus.monitoring:9090", "query": "sum(x)", "threshold": "1"}}]}
    });
    cp.kubectl_stdin_ok(&["apply", "-f", "-"], &leftover.to_string());
    let mut predictor = yaml(&read(
        "tests/fixtures/input/kserve-predictor-deployment.yaml",
    ));
    predictor["metadata"]["ownerReferences"][0]["uid"] = stored_isvc["metadata"]["uid"].clone();
    cp.kubectl_stdin_ok(&["apply", "-f", "-"], &predictor.to_string());
    let stored_predictor = deployment(&cp, "huggingface-fbopt-predictor").unwrap();
    let predictor_sidecar = sidecar_of(&stored_predictor).expect("predictor gets the sidecar");
    assert!(
        predictor_sidecar.to_string().contains("127.0.0.1:8080"),
        "scrapes KServe's port"
    );
    cp.wait_for(
        "KServe's leftover replaced by the predictor's ScaledObject",
        WAIT,
        || {
            scaled_object(&cp, "huggingface-fbopt-predictor").is_some_and(|so| {
                so["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "llm-autoscale-webhook"
            })
        },
    );
    cp.wait_for("the KServeScaledObjectRemoved event", WAIT, || {
        has_event(
            &cp,
            "huggingface-fbopt-predictor",
            "KServeScaledObjectRemoved",
        )
    });
    let so = scaled_object(&cp, "huggingface-fbopt-predictor").unwrap();
    assert_eq!(
        so["spec"]["triggers"][0]["metadata"]["metricQuery"],
        "sum(vllm:num_requests_running{deployment=huggingface-fbopt-predictor,namespace=llm})"
    );
    assert_eq!(
        so["metadata"]["labels"]["serving.kserve.io/inferenceservice"],
        "huggingface-fbopt"
    );

    // 9. Hand-written ScaledObjects for the OTel scaler: vLLM names pass our validating
    //    webhook (and KEDA's); `!=` is denied by ours with the column.
    let target = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "hand-written-target", "namespace": NS},
        "spec": {"selector": {"matchLabels": {"app": "h"}}, "template": {
            "metadata": {"labels": {"app": "h"}},
            "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0"}]}}}
    });
    cp.kubectl_stdin_ok(&["apply", "-f", "-"], &target.to_string());
    let hand = |name: &str, query: &str| {
        json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"scaleTargetRef": {"name": "hand-written-target"}, "minReplicaCount": 1, "maxReplicaCount": 3,
                     "triggers": [{"type": "external", "metadata": {
                         "scalerAddress": "keda-otel-scaler.keda.svc:4318",
                         "metricQuery": query, "operationOverTime": "avg", "targetValue": "4"}}]}
        })
        .to_string()
    };
    let out = cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &hand("bad-query", "sum(vllm:x{a!=b})"),
    );
    assert!(!out.status.success(), "`!=` admitted");
    let err = stderr_of(&out);
    assert!(
        err.contains("scaledobjects.llm-autoscale.io") && err.contains("column 13"),
        "{err}"
    );
    let out = cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &hand(
            "vllm-names",
            "sum(vllm:num_requests_running{model_name=llama})",
        ),
    );
    assert!(
        out.status.success(),
        "vLLM names denied: {}",
        stderr_of(&out)
    );

    // 10. Scale to zero: without a wake path kubectl apply is refused with the reason; with
    //     HTTP wake the reconciler applies the KEDA HTTP add-on's InterceptorRoute, admitted by
    //     the apiserver against the add-on's CRD (tests/fixtures/crds), owned by the Deployment.
    let mut sleepy = with_annotation(example.clone(), "llm-autoscale.io/min-replicas", Some("0"));
    sleepy["metadata"]["name"] = json!("sleepy");
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], &sleepy.to_string());
    assert!(
        !out.status.success(),
        "a scale to zero that cannot wake was admitted"
    );
    let err = stderr_of(&out);
    assert!(
        err.contains("llm-autoscale.io/min-replicas") && err.contains("never wake"),
        "{err}"
    );
    for (k, v) in [
        ("http-wake-service", "sleepy"),
        ("http-wake-port", "8000"),
        ("http-wake-hosts", "sleepy.example.com"),
    ] {
        sleepy = with_annotation(sleepy, &format!("llm-autoscale.io/{k}"), Some(v));
    }
    cp.kubectl_stdin_ok(&["apply", "-f", "-"], &sleepy.to_string());
    let sleepy_uid = deployment(&cp, "sleepy").unwrap()["metadata"]["uid"].clone();
    cp.wait_for("the InterceptorRoute of HTTP wake", WAIT, || {
        get_json(&cp, &["interceptorroute", "-n", NS, "sleepy"]).is_some()
    });
    let route = get_json(&cp, &["interceptorroute", "-n", NS, "sleepy"]).unwrap();
    assert_eq!(route["metadata"]["ownerReferences"][0]["uid"], sleepy_uid);
    assert_eq!(route["spec"]["target"]["service"], "sleepy");
    cp.wait_for("the ScaledObject with the http_wake trigger", WAIT, || {
        scaled_object(&cp, "sleepy").is_some_and(|so| {
            so["spec"]["triggers"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["type"] == "external-push"))
        })
    });

    // 11. The webhook restarts with new certificates and keeps working.
    webhook.stop();
    std::fs::remove_file(&cert).unwrap();
    std::fs::remove_file(&key).unwrap();
    let (cert2, key2) = cp.issue_serving_cert(&certs);
    let _webhook2 = Webhook::start(
        &kubeconfig,
        port,
        &cert2,
        &key2,
        cp.log_dir().join("webhook-2.log"),
    );
    let mut second = example.clone();
    second["metadata"]["name"] = json!("after-restart");
    cp.wait_for("the restarted webhook to inject again", WAIT, || {
        let out = cp.kubectl_stdin(
            &["apply", "--dry-run=server", "-o=json", "-f", "-"],
            &second.to_string(),
        );
        out.status.success()
            && sidecar_of(&serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)).is_some()
    });
    cp.kubectl_stdin_ok(&["apply", "-f", "-"], &second.to_string());
    assert!(
        deployment(&cp, "after-restart")
            .as_ref()
            .and_then(sidecar_of)
            .is_some()
    );
    cp.wait_for("the restarted reconciler to apply", WAIT, || {
        scaled_object(&cp, "after-restart").is_some()
    });
}
