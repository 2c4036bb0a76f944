//! Real server, real certificates, real rustls client: the pieces every test uses.
//!
//! Certificates live in a temporary directory laid out like a kubelet Secret volume
//! (`tls.crt -> ..data/tls.crt`, `..data -> ..<generation>`), and [`CertDir::publish`] swaps
//! them the way the kubelet does: a new directory, then an atomic rename of the `..data`
//! symlink.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use llm_autoscale_webhook::certs::{self, Ca, ServingCert, ServingRequest};
use llm_autoscale_webhook::config::WebhookConfig;
use llm_autoscale_webhook::config::loading::{Settings, TlsSource};
use llm_autoscale_webhook::server::Server;
use prometheus_client::registry::Registry;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Generous upper bound for anything the tests wait for.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// A kubelet-style certificate directory and the CA that signs its certificates.
pub struct CertDir {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    generation: u32,
}

impl CertDir {
    /// A new CA and serving certificate from [`certs::generate`], published.
    pub fn new() -> CertDir {
        let bundle = certs::generate(&ServingRequest::default()).expect("certs::generate");
        let ca = Ca::from_pem(&bundle.ca_cert_pem, &bundle.ca_key_pem).expect("CA from PEM");
        let mut dir = CertDir {
            dir: tempfile::tempdir().expect("tempdir"),
            ca,
            generation: 0,
        };
        dir.publish(&bundle.serving.cert_pem, &bundle.serving.key_pem);
        for name in [certs::CERT_FILE, certs::KEY_FILE, certs::CA_CERT_FILE] {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.dir.path().join(name))
                .expect("symlink");
        }
        dir
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join(certs::CERT_FILE)
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join(certs::KEY_FILE)
    }

    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// A new serving certificate from the same CA (new key, new serial).
    pub fn issue(&self) -> ServingCert {
        self.ca
            .issue(&ServingRequest::default())
            .expect("issue a serving certificate")
    }

    /// Makes `cert_pem`/`key_pem` the visible files, atomically, as the kubelet does.
    pub fn publish(&mut self, cert_pem: &str, key_pem: &str) {
        self.generation += 1;
        let root = self.dir.path();
        let gen_name = format!("..gen_{}", self.generation);
        let gen_dir = root.join(&gen_name);
        std::fs::create_dir(&gen_dir).expect("mkdir");
        std::fs::write(gen_dir.join(certs::CERT_FILE), cert_pem).expect("write cert");
        std::fs::write(gen_dir.join(certs::KEY_FILE), key_pem).expect("write key");
        std::fs::write(gen_dir.join(certs::CA_CERT_FILE), self.ca.cert_pem()).expect("write ca");
        let tmp = root.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&gen_name, &tmp).expect("symlink");
        std::fs::rename(&tmp, root.join("..data")).expect("swap ..data");
    }

    pub fn settings(&self, webhook: WebhookConfig) -> Settings {
        Settings {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            tls: TlsSource::Files {
                cert: self.cert_path(),
                key: self.key_path(),
            },
            cert_reload_interval: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(20),
            shutdown_delay: Duration::ZERO,
            webhook,
            ..Settings::default()
        }
    }
}

/// The DER of the first certificate of a PEM.
pub fn der_of(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM certificate")
}

/// A rustls client configuration trusting only `ca_pem`.
pub fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der_of(ca_pem)).expect("add CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Every connection makes a full handshake, so it sees the certificate served now.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// One kept-alive HTTPS/1.1 connection.
pub struct Client {
    sender: SendRequest<Body>,
    /// The certificate the server presented on this connection.
    pub peer_cert: CertificateDer<'static>,
    pub alpn: Option<Vec<u8>>,
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

pub fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed_unsync()
}

pub async fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Result<Client, Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::IpAddress(addr.ip().into());
    let tls = connector.connect(name, tcp).await?;
    let (_, session) = tls.get_ref();
    let peer_cert = session
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
        .ok_or("no peer certificate")?;
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Client {
        sender,
        peer_cert,
        alpn,
    })
}

impl Client {
    pub async fn request(&mut self, request: Request<Body>) -> Result<Reply, Error> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            content_type,
            body,
        })
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
    ) -> Result<Reply, Error> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "localhost")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(full(body))?;
        self.request(request).await
    }

    pub async fn get(&mut self, path: &str) -> Result<Reply, Error> {
        self.send(Method::GET, path, Bytes::new()).await
    }

    pub async fn post(&mut self, path: &str, body: impl Into<Bytes>) -> Result<Reply, Error> {
        self.send(Method::POST, path, body).await
    }
}

/// A server on 127.0.0.1 with certificates from a [`CertDir`].
pub struct TestServer {
    pub server: Server,
    pub addr: SocketAddr,
    pub certs: CertDir,
    pub client_config: Arc<rustls::ClientConfig>,
}

impl TestServer {
    pub async fn start(webhook: WebhookConfig) -> TestServer {
        let certs = CertDir::new();
        let settings = certs.settings(webhook);
        TestServer::start_with(certs, settings).await
    }

    pub async fn start_with(certs: CertDir, settings: Settings) -> TestServer {
        init_logs();
        let server = Server::start(&settings, Registry::default())
            .await
            .expect("server starts");
        let addr = server.local_addr();
        let client_config = client_config(certs.ca_pem());
        TestServer {
            server,
            addr,
            certs,
            client_config,
        }
    }

    pub async fn client(&self) -> Client {
        connect(self.addr, self.client_config.clone())
            .await
            .expect("TLS connection to the server")
    }

    /// The value of one sample of `/metrics` (`name{labels}` as printed), if present.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        let reply = self.client().await.get("/metrics").await.ok()?;
        metric_value(&reply.text(), sample)
    }
}

pub fn metric_value(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls `check` until it returns `Some`, for at most [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An AdmissionReview v1 request for `object`.
pub fn review(object: &Value, operation: &str, dry_run: bool, uid: &str) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap_or_default();
    let resource = format!("{}s", kind.to_lowercase());
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": object.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
            "namespace": object.pointer("/metadata/namespace").cloned().unwrap_or(Value::Null),
            "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// The `response` of an AdmissionReview reply, checked for shape.
pub fn response_of(reply: &Reply) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(
        reply.content_type.starts_with("application/json"),
        "{}",
        reply.content_type
    );
    let v = reply.json();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    v["response"].clone()
}

/// Applies the response's JSONPatch (if any) to `object`.
pub fn apply_response_patch(response: &Value, object: &Value) -> Value {
    use base64::Engine;
    let mut patched = object.clone();
    if let Some(p) = response.get("patch") {
        assert_eq!(response["patchType"], "JSONPatch");
        // A Go []byte: base64 in a string, or (as kube-core writes it) an array of numbers.
        let bytes: Vec<u8> = match p {
            Value::String(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64 patch"),
            other => serde_json::from_value(other.clone()).expect("patch bytes"),
        };
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("JSON patch");
        json_patch::patch(&mut patched, &patch).expect("patch applies");
    }
    patched
}
