//! Where the time of an admitted create goes, through the real kube-apiserver. A measurement,
//! not a test (it asserts only that each phase did what it names): run it with
//! `scripts/measure-apiserver-admission.sh`, which builds the release webhook and prints the
//! table; `cargo test` skips it.
//!
//! Dry-run creates of a Deployment over one kept-alive client connection, in four phases:
//!
//! - `no webhook`: before the chart's webhook configurations exist;
//! - `not sent`: a Deployment without the opt-in (the configuration's matchConditions, CEL
//!   evaluated by the API server, keep it from the webhook);
//! - `sent, no patch`: the example Deployment as stored after admission (its sidecar current);
//! - `sent, patched`: the example Deployment (the sidecar and its status added).
//!
//! For each phase: the client's latency percentiles; from the API server's own metrics its mean
//! time handling the create (`apiserver_request_duration_seconds`, POST deployments) and its
//! mean time in this webhook (`apiserver_admission_webhook_admission_duration_seconds`,
//! k8s.io/apiserver `pkg/admission/metrics/metrics.go`): the clock runs around
//! `callAttrMutatingHook` (`pkg/admission/plugin/webhook/mutating/dispatcher.go`), so it holds
//! the call and, when there is a patch, decoding it, encoding the object to JSON, applying the
//! patch, decoding and defaulting the result; and the webhook's own handling time
//! (`llm_autoscale_admission_duration_seconds`, from the body read to the answer written).
//! (The API server's `step_admission_duration_seconds` has no resource label, so it mixes in
//! every other create of the moment: not used.)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::chart_install;
use crate::cluster::ControlPlane;
use crate::product::free_port;

const NS: &str = "llm";
/// Creates per phase, after as many unmeasured ones.
const CREATES: usize = 400;

/// Sums and counts of the Prometheus histograms the table reads, by series.
type Histograms = BTreeMap<String, f64>;

/// The `_sum` and `_count` lines of `names` in a Prometheus text exposition.
fn histograms(text: &str, names: &[&str]) -> Histograms {
    text.lines()
        .filter(|l| names.iter().any(|n| l.starts_with(n)))
        .filter(|l| l.contains("_sum") || l.contains("_count"))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Mean of the histogram whose series contain every part of `filter`, between two snapshots.
fn mean_ms(before: &Histograms, after: &Histograms, metric: &str, filter: &[&str]) -> String {
    let delta = |suffix: &str| -> f64 {
        after
            .iter()
            .filter(|(s, _)| s.starts_with(&format!("{metric}{suffix}")))
            .filter(|(s, _)| filter.iter().all(|f| s.contains(f)))
            .map(|(s, v)| v - before.get(s).copied().unwrap_or(0.0))
            .sum()
    };
    let count = delta("_count");
    if count == 0.0 {
        return "-".into();
    }
    format!("{:.3} ({count:.0})", delta("_sum") / count * 1000.0)
}

/// The webhook: `serve` without the reconciler, the release build when
/// `ADMISSION_COST_BIN` names it.
fn start_webhook(port: u16, cert: &std::path::Path, key: &std::path::Path) -> Child {
    let bin = std::env::var_os("ADMISSION_COST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_llm-autoscale-webhook")));
    println!("webhook binary: {}", bin.display());
    Command::new(bin)
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .args(["--reconcile", "false", "--log-format", "json"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start llm-autoscale-webhook")
}

fn webhook_metrics(port: u16) -> String {
    let out = Command::new("curl")
        .args(["-ksf", &format!("https://127.0.0.1:{port}/metrics")])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `CREATES` dry-run creates of `object` (after as many unmeasured): latencies in ms, sorted,
/// and whether the last answer carried the sidecar.
async fn creates(api: &Api<Deployment>, object: &Deployment) -> (Vec<f64>, bool) {
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let mut latencies = Vec::with_capacity(CREATES);
    let mut injected = false;
    for i in 0..2 * CREATES {
        let start = Instant::now();
        let created = api.create(&params, object).await.expect("dry-run create");
        if i >= CREATES {
            latencies.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        injected = created
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|p| p.init_containers)
            .is_some_and(|c| c.iter().any(|c| c.name == "llm-autoscale-collector"));
    }
    latencies.sort_by(f64::total_cmp);
    (latencies, injected)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn example() -> Value {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/vllm-deployment.yaml"),
    )
    .expect("example");
    serde_yaml_ng::from_str(&text).expect("example parses")
}

#[test]
#[ignore = "a measurement: scripts/measure-apiserver-admission.sh"]
fn apiserver_admission_cost() {
    let cp = ControlPlane::start();
    cp.kubectl_ok(&["create", "namespace", NS]);
    cp.kubectl_ok(&["create", "namespace", "llm-autoscale-system"]);
    let (cert, key) = cp.issue_serving_cert(&cp.log_dir().join("../webhook-certs"));
    let port = free_port();

    let opted_in = example();
    let mut plain = opted_in.clone();
    plain["metadata"]["annotations"] = json!({});
    let current = llm_autoscale_webhook::mutate::mutate(&opted_in, &Default::default())
        .expect("the example mutates")
        .patched;
    let typed = |v: &Value| -> Deployment { serde_json::from_value(v.clone()).expect("typed") };

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _in_runtime = rt.enter();
    let config = rt
        .block_on(kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(cp.kubeconfig()).expect("kubeconfig"),
            &kube::config::KubeConfigOptions::default(),
        ))
        .expect("client config");
    let api: Api<Deployment> = Api::namespaced(kube::Client::try_from(config).expect("client"), NS);
    let apiserver_metrics = || {
        histograms(
            &cp.kubectl_ok(&["get", "--raw", "/metrics"]),
            &[
                "apiserver_admission_webhook_admission_duration_seconds",
                "apiserver_request_duration_seconds",
            ],
        )
    };

    let mut webhook: Option<Child> = None;
    println!(
        "{:<16} {:>8} {:>8} {:>8}   {:>22} {:>22} {:>22}",
        "phase",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "apiserver→webhook_ms",
        "webhook_handling_ms",
        "apiserver_create_ms"
    );
    let phases: [(&str, &Value, bool); 4] = [
        ("no webhook", &opted_in, false),
        ("not sent", &plain, false),
        ("sent, no patch", &current, true),
        ("sent, patched", &opted_in, true),
    ];
    for (i, (name, object, expect_sidecar)) in phases.into_iter().enumerate() {
        if i == 1 {
            chart_install::install(&cp, port);
            webhook = Some(start_webhook(port, &cert, &key));
            cp.wait_for("the webhook", Duration::from_secs(30), || {
                !webhook_metrics(port).is_empty()
            });
        }
        let (api_before, hook_before) = (
            apiserver_metrics(),
            histograms(
                &webhook_metrics(port),
                &["llm_autoscale_admission_duration"],
            ),
        );
        let (latencies, injected) = rt.block_on(creates(&api, &typed(object)));
        let (api_after, hook_after) = (
            apiserver_metrics(),
            histograms(
                &webhook_metrics(port),
                &["llm_autoscale_admission_duration"],
            ),
        );
        assert_eq!(injected, expect_sidecar, "{name}: sidecar in the answer");
        println!(
            "{:<16} {:>8.3} {:>8.3} {:>8.3}   {:>22} {:>22} {:>22}",
            name,
            percentile(&latencies, 50.0),
            percentile(&latencies, 90.0),
            percentile(&latencies, 99.0),
            mean_ms(
                &api_before,
                &api_after,
                "apiserver_admission_webhook_admission_duration_seconds",
                &["deployments.llm-autoscale.io", "type=\"admit\""],
            ),
            mean_ms(
                &hook_before,
                &hook_after,
                "llm_autoscale_admission_duration_seconds",
                &["route=\"mutate\""],
            ),
            mean_ms(
                &api_before,
                &api_after,
                "apiserver_request_duration_seconds",
                &[
                    "verb=\"POST\"",
                    "resource=\"deployments\"",
                    "dry_run=\"All\""
                ],
            ),
        );
    }
    if let Some(mut w) = webhook {
        let _ = w.kill();
        let _ = w.wait();
    }
}
