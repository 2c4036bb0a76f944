//! A real Kubernetes control plane on 127.0.0.1 for the end-to-end tests.
//!
//! [`ControlPlane::start`] builds (once, cached) and runs the real binaries
//! pinned in `tests/e2e/tools/` by `scripts/e2e-tools.sh`:
//!
//! - etcd v3.6.16;
//! - kube-apiserver v1.34.4 (token authentication, RBAC, a serving
//!   certificate signed by the harness CA, an audit log of [`PLAIN_USER`]'s
//!   requests);
//! - kube-controller-manager v1.34.4 with the garbage-collector,
//!   namespace and serviceaccount controllers, so ownerReferences are
//!   garbage-collected, namespaces can be deleted and each namespace gets its
//!   `default` ServiceAccount;
//! - the CRDs in `tests/fixtures/crds/` (KEDA v2.21.0's six, from its
//!   `config/crd/bases`, and KServe's InferenceService), Established before
//!   `start` returns;
//! - KEDA v2.21.0's admission webhook, registered with a
//!   ValidatingWebhookConfiguration (`failurePolicy: Fail`) for ScaledObjects
//!   and TriggerAuthentications, so every ScaledObject stored has passed
//!   KEDA's own validation.
//!
//! There is no kubelet, scheduler, or Deployment/ReplicaSet controller: pods
//! never exist, so tests assert on stored objects. Every component listens
//! on free 127.0.0.1 ports picked at start, so several control planes can run
//! side by side (each costs about one core while starting). The one
//! exception is the KEDA webhook's serving port, which KEDA binds on all
//! interfaces (it has no flag for the host); only kube-apiserver, over
//! 127.0.0.1, talks to it.
//!
//! Each component's stdout and stderr go to `<log_dir>/<name>.log`. When the
//! [`ControlPlane`] is dropped every component is stopped (SIGTERM to its
//! process group, SIGKILL after a grace period) and the temporary directory
//! is removed; if the test is panicking, the last lines of every log are
//! printed first. Components are also started with `PR_SET_PDEATHSIG`, so
//! they die with the test process even if it is killed before `Drop` runs.
//! Set `E2E_KEEP=1` to keep the temporary directory (its path is printed).
//!
//! Webhooks under test: [`ControlPlane::issue_serving_cert`] signs a serving
//! certificate for `127.0.0.1`/`localhost` with the harness CA, and
//! [`ControlPlane::ca_bundle_base64`] is the matching `caBundle`; register
//! the webhook with `clientConfig.url: https://127.0.0.1:<port>/<path>`.
//!
//! With [`Options::metrics_aggregation`] ([`ControlPlane::start_with`]) the
//! API server can also serve an aggregated API from a process on loopback,
//! the way KEDA's metrics adapter serves `external.metrics.k8s.io` (see
//! `scaling_plane.rs`): its Service range is inside loopback
//! ([`AGGREGATION_SERVICE_CIDR`]) with the endpoint reconciler off and
//! aggregator routing to the Service's cluster IP, it has a front-proxy CA and
//! client certificate with the request-header flags, and the controller
//! manager runs the HPA controller too, syncing every 2 s.
//!
//! Note: the garbage collector discovers resource types when it starts and
//! then every 30 s. The fixture CRDs are installed before it starts; owned
//! objects of a CRD installed later are only collected once it has been
//! discovered.

#![allow(dead_code)] // not every scenario uses every helper

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// How long a component gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// How many lines of each log are printed when a test panics.
const LOG_TAIL_LINES: usize = 40;
/// Service CIDR handed to kube-apiserver (nothing is routed there).
const SERVICE_CIDR: &str = "10.0.0.0/24";
/// Service CIDR with [`Options::metrics_aggregation`]: every address of
/// 127.0.0.0/8 is local on Linux, so a process bound to a cluster IP from
/// this range is what kube-apiserver reaches through the Service.
pub const AGGREGATION_SERVICE_CIDR: &str = "127.100.0.0/24";

/// A user the API server knows by a bearer token and grants nothing: tests
/// give it permissions with RBAC bindings and act as it through
/// [`ControlPlane::user_kubeconfig`]. Its requests, and only its, are in the
/// API server's audit log ([`ControlPlane::audit_events`]).
pub const PLAIN_USER: &str = "e2e-oncall";

/// The audit policy: [`PLAIN_USER`]'s requests at level Metadata (user, verb,
/// resource, response code; no bodies), once each (at ResponseComplete),
/// nothing else. Policy rules match the authenticated user, not an
/// impersonated one (k8s.io/apiserver v0.34.4 pkg/server/config.go applies
/// WithAudit outside WithImpersonation; pkg/audit/policy/checker.go
/// `ruleMatches`), hence a user with a token of its own. The log backend
/// writes each event before the response is sent (its default mode,
/// `blocking`: pkg/server/options/audit.go).
fn audit_policy() -> String {
    format!(
        "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    users: [\"{PLAIN_USER}\"]
  - level: None
"
    )
}

/// What [`ControlPlane::start_with`] adds to the default control plane.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// API aggregation to loopback Services and the HPA controller (see the
    /// module documentation).
    pub metrics_aggregation: bool,
}

/// A running etcd + kube-apiserver + kube-controller-manager + KEDA admission
/// webhook on 127.0.0.1. See the module documentation.
pub struct ControlPlane {
    /// `None` once kept (`E2E_KEEP=1`) during drop.
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    bin: PathBuf,
    kubeconfig: PathBuf,
    server_url: String,
    /// Bearer token of [`PLAIN_USER`].
    user_token: String,
    ca: Ca,
    procs: Mutex<Vec<Proc>>,
}

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ControlPlane {
    /// Builds the tools if needed (`scripts/e2e-tools.sh`; minutes the first
    /// time on a fresh machine, well under a second afterwards), then starts
    /// a control plane and returns once the API server is ready, the fixture
    /// CRDs are Established and KEDA's webhook answers admission requests.
    ///
    /// Panics, with the logs of the components, if any step fails.
    pub fn start() -> ControlPlane {
        ControlPlane::start_with(Options::default())
    }

    /// [`start`](Self::start) with the additions of `options`.
    pub fn start_with(options: Options) -> ControlPlane {
        let bin = ensure_tools();
        let started = Instant::now();
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::Builder::new()
            .prefix("e2e-cluster-")
            .tempdir()
            .expect("create the control plane's temporary directory");
        let path = dir.path().to_path_buf();
        for sub in [
            "logs",
            "pki",
            "etcd",
            "kube-cache",
            "keda-certs",
            "kcm-certs",
        ] {
            fs::create_dir_all(path.join(sub)).expect("create a control plane directory");
        }

        let ca = Ca::generate();
        let [
            etcd_client,
            etcd_peer,
            apiserver,
            kcm,
            keda,
            keda_metrics,
            keda_health,
        ] = free_ports();
        let server_url = format!("https://127.0.0.1:{apiserver}");
        let cp = ControlPlane {
            kubeconfig: path.join("kubeconfig"),
            dir: Some(dir),
            root,
            bin,
            server_url,
            user_token: bearer_token(),
            ca,
            procs: Mutex::new(Vec::new()),
        };
        // From here on a panic drops `cp`, which stops whatever was started.

        let pki = path.join("pki");
        let (apiserver_cert, apiserver_key) = cp.ca.issue(
            &pki,
            "kube-apiserver",
            &[
                "127.0.0.1",
                "localhost",
                "10.0.0.1",
                "127.100.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
        );
        let (sa_signing_key, sa_verify_key) = service_account_keys(&pki);
        let token = bearer_token();
        let token_file = pki.join("tokens.csv");
        fs::write(
            &token_file,
            format!(
                "{token},e2e-admin,e2e-admin,system:masters\n{},{PLAIN_USER},{PLAIN_USER}\n",
                cp.user_token
            ),
        )
        .expect("write the token file");
        let audit_policy_file = pki.join("audit-policy.yaml");
        fs::write(&audit_policy_file, audit_policy()).expect("write the audit policy");
        cp.write_kubeconfig(&token);

        let etcd_url = format!("http://127.0.0.1:{etcd_client}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");
        cp.spawn(
            "etcd",
            &[
                "--name=e2e".into(),
                format!("--data-dir={}", path.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=e2e={peer_url}"),
                // Throwaway data: skip fsync, which dominates etcd's latency.
                "--unsafe-no-fsync=true".into(),
            ],
            &[],
        );

        let mut apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={apiserver}"),
            format!("--tls-cert-file={}", apiserver_cert.display()),
            format!("--tls-private-key-file={}", apiserver_key.display()),
            format!("--cert-dir={}", pki.display()),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", sa_verify_key.display()),
            format!(
                "--service-account-signing-key-file={}",
                sa_signing_key.display()
            ),
            format!("--token-auth-file={}", token_file.display()),
            "--authorization-mode=RBAC".into(),
            format!("--audit-policy-file={}", audit_policy_file.display()),
            format!("--audit-log-path={}", cp.audit_log().display()),
            // The `kubernetes` Service's endpoints would point at a
            // loopback address, which the endpoint reconciler refuses.
            "--endpoint-reconciler-type=none".into(),
        ];
        if options.metrics_aggregation {
            apiserver_args.extend(aggregation_flags(&pki));
        } else {
            apiserver_args.push(format!("--service-cluster-ip-range={SERVICE_CIDR}"));
        }
        cp.spawn("kube-apiserver", &apiserver_args, &[]);
        cp.wait_for("kube-apiserver /readyz", Duration::from_secs(120), || {
            cp.kubectl(&["get", "--raw=/readyz"]).status.success()
        });
        let apiserver_ready = started.elapsed();

        // CRDs before the controller manager: its garbage collector then
        // knows their resources from the start.
        cp.kubectl_ok(&[
            "apply",
            "--server-side",
            "--field-manager=e2e-harness",
            "-f",
            &cp.root.join("tests/fixtures/crds").display().to_string(),
        ]);
        // (`kubectl wait --for=condition=Established` fails outright on a
        // CRD that has no status yet, so poll.)
        cp.wait_for(
            "the CRDs to be Established",
            Duration::from_secs(60),
            || all_established(&cp.kubectl_ok(&["get", "crd", "-o=json"])),
        );

        let mut controllers =
            "garbage-collector-controller,namespace-controller,serviceaccount-controller"
                .to_string();
        let mut kcm_args = vec![
            format!("--kubeconfig={}", cp.kubeconfig.display()),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={kcm}"),
            format!("--cert-dir={}", path.join("kcm-certs").display()),
        ];
        if options.metrics_aggregation {
            controllers.push_str(",horizontal-pod-autoscaler-controller");
            // The default is 15 s; tests wait for its decisions.
            kcm_args.push("--horizontal-pod-autoscaler-sync-period=2s".into());
        }
        kcm_args.push(format!("--controllers={controllers}"));
        cp.spawn("kube-controller-manager", &kcm_args, &[]);

        let keda_certs = path.join("keda-certs");
        cp.issue_serving_cert(&keda_certs);
        cp.spawn(
            "keda-webhooks",
            &[
                format!("--kubeconfig={}", cp.kubeconfig.display()),
                format!("--cert-dir={}", keda_certs.display()),
                format!("--port={keda}"),
                format!("--metrics-bind-address=127.0.0.1:{keda_metrics}"),
                format!("--health-probe-bind-address=127.0.0.1:{keda_health}"),
            ],
            &[],
        );
        cp.kubectl_stdin_ok(
            &["apply", "-f", "-"],
            &keda_webhook_configuration(keda, &cp.ca_bundle_base64()),
        );
        // The API server calls webhooks on dry runs too, and the webhook's
        // failurePolicy is Fail: once a server-side dry run of a valid
        // ScaledObject passes, KEDA's webhook is serving and its ScaledObject
        // cache is primed.
        cp.wait_for(
            "KEDA's admission webhook to admit a ScaledObject",
            Duration::from_secs(60),
            || {
                cp.kubectl_stdin(
                    &["create", "--dry-run=server", "-f", "-"],
                    PROBE_SCALED_OBJECT,
                )
                .status
                .success()
            },
        );

        eprintln!(
            "e2e: control plane at {} ready in {:.1?} (kube-apiserver ready after {:.1?}); logs in {}",
            cp.server_url,
            started.elapsed(),
            apiserver_ready,
            cp.log_dir().display(),
        );
        cp
    }

    /// The admin kubeconfig (token of a `system:masters` user, CA data of the
    /// harness CA, server `https://127.0.0.1:PORT`, namespace `default`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:PORT` of kube-apiserver.
    pub fn server_url(&self) -> String {
        self.server_url.clone()
    }

    /// PEM of the harness CA, which signed kube-apiserver's serving
    /// certificate and signs [`issue_serving_cert`](Self::issue_serving_cert).
    pub fn ca_pem(&self) -> String {
        self.ca.pem.clone()
    }

    /// The harness CA as a webhook configuration's `caBundle` (base64 of the
    /// PEM).
    pub fn ca_bundle_base64(&self) -> String {
        BASE64.encode(&self.ca.pem)
    }

    /// Writes `tls.crt` and `tls.key` (PEM) into `dir`, creating it: a
    /// serving certificate for `IP:127.0.0.1` and `DNS:localhost` signed by
    /// the harness CA. Returns `(cert_path, key_path)`.
    pub fn issue_serving_cert(&self, dir: &Path) -> (PathBuf, PathBuf) {
        fs::create_dir_all(dir).expect("create the certificate directory");
        self.ca.issue(dir, "tls", &["127.0.0.1", "localhost"])
    }

    /// Writes `ca.crt`, `tls.crt` and `tls.key` (PEM) into `dir`, creating
    /// it: the harness CA and a leaf for `names` usable for both server and
    /// client authentication, the layout KEDA's operator and metrics adapter
    /// read from `--cert-dir` for their mutual-TLS gRPC link
    /// (`pkg/metricsservice/utils/tls.go` in KEDA).
    pub fn issue_mutual_tls_dir(&self, dir: &Path, names: &[&str]) {
        fs::create_dir_all(dir).expect("create the certificate directory");
        self.ca.issue_with(
            dir,
            "tls",
            names[0],
            names,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        fs::write(dir.join("ca.crt"), &self.ca.pem).expect("write ca.crt");
    }

    /// Path of the front-proxy CA certificate (only written with
    /// [`Options::metrics_aggregation`]): what an aggregated API server
    /// takes as `--requestheader-client-ca-file`.
    pub fn front_proxy_ca_file(&self) -> PathBuf {
        self.path().join("pki").join("front-proxy-ca.crt")
    }

    /// Directory for extra components' files (certificates, configuration,
    /// data), removed with the control plane.
    pub fn work_dir(&self) -> PathBuf {
        self.path().to_path_buf()
    }

    /// Stops the component started as `name` (SIGTERM to its process group,
    /// SIGKILL after the grace period) and forgets it, so that
    /// [`assert_running`](Self::assert_running) does not count it as dead.
    /// Its log stays.
    pub fn stop(&self, name: &str) {
        let mut procs = self.procs();
        let Some(i) = procs.iter().position(|p| p.name == name) else {
            panic!("e2e: no component named {name}");
        };
        let mut p = procs.remove(i);
        drop(procs);
        stop_proc(&mut p.child, Instant::now() + STOP_GRACE);
    }

    /// A kubeconfig that authenticates as [`PLAIN_USER`] (written on each
    /// call).
    pub fn user_kubeconfig(&self) -> PathBuf {
        let path = self.path().join("plain-user.kubeconfig");
        self.write_kubeconfig_for(PLAIN_USER, &self.user_token, &path);
        path
    }

    /// The API server's audit events so far: [`PLAIN_USER`]'s requests
    /// (k8s.io/apiserver `audit.k8s.io/v1` `Event`, one JSON object a line).
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(self.audit_log())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("an audit event is one JSON line"))
            .collect()
    }

    fn audit_log(&self) -> PathBuf {
        self.path().join("audit.log")
    }

    /// Directory holding one `<component>.log` per component.
    pub fn log_dir(&self) -> PathBuf {
        self.path().join("logs")
    }

    /// Runs the pinned kubectl against this control plane and returns its
    /// output, whatever its exit status.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    /// Runs kubectl and returns its stdout; panics with its stderr if it
    /// fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        check_ok(args, self.kubectl(args))
    }

    /// Runs kubectl with `stdin` as its standard input (for `apply -f -`)
    /// and returns its output, whatever its exit status.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .kubectl_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        let mut pipe = child.stdin.take().expect("kubectl's stdin");
        let input = stdin.to_owned();
        // Write from another thread: kubectl may answer before it has read
        // everything, and both pipes have bounded buffers.
        let writer = thread::spawn(move || pipe.write_all(input.as_bytes()));
        let output = child.wait_with_output().expect("wait for kubectl");
        // A write error only means kubectl stopped reading; its output says
        // why.
        let _ = writer.join();
        output
    }

    /// [`kubectl_stdin`](Self::kubectl_stdin), returning stdout; panics with
    /// stderr if kubectl fails.
    pub fn kubectl_stdin_ok(&self, args: &[&str], stdin: &str) -> String {
        check_ok(args, self.kubectl_stdin(args, stdin))
    }

    /// Polls `ready` every 200 ms until it returns true. Panics after
    /// `timeout`, or as soon as a component of the control plane has exited
    /// (with its log), naming `what` was awaited.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        loop {
            if ready() {
                return;
            }
            self.assert_running(what);
            if start.elapsed() > timeout {
                panic!("e2e: timed out after {timeout:?} waiting for {what}");
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Panics (naming `context`) if a component of the control plane has
    /// exited.
    pub fn assert_running(&self, context: &str) {
        let mut dead = String::new();
        for p in self.procs().iter_mut() {
            if let Ok(Some(status)) = p.child.try_wait() {
                let _ = write!(
                    dead,
                    "\n{} exited ({status}); log {}",
                    p.name,
                    p.log.display()
                );
            }
        }
        if !dead.is_empty() {
            panic!("e2e: control plane component died while {context}:{dead}");
        }
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().expect("control plane directory").path()
    }

    fn procs(&self) -> MutexGuard<'_, Vec<Proc>> {
        // A panic while the list was locked leaves it intact.
        self.procs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.bin.join("kubectl"));
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .env_remove("KUBECONFIG")
            // Neither the developer's ~/.kube/kuberc preferences nor their
            // discovery cache.
            .env("KUBERC", "off")
            .env("KUBECACHEDIR", self.path().join("kube-cache"));
        cmd
    }

    fn write_kubeconfig(&self, token: &str) {
        self.write_kubeconfig_for("e2e-admin", token, &self.kubeconfig);
    }

    /// Writes to `path` a kubeconfig for this API server that authenticates
    /// as `user` with a bearer `token` (e.g. a ServiceAccount's, from
    /// `kubectl create token`).
    pub fn write_kubeconfig_for(&self, user: &str, token: &str, path: &Path) {
        let config = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: e2e
  context:
    cluster: e2e
    user: {user}
    namespace: default
current-context: e2e
",
            server = self.server_url,
            ca = self.ca_bundle_base64(),
        );
        fs::write(path, config).expect("write the kubeconfig");
    }

    /// Starts `target/e2e-tools/bin/<name>` in its own process group with
    /// its output in `<log_dir>/<name>.log`; it is stopped with the control
    /// plane and its log tail printed if the test fails.
    pub fn spawn(&self, name: &str, args: &[String], envs: &[(&str, &str)]) {
        self.spawn_binary(name, &self.bin.join(name), args, envs);
    }

    /// `target/e2e-tools/bin/<name>`.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// [`spawn`](Self::spawn) for any executable, known as `name`.
    pub fn spawn_binary(&self, name: &str, program: &Path, args: &[String], envs: &[(&str, &str)]) {
        let log = self.log_dir().join(format!("{name}.log"));
        let out = File::create(&log).expect("create a log file");
        let err = out.try_clone().expect("clone a log file handle");
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(envs.iter().copied())
            .env_remove("KUBECONFIG")
            .current_dir(self.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child =
            spawn_tied_to_process(cmd).unwrap_or_else(|e| panic!("e2e: cannot start {name}: {e}"));
        self.procs().push(Proc {
            name: name.to_owned(),
            child,
            log,
        });
    }

    fn stop_all(&self) {
        let mut procs = self.procs();
        for p in procs.iter_mut() {
            if matches!(p.child.try_wait(), Ok(None)) {
                signal_group(&p.child, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        for p in procs.iter_mut() {
            stop_proc(&mut p.child, deadline);
        }
    }

    /// Prints the last lines of every component's log (done on drop when
    /// the test panics).
    pub fn print_log_tails(&self) {
        let procs = self.procs();
        for p in procs.iter() {
            let text = fs::read_to_string(&p.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "\n===== last {} lines of {} ({}) =====\n{}",
                tail.len(),
                p.name,
                p.log.display(),
                tail.join("\n")
            );
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Logs first: as they were when the test failed, not shutdown noise.
        if thread::panicking() {
            self.print_log_tails();
        }
        self.stop_all();
        if std::env::var_os("E2E_KEEP").is_some_and(|v| v == "1") {
            if let Some(dir) = self.dir.take() {
                eprintln!("e2e: kept {}", dir.keep().display());
            }
        }
    }
}

impl Ca {
    fn generate() -> Ca {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "llm-autoscale-webhook e2e CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("generate the CA key");
        let pem = params.self_signed(&key).expect("self-sign the CA").pem();
        Ca { params, key, pem }
    }

    /// Writes `<stem>.crt`/`<stem>.key` into `dir`: a serving certificate for
    /// `names` (IP addresses or DNS names) signed by this CA.
    fn issue(&self, dir: &Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        self.issue_with(
            dir,
            stem,
            names[0],
            names,
            vec![ExtendedKeyUsagePurpose::ServerAuth],
        )
    }

    /// Writes `<stem>.crt`/`<stem>.key` into `dir`: a leaf with common name
    /// `cn`, subject alternative names `names` and extended key usages
    /// `usages`, signed by this CA.
    fn issue_with(
        &self,
        dir: &Path,
        stem: &str,
        cn: &str,
        names: &[&str],
        usages: Vec<ExtendedKeyUsagePurpose>,
    ) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("certificate names");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = usages;
        let key = KeyPair::generate().expect("generate a serving key");
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("sign a certificate");
        let cert_path = dir.join(format!("{stem}.crt"));
        let key_path = dir.join(format!("{stem}.key"));
        fs::write(&cert_path, cert.pem()).expect("write a certificate");
        fs::write(&key_path, key.serialize_pem()).expect("write a private key");
        (cert_path, key_path)
    }
}

/// Runs `scripts/e2e-tools.sh` once per test process; returns its bin dir.
fn ensure_tools() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let script = root.join("scripts/e2e-tools.sh");
        let started = Instant::now();
        // Its progress goes straight to the terminal: a cold build takes
        // minutes and should not look like a hang.
        let status = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .unwrap_or_else(|e| panic!("e2e: cannot run {}: {e}", script.display()));
        assert!(
            status.success(),
            "e2e: {} failed ({status}); it needs Go (see its output above)",
            script.display()
        );
        eprintln!("e2e: tools ready in {:.1?}", started.elapsed());
        root.join("target/e2e-tools/bin")
    })
    .clone()
}

/// Whether every CRD in `kubectl get crd -o json` output (at least one) has
/// condition Established=True.
fn all_established(crd_list_json: &str) -> bool {
    let list: serde_json::Value =
        serde_json::from_str(crd_list_json).expect("kubectl get crd -o json");
    let established = |crd: &serde_json::Value| {
        crd["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        })
    };
    list["items"]
        .as_array()
        .is_some_and(|crds| !crds.is_empty() && crds.iter().all(established))
}

/// Picks distinct free loopback ports (all held open until all are picked).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local address").port())
}

/// The keys kube-apiserver signs and verifies ServiceAccount tokens with, as
/// `(signing_key, verification_key)`: RSA 2048 from `openssl genrsa` where
/// openssl is installed (the private key file serves as both), otherwise
/// ECDSA P-256 (which kube-apiserver accepts too, as ES256) from rcgen, with
/// its public key in a file of its own.
fn service_account_keys(dir: &Path) -> (PathBuf, PathBuf) {
    let key_path = dir.join("service-account.key");
    let rsa = Command::new("openssl")
        .arg("genrsa")
        .arg("-out")
        .arg(&key_path)
        .arg("2048")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if matches!(rsa, Ok(s) if s.success()) {
        return (key_path.clone(), key_path);
    }
    let key = KeyPair::generate().expect("generate the service account key");
    let pub_path = dir.join("service-account.pub");
    fs::write(&key_path, key.serialize_pem()).expect("write the service account key");
    fs::write(&pub_path, key.public_key_pem()).expect("write the service account key");
    (key_path, pub_path)
}

/// A token nobody else can guess within the test's lifetime.
fn bearer_token() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let key = KeyPair::generate().expect("generate token entropy");
    let entropy: String = key.public_key_raw()[1..17]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("e2e-{nanos:x}-{entropy}")
}

fn check_ok(args: &[&str], output: Output) -> String {
    if !output.status.success() {
        panic!(
            "e2e: `kubectl {}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// SIGTERM to `child`'s process group, then waits for it until `deadline`
/// and SIGKILLs the group if it is still running.
fn stop_proc(child: &mut Child, deadline: Instant) {
    if matches!(child.try_wait(), Ok(None)) {
        signal_group(child, libc::SIGTERM);
    }
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                signal_group(child, libc::SIGKILL);
                let _ = child.wait();
                break;
            }
        }
    }
}

/// kube-apiserver flags for aggregated API servers on loopback (DESIGN.md
/// §7): the Service range [`AGGREGATION_SERVICE_CIDR`], requests proxied to
/// a Service's cluster IP rather than its endpoints, and a front-proxy CA
/// (`front-proxy-ca.crt` in `pki`) whose client certificate the API server
/// presents, with the user in request headers.
fn aggregation_flags(pki: &Path) -> Vec<String> {
    let front_proxy = Ca::generate();
    fs::write(pki.join("front-proxy-ca.crt"), &front_proxy.pem).expect("write the front-proxy CA");
    let (client_cert, client_key) = front_proxy.issue_with(
        pki,
        "front-proxy-client",
        "front-proxy-client",
        &[],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    );
    vec![
        format!("--service-cluster-ip-range={AGGREGATION_SERVICE_CIDR}"),
        "--enable-aggregator-routing=false".into(),
        format!(
            "--requestheader-client-ca-file={}",
            pki.join("front-proxy-ca.crt").display()
        ),
        "--requestheader-allowed-names=front-proxy-client".into(),
        "--requestheader-username-headers=X-Remote-User".into(),
        "--requestheader-group-headers=X-Remote-Group".into(),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
        format!("--proxy-client-cert-file={}", client_cert.display()),
        format!("--proxy-client-key-file={}", client_key.display()),
    ]
}

/// Sends `signal` to the process group of `child` (started as its leader).
fn signal_group(child: &Child, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions; `child` has not
    // been reaped, so its id (and group id) cannot have been reused.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

type SpawnRequest = (Command, Sender<io::Result<Child>>);

/// Spawns `cmd` so that the kernel kills it if this test process dies
/// (`PR_SET_PDEATHSIG`). That signal fires when the *thread* that forked the
/// child exits, so every component is forked by one thread that lives as
/// long as the process: a control plane may then outlive the test thread
/// that started it (e.g. when shared through a `static`).
fn spawn_tied_to_process(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Sender<SpawnRequest>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("e2e-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the e2e spawner thread");
        tx
    });
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls (prctl, getppid, _exit).
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The test process died between fork and prctl.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner
        .send((cmd, tx))
        .map_err(|_| io::Error::other("e2e spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("e2e spawner thread is gone"))?
}

/// Registers KEDA's webhook (listening on 127.0.0.1:`port`) the way KEDA's
/// own manifests do, but with `failurePolicy: Fail` so a webhook that is down
/// fails the test instead of being skipped.
fn keda_webhook_configuration(port: u16, ca_bundle: &str) -> String {
    let webhook = |name: &str, path: &str, resource: &str| {
        format!(
            "- name: {name}
  admissionReviewVersions: [v1]
  clientConfig:
    url: https://127.0.0.1:{port}{path}
    caBundle: {ca_bundle}
  failurePolicy: Fail
  sideEffects: None
  timeoutSeconds: 10
  rules:
  - apiGroups: [keda.sh]
    apiVersions: [v1alpha1]
    operations: [CREATE, UPDATE]
    resources: [{resource}]
"
        )
    };
    format!(
        "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: keda-admission
webhooks:
{}{}",
        webhook(
            "vscaledobject.kb.io",
            "/validate-keda-sh-v1alpha1-scaledobject",
            "scaledobjects"
        ),
        webhook(
            "vstriggerauthentication.kb.io",
            "/validate-keda-sh-v1alpha1-triggerauthentication",
            "triggerauthentications"
        ),
    )
}

/// A valid ScaledObject, only ever dry-run, to see KEDA's webhook answer.
const PROBE_SCALED_OBJECT: &str = "apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: e2e-webhook-probe
  namespace: default
spec:
  scaleTargetRef:
    name: e2e-webhook-probe
  triggers:
  - type: prometheus
    metadata:
      serverAddress: http://127.0.0.1:9090
      query: sum(up)
      threshold: '1'
";
