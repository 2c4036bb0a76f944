//! What the reconciler should do for one Deployment: a pure function of the stored
//! Deployment, its InferenceService's autoscaler class (if KServe owns it) and the config.

use serde_json::{Value, json};

use crate::config::WebhookConfig;
use crate::mutate::injection_status::InjectionStatus;
use crate::mutate::mutate;
use crate::render::scaled_object::bounded_name;
use crate::workload::KSERVE_ISVC_LABEL;

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "llm-autoscale-webhook";

/// What KServe says about a Deployment it created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KserveOwner {
    /// Not a KServe predictor.
    None,
    /// The InferenceService exists; its `serving.kserve.io/autoscalerClass` (if set).
    Class(Option<String>),
    /// The label names an InferenceService that cannot be found.
    Missing,
}

/// The sidecar on the stored Deployment compared with what the webhook would inject now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SidecarState {
    /// Nothing to inject (not opted in, or no sidecar for this backend/mode) and none there.
    NotExpected,
    /// Injected and current.
    UpToDate,
    /// Opted in but never injected (created before the webhook, or while it was down).
    Missing,
    /// Injected, but the webhook would now render another container.
    Stale(StaleCause),
    /// The opt-in is gone but the sidecar is still there.
    Leftover,
}

/// Why an injected sidecar differs from what the webhook renders now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleCause {
    /// Rendered from the same annotations and configuration by another webhook version.
    OlderWebhook,
    /// The annotations, images, ports or the webhook's configuration changed since.
    Drift,
}

impl SidecarState {
    pub fn as_str(self) -> &'static str {
        match self {
            SidecarState::NotExpected => "not-expected",
            SidecarState::UpToDate => "up-to-date",
            SidecarState::Missing => "missing",
            SidecarState::Stale(_) => "stale",
            SidecarState::Leftover => "leftover",
        }
    }

    /// The Event (reason, message) that reports this state, if it needs reporting.
    pub fn event(self) -> Option<(&'static str, &'static str)> {
        match self {
            SidecarState::Missing => Some((
                "SidecarMissing",
                "opted in to llm-autoscale but the collector sidecar was never injected (created before the webhook, or while it was unreachable): roll the Deployment, e.g. kubectl rollout restart",
            )),
            SidecarState::Stale(StaleCause::OlderWebhook) => Some((
                "SidecarStale",
                "the collector sidecar was rendered by an older llm-autoscale-webhook from the same configuration; the current one renders it differently: roll the Deployment when convenient to pick up the change",
            )),
            SidecarState::Stale(StaleCause::Drift) => Some((
                "SidecarStale",
                "configuration drift: the annotations, images, ports or the webhook's configuration changed since the collector sidecar was injected: roll the Deployment to refresh it",
            )),
            SidecarState::Leftover => Some((
                "SidecarLeftover",
                "the llm-autoscale opt-in is gone but its collector sidecar is still in the pod template: apply the Deployment again to remove it",
            )),
            SidecarState::UpToDate | SidecarState::NotExpected => None,
        }
    }
}

/// Why the stored sidecar (whose status is `stored`) differs from a render from `inputs`.
fn stale_cause(stored: Option<&InjectionStatus>, inputs: Option<&str>) -> StaleCause {
    match (stored.map(|s| s.inputs.as_str()), inputs) {
        // Written before the status recorded its inputs: by an older webhook.
        (Some(""), _) => StaleCause::OlderWebhook,
        (Some(a), Some(b)) if a == b => StaleCause::OlderWebhook,
        _ => StaleCause::Drift,
    }
}

/// The reconciler's decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Server-side apply this ScaledObject (JSON with its ownerReference).
    Apply(Value),
    /// Delete the ScaledObject of this name if this product manages it for this Deployment.
    DeleteManaged(String),
    /// Leave everything as it is, for this reason.
    Skip(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub action: Action,
    pub sidecar: SidecarState,
    /// Invalid annotations, as the webhook would have said them.
    pub invalid: Option<String>,
    pub warnings: Vec<String>,
}

/// The name of the InferenceService that owns a Deployment, from KServe's label.
pub fn inference_service_of(deployment: &Value) -> Option<String> {
    deployment
        .pointer("/metadata/labels")
        .and_then(|l| l.get(KSERVE_ISVC_LABEL))
        .and_then(Value::as_str)
        .map(str::to_string)
}

pub fn plan(deployment: &Value, kserve: &KserveOwner, cfg: &WebhookConfig) -> Plan {
    let name = deployment
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let uid = deployment
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let so_name = bounded_name(name, 63);
    let stored = InjectionStatus::read(deployment);
    let injected = stored.is_some();

    let m = match mutate(deployment, cfg) {
        Ok(m) => m,
        Err(invalid) => {
            return Plan {
                action: Action::Skip("invalid annotations".into()),
                sidecar: if injected {
                    SidecarState::Stale(StaleCause::Drift)
                } else {
                    SidecarState::Missing
                },
                invalid: Some(invalid.to_string()),
                warnings: invalid.warnings,
            };
        }
    };
    let up_to_date = m.patch.0.is_empty();
    let Some(so) = m.scaled_object else {
        return Plan {
            action: Action::DeleteManaged(so_name),
            sidecar: if up_to_date {
                SidecarState::NotExpected
            } else {
                SidecarState::Leftover
            },
            invalid: None,
            warnings: m.warnings,
        };
    };
    let sidecar = match (up_to_date, injected) {
        (true, true) => SidecarState::UpToDate,
        (true, false) => SidecarState::NotExpected,
        (false, false) => SidecarState::Missing,
        (false, true) => {
            SidecarState::Stale(stale_cause(stored.as_ref(), m.sidecar_inputs.as_deref()))
        }
    };
    let skip = match kserve {
        KserveOwner::None => None,
        KserveOwner::Class(Some(c)) if c == "external" => None,
        KserveOwner::Class(c) => Some(format!(
            "its InferenceService has serving.kserve.io/autoscalerClass {}, not \"external\": KServe manages its scaling (apply the InferenceService again so the webhook can switch it)",
            c.as_deref()
                .map(|c| format!("{c:?}"))
                .unwrap_or_else(|| "unset".into())
        )),
        KserveOwner::Missing => Some(
            "it is labelled as a KServe predictor but its InferenceService was not found".into(),
        ),
    };
    let action = match skip {
        Some(reason) => Action::Skip(reason),
        None => {
            let mut v = serde_json::to_value(&so).unwrap_or(Value::Null);
            v["metadata"]["ownerReferences"] = json!([{
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": name,
                "uid": uid,
                "controller": true,
            }]);
            Action::Apply(v)
        }
    };
    Plan {
        action,
        sidecar,
        invalid: None,
        warnings: m.warnings,
    }
}

/// Is this ScaledObject one this product manages for the Deployment with this uid?
pub fn is_managed_for(scaled_object: &Value, deployment_uid: &str) -> bool {
    use crate::render::scaled_object::{MANAGED_BY, MANAGED_BY_LABEL};
    let managed = scaled_object
        .pointer("/metadata/labels")
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .and_then(Value::as_str)
        == Some(MANAGED_BY);
    let owned = scaled_object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("uid").and_then(Value::as_str) == Some(deployment_uid))
        });
    managed && owned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(annotations: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "m", "namespace": "llm", "uid": "u-1", "annotations": annotations},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0"}]}}}
        })
    }

    fn opted_in() -> Value {
        deployment(
            json!({"llm-autoscale.io/enabled": "true", "llm-autoscale.io/max-replicas": "4"}),
        )
    }

    #[test]
    fn opted_in_without_sidecar_applies_and_reports_missing() {
        let p = plan(&opted_in(), &KserveOwner::None, &WebhookConfig::default());
        assert_eq!(p.sidecar, SidecarState::Missing);
        let Action::Apply(so) = p.action else {
            panic!("{:?}", p.action)
        };
        assert_eq!(so["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(so["spec"]["scaleTargetRef"]["name"], "m");
    }

    #[test]
    fn injected_deployment_is_up_to_date_and_config_change_is_stale() {
        let cfg = WebhookConfig::default();
        let injected = mutate(&opted_in(), &cfg).unwrap().patched;
        assert_eq!(
            plan(&injected, &KserveOwner::None, &cfg).sidecar,
            SidecarState::UpToDate
        );
        let newer = WebhookConfig {
            collector_image: "otel/opentelemetry-collector-contrib:0.162.0".into(),
            ..WebhookConfig::default()
        };
        assert_eq!(
            plan(&injected, &KserveOwner::None, &newer).sidecar,
            SidecarState::Stale(StaleCause::Drift)
        );
    }

    #[test]
    fn opt_out_deletes_and_reports_leftover_sidecar() {
        let cfg = WebhookConfig::default();
        let mut injected = mutate(&opted_in(), &cfg).unwrap().patched;
        injected["metadata"]["annotations"] = json!({});
        let p = plan(&injected, &KserveOwner::None, &cfg);
        assert_eq!(p.action, Action::DeleteManaged("m".into()));
        assert_eq!(p.sidecar, SidecarState::Leftover);
        let p = plan(&deployment(json!({})), &KserveOwner::None, &cfg);
        assert_eq!(p.sidecar, SidecarState::NotExpected);
    }

    #[test]
    fn kserve_predictor_waits_for_the_external_class() {
        let cfg = WebhookConfig::default();
        let d = opted_in();
        for owner in [
            KserveOwner::Class(Some("keda".into())),
            KserveOwner::Class(None),
            KserveOwner::Missing,
        ] {
            assert!(
                matches!(plan(&d, &owner, &cfg).action, Action::Skip(_)),
                "{owner:?}"
            );
        }
        assert!(matches!(
            plan(&d, &KserveOwner::Class(Some("external".into())), &cfg).action,
            Action::Apply(_)
        ));
    }

    #[test]
    fn invalid_annotations_skip_with_the_message() {
        let d = deployment(json!({"llm-autoscale.io/enabled": "true"}));
        let p = plan(&d, &KserveOwner::None, &WebhookConfig::default());
        assert!(p.invalid.unwrap().contains("max-replicas"));
    }

    #[test]
    fn managed_means_labelled_and_owned() {
        let cfg = WebhookConfig::default();
        let Action::Apply(so) = plan(&opted_in(), &KserveOwner::None, &cfg).action else {
            panic!()
        };
        assert!(is_managed_for(&so, "u-1"));
        assert!(!is_managed_for(&so, "u-2"));
        let mut foreign = so.clone();
        foreign["metadata"]["labels"] = json!({});
        assert!(!is_managed_for(&foreign, "u-1"));
    }
}
