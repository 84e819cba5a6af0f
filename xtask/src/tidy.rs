//! The rules a compiler does not check, run by `cargo xtask test` before the
//! tests: every Rust file opens with a `//!` header saying what it is for,
//! and the crate graph keeps the data plane off the control plane's HTTP
//! crate (ARCHITECTURE.md, "Crate graph").

use std::path::{Path, PathBuf};
use std::process::Command;

/// Dependency edges that must not exist: (crate, crate it must not use).
pub const FORBIDDEN_EDGES: &[(&str, &str)] = &[
    ("autoglm-gateway", "autoglm-console"),
    ("autoglm-gateway", "autoglm-platform"),
    ("autoglm-cluster", "autoglm-console"),
    ("autoglm-cluster", "autoglm-platform"),
    ("autoglm-reconciler", "autoglm-console"),
    // The task scheduler runs operations on whichever platform it is handed.
    ("autoglm-tasks", "autoglm-console"),
    ("autoglm-tasks", "autoglm-platform"),
    ("autoglm-tasks", "autoglm-cluster"),
    // The alert evaluator reads what the platform and gateway publish and
    // acts through the store's tasks, never through their crates.
    ("autoglm-alerts", "autoglm-console"),
    ("autoglm-alerts", "autoglm-platform"),
    ("autoglm-alerts", "autoglm-cluster"),
    ("autoglm-alerts", "autoglm-gateway"),
];

/// Runs every rule on the workspace at `root`; each broken rule is one line.
pub fn check(root: &Path) -> Result<(), String> {
    // A rule over no files passes: make sure this is the checkout.
    if !root.join("crates").is_dir() {
        return Err(format!("tidy: {} holds no crates/ folder", root.display()));
    }
    let mut broken = headers(root);
    broken.extend(crate_graph(root)?);
    if broken.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "tidy: {} problems\n  {}",
            broken.len(),
            broken.join("\n  ")
        ))
    }
}

/// The Rust files under `root`'s `crates/` and `xtask/` whose first line is
/// not a `//!` header.
pub fn headers(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for top in ["crates", "xtask"] {
        collect_rust_files(&root.join(top), &mut files);
    }
    files.sort();
    files
        .iter()
        .filter(|f| {
            std::fs::read_to_string(f)
                .map(|text| !text.starts_with("//!"))
                .unwrap_or(true)
        })
        .map(|f| {
            let shown = f.strip_prefix(root).unwrap_or(f);
            format!(
                "{}: the first line must be a //! header saying what the file is for",
                shown.display()
            )
        })
        .collect()
}

fn collect_rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            // Build output and fixtures (third-party shapes) are not ours to head.
            if name != "target" && name != "fixtures" {
                collect_rust_files(&path, into);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// The [`FORBIDDEN_EDGES`] present in the workspace's manifests, of any
/// dependency kind, as `cargo metadata` reads them.
fn crate_graph(root: &Path) -> Result<Vec<String>, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("cargo metadata printed no JSON: {e}"))?;
    Ok(forbidden_edges_in(&metadata))
}

/// The forbidden edges among `metadata`'s packages.
pub fn forbidden_edges_in(metadata: &serde_json::Value) -> Vec<String> {
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let mut found = Vec::new();
    for package in &packages {
        let name = package["name"].as_str().unwrap_or_default();
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            let used = dependency["name"].as_str().unwrap_or_default();
            if FORBIDDEN_EDGES.contains(&(name, used)) {
                let kind = dependency["kind"].as_str().unwrap_or("normal");
                found.push(format!(
                    "{name} depends on {used} ({kind}): the data plane and the cluster driver must not use the console or the local platform"
                ));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_header_is_named() {
        let root = tempfile::tempdir().expect("temp dir");
        let src = root.path().join("crates/demo/src");
        std::fs::create_dir_all(&src).expect("mkdir");
        std::fs::write(src.join("lib.rs"), "//! Demo.\n").expect("write");
        std::fs::write(src.join("bare.rs"), "fn f() {}\n").expect("write");
        std::fs::write(src.join("inner.rs"), "// a comment, not a header\n").expect("write");
        let broken = headers(root.path());
        assert_eq!(broken.len(), 2, "{broken:?}");
        assert!(broken[0].starts_with("crates/demo/src/bare.rs: "));
        assert!(broken[1].starts_with("crates/demo/src/inner.rs: "));
    }

    #[test]
    fn a_forbidden_edge_is_named_with_its_kind() {
        let metadata = serde_json::json!({"packages": [
            {"name": "autoglm-gateway", "dependencies": [
                {"name": "autoglm-core", "kind": null},
                {"name": "autoglm-console", "kind": "dev"}]},
            {"name": "autoglm-console", "dependencies": [{"name": "autoglm-platform", "kind": null}]},
        ]});
        let found = forbidden_edges_in(&metadata);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("autoglm-gateway depends on autoglm-console (dev)"));
    }

    #[test]
    fn this_workspace_heads_every_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        assert_eq!(headers(&root), Vec::<String>::new());
    }
}
