//! Mutation: object JSON + config → JSON patch, warnings and the ScaledObject to apply.
//!
//! Idempotent by construction: a previous injection (recorded in the status annotation) is
//! stripped before rendering again, so `mutate(mutate(x)) == mutate(x)` and re-running on an
//! up-to-date object yields an empty patch.

mod deployment;
mod inference_service;
pub mod injection_status;

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

/// Sets `map[key] = value` on the object at `pointer`, creating the map if needed.
fn set_annotation(object: &mut Value, pointer: &str, key: &str, value: &str) {
    if let Some(map) = ensure_object(object, pointer) {
        map.insert(key.to_string(), Value::String(value.to_string()));
    }
}

/// The JSON object at `pointer` (`/a/b`), created along the way; `None` when a non-object
/// is in the way.
fn ensure_object<'a>(
    object: &'a mut Value,
    pointer: &str,
) -> Option<&'a mut serde_json::Map<String, Value>> {
    let mut cur = object;
    for part in pointer.split('/').skip(1) {
        let map = cur.as_object_mut()?;
        cur = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
    cur.as_object_mut()
}
