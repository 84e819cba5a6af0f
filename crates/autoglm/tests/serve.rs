//! The binary as an operator runs it: configuration sources and their
//! precedence, exit codes, the admin token, TLS, graceful shutdown, and
//! memory staying flat during a large upload.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{BIN, Console};

fn exit_of(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Arguments, environment, and a word the error must contain.
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

#[test]
fn bad_configuration_exits_64_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    let home_arg = home.path().to_str().unwrap();
    let config = home.path().join("c.toml");
    std::fs::write(&config, "adr = \"127.0.0.1:1\"\n").unwrap();
    let cases: Vec<Case> = vec![
        (
            vec!["console", "--home", home_arg, "--addr", "nonsense"],
            vec![],
            "addr",
        ),
        (
            vec!["console", "--home", home_arg],
            vec![("AUTOGLM_ADDR", "localhost:x")],
            "addr",
        ),
        (
            vec![
                "console",
                "--home",
                home_arg,
                "--config",
                config.to_str().unwrap(),
            ],
            vec![],
            "adr",
        ),
        (
            vec![
                "console",
                "--home",
                home_arg,
                "--config",
                "/nonexistent.toml",
            ],
            vec![],
            "cannot read",
        ),
        (
            vec![
                "console",
                "--home",
                home_arg,
                "--tls-cert",
                "/no/cert",
                "--tls-key",
                "/no/key",
            ],
            vec![],
            "TLS file",
        ),
        (
            vec!["console", "--home", home_arg],
            vec![("AUTOGLM_ADMIN_PASSWORD", "short")],
            "12 characters",
        ),
        (
            vec!["console", "--home", home_arg, "--nacos-addr", "nonsense"],
            vec![],
            "nacos_addr",
        ),
        (
            vec![
                "console",
                "--home",
                home_arg,
                "--nacos-addr",
                "127.0.0.1:65000",
            ],
            vec![],
            "gRPC port",
        ),
    ];
    for (args, env, needle) in cases {
        let (code, stderr) = exit_of(&args, &env);
        assert_eq!(code, 64, "{args:?} {env:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(needle), "{stderr}");
    }
}

#[test]
fn flags_override_environment_which_overrides_the_file() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("c.toml");
    std::fs::write(&config, "addr = \"not-an-address\"\n").unwrap();
    // The file's bad address is overridden by the environment, whose bad
    // address is overridden by the flag that Console::start passes.
    let mut child = Command::new(BIN)
        .args([
            "console",
            "--config",
            config.to_str().unwrap(),
            "--home",
            home.path().to_str().unwrap(),
        ])
        .env("AUTOGLM_ADDR", "also-not-an-address")
        .args(["--addr", "127.0.0.1:0", "--nacos-addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut banner,
    )
    .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        banner.contains("listening on http://127.0.0.1:"),
        "{banner}"
    );

    // Without the flag, the environment's bad address wins over the file and is refused.
    let (code, stderr) = exit_of(
        &["console", "--config", config.to_str().unwrap()],
        &[("AUTOGLM_ADDR", "also-not-an-address")],
    );
    assert_eq!(code, 64);
    assert!(stderr.contains("also-not-an-address"), "{stderr}");
}

#[tokio::test]
async fn first_start_writes_a_private_admin_token_that_works() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(home.path(), &[]);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(home.path().join("admin-token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let who: serde_json::Value = console
        .client()
        .get(console.api("/api/v1/auth/whoami"))
        .bearer_auth(&console.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["role"], "admin");
    assert_eq!(who["tenant"], "default");
    // A second start keeps the same token.
    let first = console.token.clone();
    drop(console);
    let again = Console::start(home.path(), &[]);
    assert_eq!(again.token, first);
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let home = tempfile::tempdir().unwrap();
    let mut console = Console::start(home.path(), &[]);
    assert_eq!(
        console
            .client()
            .get(console.api("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    console.signal("TERM");
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = console.child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "exits 0 after SIGTERM"
    );
}

#[tokio::test]
async fn self_signed_tls_serves_https() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(home.path(), &["--tls-self-signed"]);
    assert!(console.url.starts_with("https://"), "{}", console.url);
    let response = console
        .client()
        .get(console.api("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(home.path().join("tls/self-signed.crt").is_file());
    // Plain HTTP to the TLS port does not get an answer.
    let plain = console.url.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/healthz")).await.is_err());
}

#[tokio::test]
async fn a_100_mb_upload_streams_with_flat_memory() {
    const SIZE: usize = 100 * 1024 * 1024;
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(home.path(), &[]);
    let client = console.client();
    let created = client
        .post(console.api("/api/v1/models"))
        .bearer_auth(&console.token)
        .json(&serde_json::json!({"name": "big"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let before = console.peak_rss_kib();
    let chunk = bytes::Bytes::from(vec![7u8; 1024 * 1024]);
    let stream = futures_util::stream::iter(
        (0..SIZE / chunk.len()).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    );
    let part = reqwest::multipart::Part::stream_with_length(
        reqwest::Body::wrap_stream(stream),
        SIZE as u64,
    )
    .file_name("weights.bin");
    let form = reqwest::multipart::Form::new().part("artifact", part);
    let response = client
        .post(console.api("/api/v1/models/big/versions"))
        .bearer_auth(&console.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let version: serde_json::Value = response.json().await.unwrap();
    assert_eq!(version["size"], SIZE as u64);
    let grown_mib = (console.peak_rss_kib() - before) / 1024;
    assert!(
        grown_mib < 32,
        "peak memory grew by {grown_mib} MiB for a 100 MiB upload"
    );
}

#[test]
fn a_replica_exits_when_the_platform_that_started_it_is_killed() {
    let model = autoglm_testmodels::path(autoglm_testmodels::MINILM);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A stand-in for the local platform: a shell that starts a replica with
    // the platform's environment (its own pid), prints the replica's pid, waits.
    let mut platform = Command::new("sh")
        .arg("-c")
        .arg(r#"AUTOGLM_EXIT_WITH_PARENT=$$ "$0" runtime --model "$1" --name m --addr "127.0.0.1:$2" >/dev/null 2>&1 & echo $!; wait"#)
        .arg(BIN)
        .arg(&model)
        .arg(port.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(platform.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let replica = line.trim().to_owned();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !common::exited(&replica),
        "the replica should run while its platform does"
    );
    platform.kill().unwrap();
    platform.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !common::exited(&replica) {
        assert!(
            std::time::Instant::now() < deadline,
            "replica {replica} outlived its killed platform"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
