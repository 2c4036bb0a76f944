//! The scaler's shells: the OTLP/gRPC receiver, KEDA's external scaler and the peer protocol
//! (gRPC, plain TCP or TLS), the forgetting of series, and (standalone) `/metrics` and health
//! over HTTP. `llm-autoscale-webhook scaler` runs it alone; `serve --scaler` next to the
//! webhook, its metrics on the webhook's `/metrics`.

pub mod http;
pub mod keda;
pub mod metrics;
pub mod otlp;
pub mod peers;
pub mod proto;
pub mod settings;
pub mod state;
pub mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use keda::{KedaScaler, PeerService};
use metrics::ScalerMetrics;
use proto::externalscaler::external_scaler_server::ExternalScalerServer;
use proto::peer::scaler_peer_server::ScalerPeerServer;
pub use settings::{ScalerArgs, ScalerSettings, SettingsError, read_trust_key};
use state::Scaler;

/// How often series of pods that stopped reporting are looked for.
const FORGET_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ScalerError {
    #[error("scaler: cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("scaler: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("scaler: {0}")]
    Settings(#[from] SettingsError),
}

/// The two listeners, bound.
pub struct Listeners {
    pub otlp: TcpListener,
    pub scaler: TcpListener,
}

impl Listeners {
    pub async fn bind(s: &ScalerSettings) -> Result<Listeners, ScalerError> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|error| ScalerError::Bind { addr, error })
        };
        Ok(Listeners {
            otlp: bind(s.otlp_addr).await?,
            scaler: bind(s.scaler_addr).await?,
        })
    }
}

/// Builds the scaler's state from its settings.
pub fn scaler(s: &ScalerSettings, metrics: ScalerMetrics) -> Arc<Scaler> {
    let scaler = Scaler::new(s.behaviour.clone(), s.trust.clone(), metrics, s.peers());
    if !scaler.trusts() {
        tracing::warn!(
            "scaler: no --trust-key-file: any pod that reaches the OTLP port can write any workload's series"
        );
    }
    Arc::new(scaler)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    s: &ScalerSettings,
    scaler: Arc<Scaler>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Clone + Send + 'static,
) -> Result<(), ScalerError> {
    let tls = s.tls.as_ref().map(|(cert, key)| {
        ServerTlsConfig::new().identity(Identity::from_pem(cert.clone(), key.clone()))
    });
    let builder = || -> Result<Server, ScalerError> {
        let b = Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .tcp_nodelay(true);
        Ok(match &tls {
            Some(t) => b.tls_config(t.clone())?,
            None => b,
        })
    };
    tracing::info!(
        otlp = %listeners.otlp.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        scaler = %listeners.scaler.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        tls = s.tls.is_some(),
        trust = scaler.trusts(),
        peers = ?s.peer_source,
        "scaler: serving OTLP and KEDA's external scaler"
    );
    let otlp = builder()?
        .add_service(otlp::service(scaler.clone()))
        .serve_with_incoming_shutdown(TcpIncoming::from(listeners.otlp), shutdown.clone());
    let keda = builder()?
        .add_service(ExternalScalerServer::new(KedaScaler(scaler.clone())))
        .add_service(ScalerPeerServer::new(PeerService(scaler.clone())))
        .serve_with_incoming_shutdown(TcpIncoming::from(listeners.scaler), shutdown.clone());
    let forget = forget_loop(scaler).then(|()| futures::future::pending::<()>());
    // The servers stop on `shutdown` (after their calls finish); forgetting never ends.
    tokio::select! {
        r = async { tokio::try_join!(otlp, keda) } => { r?; }
        () = forget => {}
    }
    Ok(())
}

async fn forget_loop(scaler: Arc<Scaler>) {
    let mut tick = tokio::time::interval(FORGET_EVERY);
    loop {
        tick.tick().await;
        let n = scaler.forget();
        if n > 0 {
            tracing::info!(
                series = n,
                "scaler: forgot series of pods that stopped reporting"
            );
        }
    }
}
