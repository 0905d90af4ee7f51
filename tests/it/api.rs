#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
//! End-to-end tests of the management REST API (docs/API.md) over real
//! TCP: authentication (API tokens, session cookie + CSRF, roles, login
//! rate limit), hosts, repository secrets, source groups, schedules, jobs,
//! snapshots, repo stats and missed runs, and the audit log they write.

use crate::common::api::*;
use crate::common::server::{client, spawn_app, TestApp};
use reqwest::{Method, StatusCode};
use restic_manager::auth::Role;
use restic_manager::store::{self, models};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------

/// Login sets a hardened session cookie, answers {user, csrf_token}, and the cookie reaches /me; logout ends the session.
#[actix_web::test]
async fn login_me_logout_with_cookie_and_csrf() {
    let app = spawn_app().await;
    let resp = client()
        .post(app.api("/auth/login"))
        .json(&json!({"username": "admin", "password": app.admin_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let set_cookie = resp
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set_cookie.starts_with("rm_session="), "{set_cookie}");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["username"], "admin");
    assert_eq!(body["user"]["role"], "admin");
    assert!(body["user"]["last_login_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(body["csrf_token"].as_str().unwrap().len(), 64);
    assert!(body["user"].get("password_hash").is_none());

    let browser = login(&app, "admin", &app.admin_password).await;
    let me: Value = browser
        .get(&app, "/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["username"], "admin");
    assert_eq!(me["auth"], "session");
    assert_eq!(me["csrf_token"], browser.csrf.as_str());

    // Logout without the CSRF header is refused and the session lives on.
    let resp = browser.post(&app, "/auth/logout").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "csrf_failed");
    let resp = browser
        .post(&app, "/auth/logout")
        .header("X-CSRF-Token", "0".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        browser.get(&app, "/me").send().await.unwrap().status(),
        StatusCode::OK
    );

    let resp = browser
        .post(&app, "/auth/logout")
        .header("X-CSRF-Token", &browser.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = browser.get(&app, "/me").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    assert_eq!(audit_rows(&app, "login").await.len(), 2);
    let logouts = audit_rows(&app, "logout").await;
    assert_eq!(logouts.len(), 1);
    assert_eq!(logouts[0].actor, "admin");
    assert_eq!(logouts[0].source_addr.as_deref(), Some("127.0.0.1"));
}

/// A cookie session needs the CSRF token on state changes, not on reads; a bearer token needs none.
#[actix_web::test]
async fn csrf_required_for_cookie_state_changes_only() {
    let app = spawn_app().await;
    let host = create_host(&app, "web-1").await;
    let browser = login(&app, "admin", &app.admin_password).await;
    let path = format!("/hosts/{host}");
    let resp = browser.get(&app, &path).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = browser
        .patch(&app, &path)
        .json(&json!({"display_name": "Web"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = browser
        .patch(&app, &path)
        .header("X-CSRF-Token", &browser.csrf)
        .json(&json!({"display_name": "Web"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, body) = call(
        &app,
        &app.admin_token,
        Method::PATCH,
        &path,
        Some(json!({"display_name": "Web 2"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["display_name"], "Web 2");
}

/// Wrong password, unknown user and disabled user all get the same 401, and each is audited as a failed login.
#[actix_web::test]
async fn login_failures_are_401_and_audited() {
    let app = spawn_app().await;
    user_with_token(&app, "olga", Role::Operator, "olga-password-1").await;
    let try_login = |username: &'static str, password: &'static str| {
        let url = app.api("/auth/login");
        async move {
            let resp = client()
                .post(url)
                .json(&json!({"username": username, "password": password}))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let wrong = try_login("olga", "not-her-password").await;
    let unknown = try_login("nobody", "whatever-password").await;
    let m1 = assert_error(&wrong, StatusCode::UNAUTHORIZED, "unauthorized");
    let m2 = assert_error(&unknown, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        m1, m2,
        "the answer must not reveal whether the account exists"
    );

    let pool = app.state.pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get().unwrap();
        let user = store::users::by_username(&mut conn, "olga")
            .unwrap()
            .unwrap();
        store::users::set_disabled(&mut conn, &user.id, true, store::now_ms()).unwrap();
    })
    .await
    .unwrap();
    let disabled = try_login("olga", "olga-password-1").await;
    assert_error(&disabled, StatusCode::UNAUTHORIZED, "unauthorized");

    // One row per account and address in a window, with the count (issue 15 B.2).
    let failed = audit_rows(&app, "login.failed").await;
    let rows: Vec<(String, Value)> = failed
        .iter()
        .map(|r| {
            let detail: Value = r.detail.clone().unwrap();
            (r.actor.clone(), json!([detail["count"], detail["reasons"]]))
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "olga".to_owned(),
                json!([2, {"wrong_password": 1, "disabled": 1}])
            ),
            ("nobody".to_owned(), json!([1, {"unknown_user": 1}])),
        ]
    );
    assert!(failed
        .iter()
        .all(|r| r.source_addr.as_deref() == Some("127.0.0.1")));
    // A malformed body is a 400 naming the field.
    let resp = client()
        .post(app.api("/auth/login"))
        .json(&json!({"username": "olga"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("password"));
}

/// After five failed logins for one account from one address, the sixth from there is 429 with Retry-After even with the right password, and all six are one audit row.
#[actix_web::test]
async fn login_rate_limited_per_account() {
    let app = spawn_app().await;
    for _ in 0..5 {
        let resp = client()
            .post(app.api("/auth/login"))
            .json(&json!({"username": "admin", "password": "wrong-password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = client()
        .post(app.api("/auth/login"))
        .json(&json!({"username": "admin", "password": app.admin_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    let failed = audit_rows(&app, "login.failed").await;
    assert_eq!(failed.len(), 1, "one row per account, address and window");
    let detail = failed[0].detail.as_ref().unwrap();
    assert_eq!(detail["count"], 6);
    assert_eq!(detail["reasons"]["rate_limited"], 1);
    // API tokens are not affected by the login limit.
    let (status, _) = get(&app, &app.admin_token, "/me").await;
    assert_eq!(status, StatusCode::OK);
}

/// No credentials, a malformed header, an unknown, expired or revoked token, and an expired session are each 401 JSON.
#[actix_web::test]
async fn unauthenticated_requests_are_401() {
    let app = spawn_app().await;
    let resp = client().get(app.api("/hosts")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    let resp = client()
        .get(app.api("/hosts"))
        .header("Authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_error(
        &get(&app, &"f".repeat(64), "/hosts").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    // Expired and revoked API tokens.
    let pool = app.state.pool.clone();
    let (expired, revoked) = actix_web::web::block(move || {
        let expired = restic_manager::admin::create_api_token(
            &pool,
            "admin",
            "short",
            Some(std::time::Duration::from_millis(1)),
        )
        .unwrap();
        let revoked =
            restic_manager::admin::create_api_token(&pool, "admin", "revoked", None).unwrap();
        let mut conn = pool.get().unwrap();
        let hash = restic_manager::auth::hash_token(&revoked);
        let row = store::api_tokens::find_valid(&mut conn, &hash, store::now_ms())
            .unwrap()
            .unwrap()
            .0;
        store::api_tokens::revoke(&mut conn, &row.id, store::now_ms()).unwrap();
        (expired, revoked)
    })
    .await
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_error(
        &get(&app, &expired, "/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &get(&app, &revoked, "/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    // An expired session.
    let browser = login(&app, "admin", &app.admin_password).await;
    db(&app, |conn| {
        use diesel::prelude::*;
        diesel::update(store::schema::sessions::table)
            .set(store::schema::sessions::expires_at.eq(store::now_ms() - 1))
            .execute(conn)
            .unwrap();
    })
    .await;
    let resp = browser.get(&app, "/me").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
}

/// GET /me with an API token names the user and role and has no CSRF token.
#[actix_web::test]
async fn me_with_api_token() {
    let app = spawn_app().await;
    let viewer = user_with_token(&app, "vera", Role::Viewer, "vera-password-1").await;
    let (status, body) = get(&app, &viewer, "/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user"]["username"], "vera");
    assert_eq!(body["user"]["role"], "viewer");
    assert_eq!(body["auth"], "api_token");
    assert!(body.get("csrf_token").is_none());
}

// ---------------------------------------------------------------------------
// Hosts
// ---------------------------------------------------------------------------

/// Hosts list with API.md's fields, filters by status and text, and pages with limit/offset and a total.
#[actix_web::test]
async fn hosts_list_filter_and_pagination() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for name in ["alpha", "bravo", "charlie", "delta", "echo"] {
        ids.push(create_host(&app, name).await);
    }
    let online = ids[1].clone();
    db(&app, move |conn| {
        store::hosts::set_online(conn, &online, true, store::now_ms()).unwrap();
    })
    .await;

    let (status, body) = get(&app, &app.admin_token, "/hosts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 5);
    let first = &body["items"][0];
    for field in [
        "id",
        "hostname",
        "display_name",
        "os",
        "arch",
        "agent_version",
        "restic_version",
        "status",
        "last_seen",
        "schedule_version",
        "acked_schedule_version",
    ] {
        assert!(first.get(field).is_some(), "missing {field}: {first}");
    }
    assert_eq!(first["hostname"], "alpha");
    assert_eq!(first["status"], "offline");
    assert_eq!(first["schedule_version"], 1);
    assert_eq!(first["acked_schedule_version"], 0);
    assert!(first.get("agent_token_hash").is_none());

    let (_, body) = get(&app, &app.admin_token, "/hosts?status=online").await;
    assert_eq!(body["total"], 1);
    assert_eq!(body["items"][0]["hostname"], "bravo");
    assert_eq!(body["items"][0]["status"], "online");
    assert!(body["items"][0]["last_seen"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let (_, body) = get(&app, &app.admin_token, "/hosts?status=offline").await;
    assert_eq!(body["total"], 4);
    let (_, body) = get(&app, &app.admin_token, "/hosts?q=HARL").await;
    assert_eq!(body["total"], 1);
    assert_eq!(body["items"][0]["hostname"], "charlie");

    let (_, body) = get(&app, &app.admin_token, "/hosts?limit=2&offset=2").await;
    assert_eq!(body["total"], 5);
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["charlie", "delta"]);
    // A full page's total: the live hosts' summary row unfiltered, a count
    // filtered; past the end, the same.
    for (query, total, len) in [
        ("limit=2", 5, 2),
        ("limit=2&offset=9", 5, 0),
        ("status=offline&limit=2", 4, 2),
        ("status=offline&limit=2&offset=9", 4, 0),
    ] {
        let (_, body) = get(&app, &app.admin_token, &format!("/hosts?{query}")).await;
        assert_eq!(body["total"], total, "{query}");
        assert_eq!(body["items"].as_array().unwrap().len(), len, "{query}");
    }

    let bad = get(&app, &app.admin_token, "/hosts?status=sleeping").await;
    assert!(assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed").contains("status"));
    let bad = get(&app, &app.admin_token, "/hosts?limit=0").await;
    assert!(assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed").contains("limit"));
    let bad = get(&app, &app.admin_token, "/hosts?limit=abc").await;
    assert!(assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed").contains("limit"));
}

/// GET/PATCH a host: display name and labels change, null clears, bad input is 400, unknown ids 404, and the change is audited.
#[actix_web::test]
async fn host_get_and_patch() {
    let app = spawn_app().await;
    let host = create_host(&app, "db-1").await;
    let path = format!("/hosts/{host}");
    let (status, body) = get(&app, &app.admin_token, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], host.as_str());
    assert_eq!(body["labels"], json!({}));

    let (status, body) = call(
        &app,
        &app.admin_token,
        Method::PATCH,
        &path,
        Some(json!({"display_name": "Database", "labels": {"env": "prod", "team": "ops"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["display_name"], "Database");
    assert_eq!(body["labels"], json!({"env": "prod", "team": "ops"}));

    let (_, body) = call(
        &app,
        &app.admin_token,
        Method::PATCH,
        &path,
        Some(json!({})),
    )
    .await;
    assert_eq!(body["display_name"], "Database", "absent fields are kept");
    let (_, body) = call(
        &app,
        &app.admin_token,
        Method::PATCH,
        &path,
        Some(json!({"display_name": null})),
    )
    .await;
    assert_eq!(body["display_name"], Value::Null);
    assert_eq!(body["labels"]["env"], "prod");

    let bad = call(
        &app,
        &app.admin_token,
        Method::PATCH,
        &path,
        Some(json!({"labels": {"bad key": "x"}})),
    )
    .await;
    assert!(assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed").contains("labels"));
    let bad = call(
        &app,
        &app.admin_token,
        Method::PATCH,
        &path,
        Some(json!({"hostname": "evil"})),
    )
    .await;
    assert!(assert_error(&bad, StatusCode::BAD_REQUEST, "bad_request").contains("hostname"));

    let missing = get(&app, &app.admin_token, "/hosts/no-such-host").await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
    let missing = call(
        &app,
        &app.admin_token,
        Method::PATCH,
        "/hosts/no-such-host",
        Some(json!({"display_name": "x"})),
    )
    .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");

    let updates = audit_rows(&app, "host.update").await;
    assert_eq!(updates.len(), 3);
    assert_eq!(updates[0].target.as_deref(), Some(host.as_str()));
    assert_eq!(updates[0].actor, "admin");
}

/// DELETE /hosts/{id} is admin-only: it revokes the host (gone from the API, agent token dead) and is audited.
#[actix_web::test]
async fn host_revoke_admin_only() {
    let app = spawn_app().await;
    let host = create_host(&app, "old-box").await;
    let operator = user_with_token(&app, "otto", Role::Operator, "otto-password-1").await;
    let path = format!("/hosts/{host}");
    let refused = call(&app, &operator, Method::DELETE, &path, None).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");

    let (status, body) = call(&app, &app.admin_token, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_error(
        &get(&app, &app.admin_token, &path).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (_, list) = get(&app, &app.admin_token, "/hosts").await;
    assert_eq!(list["total"], 0);
    let again = call(&app, &app.admin_token, Method::DELETE, &path, None).await;
    assert_error(&again, StatusCode::NOT_FOUND, "not_found");

    let revoked_at = db(&app, {
        let host = host.clone();
        move |conn| store::hosts::get(conn, &host).unwrap().unwrap().revoked_at
    })
    .await;
    assert!(revoked_at.is_some());
    let rows = audit_rows(&app, "host.revoke").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].target.as_deref(), Some(host.as_str()));
}

/// A viewer reads hosts but may not change them (403 forbidden), an operator may.
#[actix_web::test]
async fn host_roles() {
    let app = spawn_app().await;
    let host = create_host(&app, "web").await;
    let viewer = user_with_token(&app, "vic", Role::Viewer, "vic-password-1").await;
    let operator = user_with_token(&app, "ola", Role::Operator, "ola-password-1").await;
    let path = format!("/hosts/{host}");
    assert_eq!(get(&app, &viewer, "/hosts").await.0, StatusCode::OK);
    assert_eq!(get(&app, &viewer, &path).await.0, StatusCode::OK);
    let patch = Some(json!({"display_name": "x"}));
    let refused = call(&app, &viewer, Method::PATCH, &path, patch.clone()).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    let refused = call(&app, &viewer, Method::DELETE, &path, None).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        call(&app, &operator, Method::PATCH, &path, patch).await.0,
        StatusCode::OK
    );
}

/// A JSON body over the 1 MiB limit is 413, and an unsupported method is a JSON 405.
#[actix_web::test]
async fn oversized_body_and_wrong_method() {
    let app = spawn_app().await;
    let host = create_host(&app, "big").await;
    let huge = "x".repeat(restic_manager::http::API_JSON_LIMIT + 10);
    let got = call(
        &app,
        &app.admin_token,
        Method::PATCH,
        &format!("/hosts/{host}"),
        Some(json!({"display_name": huge})),
    )
    .await;
    assert_error(&got, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let got = call(
        &app,
        &app.admin_token,
        Method::PUT,
        "/hosts",
        Some(json!({})),
    )
    .await;
    assert_error(&got, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

/// The host's current schedule version.
async fn schedule_version(app: &TestApp, host: &str) -> i64 {
    let host = host.to_owned();
    db(app, move |conn| {
        store::schedule_versions::get(conn, &host)
            .unwrap()
            .unwrap()
            .version
    })
    .await
}

/// Every byte of the data directory's files (the SQLite database, its WAL
/// and journal).
fn data_dir_bytes(app: &TestApp) -> Vec<u8> {
    let mut all = Vec::new();
    let mut dirs = vec![app.dir.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                all.extend(std::fs::read(path).unwrap());
            }
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------
// Repository
// ---------------------------------------------------------------------------

/// PUT seals password and credential (never returned, not in the SQLite files, opened back with the key), keeps them when omitted, bumps the schedule version and is audited.
#[actix_web::test]
async fn repository_secrets_are_write_only_and_sealed() {
    let app = spawn_app().await;
    let host = create_host(&app, "files").await;
    let path = format!("/hosts/{host}/repository");
    let password = "correct-horse-battery-staple-4242";
    let credential = "aws-secret-key-XYZZY-0123456789";

    let missing = get(&app, &app.admin_token, &path).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
    let version_before = schedule_version(&app, &host).await;

    let resp = client()
        .put(app.api(&path))
        .bearer_auth(&app.admin_token)
        .json(&json!({
            "url": "s3:s3.example.com/backups/files",
            "username": "AKIAEXAMPLE",
            "password": password,
            "credential": credential,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(
        !text.contains(password) && !text.contains(credential),
        "{text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["url"], "s3:s3.example.com/backups/files");
    assert_eq!(body["username"], "AKIAEXAMPLE");
    assert_eq!(body["password_set"], true);
    assert_eq!(body["credential_set"], true);
    assert!(schedule_version(&app, &host).await > version_before);

    let (status, read) = get(&app, &app.admin_token, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["password_set"], true);
    assert!(!read.to_string().contains(password));

    // The stored bytes are sealed for this repository's id.
    let stored = db(&app, {
        let host = host.clone();
        move |conn| {
            store::repositories::get_for_host(conn, &host)
                .unwrap()
                .unwrap()
        }
    })
    .await;
    let sealed = stored.password_sealed.clone().unwrap();
    assert!(!contains(&sealed, password.as_bytes()));
    let opened =
        restic_manager::crypto::open_string(&app.state.key, &sealed, stored.id.as_bytes()).unwrap();
    assert_eq!(opened, password);
    let opened = restic_manager::crypto::open_string(
        &app.state.key,
        stored.credential_sealed.as_deref().unwrap(),
        stored.id.as_bytes(),
    )
    .unwrap();
    assert_eq!(opened, credential);
    let files = data_dir_bytes(&app);
    assert!(
        !contains(&files, password.as_bytes()),
        "password in the data dir"
    );
    assert!(
        !contains(&files, credential.as_bytes()),
        "credential in the data dir"
    );

    // A PUT without secrets keeps them.
    let (status, body) = call(
        &app,
        &app.admin_token,
        Method::PUT,
        &path,
        Some(json!({"url": "s3:s3.example.com/backups/files2"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["url"], "s3:s3.example.com/backups/files2");
    assert_eq!(body["password_set"], true);
    assert_eq!(body["credential_set"], true);
    let after = db(&app, {
        let host = host.clone();
        move |conn| {
            store::repositories::get_for_host(conn, &host)
                .unwrap()
                .unwrap()
        }
    })
    .await;
    assert_eq!(after.id, stored.id);
    assert_eq!(after.password_sealed, stored.password_sealed);

    let audits = audit_rows(&app, "repository.create").await;
    assert_eq!(audits.len(), 1);
    let detail = audits[0].detail.as_ref().unwrap().to_string();
    assert!(detail.contains("\"password_changed\":true"), "{detail}");
    assert!(!detail.contains(password));
    assert_eq!(audit_rows(&app, "repository.update").await.len(), 1);
}

/// Repository PUT: empty url or password is 400 naming it, unknown fields are 400, a viewer is 403, an unknown host 404.
#[actix_web::test]
async fn repository_errors() {
    let app = spawn_app().await;
    let host = create_host(&app, "files").await;
    let path = format!("/hosts/{host}/repository");
    let viewer = user_with_token(&app, "vi", Role::Viewer, "vi-password-123").await;
    let put = |body: Value| call(&app, &app.admin_token, Method::PUT, &path, Some(body));
    let bad = put(json!({"url": ""})).await;
    assert!(assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed").starts_with("url:"));
    let bad = put(json!({"url": "/srv/r", "password": ""})).await;
    assert!(
        assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed").starts_with("password:")
    );
    let bad = put(json!({"password": "x"})).await;
    assert!(assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed").contains("url"));
    let bad = put(json!({"url": "/srv/r", "password_set": true})).await;
    assert!(assert_error(&bad, StatusCode::BAD_REQUEST, "bad_request").contains("password_set"));
    let refused = call(
        &app,
        &viewer,
        Method::PUT,
        &path,
        Some(json!({"url": "/srv/r", "password": "pw"})),
    )
    .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    let missing = call(
        &app,
        &app.admin_token,
        Method::PUT,
        "/hosts/nope/repository",
        Some(json!({"url": "/srv/r"})),
    )
    .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
    assert!(audit_rows(&app, "repository.create").await.is_empty());
}

// ---------------------------------------------------------------------------
// Source groups
// ---------------------------------------------------------------------------

fn group_body(name: &str) -> Value {
    json!({
        "name": name,
        "includes": ["/etc", "/home"],
        "excludes": ["*.tmp"],
        "retention_policy": {"keep_daily": 7, "keep_weekly": 4},
        "retry_max": 2,
        "retry_backoff_seconds": 60
    })
}

/// Source groups: create (201), list, read, replace, delete (204); each change bumps the schedule version and is audited.
#[actix_web::test]
async fn source_group_crud() {
    let app = spawn_app().await;
    let host = create_host(&app, "web").await;
    let base = format!("/hosts/{host}/source-groups");
    let v0 = schedule_version(&app, &host).await;

    let (status, created) = call(
        &app,
        &app.admin_token,
        Method::POST,
        &base,
        Some(group_body("etc")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "etc");
    assert_eq!(created["host_id"], host.as_str());
    assert_eq!(created["includes"], json!(["/etc", "/home"]));
    assert_eq!(created["excludes"], json!(["*.tmp"]));
    assert_eq!(
        created["retention_policy"],
        json!({"keep_daily": 7, "keep_weekly": 4})
    );
    assert_eq!(created["retry_max"], 2);
    assert_eq!(created["retry_backoff_seconds"], 60);
    let gid = created["id"].as_str().unwrap().to_owned();
    let v1 = schedule_version(&app, &host).await;
    assert!(v1 > v0);

    let (status, minimal) = call(
        &app,
        &app.admin_token,
        Method::POST,
        &base,
        Some(json!({"name": "var", "includes": ["/var"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{minimal}");
    assert_eq!(minimal["retention_policy"], Value::Null);
    assert_eq!(minimal["excludes"], json!([]));
    assert_eq!(minimal["retry_backoff_seconds"], 300);

    let (status, list) = get(&app, &app.admin_token, &base).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 2);
    assert_eq!(list["items"][0]["name"], "etc");
    assert_eq!(list["items"][1]["name"], "var");

    let one = format!("{base}/{gid}");
    let (status, read) = get(&app, &app.admin_token, &one).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["id"], gid.as_str());

    let mut replaced = group_body("etc-renamed");
    replaced["retention_policy"] = Value::Null;
    let (status, updated) = call(&app, &app.admin_token, Method::PUT, &one, Some(replaced)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "etc-renamed");
    assert_eq!(updated["retention_policy"], Value::Null);
    let v2 = schedule_version(&app, &host).await;
    assert!(v2 > v1);

    let (status, _) = call(&app, &app.admin_token, Method::DELETE, &one, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &get(&app, &app.admin_token, &one).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert!(schedule_version(&app, &host).await > v2);
    let again = call(&app, &app.admin_token, Method::DELETE, &one, None).await;
    assert_error(&again, StatusCode::NOT_FOUND, "not_found");

    assert_eq!(audit_rows(&app, "source_group.create").await.len(), 2);
    assert_eq!(audit_rows(&app, "source_group.update").await.len(), 1);
    let deleted = audit_rows(&app, "source_group.delete").await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].target.as_deref(), Some(gid.as_str()));
}

/// Source group errors: 409 for a name taken on the host (create and rename), 400 naming the field, 403 for a viewer, 404 for a group of another host.
#[actix_web::test]
async fn source_group_errors() {
    let app = spawn_app().await;
    let host = create_host(&app, "web").await;
    let other = create_host(&app, "db").await;
    let base = format!("/hosts/{host}/source-groups");
    let post = |path: String, body: Value| {
        let app = &app;
        async move { call(app, &app.admin_token, Method::POST, &path, Some(body)).await }
    };

    let (status, _) = post(base.clone(), group_body("etc")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, second) = post(base.clone(), group_body("home")).await;
    assert_eq!(status, StatusCode::CREATED);
    let taken = post(base.clone(), group_body("etc")).await;
    assert!(assert_error(&taken, StatusCode::CONFLICT, "conflict").contains("etc"));
    // The same name on another host is fine.
    let (status, on_other) = post(format!("/hosts/{other}/source-groups"), group_body("etc")).await;
    assert_eq!(status, StatusCode::CREATED);
    // Renaming onto a taken name is a conflict too.
    let home = format!("{base}/{}", second["id"].as_str().unwrap());
    let rename = call(
        &app,
        &app.admin_token,
        Method::PUT,
        &home,
        Some(group_body("etc")),
    )
    .await;
    assert_error(&rename, StatusCode::CONFLICT, "conflict");

    let cases = [
        (json!({"name": "", "includes": ["/"]}), "name"),
        (json!({"name": "x", "includes": []}), "includes"),
        (
            json!({"name": "x", "includes": ["/"], "retention_policy": {}}),
            "retention_policy",
        ),
        (
            json!({"name": "x", "includes": ["/"], "retention_policy": {"keep_within": "forever"}}),
            "retention_policy",
        ),
    ];
    for (body, field) in cases {
        let got = post(base.clone(), body.clone()).await;
        let message = assert_error(&got, StatusCode::BAD_REQUEST, "validation_failed");
        assert!(message.starts_with(field), "{body}: {message}");
    }
    let missing_field = post(base.clone(), json!({"name": "x"})).await;
    assert!(
        assert_error(&missing_field, StatusCode::BAD_REQUEST, "validation_failed")
            .contains("includes")
    );

    let viewer = user_with_token(&app, "vi", Role::Viewer, "vi-password-123").await;
    assert_eq!(get(&app, &viewer, &base).await.0, StatusCode::OK);
    let refused = call(&app, &viewer, Method::POST, &base, Some(group_body("new"))).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    let refused = call(&app, &viewer, Method::DELETE, &home, None).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");

    let foreign = format!("{base}/{}", on_other["id"].as_str().unwrap());
    assert_error(
        &get(&app, &app.admin_token, &foreign).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let unknown_host = get(&app, &app.admin_token, "/hosts/nope/source-groups").await;
    assert_error(&unknown_host, StatusCode::NOT_FOUND, "not_found");
}

// ---------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------

/// Schedules: create with group names (201, five next runs, a description), list, replace, disable (no next runs), delete; versions bump; audited.
#[actix_web::test]
async fn schedule_crud() {
    let app = spawn_app().await;
    let host = create_host(&app, "web").await;
    for name in ["etc", "home"] {
        let (status, _) = call(
            &app,
            &app.admin_token,
            Method::POST,
            &format!("/hosts/{host}/source-groups"),
            Some(group_body(name)),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let base = format!("/hosts/{host}/schedules");
    let v0 = schedule_version(&app, &host).await;
    let (status, created) = call(
        &app,
        &app.admin_token,
        Method::POST,
        &base,
        Some(json!({"cron_expr": "0 2 * * *", "enabled": true, "source_groups": ["home", "etc"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["cron_expr"], "0 2 * * *");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["source_groups"], json!(["etc", "home"]));
    let runs: Vec<chrono::DateTime<chrono::Utc>> = created["next_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(runs.len(), 5);
    for pair in runs.windows(2) {
        assert_eq!(pair[1] - pair[0], chrono::Duration::days(1));
    }
    assert!(runs
        .iter()
        .all(|t| t.format("%H:%M:%S").to_string() == "02:00:00"));
    assert!(runs[0] > chrono::Utc::now());
    assert!(!created["description"].as_str().unwrap().is_empty());
    let sid = created["id"].as_str().unwrap().to_owned();
    let v1 = schedule_version(&app, &host).await;
    assert!(v1 > v0);

    let (status, list) = get(&app, &app.admin_token, &base).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"], sid.as_str());
    assert_eq!(list["items"][0]["next_runs"].as_array().unwrap().len(), 5);
    assert!(list["items"][0]["description"].is_string());

    let one = format!("{base}/{sid}");
    let (status, updated) = call(
        &app,
        &app.admin_token,
        Method::PUT,
        &one,
        Some(json!({"cron_expr": "*/30 * * * *", "enabled": false, "source_groups": ["etc"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["cron_expr"], "*/30 * * * *");
    assert_eq!(updated["enabled"], false);
    assert_eq!(updated["source_groups"], json!(["etc"]));
    assert_eq!(updated["next_runs"], json!([]));
    let v2 = schedule_version(&app, &host).await;
    assert!(v2 > v1);
    let (_, read) = get(&app, &app.admin_token, &one).await;
    assert_eq!(read["cron_expr"], "*/30 * * * *");

    let (status, _) = call(&app, &app.admin_token, Method::DELETE, &one, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &get(&app, &app.admin_token, &one).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert!(schedule_version(&app, &host).await > v2);
    assert_eq!(audit_rows(&app, "schedule.create").await.len(), 1);
    assert_eq!(audit_rows(&app, "schedule.update").await.len(), 1);
    assert_eq!(audit_rows(&app, "schedule.delete").await.len(), 1);
}

/// Schedule errors: an invalid cron is 400 invalid_cron with croner's reason; unknown or missing groups are 400; a viewer is 403; other hosts' schedules 404.
#[actix_web::test]
async fn schedule_errors() {
    let app = spawn_app().await;
    let host = create_host(&app, "web").await;
    let other = create_host(&app, "db").await;
    let (status, _) = call(
        &app,
        &app.admin_token,
        Method::POST,
        &format!("/hosts/{host}/source-groups"),
        Some(group_body("etc")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let base = format!("/hosts/{host}/schedules");
    let post = |body: Value| call(&app, &app.admin_token, Method::POST, &base, Some(body));

    let bad = post(json!({"cron_expr": "61 * * * *", "source_groups": ["etc"]})).await;
    let message = assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_cron");
    assert!(message.starts_with("cron_expr: "), "{message}");
    let croner_reason = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .build()
        .parse("61 * * * *")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(&croner_reason),
        "{message} vs {croner_reason}"
    );
    let bad = post(json!({"cron_expr": "every day", "source_groups": ["etc"]})).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_cron");

    let bad = post(json!({"cron_expr": "0 2 * * *", "source_groups": ["nope"]})).await;
    let message = assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(
        message.starts_with("source_groups:") && message.contains("nope"),
        "{message}"
    );
    let bad = post(json!({"cron_expr": "0 2 * * *", "source_groups": []})).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed");
    let bad = post(json!({"cron_expr": "0 2 * * *"})).await;
    assert!(
        assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed")
            .starts_with("source_groups:")
    );

    let viewer = user_with_token(&app, "vi", Role::Viewer, "vi-password-123").await;
    let refused = call(
        &app,
        &viewer,
        Method::POST,
        &base,
        Some(json!({"cron_expr": "0 2 * * *", "source_groups": ["etc"]})),
    )
    .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");

    let (status, created) = post(json!({"cron_expr": "0 2 * * *", "source_groups": ["etc"]})).await;
    assert_eq!(status, StatusCode::CREATED);
    let sid = created["id"].as_str().unwrap();
    let foreign = get(
        &app,
        &app.admin_token,
        &format!("/hosts/{other}/schedules/{sid}"),
    )
    .await;
    assert_error(&foreign, StatusCode::NOT_FOUND, "not_found");
    // A group of another host cannot be attached.
    let (status, _) = call(
        &app,
        &app.admin_token,
        Method::POST,
        &format!("/hosts/{other}/source-groups"),
        Some(group_body("dbdata")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let bad = post(json!({"cron_expr": "0 2 * * *", "source_groups": ["dbdata"]})).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed");
    assert_eq!(audit_rows(&app, "schedule.create").await.len(), 1);
}

// ---------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------

/// Creates a source group through the API.
async fn add_group(app: &TestApp, host: &str, body: Value) {
    let (status, body) = call(
        app,
        &app.admin_token,
        Method::POST,
        &format!("/hosts/{host}/source-groups"),
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Run now: a backup of a group is 201 queued with the group's paths; the job reads back by id and is audited.
#[actix_web::test]
async fn run_now_creates_queued_job() {
    let app = spawn_app().await;
    let host = create_host(&app, "web").await;
    add_group(&app, &host, group_body("etc")).await;
    let (status, job) = call(
        &app,
        &app.admin_token,
        Method::POST,
        &format!("/hosts/{host}/jobs"),
        Some(json!({"kind": "backup", "source_group": "etc"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["status"], "queued");
    assert_eq!(job["kind"], "backup");
    assert_eq!(job["trigger"], "manual");
    assert_eq!(job["host_id"], host.as_str());
    assert_eq!(job["tag"], "etc");
    assert_eq!(job["includes"], json!(["/etc", "/home"]));
    assert_eq!(job["attempt"], 1);
    assert!(job["created_at"].as_str().unwrap().ends_with('Z'));
    for field in ["started_at", "finished_at", "progress", "stats", "error"] {
        assert_eq!(job[field], Value::Null, "{field}");
    }
    let id = job["id"].as_str().unwrap();
    let (status, read) = get(&app, &app.admin_token, &format!("/jobs/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["id"], id);
    assert_eq!(read["status"], "queued");

    // Kinds that act on the whole repository need no group.
    let (status, check) = call(
        &app,
        &app.admin_token,
        Method::POST,
        &format!("/hosts/{host}/jobs"),
        Some(json!({"kind": "check"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{check}");
    assert_eq!(check["source_group_id"], Value::Null);

    let rows = audit_rows(&app, "job.create").await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].target.as_deref(), Some(id));
}

/// Run-now errors: backup without group, unknown kind, unknown group, group on a repository-wide kind (400 naming the field); viewer 403; unknown host 404.
#[actix_web::test]
async fn run_now_errors() {
    let app = spawn_app().await;
    let host = create_host(&app, "web").await;
    add_group(&app, &host, json!({"name": "plain", "includes": ["/srv"]})).await;
    let path = format!("/hosts/{host}/jobs");
    let post = |body: Value| call(&app, &app.admin_token, Method::POST, &path, Some(body));
    let cases = [
        (json!({"kind": "backup"}), "source_group:"),
        (json!({"kind": "defrag"}), "kind:"),
        (
            json!({"kind": "backup", "source_group": "nope"}),
            "source_group:",
        ),
        (
            json!({"kind": "prune", "source_group": "plain"}),
            "source_group:",
        ),
        (
            json!({"kind": "forget", "source_group": "plain"}),
            "source_group:",
        ),
    ];
    for (body, field) in cases {
        let got = post(body.clone()).await;
        let message = assert_error(&got, StatusCode::BAD_REQUEST, "validation_failed");
        assert!(message.starts_with(field), "{body}: {message}");
    }
    let got = post(json!({"source_group": "plain"})).await;
    assert!(assert_error(&got, StatusCode::BAD_REQUEST, "bad_request").contains("kind"));

    let viewer = user_with_token(&app, "vi", Role::Viewer, "vi-password-123").await;
    let refused = call(
        &app,
        &viewer,
        Method::POST,
        &path,
        Some(json!({"kind": "check"})),
    )
    .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    let missing = call(
        &app,
        &app.admin_token,
        Method::POST,
        "/hosts/nope/jobs",
        Some(json!({"kind": "check"})),
    )
    .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        &get(&app, &app.admin_token, "/jobs/nope").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (_, list) = get(&app, &app.admin_token, "/jobs").await;
    assert_eq!(list["total"], 0);
    assert!(audit_rows(&app, "job.create").await.is_empty());
}

/// GET /jobs filters by host, status, kind and since, lists newest first and pages with a total; stats and progress read back as objects.
#[actix_web::test]
async fn job_list_filters_and_pagination() {
    let app = spawn_app().await;
    let web = create_host(&app, "web").await;
    let dbh = create_host(&app, "db").await;
    add_group(&app, &web, group_body("etc")).await;
    let mut ids = Vec::new();
    for (host, kind) in [
        (&web, "backup"),
        (&web, "check"),
        (&dbh, "prune"),
        (&web, "unlock"),
        (&dbh, "check"),
    ] {
        let body = if kind == "backup" {
            json!({"kind": kind, "source_group": "etc"})
        } else {
            json!({"kind": kind})
        };
        let (status, job) = call(
            &app,
            &app.admin_token,
            Method::POST,
            &format!("/hosts/{host}/jobs"),
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{job}");
        ids.push(job["id"].as_str().unwrap().to_owned());
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    // The first job finished with stats; the second reports progress.
    let (first, second) = (ids[0].clone(), ids[1].clone());
    db(&app, move |conn| {
        let progress = serde_json::from_value(json!({"job_id": second, "percent_done": 0.5}));
        store::jobs::update_progress(conn, &progress.unwrap()).unwrap();
        store::jobs::finish(
            conn,
            &first,
            &models::JobFinish {
                status: store::JobStatus::Succeeded,
                finished_at: store::now_ms(),
                exit_code: Some(0),
                error: None,
                warning: None,
                stats: Some(json!({"files_new": 3, "data_added": 1024})),
            },
        )
        .unwrap();
    })
    .await;

    let (status, all) = get(&app, &app.admin_token, "/jobs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["total"], 5);
    let order: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    let mut newest_first: Vec<&str> = ids.iter().map(String::as_str).collect();
    newest_first.reverse();
    assert_eq!(order, newest_first);

    let (_, page) = get(&app, &app.admin_token, "/jobs?limit=2&offset=1").await;
    assert_eq!(page["total"], 5);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["id"], ids[3].as_str());

    let (_, by_host) = get(&app, &app.admin_token, &format!("/jobs?host_id={dbh}")).await;
    assert_eq!(by_host["total"], 2);
    let (_, by_kind) = get(&app, &app.admin_token, "/jobs?kind=check").await;
    assert_eq!(by_kind["total"], 2);
    let (_, done) = get(&app, &app.admin_token, "/jobs?status=succeeded").await;
    assert_eq!(done["total"], 1);
    // A full page's total: from the summary rows (read beside the page)
    // for kind and status, counted otherwise; past the end, the same.
    for (query, total, len) in [
        ("kind=check&limit=1", 2, 1),
        ("kind=check&limit=1&offset=7", 2, 0),
        ("status=succeeded&limit=1", 1, 1),
        (&*format!("host_id={dbh}&limit=1"), 2, 1),
        (&*format!("host_id={dbh}&limit=1&offset=9"), 2, 0),
    ] {
        let (_, page) = get(&app, &app.admin_token, &format!("/jobs?{query}")).await;
        assert_eq!(page["total"], total, "{query}");
        assert_eq!(page["items"].as_array().unwrap().len(), len, "{query}");
    }
    assert_eq!(
        done["items"][0]["stats"],
        json!({"files_new": 3, "data_added": 1024})
    );
    assert_eq!(done["items"][0]["exit_code"], 0);
    assert!(done["items"][0]["finished_at"].is_string());
    let (_, running) = get(&app, &app.admin_token, &format!("/jobs/{}", ids[1])).await;
    assert_eq!(running["progress"]["job_id"], ids[1].as_str());
    assert_eq!(running["progress"]["percent_done"], 0.5);
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (status, none) = get(
        &app,
        &app.admin_token,
        &format!("/jobs?since={}", urlencode(&future)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{none}");
    assert_eq!(none["total"], 0);
    let (_, since_past) = get(&app, &app.admin_token, "/jobs?since=2020-01-01T00:00:00Z").await;
    assert_eq!(since_past["total"], 5);

    for (query, field) in [
        ("status=done", "status"),
        ("kind=defrag", "kind"),
        ("since=yesterday", "since"),
        ("limit=5000", "limit"),
    ] {
        let got = get(&app, &app.admin_token, &format!("/jobs?{query}")).await;
        assert!(
            assert_error(&got, StatusCode::BAD_REQUEST, "validation_failed").starts_with(field)
        );
    }
}

/// Percent-encodes a query value (enough for RFC 3339 times).
fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

/// Job logs page by after_seq and limit, in seq order; an unknown job is 404.
#[actix_web::test]
async fn job_logs_pagination() {
    let app = spawn_app().await;
    let host = create_host(&app, "web").await;
    let (_, job) = call(
        &app,
        &app.admin_token,
        Method::POST,
        &format!("/hosts/{host}/jobs"),
        Some(json!({"kind": "check"})),
    )
    .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let job_id = id.clone();
    db(&app, move |conn| {
        let lines: Vec<models::NewJobLog> = (1..=25)
            .map(|seq| models::NewJobLog {
                job_id: job_id.clone().into(),
                seq,
                ts: store::now_ms(),
                stream: if seq % 2 == 0 {
                    store::LogStream::Stderr
                } else {
                    store::LogStream::Stdout
                },
                payload: format!("line {seq}"),
            })
            .collect();
        store::job_logs::insert_batch(conn, &lines).unwrap();
    })
    .await;
    let (status, page) = get(&app, &app.admin_token, &format!("/jobs/{id}/logs?limit=10")).await;
    assert_eq!(status, StatusCode::OK);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    assert_eq!(items[0]["seq"], 1);
    assert_eq!(items[0]["stream"], "stdout");
    assert_eq!(items[0]["payload"], "line 1");
    assert!(items[0]["ts"].as_str().unwrap().ends_with('Z'));
    assert_eq!(items[1]["stream"], "stderr");
    let (_, rest) = get(
        &app,
        &app.admin_token,
        &format!("/jobs/{id}/logs?after_seq=20"),
    )
    .await;
    let seqs: Vec<i64> = rest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [21, 22, 23, 24, 25]);
    let (_, empty) = get(
        &app,
        &app.admin_token,
        &format!("/jobs/{id}/logs?after_seq=25"),
    )
    .await;
    assert_eq!(empty["items"], json!([]));
    assert_error(
        &get(&app, &app.admin_token, "/jobs/nope/logs").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let bad = get(
        &app,
        &app.admin_token,
        &format!("/jobs/{id}/logs?after_seq=x"),
    )
    .await;
    assert!(
        assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed").starts_with("after_seq")
    );
}

/// Cancel: 202 for a queued job (then cancelled), 409 once finished, 404 unknown, 403 for a viewer; audited.
#[actix_web::test]
async fn cancel_job() {
    let app = spawn_app().await;
    let host = create_host(&app, "web").await;
    let (_, job) = call(
        &app,
        &app.admin_token,
        Method::POST,
        &format!("/hosts/{host}/jobs"),
        Some(json!({"kind": "prune"})),
    )
    .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let path = format!("/jobs/{id}/cancel");
    let viewer = user_with_token(&app, "vi", Role::Viewer, "vi-password-123").await;
    let refused = call(&app, &viewer, Method::POST, &path, None).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");

    let operator = user_with_token(&app, "op", Role::Operator, "op-password-123").await;
    let (status, body) = call(&app, &operator, Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["outcome"], "cancelled");
    let (_, read) = get(&app, &app.admin_token, &format!("/jobs/{id}")).await;
    assert_eq!(read["status"], "cancelled");

    let again = call(&app, &operator, Method::POST, &path, None).await;
    assert_error(&again, StatusCode::CONFLICT, "already_finished");
    let missing = call(&app, &operator, Method::POST, "/jobs/nope/cancel", None).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
    let rows = audit_rows(&app, "job.cancel").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].actor, "op");
    assert_eq!(rows[0].target.as_deref(), Some(id.as_str()));
}

// ---------------------------------------------------------------------------
// Reports: snapshots, repo stats, missed runs
// ---------------------------------------------------------------------------

/// Snapshots list the last report newest first with paths and tags, paged; unknown host 404.
#[actix_web::test]
async fn snapshots_list() {
    let app = spawn_app().await;
    let host = create_host(&app, "web").await;
    let h = host.clone();
    db(&app, move |conn| {
        let report: Vec<models::NewSnapshot> = (0..3)
            .map(|i| models::NewSnapshot {
                snapshot_id: format!("{i}{}", "a".repeat(63)),
                short_id: format!("{i}aaaaaaa"),
                time: 1_767_225_600_000 + i * 86_400_000,
                hostname: "web".into(),
                paths: vec!["/etc".to_owned()],
                tags: vec!["etc".to_owned()],
                size_bytes: Some(1000 + i),
                file_count: Some(10),
            })
            .collect();
        store::snapshots::replace_for_host(conn, &h, &report, store::now_ms()).unwrap();
    })
    .await;
    let path = format!("/hosts/{host}/snapshots");
    let viewer = user_with_token(&app, "vi", Role::Viewer, "vi-password-123").await;
    let (status, body) = get(&app, &viewer, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 3);
    let first = &body["items"][0];
    assert_eq!(first["short_id"], "2aaaaaaa");
    assert_eq!(first["time"], "2026-01-03T00:00:00.000Z");
    assert_eq!(first["paths"], json!(["/etc"]));
    assert_eq!(first["tags"], json!(["etc"]));
    assert_eq!(first["size_bytes"], 1002);
    let (_, page) = get(&app, &viewer, &format!("{path}?limit=1&offset=2")).await;
    assert_eq!(page["total"], 3);
    assert_eq!(page["items"][0]["short_id"], "0aaaaaaa");
    assert_error(
        &get(&app, &viewer, "/hosts/nope/snapshots").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

/// Repo stats are a time series, oldest first, filtered by since; a bad since is 400.
#[actix_web::test]
async fn repo_stats_series() {
    let app = spawn_app().await;
    let host = create_host(&app, "web").await;
    let h = host.clone();
    let t0 = 1_767_225_600_000_i64; // 2026-01-01T00:00:00Z
    db(&app, move |conn| {
        for i in 0..4 {
            store::repo_stats::insert(
                conn,
                &models::RepoStats {
                    id: store::new_id(),
                    host_id: h.clone(),
                    recorded_at: t0 + i * 3_600_000,
                    size_bytes: Some(100 * (i + 1)),
                    snapshot_count: Some(i + 1),
                    dedup_ratio: Some(1.5),
                    last_check_at: None,
                    last_check_status: None,
                    lock_state: Some("unlocked".into()),
                },
            )
            .unwrap();
        }
    })
    .await;
    let path = format!("/hosts/{host}/repo-stats");
    let (status, all) = get(&app, &app.admin_token, &path).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["total"], 4);
    assert_eq!(all["items"][0]["recorded_at"], "2026-01-01T00:00:00.000Z");
    assert_eq!(all["items"][3]["size_bytes"], 400);
    assert_eq!(all["items"][0]["dedup_ratio"], 1.5);
    assert_eq!(all["items"][0]["lock_state"], "unlocked");
    let (_, recent) = get(
        &app,
        &app.admin_token,
        &format!("{path}?since=2026-01-01T02:00:00Z"),
    )
    .await;
    assert_eq!(recent["total"], 2);
    assert_eq!(
        recent["items"][0]["recorded_at"],
        "2026-01-01T02:00:00.000Z"
    );
    let bad = get(&app, &app.admin_token, &format!("{path}?since=2026-13-01")).await;
    assert!(assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed").starts_with("since"));
    assert_error(
        &get(&app, &app.admin_token, "/hosts/nope/repo-stats").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

/// Missed runs list latest first, filter by host and since, and page.
#[actix_web::test]
async fn missed_runs_list() {
    let app = spawn_app().await;
    let web = create_host(&app, "web").await;
    let dbh = create_host(&app, "db").await;
    let mut schedules = Vec::new();
    for host in [&web, &dbh] {
        add_group(&app, host, group_body("etc")).await;
        let (status, s) = call(
            &app,
            &app.admin_token,
            Method::POST,
            &format!("/hosts/{host}/schedules"),
            Some(json!({"cron_expr": "0 * * * *", "source_groups": ["etc"]})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        schedules.push(s["id"].as_str().unwrap().to_owned());
    }
    let t0 = 1_767_225_600_000_i64;
    let (w, d, sw, sd) = (
        web.clone(),
        dbh.clone(),
        schedules[0].clone(),
        schedules[1].clone(),
    );
    db(&app, move |conn| {
        for i in 0..3 {
            for (host, schedule) in [(&w, &sw), (&d, &sd)] {
                store::missed_runs::insert_ignore(
                    conn,
                    &models::MissedRun {
                        id: store::new_id(),
                        host_id: host.clone(),
                        schedule_id: schedule.clone(),
                        scheduled_at: t0 + i * 3_600_000,
                        detected_at: t0 + i * 3_600_000 + 600_000,
                    },
                )
                .unwrap();
            }
        }
    })
    .await;
    let viewer = user_with_token(&app, "vi", Role::Viewer, "vi-password-123").await;
    let (status, all) = get(&app, &viewer, "/missed-runs").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["total"], 6);
    assert_eq!(all["items"][0]["scheduled_at"], "2026-01-01T02:00:00.000Z");
    assert_eq!(all["items"][0]["detected_at"], "2026-01-01T02:10:00.000Z");
    let (_, web_only) = get(&app, &viewer, &format!("/missed-runs?host_id={web}")).await;
    assert_eq!(web_only["total"], 3);
    assert!(web_only["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["host_id"] == web.as_str() && m["schedule_id"] == schedules[0].as_str()));
    let (_, since) = get(
        &app,
        &viewer,
        &format!("/missed-runs?host_id={web}&since=2026-01-01T01:00:00Z"),
    )
    .await;
    assert_eq!(since["total"], 2);
    let (_, page) = get(&app, &viewer, "/missed-runs?limit=4&offset=4").await;
    assert_eq!(page["total"], 6);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let bad = get(&app, &viewer, "/missed-runs?since=noon").await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed");
}
