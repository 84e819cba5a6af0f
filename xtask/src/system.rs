//! The one list of system packages (and Rust targets) autoglm needs, each with the check that
//! tells whether this machine already has it, and the install. Every entry
//! point reads it: `cargo xtask up`, `cargo xtask test` (so `.ci/run`), the
//! Dockerfile's `cargo xtask deps build` and `cargo xtask deps bench`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use crate::libclang;

/// What a package is needed for: building needs less than testing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// `cargo build` (llama.cpp is compiled from source).
    Build,
    /// `cargo test --workspace`, on top of the build.
    Test,
    /// The benchmarks in `bench/`, on top of the tests' packages.
    Bench,
}

/// One Debian package and how its presence is told.
#[derive(Debug)]
pub struct Package {
    /// The name `apt-get install` takes.
    pub name: &'static str,
    /// Why autoglm needs it, for the message that names what is missing.
    pub why: &'static str,
    pub need: Need,
    present: fn() -> bool,
}

/// Every package, checked by what really uses it.
pub const PACKAGES: &[Package] = &[
    Package {
        name: "cmake",
        why: "llama-cpp-sys-2 configures llama.cpp with it",
        need: Need::Build,
        present: || on_path("cmake"),
    },
    Package {
        name: "make",
        why: "cmake's default generator",
        need: Need::Build,
        present: || on_path("make"),
    },
    Package {
        name: "g++",
        why: "compiles llama.cpp",
        need: Need::Build,
        present: || on_path("c++") || on_path("g++"),
    },
    Package {
        name: "libclang-dev",
        why: "bindgen reads llama.cpp's headers with libclang",
        need: Need::Build,
        present: || libclang::Environment::current().find().is_some(),
    },
    Package {
        name: "python3-venv",
        why: "the gateway tests drive autoglm with the official openai package in a venv",
        need: Need::Test,
        present: || succeeds("python3", &["-c", "import ensurepip, venv"]),
    },
    Package {
        name: "openssl",
        why: "scripts/k8s.sh makes the test control plane's certificates",
        need: Need::Test,
        present: || on_path("openssl"),
    },
    Package {
        name: "curl",
        why: "scripts/k8s.sh polls etcd",
        need: Need::Test,
        present: || on_path("curl"),
    },
    Package {
        name: "chromium",
        why: "the web console's end-to-end tests",
        need: Need::Test,
        present: || Path::new("/usr/bin/chromium").is_file(),
    },
    Package {
        name: "chromium-driver",
        why: "drives chromium in the web console's tests",
        need: Need::Test,
        present: || Path::new("/usr/bin/chromedriver").is_file(),
    },
    Package {
        name: "prometheus",
        why: "its promtool checks every server's /metrics page in the tests",
        need: Need::Test,
        present: || on_path("promtool"),
    },
    Package {
        name: "prometheus-alertmanager",
        why: "a real Alertmanager feeds autoglm's alert receiver in the tests",
        need: Need::Test,
        present: || on_path("prometheus-alertmanager"),
    },
    Package {
        name: "strace",
        why: "the durability test watches the console's WAL syncs with it",
        need: Need::Test,
        present: || on_path("strace"),
    },
    Package {
        name: "wrk",
        why: "the benchmarks' load generator",
        need: Need::Bench,
        present: || on_path("wrk"),
    },
    Package {
        name: "nginx",
        why: "the benchmarks' anchor and fast upstream",
        need: Need::Bench,
        present: || on_path("nginx") || Path::new("/usr/sbin/nginx").is_file(),
    },
    Package {
        name: "bc",
        why: "bench/runtime.sh's arithmetic",
        need: Need::Bench,
        present: || on_path("bc"),
    },
    Package {
        name: "jq",
        why: "the benchmarks read JSON answers",
        need: Need::Bench,
        present: || on_path("jq"),
    },
];

/// A Rust compilation target, added with rustup.
#[derive(Debug)]
pub struct Target {
    /// The name `rustup target add` takes.
    pub name: &'static str,
    /// Why autoglm needs it.
    pub why: &'static str,
    pub need: Need,
}

/// Every Rust target beyond the host's.
pub const TARGETS: &[Target] = &[Target {
    name: "wasm32-wasip1",
    why: "the tests build the example gateway filters (examples/filters) from source",
    need: Need::Test,
}];

/// The targets that `need` requires and the toolchain lacks.
pub fn missing_targets(need: Need) -> Result<Vec<&'static Target>, String> {
    let wanted: Vec<&Target> = TARGETS.iter().filter(|t| t.need <= need).collect();
    if wanted.is_empty() {
        return Ok(wanted);
    }
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| {
            format!("cannot run rustup, which adds the Rust targets autoglm needs: {e}")
        })?;
    let installed = String::from_utf8_lossy(&listed.stdout);
    Ok(wanted
        .into_iter()
        .filter(|t| !installed.lines().any(|l| l.trim() == t.name))
        .collect())
}

/// Adds the Rust targets `need` requires and the toolchain lacks.
pub fn ensure_targets(need: Need) -> Result<(), String> {
    for target in missing_targets(need)? {
        eprintln!(
            "xtask: adding the Rust target {}: {}",
            target.name, target.why
        );
        run("rustup", &["target", "add", target.name])?;
    }
    Ok(())
}

/// The packages that `need` requires and this machine lacks.
pub fn missing(need: Need) -> Vec<&'static Package> {
    PACKAGES
        .iter()
        .filter(|p| p.need <= need && !(p.present)())
        .collect()
}

/// Installs what `need` requires and is missing: packages with apt-get when
/// root (else stops with the one command to run), then Rust targets.
pub fn ensure(need: Need) -> Result<(), String> {
    ensure_packages(need).and_then(|()| ensure_targets(need))
}

fn ensure_packages(need: Need) -> Result<(), String> {
    let missing = missing(need);
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|p| p.name).collect();
    for package in &missing {
        eprintln!("xtask: missing {}: {}", package.name, package.why);
    }
    let install = format!(
        "apt-get install -y --no-install-recommends {}",
        names.join(" ")
    );
    if !is_root() {
        return Err(format!(
            "autoglm needs system packages; run: sudo apt-get update && sudo {install}"
        ));
    }
    eprintln!("xtask: installing {}", names.join(" "));
    run("apt-get", &["update"])?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(&names);
    run("apt-get", &args)?;
    let still: Vec<&str> = self::missing(need).iter().map(|p| p.name).collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "installed, but still not found: {} (the check looks where the build looks)",
            still.join(" ")
        ))
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let mut command = Command::new(program);
    command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    succeed(command, &format!("{program} {}", args.join(" ")))
}

/// Runs `command` to its end; an error names it as `what`.
pub fn succeed(mut command: Command, what: &str) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// `/proc/self` belongs to the process's effective user.
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
        })
    })
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_needs_are_part_of_test_needs() {
        let build: Vec<_> = PACKAGES.iter().filter(|p| p.need <= Need::Build).collect();
        let test: Vec<_> = PACKAGES.iter().filter(|p| p.need <= Need::Test).collect();
        assert!(build.iter().any(|p| p.name == "libclang-dev"));
        assert!(build.len() < test.len());
        assert!(build.iter().all(|b| test.iter().any(|t| t.name == b.name)));
    }

    #[test]
    fn a_program_is_found_only_when_executable_on_path() {
        assert!(on_path("sh"));
        assert!(!on_path("autoglm-no-such-program"));
    }
}
