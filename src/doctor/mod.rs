//! `doctor`: what stands between an annotated workload and scaling, each finding with its fix.
//!
//! A pure core and thin shells, like the rest of the product:
//! - [`snapshot`]: what was read from the cluster, as plain data;
//! - [`webhook`], [`keda`], [`workload`], [`metrics_path`], [`builtin_scaler`], [`scaler_tls`]:
//!   the findings, pure functions of
//!   the snapshot (the workload's are the webhook's and the reconciler's own code: the
//!   annotation reader and [`crate::reconcile::plan`]);
//! - [`report`]: printing and the exit code;
//! - [`gather`] and [`probe`]: the API reads and the network checks that fill the snapshot;
//!   [`address`] and [`selector`]: the pure pieces they and the findings share.

pub mod address;
pub mod builtin_scaler;
pub mod finding;
pub mod gather;
pub mod keda;
pub mod metrics_path;
pub mod probe;
pub mod report;
pub mod scaler_tls;
pub mod selector;
pub mod snapshot;
#[cfg(test)]
mod test_objects;
pub mod webhook;
pub mod workload;

use std::collections::BTreeMap;

use serde_json::Value;

pub use finding::{Area, Check, Finding, Severity};
pub use report::{Report, WorkloadReport};
pub use snapshot::Snapshot;

use crate::config::WebhookConfig;
use crate::keda::ScaledObject;
use crate::reconcile::plan::{Action, plan};
use snapshot::WorkloadSeen;

/// Reads the cluster and diagnoses it.
pub async fn examine(
    client: &kube::Client,
    opts: &gather::GatherOptions,
    cfg: &WebhookConfig,
) -> Result<Report, gather::GatherError> {
    let snapshot = gather::gather(client, opts, cfg).await?;
    Ok(diagnose(&snapshot, cfg))
}

/// Every finding for the snapshot.
pub fn diagnose(s: &Snapshot, cfg: &WebhookConfig) -> Report {
    let mut cluster = webhook::cluster_findings(&s.webhooks);
    cluster.extend(keda::cluster_findings(&s.keda));
    if cfg.builtin_scaler_tls {
        cluster.extend(scaler_tls::keda_findings(&s.keda.operator_ca));
    }
    Report {
        cluster,
        workloads: s
            .workloads
            .iter()
            .map(|w| diagnose_workload(w, s, cfg))
            .collect(),
    }
}

/// The labels of an object's metadata.
pub fn labels_of(object: Option<&Value>) -> BTreeMap<String, String> {
    object
        .and_then(|o| o.pointer("/metadata/labels"))
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default()
}

fn diagnose_workload(w: &WorkloadSeen, s: &Snapshot, cfg: &WebhookConfig) -> WorkloadReport {
    let mut findings = webhook::selector_findings(
        &s.webhooks,
        w.kind,
        &w.namespace_labels,
        &labels_of(Some(&w.object)),
        &labels_of(w.deployment.as_ref()),
    );
    findings.extend(scaling_findings(w, s, cfg));
    WorkloadReport {
        kind: workload::kind_name(w.kind),
        namespace: w.namespace.clone(),
        name: w.name.clone(),
        findings,
    }
}

fn scaling_findings(w: &WorkloadSeen, s: &Snapshot, cfg: &WebhookConfig) -> Vec<Finding> {
    let (spec, mut out) = match workload::opt_in(w.kind, &w.object, cfg) {
        Ok(ok) => ok,
        Err(ended) => return ended,
    };
    let Some(deployment) = &w.deployment else {
        out.push(workload::target_missing(
            &w.namespace,
            &spec.target_deployment,
        ));
        return out;
    };
    let plan = plan(deployment, &w.kserve, cfg);
    out.push(workload::sidecar_finding(&plan, &spec, deployment));
    let (so_findings, stored) =
        workload::scaled_object_findings(&plan, &w.scaled_objects, deployment, &w.kserve);
    out.extend(so_findings);
    let typed = |v: &Value| serde_json::from_value::<ScaledObject>(v.clone()).ok();
    let stored_typed = stored.and_then(typed);
    let rendered = match &plan.action {
        Action::Apply(v) => typed(v),
        _ => None,
    };
    let ours = rendered.as_ref().map(|so| {
        let hpa = stored
            .zip(stored_typed.as_ref())
            .map(|(v, t)| keda::hpa_name(t, v))
            .unwrap_or_else(|| keda::hpa_name(so, &Value::Null));
        (so.name().to_string(), hpa)
    });
    out.push(workload::competing_findings(
        &spec.target_deployment,
        ours.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
        &w.scaled_objects,
        &w.hpas,
    ));
    if let (Some(v), Some(so)) = (stored, stored_typed.as_ref()) {
        out.extend(keda::scaled_object_findings(v));
        out.extend(keda::hpa_findings(so, v, &w.hpas));
    }
    if let Some(so) = stored_typed.as_ref().or(rendered.as_ref()) {
        out.extend(metrics_path::findings(
            so,
            &spec.target_deployment,
            s.addon.as_ref(),
            &w.prometheus,
            cfg,
        ));
        out.extend(builtin_scaler::findings(
            so,
            s.builtin.as_ref(),
            &w.builtin,
            w.token_secret,
            cfg,
        ));
        if cfg.builtin_scaler_tls && builtin_scaler::reads_builtin(so, cfg) {
            out.push(scaler_tls::namespace_ca_finding(w.scaler_ca, &w.namespace));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::snapshot::{
        AddonSeen, AddonStore, ApiServiceSeen, EnvSetting, KedaSeen, Probe,
    };
    use crate::doctor::test_objects::*;
    use crate::mutate::mutate;
    use crate::reconcile::plan::KserveOwner;
    use crate::workload::WorkloadKind;
    use serde_json::json;

    fn ready(so: &mut Value) {
        so["status"] = json!({"hpaName": "keda-hpa-m", "conditions": [
            {"type": "Ready", "status": "True", "reason": "ScaledObjectReady"},
            {"type": "Active", "status": "True", "reason": "ScalerActive"},
            {"type": "Fallback", "status": "False", "reason": "NoFallbackFound"},
            {"type": "Paused", "status": "False"},
        ]});
    }

    /// An injected Deployment, its ScaledObject as the reconciler applies it (Ready), KEDA's
    /// HPA, the add-on holding the workload's series: nothing to report.
    fn healthy() -> (Snapshot, WebhookConfig) {
        let cfg = WebhookConfig::default();
        let d = mutate(&deployment(opted_in_annotations()), &cfg)
            .unwrap()
            .patched;
        let Action::Apply(mut so) = plan(&d, &KserveOwner::None, &cfg).action else {
            panic!()
        };
        ready(&mut so);
        let hpa = serde_json::from_value(json!({
            "metadata": {"name": "keda-hpa-m"},
            "spec": {"maxReplicas": 4, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "m"}},
            "status": {"desiredReplicas": 1, "conditions": [{"type": "AbleToScale", "status": "True"}, {"type": "ScalingActive", "status": "True"}]}
        }))
        .unwrap();
        let series = BTreeMap::from([(
            "vllm:num_requests_waiting".to_string(),
            vec![BTreeMap::from([(
                "deployment".to_string(),
                "m".to_string(),
            )])],
        )]);
        let snapshot = Snapshot {
            webhooks: hooks(),
            keda: KedaSeen {
                crd: true,
                operators: vec![],
                metrics_api: ApiServiceSeen::Available,
                operator_ca: vec![],
            },
            addon: Some(AddonSeen {
                service: None,
                via: "http://127.0.0.1:9090".into(),
                error_if_not_found: EnvSetting::Value("true".into()),
                store: Probe::Answered(AddonStore { series }),
            }),
            builtin: None,
            workloads: vec![WorkloadSeen {
                kind: WorkloadKind::Deployment,
                namespace: "llm".into(),
                name: "m".into(),
                object: d.clone(),
                namespace_labels: BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_string(),
                    "llm".to_string(),
                )]),
                deployment: Some(d),
                kserve: KserveOwner::None,
                scaled_objects: vec![so],
                hpas: vec![hpa],
                prometheus: BTreeMap::new(),
                builtin: BTreeMap::new(),
                token_secret: None,
                scaler_ca: None,
            }],
        };
        (snapshot, cfg)
    }

    #[test]
    fn a_healthy_workload_blocks_nothing() {
        let (s, cfg) = healthy();
        let r = diagnose(&s, &cfg);
        assert!(!r.blocks_scaling(), "{}", r.to_human(true));
        let checks: Vec<Check> = r.workloads[0].findings.iter().map(|f| f.check).collect();
        for c in [
            Check::WebhookSelector,
            Check::OptIn,
            Check::Annotations,
            Check::Sidecar,
            Check::ScaledObject,
            Check::ScaledObjectSync,
            Check::CompetingScaler,
            Check::ScaledObjectReady,
            Check::Hpa,
            Check::HpaConditions,
            Check::AddonReachable,
            Check::MetricInStore,
            Check::AddonErrorIfNotFound,
        ] {
            assert!(checks.contains(&c), "{c:?} not checked: {checks:?}");
        }
    }

    #[test]
    fn each_break_is_named() {
        type Break = fn(&mut Snapshot);
        let breaks: [(Break, Check); 6] = [
            (|s| s.webhooks.clear(), Check::WebhookConfiguration),
            (|s| s.keda.crd = false, Check::KedaCrd),
            (
                |s| s.workloads[0].scaled_objects.clear(),
                Check::ScaledObject,
            ),
            (|s| s.workloads[0].hpas.clear(), Check::Hpa),
            (
                |s| {
                    if let Some(a) = s.addon.as_mut() {
                        a.store = Probe::Answered(AddonStore::default());
                    }
                },
                Check::MetricInStore,
            ),
            (
                |s| {
                    let d = deployment(opted_in_annotations());
                    s.workloads[0].deployment = Some(d.clone());
                    s.workloads[0].object = d;
                },
                Check::Sidecar,
            ),
        ];
        for (apply, check) in breaks {
            let (mut s, cfg) = healthy();
            apply(&mut s);
            let r = diagnose(&s, &cfg);
            assert!(r.blocks_scaling(), "{check:?}");
            let all: Vec<&Finding> = r
                .cluster
                .iter()
                .chain(r.workloads.iter().flat_map(|w| &w.findings))
                .collect();
            assert!(
                all.iter()
                    .any(|f| f.check == check && f.severity == Severity::Error),
                "{check:?}: {}",
                r.to_human(false)
            );
        }
    }

    /// `healthy()` on the built-in scaler over TLS: the namespace's Secret holds the CA, and
    /// KEDA's operator has a CA Secret at its default directory.
    fn builtin_over_tls() -> (Snapshot, WebhookConfig) {
        use crate::annotations::Backend;
        use crate::doctor::snapshot::{
            BuiltinSeen, CaDir, CaDirs, DirMount, OperatorCaDirs, SecretCa, TokenSecret,
        };
        let (mut s, mut cfg) = healthy();
        cfg.default_backend = Backend::Builtin;
        cfg.builtin_scaler_tls = true;
        let d = mutate(&deployment(opted_in_annotations()), &cfg)
            .unwrap()
            .patched;
        let Action::Apply(mut so) = plan(&d, &KserveOwner::None, &cfg).action else {
            panic!()
        };
        ready(&mut so);
        let w = &mut s.workloads[0];
        w.object = d.clone();
        w.deployment = Some(d);
        w.scaled_objects = vec![so];
        w.token_secret = Some(TokenSecret::Present);
        w.scaler_ca = Some(SecretCa::Certificates(1));
        s.addon = None;
        s.builtin = Some(BuiltinSeen {
            service: None,
            via: "https://127.0.0.1:4318".into(),
            health: Probe::Answered(()),
        });
        s.keda.operator_ca = vec![OperatorCaDirs {
            namespace: "keda".into(),
            name: "keda-operator".into(),
            dirs: CaDirs::Known(vec![CaDir {
                path: "/custom/ca".into(),
                mount: DirMount::Volume("Secret llm-autoscale-scaler-ca".into()),
            }]),
        }];
        (s, cfg)
    }

    fn severities_of(r: &Report, check: Check) -> Vec<Severity> {
        r.cluster
            .iter()
            .chain(r.workloads.iter().flat_map(|w| &w.findings))
            .filter(|f| f.check == check)
            .map(|f| f.severity)
            .collect()
    }

    #[test]
    fn with_scaler_tls_keda_and_the_namespace_must_trust_the_scalers_ca() {
        use crate::doctor::snapshot::{CaDirs, SecretCa};
        let (s, cfg) = builtin_over_tls();
        let r = diagnose(&s, &cfg);
        assert_eq!(severities_of(&r, Check::KedaCaDir), vec![Severity::Ok]);
        assert_eq!(
            severities_of(&r, Check::BuiltinScalerCa),
            vec![Severity::Ok]
        );

        let (mut s, cfg) = builtin_over_tls();
        s.workloads[0].scaler_ca = Some(SecretCa::NoKey);
        s.keda.operator_ca[0].dirs = CaDirs::Known(vec![]);
        let r = diagnose(&s, &cfg);
        assert!(r.blocks_scaling());
        assert_eq!(severities_of(&r, Check::KedaCaDir), vec![Severity::Error]);
        assert_eq!(
            severities_of(&r, Check::BuiltinScalerCa),
            vec![Severity::Error]
        );

        // Without the setting neither is judged.
        let (s, mut cfg) = builtin_over_tls();
        cfg.builtin_scaler_tls = false;
        let r = diagnose(&s, &cfg);
        assert!(severities_of(&r, Check::KedaCaDir).is_empty());
        assert!(severities_of(&r, Check::BuiltinScalerCa).is_empty());
        // Nor the namespace's CA for a workload on another scaler.
        let (mut s, cfg) = builtin_over_tls();
        let (otel, _) = healthy();
        s.workloads = otel.workloads;
        let r = diagnose(&s, &cfg);
        assert!(severities_of(&r, Check::BuiltinScalerCa).is_empty());
        assert_eq!(severities_of(&r, Check::KedaCaDir), vec![Severity::Ok]);
    }

    #[test]
    fn a_predictor_that_does_not_exist_ends_the_check() {
        let (mut s, cfg) = healthy();
        let isvc = json!({
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "q", "namespace": "llm", "annotations": opted_in_annotations()},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "huggingface"}}}}
        });
        s.workloads[0].kind = WorkloadKind::InferenceService;
        s.workloads[0].object = isvc;
        s.workloads[0].deployment = None;
        let r = diagnose(&s, &cfg);
        let last = r.workloads[0].findings.last().unwrap();
        assert_eq!(last.check, Check::TargetDeployment);
        assert!(last.subject.contains("q-predictor"), "{}", last.subject);
    }
}
