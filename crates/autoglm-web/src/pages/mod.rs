//! The pages of the console, one module each.

pub mod audit;
pub mod keys;
pub mod models;
pub mod overview;

use axum::response::Redirect;

/// `GET /`: the overview (which sends a browser without a session to log in).
pub async fn home() -> Redirect {
    Redirect::to("/ui")
}
