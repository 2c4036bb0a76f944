//! The product installed from its Helm chart (`charts/llm-autoscale-webhook`): rendered by the
//! real Helm with the self-contained certificates (`certificates.mode=generate`) and applied
//! to the control plane as rendered — ServiceAccount, ClusterRoles and bindings, the
//! leader-election Role, the Secret, Service, Deployment, PodDisruptionBudget, NetworkPolicy and
//! both webhook configurations — with kubectl's strict field validation against the real
//! API server.
//!
//! No pods run here (no kubelet, no scheduler): the webhook process stays on loopback, so the
//! rendered webhook configurations are rewritten to point at it by URL, with the harness CA as
//! caBundle (everything else in them — rules, selectors, matchConditions, policies — is the
//! chart's). The process talks to the API server with a token of the chart's ServiceAccount,
//! so the reconciler runs with exactly the RBAC the chart grants.

use std::path::PathBuf;

use llm_autoscale_webhook::doctor::gather::API_READS;
use serde_json::{Value, json};

use crate::cluster::ControlPlane;
use crate::helm;

/// A user the chart's `doctor` ClusterRole is bound to (`doctor.subjects`): the control plane's
/// user with a token of its own, who runs `doctor` in tests/e2e/doctor.rs.
pub(crate) const DOCTOR_USER: &str = crate::cluster::PLAIN_USER;

/// The ServiceAccount the chart's pods run as.
pub(crate) fn service_account_user() -> String {
    format!(
        "system:serviceaccount:{}:{}",
        helm::NAMESPACE,
        helm::RELEASE
    )
}

/// A rendered webhook configuration pointed at `https://127.0.0.1:PORT` with the harness CA.
fn to_loopback(mut config: Value, port: u16, ca_bundle: &str) -> Value {
    for hook in config["webhooks"].as_array_mut().expect("webhooks") {
        let path = hook["clientConfig"]["service"]["path"]
            .as_str()
            .expect("the chart's webhooks call the Service")
            .to_string();
        assert!(
            hook["clientConfig"]["caBundle"].is_string(),
            "certificates.mode=generate sets the caBundle"
        );
        hook["clientConfig"] = json!({
            "url": format!("https://127.0.0.1:{port}{path}"),
            "caBundle": ca_bundle,
        });
    }
    config
}

/// Renders the chart, applies it with the webhook configurations pointed at the webhook on
/// 127.0.0.1:`port`, and returns a kubeconfig holding a token of the chart's ServiceAccount.
/// Needs the namespace `llm-autoscale-system`.
pub(crate) fn install(cp: &ControlPlane, port: u16) -> PathBuf {
    let doctor = format!(
        "doctor.subjects[0].kind=User,doctor.subjects[0].name={DOCTOR_USER},doctor.subjects[0].apiGroup=rbac.authorization.k8s.io"
    );
    // scaler.enabled: the reconciler writes the built-in scaler's namespace tokens
    // (tests/e2e/builtin.rs) with the Secret role only that value grants. The scaler's own
    // objects are applied too, as a check of their fields; no pod runs them here (the scaler
    // process is on loopback, tests/scaler/process.rs).
    let objects = helm::render(&[
        "--set",
        "certificates.mode=generate",
        "--set",
        "networkPolicy.enabled=true,networkPolicy.egress.enabled=true",
        "--set",
        "scaler.enabled=true",
        "--set",
        &doctor,
    ]);
    let ca_bundle = cp.ca_bundle_base64();
    let manifests: Vec<String> = objects
        .into_iter()
        .map(|o| {
            let kind = o["kind"].as_str().unwrap_or_default();
            if kind.ends_with("WebhookConfiguration") {
                to_loopback(o, port, &ca_bundle)
            } else {
                o
            }
        })
        .map(|o| serde_json::to_string(&o).expect("JSON"))
        .collect();
    cp.kubectl_stdin_ok(
        &["apply", "--validate=strict", "-f", "-"],
        &manifests.join("\n---\n"),
    );
    let token = cp.kubectl_ok(&[
        "create",
        "token",
        helm::RELEASE,
        "--namespace",
        helm::NAMESPACE,
        "--duration=2h",
    ]);
    let kubeconfig = cp.work_dir().join("webhook-serviceaccount.kubeconfig");
    cp.write_kubeconfig_for(&service_account_user(), token.trim(), &kubeconfig);
    kubeconfig
}

/// Whether the API server's RBAC lets `user` do `verb` on `resource` (`kubectl auth can-i`,
/// impersonating as the admin).
pub(crate) fn can(
    cp: &ControlPlane,
    user: &str,
    verb: &str,
    resource: &str,
    scope: &[&str],
) -> bool {
    let mut args = vec!["auth", "can-i", verb, resource];
    args.extend_from_slice(scope);
    let as_user = format!("--as={user}");
    args.push(&as_user);
    let out = cp.kubectl(&args);
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

/// The chart's `doctor` ClusterRole, as the API server evaluates it: every request `doctor`
/// makes (src/doctor/gather/api_reads.rs), nothing it could change; and the webhook's own
/// account does not hold it.
pub(crate) fn assert_doctor_access(cp: &ControlPlane) {
    let all = ["--all-namespaces"];
    for read in API_READS {
        let (resource, subresource) = match read.resource.split_once('/') {
            Some((r, sub)) => (r, Some(sub)),
            None => (read.resource, None),
        };
        let resource = if read.group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{}", read.group)
        };
        // A read limited to names is allowed for those names only.
        let resource = match read.names.first() {
            Some(name) => format!("{resource}/{name}"),
            None => resource,
        };
        let sub = subresource.map(|s| format!("--subresource={s}"));
        let scope: Vec<&str> = match &sub {
            Some(sub) => vec![sub.as_str(), "--namespace=keda"],
            None => all.to_vec(),
        };
        for verb in read.verbs {
            assert!(
                can(cp, DOCTOR_USER, verb, &resource, &scope),
                "doctor: {verb} {resource} {scope:?}"
            );
        }
    }
    for (verb, resource) in [
        ("patch", "deployments.apps"),
        ("delete", "scaledobjects.keda.sh"),
        ("get", "secrets"),
        ("list", "pods"),
    ] {
        assert!(
            !can(cp, DOCTOR_USER, verb, resource, &all),
            "doctor may not {verb} {resource}"
        );
    }
    let proxy = ["--subresource=proxy", "--namespace=keda"];
    let sa = service_account_user();
    assert!(
        !can(cp, &sa, "get", "services", &proxy),
        "the webhook's account has no services/proxy"
    );
    assert!(
        !can(cp, &sa, "patch", "deployments.apps", &all),
        "the reconciler never writes Deployments"
    );
}

/// `helm` itself against the control plane (its config and cache under the plane's directory).
fn helm_on(cp: &ControlPlane, args: &[&str]) -> String {
    let home = cp.work_dir().join("helm-home");
    let out = std::process::Command::new(helm::helm())
        .args(args)
        .env("KUBECONFIG", cp.kubeconfig())
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The PEM certificates in a base64 caBundle or Secret value.
fn pem_certificates(b64: &str) -> Vec<String> {
    use base64::Engine as _;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    let pem = String::from_utf8(pem).expect("PEM text");
    pem.split_inclusive("-----END CERTIFICATE-----")
        .map(str::trim)
        .filter(|c| c.starts_with("-----BEGIN CERTIFICATE-----"))
        .map(str::to_string)
        .collect()
}

/// Generated certificates across `helm upgrade` (the chart's `lookup` of the live Secret, which
/// `helm template` cannot exercise): kept by default; with `reuse=false` a new CA whose
/// caBundle also trusts the previous CA, until the next upgrade.
#[test]
fn helm_upgrades_keep_the_generated_certificate_and_rotation_trusts_both_cas() {
    let cp = ControlPlane::start();
    let chart = helm::chart_dir();
    let upgrade = |extra: &[&str]| {
        let mut args = vec![
            "upgrade",
            "--install",
            helm::RELEASE,
            chart.to_str().unwrap(),
            "--namespace",
            helm::NAMESPACE,
            "--create-namespace",
            "--set",
            "certificates.mode=generate",
        ];
        args.extend_from_slice(extra);
        helm_on(&cp, &args)
    };
    let state = || {
        let secret = crate::product::get_json(
            &cp,
            &["secret", "-n", helm::NAMESPACE, "llm-autoscale-webhook-tls"],
        )
        .expect("the Secret");
        let mwc = crate::product::get_json(&cp, &["mutatingwebhookconfiguration", helm::RELEASE])
            .expect("the MutatingWebhookConfiguration");
        let vwc = crate::product::get_json(&cp, &["validatingwebhookconfiguration", helm::RELEASE])
            .expect("the ValidatingWebhookConfiguration");
        let bundles: Vec<String> = [&mwc, &vwc]
            .iter()
            .flat_map(|c| c["webhooks"].as_array().unwrap().clone())
            .map(|h| h["clientConfig"]["caBundle"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(bundles.len(), 3);
        assert!(
            bundles.iter().all(|b| *b == bundles[0]),
            "one caBundle on every webhook"
        );
        let data = &secret["data"];
        let field = |k: &str| data[k].as_str().unwrap().to_string();
        (field("ca.crt"), field("tls.crt"), bundles[0].clone())
    };

    let notes = upgrade(&[]);
    assert!(
        notes.contains(
            "kubectl -n llm-autoscale-system rollout status deployment/llm-autoscale-webhook"
        ) && notes.contains("llm-autoscale.io/webhook=disabled")
            && notes.contains("--clusterrole=llm-autoscale-webhook-doctor"),
        "the install notes: {notes}"
    );
    let (ca, cert, bundle) = state();
    assert_eq!(bundle, ca, "installed: the caBundle is the Secret's CA");

    upgrade(&["--set", "replicaCount=3"]);
    assert_eq!(
        state(),
        (ca.clone(), cert.clone(), bundle),
        "upgraded: the same certificate"
    );

    upgrade(&["--set", "certificates.generate.reuse=false"]);
    let (new_ca, new_cert, rotated) = state();
    assert_ne!(new_ca, ca);
    assert_ne!(new_cert, cert);
    let trusted = pem_certificates(&rotated);
    assert_eq!(
        trusted,
        [
            pem_certificates(&new_ca)[0].clone(),
            pem_certificates(&ca)[0].clone()
        ],
        "rotated: the new CA, and the old one for pods still serving the old certificate"
    );

    upgrade(&[]);
    let (kept_ca, _, bundle) = state();
    assert_eq!(
        (kept_ca, bundle),
        (new_ca.clone(), new_ca),
        "next upgrade: the new CA only"
    );
}
