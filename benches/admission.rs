//! Cost of admission against the cost of the transport, in one run:
//!
//! - `admission/pure`: decode the AdmissionReview, mutate, encode the answer (no I/O), for
//!   the annotated vLLM Deployment of `examples/vllm-deployment.yaml`;
//! - `admission/pure_env_1000`: the same Deployment with 1,000 environment variables on its
//!   model server (a 1,000-times larger object for the same added sidecar);
//! - `admission/pure_current`: the typical Deployment as stored after admission (sidecar in
//!   and current): the answer has no patch;
//! - `admission/pure_first_sight`: the typical Deployment under a name never admitted before,
//!   so the sidecar is rendered (the cases above are admitted again, as a Deployment is on
//!   every apply, and find their rendering memoised);
//! - `admission/core_mutate`: only `mutate::mutate` on the already decoded object (the rest
//!   of `admission/pure` is AdmissionReview decoding and encoding);
//! - `https/mutate`: the same review as a full HTTPS round trip to the real server, over one
//!   kept-alive rustls connection (`https/mutate_env_1000`: the large Deployment);
//! - `https/healthz`: a no-op route on the same server and connection (transport only);
//! - `https/healthz_new_connection`: the no-op route with a TCP + TLS handshake each time.
//!
//! The server's per-review log line is formatted (text) and discarded, so its cost counts.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use llm_autoscale_webhook::admission::mutate_review;
use llm_autoscale_webhook::config::WebhookConfig;
use llm_autoscale_webhook::mutate::mutate;

mod common;

/// The allocator of the webhook's binary (`src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use common::{example, harness, review_body, with_env_vars};

fn pure(c: &mut Criterion) {
    let cfg = WebhookConfig::default();
    let body = review_body(&example());
    let large = review_body(&with_env_vars(1000));
    for b in [&body, &large] {
        let answer = mutate_review(b, &cfg).expect("valid review");
        assert_eq!(answer.summary.decision, "patched");
    }
    let mut group = c.benchmark_group("admission");
    group.throughput(Throughput::Elements(1));
    group.bench_function("pure", |b| {
        b.iter(|| mutate_review(black_box(&body), black_box(&cfg)).map(|a| a.body.len()))
    });
    group.bench_function("pure_env_1000", |b| {
        b.iter(|| mutate_review(black_box(&large), black_box(&cfg)).map(|a| a.body.len()))
    });
    let current = review_body(&common::current());
    group.bench_function("pure_current", |b| {
        b.iter(|| mutate_review(black_box(&current), black_box(&cfg)).map(|a| a.body.len()))
    });
    let mut seen = 0u64;
    group.bench_function("pure_first_sight", |b| {
        b.iter_batched(
            || {
                seen += 1;
                let mut object = example();
                object["metadata"]["name"] = format!("first-sight-{seen}").into();
                review_body(&object)
            },
            |body| mutate_review(black_box(&body), black_box(&cfg)).map(|a| a.body.len()),
            BatchSize::SmallInput,
        )
    });
    let object = example();
    group.bench_function("core_mutate", |b| {
        b.iter(|| mutate(black_box(&object), black_box(&cfg)).map(|m| m.patch.0.len()))
    });
    group.finish();
}

fn https(c: &mut Criterion) {
    // The server logs every review, as in production; format the lines but throw them away.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .with_env_filter("info")
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt.block_on(harness::TestServer::start(WebhookConfig::default()));
    let mut client = rt.block_on(server.client());
    let body = hyper::body::Bytes::from(review_body(&example()));
    let large = hyper::body::Bytes::from(review_body(&with_env_vars(1000)));

    let reply = rt
        .block_on(client.post("/mutate", body.clone()))
        .expect("mutate");
    assert_eq!(reply.status, hyper::StatusCode::OK);
    assert!(reply.text().contains("\"patch\""));

    let mut group = c.benchmark_group("https");
    group.throughput(Throughput::Elements(1));
    group.bench_function("mutate", |b| {
        b.iter(|| {
            let reply = rt
                .block_on(client.post("/mutate", body.clone()))
                .expect("mutate");
            black_box(reply.body.len())
        })
    });
    group.bench_function("mutate_env_1000", |b| {
        b.iter(|| {
            let reply = rt
                .block_on(client.post("/mutate", large.clone()))
                .expect("mutate");
            black_box(reply.body.len())
        })
    });
    group.bench_function("healthz", |b| {
        b.iter(|| {
            let reply = rt.block_on(client.get("/healthz")).expect("healthz");
            black_box(reply.body.len())
        })
    });
    group.bench_function("healthz_new_connection", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut c = harness::connect(server.addr, server.client_config.clone())
                    .await
                    .expect("connect");
                c.get("/healthz").await.expect("healthz").body.len()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, pure, https);
criterion_main!(benches);
