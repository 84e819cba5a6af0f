//! The gateway's client connections: HTTP/1.1 requests read off the socket
//! (bounded in size and in time), answered by the proxy, and the answers
//! written back in as few writes as the data allows, the connection kept
//! open between requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use autoglm_core::error::GatewayCode;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::Inner;
use crate::deadline::{Deadlines, Elapsed};
use crate::incoming::{BodyError, Incoming};
use crate::proxy::{self, Answer, Relayed};
use crate::reply::{Local, Protocol, Refused};
use crate::upstream::Pool;
use crate::wire::{self, Chunked, Decoded, Framing, RequestHead, WireError};

/// How long a connection may sit idle between requests.
const IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// How long, after answering a request whose body was not read, the rest of
/// it is read and dropped so that the answer is not lost to a reset.
const LINGER: Duration = Duration::from_millis(500);
/// Read buffer size.
const READ_CHUNK: usize = 16 * 1024;
/// How long a client may take to make room for more of an answer (as
/// nginx's `send_timeout`): one that stops reading is let go.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// One client connection.
struct Connection {
    stream: TcpStream,
    buf: BytesMut,
    out: BytesMut,
    deadlines: Deadlines,
    /// Ends when the gateway shuts down; kept across requests, since making
    /// one per wait costs a registration each time.
    shutdown: std::pin::Pin<Box<WaitForCancellationFutureOwned>>,
}

/// Serves requests on `stream` until the client leaves, a request asks to
/// close, or `shutdown` is cancelled (an open request is answered first).
pub async fn serve(
    inner: Arc<Inner>,
    pool: Arc<Pool>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let mut idle_since = Instant::now();
    let mut conn = Connection {
        stream,
        buf: BytesMut::with_capacity(READ_CHUNK),
        out: BytesMut::with_capacity(READ_CHUNK),
        deadlines: Deadlines::new(idle_since + IDLE_TIMEOUT),
        shutdown: Box::pin(shutdown.clone().cancelled_owned()),
    };
    loop {
        let head = match conn.read_head(inner.start.header_timeout, idle_since).await {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(refused) => {
                let _ = conn
                    .write_local(refused.into_answer(Protocol::OpenAi), true, false, false)
                    .await;
                conn.linger().await;
                return;
            }
        };
        let mut body = RequestBody {
            conn: &mut conn,
            framing: head.framing,
            expect_continue: head.expect_continue,
            minor_version: head.minor_version,
            read: head.framing == Framing::Empty,
        };
        let answer = proxy::handle(&inner, &pool, &head, &mut body, peer).await;
        let body_read = body.read_or_drop();
        let close = !head.keep_alive || !body_read || shutdown.is_cancelled();
        let to_head = head.method() == "HEAD";
        let ended = match answer {
            // HTTP/1.0 closes unless the answer says otherwise.
            Answer::Local(local) => {
                let keep_alive_1_0 = !close && head.minor_version == 0;
                conn.write_local(local, close, keep_alive_1_0, to_head)
                    .await
            }
            Answer::Relayed(relayed) => {
                let stall = inner.config.load().request_timeout;
                conn.write_relayed(*relayed, head.minor_version, to_head, close, stall)
                    .await
            }
        };
        // Idle from the end of the last write: a slow reader's time counts
        // as the answer's, not as idleness.
        let ended = ended.then(Instant::now);
        if !body_read {
            conn.linger().await;
        }
        match ended {
            Some(at) if !close => idle_since = at,
            _ => return,
        }
    }
}

/// The body of the request being answered, read on demand.
pub struct RequestBody<'a> {
    conn: &'a mut Connection,
    framing: Framing,
    expect_continue: bool,
    minor_version: u8,
    read: bool,
}

impl Incoming for RequestBody<'_> {
    async fn read(&mut self, limit: usize, timeout: Duration) -> Result<Bytes, BodyError> {
        let length = match self.framing {
            Framing::Empty | Framing::UntilClose => {
                self.read = true;
                return Ok(Bytes::new());
            }
            Framing::Length(n) if n > limit as u64 => return Err(BodyError::TooLarge),
            Framing::Length(n) => Some(n as usize),
            Framing::Chunked => None,
        };
        if std::mem::take(&mut self.expect_continue) && self.minor_version >= 1 {
            let conn = &mut *self.conn;
            let continued = b"HTTP/1.1 100 Continue\r\n\r\n";
            if !send(&conn.stream, &mut conn.deadlines, continued).await {
                return Err(BodyError::Unreadable(
                    "the client did not take 100 Continue".into(),
                ));
            }
        }
        // Only a body still on its way needs the clock.
        let mut deadline = None;
        let mut by = move || *deadline.get_or_insert_with(|| Instant::now() + timeout);
        let conn = &mut *self.conn;
        if let Some(length) = length {
            conn.buf.reserve(length.saturating_sub(conn.buf.len()));
            while conn.buf.len() < length {
                conn.fill_by(by()).await?;
            }
            self.read = true;
            return Ok(conn.buf.split_to(length).freeze());
        }
        let mut chunked = Chunked::default();
        let mut body = BytesMut::new();
        loop {
            match chunked
                .decode(&mut conn.buf)
                .map_err(|e| BodyError::Unreadable(e.to_string()))?
            {
                Decoded::Data(data) if body.len() + data.len() > limit => {
                    return Err(BodyError::TooLarge);
                }
                Decoded::Data(data) => body.extend_from_slice(&data),
                Decoded::NeedMore => conn.fill_by(by()).await?,
                Decoded::Done => {
                    self.read = true;
                    return Ok(body.freeze());
                }
            }
        }
    }

    async fn within<F: std::future::Future>(
        &mut self,
        deadline: Instant,
        future: F,
    ) -> Result<F::Output, Elapsed> {
        self.conn.deadlines.within(deadline, future).await
    }
}

impl RequestBody<'_> {
    /// Whether the body is out of the way of the next request: read, or
    /// unread but already here in full (it is then dropped).
    fn read_or_drop(&mut self) -> bool {
        if self.read {
            return true;
        }
        match self.framing {
            Framing::Length(n) if !self.expect_continue && self.conn.buf.len() as u64 >= n => {
                let _ = self.conn.buf.split_to(n as usize);
                true
            }
            _ => false,
        }
    }
}

impl Connection {
    /// The next request's head; `None` when the client leaves, stays idle
    /// too long (counted from `idle_since`), or the gateway shuts down
    /// between requests.
    async fn read_head(
        &mut self,
        header_timeout: Duration,
        idle_since: Instant,
    ) -> Result<Option<RequestHead>, Refused> {
        // When the first bytes of an incomplete head were seen.
        let mut began = None;
        loop {
            match RequestHead::parse(&mut self.buf) {
                Ok(Some(head)) => return Ok(Some(head)),
                Ok(None) if !self.buf.is_empty() => {
                    began.get_or_insert_with(Instant::now);
                }
                Ok(None) => {}
                Err(WireError::HeadTooLarge) => {
                    return Err(Refused::new(
                        GatewayCode::HeaderTooLarge,
                        WireError::HeadTooLarge.to_string(),
                    ));
                }
                Err(WireError::Malformed(why)) => {
                    return Err(Refused::new(GatewayCode::BadRequest, why));
                }
            }
            // Most often the bytes are already here: no timer needed.
            self.buf.reserve(READ_CHUNK);
            match self.stream.try_read_buf(&mut self.buf) {
                Ok(0) => return Ok(None),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return Ok(None),
            }
            let read = self.stream.read_buf(&mut self.buf);
            let read = match began {
                Some(began) => self.deadlines.within(began + header_timeout, read).await,
                None => tokio::select! {
                    biased;
                    read = self.deadlines.within(idle_since + IDLE_TIMEOUT, read) => read,
                    () = self.shutdown.as_mut() => return Ok(None),
                },
            };
            match read {
                Ok(Ok(0) | Err(_)) => return Ok(None),
                Ok(Ok(_)) => {}
                Err(_) if began.is_none() => return Ok(None),
                Err(_) => {
                    return Err(Refused::new(
                        GatewayCode::HeaderTimeout,
                        format!(
                            "the request head did not arrive within {} s",
                            header_timeout.as_secs()
                        ),
                    ));
                }
            }
        }
    }

    /// Reads more of a request body, before `deadline`.
    async fn fill_by(&mut self, deadline: Instant) -> Result<(), BodyError> {
        let read = self.stream.read_buf(&mut self.buf);
        match self.deadlines.within(deadline, read).await {
            Err(_) => Err(BodyError::Timeout),
            Ok(Ok(0)) => Err(BodyError::Unreadable(
                "the client closed the connection mid-body".into(),
            )),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(BodyError::Unreadable(e.to_string())),
        }
    }

    /// Writes an answer of the gateway's own; false when the client is gone.
    async fn write_local(
        &mut self,
        local: Local,
        close: bool,
        keep_alive_1_0: bool,
        to_head: bool,
    ) -> bool {
        let out = &mut self.out;
        out.clear();
        wire::status_line(out, local.status);
        if !local.filtered.iter().any(|(n, _)| n == "content-type") {
            wire::field(out, b"content-type", local.content_type.as_bytes());
        }
        wire::field(
            out,
            b"date",
            httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes(),
        );
        for (name, value) in &local.headers {
            wire::field(out, name.as_bytes(), value.as_bytes());
        }
        wire::write_filtered_fields(out, &local.filtered, &[], &[]);
        if keep_alive_1_0 {
            wire::field(out, b"connection", b"keep-alive");
        }
        wire::framing_fields(out, Framing::Length(local.body.len() as u64), close);
        if !to_head {
            out.extend_from_slice(&local.body);
        }
        send(&self.stream, &mut self.deadlines, out).await
    }

    /// Writes a replica's answer, its body passed on as it arrives; false
    /// when the connection must close (either side failed or stalled for
    /// longer than `stall` — the answer is then cut short — or the body is
    /// delimited by closing).
    async fn write_relayed(
        &mut self,
        relayed: Relayed,
        minor_version: u8,
        to_head: bool,
        close: bool,
        stall: Duration,
    ) -> bool {
        let Relayed {
            head: upstream,
            version,
            remaining,
            filtered,
            mut relay,
        } = relayed;
        let bodiless = to_head || matches!(upstream.status, 204 | 304);
        let framing = match relay.length() {
            _ if bodiless => Framing::Empty,
            Some(n) => Framing::Length(n),
            None if minor_version >= 1 => Framing::Chunked,
            None => Framing::UntilClose,
        };
        let close = close || framing == Framing::UntilClose;
        let mut digits = Default::default();
        // Four rate-limit fields, the version, and keep-alive at most.
        let mut extra = [("", ""); 6];
        let mut added = 0;
        let keep_alive_1_0 = (!close && minor_version == 0).then_some(("connection", "keep-alive"));
        for field in remaining
            .fields(&mut digits)
            .chain([(crate::VERSION_HEADER, version.as_str())])
            .chain(keep_alive_1_0)
        {
            extra[added] = field;
            added += 1;
        }
        self.out.clear();
        match &filtered {
            Some(fields) => wire::ResponseHead::write_filtered_downstream(
                fields,
                &mut self.out,
                &extra[..added],
                framing,
                close,
            ),
            None => upstream.write_downstream(&mut self.out, &extra[..added], framing, close),
        }
        loop {
            // What already arrived goes out in one write (the first time,
            // with the head).
            loop {
                match relay.ready() {
                    Ok(Some(data)) => frame(&mut self.out, framing, &data),
                    Ok(None) => break,
                    Err(_) => return false,
                }
            }
            if relay.finished() && framing == Framing::Chunked {
                self.out.extend_from_slice(wire::LAST_CHUNK);
            }
            if !send(&self.stream, &mut self.deadlines, &self.out).await {
                return false;
            }
            self.out.clear();
            if relay.finished() {
                // A body delimited by closing is only complete once closed.
                return !close;
            }
            // Nothing is at hand: the replica is still working on it.
            let next = relay.next();
            match self.deadlines.within(Instant::now() + stall, next).await {
                Ok(Some(Ok(data))) => frame(&mut self.out, framing, &data),
                Ok(None) => {}
                Ok(Some(Err(_))) | Err(_) => return false,
            }
        }
    }

    /// Closes the sending side and reads what the client still sends for a
    /// moment, so that closing does not reset the answer away.
    async fn linger(&mut self) {
        let _ = self.stream.shutdown().await;
        let deadline = Instant::now() + LINGER;
        loop {
            self.buf.clear();
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
        }
    }
}

/// Writes all of `bytes`, unless the peer makes no room for
/// [`SEND_TIMEOUT`] at a time; false when it failed. Most often the socket
/// takes it all at once, and then no clock is read.
async fn send(stream: &TcpStream, deadlines: &mut Deadlines, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let room = stream.writable();
                if !matches!(
                    deadlines.within(Instant::now() + SEND_TIMEOUT, room).await,
                    Ok(Ok(()))
                ) {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// Appends `data` to `out` as the body's framing has it.
fn frame(out: &mut BytesMut, framing: Framing, data: &[u8]) {
    match framing {
        Framing::Chunked => wire::chunk(out, data),
        Framing::Empty => {}
        Framing::Length(_) | Framing::UntilClose => out.extend_from_slice(data),
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// A connected pair of sockets: (ours, the peer's).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap());
        let (ours, accepted) = tokio::join!(ours, listener.accept());
        (ours.unwrap(), accepted.unwrap().0)
    }

    /// Far more than the sockets' buffers hold.
    fn big_answer() -> Vec<u8> {
        vec![b'x'; 64 * 1024 * 1024]
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_is_let_go() {
        let answer = big_answer();
        let mut timer = Deadlines::new(Instant::now() + Duration::from_secs(600));
        let (ours, _idle_peer) = pair().await;
        let started = Instant::now();
        assert!(!send(&ours, &mut timer, &answer).await);
        assert!(started.elapsed() >= SEND_TIMEOUT);
    }

    // Real time: with a paused clock the runtime, idle while the kernel
    // moves the bytes, would advance the clock to the send deadline and let
    // a reading peer go too (it did, once in many runs).
    #[tokio::test]
    async fn a_peer_that_reads_gets_everything() {
        let answer = big_answer();
        let mut timer = Deadlines::new(Instant::now() + Duration::from_secs(600));
        let (ours, mut peer) = pair().await;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).await.unwrap();
            got.len()
        });
        assert!(send(&ours, &mut timer, &answer).await);
        drop(ours);
        assert_eq!(reader.await.unwrap(), answer.len());
    }
}
