use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use llm_autoscale_webhook::config::WebhookConfig;
use llm_autoscale_webhook::manifest::{ManifestError, mutate_manifest};

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
    /// Mutate manifests offline, like the webhook would: prints the mutated documents and
    /// the ScaledObjects that will exist; warnings and problems go to stderr.
    Mutate {
        /// File to read (`-` for stdin).
        #[arg(short = 'f', long = "filename")]
        file: String,
        /// YAML configuration file (same format as for `serve`).
        #[arg(long, env = "LLM_AUTOSCALE_CONFIG")]
        config: Option<std::path::PathBuf>,
    },
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

fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<WebhookConfig> {
    match path {
        None => Ok(WebhookConfig::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {}", p.display()))
        }
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
        Command::Mutate { file, config } => {
            let cfg = load_config(config.as_deref())?;
            let input = read_input(&file)?;
            match mutate_manifest(&input, &cfg) {
                Ok(out) => {
                    for w in &out.warnings {
                        eprintln!("Warning: {w}");
                    }
                    print!("{}", out.yaml);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ ManifestError::Invalid { .. }) => {
                    eprintln!("{e}");
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}
