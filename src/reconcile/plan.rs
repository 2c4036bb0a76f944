//! What the reconciler should do for one Deployment: a pure function of the stored
//! Deployment, its InferenceService's autoscaler class (if KServe owns it) and the config —
//! for its ScaledObject and, with HTTP wake, its InterceptorRoute.

use serde_json::{Value, json};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::annotations::HTTP_WAKE_TRIGGER;
use crate::config::WebhookConfig;
use crate::keda::ScaledObject;
use crate::keda::names::{MANAGED_BY, MANAGED_BY_LABEL, MAX_NAME, bounded_name};
use crate::mutate::injection_status::InjectionStatus;
use crate::mutate::mutate;
use crate::workload::KSERVE_ISVC_LABEL;

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "llm-autoscale-webhook";

/// What KServe says about a Deployment it created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KserveOwner {
    /// Not a KServe predictor.
    None,
    /// The InferenceService exists: who it is (for the ownerReferences KServe sets) and its
    /// `serving.kserve.io/autoscalerClass` (if set).
    Found {
        id: InferenceServiceId,
        class: Option<String>,
    },
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

/// The reconciler's decision for one object (the ScaledObject, or the InterceptorRoute).
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Server-side apply this object (JSON with its ownerReference).
    Apply(Value),
    /// Delete the object of this name if this product manages it for this Deployment.
    DeleteManaged(String),
    /// Leave everything as it is, for this reason.
    Skip(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// For the ScaledObject.
    pub action: Action,
    /// For the KEDA HTTP add-on's InterceptorRoute (HTTP wake); applied before the ScaledObject
    /// whose `external-push` trigger names it.
    pub route: Action,
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

/// The plan for a Deployment whose annotations are invalid: nothing applied, the message for
/// an Event.
fn invalid(e: &crate::mutate::MutateError, injected: bool) -> Plan {
    Plan {
        action: Action::Skip("invalid annotations".into()),
        route: Action::Skip("invalid annotations".into()),
        sidecar: if injected {
            SidecarState::Stale(StaleCause::Drift)
        } else {
            SidecarState::Missing
        },
        invalid: Some(e.to_string()),
        warnings: e.warnings().to_vec(),
    }
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
    let so_name = bounded_name(name, MAX_NAME);
    let stored = InjectionStatus::read(deployment);
    let injected = stored.is_some();

    let m = match mutate(deployment, cfg) {
        Ok(m) => m,
        Err(e) => return invalid(&e, injected),
    };
    // Only the pod template says whether the sidecar is current: the label the webhook also
    // sets (metadata) restarts nothing.
    let up_to_date = m.patched.pointer("/spec/template") == deployment.pointer("/spec/template");
    let Some(so) = m.scaled_object else {
        return Plan {
            action: Action::DeleteManaged(so_name.clone()),
            route: Action::DeleteManaged(so_name),
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
    let (action, route) = match kserve_skip(kserve) {
        Some(reason) => (Action::Skip(reason.clone()), Action::Skip(reason)),
        None => (
            owned_by(&so, name, uid),
            match &m.interceptor_route {
                Some(r) => owned_by(r, name, uid),
                None => Action::DeleteManaged(so_name),
            },
        ),
    };
    Plan {
        action,
        route,
        sidecar,
        invalid: None,
        warnings: m.warnings,
    }
}

/// Why KServe, not this product, scales the predictor; `None` when it is ours to scale.
fn kserve_skip(kserve: &KserveOwner) -> Option<String> {
    match kserve {
        KserveOwner::None => None,
        KserveOwner::Found { class: Some(c), .. } if c == "external" => None,
        KserveOwner::Found { class: c, .. } => Some(format!(
            "its InferenceService has serving.kserve.io/autoscalerClass {}, not \"external\": KServe manages its scaling (apply the InferenceService again so the webhook can switch it)",
            c.as_deref()
                .map(|c| format!("{c:?}"))
                .unwrap_or_else(|| "unset".into())
        )),
        KserveOwner::Missing => Some(
            "it is labelled as a KServe predictor but its InferenceService was not found".into(),
        ),
    }
}

/// Apply the rendered object, controlled by the Deployment (deleted with it); a rendering
/// that does not serialise is skipped with the reason, never applied as `null`.
fn owned_by(object: &impl serde::Serialize, name: &str, uid: &str) -> Action {
    let mut v = match serde_json::to_value(object) {
        Ok(v) => v,
        Err(e) => return Action::Skip(format!("the rendered object does not serialise: {e}")),
    };
    let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Action::Skip("the rendered object has no metadata".into());
    };
    meta.insert(
        "ownerReferences".into(),
        json!([{
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
            "uid": uid,
            "controller": true,
        }]),
    );
    Action::Apply(v)
}

/// Whether the InterceptorRoute action needs the route looked up (in its store, or with a GET).
/// Applying one always does; deleting one only when the stored ScaledObject carries the HTTP
/// wake trigger (the route is made with it, and deleted before it), so a Deployment without
/// HTTP wake costs no extra lookup.
pub fn route_needs_reconcile(route: &Action, stored_scaled_object: Option<&ScaledObject>) -> bool {
    match route {
        Action::Apply(_) => true,
        Action::DeleteManaged(_) => stored_scaled_object
            .is_some_and(|so| so.spec.triggers.iter().any(|t| t.name == HTTP_WAKE_TRIGGER)),
        Action::Skip(_) => false,
    }
}

/// Whether the stored object already holds every field of the rendered one with the same
/// value (fields others set, such as KEDA's pause annotation or defaults, are ignored), so a
/// server-side apply would change nothing and is not sent. Lists must match element by
/// element; a `null` in the rendering asks for nothing.
pub fn is_applied(rendered: &Value, stored: &Value) -> bool {
    match (rendered, stored) {
        (Value::Null, _) => true,
        (Value::Object(want), Value::Object(have)) => want
            .iter()
            .all(|(k, v)| v.is_null() || have.get(k).is_some_and(|h| is_applied(v, h))),
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| is_applied(w, h))
        }
        (want, have) => want == have,
    }
}

/// Is this object (ScaledObject or InterceptorRoute, by its metadata) one this product
/// manages for the Deployment with this uid?
pub fn is_managed_for(meta: &ObjectMeta, deployment_uid: &str) -> bool {
    labelled_ours(meta)
        && meta
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.uid == deployment_uid)
}

fn labelled_ours(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGED_BY)
}

/// An InferenceService as KServe names it in the ownerReferences it sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InferenceServiceId {
    pub name: String,
    pub uid: String,
}

/// Who holds the existing ScaledObject of the name this product applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// Managed by this product for this Deployment: apply over it.
    Us,
    /// The one KServe created while the InferenceService had autoscalerClass `keda`, left
    /// behind now that the class is `external`: delete it, then apply ours.
    KserveLeftover,
    /// Anyone else's: never touched.
    Foreign,
}

/// Decides who holds `existing`. KServe v0.20.0 names its ScaledObject after the predictor
/// Deployment (`componentMeta.Name`, i.e. `<isvc>-predictor`, like ours) and makes the
/// InferenceService its controller (`SetControllerReferences` in
/// `pkg/controller/v1beta1/inferenceservice/reconcilers/keda/keda_reconciler.go`, called from
/// `components/predictor.go`). With any class but `keda`, `autoscaler/autoscaler_reconciler.go`
/// builds the HPA reconciler instead, and the KEDA reconciler (the only code that deletes a
/// ScaledObject, and only when the InferenceService is stopped) never runs again: the old
/// ScaledObject stays for ever. It is KServe's leftover only when the class is `external`
/// now, the InferenceService is its controller (name and uid), and this product does not
/// manage it.
pub fn holder_of(existing: &ObjectMeta, deployment_uid: &str, kserve: &KserveOwner) -> Holder {
    if is_managed_for(existing, deployment_uid) {
        return Holder::Us;
    }
    let isvc = match kserve {
        KserveOwner::Found { id, class: Some(c) } if c == "external" => Some(id),
        _ => None,
    };
    match isvc {
        Some(id) if !labelled_ours(existing) && is_controlled_by_isvc(existing, id) => {
            Holder::KserveLeftover
        }
        _ => Holder::Foreign,
    }
}

fn is_controlled_by_isvc(meta: &ObjectMeta, id: &InferenceServiceId) -> bool {
    meta.owner_references.iter().flatten().any(|r| {
        r.controller == Some(true)
            && r.kind == "InferenceService"
            && r.api_version.starts_with("serving.kserve.io/")
            && r.name == id.name
            && r.uid == id.uid
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(object: &Value) -> ObjectMeta {
        serde_json::from_value(object["metadata"].clone()).unwrap()
    }

    fn typed(so: &Value) -> ScaledObject {
        serde_json::from_value(so.clone()).unwrap()
    }

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
        for owner in [found(Some("keda")), found(None), KserveOwner::Missing] {
            assert!(
                matches!(plan(&d, &owner, &cfg).action, Action::Skip(_)),
                "{owner:?}"
            );
        }
        assert!(matches!(
            plan(&d, &found(Some("external")), &cfg).action,
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
        assert!(is_managed_for(&meta(&so), "u-1"));
        assert!(!is_managed_for(&meta(&so), "u-2"));
        let mut foreign = so.clone();
        foreign["metadata"]["labels"] = json!({});
        assert!(!is_managed_for(&meta(&foreign), "u-1"));
    }

    fn http_wake() -> Value {
        deployment(json!({
            "llm-autoscale.io/enabled": "true", "llm-autoscale.io/max-replicas": "4",
            "llm-autoscale.io/min-replicas": "0",
            "llm-autoscale.io/http-wake-service": "m", "llm-autoscale.io/http-wake-port": "8000",
            "llm-autoscale.io/http-wake-hosts": "m.example.com",
        }))
    }

    #[test]
    fn http_wake_applies_an_owned_interceptor_route_named_in_the_trigger() {
        let p = plan(&http_wake(), &KserveOwner::None, &WebhookConfig::default());
        let Action::Apply(route) = p.route else {
            panic!("{:?}", p.route)
        };
        assert_eq!(route["kind"], "InterceptorRoute");
        assert_eq!(route["metadata"]["name"], "m");
        assert_eq!(route["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(route["metadata"]["ownerReferences"][0]["controller"], true);
        assert!(is_managed_for(&meta(&route), "u-1"));
        let Action::Apply(so) = p.action else {
            panic!("{:?}", p.action)
        };
        let wake = so["spec"]["triggers"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "external-push"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(wake["metadata"]["interceptorRoute"], "m");
    }

    #[test]
    fn the_route_goes_when_http_wake_or_the_opt_in_goes() {
        let cfg = WebhookConfig::default();
        let p = plan(&opted_in(), &KserveOwner::None, &cfg);
        assert_eq!(p.route, Action::DeleteManaged("m".into()));
        let p = plan(&deployment(json!({})), &KserveOwner::None, &cfg);
        assert_eq!(p.route, Action::DeleteManaged("m".into()));
        let p = plan(&http_wake(), &found(Some("keda")), &cfg);
        assert!(matches!(p.route, Action::Skip(_)), "{:?}", p.route);
    }

    #[test]
    fn a_route_is_looked_up_only_where_one_was_made() {
        let cfg = WebhookConfig::default();
        let with_wake = plan(&http_wake(), &KserveOwner::None, &cfg);
        let Action::Apply(wake_so) = &with_wake.action else {
            panic!("{:?}", with_wake.action)
        };
        assert!(route_needs_reconcile(&with_wake.route, None));
        let without = plan(&opted_in(), &KserveOwner::None, &cfg);
        let Action::Apply(plain_so) = &without.action else {
            panic!("{:?}", without.action)
        };
        // HTTP wake removed: the stored ScaledObject still names the route, so it is deleted.
        assert!(route_needs_reconcile(&without.route, Some(&typed(wake_so))));
        // Never had HTTP wake (or nothing stored yet): no request for a route.
        assert!(!route_needs_reconcile(
            &without.route,
            Some(&typed(plain_so))
        ));
        assert!(!route_needs_reconcile(&without.route, None));
        assert!(!route_needs_reconcile(
            &Action::Skip("x".into()),
            Some(&typed(wake_so))
        ));
    }

    #[test]
    fn a_foreign_route_of_the_same_name_is_not_ours_to_delete() {
        let Action::Apply(mut route) =
            plan(&http_wake(), &KserveOwner::None, &WebhookConfig::default()).route
        else {
            panic!()
        };
        route["metadata"]["labels"] = json!({});
        assert!(!is_managed_for(&meta(&route), "u-1"));
    }

    /// The InferenceService `qwen` (uid `isvc-1`) with this autoscaler class.
    fn found(class: Option<&str>) -> KserveOwner {
        KserveOwner::Found {
            id: InferenceServiceId {
                name: "qwen".into(),
                uid: "isvc-1".into(),
            },
            class: class.map(str::to_string),
        }
    }

    fn kserve_scaled_object(controller: bool, uid: &str) -> Value {
        json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "qwen-predictor", "namespace": "llm", "ownerReferences": [{
                "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                "name": "qwen", "uid": uid, "controller": controller, "blockOwnerDeletion": true,
            }]},
        })
    }

    #[test]
    fn kserve_leftover_only_when_external_and_controlled_by_this_inference_service() {
        let external = found(Some("external"));
        let leftover = kserve_scaled_object(true, "isvc-1");
        assert_eq!(
            holder_of(&meta(&leftover), "u-1", &external),
            Holder::KserveLeftover
        );
        let keda = found(Some("keda"));
        assert_eq!(holder_of(&meta(&leftover), "u-1", &keda), Holder::Foreign);
        assert_eq!(
            holder_of(&meta(&leftover), "u-1", &KserveOwner::None),
            Holder::Foreign
        );
        for other in [
            kserve_scaled_object(false, "isvc-1"),
            kserve_scaled_object(true, "isvc-2"),
        ] {
            assert_eq!(holder_of(&meta(&other), "u-1", &external), Holder::Foreign);
        }
        let mut labelled = leftover.clone();
        labelled["metadata"]["labels"] = json!({MANAGED_BY_LABEL: MANAGED_BY});
        assert_eq!(
            holder_of(&meta(&labelled), "u-1", &external),
            Holder::Foreign
        );
    }

    #[test]
    fn applied_means_every_rendered_field_is_stored_with_its_value() {
        let cfg = WebhookConfig::default();
        let Action::Apply(so) = plan(&opted_in(), &KserveOwner::None, &cfg).action else {
            panic!()
        };
        // As stored: with what others add (status, KEDA's pause, server fields).
        let mut stored = so.clone();
        stored["metadata"]["resourceVersion"] = json!("12");
        stored["metadata"]["annotations"] = json!({"autoscaling.keda.sh/paused": "true"});
        stored["status"] = json!({"conditions": []});
        assert!(is_applied(&so, &stored));
        // A hand edit of a field the rendering sets is drift.
        let mut edited = stored.clone();
        edited["spec"]["maxReplicaCount"] = json!(9);
        assert!(!is_applied(&so, &edited));
        // So is a trigger more or less.
        let mut extra = stored.clone();
        if let Some(t) = extra["spec"]["triggers"].as_array_mut() {
            t.push(json!({"type": "cpu"}));
        }
        assert!(!is_applied(&so, &extra));
        // A missing owner reference too.
        let mut orphan = stored;
        orphan["metadata"]["ownerReferences"] = json!([]);
        assert!(!is_applied(&so, &orphan));
        assert!(is_applied(&json!({"a": null}), &json!({})));
    }

    #[test]
    fn the_label_alone_leaves_the_sidecar_up_to_date() {
        let cfg = WebhookConfig::default();
        let mut injected = mutate(&opted_in(), &cfg).unwrap().patched;
        // Injected by a webhook that did not label yet.
        if let Some(l) = injected["metadata"].as_object_mut() {
            l.remove("labels");
        }
        assert_eq!(
            plan(&injected, &KserveOwner::None, &cfg).sidecar,
            SidecarState::UpToDate
        );
    }

    #[test]
    fn our_own_scaled_object_is_ours() {
        let cfg = WebhookConfig::default();
        let Action::Apply(so) = plan(&opted_in(), &KserveOwner::None, &cfg).action else {
            panic!()
        };
        assert_eq!(holder_of(&meta(&so), "u-1", &KserveOwner::None), Holder::Us);
    }
}
