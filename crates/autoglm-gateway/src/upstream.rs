//! Exchanges with replicas over pooled HTTP/1.1 connections: the request is
//! written in one go, the response head read, and the body handed on as it
//! arrives; a connection goes back to the pool once its body is read whole.
//!
//! A request is sent again only when no byte of it was written: a pooled
//! connection that the replica has closed while it sat idle is found so
//! before the write and replaced. Once a byte may have reached the replica,
//! whatever happens next is the answer (as nginx treats a non-idempotent
//! request): the replica may have acted on it.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use foldhash::HashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wire::{Chunked, Decoded, Framing, ResponseHead, WireError};

/// How long to wait for a replica to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an unused connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most unused connections kept per replica.
const MAX_IDLE_PER_REPLICA: usize = 1024;
/// Read buffer size.
const READ_CHUNK: usize = 16 * 1024;

/// Why an exchange failed. The messages carry their cause's text too:
/// they reach clients in a 502's message, which is all they print.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The connection was refused or timed out: nothing was sent.
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    /// The connection broke before a byte of the request was written.
    #[error("the connection broke before the request was sent: {0}")]
    Unsent(#[source] std::io::Error),
    /// The connection failed once the request (or part of it) was written.
    #[error("the connection failed: {0}")]
    Io(#[source] std::io::Error),
    /// The replica closed (or reset) the connection after the request
    /// was written, before sending a single byte of an answer.
    #[error("the connection closed before an answer")]
    Closed,
    /// What came back is not an HTTP/1 answer.
    #[error("the answer is not HTTP/1: {0}")]
    Malformed(#[source] WireError),
}

impl UpstreamError {
    /// Whether the request surely never reached the replica: not a byte
    /// of it was written, so it may be sent elsewhere.
    pub fn unsent(&self) -> bool {
        matches!(self, UpstreamError::Connect(_) | UpstreamError::Unsent(_))
    }
}

/// One connection to a replica, with what was read ahead.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    idle_since: Instant,
}

impl Conn {
    /// Reads more into the buffer; 0 at the end of the stream.
    async fn fill(&mut self) -> std::io::Result<usize> {
        self.buf.reserve(READ_CHUNK);
        self.stream.read_buf(&mut self.buf).await
    }

    /// Whether an idle connection can take a request: the replica has
    /// neither closed it (its FIN or reset already here) nor sent anything
    /// unasked. A peek of the socket itself, not of the event loop's
    /// readiness, which may not have seen the close yet.
    fn usable(&self) -> bool {
        let mut byte = [MaybeUninit::uninit()];
        matches!(
            socket2::SockRef::from(&self.stream).peek(&mut byte),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        )
    }
}

/// Unused connections per replica, most recently used last.
#[derive(Debug, Default)]
pub struct Pool {
    idle: Mutex<HashMap<SocketAddr, VecDeque<Conn>>>,
}

impl Pool {
    /// A pool whose stale connections are closed in the background while
    /// the pool lives.
    pub fn new() -> Arc<Pool> {
        let pool = Arc::new(Pool::default());
        tokio::spawn(Pool::sweep_forever(Arc::downgrade(&pool)));
        pool
    }

    async fn sweep_forever(pool: Weak<Pool>) {
        loop {
            tokio::time::sleep(IDLE_TIMEOUT).await;
            let Some(pool) = pool.upgrade() else { return };
            let mut idle = pool.idle.lock();
            idle.retain(|_, conns| {
                conns.retain(|c| c.idle_since.elapsed() < IDLE_TIMEOUT);
                !conns.is_empty()
            });
        }
    }

    fn take(&self, addr: SocketAddr, now: Instant) -> Option<Conn> {
        let mut idle = self.idle.lock();
        let conns = idle.get_mut(&addr)?;
        while let Some(conn) = conns.pop_back() {
            if now.saturating_duration_since(conn.idle_since) < IDLE_TIMEOUT {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, addr: SocketAddr, mut conn: Conn) {
        conn.idle_since = Instant::now();
        let mut idle = self.idle.lock();
        let conns = idle.entry(addr).or_default();
        if conns.len() < MAX_IDLE_PER_REPLICA {
            conns.push_back(conn);
        }
    }

    /// Forgets the unused connections to `addr`.
    fn forget(&self, addr: SocketAddr) {
        self.idle.lock().remove(&addr);
    }

    /// Sends `request` (a whole HTTP/1.1 request) to the replica at `addr`
    /// and reads the answer's head. A pooled connection the replica has
    /// closed is replaced by a new one before anything is written, and the
    /// replica's other unused connections are forgotten: they are likely
    /// closed too. A pooled connection that breaks before a byte of the
    /// request is written (closed just as it was taken) is replaced the
    /// same way. `now` is the time of sending, as the caller read it.
    pub async fn exchange(
        self: &Arc<Pool>,
        addr: SocketAddr,
        request: &[u8],
        to_head: bool,
        now: Instant,
    ) -> Result<(ResponseHead, UpstreamBody), UpstreamError> {
        let mut pooled = self.take(addr, now);
        if pooled.as_ref().is_some_and(|conn| !conn.usable()) {
            self.forget(addr);
            pooled = None;
        }
        loop {
            let reused = pooled.is_some();
            let mut conn = match pooled.take() {
                Some(conn) => conn,
                None => connect(addr).await?,
            };
            match send(&mut conn, request, to_head).await {
                Ok(head) => {
                    let mut body = UpstreamBody {
                        conn: Some(conn),
                        framing: head.framing,
                        remaining: match head.framing {
                            Framing::Length(n) => n,
                            _ => 0,
                        },
                        chunked: Chunked::default(),
                        keep: head.keep_alive,
                        pool: (self.clone(), addr),
                        ended: head.framing == Framing::Empty,
                    };
                    body.release_if_ended();
                    return Ok((head, body));
                }
                Err(UpstreamError::Unsent(_)) if reused => self.forget(addr),
                Err(e) => return Err(e),
            }
        }
    }
}

fn resets(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
    )
}

async fn connect(addr: SocketAddr) -> Result<Conn, UpstreamError> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(UpstreamError::Connect(e)),
        Err(_) => {
            return Err(UpstreamError::Connect(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            )));
        }
    };
    stream.set_nodelay(true).map_err(UpstreamError::Connect)?;
    Ok(Conn {
        stream,
        buf: BytesMut::with_capacity(READ_CHUNK),
        idle_since: Instant::now(),
    })
}

/// Writes `request` on `conn` and reads the answer's head. Which error
/// says whether any of the request was written: [`UpstreamError::Unsent`]
/// when none was.
async fn send(
    conn: &mut Conn,
    request: &[u8],
    to_head: bool,
) -> Result<ResponseHead, UpstreamError> {
    let mut written = 0;
    while written < request.len() {
        match conn.stream.write(&request[written..]).await {
            Ok(0) => {
                let e = std::io::Error::from(std::io::ErrorKind::WriteZero);
                return Err(if written == 0 {
                    UpstreamError::Unsent(e)
                } else {
                    UpstreamError::Io(e)
                });
            }
            Ok(n) => written += n,
            Err(e) if written == 0 => return Err(UpstreamError::Unsent(e)),
            Err(e) => return Err(UpstreamError::Io(e)),
        }
    }
    let mut received = false;
    loop {
        if let Some(head) =
            ResponseHead::parse(&mut conn.buf, to_head).map_err(UpstreamError::Malformed)?
        {
            return Ok(head);
        }
        match conn.fill().await {
            Ok(0) if !received => return Err(UpstreamError::Closed),
            Ok(0) => {
                return Err(UpstreamError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the replica closed the connection mid-answer",
                )));
            }
            Ok(_) => received = true,
            Err(e) if !received && resets(&e) => return Err(UpstreamError::Closed),
            Err(e) => return Err(UpstreamError::Io(e)),
        }
    }
}

/// A replica's answer body, read as it arrives.
#[derive(Debug)]
pub struct UpstreamBody {
    conn: Option<Conn>,
    framing: Framing,
    remaining: u64,
    chunked: Chunked,
    keep: bool,
    pool: (Arc<Pool>, SocketAddr),
    ended: bool,
}

impl UpstreamBody {
    /// The announced length, when there is one.
    pub fn length(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(n) => Some(n),
            Framing::Empty => Some(0),
            Framing::Chunked | Framing::UntilClose => None,
        }
    }

    /// Whether the body has been read to its end.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The next piece of the body from what was already read, without
    /// waiting; `None` when nothing is at hand.
    pub fn ready(&mut self) -> Result<Option<Bytes>, std::io::Error> {
        if self.ended {
            return Ok(None);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(None);
        };
        let data = match self.framing {
            Framing::Empty => None,
            Framing::Length(_) => {
                let take = conn
                    .buf
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= take as u64;
                self.ended = self.remaining == 0;
                (take > 0).then(|| conn.buf.split_to(take).freeze())
            }
            Framing::Chunked => match self.chunked.decode(&mut conn.buf) {
                Ok(Decoded::Data(d)) => Some(d),
                Ok(Decoded::NeedMore) => None,
                Ok(Decoded::Done) => {
                    self.ended = true;
                    None
                }
                Err(e) => {
                    self.conn = None;
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        e.to_string(),
                    ));
                }
            },
            Framing::UntilClose => (!conn.buf.is_empty()).then(|| conn.buf.split().freeze()),
        };
        self.release_if_ended();
        Ok(data)
    }

    /// Waits for more of the body to arrive. Cancel-safe: what was read
    /// stays buffered for [`UpstreamBody::ready`].
    pub async fn wait(&mut self) -> Result<(), std::io::Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the connection to the replica is gone",
            ));
        };
        match conn.fill().await {
            Ok(0) if self.framing == Framing::UntilClose => {
                self.ended = true;
                self.conn = None;
                Ok(())
            }
            Ok(0) => {
                self.conn = None;
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the replica closed the connection mid-answer",
                ))
            }
            Ok(_) => Ok(()),
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    /// Gives the connection back once the body is read whole, when the
    /// replica keeps it open and sent nothing beyond the answer.
    fn release_if_ended(&mut self) {
        if self.ended
            && let Some(conn) = self.conn.take()
            && self.keep
            && conn.buf.is_empty()
        {
            self.pool.0.put(self.pool.1, conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::net::TcpListener;
    use tokio::sync::Notify;

    use super::*;

    const REQUEST: &[u8] =
        b"POST /v1/completions HTTP/1.1\r\nhost: r\r\ncontent-length: 2\r\n\r\n{}";
    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    /// What the replica does with a request it read.
    #[derive(Clone, Copy)]
    enum Then {
        /// Answers and keeps the connection.
        Answer,
        /// Answers and closes the connection (without saying so).
        AnswerAndClose,
        /// Closes the connection without an answer.
        Close,
    }

    /// A replica doing `script(n)` with the n-th request it reads; it counts
    /// them, and notifies `closed` whenever it has closed a connection.
    async fn replica(script: fn(usize) -> Then) -> (SocketAddr, Arc<AtomicUsize>, Arc<Notify>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (count, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
        let (counted, notify) = (count.clone(), closed.clone());
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let (count, closed) = (counted.clone(), notify.clone());
                tokio::spawn(async move {
                    loop {
                        let mut request = vec![0; REQUEST.len()];
                        if stream.read_exact(&mut request).await.is_err() {
                            return;
                        }
                        let then = script(count.fetch_add(1, Ordering::SeqCst));
                        if !matches!(then, Then::Close) {
                            stream.write_all(ANSWER).await.unwrap();
                        }
                        if !matches!(then, Then::Answer) {
                            drop(stream);
                            closed.notify_one();
                            return;
                        }
                    }
                });
            }
        });
        (addr, count, closed)
    }

    /// Sends the request and reads the answer whole, so that its connection
    /// goes back to the pool.
    async fn exchange(pool: &Arc<Pool>, addr: SocketAddr) -> Result<u16, UpstreamError> {
        let (head, mut body) = pool.exchange(addr, REQUEST, false, Instant::now()).await?;
        while !body.ended() {
            if body.ready().unwrap().is_none() && !body.ended() {
                body.wait().await.unwrap();
            }
        }
        Ok(head.status)
    }

    #[tokio::test]
    async fn a_pooled_connection_the_replica_closed_is_replaced_before_the_request_is_written() {
        let (addr, count, closed) = replica(|n| {
            if n == 0 {
                Then::AnswerAndClose
            } else {
                Then::Answer
            }
        })
        .await;
        let pool = Pool::new();
        assert_eq!(exchange(&pool, addr).await.unwrap(), 200);
        closed.notified().await;
        assert_eq!(
            pool.idle.lock()[&addr].len(),
            1,
            "the connection was pooled"
        );
        assert_eq!(exchange(&pool, addr).await.unwrap(), 200);
        assert_eq!(count.load(Ordering::SeqCst), 2, "each request sent once");
    }

    #[tokio::test]
    async fn a_request_the_replica_read_is_never_sent_again() {
        // On a pooled connection: the replica reads the second request and
        // closes. The third request would be answered; it is never sent.
        let (addr, count, _) = replica(|n| if n == 1 { Then::Close } else { Then::Answer }).await;
        let pool = Pool::new();
        assert_eq!(exchange(&pool, addr).await.unwrap(), 200);
        let e = exchange(&pool, addr).await.unwrap_err();
        assert!(matches!(e, UpstreamError::Closed), "{e}");
        assert!(!e.unsent());
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_connection_sent_nothing() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let e = exchange(&Pool::new(), addr).await.unwrap_err();
        assert!(e.unsent(), "{e}");
    }
}
