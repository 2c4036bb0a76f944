//! A real Prometheus (built by `scripts/e2e-tools.sh` from
//! `tests/e2e/tools/prometheus`) scraping the fake metrics endpoints, for
//! KEDA's prometheus scaler to query.
//!
//! Targets come from `file_sd_configs` files (one per simulated pod, written
//! by [`write_target`]) carrying the `__meta_kubernetes_*` labels Kubernetes
//! service discovery would set; the scrape job relabels them into
//! `namespace` and `pod` exactly as the usual `kubernetes-pods` job does, so
//! the product's default PromQL (`pod=~"<deployment>-[a-z0-9]+-[a-z0-9]{5}"`)
//! selects them. Prometheus watches those files, so scenarios add targets
//! without a reload.

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::ControlPlane;

/// A running Prometheus, a component of a [`ControlPlane`] (stopped with it,
/// or earlier with [`ControlPlane::stop`] under [`name`](Self::name)).
pub struct Prometheus {
    pub name: String,
    /// `http://127.0.0.1:PORT`, as a ScaledObject's `serverAddress`.
    pub url: String,
    addr: String,
}

impl Prometheus {
    /// Starts Prometheus as component `name` of `cp`, scraping every second
    /// the targets described by `<targets_dir>/*.json`, and waits until it
    /// is ready.
    pub fn start(cp: &ControlPlane, name: &str, targets_dir: &Path) -> Prometheus {
        let dir = cp.work_dir().join(name);
        fs::create_dir_all(dir.join("data")).expect("create Prometheus's directory");
        let config = format!(
            "global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
- job_name: pods
  file_sd_configs:
  - files: ['{targets}/*.json']
    refresh_interval: 1s
  relabel_configs:
  - source_labels: [__meta_kubernetes_namespace]
    target_label: namespace
  - source_labels: [__meta_kubernetes_pod_name]
    target_label: pod
",
            targets = targets_dir.display()
        );
        let config_file = dir.join("prometheus.yml");
        fs::write(&config_file, config).expect("write prometheus.yml");
        let [port] = crate::cluster::free_ports();
        let addr = format!("127.0.0.1:{port}");
        cp.spawn_binary(
            name,
            &cp.tool("prometheus"),
            &[
                format!("--config.file={}", config_file.display()),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                format!("--web.listen-address={addr}"),
                "--storage.tsdb.retention.time=1h".into(),
            ],
            &[],
        );
        let prometheus = Prometheus {
            name: name.to_owned(),
            url: format!("http://{addr}"),
            addr,
        };
        cp.wait_for(
            &format!("{name} to be ready"),
            Duration::from_secs(60),
            || http_get(&prometheus.addr, "/-/ready").is_some_and(|(status, _)| status == 200),
        );
        prometheus
    }

    /// The value of an instant query returning one sample; `None` while
    /// the query returns nothing (or Prometheus does not answer).
    pub fn query(&self, promql: &str) -> Option<f64> {
        let (status, body) = http_get(
            &self.addr,
            &format!("/api/v1/query?query={}", percent_encode(promql)),
        )?;
        if status != 200 {
            return None;
        }
        let v: Value = serde_json::from_str(&body).ok()?;
        v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok())
    }
}

/// Declares a scrape target: a pod `pod` of namespace `namespace` whose
/// metrics are on 127.0.0.1:`port`. Written atomically (Prometheus may read
/// the directory at any time).
pub fn write_target(targets_dir: &Path, namespace: &str, pod: &str, port: u16) {
    fs::create_dir_all(targets_dir).expect("create the targets directory");
    let group = json!([{
        "targets": [format!("127.0.0.1:{port}")],
        "labels": {
            "__meta_kubernetes_namespace": namespace,
            "__meta_kubernetes_pod_name": pod,
        },
    }]);
    let file: PathBuf = targets_dir.join(format!("{namespace}.{pod}.json"));
    let tmp = file.with_extension("json.tmp");
    fs::write(&tmp, group.to_string()).expect("write a target file");
    fs::rename(&tmp, &file).expect("publish a target file");
}

/// A minimal HTTP/1.0 GET on loopback: `(status, body)`, or `None` if the
/// server cannot be reached or answers garbage.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
