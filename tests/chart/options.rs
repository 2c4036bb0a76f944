//! Every value of the chart lands where it should: webhooks, names, pods, certificates,
//! ServiceMonitor and NetworkPolicy.

use serde_json::json;

use crate::{
    SERVICE_DNS, env_value, helm, pod_labels, selects_the_pods, webhook_container, webhooks,
};

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
