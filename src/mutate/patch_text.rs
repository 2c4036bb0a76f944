//! The admission patch's JSON text for a Deployment read from its text: its operations written
//! as serde_json writes a `json_patch::Patch`, with the rendered sidecar's JSON text where
//! [`SIDECAR_HOLE`] stands and the status annotation's JSON text, both made once per rendering,
//! instead of serialising them again on every admission (the tests compare the text with the
//! full mutation's patch, byte for byte).

use json_patch::PatchOperation;
use serde_json::Value;

use super::rendering::RenderedSidecar;
use super::template_patch::SIDECAR_HOLE;
use crate::render::RenderError;

/// The text of `ops`, whose [`SIDECAR_HOLE`] stands for `sidecar`'s container.
pub(super) fn write(
    ops: &[PatchOperation],
    sidecar: Option<&RenderedSidecar>,
) -> Result<String, RenderError> {
    let mut out = Vec::with_capacity(256 + sidecar.map_or(0, |s| s.container_text.len()));
    out.push(b'[');
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let (name, path, value) = match op {
            PatchOperation::Add(a) => ("add", &a.path, Some(&a.value)),
            PatchOperation::Remove(r) => ("remove", &r.path, None),
            PatchOperation::Replace(r) => ("replace", &r.path, Some(&r.value)),
            other => {
                serde_json::to_writer(&mut out, other).map_err(failed)?;
                continue;
            }
        };
        out.extend_from_slice(br#"{"op":""#);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(br#"","path":"#);
        serde_json::to_writer(&mut out, path.as_str()).map_err(failed)?;
        if let Some(value) = value {
            out.extend_from_slice(br#","value":"#);
            write_value(&mut out, value, sidecar)?;
        }
        out.push(b'}');
    }
    out.push(b']');
    String::from_utf8(out).map_err(failed)
}

/// `value` as compact JSON, with the sidecar's and its status's texts where they stand.
fn write_value(
    out: &mut Vec<u8>,
    value: &Value,
    sidecar: Option<&RenderedSidecar>,
) -> Result<(), RenderError> {
    match value {
        Value::String(s) if s == SIDECAR_HOLE => {
            let Some(sidecar) = sidecar else {
                return Err(failed("it has the sidecar's place but there is no sidecar"));
            };
            out.extend_from_slice(sidecar.container_text.as_bytes());
        }
        Value::String(s) if sidecar.is_some_and(|c| *s == c.status_annotation) => {
            let status = sidecar.map_or("", |c| c.status_annotation_json.as_str());
            out.extend_from_slice(status.as_bytes());
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item, sidecar)?;
            }
            out.push(b']');
        }
        Value::Object(members) => {
            out.push(b'{');
            for (i, (key, member)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key).map_err(failed)?;
                out.push(b':');
                write_value(out, member, sidecar)?;
            }
            out.push(b'}');
        }
        scalar => serde_json::to_writer(out, scalar).map_err(failed)?,
    }
    Ok(())
}

fn failed(e: impl std::fmt::Display) -> RenderError {
    RenderError::new("the patch", e)
}
