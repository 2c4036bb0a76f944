//! Multi-document YAML in and out, for the offline `mutate` command.
//!
//! Every document is mutated (items of a `List` one by one); other kinds pass through
//! unchanged; the ScaledObjects that will exist follow the documents, each followed by its
//! InterceptorRoute when the workload has HTTP wake. ScaledObjects and InterceptorRoutes this
//! product manages that were already in the input are replaced by the fresh ones, so running
//! the output through again changes nothing.

use serde_json::Value;

use crate::config::WebhookConfig;
use crate::keda::scaled_object::KIND;
use crate::keda::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::mutate::{MutateError, mutate};
use crate::render::{RenderError, interceptor_route};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("document {index}: not valid YAML: {source}")]
    Yaml {
        index: usize,
        source: serde_yaml_ng::Error,
    },
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("{count} document(s) with invalid annotations:\n{details}")]
    Invalid {
        count: usize,
        details: String,
        /// Warnings about the documents, worth showing with the problems.
        warnings: Vec<String>,
    },
}

/// The mutated manifest and what to tell the user.
#[derive(Debug)]
pub struct MutatedManifest {
    pub yaml: String,
    pub warnings: Vec<String>,
}

fn describe(doc: &Value) -> String {
    let s = |p: &str| doc.pointer(p).and_then(Value::as_str).unwrap_or("?");
    let ns = doc.pointer("/metadata/namespace").and_then(Value::as_str);
    match ns {
        Some(ns) => format!("{} {ns}/{}", s("/kind"), s("/metadata/name")),
        None => format!("{} {}", s("/kind"), s("/metadata/name")),
    }
}

/// A ScaledObject or InterceptorRoute labelled as managed by this product.
fn is_managed_output(doc: &Value) -> bool {
    let kind = doc.get("kind").and_then(Value::as_str);
    (kind == Some(KIND) || kind == Some(interceptor_route::KIND))
        && doc
            .pointer("/metadata/labels")
            .and_then(|l| l.get(MANAGED_BY_LABEL))
            .and_then(Value::as_str)
            == Some(MANAGED_BY)
}

/// Parses every YAML document of `text`; empty documents are skipped.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, ManifestError> {
    let mut docs = Vec::new();
    for (index, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let v: Value = serde::Deserialize::deserialize(de)
            .map_err(|source| ManifestError::Yaml { index, source })?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

/// Writes documents as multi-document YAML.
pub fn to_yaml(docs: &[Value]) -> Result<String, RenderError> {
    let mut out = String::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml_ng::to_string(d).map_err(|e| RenderError::new("manifest", e))?);
    }
    Ok(out)
}

/// What mutating the documents gave: the objects to append, warnings, and failures.
#[derive(Default)]
struct Collected {
    rendered: Vec<Value>,
    warnings: Vec<String>,
    failures: Vec<(String, MutateError)>,
}

impl Collected {
    /// One document mutated (`None`: it was a managed output, replaced by a fresh one).
    fn one(&mut self, doc: &Value, cfg: &WebhookConfig) -> Option<Value> {
        if is_managed_output(doc) {
            return None;
        }
        let what = describe(doc);
        match mutate(doc, cfg) {
            Ok(m) => {
                let warnings = m.warnings.iter().map(|w| format!("{what}: {w}"));
                self.warnings.extend(warnings);
                let rendered = [
                    m.scaled_object.as_ref().map(serde_json::to_value),
                    m.interceptor_route.as_ref().map(serde_json::to_value),
                ];
                for r in rendered.into_iter().flatten() {
                    match r {
                        Ok(v) => self.rendered.push(v),
                        Err(e) => self
                            .failures
                            .push((what.clone(), RenderError::new("rendered object", e).into())),
                    }
                }
                Some(m.patched)
            }
            Err(e) => {
                let warnings = e.warnings().iter().map(|w| format!("{what}: {w}"));
                self.warnings.extend(warnings);
                self.failures.push((what, e));
                Some(doc.clone())
            }
        }
    }

    /// A `List`'s items one by one; any other document as itself.
    fn document(&mut self, doc: &Value, cfg: &WebhookConfig) -> Option<Value> {
        let items = doc
            .get("items")
            .and_then(Value::as_array)
            .filter(|_| doc.get("kind").and_then(Value::as_str) == Some("List"));
        let Some(items) = items else {
            return self.one(doc, cfg);
        };
        let items: Vec<Value> = items.iter().filter_map(|i| self.one(i, cfg)).collect();
        let mut list = doc.clone();
        if let Some(fields) = list.as_object_mut() {
            fields.insert("items".into(), Value::Array(items));
        }
        Some(list)
    }
}

/// Mutates a whole manifest. On invalid annotations nothing is returned but every problem.
pub fn mutate_manifest(text: &str, cfg: &WebhookConfig) -> Result<MutatedManifest, ManifestError> {
    let docs = parse_documents(text)?;
    let mut c = Collected::default();
    let mut out_docs: Vec<Value> = docs.iter().filter_map(|d| c.document(d, cfg)).collect();
    if !c.failures.is_empty() {
        let details = c
            .failures
            .iter()
            .map(|(what, e)| format!("{what}: {e}"))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(ManifestError::Invalid {
            count: c.failures.len(),
            details,
            warnings: c.warnings,
        });
    }
    out_docs.extend(c.rendered);
    Ok(MutatedManifest {
        yaml: to_yaml(&out_docs)?,
        warnings: c.warnings,
    })
}
