//! Several replicas behind one Service: each sidecar's exports land on whichever replica its
//! connection reached (here: chosen by the test), and KEDA may ask any replica. Three scaler
//! processes on loopback, each told the others (`--peers`), must give the same answer as one
//! replica holding every point — for sums over pods, for a series whose points are split
//! across replicas, and for the fleet's percentile of histograms spread over them — and answer
//! from the remaining replicas when one is gone.

use std::time::Duration;

use super::clients::{Keda, export, gauge, histogram, stamped};
use super::process::{ScalerProcess, free_port};
use super::{BOUNDS, TTFT, WAITING, queue_trigger, ttft_trigger};

/// Three replicas, each with the other two as peers.
fn three_replicas() -> Vec<ScalerProcess> {
    let ports: Vec<[u16; 3]> = (0..3)
        .map(|_| [free_port(), free_port(), free_port()])
        .collect();
    (0..3)
        .map(|i| {
            let peers: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| format!("127.0.0.1:{}", p[1]))
                .collect();
            ScalerProcess::start_on(
                &format!("replica-{i}"),
                ports[i],
                &[format!("--peers={}", peers.join(","))],
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_answers_every_trigger() {
    let replicas = three_replicas();
    let single = ScalerProcess::start("single", &[]);
    let otlp = |i: usize| replicas[i].otlp.to_string();

    // Pods d-1 and d-2 reach replicas 0 and 1; d-3's sidecar reconnected from replica 0 to
    // replica 2 halfway through its histogram windows. The single replica gets everything.
    let mut fast = vec![0u64; BOUNDS.len() + 1];
    fast[8] = 10;
    let mut slow = vec![0u64; BOUNDS.len() + 1];
    slow[11] = 10;
    let sends = [
        (0, gauge(WAITING, stamped("ns", "d", "d-1"), 3.0)),
        (1, gauge(WAITING, stamped("ns", "d", "d-2"), 4.0)),
        (
            0,
            histogram(TTFT, stamped("ns", "d", "d-1"), &BOUNDS, &fast),
        ),
        (
            1,
            histogram(TTFT, stamped("ns", "d", "d-2"), &BOUNDS, &fast),
        ),
        (
            0,
            histogram(TTFT, stamped("ns", "d", "d-3"), &BOUNDS, &slow),
        ),
    ];
    for (i, m) in sends {
        export(&otlp(i), None, vec![m.clone()]).await.unwrap();
        export(&single.otlp.to_string(), None, vec![m])
            .await
            .unwrap();
    }
    // Later windows of d-3 (new timestamps) arrive at replica 2.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let later = histogram(TTFT, stamped("ns", "d", "d-3"), &BOUNDS, &slow);
    export(&otlp(2), None, vec![later.clone()]).await.unwrap();
    export(&single.otlp.to_string(), None, vec![later])
        .await
        .unwrap();
    // An export retried to another replica: the same point twice, counted once.
    let retried = gauge(WAITING, stamped("ns", "d", "d-3"), 5.0);
    export(&otlp(0), None, vec![retried.clone()]).await.unwrap();
    export(&otlp(2), None, vec![retried.clone()]).await.unwrap();
    export(&single.otlp.to_string(), None, vec![retried])
        .await
        .unwrap();

    let mut one = Keda::connect(&single.scaler_url()).await;
    let want_queue = one.value(&queue_trigger("0")).await.unwrap();
    let want_p90 = one.value(&ttft_trigger()).await.unwrap();
    assert_eq!(want_queue, 12.0);
    // 20 fast requests in (0.1, 0.25], 20 slow ones in (0.75, 1]: rank 36 of 40 is the 16th
    // of the slow 20.
    assert!(
        (want_p90 - (0.75 + 0.25 * 16.0 / 20.0)).abs() < 1e-9,
        "{want_p90}"
    );
    for r in &replicas {
        let mut keda = Keda::connect(&r.scaler_url()).await;
        assert_eq!(
            keda.value(&queue_trigger("0")).await.unwrap(),
            want_queue,
            "{}",
            r.label
        );
        assert_eq!(
            keda.value(&ttft_trigger()).await.unwrap(),
            want_p90,
            "{}",
            r.label
        );
        assert!(
            keda.active(&queue_trigger("11")).await.unwrap(),
            "{}",
            r.label
        );
    }

    // A replica goes away: the others answer from what they hold (its points are gone with
    // it; the sidecars it served reconnect to the others) and count the failed peer.
    let mut replicas = replicas;
    replicas[1].kill();
    let mut keda = Keda::connect(&replicas[0].scaler_url()).await;
    assert_eq!(
        keda.value(&queue_trigger("0")).await.unwrap(),
        8.0,
        "d-2 was on replica 1"
    );
    assert!(
        replicas[0].metric("llm_autoscale_scaler_peer_requests_total{result=\"error\"}") >= 1.0
    );
    assert!(replicas[0].metric("llm_autoscale_scaler_peer_requests_total{result=\"ok\"}") >= 1.0);
}

/// A free port on `ip` (a loopback address).
fn free_port_on(ip: [u8; 4]) -> u16 {
    std::net::TcpListener::bind((std::net::Ipv4Addr::from(ip), 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `--peers-dns NAME:PORT`: the peers are the addresses the name resolves to, at that port,
/// less this replica's own (`POD_IP`), as with a headless Service. `localhost` resolves to
/// 127.0.0.1 from the hosts file, with no DNS server: replica `b` serves there and replica
/// `a` on 127.0.0.2, at the same scaler port, and both are given `--peers-dns
/// localhost:PORT`. `a` finds `b` by the name and answers from both; `b` finds only its own
/// address, leaves it out, and answers from its own points without asking anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_found_by_dns_are_asked() {
    use std::net::SocketAddr;
    let resolved: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs("localhost:1")
        .expect("localhost resolves")
        .collect();
    assert!(
        resolved.iter().any(|a| a.ip().to_string() == "127.0.0.1"),
        "localhost resolves to {resolved:?}"
    );
    let port = free_port();
    let at = |ip: [u8; 4]| {
        [
            SocketAddr::from((ip, free_port_on(ip))),
            SocketAddr::from((ip, port)),
            SocketAddr::from((ip, free_port_on(ip))),
        ]
    };
    let dns = format!("--peers-dns=localhost:{port}");
    let b = ScalerProcess::start_at(
        "b",
        at([127, 0, 0, 1]),
        std::slice::from_ref(&dns),
        &[("POD_IP", "127.0.0.1")],
    );
    let a = ScalerProcess::start_at("a", at([127, 0, 0, 2]), &[dns], &[("POD_IP", "127.0.0.2")]);
    export(
        &a.otlp.to_string(),
        None,
        vec![gauge(WAITING, stamped("ns", "d", "d-1"), 3.0)],
    )
    .await
    .unwrap();
    export(
        &b.otlp.to_string(),
        None,
        vec![gauge(WAITING, stamped("ns", "d", "d-2"), 4.0)],
    )
    .await
    .unwrap();

    let mut ask_a = Keda::connect(&a.scaler_url()).await;
    assert_eq!(
        ask_a.value(&queue_trigger("0")).await.unwrap(),
        7.0,
        "a asks b"
    );
    assert!(a.metric("llm_autoscale_scaler_peer_requests_total{result=\"ok\"}") >= 1.0);
    let mut ask_b = Keda::connect(&b.scaler_url()).await;
    assert_eq!(
        ask_b.value(&queue_trigger("0")).await.unwrap(),
        4.0,
        "b holds d-2 only"
    );
    assert_eq!(
        b.metric("llm_autoscale_scaler_peer_requests_total{result=\"ok\"}"),
        0.0,
        "b left its own address out"
    );
}
