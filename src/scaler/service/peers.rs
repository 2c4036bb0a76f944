//! The other replicas of the scaler, asked for their holdings when KEDA asks this one.
//!
//! Sidecars export to one Service name, so each sidecar's points land on whichever replica its
//! connection reached; KEDA asks any replica. The replica asked gathers its peers' holdings
//! for the query ([`crate::scaler::partial`]) and answers from the union, so every replica
//! answers every trigger the same. Peers come from a list (`--peers`) or from a DNS name
//! resolved every few seconds (`--peers-dns`, a headless Service: one address per ready
//! replica). A peer that does not answer within the timeout is left out of that answer and
//! counted (`llm_autoscale_scaler_peer_requests_total{result="error"}`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::join_all;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::metrics::ScalerMetrics;
use super::proto::peer::scaler_peer_client::ScalerPeerClient;
use super::wire;
use crate::scaler::partial::Partial;
use crate::scaler::store::Selection;

/// How long a peer may take to answer.
pub const PEER_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long a DNS answer is used before asking again.
const DNS_REFRESH: Duration = Duration::from_secs(5);

/// Where the peers are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PeerSource {
    /// A single replica.
    #[default]
    None,
    /// Fixed `host:port`s.
    List(Vec<String>),
    /// Every address of a DNS name (a headless Service), at this port.
    Dns { host: String, port: u16 },
}

/// TLS towards peers: the CA their certificates chain to, and the name they carry.
#[derive(Clone, Debug)]
pub struct PeerTls {
    pub ca_pem: Vec<u8>,
    pub domain: String,
}

/// The peers of this replica.
pub struct Peers {
    source: PeerSource,
    /// This replica's own address (from `POD_IP`), left out of DNS answers.
    own_ip: Option<IpAddr>,
    tls: Option<PeerTls>,
    resolved: Mutex<Option<(Instant, Vec<String>)>>,
    clients: Mutex<HashMap<String, ScalerPeerClient<Channel>>>,
}

impl Peers {
    pub fn new(source: PeerSource, own_ip: Option<IpAddr>, tls: Option<PeerTls>) -> Peers {
        Peers {
            source,
            own_ip,
            tls,
            resolved: Mutex::new(None),
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn none() -> Peers {
        Peers::new(PeerSource::None, None, None)
    }

    /// The peers' addresses now.
    async fn addresses(&self) -> Vec<String> {
        let (host, port) = match &self.source {
            PeerSource::None => return Vec::new(),
            PeerSource::List(l) => return l.clone(),
            PeerSource::Dns { host, port } => (host, *port),
        };
        if let Some((at, list)) = &*self.resolved.lock().unwrap_or_else(PoisonError::into_inner) {
            if at.elapsed() < DNS_REFRESH {
                return list.clone();
            }
        }
        let list: Vec<String> = match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(addrs) => addrs
                .filter(|a| Some(a.ip()) != self.own_ip)
                .map(|a: SocketAddr| a.to_string())
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, host = %host, "scaler: cannot resolve the peers' DNS name");
                Vec::new()
            }
        };
        *self.resolved.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), list.clone()));
        list
    }

    fn client(&self, address: &str) -> Option<ScalerPeerClient<Channel>> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = clients.get(address) {
            return Some(c.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
            .ok()?
            .connect_timeout(PEER_TIMEOUT)
            .timeout(PEER_TIMEOUT);
        if let Some(tls) = &self.tls {
            let config = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                .domain_name(tls.domain.clone());
            endpoint = endpoint.tls_config(config).ok()?;
        }
        let client = ScalerPeerClient::new(endpoint.connect_lazy());
        clients.insert(address.to_string(), client.clone());
        Some(client)
    }

    /// Every peer's holdings for `sel`, asked at once; peers that fail are left out.
    pub async fn holdings(
        &self,
        sel: &Selection,
        now_ms: i64,
        metrics: &ScalerMetrics,
    ) -> Vec<Partial> {
        let addresses = self.addresses().await;
        if addresses.is_empty() {
            return Vec::new();
        }
        let request = wire::selection_to_wire(sel, now_ms);
        let asks = addresses.iter().map(|a| {
            let client = self.client(a);
            let request = request.clone();
            async move {
                let mut client = client?;
                match client.holdings(request).await {
                    Ok(r) => Some(wire::partial_from_wire(r.into_inner())),
                    Err(status) => {
                        tracing::warn!(peer = %a, error = %status, "scaler: a peer did not answer; answering without its series");
                        None
                    }
                }
            }
        });
        let answers = join_all(asks).await;
        let mut out = Vec::with_capacity(answers.len());
        for a in answers {
            metrics.peer_request(a.is_some());
            out.extend(a);
        }
        out
    }
}
