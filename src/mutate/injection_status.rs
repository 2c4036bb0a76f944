//! The status annotation on the pod template: what was injected, where, and a hash of it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::annotations::STATUS;
use crate::render::RenderError;

/// Value of `llm-autoscale.io/status` (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectionStatus {
    pub version: u32,
    /// Name of the sidecar container.
    pub container: String,
    /// Where the sidecar went. A closed set: this annotation is user-editable, and a value
    /// outside it (say `volumes`) makes the whole status unreadable, so nothing is removed.
    pub placement: Placement,
    /// Hash of the rendered container (empty for an override).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
    /// Hash of what the container was rendered from (the workload's annotations, images and
    /// ports, the webhook's configuration). With `hash` it tells why a sidecar is stale: same
    /// inputs but another container means another webhook version rendered it; other inputs
    /// mean the configuration changed. Empty when written by a webhook before 0.2.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub inputs: String,
}

/// Where the sidecar is in the pod spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Placement {
    /// A native sidecar: `initContainers` with `restartPolicy: Always`.
    #[serde(rename = "initContainers")]
    Native,
    /// A classic container in `containers`.
    #[serde(rename = "containers")]
    Container,
    /// The pod declares its own container of that name: nothing was injected.
    #[serde(rename = "user-override")]
    UserOverride,
}

impl Placement {
    /// The pod-spec list the sidecar is in (`None`: nothing was injected).
    pub fn list(self) -> Option<&'static str> {
        match self {
            Placement::Native => Some("initContainers"),
            Placement::Container => Some("containers"),
            Placement::UserOverride => None,
        }
    }
}

impl InjectionStatus {
    /// Reads the status from a Deployment's pod template, if present and well-formed.
    pub fn read(deployment: &serde_json::Value) -> Option<InjectionStatus> {
        let raw =
            crate::json_path::get(deployment, &["spec", "template", "metadata", "annotations"])?
                .get(STATUS)?
                .as_str()?;
        serde_json::from_str(raw).ok()
    }

    /// Whether this status describes the same injected container as `other` (the inputs may
    /// differ: a sidecar that renders the same is current, whatever it was rendered from).
    pub fn same_container(&self, other: &InjectionStatus) -> bool {
        self.container == other.container
            && self.placement == other.placement
            && self.hash == other.hash
    }

    pub fn to_annotation(&self) -> Result<String, RenderError> {
        serde_json::to_string(self).map_err(|e| RenderError::new("status annotation", e))
    }
}

/// First 16 hex digits of the SHA-256 of a JSON value's compact serialisation.
pub fn hash_of(value: &serde_json::Value) -> String {
    // A `Value` always serialises (its map keys are strings), so the fallback is never used.
    hash_json(value).unwrap_or_default()
}

/// First 16 hex digits of the SHA-256 of `value`'s compact JSON, hashed as it is written.
pub fn hash_json(value: &impl Serialize) -> Result<String, serde_json::Error> {
    let mut hasher = Sha256::new();
    serde_json::to_writer(&mut hasher, value)?;
    Ok(hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect())
}
