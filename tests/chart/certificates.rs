//! `certificates.mode=generate`: Helm makes the CA and the serving certificate at install
//! (sprig's genCAWithKey/genSignedCertWithKey). The webhook binary serves the rendered
//! certificate, and a TLS client that trusts only the rendered caBundle and checks the
//! Service's DNS name, as the API server does for `clientConfig.service`, accepts it.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{SERVICE_DNS, helm, webhooks};

fn secret_file(secret: &Value, key: &str) -> String {
    let b64 = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in the Secret"));
    String::from_utf8(BASE64.decode(b64).expect("base64")).expect("PEM text")
}

/// `llm-autoscale-webhook serve` on a free loopback port with these files, without the
/// reconciler (no cluster here); killed on drop.
struct Server(Child, u16);

impl Server {
    fn start(dir: &Path) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_llm-autoscale-webhook"))
            .args([
                "serve",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--reconcile",
                "false",
            ])
            .arg("--tls-cert")
            .arg(dir.join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.join("tls.key"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the webhook");
        Server(child, port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET `path` over TLS, trusting only `ca_pem`, checking the certificate for `name`.
async fn get(port: u16, ca_pem: &str, name: &str, path: &str) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    tls.read_to_string(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    Ok(response)
}

#[tokio::test]
async fn generated_certificates_are_served_and_trusted_through_the_ca_bundle() {
    let objects = helm::render(&["--set", "certificates.mode=generate"]);
    assert!(
        helm::all_of(&objects, "Certificate").is_empty()
            && helm::all_of(&objects, "Issuer").is_empty()
    );
    let secret = helm::find(&objects, "Secret", "llm-autoscale-webhook-tls");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let d = helm::find(&objects, "Deployment", helm::RELEASE);
    assert_eq!(
        d["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
        secret["metadata"]["name"]
    );
    let ca_pem = secret_file(secret, "ca.crt");
    for h in webhooks(&objects) {
        assert_eq!(
            h["clientConfig"]["caBundle"], secret["data"]["ca.crt"],
            "{}",
            h["name"]
        );
    }
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        assert!(helm::find(&objects, kind, helm::RELEASE)["metadata"]["annotations"].is_null());
    }

    let cert_pem = secret_file(secret, "tls.crt");
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).expect("tls.crt is PEM");
    let cert = pem.parse_x509().expect("tls.crt is a certificate");
    let mut names: Vec<String> = cert
        .subject_alternative_name()
        .expect("SAN extension")
        .expect("SANs")
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            format!("DNSName({SERVICE_DNS})"),
            format!("DNSName({SERVICE_DNS}.cluster.local)")
        ]
    );
    let days =
        (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400;
    assert_eq!(days, 3650, "certificates.generate.validityDays");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), secret_file(secret, "tls.key")).unwrap();
    let server = Server::start(dir.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    let response = loop {
        match get(server.1, &ca_pem, SERVICE_DNS, "/healthz").await {
            Ok(r) => break r,
            Err(e) if e.starts_with("TLS") => {
                panic!("the caBundle does not verify the served certificate: {e}")
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "the webhook did not answer: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let wrong_name = get(
        server.1,
        &ca_pem,
        "llm-autoscale-webhook.default.svc",
        "/healthz",
    )
    .await;
    assert!(
        wrong_name.is_err_and(|e| e.starts_with("TLS")),
        "the certificate is for the Service's name only"
    );
}

#[test]
fn every_install_makes_its_own_ca() {
    let ca = |objects: &[Value]| {
        helm::find(objects, "Secret", "llm-autoscale-webhook-tls")["data"]["ca.crt"].clone()
    };
    let first = helm::render(&["--set", "certificates.mode=generate"]);
    let second = helm::render(&[
        "--set",
        "certificates.mode=generate,certificates.generate.validityDays=30",
    ]);
    assert_ne!(ca(&first), ca(&second));
}
