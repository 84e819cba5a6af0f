//! The proxy-wasm filters tests run: the example filters of
//! `examples/filters` (and its deliberately faulty one), built from source
//! with the public `proxy-wasm` SDK for `wasm32-wasip1`, never a `.wasm`
//! from elsewhere. The first call in a process runs cargo on that workspace
//! (a no-op once built; cargo's own lock keeps test processes that start
//! together from building it twice) into a target folder beside the cargo
//! cache's. A filter that cannot be built fails the test with cargo's error.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Adds headers to the request and the response.
pub const HEADER_INJECTOR: &str = "header_injector";
/// Redacts e-mail addresses, phone, card and social security numbers in request bodies.
pub const PII_REDACTOR: &str = "pii_redactor";
/// Refuses requests without an allowed team header.
pub const AUTH_CHECK: &str = "auth_check";
/// Puts a tenant's system prompt in front of chat requests.
pub const PROMPT_TEMPLATE: &str = "prompt_template";
/// Spins, hogs memory, traps, or does nothing, as configured.
pub const MISBEHAVE: &str = "misbehave";

/// The filters' workspace in this checkout.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/filters")
}

/// The bytes of filter `name`, built first when needed.
///
/// # Panics
/// When the filters cannot be built: a test must not run without them.
pub fn module(name: &str) -> Vec<u8> {
    let path = built().join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{} is not there after the build: {e}", path.display()))
}

/// The folder the built filters are in.
fn built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = target_dir();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .args(["build", "--release", "--locked", "--target", "wasm32-wasip1", "--manifest-path"])
            .arg(workspace().join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            // Cargo reads its configuration from the folder it runs in: the
            // filters' own (their target's CPU) over the repository's.
            .current_dir(workspace())
            .output()
            .unwrap_or_else(|e| panic!("cannot run cargo to build the example filters: {e}"));
        assert!(
            output.status.success(),
            "the example filters did not build (is the wasm32-wasip1 target added? `cargo xtask test` adds it):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        target.join("wasm32-wasip1/release")
    })
}

/// Beside the workspace's cargo target folder when one is set (CI keeps it
/// outside the clone), else in the autoglm cache.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("filters");
    }
    let home = std::env::var_os("AUTOGLM_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/autoglm")))
        .unwrap_or_else(|| std::env::temp_dir().join("autoglm-cache"));
    home.join("filters-target")
}
