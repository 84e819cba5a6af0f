//! A filter module: checked to be a proxy-wasm HTTP filter, compiled once
//! by Cranelift and linked against the host, ready to instantiate on any
//! thread. The one engine all filters share ticks an epoch clock for the
//! per-call deadline.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sha2::Digest;
use wasmtime::{Engine, ExternType, InstancePre, Module};

use crate::host::{self, Host};

/// How often the epoch clock ticks: the deadline's resolution.
pub const TICK: Duration = Duration::from_millis(5);
/// The largest module taken.
pub const MAX_MODULE_BYTES: usize = 16 * 1024 * 1024;

/// Why a module is not a filter this host can run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModuleError {
    #[error("the module is {0} bytes, over the limit of {MAX_MODULE_BYTES}")]
    TooLarge(usize),
    #[error("the module is not valid WebAssembly: {0}")]
    Invalid(String),
    #[error("the module is not a proxy-wasm filter: {0}")]
    NotAFilter(String),
}

/// A compiled filter module.
pub struct Compiled {
    /// The SHA-256 of the module's bytes, hex.
    pub digest: String,
    pub size: usize,
    /// The proxy-wasm ABI it was built for, e.g. `0.2.1`.
    pub abi: String,
    pub(crate) pre: InstancePre<Host>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("digest", &self.digest)
            .field("abi", &self.abi)
            .finish()
    }
}

/// The callbacks the host makes, with their numbers of 32-bit parameters
/// and results: a module exporting one of another shape is refused, rather
/// than passed over as if it had none.
const CALLBACKS: &[(&str, usize, usize)] = &[
    ("proxy_on_context_create", 2, 0),
    ("proxy_on_vm_start", 2, 1),
    ("proxy_on_configure", 2, 1),
    ("proxy_on_request_headers", 3, 1),
    ("proxy_on_request_body", 3, 1),
    ("proxy_on_response_headers", 3, 1),
    ("proxy_on_response_body", 3, 1),
    ("proxy_on_done", 1, 1),
    ("proxy_on_log", 1, 0),
    ("proxy_on_delete", 1, 0),
    ("proxy_on_memory_allocate", 1, 1),
    ("malloc", 1, 1),
];

/// The exports a filter must have, beyond its ABI marker.
const REQUIRED: &[&str] = &["memory", "proxy_on_context_create", "proxy_on_configure"];

impl Compiled {
    /// Checks and compiles `bytes`. Compiling takes milliseconds to a second:
    /// call it off the async threads.
    pub fn new(bytes: &[u8]) -> Result<Arc<Compiled>, ModuleError> {
        if bytes.len() > MAX_MODULE_BYTES {
            return Err(ModuleError::TooLarge(bytes.len()));
        }
        if !bytes.starts_with(b"\0asm") {
            return Err(ModuleError::Invalid(
                "it does not start with the WebAssembly magic number".into(),
            ));
        }
        let engine = engine();
        let module =
            Module::new(engine, bytes).map_err(|e| ModuleError::Invalid(format!("{e:#}")))?;
        let exports: Vec<&str> = module.exports().map(|e| e.name()).collect();
        let abi = ["0_2_1", "0_2_0"]
            .into_iter()
            .find(|v| exports.contains(&format!("proxy_abi_version_{v}").as_str()))
            .ok_or_else(|| {
                ModuleError::NotAFilter(
                    "it exports no proxy_abi_version_0_2_1 (or 0_2_0) function".into(),
                )
            })?
            .replace('_', ".");
        for name in REQUIRED {
            if !exports.contains(name) {
                return Err(ModuleError::NotAFilter(format!("it exports no {name}")));
            }
        }
        for export in module.exports() {
            let Some((params, results)) = CALLBACKS
                .iter()
                .find(|(n, _, _)| *n == export.name())
                .map(|(_, p, r)| (*p, *r))
            else {
                continue;
            };
            let fits = match export.ty() {
                ExternType::Func(ty) => {
                    ty.params().len() == params
                        && ty.results().len() == results
                        && ty
                            .params()
                            .chain(ty.results())
                            .all(|t| matches!(t, wasmtime::ValType::I32))
                }
                _ => false,
            };
            if !fits {
                return Err(ModuleError::NotAFilter(format!(
                    "its {} does not take {params} and return {results} 32-bit integers, as the ABI's does",
                    export.name()
                )));
            }
        }
        if !exports.contains(&"proxy_on_memory_allocate") && !exports.contains(&"malloc") {
            return Err(ModuleError::NotAFilter(
                "it exports no allocator (proxy_on_memory_allocate or malloc)".into(),
            ));
        }
        for import in module.imports() {
            let known = match import.module() {
                "env" => import.name().starts_with("proxy_"),
                "wasi_snapshot_preview1" => true,
                _ => false,
            };
            if !known || !matches!(import.ty(), ExternType::Func(_)) {
                return Err(ModuleError::NotAFilter(format!(
                    "it imports {}.{}, which a proxy-wasm host does not provide",
                    import.module(),
                    import.name()
                )));
            }
        }
        let mut linker = base_linker().clone();
        linker
            .define_unknown_imports_as_traps(&module)
            .and_then(|()| linker.instantiate_pre(&module))
            .map(|pre| {
                Arc::new(Compiled {
                    digest: hex::encode(sha2::Sha256::digest(bytes)),
                    size: bytes.len(),
                    abi,
                    pre,
                })
            })
            .map_err(|e| ModuleError::NotAFilter(format!("it cannot be linked: {e:#}")))
    }
}

/// The engine every filter runs on; its epoch ticks every [`TICK`] on a
/// thread of its own, started with it.
pub(crate) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        // A filter's own recursion stops well before the gateway's stack does.
        config.max_wasm_stack(256 * 1024);
        // One linear memory per instance, so that the memory cap is the instance's.
        config.wasm_multi_memory(false);
        // A fixed configuration: it fails in every test or in none.
        let engine = Engine::new(&config).expect("the filter engine's configuration is valid");
        let ticking = engine.clone();
        std::thread::Builder::new()
            .name("autoglm-filter-clock".into())
            .spawn(move || {
                loop {
                    ticking.increment_epoch();
                    std::thread::sleep(TICK);
                }
            })
            .map_err(|e| tracing::error!(error = %e, "the filters' clock could not start: no deadline holds"))
            .ok();
        engine
    })
}

fn base_linker() -> &'static wasmtime::Linker<Host> {
    static LINKER: OnceLock<wasmtime::Linker<Host>> = OnceLock::new();
    LINKER.get_or_init(|| {
        // Fixed definitions: they fail in every test or in none.
        host::linker(engine()).expect("the host calls are defined once each")
    })
}
