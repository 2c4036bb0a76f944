//! Not a timing benchmark: a fixed amount of admission work for instruction counters, and the
//! review bodies the load benchmark sends.
//!
//! ```text
//! cargo bench --bench admission_cases -- run <case> <iterations>   decode, mutate, encode
//! cargo bench --bench admission_cases -- review <case>             print the review body
//! ```
//!
//! Cases: `typical` (`examples/vllm-deployment.yaml`), `current` (the same, as stored after
//! admission: answered without a patch) and `env-N` (the same Deployment with N environment
//! variables). `run` admits the same object again and again, as a cluster does on every apply:
//! its rendering is memoised after the first; `first-sight` runs admit `typical` under a new
//! name each time, so every one renders the sidecar. Instruction counts under `valgrind --tool=callgrind` are
//! repeatable where wall-clock time on a shared machine is not:
//!
//! ```sh
//! cargo bench --bench admission_cases --no-run
//! valgrind --tool=callgrind target/release/deps/admission_cases-* run typical 1000
//! ```

mod common;

/// The allocator of the webhook's binary (`src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::io::Write as _;
use std::process::ExitCode;

use llm_autoscale_webhook::admission::mutate_review;
use llm_autoscale_webhook::config::WebhookConfig;

fn main() -> ExitCode {
    // `cargo bench` adds `--bench` to the arguments it passes through.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["run", case, iterations] => {
            let (Some(object), Ok(iterations)) = (common::case(case), iterations.parse::<u64>())
            else {
                return usage();
            };
            let cfg = WebhookConfig::default();
            let body = common::review_body(&object);
            let expected = if *case == "current" {
                "allowed"
            } else {
                "patched"
            };
            let mut bytes = 0;
            for _ in 0..iterations {
                let answer =
                    mutate_review(black_box(&body), black_box(&cfg)).expect("valid review");
                assert_eq!(answer.summary.decision, expected);
                bytes += answer.body.len();
            }
            println!(
                "{case}: {iterations} reviews of {} bytes, {bytes} bytes answered",
                body.len()
            );
            ExitCode::SUCCESS
        }
        ["first-sight", iterations] => {
            let Ok(iterations) = iterations.parse::<u64>() else {
                return usage();
            };
            let cfg = WebhookConfig::default();
            let bodies: Vec<Vec<u8>> = (0..iterations)
                .map(|i| {
                    let mut object = common::example();
                    object["metadata"]["name"] = format!("first-sight-{i}").into();
                    common::review_body(&object)
                })
                .collect();
            for body in &bodies {
                let answer = mutate_review(black_box(body), black_box(&cfg)).expect("valid review");
                assert_eq!(answer.summary.decision, "patched");
            }
            println!("first-sight: {iterations} reviews, each rendering its sidecar");
            ExitCode::SUCCESS
        }
        ["review", case] => {
            let Some(object) = common::case(case) else {
                return usage();
            };
            std::io::stdout()
                .write_all(&common::review_body(&object))
                .expect("stdout");
            ExitCode::SUCCESS
        }
        // A plain `cargo bench` runs every bench target: nothing to time here.
        [] => ExitCode::SUCCESS,
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: admission_cases run <typical|current|env-N> <iterations> | first-sight <iterations> | review <case>"
    );
    ExitCode::FAILURE
}
