//! What `helm template` renders by default: the objects fit together (Service, pods,
//! certificate, webhook configurations), and the settings are the binary's.

use std::collections::BTreeMap;
use std::process::Command;

use llm_autoscale_webhook::config::WebhookConfig;
use serde_json::{Value, json};

use crate::{SERVICE_DNS, env_of, env_value, helm, selects_the_pods, webhook_container, webhooks};

fn kinds(objects: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for o in objects {
        *m.entry(o["kind"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    m
}

#[test]
fn the_default_render_installs_what_deploy_installs() {
    let objects = helm::render(&[]);
    let expected: BTreeMap<String, usize> = [
        ("ServiceAccount", 1),
        ("ClusterRole", 2), // the reconciler's and doctor's (unbound by default)
        ("ClusterRoleBinding", 1),
        ("Role", 1),
        ("RoleBinding", 1),
        ("Service", 1),
        ("Deployment", 1),
        ("PodDisruptionBudget", 1),
        ("MutatingWebhookConfiguration", 1),
        ("ValidatingWebhookConfiguration", 1),
        ("Issuer", 2),
        ("Certificate", 2),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    assert_eq!(kinds(&objects), expected);
    for o in &objects {
        let labels = &o["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], "llm-autoscale-webhook");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
    }
}

#[test]
fn the_deployment_runs_the_image_of_this_version_behind_the_service() {
    let objects = helm::render(&[]);
    let d = helm::find(&objects, "Deployment", helm::RELEASE);
    assert_eq!(d["spec"]["replicas"], 2);
    let c = webhook_container(&objects);
    assert_eq!(
        c["image"],
        format!(
            "ghcr.io/llm-autoscale/llm-autoscale-webhook:{}",
            env!("CARGO_PKG_VERSION")
        ),
        "the chart's appVersion is the crate's version"
    );
    assert_eq!(
        d["spec"]["selector"]["matchLabels"],
        json!({"app.kubernetes.io/name": "llm-autoscale-webhook"})
    );
    assert!(selects_the_pods(
        &d["spec"]["selector"]["matchLabels"],
        &objects
    ));

    // Service -> named container port -> the address `serve` listens on.
    let svc = helm::find(&objects, "Service", helm::RELEASE);
    assert!(selects_the_pods(&svc["spec"]["selector"], &objects));
    let port = &svc["spec"]["ports"][0];
    assert_eq!(
        (port["name"].clone(), port["port"].clone()),
        (json!("https"), json!(443))
    );
    let container_port = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == port["targetPort"])
        .expect("the Service's targetPort names a container port");
    assert_eq!(container_port["containerPort"], 8443);
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "serve");
    assert!(args.contains(&"--addr=0.0.0.0:8443"), "{args:?}");

    // The mounted Secret holds the files --tls-cert/--tls-key name, and it is the one the
    // serving Certificate writes.
    let mount = &c["volumeMounts"][0];
    let dir = mount["mountPath"].as_str().unwrap();
    assert!(
        args.contains(&format!("--tls-cert={dir}/tls.crt").as_str()),
        "{args:?}"
    );
    assert!(
        args.contains(&format!("--tls-key={dir}/tls.key").as_str()),
        "{args:?}"
    );
    let volume = &d["spec"]["template"]["spec"]["volumes"][0];
    assert_eq!(volume["name"], mount["name"]);
    let serving = helm::find(&objects, "Certificate", "llm-autoscale-webhook-serving");
    assert_eq!(
        volume["secret"]["secretName"],
        serving["spec"]["secretName"]
    );
    assert_eq!(serving["spec"]["dnsNames"][0], SERVICE_DNS);

    let pdb = helm::find(&objects, "PodDisruptionBudget", helm::RELEASE);
    assert!(selects_the_pods(
        &pdb["spec"]["selector"]["matchLabels"],
        &objects
    ));
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let spread = d["spec"]["template"]["spec"]["topologySpreadConstraints"]
        .as_array()
        .unwrap();
    assert_eq!(spread.len(), 2);
    for c in spread {
        assert!(
            selects_the_pods(&c["labelSelector"]["matchLabels"], &objects),
            "{c}"
        );
    }
    let sc = &c["securityContext"];
    assert_eq!(
        (
            sc["readOnlyRootFilesystem"].clone(),
            sc["runAsNonRoot"].clone()
        ),
        (json!(true), json!(true))
    );
}

#[test]
fn the_default_settings_are_the_binarys_defaults() {
    let objects = helm::render(&[]);
    let d = WebhookConfig::default();
    for (var, want) in [
        ("LLM_AUTOSCALE_OTLP_ENDPOINT", d.otlp_endpoint.clone()),
        ("LLM_AUTOSCALE_SCALER_ADDRESS", d.scaler_address.clone()),
        (
            "LLM_AUTOSCALE_PROMETHEUS_ADDRESS",
            d.prometheus_address.clone(),
        ),
        (
            "LLM_AUTOSCALE_HTTP_SCALER_ADDRESS",
            d.http_scaler_address.clone(),
        ),
        (
            "LLM_AUTOSCALE_SIDECAR_MODE",
            d.sidecar_mode.as_str().to_string(),
        ),
        ("LLM_AUTOSCALE_ON_INVALID", "deny".to_string()),
        (
            "LLM_AUTOSCALE_COLLECTOR_MEMORY_LIMIT_MIB",
            d.collector_memory_limit_mib.to_string(),
        ),
    ] {
        assert_eq!(env_value(&objects, var), Some(want), "{var}");
    }
    // Left to the binary: the collector it was tested with, the KEDA release it knows, and
    // native sidecars on a cluster that has them (Helm assumes Kubernetes 1.37 offline).
    for var in [
        "LLM_AUTOSCALE_COLLECTOR_IMAGE",
        "LLM_AUTOSCALE_KEDA_VERSION",
        "LLM_AUTOSCALE_NATIVE_SIDECARS",
        "LLM_AUTOSCALE_EXTERNAL_SCALER_ADDRESS",
    ] {
        assert!(
            env_value(&objects, var).is_none(),
            "{var} is not set by default"
        );
    }
}

/// Every value of `config` reaches the binary: rendered into its variable, and accepted by it
/// (`mutate` loads the same settings as `serve` and injects with them).
#[test]
fn every_setting_reaches_the_binary_and_the_binary_accepts_it() {
    let objects = helm::render(&[
        "--set",
        "config.collectorImage=registry.example.com/otel/otelcol:0.161.0",
        "--set",
        "config.collectorMemoryLimitMiB=256",
        "--set",
        "config.otlpEndpoint=otel.example:4317",
        "--set",
        "config.scalerAddress=otel.example:4318",
        "--set",
        "config.prometheusAddress=http://prom.example:9090",
        "--set",
        "config.externalScalerAddress=scaler.example:9000",
        "--set",
        "config.httpScalerAddress=http-scaler.example:9090",
        "--set",
        "config.sidecarMode=container",
        "--set",
        "config.nativeSidecars=false",
        "--set",
        "config.onInvalid=warn",
        "--set",
        "config.kedaVersion=2.16.0",
        "--set",
        "config.logFormat=text",
        "--set",
        "extraEnv[0].name=RUST_LOG,extraEnv[0].value=debug",
    ]);
    let env: Vec<(String, String)> = env_of(&objects)
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect();
    let help = String::from_utf8_lossy(
        &Command::new(env!("CARGO_BIN_EXE_llm-autoscale-webhook"))
            .args(["serve", "--help"])
            .output()
            .expect("serve --help")
            .stdout,
    )
    .into_owned();
    for (name, _) in env.iter().filter(|(n, _)| n.starts_with("LLM_AUTOSCALE_")) {
        assert!(
            help.contains(&format!("env: {name}=")),
            "`serve` reads no {name}:\n{help}"
        );
    }
    // The settings above, RUST_LOG, and the built-in scaler's trust key file (always set: its
    // Secret is optional).
    assert_eq!(env.len(), 14, "{env:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_llm-autoscale-webhook"))
        .args(["mutate", "-f", "examples/vllm-deployment.yaml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .envs(env.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .output()
        .expect("run mutate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for seen in [
        "registry.example.com/otel/otelcol:0.161.0",
        "otel.example:4317",
        "otel.example:4318",
        "GOMEMLIMIT",
    ] {
        assert!(
            stdout.contains(seen),
            "{seen} not in the mutated output:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("restartPolicy: Always"),
        "sidecarMode=container: a classic container, not a native sidecar"
    );
}

#[test]
fn webhooks_call_the_service_and_skip_excluded_and_opted_out_namespaces() {
    let objects = helm::render(&[]);
    let hooks = webhooks(&objects);
    assert_eq!(hooks.len(), 3);
    for h in &hooks {
        let svc = &h["clientConfig"]["service"];
        assert_eq!(
            (
                svc["name"].clone(),
                svc["namespace"].clone(),
                svc["port"].clone()
            ),
            (json!(helm::RELEASE), json!(helm::NAMESPACE), json!(443))
        );
        assert!(
            h["clientConfig"]["caBundle"].is_null(),
            "cert-manager injects it"
        );
        assert_eq!(h["failurePolicy"], "Ignore");
        assert_eq!(h["timeoutSeconds"], 5);
        assert_eq!(h["sideEffects"], "None");
        assert_eq!(
            h["namespaceSelector"]["matchExpressions"],
            json!([
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                 "values": [helm::NAMESPACE, "kube-system"]},
                {"key": "llm-autoscale.io/webhook", "operator": "NotIn", "values": ["disabled"]},
            ])
        );
        assert_eq!(
            h["objectSelector"],
            json!({"matchExpressions": [
                {"key": "llm-autoscale.io/webhook", "operator": "NotIn", "values": ["disabled"]}]})
        );
    }
    let paths: Vec<&str> = hooks
        .iter()
        .map(|h| h["clientConfig"]["service"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/mutate", "/mutate", "/validate"]);
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let c = helm::find(&objects, kind, helm::RELEASE);
        assert_eq!(
            c["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "llm-autoscale-system/llm-autoscale-webhook-serving",
            "{kind}: the injector reads the serving Certificate"
        );
    }
    helm::find(&objects, "Certificate", "llm-autoscale-webhook-serving");
}
