//! The HTTP client of the console API: TLS (rustls), bearer authentication,
//! URL building, paging, and decoding of `application/problem+json` errors
//! into [`ClientError`], whose [`exit_code`](ClientError::exit_code) is the
//! process exit status.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use autoglm_core::error::{PROBLEM_TYPE_BASE, Problem};
use autoglm_core::registry::Page;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::ClientArgs;
use crate::output::sanitize;

/// The header that makes a mutation safe to retry.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Largest error body read from the console.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest excerpt of a non-problem error body shown to the user.
const MAX_SNIPPET: usize = 200;

/// Why a command failed.
#[derive(Debug)]
pub enum ClientError {
    /// Bad local input: a file, a flag's syntax, the token file. Exit code 2.
    Local(String),
    /// No connection could be made to the console.
    Unreachable {
        /// The console URL as given.
        server: String,
        /// Why, in words (`connection refused`).
        reason: String,
    },
    /// The request failed after the connection was made.
    Transport {
        /// The request URL.
        url: String,
        /// Why, in words.
        reason: String,
    },
    /// The console answered with a problem document.
    Problem {
        /// The document.
        problem: Box<Problem>,
        /// Advice added by the client (e.g. how to pass a token).
        hint: Option<String>,
    },
    /// The console (or something in front of it) answered an error that is
    /// not a problem document.
    Status {
        /// The HTTP status.
        status: u16,
        /// Its canonical reason phrase, if known.
        reason: Option<&'static str>,
        /// The first line of the body, shortened and sanitised.
        body: String,
    },
    /// A success answer that could not be understood.
    Decode(String),
    /// A task the command waited for ended other than succeeded, or did not
    /// end in time.
    Task(String),
    /// Another error, about one thing of several (a manifest of `apply`).
    Within {
        /// What it is about, e.g. `svc.yaml (document 2)`.
        context: String,
        /// The error.
        error: Box<ClientError>,
    },
}

impl ClientError {
    /// The process exit code: 2 for bad local input, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Local(_) => 2,
            ClientError::Within { error, .. } => error.exit_code(),
            _ => 1,
        }
    }

    /// The problem's stable code, when the console sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Problem { problem, .. } => Some(&problem.code),
            ClientError::Within { error, .. } => error.code(),
            _ => None,
        }
    }

    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Problem { problem, .. } => StatusCode::from_u16(problem.status).ok(),
            ClientError::Status { status, .. } => StatusCode::from_u16(*status).ok(),
            ClientError::Within { error, .. } => error.status(),
            _ => None,
        }
    }

    /// This error, about `context`.
    pub fn within(self, context: &str) -> ClientError {
        ClientError::Within {
            context: context.to_owned(),
            error: Box::new(self),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Local(message) | ClientError::Task(message) => f.write_str(message),
            ClientError::Unreachable { server, reason } => {
                write!(f, "cannot reach the console at {server}: {reason}")
            }
            ClientError::Transport { url, reason } => {
                write!(f, "request to {url} failed: {reason}")
            }
            ClientError::Problem { problem, hint } => {
                let detail = problem
                    .detail
                    .as_deref()
                    .filter(|d| !d.is_empty())
                    .unwrap_or(&problem.title);
                write!(f, "{}: {}", sanitize(&problem.code), sanitize(detail))?;
                if problem.status >= 500
                    && let Some(id) = problem.request_id.as_deref().filter(|id| !id.is_empty())
                {
                    write!(f, " (request id {})", sanitize(id))?;
                }
                if let Some(hint) = hint {
                    write!(f, "; {hint}")?;
                }
                Ok(())
            }
            ClientError::Status {
                status,
                reason,
                body,
            } => {
                write!(f, "the console answered HTTP {status}")?;
                if let Some(reason) = reason {
                    write!(f, " {reason}")?;
                }
                if body.is_empty() {
                    f.write_str(" with an empty body")
                } else {
                    write!(f, ": {body}")
                }
            }
            ClientError::Decode(message) => {
                write!(f, "unexpected answer from the console: {message}")
            }
            ClientError::Within { context, error } => write!(f, "{context}: {error}"),
        }
    }
}

impl StdError for ClientError {}

/// A problem document, read leniently: only `code` is required.
#[derive(Deserialize)]
struct LooseProblem {
    #[serde(rename = "type")]
    type_uri: Option<String>,
    title: Option<String>,
    status: Option<u16>,
    detail: Option<String>,
    instance: Option<String>,
    code: String,
    request_id: Option<String>,
    #[serde(default)]
    errors: Vec<autoglm_core::error::FieldError>,
    #[serde(default)]
    violations: Vec<autoglm_core::error::PolicyViolation>,
}

/// Turns an error answer into a [`ClientError`]: a problem document when the
/// body is one, otherwise the HTTP status and the first line of the body.
pub fn decode_error(status: StatusCode, body: &[u8]) -> ClientError {
    if let Ok(loose) = serde_json::from_slice::<LooseProblem>(body)
        && !loose.code.is_empty()
    {
        let problem = Problem {
            type_uri: loose
                .type_uri
                .unwrap_or_else(|| format!("{PROBLEM_TYPE_BASE}{}", loose.code)),
            title: loose
                .title
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
            status: loose.status.unwrap_or(status.as_u16()),
            detail: loose.detail,
            instance: loose.instance,
            code: loose.code,
            request_id: loose.request_id,
            errors: loose.errors,
            violations: loose.violations,
        };
        return ClientError::Problem {
            problem: Box::new(problem),
            hint: None,
        };
    }
    let text = String::from_utf8_lossy(body);
    let line = if text.trim_start().starts_with('<') {
        // An HTML page from a proxy: its text, on one line.
        strip_tags(&text)
    } else {
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .to_owned()
    };
    let mut body: String = sanitize(&line).chars().take(MAX_SNIPPET).collect();
    if line.chars().count() > MAX_SNIPPET {
        body.push('…');
    }
    ClientError::Status {
        status: status.as_u16(),
        reason: status.canonical_reason(),
        body,
    }
}

/// The text of an HTML document with tags removed and whitespace collapsed.
fn strip_tags(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' if in_tag => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks the `--server` URL and strips any query or fragment.
pub fn parse_server(server: &str) -> Result<Url, ClientError> {
    let mut url = Url::parse(server.trim()).map_err(|e| {
        ClientError::Local(format!(
            "invalid --server URL {server:?}: {e}; expected e.g. {}",
            crate::DEFAULT_SERVER
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ClientError::Local(format!(
            "invalid --server URL {server:?}: expected http:// or https:// and a host"
        )));
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// The bearer token: `--token`/`AUTOGLM_TOKEN` when set and not empty, else
/// the trimmed contents of `token_file`. A missing token file means no token
/// (the console will answer `unauthenticated`); an unreadable one is an error.
pub fn resolve_token(
    token: Option<&str>,
    token_file: &Path,
) -> Result<Option<String>, ClientError> {
    let (token, origin) = match token.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => (t.to_owned(), "--token".to_owned()),
        None => match std::fs::read_to_string(token_file) {
            Ok(contents) => (
                contents.trim().to_owned(),
                format!("token file {}", token_file.display()),
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ClientError::Local(format!(
                    "cannot read token file {}: {}",
                    token_file.display(),
                    io_reason(&e)
                )));
            }
        },
    };
    if token.is_empty() {
        return Ok(None);
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ClientError::Local(format!(
            "the token from {origin} contains spaces or characters not allowed in an HTTP header"
        )));
    }
    Ok(Some(token))
}

/// A console API client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    server: String,
    token: Option<String>,
}

impl Client {
    /// Builds a client from the command line: server URL, token, TLS policy.
    pub fn new(args: &ClientArgs) -> Result<Client, ClientError> {
        let base = parse_server(&args.server)?;
        let token = resolve_token(args.token.as_deref(), &args.token_file)?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .danger_accept_invalid_certs(args.insecure_skip_tls_verify)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("autoglm-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                ClientError::Local(format!("cannot set up the HTTP client: {}", root_cause(&e)))
            })?;
        Ok(Client {
            http,
            base,
            server: args.server.trim().trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// The console URL as given on the command line.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Whether a bearer token will be sent.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The URL of `segments` under the server URL, each segment percent-encoded.
    /// `.` and `..` are refused: they cannot travel as path segments.
    pub fn url(&self, segments: &[&str]) -> Result<Url, ClientError> {
        if let Some(bad) = segments.iter().find(|s| matches!(**s, "." | "..")) {
            return Err(ClientError::Local(format!(
                "{bad:?} cannot be used in a URL path"
            )));
        }
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ClientError::Local(format!("invalid --server URL {}", self.server)))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// A request with the bearer token, when there is one.
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request; a non-2xx answer becomes an error.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(sanitize);
        let body = read_capped(response, MAX_ERROR_BODY).await;
        let mut error = decode_error(status, &body);
        match &mut error {
            ClientError::Problem { hint, .. }
                if status == StatusCode::UNAUTHORIZED && self.token.is_none() =>
            {
                *hint = Some(
                    "no token was sent: set AUTOGLM_TOKEN, pass --token or --token-file".to_owned(),
                );
            }
            ClientError::Status { body, .. } if status.is_redirection() && body.is_empty() => {
                if let Some(location) = location {
                    *body = format!("redirected to {location}; check --server");
                }
            }
            _ => {}
        }
        Err(error)
    }

    /// Reads a success answer's JSON body.
    pub async fn json<T: DeserializeOwned>(&self, response: Response) -> Result<T, ClientError> {
        let url = response.url().to_string();
        let body = response.bytes().await.map_err(|e| ClientError::Transport {
            url,
            reason: root_cause(&e),
        })?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET url` and its JSON body.
    pub async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<T, ClientError> {
        let response = self.send(self.request(Method::GET, url)).await?;
        self.json(response).await
    }

    /// Every item of a paged list, following `next_page_token`, stopping at
    /// `limit` items when given. `url` carries the filters; `page_size` is
    /// the largest `limit` asked of one page.
    pub async fn get_all<T: DeserializeOwned>(
        &self,
        url: Url,
        limit: Option<usize>,
        page_size: usize,
    ) -> Result<Vec<T>, ClientError> {
        let mut items: Vec<T> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let wanted = match limit {
                Some(limit) => limit.saturating_sub(items.len()).min(page_size),
                None => page_size,
            };
            if wanted == 0 {
                break;
            }
            let mut page_url = url.clone();
            {
                let mut query = page_url.query_pairs_mut();
                query.append_pair("limit", &wanted.to_string());
                if let Some(token) = &token {
                    query.append_pair("page_token", token);
                }
            }
            let page: Page<T> = self.get_json(page_url).await?;
            items.extend(page.items);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) if token.as_ref() == Some(&next) => {
                    return Err(ClientError::Decode(
                        "the console returned the same page token twice".to_owned(),
                    ));
                }
                Some(next) => token = Some(next),
                None => break,
            }
        }
        if let Some(limit) = limit {
            items.truncate(limit);
        }
        Ok(items)
    }

    fn transport_error(&self, error: &reqwest::Error) -> ClientError {
        let mut reason = root_cause(error);
        if error.is_timeout() && !reason.contains("timed out") {
            reason = format!("timed out ({reason})");
        }
        if error.is_connect() {
            if reason.to_ascii_lowercase().contains("certificate") {
                reason.push_str(
                    " (for a console with a self-signed certificate pass --insecure-skip-tls-verify)",
                );
            }
            ClientError::Unreachable {
                server: self.server.clone(),
                reason,
            }
        } else {
            ClientError::Transport {
                url: error
                    .url()
                    .map_or_else(|| self.server.clone(), |u| u.to_string()),
                reason,
            }
        }
    }
}

/// Reads at most `cap` bytes of a body; a failure ends the read early.
async fn read_capped(mut response: Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < cap {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(cap);
    body
}

/// The innermost cause of an error, in words: an I/O error's kind in plain
/// lower case (`connection refused`), otherwise the deepest message.
pub fn root_cause(error: &(dyn StdError + 'static)) -> String {
    let mut deepest: &(dyn StdError + 'static) = error;
    let mut io_error: Option<&io::Error> = None;
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            io_error = Some(io);
        }
        deepest = e;
        current = e.source();
    }
    match io_error {
        // An operating-system error reads better by its kind; an I/O error
        // wrapping a message (a TLS failure, a file that changed during an
        // upload) is shown as that message.
        Some(io) if io.get_ref().is_none() => io_reason(io),
        _ => deepest.to_string(),
    }
}

/// An I/O error in plain words, without the `(os error N)` suffix.
pub fn io_reason(error: &io::Error) -> String {
    use io::ErrorKind::*;
    let text = match error.kind() {
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset by the console",
        ConnectionAborted => "connection aborted",
        TimedOut => "connection timed out",
        NotFound if error.raw_os_error().is_some() => "no such file or directory",
        PermissionDenied if error.raw_os_error().is_some() => "permission denied",
        AddrNotAvailable => "address not available",
        BrokenPipe => "the console closed the connection",
        _ => return error.to_string(),
    };
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoglm_core::error::ErrorCode;

    #[test]
    fn problem_documents_become_code_and_detail() {
        let mut problem = Problem::new(
            ErrorCode::InvalidName,
            "model name \"../x\" contains '.'; use lower-case letters, digits and '-'",
        );
        problem.request_id = Some("req-1".to_owned());
        let body = serde_json::to_vec(&problem).expect("serialises");
        let error = decode_error(StatusCode::UNPROCESSABLE_ENTITY, &body);
        assert_eq!(error.exit_code(), 1);
        assert_eq!(error.code(), Some("invalid_name"));
        assert_eq!(
            error.to_string(),
            "invalid_name: model name \"../x\" contains '.'; use lower-case letters, digits and '-'"
        );
    }

    #[test]
    fn server_errors_show_the_request_id() {
        let mut problem = Problem::new(ErrorCode::Internal, "database is locked");
        problem.request_id = Some("0193-abc".to_owned());
        let body = serde_json::to_vec(&problem).expect("serialises");
        let error = decode_error(StatusCode::INTERNAL_SERVER_ERROR, &body);
        assert_eq!(
            error.to_string(),
            "internal: database is locked (request id 0193-abc)"
        );
    }

    #[test]
    fn a_problem_without_detail_uses_its_title_and_partial_ones_are_accepted() {
        let error = decode_error(
            StatusCode::FORBIDDEN,
            br#"{"code":"forbidden","title":"The credentials do not allow this action"}"#,
        );
        assert_eq!(
            error.to_string(),
            "forbidden: The credentials do not allow this action"
        );
        let ClientError::Problem { problem, .. } = error else {
            panic!("not a problem");
        };
        assert_eq!(problem.status, 403);
        assert_eq!(problem.type_uri, "https://autoglm.io/problems/forbidden");
    }

    #[test]
    fn non_json_bodies_keep_the_http_status() {
        let error = decode_error(
            StatusCode::BAD_GATEWAY,
            b"\n  upstream connect error\r\nmore detail\n",
        );
        assert_eq!(error.exit_code(), 1);
        assert_eq!(error.code(), None);
        assert_eq!(
            error.to_string(),
            "the console answered HTTP 502 Bad Gateway: upstream connect error"
        );

        let empty = decode_error(StatusCode::SERVICE_UNAVAILABLE, b"");
        assert_eq!(
            empty.to_string(),
            "the console answered HTTP 503 Service Unavailable with an empty body"
        );

        let json_without_code = decode_error(StatusCode::NOT_FOUND, br#"{"error":"nope"}"#);
        assert!(
            json_without_code
                .to_string()
                .starts_with("the console answered HTTP 404 Not Found: ")
        );

        let long = "x".repeat(1000);
        let error = decode_error(StatusCode::INTERNAL_SERVER_ERROR, long.as_bytes());
        assert!(error.to_string().chars().count() < 300);

        let html = decode_error(
            StatusCode::BAD_GATEWAY,
            b"<html>\n<head><title>502 Bad Gateway</title></head>\n<body><h1>Bad   gateway</h1></body></html>",
        );
        assert_eq!(
            html.to_string(),
            "the console answered HTTP 502 Bad Gateway: 502 Bad Gateway Bad gateway"
        );

        let control = decode_error(StatusCode::BAD_REQUEST, b"bad \x1b[31mred\x1b[0m");
        assert!(!control.to_string().contains('\x1b'));
    }

    #[test]
    fn server_urls_are_checked() {
        assert!(parse_server("http://127.0.0.1:8080").is_ok());
        assert!(parse_server("https://console.example/prefix/").is_ok());
        for bad in ["127.0.0.1:8080", "ftp://host", "not a url", ""] {
            let error = parse_server(bad).expect_err(bad);
            assert_eq!(error.exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn urls_encode_segments_and_keep_a_prefix() {
        let args = ClientArgs {
            server: "https://console.example/prefix/".to_owned(),
            token: Some("t".to_owned()),
            ..ClientArgs::default()
        };
        let client = Client::new(&args).expect("builds");
        let url = client.url(&["api", "v1", "models", "../x?y"]).expect("url");
        assert_eq!(
            url.as_str(),
            "https://console.example/prefix/api/v1/models/..%2Fx%3Fy"
        );
        assert_eq!(
            client
                .url(&["api", "v1", "models", ".."])
                .map(|_| ())
                .map_err(|e| e.exit_code()),
            Err(2)
        );
    }

    #[test]
    fn tokens_come_from_the_flag_then_the_file() {
        let dir = std::env::temp_dir().join(format!("autoglm-cli-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("admin-token");
        std::fs::write(&file, "  file-token\n").expect("write");

        assert_eq!(
            resolve_token(Some("flag-token"), &file).expect("ok"),
            Some("flag-token".to_owned())
        );
        assert_eq!(
            resolve_token(None, &file).expect("ok"),
            Some("file-token".to_owned())
        );
        assert_eq!(
            resolve_token(Some(""), &file).expect("ok"),
            Some("file-token".to_owned())
        );
        assert_eq!(resolve_token(None, &dir.join("missing")).expect("ok"), None);
        std::fs::write(&file, "two words").expect("write");
        assert_eq!(
            resolve_token(None, &file).map_err(|e| e.exit_code()),
            Err(2)
        );
        // A directory cannot be read as a token file.
        assert_eq!(resolve_token(None, &dir).map_err(|e| e.exit_code()), Err(2));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn io_errors_read_plainly() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(root_cause(&refused), "connection refused");
        let wrapped = io::Error::other("model.bin changed while uploading");
        assert_eq!(root_cause(&wrapped), "model.bin changed while uploading");
        let unreachable = ClientError::Unreachable {
            server: "http://127.0.0.1:8080".to_owned(),
            reason: "connection refused".to_owned(),
        };
        assert_eq!(
            unreachable.to_string(),
            "cannot reach the console at http://127.0.0.1:8080: connection refused"
        );
    }
}
