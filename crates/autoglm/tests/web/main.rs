//! The web console in real headless Chromium (Debian's `chromium`, driven
//! through `chromedriver` over WebDriver with fantoccini) against a real
//! `autoglm console` and a real `autoglm up`: log in with a password or an
//! API key, read and search the registry, create a model and upload its
//! versions, change a stage, deploy a service from the form, watch it become
//! ready, move its traffic split and see the gateway honour it, make and
//! revoke a key, read usage, logs and the audit, make alert rules and
//! silences, acknowledge and resolve an incident, publish, edit, diff, roll back,
//! snapshot and promote config keys and decide change requests of a protected
//! environment; add a policy from the library, have a syntax error named,
//! test it against a manifest and switch it to warn; upload gateway filters,
//! attach, reorder, count, detach and delete them; a viewer can change nothing;
//! a stale form is refused; a session revoked or expired mid-use leads to
//! the login form and changes nothing. Screenshots of each page go to docs/screenshots/.
#![allow(clippy::unwrap_used)]

#[path = "../common/browser.rs"]
mod browser;
#[path = "../common/mod.rs"]
mod common;

mod alerts;
mod config;
mod evaluate;
mod filters;
mod operate;
mod policies;
mod quota;
mod registry;
mod rollout;
mod session;
