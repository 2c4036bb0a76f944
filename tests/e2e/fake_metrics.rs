//! Fake metrics endpoints for the scaling scenarios: each [`MetricsEndpoint`]
//! is one simulated pod (or gateway) on its own 127.0.0.1 port, serving the
//! Prometheus text its test last set on every path. Prometheus scrapes them
//! as it would scrape vLLM pods.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One fake `/metrics` endpoint, served until the test process ends.
pub struct MetricsEndpoint {
    port: u16,
    body: Arc<Mutex<String>>,
}

impl MetricsEndpoint {
    /// Listens on a free 127.0.0.1 port, serving `body`.
    pub fn start(body: String) -> MetricsEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a fake metrics endpoint");
        let port = listener.local_addr().expect("local address").port();
        let body = Arc::new(Mutex::new(body));
        let served = Arc::clone(&body);
        thread::Builder::new()
            .name(format!("fake-metrics-{port}"))
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    let text = served.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    // One scrape at a time is plenty at a 1 s interval.
                    let _ = answer(stream, &text);
                }
            })
            .expect("start a fake metrics endpoint");
        MetricsEndpoint { port, body }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the next scrape sees.
    pub fn set(&self, body: String) {
        *self.body.lock().unwrap_or_else(|e| e.into_inner()) = body;
    }
}

/// Reads one HTTP/1.x request head and answers it with `text` as the
/// Prometheus text exposition format, closing the connection.
fn answer(stream: TcpStream, text: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut stream = stream;
    // Prometheus 3 refuses a scrape without a valid Content-Type unless a
    // fallback protocol is configured (`fallback_scrape_protocol`).
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    stream.flush()
}

/// What a vLLM pod serving `model` exposes (the gauges the presets read,
/// names as in vLLM ≥ 0.10).
pub fn vllm_metrics(model: &str, waiting: f64, running: f64, kv_cache: f64) -> String {
    format!(
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n\
         # TYPE vllm:num_requests_waiting gauge\n\
         vllm:num_requests_waiting{{model_name=\"{model}\"}} {waiting}\n\
         # HELP vllm:num_requests_running Number of requests in model execution batches.\n\
         # TYPE vllm:num_requests_running gauge\n\
         vllm:num_requests_running{{model_name=\"{model}\"}} {running}\n\
         # HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n\
         # TYPE vllm:kv_cache_usage_perc gauge\n\
         vllm:kv_cache_usage_perc{{model_name=\"{model}\"}} {kv_cache}\n"
    )
}

/// What a router in front of the model servers exposes: requests queued for
/// `model`, which exists while the model has no pod at all.
pub fn gateway_metrics(model: &str, queued: f64) -> String {
    format!(
        "# HELP router_queue_depth Requests queued at the router per model.\n\
         # TYPE router_queue_depth gauge\n\
         router_queue_depth{{model=\"{model}\"}} {queued}\n"
    )
}

/// vLLM's time-to-first-token histogram (bucket bounds of vllm/v1/metrics/loggers.py) after
/// `fast` requests of 0.2 s and `slow` requests of 2 s.
pub fn ttft_histogram(model: &str, fast: u64, slow: u64) -> String {
    const BOUNDS: [&str; 22] = [
        "0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1", "0.25", "0.5", "0.75",
        "1.0", "2.5", "5.0", "7.5", "10.0", "20.0", "40.0", "80.0", "160.0", "640.0", "2560.0",
    ];
    let name = "vllm:time_to_first_token_seconds";
    let mut out = format!(
        "# HELP {name} Histogram of time to first token in seconds.\n# TYPE {name} histogram\n"
    );
    for le in BOUNDS {
        let bound: f64 = le.parse().expect("a bound");
        let n = if bound >= 2.0 {
            fast + slow
        } else if bound >= 0.2 {
            fast
        } else {
            0
        };
        out.push_str(&format!(
            "{name}_bucket{{model_name=\"{model}\",le=\"{le}\"}} {n}\n"
        ));
    }
    let total = fast + slow;
    let sum = fast as f64 * 0.2 + slow as f64 * 2.0;
    out.push_str(&format!(
        "{name}_bucket{{model_name=\"{model}\",le=\"+Inf\"}} {total}\n\
         {name}_count{{model_name=\"{model}\"}} {total}\n\
         {name}_sum{{model_name=\"{model}\"}} {sum}\n"
    ));
    out
}
