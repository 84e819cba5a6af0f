//! Exchanges with replicas over pooled HTTP/1.1 connections: the request is
//! written in one go, the response head read, and the body handed on as it
//! arrives; a connection goes back to the pool once its body is read whole.

use parking_lot::Mutex;
use std::collections::VecDeque;
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
    /// The connection failed after the request was sent.
    #[error("the connection failed: {0}")]
    Io(#[source] std::io::Error),
    /// The replica closed (or reset) the connection before sending a
    /// single byte of an answer.
    #[error("the connection closed before an answer")]
    Closed,
    /// What came back is not an HTTP/1 answer.
    #[error("the answer is not HTTP/1: {0}")]
    Malformed(#[source] WireError),
}

impl UpstreamError {
    /// Whether the request surely never reached the replica.
    pub fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
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
    /// and reads the answer's head. When a pooled connection turns out to
    /// have been closed by the replica (closed or reset before a single byte
    /// of an answer, as an idle connection is), the request is sent once
    /// more, on a new connection, and the replica's other unused
    /// connections are forgotten: they are likely closed too. `now` is
    /// the time of sending, as the caller read it.
    pub async fn exchange(
        self: &Arc<Pool>,
        addr: SocketAddr,
        request: &[u8],
        to_head: bool,
        now: Instant,
    ) -> Result<(ResponseHead, UpstreamBody), UpstreamError> {
        let mut resent = false;
        loop {
            let pooled = if resent { None } else { self.take(addr, now) };
            let (mut conn, reused) = match pooled {
                Some(conn) => (conn, true),
                None => (connect(addr).await?, false),
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
                Err(UpstreamError::Closed) if reused => {
                    self.forget(addr);
                    resent = true;
                }
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

async fn send(
    conn: &mut Conn,
    request: &[u8],
    to_head: bool,
) -> Result<ResponseHead, UpstreamError> {
    let closed = |e: std::io::Error| {
        if resets(&e) {
            UpstreamError::Closed
        } else {
            UpstreamError::Io(e)
        }
    };
    conn.stream.write_all(request).await.map_err(closed)?;
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
            Err(e) if !received => return Err(closed(e)),
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
