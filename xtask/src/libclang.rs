//! Finds libclang the way bindgen finds it (clang-sys's search when it loads
//! libclang at run time), so that this check and the build agree. The two
//! differ in one way only: this answers "found or not" instead of loading it.
//!
//! The trap it exists for: LLVM's `libclang-cpp.so.14` (the C++ library
//! every LLVM install ships) matches `libclang-*.so.*` but is not libclang;
//! clang-sys skips every `-cpp.` name, and so does this.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The file names clang-sys tries on Linux, most preferred first.
const NAMES: [&str; 4] = [
    "libclang.so",
    "libclang-*.so",
    "libclang.so.*",
    "libclang-*.so.*",
];

/// The folders clang-sys searches on Linux after the environment's.
const SYSTEM_FOLDERS: [&str; 7] = [
    "/usr/local/llvm*/lib*",
    "/usr/local/lib*/*/*",
    "/usr/local/lib*/*",
    "/usr/local/lib*",
    "/usr/lib*/*/*",
    "/usr/lib*/*",
    "/usr/lib*",
];

/// What the search reads from its surroundings, so that tests can give it a
/// folder of their own instead of the machine's.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `LIBCLANG_PATH`: when set, the only place searched (a folder or a file).
    pub libclang_path: Option<PathBuf>,
    /// `llvm-config --prefix`, when llvm-config runs.
    pub llvm_prefix: Option<PathBuf>,
    /// `LD_LIBRARY_PATH` then `LIBRARY_PATH`, split.
    pub library_paths: Vec<PathBuf>,
    /// Folder patterns searched last: [`SYSTEM_FOLDERS`] on a real machine.
    pub system_folders: Vec<String>,
}

impl Environment {
    /// This process's environment and this machine's folders.
    pub fn current() -> Self {
        let split = |name: &str| {
            std::env::var_os(name)
                .map(|v| std::env::split_paths(&v).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let llvm_config =
            std::env::var_os("LLVM_CONFIG_PATH").unwrap_or_else(|| "llvm-config".into());
        let llvm_prefix = Command::new(llvm_config)
            .arg("--prefix")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(PathBuf::from));
        Self {
            libclang_path: std::env::var_os("LIBCLANG_PATH").map(PathBuf::from),
            llvm_prefix,
            library_paths: [split("LD_LIBRARY_PATH"), split("LIBRARY_PATH")].concat(),
            system_folders: SYSTEM_FOLDERS.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// The first valid libclang, in clang-sys's order of preference.
    pub fn find(&self) -> Option<PathBuf> {
        if let Some(path) = &self.libclang_path {
            // A file named directly counts when it is one of the names.
            if let (Some(parent), Some(name)) = (path.parent(), path.file_name())
                && let Some(found) = libraries_in(parent).find(|p| p.file_name() == Some(name))
            {
                return Some(found);
            }
            return libraries_in(path).next();
        }
        let mut folders: Vec<PathBuf> = Vec::new();
        if let Some(prefix) = &self.llvm_prefix {
            folders.extend(["bin", "lib", "lib64"].map(|d| prefix.join(d)));
        }
        folders.extend(self.library_paths.iter().cloned());
        for pattern in &self.system_folders {
            folders.extend(glob::glob(pattern).into_iter().flatten().flatten());
        }
        folders.iter().find_map(|f| libraries_in(f).next())
    }
}

/// The valid libclang libraries in one folder.
fn libraries_in(folder: &Path) -> impl Iterator<Item = PathBuf> {
    let escaped = glob::Pattern::escape(&folder.to_string_lossy());
    let options = glob::MatchOptions {
        require_literal_separator: true,
        ..glob::MatchOptions::new()
    };
    NAMES
        .into_iter()
        .filter_map(move |name| glob::glob_with(&format!("{escaped}/{name}"), options).ok())
        .flatten()
        .flatten()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.contains("-cpp."))
        })
        .filter(|p| is_elf64(p))
}

/// clang-sys refuses a library that is not a 64-bit ELF file (on a 64-bit
/// target): a stray text file or a 32-bit build.
fn is_elf64(path: &Path) -> bool {
    let mut header = [0u8; 5];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok_and(|()| header[..4] == *b"\x7fELF" && header[4] == 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ELF64: &[u8] = b"\x7fELF\x02\x01\x01\0rest of a shared library";

    fn folder_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).expect("write");
        }
        dir
    }

    fn searching(folder: &Path) -> Environment {
        Environment {
            system_folders: vec![folder.display().to_string()],
            ..Environment::default()
        }
    }

    #[test]
    fn libclang_cpp_alone_is_not_libclang() {
        // The image that fooled the old check: llvm-14 with only libclang-cpp.
        let dir = folder_with(&[("libclang-cpp.so.14", ELF64), ("libLLVM-14.so.1", ELF64)]);
        assert_eq!(searching(dir.path()).find(), None);
        let named = Environment {
            libclang_path: Some(dir.path().join("libclang-cpp.so.14")),
            ..Environment::default()
        };
        assert_eq!(named.find(), None);
    }

    #[test]
    fn every_name_bindgen_loads_is_found() {
        for name in [
            "libclang.so",
            "libclang-14.so",
            "libclang.so.1",
            "libclang-14.so.1",
        ] {
            let dir = folder_with(&[("libclang-cpp.so.14", ELF64), (name, ELF64)]);
            assert_eq!(
                searching(dir.path()).find(),
                Some(dir.path().join(name)),
                "{name}"
            );
        }
    }

    #[test]
    fn a_file_that_is_not_a_64_bit_library_does_not_count() {
        let dir = folder_with(&[
            ("libclang.so", b"INPUT(libclang-14.so.1)"),
            ("libclang-14.so.1", b"\x7fELF\x01\x01\x01\0a 32-bit build"),
        ]);
        assert_eq!(searching(dir.path()).find(), None);
    }

    #[test]
    fn libclang_path_is_the_only_place_searched_when_set() {
        let elsewhere = folder_with(&[("libclang.so", ELF64)]);
        let empty = folder_with(&[]);
        let env = Environment {
            libclang_path: Some(empty.path().to_owned()),
            ..searching(elsewhere.path())
        };
        assert_eq!(env.find(), None);
        let env = Environment {
            libclang_path: Some(elsewhere.path().join("libclang.so")),
            ..Environment::default()
        };
        assert_eq!(env.find(), Some(elsewhere.path().join("libclang.so")));
    }

    #[test]
    fn llvm_config_prefix_and_library_paths_are_searched() {
        let prefix = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(prefix.path().join("lib")).expect("mkdir");
        std::fs::write(prefix.path().join("lib/libclang-17.so"), ELF64).expect("write");
        let env = Environment {
            llvm_prefix: Some(prefix.path().to_owned()),
            ..Environment::default()
        };
        assert_eq!(env.find(), Some(prefix.path().join("lib/libclang-17.so")));
        let lib = folder_with(&[("libclang.so.18", ELF64)]);
        let env = Environment {
            library_paths: vec![lib.path().to_owned()],
            ..Environment::default()
        };
        assert_eq!(env.find(), Some(lib.path().join("libclang.so.18")));
    }

    #[test]
    fn folder_names_with_glob_characters_are_taken_literally() {
        let parent = tempfile::tempdir().expect("temp dir");
        let odd = parent.path().join("llvm[17]");
        std::fs::create_dir(&odd).expect("mkdir");
        std::fs::write(odd.join("libclang.so"), ELF64).expect("write");
        let env = Environment {
            library_paths: vec![odd.clone()],
            ..Environment::default()
        };
        assert_eq!(env.find(), Some(odd.join("libclang.so")));
    }
}
