//! A stand-in for a vLLM model server's Prometheus endpoint: serves vLLM-shaped text exposition
//! (what `prometheus_client` produces in vLLM) at `/metrics` over plain HTTP/1.1.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::latency_histogram::{LatencyHistogram, Phase};

pub const MODEL_NAME: &str = "meta-llama/Llama-3.1-8B-Instruct";

/// The values the server reports; tests compare what the sink receives against these.
#[derive(Clone, Copy, Debug)]
pub struct Values {
    pub num_requests_waiting: f64,
    pub num_requests_running: f64,
    pub kv_cache_usage_perc: f64,
    pub generation_tokens_total: f64,
    pub prompt_tokens_total: f64,
}

impl Default for Values {
    fn default() -> Self {
        Values {
            num_requests_waiting: 7.0,
            num_requests_running: 3.0,
            kv_cache_usage_perc: 0.42,
            generation_tokens_total: 12345.0,
            prompt_tokens_total: 67890.0,
        }
    }
}

impl Values {
    /// The value served for a metric name (as the collector names it), if the server serves it.
    pub fn get(&self, metric: &str) -> Option<f64> {
        match metric {
            "vllm:num_requests_waiting" => Some(self.num_requests_waiting),
            "vllm:num_requests_running" => Some(self.num_requests_running),
            "vllm:kv_cache_usage_perc" => Some(self.kv_cache_usage_perc),
            "vllm:generation_tokens_total" => Some(self.generation_tokens_total),
            "vllm:prompt_tokens_total" => Some(self.prompt_tokens_total),
            // A histogram arrives as one metric of the base name; the sink reads its count.
            "vllm:time_to_first_token_seconds" => Some(10.0),
            _ => None,
        }
    }

    /// The exposition; `ttft` replaces the fixed time-to-first-token histogram.
    fn exposition(&self, ttft: Option<String>) -> String {
        let labels = labels();
        let v = self;
        let ttft = ttft.unwrap_or_else(|| {
            format!(
                "# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.\n\
                 # TYPE vllm:time_to_first_token_seconds histogram\n\
                 vllm:time_to_first_token_seconds_bucket{{{labels},le=\"0.1\"}} 4.0\n\
                 vllm:time_to_first_token_seconds_bucket{{{labels},le=\"1.0\"}} 9.0\n\
                 vllm:time_to_first_token_seconds_bucket{{{labels},le=\"+Inf\"}} 10.0\n\
                 vllm:time_to_first_token_seconds_count{{{labels}}} 10.0\n\
                 vllm:time_to_first_token_seconds_sum{{{labels}}} 3.5\n"
            )
        });
        format!(
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n\
             # TYPE vllm:num_requests_running gauge\n\
             vllm:num_requests_running{{{labels}}} {running:?}\n\
             # HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n\
             # TYPE vllm:num_requests_waiting gauge\n\
             vllm:num_requests_waiting{{{labels}}} {waiting:?}\n\
             # HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n\
             # TYPE vllm:kv_cache_usage_perc gauge\n\
             vllm:kv_cache_usage_perc{{{labels}}} {kv:?}\n\
             # HELP vllm:generation_tokens_total Number of generation tokens processed.\n\
             # TYPE vllm:generation_tokens_total counter\n\
             vllm:generation_tokens_total{{{labels}}} {gen:?}\n\
             # HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n\
             # TYPE vllm:prompt_tokens_total counter\n\
             vllm:prompt_tokens_total{{{labels}}} {prompt:?}\n\
             {ttft}\
             # HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total 12.5\n\
             # HELP process_resident_memory_bytes Resident memory size in bytes.\n\
             # TYPE process_resident_memory_bytes gauge\n\
             process_resident_memory_bytes 1.2345678e+09\n\
             # HELP python_gc_objects_collected_total Objects collected during gc\n\
             # TYPE python_gc_objects_collected_total counter\n\
             python_gc_objects_collected_total{{generation=\"0\"}} 1234.0\n\
             # HELP http_requests_total Total number of requests by method, status and handler.\n\
             # TYPE http_requests_total counter\n\
             http_requests_total{{handler=\"/v1/completions\",method=\"POST\",status=\"2xx\"}} 42.0\n",
            running = v.num_requests_running,
            waiting = v.num_requests_waiting,
            kv = v.kv_cache_usage_perc,
            gen = v.generation_tokens_total,
            prompt = v.prompt_tokens_total,
        )
    }
}

/// The labels vLLM puts on its series.
fn labels() -> String {
    format!("engine=\"0\",model_name=\"{MODEL_NAME}\"")
}

struct Shared {
    values: Mutex<Values>,
    scrapes: AtomicU64,
    /// A time-to-first-token histogram that grows at every scrape, when set.
    latency: Mutex<Option<LatencyHistogram>>,
}

/// The running server; dropping it stops it.
pub struct FakeVllm {
    port: u16,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeVllm {
    /// Serves on `ips[0]:<random port>` and on the same port at every further IP (the "pod
    /// IPs" of simulated replicas, so the server answers whichever local address a scrape
    /// config names).
    pub async fn start(ips: &[IpAddr], values: Values) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            values: Mutex::new(values),
            scrapes: AtomicU64::new(0),
            latency: Mutex::new(None),
        });
        // The random port chosen on the first address may be taken on another one: retry.
        let mut last_err = None;
        for _ in 0..20 {
            match bind_all(ips).await {
                Ok(listeners) => {
                    let port = listeners[0].local_addr()?.port();
                    let tasks = listeners
                        .into_iter()
                        .map(|l| tokio::spawn(serve(l, shared.clone())))
                        .collect();
                    return Ok(FakeVllm {
                        port,
                        shared,
                        tasks,
                    });
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn values(&self) -> Values {
        *self.shared.values.lock().unwrap()
    }

    /// From now on the time-to-first-token histogram grows at every scrape by `phase`.
    pub fn set_latency_phase(&self, phase: Phase) {
        let mut latency = self.shared.latency.lock().unwrap();
        match latency.as_mut() {
            Some(h) => h.phase = phase,
            None => *latency = Some(LatencyHistogram::new(phase)),
        }
    }

    /// The growing histogram so far (`None` unless a phase was set).
    pub fn latency_histogram(&self) -> Option<LatencyHistogram> {
        self.shared.latency.lock().unwrap().clone()
    }

    /// Number of `/metrics` requests served.
    pub fn scrapes(&self) -> u64 {
        self.shared.scrapes.load(Ordering::SeqCst)
    }
}

impl Drop for FakeVllm {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn bind_all(ips: &[IpAddr]) -> std::io::Result<Vec<TcpListener>> {
    let first = TcpListener::bind(SocketAddr::new(ips[0], 0)).await?;
    let port = first.local_addr()?.port();
    let mut listeners = vec![first];
    for ip in &ips[1..] {
        listeners.push(TcpListener::bind(SocketAddr::new(*ip, port)).await?);
    }
    Ok(listeners)
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = handle(stream, &shared).await;
        });
    }
}

async fn handle(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    // Read the request head; the scraper sends no body.
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut request_line = head.lines().next().unwrap_or_default().split_whitespace();
    let method = request_line.next().unwrap_or_default();
    let path = request_line.next().unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default();

    let (status, content_type, body) = if method == "GET" && path == "/metrics" {
        shared.scrapes.fetch_add(1, Ordering::SeqCst);
        let values = *shared.values.lock().unwrap();
        let ttft = shared.latency.lock().unwrap().as_mut().map(|h| {
            h.on_scrape();
            h.exposition(&labels())
        });
        (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            values.exposition(ttft),
        )
    } else {
        (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found\n".to_string(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
