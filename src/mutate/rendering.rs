//! What a Deployment's annotations and the webhook's configuration make of it: the parsed
//! spec with its warnings (or every problem), and the sidecar with its status.
//!
//! Both are pure functions of the [`Workload`] (annotations, images, declared ports, name)
//! and the [`WebhookConfig`], and rendering the sidecar is most of an admission's cost (the
//! collector configuration's YAML, the container's hash). The same Deployment is admitted
//! again and again (every `kubectl apply`, every GitOps sync, every rollout restart), so the
//! result is memoised, keyed by those inputs in full (compared for equality, not by a hash):
//! a hit is exactly what rendering would return. The memo is bounded ([`CAPACITY`] entries,
//! S3-FIFO eviction), so memory stays flat however many Deployments pass.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use serde::Serialize;
use serde_json::Value;

use super::MutateError;
use super::injection_status::{self, InjectionStatus, Placement};
use crate::annotations::{self, AutoscalingSpec, STATUS};
use crate::config::{SidecarMode, WebhookConfig};
use crate::problem::Invalid;
use crate::render::{RenderError, sidecar};
use crate::workload::Workload;

/// Entries kept. An entry (the key, the spec, the rendered container as JSON) takes about
/// 15 KiB resident: a full memo is ~15 MiB (measured with `scripts/bench-admission.sh`, whose
/// first-sight run fills it).
pub const CAPACITY: usize = 1024;

/// The annotations read for one workload and configuration, and the sidecar they render.
#[derive(Debug)]
pub(super) struct Rendering {
    /// The spec (`None`: not opted in) and its warnings, or every problem found.
    pub parsed: Result<(Option<AutoscalingSpec>, Vec<String>), Invalid>,
    /// The sidecar, when the spec asks for one.
    pub sidecar: Option<RenderedSidecar>,
}

/// A rendered sidecar container, where it goes and the status that records it.
#[derive(Debug)]
pub(super) struct RenderedSidecar {
    pub status: InjectionStatus,
    /// `initContainers` or `containers`.
    pub list: &'static str,
    pub container: Value,
    /// `container` as JSON text, for the admission patch.
    pub container_text: String,
    /// `status` as the annotation's text.
    pub status_annotation: String,
    /// `status_annotation` as a JSON string, for the admission patch.
    pub status_annotation_json: String,
}

impl Rendering {
    /// The spec when the workload is opted in with a sidecar.
    pub fn spec_with_sidecar(&self) -> Option<&AutoscalingSpec> {
        match &self.parsed {
            Ok((Some(spec), _)) if spec.sidecar != SidecarMode::None => Some(spec),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    workload: Workload,
    config: WebhookConfig,
}

/// [`Key`] borrowed, for lookups: a hit copies nothing. Its derived hash is the owned key's
/// (the same fields, in the same order; a reference hashes as what it points to).
#[derive(Hash)]
struct KeyRef<'a> {
    workload: &'a Workload,
    config: &'a WebhookConfig,
}

impl quick_cache::Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *self.workload == key.workload && *self.config == key.config
    }
}

static MEMO: LazyLock<quick_cache::sync::Cache<Key, Arc<Rendering>>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(CAPACITY));

/// The rendering of `workload` under `cfg`, from the memo or made now (a rendering that fails
/// is a bug, reported and not remembered). Two admissions missing at once both render, the
/// same thing: the second insert replaces the first.
pub(super) fn of(workload: &Workload, cfg: &WebhookConfig) -> Result<Arc<Rendering>, MutateError> {
    let borrowed = KeyRef {
        workload,
        config: cfg,
    };
    if let Some(hit) = MEMO.get(&borrowed) {
        return Ok(hit);
    }
    let rendering = Arc::new(render(workload, cfg)?);
    let key = Key {
        workload: workload.clone(),
        config: cfg.clone(),
    };
    MEMO.insert(key, Arc::clone(&rendering));
    Ok(rendering)
}

/// Reads the annotations and renders the sidecar, without the memo.
fn render(workload: &Workload, cfg: &WebhookConfig) -> Result<Rendering, MutateError> {
    let mut rendering = Rendering {
        parsed: annotations::parse(workload, cfg),
        sidecar: None,
    };
    if let Some(spec) = rendering.spec_with_sidecar() {
        let inputs = sidecar_inputs(workload, cfg)?;
        rendering.sidecar = Some(render_sidecar(spec, cfg, workload, inputs)?);
    }
    Ok(rendering)
}

/// The sidecar for `spec`, the list it goes in and its status.
fn render_sidecar(
    spec: &AutoscalingSpec,
    cfg: &WebhookConfig,
    workload: &Workload,
    inputs: String,
) -> Result<RenderedSidecar, RenderError> {
    let mut container = sidecar::render(spec, cfg, &workload.declared_ports)?;
    let placement = if spec.sidecar == SidecarMode::Native {
        container.restart_policy = Some("Always".into());
        Placement::Native
    } else {
        Placement::Container
    };
    let list = placement.list().unwrap_or("containers");
    let container =
        serde_json::to_value(&container).map_err(|e| RenderError::new("sidecar container", e))?;
    let container_text =
        serde_json::to_string(&container).map_err(|e| RenderError::new("sidecar container", e))?;
    let status = InjectionStatus {
        version: 1,
        container: sidecar::SIDECAR_NAME.into(),
        placement,
        hash: injection_status::hash_of(&container),
        inputs,
    };
    let status_annotation = status.to_annotation()?;
    let status_annotation_json = serde_json::to_string(&status_annotation)
        .map_err(|e| RenderError::new("status annotation", e))?;
    Ok(RenderedSidecar {
        status_annotation,
        status_annotation_json,
        status,
        list,
        container,
        container_text,
    })
}

/// Everything the sidecar is rendered from: the configuring annotations, the images (the
/// vLLM version), the declared ports (collisions) and the webhook's configuration.
#[derive(Serialize)]
struct SidecarInputs<'a> {
    annotations: BTreeMap<&'a String, &'a String>,
    images: &'a [String],
    ports: &'a [u16],
    config: &'a WebhookConfig,
}

/// Hash of [`SidecarInputs`], recorded in the status to tell why a sidecar is stale.
fn sidecar_inputs(w: &Workload, cfg: &WebhookConfig) -> Result<String, RenderError> {
    let inputs = SidecarInputs {
        annotations: w
            .annotations
            .iter()
            .filter(|(k, _)| k.as_str() != STATUS)
            .collect(),
        images: &w.images,
        ports: &w.declared_ports,
        config: cfg,
    };
    injection_status::hash_json(&inputs).map_err(|e| RenderError::new("sidecar inputs", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::WorkloadKind;
    use serde_json::json;

    fn workload(name: &str, max_replicas: &str) -> Workload {
        Workload::from_object(
            WorkloadKind::Deployment,
            &json!({
                "metadata": {"name": name, "namespace": "ml", "annotations": {
                    "llm-autoscale.io/enabled": "true",
                    "llm-autoscale.io/max-replicas": max_replicas,
                }},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "vllm", "image": "vllm/vllm-openai:v0.11.0",
                     "ports": [{"containerPort": 8000}]}
                ]}}}
            }),
        )
    }

    /// A remembered rendering is the one rendering makes now, for every input that differs.
    #[test]
    fn the_memo_answers_what_rendering_answers() {
        let native = WebhookConfig::default();
        let classic = WebhookConfig {
            native_sidecars: false,
            ..WebhookConfig::default()
        };
        let cases = [
            (workload("a", "4"), &native),
            (workload("a", "4"), &classic),
            (workload("b", "4"), &native),
            (workload("a", "5"), &native),
            (workload("a", "not a metric"), &native),
        ];
        for _ in 0..2 {
            for (w, cfg) in &cases {
                let remembered = of(w, cfg).unwrap();
                let fresh = render(w, cfg).unwrap();
                assert_eq!(remembered.parsed, fresh.parsed, "{w:?}");
                let sidecar = |r: &Rendering| {
                    r.sidecar
                        .as_ref()
                        .map(|s| (s.status.clone(), s.list, s.container.clone()))
                };
                assert_eq!(sidecar(&remembered), sidecar(&fresh), "{w:?}");
            }
        }
        // The renderings differ where their inputs do.
        let hash = |w: &Workload, cfg: &WebhookConfig| {
            of(w, cfg)
                .unwrap()
                .sidecar
                .as_ref()
                .map(|s| s.status.hash.clone())
        };
        let (a, b) = (&cases[0].0, &cases[2].0);
        assert_ne!(hash(a, &native), hash(b, &native));
        assert_ne!(hash(a, &native), hash(a, &classic));
        assert!(of(&cases[4].0, &native).unwrap().parsed.is_err());
        // A lookup by the borrowed key finds what the owned key stored.
        let first = of(a, &native).unwrap();
        assert!(Arc::ptr_eq(&first, &of(a, &native).unwrap()));
    }
}
