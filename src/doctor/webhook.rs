//! Findings about the product's admission webhooks: registered, trusted, reachable, and
//! selecting the workload.

use std::collections::BTreeMap;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::finding::{Check, Finding, Severity};
use super::selector::{describe, selects};
use super::snapshot::{HookKind, Probe, WebhookSeen, WebhookTarget};
use crate::workload::WorkloadKind;

/// The webhook that injects the sidecar into Deployments (deploy/base/webhook-configurations.yaml).
pub const DEPLOYMENTS_HOOK: &str = "deployments.llm-autoscale.io";
/// The webhook that validates InferenceServices and sets their autoscaler class.
pub const INFERENCE_SERVICES_HOOK: &str = "inferenceservices.llm-autoscale.io";
/// The webhook that checks ScaledObjects' add-on queries.
pub const SCALED_OBJECTS_HOOK: &str = "scaledobjects.llm-autoscale.io";

/// A serving certificate that expires sooner than this is worth a warning.
const EXPIRY_WARNING_SECONDS: i64 = 7 * 24 * 3600;

/// The product's webhooks and what each is for, with how bad its absence is.
const EXPECTED: [(&str, HookKind, Severity, &str); 3] = [
    (
        DEPLOYMENTS_HOOK,
        HookKind::Mutating,
        Severity::Error,
        "no collector sidecar is injected into opted-in Deployments",
    ),
    (
        INFERENCE_SERVICES_HOOK,
        HookKind::Mutating,
        Severity::Warning,
        "InferenceServices are neither checked nor switched to autoscalerClass external",
    ),
    (
        SCALED_OBJECTS_HOOK,
        HookKind::Validating,
        Severity::Warning,
        "malformed add-on queries in ScaledObjects are not refused at apply time",
    ),
];

const INSTALL_FIX: &str =
    "install the webhook configurations (kubectl apply -k deploy/, or the Helm chart)";

/// Cluster-wide findings: each expected webhook registered, and for each registered one its
/// caBundle, certificate, endpoints and failure policy.
pub fn cluster_findings(hooks: &[WebhookSeen]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, kind, severity, without) in EXPECTED {
        let subject = format!("webhook {name}");
        match hooks.iter().find(|h| h.name == name && h.kind == kind) {
            None => out.push(
                Finding::new(Check::WebhookConfiguration, severity, subject)
                    .saying(format!(
                        "no {} holds this webhook: {without}",
                        kind.configuration_kind()
                    ))
                    .fix(INSTALL_FIX),
            ),
            Some(h) => {
                out.push(Finding::ok(
                    Check::WebhookConfiguration,
                    &subject,
                    format!(
                        "registered in {} {}",
                        kind.configuration_kind(),
                        h.configuration
                    ),
                ));
                out.extend(hook_findings(h, &subject));
            }
        }
    }
    out
}

fn hook_findings(h: &WebhookSeen, subject: &str) -> Vec<Finding> {
    let mut out = vec![ca_bundle_finding(h, subject)];
    out.push(certificate_finding(h, subject));
    if let Some(f) = endpoints_finding(h, subject) {
        out.push(f);
    }
    out.push(failure_policy_finding(h, subject));
    out
}

fn ca_bundle_finding(h: &WebhookSeen, subject: &str) -> Finding {
    let certificates = CertificateDer::pem_slice_iter(&h.ca_bundle)
        .filter(Result::is_ok)
        .count();
    let fix = format!(
        "with cert-manager, check the cert-manager.io/inject-ca-from annotation of {} {} and that cainjector runs; without it, set clientConfig.caBundle to the base64 of ca.crt (llm-autoscale-webhook certs prints it)",
        h.kind.configuration_kind(),
        h.configuration
    );
    if h.ca_bundle.is_empty() {
        Finding::new(Check::WebhookCaBundle, Severity::Error, subject)
            .saying("clientConfig.caBundle is empty: the API server trusts only its system roots, not the webhook's CA, and every call fails")
            .fix(fix)
    } else if certificates == 0 {
        Finding::new(Check::WebhookCaBundle, Severity::Error, subject)
            .saying("clientConfig.caBundle holds no PEM certificate")
            .fix(fix)
    } else {
        Finding::ok(
            Check::WebhookCaBundle,
            subject,
            format!("caBundle holds {certificates} certificate(s)"),
        )
    }
}

fn certificate_finding(h: &WebhookSeen, subject: &str) -> Finding {
    let endpoint = describe_target(&h.target);
    match &h.tls {
        Probe::Answered(cert) if cert.expires_in_seconds < 0 => {
            Finding::new(Check::WebhookCertificate, Severity::Error, subject)
                .saying(format!("the certificate served at {endpoint} has expired"))
                .fix(renew_fix())
        }
        Probe::Answered(cert) if cert.expires_in_seconds < EXPIRY_WARNING_SECONDS => {
            Finding::new(Check::WebhookCertificate, Severity::Warning, subject)
                .saying(format!(
                    "the certificate served at {endpoint} expires in {} hours",
                    cert.expires_in_seconds / 3600
                ))
                .fix(renew_fix())
        }
        Probe::Answered(cert) => Finding::ok(
            Check::WebhookCertificate,
            subject,
            format!(
                "the certificate served at {endpoint} verifies against the caBundle (expires in {} days)",
                cert.expires_in_seconds / 86400
            ),
        ),
        Probe::Failed(why) => Finding::new(Check::WebhookCertificate, Severity::Error, subject)
            .saying(format!(
                "a TLS handshake with {endpoint}, trusting only the caBundle, fails: {why}; the API server fails the same way"
            ))
            .fix("make the caBundle the CA that signed the serving certificate (and the certificate name the Service's DNS name, or the URL's host); if it is unreachable, check the webhook's pods"),
        Probe::NotTried(why) => Finding::new(Check::WebhookCertificate, Severity::Info, subject)
            .saying(format!("the certificate at {endpoint} was not checked: {why}")),
    }
}

fn renew_fix() -> &'static str {
    "cert-manager renews it on its own (check the Certificate's status); without it run llm-autoscale-webhook certs --ca-dir DIR and update the Secret"
}

fn endpoints_finding(h: &WebhookSeen, subject: &str) -> Option<Finding> {
    let WebhookTarget::Service { service, .. } = &h.target else {
        return None;
    };
    let n = h.ready_endpoints?;
    Some(if n == 0 {
        Finding::new(Check::WebhookEndpoints, Severity::Error, subject)
            .saying(format!("Service {service} has no ready endpoints: the API server cannot reach the webhook"))
            .fix(format!(
                "kubectl -n {ns} get pods,endpointslices -l app.kubernetes.io/name=llm-autoscale-webhook; check the pods' readiness and logs",
                ns = service.namespace
            ))
    } else {
        Finding::ok(
            Check::WebhookEndpoints,
            subject,
            format!("Service {service} has {n} ready endpoint(s)"),
        )
    })
}

fn failure_policy_finding(h: &WebhookSeen, subject: &str) -> Finding {
    let skipped = match h.kind {
        HookKind::Mutating => {
            "objects are admitted unchanged (no sidecar, no checks); the reconciler reports them as SidecarMissing"
        }
        HookKind::Validating => "ScaledObjects are admitted without the add-on query check",
    };
    let message = match h.failure_policy.as_str() {
        "Ignore" => format!("failurePolicy Ignore: while the webhook is unreachable {skipped}"),
        "Fail" => "failurePolicy Fail: while the webhook is unreachable, applies of the objects it matches are refused".to_string(),
        other => format!("failurePolicy {other}"),
    };
    Finding::new(Check::WebhookFailurePolicy, Severity::Info, subject).saying(message)
}

fn describe_target(t: &WebhookTarget) -> String {
    match t {
        WebhookTarget::Url(u) => u.clone(),
        WebhookTarget::Service { service, path } => {
            format!("Service {service}{path}")
        }
    }
}

/// The webhooks that act on a workload of this kind.
fn hooks_for(kind: WorkloadKind) -> &'static [&'static str] {
    match kind {
        WorkloadKind::Deployment => &[DEPLOYMENTS_HOOK],
        WorkloadKind::InferenceService => &[INFERENCE_SERVICES_HOOK, DEPLOYMENTS_HOOK],
    }
}

/// Whether the webhooks that act on the workload select its namespace and its labels (for an
/// InferenceService, the Deployment webhook is judged on the predictor's labels).
pub fn selector_findings(
    hooks: &[WebhookSeen],
    kind: WorkloadKind,
    namespace_labels: &BTreeMap<String, String>,
    object_labels: &BTreeMap<String, String>,
    deployment_labels: &BTreeMap<String, String>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for name in hooks_for(kind) {
        let Some(h) = hooks.iter().find(|h| h.name == *name) else {
            continue;
        };
        let subject = format!("webhook {name}");
        let labels = if *name == DEPLOYMENTS_HOOK {
            deployment_labels
        } else {
            object_labels
        };
        let ns = namespace_labels
            .get("kubernetes.io/metadata.name")
            .map(String::as_str)
            .unwrap_or_default();
        if !selects(h.namespace_selector.as_ref(), namespace_labels) {
            out.push(
                Finding::new(Check::WebhookSelector, Severity::Error, subject)
                    .saying(format!(
                        "its namespaceSelector ({}) excludes namespace {ns}: the webhook never sees this workload",
                        h.namespace_selector.as_ref().map(describe).unwrap_or_default()
                    ))
                    .fix("run the workload in a namespace the selector selects, or change the namespace's labels or the selector"),
            );
        } else if !selects(h.object_selector.as_ref(), labels) {
            out.push(
                Finding::new(Check::WebhookSelector, Severity::Error, subject)
                    .saying(format!(
                        "its objectSelector ({}) excludes this object's labels: the webhook never sees it",
                        h.object_selector.as_ref().map(describe).unwrap_or_default()
                    ))
                    .fix("remove the opt-out label from the object, or change the selector"),
            );
        } else {
            out.push(Finding::ok(
                Check::WebhookSelector,
                subject,
                format!("selects namespace {ns} and the object"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::snapshot::ServedCertificate;
    use crate::doctor::test_objects::{hook, hooks};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    fn worst(findings: &[Finding], check: Check) -> Option<Severity> {
        findings
            .iter()
            .filter(|f| f.check == check)
            .map(|f| f.severity)
            .max()
    }

    #[test]
    fn a_healthy_install_has_nothing_above_info() {
        let f = cluster_findings(&hooks());
        assert!(f.iter().all(|f| f.severity <= Severity::Info), "{f:#?}");
        assert_eq!(
            f.iter()
                .filter(|f| f.check == Check::WebhookConfiguration)
                .count(),
            3
        );
    }

    #[test]
    fn a_missing_deployment_webhook_blocks_and_the_others_warn() {
        let only_validating = vec![hook(SCALED_OBJECTS_HOOK, HookKind::Validating)];
        let f = cluster_findings(&only_validating);
        let missing: Vec<_> = f
            .iter()
            .filter(|f| f.check == Check::WebhookConfiguration && f.severity > Severity::Ok)
            .collect();
        assert_eq!(missing.len(), 2);
        assert_eq!(missing[0].severity, Severity::Error);
        assert!(missing[0].subject.contains(DEPLOYMENTS_HOOK));
        assert!(missing[0].fix.contains("deploy/"));
        assert_eq!(missing[1].severity, Severity::Warning);
        // A mutating hook of the validating one's name is not it.
        let wrong_kind = vec![hook(SCALED_OBJECTS_HOOK, HookKind::Mutating)];
        assert_eq!(
            worst(&cluster_findings(&wrong_kind), Check::WebhookConfiguration),
            Some(Severity::Error)
        );
    }

    #[test]
    fn ca_bundle_empty_or_not_pem_blocks() {
        for bundle in [Vec::new(), b"not a certificate".to_vec()] {
            let mut h = hooks();
            h[0].ca_bundle = bundle;
            let f = cluster_findings(&h);
            assert_eq!(worst(&f, Check::WebhookCaBundle), Some(Severity::Error));
        }
    }

    #[test]
    fn certificate_outcomes() {
        let cases = [
            (
                Probe::Failed("invalid peer certificate: UnknownIssuer".into()),
                Severity::Error,
            ),
            (
                Probe::NotTried("outside the cluster".into()),
                Severity::Info,
            ),
            (
                Probe::Answered(ServedCertificate {
                    expires_in_seconds: -5,
                }),
                Severity::Error,
            ),
            (
                Probe::Answered(ServedCertificate {
                    expires_in_seconds: 3600 * 30,
                }),
                Severity::Warning,
            ),
            (
                Probe::Answered(ServedCertificate {
                    expires_in_seconds: 86400 * 30,
                }),
                Severity::Ok,
            ),
        ];
        for (probe, want) in cases {
            let mut h = hooks();
            h[0].tls = probe.clone();
            let f = cluster_findings(&h);
            assert_eq!(
                worst(&f, Check::WebhookCertificate),
                Some(want),
                "{probe:?}"
            );
        }
        let mut h = hooks();
        h[0].tls = Probe::Failed("UnknownIssuer".into());
        let f = cluster_findings(&h);
        let cert = f
            .iter()
            .find(|f| f.check == Check::WebhookCertificate && f.severity == Severity::Error)
            .unwrap();
        assert!(cert.message.contains("UnknownIssuer"), "{}", cert.message);
        assert!(
            cert.message
                .contains("Service llm-autoscale-system/llm-autoscale-webhook:443/mutate")
        );
    }

    #[test]
    fn no_ready_endpoints_blocks_and_url_targets_have_none_to_count() {
        let mut h = hooks();
        h[0].ready_endpoints = Some(0);
        assert_eq!(
            worst(&cluster_findings(&h), Check::WebhookEndpoints),
            Some(Severity::Error)
        );
        for x in &mut h {
            x.target = WebhookTarget::Url("https://127.0.0.1:8443/mutate".into());
            x.ready_endpoints = None;
        }
        assert_eq!(worst(&cluster_findings(&h), Check::WebhookEndpoints), None);
    }

    #[test]
    fn failure_policy_is_told_either_way() {
        for (policy, word) in [("Ignore", "admitted unchanged"), ("Fail", "refused")] {
            let mut h = hooks();
            h[0].failure_policy = policy.into();
            let f = cluster_findings(&h);
            let p = f
                .iter()
                .find(|f| f.check == Check::WebhookFailurePolicy)
                .unwrap();
            assert_eq!(p.severity, Severity::Info);
            assert!(p.message.contains(word), "{}", p.message);
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_excluded_namespace_blocks_the_workload() {
        let hooks = hooks();
        let none = labels(&[]);
        let kube_system = labels(&[("kubernetes.io/metadata.name", "kube-system")]);
        let f = selector_findings(&hooks, WorkloadKind::Deployment, &kube_system, &none, &none);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].message.contains("kube-system"), "{}", f[0].message);
        let llm = labels(&[("kubernetes.io/metadata.name", "llm")]);
        let f = selector_findings(&hooks, WorkloadKind::InferenceService, &llm, &none, &none);
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|f| f.severity == Severity::Ok));
    }

    #[test]
    fn an_object_selector_opt_out_blocks_the_workload() {
        let mut hooks = hooks();
        hooks[0].object_selector = Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "llm-autoscale.io/webhook".into(),
                operator: "NotIn".into(),
                values: Some(vec!["disabled".into()]),
            }]),
            match_labels: None,
        });
        let llm = labels(&[("kubernetes.io/metadata.name", "llm")]);
        let opted_out = labels(&[("llm-autoscale.io/webhook", "disabled")]);
        let f = selector_findings(
            &hooks,
            WorkloadKind::Deployment,
            &llm,
            &opted_out,
            &opted_out,
        );
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].message.contains("objectSelector"));
        // For an InferenceService the Deployment webhook reads the predictor's labels.
        let f = selector_findings(
            &hooks,
            WorkloadKind::InferenceService,
            &llm,
            &opted_out,
            &labels(&[]),
        );
        assert!(f.iter().all(|f| f.severity == Severity::Ok), "{f:#?}");
    }
}
