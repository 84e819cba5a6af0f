//! The request body as the proxy reads it: on demand, bounded in size and
//! in time. The client connection implements it, so the proxy sees nothing
//! else of the socket (and the server module depends on the proxy, never
//! the reverse).

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::deadline::Elapsed;

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// It is larger than the limit.
    TooLarge,
    /// It did not arrive in time.
    Timeout,
    /// Its framing is broken, or the client left; in words.
    Unreadable(String),
}

/// The body of the request being answered.
pub trait Incoming {
    /// The whole body, refused past `limit` bytes or `timeout`.
    fn read(
        &mut self,
        limit: usize,
        timeout: Duration,
    ) -> impl Future<Output = Result<Bytes, BodyError>>;

    /// Runs `future` to its end on the connection's timer, unless
    /// `deadline` passes first.
    fn within<F: Future>(
        &mut self,
        deadline: Instant,
        future: F,
    ) -> impl Future<Output = Result<F::Output, Elapsed>>;
}
