//! The product's binary running `scaler` as a child process on loopback ports, stopped on
//! drop (its log printed when the test failed). Used by tests/scaler, tests/collector and
//! tests/e2e.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free port on 127.0.0.1 (released before the child binds it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub struct ScalerProcess {
    pub label: String,
    pub otlp: SocketAddr,
    pub scaler: SocketAddr,
    pub metrics: SocketAddr,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ScalerProcess {
    /// Starts `llm-autoscale-webhook scaler` with `args` on fresh loopback ports and waits
    /// until `/readyz` answers.
    pub fn start(label: &str, args: &[String]) -> ScalerProcess {
        let ports = [free_port(), free_port(), free_port()];
        Self::start_on(label, ports, args)
    }

    /// As [`start`](Self::start), on the given OTLP, scaler and metrics ports.
    pub fn start_on(label: &str, ports: [u16; 3], args: &[String]) -> ScalerProcess {
        let addrs = ports.map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
        Self::start_at(label, addrs, args, &[])
    }

    /// As [`start`](Self::start), on the given OTLP, scaler and metrics addresses, with
    /// `env` added to its environment.
    pub fn start_at(
        label: &str,
        addrs: [SocketAddr; 3],
        args: &[String],
        env: &[(&str, &str)],
    ) -> ScalerProcess {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = dir.path().join("scaler.log");
        let [otlp, scaler, metrics] = addrs;
        let child = Command::new(env!("CARGO_BIN_EXE_llm-autoscale-webhook"))
            .arg("scaler")
            .arg(format!("--otlp-addr={otlp}"))
            .arg(format!("--scaler-addr={scaler}"))
            .arg(format!("--metrics-addr={metrics}"))
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("POD_IP")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(File::create(&log).expect("log file"))
            .stderr(File::create(dir.path().join("scaler.err")).expect("log file"))
            .spawn()
            .expect("starting the scaler");
        let mut p = ScalerProcess {
            label: label.to_string(),
            otlp,
            scaler,
            metrics,
            child,
            log,
            _dir: dir,
        };
        let start = Instant::now();
        while http_get(metrics, "/readyz").0 != 200 {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("scaler {label} exited with {status}:\n{}", p.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "scaler {label} not ready:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    /// `http://127.0.0.1:<port>` of KEDA's external scaler.
    pub fn scaler_url(&self) -> String {
        format!("http://{}", self.scaler)
    }

    /// Its log (stderr, where tracing writes).
    pub fn log(&self) -> String {
        let err = self.log.with_file_name("scaler.err");
        std::fs::read_to_string(err).unwrap_or_default()
            + &std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its `/metrics` text.
    pub fn metrics_text(&self) -> String {
        http_get(self.metrics, "/metrics").1
    }

    /// The value of the sample `name{labels}` exactly as written in `/metrics` (0 when absent).
    pub fn metric(&self, sample: &str) -> f64 {
        self.metrics_text()
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Stops it now (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ScalerProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- scaler {label}: log ----\n{log}\n---- end of scaler {label} ----",
                label = self.label,
                log = self.log()
            );
        }
    }
}

/// `GET http://addr/path`: status (0 when nothing answers) and body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return (0, String::new());
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
