//! Load on the built-in scaler, as sidecars and KEDA make it (run by
//! `scripts/bench-scaler.sh`; not part of `cargo test`).
//!
//! Every simulated pod exports its series every `--interval` seconds as the builtin sidecar
//! does (gauges as they are, a counter and a latency histogram as deltas, stamped with `pod`,
//! `deployment`, `namespace`), each pod to one replica (the one its connection reached), over
//! `--connections` HTTP/2 connections per replica (gRPC multiplexes the pods' exports on
//! them). Meanwhile KEDA's side asks every workload's two triggers (the queue's sum and the
//! fleet's p90) with `GetMetrics` every 15 s (the HPA's default sync period) and `IsActive`
//! every 30 s (KEDA's default polling interval), spread over the period, at any replica.
//! After the warm-up it records each export's and each `GetMetrics`'s latency (client side:
//! the request and its answer) and prints them as `key value` lines.
//!
//! cargo bench --bench scaler_load -- --otlp 127.0.0.1:4317 --scaler 127.0.0.1:4318
//!   [--workloads 1000] [--pods 4] [--series 10] [--interval 5] [--warmup 20] [--duration 60]
//!   [--connections 64]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use llm_autoscale_webhook::scaler::service::proto::externalscaler::external_scaler_client::ExternalScalerClient;
use llm_autoscale_webhook::scaler::service::proto::externalscaler::{
    GetMetricsRequest, ScaledObjectRef,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, Sum,
    metric, number_data_point,
};
use tokio::sync::Mutex;
use tonic::transport::{Channel, Endpoint};

/// The OTLP builders of the scaler's tests (attributes, clock, export request).
#[allow(dead_code)]
#[path = "../tests/scaler/clients.rs"]
mod clients;

use clients::{export_request, kv, now_ns};

/// vLLM's TTFT bucket bounds.
const BOUNDS: [f64; 22] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];

struct Args {
    otlp: Vec<String>,
    scaler: Vec<String>,
    workloads: usize,
    pods: usize,
    series: usize,
    interval: Duration,
    warmup: Duration,
    duration: Duration,
    connections: usize,
}

fn parse_args() -> Args {
    let mut map: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if let Some(k) = a.strip_prefix("--") {
            if k == "bench" {
                continue;
            }
            map.insert(k.to_string(), it.next().unwrap_or_default());
        }
    }
    let num = |k: &str, d: u64| -> u64 { map.get(k).and_then(|v| v.parse().ok()).unwrap_or(d) };
    let list = |k: &str, d: &str| -> Vec<String> {
        map.get(k)
            .map_or(d, String::as_str)
            .split(',')
            .map(str::to_string)
            .collect()
    };
    Args {
        otlp: list("otlp", "127.0.0.1:4317"),
        scaler: list("scaler", "127.0.0.1:4318"),
        workloads: num("workloads", 1000) as usize,
        pods: num("pods", 4) as usize,
        series: num("series", 10) as usize,
        interval: Duration::from_secs(num("interval", 5)),
        warmup: Duration::from_secs(num("warmup", 20)),
        duration: Duration::from_secs(num("duration", 60)),
        connections: num("connections", 64) as usize,
    }
}

/// One pod's export: `series` series — a latency histogram, a counter, the rest gauges.
fn export_of(
    w: usize,
    pod: usize,
    series: usize,
    tick: u64,
    interval: Duration,
) -> ExportMetricsServiceRequest {
    let now = now_ns();
    let start = now - interval.as_nanos() as u64;
    let attrs = || {
        vec![
            kv("pod", &format!("model-{w}-7c9d5f8b6d-p{pod:04}")),
            kv("deployment", &format!("model-{w}")),
            kv("namespace", &format!("team-{}", w % 50)),
            kv("model_name", "meta-llama/Llama-3.1-8B-Instruct"),
            kv("engine", "0"),
        ]
    };
    let gauge = |name: String, v: f64| Metric {
        name,
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                attributes: attrs(),
                time_unix_nano: now,
                value: Some(number_data_point::Value::AsDouble(v)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let mut metrics = Vec::with_capacity(series);
    let mut counts = vec![0u64; BOUNDS.len() + 1];
    counts[8] = 18 + tick % 3;
    counts[9] = 2;
    metrics.push(Metric {
        name: "vllm:time_to_first_token_seconds".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes: attrs(),
                start_time_unix_nano: start,
                time_unix_nano: now,
                count: counts.iter().sum(),
                sum: Some(4.2),
                bucket_counts: counts,
                explicit_bounds: BOUNDS.to_vec(),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Delta as i32,
        })),
        ..Default::default()
    });
    metrics.push(Metric {
        name: "vllm:generation_tokens_total".into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: vec![NumberDataPoint {
                attributes: attrs(),
                start_time_unix_nano: start,
                time_unix_nano: now,
                value: Some(number_data_point::Value::AsDouble(2500.0)),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    });
    metrics.push(gauge(
        "vllm:num_requests_waiting".into(),
        ((w + pod) % 7) as f64,
    ));
    for i in metrics.len()..series {
        metrics.push(gauge(format!("vllm:gauge_{i}"), i as f64));
    }
    export_request(metrics)
}

fn trigger(w: usize, latency: bool) -> ScaledObjectRef {
    let scope = format!("deployment=model-{w},namespace=team-{}", w % 50);
    let mut m: HashMap<String, String> = HashMap::new();
    if latency {
        m.insert(
            "metricQuery".into(),
            format!("vllm:time_to_first_token_seconds{{{scope}}}"),
        );
        m.insert("percentile".into(), "90".into());
    } else {
        m.insert(
            "metricQuery".into(),
            format!("sum(vllm:num_requests_waiting{{{scope}}})"),
        );
        m.insert("operationOverTime".into(), "avg".into());
    }
    m.insert("window".into(), "60s".into());
    m.insert("targetValue".into(), "5".into());
    ScaledObjectRef {
        name: format!("model-{w}"),
        namespace: format!("team-{}", w % 50),
        scaler_metadata: m,
    }
}

/// Latencies (µs) recorded after the warm-up, and errors.
#[derive(Default)]
struct Record {
    micros: Mutex<Vec<u64>>,
    errors: AtomicU64,
}

impl Record {
    async fn push(&self, measuring: bool, started: Instant, ok: bool) {
        if !measuring {
            return;
        }
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.micros
            .lock()
            .await
            .push(started.elapsed().as_micros() as u64);
    }

    async fn report(&self, name: &str, seconds: f64) {
        let mut v = self.micros.lock().await.clone();
        v.sort_unstable();
        let at = |q: f64| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
            v[i] as f64 / 1000.0
        };
        println!("{name}_per_second {:.1}", v.len() as f64 / seconds);
        println!("{name}_p50_ms {:.3}", at(0.50));
        println!("{name}_p99_ms {:.3}", at(0.99));
        println!("{name}_max_ms {:.3}", at(1.0));
        println!("{name}_errors {}", self.errors.load(Ordering::Relaxed));
    }
}

async fn channels(addresses: &[String], n: usize) -> Vec<Vec<Channel>> {
    let mut out = Vec::new();
    for a in addresses {
        let mut per = Vec::new();
        for _ in 0..n {
            let c = Endpoint::from_shared(format!("http://{a}"))
                .expect("an address")
                .timeout(Duration::from_secs(10))
                .connect()
                .await
                .unwrap_or_else(|e| panic!("connecting to {a}: {e}"));
            per.push(c);
        }
        out.push(per);
    }
    out
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let otlp = channels(&args.otlp, args.connections).await;
    let scaler = channels(&args.scaler, args.connections.min(8)).await;
    let measuring = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicBool::new(true));
    let exports = Arc::new(Record::default());
    let queries = Arc::new(Record::default());
    let mut tasks = Vec::new();

    let pods = args.workloads * args.pods;
    for p in 0..pods {
        let (w, pod) = (p / args.pods, p % args.pods);
        let replica = p % otlp.len();
        let ch = otlp[replica][p % args.connections].clone();
        let (measuring, running, record) = (measuring.clone(), running.clone(), exports.clone());
        let (series, interval) = (args.series, args.interval);
        let offset = interval.mul_f64(p as f64 / pods as f64);
        tasks.push(tokio::spawn(async move {
            let mut client = MetricsServiceClient::new(ch);
            tokio::time::sleep(offset).await;
            let mut tick = tokio::time::interval(interval);
            let mut n = 0u64;
            while running.load(Ordering::Relaxed) {
                tick.tick().await;
                let request = export_of(w, pod, series, n, interval);
                n += 1;
                let started = Instant::now();
                let ok = client.export(request).await.is_ok();
                record
                    .push(measuring.load(Ordering::Relaxed), started, ok)
                    .await;
            }
        }));
    }

    // KEDA: GetMetrics every 15 s, IsActive every 30 s, per trigger.
    let hpa_period = Duration::from_secs(15);
    for t in 0..args.workloads * 2 {
        let (w, latency) = (t / 2, t % 2 == 1);
        let ch = scaler[t % scaler.len()][t % scaler[0].len()].clone();
        let (measuring, running, record) = (measuring.clone(), running.clone(), queries.clone());
        let offset = hpa_period.mul_f64(t as f64 / (args.workloads * 2) as f64);
        tasks.push(tokio::spawn(async move {
            let mut client = ExternalScalerClient::new(ch);
            let r = trigger(w, latency);
            tokio::time::sleep(offset).await;
            let mut tick = tokio::time::interval(hpa_period);
            let mut n = 0u64;
            while running.load(Ordering::Relaxed) {
                tick.tick().await;
                let started = Instant::now();
                let ok = client
                    .get_metrics(GetMetricsRequest {
                        scaled_object_ref: Some(r.clone()),
                        metric_name: "m".into(),
                    })
                    .await
                    .is_ok();
                record
                    .push(measuring.load(Ordering::Relaxed), started, ok)
                    .await;
                if n % 2 == 0 {
                    let _ = client.is_active(r.clone()).await;
                }
                n += 1;
            }
        }));
    }

    tokio::time::sleep(args.warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(args.duration).await;
    measuring.store(false, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    running.store(false, Ordering::Relaxed);
    println!("pods {pods}");
    println!("series {}", pods * args.series);
    println!(
        "points_per_second_offered {:.0}",
        (pods * args.series) as f64 / args.interval.as_secs_f64()
    );
    exports.report("export", seconds).await;
    queries.report("get_metrics", seconds).await;
    for t in tasks {
        t.abort();
    }
}
