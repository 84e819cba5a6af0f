//! `cargo xtask`: the README's two commands. Each checks the system packages
//! it needs ([`system::PACKAGES`]), installs what is missing (as root) or
//! names the one `apt-get install` to run, then calls cargo. `test` is what
//! CI runs: formatting, clippy with warnings as errors, the tidy rules, then
//! every test.
//!
//! ```text
//! cargo xtask up [ARGS]      # cargo run --release -- up ARGS
//! cargo xtask test [ARGS]    # fmt --check, clippy -D warnings, tidy, cargo test --workspace ARGS
//! cargo xtask tidy           # the tidy rules alone
//! cargo xtask deps build|test|bench [--check]
//! ```

mod libclang;
mod system;
mod tidy;

use std::process::{Command, ExitCode};

use system::Need;

const USAGE: &str =
    "usage: cargo xtask up [ARGS] | test [ARGS] | tidy | deps build|test|bench [--check]";

/// The workspace: the xtask's manifest folder's parent.
/// The checkout the xtask was run from. `cargo run` names the xtask's
/// folder at run time; the path compiled in is only a fallback, since a
/// shared target folder may hold a binary built from another checkout.
fn workspace_root() -> std::path::PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || env!("CARGO_MANIFEST_DIR").into(),
        std::path::PathBuf::from,
    );
    manifest_dir
        .parent()
        .map_or_else(|| ".".into(), std::path::Path::to_path_buf)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = args
        .split_first()
        .map_or(("", &[][..]), |(c, r)| (c.as_str(), r));
    let outcome = match command {
        "up" => system::ensure(Need::Build)
            .and_then(|()| cargo(&["run", "--release", "--bin", "autoglm", "--", "up"], rest)),
        "test" => system::ensure(Need::Test)
            .and_then(|()| cargo(&["fmt", "--all", "--check"], &[]))
            .and_then(|()| {
                cargo(
                    &[
                        "clippy",
                        "--workspace",
                        "--all-targets",
                        "--",
                        "-D",
                        "warnings",
                    ],
                    &[],
                )
            })
            .and_then(|()| tidy::check(&workspace_root()))
            .and_then(|()| cargo(&["test", "--workspace"], rest)),
        "tidy" => tidy::check(&workspace_root()),
        "deps" => deps(rest),
        _ => Err(USAGE.to_owned()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn deps(args: &[String]) -> Result<(), String> {
    let need = match args.first().map(String::as_str) {
        Some("build") => Need::Build,
        Some("test") => Need::Test,
        Some("bench") => Need::Bench,
        _ => return Err(USAGE.to_owned()),
    };
    if args.get(1).is_some_and(|a| a == "--check") {
        let missing = system::missing(need);
        for package in &missing {
            println!("missing {}: {}", package.name, package.why);
        }
        let targets = system::missing_targets(need)?;
        for target in &targets {
            println!("missing Rust target {}: {}", target.name, target.why);
        }
        return if missing.is_empty() && targets.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} system packages and {} Rust targets missing",
                missing.len(),
                targets.len()
            ))
        };
    }
    system::ensure(need)
}

/// Runs cargo (the one that runs this xtask) with `fixed` then `extra`.
fn cargo(fixed: &[&str], extra: &[String]) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    // `cargo run` describes the xtask package to it in CARGO_PKG_* and
    // CARGO_MANIFEST_*; build scripts that watch those (ring's) would see
    // another package than under a plain `cargo test` and rebuild, and all
    // that depends on them with it.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&&*name)
        {
            command.env_remove(&*name);
        }
    }
    command.args(fixed).args(extra);
    system::succeed(command, &format!("cargo {}", fixed.join(" ")))
}
