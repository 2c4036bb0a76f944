//! AdmissionReview v1 in and out, around the pure core: decode the review, run the core,
//! encode the answer (uid echoed, JSONPatch, warnings, denial). No API calls, so dry-run
//! requests get exactly the same answer (`sideEffects: None` holds).
//!
//! The review is decoded, borrowed from the body, into the few fields the webhook reads. A
//! Deployment is read in the same pass, only where the mutation reads it
//! ([`MaybeDeployment`]); any other object is kept as text and read whole. The answer is
//! written straight from its parts: the patch is base64 text, as the apiserver expects for a
//! Go `[]byte`.

use std::borrow::Cow;

use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::admission::Operation;
use serde::Deserialize;
use serde::de::{IgnoredAny, Unexpected};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::config::{OnInvalid, WebhookConfig};
use crate::keda::rules as keda_rules;
use crate::keda::trigger::KnownScalers;
use crate::mutate::{self, AdmissionPatch, MaybeDeployment, MutateError};
use crate::workload::WorkloadKind;

const API_VERSION: &str = "admission.k8s.io/v1";
const KIND: &str = "AdmissionReview";

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
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`, as in the review.
    pub operation: &'static str,
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

/// An AdmissionReview as the apiserver sends it, as far as the webhook reads it, with its
/// object as `O`: its text, or a Deployment read from it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(bound(deserialize = "O: Deserialize<'de>"))]
struct Review<'a, O> {
    #[serde(borrow)]
    api_version: Cow<'a, str>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    request: Option<Request<'a, O>>,
}

/// `request` of an AdmissionReview v1, borrowed from the body. The fields the webhook does
/// not read are still typed (a malformed review is refused as before), except `oldObject`
/// and `options`, which are stepped over.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(bound(deserialize = "O: Deserialize<'de>"))]
struct Request<'a, O> {
    #[serde(borrow)]
    uid: Cow<'a, str>,
    #[serde(borrow)]
    kind: Gvk<'a>,
    #[serde(rename = "resource", borrow)]
    _resource: Gvr<'a>,
    #[serde(default, rename = "subResource", borrow)]
    _sub_resource: Option<Cow<'a, str>>,
    #[serde(default, rename = "requestKind", borrow)]
    _request_kind: Option<Gvk<'a>>,
    #[serde(default, rename = "requestResource", borrow)]
    _request_resource: Option<Gvr<'a>>,
    #[serde(default, rename = "requestSubResource", borrow)]
    _request_sub_resource: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Cow<'a, str>,
    #[serde(default, borrow)]
    namespace: Option<Cow<'a, str>>,
    operation: Operation,
    #[serde(rename = "userInfo")]
    _user_info: UserInfo,
    object: Option<O>,
    #[serde(rename = "oldObject")]
    _old_object: Option<IgnoredAny>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default, rename = "options")]
    _options: Option<IgnoredAny>,
}

/// kube's `GroupVersionKind`, borrowed.
#[derive(Deserialize)]
struct Gvk<'a> {
    #[serde(borrow, rename = "group")]
    _group: Cow<'a, str>,
    #[serde(borrow, rename = "version")]
    _version: Cow<'a, str>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
}

/// kube's `GroupVersionResource`, borrowed.
#[derive(Deserialize)]
struct Gvr<'a> {
    #[serde(borrow, rename = "group")]
    _group: Cow<'a, str>,
    #[serde(borrow, rename = "version")]
    _version: Cow<'a, str>,
    #[serde(borrow, rename = "resource")]
    _resource: Cow<'a, str>,
    #[serde(default, borrow, rename = "api_version")]
    _api_version: Cow<'a, str>,
}

fn decode<'a, O: Deserialize<'a>>(body: &'a [u8]) -> Result<Request<'a, O>, BadReview> {
    // Text checked as UTF-8 once, in one pass, is read without checking each string again
    // (serde_json's `StrRead`). A body that is not UTF-8 is read as bytes, as before:
    // serde_json then reports invalid UTF-8 in the strings it decodes, not in those it steps
    // over (`SliceRead::ignore_str` in serde_json's `src/read.rs`).
    let review: Review<O> = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text)?,
        Err(_) => serde_json::from_slice(body)?,
    };
    if review.api_version != API_VERSION || review.kind != KIND {
        return Err(BadReview::WrongType(format!(
            "apiVersion {:?}, kind {:?}",
            review.api_version, review.kind
        )));
    }
    review.request.ok_or(BadReview::NoRequest)
}

fn summary<O>(req: &Request<O>, decision: &'static str) -> Summary {
    Summary {
        uid: req.uid.to_string(),
        kind: req.kind.kind.to_string(),
        namespace: req.namespace.as_deref().unwrap_or_default().to_string(),
        name: req.name.to_string(),
        operation: operation_name(&req.operation),
        dry_run: req.dry_run,
        decision,
    }
}

/// The operation as the review names it (kube-core's `Operation` is `SCREAMING_SNAKE_CASE`).
fn operation_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// The answer to one review, before encoding.
struct Response {
    allowed: bool,
    /// Why it was denied (empty when allowed).
    message: String,
    /// The JSONPatch's text (written base64).
    patch: Option<String>,
    warnings: Vec<String>,
}

impl Response {
    fn allow(warnings: Vec<String>) -> Response {
        Response {
            allowed: true,
            message: String::new(),
            patch: None,
            warnings,
        }
    }

    fn deny(message: String, warnings: Vec<String>) -> Response {
        Response {
            allowed: false,
            message,
            patch: None,
            warnings,
        }
    }
}

/// Writes an AdmissionReview v1 answer, in the field order and with the omissions of kube's
/// `AdmissionReview`, but with `patch` as base64 text, as the apiserver expects for a Go
/// `[]byte` (kube's type writes an array of numbers). The base64 is written as it is: its
/// alphabet needs no JSON escaping.
fn encode(uid: &str, resp: &Response) -> Result<Vec<u8>, BadReview> {
    let internal =
        |e: serde_json::Error| BadReview::Internal(format!("cannot encode the answer: {e}"));
    let patch_len = resp.patch.as_ref().map_or(0, |p| p.len() / 3 * 4 + 4);
    let mut out = Vec::with_capacity(256 + patch_len);
    out.extend_from_slice(br#"{"apiVersion":""#);
    out.extend_from_slice(API_VERSION.as_bytes());
    out.extend_from_slice(br#"","kind":""#);
    out.extend_from_slice(KIND.as_bytes());
    out.extend_from_slice(br#"","response":{"uid":"#);
    serde_json::to_writer(&mut out, uid).map_err(internal)?;
    out.extend_from_slice(match resp.allowed {
        true => br#","allowed":true,"status":{"#,
        false => br#","allowed":false,"status":{"#,
    });
    if !resp.message.is_empty() {
        out.extend_from_slice(br#""message":"#);
        serde_json::to_writer(&mut out, &resp.message).map_err(internal)?;
    }
    out.push(b'}');
    if let Some(patch) = &resp.patch {
        out.extend_from_slice(br#","patch":""#);
        // base64-simd: the patch (the whole sidecar on a first admission) is most of the
        // answer's bytes; the length is computed for the buffer, so it always fits.
        let b64 = base64_simd::STANDARD;
        let start = out.len();
        out.resize(start + b64.encoded_length(patch.len()), 0);
        if let Some(tail) = out.get_mut(start..) {
            let _ = b64.encode(patch.as_bytes(), base64_simd::Out::from_slice(tail));
        }
        out.extend_from_slice(br#"","patchType":"JSONPatch""#);
    }
    if !resp.warnings.is_empty() {
        out.extend_from_slice(br#","warnings":"#);
        serde_json::to_writer(&mut out, &resp.warnings).map_err(internal)?;
    }
    out.extend_from_slice(b"}}");
    Ok(out)
}

/// The request's object as the core reads it: `apiVersion` and `kind` first, then
/// `metadata` (checked as an ObjectMeta and written back in its field order, `{}` when
/// absent), then the other fields as sent; the request's namespace is filled in when the
/// object has none (the apiserver sets it before admission; a test client may not).
fn object_json(raw: &RawValue, namespace: Option<&str>) -> Result<Value, BadReview> {
    let object: Value = serde_json::from_str(raw.get())?;
    let Value::Object(mut fields) = object else {
        let what = match &object {
            Value::Array(_) => Unexpected::Seq,
            Value::String(s) => Unexpected::Str(s),
            Value::Bool(b) => Unexpected::Bool(*b),
            _ => Unexpected::Other("a scalar"),
        };
        return Err(BadReview::Malformed(serde::de::Error::invalid_type(
            what,
            &"a Kubernetes object",
        )));
    };
    let mut out = Map::with_capacity(fields.len() + 1);
    if let (Some(Value::String(_)), Some(Value::String(_))) =
        (fields.get("apiVersion"), fields.get("kind"))
    {
        for key in ["apiVersion", "kind"] {
            if let Some(v) = fields.shift_remove(key) {
                out.insert(key.to_string(), v);
            }
        }
    }
    let meta = match fields.shift_remove("metadata") {
        Some(m) => ObjectMeta::deserialize(m)?,
        None => ObjectMeta::default(),
    };
    let mut meta = serde_json::to_value(meta)?;
    if let (Some(ns), Some(meta)) = (namespace, meta.as_object_mut()) {
        if !meta.contains_key("namespace") {
            meta.insert("namespace".to_string(), Value::String(ns.to_string()));
        }
    }
    out.insert("metadata".to_string(), meta);
    out.extend(fields);
    Ok(Value::Object(out))
}

/// The object's text, or `None` for an answer that needs none (operations other than CREATE
/// and UPDATE are allowed untouched).
fn admitted_object<'a>(req: &Request<'a, &'a RawValue>) -> Result<Option<&'a RawValue>, BadReview> {
    if admits(req) {
        req.object.map(Some).ok_or(BadReview::NoObject)
    } else {
        Ok(None)
    }
}

fn answer<O>(
    req: &Request<O>,
    resp: &Response,
    decision: &'static str,
) -> Result<Answer, BadReview> {
    Ok(Answer {
        body: encode(&req.uid, resp)?,
        summary: summary(req, decision),
    })
}

fn type_of(object: &Value) -> (&str, &str) {
    let s = |k: &str| object.get(k).and_then(Value::as_str).unwrap_or("?");
    (s("apiVersion"), s("kind"))
}

/// `POST /mutate`: Deployments and InferenceServices. A well-formed Deployment is read in
/// the same pass as the review, only where the mutation reads or changes it; anything else
/// (InferenceServices, odd objects, a stale sidecar to replace or remove, reviews that do not
/// decode) is decoded again, whole.
pub fn mutate_review(body: &[u8], cfg: &WebhookConfig) -> Result<Answer, BadReview> {
    if let Ok(mut req) = decode::<MaybeDeployment>(body) {
        if let Some(MaybeDeployment(Some(deployment))) = req.object.take() {
            if admits(&req) {
                let namespace = req.namespace.as_deref();
                if let Some(patched) = mutate::deployment_patch(deployment, namespace, cfg) {
                    return answer_patch(&req, patched, cfg);
                }
            }
        }
    }
    let req = decode::<&RawValue>(body)?;
    let Some(raw) = admitted_object(&req)? else {
        return answer(&req, &Response::allow(Vec::new()), "allowed");
    };
    let object = object_json(raw, req.namespace.as_deref())?;
    if WorkloadKind::of(&object).is_none() {
        let (api_version, kind) = type_of(&object);
        return Err(BadReview::WrongKind(
            format!("{api_version}/{kind}"),
            "/mutate takes apps/v1 Deployments and serving.kserve.io/v1beta1 InferenceServices",
        ));
    }
    answer_patch(&req, mutate::whole_object_patch(&object, cfg), cfg)
}

/// Whether the operation is one the webhook looks at (others are allowed untouched).
fn admits<O>(req: &Request<O>) -> bool {
    matches!(req.operation, Operation::Create | Operation::Update)
}

/// The answer to a mutation: the patch, or the denial (or warnings) of invalid annotations.
fn answer_patch<O>(
    req: &Request<O>,
    patched: Result<AdmissionPatch, MutateError>,
    cfg: &WebhookConfig,
) -> Result<Answer, BadReview> {
    let (resp, decision) = match patched {
        Ok(m) => match m.patch {
            None => (Response::allow(m.warnings), "allowed"),
            Some(patch) => (
                Response {
                    patch: Some(patch),
                    ..Response::allow(m.warnings)
                },
                "patched",
            ),
        },
        Err(MutateError::Render(e)) => return Err(BadReview::Internal(e.to_string())),
        Err(MutateError::Invalid(invalid)) => match cfg.on_invalid {
            OnInvalid::Deny => (
                Response::deny(invalid.to_string(), invalid.warnings),
                "denied",
            ),
            OnInvalid::Warn => {
                let mut warnings: Vec<String> = invalid
                    .problems
                    .iter()
                    .map(|p| format!("llm-autoscale: not applied: {p}"))
                    .collect();
                warnings.extend(invalid.warnings);
                (Response::allow(warnings), "warned")
            }
        },
    };
    answer(req, &resp, decision)
}

/// `POST /validate`: keda.sh/v1alpha1 ScaledObjects.
pub fn validate_review(body: &[u8], cfg: &WebhookConfig) -> Result<Answer, BadReview> {
    let req = decode(body)?;
    let Some(raw) = admitted_object(&req)? else {
        return answer(&req, &Response::allow(Vec::new()), "allowed");
    };
    let object = object_json(raw, req.namespace.as_deref())?;
    let (api_version, kind) = type_of(&object);
    if api_version != "keda.sh/v1alpha1" || kind != "ScaledObject" {
        return Err(BadReview::WrongKind(
            format!("{api_version}/{kind}"),
            "/validate takes keda.sh/v1alpha1 ScaledObjects",
        ));
    }
    let problems = keda_rules::validate_json(&object, &KnownScalers::of(cfg));
    if problems.is_empty() {
        return answer(&req, &Response::allow(Vec::new()), "allowed");
    }
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
    answer(&req, &Response::deny(msg, Vec::new()), "denied")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SidecarMode;
    use serde_json::json;

    /// The answer as the webhook encoded it through kube's AdmissionReview types and a full
    /// mutation (the code this module replaced), to compare bytes with.
    mod reference {
        use base64::Engine as _;
        use base64::engine::general_purpose::STANDARD as BASE64;
        use kube::core::DynamicObject;
        use kube::core::admission::{
            AdmissionRequest, AdmissionResponse, AdmissionReview, Operation,
        };
        use serde_json::Value;

        use super::super::{Answer, BadReview, Summary};
        use crate::config::{OnInvalid, WebhookConfig};
        use crate::keda::rules as keda_rules;
        use crate::keda::trigger::KnownScalers;
        use crate::mutate::{MutateError, mutate};
        use crate::workload::WorkloadKind;

        fn decode(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, BadReview> {
            let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body)?;
            if review.types.api_version != "admission.k8s.io/v1"
                || review.types.kind != "AdmissionReview"
            {
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
                // The name as the replaced code wrote it (leaked: a test's few short strings).
                operation: Box::leak(
                    format!("{:?}", req.operation)
                        .to_uppercase()
                        .into_boxed_str(),
                ),
                dry_run: req.dry_run,
                decision,
            }
        }

        /// Encodes the review. `patch` is a Go `[]byte`, which the apiserver expects as base64;
        /// kube's type serialises it as an array of numbers (also accepted, but 3.5× larger and not
        /// what other tools expect), so it is rewritten here.
        fn encode(resp: AdmissionResponse) -> Result<Vec<u8>, BadReview> {
            let internal = |e: serde_json::Error| {
                BadReview::Internal(format!("cannot encode the answer: {e}"))
            };
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
            let problems = keda_rules::validate_json(&object, &KnownScalers::of(cfg));
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
    }

    fn review(object: &Value, operation: &str, dry_run: bool) -> Vec<u8> {
        let kind = object.get("kind").cloned().unwrap_or(Value::Null);
        let mut request = json!({
            "uid": "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4",
            "kind": {"group": "apps", "version": "v1", "kind": kind},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "operation": operation,
            "userInfo": {"username": "admin", "groups": ["system:masters"]},
            "object": object,
            "oldObject": if operation == "UPDATE" { object.clone() } else { Value::Null },
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        });
        // Without a namespace in the request, and with one the object lacks.
        if let Some(ns) = object.pointer("/metadata/namespace") {
            request["namespace"] = ns.clone();
        } else if dry_run {
            request["namespace"] = json!("from-the-request");
        }
        if let Some(name) = object.pointer("/metadata/name") {
            request["name"] = name.clone();
        }
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request
        }))
        .unwrap()
    }

    type Review = fn(&[u8], &WebhookConfig) -> Result<Answer, BadReview>;

    fn assert_same_answer(body: &[u8], cfg: &WebhookConfig, new: Review, old: Review) {
        match (new(body, cfg), old(body, cfg)) {
            (Ok(a), Ok(b)) => {
                assert_eq!(
                    String::from_utf8_lossy(&a.body),
                    String::from_utf8_lossy(&b.body)
                );
                assert_eq!(a.summary, b.summary);
            }
            (Err(a), Err(b)) => assert_eq!(
                std::mem::discriminant(&a),
                std::mem::discriminant(&b),
                "{a} / {b}"
            ),
            (a, b) => panic!("{}: {a:?} / {b:?}", String::from_utf8_lossy(body)),
        }
    }

    #[test]
    fn mutate_answers_are_byte_for_byte_those_of_kube_types_and_a_full_mutation() {
        let configs = [
            WebhookConfig::default(),
            WebhookConfig {
                on_invalid: OnInvalid::Warn,
                native_sidecars: false,
                ..WebhookConfig::default()
            },
            WebhookConfig {
                sidecar_mode: SidecarMode::None,
                ..WebhookConfig::default()
            },
        ];
        let mut states = Vec::new();
        for object in crate::test_fixtures::objects(&[
            "tests/fixtures/input",
            "tests/fixtures/golden",
            "tests/fixtures/invalid",
            "tests/fixtures/upgrade/rendered-by-0.1.0",
            "examples",
        ]) {
            for cfg in &configs {
                if let Ok(m) = crate::mutate::mutate(&object, cfg) {
                    states.push(m.patched);
                }
            }
            states.push(object);
        }
        // Objects the apiserver would not send, still answered the same.
        states.push(json!({"apiVersion": "apps/v1", "kind": "Deployment"}));
        states.push(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x",
            "annotations": {"llm-autoscale.io/enabled": "true"}}, "spec": 3}),
        );
        for object in &states {
            for (operation, dry_run) in [("CREATE", false), ("UPDATE", true), ("DELETE", false)] {
                let body = review(object, operation, dry_run);
                for cfg in &configs {
                    assert_same_answer(&body, cfg, mutate_review, reference::mutate_review);
                }
            }
        }
        assert!(states.len() > 50, "only {} objects", states.len());
    }

    #[test]
    fn validate_answers_are_byte_for_byte_those_of_kube_types() {
        let cfg = WebhookConfig::default();
        let mut checked = 0;
        for object in
            crate::test_fixtures::objects(&["tests/fixtures/golden", "tests/fixtures/keda"])
        {
            let body = review(&object, "CREATE", false);
            assert_same_answer(&body, &cfg, validate_review, reference::validate_review);
            checked += 1;
        }
        assert!(checked > 10, "only {checked} objects");
    }

    #[test]
    fn bad_reviews_are_refused_for_the_same_reason() {
        let cfg = WebhookConfig::default();
        let ok = review(
            &json!({"apiVersion": "apps/v1", "kind": "Deployment"}),
            "CREATE",
            false,
        );
        let mut bad: Vec<Vec<u8>> = vec![
            b"not json".to_vec(),
            b"{}".to_vec(),
            br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":null}"#
                .to_vec(),
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
            ok.clone(),
        ];
        let mut v: Value = serde_json::from_slice(&ok).unwrap();
        v["request"]["object"] = Value::Null;
        bad.push(serde_json::to_vec(&v).unwrap());
        v["request"]["object"] = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}});
        bad.push(serde_json::to_vec(&v).unwrap());
        v["request"]["object"] = json!([1, 2]);
        bad.push(serde_json::to_vec(&v).unwrap());
        v["request"]["object"] = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"annotations": {"a": 1}}});
        bad.push(serde_json::to_vec(&v).unwrap());
        v["request"]["object"] = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"annotations": null, "name": "n"}});
        bad.push(serde_json::to_vec(&v).unwrap());
        if let Some(r) = v["request"].as_object_mut() {
            r.remove("uid");
        }
        bad.push(serde_json::to_vec(&v).unwrap());
        for body in &bad {
            assert_same_answer(body, &cfg, mutate_review, reference::mutate_review);
            assert_same_answer(body, &cfg, validate_review, reference::validate_review);
        }
    }
}
