//! REST API test helpers: bearer-token calls that parse the JSON answer,
//! API.md error assertions, users with tokens, hosts written straight to
//! the store, audit rows, and a cookie "browser" from a real login.

use reqwest::{Method, StatusCode};
use restic_manager::auth::Role;
use restic_manager::store::{self, models};
use serde_json::{json, Value};

use super::server::{client, TestApp};

/// Runs a blocking store closure on the app's pool.
pub async fn db<T: Send + 'static>(
    app: &TestApp,
    f: impl FnOnce(&mut store::DbConnection) -> T + Send + 'static,
) -> T {
    let pool = app.state.pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get().unwrap();
        f(&mut conn)
    })
    .await
    .unwrap()
}

/// Stores a one-snapshot report (snapshot `full`, restic's full id) for
/// `host_id`.
pub async fn add_snapshot(app: &TestApp, host_id: &str, full: &str) {
    let (host, full) = (host_id.to_owned(), full.to_owned());
    db(app, move |conn| {
        let snapshot = models::NewSnapshot {
            short_id: full[..8].to_owned(),
            snapshot_id: full,
            time: store::now_ms(),
            hostname: "web".into(),
            paths: vec!["/srv".to_owned()],
            tags: Vec::new(),
            size_bytes: None,
            file_count: None,
        };
        store::snapshots::replace_for_host(conn, &host, &[snapshot], store::now_ms()).unwrap();
    })
    .await;
}

/// Creates a host directly in the store, as a current scripted agent
/// would leave it ([`super::agent::capabilities`]); returns its id.
pub async fn create_host(app: &TestApp, hostname: &str) -> String {
    let hostname = hostname.to_owned();
    db(app, move |conn| {
        let now = store::now_ms();
        store::hosts::insert(
            conn,
            &models::NewHost {
                agent_version: Some(env!("CARGO_PKG_VERSION").into()),
                restic_version: Some("0.17.3".into()),
                capabilities: super::agent::capabilities(),
                ..models::NewHost::new(
                    store::new_id(),
                    hostname,
                    restic_manager::auth::hash_token(&store::new_id()),
                    now,
                )
            },
        )
        .unwrap()
        .id
        .into_string()
    })
    .await
}

/// Creates a user with this role and password, and an API token for it.
pub async fn user_with_token(app: &TestApp, username: &str, role: Role, password: &str) -> String {
    let pool = app.state.pool.clone();
    let (username, password) = (username.to_owned(), password.to_owned());
    actix_web::web::block(move || {
        restic_manager::admin::add_user(&pool, &username, role, &password).unwrap();
        restic_manager::admin::create_api_token(&pool, &username, "tests", None).unwrap()
    })
    .await
    .unwrap()
}

/// Sends a request with a bearer token and an optional JSON body; returns
/// the status and the parsed body (`Value::Null` when empty).
pub async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = client().request(method, app.api(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, value)
}

pub async fn get(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    call(app, token, Method::GET, path, None).await
}

/// The `/metrics` text (no credentials needed).
pub async fn metrics_text(app: &TestApp) -> String {
    client()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Asserts an API.md error body with this status and code; returns its message.
pub fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) -> String {
    assert_eq!(got.0, status, "body: {}", got.1);
    assert_eq!(got.1["error"]["code"], code, "body: {}", got.1);
    got.1["error"]["message"].as_str().unwrap().to_owned()
}

/// Writes the failed logins counted so far (they reach the audit log in
/// aggregate, once a minute).
pub async fn flush_failed_logins(app: &TestApp) {
    app.state
        .actors
        .login_audit
        .send(restic_manager::actors::login_audit::FlushLoginAudit)
        .await
        .unwrap()
        .unwrap();
}

/// Audit rows with this action, oldest first (failed logins flushed first).
pub async fn audit_rows(app: &TestApp, action: &str) -> Vec<models::AuditEntry> {
    flush_failed_logins(app).await;
    let action = action.to_owned();
    db(app, move |conn| {
        let mut rows = store::audit::list(
            conn,
            &store::audit::AuditFilter {
                action: Some(action),
                limit: 1000,
                ..Default::default()
            },
        )
        .unwrap()
        .items;
        rows.reverse();
        rows
    })
    .await
}

/// A browser: the session cookie from a login and its CSRF token.
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
}

impl Browser {
    /// A request carrying the session cookie (and no CSRF header).
    pub fn request(&self, app: &TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
        client()
            .request(method, app.api(path))
            .header("Cookie", &self.cookie)
    }

    pub fn get(&self, app: &TestApp, path: &str) -> reqwest::RequestBuilder {
        self.request(app, Method::GET, path)
    }

    /// A GET of a web UI page (`path` under the server's root, not the API).
    pub fn page(&self, app: &TestApp, path: &str) -> reqwest::RequestBuilder {
        client().get(app.url(path)).header("Cookie", &self.cookie)
    }

    pub fn post(&self, app: &TestApp, path: &str) -> reqwest::RequestBuilder {
        self.request(app, Method::POST, path)
    }

    pub fn patch(&self, app: &TestApp, path: &str) -> reqwest::RequestBuilder {
        self.request(app, Method::PATCH, path)
    }
}

/// Logs in as `username`; returns the browser's cookie and CSRF token.
pub async fn login(app: &TestApp, username: &str, password: &str) -> Browser {
    let resp = client()
        .post(app.api("/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("rm_session="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let body: Value = resp.json().await.unwrap();
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    Browser { cookie, csrf }
}
