//! In-cluster addresses: which Service a scaler or server address names, and the API server's
//! service-proxy path that reaches it from outside the cluster network.

use std::fmt;

/// A Service and, when the address says it, its port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    pub port: Option<u16>,
}

impl fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// The Service an address names: `name.ns.svc[.cluster.local][:port]` or `name.ns[:port]`,
/// optionally as an `http(s)://` URL with a path. `None` for IP addresses, single names and
/// names outside the cluster domain.
pub fn service_of(address: &str) -> Option<ServiceRef> {
    let rest = address
        .strip_prefix("http://")
        .or_else(|| address.strip_prefix("https://"))
        .unwrap_or(address);
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().ok()?)),
        None => (authority, None),
    };
    let host = host
        .strip_suffix(".svc.cluster.local")
        .or_else(|| host.strip_suffix(".svc"))
        .unwrap_or(host);
    let (name, namespace) = host.split_once('.')?;
    let is_label = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.chars().all(|c| c.is_ascii_digit())
    };
    (is_label(name) && is_label(namespace)).then(|| ServiceRef {
        namespace: namespace.to_string(),
        name: name.to_string(),
        port,
    })
}

/// The URL scheme the API server uses towards the Service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyScheme {
    Http,
    Https,
}

/// The API server path that proxies `path_and_query` (starting with `/`) to port `port` (a
/// number or a port name) of the Service: `/api/v1/namespaces/NS/services/[https:]NAME:PORT/proxy/...`
/// (the `services/proxy` subresource; `get` on it is what a GET needs in RBAC).
pub fn service_proxy_path(
    service: &ServiceRef,
    scheme: ProxyScheme,
    port: &str,
    path_and_query: &str,
) -> String {
    let scheme = match scheme {
        ProxyScheme::Http => "",
        ProxyScheme::Https => "https:",
    };
    let path = if path_and_query.starts_with('/') {
        path_and_query.to_string()
    } else {
        format!("/{path_and_query}")
    };
    format!(
        "/api/v1/namespaces/{ns}/services/{scheme}{name}:{port}/proxy{path}",
        ns = service.namespace,
        name = service.name,
    )
}

/// `k=v` pairs percent-encoded for a URL query (RFC 3986 unreserved characters kept).
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ns: &str, name: &str, port: Option<u16>) -> Option<ServiceRef> {
        Some(ServiceRef {
            namespace: ns.into(),
            name: name.into(),
            port,
        })
    }

    #[test]
    fn service_names_in_every_spelling() {
        assert_eq!(
            service_of("keda-otel-scaler.keda.svc:4318"),
            svc("keda", "keda-otel-scaler", Some(4318))
        );
        assert_eq!(
            service_of("keda-otel-scaler.keda.svc.cluster.local:4318"),
            svc("keda", "keda-otel-scaler", Some(4318))
        );
        assert_eq!(
            service_of("keda-add-ons-http-external-scaler.keda:9090"),
            svc("keda", "keda-add-ons-http-external-scaler", Some(9090))
        );
        assert_eq!(
            service_of("http://prometheus-operated.monitoring.svc:9090"),
            svc("monitoring", "prometheus-operated", Some(9090))
        );
        assert_eq!(
            service_of("https://prom.monitoring.svc/prefix/api"),
            svc("monitoring", "prom", None)
        );
    }

    #[test]
    fn addresses_outside_the_cluster_name_no_service() {
        for a in [
            "127.0.0.1:4318",
            "http://10.0.0.7:9090",
            "scaler:4318",
            "prometheus.example.com:9090",
            "https://thanos.example.com",
            "a.b.svc:notaport",
            "",
        ] {
            assert_eq!(service_of(a), None, "{a}");
        }
    }

    #[test]
    fn proxy_paths_name_scheme_service_and_port() {
        let s = ServiceRef {
            namespace: "keda".into(),
            name: "keda-otel-scaler".into(),
            port: None,
        };
        assert_eq!(
            service_proxy_path(&s, ProxyScheme::Http, "9090", "/memstore/data"),
            "/api/v1/namespaces/keda/services/keda-otel-scaler:9090/proxy/memstore/data"
        );
        assert_eq!(
            service_proxy_path(&s, ProxyScheme::Https, "443", "healthz"),
            "/api/v1/namespaces/keda/services/https:keda-otel-scaler:443/proxy/healthz"
        );
        assert_eq!(
            service_proxy_path(&s, ProxyScheme::Http, "rest-api", "/info"),
            "/api/v1/namespaces/keda/services/keda-otel-scaler:rest-api/proxy/info"
        );
    }

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            query_string(&[("query", "sum(vllm:num_requests_waiting{deployment=\"m\"})")]),
            "query=sum%28vllm%3Anum_requests_waiting%7Bdeployment%3D%22m%22%7D%29"
        );
    }
}
