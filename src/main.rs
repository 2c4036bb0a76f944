// As in the library: no unchecked indexing, slicing or unwrapping.
#![deny(
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::{Parser, Subcommand};
use futures::FutureExt;
use prometheus_client::registry::Registry;

use llm_autoscale_webhook::certs::{self, Ca, CertBundle, ServingRequest};
use llm_autoscale_webhook::config::loading::{ConfigArgs, LogFormat, ServeArgs};
use llm_autoscale_webhook::doctor::Report;
use llm_autoscale_webhook::doctor::gather::{GatherOptions, TargetRef};
use llm_autoscale_webhook::doctor::report::EXIT_UNCHECKED;
use llm_autoscale_webhook::manifest::{ManifestError, mutate_manifest};
use llm_autoscale_webhook::reconcile::{self, ReconcilerSettings, metrics::ReconcileMetrics};
use llm_autoscale_webhook::scaler::service::{self as scaler, ScalerArgs, metrics::ScalerMetrics};
use llm_autoscale_webhook::server;

/// mimalloc: admission allocates and frees many small JSON nodes per review, where the
/// system allocator was over a quarter of the instructions (`cargo bench --bench
/// admission_cases` under callgrind); the benchmarks use the same allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Kubernetes admission webhook: one annotation turns a vLLM Deployment or KServe
/// InferenceService into a KEDA-autoscaled workload with an OpenTelemetry collector sidecar.
#[derive(Parser)]
#[command(name = "llm-autoscale-webhook", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the admission webhook over HTTPS: POST /mutate, POST /validate, GET /healthz,
    /// /readyz, /metrics. Settings: defaults < --config file < LLM_AUTOSCALE_* < flags.
    Serve(Box<ServeArgs>),
    /// Run only the reconciler (normally part of `serve`): ScaledObjects for opted-in
    /// Deployments, drift repair, deletion on opt-out, sidecar reports. Uses KUBECONFIG or the
    /// in-cluster service account; POD_NAMESPACE/POD_NAME name its Lease and identity.
    Reconcile {
        #[command(flatten)]
        config: ConfigArgs,
        /// The built-in scaler's trust key: the reconciler writes each namespace's token
        /// (Secret llm-autoscale-scaler-token) where workloads use the builtin backend.
        #[arg(long, env = "LLM_AUTOSCALE_SCALER_TRUST_KEY_FILE", value_name = "FILE")]
        trust_key_file: Option<PathBuf>,
        /// The CA of the built-in scaler's certificate (PEM): written into each namespace's
        /// Secret next to the token, for sidecars rendered with --builtin-scaler-tls.
        #[arg(long, env = "LLM_AUTOSCALE_SCALER_TLS_CA", value_name = "FILE")]
        scaler_tls_ca: Option<PathBuf>,
        /// Log format [default: json in a cluster, text elsewhere]
        #[arg(long, value_enum, env = "LLM_AUTOSCALE_LOG_FORMAT")]
        log_format: Option<LogFormat>,
    },
    /// Run the built-in scaler: an OTLP/gRPC receiver for the sidecars (--otlp-addr), KEDA's
    /// external scaler for the builtin backend's triggers (--scaler-addr), /metrics, /healthz
    /// and /readyz over HTTP (--metrics-addr).
    Scaler {
        #[command(flatten)]
        scaler: ScalerArgs,
        /// Address of /metrics, /healthz and /readyz (plain HTTP).
        #[arg(
            long,
            env = "LLM_AUTOSCALE_METRICS_ADDR",
            default_value = "0.0.0.0:9464"
        )]
        metrics_addr: SocketAddr,
        /// Log format [default: json in a cluster, text elsewhere]
        #[arg(long, value_enum, env = "LLM_AUTOSCALE_LOG_FORMAT")]
        log_format: Option<LogFormat>,
    },
    /// Mutate manifests offline, like the webhook would: prints the mutated documents and
    /// the ScaledObjects that will exist; warnings and problems go to stderr.
    Mutate {
        /// File to read (`-` for stdin).
        #[arg(short = 'f', long = "filename")]
        file: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Make a CA and a serving certificate signed by it (ECDSA P-256) for clusters without
    /// cert-manager: writes ca.crt, ca.key, tls.crt, tls.key (keys mode 0600) and prints the
    /// base64 caBundle on stdout.
    Certs {
        /// Directory for the files (created if needed).
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
        /// DNS name of the serving certificate (repeatable) [default: llm-autoscale-webhook,
        /// llm-autoscale-webhook.llm-autoscale-system, llm-autoscale-webhook.llm-autoscale-system.svc,
        /// llm-autoscale-webhook.llm-autoscale-system.svc.cluster.local]
        #[arg(long = "dns-name", value_name = "NAME")]
        dns_names: Vec<String>,
        /// IP address of the serving certificate (repeatable) [default: 127.0.0.1]
        #[arg(long = "ip", value_name = "IP")]
        ips: Vec<IpAddr>,
        /// Lifetime of the serving certificate in days (a new CA lives 10 years).
        #[arg(long, value_name = "N", default_value_t = certs::DEFAULT_VALIDITY_DAYS)]
        validity_days: u32,
        /// Sign with the CA in DIR (its ca.crt and ca.key) instead of making a new one: the
        /// caBundle stays the same, only the Secret changes.
        #[arg(long, value_name = "DIR")]
        ca_dir: Option<PathBuf>,
        /// Overwrite existing files in --out-dir.
        #[arg(long)]
        force: bool,
    },
    /// Tell what stands between opted-in workloads and scaling (the webhook, KEDA, the
    /// workload, its metrics path), each finding with its fix. Reads the cluster of KUBECONFIG
    /// (or the in-cluster service account). Exit 0: nothing blocks scaling; 1: something does;
    /// 2: the cluster could not be read.
    Doctor(DoctorArgs),
}

#[derive(clap::Args)]
struct DoctorArgs {
    /// One workload: deploy/NAME or inferenceservice/NAME [default: every opted-in one].
    workload: Option<String>,
    /// Namespace [default: all namespaces; the kubeconfig's namespace for one workload].
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "human")]
    output: DoctorOutput,
    /// List the checks that passed too.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// The KEDA OTel add-on's REST API (http://HOST:PORT) [default: through the API server's
    /// service proxy to the Service of --scaler-address].
    #[arg(long, value_name = "URL")]
    addon_url: Option<String>,
    /// Prometheus (http://HOST:PORT) for every prometheus trigger [default: each trigger's
    /// serverAddress, through the service proxy when it names a Service].
    #[arg(long, value_name = "URL")]
    prometheus_url: Option<String>,
    /// HOST:PORT reaching the webhook's Service (kubectl port-forward), to verify its
    /// certificate from outside the cluster.
    #[arg(long, value_name = "HOST:PORT")]
    webhook_address: Option<String>,
    /// The built-in scaler's gRPC scaler port (http://HOST:PORT, e.g. through kubectl
    /// port-forward), to ask it for each builtin trigger's series as KEDA does [default: its
    /// /readyz through the API server's service proxy, which cannot ask for series; in a Pod,
    /// --builtin-scaler-address].
    #[arg(long, value_name = "URL")]
    builtin_scaler_url: Option<String>,
    /// The CA (PEM file) of the built-in scaler's TLS certificate, for an https:// URL.
    #[arg(long, value_name = "FILE")]
    builtin_scaler_ca: Option<PathBuf>,
    /// The webhook's configuration (the same file and LLM_AUTOSCALE_* variables), so sidecars
    /// and ScaledObjects are compared with what it renders.
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DoctorOutput {
    Human,
    Json,
}

fn read_input(file: &str) -> anyhow::Result<String> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading stdin")?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Reconcile {
            config,
            trust_key_file,
            scaler_tls_ca,
            log_format,
        } => reconcile_only(
            &config,
            trust_key_file.as_ref(),
            scaler_tls_ca.as_ref(),
            log_format,
        ),
        Command::Scaler {
            scaler,
            metrics_addr,
            log_format,
        } => scaler_only(&scaler, metrics_addr, log_format),
        Command::Doctor(args) => doctor(args),
        Command::Mutate { file, config } => mutate(&file, &config),
        Command::Certs {
            out_dir,
            dns_names,
            ips,
            validity_days,
            ca_dir,
            force,
        } => {
            let request = serving_request(dns_names, ips, validity_days);
            let bundle = certificate_bundle(&request, ca_dir.as_deref())?;
            bundle.write_dir(&out_dir, force)?;
            report_certificates(&bundle, &request, &out_dir, ca_dir.as_deref());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `mutate`: the mutated documents on stdout, warnings and problems on stderr.
fn mutate(file: &str, config: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let cfg = config.load()?;
    let input = read_input(file)?;
    match mutate_manifest(&input, &cfg) {
        Ok(out) => {
            for w in &out.warnings {
                eprintln!("Warning: {w}");
            }
            print!("{}", out.yaml);
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ ManifestError::Invalid { .. }) => {
            if let ManifestError::Invalid { warnings, .. } = &e {
                for w in warnings {
                    eprintln!("Warning: {w}");
                }
            }
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

/// The serving certificate asked for on the command line; the defaults for what was not.
fn serving_request(dns_names: Vec<String>, ips: Vec<IpAddr>, validity_days: u32) -> ServingRequest {
    let defaults = ServingRequest::default();
    ServingRequest {
        dns_names: if dns_names.is_empty() {
            defaults.dns_names
        } else {
            dns_names
        },
        ips: if ips.is_empty() { defaults.ips } else { ips },
        validity_days,
    }
}

/// A new CA and the serving certificate it signs, or the serving certificate signed by the CA
/// in `ca_dir`.
fn certificate_bundle(
    request: &ServingRequest,
    ca_dir: Option<&Path>,
) -> anyhow::Result<CertBundle> {
    match ca_dir {
        None => Ok(certs::generate(request)?),
        Some(dir) => {
            let ca = Ca::read_dir(dir)
                .with_context(|| format!("loading the CA from {}", dir.display()))?;
            Ok(CertBundle {
                ca_cert_pem: ca.cert_pem().to_string(),
                ca_key_pem: ca.key_pem().to_string(),
                serving: ca.issue(request)?,
            })
        }
    }
}

/// What `certs` wrote (stderr) and the caBundle (stdout).
fn report_certificates(
    bundle: &CertBundle,
    request: &ServingRequest,
    out_dir: &Path,
    ca_dir: Option<&Path>,
) {
    let mut names: Vec<String> = request.dns_names.clone();
    names.extend(request.ips.iter().map(IpAddr::to_string));
    eprintln!(
        "wrote {dir}/{{{ca},{cak},{crt},{key}}}: serving certificate for {names} valid {days} days, {signed}",
        dir = out_dir.display(),
        ca = certs::CA_CERT_FILE,
        cak = certs::CA_KEY_FILE,
        crt = certs::CERT_FILE,
        key = certs::KEY_FILE,
        names = names.join(", "),
        days = request.validity_days,
        signed = match ca_dir {
            Some(d) => format!("signed by the existing CA from {}", d.display()),
            None => "signed by a new CA".to_string(),
        },
    );
    eprintln!(
        "ca.key signs future serving certificates (certs --ca-dir); keep it out of the cluster and of version control"
    );
    eprintln!("caBundle (base64 of ca.crt) on stdout:");
    println!("{}", bundle.ca_bundle());
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = args.settings()?;
    let scaler_settings = match args.with_scaler {
        true => Some(args.scaler.settings()?),
        false => None,
    };
    init_tracing(settings.log_format);
    let reconciler_settings = ReconcilerSettings {
        // With several keys (a rotation) the reconciler signs with the first.
        trust_key: reconciler_trust_key(args.scaler.trust_key_file.first())?,
        scaler_ca: reconciler_scaler_ca(
            &settings.webhook,
            settings.reconcile,
            args.scaler.scaler_tls_ca.as_ref(),
        )?,
        ..ReconcilerSettings::from_env()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(async {
        let mut registry = Registry::default();
        let shutdown = shutdown_signal().shared();
        // The reconciler runs next to the server (leader only) and stops with it.
        let reconciler = settings.reconcile.then(|| {
            let metrics = ReconcileMetrics::register(&mut registry);
            tokio::spawn(reconcile::run(
                settings.webhook.clone(),
                reconciler_settings.clone(),
                metrics,
                shutdown.clone(),
            ))
        });
        let scaler_task = match scaler_settings {
            None => None,
            Some(s) => {
                let scaler = scaler::scaler(&s, ScalerMetrics::register(&mut registry));
                let listeners = scaler::Listeners::bind(&s).await?;
                let stop = shutdown.clone();
                Some(tokio::spawn(async move {
                    scaler::serve(&s, scaler, listeners, stop).await
                }))
            }
        };
        let served = server::run(&settings, registry, shutdown).await;
        if let Some(t) = scaler_task {
            match t.await {
                Ok(Err(e)) => tracing::error!(error = %e, "scaler failed"),
                Err(e) => tracing::warn!(error = %e, "scaler task failed"),
                Ok(Ok(())) => {}
            }
        }
        // It saw the same signal: it finishes its running reconciles and releases its lease.
        if let Some(r) = reconciler {
            if let Err(e) = r.await {
                tracing::warn!(error = %e, "reconciler task failed");
            }
        }
        served.map_err(anyhow::Error::from)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The built-in scaler's trust key for the reconciler. A file that is not there (the optional
/// Secret of deploy/base/deployment.yaml, when the scaler is not installed) means no key: the
/// reconciler then writes no token and says so on builtin workloads; a key that is there but
/// unusable is an error.
fn reconciler_trust_key(
    path: Option<&PathBuf>,
) -> anyhow::Result<Option<llm_autoscale_webhook::scaler::trust::TrustKey>> {
    match path {
        None => Ok(None),
        Some(p) if !p.exists() => {
            tracing::info!(path = %p.display(), "no trust key for the built-in scaler: namespace tokens are not written");
            Ok(None)
        }
        Some(p) => Ok(Some(scaler::read_trust_key(p)?)),
    }
}

/// The built-in scaler's CA for the reconciler to write into the namespaces' Secrets. With
/// `--builtin-scaler-tls` the rendered sidecars wait for it, so a reconciler without it
/// refuses to start.
fn reconciler_scaler_ca(
    webhook: &llm_autoscale_webhook::config::WebhookConfig,
    reconciles: bool,
    path: Option<&PathBuf>,
) -> anyhow::Result<Option<String>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let Some(path) = path else {
        anyhow::ensure!(
            !(reconciles && webhook.builtin_scaler_tls),
            "--builtin-scaler-tls renders sidecars that verify the built-in scaler with ca.crt of their namespace's Secret {}, which the reconciler writes from --scaler-tls-ca (LLM_AUTOSCALE_SCALER_TLS_CA): give it the CA of the scaler's certificate",
            llm_autoscale_webhook::scaler::trust::SECRET_NAME
        );
        return Ok(None);
    };
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("reading --scaler-tls-ca {}", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter(Result::is_ok)
        .count();
    anyhow::ensure!(
        certificates > 0,
        "--scaler-tls-ca {}: no PEM certificate in it",
        path.display()
    );
    Ok(Some(pem))
}

fn scaler_only(
    args: &ScalerArgs,
    metrics_addr: SocketAddr,
    log_format: Option<LogFormat>,
) -> anyhow::Result<ExitCode> {
    let settings = args.settings()?;
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    init_tracing(log_format.unwrap_or(LogFormat::default_for(in_cluster)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(async {
        let mut registry = prometheus_client::registry::Registry::default();
        let scaler = scaler::scaler(&settings, ScalerMetrics::register(&mut registry));
        let listeners = scaler::Listeners::bind(&settings).await?;
        let http = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("cannot listen on {metrics_addr}"))?;
        let ready = Arc::new(AtomicBool::new(true));
        let shutdown = shutdown_signal().shared();
        let http = tokio::spawn(scaler::http::serve(
            http,
            Arc::new(registry),
            ready.clone(),
            shutdown.clone(),
        ));
        let stop = {
            let shutdown = shutdown.clone();
            async move {
                shutdown.await;
                ready.store(false, Ordering::SeqCst);
            }
        }
        .shared();
        scaler::serve(&settings, scaler, listeners, stop).await?;
        if let Ok(Err(e)) = http.await {
            tracing::warn!(error = %e, "scaler: HTTP server failed");
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn reconcile_only(
    config: &ConfigArgs,
    trust_key_file: Option<&PathBuf>,
    scaler_tls_ca: Option<&PathBuf>,
    log_format: Option<LogFormat>,
) -> anyhow::Result<ExitCode> {
    let cfg = config.load()?;
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    init_tracing(log_format.unwrap_or(LogFormat::default_for(in_cluster)));
    let settings = ReconcilerSettings {
        trust_key: reconciler_trust_key(trust_key_file)?,
        scaler_ca: reconciler_scaler_ca(&cfg, true, scaler_tls_ca)?,
        ..ReconcilerSettings::from_env()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(reconcile::run(
        cfg,
        settings,
        ReconcileMetrics::default(),
        shutdown_signal(),
    ));
    Ok(ExitCode::SUCCESS)
}

/// `doctor`: exit 0 when nothing blocks scaling, 1 when something does, 2 when the cluster
/// (or the arguments) could not be read.
fn doctor(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let (output, verbose) = (args.output, args.verbose);
    match examine(args) {
        Ok(report) => {
            match output {
                DoctorOutput::Human => print!("{}", report.to_human(verbose)),
                DoctorOutput::Json => println!("{}", report.to_json()),
            }
            Ok(ExitCode::from(report.exit_code()))
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(EXIT_UNCHECKED))
        }
    }
}

fn examine(args: DoctorArgs) -> anyhow::Result<Report> {
    let cfg = args.config.load()?;
    let builtin_scaler_ca = args
        .builtin_scaler_ca
        .as_ref()
        .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
        .transpose()?;
    let target = args
        .workload
        .as_deref()
        .map(str::parse::<TargetRef>)
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .context("connecting to the cluster (KUBECONFIG or in-cluster)")?;
        let opts = GatherOptions {
            namespace: args.namespace.or_else(|| {
                target
                    .is_some()
                    .then(|| client.default_namespace().to_string())
            }),
            target,
            addon_url: args.addon_url,
            prometheus_url: args.prometheus_url,
            webhook_address: args.webhook_address,
            builtin_scaler_url: args.builtin_scaler_url,
            builtin_scaler_ca,
            in_cluster: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
        };
        Ok(llm_autoscale_webhook::doctor::examine(&client, &opts, &cfg).await?)
    })
}
