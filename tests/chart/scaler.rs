//! The built-in scaler in the chart (`scaler.enabled`): its flags are the binary's, its
//! Services select its pods on the ports it listens on, the webhook's `builtin` defaults point at
//! them, and the reconciler may touch the token Secrets only then.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use clap::Parser;
use llm_autoscale_webhook::render::scaler_tls;
use llm_autoscale_webhook::scaler::service::ScalerArgs;
use llm_autoscale_webhook::scaler::trust;
use serde_json::{Value, json};

use crate::{env_value, helm, webhook_container};

const SCALER: &str = "llm-autoscale-scaler";

/// `llm-autoscale-webhook scaler`'s command line (src/main.rs, `Command::Scaler`).
#[derive(Parser, Debug)]
struct ScalerCommand {
    #[command(flatten)]
    scaler: ScalerArgs,
    #[arg(long)]
    metrics_addr: SocketAddr,
}

fn on(extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["--set", "scaler.enabled=true"];
    args.extend_from_slice(extra);
    helm::render(&args)
}

fn container(objects: &[Value]) -> &Value {
    let d = helm::find(objects, "Deployment", SCALER);
    &d["spec"]["template"]["spec"]["containers"][0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|l| {
            l.iter()
                .map(|s| s.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The scaler's arguments, parsed by the binary's own flag definitions.
fn parsed(objects: &[Value]) -> ScalerCommand {
    let c = container(objects);
    assert_eq!(
        c["command"],
        json!(["/usr/local/bin/llm-autoscale-webhook"])
    );
    let args = strings(&c["args"]);
    assert_eq!(args.first().map(String::as_str), Some("scaler"));
    ScalerCommand::try_parse_from(&args)
        .unwrap_or_else(|e| panic!("the binary refuses {args:?}: {e}"))
}

/// Every rule of every ClusterRole and Role that names `secrets`.
fn secret_rules(objects: &[Value]) -> Vec<(String, Value)> {
    objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
        .flat_map(|r| {
            let name = r["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            r["rules"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|rule| strings(&rule["resources"]).iter().any(|s| s == "secrets"))
                .map(move |rule| (name.clone(), rule))
        })
        .collect()
}

#[test]
fn off_by_default_nothing_of_the_scaler_and_no_secret_rbac() {
    let objects = helm::render(&[]);
    assert!(
        objects
            .iter()
            .all(|o| o["metadata"]["labels"]["app.kubernetes.io/component"] != "scaler"),
        "scaler objects in the default render"
    );
    assert_eq!(
        secret_rules(&objects),
        vec![],
        "Secrets granted without the scaler"
    );
    assert_eq!(
        env_value(&objects, "LLM_AUTOSCALE_BUILTIN_OTLP_ENDPOINT"),
        None
    );
    assert_eq!(
        env_value(&objects, "LLM_AUTOSCALE_BUILTIN_SCALER_ADDRESS"),
        None
    );
}

#[test]
fn the_scaler_runs_the_webhooks_image_with_flags_the_binary_accepts() {
    let objects = on(&[]);
    let d = helm::find(&objects, "Deployment", SCALER);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        container(&objects)["image"],
        webhook_container(&objects)["image"],
        "the same binary"
    );
    let cmd = parsed(&objects);
    assert_eq!(cmd.scaler.otlp_addr.port(), 4317);
    assert_eq!(cmd.scaler.scaler_addr.port(), 4318);
    assert_eq!(cmd.metrics_addr.port(), 9464);
    assert_eq!(
        cmd.scaler.peers_dns.as_deref(),
        Some("llm-autoscale-scaler-peers.llm-autoscale-system.svc.cluster.local:4318")
    );
    helm::find(&objects, "Service", "llm-autoscale-scaler-peers");
    assert_eq!(
        cmd.scaler.scaler_tls_cert, None,
        "plain TCP unless scaler.tls"
    );

    let pinned = on(&[
        "--set",
        "image.tag=1.2.3,scaler.image.repository=mirror/scaler",
    ]);
    assert_eq!(
        container(&pinned)["image"],
        format!("mirror/scaler:{}", env!("CARGO_PKG_VERSION"))
    );
    let tagged = on(&["--set", "image.tag=1.2.3"]);
    assert_eq!(
        container(&tagged)["image"],
        "ghcr.io/llm-autoscale/llm-autoscale-webhook:1.2.3"
    );
}

/// The named container port of the scaler that a Service or policy port refers to.
fn container_port(objects: &[Value], name: &str) -> Value {
    container(objects)["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no container port {name}"))["containerPort"]
        .clone()
}

fn selects_scaler_pods(selector: &Value, objects: &[Value]) -> bool {
    let d = helm::find(objects, "Deployment", SCALER);
    let pods = d["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    let m = selector.as_object().expect("a selector");
    !m.is_empty() && m.iter().all(|(k, v)| pods.get(k) == Some(v))
}

#[test]
fn its_services_and_budget_select_its_pods_and_the_webhook_points_at_them() {
    let objects = on(&[]);
    let cmd = parsed(&objects);
    let svc = helm::find(&objects, "Service", SCALER);
    assert!(selects_scaler_pods(&svc["spec"]["selector"], &objects));
    let mut listening = vec![
        cmd.scaler.otlp_addr.port(),
        cmd.scaler.scaler_addr.port(),
        cmd.metrics_addr.port(),
    ];
    listening.sort_unstable();
    let mut targets = Vec::new();
    for p in svc["spec"]["ports"].as_array().unwrap() {
        let target = container_port(&objects, p["targetPort"].as_str().unwrap());
        targets.push(target.as_u64().unwrap() as u16);
    }
    targets.sort_unstable();
    assert_eq!(targets, listening);
    let peers = helm::find(&objects, "Service", "llm-autoscale-scaler-peers");
    assert_eq!(peers["spec"]["clusterIP"], "None");
    assert!(selects_scaler_pods(&peers["spec"]["selector"], &objects));
    let pdb = helm::find(&objects, "PodDisruptionBudget", SCALER);
    assert!(selects_scaler_pods(
        &pdb["spec"]["selector"]["matchLabels"],
        &objects
    ));
    let spread = &helm::find(&objects, "Deployment", SCALER)["spec"]["template"]["spec"]["topologySpreadConstraints"]
        [0];
    assert!(selects_scaler_pods(
        &spread["labelSelector"]["matchLabels"],
        &objects
    ));

    let address = |port: &str| {
        let p = svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == port)
            .unwrap();
        format!("{SCALER}.{}.svc:{}", helm::NAMESPACE, p["port"])
    };
    assert_eq!(
        env_value(&objects, "LLM_AUTOSCALE_BUILTIN_OTLP_ENDPOINT"),
        Some(address("otlp"))
    );
    assert_eq!(
        env_value(&objects, "LLM_AUTOSCALE_BUILTIN_SCALER_ADDRESS"),
        Some(address("scaler"))
    );
    let other = helm::render(&[
        "--set",
        "scaler.enabled=true",
        "--set",
        "fullnameOverride=llm",
    ]);
    helm::find(&other, "Service", "llm-scaler");
    let env = helm::find(&other, "Deployment", "llm")["spec"]["template"]["spec"]["containers"][0]
        ["env"]
        .to_string();
    assert!(
        env.contains(r#""value":"llm-scaler.llm-autoscale-system.svc:4318""#),
        "{env}"
    );
}

/// The Secret volume of `volumes` mounted at `dir` by `c`.
fn secret_mounted_at(pod_spec: &Value, c: &Value, dir: &str) -> Option<Value> {
    let mount = c["volumeMounts"]
        .as_array()?
        .iter()
        .find(|m| m["mountPath"] == dir)?;
    pod_spec["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == mount["name"])
        .map(|v| v["secret"].clone())
}

#[test]
fn the_trust_key_is_mounted_by_both_and_the_tokens_are_the_reconcilers_only_with_the_scaler() {
    let objects = on(&[]);
    let cmd = parsed(&objects);
    let [key_file] = cmd.scaler.trust_key_file.as_slice() else {
        panic!("one --trust-key-file: {:?}", cmd.scaler.trust_key_file)
    };
    let dir = key_file.parent().unwrap().to_str().unwrap();
    let scaler_pod = &helm::find(&objects, "Deployment", SCALER)["spec"]["template"]["spec"];
    let scaler_secret = secret_mounted_at(scaler_pod, container(&objects), dir).expect("mounted");
    assert_eq!(
        scaler_secret["secretName"],
        "llm-autoscale-scaler-trust-key"
    );
    assert!(
        scaler_secret.get("optional").is_none(),
        "the scaler needs it"
    );
    let webhook_file = env_value(&objects, "LLM_AUTOSCALE_SCALER_TRUST_KEY_FILE").unwrap();
    let webhook_dir = webhook_file.rsplit_once('/').unwrap().0;
    let webhook_pod =
        &helm::find(&objects, "Deployment", helm::RELEASE)["spec"]["template"]["spec"];
    let webhook_secret =
        secret_mounted_at(webhook_pod, webhook_container(&objects), webhook_dir).expect("mounted");
    assert_eq!(webhook_secret["secretName"], scaler_secret["secretName"]);

    let (doctor, rules): (Vec<_>, Vec<_>) = secret_rules(&objects)
        .into_iter()
        .partition(|(role, _)| role == "llm-autoscale-webhook-doctor");
    assert_eq!(
        doctor.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
        vec![
            json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": [trust::SECRET_NAME], "verbs": ["get"]})
        ],
        "doctor may only see whether the token exists"
    );
    assert_eq!(
        rules.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
        vec![
            json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}),
            json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": [trust::SECRET_NAME], "verbs": ["get", "patch", "delete"]}),
        ]
    );
    let role = &rules[0].0;
    let binding = helm::find(&objects, "ClusterRoleBinding", role);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": helm::RELEASE, "namespace": helm::NAMESPACE}])
    );

    let made = on(&[
        "--set",
        "scaler.trustKey.value=0123456789abcdef0123456789abcdef",
    ]);
    let secret = helm::find(&made, "Secret", "llm-autoscale-scaler-trust-key");
    assert_eq!(
        secret["data"]["key"],
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    );

    let unchecked = on(&["--set", "scaler.trustKey.enabled=false"]);
    assert!(parsed(&unchecked).scaler.trust_key_file.is_empty());
    assert_eq!(secret_rules(&unchecked), vec![]);
    assert_eq!(
        env_value(&unchecked, "LLM_AUTOSCALE_BUILTIN_SCALER_AUTH").as_deref(),
        Some("false"),
        "sidecars present no token to a scaler that checks none"
    );
}

#[test]
fn tls_mounts_the_secret_and_passes_the_flags() {
    let objects = on(&["--set", "scaler.tls.secretName=scaler-tls"]);
    let cmd = parsed(&objects);
    let cert = cmd.scaler.scaler_tls_cert.expect("--scaler-tls-cert");
    let dir = cert.parent().unwrap();
    assert_eq!(cmd.scaler.scaler_tls_key.unwrap().parent(), Some(dir));
    assert_eq!(
        cmd.scaler.scaler_tls_ca.as_deref(),
        Some(dir.join("ca.crt").as_path()),
        "the peers are reached over TLS too"
    );
    let pod = &helm::find(&objects, "Deployment", SCALER)["spec"]["template"]["spec"];
    let secret = secret_mounted_at(pod, container(&objects), dir.to_str().unwrap()).unwrap();
    assert_eq!(secret["secretName"], "scaler-tls");
}

#[test]
fn network_policy_and_service_monitor_cover_its_ports() {
    let objects = on(&[
        "--set",
        "networkPolicy.enabled=true,networkPolicy.egress.enabled=true,serviceMonitor.enabled=true,priorityClassName=platform",
    ]);
    let np = helm::find(&objects, "NetworkPolicy", SCALER);
    assert!(selects_scaler_pods(
        &np["spec"]["podSelector"]["matchLabels"],
        &objects
    ));
    let mut ports: Vec<String> = np["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["ports"].as_array().unwrap().clone())
        .map(|p| p["port"].as_str().unwrap().to_string())
        .collect();
    ports.sort();
    assert_eq!(ports, ["metrics", "otlp", "scaler"]);
    for p in &ports {
        container_port(&objects, p);
    }
    let egress = np["spec"]["egress"].to_string();
    assert!(egress.contains("4318"), "the peers: {egress}");

    let sm = helm::find(&objects, "ServiceMonitor", SCALER);
    let svc = helm::find(&objects, "Service", SCALER);
    let svc_labels = svc["metadata"]["labels"].as_object().unwrap();
    let wanted = sm["spec"]["selector"]["matchLabels"].as_object().unwrap();
    assert!(wanted.iter().all(|(k, v)| svc_labels.get(k) == Some(v)));
    let webhook_svc = helm::find(&objects, "Service", helm::RELEASE);
    assert!(
        !wanted
            .iter()
            .all(|(k, v)| webhook_svc["metadata"]["labels"].get(k) == Some(v)),
        "the scaler's ServiceMonitor selects only the scaler's Service"
    );
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    let pod = &helm::find(&objects, "Deployment", SCALER)["spec"]["template"]["spec"];
    assert_eq!(pod["priorityClassName"], "platform");
}

/// The webhook Deployment's pod spec.
fn webhook_pod(objects: &[Value]) -> &Value {
    &helm::find(objects, "Deployment", helm::RELEASE)["spec"]["template"]["spec"]
}

/// The names of the Secrets the webhook's pods mount.
fn webhook_secrets(objects: &[Value]) -> Vec<String> {
    webhook_pod(objects)["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["secret"]["secretName"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_scaler_serving_tls_turns_the_webhooks_clients_to_tls_and_gives_the_reconciler_only_its_ca() {
    let objects = on(&[
        "--set",
        "scaler.tls.secretName=scaler-tls,scaler.trustKey.previousSecretName=old-key",
    ]);
    assert_eq!(
        env_value(&objects, "LLM_AUTOSCALE_BUILTIN_SCALER_TLS").as_deref(),
        Some("true")
    );
    let ca = env_value(&objects, "LLM_AUTOSCALE_SCALER_TLS_CA").expect("the reconciler's CA");
    let ca = Path::new(&ca);
    let secret = secret_mounted_at(
        webhook_pod(&objects),
        webhook_container(&objects),
        ca.parent().unwrap().to_str().unwrap(),
    )
    .expect("the CA is mounted");
    assert_eq!(secret["secretName"], "scaler-tls", "the scaler's Secret");
    // Only its ca.crt (the scaler's private key stays in the scaler's pods), at the path the
    // variable names; not optional: serve refuses to start without it.
    assert_eq!(
        secret["items"],
        json!([{"key": "ca.crt", "path": ca.file_name().unwrap().to_str().unwrap()}])
    );
    assert!(secret.get("optional").is_none());
    // The scaler's peers trust the same file.
    assert_eq!(
        parsed(&objects).scaler.scaler_tls_ca.unwrap().file_name(),
        ca.file_name()
    );

    // The binary reads both variables, and with them renders TLS clients of the scaler.
    let help = Command::new(env!("CARGO_BIN_EXE_llm-autoscale-webhook"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for name in [
        "LLM_AUTOSCALE_BUILTIN_SCALER_TLS",
        "LLM_AUTOSCALE_SCALER_TLS_CA",
    ] {
        assert!(
            help.contains(&format!("env: {name}=")),
            "`serve` reads no {name}"
        );
    }
    let mut env: Vec<(String, String)> = crate::env_of(&objects)
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .filter(|(n, _)| n.starts_with("LLM_AUTOSCALE_BUILTIN_"))
        .collect();
    env.push(("LLM_AUTOSCALE_DEFAULT_BACKEND".into(), "builtin".into()));
    let out = Command::new(env!("CARGO_BIN_EXE_llm-autoscale-webhook"))
        .args(["mutate", "-f", "examples/vllm-deployment.yaml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .envs(env.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for seen in [
        format!("{}: 'true'", scaler_tls::ENABLE_TLS),
        scaler_tls::CA_ENV.to_string(),
        "llm-autoscale-scaler.llm-autoscale-system.svc:4318".to_string(),
    ] {
        assert!(stdout.contains(&seen), "{seen} not in:\n{stdout}");
    }

    // Plain TCP without the Secret, and without the scaler whatever the Secret says.
    for plain in [
        on(&[]),
        helm::render(&["--set", "scaler.tls.secretName=scaler-tls"]),
    ] {
        assert_eq!(env_value(&plain, "LLM_AUTOSCALE_BUILTIN_SCALER_TLS"), None);
        assert_eq!(env_value(&plain, "LLM_AUTOSCALE_SCALER_TLS_CA"), None);
        assert!(!webhook_secrets(&plain).contains(&"scaler-tls".to_string()));
    }
}

#[test]
fn without_the_token_check_tls_still_lets_the_reconciler_write_the_ca_and_doctor_read_it() {
    let objects = on(&[
        "--set",
        "scaler.trustKey.enabled=false,scaler.tls.secretName=scaler-tls",
    ]);
    let mut rules: Vec<(String, String)> = secret_rules(&objects)
        .into_iter()
        .map(|(role, r)| (role, r.to_string()))
        .collect();
    rules.sort();
    let name_only = |verbs: Value| {
        json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": [trust::SECRET_NAME], "verbs": verbs}).to_string()
    };
    let tokens = "llm-autoscale-webhook-scaler-tokens".to_string();
    let mut wanted = vec![
        (
            "llm-autoscale-webhook-doctor".into(),
            name_only(json!(["get"])),
        ),
        (
            tokens.clone(),
            json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}).to_string(),
        ),
        (tokens, name_only(json!(["get", "patch", "delete"]))),
    ];
    wanted.sort();
    assert_eq!(rules, wanted);
}

#[test]
fn a_rotation_gives_the_scaler_both_keys_and_the_webhook_only_the_current_one() {
    let objects = on(&[
        "--set",
        "scaler.trustKey.secretName=key-2,scaler.trustKey.previousSecretName=key-1",
    ]);
    let files = parsed(&objects).scaler.trust_key_file;
    let pod = &helm::find(&objects, "Deployment", SCALER)["spec"]["template"]["spec"];
    let mounted: Vec<Value> = files
        .iter()
        .map(|f| {
            let dir = f.parent().unwrap().to_str().unwrap();
            secret_mounted_at(pod, container(&objects), dir).expect("mounted")
        })
        .collect();
    assert_eq!(
        mounted
            .iter()
            .map(|s| s["secretName"].clone())
            .collect::<Vec<_>>(),
        ["key-2", "key-1"],
        "the current key first, then the previous one: {files:?}"
    );
    assert!(
        mounted.iter().all(|s| s.get("optional").is_none()),
        "a missing key file stops the scaler; the pod waits instead"
    );
    let signing = env_value(&objects, "LLM_AUTOSCALE_SCALER_TRUST_KEY_FILE").unwrap();
    assert!(!signing.contains(','), "one key to sign with: {signing}");
    assert_eq!(
        secret_mounted_at(
            webhook_pod(&objects),
            webhook_container(&objects),
            signing.rsplit_once('/').unwrap().0
        )
        .unwrap()["secretName"],
        "key-2"
    );
    assert!(!webhook_secrets(&objects).contains(&"key-1".to_string()));

    let done = on(&["--set", "scaler.trustKey.secretName=key-2"]);
    assert_eq!(parsed(&done).scaler.trust_key_file.len(), 1);
}

#[test]
fn tls_and_rotation_values_that_cannot_work_are_refused_with_the_fix() {
    for (set, wanted) in [
        (
            "scaler.trustKey.previousSecretName=llm-autoscale-scaler-trust-key",
            "two Secrets",
        ),
        (
            "scaler.trustKey.enabled=false,scaler.trustKey.previousSecretName=key-1",
            "Leave previousSecretName empty",
        ),
        (
            "scaler.tls.secretName=scaler-tls,scaler.trustKey.enabled=false,rbac.create=false",
            "Set rbac.create=true",
        ),
    ] {
        let err = helm::try_render(&["--set", "scaler.enabled=true", "--set", set]).expect_err(set);
        assert!(err.contains(wanted), "{set}: {err}");
    }
}
