//! Bad requests, limits, probes, metrics and who the client trusts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use base64::Engine;
use hyper::{Method, StatusCode};
use llm_autoscale_webhook::certs::{self, ServingRequest};
use llm_autoscale_webhook::config::WebhookConfig;
use llm_autoscale_webhook::config::loading::{Settings, TlsSource};
use llm_autoscale_webhook::server::{BODY_LIMIT, Server};
use prometheus_client::registry::Registry;
use serde_json::json;

use crate::harness::{TestServer, client_config, connect, init_logs, metric_value, review};

#[tokio::test]
async fn malformed_and_misdirected_reviews_get_400_with_the_reason() {
    let t = TestServer::start(WebhookConfig::default()).await;
    let mut client = t.client().await;

    let reply = client.post("/mutate", "{not json").await.unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.text().contains("not an AdmissionReview"),
        "{}",
        reply.text()
    );

    let reply = client.post("/validate", "").await.unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "d"}});
    let body = serde_json::to_vec(&review(&config_map, "CREATE", false, "cm")).unwrap();
    let reply = client.post("/mutate", body.clone()).await.unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("v1/ConfigMap"), "{}", reply.text());
    let reply = client.post("/validate", body).await.unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("ScaledObject"), "{}", reply.text());

    let mut wrong_version = review(&config_map, "CREATE", false, "v1beta1");
    wrong_version["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let reply = client
        .post("/mutate", serde_json::to_vec(&wrong_version).unwrap())
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.text().contains("admission.k8s.io/v1"),
        "{}",
        reply.text()
    );

    let no_request = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"});
    let reply = client
        .post("/mutate", serde_json::to_vec(&no_request).unwrap())
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    // Still serving on the same connection after all that.
    assert_eq!(client.get("/healthz").await.unwrap().status, StatusCode::OK);

    let reply = client.get("/mutate").await.unwrap();
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    let reply = client.send(Method::PUT, "/validate", "{}").await.unwrap();
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    let reply = client.get("/nothing-here").await.unwrap();
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let bad = t
        .metric("llm_autoscale_admission_requests_total{route=\"mutate\",decision=\"bad_request\"}")
        .await;
    assert_eq!(bad, Some(4.0));
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let t = TestServer::start(WebhookConfig::default()).await;
    let mut client = t.client().await;
    let big = vec![b' '; 4 * 1024 * 1024];
    assert!(big.len() > BODY_LIMIT);
    let reply = client
        .post("/mutate", big)
        .await
        .expect("a response, not a reset");
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text()
    );

    // Just under the limit is read (and is not a review).
    let mut client = t.client().await;
    let reply = client
        .post("/mutate", vec![b' '; BODY_LIMIT - 1])
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let too_large = t
        .metric("llm_autoscale_admission_requests_total{route=\"mutate\",decision=\"too_large\"}")
        .await;
    assert_eq!(too_large, Some(1.0));
}

#[tokio::test]
async fn probes_and_metrics() {
    let t = TestServer::start(WebhookConfig::default()).await;
    let mut client = t.client().await;
    let health = client.get("/healthz").await.unwrap();
    assert_eq!(health.status, StatusCode::OK);
    let ready = client.get("/readyz").await.unwrap();
    assert_eq!(ready.status, StatusCode::OK);
    assert!(t.server.is_ready());

    let text = client.get("/metrics").await.unwrap().text();
    assert!(
        text.contains("# TYPE llm_autoscale_admission_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("llm_autoscale_certificate_reloads_total{result=\"success\"} 0"),
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            "llm_autoscale_admission_requests_total{route=\"mutate\",decision=\"patched\"}"
        ),
        None
    );

    let deployment = std::fs::read_to_string("examples/vllm-deployment.yaml").unwrap();
    let object: serde_json::Value = serde_yaml_ng::from_str(&deployment).unwrap();
    for i in 0..3 {
        let body = serde_json::to_vec(&review(&object, "CREATE", false, &format!("m{i}"))).unwrap();
        assert_eq!(
            client.post("/mutate", body).await.unwrap().status,
            StatusCode::OK
        );
    }
    let reply = client.get("/metrics").await.unwrap();
    assert!(
        reply.content_type.contains("openmetrics-text"),
        "{}",
        reply.content_type
    );
    let text = reply.text();
    assert_eq!(
        metric_value(
            &text,
            "llm_autoscale_admission_requests_total{route=\"mutate\",decision=\"patched\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            "llm_autoscale_admission_duration_seconds_count{route=\"mutate\"}"
        ),
        Some(3.0),
        "{text}"
    );

    let (_, pem) =
        x509_parser::pem::parse_x509_pem(std::fs::read(t.certs.cert_path()).unwrap().as_slice())
            .unwrap();
    let not_after = pem.parse_x509().unwrap().validity().not_after.timestamp();
    assert_eq!(
        metric_value(&text, "llm_autoscale_certificate_expiry_timestamp_seconds"),
        Some(not_after as f64),
        "{text}"
    );
}

#[tokio::test]
async fn a_client_trusting_another_ca_fails_the_handshake() {
    let t = TestServer::start(WebhookConfig::default()).await;
    let other = certs::generate(&ServingRequest::default()).unwrap();
    let err = connect(t.addr, client_config(&other.ca_cert_pem))
        .await
        .err()
        .expect("handshake must fail");
    let text = err.to_string();
    assert!(
        text.contains("UnknownIssuer") || text.contains("invalid peer certificate"),
        "{text}"
    );
    // The right CA still works.
    assert_eq!(
        t.client().await.get("/healthz").await.unwrap().status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn without_files_an_ephemeral_development_certificate_is_served() {
    init_logs();
    let settings = Settings {
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        tls: TlsSource::Ephemeral,
        ..Settings::default()
    };
    let server = Server::start(&settings, Registry::default()).await.unwrap();
    let bundle = server.dev_ca_bundle().expect("a caBundle for the dev CA");
    let ca_pem = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(bundle)
            .unwrap(),
    )
    .unwrap();
    let mut client = connect(server.local_addr(), client_config(&ca_pem))
        .await
        .expect("the dev CA verifies the served certificate for 127.0.0.1");
    assert_eq!(client.get("/readyz").await.unwrap().status, StatusCode::OK);
    server.shutdown().await.unwrap();
}
