//! What the sidecar adds for the built-in scaler (`builtin` backend): counters and
//! histograms sent as deltas per scrape, and the namespace's token on every export.
//!
//! - `cumulative_to_delta/llm-autoscale-deltas` in the main pipeline, after the filter: with
//!   neither `include` nor `exclude` it converts every cumulative monotonic sum and histogram
//!   (non-monotonic sums and gauges pass unchanged), and `initial_value: drop` keeps a
//!   series' first scrape (every request since the model server started) as the baseline
//!   only (collector-contrib v0.161.0 processor/cumulativetodeltaprocessor `config.go`,
//!   `processor.go`). Deltas are what the scaler merges: across the scrape windows of a
//!   query's window, across pods (a fleet percentile), and across scaler replicas (a series
//!   whose exports moved to another replica).
//! - The OTLP exporter's `headers`: `authorization: Bearer ${env:LLM_AUTOSCALE_SCALER_TOKEN}`,
//!   the variable set from the namespace's Secret (`src/scaler/trust.rs`); the collector
//!   expands `${env:...}` in the configuration when it starts.

use std::collections::BTreeMap;

use serde::Serialize;

/// The processor's id for a collector version (its type was renamed in v0.157.0, as for the
/// latency pipeline: [`super::percentile_pipeline::cumulative_to_delta_id`]).
pub fn processor_id(version: Option<(u32, u32)>) -> &'static str {
    match version {
        Some((0, minor)) if minor < 157 => "cumulativetodelta/llm-autoscale-deltas",
        _ => "cumulative_to_delta/llm-autoscale-deltas",
    }
}

/// `cumulativetodelta` converting everything cumulative.
#[derive(Serialize)]
pub struct ToDelta {
    pub initial_value: &'static str,
}

/// The processor, keyed by its id, to flatten into `processors`.
pub fn processors(version: Option<(u32, u32)>) -> BTreeMap<&'static str, ToDelta> {
    BTreeMap::from([(
        processor_id(version),
        ToDelta {
            initial_value: "drop",
        },
    )])
}

/// The exporter's headers carrying the token from `token_env`.
pub fn headers(token_env: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([(
        crate::scaler::trust::HEADER,
        format!("Bearer ${{env:{token_env}}}"),
    )])
}
