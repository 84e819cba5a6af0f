//! llama.cpp's AMX kernels crash on the Xeons that have AMX (llama.cpp issue
//! #20824), so autoglm builds llama.cpp without them on every x86-64 CPU
//! (`.cargo/config.toml`'s `[env]`). These tests prove it on any machine,
//! AMX or not: the flags the build gets keep AMX out even where `-march`
//! turns it on, and a loaded model places no tensor in an AMX buffer and
//! generates with the Release llama.cpp that `cargo run --release` links.

#![allow(clippy::unwrap_used)]
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod common;

use parking_lot::Mutex;
use std::process::Command;
use std::sync::Arc;

use common::*;
use tracing_subscriber::layer::SubscriberExt;

/// The C and C++ flags llama.cpp's build gets on this target, as cargo
/// passes them; a build without them does not compile this test.
const CXXFLAGS: &str = env!(
    "CXXFLAGS_x86_64_unknown_linux_gnu",
    "set in .cargo/config.toml's [env]"
);
const CFLAGS: &str = env!(
    "CFLAGS_x86_64_unknown_linux_gnu",
    "set in .cargo/config.toml's [env]"
);

/// The AMX macros the compiler defines with `flags` for a Sapphire Rapids
/// CPU (the first with AMX), as llama.cpp's `-march=native` would there.
fn amx_macros(flags: &[&str]) -> Vec<String> {
    // The flags come first, as cmake puts CMAKE_CXX_FLAGS before ggml's
    // own -march: an explicit -mno-* must still win.
    let out = Command::new("c++")
        .args(flags)
        .args([
            "-march=sapphirerapids",
            "-dM",
            "-E",
            "-x",
            "c++",
            "/dev/null",
        ])
        .output()
        .expect("run c++");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("#define "))
        .filter(|l| l.starts_with("__AMX"))
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_build_flags_keep_amx_out_where_march_turns_it_on() {
    // The probe sees AMX when nothing turns it off...
    let plain = amx_macros(&[]);
    assert!(plain.iter().any(|m| m == "__AMX_INT8__"), "{plain:?}");
    // ...and none with the flags llama.cpp is built with. ggml compiles its
    // AMX backend only under __AMX_INT8__.
    let flags: Vec<&str> = CXXFLAGS.split_whitespace().collect();
    assert_eq!(amx_macros(&flags), Vec::<String>::new(), "with {flags:?}");
    assert_eq!(CFLAGS.split_whitespace().collect::<Vec<_>>(), flags);
}

/// Every message llama.cpp logs while the test runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Captured {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message<'a>(&'a mut String);
        impl tracing::field::Visit for Message<'_> {
            fn record_debug(&mut self, _: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{value:?} "));
            }
        }
        let mut line = String::new();
        event.record(&mut Message(&mut line));
        self.0.lock().push(line);
    }
}

#[test]
fn a_loaded_model_uses_no_amx_buffer_and_generates() {
    let captured = Captured::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(captured.clone()))
        .unwrap();
    let generator = load(1, 256);
    let outcome = generate(&generator, "What is the capital of France?", greedy(8));
    assert!(
        outcome.completion_tokens > 0,
        "nothing generated: {:?}",
        outcome.text
    );
    let lines = captured.0.lock();
    let buffers: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("model buffer size"))
        .collect();
    // llama.cpp names each buffer type it puts weights in ("CPU_Mapped",
    // "CPU_REPACK", "AMX"); the AMX one is where the crash happens.
    assert!(
        !buffers.is_empty(),
        "llama.cpp logged no buffer sizes: {lines:?}"
    );
    assert!(buffers.iter().all(|l| !l.contains("AMX")), "{buffers:?}");
}
