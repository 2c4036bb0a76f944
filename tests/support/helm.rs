//! The Helm chart in `charts/llm-autoscale-webhook`, rendered by the real Helm (v3.22.0, built
//! from the Go module proxy by `scripts/e2e-tools.sh helm`, then stamped): used by the chart
//! tests and by the end-to-end tests, which install what it renders.

#![allow(dead_code)] // each test binary uses part of it

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// Release name and namespace of every render: those of `deploy/` (scripts/render-deploy.sh).
pub const RELEASE: &str = "llm-autoscale-webhook";
pub const NAMESPACE: &str = "llm-autoscale-system";

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn chart_dir() -> PathBuf {
    repo_path("charts/llm-autoscale-webhook")
}

/// Builds (once per process; well under a second when stamped) the tool groups asked for, and
/// returns the directory of the binaries.
pub fn tools(groups: &[&str]) -> PathBuf {
    let script = repo_path("scripts/e2e-tools.sh");
    let status = Command::new("bash")
        .arg(&script)
        .args(groups)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        status.success(),
        "{} {groups:?} failed ({status}); it needs Go",
        script.display()
    );
    repo_path("target/e2e-tools/bin")
}

/// The Helm binary.
pub fn helm() -> PathBuf {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| tools(&["helm"]).join("helm")).clone()
}

/// Runs Helm with `args`, in the repository root.
pub fn run(args: &[&str]) -> Output {
    Command::new(helm())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .expect("run helm")
}

/// `helm template RELEASE CHART -n NAMESPACE ARGS...`: the rendered objects, or Helm's error.
pub fn try_render(args: &[&str]) -> Result<Vec<Value>, String> {
    let chart = chart_dir();
    let mut full = vec![
        "template",
        RELEASE,
        chart.to_str().expect("a UTF-8 path"),
        "--namespace",
        NAMESPACE,
    ];
    full.extend_from_slice(args);
    let out = run(&full);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(objects(&String::from_utf8_lossy(&out.stdout)))
}

/// [`try_render`], which must succeed.
pub fn render(args: &[&str]) -> Vec<Value> {
    try_render(args).unwrap_or_else(|e| panic!("helm template {args:?} failed:\n{e}"))
}

/// The objects of a multi-document YAML stream (empty documents skipped).
pub fn objects(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("rendered YAML parses"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// The one object of this kind and name.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} {name} in the render");
    found[0]
}

/// Every object of this kind.
pub fn all_of<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}
