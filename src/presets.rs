//! vLLM presets (what to scale on, with sensible defaults) and the metric rename table.

use crate::keda::OperationOverTime;
use crate::query::Aggregation;
pub use crate::version::Version;

/// Defaults for a well-known vLLM metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    /// Name for the `preset` annotation.
    pub name: &'static str,
    /// Trigger name (an identifier, unique within a ScaledObject).
    pub trigger_name: &'static str,
    pub metric: &'static str,
    pub aggregation: Aggregation,
    /// Target per replica (for `AverageValue`) or for the mean (for `Value`).
    pub target: &'static str,
    /// `operationOverTime` for the OTel scaler.
    pub operation_over_time: OperationOverTime,
    /// Counters are scaled on their rate.
    pub counter: bool,
    /// Latency presets: the percentile of the histogram `metric` (`"90"`), computed per scrape
    /// window by the sidecar (otel) or by `histogram_quantile` (prometheus).
    pub percentile: Option<&'static str>,
}

pub const PRESETS: [Preset; 8] = [
    Preset {
        name: "queue-depth",
        trigger_name: "queue_depth",
        metric: "vllm:num_requests_waiting",
        aggregation: Aggregation::Sum,
        target: "5",
        operation_over_time: OperationOverTime::Avg,
        counter: false,
        percentile: None,
    },
    Preset {
        name: "kv-cache",
        trigger_name: "kv_cache",
        metric: "vllm:kv_cache_usage_perc",
        aggregation: Aggregation::Avg,
        target: "0.8",
        operation_over_time: OperationOverTime::Avg,
        counter: false,
        percentile: None,
    },
    Preset {
        name: "running-requests",
        trigger_name: "running_requests",
        metric: "vllm:num_requests_running",
        aggregation: Aggregation::Sum,
        target: "16",
        operation_over_time: OperationOverTime::Avg,
        counter: false,
        percentile: None,
    },
    Preset {
        name: "token-throughput",
        trigger_name: "token_throughput",
        metric: "vllm:generation_tokens_total",
        aggregation: Aggregation::Sum,
        target: "500",
        operation_over_time: OperationOverTime::Rate,
        counter: true,
        percentile: None,
    },
    latency_preset(
        "ttft-p90",
        "ttft_p90",
        "vllm:time_to_first_token_seconds",
        "1",
    ),
    latency_preset(
        "itl-p90",
        "itl_p90",
        "vllm:inter_token_latency_seconds",
        "0.1",
    ),
    latency_preset(
        "e2e-p90",
        "e2e_p90",
        "vllm:e2e_request_latency_seconds",
        "30",
    ),
    latency_preset(
        "queue-time-p90",
        "queue_time_p90",
        "vllm:request_queue_time_seconds",
        "0.5",
    ),
];

/// A p90 latency preset: the worst pod's windowed p90 (`max`), compared as it is (`Value`),
/// read from the add-on as its last window (`last_one`). The targets sit on vLLM's bucket
/// bounds (see [`crate::latency::VLLM_HISTOGRAMS`]), where the decision is exact; why each
/// value is the default is in the README ("Scaling on latency").
const fn latency_preset(
    name: &'static str,
    trigger_name: &'static str,
    metric: &'static str,
    target: &'static str,
) -> Preset {
    Preset {
        name,
        trigger_name,
        metric,
        aggregation: Aggregation::Max,
        target,
        operation_over_time: OperationOverTime::LastOne,
        counter: false,
        percentile: Some("90"),
    }
}

/// The metric scaled on when nothing is said.
pub const DEFAULT_METRIC: &str = "vllm:num_requests_waiting";

pub fn preset_by_name(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// The preset for `metric` read as it is (`percentile` `None`) or at a percentile.
pub fn preset_for_metric(metric: &str, percentile: Option<&str>) -> Option<&'static Preset> {
    PRESETS
        .iter()
        .find(|p| p.metric == metric && p.percentile == percentile)
}

pub fn preset_names() -> String {
    PRESETS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A metric vLLM renamed. Three states, by vLLM version:
/// before `new_since` only the old name exists; from `new_since` both are exported (the old
/// one deprecated); from `old_hidden_from` only the new one (the old one behind
/// `--show-hidden-metrics-for-version`, then removed from `old_removed_from`).
#[derive(Clone, Copy, Debug)]
pub struct Rename {
    pub old: &'static str,
    pub new: &'static str,
    pub new_since: Version,
    pub old_hidden_from: Version,
    pub old_removed_from: Version,
}

/// What a vLLM version exports of a renamed metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenameState {
    /// Before the rename: only the old name.
    OldOnly,
    /// Both names; the old one is deprecated.
    Both,
    /// Only the new name (the old one hidden, or removed).
    NewOnly,
}

impl Rename {
    pub fn state(&self, v: Version) -> RenameState {
        if v < self.new_since {
            RenameState::OldOnly
        } else if v < self.old_hidden_from {
            RenameState::Both
        } else {
            RenameState::NewOnly
        }
    }

    fn old_fate(&self, v: Version) -> &'static str {
        if v < self.old_removed_from {
            "hidden"
        } else {
            "removed"
        }
    }
}

/// Checked in vLLM's own code (`vllm/v1/metrics/loggers.py` of each release's wheel):
/// `vllm:kv_cache_usage_perc` appears in 0.9.2 (where `gpu_cache_usage_perc` is marked
/// deprecated), the old gauge is only registered with `--show-hidden-metrics-for-version`
/// from 0.11.0 and gone in 0.12.0. `vllm:inter_token_latency_seconds` appears in 0.10.2, the
/// old histogram is hidden from 0.12.0 and gone in 0.15.0.
pub const RENAMES: [Rename; 2] = [
    Rename {
        old: "vllm:gpu_cache_usage_perc",
        new: "vllm:kv_cache_usage_perc",
        new_since: Version(0, 9, 2),
        old_hidden_from: Version(0, 11, 0),
        old_removed_from: Version(0, 12, 0),
    },
    Rename {
        old: "vllm:time_per_output_token_seconds",
        new: "vllm:inter_token_latency_seconds",
        new_since: Version(0, 10, 2),
        old_hidden_from: Version(0, 12, 0),
        old_removed_from: Version(0, 15, 0),
    },
];

/// `vllm:x_bucket` → (`vllm:x`, `_bucket`) when `metric` is `base` or a histogram series of it.
fn split_series<'a>(metric: &'a str, base: &str) -> Option<&'a str> {
    let suffix = metric.strip_prefix(base)?;
    (suffix.is_empty() || matches!(suffix, "_bucket" | "_sum" | "_count")).then_some(suffix)
}

/// The metric name to use for `metric` on a vLLM of `version` (if known), and a warning when
/// the name was changed or is questionable. Names vLLM never renamed pass through silently.
pub fn resolve_alias(metric: &str, version: Option<Version>) -> (String, Option<String>) {
    for r in RENAMES {
        if let Some(suffix) = split_series(metric, r.old) {
            return resolve_old_name(&r, metric, suffix, version);
        }
        if let Some(suffix) = split_series(metric, r.new) {
            return resolve_new_name(&r, metric, suffix, version);
        }
    }
    (metric.to_string(), None)
}

fn resolve_old_name(
    r: &Rename,
    metric: &str,
    suffix: &str,
    version: Option<Version>,
) -> (String, Option<String>) {
    let renamed = format!("{}{suffix}", r.new);
    match version.map(|v| (v, r.state(v))) {
        Some((_, RenameState::OldOnly)) => (metric.to_string(), None),
        Some((v, RenameState::Both)) => (
            metric.to_string(),
            Some(format!(
                "metric {metric} is deprecated in vLLM {v} and hidden from {}: switch to {renamed}",
                r.old_hidden_from
            )),
        ),
        Some((v, RenameState::NewOnly)) => (
            renamed.clone(),
            Some(format!(
                "metric {metric} is {} in vLLM {v} (renamed in {}): using {renamed}",
                r.old_fate(v),
                r.new_since
            )),
        ),
        None => (
            renamed.clone(),
            Some(format!(
                "metric {metric} was renamed to {renamed} in vLLM {} and is hidden from {}: using {renamed}; on an older vLLM set llm-autoscale.io/vllm-version",
                r.new_since, r.old_hidden_from
            )),
        ),
    }
}

fn resolve_new_name(
    r: &Rename,
    metric: &str,
    suffix: &str,
    version: Option<Version>,
) -> (String, Option<String>) {
    match version {
        Some(v) if r.state(v) == RenameState::OldOnly => {
            let old = format!("{}{suffix}", r.old);
            (
                old.clone(),
                Some(format!(
                    "metric {metric} does not exist before vLLM {} (this is {v}): using {old}, the name this version exports",
                    r.new_since
                )),
            )
        }
        _ => (metric.to_string(), None),
    }
}

/// The vLLM version of a container image such as `vllm/vllm-openai:v0.11.0`, if it says.
pub fn version_from_image(image: &str) -> Option<Version> {
    let (repo, tag) = image.rsplit_once(':')?;
    if repo.contains('/') && tag.contains('/') {
        return None; // a registry port, not a tag
    }
    if !repo.to_ascii_lowercase().contains("vllm") {
        return None;
    }
    let tag = tag.split('@').next()?;
    Version::parse(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_versions() {
        assert_eq!(
            version_from_image("vllm/vllm-openai:v0.11.0"),
            Some(Version(0, 11, 0))
        );
        assert_eq!(
            version_from_image("docker.io/vllm/vllm-openai:0.9.2"),
            Some(Version(0, 9, 2))
        );
        assert_eq!(version_from_image("vllm/vllm-openai:latest"), None);
        assert_eq!(version_from_image("nginx:1.27"), None);
        assert_eq!(version_from_image("registry:5000/vllm"), None);
    }

    #[test]
    fn old_name_on_new_vllm_is_rewritten() {
        let (m, w) = resolve_alias("vllm:gpu_cache_usage_perc", Some(Version(0, 11, 0)));
        assert_eq!(m, "vllm:kv_cache_usage_perc");
        assert!(w.unwrap().contains("is hidden in vLLM v0.11.0"));
        let (m, w) = resolve_alias("vllm:gpu_cache_usage_perc", Some(Version(0, 12, 0)));
        assert_eq!(m, "vllm:kv_cache_usage_perc");
        assert!(w.unwrap().contains("is removed in vLLM v0.12.0"));
    }

    #[test]
    fn three_states_at_the_checked_boundaries() {
        let [kv, itl] = RENAMES;
        assert_eq!(kv.state(Version(0, 9, 1)), RenameState::OldOnly);
        assert_eq!(kv.state(Version(0, 9, 2)), RenameState::Both);
        assert_eq!(kv.state(Version(0, 10, 2)), RenameState::Both);
        assert_eq!(kv.state(Version(0, 11, 0)), RenameState::NewOnly);
        assert_eq!(itl.state(Version(0, 10, 1)), RenameState::OldOnly);
        assert_eq!(itl.state(Version(0, 10, 2)), RenameState::Both);
        assert_eq!(itl.state(Version(0, 11, 2)), RenameState::Both);
        assert_eq!(itl.state(Version(0, 12, 0)), RenameState::NewOnly);
    }

    #[test]
    fn both_names_exported_keeps_the_new_name_silently() {
        assert_eq!(
            resolve_alias("vllm:kv_cache_usage_perc", Some(Version(0, 10, 0))),
            ("vllm:kv_cache_usage_perc".into(), None)
        );
    }

    #[test]
    fn old_name_on_old_vllm_is_kept_silently() {
        let (m, w) = resolve_alias("vllm:gpu_cache_usage_perc", Some(Version(0, 9, 1)));
        assert_eq!(m, "vllm:gpu_cache_usage_perc");
        assert!(w.is_none());
    }

    #[test]
    fn old_name_while_deprecated_is_kept_with_a_warning() {
        let (m, w) = resolve_alias(
            "vllm:time_per_output_token_seconds_bucket",
            Some(Version(0, 11, 1)),
        );
        assert_eq!(m, "vllm:time_per_output_token_seconds_bucket");
        assert!(w.unwrap().contains("deprecated"));
    }

    #[test]
    fn unknown_version_rewrites_and_says_how_to_keep() {
        let (m, w) = resolve_alias("vllm:time_per_output_token_seconds", None);
        assert_eq!(m, "vllm:inter_token_latency_seconds");
        assert!(w.unwrap().contains("llm-autoscale.io/vllm-version"));
    }

    #[test]
    fn new_name_on_old_vllm_uses_the_old_name() {
        let (m, w) = resolve_alias("vllm:kv_cache_usage_perc", Some(Version(0, 8, 5)));
        assert_eq!(m, "vllm:gpu_cache_usage_perc");
        assert!(w.unwrap().contains("does not exist before vLLM v0.9.2"));
        let (m, _) = resolve_alias(
            "vllm:inter_token_latency_seconds_count",
            Some(Version(0, 10, 1)),
        );
        assert_eq!(m, "vllm:time_per_output_token_seconds_count");
    }

    #[test]
    fn other_names_pass_through() {
        assert_eq!(
            resolve_alias("vllm:num_requests_waiting", None),
            ("vllm:num_requests_waiting".into(), None)
        );
        assert_eq!(
            resolve_alias("vllm:gpu_cache_usage_percentile", None).1,
            None
        );
    }

    #[test]
    fn presets_are_consistent() {
        for p in PRESETS {
            assert!(crate::query::is_metric_name(p.metric));
            assert_eq!(preset_by_name(p.name), Some(&p));
            assert_eq!(preset_for_metric(p.metric, p.percentile), Some(&p));
            assert!(
                p.trigger_name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            );
            if let Some(percentile) = p.percentile {
                let h = crate::latency::vllm_histogram(p.metric).unwrap();
                let target: f64 = p.target.parse().unwrap();
                assert_eq!(
                    h.place(target),
                    crate::latency::TargetPlace::OnBound,
                    "{}",
                    p.name
                );
                assert!(crate::latency::Percentile::parse(percentile).is_ok());
                assert_eq!(preset_for_metric(p.metric, None), None);
            }
        }
    }
}
