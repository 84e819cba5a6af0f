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
    dir: tempfile::TempDir,
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

/// The autoglm binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_autoglm");

/// Runs autoglm and insists that it succeeds; returns stdout.
pub fn autoglm(args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "autoglm {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A ModelService manifest with an inline (flow-style YAML) spec.
pub fn model_service(namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: autoglm.io/v1alpha1\nkind: ModelService\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec: {spec}\n"
    )
}

/// `autoglm operator` on one namespace, killed when dropped.
pub struct Operator {
    pub child: std::process::Child,
    pub metrics_port: u16,
}

impl Operator {
    /// Starts an operator watching `namespace`, with `extra` flags.
    pub fn start(plane: &ControlPlane, namespace: &str, extra: &[&str]) -> Operator {
        let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(BIN)
            .args(["operator", "--namespace", namespace, "--kubeconfig"])
            .arg(&plane.kubeconfig)
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Operator {
            child,
            metrics_port,
        }
    }

    /// GET a path of its metrics server: (status code, body), or `None` while it does not answer.
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        let code = answer.split(' ').nth(1)?.parse().ok()?;
        Some((code, answer.split_once("\r\n\r\n")?.1.to_owned()))
    }

    /// The sum of every sample of `metric` whose labels contain `labels`.
    pub fn metric(&self, metric: &str, labels: &str) -> f64 {
        let (_, body) = self.http_get("/metrics").expect("operator metrics");
        body.lines()
            .filter(|l| l.starts_with(metric) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ControlPlane {
    /// The shared control plane with the CRD of `autoglm crd` installed and established.
    pub fn with_crd() -> &'static ControlPlane {
        static INSTALLED: OnceLock<()> = OnceLock::new();
        let plane = ControlPlane::shared();
        INSTALLED.get_or_init(|| {
            let output = plane.kubectl_with(&["apply", "-f", "-"], &autoglm(&["crd"]));
            assert!(
                output.status.success(),
                "CRD refused: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            plane.kubectl(&[
                "wait",
                "--for=condition=Established",
                "crd/modelservices.autoglm.io",
                "--timeout=30s",
            ]);
        });
        plane
    }

    /// Kills kube-apiserver and starts it again on the same port and etcd,
    /// as a crash and restart would; returns once it is ready.
    pub fn restart_apiserver(&self) {
        run_script(&[
            "restart",
            self.dir.path().to_str().unwrap(),
            "kube-apiserver",
        ]);
    }

    /// Applies `manifest`, insisting that it is accepted.
    pub fn apply(&self, manifest: &str) {
        let output = self.kubectl_with(&["apply", "-f", "-"], manifest);
        assert!(
            output.status.success(),
            "kubectl apply refused: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The control plane of this test binary, built and started on first use.
    pub fn shared() -> &'static ControlPlane {
        static PLANE: OnceLock<ControlPlane> = OnceLock::new();
        PLANE.get_or_init(|| {
            let bin = PathBuf::from(run_script(&["build"]));
            let dir = tempfile::tempdir().unwrap();
            let kubeconfig = PathBuf::from(run_script(&["start", dir.path().to_str().unwrap()]));
            ControlPlane {
                dir,
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

/// This machine's address on its first non-loopback interface: EndpointSlices
/// refuse loopback addresses, so the test upstreams listen here.
pub fn host_ip() -> String {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    // A UDP "connect" only picks the route; nothing is sent.
    socket
        .connect("203.0.113.1:9")
        .expect("a route out of this machine, to pick its address");
    let ip = socket.local_addr().unwrap().ip();
    assert!(
        !ip.is_loopback() && !ip.is_unspecified(),
        "this machine needs a non-loopback IPv4 address for the gateway test (found {ip})"
    );
    ip.to_string()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped.
pub struct Process(pub std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something listens on `host:port`.
pub fn wait_for_port(host: &str, port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect((host, port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const UPSTREAM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/openai_upstream.py"
);

/// A real upstream on `ip` answering as `version` of `service` (500 for
/// every request when `failing`), listed as the one ready endpoint of that
/// version's Service in `namespace` by a hand-made EndpointSlice: kwok's
/// pods have no network, so this is how a gateway reaches a version.
pub fn upstream(
    plane: &ControlPlane,
    ip: &str,
    namespace: &str,
    service: &str,
    version: &str,
    failing: bool,
) -> Process {
    let port = free_port();
    let process = Process(
        Command::new("python3")
            .args([UPSTREAM, &port.to_string(), version, service])
            .env("UPSTREAM_HOST", ip)
            .env("FAIL_VERSIONS", if failing { version } else { "" })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Listed only once it listens: a slice naming a port nobody answers
    // yet would make the gateway answer 502 (it was a flake under load).
    wait_for_port(ip, port, "an upstream");
    plane.apply(&format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-{version}-test\n  namespace: {namespace}\n  labels: {{kubernetes.io/service-name: {service}-{version}, app.kubernetes.io/managed-by: autoglm, endpointslice.kubernetes.io/managed-by: autoglm-test}}\naddressType: IPv4\nports: [{{name: http, port: {port}, protocol: TCP}}]\nendpoints: [{{addresses: [\"{ip}\"], conditions: {{ready: true}}}}]\n"
    ));
    process
}
