//! The scaler's flags (shared by `scaler` and `serve --scaler`) and what they become.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::peers::{PeerSource, PeerTls, Peers};
use super::state::Behaviour;
use crate::annotations::values;
use crate::config::flag_files::{self, ReadError, read};
use crate::scaler::store::Limits;
use crate::scaler::trust::{ShortKey, TrustKey};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{path}: {error}")]
    Key { path: PathBuf, error: ShortKey },
    #[error(
        "--peers-dns {0:?}: write the headless Service's name and the scaler port, e.g. llm-autoscale-scaler-peers.llm-autoscale-system.svc:4318"
    )]
    PeersDns(String),
    #[error(
        "--scaler-tls-ca is needed to reach peers over TLS (the CA their certificates chain to)"
    )]
    PeerCa,
}

/// A duration: seconds, or `30s`, `5m`, `1h`.
fn duration(text: &str) -> Result<Duration, String> {
    let s = values::seconds(text).map_err(|r| format!("{}: {}", r.reason, r.fix))?;
    Ok(Duration::from_secs(u64::try_from(s).unwrap_or(0)))
}

/// The built-in scaler's flags.
#[derive(Args, Clone, Debug, PartialEq)]
pub struct ScalerArgs {
    /// Address of the OTLP/gRPC receiver the sidecars export to.
    #[arg(long, env = "LLM_AUTOSCALE_OTLP_ADDR", default_value = "0.0.0.0:4317")]
    pub otlp_addr: SocketAddr,

    /// Address of KEDA's external scaler (gRPC), which peer replicas ask too.
    #[arg(
        long,
        env = "LLM_AUTOSCALE_SCALER_ADDR",
        default_value = "0.0.0.0:4318"
    )]
    pub scaler_addr: SocketAddr,

    /// A series not received for this long does not answer; a query with no series left
    /// is an error (KEDA's fallback). Seconds or 30s, 2m.
    #[arg(long, env = "LLM_AUTOSCALE_SCALER_STALENESS", default_value = "60s",
          value_parser = duration)]
    pub staleness: Duration,

    /// How long samples are kept: the longest window a trigger may ask.
    #[arg(long, env = "LLM_AUTOSCALE_SCALER_MAX_WINDOW", default_value = "5m",
          value_parser = duration)]
    pub max_window: Duration,

    /// A series not received for this long is forgotten (its pod is gone).
    #[arg(long, env = "LLM_AUTOSCALE_SCALER_FORGET_AFTER", default_value = "10m",
          value_parser = duration)]
    pub forget_after: Duration,

    /// Most series one workload may hold; points of further series are dropped, counted
    /// and logged.
    #[arg(long, env = "LLM_AUTOSCALE_SCALER_SERIES_PER_WORKLOAD", default_value_t = Limits::default().series_per_workload)]
    pub series_per_workload: usize,

    /// Most series in all.
    #[arg(long, env = "LLM_AUTOSCALE_SCALER_TOTAL_SERIES", default_value_t = Limits::default().total_series)]
    pub total_series: usize,

    /// Keys of the per-namespace tokens (each at least 32 bytes; the reconciler signs with
    /// the first): only points carrying their namespace's token under one of them are
    /// stored. Several while a key is rotated (repeat the flag, or comma-separate). Without
    /// one nothing is checked.
    #[arg(
        long,
        env = "LLM_AUTOSCALE_SCALER_TRUST_KEY_FILE",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub trust_key_file: Vec<PathBuf>,

    /// Peer replicas' scaler addresses (host:port, comma-separated).
    #[arg(long, env = "LLM_AUTOSCALE_SCALER_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,

    /// A DNS name (headless Service) whose addresses are the peer replicas, and their
    /// scaler port: NAME:PORT. This replica (POD_IP) is left out.
    #[arg(
        long,
        env = "LLM_AUTOSCALE_SCALER_PEERS_DNS",
        value_name = "NAME:PORT",
        conflicts_with = "peers"
    )]
    pub peers_dns: Option<String>,

    /// TLS certificate (PEM) of both gRPC ports; without it they are plain TCP.
    #[arg(
        long,
        env = "LLM_AUTOSCALE_SCALER_TLS_CERT",
        value_name = "FILE",
        requires = "scaler_tls_key"
    )]
    pub scaler_tls_cert: Option<PathBuf>,

    /// Its private key (PEM).
    #[arg(
        long,
        env = "LLM_AUTOSCALE_SCALER_TLS_KEY",
        value_name = "FILE",
        requires = "scaler_tls_cert"
    )]
    pub scaler_tls_key: Option<PathBuf>,

    /// CA the scaler's certificates chain to (PEM): peers verify each other with it when
    /// they serve TLS, and the reconciler (`serve`, `reconcile`) writes it into each
    /// namespace's Secret for sidecars rendered with --builtin-scaler-tls.
    #[arg(long, env = "LLM_AUTOSCALE_SCALER_TLS_CA", value_name = "FILE")]
    pub scaler_tls_ca: Option<PathBuf>,
}

/// The flags, with files read.
#[derive(Clone, Debug)]
pub struct ScalerSettings {
    pub otlp_addr: SocketAddr,
    pub scaler_addr: SocketAddr,
    pub behaviour: Behaviour,
    /// The keys a token may be signed with (empty: nothing is checked).
    pub trust: Vec<TrustKey>,
    pub peer_source: PeerSource,
    pub own_ip: Option<IpAddr>,
    /// Certificate and key (PEM).
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    pub peer_tls: Option<PeerTls>,
}

/// The trust key in `path` (the reconciler reads the same file).
pub fn read_trust_key(path: &Path) -> Result<TrustKey, SettingsError> {
    TrustKey::new(&read(path)?).map_err(|error| SettingsError::Key {
        path: path.to_path_buf(),
        error,
    })
}

impl ScalerArgs {
    pub fn settings(&self) -> Result<ScalerSettings, SettingsError> {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let limits = Limits {
            series_per_workload: self.series_per_workload,
            total_series: self.total_series,
            retention_ms: ms(self.max_window),
            forget_after_ms: ms(self.forget_after),
        };
        let trust = self
            .trust_key_file
            .iter()
            .map(|path| read_trust_key(path))
            .collect::<Result<Vec<_>, _>>()?;
        let peer_source = match (&self.peers_dns, self.peers.is_empty()) {
            (Some(dns), _) => {
                let (host, port) = dns
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
                    .ok_or_else(|| SettingsError::PeersDns(dns.clone()))?;
                PeerSource::Dns { host, port }
            }
            (None, false) => PeerSource::List(self.peers.clone()),
            (None, true) => PeerSource::None,
        };
        let tls = match flag_files::pem_pair(&self.scaler_tls_cert, &self.scaler_tls_key) {
            Some((c, k)) => Some((read(c)?, read(k)?)),
            None => None,
        };
        let peer_tls = match (&tls, &peer_source, &self.scaler_tls_ca) {
            (None, _, _) | (_, PeerSource::None, _) => None,
            (Some(_), _, None) => return Err(SettingsError::PeerCa),
            (Some(_), source, Some(ca)) => Some(PeerTls {
                ca_pem: read(ca)?,
                domain: match source {
                    PeerSource::Dns { host, .. } => host.clone(),
                    _ => "localhost".into(),
                },
            }),
        };
        Ok(ScalerSettings {
            otlp_addr: self.otlp_addr,
            scaler_addr: self.scaler_addr,
            behaviour: Behaviour {
                staleness: self.staleness,
                limits,
            },
            trust,
            peer_source,
            own_ip: std::env::var("POD_IP").ok().and_then(|ip| ip.parse().ok()),
            tls,
            peer_tls,
        })
    }
}

impl ScalerSettings {
    pub fn peers(&self) -> Peers {
        Peers::new(self.peer_source.clone(), self.own_ip, self.peer_tls.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::flag_files::parse_flags;

    fn parse(args: &[&str]) -> Result<ScalerArgs, clap::Error> {
        parse_flags(args)
    }

    #[test]
    fn defaults_and_flags() {
        let s = parse(&[]).unwrap().settings().unwrap();
        assert_eq!(s.otlp_addr.to_string(), "0.0.0.0:4317");
        assert_eq!(s.scaler_addr.to_string(), "0.0.0.0:4318");
        assert_eq!(s.behaviour.staleness, Duration::from_secs(60));
        assert_eq!(s.behaviour.limits, Limits::default());
        assert!(s.trust.is_empty());
        assert_eq!(s.peer_source, PeerSource::None);
        let s = parse(&[
            "--staleness",
            "2m",
            "--max-window",
            "90",
            "--peers",
            "a:1,b:2",
            "--series-per-workload",
            "10",
        ])
        .unwrap()
        .settings()
        .unwrap();
        assert_eq!(s.behaviour.staleness, Duration::from_secs(120));
        assert_eq!(s.behaviour.limits.retention_ms, 90_000);
        assert_eq!(s.behaviour.limits.series_per_workload, 10);
        assert_eq!(
            s.peer_source,
            PeerSource::List(vec!["a:1".into(), "b:2".into()])
        );
        let s = parse(&["--peers-dns", "peers.ns.svc:4318"])
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(
            s.peer_source,
            PeerSource::Dns {
                host: "peers.ns.svc".into(),
                port: 4318
            }
        );
        assert!(
            parse(&["--peers-dns", "no-port"])
                .unwrap()
                .settings()
                .is_err()
        );
        assert!(parse(&["--peers", "a:1", "--peers-dns", "b:2"]).is_err());
        assert!(parse(&["--staleness", "soon"]).is_err());
    }

    #[test]
    fn the_trust_key_file_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "tiny\n").unwrap();
        let path = short.to_str().unwrap();
        assert!(matches!(
            parse(&["--trust-key-file", path]).unwrap().settings(),
            Err(SettingsError::Key { .. })
        ));
        let good = dir.path().join("good");
        std::fs::write(&good, "x".repeat(48)).unwrap();
        let s = parse(&["--trust-key-file", good.to_str().unwrap()])
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(s.trust.len(), 1);
        // Rotation: both keys, as repeated flags or comma-separated.
        let other = dir.path().join("other");
        std::fs::write(&other, "y".repeat(40)).unwrap();
        let (good, other) = (good.to_str().unwrap(), other.to_str().unwrap());
        let s = parse(&["--trust-key-file", good, "--trust-key-file", other])
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(s.trust.len(), 2);
        let s = parse(&["--trust-key-file", &format!("{good},{other}")])
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(s.trust.len(), 2);
        assert!(matches!(
            parse(&["--trust-key-file", &format!("{good},{path}")])
                .unwrap()
                .settings(),
            Err(SettingsError::Key { .. })
        ));
    }
}
