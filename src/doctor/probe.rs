//! The network checks behind the snapshot: a TLS handshake trusting only a caBundle, and
//! HTTP GETs, directly or through the API server's service proxy. Thin: every decision about
//! what an answer means is in the findings.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::snapshot::{Probe, ServedCertificate};

/// How long any one network check may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `address` (`host:port`) and completes a TLS handshake for `server_name`,
/// trusting only the certificates in `ca_pem` — what the API server does with a webhook's
/// caBundle.
pub async fn tls_handshake(
    address: &str,
    server_name: &str,
    ca_pem: &[u8],
) -> Probe<ServedCertificate> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem).flatten() {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Probe::NotTried("the caBundle holds no usable certificate".into());
    }
    let Ok(name) = ServerName::try_from(server_name.to_string()) else {
        return Probe::Failed(format!("{server_name:?} is not a valid server name"));
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b.with_root_certificates(roots).with_no_client_auth(),
        Err(e) => return Probe::Failed(e.to_string()),
    };
    let connect = async {
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{e}"))?;
        let (_, conn) = tls.get_ref();
        let leaf = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or("no certificate served")?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|e| format!("the served certificate does not parse: {e}"))?;
        let now = x509_parser::time::ASN1Time::now().timestamp();
        Ok::<_, String>(ServedCertificate {
            expires_in_seconds: parsed.validity().not_after.timestamp() - now,
        })
    };
    match tokio::time::timeout(TIMEOUT, connect).await {
        Ok(Ok(cert)) => Probe::Answered(cert),
        Ok(Err(e)) => Probe::Failed(e),
        Err(_) => Probe::Failed(format!("no answer from {address} within {TIMEOUT:?}")),
    }
}

/// GET of a plain `http://` URL; the body when the status is 2xx.
pub async fn http_get(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    if parsed.scheme() != "http" {
        return Err(format!(
            "{url}: only http:// URLs are fetched directly (reach https endpoints through kubectl port-forward)"
        ));
    }
    let host = parsed.host_str().unwrap_or_default().to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let fetch = async {
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let path = match parsed.query() {
            Some(q) => format!("{}?{q}", parsed.path()),
            None => parsed.path().to_string(),
        };
        let request = http::Request::get(path)
            .header(http::header::HOST, format!("{host}:{port}"))
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        if status.is_success() {
            Ok(text)
        } else {
            Err(format!("HTTP {status}: {}", text.trim()))
        }
    };
    tokio::time::timeout(TIMEOUT, fetch)
        .await
        .unwrap_or_else(|_| Err(format!("no answer from {url} within {TIMEOUT:?}")))
}

/// GET of an API server path (such as a service-proxy path) with the client's credentials.
pub async fn api_get(client: &kube::Client, path: &str) -> Result<String, String> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(TIMEOUT, client.request_text(request))
        .await
        .unwrap_or_else(|_| {
            Err(kube::Error::Service(
                format!("no answer within {TIMEOUT:?}").into(),
            ))
        })
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{ServingRequest, generate};

    /// A TLS server on loopback serving `cert_pem`/`key_pem`, answering one handshake.
    async fn serve(cert_pem: &str, key_pem: &str) -> String {
        use crate::server::tls::{ReloadingCert, load_pair, server_config};
        let loaded = load_pair(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
        let config = server_config(Arc::new(ReloadingCert::new(loaded.key))).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = acceptor.accept(tcp).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn the_ca_that_signed_it_verifies_another_does_not() {
        let bundle = generate(&ServingRequest::local_development()).unwrap();
        let addr = serve(&bundle.serving.cert_pem, &bundle.serving.key_pem).await;
        let ok = tls_handshake(&addr, "127.0.0.1", bundle.ca_cert_pem.as_bytes()).await;
        let Probe::Answered(cert) = ok else {
            panic!("{ok:?}")
        };
        assert!(cert.expires_in_seconds > 86400, "{cert:?}");

        let other = generate(&ServingRequest::local_development()).unwrap();
        let bad = tls_handshake(&addr, "127.0.0.1", other.ca_cert_pem.as_bytes()).await;
        let Probe::Failed(why) = bad else {
            panic!("{bad:?}")
        };
        // Same subject name, another key: BadSignature (UnknownIssuer for another name).
        assert!(why.contains("invalid peer certificate"), "{why}");

        let wrong_name =
            tls_handshake(&addr, "webhook.example.com", bundle.ca_cert_pem.as_bytes()).await;
        let Probe::Failed(why) = wrong_name else {
            panic!("{wrong_name:?}")
        };
        assert!(why.contains("not valid for name"), "{why}");

        let not_pem = tls_handshake(&addr, "127.0.0.1", b"nothing").await;
        assert!(matches!(not_pem, Probe::NotTried(_)), "{not_pem:?}");
    }

    #[tokio::test]
    async fn a_closed_port_fails_with_the_address() {
        let bundle = generate(&ServingRequest::local_development()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let Probe::Failed(why) =
            tls_handshake(&addr, "127.0.0.1", bundle.ca_cert_pem.as_bytes()).await
        else {
            panic!()
        };
        assert!(why.contains(&addr), "{why}");
        let err = http_get(&format!("http://{addr}/x")).await.unwrap_err();
        assert!(err.contains("cannot connect"), "{err}");
        assert!(
            http_get("https://127.0.0.1/")
                .await
                .unwrap_err()
                .contains("port-forward")
        );
    }
}
