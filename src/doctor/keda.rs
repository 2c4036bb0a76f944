//! Findings about KEDA: installed and running, and what it says about the workload's
//! ScaledObject and HPA — with KEDA's and the HPA controller's own reasons.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use serde_json::Value;

use super::finding::{Check, Finding, Severity};
use super::snapshot::{ApiServiceSeen, KedaSeen};
use crate::keda::ScaledObject;
use crate::keda::names::DEFAULT_HPA_PREFIX;

/// `autoscaling.keda.sh/paused` and `.../paused-replicas` stop KEDA's scale loop and delete the
/// HPA (kedacore/keda v2.21.0 apis/keda/v1alpha1/scaledobject_types.go `PausedAnnotation`,
/// `PausedReplicasAnnotation`; controllers/keda/scaledobject_controller.go `handlePause`).
pub const PAUSED: &str = "autoscaling.keda.sh/paused";
pub const PAUSED_REPLICAS: &str = "autoscaling.keda.sh/paused-replicas";

/// One entry of a status' `conditions` (KEDA's `Condition`, the HPA's
/// `HorizontalPodAutoscalerCondition`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Condition {
    pub status: String,
    pub reason: String,
    pub message: String,
}

impl Condition {
    fn describe(&self) -> String {
        match (self.reason.is_empty(), self.message.is_empty()) {
            (true, true) => self.status.clone(),
            (false, true) => format!("{} ({})", self.status, self.reason),
            (_, false) => format!("{} ({}): {}", self.status, self.reason, self.message),
        }
    }
}

/// The condition of this type in an object's `status.conditions`.
pub fn condition(object: &Value, kind: &str) -> Option<Condition> {
    let found = object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))?;
    let text = |k: &str| {
        found
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Some(Condition {
        status: text("status"),
        reason: text("reason"),
        message: text("message"),
    })
}

/// KEDA installed: its CRD, its operator, its metrics adapter.
pub fn cluster_findings(k: &KedaSeen) -> Vec<Finding> {
    let mut out = Vec::new();
    out.push(if k.crd {
        Finding::ok(
            Check::KedaCrd,
            "KEDA",
            "CRD scaledobjects.keda.sh is installed",
        )
    } else {
        Finding::new(Check::KedaCrd, Severity::Error, "KEDA")
            .saying("CRD scaledobjects.keda.sh is not installed: nothing can scale these workloads")
            .fix("install KEDA (helm install keda kedacore/keda -n keda --create-namespace)")
    });
    out.push(operator_finding(k));
    out.push(match &k.metrics_api {
        ApiServiceSeen::Available => Finding::ok(
            Check::KedaMetricsApi,
            "KEDA",
            "APIService v1beta1.external.metrics.k8s.io is Available",
        ),
        ApiServiceSeen::Missing => Finding::new(Check::KedaMetricsApi, Severity::Error, "KEDA")
            .saying("APIService v1beta1.external.metrics.k8s.io does not exist: HPAs cannot read KEDA's metrics, so nothing scales between 1 and max")
            .fix("install KEDA with its metrics server (keda-operator-metrics-apiserver)"),
        ApiServiceSeen::Unavailable(why) => {
            Finding::new(Check::KedaMetricsApi, Severity::Error, "KEDA")
                .saying(format!("APIService v1beta1.external.metrics.k8s.io is not Available: {why}"))
                .fix("check KEDA's metrics server pods and logs (kubectl -n keda get pods)")
        }
    });
    out
}

fn operator_finding(k: &KedaSeen) -> Finding {
    let ready: Vec<String> = k
        .operators
        .iter()
        .filter(|d| d.ready > 0)
        .map(|d| format!("{}/{}", d.namespace, d.name))
        .collect();
    if !ready.is_empty() {
        return Finding::ok(
            Check::KedaOperator,
            "KEDA",
            format!(
                "operator Deployment {} has ready replicas",
                ready.join(", ")
            ),
        );
    }
    match k.operators.first() {
        Some(d) => Finding::new(Check::KedaOperator, Severity::Error, "KEDA")
            .saying(format!(
                "operator Deployment {}/{} has {} of {} replicas ready: ScaledObjects are not reconciled",
                d.namespace, d.name, d.ready, d.wanted
            ))
            .fix(format!("kubectl -n {} describe deployment {}; check its pods' logs", d.namespace, d.name)),
        None => Finding::new(Check::KedaOperator, Severity::Info, "KEDA")
            .saying("no Deployment labelled app.kubernetes.io/name=keda-operator: the operator may run under another name or outside the cluster; the ScaledObjects' conditions below show whether it works"),
    }
}

/// The name of the HPA KEDA made for `so`: the status' `hpaName`, else the configured name,
/// else KEDA's default `keda-hpa-<name>` (controllers/keda/hpa.go `getHPAName`). The
/// product sets the configured name where the default would be too long
/// ([`crate::keda::names::hpa_name_for`], at rendering).
pub fn hpa_name(so: &ScaledObject, stored: &Value) -> String {
    if let Some(n) = stored
        .pointer("/status/hpaName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return n.to_string();
    }
    so.custom_hpa_name()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{DEFAULT_HPA_PREFIX}{}", so.name()))
}

fn is_paused(stored: &Value) -> bool {
    let annotations = stored.pointer("/metadata/annotations");
    let paused = annotations
        .and_then(|a| a.get(PAUSED))
        .and_then(Value::as_str)
        .is_some_and(|v| v == "true");
    paused || annotations.and_then(|a| a.get(PAUSED_REPLICAS)).is_some()
}

/// What KEDA says about the ScaledObject: Ready, Active, Fallback, Paused.
pub fn scaled_object_findings(stored: &Value) -> Vec<Finding> {
    let name = stored
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let ns = stored
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let subject = format!("ScaledObject {name}");
    let mut out = vec![ready_finding(stored, &subject)];
    if let Some(f) = active_finding(stored, &subject) {
        out.push(f);
    }
    if let Some(c) = condition(stored, "Fallback").filter(|c| c.status == "True") {
        out.push(
            Finding::new(Check::ScaledObjectFallback, Severity::Error, &subject)
                .saying(format!(
                    "KEDA runs the fallback replica count, not the metric: its scaler failed failureThreshold times in a row. Fallback {}",
                    c.describe()
                ))
                .fix(format!("see the scaler's error: kubectl -n {ns} describe scaledobject {name}, and the metrics-path findings below")),
        );
    }
    let paused = condition(stored, "Paused").is_some_and(|c| c.status == "True");
    if paused || is_paused(stored) {
        out.push(
            Finding::new(Check::ScaledObjectPaused, Severity::Error, &subject)
                .saying("paused: KEDA stops scaling it (and deletes its HPA while paused or paused-replicas is set)")
                .fix(format!(
                    "kubectl -n {ns} annotate scaledobject {name} {PAUSED}- {PAUSED_REPLICAS}- autoscaling.keda.sh/paused-scale-in- autoscaling.keda.sh/paused-scale-out-"
                )),
        );
    }
    out
}

fn ready_finding(stored: &Value, subject: &str) -> Finding {
    match condition(stored, "Ready") {
        Some(c) if c.status == "True" => {
            Finding::ok(Check::ScaledObjectReady, subject, format!("Ready {}", c.describe()))
        }
        Some(c) if c.status == "False" => {
            Finding::new(Check::ScaledObjectReady, Severity::Error, subject)
                .saying(format!("KEDA says Ready {}", c.describe()))
                .fix("fix what KEDA names (a scaler it cannot reach, a target it cannot scale, a trigger it refuses); kubectl describe scaledobject shows its Events")
        }
        _ => Finding::new(Check::ScaledObjectReady, Severity::Error, subject)
            .saying("KEDA's operator has not reconciled it (no Ready condition, or Unknown)")
            .fix("check that KEDA's operator runs (kubectl -n keda get pods) and read its logs"),
    }
}

fn active_finding(stored: &Value, subject: &str) -> Option<Finding> {
    let c = condition(stored, "Active")?;
    match c.status.as_str() {
        "True" => Some(Finding::ok(
            Check::ScaledObjectActive,
            subject,
            format!("Active {}", c.describe()),
        )),
        "False" => Some(
            Finding::new(Check::ScaledObjectActive, Severity::Info, subject).saying(format!(
                "not active: no trigger is above its activation value, so KEDA holds the minimum (or idle) replica count. Active {}",
                c.describe()
            )),
        ),
        _ => None,
    }
}

/// Whether KEDA should have an HPA for this ScaledObject now (Ready and not paused).
fn expects_hpa(stored: &Value) -> bool {
    condition(stored, "Ready").is_some_and(|c| c.status == "True")
        && !is_paused(stored)
        && condition(stored, "Paused").is_none_or(|c| c.status != "True")
}

/// The HPA KEDA made for the ScaledObject: present, and what its conditions say.
pub fn hpa_findings(
    so: &ScaledObject,
    stored: &Value,
    hpas: &[HorizontalPodAutoscaler],
) -> Vec<Finding> {
    let name = hpa_name(so, stored);
    let subject = format!("HPA {name}");
    let Some(hpa) = hpas
        .iter()
        .find(|h| h.metadata.name.as_deref() == Some(name.as_str()))
    else {
        if !expects_hpa(stored) {
            return Vec::new();
        }
        return vec![Finding::new(Check::Hpa, Severity::Error, subject)
            .saying("KEDA reports the ScaledObject Ready but its HPA does not exist: nothing scales between 1 and max")
            .fix("check KEDA's operator logs; it recreates the HPA on its next reconcile")];
    };
    let mut out = vec![Finding::ok(Check::Hpa, &subject, "exists")];
    out.extend(hpa_condition_findings(hpa, &subject));
    out
}

fn hpa_condition_findings(hpa: &HorizontalPodAutoscaler, subject: &str) -> Vec<Finding> {
    let conditions = hpa
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for c in &conditions {
        let cond = Condition {
            status: c.status.clone(),
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
        };
        let what = format!("{} {}", c.type_, cond.describe());
        match (c.type_.as_str(), c.status.as_str()) {
            ("AbleToScale", "False") => out.push(
                Finding::new(Check::HpaConditions, Severity::Error, subject)
                    .saying(format!("the HPA controller cannot scale the target: {what}"))
                    .fix("check the Deployment's scale subresource and the HPA's Events"),
            ),
            // KEDA took the target to zero: the HPA idles on purpose
            // (ScaledObjectConditionHPAScalingDisabledReason in KEDA's condition_types.go).
            ("ScalingActive", "False") if cond.reason == "ScalingDisabled" => out.push(
                Finding::new(Check::HpaConditions, Severity::Info, subject)
                    .saying(format!("scaled to zero by KEDA: {what}")),
            ),
            ("ScalingActive", "False") => out.push(
                Finding::new(Check::HpaConditions, Severity::Error, subject)
                    .saying(format!("the HPA cannot compute a replica count: {what}"))
                    .fix("a FailedGetExternalMetric reason means KEDA's metrics server cannot give the trigger's value: see keda-metrics-api and the metrics-path findings"),
            ),
            ("ScalingLimited", "True") => out.push(
                Finding::new(Check::HpaConditions, Severity::Info, subject)
                    .saying(format!("held at a bound: {what}")),
            ),
            _ => {}
        }
    }
    if out.iter().all(|f| f.severity < Severity::Error) && !conditions.is_empty() {
        out.insert(
            0,
            Finding::ok(
                Check::HpaConditions,
                subject,
                "AbleToScale and ScalingActive hold",
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::snapshot::DeploymentReadiness;
    use serde_json::json;

    fn so_with(conditions: Value, annotations: Value) -> Value {
        json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "m", "namespace": "llm", "annotations": annotations},
            "spec": {"scaleTargetRef": {"name": "m"}, "triggers": []},
            "status": {"conditions": conditions}
        })
    }

    fn cond(kind: &str, status: &str, reason: &str, message: &str) -> Value {
        json!({"type": kind, "status": status, "reason": reason, "message": message})
    }

    fn ready() -> Value {
        json!([
            cond(
                "Ready",
                "True",
                "ScaledObjectReady",
                "ScaledObject is defined correctly and is ready for scaling"
            ),
            cond(
                "Active",
                "True",
                "ScalerActive",
                "Scaling is performed because triggers are active"
            ),
            cond(
                "Fallback",
                "False",
                "NoFallbackFound",
                "No fallbacks are active on this scaled object"
            ),
            cond("Paused", "False", "", ""),
        ])
    }

    fn severities(f: &[Finding], check: Check) -> Vec<Severity> {
        f.iter()
            .filter(|f| f.check == check)
            .map(|f| f.severity)
            .collect()
    }

    #[test]
    fn a_ready_active_scaled_object_is_all_ok() {
        let f = scaled_object_findings(&so_with(ready(), json!({})));
        assert!(f.iter().all(|f| f.severity == Severity::Ok), "{f:#?}");
        assert!(f[0].message.contains("ScaledObjectReady"));
    }

    #[test]
    fn ready_false_carries_kedas_reason_and_message() {
        let so = so_with(
            json!([cond(
                "Ready",
                "False",
                "ScaledObjectCheckFailed",
                "failed to ensure HPA is correctly created for ScaledObject"
            )]),
            json!({}),
        );
        let f = scaled_object_findings(&so);
        assert_eq!(
            severities(&f, Check::ScaledObjectReady),
            vec![Severity::Error]
        );
        assert!(f[0].message.contains("ScaledObjectCheckFailed"));
        assert!(f[0].message.contains("failed to ensure HPA"));
    }

    #[test]
    fn not_reconciled_is_an_error() {
        for conditions in [json!([]), json!([cond("Ready", "Unknown", "", "")])] {
            let f = scaled_object_findings(&so_with(conditions, json!({})));
            assert_eq!(
                severities(&f, Check::ScaledObjectReady),
                vec![Severity::Error]
            );
            assert!(f[0].message.contains("not reconciled"));
        }
    }

    #[test]
    fn inactive_is_information() {
        let so = so_with(
            json!([
                cond("Ready", "True", "ScaledObjectReady", ""),
                cond(
                    "Active",
                    "False",
                    "ScalerNotActive",
                    "Scaling is not performed because triggers are not active"
                ),
            ]),
            json!({}),
        );
        let f = scaled_object_findings(&so);
        assert_eq!(
            severities(&f, Check::ScaledObjectActive),
            vec![Severity::Info]
        );
        assert!(f[1].message.contains("ScalerNotActive"));
    }

    #[test]
    fn fallback_active_blocks_with_kedas_message() {
        let so = so_with(
            json!([
                cond("Ready", "False", "ScaledObjectCheckFailed", "x"),
                cond(
                    "Fallback",
                    "True",
                    "FallbackExists",
                    "At least one trigger is falling back on this scaled object"
                ),
            ]),
            json!({}),
        );
        let f = scaled_object_findings(&so);
        assert_eq!(
            severities(&f, Check::ScaledObjectFallback),
            vec![Severity::Error]
        );
        let fb = f
            .iter()
            .find(|f| f.check == Check::ScaledObjectFallback)
            .unwrap();
        assert!(fb.message.contains("FallbackExists"), "{}", fb.message);
    }

    #[test]
    fn paused_by_condition_or_annotation_blocks() {
        let by_condition = so_with(
            json!([
                cond("Ready", "True", "ScaledObjectReady", ""),
                cond(
                    "Paused",
                    "True",
                    "ScaledObjectPaused",
                    "ScaledObject is paused"
                )
            ]),
            json!({}),
        );
        let by_annotation = so_with(ready(), json!({PAUSED: "true"}));
        let by_replicas = so_with(ready(), json!({PAUSED_REPLICAS: "2"}));
        for so in [by_condition, by_annotation, by_replicas] {
            let f = scaled_object_findings(&so);
            assert_eq!(
                severities(&f, Check::ScaledObjectPaused),
                vec![Severity::Error]
            );
            let p = f
                .iter()
                .find(|f| f.check == Check::ScaledObjectPaused)
                .unwrap();
            assert!(p.fix.contains("autoscaling.keda.sh/paused-"), "{}", p.fix);
        }
        let not_paused = so_with(ready(), json!({PAUSED: "false"}));
        assert!(
            severities(
                &scaled_object_findings(&not_paused),
                Check::ScaledObjectPaused
            )
            .is_empty()
        );
    }

    fn typed(v: &Value) -> ScaledObject {
        serde_json::from_value(v.clone()).unwrap()
    }

    fn hpa(name: &str, conditions: Value) -> HorizontalPodAutoscaler {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "llm"},
            "spec": {"maxReplicas": 4, "scaleTargetRef": {"kind": "Deployment", "name": "m", "apiVersion": "apps/v1"}},
            "status": {"desiredReplicas": 1, "conditions": conditions}
        }))
        .unwrap()
    }

    #[test]
    fn the_hpa_name_follows_status_then_config_then_keda_default() {
        let so = so_with(ready(), json!({}));
        assert_eq!(hpa_name(&typed(&so), &so), "keda-hpa-m");
        let mut custom = so.clone();
        custom["spec"]["advanced"] = json!({"horizontalPodAutoscalerConfig": {"name": "mine"}});
        assert_eq!(hpa_name(&typed(&custom), &custom), "mine");
        custom["status"]["hpaName"] = json!("from-status");
        assert_eq!(hpa_name(&typed(&custom), &custom), "from-status");
    }

    #[test]
    fn a_missing_hpa_blocks_only_when_keda_should_have_made_one() {
        let so = so_with(ready(), json!({}));
        let f = hpa_findings(&typed(&so), &so, &[hpa("other", json!([]))]);
        assert_eq!(severities(&f, Check::Hpa), vec![Severity::Error]);
        let paused = so_with(ready(), json!({PAUSED: "true"}));
        assert!(hpa_findings(&typed(&paused), &paused, &[]).is_empty());
        let unready = so_with(json!([]), json!({}));
        assert!(hpa_findings(&typed(&unready), &unready, &[]).is_empty());
    }

    #[test]
    fn hpa_conditions_with_the_controllers_reasons() {
        let so = so_with(ready(), json!({}));
        let healthy = hpa(
            "keda-hpa-m",
            json!([
                {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"},
                {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound"},
            ]),
        );
        let f = hpa_findings(&typed(&so), &so, &[healthy]);
        assert_eq!(severities(&f, Check::HpaConditions), vec![Severity::Ok]);

        let no_metric = hpa(
            "keda-hpa-m",
            json!([
                {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale"},
                {"type": "ScalingActive", "status": "False", "reason": "FailedGetExternalMetric",
                 "message": "the HPA was unable to compute the replica count: unable to get external metric"},
            ]),
        );
        let f = hpa_findings(&typed(&so), &so, &[no_metric]);
        assert_eq!(severities(&f, Check::HpaConditions), vec![Severity::Error]);
        assert!(
            f.iter()
                .any(|f| f.message.contains("FailedGetExternalMetric"))
        );

        let at_zero = hpa(
            "keda-hpa-m",
            json!([
                {"type": "ScalingActive", "status": "False", "reason": "ScalingDisabled"},
                {"type": "ScalingLimited", "status": "True", "reason": "TooFewReplicas"},
            ]),
        );
        let f = hpa_findings(&typed(&so), &so, &[at_zero]);
        assert_eq!(
            severities(&f, Check::HpaConditions),
            vec![Severity::Ok, Severity::Info, Severity::Info]
        );

        let stuck = hpa(
            "keda-hpa-m",
            json!([{"type": "AbleToScale", "status": "False", "reason": "FailedGetScale"}]),
        );
        let f = hpa_findings(&typed(&so), &so, &[stuck]);
        assert_eq!(severities(&f, Check::HpaConditions), vec![Severity::Error]);
    }

    #[test]
    fn keda_installed_or_not() {
        let healthy = KedaSeen {
            crd: true,
            operators: vec![DeploymentReadiness {
                namespace: "keda".into(),
                name: "keda-operator".into(),
                ready: 1,
                wanted: 1,
            }],
            metrics_api: ApiServiceSeen::Available,
            operator_ca: vec![],
        };
        assert!(
            cluster_findings(&healthy)
                .iter()
                .all(|f| f.severity == Severity::Ok)
        );

        let mut down = healthy.clone();
        down.operators[0].ready = 0;
        assert_eq!(
            severities(&cluster_findings(&down), Check::KedaOperator),
            vec![Severity::Error]
        );

        let mut elsewhere = healthy.clone();
        elsewhere.operators.clear();
        assert_eq!(
            severities(&cluster_findings(&elsewhere), Check::KedaOperator),
            vec![Severity::Info]
        );

        let bare = KedaSeen::default();
        let f = cluster_findings(&bare);
        assert_eq!(severities(&f, Check::KedaCrd), vec![Severity::Error]);
        assert_eq!(severities(&f, Check::KedaMetricsApi), vec![Severity::Error]);

        let mut unavailable = healthy;
        unavailable.metrics_api =
            ApiServiceSeen::Unavailable("FailedDiscoveryCheck: no response".into());
        let f = cluster_findings(&unavailable);
        assert!(f.iter().any(
            |f| f.check == Check::KedaMetricsApi && f.message.contains("FailedDiscoveryCheck")
        ));
    }
}
