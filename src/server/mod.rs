//! The HTTPS admission server: axum over rustls (ring, TLS 1.2/1.3, h2 and http/1.1).
//!
//! Routes: `POST /mutate`, `POST /validate` (AdmissionReview v1), `GET /healthz`,
//! `GET /readyz`, `GET /metrics`. Admission work is pure CPU and well under a millisecond
//! (see `benches/admission.rs`), so it runs inline on the request's task: handing it to the
//! blocking pool would cost a thread hop per review and buy no parallelism the worker
//! threads do not already have.
//!
//! Limits: request bodies over [`BODY_LIMIT`] get 413; the TLS handshake, the first request
//! on a connection, HTTP/1 headers and whole requests each have a timeout. On shutdown the
//! server fails `/readyz`, keeps serving for `shutdown_delay`, then stops accepting and lets
//! in-flight requests finish until `shutdown_grace` has passed since the signal.

pub mod metrics;
pub mod review_summary;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_server::tls_rustls::RustlsConfig;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::admission::{self, Answer, BadReview};
use crate::config::WebhookConfig;
use crate::config::loading::{Settings, TlsSource};
use metrics::Metrics;
use tls::{PairFiles, ReloadingCert, TlsError};

/// Largest accepted request body (the API server's own limit for objects is 3 MiB).
pub const BODY_LIMIT: usize = 3 * 1024 * 1024;
/// Longest TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the first request on a new connection, after the handshake.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a complete HTTP/1 request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest time for a whole request, body included (the API server waits at most 30 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("server: {0}")]
    Io(std::io::Error),
    #[error("server task: {0}")]
    Task(String),
}

impl From<std::io::Error> for ServerError {
    fn from(e: std::io::Error) -> Self {
        ServerError::Io(e)
    }
}

/// Shared by the handlers.
#[derive(Clone)]
struct AppState {
    config: Arc<WebhookConfig>,
    metrics: Metrics,
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
}

type Review = fn(&[u8], &WebhookConfig) -> Result<Answer, BadReview>;

/// The routes, without TLS: usable with any hyper/axum server.
pub fn router(
    config: WebhookConfig,
    metrics: Metrics,
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
) -> Router {
    let state = AppState {
        config: Arc::new(config),
        metrics,
        registry,
        ready,
    };
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state)
}

/// A bug must not drop the apiserver's connection: answer 500 with what went wrong (the
/// apiserver then applies the webhook's failurePolicy and logs the message).
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = %what, "a request handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("llm-autoscale-webhook: internal error while handling the request: {what}\n"),
    )
        .into_response()
}

async fn mutate(State(s): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    review(&s, "mutate", admission::mutate_review, body)
}

async fn validate(State(s): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    review(&s, "validate", admission::validate_review, body)
}

fn text(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message + "\n",
    )
        .into_response()
}

/// The log line of an answered review (`$level` must be a constant).
macro_rules! review_event {
    ($level:expr, $route:expr, $m:expr, $elapsed:expr) => {
        tracing::event!(
            $level,
            route = $route,
            uid = $m.uid.as_str(),
            kind = $m.kind.as_str(),
            namespace = $m.namespace.as_str(),
            name = $m.name.as_str(),
            operation = $m.operation,
            dry_run = $m.dry_run,
            decision = $m.decision,
            duration_ms = $elapsed.as_secs_f64() * 1000.0,
            "admission review"
        )
    };
}

fn review(
    s: &AppState,
    route: &'static str,
    decide: Review,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let start = Instant::now();
    match body {
        Ok(body) => answer(s, route, start, decide(&body, &s.config)),
        Err(rejection) => unreadable(s, route, start, &rejection),
    }
}

/// A body that could not be read: too large (413), or otherwise (the rejection's status).
fn unreadable(
    s: &AppState,
    route: &'static str,
    start: Instant,
    rejection: &BytesRejection,
) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        s.metrics.admission(route, "too_large", start.elapsed());
        tracing::warn!(route, limit_bytes = BODY_LIMIT, "request body too large");
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over the {BODY_LIMIT}-byte limit"),
        );
    }
    s.metrics.admission(route, "bad_request", start.elapsed());
    tracing::warn!(route, error = %rejection.body_text(), "cannot read the request body");
    text(rejection.status(), rejection.body_text())
}

/// The review's answer (200 with the AdmissionReview), or why there is none (500 or 400).
fn answer(
    s: &AppState,
    route: &'static str,
    start: Instant,
    decided: Result<Answer, BadReview>,
) -> Response {
    match decided {
        Ok(answer) => {
            let elapsed = start.elapsed();
            let m = &answer.summary;
            s.metrics.admission(route, m.decision, elapsed);
            // A review denied or warned about is logged at info level; one patched or allowed
            // at debug level, and counted in the metrics and in the summary line
            // (`review_summary`).
            if matches!(m.decision, "denied" | "warned") {
                review_event!(tracing::Level::INFO, route, m, elapsed);
            } else {
                review_event!(tracing::Level::DEBUG, route, m, elapsed);
            }
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                answer.body,
            )
                .into_response()
        }
        Err(e @ admission::BadReview::Internal(_)) => {
            let elapsed = start.elapsed();
            s.metrics.admission(route, "internal_error", elapsed);
            tracing::error!(route, error = %e, "cannot answer the admission request");
            text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(e) => {
            let elapsed = start.elapsed();
            s.metrics.admission(route, "bad_request", elapsed);
            tracing::warn!(
                route,
                error = %e,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                "bad admission request"
            );
            text(StatusCode::BAD_REQUEST, e.to_string())
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AppState>) -> Response {
    if s.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::encode(&s.registry),
    )
        .into_response()
}

/// A running server.
pub struct Server {
    local_addr: SocketAddr,
    handle: axum_server::Handle<SocketAddr>,
    task: JoinHandle<std::io::Result<()>>,
    reload: Option<JoinHandle<()>>,
    /// Writes the reviews' summary line ([`review_summary`]).
    summary: JoinHandle<()>,
    ready: Arc<AtomicBool>,
    dev_ca_bundle: Option<String>,
    shutdown_grace: Duration,
    shutdown_delay: Duration,
}

impl Server {
    /// Loads the certificate (or makes the development one), binds `settings.addr` and starts
    /// serving on the current Tokio runtime. The server's metrics are added to `registry`,
    /// whose other metrics (registered before) are served on `/metrics` too.
    pub async fn start(settings: &Settings, mut registry: Registry) -> Result<Server, ServerError> {
        let metrics = Metrics::register(&mut registry);
        let ServingCertificate {
            resolver,
            reload,
            dev_ca_bundle,
        } = serving_certificate(settings, &metrics).await?;
        let rustls_config = RustlsConfig::from_config(Arc::new(tls::server_config(resolver)?));

        let listener =
            std::net::TcpListener::bind(settings.addr).map_err(|error| ServerError::Bind {
                addr: settings.addr,
                error,
            })?;
        let local_addr = listener.local_addr()?;
        let handle = axum_server::Handle::new();
        let mut server = axum_server::tls_rustls::from_tcp_rustls(listener, rustls_config)?
            .map(|acceptor| acceptor.handshake_timeout(HANDSHAKE_TIMEOUT))
            .handle(handle.clone())
            .first_request_timeout(FIRST_REQUEST_TIMEOUT)
            .accept_error_handler(|remote, e| {
                tracing::debug!(remote = ?remote, error = %e, "connection not accepted");
            });
        server
            .http_builder()
            .http1()
            .header_read_timeout(HEADER_READ_TIMEOUT);

        let ready = Arc::new(AtomicBool::new(false));
        let summary = review_summary::spawn(metrics.clone());
        let app = router(
            settings.webhook.clone(),
            metrics,
            Arc::new(registry),
            ready.clone(),
        );
        let task = tokio::spawn(server.serve(app.into_make_service()));
        ready.store(true, Ordering::SeqCst);
        tracing::info!(addr = %local_addr, "admission webhook listening (HTTPS)");
        Ok(Server {
            local_addr,
            handle,
            task,
            reload,
            summary,
            ready,
            dev_ca_bundle,
            shutdown_grace: settings.shutdown_grace,
            shutdown_delay: settings.shutdown_delay.min(settings.shutdown_grace),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// base64 caBundle of the ephemeral development CA, when serving one.
    pub fn dev_ca_bundle(&self) -> Option<&str> {
        self.dev_ca_bundle.as_deref()
    }

    /// Whether `/readyz` currently answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Fails `/readyz`, serves on for the shutdown delay, stops accepting, and waits for
    /// in-flight requests until the grace period (counted from this call) is over.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let Server {
            handle,
            task,
            reload,
            summary,
            ready,
            shutdown_grace,
            shutdown_delay,
            ..
        } = self;
        ready.store(false, Ordering::SeqCst);
        tracing::info!(
            delay_seconds = shutdown_delay.as_secs_f64(),
            grace_seconds = shutdown_grace.as_secs_f64(),
            connections = handle.connection_count(),
            "shutting down: not ready"
        );
        if !shutdown_delay.is_zero() {
            tokio::time::sleep(shutdown_delay).await;
        }
        tracing::info!(
            connections = handle.connection_count(),
            "shutting down: listener closed, draining in-flight requests"
        );
        handle.graceful_shutdown(Some(shutdown_grace.saturating_sub(shutdown_delay)));
        if let Some(reload) = reload {
            reload.abort();
        }
        let result = join(task).await;
        summary.abort();
        tracing::info!("shut down");
        result
    }

    /// Serves until `shutdown` completes (then shuts down gracefully) or the server fails.
    pub async fn serve_until(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServerError> {
        tokio::select! {
            result = &mut self.task => {
                if let Some(reload) = self.reload.take() {
                    reload.abort();
                }
                self.summary.abort();
                flatten(result)
            }
            () = shutdown => self.shutdown().await,
        }
    }
}

/// The certificate the server presents.
struct ServingCertificate {
    resolver: Arc<ReloadingCert>,
    /// Reloads the certificate files when they change.
    reload: Option<JoinHandle<()>>,
    /// base64 caBundle of the ephemeral development CA.
    dev_ca_bundle: Option<String>,
}

/// The certificate to serve: loaded from files (and reloaded when they change) or, without
/// files, an ephemeral development one.
async fn serving_certificate(
    settings: &Settings,
    metrics: &Metrics,
) -> Result<ServingCertificate, ServerError> {
    match &settings.tls {
        TlsSource::Files { cert, key } => {
            let files = PairFiles {
                cert: cert.clone(),
                key: key.clone(),
            };
            let (loaded, fingerprint) = files.load().await?;
            tls::initial(&loaded, &files, metrics);
            let resolver = Arc::new(ReloadingCert::new(loaded.key));
            let reload = tokio::spawn(tls::watch(
                files,
                settings.cert_reload_interval,
                resolver.clone(),
                metrics.clone(),
                fingerprint,
            ));
            Ok(ServingCertificate {
                resolver,
                reload: Some(reload),
                dev_ca_bundle: None,
            })
        }
        TlsSource::Ephemeral => {
            let (loaded, ca_bundle) = tls::ephemeral()?;
            metrics.certificate_served(loaded.not_after);
            tracing::warn!(
                ca_bundle = %ca_bundle,
                "NO --tls-cert/--tls-key: serving an EPHEMERAL DEVELOPMENT CERTIFICATE made at start \
                 (SANs localhost, 127.0.0.1, ::1 and the in-cluster Service names), signed by a CA \
                 that exists only in this process; use ca_bundle as the webhooks' caBundle, \
                 never in production"
            );
            Ok(ServingCertificate {
                resolver: Arc::new(ReloadingCert::new(loaded.key)),
                reload: None,
                dev_ca_bundle: Some(ca_bundle),
            })
        }
    }
}

async fn join(task: JoinHandle<std::io::Result<()>>) -> Result<(), ServerError> {
    flatten(task.await)
}

fn flatten(result: Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<(), ServerError> {
    match result {
        Ok(r) => r.map_err(ServerError::Io),
        Err(e) => Err(ServerError::Task(e.to_string())),
    }
}

/// Starts the server and serves until `shutdown` completes; see [`Server::start`].
pub async fn run(
    settings: &Settings,
    registry: Registry,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    Server::start(settings, registry)
        .await?
        .serve_until(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_with_the_reason() {
        use tower::ServiceExt as _;
        async fn boom() -> &'static str {
            panic!("index 3 of an empty list")
        }
        let app: Router = Router::new()
            .route("/boom", get(boom))
            .layer(CatchPanicLayer::custom(panic_response));
        let req = axum::http::Request::get("/boom")
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("index 3 of an empty list"), "{text}");
    }
}
