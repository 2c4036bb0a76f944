//! Certificate rotation while requests flow, and broken pairs that must not replace a good one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use hyper::StatusCode;
use llm_autoscale_webhook::config::WebhookConfig;
use llm_autoscale_webhook::server::tls::load_pair;

use crate::harness::{TestServer, connect, der_of, eventually, review};

const SUCCESS: &str = "llm_autoscale_certificate_reloads_total{result=\"success\"}";
const FAILURE: &str = "llm_autoscale_certificate_reloads_total{result=\"failure\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_without_a_failed_request() {
    let mut t = TestServer::start(WebhookConfig::default()).await;
    let first = der_of(&std::fs::read_to_string(t.certs.cert_path()).unwrap());
    let mut kept = t.client().await;
    assert_eq!(kept.peer_cert, first);

    // A steady stream of admission requests, each on a new connection (new handshake).
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let deployment: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string("examples/vllm-deployment.yaml").unwrap())
            .unwrap();
    let body = serde_json::to_vec(&review(&deployment, "CREATE", false, "loop")).unwrap();
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let (addr, config) = (t.addr, t.client_config.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let result = async {
                    let mut c = connect(addr, config.clone()).await?;
                    c.post("/mutate", body.clone()).await
                }
                .await;
                match result {
                    Ok(r) if r.status == StatusCode::OK => ok.fetch_add(1, Ordering::SeqCst),
                    Ok(r) => {
                        eprintln!("failed request: {} {}", r.status, r.text());
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                    Err(e) => {
                        eprintln!("failed request: {e}");
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
        })
    };
    eventually("requests flowing", || async {
        (ok.load(Ordering::SeqCst) >= 5).then_some(())
    })
    .await;

    // Same CA, new key, new serial: swapped in like a kubelet Secret update.
    let second = t.certs.issue();
    let second_der = der_of(&second.cert_pem);
    assert_ne!(second_der, first);
    t.certs.publish(&second.cert_pem, &second.key_pem);
    eventually("the new certificate on new connections", || async {
        let c = connect(t.addr, t.client_config.clone()).await.ok()?;
        (c.peer_cert == second_der).then_some(())
    })
    .await;
    let before = ok.load(Ordering::SeqCst);
    eventually("more requests after the swap", || async {
        (ok.load(Ordering::SeqCst) >= before + 5).then_some(())
    })
    .await;

    // The connection opened before the swap keeps working.
    assert_eq!(kept.get("/healthz").await.unwrap().status, StatusCode::OK);
    assert_eq!(kept.peer_cert, first);

    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "failed requests during rotation"
    );
    assert!(ok.load(Ordering::SeqCst) >= 10);
    assert_eq!(t.metric(SUCCESS).await, Some(1.0));
    assert_eq!(t.metric(FAILURE).await, Some(0.0));

    // A key that does not belong to the certificate: rejected, the second pair stays.
    let third = t.certs.issue();
    let other = t.certs.issue();
    assert!(load_pair(third.cert_pem.as_bytes(), other.key_pem.as_bytes()).is_err());
    t.certs.publish(&third.cert_pem, &other.key_pem);
    eventually("the mismatched pair to be rejected", || async {
        (t.metric(FAILURE).await? >= 1.0).then_some(())
    })
    .await;
    let c = t.client().await;
    assert_eq!(
        c.peer_cert, second_der,
        "the previous certificate is still served"
    );

    // Not PEM at all: rejected too.
    t.certs.publish("not a certificate", "not a key");
    eventually("the garbage pair to be rejected", || async {
        (t.metric(FAILURE).await? >= 2.0).then_some(())
    })
    .await;
    assert_eq!(t.client().await.peer_cert, second_der);

    // A good pair afterwards is picked up again.
    let fourth = t.certs.issue();
    let fourth_der = der_of(&fourth.cert_pem);
    t.certs.publish(&fourth.cert_pem, &fourth.key_pem);
    eventually("recovery with a good pair", || async {
        let c = connect(t.addr, t.client_config.clone()).await.ok()?;
        (c.peer_cert == fourth_der).then_some(())
    })
    .await;
    assert_eq!(t.metric(SUCCESS).await, Some(2.0));
    assert_eq!(t.metric(FAILURE).await, Some(2.0));
    assert!(t.server.is_ready());
}
