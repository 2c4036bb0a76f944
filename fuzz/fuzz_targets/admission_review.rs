//! Arbitrary request bodies never panic the admission path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_autoscale_webhook::admission::{mutate_review, validate_review};
use llm_autoscale_webhook::config::WebhookConfig;

fuzz_target!(|data: &[u8]| {
    let cfg = WebhookConfig::default();
    let _ = mutate_review(data, &cfg);
    let _ = validate_review(data, &cfg);
});
