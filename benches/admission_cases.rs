//! Not a timing benchmark: a fixed amount of admission work for instruction counters, and the
//! review bodies the load benchmark sends.
//!
//! ```text
//! cargo bench --bench admission_cases -- run <case> <iterations>   decode, mutate, encode
//! cargo bench --bench admission_cases -- review <case>             print the review body
//! ```
//!
//! Cases: `typical` (`examples/vllm-deployment.yaml`) and `env-N` (the same Deployment with N
//! environment variables). Instruction counts under `valgrind --tool=callgrind` are
//! repeatable where wall-clock time on a shared machine is not:
//!
//! ```sh
//! cargo bench --bench admission_cases --no-run
//! valgrind --tool=callgrind target/release/deps/admission_cases-* run typical 1000
//! ```

mod common;

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
            let mut bytes = 0;
            for _ in 0..iterations {
                let answer =
                    mutate_review(black_box(&body), black_box(&cfg)).expect("valid review");
                assert_eq!(answer.summary.decision, "patched");
                bytes += answer.body.len();
            }
            println!(
                "{case}: {iterations} reviews of {} bytes, {bytes} bytes answered",
                body.len()
            );
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
    eprintln!("usage: admission_cases run <typical|env-N> <iterations> | review <typical|env-N>");
    ExitCode::FAILURE
}
