//! HTTP/1.1 on the wire, free of IO. Heads are parsed with `httparse` into
//! offsets over the received bytes (no copy or allocation per header), the
//! body's framing is read from them (RFC 9112 §6), chunked bodies are
//! decoded as they arrive, and heads are written back out in one buffer.
//!
//! The gateway speaks HTTP/1 itself rather than through a general server
//! and client: a proxy only needs to pass most headers through untouched,
//! and doing so straight from the received bytes halves the CPU each request
//! costs (see docs/benchmarks.md).

use std::fmt::Write as _;
use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};

/// Most header fields in one head.
const MAX_FIELDS: usize = 100;
/// Fields the gateway adds to a request it passes on (Host, Traceparent,
/// Content-Length): a request keeps room for them, so that what goes
/// upstream is within the same limit (hyper's too) and is not refused there.
const ADDED_FIELDS: usize = 3;
/// Largest head, in bytes.
pub const MAX_HEAD: usize = 64 * 1024;
/// Longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 1024;

/// Why bytes are not a message the gateway accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The head is larger than [`MAX_HEAD`] or has too many fields.
    #[error("the head is larger than {MAX_HEAD} bytes or has too many fields (a request at most {}, a response {MAX_FIELDS})", MAX_FIELDS - ADDED_FIELDS)]
    HeadTooLarge,
    /// Not HTTP/1, or framing that cannot be trusted; in words.
    #[error("{0}")]
    Malformed(String),
}

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

type Span = (u32, u32);

/// Fields the gateway reads or never passes on, recognised once per head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// `authorization`
    Authorization,
    /// `connection`
    Connection,
    /// `content-length`
    ContentLength,
    /// `expect`
    Expect,
    /// `host`
    Host,
    /// `traceparent`
    Traceparent,
    /// `transfer-encoding`
    TransferEncoding,
    /// [`crate::VERSION_HEADER`]
    Version,
    /// [`crate::STICKY_HEADER`]
    Sticky,
    /// The other hop-by-hop fields: `keep-alive`, `proxy-*`, `te`, `trailer`, `upgrade`.
    OtherHopByHop,
}

const KINDS: usize = 10;

impl Known {
    fn of(name: &[u8]) -> Option<Known> {
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        Some(match name.len() {
            2 if is("te") => Known::OtherHopByHop,
            4 if is("host") => Known::Host,
            6 if is("expect") => Known::Expect,
            7 if is("upgrade") || is("trailer") => Known::OtherHopByHop,
            10 if is("connection") => Known::Connection,
            10 if is("keep-alive") => Known::OtherHopByHop,
            11 if is("traceparent") => Known::Traceparent,
            13 if is("authorization") => Known::Authorization,
            14 if is("content-length") => Known::ContentLength,
            16 if is("proxy-connection") => Known::OtherHopByHop,
            17 if is("transfer-encoding") => Known::TransferEncoding,
            17 if is(crate::VERSION_HEADER) => Known::Version,
            18 if is("proxy-authenticate") => Known::OtherHopByHop,
            19 if is("proxy-authorization") => Known::OtherHopByHop,
            20 if is(crate::STICKY_HEADER) => Known::Sticky,
            _ => return None,
        })
    }

    /// Never passed on: hop-by-hop, or Content-Length (bodies are framed anew).
    fn never_passed_on(self) -> bool {
        matches!(
            self,
            Known::Connection
                | Known::ContentLength
                | Known::TransferEncoding
                | Known::OtherHopByHop
        )
    }
}

#[derive(Debug, Clone, Copy)]
struct Field {
    name: Span,
    value: Span,
    kind: Option<Known>,
}

/// A parsed head: its bytes and where each part lies in them.
#[derive(Debug, Clone)]
struct Head {
    bytes: Bytes,
    fields: Vec<Field>,
    /// Per kind, 1 + the index of its first field; 0 when absent.
    first: [u8; KINDS],
    /// Bit i: field i is never passed on.
    dropped: u128,
}

impl Head {
    fn new(bytes: Bytes, fields: Vec<Field>) -> Head {
        let mut head = Head {
            bytes,
            fields,
            first: [0; KINDS],
            dropped: 0,
        };
        for (i, field) in head.fields.iter().enumerate() {
            if let Some(kind) = field.kind {
                if head.first[kind as usize] == 0 {
                    head.first[kind as usize] = i as u8 + 1;
                }
                if kind.never_passed_on() {
                    head.dropped |= 1 << i;
                }
            }
        }
        // Fields the Connection field names are hop-by-hop too.
        let mut named = 0u128;
        for token in head.tokens(Known::Connection) {
            if token.eq_ignore_ascii_case(b"close") || token.eq_ignore_ascii_case(b"keep-alive") {
                continue;
            }
            for (i, field) in head.fields.iter().enumerate() {
                if head.at(field.name).eq_ignore_ascii_case(token) {
                    named |= 1 << i;
                }
            }
        }
        head.dropped |= named;
        head
    }

    fn at(&self, (start, end): Span) -> &[u8] {
        &self.bytes[start as usize..end as usize]
    }

    /// The first value of a `kind` field, as sent.
    fn get(&self, kind: Known) -> Option<&[u8]> {
        match self.first[kind as usize] {
            0 => None,
            i => Some(self.at(self.fields[i as usize - 1].value)),
        }
    }

    /// Every value of `kind` fields, in order.
    fn values(&self, kind: Known) -> impl Iterator<Item = &[u8]> {
        let from = match self.first[kind as usize] {
            0 => self.fields.len(),
            i => i as usize - 1,
        };
        self.fields[from..]
            .iter()
            .filter(move |f| f.kind == Some(kind))
            .map(|f| self.at(f.value))
    }

    /// The comma-separated tokens of `kind` fields, trimmed, in order.
    fn tokens(&self, kind: Known) -> impl Iterator<Item = &[u8]> {
        self.values(kind)
            .flat_map(|v| v.split(|b| *b == b','))
            .map(<[u8]>::trim_ascii)
    }

    /// Whether any comma-separated token of `kind` fields is `token`.
    fn has_token(&self, kind: Known, token: &str) -> bool {
        self.tokens(kind)
            .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
    }

    /// The body's framing from Transfer-Encoding and Content-Length.
    fn framing(&self, otherwise: Framing) -> Result<Framing, WireError> {
        let mut codings = self
            .tokens(Known::TransferEncoding)
            .filter(|t| !t.is_empty())
            .peekable();
        if codings.peek().is_some() {
            if self.get(Known::ContentLength).is_some() {
                return Err(WireError::Malformed(
                    "a message may not carry both Transfer-Encoding and Content-Length".into(),
                ));
            }
            return match codings.last() {
                Some(last) if last.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
                _ => Err(WireError::Malformed(
                    "the only transfer coding accepted is chunked".into(),
                )),
            };
        }
        let mut length = None;
        for value in self.values(Known::ContentLength) {
            let parsed = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| WireError::Malformed("Content-Length is not a number".into()))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(WireError::Malformed(
                    "the Content-Length fields disagree".into(),
                ));
            }
            length = Some(parsed);
        }
        Ok(match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => otherwise,
        })
    }

    /// Writes the end-to-end fields but those of the `drop` kinds or
    /// replaced by `extra`; then `extra`.
    fn write_fields(&self, out: &mut BytesMut, drop: &[Known], extra: &[(&str, &str)]) {
        for (i, field) in self.fields.iter().enumerate() {
            let name = self.at(field.name);
            let skip = self.dropped & (1 << i) != 0
                || field.kind.is_some_and(|k| drop.contains(&k))
                || extra
                    .iter()
                    .any(|(d, _)| name.eq_ignore_ascii_case(d.as_bytes()));
            if !skip {
                self::field(out, name, self.at(field.value));
            }
        }
        for (name, value) in extra {
            self::field(out, name.as_bytes(), value.as_bytes());
        }
    }
}

impl Head {
    /// The fields passed on but those of the `drop` kinds, as filters see
    /// them: lower-case names, in order.
    fn passed(&self, drop: &[Known]) -> Vec<(String, Vec<u8>)> {
        self.fields
            .iter()
            .enumerate()
            .filter(|(i, f)| {
                self.dropped & (1 << i) == 0 && !f.kind.is_some_and(|k| drop.contains(&k))
            })
            .map(|(_, f)| {
                (
                    String::from_utf8_lossy(self.at(f.name)).to_ascii_lowercase(),
                    self.at(f.value).to_vec(),
                )
            })
            .collect()
    }
}

/// Writes fields a filter left, but for pseudo-headers, the framing and
/// hop-by-hop fields (the gateway frames the message itself) and those
/// replaced by `extra`; then `extra`.
pub fn write_filtered_fields(
    out: &mut BytesMut,
    fields: &[(String, Vec<u8>)],
    drop: &[Known],
    extra: &[(&str, &str)],
) {
    for (name, value) in fields {
        let skip = name.starts_with(':')
            || Known::of(name.as_bytes()).is_some_and(|k| k.never_passed_on() || drop.contains(&k))
            || extra.iter().any(|(d, _)| name.eq_ignore_ascii_case(d))
            || value.iter().any(|b| matches!(b, b'\r' | b'\n'))
            || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if !skip {
            self::field(out, name.as_bytes(), value);
        }
    }
    for (name, value) in extra {
        self::field(out, name.as_bytes(), value.as_bytes());
    }
}

/// The value of the first field `name` of a filtered head.
fn filtered_value<'a>(fields: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// Where `part` lies within `base`; empty when it does not lie there
/// (httparse answers a missing reason phrase with a static "").
fn span(base: &[u8], part: &[u8]) -> Span {
    let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    if start > base.len() || part.len() > base.len() - start {
        return (0, 0);
    }
    (start as u32, (start + part.len()) as u32)
}

fn fields_of(base: &[u8], headers: &[httparse::Header<'_>]) -> Vec<Field> {
    headers
        .iter()
        .map(|h| Field {
            name: span(base, h.name.as_bytes()),
            value: span(base, h.value),
            kind: Known::of(h.name.as_bytes()),
        })
        .collect()
}

fn parse_failure(e: httparse::Error) -> WireError {
    match e {
        httparse::Error::TooManyHeaders => WireError::HeadTooLarge,
        other => WireError::Malformed(format!("the head is not HTTP/1: {other}")),
    }
}

/// A request's head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    head: Head,
    method: Span,
    target: Span,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the client keeps the connection open after this exchange.
    pub keep_alive: bool,
    /// Whether the client waits for `100 Continue` before sending the body.
    pub expect_continue: bool,
}

impl RequestHead {
    /// Takes one complete request head off the front of `buf`; `None` until
    /// all of it has arrived.
    pub fn parse(buf: &mut BytesMut) -> Result<Option<RequestHead>, WireError> {
        let mut headers = [const { MaybeUninit::uninit() }; MAX_FIELDS];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(buf, &mut headers) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(WireError::HeadTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(parse_failure(e)),
        };
        if len > MAX_HEAD || req.headers.len() > MAX_FIELDS - ADDED_FIELDS {
            return Err(WireError::HeadTooLarge);
        }
        let base = &buf[..];
        let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
        else {
            return Err(WireError::Malformed(
                "the request line is incomplete".into(),
            ));
        };
        let method = span(base, method.as_bytes());
        let target = span(base, target.as_bytes());
        let fields = fields_of(base, req.headers);
        let head = Head::new(buf.split_to(len).freeze(), fields);
        let framing = head.framing(Framing::Empty)?;
        let keep_alive = if minor_version == 0 {
            head.has_token(Known::Connection, "keep-alive")
        } else {
            !head.has_token(Known::Connection, "close")
        };
        let expect_continue = head
            .get(Known::Expect)
            .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"100-continue"));
        Ok(Some(RequestHead {
            head,
            method,
            target,
            minor_version,
            framing,
            keep_alive,
            expect_continue,
        }))
    }

    /// The method, e.g. `POST`.
    pub fn method(&self) -> &str {
        std::str::from_utf8(self.head.at(self.method)).unwrap_or_default()
    }

    /// The request target as path and query, also when it was sent in
    /// absolute form (`http://host/path`).
    pub fn target(&self) -> &str {
        let target = std::str::from_utf8(self.head.at(self.target)).unwrap_or_default();
        if target.starts_with('/') {
            return target;
        }
        match target.split_once("://") {
            Some((scheme, rest)) if !target.starts_with('/') && !scheme.contains('/') => {
                rest.find(['/', '?']).map_or("/", |i| &rest[i..])
            }
            _ => target,
        }
    }

    /// The path, without the query; `/` for an absolute-form target with
    /// a query but no path (`http://host?x`).
    pub fn path(&self) -> &str {
        let target = self.target();
        match target.split_once('?').map_or(target, |(p, _)| p) {
            "" => "/",
            path => path,
        }
    }

    /// The first value of a `kind` field, when it is text.
    pub fn header(&self, kind: Known) -> Option<&str> {
        self.head
            .get(kind)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of the field `name` (any case), when it is text. A
    /// scan of every field: for the gateway's own pages, not the request
    /// path, which reads the kinds it knows through [`RequestHead::header`].
    pub fn field(&self, name: &str) -> Option<&str> {
        self.head
            .fields
            .iter()
            .find(|f| self.head.at(f.name).eq_ignore_ascii_case(name.as_bytes()))
            .and_then(|f| std::str::from_utf8(self.head.at(f.value)).ok())
    }

    /// Whether a `kind` field was sent at all, text or not.
    pub fn has_header(&self, kind: Known) -> bool {
        self.head.get(kind).is_some()
    }

    /// The head as filters see it: `:method`, `:path`, `:authority` and
    /// `:scheme` first, then the fields passed on (never Authorization: it
    /// carries the caller's autoglm key, which a filter has no use for).
    pub fn filter_headers(&self) -> Vec<(String, Vec<u8>)> {
        let mut headers = vec![
            (":method".to_owned(), self.method().as_bytes().to_vec()),
            (":path".to_owned(), self.target().as_bytes().to_vec()),
            (
                ":authority".to_owned(),
                self.head.get(Known::Host).unwrap_or_default().to_vec(),
            ),
            (":scheme".to_owned(), b"http".to_vec()),
        ];
        headers.extend(
            self.head
                .passed(&[Known::Host, Known::Expect, Known::Authorization]),
        );
        headers
    }

    /// Writes the request to pass on to `authority` from the headers the
    /// filters left (`:method` and `:path` among them, as they may have
    /// changed them), but the `drop` kinds, then `extra`, and `body` with
    /// its length.
    pub fn write_filtered_upstream(
        fields: &[(String, Vec<u8>)],
        out: &mut BytesMut,
        authority: &str,
        drop: Known,
        extra: &[(&str, &str)],
        body: &[u8],
    ) {
        let method = filtered_value(fields, ":method").unwrap_or(b"GET");
        let target = filtered_value(fields, ":path").unwrap_or(b"/");
        out.reserve(body.len() + 512);
        out.extend_from_slice(method);
        out.extend_from_slice(b" ");
        out.extend_from_slice(target);
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(b"\r\n");
        write_filtered_fields(out, fields, &[Known::Host, Known::Expect, drop], extra);
        if !body.is_empty()
            || !matches!(method, b"GET" | b"HEAD" | b"DELETE" | b"OPTIONS" | b"TRACE")
        {
            content_length(out, body.len() as u64);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }

    /// Writes the request to pass on to `authority`: the same method and
    /// target over HTTP/1.1, the end-to-end fields except Host, Expect and
    /// the `drop` kinds, then `extra`, and `body` with its length.
    pub fn write_upstream(
        &self,
        out: &mut BytesMut,
        authority: &str,
        drop: Known,
        extra: &[(&str, &str)],
        body: &[u8],
    ) {
        out.reserve(self.head.bytes.len() + body.len() + 64);
        out.extend_from_slice(self.head.at(self.method));
        out.extend_from_slice(b" ");
        let target = self.target();
        // The origin form of `http://host?x` is `/?x`, never a bare query.
        if target.starts_with('?') {
            out.extend_from_slice(b"/");
        }
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(b"\r\n");
        self.head
            .write_fields(out, &[Known::Host, Known::Expect, drop], extra);
        let bodiless_method = matches!(
            self.method(),
            "GET" | "HEAD" | "DELETE" | "OPTIONS" | "TRACE"
        );
        if !body.is_empty() || !bodiless_method {
            content_length(out, body.len() as u64);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }
}

/// A response's head.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    head: Head,
    reason: Span,
    /// The status code.
    pub status: u16,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the server keeps the connection open after this exchange.
    pub keep_alive: bool,
}

impl ResponseHead {
    /// Takes one complete final response head off the front of `buf`
    /// (interim 1xx answers are skipped); `None` until all of it has
    /// arrived. `to_head` says the request was HEAD, whose answer has no body.
    pub fn parse(buf: &mut BytesMut, to_head: bool) -> Result<Option<ResponseHead>, WireError> {
        loop {
            let mut headers = [const { MaybeUninit::uninit() }; MAX_FIELDS];
            let mut resp = httparse::Response::new(&mut []);
            let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut resp,
                buf,
                &mut headers,
            );
            let len = match parsed {
                Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
                Ok(httparse::Status::Complete(_)) => return Err(WireError::HeadTooLarge),
                Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                    return Err(WireError::HeadTooLarge);
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(e) => return Err(parse_failure(e)),
            };
            let (Some(status), Some(minor_version)) = (resp.code, resp.version) else {
                return Err(WireError::Malformed("the status line is incomplete".into()));
            };
            // httparse reads any three digits; a client must not be handed `000`.
            if !(100..=599).contains(&status) {
                return Err(WireError::Malformed(format!(
                    "status {status} is not a status code (100 to 599)"
                )));
            }
            if (100..200).contains(&status) && status != 101 {
                let _ = buf.split_to(len);
                continue;
            }
            let base = &buf[..];
            let reason = span(base, resp.reason.unwrap_or_default().as_bytes());
            let fields = fields_of(base, resp.headers);
            let head = Head::new(buf.split_to(len).freeze(), fields);
            let bodiless = to_head || status == 204 || status == 304 || status < 200;
            let framing = if bodiless {
                Framing::Empty
            } else {
                head.framing(Framing::UntilClose)?
            };
            let keep_alive = framing != Framing::UntilClose
                && status != 101
                && if minor_version == 0 {
                    head.has_token(Known::Connection, "keep-alive")
                } else {
                    !head.has_token(Known::Connection, "close")
                };
            return Ok(Some(ResponseHead {
                head,
                reason,
                status,
                framing,
                keep_alive,
            }));
        }
    }

    /// Writes the head to pass on: the status line over HTTP/1.1, the
    /// end-to-end fields except Content-Length, then `extra` (which replace
    /// fields of the same name), then `framing`'s field.
    pub fn write_downstream(
        &self,
        out: &mut BytesMut,
        extra: &[(&str, &str)],
        framing: Framing,
        close: bool,
    ) {
        out.reserve(self.head.bytes.len() + 128);
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(itoa::Buffer::new().format(self.status).as_bytes());
        out.extend_from_slice(b" ");
        out.extend_from_slice(self.head.at(self.reason));
        out.extend_from_slice(b"\r\n");
        self.head.write_fields(out, &[], extra);
        framing_fields(out, framing, close);
    }
}

impl ResponseHead {
    /// The head as filters see it: `:status`, then the fields passed on.
    pub fn filter_headers(&self) -> Vec<(String, Vec<u8>)> {
        let mut headers = vec![(
            ":status".to_owned(),
            itoa::Buffer::new().format(self.status).as_bytes().to_vec(),
        )];
        headers.extend(self.head.passed(&[]));
        headers
    }

    /// Writes the head from the headers the filters left (`:status`
    /// among them), then `extra`.
    pub fn write_filtered_downstream(
        fields: &[(String, Vec<u8>)],
        out: &mut BytesMut,
        extra: &[(&str, &str)],
        framing: Framing,
        close: bool,
    ) {
        let status = filtered_value(fields, ":status")
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse::<u16>().ok())
            .and_then(|s| http::StatusCode::from_u16(s).ok())
            .unwrap_or(http::StatusCode::BAD_GATEWAY);
        status_line(out, status);
        write_filtered_fields(out, fields, &[], extra);
        framing_fields(out, framing, close);
    }
}

/// Writes the fields that delimit a body (`Length` also for an empty body
/// the status allows), the Connection field when closing, and the blank line.
pub fn framing_fields(out: &mut BytesMut, framing: Framing, close: bool) {
    match framing {
        Framing::Length(n) => {
            content_length(out, n);
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty | Framing::UntilClose => {}
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a status line with the status's usual reason.
pub fn status_line(out: &mut BytesMut, status: http::StatusCode) {
    let _ = write!(
        Fmt(out),
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
}

/// Writes one header field.
pub fn field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes a Content-Length field.
fn content_length(out: &mut BytesMut, length: u64) {
    field(
        out,
        b"content-length",
        itoa::Buffer::new().format(length).as_bytes(),
    );
}

/// Writes `data` as one chunk of a chunked body.
pub fn chunk(out: &mut BytesMut, data: &[u8]) {
    if !data.is_empty() {
        let _ = write!(Fmt(out), "{:x}\r\n", data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
}

/// The end of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// `fmt::Write` over a byte buffer.
struct Fmt<'a>(&'a mut BytesMut);

impl std::fmt::Write for Fmt<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// What a chunked body yields next.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Some of the body.
    Data(Bytes),
    /// More bytes must arrive first.
    NeedMore,
    /// The body is complete (trailers, if any, are consumed and dropped).
    Done,
}

/// A chunked body being decoded as its bytes arrive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Chunked {
    /// Expecting a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk, with this many bytes to come.
    Data(u64),
    /// Expecting the CRLF that ends a chunk.
    DataEnd,
    /// Past the last chunk, reading trailer lines.
    Trailers,
    /// Complete.
    Done,
}

impl Chunked {
    /// Decodes what it can from the front of `buf`, consuming it.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, WireError> {
        loop {
            match *self {
                Chunked::Done => return Ok(Decoded::Done),
                Chunked::Data(0) => *self = Chunked::DataEnd,
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    *self = Chunked::Data(left - take as u64);
                    return Ok(Decoded::Data(buf.split_to(take).freeze()));
                }
                Chunked::Size | Chunked::DataEnd | Chunked::Trailers => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    *self = match *self {
                        Chunked::Size => match chunk_size(&line)? {
                            0 => Chunked::Trailers,
                            n => Chunked::Data(n),
                        },
                        Chunked::DataEnd if line.is_empty() => Chunked::Size,
                        Chunked::DataEnd => {
                            return Err(WireError::Malformed(
                                "a chunk is longer than its size says".into(),
                            ));
                        }
                        _ if line.is_empty() => Chunked::Done,
                        other => other,
                    };
                }
            }
        }
    }
}

/// One line (without its CRLF) off the front of `buf`, when it is complete.
/// The length limit holds however the line arrived: whole in one read or
/// in pieces, which a client chooses.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, WireError> {
    match buf.iter().position(|b| *b == b'\n') {
        Some(end) if end > MAX_CHUNK_LINE => Err(line_too_long()),
        Some(end) => {
            let mut line = buf.split_to(end + 1);
            line.truncate(end);
            if line.last() == Some(&b'\r') {
                line.truncate(end - 1);
            }
            Ok(Some(line))
        }
        None if buf.len() > MAX_CHUNK_LINE => Err(line_too_long()),
        None => Ok(None),
    }
}

fn line_too_long() -> WireError {
    WireError::Malformed(format!(
        "a chunk-size or trailer line is longer than {MAX_CHUNK_LINE} bytes"
    ))
}

fn chunk_size(line: &[u8]) -> Result<u64, WireError> {
    let digits = line
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    std::str::from_utf8(digits)
        .ok()
        .filter(|d| !d.is_empty() && d.len() <= 15 && d.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|d| u64::from_str_radix(d, 16).ok())
        .ok_or_else(|| WireError::Malformed("a chunk size is not a hex number".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> Result<Option<RequestHead>, WireError> {
        RequestHead::parse(&mut BytesMut::from(text))
    }

    #[test]
    fn a_request_head_is_read_in_place_and_its_rest_left_for_the_body() {
        let mut buf = BytesMut::from(
            "POST /v2/models/echo/infer?x=1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer k\r\nContent-Length: 2\r\n\r\n{}GET",
        );
        let head = RequestHead::parse(&mut buf).unwrap().unwrap();
        assert_eq!(head.method(), "POST");
        assert_eq!(head.target(), "/v2/models/echo/infer?x=1");
        assert_eq!(head.path(), "/v2/models/echo/infer");
        assert_eq!(head.header(Known::Authorization), Some("Bearer k"));
        assert_eq!(head.header(Known::Version), None);
        assert_eq!(head.framing, Framing::Length(2));
        assert!(head.keep_alive && !head.expect_continue);
        assert_eq!(&buf[..], b"{}GET");
        let absolute = request("GET http://gw:8000/v1/models?x=1 HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(absolute.target(), "/v1/models?x=1");
        assert_eq!(absolute.path(), "/v1/models");
    }

    #[test]
    fn a_partial_head_waits_and_an_endless_one_is_refused() {
        assert!(request("POST / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
        let endless = format!("GET / HTTP/1.1\r\nx: {}", "a".repeat(MAX_HEAD + 1));
        assert_eq!(request(&endless).unwrap_err(), WireError::HeadTooLarge);
        assert!(matches!(
            request("NOT HTTP\r\n\r\n"),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let framing = |fields: &str| {
            request(&format!("POST / HTTP/1.1\r\n{fields}\r\n")).map(|h| h.unwrap().framing)
        };
        assert_eq!(framing(""), Ok(Framing::Empty));
        assert_eq!(framing("content-length: 0\r\n"), Ok(Framing::Empty));
        assert_eq!(
            framing("Transfer-Encoding: gzip, chunked\r\n"),
            Ok(Framing::Chunked)
        );
        for bad in [
            "transfer-encoding: chunked\r\ncontent-length: 3\r\n",
            "transfer-encoding: gzip\r\n",
            "content-length: 3\r\ncontent-length: 4\r\n",
            "content-length: -3\r\n",
            "content-length: +3\r\n",
        ] {
            assert!(
                matches!(framing(bad), Err(WireError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            framing("content-length: 3\r\ncontent-length: 3\r\n"),
            Ok(Framing::Length(3))
        );
    }

    #[test]
    fn keep_alive_and_expect_are_read_per_version() {
        let head = |text: &str| request(text).unwrap().unwrap();
        assert!(!head("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(head("POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n").expect_continue);
    }

    #[test]
    fn the_upstream_request_keeps_end_to_end_fields_only() {
        let head = request(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer k\r\nX-Autoglm-Version: 2\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nAccept: */*\r\nTransfer-Encoding: chunked\r\nTraceparent: old\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.header(Known::Version), Some("2"));
        let mut out = BytesMut::new();
        head.write_upstream(
            &mut out,
            "127.0.0.1:9",
            Known::Authorization,
            &[("traceparent", "new")],
            b"{}",
        );
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:9\r\nX-Autoglm-Version: 2\r\nAccept: */*\r\ntraceparent: new\r\ncontent-length: 2\r\n\r\n{}"
        );
    }

    #[test]
    fn a_response_head_skips_interim_answers_and_is_passed_on_reframed() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\n\r\n{}",
        );
        let head = ResponseHead::parse(&mut buf, false).unwrap().unwrap();
        assert_eq!((head.status, head.framing), (200, Framing::Length(2)));
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"{}");
        let mut out = BytesMut::new();
        head.write_downstream(
            &mut out,
            &[("x-autoglm-version", "1")],
            Framing::Chunked,
            false,
        );
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-autoglm-version: 1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn a_response_without_length_runs_until_close_and_some_have_no_body() {
        let parse = |text: &str, to_head: bool| {
            ResponseHead::parse(&mut BytesMut::from(text), to_head)
                .unwrap()
                .unwrap()
        };
        let open = parse("HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!(open.framing, Framing::UntilClose);
        assert!(!open.keep_alive);
        assert_eq!(
            parse("HTTP/1.1 204 No Content\r\n\r\n", false).framing,
            Framing::Empty
        );
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", true).framing,
            Framing::Empty
        );
        assert!(!parse("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", false).keep_alive);
        // No reason phrase, or one that is not ASCII: passed on without one.
        for line in ["HTTP/1.1 200\r\n", "HTTP/1.1 404 N\u{e3}o\r\n"] {
            let head = parse(&format!("{line}content-length: 0\r\n\r\n"), false);
            let mut out = BytesMut::new();
            head.write_downstream(&mut out, &[], Framing::Length(0), false);
            assert!(out.starts_with(b"HTTP/1.1 "), "{line:?}");
        }
    }

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let wire = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        for split in 1..wire.len() {
            let mut decoder = Chunked::default();
            let mut buf = BytesMut::new();
            let mut body = Vec::new();
            for piece in [&wire[..split], &wire[split..]] {
                buf.extend_from_slice(piece);
                while let Decoded::Data(d) = decoder.decode(&mut buf).unwrap() {
                    body.extend_from_slice(&d);
                }
            }
            assert_eq!(decoder, Chunked::Done, "split at {split}");
            assert_eq!(body, b"Wikipedia", "split at {split}");
            assert_eq!(&buf[..], b"NEXT", "split at {split}");
        }
    }

    #[test]
    fn bad_chunks_are_refused() {
        for bad in [
            &b"zz\r\n"[..],
            b"+4\r\nWiki\r\n",
            b"4\r\nWikiXX\r\n",
            b"1234567890abcdef0\r\n",
        ] {
            let mut buf = BytesMut::from(bad);
            let mut decoder = Chunked::default();
            let result = loop {
                match decoder.decode(&mut buf) {
                    Ok(Decoded::Data(_)) => {}
                    other => break other,
                }
            };
            assert!(matches!(result, Err(WireError::Malformed(_))), "{bad:?}");
        }
        let mut endless = BytesMut::from(&[b'1'; MAX_CHUNK_LINE + 1][..]);
        assert!(Chunked::default().decode(&mut endless).is_err());
    }

    #[test]
    fn chunks_are_framed() {
        let mut out = BytesMut::new();
        chunk(&mut out, b"hello, world");
        chunk(&mut out, b"");
        out.extend_from_slice(LAST_CHUNK);
        assert_eq!(&out[..], b"c\r\nhello, world\r\n0\r\n\r\n");
    }
}
