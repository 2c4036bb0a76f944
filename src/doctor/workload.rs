//! Findings about the workload itself: opted in, annotations valid, sidecar current, its
//! ScaledObject present, ours and in sync, nothing else scaling the same Deployment. The
//! judgements are the webhook's and the reconciler's own code ([`crate::annotations::parse`],
//! [`crate::reconcile::plan`]), run on the objects as stored.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::finding::{Check, Finding, Severity};
use crate::annotations::{self, AutoscalingSpec, Backend};
use crate::config::WebhookConfig;
use crate::mutate::injection_status::InjectionStatus;
use crate::reconcile::plan::{Action, Holder, KserveOwner, Plan, SidecarState, holder_of};
use crate::workload::{Workload, WorkloadKind};

/// What the annotations say: opted in with a valid spec, or the findings that end the check.
pub fn opt_in(
    kind: WorkloadKind,
    object: &Value,
    cfg: &WebhookConfig,
) -> Result<(AutoscalingSpec, Vec<Finding>), Vec<Finding>> {
    let w = Workload::from_object(kind, object);
    let subject = format!("{} {}/{}", kind_name(kind), w.namespace, w.name);
    let enabled = w
        .annotations
        .get(&format!("{}enabled", annotations::PREFIX));
    match annotations::parse(&w, cfg) {
        Ok((None, _)) => Err(vec![not_opted_in(enabled.map(String::as_str), &subject)]),
        Err(invalid) => Err(vec![
            Finding::ok(Check::OptIn, &subject, "opted in"),
            Finding::new(Check::Annotations, Severity::Error, &subject)
                .saying(invalid.to_string())
                .fix("correct each annotation as its line says; the webhook refuses (or, with on-invalid warn, ignores) the object until then"),
        ]),
        Ok((Some(spec), warnings)) => {
            let mut out = vec![
                Finding::ok(
                    Check::OptIn,
                    &subject,
                    format!("opted in, backend {}", spec.backend.as_str()),
                ),
                Finding::ok(
                    Check::Annotations,
                    &subject,
                    format!("valid: {} trigger(s), {}..{} replicas", spec.triggers.len(), spec.min_replicas, spec.max_replicas),
                ),
            ];
            out.extend(warnings.into_iter().map(|w| {
                Finding::new(Check::Annotations, Severity::Warning, &subject).saying(w)
            }));
            Ok((spec, out))
        }
    }
}

fn not_opted_in(enabled: Option<&str>, subject: &str) -> Finding {
    let key = format!("{}enabled", annotations::PREFIX);
    match enabled {
        Some(v) => Finding::new(Check::OptIn, Severity::Info, subject)
            .saying(format!("opted out ({key}: {v:?}): nothing scales it")),
        None => Finding::new(Check::OptIn, Severity::Error, subject)
            .saying(format!("not opted in: {key} is not set"))
            .fix(format!(
                "kubectl annotate the object {key}=true and set {}max-replicas",
                annotations::PREFIX
            )),
    }
}

pub fn kind_name(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "Deployment",
        WorkloadKind::InferenceService => "InferenceService",
    }
}

/// An InferenceService's predictor Deployment must exist for anything to scale.
pub fn target_missing(namespace: &str, deployment: &str) -> Finding {
    Finding::new(
        Check::TargetDeployment,
        Severity::Error,
        format!("Deployment {namespace}/{deployment}"),
    )
    .saying("KServe has not created the predictor Deployment: there is nothing to scale")
    .fix("check the InferenceService's status and KServe's controller logs (kubectl describe inferenceservice)")
}

/// The sidecar as the reconciler sees it ([`SidecarState`], from the status annotation's
/// hashes).
pub fn sidecar_finding(plan: &Plan, spec: &AutoscalingSpec, deployment: &Value) -> Finding {
    let subject = "collector sidecar";
    let needed = spec.backend == Backend::Otel && !spec.sidecar_metrics().is_empty();
    let status = InjectionStatus::read(deployment);
    let (reason, what) = plan.sidecar.event().unwrap_or(("", ""));
    match plan.sidecar {
        SidecarState::UpToDate => Finding::ok(
            Check::Sidecar,
            subject,
            match status {
                Some(s) => format!(
                    "{} injected ({:?}), current (hash {})",
                    s.container, s.placement, s.hash
                ),
                None => "current".to_string(),
            },
        ),
        SidecarState::NotExpected => Finding::ok(
            Check::Sidecar,
            subject,
            format!(
                "none needed: the {} backend reads no metric through a sidecar",
                spec.backend.as_str()
            ),
        ),
        SidecarState::Missing => Finding::new(
            Check::Sidecar,
            if needed {
                Severity::Error
            } else {
                Severity::Warning
            },
            subject,
        )
        .saying(format!("{reason}: {what}"))
        .fix("kubectl rollout restart deployment (once the webhook-* findings are ok)"),
        SidecarState::Stale(_) | SidecarState::Leftover => {
            Finding::new(Check::Sidecar, Severity::Warning, subject)
                .saying(format!("{reason}: {what}"))
                .fix("kubectl rollout restart deployment")
        }
    }
}

/// The ScaledObject the reconciler would apply, against the one stored under its name.
/// Returns the findings and the stored object of that name (whoever holds it), if any.
pub fn scaled_object_findings<'a>(
    plan: &Plan,
    stored: &'a [Value],
    deployment: &Value,
    kserve: &KserveOwner,
) -> (Vec<Finding>, Option<&'a Value>) {
    let rendered = match &plan.action {
        Action::Apply(r) => r,
        Action::Skip(reason) => {
            return (
                vec![
                    Finding::new(Check::ScaledObject, Severity::Error, "ScaledObject")
                        .saying(format!("the reconciler does not create one: {reason}"))
                        .fix("see the reason"),
                ],
                None,
            );
        }
        Action::DeleteManaged(_) => return (Vec::new(), None),
    };
    let name = text(rendered, "/metadata/name");
    let ns = text(deployment, "/metadata/namespace");
    let uid = text(deployment, "/metadata/uid");
    let subject = format!("ScaledObject {name}");
    let Some(found) = stored.iter().find(|so| text(so, "/metadata/name") == name) else {
        return (
            vec![
                Finding::new(Check::ScaledObject, Severity::Error, &subject)
                    .saying("does not exist: KEDA has nothing to scale this workload by")
                    .fix("the reconciler (serve, or reconcile) creates it within seconds: check that it runs and holds its Lease, its logs, and the Deployment's Events"),
            ],
            None,
        );
    };
    let meta: ObjectMeta = found
        .get("metadata")
        .cloned()
        .and_then(|m| serde_json::from_value(m).ok())
        .unwrap_or_default();
    let held = match holder_of(&meta, uid, kserve) {
        Holder::Us => vec![
            Finding::ok(Check::ScaledObject, &subject, "exists, managed by llm-autoscale-webhook for this Deployment"),
            sync_finding(rendered, found, &subject),
        ],
        Holder::KserveLeftover => vec![
            Finding::new(Check::ScaledObject, Severity::Error, &subject)
                .saying("is the one KServe made while the InferenceService had autoscalerClass keda; the reconciler replaces it, so it is not running")
                .fix(format!("check the reconciler, or kubectl -n {ns} delete scaledobject {name}")),
        ],
        Holder::Foreign => vec![
            Finding::new(Check::ScaledObject, Severity::Error, &subject)
                .saying("exists but is not managed by llm-autoscale-webhook for this Deployment (label app.kubernetes.io/managed-by and owner reference): KEDA runs it as written and the reconciler never touches it")
                .fix(format!("kubectl -n {ns} delete scaledobject {name} so the reconciler creates its own, or remove the opt-in annotation")),
        ],
    };
    (held, Some(found))
}

fn sync_finding(rendered: &Value, stored: &Value, subject: &str) -> Finding {
    match first_difference(rendered, stored, String::new()) {
        None => Finding::ok(
            Check::ScaledObjectSync,
            subject,
            "holds what the annotations render now",
        ),
        Some(path) => Finding::new(Check::ScaledObjectSync, Severity::Warning, subject)
            .saying(format!(
                "differs from what the annotations render now, first at {path}: KEDA scales by the stored one"
            ))
            .fix("the reconciler repairs drift on its next pass: check that it runs (and whether someone else edits the ScaledObject)"),
    }
}

/// The JSON pointer of the first field the rendering sets that the stored object lacks or
/// holds otherwise (the same comparison as [`crate::reconcile::plan::is_applied`]).
pub fn first_difference(rendered: &Value, stored: &Value, at: String) -> Option<String> {
    match (rendered, stored) {
        (Value::Null, _) => None,
        (Value::Object(want), Value::Object(have)) => want.iter().find_map(|(k, v)| {
            let path = format!("{at}/{k}");
            match have.get(k) {
                None if !v.is_null() => Some(path),
                None => None,
                Some(h) => first_difference(v, h, path),
            }
        }),
        (Value::Array(want), Value::Array(have)) if want.len() == have.len() => want
            .iter()
            .zip(have)
            .enumerate()
            .find_map(|(i, (w, h))| first_difference(w, h, format!("{at}/{i}"))),
        (want, have) if want == have => None,
        _ => Some(if at.is_empty() { "/".into() } else { at }),
    }
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn targets_deployment(kind: &str, api_version: &str, name: &str, deployment: &str) -> bool {
    name == deployment
        && (kind.is_empty() || kind == "Deployment")
        && (api_version.is_empty() || api_version.starts_with("apps/"))
}

/// Other ScaledObjects and HPAs that scale the same Deployment: KEDA refuses a second
/// ScaledObject on one target (its admission webhook, `verifyScaledObjects`), and two HPAs on
/// one Deployment fight over its replicas.
pub fn competing_findings(
    deployment: &str,
    ours: Option<(&str, &str)>,
    scaled_objects: &[Value],
    hpas: &[HorizontalPodAutoscaler],
) -> Finding {
    let (our_so, our_hpa) = ours.unwrap_or_default();
    let mut others: Vec<String> = scaled_objects
        .iter()
        .filter(|so| {
            text(so, "/metadata/name") != our_so
                && targets_deployment(
                    text(so, "/spec/scaleTargetRef/kind"),
                    text(so, "/spec/scaleTargetRef/apiVersion"),
                    text(so, "/spec/scaleTargetRef/name"),
                    deployment,
                )
        })
        .map(|so| format!("ScaledObject {}", text(so, "/metadata/name")))
        .collect();
    others.extend(
        hpas.iter()
            .filter(|h| {
                let name = h.metadata.name.as_deref().unwrap_or_default();
                let target = h.spec.as_ref().map(|s| &s.scale_target_ref);
                name != our_hpa
                    && target.is_some_and(|t| {
                        targets_deployment(
                            &t.kind,
                            t.api_version.as_deref().unwrap_or_default(),
                            &t.name,
                            deployment,
                        )
                    })
            })
            .map(|h| format!("HPA {}", h.metadata.name.as_deref().unwrap_or_default())),
    );
    let subject = format!("Deployment {deployment}");
    if others.is_empty() {
        return Finding::ok(
            Check::CompetingScaler,
            subject,
            "no other ScaledObject or HPA targets it",
        );
    }
    Finding::new(Check::CompetingScaler, Severity::Error, subject)
        .saying(format!(
            "also scaled by {}: KEDA refuses a second ScaledObject on one target, and two HPAs fight over the replica count",
            others.join(", ")
        ))
        .fix("delete the other scaler (kubectl delete), or remove this workload's opt-in")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::test_objects::*;
    use crate::mutate::mutate;
    use crate::reconcile::plan::{InferenceServiceId, plan};
    use serde_json::json;

    #[test]
    fn opted_in_valid_invalid_out_and_absent() {
        let cfg = WebhookConfig::default();
        let (spec, f) = opt_in(
            WorkloadKind::Deployment,
            &deployment(opted_in_annotations()),
            &cfg,
        )
        .unwrap();
        assert_eq!(spec.backend, Backend::Otel);
        assert!(f.iter().all(|f| f.severity == Severity::Ok), "{f:#?}");

        let invalid = deployment(
            json!({"llm-autoscale.io/enabled": "true", "llm-autoscale.io/max-replicas": "4", "llm-autoscale.io/target": "600m"}),
        );
        let f = opt_in(WorkloadKind::Deployment, &invalid, &cfg).unwrap_err();
        let bad = f.iter().find(|f| f.check == Check::Annotations).unwrap();
        assert_eq!(bad.severity, Severity::Error);
        assert!(
            bad.message.contains("llm-autoscale.io/target"),
            "{}",
            bad.message
        );
        assert!(bad.message.contains("600m"), "{}", bad.message);

        let out = deployment(json!({"llm-autoscale.io/enabled": "false"}));
        let f = opt_in(WorkloadKind::Deployment, &out, &cfg).unwrap_err();
        assert_eq!((f[0].check, f[0].severity), (Check::OptIn, Severity::Info));

        let absent = deployment(json!({}));
        let f = opt_in(WorkloadKind::Deployment, &absent, &cfg).unwrap_err();
        assert_eq!((f[0].check, f[0].severity), (Check::OptIn, Severity::Error));
        assert!(f[0].fix.contains("llm-autoscale.io/enabled=true"));
    }

    #[test]
    fn annotation_warnings_are_warnings() {
        let cfg = WebhookConfig::default();
        let mut a = opted_in_annotations();
        a["llm-autoscale.io/metric"] = json!("vllm:gpu_cache_usage_perc");
        a["llm-autoscale.io/target"] = json!("0.8");
        let (_, f) = opt_in(WorkloadKind::Deployment, &deployment(a), &cfg).unwrap();
        assert!(
            f.iter()
                .any(|f| f.check == Check::Annotations && f.severity == Severity::Warning),
            "{f:#?}"
        );
    }

    fn spec_of(d: &Value) -> AutoscalingSpec {
        opt_in(WorkloadKind::Deployment, d, &WebhookConfig::default())
            .unwrap()
            .0
    }

    #[test]
    fn sidecar_missing_blocks_the_otel_backend_stale_warns_current_is_ok() {
        let cfg = WebhookConfig::default();
        let bare = deployment(opted_in_annotations());
        let p = plan(&bare, &KserveOwner::None, &cfg);
        let f = sidecar_finding(&p, &spec_of(&bare), &bare);
        assert_eq!(f.severity, Severity::Error);
        assert!(f.message.contains("SidecarMissing"), "{}", f.message);

        let injected = mutate(&bare, &cfg).unwrap().patched;
        let p = plan(&injected, &KserveOwner::None, &cfg);
        let f = sidecar_finding(&p, &spec_of(&injected), &injected);
        assert_eq!(f.severity, Severity::Ok);
        assert!(f.message.contains("hash"), "{}", f.message);

        let newer = WebhookConfig {
            collector_image: "otel/opentelemetry-collector-contrib:0.162.0".into(),
            ..WebhookConfig::default()
        };
        let p = plan(&injected, &KserveOwner::None, &newer);
        let f = sidecar_finding(&p, &spec_of(&injected), &injected);
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.message.contains("SidecarStale"), "{}", f.message);
    }

    #[test]
    fn no_sidecar_is_needed_for_prometheus() {
        let cfg = WebhookConfig::default();
        let mut a = opted_in_annotations();
        a["llm-autoscale.io/backend"] = json!("prometheus");
        let d = deployment(a);
        let injected = mutate(&d, &cfg).unwrap().patched;
        let p = plan(&injected, &KserveOwner::None, &cfg);
        let f = sidecar_finding(&p, &spec_of(&injected), &injected);
        assert_eq!(f.severity, Severity::Ok, "{f:#?}");
    }

    fn rendered(d: &Value) -> Value {
        match plan(d, &KserveOwner::None, &WebhookConfig::default()).action {
            Action::Apply(v) => v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scaled_object_missing_ours_foreign_and_skipped() {
        let cfg = WebhookConfig::default();
        let d = deployment(opted_in_annotations());
        let p = plan(&d, &KserveOwner::None, &cfg);

        let (f, found) = scaled_object_findings(&p, &[], &d, &KserveOwner::None);
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].message.contains("does not exist"));
        assert!(found.is_none());

        let ours = rendered(&d);
        let stored = [ours.clone()];
        let (f, found) = scaled_object_findings(&p, &stored, &d, &KserveOwner::None);
        assert!(f.iter().all(|f| f.severity == Severity::Ok), "{f:#?}");
        assert!(found.is_some());

        let mut foreign = ours.clone();
        foreign["metadata"]["labels"] = json!({});
        let stored = [foreign];
        let (f, found) = scaled_object_findings(&p, &stored, &d, &KserveOwner::None);
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].message.contains("not managed by"));
        assert!(found.is_some(), "a foreign one is still what KEDA runs");

        let keda_class = KserveOwner::Found {
            id: InferenceServiceId {
                name: "m".into(),
                uid: "i".into(),
            },
            class: Some("keda".into()),
        };
        let p = plan(&d, &keda_class, &cfg);
        let (f, _) = scaled_object_findings(&p, &[], &d, &keda_class);
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].message.contains("autoscalerClass"), "{}", f[0].message);
    }

    #[test]
    fn kserve_leftover_is_named() {
        let cfg = WebhookConfig::default();
        let d = deployment(opted_in_annotations());
        let external = KserveOwner::Found {
            id: InferenceServiceId {
                name: "isvc".into(),
                uid: "isvc-1".into(),
            },
            class: Some("external".into()),
        };
        let p = plan(&d, &external, &cfg);
        let leftover = json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "m", "namespace": "llm", "ownerReferences": [{
                "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                "name": "isvc", "uid": "isvc-1", "controller": true}]},
            "spec": {"scaleTargetRef": {"name": "m"}}
        });
        let (f, _) = scaled_object_findings(&p, &[leftover], &d, &external);
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].message.contains("KServe"), "{}", f[0].message);
    }

    #[test]
    fn drift_names_the_first_differing_field() {
        let d = deployment(opted_in_annotations());
        let ours = rendered(&d);
        let mut edited = ours.clone();
        edited["spec"]["maxReplicaCount"] = json!(9);
        edited["status"] = json!({"conditions": []});
        let p = plan(&d, &KserveOwner::None, &WebhookConfig::default());
        let stored = [edited];
        let (f, _) = scaled_object_findings(&p, &stored, &d, &KserveOwner::None);
        let sync = f
            .iter()
            .find(|f| f.check == Check::ScaledObjectSync)
            .unwrap();
        assert_eq!(sync.severity, Severity::Warning);
        assert!(
            sync.message.contains("/spec/maxReplicaCount"),
            "{}",
            sync.message
        );
    }

    #[test]
    fn first_difference_walks_like_is_applied() {
        let want = json!({"a": {"b": [1, {"c": "x"}]}, "n": null});
        assert_eq!(
            first_difference(
                &want,
                &json!({"a": {"b": [1, {"c": "x", "d": 2}]}, "z": 1}),
                String::new()
            ),
            None
        );
        assert_eq!(
            first_difference(&want, &json!({"a": {"b": [1, {"c": "y"}]}}), String::new()),
            Some("/a/b/1/c".into())
        );
        assert_eq!(
            first_difference(&want, &json!({"a": {"b": [1]}}), String::new()),
            Some("/a/b".into())
        );
        assert_eq!(
            first_difference(&want, &json!({}), String::new()),
            Some("/a".into())
        );
        assert_eq!(
            first_difference(&json!(1), &json!(2), String::new()),
            Some("/".into())
        );
    }

    fn hpa(name: &str, target: &str, kind: &str) -> HorizontalPodAutoscaler {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"maxReplicas": 3, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target}}
        }))
        .unwrap()
    }

    fn so(name: &str, target: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"scaleTargetRef": {"name": target}}})
    }

    #[test]
    fn competing_scaled_objects_and_hpas_are_named() {
        let ours = Some(("m", "keda-hpa-m"));
        let quiet = competing_findings(
            "m",
            ours,
            &[so("m", "m"), so("other", "x")],
            &[
                hpa("keda-hpa-m", "m", "Deployment"),
                hpa("h", "m", "StatefulSet"),
            ],
        );
        assert_eq!(quiet.severity, Severity::Ok);

        let f = competing_findings(
            "m",
            ours,
            &[so("m", "m"), so("hand-made", "m")],
            &[hpa("cpu", "m", "Deployment")],
        );
        assert_eq!(f.severity, Severity::Error);
        assert!(
            f.message.contains("ScaledObject hand-made"),
            "{}",
            f.message
        );
        assert!(f.message.contains("HPA cpu"), "{}", f.message);

        // Without ours, every scaler of the Deployment competes with the one to come.
        let f = competing_findings("m", None, &[so("m", "m")], &[]);
        assert_eq!(f.severity, Severity::Error);
    }
}
