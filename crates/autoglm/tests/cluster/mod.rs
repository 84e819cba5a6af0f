//! The real Kubernetes control plane of `scripts/k8s.sh`, started once per
//! test binary (tests share it and keep to their own namespaces) and stopped
//! by the script's watchdog when the test process exits.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct ControlPlane {
    _dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    kubectl: PathBuf,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/k8s.sh")
}

/// Runs the script; a failure panics with its output, which says what is
/// missing and how to get it (the tests never skip).
fn run_script(args: &[&str]) -> String {
    let output = Command::new("bash")
        .arg(script())
        .args(args)
        .env("AUTOGLM_K8S_OWNER_PID", std::process::id().to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/k8s.sh");
    assert!(
        output.status.success(),
        "scripts/k8s.sh {} failed ({}); run it by hand to see why",
        args.join(" "),
        output.status
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

impl ControlPlane {
    /// The control plane of this test binary, built and started on first use.
    pub fn shared() -> &'static ControlPlane {
        static PLANE: OnceLock<ControlPlane> = OnceLock::new();
        PLANE.get_or_init(|| {
            let bin = PathBuf::from(run_script(&["build"]));
            let dir = tempfile::tempdir().unwrap();
            let kubeconfig = PathBuf::from(run_script(&["start", dir.path().to_str().unwrap()]));
            ControlPlane {
                _dir: dir,
                kubeconfig,
                kubectl: bin.join("kubectl"),
            }
        })
    }

    /// Runs kubectl with `stdin`; returns the whole output, success or not.
    pub fn kubectl_with(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs kubectl and insists that it succeeds; returns stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let output = self.kubectl_with(args, "");
        assert!(
            output.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// `kubectl get ... -o json`.
    pub fn get_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend(args);
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl(&all)).unwrap()
    }

    /// Creates a namespace of its own for one test.
    pub fn namespace(&self, name: &str) -> String {
        self.kubectl(&["create", "namespace", name]);
        name.to_owned()
    }

    /// Waits until `check` holds, polling; panics with `what` after `limit`.
    pub fn wait_until(&self, what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !check() {
            assert!(
                Instant::now() < deadline,
                "{what} did not happen within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
