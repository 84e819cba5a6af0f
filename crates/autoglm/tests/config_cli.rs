//! `autoglm config ...` against a real console: keys set and read back byte
//! for byte, history, diffs and rollback, stale writes refused, export and
//! import round trips, watching, promotions and change requests.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use autoglm_core::config::md5_hex;
use common::{BIN, Console};
use serde_json::Value;

/// `autoglm config ARGS` as the admin, stdin empty.
fn config(console: &Console, args: &[&str]) -> Output {
    config_as(console, &console.token, args, None)
}

/// `autoglm config ARGS` with `token`, `stdin` fed when given.
fn config_as(console: &Console, token: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .arg("config")
        .args(args)
        .args(["--server", &console.url])
        .env("AUTOGLM_TOKEN", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs and expects success.
#[track_caller]
fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", text(&out));
    out
}

/// `config get ENV KEY`'s bytes.
fn get(console: &Console, env: &str, key: &str) -> Vec<u8> {
    ok(config(console, &["get", env, key])).stdout
}

fn set_file(console: &Console, env: &str, key: &str, file: &Path) -> Output {
    config(console, &["set", env, key, "-f", file.to_str().unwrap()])
}

/// Contents that test every byte the files must keep.
const NO_NEWLINE: &str = "no newline at the end";
const UTF8: &str = "greeting: \"你好, ünïcödé — 🎉\"\r\nlist:\n  - ✓\n";
const YAML_V1: &str = "replicas: 1\nname: chat\n";
const YAML_V2: &str = "replicas: 3\nname: chat\n";

#[test]
fn set_and_get_keep_every_byte_with_history_diff_and_rollback() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(home.path(), &[]);
    let files = tempfile::tempdir().unwrap();
    let write = |name: &str, content: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    };

    let out = ok(set_file(
        &console,
        "dev",
        "app.yaml",
        &write("app.yaml", YAML_V1),
    ));
    assert_eq!(
        stdout(&out),
        "config/dev/DEFAULT_GROUP/app.yaml published (version 1)\n"
    );
    let out = ok(set_file(
        &console,
        "dev",
        "app.yaml",
        &write("app.yaml", YAML_V1),
    ));
    assert_eq!(
        stdout(&out),
        "config/dev/DEFAULT_GROUP/app.yaml unchanged (version 1)\n"
    );
    assert_eq!(get(&console, "dev", "app.yaml"), YAML_V1.as_bytes());

    ok(set_file(
        &console,
        "dev",
        "notes.txt",
        &write("notes.txt", NO_NEWLINE),
    ));
    assert_eq!(get(&console, "dev", "notes.txt"), NO_NEWLINE.as_bytes());
    ok(set_file(
        &console,
        "dev",
        "models/i18n.yaml",
        &write("i18n.yaml", UTF8),
    ));
    assert_eq!(get(&console, "dev", "models/i18n.yaml"), UTF8.as_bytes());
    ok(config(
        &console,
        &["set", "dev", "literal.json", "--from-literal", "{\"a\": 1}"],
    ));
    assert_eq!(get(&console, "dev", "literal.json"), b"{\"a\": 1}");
    let piped = "from stdin\r\nsecond line";
    ok(config_as(
        &console,
        &console.token,
        &["set", "dev", "piped", "-"],
        Some(piped.as_bytes()),
    ));
    assert_eq!(get(&console, "dev", "piped"), piped.as_bytes());

    // The list, as a table and as JSON.
    let out = ok(config(&console, &["get", "dev"]));
    let listed = stdout(&out);
    let lines: Vec<&str> = listed.lines().collect();
    assert!(
        lines[0].starts_with("GROUP") && lines[0].ends_with("UPDATED"),
        "{listed}"
    );
    assert!(
        listed.contains(&format!(
            "app.yaml       yaml     1         {}",
            md5_hex(YAML_V1)
        )),
        "{listed}"
    );
    let out = ok(config(&console, &["get", "dev", "-o", "json"]));
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 5, "{all}");
    let one: Value = serde_json::from_slice(
        &ok(config(
            &console,
            &["get", "dev", "models/i18n.yaml", "-o", "json"],
        ))
        .stdout,
    )
    .unwrap();
    assert_eq!(one["content"], UTF8);
    assert_eq!(one["group"], "models");

    // History, diff, rollback.
    ok(config(
        &console,
        &[
            "set",
            "dev",
            "app.yaml",
            "-f",
            write("app.yaml", YAML_V2).to_str().unwrap(),
            "-m",
            "scale up",
        ],
    ));
    let history = stdout(&ok(config(&console, &["history", "dev", "app.yaml"])));
    let rows: Vec<&str> = history.lines().collect();
    assert_eq!(rows.len(), 3, "{history}");
    assert!(
        rows[1].starts_with("2 ") && rows[1].ends_with("scale up"),
        "{history}"
    );
    assert!(rows[2].starts_with("1 "), "{history}");
    let diff = stdout(&ok(config(&console, &["diff", "dev", "app.yaml"])));
    assert!(diff.contains("-replicas: 1\n+replicas: 3\n"), "{diff}");
    let diff = stdout(&ok(config(
        &console,
        &["diff", "dev", "app.yaml", "--from", "0", "--to", "1"],
    )));
    assert!(diff.contains("+replicas: 1\n+name: chat\n"), "{diff}");
    let out = ok(config(
        &console,
        &["rollback", "dev", "app.yaml", "--to-version", "1"],
    ));
    assert_eq!(
        stdout(&out),
        "config/dev/DEFAULT_GROUP/app.yaml rolled back to version 1 (version 3)\n"
    );
    assert_eq!(get(&console, "dev", "app.yaml"), YAML_V1.as_bytes());
    let old: Value = serde_json::from_slice(
        &ok(config(
            &console,
            &["get", "dev", "app.yaml", "--version", "2", "-o", "json"],
        ))
        .stdout,
    )
    .unwrap();
    assert_eq!(old["content"], YAML_V2);

    // Content that does not parse as its format: the line and column, exit 1.
    let out = config(
        &console,
        &["set", "dev", "app.yaml", "--from-literal", "a: [1,\nb: }"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: invalid_body"), "{stderr}");
    assert!(
        stderr.contains("  content: not valid yaml at line 2"),
        "{stderr}"
    );
    assert_eq!(get(&console, "dev", "app.yaml"), YAML_V1.as_bytes());

    // A missing key, and bad local input.
    let out = config(&console, &["get", "dev", "nope.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not_found"), "{}", text(&out));
    let out = config(&console, &["set", "dev", "k", "-f", "/nonexistent/file"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = config(&console, &["get", "dev", "../etc"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // Delete: gone from the list, its history kept.
    let out = ok(config(&console, &["delete", "dev", "piped"]));
    assert_eq!(stdout(&out), "config/dev/DEFAULT_GROUP/piped deleted\n");
    assert_eq!(
        config(&console, &["get", "dev", "piped"]).status.code(),
        Some(1)
    );
    let history = stdout(&ok(config(&console, &["history", "dev", "piped"])));
    assert!(history.contains("<deleted>"), "{history}");
}

#[test]
fn a_stale_base_is_refused_and_stores_nothing() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(home.path(), &[]);
    ok(config(
        &console,
        &["set", "dev", "app.yaml", "--from-literal", YAML_V1],
    ));
    let stale = md5_hex("something else");
    let out = config(
        &console,
        &[
            "set",
            "dev",
            "app.yaml",
            "--from-literal",
            YAML_V2,
            "--base-md5",
            &stale,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("generation_mismatch") && stderr.contains("version 1"),
        "{stderr}"
    );
    assert_eq!(get(&console, "dev", "app.yaml"), YAML_V1.as_bytes());
    let history = stdout(&ok(config(&console, &["history", "dev", "app.yaml"])));
    assert_eq!(history.lines().count(), 2, "one version: {history}");
    let out = config(
        &console,
        &[
            "set",
            "dev",
            "app.yaml",
            "--from-literal",
            YAML_V2,
            "--base-version",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // The right base publishes.
    let out = ok(config(
        &console,
        &[
            "set",
            "dev",
            "app.yaml",
            "--from-literal",
            YAML_V2,
            "--base-md5",
            &md5_hex(YAML_V1),
        ],
    ));
    assert!(
        stdout(&out).ends_with("published (version 2)\n"),
        "{}",
        text(&out)
    );
}

/// Every file under `dir` but the index, by its path relative to `dir`.
fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all = Vec::new();
    for group in std::fs::read_dir(dir).unwrap() {
        let group = group.unwrap();
        if !group.file_type().unwrap().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(group.path()).unwrap() {
            let file = file.unwrap();
            let name = format!(
                "{}/{}",
                group.file_name().to_string_lossy(),
                file.file_name().to_string_lossy()
            );
            all.push((name, std::fs::read(file.path()).unwrap()));
        }
    }
    all.sort();
    all
}

#[test]
fn export_then_import_round_trips_every_byte_and_a_second_import_changes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(home.path(), &[]);
    let published: [(&str, &[&str], &str); 5] = [
        ("app.yaml", &[], YAML_V1),
        ("notes.txt", &[], NO_NEWLINE),
        ("models/i18n.yaml", &[], UTF8),
        ("plain", &["--format", "json"], "{\"x\": [1, 2]}\n"),
        ("db/pool.properties", &[], "size=4\nurl=jdbc:x\n"),
    ];
    for (key, extra, content) in published {
        let mut args = vec!["set", "dev", key, "--from-literal", content];
        args.extend_from_slice(extra);
        ok(config(&console, &args));
    }
    let work = tempfile::tempdir().unwrap();
    let exported = work.path().join("dev");
    let out = ok(config(
        &console,
        &["export", "dev", exported.to_str().unwrap()],
    ));
    assert_eq!(stdout(&out).lines().count(), 5, "{}", text(&out));
    let files = files_of(&exported);
    let expected: Vec<(String, Vec<u8>)> = {
        let mut e: Vec<(String, Vec<u8>)> = [
            ("DEFAULT_GROUP/app.yaml", YAML_V1),
            ("DEFAULT_GROUP/notes.txt", NO_NEWLINE),
            ("DEFAULT_GROUP/plain.json", "{\"x\": [1, 2]}\n"),
            ("db/pool.properties", "size=4\nurl=jdbc:x\n"),
            ("models/i18n.yaml", UTF8),
        ]
        .iter()
        .map(|(f, c)| ((*f).to_owned(), c.as_bytes().to_vec()))
        .collect();
        e.sort();
        e
    };
    assert_eq!(files, expected);
    let index = std::fs::read_to_string(exported.join("autoglm-config.yaml")).unwrap();
    assert!(index.contains("environment: dev"), "{index}");
    let index: Value = serde_yaml_ng::from_str(&index).unwrap();
    let listed: Vec<(&str, &str, &str)> = index["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["group"].as_str().unwrap(),
                e["key"].as_str().unwrap(),
                e["file"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("DEFAULT_GROUP", "app.yaml", "DEFAULT_GROUP/app.yaml"),
            ("DEFAULT_GROUP", "notes.txt", "DEFAULT_GROUP/notes.txt"),
            ("DEFAULT_GROUP", "plain", "DEFAULT_GROUP/plain.json"),
            ("db", "pool.properties", "db/pool.properties"),
            ("models", "i18n.yaml", "models/i18n.yaml"),
        ]
    );
    assert_eq!(
        index["keys"][0]["md5"].as_str(),
        Some(md5_hex(YAML_V1).as_str())
    );

    // Into another environment: every key created, byte for byte.
    let dir = exported.to_str().unwrap();
    let out = ok(config(&console, &["import", dir, "--env", "test"]));
    assert_eq!(
        stdout(&out),
        "config/test/DEFAULT_GROUP/app.yaml created\n\
         config/test/DEFAULT_GROUP/notes.txt created\n\
         config/test/DEFAULT_GROUP/plain created\n\
         config/test/db/pool.properties created\n\
         config/test/models/i18n.yaml created\n"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("import into test: 5 created, 0 configured, 0 unchanged, 0 pruned"),
        "{}",
        text(&out)
    );
    let again = work.path().join("test");
    ok(config(
        &console,
        &["export", "test", again.to_str().unwrap()],
    ));
    assert_eq!(files_of(&again), expected, "test exports what dev did");
    let format: Value = serde_json::from_slice(
        &ok(config(&console, &["get", "test", "plain", "-o", "json"])).stdout,
    )
    .unwrap();
    assert_eq!(format["format"], "json", "the index's format came along");

    // A second import changes nothing; the index's environment is the default.
    for args in [vec!["import", dir, "--env", "test"], vec!["import", dir]] {
        let out = ok(config(&console, &args));
        assert_eq!(
            stdout(&out)
                .lines()
                .filter(|l| l.ends_with(" unchanged"))
                .count(),
            5,
            "{}",
            text(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("0 created, 0 configured, 5 unchanged"),
            "{}",
            text(&out)
        );
    }
    let history = stdout(&ok(config(&console, &["history", "test", "app.yaml"])));
    assert_eq!(history.lines().count(), 2, "{history}");

    // An edit, a new file, a removed file: a dry run changes nothing, then the import.
    std::fs::write(exported.join("DEFAULT_GROUP/app.yaml"), YAML_V2).unwrap();
    std::fs::write(exported.join("db/new.toml"), "a = 1\n").unwrap();
    std::fs::remove_file(exported.join("DEFAULT_GROUP/notes.txt")).unwrap();
    let out = ok(config(
        &console,
        &["import", dir, "--env", "test", "--prune", "--dry-run"],
    ));
    let printed = stdout(&out);
    assert!(
        printed.contains("config/test/DEFAULT_GROUP/app.yaml configured (dry run)\n")
            && printed.contains("config/test/db/new.toml created (dry run)\n")
            && printed.contains("config/test/DEFAULT_GROUP/notes.txt pruned (dry run)\n"),
        "{printed}"
    );
    assert_eq!(get(&console, "test", "app.yaml"), YAML_V1.as_bytes());
    assert_eq!(get(&console, "test", "notes.txt"), NO_NEWLINE.as_bytes());
    let out = ok(config(
        &console,
        &["import", dir, "--env", "test", "--prune"],
    ));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("import into test: 1 created, 1 configured, 3 unchanged, 1 pruned"),
        "{}",
        text(&out)
    );
    assert_eq!(get(&console, "test", "app.yaml"), YAML_V2.as_bytes());
    assert_eq!(get(&console, "test", "db/new.toml"), b"a = 1\n");
    assert_eq!(
        config(&console, &["get", "test", "notes.txt"])
            .status
            .code(),
        Some(1)
    );

    // A broken file imports nothing; an index naming a file outside is refused.
    std::fs::write(exported.join("db/new.toml"), "a = = 1\n").unwrap();
    std::fs::write(exported.join("DEFAULT_GROUP/app.yaml"), YAML_V1).unwrap();
    let out = config(&console, &["import", dir, "--env", "test"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("db/new.toml: not valid toml"),
        "{}",
        text(&out)
    );
    assert_eq!(get(&console, "test", "app.yaml"), YAML_V2.as_bytes());
    let evil = work.path().join("evil");
    std::fs::create_dir_all(&evil).unwrap();
    std::fs::write(
        evil.join("autoglm-config.yaml"),
        "environment: test\nkeys:\n- {group: g, key: k, format: text, file: ../dev/db/pool.properties, md5: '', version: 1}\n",
    )
    .unwrap();
    let out = config(&console, &["import", evil.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("escapes the folder"), "{}", text(&out));
}

#[test]
fn watch_once_prints_a_change_published_by_another_command() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(home.path(), &[]);
    ok(config(
        &console,
        &["set", "dev", "w.yaml", "--from-literal", YAML_V1],
    ));
    let mut watch = Command::new(BIN)
        .args([
            "config",
            "watch",
            "dev",
            "w.yaml",
            "models/absent.json",
            "--once",
        ])
        .args(["--server", &console.url])
        .env("AUTOGLM_TOKEN", &console.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It says when it holds the md5s; a change from then on is its to see.
    let mut stderr = BufReader::new(watch.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.starts_with("watching 2 key(s)"), "{line:?}");

    ok(config(
        &console,
        &["set", "dev", "w.yaml", "--from-literal", YAML_V2],
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while watch.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "watch --once did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = watch.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "dev/DEFAULT_GROUP/w.yaml version 2 md5 {}\n",
            md5_hex(YAML_V2)
        )
    );
}

/// An API key that may read and write config, but not protected environments.
fn developer_key(console: &Console) -> String {
    let key: Value = reqwest::blocking::Client::new()
        .post(console.api("/api/v1/keys"))
        .bearer_auth(&console.token)
        .json(&serde_json::json!({"name": "config-dev", "scopes": ["config:read", "config:write"]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    key["secret"].as_str().unwrap().to_owned()
}

#[test]
fn promote_shows_its_plan_a_dry_run_writes_nothing_and_yes_applies() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(home.path(), &[]);
    for (env, key, content) in [
        ("dev", "a.yaml", YAML_V1),
        ("dev", "b.txt", "new b"),
        ("test", "b.txt", "old b"),
        ("test", "only-test.txt", "t"),
    ] {
        ok(config(
            &console,
            &["set", env, key, "--from-literal", content],
        ));
    }
    let out = ok(config(&console, &["promote", "dev", "test", "--dry-run"]));
    let plan = stdout(&out);
    assert!(
        plan.starts_with(
            "Promotion from dev to test: 1 to create, 1 to update, 0 to delete, 0 unchanged\n"
        ),
        "{plan}"
    );
    assert!(
        plan.contains("config/test/DEFAULT_GROUP/a.yaml create\n")
            && plan.contains("+replicas: 1\n")
            && plan.contains("config/test/DEFAULT_GROUP/b.txt update\n")
            && plan.contains("-old b\n"),
        "{plan}"
    );
    let listed = |env: &str| -> Vec<(String, String)> {
        let all: Value =
            serde_json::from_slice(&ok(config(&console, &["get", env, "-o", "json"])).stdout)
                .unwrap();
        all.as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["key"].as_str().unwrap().to_owned(),
                    v["content"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let before = listed("test");
    assert_eq!(
        before,
        [
            ("b.txt".to_owned(), "old b".to_owned()),
            ("only-test.txt".to_owned(), "t".to_owned())
        ]
    );

    // Not confirmed (stdin is empty): nothing changes.
    let out = config(&console, &["promote", "dev", "test"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not confirmed"), "{}", text(&out));
    assert_eq!(listed("test"), before);

    let out = ok(config(
        &console,
        &["promote", "dev", "test", "--prune", "-y"],
    ));
    let applied = stdout(&out);
    assert!(
        applied.ends_with(
            "config/test/DEFAULT_GROUP/a.yaml created (version 1)\n\
             config/test/DEFAULT_GROUP/b.txt configured (version 2)\n\
             config/test/DEFAULT_GROUP/only-test.txt deleted (version 2)\n"
        ),
        "{applied}"
    );
    assert_eq!(listed("test"), listed("dev"));
    assert_eq!(get(&console, "test", "a.yaml"), YAML_V1.as_bytes());
    let out = ok(config(&console, &["promote", "dev", "test", "-y"]));
    assert!(text(&out).contains("nothing to promote"), "{}", text(&out));

    // Only some keys, answered yes on stdin.
    ok(config(
        &console,
        &["set", "dev", "c.txt", "--from-literal", "c"],
    ));
    ok(config(
        &console,
        &["set", "dev", "b.txt", "--from-literal", "newer b"],
    ));
    let out = ok(config_as(
        &console,
        &console.token,
        &["promote", "dev", "test", "--key", "c.txt"],
        Some(b"y\n"),
    ));
    assert!(
        stdout(&out).ends_with("config/test/DEFAULT_GROUP/c.txt created (version 1)\n"),
        "{}",
        text(&out)
    );
    assert_eq!(get(&console, "test", "b.txt"), b"new b");
}

#[test]
fn protected_environments_take_changes_through_requests() {
    let home = tempfile::tempdir().unwrap();
    let console = Console::start(home.path(), &[]);
    let developer = developer_key(&console);
    ok(config(
        &console,
        &["set", "staging", "a.yaml", "--from-literal", YAML_V2],
    ));

    // Refused with the way forward.
    let out = config_as(
        &console,
        &developer,
        &["set", "prod", "a.yaml", "--from-literal", YAML_V1],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("forbidden") && stderr.contains("pass --request"),
        "{stderr}"
    );
    let out = config_as(
        &console,
        &developer,
        &["promote", "staging", "prod", "-y"],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("pass --request"), "{}", text(&out));

    // A request, approved by a second user.
    let out = ok(config_as(
        &console,
        &developer,
        &["promote", "staging", "prod", "--request", "-m", "release"],
        None,
    ));
    assert!(
        stdout(&out).ends_with("change request 1 filed for prod (1 change(s))\n"),
        "{}",
        text(&out)
    );
    let out = config_as(&console, &developer, &["approve", "1"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let requests = stdout(&ok(config(&console, &["requests", "--state", "pending"])));
    assert!(
        requests
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("1    prod   staging   1 "),
        "{requests}"
    );
    let out = ok(config(
        &console,
        &["approve", "1", "--reason", "looks good"],
    ));
    assert_eq!(
        stdout(&out),
        "change request 1 approved\nconfig/prod/DEFAULT_GROUP/a.yaml published (version 1)\n"
    );
    assert_eq!(get(&console, "prod", "a.yaml"), YAML_V2.as_bytes());

    // One key by request, rejected.
    let out = ok(config_as(
        &console,
        &developer,
        &[
            "set",
            "prod",
            "a.yaml",
            "--from-literal",
            YAML_V1,
            "--request",
        ],
        None,
    ));
    assert!(
        stdout(&out).starts_with("change request 2 filed"),
        "{}",
        text(&out)
    );
    let out = ok(config_as(
        &console,
        &developer,
        &["delete", "prod", "a.yaml", "--request"],
        None,
    ));
    assert!(
        stdout(&out).starts_with("change request 3 filed"),
        "{}",
        text(&out)
    );
    let out = ok(config(&console, &["reject", "2", "--reason", "not now"]));
    assert_eq!(stdout(&out), "change request 2 rejected\n");
    assert_eq!(get(&console, "prod", "a.yaml"), YAML_V2.as_bytes());
}
