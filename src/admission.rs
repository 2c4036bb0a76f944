//! AdmissionReview v1 in and out, around the pure core: decode the review, run the core,
//! encode the answer (uid echoed, JSONPatch, warnings, denial). No API calls, so dry-run
//! requests get exactly the same answer (`sideEffects: None` holds).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde_json::Value;

use crate::config::{OnInvalid, WebhookConfig};
use crate::keda::rules as keda_rules;
use crate::mutate::{MutateError, mutate};
use crate::workload::WorkloadKind;

/// A request the webhook cannot answer (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum BadReview {
    #[error("the body is not an AdmissionReview: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("expected apiVersion admission.k8s.io/v1, kind AdmissionReview; got {0}")]
    WrongType(String),
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("the request has no object")]
    NoObject,
    #[error("{0} is not handled by this endpoint ({1})")]
    WrongKind(String, &'static str),
    /// Not the request's fault: the webhook could not produce its answer (HTTP 500).
    #[error("internal error: {0}")]
    Internal(String),
}

/// What was decided, for logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub uid: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub operation: String,
    pub dry_run: bool,
    /// `patched`, `allowed`, `denied` or `warned` (invalid but admitted).
    pub decision: &'static str,
}

/// The encoded answer plus its summary.
#[derive(Debug)]
pub struct Answer {
    pub body: Vec<u8>,
    pub summary: Summary,
}

fn decode(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, BadReview> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body)?;
    if review.types.api_version != "admission.k8s.io/v1" || review.types.kind != "AdmissionReview" {
        return Err(BadReview::WrongType(format!(
            "apiVersion {:?}, kind {:?}",
            review.types.api_version, review.types.kind
        )));
    }
    review.try_into().map_err(|_| BadReview::NoRequest)
}

fn summary(req: &AdmissionRequest<DynamicObject>, decision: &'static str) -> Summary {
    Summary {
        uid: req.uid.clone(),
        kind: req.kind.kind.clone(),
        namespace: req.namespace.clone().unwrap_or_default(),
        name: req.name.clone(),
        operation: format!("{:?}", req.operation).to_uppercase(),
        dry_run: req.dry_run,
        decision,
    }
}

/// Encodes the review. `patch` is a Go `[]byte`, which the apiserver expects as base64;
/// kube's type serialises it as an array of numbers (also accepted, but 3.5× larger and not
/// what other tools expect), so it is rewritten here.
fn encode(resp: AdmissionResponse) -> Result<Vec<u8>, BadReview> {
    let internal =
        |e: serde_json::Error| BadReview::Internal(format!("cannot encode the answer: {e}"));
    let mut review = serde_json::to_value(resp.into_review()).map_err(internal)?;
    if let Some(patch) = review.pointer_mut("/response/patch") {
        if let Some(bytes) = patch.as_array().map(|a| {
            a.iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect::<Vec<u8>>()
        }) {
            *patch = Value::String(BASE64.encode(bytes));
        }
    }
    serde_json::to_vec(&review).map_err(internal)
}

fn object_json(req: &AdmissionRequest<DynamicObject>) -> Result<Value, BadReview> {
    let obj = req.object.as_ref().ok_or(BadReview::NoObject)?;
    let mut v = serde_json::to_value(obj)?;
    // The apiserver sets the namespace before admission; fill it in if a caller did not.
    if let (Some(ns), Some(meta)) = (&req.namespace, v.get_mut("metadata")) {
        if meta.get("namespace").is_none() {
            meta["namespace"] = Value::String(ns.clone());
        }
    }
    Ok(v)
}

fn with_warnings(mut resp: AdmissionResponse, warnings: Vec<String>) -> AdmissionResponse {
    if !warnings.is_empty() {
        resp.warnings = Some(warnings);
    }
    resp
}

/// `POST /mutate`: Deployments and InferenceServices.
pub fn mutate_review(body: &[u8], cfg: &WebhookConfig) -> Result<Answer, BadReview> {
    let req = decode(body)?;
    let resp = AdmissionResponse::from(&req);
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Ok(Answer {
            body: encode(resp)?,
            summary: summary(&req, "allowed"),
        });
    }
    let object = object_json(&req)?;
    if WorkloadKind::of(&object).is_none() {
        let what = format!(
            "{}/{}",
            object
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            object.get("kind").and_then(Value::as_str).unwrap_or("?")
        );
        return Err(BadReview::WrongKind(
            what,
            "/mutate takes apps/v1 Deployments and serving.kserve.io/v1beta1 InferenceServices",
        ));
    }
    let (resp, decision) = match mutate(&object, cfg) {
        Ok(m) if m.patch.0.is_empty() => (with_warnings(resp, m.warnings), "allowed"),
        Ok(m) => match resp.with_patch(m.patch) {
            Ok(r) => (with_warnings(r, m.warnings), "patched"),
            Err(e) => (
                AdmissionResponse::from(&req)
                    .deny(format!("llm-autoscale: cannot encode the patch: {e}")),
                "denied",
            ),
        },
        Err(MutateError::Render(e)) => return Err(BadReview::Internal(e.to_string())),
        Err(MutateError::Invalid(invalid)) => match cfg.on_invalid {
            OnInvalid::Deny => (
                with_warnings(resp.deny(invalid.to_string()), invalid.warnings.clone()),
                "denied",
            ),
            OnInvalid::Warn => {
                let mut warnings: Vec<String> = invalid
                    .problems
                    .iter()
                    .map(|p| format!("llm-autoscale: not applied: {p}"))
                    .collect();
                warnings.extend(invalid.warnings);
                (with_warnings(resp, warnings), "warned")
            }
        },
    };
    Ok(Answer {
        body: encode(resp)?,
        summary: summary(&req, decision),
    })
}

/// `POST /validate`: keda.sh/v1alpha1 ScaledObjects.
pub fn validate_review(body: &[u8], cfg: &WebhookConfig) -> Result<Answer, BadReview> {
    let req = decode(body)?;
    let resp = AdmissionResponse::from(&req);
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Ok(Answer {
            body: encode(resp)?,
            summary: summary(&req, "allowed"),
        });
    }
    let object = object_json(&req)?;
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("?");
    if api_version != "keda.sh/v1alpha1" || kind != "ScaledObject" {
        return Err(BadReview::WrongKind(
            format!("{api_version}/{kind}"),
            "/validate takes keda.sh/v1alpha1 ScaledObjects",
        ));
    }
    let problems = keda_rules::validate_json(&object, &cfg.scaler_address);
    let (resp, decision) = if problems.is_empty() {
        (resp, "allowed")
    } else {
        let mut msg = format!(
            "llm-autoscale: ScaledObject {} has {} problem{}:",
            req.name,
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        for p in &problems {
            msg.push_str("\n- ");
            msg.push_str(&p.to_string());
        }
        (resp.deny(msg), "denied")
    };
    Ok(Answer {
        body: encode(resp)?,
        summary: summary(&req, decision),
    })
}
