//! InferenceService mutation: validate where the human wrote the annotations, switch KServe's
//! autoscaler class to `external`, and describe the ScaledObject its predictor will get.
//! No sidecar here: KServe copies the annotations onto the predictor Deployment, whose own
//! mutation injects it.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{AdmissionPatch, MutateError, Mutation, set_annotation};
use crate::annotations::{self, AutoscalingSpec};
use crate::config::WebhookConfig;
use crate::problem::{Invalid, Problem};
use crate::render::{interceptor_route, scaled_object};
use crate::workload::{KSERVE_ISVC_LABEL, Workload, WorkloadKind};

pub const AUTOSCALER_CLASS: &str = "serving.kserve.io/autoscalerClass";
pub const DEPLOYMENT_MODE: &str = "serving.kserve.io/deploymentMode";

/// KServe's deployment modes (kserve/kserve pkg/constants/constants.go: `Standard` and
/// `Knative` from v0.16, which keeps `RawDeployment` and `Serverless` as deprecated spellings
/// of them; `ModelMesh`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DeploymentMode {
    /// A Deployment per component: what this product scales.
    Standard,
    /// Knative Services, scaled by Knative's own autoscaler.
    Knative,
    /// ModelMesh serving pods shared by many models.
    ModelMesh,
    /// Anything else, which KServe does not know either.
    Unknown,
}

impl DeploymentMode {
    fn parse(s: &str) -> DeploymentMode {
        match s {
            "Standard" | "RawDeployment" => DeploymentMode::Standard,
            "Knative" | "Serverless" => DeploymentMode::Knative,
            "ModelMesh" => DeploymentMode::ModelMesh,
            _ => DeploymentMode::Unknown,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            DeploymentMode::Standard => "",
            DeploymentMode::Knative => {
                "Knative scales serverless predictors itself; llm-autoscale needs a Deployment"
            }
            DeploymentMode::ModelMesh => {
                "ModelMesh pods serve many models and are scaled by ModelMesh; llm-autoscale needs one Deployment per model"
            }
            DeploymentMode::Unknown => {
                "not a KServe deployment mode (Standard, RawDeployment, Knative, Serverless, ModelMesh)"
            }
        }
    }
}

pub(super) fn mutate(object: &Value, cfg: &WebhookConfig) -> Result<Mutation, MutateError> {
    let workload = Workload::from_object(WorkloadKind::InferenceService, object);
    let Some((spec, new, warnings)) = apply(object, &workload, cfg)? else {
        return Ok(Mutation::untouched(object));
    };
    let mut labels = BTreeMap::new();
    labels.insert(KSERVE_ISVC_LABEL.to_string(), workload.name.clone());
    let so = scaled_object::render(&spec, &labels);
    let route = interceptor_route::render(&spec, &labels);
    Ok(Mutation::between(object, new, warnings, Some(so)).with_interceptor_route(route))
}

/// The patch and warnings only (see [`super::whole_object_patch`]).
pub(super) fn admission_patch(
    object: &Value,
    cfg: &WebhookConfig,
) -> Result<AdmissionPatch, MutateError> {
    let workload = Workload::from_object(WorkloadKind::InferenceService, object);
    let Some((_, new, warnings)) = apply(object, &workload, cfg)? else {
        return Ok(AdmissionPatch::none());
    };
    AdmissionPatch::of(&json_patch::diff(object, &new), warnings)
}

/// Validates and switches the autoscaler class: the spec, the object after the switch and the
/// warnings; `None` when the object is not opted in.
fn apply(
    object: &Value,
    workload: &Workload,
    cfg: &WebhookConfig,
) -> Result<Option<(AutoscalingSpec, Value, Vec<String>)>, MutateError> {
    let (spec, mut warnings) = annotations::parse(workload, cfg)?;
    let Some(spec) = spec else {
        return Ok(None);
    };
    let annotation = |k: &str| workload.annotations.get(k).map(String::as_str);

    match annotation(DEPLOYMENT_MODE).map(DeploymentMode::parse) {
        Some(DeploymentMode::Standard) => {}
        Some(refused) => {
            let value = annotation(DEPLOYMENT_MODE);
            return Err(MutateError::Invalid(Invalid {
                problems: vec![Problem::new(
                    DEPLOYMENT_MODE,
                    value,
                    refused.reason(),
                    format!("set {DEPLOYMENT_MODE}: \"Standard\" (\"RawDeployment\" before KServe 0.16)"),
                )],
                warnings,
            }));
        }
        None => warnings.push(format!(
            "{DEPLOYMENT_MODE} is not set: llm-autoscale only acts when KServe runs the predictor as a Deployment (Standard/RawDeployment mode)"
        )),
    }
    match annotation(AUTOSCALER_CLASS) {
        Some("external") => {}
        Some(other) => warnings.push(format!(
            "{AUTOSCALER_CLASS} changed from {other:?} to \"external\": llm-autoscale manages this predictor's ScaledObject (with \"keda\" KServe would create a second one, with \"hpa\" an HPA would fight it)"
        )),
        None => {}
    }
    if crate::json_path::get(object, &["spec", "predictor", "autoScaling"]).is_some() {
        warnings.push(
            "spec.predictor.autoScaling is ignored: with autoscalerClass external the llm-autoscale.io annotations define scaling".into(),
        );
    }

    let mut new = object.clone();
    set_annotation(
        &mut new,
        &["metadata", "annotations"],
        AUTOSCALER_CLASS,
        "external",
    );
    Ok(Some((spec, new, warnings)))
}
