//! `deploy/` is the chart's output: re-rendering it changes nothing, and both kustomize
//! variants build exactly the objects the chart renders (with cert-manager, and with
//! `certificates.mode=provided` for deploy/no-cert-manager, and the scaler's objects with
//! `scaler.enabled=true` for deploy/scaler), apart from Helm's bookkeeping labels and the
//! Namespace, which a chart does not own.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::helm;

/// The files scripts/render-deploy.sh writes, relative to deploy/.
const RENDERED: [&str; 8] = [
    "base/rbac.yaml",
    "base/service.yaml",
    "base/deployment.yaml",
    "base/pdb.yaml",
    "base/webhook-configurations.yaml",
    "cert-manager.yaml",
    "scaler/scaler.yaml",
    "scaler/rbac.yaml",
];

fn render_deploy(out: &Path) {
    let status = Command::new("bash")
        .arg(helm::repo_path("scripts/render-deploy.sh"))
        .arg(out)
        .status()
        .expect("run scripts/render-deploy.sh");
    assert!(status.success(), "scripts/render-deploy.sh failed");
}

#[test]
fn deploy_is_what_the_chart_renders() {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        render_deploy(&helm::repo_path("deploy"));
    }
    let dir = tempfile::tempdir().unwrap();
    render_deploy(dir.path());
    for file in RENDERED {
        let fresh = std::fs::read_to_string(dir.path().join(file)).unwrap();
        let committed = std::fs::read_to_string(helm::repo_path("deploy").join(file)).unwrap();
        assert!(
            fresh == committed,
            "deploy/{file} differs from the chart's render: run scripts/render-deploy.sh (or UPDATE_GOLDEN=1 cargo test --test chart)"
        );
    }
}

/// Removes Helm's bookkeeping labels wherever labels are (objects, pod templates), as
/// scripts/render-deploy.sh does.
fn strip_helm_labels(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(labels)) = m.get_mut("labels") {
                labels.remove("helm.sh/chart");
                labels.remove("app.kubernetes.io/managed-by");
            }
            m.values_mut().for_each(strip_helm_labels);
        }
        Value::Array(l) => l.iter_mut().for_each(strip_helm_labels),
        _ => {}
    }
}

/// Objects without Helm's bookkeeping labels, keyed and sorted by kind and name.
fn comparable(objects: Vec<Value>) -> Vec<(String, String, Value)> {
    let mut out: Vec<(String, String, Value)> = objects
        .into_iter()
        .map(|mut o| {
            strip_helm_labels(&mut o);
            let kind = o["kind"].as_str().unwrap().to_string();
            let name = o["metadata"]["name"].as_str().unwrap().to_string();
            (kind, name, o)
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

fn kustomize(dir: &str) -> Vec<Value> {
    let kubectl = helm::tools(&["kubernetes"]).join("kubectl");
    let out = Command::new(kubectl)
        .args(["kustomize", dir])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    helm::objects(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .filter(|o| o["kind"] != "Namespace")
        .collect()
}

fn assert_same(kustomized: Vec<Value>, rendered: Vec<Value>, what: &str) {
    let (k, r) = (comparable(kustomized), comparable(rendered));
    let names = |l: &[(String, String, Value)]| {
        l.iter()
            .map(|(k, n, _)| format!("{k}/{n}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&k), names(&r), "{what}: the same objects");
    for ((kind, name, a), (_, _, b)) in k.iter().zip(&r) {
        assert!(
            a == b,
            "{what}: {kind}/{name} differs\nkustomize: {a}\nchart:     {b}"
        );
    }
}

#[test]
fn both_kustomize_variants_build_what_the_chart_renders() {
    assert_same(kustomize("deploy"), helm::render(&[]), "deploy/");
    assert_same(
        kustomize("deploy/no-cert-manager"),
        helm::render(&["--set", "certificates.mode=provided"]),
        "deploy/no-cert-manager/",
    );
    assert_same(
        kustomize("deploy/scaler"),
        helm::render(&[
            "--set",
            "scaler.enabled=true",
            "--show-only",
            "templates/scaler.yaml",
            "--show-only",
            "templates/scaler-rbac.yaml",
        ]),
        "deploy/scaler/",
    );
}

/// deploy/ is the render without the scaler: no Secret may be touched. deploy/scaler/ adds the
/// token-Secret role for the webhook's own ServiceAccount, and its Service is where the binary's
/// `builtin` defaults point, so the webhook needs no setting when deploy/scaler/ is applied.
#[test]
fn deploy_grants_secrets_only_with_the_scaler_whose_service_is_the_binarys_default() {
    use llm_autoscale_webhook::config::{
        DEFAULT_BUILTIN_OTLP_ENDPOINT, DEFAULT_BUILTIN_SCALER_ADDRESS,
    };
    let base = kustomize("deploy");
    let mentions_secrets = |objects: &[Value]| {
        objects
            .iter()
            .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
            .flat_map(|r| r["rules"].as_array().cloned().unwrap_or_default())
            .any(|rule| rule["resources"].to_string().contains("secrets"))
    };
    assert!(!mentions_secrets(&base), "deploy/ grants Secrets");
    let scaler = kustomize("deploy/scaler");
    assert!(
        mentions_secrets(&scaler),
        "deploy/scaler/ grants no Secrets"
    );
    let binding = scaler
        .iter()
        .find(|o| o["kind"] == "ClusterRoleBinding")
        .expect("a ClusterRoleBinding in deploy/scaler/");
    let sa = base
        .iter()
        .find(|o| o["kind"] == "ServiceAccount")
        .expect("the webhook's ServiceAccount");
    assert_eq!(binding["subjects"][0]["name"], sa["metadata"]["name"]);
    let service = helm::find(&scaler, "Service", "llm-autoscale-scaler");
    let host = format!(
        "{}.{}.svc",
        service["metadata"]["name"].as_str().unwrap(),
        service["metadata"]["namespace"].as_str().unwrap()
    );
    let ports: Vec<String> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{host}:{}", p["port"]))
        .collect();
    assert!(
        ports.contains(&DEFAULT_BUILTIN_OTLP_ENDPOINT.to_string()),
        "{ports:?}"
    );
    assert!(
        ports.contains(&DEFAULT_BUILTIN_SCALER_ADDRESS.to_string()),
        "{ports:?}"
    );
}
