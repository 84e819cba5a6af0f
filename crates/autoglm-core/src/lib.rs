//! Wire types, error codes and pure domain rules of autoglm.
//!
//! Nothing in this crate opens a socket or a file: the console, the store and
//! the CLI all agree on these types, and the rules can be tested in isolation.

pub mod alert;
pub mod artifact;
pub mod audit;
pub mod config;
pub mod display;
pub mod error;
pub mod evaluation;
pub mod filter;
pub mod names;
pub mod quota;
pub mod rbac;
pub mod registry;
pub mod replay;
pub mod rollout;
pub mod security;
pub mod service;
pub mod stage;
pub mod task;
pub mod traffic;
