//! Mutation: object JSON + config → JSON patch, warnings and the ScaledObject to apply.
//!
//! Idempotent by construction: a previous injection (recorded in the status annotation) is
//! stripped before rendering again, so `mutate(mutate(x)) == mutate(x)` and re-running on an
//! up-to-date object yields an empty patch.

mod deployment;
mod deployment_text;

pub use deployment_text::{DeploymentText, MaybeDeployment};
mod inference_service;
pub mod injection_status;
mod patch_text;
mod rendering;
mod template_patch;

use serde_json::Value;

use crate::config::WebhookConfig;
use crate::keda::ScaledObject;
use crate::problem::Invalid;
use crate::render::interceptor_route::InterceptorRoute;
use crate::workload::WorkloadKind;

/// The result of mutating one object.
#[derive(Clone, Debug, PartialEq)]
pub struct Mutation {
    /// The object after the patch.
    pub patched: Value,
    /// RFC 6902 operations turning the input into `patched` (empty: nothing to change).
    pub patch: json_patch::Patch,
    pub warnings: Vec<String>,
    /// The ScaledObject that must exist for this object (`None`: not opted in).
    pub scaled_object: Option<ScaledObject>,
    /// Hash of what the sidecar was rendered from (`None`: no sidecar rendered), to compare
    /// with the stored [`injection_status::InjectionStatus::inputs`].
    pub sidecar_inputs: Option<String>,
    /// The HTTP add-on's InterceptorRoute that must exist (`None`: no HTTP wake).
    pub interceptor_route: Option<InterceptorRoute>,
}

impl Mutation {
    fn untouched(object: &Value) -> Mutation {
        Mutation {
            patched: object.clone(),
            patch: json_patch::Patch(Vec::new()),
            warnings: Vec::new(),
            scaled_object: None,
            sidecar_inputs: None,
            interceptor_route: None,
        }
    }

    fn between(
        original: &Value,
        patched: Value,
        warnings: Vec<String>,
        scaled_object: Option<ScaledObject>,
    ) -> Mutation {
        Mutation {
            patch: json_patch::diff(original, &patched),
            patched,
            warnings,
            scaled_object,
            sidecar_inputs: None,
            interceptor_route: None,
        }
    }

    fn with_interceptor_route(mut self, route: Option<InterceptorRoute>) -> Mutation {
        self.interceptor_route = route;
        self
    }
}

/// What admission answers with: the patch and the warnings, without the patched object,
/// the ScaledObject or the InterceptorRoute (those are the reconciler's and the CLI's).
#[derive(Clone, Debug, PartialEq)]
pub struct AdmissionPatch {
    /// The RFC 6902 operations of [`Mutation::patch`] as JSON text (`None`: nothing to change).
    pub patch: Option<String>,
    pub warnings: Vec<String>,
}

impl AdmissionPatch {
    fn none() -> AdmissionPatch {
        AdmissionPatch {
            patch: None,
            warnings: Vec::new(),
        }
    }

    fn of(patch: &json_patch::Patch, warnings: Vec<String>) -> Result<AdmissionPatch, MutateError> {
        let patch = match patch.0.is_empty() {
            true => None,
            false => Some(
                serde_json::to_string(patch)
                    .map_err(|e| crate::render::RenderError::new("the patch", e))?,
            ),
        };
        Ok(AdmissionPatch { patch, warnings })
    }
}

/// Why an object cannot be mutated.
#[derive(Debug, thiserror::Error)]
pub enum MutateError {
    /// The annotations are invalid: every problem, for the user.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The webhook failed to render what it should add (a bug): the reason.
    #[error("llm-autoscale: internal error: {0}")]
    Render(#[from] crate::render::RenderError),
}

impl MutateError {
    /// Warnings worth showing with the error.
    pub fn warnings(&self) -> &[String] {
        match self {
            MutateError::Invalid(i) => &i.warnings,
            MutateError::Render(_) => &[],
        }
    }
}

/// Mutates a Deployment or InferenceService; any other object comes back untouched.
pub fn mutate(object: &Value, config: &WebhookConfig) -> Result<Mutation, MutateError> {
    match WorkloadKind::of(object) {
        Some(WorkloadKind::Deployment) => deployment::mutate(object, config),
        Some(WorkloadKind::InferenceService) => inference_service::mutate(object, config),
        None => Ok(Mutation::untouched(object)),
    }
}

/// The patch and warnings of [`mutate`] for a Deployment read from its text (see
/// [`MaybeDeployment`]), computing only those.
/// `namespace`: the request's, for an object that names none. `None`: the change removes a
/// container (a stale sidecar's replacement or removal), which compares containers the text
/// was not read for: read the object whole.
pub fn deployment_patch(
    mut deployment: DeploymentText,
    namespace: Option<&str>,
    config: &WebhookConfig,
) -> Option<Result<AdmissionPatch, MutateError>> {
    deployment.default_namespace(namespace);
    deployment::admission_patch(deployment, config)
}

/// The patch and warnings of [`mutate`] for an object read whole: InferenceServices, and
/// Deployments too odd to read from their text or whose change removes a container (those take
/// the full mutation).
pub fn whole_object_patch(
    object: &Value,
    config: &WebhookConfig,
) -> Result<AdmissionPatch, MutateError> {
    match WorkloadKind::of(object) {
        Some(WorkloadKind::Deployment) => {
            let m = deployment::mutate(object, config)?;
            AdmissionPatch::of(&m.patch, m.warnings)
        }
        Some(WorkloadKind::InferenceService) => inference_service::admission_patch(object, config),
        None => Ok(AdmissionPatch::none()),
    }
}

/// Sets `map[key] = value` on the object at `path`, creating the map if needed.
fn set_annotation(object: &mut Value, path: &[&str], key: &str, value: &str) {
    if let Some(map) = crate::json_path::ensure_object(object, path) {
        map.insert(key.to_string(), Value::String(value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SidecarMode;
    use proptest::prelude::*;
    use serde_json::{Map, json};

    /// What admission answers for `object`: read from its text when it can be (as the webhook
    /// reads a review), else whole.
    fn admission_patch(
        object: &Value,
        config: &WebhookConfig,
    ) -> Result<AdmissionPatch, MutateError> {
        let text = object.to_string();
        match admission_patch_of_text(&text, None, config) {
            Some(patch) => patch,
            None => whole_object_patch(object, config),
        }
    }

    /// Admission's answer for a well-formed Deployment's text (`None`: read whole).
    fn admission_patch_of_text(
        text: &str,
        namespace: Option<&str>,
        config: &WebhookConfig,
    ) -> Option<Result<AdmissionPatch, MutateError>> {
        deployment_patch(DeploymentText::read(text)?, namespace, config)
    }

    /// Every object of the fixtures and examples, List items included.
    fn fixture_objects() -> Vec<Value> {
        crate::test_fixtures::objects(&[
            "tests/fixtures/input",
            "tests/fixtures/golden",
            "tests/fixtures/invalid",
            "tests/fixtures/upgrade/rendered-by-0.1.0",
            "examples",
        ])
    }

    fn configs() -> Vec<WebhookConfig> {
        let native = WebhookConfig::default();
        let container = WebhookConfig {
            native_sidecars: false,
            ..WebhookConfig::default()
        };
        let none = WebhookConfig {
            sidecar_mode: SidecarMode::None,
            ..WebhookConfig::default()
        };
        vec![native, container, none]
    }

    /// `admission_patch` answers exactly what `mutate` does: the same operations, in the
    /// same order, with the same text, and the same warnings or errors. Returns whether the
    /// object was read from its text (not left to the full mutation), after checking that it
    /// is whenever it is well-formed and its mutation removes no container.
    fn assert_same(object: &Value, cfg: &WebhookConfig) -> bool {
        let text = object.to_string();
        let from_text = admission_patch_of_text(&text, None, cfg).is_some();
        let full = mutate(object, cfg);
        let expected = DeploymentText::read(&text).is_some()
            && !(strips_a_container(object) && changes_the_pod_template(&full));
        assert_eq!(from_text, expected, "read from text: {object}");
        match (full, admission_patch(object, cfg)) {
            (Ok(m), Ok(a)) => {
                let full = Some(serde_json::to_string(&m.patch).unwrap());
                assert_eq!(
                    a.patch,
                    full.filter(|_| !m.patch.0.is_empty()),
                    "patch of {object}"
                );
                assert_eq!(a.warnings, m.warnings, "warnings of {object}");
            }
            (Err(full), Err(admitted)) => {
                assert_eq!(admitted.to_string(), full.to_string());
                assert_eq!(admitted.warnings(), full.warnings());
            }
            (full, admitted) => panic!("{object}: mutate {full:?}, admission {admitted:?}"),
        }
        from_text
    }

    /// Whether the status names a list holding the sidecar (which a new injection removes).
    fn strips_a_container(object: &Value) -> bool {
        let status = injection_status::InjectionStatus::read(object);
        let list = status
            .filter(|s| s.container == crate::render::sidecar::SIDECAR_NAME)
            .and_then(|s| s.placement.list());
        list.and_then(|l| crate::json_path::get(object, &["spec", "template", "spec", l]))
            .and_then(Value::as_array)
            .is_some_and(|l| {
                l.iter()
                    .any(|c| c["name"] == crate::render::sidecar::SIDECAR_NAME)
            })
    }

    fn changes_the_pod_template(m: &Result<Mutation, MutateError>) -> bool {
        m.as_ref().is_ok_and(|m| {
            m.patch.0.iter().any(|op| {
                serde_json::to_value(op).is_ok_and(|op| {
                    op["path"]
                        .as_str()
                        .is_some_and(|p| p.starts_with("/spec/template"))
                })
            })
        })
    }

    #[test]
    fn admission_patches_are_the_mutation_patches() {
        let configs = configs();
        let (mut checked, mut deployments, mut from_text) = (0, 0, 0);
        for object in fixture_objects() {
            // The object as written, and as each configuration left it (so every strip,
            // placement change and already-current sidecar is met).
            let mut states = vec![object.clone()];
            for cfg in &configs {
                if let Ok(m) = mutate(&object, cfg) {
                    states.push(m.patched);
                }
            }
            for state in &states {
                for cfg in &configs {
                    let text = assert_same(state, cfg);
                    checked += 1;
                    if WorkloadKind::of(state) == Some(WorkloadKind::Deployment) {
                        deployments += 1;
                        from_text += usize::from(text);
                    }
                }
            }
        }
        assert!(checked > 200, "only {checked} cases");
        // Most are read from their text (all but stale sidecars to replace or remove).
        assert!(
            from_text * 4 > deployments * 3,
            "{from_text} of {deployments} from text"
        );
    }

    #[test]
    fn admission_patches_are_the_mutation_patches_for_odd_shapes() {
        let status = |placement: &str| {
            json!({"version": 1, "container": "llm-autoscale-collector", "placement": placement})
                .to_string()
        };
        let sidecar = json!({"name": "llm-autoscale-collector", "image": "old"});
        let opted_in = json!({
            "llm-autoscale.io/enabled": "true",
            "llm-autoscale.io/max-replicas": "2"
        });
        let deployment = |template: Value| {
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "m", "namespace": "llm", "annotations": opted_in.clone()},
                "spec": {"replicas": 1, "template": template, "strategy": {}}
            })
        };
        let vllm = json!({"name": "vllm", "image": "vllm/vllm-openai:v0.11.0",
            "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 8000}]});
        let cases = vec![
            deployment(json!("not an object")),
            deployment(json!({"spec": "not an object"})),
            deployment(json!({"spec": {"containers": "not a list"}})),
            deployment(json!({"spec": {"containers": [vllm.clone()]}})),
            // The emptied list is removed with other pod-spec fields after it.
            deployment(json!({
                "metadata": {"annotations": {"llm-autoscale.io/status": status("initContainers")}},
                "spec": {"initContainers": [sidecar.clone()], "containers": [vllm.clone()],
                         "volumes": [], "nodeSelector": {"a": "b"}}
            })),
            deployment(json!({
                "metadata": {"annotations": {"llm-autoscale.io/status": status("containers")},
                             "labels": {"x": "y"}},
                "spec": {"containers": [sidecar.clone(), vllm.clone(), sidecar.clone()],
                         "volumes": []}
            })),
            deployment(json!({
                "metadata": {"annotations": {"llm-autoscale.io/status": status("containers")}},
                "spec": {"containers": [sidecar.clone()], "initContainers": [vllm.clone()]}
            })),
            // A status the webhook did not write removes nothing.
            deployment(json!({
                "metadata": {"annotations": {"llm-autoscale.io/status": "{\"placement\":\"volumes\",\"container\":\"data\"}"}},
                "spec": {"containers": [vllm.clone()], "volumes": [{"name": "data"}]}
            })),
            // An object with an image or ports in the pod spec counts as a container.
            deployment(json!({
                "spec": {"containers": [vllm.clone()],
                         "extra": {"image": "other", "ports": [{"containerPort": 8888}]}}
            })),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "m", "annotations": opted_in.clone()}}),
        ];
        let mut from_text = Vec::new();
        for case in &cases {
            for cfg in &configs() {
                from_text.push(assert_same(case, cfg));
                if let Ok(m) = mutate(case, cfg) {
                    for again in &configs() {
                        assert_same(&m.patched, again);
                    }
                }
            }
        }
        // Only the first three (a template, a pod spec or a container list of the wrong type)
        // are not read from their text at all.
        for (i, case) in cases.iter().enumerate() {
            assert_eq!(DeploymentText::read(&case.to_string()).is_some(), i >= 3);
        }
        assert!(from_text.iter().filter(|t| **t).count() > cases.len());
    }

    fn container() -> impl Strategy<Value = Value> {
        let name = prop::sample::select(vec!["vllm", "llm-autoscale-collector", "proxy"]);
        (name, 0usize..3, prop::option::of(1u16..9000)).prop_map(|(name, env, port)| {
            let mut c = json!({"name": name, "image": format!("vllm/vllm-openai:v0.{env}.0")});
            if env > 0 {
                c["env"] = Value::Array(
                    (0..env)
                        .map(|i| json!({"name": format!("E{i}"), "value": "v"}))
                        .collect(),
                );
            }
            if let Some(p) = port {
                c["ports"] = json!([{"containerPort": p}]);
            }
            c
        })
    }

    fn deployment() -> impl Strategy<Value = Value> {
        let placement = prop::sample::select(vec![
            "initContainers",
            "containers",
            "user-override",
            "volumes",
        ]);
        let sidecar = prop::sample::select(vec!["", "native", "container", "none"]);
        (
            prop::collection::vec(container(), 0..3),
            prop::option::of(prop::collection::vec(container(), 0..2)),
            prop::option::of((placement, any::<bool>())),
            any::<bool>(),
            sidecar,
            any::<bool>(),
            any::<bool>(),
            (0u8..3, 0u8..6),
        )
            .prop_map(
                |(
                    containers,
                    inits,
                    status,
                    enabled,
                    sidecar,
                    volumes_first,
                    spec_first,
                    (meta_shape, template_shape),
                )| {
                    let mut annotations = json!({"llm-autoscale.io/max-replicas": "2"});
                    if enabled {
                        annotations["llm-autoscale.io/enabled"] = json!("true");
                    }
                    if !sidecar.is_empty() {
                        annotations["llm-autoscale.io/sidecar"] = json!(sidecar);
                    }
                    let mut pod = Map::new();
                    if volumes_first {
                        pod.insert("volumes".into(), json!([{"name": "data"}]));
                    }
                    if let Some(inits) = inits {
                        pod.insert("initContainers".into(), Value::Array(inits));
                    }
                    pod.insert("containers".into(), Value::Array(containers));
                    pod.insert("dnsPolicy".into(), json!("ClusterFirst"));
                    let mut metadata = json!({"labels": {"app": "m"}});
                    if meta_shape == 2 {
                        metadata["annotations"] = json!({"team": "a"});
                    }
                    if let Some((placement, ours)) = status {
                        let container = if ours {
                            "llm-autoscale-collector"
                        } else {
                            "data"
                        };
                        let status =
                            json!({"version": 1, "container": container, "placement": placement});
                        metadata["annotations"]["llm-autoscale.io/status"] =
                            json!(status.to_string());
                    }
                    // The pod template's members in either order (the patch follows the object's),
                    // or some of them missing: no metadata, no pod spec, no template, no spec.
                    let mut template = Map::new();
                    let metadata = (meta_shape != 1).then_some(metadata);
                    if let (false, Some(m)) = (spec_first, &metadata) {
                        template.insert("metadata".into(), m.clone());
                    }
                    if template_shape != 1 {
                        template.insert("spec".into(), Value::Object(pod));
                    }
                    if let (true, Some(m)) = (spec_first, metadata) {
                        template.insert("metadata".into(), m);
                    }
                    let spec = match template_shape {
                        2 => json!({"replicas": 1}),
                        3 => Value::Null,
                        _ => json!({"template": template, "replicas": 1}),
                    };
                    let mut d = json!({
                        "apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "m", "namespace": "llm", "annotations": annotations},
                    });
                    if !spec.is_null() {
                        d["spec"] = spec;
                    }
                    d
                },
            )
    }

    proptest! {
        #[test]
        fn admission_patches_are_the_mutation_patches_for_generated_deployments(
            d in deployment(),
            first in 0usize..3,
            second in 0usize..3,
        ) {
            let configs = configs();
            let (Some(a), Some(b)) = (configs.get(first), configs.get(second)) else {
                return Ok(());
            };
            // Every generated Deployment is well-formed, so read from its text unless its
            // mutation removes a container (`assert_same` checks which).
            prop_assert!(DeploymentText::read(&d.to_string()).is_some());
            assert_same(&d, a);
            if let Ok(m) = mutate(&d, a) {
                assert_same(&m.patched, b);
            }
        }
    }
}
