//! Forms and queries the pages cannot read, and forms without the right
//! CSRF token, through the console's real router over a real home folder
//! (SQLite, the bootstrap's secret): each is refused with an RFC 9457
//! problem document and changes nothing; the token a page carries is an HMAC
//! under the installation's key and is the same after a restart.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use autoglm_console::bootstrap;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The console (API and pages) over `home`, and the admin's API key.
fn open(home: &Path, token: Option<String>) -> (Router, String) {
    let opened = bootstrap::open(home, Some("a-long-password-1")).unwrap();
    let token = token.or(opened.new_admin_token).unwrap();
    let api = autoglm_console::router(opened.state.clone());
    let ui = autoglm_web::router(autoglm_web::WebConfig::default(), api);
    (autoglm_console::router_with_ui(opened.state, ui), token)
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
}

impl Answer {
    fn problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(
            self.content_type, "application/problem+json",
            "{}",
            self.body
        );
        let problem: Value = serde_json::from_str(&self.body).unwrap();
        assert_eq!(problem["code"], code, "{problem}");
        assert_eq!(problem["status"], status, "{problem}");
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{problem}"
        );
        problem
    }
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn get(uri: &str, token: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::COOKIE, format!("autoglm_session={token}"))
        .body(Body::empty())
        .unwrap()
}

fn post(uri: &str, token: &str, content_type: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::COOKIE, format!("autoglm_session={token}"))
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

const FORM: &str = "application/x-www-form-urlencoded";

/// The CSRF token the models page puts in its forms.
async fn page_token(app: &Router, token: &str) -> String {
    let page = send(app, get("/ui/models", token)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let at = page.body.find("name=\"csrf\" value=\"").unwrap() + 19;
    page.body[at..at + 32].to_owned()
}

/// The names of the models the API lists.
async fn models(app: &Router, token: &str) -> Vec<String> {
    let request = Request::get("/api/v1/models")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let answer = send(app, request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let list: Value = serde_json::from_str(&answer.body).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn unreadable_forms_and_queries_are_problems_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (app, token) = open(&dir.path().join("home"), None);
    let csrf = page_token(&app, &token).await;

    // A query parameter given twice where the page reads one.
    let query = send(&app, get("/ui/models?q=a&q=b", &token)).await;
    let problem = query.problem(400, "invalid_query");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("duplicate field"),
        "{problem}"
    );

    // A form field given twice, JSON where a form is due, a forged token.
    let twice = format!("csrf={csrf}&name=first&name=second");
    let problem = send(&app, post("/ui/models", &token, FORM, &twice))
        .await
        .problem(422, "invalid_body");
    assert!(
        problem["detail"].as_str().unwrap().contains("name"),
        "{problem}"
    );
    let json = format!(r#"{{"csrf": "{csrf}", "name": "from-json"}}"#);
    send(&app, post("/ui/models", &token, "application/json", &json))
        .await
        .problem(415, "unsupported_media_type");
    send(
        &app,
        post("/ui/models", &token, FORM, "csrf=forged&name=forged"),
    )
    .await
    .problem(403, "forbidden");
    assert_eq!(models(&app, &token).await, Vec::<String>::new());

    // The same form, well formed, does what it says.
    creates_chat(&app, &token, &csrf).await;
}

#[tokio::test]
async fn the_csrf_token_is_keyed_and_outlives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let (app, token) = open(&home, None);
    let csrf = page_token(&app, &token).await;
    // The unkeyed hash of the credential that the token used to be is
    // refused: knowing the credential is not enough to make a form's token.
    let unkeyed = autoglm_auth::secret_hash(&format!("csrf:{token}"))[..32].to_owned();
    assert_ne!(unkeyed, csrf);
    send(
        &app,
        post(
            "/ui/models",
            &token,
            FORM,
            &format!("csrf={unkeyed}&name=forged"),
        ),
    )
    .await
    .problem(403, "forbidden");
    assert_eq!(models(&app, &token).await, Vec::<String>::new());
    drop(app);

    // The console restarts over the same home: a page opened before still posts.
    let (app, token) = open(&home, Some(token));
    assert_eq!(page_token(&app, &token).await, csrf);
    creates_chat(&app, &token, &csrf).await;
}

/// Posts the new-model form for `chat` with a good token: it is created.
async fn creates_chat(app: &axum::Router, token: &str, csrf: &str) {
    let created = send(
        app,
        post("/ui/models", token, FORM, &format!("csrf={csrf}&name=chat")),
    )
    .await;
    assert!(
        created.status.is_redirection(),
        "{} {}",
        created.status,
        created.body
    );
    assert_eq!(models(app, token).await, ["chat"]);
}
