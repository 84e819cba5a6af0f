//! Gateway extensions as WebAssembly: a host for proxy-wasm HTTP filters
//! (ABI 0.2.1, as Envoy and Istio run them), so that filters written with
//! the public `proxy-wasm` SDK run here unchanged.
//!
//! A module is checked and compiled once ([`Compiled`]); attached with its
//! configuration ([`Attachment`]); and run over each request's headers and
//! bodies in chain order ([`Run`]). Every instance is sandboxed: a deadline
//! per callback (an epoch clock), a cap on its memory, and nothing of the
//! machine granted (no file, socket or process; WASI's clock and randomness
//! only). A filter that traps, overruns or outgrows its cap fails open or
//! closed as its attachment says, and is counted; the gateway goes on.

mod abi;
mod chain;
mod exchange;
mod host;
mod module;
mod vm;

pub use chain::{Attachment, Count, Flow, Refusal, Run, Stats};
pub use exchange::{Exchange, Headers, LocalResponse, Properties};
pub use module::{Compiled, MAX_MODULE_BYTES, ModuleError};
pub use vm::{Failure, FailureKind, Limits};
