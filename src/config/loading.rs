//! Loading the configuration: command line, environment and file into the [`WebhookConfig`] and
//! the server's own [`Settings`]; built-in defaults < optional YAML file (`--config`) < environment
//! (`LLM_AUTOSCALE_*`) < flags.
//!
//! clap merges environment and flags (a flag wins over its variable); the config file sits
//! below both, so the [`WebhookConfig`] flags have no clap default and are applied on top of
//! the file only when given. Their defaults are shown in `--help` from
//! [`WebhookConfig::default`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgAction, Args, ValueEnum};

use super::flag_files::{self, ReadError};
use crate::annotations::Backend;
use crate::config::{OnInvalid, SidecarMode, WebhookConfig};
use crate::keda;
use crate::version::Version;

/// Default listen address of `serve`.
pub const DEFAULT_ADDR: &str = "0.0.0.0:8443";
/// Default period of the certificate file check.
pub const DEFAULT_CERT_RELOAD_INTERVAL: Duration = Duration::from_secs(10);
/// Default time from SIGTERM to exit.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(25);
/// Default time, inside the grace period, during which a stopping server still serves while
/// `/readyz` fails, so that Service endpoints drop it before it closes the listener.
pub const DEFAULT_SHUTDOWN_DELAY_IN_CLUSTER: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("reading config file {}: {}", .0.path.display(), .0.error)]
    Read(ReadError),
    #[error("config file {path}: {error}")]
    Parse {
        path: PathBuf,
        error: serde_yaml_ng::Error,
    },
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

impl LogFormat {
    /// JSON inside a cluster (`KUBERNETES_SERVICE_HOST` set), text elsewhere.
    pub fn default_for(in_cluster: bool) -> LogFormat {
        if in_cluster {
            LogFormat::Json
        } else {
            LogFormat::Text
        }
    }
}

/// Where the serving certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files, re-read when their content changes.
    Files { cert: PathBuf, key: PathBuf },
    /// A CA and certificate made in memory at start (development only).
    Ephemeral,
}

/// Everything `serve` needs, merged.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub addr: SocketAddr,
    pub tls: TlsSource,
    /// How often the certificate files are checked for new content.
    pub cert_reload_interval: Duration,
    /// Longest time from the shutdown signal to exit; in-flight requests are cut after it.
    pub shutdown_grace: Duration,
    /// Part of the grace period spent still serving with `/readyz` failing, before the
    /// listener closes (capped at `shutdown_grace`).
    pub shutdown_delay: Duration,
    pub log_format: LogFormat,
    /// Whether the reconciler runs next to the webhook (started by the caller of the server).
    pub reconcile: bool,
    pub webhook: WebhookConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            addr: SocketAddr::from(([0, 0, 0, 0], 8443)),
            tls: TlsSource::Ephemeral,
            cert_reload_interval: DEFAULT_CERT_RELOAD_INTERVAL,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            shutdown_delay: Duration::ZERO,
            log_format: LogFormat::Text,
            reconcile: true,
            webhook: WebhookConfig::default(),
        }
    }
}

fn defaults() -> WebhookConfig {
    WebhookConfig::default()
}

fn help(text: &str, default: impl std::fmt::Display) -> String {
    format!("{text} [default: {default}]")
}

fn sidecar_mode_parser() -> impl TypedValueParser<Value = SidecarMode> {
    PossibleValuesParser::new(SidecarMode::ALL.map(|(name, _)| name)).map(|s: String| {
        SidecarMode::ALL
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, mode)| *mode)
            .unwrap_or_default()
    })
}

fn backend_parser() -> impl TypedValueParser<Value = Backend> {
    PossibleValuesParser::new(Backend::ALL.map(Backend::as_str))
        .map(|s: String| Backend::parse(&s).unwrap_or(Backend::Otel))
}

fn on_invalid_parser() -> impl TypedValueParser<Value = OnInvalid> {
    PossibleValuesParser::new(["deny", "warn"]).map(|s: String| match s.as_str() {
        "warn" => OnInvalid::Warn,
        _ => OnInvalid::Deny,
    })
}

fn on_invalid_name(v: OnInvalid) -> &'static str {
    match v {
        OnInvalid::Deny => "deny",
        OnInvalid::Warn => "warn",
    }
}

/// A duration in seconds: `10`, `0.5`, or with a unit, `500ms`, `2s`.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(ms) = t.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = t.strip_suffix('s') {
        (s, 1.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds (e.g. 10, 0.5, 500ms)"))?;
    Duration::try_from_secs_f64(value * scale)
        .map_err(|_| format!("{text:?} is not a non-negative number of seconds"))
}

/// A KEDA release at least [`keda::OLDEST_SUPPORTED`].
fn parse_keda_version(text: &str) -> Result<Version, String> {
    let v =
        Version::parse(text).ok_or_else(|| format!("{text:?} is not a version such as 2.21.0"))?;
    if v < keda::OLDEST_SUPPORTED {
        return Err(format!(
            "KEDA {v} is older than the oldest supported release, {}",
            keda::OLDEST_SUPPORTED
        ));
    }
    Ok(v)
}

fn parse_positive_seconds(text: &str) -> Result<Duration, String> {
    let d = parse_seconds(text)?;
    if d < Duration::from_millis(10) {
        return Err(format!("{text:?} is too short (at least 10ms)"));
    }
    Ok(d)
}

/// The webhook's configuration: `--config FILE` and one flag per [`WebhookConfig`] field.
/// Shared by `serve` and `mutate`.
#[derive(Args, Clone, Debug, Default, PartialEq)]
pub struct ConfigArgs {
    /// YAML file with any of the settings below, keys in kebab-case (collector-image,
    /// otlp-endpoint, ...). Environment variables and flags override it.
    #[arg(long, env = "LLM_AUTOSCALE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[arg(long, env = "LLM_AUTOSCALE_COLLECTOR_IMAGE", value_name = "IMAGE",
          help = help("Collector sidecar image", defaults().collector_image))]
    pub collector_image: Option<String>,

    #[arg(long, env = "LLM_AUTOSCALE_OTLP_ENDPOINT", value_name = "HOST:PORT",
          help = help("OTLP gRPC endpoint the sidecar exports to", defaults().otlp_endpoint))]
    pub otlp_endpoint: Option<String>,

    #[arg(long, env = "LLM_AUTOSCALE_SCALER_ADDRESS", value_name = "HOST:PORT",
          help = help("scalerAddress of otel triggers (the KEDA OTel add-on)", defaults().scaler_address))]
    pub scaler_address: Option<String>,

    #[arg(long, env = "LLM_AUTOSCALE_DEFAULT_BACKEND", value_name = "BACKEND",
          value_parser = backend_parser(),
          help = help("Backend of workloads without the backend annotation", defaults().default_backend.as_str()))]
    pub default_backend: Option<Backend>,

    #[arg(long, env = "LLM_AUTOSCALE_BUILTIN_OTLP_ENDPOINT", value_name = "HOST:PORT",
          help = help("OTLP gRPC endpoint the sidecar exports to on the builtin backend (the built-in scaler's Service)", defaults().builtin_otlp_endpoint))]
    pub builtin_otlp_endpoint: Option<String>,

    #[arg(long, env = "LLM_AUTOSCALE_BUILTIN_SCALER_ADDRESS", value_name = "HOST:PORT",
          help = help("scalerAddress of builtin triggers (the built-in scaler's Service)", defaults().builtin_scaler_address))]
    pub builtin_scaler_address: Option<String>,

    #[arg(long, env = "LLM_AUTOSCALE_BUILTIN_SCALER_AUTH", value_name = "BOOL",
          action = ArgAction::Set, value_parser = clap::builder::BoolValueParser::new(),
          help = help("Whether builtin sidecars present their namespace's token from the Secret the reconciler provisions", defaults().builtin_scaler_auth))]
    pub builtin_scaler_auth: Option<bool>,

    #[arg(long, env = "LLM_AUTOSCALE_BUILTIN_SCALER_TLS", value_name = "BOOL",
          action = ArgAction::Set, value_parser = clap::builder::BoolValueParser::new(),
          help = help("Whether builtin sidecars and triggers reach the built-in scaler over TLS (the sidecar verifies it with ca.crt of its namespace's Secret, which the reconciler writes from --scaler-tls-ca; KEDA with enableTLS)", defaults().builtin_scaler_tls))]
    pub builtin_scaler_tls: Option<bool>,

    #[arg(long, env = "LLM_AUTOSCALE_EXTERNAL_SCALER_ADDRESS", value_name = "HOST:PORT",
          help = help("scalerAddress of external triggers when the annotation is absent (empty: the annotation is required)", "empty"))]
    pub external_scaler_address: Option<String>,

    #[arg(long, env = "LLM_AUTOSCALE_PROMETHEUS_ADDRESS", value_name = "URL",
          help = help("serverAddress of prometheus triggers", defaults().prometheus_address))]
    pub prometheus_address: Option<String>,

    #[arg(long, env = "LLM_AUTOSCALE_HTTP_SCALER_ADDRESS", value_name = "HOST:PORT",
          help = help("scalerAddress of the HTTP wake trigger (the KEDA HTTP add-on's external scaler)", defaults().http_scaler_address))]
    pub http_scaler_address: Option<String>,

    #[arg(long, env = "LLM_AUTOSCALE_SIDECAR_MODE", value_name = "MODE",
          value_parser = sidecar_mode_parser(),
          help = help("How the collector is attached when the sidecar annotation is absent or auto", defaults().sidecar_mode.as_str()))]
    pub sidecar_mode: Option<SidecarMode>,

    #[arg(long, env = "LLM_AUTOSCALE_NATIVE_SIDECARS", value_name = "BOOL",
          action = ArgAction::Set, value_parser = clap::builder::BoolValueParser::new(),
          help = help("Whether the cluster runs native sidecars (Kubernetes >= 1.29); decides sidecar mode auto", defaults().native_sidecars))]
    pub native_sidecars: Option<bool>,

    #[arg(long, env = "LLM_AUTOSCALE_ON_INVALID", value_name = "ACTION",
          value_parser = on_invalid_parser(),
          help = help("Invalid annotations: deny the object, or admit it unchanged with warnings", on_invalid_name(defaults().on_invalid)))]
    pub on_invalid: Option<OnInvalid>,

    #[arg(long, env = "LLM_AUTOSCALE_COLLECTOR_MEMORY_LIMIT_MIB", value_name = "MIB",
          value_parser = clap::value_parser!(u32).range(1..),
          help = help("Memory limit of the collector sidecar in MiB (GOMEMLIMIT is 80 % of it)", defaults().collector_memory_limit_mib))]
    pub collector_memory_limit_mib: Option<u32>,

    #[arg(long, env = "LLM_AUTOSCALE_KEDA_VERSION", value_name = "VERSION",
          value_parser = parse_keda_version,
          help = help("KEDA release installed in the cluster (oldest supported: 2.14.0); decides version-dependent rules", String::from(defaults().keda_version)))]
    pub keda_version: Option<Version>,
}

impl ConfigArgs {
    /// Defaults, then the file, then environment and flags.
    pub fn load(&self) -> Result<WebhookConfig, SettingsError> {
        let mut cfg = match &self.config {
            Some(path) => read_config_file(path)?,
            None => WebhookConfig::default(),
        };
        self.apply(&mut cfg);
        Ok(cfg)
    }

    /// Overrides the fields given on the command line or in the environment.
    pub fn apply(&self, cfg: &mut WebhookConfig) {
        fn set<T: Clone>(target: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *target = v.clone();
            }
        }
        set(&mut cfg.collector_image, &self.collector_image);
        set(&mut cfg.otlp_endpoint, &self.otlp_endpoint);
        set(&mut cfg.scaler_address, &self.scaler_address);
        set(&mut cfg.default_backend, &self.default_backend);
        set(&mut cfg.builtin_otlp_endpoint, &self.builtin_otlp_endpoint);
        set(
            &mut cfg.builtin_scaler_address,
            &self.builtin_scaler_address,
        );
        set(&mut cfg.builtin_scaler_auth, &self.builtin_scaler_auth);
        set(&mut cfg.builtin_scaler_tls, &self.builtin_scaler_tls);
        set(
            &mut cfg.external_scaler_address,
            &self.external_scaler_address,
        );
        set(&mut cfg.prometheus_address, &self.prometheus_address);
        set(&mut cfg.http_scaler_address, &self.http_scaler_address);
        set(&mut cfg.sidecar_mode, &self.sidecar_mode);
        set(&mut cfg.native_sidecars, &self.native_sidecars);
        set(&mut cfg.on_invalid, &self.on_invalid);
        set(
            &mut cfg.collector_memory_limit_mib,
            &self.collector_memory_limit_mib,
        );
        set(&mut cfg.keda_version, &self.keda_version);
    }
}

/// Reads a YAML [`WebhookConfig`]; an empty file means the defaults.
pub fn read_config_file(path: &Path) -> Result<WebhookConfig, SettingsError> {
    let text = flag_files::read_to_string(path).map_err(SettingsError::Read)?;
    parse_config(&text).map_err(|error| SettingsError::Parse {
        path: path.to_path_buf(),
        error,
    })
}

/// Parses a YAML [`WebhookConfig`]; empty text means the defaults.
pub fn parse_config(text: &str) -> Result<WebhookConfig, serde_yaml_ng::Error> {
    let only_comments = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---");
    if only_comments {
        return Ok(WebhookConfig::default());
    }
    serde_yaml_ng::from_str(text)
}

/// Flags of `serve`.
#[derive(Args, Clone, Debug, PartialEq)]
pub struct ServeArgs {
    /// Address to listen on (HTTPS).
    #[arg(long, env = "LLM_AUTOSCALE_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: SocketAddr,

    /// Serving certificate (PEM, leaf first, intermediates may follow). Re-read when its
    /// content changes. Without --tls-cert/--tls-key, an in-memory development CA and
    /// certificate are made at start.
    #[arg(
        long,
        env = "LLM_AUTOSCALE_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// Private key of the serving certificate (PEM: PKCS#8, SEC1 or PKCS#1).
    #[arg(
        long,
        env = "LLM_AUTOSCALE_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// How often the certificate files are checked for new content, in seconds (fractions
    /// and `ms` allowed).
    #[arg(long, env = "LLM_AUTOSCALE_CERT_RELOAD_INTERVAL", value_name = "SECONDS",
          default_value = "10", value_parser = parse_positive_seconds)]
    pub cert_reload_interval: Duration,

    /// Log format [default: json when KUBERNETES_SERVICE_HOST is set, else text]
    #[arg(long, env = "LLM_AUTOSCALE_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Run the reconciler (ScaledObjects, sidecar reports) next to the webhook.
    #[arg(long, env = "LLM_AUTOSCALE_RECONCILE", value_name = "BOOL", default_value_t = true,
          action = ArgAction::Set, value_parser = clap::builder::BoolValueParser::new())]
    pub reconcile: bool,

    /// Longest time from SIGTERM/Ctrl-C to exit, in seconds: in-flight requests finish
    /// within it. Keep it below the pod's terminationGracePeriodSeconds.
    #[arg(long, env = "LLM_AUTOSCALE_SHUTDOWN_GRACE_SECONDS", value_name = "SECONDS",
          default_value = "25", value_parser = parse_seconds)]
    pub shutdown_grace_seconds: Duration,

    /// Seconds, inside the grace period, that a stopping server keeps serving while /readyz
    /// fails, so endpoints drop it before the listener closes [default: 5 when
    /// KUBERNETES_SERVICE_HOST is set, else 0]
    #[arg(long, env = "LLM_AUTOSCALE_SHUTDOWN_DELAY_SECONDS", value_name = "SECONDS",
          value_parser = parse_seconds)]
    pub shutdown_delay_seconds: Option<Duration>,

    #[command(flatten)]
    pub webhook: ConfigArgs,

    /// Also run the built-in scaler (OTLP receiver and KEDA external scaler) in this process;
    /// its metrics join /metrics.
    #[arg(long = "scaler", env = "LLM_AUTOSCALE_SCALER", value_name = "BOOL", default_value_t = false,
          action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolValueParser::new())]
    pub with_scaler: bool,

    #[command(flatten)]
    pub scaler: crate::scaler::service::ScalerArgs,
}

impl ServeArgs {
    /// Merged settings; "in a cluster" is decided by `KUBERNETES_SERVICE_HOST`.
    pub fn settings(&self) -> Result<Settings, SettingsError> {
        let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some_and(|v| !v.is_empty());
        self.settings_for(in_cluster)
    }

    /// Merged settings, with the in-cluster defaults when `in_cluster`.
    pub fn settings_for(&self, in_cluster: bool) -> Result<Settings, SettingsError> {
        let tls = match flag_files::pem_pair(&self.tls_cert, &self.tls_key) {
            Some((cert, key)) => TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            None => TlsSource::Ephemeral,
        };
        let default_delay = if in_cluster {
            DEFAULT_SHUTDOWN_DELAY_IN_CLUSTER
        } else {
            Duration::ZERO
        };
        Ok(Settings {
            addr: self.addr,
            tls,
            cert_reload_interval: self.cert_reload_interval,
            shutdown_grace: self.shutdown_grace_seconds,
            shutdown_delay: self.shutdown_delay_seconds.unwrap_or(default_delay),
            log_format: self
                .log_format
                .unwrap_or_else(|| LogFormat::default_for(in_cluster)),
            reconcile: self.reconcile,
            webhook: self.webhook.load()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::flag_files::parse_flags;

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        parse_flags(args)
    }

    #[test]
    fn defaults() {
        let s = parse(&[]).unwrap().settings_for(false).unwrap();
        assert_eq!(
            s,
            Settings {
                addr: DEFAULT_ADDR.parse().unwrap(),
                ..Settings::default()
            }
        );
        let k = parse(&[]).unwrap().settings_for(true).unwrap();
        assert_eq!(k.log_format, LogFormat::Json);
        assert_eq!(k.shutdown_delay, DEFAULT_SHUTDOWN_DELAY_IN_CLUSTER);
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(
            &file,
            "otlp-endpoint: file:4317\nscaler-address: file:4318\non-invalid: warn\n",
        )
        .unwrap();
        let args = parse(&[
            "--config",
            file.to_str().unwrap(),
            "--scaler-address",
            "flag:1",
            "--sidecar-mode",
            "container",
            "--native-sidecars",
            "false",
            "--collector-memory-limit-mib",
            "256",
            "--cert-reload-interval",
            "250ms",
            "--reconcile",
            "false",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ])
        .unwrap();
        let s = args.settings_for(false).unwrap();
        assert_eq!(s.webhook.otlp_endpoint, "file:4317");
        assert_eq!(s.webhook.scaler_address, "flag:1");
        assert_eq!(s.webhook.on_invalid, OnInvalid::Warn);
        assert_eq!(s.webhook.sidecar_mode, SidecarMode::Container);
        assert!(!s.webhook.native_sidecars);
        assert_eq!(s.webhook.collector_memory_limit_mib, 256);
        assert_eq!(s.cert_reload_interval, Duration::from_millis(250));
        assert!(!s.reconcile);
        assert_eq!(
            s.tls,
            TlsSource::Files {
                cert: "c.pem".into(),
                key: "k.pem".into()
            }
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["--sidecar-mode", "sometimes"]).is_err());
        assert!(parse(&["--on-invalid", "ignore"]).is_err());
        assert!(parse(&["--native-sidecars", "yes"]).is_err());
        assert!(parse(&["--cert-reload-interval", "0"]).is_err());
        assert!(parse(&["--tls-cert", "only-cert.pem"]).is_err());
        let unknown = ConfigArgs {
            config: None,
            ..Default::default()
        };
        assert!(unknown.load().is_ok());
        assert!(parse_config("colector-image: x\n").is_err());
        assert_eq!(
            parse_config("# nothing\n").unwrap(),
            WebhookConfig::default()
        );
    }

    #[test]
    fn help_shows_the_defaults() {
        let help = ServeArgs::augment_args(clap::Command::new("serve"))
            .render_help()
            .to_string();
        let d = WebhookConfig::default();
        for needle in [
            d.collector_image.as_str(),
            d.otlp_endpoint.as_str(),
            d.scaler_address.as_str(),
            d.prometheus_address.as_str(),
            d.http_scaler_address.as_str(),
            "LLM_AUTOSCALE_HTTP_SCALER_ADDRESS",
            "LLM_AUTOSCALE_CONFIG",
            "LLM_AUTOSCALE_SIDECAR_MODE",
            "[default: 0.0.0.0:8443]",
            "[default: 128]",
            "[default: deny]",
        ] {
            assert!(help.contains(needle), "{needle} missing from\n{help}");
        }
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_seconds("750ms"), Ok(Duration::from_millis(750)));
        assert_eq!(parse_seconds("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
