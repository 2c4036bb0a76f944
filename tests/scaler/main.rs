//! The built-in scaler as KEDA and the sidecars meet it: the binary's `scaler` command on
//! loopback, OTLP exports in, KEDA's external-scaler calls out (`cargo test --test scaler`).
//! The collector tests (a real collector exporting to it) and the end-to-end tests (KEDA's
//! operator asking it) are in tests/collector and tests/e2e.

mod clients;
mod ha;
mod process;
mod tls;

use std::time::Duration;

use clients::{Keda, export, gauge, histogram, stamped};
use llm_autoscale_webhook::scaler::service::proto::externalscaler::IsActiveResponse;
use llm_autoscale_webhook::scaler::trust::{TrustKey, token_for};
use process::ScalerProcess;
use tonic::Code;

const WAITING: &str = "vllm:num_requests_waiting";
const TTFT: &str = "vllm:time_to_first_token_seconds";
/// vLLM's TTFT bounds up to 2.5 s.
const BOUNDS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
];

fn queue_trigger(activation: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("scalerAddress", "ignored:1"),
        (
            "metricQuery",
            "sum(vllm:num_requests_waiting{deployment=d,namespace=ns})",
        ),
        ("operationOverTime", "last_one"),
        ("targetValue", "5"),
        ("activationTargetValue", activation),
    ]
}

fn ttft_trigger() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "metricQuery",
            "vllm:time_to_first_token_seconds{deployment=d,namespace=ns}",
        ),
        ("percentile", "90"),
        ("window", "30s"),
        ("targetValue", "1"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_keda_from_the_sidecars_points() {
    let s = ScalerProcess::start("answers", &["--staleness=3s".into()]);
    let otlp = s.otlp.to_string();
    let mut keda = Keda::connect(&s.scaler_url()).await;

    // Nothing reported yet: an error, not a 0 (KEDA's fallback counts it).
    let err = keda.value(&queue_trigger("0")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(
        err.message()
            .contains("no series of vllm:num_requests_waiting"),
        "{err:?}"
    );

    // Two pods of the workload report, and one of another workload.
    let rejected = export(
        &otlp,
        None,
        vec![
            gauge(WAITING, stamped("ns", "d", "d-1"), 3.0),
            gauge(WAITING, stamped("ns", "d", "d-2"), 4.0),
            gauge(WAITING, stamped("ns", "other", "o-1"), 100.0),
        ],
    )
    .await
    .unwrap();
    assert_eq!(rejected, 0);
    assert_eq!(keda.value(&queue_trigger("0")).await.unwrap(), 7.0);
    assert_eq!(
        keda.spec(&queue_trigger("0")).await,
        ("vllm-num-requests-waiting".to_string(), 5.0)
    );
    // The activation threshold: active above it, not at it.
    assert!(keda.active(&queue_trigger("6.5")).await.unwrap());
    assert!(!keda.active(&queue_trigger("7")).await.unwrap());

    // The fleet's p90 over the merged windows of two pods: 9 fast requests on one, 11 slow
    // ones in (0.75, 1] on the other: rank 18 of 20 is the 9th of the 11 → 0.75 + 0.25 × 9/11.
    let mut fast = vec![0u64; BOUNDS.len() + 1];
    fast[7] = 9;
    let mut slow = vec![0u64; BOUNDS.len() + 1];
    slow[11] = 11;
    export(
        &otlp,
        None,
        vec![
            histogram(TTFT, stamped("ns", "d", "d-1"), &BOUNDS, &fast),
            histogram(TTFT, stamped("ns", "d", "d-2"), &BOUNDS, &slow),
        ],
    )
    .await
    .unwrap();
    let p90 = keda.value(&ttft_trigger()).await.unwrap();
    assert!((p90 - (0.75 + 0.25 * 9.0 / 11.0)).abs() < 1e-9, "{p90}");
    let (name, target) = keda.spec(&ttft_trigger()).await;
    assert_eq!(
        (name.as_str(), target),
        ("vllm-time-to-first-token-seconds-p90", 1.0)
    );

    // Idle pods that still report: no demand (0, inactive), not an error. A fresh scaler
    // replica would have only these windows; here the 30 s window still holds the busy ones,
    // so ask with a minimum the busy windows do not reach.
    let mut idle_trigger = ttft_trigger();
    idle_trigger.push(("minRequests", "100"));
    let zero = vec![0u64; BOUNDS.len() + 1];
    export(
        &otlp,
        None,
        vec![
            histogram(TTFT, stamped("ns", "d", "d-1"), &BOUNDS, &zero),
            histogram(TTFT, stamped("ns", "d", "d-2"), &BOUNDS, &zero),
        ],
    )
    .await
    .unwrap();
    assert_eq!(keda.value(&idle_trigger).await.unwrap(), 0.0);
    assert!(!keda.active(&idle_trigger).await.unwrap());

    // Bad metadata is refused with every problem named.
    let err = keda
        .value(&[("metricQuery", "sum(x{a!=b})"), ("window", "0")])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    for needle in [
        "metadata.metricQuery",
        "metadata.window",
        "metadata.targetValue",
    ] {
        assert!(err.message().contains(needle), "{needle}: {err:?}");
    }

    // The sidecars stop: past the staleness window the answer is an error again.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let err = keda.value(&queue_trigger("0")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("stopped reporting"), "{err:?}");

    let text = s.metrics_text();
    for needle in [
        "llm_autoscale_scaler_points_total{result=\"accepted\"} 7",
        "llm_autoscale_scaler_series 5",
        "llm_autoscale_scaler_workloads 2",
        "llm_autoscale_scaler_exports_total 3",
        "llm_autoscale_scaler_answers_total{rpc=\"GetMetrics\",outcome=\"value\"} 2",
        "llm_autoscale_scaler_answers_total{rpc=\"GetMetrics\",outcome=\"no_demand\"} 1",
        "llm_autoscale_scaler_answers_total{rpc=\"GetMetrics\",outcome=\"error\"} 2",
        "llm_autoscale_scaler_query_duration_seconds_count{rpc=\"GetMetrics\"}",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
}

/// `StreamIsActive` sends the activity at once and again as soon as points change it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_is_active_pushes_changes() {
    let s = ScalerProcess::start("stream", &[]);
    let otlp = s.otlp.to_string();
    let mut keda = Keda::connect(&s.scaler_url()).await;
    export(
        &otlp,
        None,
        vec![gauge(WAITING, stamped("ns", "d", "d-1"), 1.0)],
    )
    .await
    .unwrap();
    let mut stream = keda
        .raw()
        .stream_is_active(clients::scaled_object(&queue_trigger("2")))
        .await
        .unwrap()
        .into_inner();
    assert!(!next(&mut stream).await, "1 waiting, activation 2");
    export(
        &otlp,
        None,
        vec![gauge(WAITING, stamped("ns", "d", "d-1"), 3.0)],
    )
    .await
    .unwrap();
    assert!(next(&mut stream).await, "3 waiting, activation 2");
    export(
        &otlp,
        None,
        vec![gauge(WAITING, stamped("ns", "d", "d-1"), 0.0)],
    )
    .await
    .unwrap();
    assert!(!next(&mut stream).await, "back to 0");
}

/// The next activity the stream sends (a generous bound: a hang fails the test).
async fn next(stream: &mut tonic::Streaming<IsActiveResponse>) -> bool {
    tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("a message within 20 s")
        .expect("the stream")
        .expect("not closed")
        .result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_namespaces_own_sidecars_write_its_series() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    let key_text = "k".repeat(48);
    std::fs::write(&key_file, &key_text).unwrap();
    let key = TrustKey::new(key_text.as_bytes()).unwrap();
    let s = ScalerProcess::start(
        "trust",
        &[format!("--trust-key-file={}", key_file.display())],
    );
    let otlp = s.otlp.to_string();
    let mut keda = Keda::connect(&s.scaler_url()).await;
    let ns_token = token_for(&key, "ns");
    let evil_token = token_for(&key, "evil");

    // No token, or another namespace's token: refused outright.
    for token in [None, Some(evil_token.as_str()), Some("v1.forged")] {
        let err = export(
            &otlp,
            token,
            vec![gauge(WAITING, stamped("ns", "d", "d-1"), 9.0)],
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{token:?}: {err:?}");
        assert!(
            err.message().contains("llm-autoscale-scaler-token"),
            "{err:?}"
        );
    }
    // A namespace's own points with its token are stored; a point stamped with another
    // namespace in the same export is refused (a partial success).
    let rejected = export(
        &otlp,
        Some(&ns_token),
        vec![
            gauge(WAITING, stamped("ns", "d", "d-1"), 2.0),
            gauge(WAITING, stamped("victim", "d", "d-1"), 50.0),
        ],
    )
    .await
    .unwrap();
    assert_eq!(rejected, 1);
    assert_eq!(keda.value(&queue_trigger("0")).await.unwrap(), 2.0);
    let victim = [
        (
            "metricQuery",
            "sum(vllm:num_requests_waiting{deployment=d,namespace=victim})",
        ),
        ("targetValue", "5"),
    ];
    assert_eq!(
        keda.value(&victim).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        s.metric("llm_autoscale_scaler_points_total{result=\"untrusted\"}"),
        4.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_limits_drop_new_series_and_say_so() {
    let s = ScalerProcess::start("limits", &["--series-per-workload=2".into()]);
    let otlp = s.otlp.to_string();
    let rejected = export(
        &otlp,
        None,
        vec![
            gauge(WAITING, stamped("ns", "d", "d-1"), 1.0),
            gauge(WAITING, stamped("ns", "d", "d-2"), 1.0),
            gauge(WAITING, stamped("ns", "d", "d-3"), 1.0),
        ],
    )
    .await
    .unwrap();
    assert_eq!(rejected, 1);
    assert_eq!(
        s.metric("llm_autoscale_scaler_points_total{result=\"series_per_workload\"}"),
        1.0
    );
    assert_eq!(s.metric("llm_autoscale_scaler_series"), 2.0);
    let log = s.log();
    assert!(
        log.contains("series limit is dropping") && log.contains("ns/d"),
        "{log}"
    );
}

/// `serve --scaler` runs the same scaler next to the webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scaler_runs_inside_serve() {
    let [webhook, otlp, scaler] = [
        process::free_port(),
        process::free_port(),
        process::free_port(),
    ];
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_llm-autoscale-webhook"))
        .args([
            "serve".to_string(),
            "--scaler".into(),
            "--reconcile=false".into(),
            format!("--addr=127.0.0.1:{webhook}"),
            format!("--otlp-addr=127.0.0.1:{otlp}"),
            format!("--scaler-addr=127.0.0.1:{scaler}"),
        ])
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", scaler)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the scaler port never opened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    export(
        &format!("127.0.0.1:{otlp}"),
        None,
        vec![gauge(WAITING, stamped("ns", "d", "d-1"), 4.0)],
    )
    .await
    .unwrap();
    let mut keda = Keda::connect(&format!("http://127.0.0.1:{scaler}")).await;
    assert_eq!(keda.value(&queue_trigger("0")).await.unwrap(), 4.0);
    let _ = child.kill();
    let _ = child.wait();
}
