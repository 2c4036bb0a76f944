//! The annotation keys: one table, each key with the syntax of its value (the parser), the
//! backends that read it, its default and its documentation. The table drives the check for
//! unknown keys ("did you mean"), the refusal of keys the chosen backend never reads, the
//! syntax check of every value, and the README's annotation table (a test compares them).

use super::Backend;
use super::values::{self, Refusal};
use crate::keda::OperationOverTime;
use crate::presets;
use crate::query;
use crate::version::Version;

/// Which part of the configuration a key belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// The workload and its ScaledObject.
    Workload,
    /// One trigger: a single-metric annotation, or a field of a `triggers` entry.
    Trigger,
    /// HTTP wake through the KEDA HTTP add-on.
    HttpWake,
}

/// The syntax of a value: what is checked before anything else reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    Boolean,
    /// A whole number ≥ 0.
    Count,
    /// Seconds, or a duration such as `30s`, `5m`, `1h`.
    Seconds,
    /// A plain decimal such as `5` or `0.8`.
    Decimal,
    Port,
    HttpPath,
    /// `host:port`.
    GrpcAddress,
    HttpUrl,
    Version,
    /// A lowercase DNS label.
    DnsLabel,
    MetricName,
    /// A percentile, greater than 0 and less than 100.
    Percentile,
    Backend,
    SidecarMode,
    Preset,
    Aggregation,
    OperationOverTime,
    Source,
    MetricType,
    FallbackBehavior,
    SelectPolicy,
    /// Checked where it is read (queries, JSON, lists).
    Free,
}

fn one_of(v: &str, what: &str, names: &[&str]) -> Result<(), Refusal> {
    if names.contains(&v) {
        return Ok(());
    }
    Err(Refusal {
        reason: format!("unknown {what}"),
        fix: format!("write one of {}", names.join(", ")),
    })
}

impl Syntax {
    /// Checks a value's syntax: the reason and the fix when it is wrong.
    pub fn check(self, v: &str) -> Result<(), Refusal> {
        match self {
            Syntax::Boolean => values::boolean(v).map(drop),
            Syntax::Count => values::count(v).map(drop),
            Syntax::Seconds => values::seconds(v).map(drop),
            Syntax::Decimal => values::decimal(v).map(drop),
            Syntax::Port => values::port(v).map(drop),
            Syntax::HttpPath => values::http_path(v).map(drop),
            Syntax::GrpcAddress => values::grpc_address(v).map(drop),
            Syntax::HttpUrl => values::http_url(v).map(drop),
            Syntax::Version => Version::parse(v).map(drop).ok_or(Refusal {
                reason: "not a version".into(),
                fix: "write the version such as \"0.11.0\"".into(),
            }),
            Syntax::DnsLabel => values::dns_label(v).map(drop),
            Syntax::MetricName => values::metric_name(v).map(drop),
            Syntax::Percentile => crate::latency::Percentile::parse(v).map(drop),
            Syntax::Backend => one_of(v, "backend", &Backend::ALL.map(Backend::as_str)),
            Syntax::SidecarMode => {
                one_of(v, "sidecar mode", &["auto", "native", "container", "none"])
            }
            Syntax::Preset => one_of(v, "preset", &presets::PRESETS.map(|p| p.name)),
            Syntax::Aggregation => one_of(
                v,
                "aggregation",
                &query::Aggregation::ALL.map(|a| a.as_str()),
            ),
            Syntax::OperationOverTime => {
                one_of(v, "operation", &OperationOverTime::ALL.map(|o| o.as_str()))
            }
            Syntax::Source => one_of(v, "source", &["workload", "gateway"]),
            Syntax::MetricType => one_of(v, "metric type", &["AverageValue", "Value"]),
            Syntax::FallbackBehavior => one_of(
                v,
                "fallback behavior",
                &[
                    "static",
                    "currentReplicas",
                    "currentReplicasIfHigher",
                    "currentReplicasIfLower",
                ],
            ),
            Syntax::SelectPolicy => one_of(v, "select policy", &super::behavior::SELECT_POLICIES),
            Syntax::Free => Ok(()),
        }
    }
}

/// Which backends read a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadBy {
    All,
    Only(&'static [Backend]),
}

impl ReadBy {
    pub fn reads(self, b: Backend) -> bool {
        match self {
            ReadBy::All => true,
            ReadBy::Only(list) => list.contains(&b),
        }
    }
}

/// One annotation key (without the [`super::PREFIX`]).
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub name: &'static str,
    pub group: Group,
    pub syntax: Syntax,
    pub read_by: ReadBy,
    /// Why a backend that does not read it refuses it (empty: "is not read by the ... backend").
    pub unread_because: &'static str,
    /// The default, as the README shows it.
    pub default: &'static str,
    /// What it does, as the README shows it (Markdown).
    pub doc: &'static str,
}

/// The backends with the collector sidecar.
const SIDECAR: ReadBy = ReadBy::Only(&[Backend::Otel, Backend::Builtin]);
/// The backends whose triggers are built from a metric.
const METRICS: ReadBy = ReadBy::Only(&[Backend::Otel, Backend::Builtin, Backend::Prometheus]);

const fn key(
    name: &'static str,
    group: Group,
    syntax: Syntax,
    read_by: ReadBy,
    default: &'static str,
    doc: &'static str,
) -> Key {
    Key {
        name,
        group,
        syntax,
        read_by,
        unread_because: "",
        default,
        doc,
    }
}

use Group::{HttpWake, Trigger, Workload};

/// Every key, in the README's order.
pub const KEYS: [Key; 52] = [
    key(
        "enabled",
        Workload,
        Syntax::Boolean,
        ReadBy::All,
        "—",
        "`\"true\"` opts in; absent or `\"false\"`: the object is untouched (a previous injection is removed).",
    ),
    key(
        "max-replicas",
        Workload,
        Syntax::Count,
        ReadBy::All,
        "**required**",
        "The most replicas (GPUs) the model may use, ≥ 1.",
    ),
    key(
        "idle-replica-count",
        Workload,
        Syntax::Count,
        ReadBy::All,
        "—",
        "KEDA's `idleReplicaCount`: replicas while no trigger is active, below `min-replicas` (usually `0`: idle at zero, at least `min-replicas` once active). `0` needs a wake path, as scale to zero does.",
    ),
    key(
        "min-replicas",
        Workload,
        Syntax::Count,
        ReadBy::All,
        "`1`",
        "`0` enables scale to zero; must be ≤ `max-replicas`. Refused unless some trigger can see demand while there is no pod (a `source: gateway` trigger, a PromQL query of your own, the external backend, HTTP wake): see [Scale to zero that wakes up](#scale-to-zero-that-wakes-up).",
    ),
    key(
        "backend",
        Workload,
        Syntax::Backend,
        ReadBy::All,
        "`otel` (`--default-backend`)",
        "`otel`: sidecar → KEDA OTel add-on, `external` trigger at its scaler. `builtin`: sidecar → this product's built-in scaler (`llm-autoscale-webhook scaler`), `external` trigger at it: missing data is an error, activation thresholds, fleet percentiles (see [The built-in scaler](#the-built-in-scaler)). `prometheus`: an existing Prometheus, no sidecar. `external`: any KEDA external scaler, no sidecar. `wva`: the llm-d workload-variant-autoscaler's desired replicas from Prometheus (see [llm-d WVA](#llm-d-workload-variant-autoscaler-wva)).",
    ),
    key(
        "preset",
        Trigger,
        Syntax::Preset,
        METRICS,
        "—",
        "`queue-depth`, `kv-cache`, `running-requests`, `token-throughput`, or the latency presets `ttft-p90`, `itl-p90`, `e2e-p90`, `queue-time-p90` (tables below). Not with `metric`.",
    ),
    key(
        "metric",
        Trigger,
        Syntax::MetricName,
        METRICS,
        "`vllm:num_requests_waiting`",
        "Metric to scale on. Names may contain `:`. Renamed vLLM metrics are translated (below). With `percentile`: the histogram's name (without `_bucket`).",
    ),
    key(
        "percentile",
        Trigger,
        Syntax::Percentile,
        METRICS,
        "— (latency presets: `90`)",
        "Makes a latency trigger: this percentile (greater than 0, less than 100, e.g. `\"90\"`) of the histogram `metric` (one of vLLM's latency histograms, e.g. `vllm:time_to_first_token_seconds`), per scrape window in the sidecar (`otel`), by `histogram_quantile` (`prometheus`) or of the pods' merged windows in the scaler (`builtin`); `target` is then seconds. See [Scaling on latency](#scaling-on-latency).",
    ),
    key(
        "target",
        Trigger,
        Syntax::Decimal,
        METRICS,
        "preset's",
        "Target as a plain decimal (`\"5\"`, `\"0.8\"`): per replica for `sum`/`count`, for the mean for `avg`/`min`/`max`; seconds for a latency trigger, within the histogram's buckets. Quantities (`600m`), exponents and signs are refused. Required for metrics without a preset.",
    ),
    key(
        "aggregation",
        Trigger,
        Syntax::Aggregation,
        METRICS,
        "preset's, else `sum`; latency: `max` (`otel`), the merged buckets (`prometheus`, `builtin`)",
        "`sum`, `avg`, `min`, `max` or `count` across the pods' series. `sum`/`count` → HPA `AverageValue`, others → `Value`. A latency trigger takes `max` (the worst pod), `avg` or `min` (on `prometheus` and `builtin` of each pod's percentile; without it, the fleet's).",
    ),
    key(
        "query",
        Trigger,
        Syntax::Free,
        METRICS,
        "built",
        "`otel`, `builtin`: the add-on's `op(name{k=v,k2=\"v2\"})`, only `=` matchers; `deployment`/`namespace` are added when absent. `prometheus`: any PromQL returning one value, parsed by a PromQL parser (`promql-parser`; brackets and strings are reported with their column).",
    ),
    key(
        "operation-over-time",
        Trigger,
        Syntax::OperationOverTime,
        SIDECAR,
        "preset's, else `avg` (`rate` for `_total`, `_count`, `_sum`; `last_one` for a latency trigger)",
        "`otel`, `builtin`: `last_one`, `avg`, `min`, `max`, `rate`, `count` (`otel` over the add-on's retention, `builtin` over `window`; a latency trigger on `otel`: `last_one`, `avg`, `min` or `max`, on `builtin` none: its percentile is of the window's requests).",
    ),
    key(
        "window",
        Trigger,
        Syntax::Seconds,
        ReadBy::Only(&[Backend::Builtin]),
        "`1m`",
        "`builtin` only: the span the operation over time covers, or whose requests a latency trigger's percentile is taken of (all pods' windows merged); at most the scaler's `--max-window` (`5m`). Seconds or `30s`/`2m`.",
    ),
    Key {
        unread_because: "the KEDA OTel add-on never reads an activation target: it is active whenever the value is above 0 (kedify/otel-add-on scaler/handlers.go)",
        ..key(
            "activation-target",
            Trigger,
            Syntax::Decimal,
            ReadBy::Only(&[Backend::Prometheus, Backend::Wva, Backend::Builtin]),
            "—",
            "`prometheus`: `activationThreshold`; `builtin`: `activationTargetValue` (the trigger is active, waking a workload at zero or its idle count, when the value is above it). Refused on `otel`: the add-on never reads it (active means value > 0).",
        )
    },
    key(
        "source",
        Trigger,
        Syntax::Source,
        METRICS,
        "`workload`; `gateway` for your own PromQL that reads no `vllm:` metric",
        "Where the trigger's data comes from. `workload`: this workload's pods (the query is scoped to its `deployment`/`namespace`, or its pods in PromQL). `gateway`: something that exists at zero pods (a router, gateway or queue metric): the `query` (required) is used as written and the sidecar does not forward it; when every trigger reads a gateway, no sidecar is injected. Not on `builtin`, which stores only this product's sidecars' series.",
    ),
    key(
        "metric-type",
        Trigger,
        Syntax::MetricType,
        ReadBy::All,
        "`AverageValue` for `sum`/`count`, `Value` for `avg`/`min`/`max`",
        "The trigger's HPA `metricType`: `AverageValue` divides the value by the replicas before comparing it with `target`, `Value` compares it as it is (e.g. a metric that already is the desired replica count, or a fleet-wide latency). A latency trigger is always `Value`.",
    ),
    key(
        "triggers",
        Workload,
        Syntax::Free,
        METRICS,
        "—",
        "JSON list for several metrics, each with `name`, `preset`, `metric`, `percentile`, `query`, `target`, `aggregation`, `operation-over-time`, `window`, `activation-target`, `source`, `metric-type`; not with the single-metric keys. Every entry's problems are reported together.",
    ),
    key(
        "polling-interval",
        Workload,
        Syntax::Seconds,
        ReadBy::All,
        "KEDA's (30 s)",
        "How often KEDA's own loop asks the scaler. It decides only the steps to and from zero (or `idle-replica-count`); otherwise the HPA scales and KEDA ignores it for scaling, so it is refused there. Seconds or `30s`/`5m`/`1h`.",
    ),
    key(
        "cooldown-period",
        Workload,
        Syntax::Seconds,
        ReadBy::All,
        "KEDA's",
        "The wait before scaling to zero (or to `idle-replica-count`). Only with `min-replicas: \"0\"` or an idle count (KEDA ignores it otherwise, so it is refused).",
    ),
    key(
        "initial-cooldown-period",
        Workload,
        Syntax::Seconds,
        ReadBy::All,
        "KEDA's",
        "The wait after creation before the first step to zero. As `cooldown-period`.",
    ),
    key(
        "fallback-replicas",
        Workload,
        Syntax::Count,
        ReadBy::All,
        "—",
        "Replicas while the scaler fails (KEDA `fallback`). With KEDA < 2.18 (`--keda-version`) it needs a `sum`/`count` trigger; from 2.18 a mean (`Value`) trigger works too, but KEDA then divides by the ready replicas and skips the fallback while none is ready (kedacore/keda `pkg/fallback/fallback.go`). On `otel` it fires only when the add-on itself fails; on `builtin` also when the sidecars stop reporting; see [What each backend honours](#what-each-backend-honours).",
    ),
    key(
        "fallback-failure-threshold",
        Workload,
        Syntax::Count,
        ReadBy::All,
        "`3`",
        "Failed polls before falling back. Only with `fallback-replicas`.",
    ),
    key(
        "fallback-behavior",
        Workload,
        Syntax::FallbackBehavior,
        ReadBy::All,
        "`static`",
        "KEDA ≥ 2.17: `static` (run `fallback-replicas`), `currentReplicas`, `currentReplicasIfHigher` or `currentReplicasIfLower` (compare the current count with `fallback-replicas`). Only with `fallback-replicas`.",
    ),
    key(
        "scale-up-stabilization",
        Workload,
        Syntax::Seconds,
        ReadBy::All,
        "HPA's",
        "Duration, at most `1h` (HPA behavior).",
    ),
    key(
        "scale-down-stabilization",
        Workload,
        Syntax::Seconds,
        ReadBy::All,
        "HPA's",
        "Duration, at most `1h` (HPA behavior).",
    ),
    key(
        "scale-up-policies",
        Workload,
        Syntax::Free,
        ReadBy::All,
        "HPA's (double, or +4 pods, per 15 s)",
        "JSON list of HPA scale-up policies, e.g. `[{\"type\":\"Percent\",\"value\":100,\"periodSeconds\":30},{\"type\":\"Pods\",\"value\":5,\"periodSeconds\":15}]`: `type` `Pods` or `Percent`, `value` > 0, `periodSeconds` 1–1800.",
    ),
    key(
        "scale-down-policies",
        Workload,
        Syntax::Free,
        ReadBy::All,
        "HPA's (all pods per 15 s)",
        "As `scale-up-policies`, for scaling down.",
    ),
    key(
        "scale-up-select-policy",
        Workload,
        Syntax::SelectPolicy,
        ReadBy::All,
        "`Max`",
        "Which scale-up policy wins: `Max`, `Min`, or `Disabled` (never scale up).",
    ),
    key(
        "scale-down-select-policy",
        Workload,
        Syntax::SelectPolicy,
        ReadBy::All,
        "`Max`",
        "As `scale-up-select-policy`, for scaling down (`Disabled`: never scale down).",
    ),
    key(
        "restore-to-original-replica-count",
        Workload,
        Syntax::Boolean,
        ReadBy::All,
        "`false`",
        "KEDA's `advanced.restoreToOriginalReplicaCount`: when the ScaledObject is deleted (opt-out), put the Deployment back to its replica count from before KEDA scaled it.",
    ),
    key(
        "hpa-name",
        Workload,
        Syntax::DnsLabel,
        ReadBy::All,
        "derived",
        "Name of KEDA's HPA; set automatically when the Deployment name is longer than 54 characters.",
    ),
    key(
        "metrics-port",
        Workload,
        Syntax::Port,
        SIDECAR,
        "`8000`; for KServe `prometheus.kserve.io/port`, else `8080`",
        "Port the model server serves metrics on (the sidecar scrapes it).",
    ),
    key(
        "metrics-path",
        Workload,
        Syntax::HttpPath,
        SIDECAR,
        "`/metrics` (or `prometheus.kserve.io/path`)",
        "Path the sidecar scrapes.",
    ),
    key(
        "scrape-interval",
        Workload,
        Syntax::Seconds,
        SIDECAR,
        "`5s`",
        "How often the sidecar scrapes.",
    ),
    key(
        "scaler-address",
        Workload,
        Syntax::GrpcAddress,
        ReadBy::Only(&[Backend::Otel, Backend::Builtin, Backend::External]),
        "webhook's `--scaler-address` (`keda-otel-scaler.keda.svc:4318`), `--builtin-scaler-address` on `builtin`",
        "`host:port` of the add-on's scaler (`otel`), of the built-in scaler (`builtin`) or of your scaler (`external`, required there unless `--external-scaler-address` is set).",
    ),
    key(
        "prometheus-address",
        Workload,
        Syntax::HttpUrl,
        ReadBy::Only(&[Backend::Prometheus, Backend::Wva]),
        "webhook's `--prometheus-address`",
        "`prometheus` backend server URL.",
    ),
    key(
        "prometheus-unsafe-ssl",
        Workload,
        Syntax::Boolean,
        ReadBy::Only(&[Backend::Prometheus, Backend::Wva]),
        "`false`",
        "KEDA's `unsafeSsl`: skip verifying the Prometheus server's certificate (a self-signed one). Prefer a CA in a TriggerAuthentication (`prometheus-auth`, `authModes: tls`).",
    ),
    key(
        "prometheus-auth",
        Workload,
        Syntax::Free,
        ReadBy::Only(&[Backend::Prometheus, Backend::Wva]),
        "—",
        "The TriggerAuthentication (in the workload's namespace) holding the credentials, or `ClusterTriggerAuthentication/<name>`: becomes the trigger's `authenticationRef`. Secrets never go in annotations.",
    ),
    key(
        "prometheus-auth-modes",
        Workload,
        Syntax::Free,
        ReadBy::Only(&[Backend::Prometheus, Backend::Wva]),
        "—",
        "KEDA's `authModes`: comma-separated `apiKey`, `basic`, `tls`, `bearer`, `custom`, `oauth` (only one of `bearer`, `basic`, `oauth`). Needs `prometheus-auth`: KEDA reads every mode's credentials from it.",
    ),
    key(
        "prometheus-headers",
        Workload,
        Syntax::Free,
        ReadBy::Only(&[Backend::Prometheus, Backend::Wva]),
        "—",
        "JSON object of extra HTTP headers (KEDA's `customHeaders`), e.g. `{\"X-Scope-OrgID\":\"tenant-a\"}`; names and values without `,` or `=`.",
    ),
    key(
        "ignore-null-values",
        Workload,
        Syntax::Boolean,
        ReadBy::Only(&[Backend::Prometheus, Backend::Wva]),
        "KEDA's, `true`",
        "`false`: an empty query result (a lost scrape target, a series that is gone) is an error, so `fallback-replicas` applies; with KEDA's default `true` it reads as 0 and only an unreachable Prometheus falls back.",
    ),
    key(
        "wva-version",
        Workload,
        Syntax::Version,
        ReadBy::Only(&[Backend::Wva]),
        "`0.5.1` (the current release)",
        "The WVA release: from 0.5.0 it publishes `wva_desired_replicas`, before it `inferno_desired_replicas`.",
    ),
    key(
        "wva-accelerator-type",
        Workload,
        Syntax::Free,
        ReadBy::Only(&[Backend::Wva]),
        "—",
        "The variant's `accelerator_type` label (e.g. `A100`), matched in the query.",
    ),
    key(
        "wva-variant-id",
        Workload,
        Syntax::Free,
        ReadBy::Only(&[Backend::Wva]),
        "—",
        "The variant's `variant_id` label, for WVA builds before 0.5.0 whose series carry it (the first integration document's); refused from 0.5.0, whose series have none.",
    ),
    key(
        "scaler-metadata",
        Workload,
        Syntax::Free,
        ReadBy::Only(&[Backend::External]),
        "—",
        "`external` backend: JSON object of strings passed to the scaler.",
    ),
    key(
        "scaler-push",
        Workload,
        Syntax::Boolean,
        ReadBy::Only(&[Backend::External]),
        "`false`",
        "`true`: the trigger is `external-push`, for scalers that stream activity (`StreamIsActive`) so that KEDA wakes the workload as soon as the scaler says so.",
    ),
    key(
        "sidecar",
        Workload,
        Syntax::SidecarMode,
        SIDECAR,
        "`auto`",
        "`auto` (native sidecar where the cluster supports it, see `--native-sidecars`), `native`, `container`, `none` (metrics reach the scaler some other way).",
    ),
    key(
        "vllm-version",
        Workload,
        Syntax::Version,
        METRICS,
        "from the image tag",
        "e.g. `0.11.0`; decides metric renames when the image tag does not say.",
    ),
    key(
        "http-wake-service",
        HttpWake,
        Syntax::Free,
        ReadBy::All,
        "—",
        "HTTP wake ([below](#scale-to-zero-that-wakes-up-http-wake)): the Service in the workload's namespace that fronts the model server. Its presence enables HTTP wake. A DNS label.",
    ),
    key(
        "http-wake-port",
        HttpWake,
        Syntax::Port,
        ReadBy::All,
        "**required** with `http-wake-service`",
        "That Service's port, 1–65535.",
    ),
    key(
        "http-wake-hosts",
        HttpWake,
        Syntax::Free,
        ReadBy::All,
        "**required** with `http-wake-service`",
        "Comma-separated host names the interceptor routes to this model (matched against the `Host` header, port ignored); `*.example.com` matches subdomains, `*` every host.",
    ),
    key(
        "http-wake-path-prefixes",
        HttpWake,
        Syntax::Free,
        ReadBy::All,
        "every path",
        "Comma-separated path prefixes, each starting with `/` (e.g. `/v1`).",
    ),
];

/// The key named `name` (without the prefix).
pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The keys of one group.
pub fn of(group: Group) -> impl Iterator<Item = &'static Key> {
    KEYS.iter().filter(move |k| k.group == group)
}

/// The closest known key, for "did you mean".
pub fn closest(name: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|k| (strsim::levenshtein(name, k.name), k.name))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Every key name, comma-separated, for messages.
pub fn names() -> String {
    KEYS.map(|k| k.name).join(", ")
}

/// The README's annotation table (Markdown), generated from [`KEYS`].
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| Annotation (`llm-autoscale.io/…`) | Default | Meaning |\n| --- | --- | --- |\n",
    );
    for k in &KEYS {
        out.push_str(&format!("| `{}` | {} | {} |\n", k.name, k.default, k.doc));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_syntaxes_accept_their_own_examples() {
        let mut names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KEYS.len());
        assert!(Syntax::Backend.check("prometheus").is_ok());
        assert!(Syntax::OperationOverTime.check("last_one").is_ok());
        assert!(Syntax::Preset.check("kv-cache").is_ok());
        assert!(
            Syntax::Preset
                .check("kv_cache")
                .unwrap_err()
                .fix
                .contains("kv-cache")
        );
        assert!(Syntax::Count.check("-1").is_err());
        assert!(Syntax::Percentile.check("99.9").is_ok());
        assert!(Syntax::Percentile.check("100").is_err());
    }

    #[test]
    fn did_you_mean() {
        assert_eq!(closest("max-replica"), Some("max-replicas"));
        assert_eq!(closest("metrics-prot"), Some("metrics-port"));
        assert_eq!(closest("completely-different"), None);
    }
}
