//! Graceful shutdown: not ready first, then no new connections, and the request in flight is
//! answered.

use std::convert::Infallible;
use std::time::Duration;

use futures::SinkExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::{Method, Request, StatusCode};
use llm_autoscale_webhook::config::WebhookConfig;

use crate::harness::{CertDir, TestServer, connect, eventually, response_of, review};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_fails_readiness_then_drains_the_request_in_flight() {
    let certs = CertDir::new();
    let mut settings = certs.settings(WebhookConfig::default());
    settings.shutdown_delay = Duration::from_secs(2);
    settings.shutdown_grace = Duration::from_secs(30);
    let TestServer {
        server,
        addr,
        certs: _certs,
        client_config,
    } = TestServer::start_with(certs, settings).await;

    // A review whose body arrives in two parts, the second only once the server is draining.
    let deployment: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string("examples/vllm-deployment.yaml").unwrap())
            .unwrap();
    let body = serde_json::to_vec(&review(&deployment, "CREATE", false, "in-flight")).unwrap();
    let (head, tail) = body.split_at(body.len() / 2);
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
    let request = Request::builder()
        .method(Method::POST)
        .uri("/mutate")
        .header(hyper::header::HOST, "localhost")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::CONTENT_LENGTH, body.len())
        .body(StreamBody::new(rx).boxed_unsync())
        .unwrap();
    let mut client = connect(addr, client_config.clone()).await.unwrap();
    let in_flight = tokio::spawn(async move { client.request(request).await });
    tx.send(Ok(Frame::data(Bytes::copy_from_slice(head))))
        .await
        .unwrap();

    let shutdown = tokio::spawn(server.shutdown());

    // During the delay: still serving, but not ready.
    eventually("/readyz to fail", || async {
        let mut c = connect(addr, client_config.clone()).await.ok()?;
        let r = c.get("/readyz").await.ok()?;
        (r.status == StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;
    // Then the listener closes.
    eventually("new connections to be refused", || async {
        connect(addr, client_config.clone())
            .await
            .is_err()
            .then_some(())
    })
    .await;
    assert!(
        !shutdown.is_finished(),
        "the request in flight holds the shutdown"
    );

    tx.send(Ok(Frame::data(Bytes::copy_from_slice(tail))))
        .await
        .unwrap();
    drop(tx);
    let reply = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    let response = response_of(&reply);
    assert_eq!(response["uid"], "in-flight");
    assert_eq!(response["allowed"], true);

    tokio::time::timeout(Duration::from_secs(30), shutdown)
        .await
        .expect("shutdown completes once drained")
        .unwrap()
        .expect("clean shutdown");
}
