//! Upgrading the webhook: Deployments injected by the previous release
//! (tests/fixtures/upgrade/rendered-by-0.1.0, that release's own output, kept as it rendered
//! them) meet this release's webhook and reconciler.
//!
//! A change of the renderer must reach only the workloads it concerns: an unaffected sidecar
//! keeps its hash and its stored status, so re-applying it changes nothing and no GPU pod
//! restarts; an affected one is reported as rendered by an older webhook, which is told apart
//! from configuration drift.

use std::path::{Path, PathBuf};

use llm_autoscale_webhook::config::WebhookConfig;
use llm_autoscale_webhook::manifest::parse_documents;
use llm_autoscale_webhook::mutate::injection_status::InjectionStatus;
use llm_autoscale_webhook::mutate::mutate;
use llm_autoscale_webhook::reconcile::plan::{
    InferenceServiceId, KserveOwner, SidecarState, StaleCause, plan,
};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade/rendered-by-0.1.0")
}

/// The Deployments of one fixture file, as the previous release stored them.
fn deployments(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    parse_documents(&text)
        .unwrap()
        .into_iter()
        .filter(|d| d["kind"] == "Deployment")
        .map(|mut d| {
            d["metadata"]["uid"] = "uid-1".into();
            d
        })
        .collect()
}

fn fixture_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn unaffected_sidecars_are_left_as_the_previous_release_injected_them() {
    let cfg = WebhookConfig::default();
    let mut checked = 0;
    for file in fixture_files() {
        if file.ends_with("histogram-count-query.yaml") {
            continue;
        }
        for d in deployments(&file) {
            let m = mutate(&d, &cfg).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            // The one change: the label this release sets on the metadata of opted-in
            // Deployments (no pod restarts, the generation stays).
            let changed: Vec<String> = m.patch.0.iter().map(|op| op.path().to_string()).collect();
            assert!(
                changed.iter().all(|p| p == "/metadata/labels"
                    || p == "/metadata/labels/llm-autoscale.io~1managed"),
                "{}: re-applying would change more than the managed label: {:?}",
                file.display(),
                m.patch
            );
            let p = plan(&d, &external(), &cfg);
            assert!(
                matches!(
                    p.sidecar,
                    SidecarState::UpToDate | SidecarState::NotExpected
                ),
                "{}: {:?}",
                file.display(),
                p.sidecar
            );
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} Deployments checked");
}

#[test]
fn a_sidecar_the_fix_concerns_is_reported_as_rendered_by_an_older_webhook() {
    // The previous release forwarded only the literal `_count` name, so the histogram never
    // left the pod; this release forwards the histogram too.
    let cfg = WebhookConfig::default();
    let [d] = deployments(&dir().join("histogram-count-query.yaml"))
        .try_into()
        .unwrap();
    let before = InjectionStatus::read(&d).unwrap();
    assert!(
        before.inputs.is_empty(),
        "written before statuses had inputs"
    );
    let p = plan(&d, &KserveOwner::None, &cfg);
    assert_eq!(p.sidecar, SidecarState::Stale(StaleCause::OlderWebhook));
    let (_, message) = p.sidecar.event().unwrap();
    assert!(message.contains("older llm-autoscale-webhook"), "{message}");

    // Applied again, it gets the new sidecar and a status that records its inputs ...
    let injected = mutate(&d, &cfg).unwrap().patched;
    let config = injected["spec"]["template"]["spec"]["initContainers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "LLM_AUTOSCALE_COLLECTOR_CONFIG")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        config.contains(r#"name != "vllm:e2e_request_latency_seconds""#),
        "{config}"
    );
    let after = InjectionStatus::read(&injected).unwrap();
    assert_ne!(after.hash, before.hash);
    assert!(!after.inputs.is_empty());
    assert_eq!(
        plan(&injected, &KserveOwner::None, &cfg).sidecar,
        SidecarState::UpToDate
    );

    // ... so that a later change of its annotations reads as drift, not as an upgrade.
    let mut drifted = injected.clone();
    drifted["metadata"]["annotations"]["llm-autoscale.io/scrape-interval"] = "30s".into();
    let p = plan(&drifted, &KserveOwner::None, &cfg);
    assert_eq!(p.sidecar, SidecarState::Stale(StaleCause::Drift));
    assert!(p.sidecar.event().unwrap().1.contains("configuration drift"));
}

/// A predictor's InferenceService with autoscalerClass `external`.
fn external() -> KserveOwner {
    KserveOwner::Found {
        id: InferenceServiceId {
            name: "isvc".into(),
            uid: "isvc-uid".into(),
        },
        class: Some("external".into()),
    }
}
