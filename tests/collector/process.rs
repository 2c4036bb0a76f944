//! Building the test collector (scripts/collector-build.sh) and running it as a child process
//! that is killed on every path.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;

use tempfile::TempDir;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the collector once per test process (the script itself skips the build when the
/// binary already matches the manifest) and returns the binary's path.
pub fn build() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let script = repo_root().join("scripts/collector-build.sh");
            // The script reports progress on stderr (inherited, so a first build that takes
            // minutes is visibly busy) and prints the binary's path on stdout.
            let output = Command::new("bash")
                .arg(&script)
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
            assert!(
                output.status.success(),
                "{} failed ({}); it needs Go and the Go module proxy",
                script.display(),
                output.status
            );
            let path = String::from_utf8_lossy(&output.stdout)
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string();
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "collector binary {} missing",
                path.display()
            );
            path
        })
        .clone()
}

/// A running collector. Dropping it kills the process; if the thread is panicking (a failed
/// assertion), the collector's environment (its configuration) and log are printed first.
pub struct Collector {
    label: String,
    child: Child,
    log_path: PathBuf,
    env: Vec<(String, String)>,
    _dir: TempDir,
}

impl Collector {
    /// Starts `binary` with exactly `argv` and `env` (nothing inherited from the test process,
    /// as in a container), working directory a fresh temporary directory.
    pub fn start(label: &str, binary: &Path, argv: &[String], env: &[(String, String)]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log_path = dir.path().join("collector.log");
        let log = File::create(&log_path).expect("log file");
        let child = Command::new(binary)
            .args(argv)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        Collector {
            label: label.to_string(),
            child,
            log_path,
            env: env.to_vec(),
            _dir: dir,
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Everything the collector wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops it (SIGKILL), as a pod that is gone.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Panics (with the log) if the collector has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!(
                "collector {} exited with {status}; its log:\n{}",
                self.label,
                self.log()
            );
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let env: String = self.env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            eprintln!(
                "---- collector {label}: environment ----\n{env}\
                 ---- collector {label}: log ----\n{log}\n---- end of collector {label} ----",
                label = self.label,
                log = self.log(),
            );
        }
    }
}
