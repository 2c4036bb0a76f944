//! What `helm template` renders: the objects fit together (Service, pods, certificate, webhook
//! configurations), the settings are the binary's, and every option lands where it should.

use std::collections::BTreeMap;
use std::process::Command;

use llm_autoscale_webhook::config::WebhookConfig;
use serde_json::{Value, json};

use crate::{env_of, env_value, helm, webhook_container, webhooks};

const SERVICE_DNS: &str = "llm-autoscale-webhook.llm-autoscale-system.svc";

fn kinds(objects: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for o in objects {
        *m.entry(o["kind"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    m
}

fn pod_labels(objects: &[Value]) -> &serde_json::Map<String, Value> {
    helm::find(objects, "Deployment", helm::RELEASE)["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .expect("pod labels")
}

/// Whether every `matchLabels` pair is on the pods.
fn selects_the_pods(match_labels: &Value, objects: &[Value]) -> bool {
    let pods = pod_labels(objects);
    let m = match_labels.as_object().expect("matchLabels");
    !m.is_empty() && m.iter().all(|(k, v)| pods.get(k) == Some(v))
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
    assert_eq!(env.len(), 13, "{env:?}");
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

#[test]
fn webhook_values_change_every_webhook() {
    let objects = helm::render(&[
        "--set",
        "webhook.failurePolicy=Fail,webhook.timeoutSeconds=10",
        "--set",
        "webhook.excludeNamespaces={kube-system,gpu-operator}",
        "--set",
        "webhook.optOutLabel=",
        "--set",
        "webhook.namespaceSelector.matchLabels.llm=on",
        "--set",
        "webhook.objectSelector.matchLabels.team=ml",
    ]);
    for h in webhooks(&objects) {
        assert_eq!(h["failurePolicy"], "Fail");
        assert_eq!(h["timeoutSeconds"], 10);
        assert_eq!(
            h["namespaceSelector"],
            json!({"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                 "values": [helm::NAMESPACE, "kube-system", "gpu-operator"]}],
                "matchLabels": {"llm": "on"}})
        );
        assert_eq!(h["objectSelector"], json!({"matchLabels": {"team": "ml"}}));
    }
}

/// Another release name and namespace: every reference follows (Service, Secret, Certificate,
/// inject-ca-from, bindings, the excluded namespace).
#[test]
fn names_follow_the_release() {
    let chart = helm::chart_dir();
    let out = helm::run(&[
        "template",
        "gpu",
        chart.to_str().unwrap(),
        "--namespace",
        "platform",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects = helm::objects(&String::from_utf8_lossy(&out.stdout));
    let name = "gpu-llm-autoscale-webhook";
    helm::find(&objects, "Service", name);
    let serving = helm::find(&objects, "Certificate", &format!("{name}-serving"));
    assert_eq!(
        serving["spec"]["dnsNames"][0],
        format!("{name}.platform.svc")
    );
    assert_eq!(serving["spec"]["secretName"], format!("{name}-tls"));
    for h in webhooks(&objects) {
        assert_eq!(h["clientConfig"]["service"]["name"], name);
        assert_eq!(h["clientConfig"]["service"]["namespace"], "platform");
        assert_eq!(
            h["namespaceSelector"]["matchExpressions"][0]["values"][0],
            "platform"
        );
    }
    let mwc = helm::find(&objects, "MutatingWebhookConfiguration", name);
    assert_eq!(
        mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        format!("platform/{name}-serving")
    );
    let binding = helm::find(&objects, "ClusterRoleBinding", name);
    assert_eq!(
        binding["subjects"][0],
        json!({"kind": "ServiceAccount", "name": name, "namespace": "platform"})
    );
    let d = helm::find(&objects, "Deployment", name);
    assert_eq!(d["spec"]["template"]["spec"]["serviceAccountName"], name);
}

#[test]
fn pod_options_land_on_the_pods() {
    let objects = helm::render(&[
        "--set",
        "replicaCount=3,priorityClassName=platform-critical",
        "--set",
        "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "--set",
        "nodeSelector.pool=system",
        "--set",
        "tolerations[0].key=dedicated,tolerations[0].operator=Exists",
        "--set",
        "podAntiAffinity=hard",
        "--set",
        "topologySpreadConstraints[0].maxSkew=2,topologySpreadConstraints[0].topologyKey=zone,topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
        "--set",
        "podAnnotations.owner=platform,podLabels.tier=control",
        "--set",
        "resources.limits.memory=512Mi",
    ]);
    let d = helm::find(&objects, "Deployment", helm::RELEASE);
    let spec = &d["spec"]["template"]["spec"];
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(spec["priorityClassName"], "platform-critical");
    assert_eq!(spec["nodeSelector"], json!({"pool": "system"}));
    assert_eq!(spec["tolerations"][0]["key"], "dedicated");
    let hard =
        &spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(hard["topologyKey"], "kubernetes.io/hostname");
    assert!(selects_the_pods(
        &hard["labelSelector"]["matchLabels"],
        &objects
    ));
    let spread = spec["topologySpreadConstraints"].as_array().unwrap();
    assert_eq!(spread.len(), 1);
    assert_eq!(spread[0]["whenUnsatisfiable"], "DoNotSchedule");
    assert!(selects_the_pods(
        &spread[0]["labelSelector"]["matchLabels"],
        &objects
    ));
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"]["owner"],
        "platform"
    );
    assert_eq!(pod_labels(&objects)["tier"], "control");
    let c = webhook_container(&objects);
    assert!(
        c["image"]
            .as_str()
            .unwrap()
            .ends_with("@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    );
    assert_eq!(c["resources"]["limits"]["memory"], "512Mi");
    assert_eq!(c["resources"]["requests"]["cpu"], "50m", "defaults kept");

    let none = helm::render(&["--set", "podAntiAffinity=none"]);
    assert!(
        helm::find(&none, "Deployment", helm::RELEASE)["spec"]["template"]["spec"]["affinity"]
            .is_null()
    );
}

#[test]
fn native_sidecars_follow_the_clusters_version() {
    let old = helm::render(&["--kube-version", "1.28.9"]);
    assert_eq!(
        env_value(&old, "LLM_AUTOSCALE_NATIVE_SIDECARS").as_deref(),
        Some("false")
    );
    let current = helm::render(&["--kube-version", "1.29.0"]);
    assert_eq!(
        env_value(&current, "LLM_AUTOSCALE_NATIVE_SIDECARS"),
        None,
        "the binary's default: on"
    );
    let forced = helm::render(&[
        "--kube-version",
        "1.31.0",
        "--set",
        "config.nativeSidecars=false",
    ]);
    assert_eq!(
        env_value(&forced, "LLM_AUTOSCALE_NATIVE_SIDECARS").as_deref(),
        Some("false")
    );
}

#[test]
fn service_monitor_scrapes_metrics_verifying_the_serving_ca() {
    let objects = helm::render(&[
        "--set",
        "serviceMonitor.enabled=true,serviceMonitor.labels.release=prom",
    ]);
    let sm = helm::find(&objects, "ServiceMonitor", helm::RELEASE);
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    let svc = helm::find(&objects, "Service", helm::RELEASE);
    let selector = &sm["spec"]["selector"]["matchLabels"];
    let svc_labels = svc["metadata"]["labels"].as_object().unwrap();
    assert!(
        selector
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| svc_labels.get(k) == Some(v))
    );
    let ep = &sm["spec"]["endpoints"][0];
    assert_eq!(
        (ep["port"].clone(), ep["scheme"].clone(), ep["path"].clone()),
        (json!("https"), json!("https"), json!("/metrics"))
    );
    assert_eq!(ep["tlsConfig"]["serverName"], SERVICE_DNS);
    let serving = helm::find(&objects, "Certificate", "llm-autoscale-webhook-serving");
    assert_eq!(
        ep["tlsConfig"]["ca"]["secret"],
        json!({"name": serving["spec"]["secretName"], "key": "ca.crt"})
    );
}

#[test]
fn network_policy_admits_the_webhook_port_and_limits_egress_to_dns_and_the_api_server() {
    let objects = helm::render(&[
        "--set",
        "networkPolicy.enabled=true,networkPolicy.egress.enabled=true",
        "--set",
        "networkPolicy.egress.apiServerTo[0].ipBlock.cidr=10.0.0.1/32",
    ]);
    let np = helm::find(&objects, "NetworkPolicy", helm::RELEASE);
    assert!(selects_the_pods(
        &np["spec"]["podSelector"]["matchLabels"],
        &objects
    ));
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        np["spec"]["ingress"],
        json!([{"ports": [{"port": "https", "protocol": "TCP"}]}])
    );
    let egress = np["spec"]["egress"].as_array().unwrap();
    assert_eq!(egress[0]["ports"][0]["port"], 53);
    assert_eq!(
        egress[1]["to"],
        json!([{"ipBlock": {"cidr": "10.0.0.1/32"}}])
    );
    assert_eq!(
        egress[1]["ports"],
        json!([{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}])
    );
    let ingress_only = helm::render(&["--set", "networkPolicy.enabled=true"]);
    let np = helm::find(&ingress_only, "NetworkPolicy", helm::RELEASE);
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
    assert!(np["spec"]["egress"].is_null());
}

#[test]
fn cert_manager_with_an_existing_issuer_renders_no_ca_chain() {
    let objects = helm::render(&[
        "--set",
        "certificates.certManager.issuerRef.name=corp-ca,certificates.certManager.issuerRef.kind=ClusterIssuer",
    ]);
    assert!(helm::all_of(&objects, "Issuer").is_empty());
    let certs = helm::all_of(&objects, "Certificate");
    assert_eq!(certs.len(), 1);
    assert_eq!(
        certs[0]["spec"]["issuerRef"],
        json!({"kind": "ClusterIssuer", "name": "corp-ca"})
    );
}

#[test]
fn provided_certificates_use_the_given_secret_and_ca_bundle() {
    let ca = llm_autoscale_webhook::certs::Ca::generate(30).unwrap();
    let bundle = ca.ca_bundle();
    let objects = helm::render(&[
        "--set",
        "certificates.mode=provided,certificates.provided.secretName=my-tls",
        "--set",
        &format!("certificates.provided.caBundle={bundle}"),
    ]);
    assert!(
        helm::all_of(&objects, "Certificate").is_empty()
            && helm::all_of(&objects, "Issuer").is_empty()
    );
    assert!(
        helm::all_of(&objects, "Secret").is_empty(),
        "the Secret is the user's"
    );
    let d = helm::find(&objects, "Deployment", helm::RELEASE);
    assert_eq!(
        d["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
        "my-tls"
    );
    for h in webhooks(&objects) {
        assert_eq!(h["clientConfig"]["caBundle"], bundle.as_str());
    }
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        assert!(helm::find(&objects, kind, helm::RELEASE)["metadata"]["annotations"].is_null());
    }
}
