//! The scaler over TLS, and its trust keys rotated.
//!
//! TLS: `scaler --scaler-tls-cert/--scaler-tls-key` with a certificate issued by a CA made
//! with rcgen (the product's `certs`, as `llm-autoscale-webhook certs` makes them). A sidecar's
//! export and KEDA's calls that verify the certificate against that CA and the name it
//! carries reach the scaler; a client speaking plain TCP, trusting another CA or expecting
//! another name does not.
//!
//! Rotation: the scaler holds the old and the new key while the reconciler switches and the
//! workloads roll; at no step is a sidecar's token refused, until the old key is removed.

use std::net::{IpAddr, Ipv4Addr};

use llm_autoscale_webhook::certs::{Ca, ServingRequest};
use llm_autoscale_webhook::scaler::trust::{TrustKey, token_for};
use tonic::Code;

use super::clients::{Keda, Tls, channel, export, export_over, gauge, stamped};
use super::process::ScalerProcess;
use super::{WAITING, queue_trigger};

/// A CA and a serving certificate for `localhost` and 127.0.0.1, written to `dir`; the
/// scaler's TLS flags for them.
fn certificate(dir: &std::path::Path) -> (Ca, Vec<String>) {
    let ca = Ca::generate(1).expect("a CA");
    let serving = ca
        .issue(&ServingRequest {
            dns_names: vec!["localhost".into()],
            ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            validity_days: 1,
        })
        .expect("a serving certificate");
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, &serving.cert_pem).unwrap();
    std::fs::write(&key, &serving.key_pem).unwrap();
    let flags = vec![
        format!("--scaler-tls-cert={}", cert.display()),
        format!("--scaler-tls-key={}", key.display()),
    ];
    (ca, flags)
}

/// KEDA's `GetMetrics` for the queue trigger over a connection made with `tls`.
async fn keda_value(address: &str, tls: Option<Tls<'_>>) -> Result<f64, tonic::Status> {
    let mut keda = Keda::over(channel(address, tls).await?);
    keda.value(&queue_trigger("0")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_and_keda_reach_the_scaler_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, flags) = certificate(dir.path());
    let s = ScalerProcess::start("tls", &flags);
    let (otlp, scaler) = (s.otlp.to_string(), s.scaler.to_string());
    let tls = Tls {
        ca_pem: ca.cert_pem(),
        domain: "localhost",
    };

    let point = || vec![gauge(WAITING, stamped("ns", "d", "d-1"), 3.0)];
    let sidecar = channel(&otlp, Some(tls)).await.expect("a TLS connection");
    assert_eq!(export_over(sidecar, None, point()).await.unwrap(), 0);
    assert_eq!(keda_value(&scaler, Some(tls)).await.unwrap(), 3.0);

    // Plain TCP reaches neither port.
    assert!(export(&otlp, None, point()).await.is_err());
    assert!(keda_value(&scaler, None).await.is_err());
    // Nor does TLS that trusts another CA, or expects another name.
    let other = Ca::generate(1).unwrap();
    let untrusted = Tls {
        ca_pem: other.cert_pem(),
        domain: "localhost",
    };
    let misnamed = Tls {
        ca_pem: ca.cert_pem(),
        domain: "llm-autoscale-scaler.elsewhere.svc",
    };
    for bad in [untrusted, misnamed] {
        assert!(keda_value(&scaler, Some(bad)).await.is_err());
        let refused = match channel(&otlp, Some(bad)).await {
            Ok(c) => export_over(c, None, point()).await.is_err(),
            Err(_) => true,
        };
        assert!(refused, "{}", bad.domain);
    }
    assert_eq!(
        s.metric("llm_autoscale_scaler_points_total{result=\"accepted\"}"),
        1.0,
        "only the verified export was stored"
    );
}

/// The steps of a rotation, each a scaler started with that step's keys (as a rolling
/// restart would): which tokens it accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_refuses_no_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let (old_text, new_text) = ("o".repeat(48), "n".repeat(48));
    let (old_file, new_file) = (dir.path().join("old"), dir.path().join("new"));
    std::fs::write(&old_file, &old_text).unwrap();
    std::fs::write(&new_file, &new_text).unwrap();
    let old = token_for(&TrustKey::new(old_text.as_bytes()).unwrap(), "ns");
    let new = token_for(&TrustKey::new(new_text.as_bytes()).unwrap(), "ns");
    let flag = |files: &[&std::path::Path]| {
        let list: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        format!("--trust-key-file={}", list.join(","))
    };
    let steps = [
        ("before: the old key", flag(&[&old_file]), [true, false]),
        // The scaler gets the new key first; the reconciler switches (new tokens in the
        // Secrets) and the workloads roll: running sidecars still have the old token.
        ("both keys", flag(&[&new_file, &old_file]), [true, true]),
        ("after: the new key", flag(&[&new_file]), [false, true]),
    ];
    for (step, keys, [old_ok, new_ok]) in steps {
        let s = ScalerProcess::start(step, &[keys]);
        let otlp = s.otlp.to_string();
        for (token, ok) in [(&old, old_ok), (&new, new_ok)] {
            let got = export(
                &otlp,
                Some(token),
                vec![gauge(WAITING, stamped("ns", "d", "d-1"), 1.0)],
            )
            .await;
            match ok {
                true => assert_eq!(got.ok(), Some(0), "{step}: {token}"),
                false => assert_eq!(
                    got.map_err(|e| e.code()),
                    Err(Code::Unauthenticated),
                    "{step}: {token}"
                ),
            }
        }
    }
}
