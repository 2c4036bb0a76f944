//! The `mutate` command as a user runs it: files and stdin, stdout/stderr, exit codes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn mutate(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llm-autoscale-webhook"))
        .arg("mutate")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the binary");
    let mut pipe = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        pipe.write_all(s.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

#[test]
fn the_example_comes_out_with_a_sidecar_and_a_scaled_object() {
    let out = mutate(&["-f", "examples/vllm-deployment.yaml"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("name: llm-autoscale-collector"));
    assert!(stdout.contains("kind: ScaledObject"));
    assert!(
        stdout.contains("sum(vllm:num_requests_waiting{deployment=qwen2-7b-vllm,namespace=llm})")
    );
    assert!(out.stderr.is_empty(), "no warnings expected");

    // The output through mutate again (from stdin) is unchanged, byte for byte.
    let again = mutate(&["-f", "-"], Some(&stdout));
    assert!(again.status.success());
    assert_eq!(String::from_utf8(again.stdout).unwrap(), stdout);
}

#[test]
fn invalid_annotations_exit_non_zero_with_nothing_on_stdout() {
    let out = mutate(&["-f", "tests/fixtures/invalid/every-problem.yaml"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing partial on stdout");
    let stderr = String::from_utf8(out.stderr).unwrap();
    for key in [
        "scaler-adress",
        "backend",
        "min-replicas",
        "metrics-port",
        "query",
        "target",
    ] {
        assert!(
            stderr.contains(&format!("llm-autoscale.io/{key}:")),
            "{key} missing from:\n{stderr}"
        );
    }
}

#[test]
fn warnings_go_to_stderr() {
    let out = mutate(
        &["-f", "tests/fixtures/input/vllm-deprecated-metric.yaml"],
        None,
    );
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("Warning: Deployment default/vllm-llama3-deployment-vllm:"),
        "{stderr}"
    );
    assert!(!String::from_utf8(out.stdout).unwrap().contains("Warning"));
}

#[test]
fn unreadable_input_is_an_error() {
    let out = mutate(&["-f", "does-not-exist.yaml"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does-not-exist.yaml"));
    let out = mutate(&["-f", "-"], Some("a: [unclosed"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid YAML"));
}

/// `--builtin-scaler-tls` renders sidecars that wait for `ca.crt` in their namespace's
/// Secret: a reconciler that cannot write it (no `--scaler-tls-ca`, or a file without a
/// certificate) refuses to start, naming the flag, before it connects to anything.
#[test]
fn a_reconciler_without_the_scalers_ca_refuses_to_start_with_tls() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_ca = dir.path().join("ca.crt");
    std::fs::write(&not_a_ca, "not a certificate\n").unwrap();
    let not_a_ca = format!("--scaler-tls-ca={}", not_a_ca.display());
    for (command, extra) in [
        ("reconcile", None),
        ("serve", None),
        ("reconcile", Some(not_a_ca.as_str())),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_llm-autoscale-webhook"))
            .args([command, "--builtin-scaler-tls=true"])
            .args(extra)
            .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
            .env_remove("LLM_AUTOSCALE_SCALER_TLS_CA")
            .stdin(Stdio::null())
            .output()
            .expect("run the binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command} {extra:?}: {stderr}");
        assert!(stderr.contains("--scaler-tls-ca"), "{command}: {stderr}");
    }
    // `mutate` takes the setting too: the built-in triggers set KEDA's enableTLS.
    let manifest = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/vllm-deployment.yaml"),
    )
    .unwrap()
    .replace(
        "llm-autoscale.io/enabled: \"true\"",
        "llm-autoscale.io/enabled: \"true\"\n    llm-autoscale.io/backend: builtin",
    );
    assert!(manifest.contains("backend: builtin"), "{manifest}");
    let out = mutate(&["-f", "-", "--builtin-scaler-tls=true"], Some(&manifest));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("enableTLS: 'true'"), "{stdout}");
    assert!(stdout.contains("key: ca.crt"), "{stdout}");
}
