#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
//! End-to-end tests of the administration API over real TCP: enrolment
//! tokens, users, API tokens and the audit log — happy paths, 400s naming
//! the field, 401/403 per role, 404, 409, pagination, the audit rows each
//! change writes, and that no answer holds a secret or a hash.

use crate::common::api::*;
use crate::common::server::{client, spawn_app, TestApp};
use reqwest::{Method, StatusCode};
use restic_manager::auth::Role;
use restic_manager::store;
use serde_json::{json, Value};

/// Asserts that no answer text holds any of these secrets or an argon2 hash.
fn assert_no_secret(body: &Value, secrets: &[&str]) {
    let text = body.to_string();
    assert!(!text.contains("$argon2"), "a password hash leaked: {text}");
    assert!(!text.contains("password_hash"), "{text}");
    assert!(!text.contains("token_hash"), "{text}");
    for secret in secrets {
        assert!(!text.contains(secret), "a secret leaked: {text}");
    }
}

/// A viewer and an operator with API tokens.
async fn lesser_tokens(app: &TestApp) -> (String, String) {
    let viewer = user_with_token(app, "vera", Role::Viewer, "viewer-password").await;
    let operator = user_with_token(app, "otto", Role::Operator, "operator-password").await;
    (viewer, operator)
}

// ---------------------------------------------------------------------------
// Enrolment tokens
// ---------------------------------------------------------------------------

/// Create answers the token once (201), the list shows it without the secret, the token enrols a host once, revoke is 204 and audited.
#[actix_web::test]
async fn enrollment_token_lifecycle() {
    let app = spawn_app().await;
    let t = &app.admin_token;

    let created = call(
        &app,
        t,
        Method::POST,
        "/enrollment-tokens",
        Some(json!({"ttl_seconds": 3600})),
    )
    .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    let token = created.1["token"].as_str().unwrap().to_owned();
    let id = created.1["id"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64);
    let expires = chrono::DateTime::parse_from_rfc3339(created.1["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    let now = chrono::Utc::now().timestamp();
    assert!((expires - now - 3600).abs() < 60, "{expires} vs {now}");

    // The default ttl is a day.
    let default = call(&app, t, Method::POST, "/enrollment-tokens", Some(json!({}))).await;
    assert_eq!(default.0, StatusCode::CREATED);
    let default_id = default.1["id"].as_str().unwrap().to_owned();

    let list = get(&app, t, "/enrollment-tokens").await;
    assert_eq!(list.0, StatusCode::OK);
    assert_eq!(list.1["total"], 2);
    let item = &list.1["items"][1];
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["created_by"], "admin");
    assert!(item.get("token").is_none());
    assert_no_secret(&list.1, &[&token]);

    // Paged.
    let page = get(&app, t, "/enrollment-tokens?limit=1&offset=1").await;
    assert_eq!(page.1["total"], 2);
    assert_eq!(page.1["items"].as_array().unwrap().len(), 1);
    assert_eq!(page.1["items"][0]["id"], id.as_str());

    // The token enrols a host; a used token is no longer listed and cannot be revoked.
    let enrolled = client()
        .post(app.api("/agent/enroll"))
        .json(&json!({"token": token, "hostname": "web1", "os": "linux", "arch": "amd64"}))
        .send()
        .await
        .unwrap();
    assert_eq!(enrolled.status(), StatusCode::OK);
    let list = get(&app, t, "/enrollment-tokens").await;
    assert_eq!(list.1["total"], 1);
    let used = call(
        &app,
        t,
        Method::DELETE,
        &format!("/enrollment-tokens/{id}"),
        None,
    )
    .await;
    assert_error(&used, StatusCode::CONFLICT, "conflict");

    // Revoke the other: 204, gone from the list, enrolment refused, a second revoke 404.
    let revoked = call(
        &app,
        t,
        Method::DELETE,
        &format!("/enrollment-tokens/{default_id}"),
        None,
    )
    .await;
    assert_eq!(revoked.0, StatusCode::NO_CONTENT);
    assert_eq!(get(&app, t, "/enrollment-tokens").await.1["total"], 0);
    let default_token = default.1["token"].as_str().unwrap();
    let refused = client()
        .post(app.api("/agent/enroll"))
        .json(&json!({"token": default_token, "hostname": "web2", "os": "linux", "arch": "amd64"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let again = call(
        &app,
        t,
        Method::DELETE,
        &format!("/enrollment-tokens/{default_id}"),
        None,
    )
    .await;
    assert_error(&again, StatusCode::NOT_FOUND, "not_found");

    let creates = audit_rows(&app, "enrollment_token.create").await;
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[0].actor, "admin");
    assert_eq!(creates[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(creates[0].source_addr.as_deref(), Some("127.0.0.1"));
    let revokes = audit_rows(&app, "enrollment_token.revoke").await;
    assert_eq!(revokes.len(), 1);
    assert_eq!(revokes[0].target.as_deref(), Some(default_id.as_str()));
    for row in creates.iter().chain(&revokes) {
        assert!(!row
            .detail
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default()
            .contains(&token));
    }
}

/// Enrolment token errors: ttl out of range or of the wrong type is 400 naming it; unknown fields 400; viewer and operator 403; no credentials 401.
#[actix_web::test]
async fn enrollment_token_errors() {
    let app = spawn_app().await;
    let t = &app.admin_token;
    for ttl in [json!(59), json!(2_592_001)] {
        let got = call(
            &app,
            t,
            Method::POST,
            "/enrollment-tokens",
            Some(json!({ "ttl_seconds": ttl })),
        )
        .await;
        let message = assert_error(&got, StatusCode::BAD_REQUEST, "validation_failed");
        assert!(message.starts_with("ttl_seconds:"), "{message}");
    }
    let got = call(
        &app,
        t,
        Method::POST,
        "/enrollment-tokens",
        Some(json!({"ttl_seconds": "soon"})),
    )
    .await;
    let message = assert_error(&got, StatusCode::BAD_REQUEST, "bad_request");
    assert!(message.contains("ttl_seconds"), "{message}");
    let got = call(
        &app,
        t,
        Method::POST,
        "/enrollment-tokens",
        Some(json!({"ttl": 60})),
    )
    .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "bad_request");

    let (viewer, operator) = lesser_tokens(&app).await;
    for token in [&viewer, &operator] {
        let got = call(
            &app,
            token,
            Method::POST,
            "/enrollment-tokens",
            Some(json!({})),
        )
        .await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
        assert_error(
            &get(&app, token, "/enrollment-tokens").await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        let got = call(&app, token, Method::DELETE, "/enrollment-tokens/x", None).await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    let anonymous = client()
        .get(app.api("/enrollment-tokens"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(audit_rows(&app, "enrollment_token.create").await.is_empty());
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

/// Add a user (201, no hash), it logs in; list and read it; change role, disable (sessions end, token refused), enable, reset password (old one refused); delete (204); each change audited.
#[actix_web::test]
async fn user_lifecycle() {
    let app = spawn_app().await;
    let t = &app.admin_token;

    let created = call(
        &app,
        t,
        Method::POST,
        "/users",
        Some(json!({"username": "carol", "password": "first-password", "role": "viewer"})),
    )
    .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    assert_eq!(created.1["username"], "carol");
    assert_eq!(created.1["role"], "viewer");
    assert_eq!(created.1["disabled"], false);
    assert_no_secret(&created.1, &["first-password"]);
    let id = created.1["id"].as_str().unwrap().to_owned();

    let browser = login(&app, "carol", "first-password").await;
    let me = browser.get(&app, "/me").send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);

    let list = get(&app, t, "/users").await;
    assert_eq!(list.1["total"], 2);
    let names: Vec<&str> = list.1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "carol"]);
    assert_no_secret(&list.1, &["first-password"]);
    let page = get(&app, t, "/users?limit=1&offset=1").await;
    assert_eq!(page.1["items"][0]["username"], "carol");
    assert_eq!(page.1["total"], 2);
    let one = get(&app, t, &format!("/users/{id}")).await;
    assert_eq!(one.1["id"], id.as_str());

    // Change role.
    let patched = call(
        &app,
        t,
        Method::PATCH,
        &format!("/users/{id}"),
        Some(json!({"role": "operator"})),
    )
    .await;
    assert_eq!(patched.0, StatusCode::OK, "{}", patched.1);
    assert_eq!(patched.1["role"], "operator");

    // Disable: the session ends and login is refused.
    let patched = call(
        &app,
        t,
        Method::PATCH,
        &format!("/users/{id}"),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(patched.1["disabled"], true);
    let me = browser.get(&app, "/me").send().await.unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    let refused = client()
        .post(app.api("/auth/login"))
        .json(&json!({"username": "carol", "password": "first-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // Enable and reset the password: the new one works, the old one not, old sessions end.
    let patched = call(
        &app,
        t,
        Method::PATCH,
        &format!("/users/{id}"),
        Some(json!({"disabled": false})),
    )
    .await;
    assert_eq!(patched.1["disabled"], false);
    let before_reset = login(&app, "carol", "first-password").await;
    let patched = call(
        &app,
        t,
        Method::PATCH,
        &format!("/users/{id}"),
        Some(json!({"password": "second-password"})),
    )
    .await;
    assert_eq!(patched.0, StatusCode::OK);
    assert_no_secret(&patched.1, &["second-password"]);
    let me = before_reset.get(&app, "/me").send().await.unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    login(&app, "carol", "second-password").await;
    let old = client()
        .post(app.api("/auth/login"))
        .json(&json!({"username": "carol", "password": "first-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);

    // Delete.
    let deleted = call(&app, t, Method::DELETE, &format!("/users/{id}"), None).await;
    assert_eq!(deleted.0, StatusCode::NO_CONTENT);
    assert_error(
        &get(&app, t, &format!("/users/{id}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    let create = audit_rows(&app, "user.create").await;
    assert_eq!(create.len(), 1);
    assert_eq!(create[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(create[0].actor, "admin");
    let updates = audit_rows(&app, "user.update").await;
    assert_eq!(updates.len(), 4);
    let detail: Value = updates[0].detail.clone().unwrap();
    assert_eq!(
        detail["role"],
        json!({"from": "viewer", "to": "operator"}),
        "{detail}"
    );
    let reset: Value = updates[3].detail.clone().unwrap();
    assert_eq!(reset["password_reset"], true);
    assert_eq!(reset["sessions_ended"], 1);
    assert_eq!(audit_rows(&app, "user.delete").await.len(), 1);
    for row in create.iter().chain(&updates) {
        let detail = row
            .detail
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default();
        assert!(
            !detail.contains("password\":\"") && !detail.contains("second-password"),
            "{detail}"
        );
    }
}

/// User errors: 400 naming the field (username, password, role, empty patch, unknown field), 409 username taken, 404 unknown id, 403 for viewer and operator.
#[actix_web::test]
async fn user_errors() {
    let app = spawn_app().await;
    let t = &app.admin_token;
    let cases = [
        (
            json!({"username": "bad name", "password": "long enough", "role": "viewer"}),
            "username:",
        ),
        (
            json!({"username": "dave", "password": "short", "role": "viewer"}),
            "password:",
        ),
        (
            json!({"username": "dave", "password": "long enough", "role": "root"}),
            "role:",
        ),
    ];
    for (body, field) in cases {
        let got = call(&app, t, Method::POST, "/users", Some(body.clone())).await;
        let message = assert_error(&got, StatusCode::BAD_REQUEST, "validation_failed");
        assert!(message.starts_with(field), "{body}: {message}");
    }
    let missing = call(
        &app,
        t,
        Method::POST,
        "/users",
        Some(json!({"username": "dave", "role": "viewer"})),
    )
    .await;
    let message = assert_error(&missing, StatusCode::BAD_REQUEST, "bad_request");
    assert!(message.contains("password"), "{message}");

    let taken = call(
        &app,
        t,
        Method::POST,
        "/users",
        Some(json!({"username": "admin", "password": "long enough", "role": "viewer"})),
    )
    .await;
    let message = assert_error(&taken, StatusCode::CONFLICT, "conflict");
    assert!(message.starts_with("username:"), "{message}");

    let unknown = call(
        &app,
        t,
        Method::PATCH,
        "/users/nobody",
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "not_found");
    let gone = call(&app, t, Method::DELETE, "/users/nobody", None).await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");

    let (viewer, operator) = lesser_tokens(&app).await;
    let admin_id = db(&app, |c| {
        store::users::by_username(c, "admin").unwrap().unwrap().id
    })
    .await;
    let empty = call(
        &app,
        t,
        Method::PATCH,
        &format!("/users/{admin_id}"),
        Some(json!({})),
    )
    .await;
    let message = assert_error(&empty, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(message.starts_with("body:"), "{message}");
    let extra = call(
        &app,
        t,
        Method::PATCH,
        &format!("/users/{admin_id}"),
        Some(json!({"password_hash": "x"})),
    )
    .await;
    assert_error(&extra, StatusCode::BAD_REQUEST, "bad_request");

    for token in [&viewer, &operator] {
        assert_error(
            &get(&app, token, "/users").await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        let got = call(
            &app,
            token,
            Method::POST,
            "/users",
            Some(json!({"username": "eve", "password": "long enough", "role": "admin"})),
        )
        .await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
        let got = call(
            &app,
            token,
            Method::PATCH,
            &format!("/users/{admin_id}"),
            Some(json!({"role": "viewer"})),
        )
        .await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
        let got = call(
            &app,
            token,
            Method::DELETE,
            &format!("/users/{admin_id}"),
            None,
        )
        .await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    assert!(audit_rows(&app, "user.update").await.is_empty());
}

/// The last enabled admin can be neither demoted, disabled nor deleted (409 last_admin); with a second admin it can; a disabled admin does not count.
#[actix_web::test]
async fn last_admin_is_protected() {
    let app = spawn_app().await;
    let t = &app.admin_token;
    let admin_id = db(&app, |c| {
        store::users::by_username(c, "admin").unwrap().unwrap().id
    })
    .await;
    let path = format!("/users/{admin_id}");
    for body in [json!({"role": "operator"}), json!({"disabled": true})] {
        let got = call(&app, t, Method::PATCH, &path, Some(body)).await;
        assert_error(&got, StatusCode::CONFLICT, "last_admin");
    }
    let got = call(&app, t, Method::DELETE, &path, None).await;
    assert_error(&got, StatusCode::CONFLICT, "last_admin");

    // A disabled second admin does not count.
    let second = call(
        &app,
        t,
        Method::POST,
        "/users",
        Some(json!({"username": "root2", "password": "second-admin", "role": "admin"})),
    )
    .await;
    let second_id = second.1["id"].as_str().unwrap().to_owned();
    let got = call(
        &app,
        t,
        Method::PATCH,
        &format!("/users/{second_id}"),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(got.0, StatusCode::OK);
    let got = call(&app, t, Method::DELETE, &path, None).await;
    assert_error(&got, StatusCode::CONFLICT, "last_admin");

    // Enabled, it does: the first admin may now be demoted.
    call(
        &app,
        t,
        Method::PATCH,
        &format!("/users/{second_id}"),
        Some(json!({"disabled": false})),
    )
    .await;
    let got = call(
        &app,
        t,
        Method::PATCH,
        &path,
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["role"], "viewer");
    // The demoted admin's own API token lost its power at once.
    assert_error(
        &get(&app, t, "/users").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

// ---------------------------------------------------------------------------
// API tokens
// ---------------------------------------------------------------------------

/// Create a token (201, shown once), it authenticates; a viewer-capped token reads but cannot change; list hides secrets; revoke (204) makes it 401; audited.
#[actix_web::test]
async fn api_token_lifecycle() {
    let app = spawn_app().await;
    let t = &app.admin_token;
    let created = call(
        &app,
        t,
        Method::POST,
        "/api-tokens",
        Some(json!({"name": "ci", "ttl_seconds": 3600})),
    )
    .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    let token = created.1["token"].as_str().unwrap().to_owned();
    let id = created.1["id"].as_str().unwrap().to_owned();
    assert_eq!(created.1["name"], "ci");
    assert_eq!(created.1["username"], "admin");
    assert_eq!(created.1["role"], Value::Null);
    assert_eq!(created.1["expired"], false);
    assert!(created.1["expires_at"].is_string());
    assert_eq!(get(&app, &token, "/users").await.0, StatusCode::OK);

    let capped = call(
        &app,
        t,
        Method::POST,
        "/api-tokens",
        Some(json!({"name": "dashboards", "role": "viewer"})),
    )
    .await;
    assert_eq!(capped.1["role"], "viewer");
    assert_eq!(capped.1["expires_at"], Value::Null);
    let viewer_token = capped.1["token"].as_str().unwrap().to_owned();
    assert_eq!(get(&app, &viewer_token, "/hosts").await.0, StatusCode::OK);
    assert_error(
        &get(&app, &viewer_token, "/users").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let me = get(&app, &viewer_token, "/me").await;
    assert_eq!(me.1["user"]["username"], "admin");

    let list = get(&app, t, "/api-tokens").await;
    assert_eq!(list.0, StatusCode::OK);
    // The test harness's own token, plus the two.
    assert_eq!(list.1["total"], 3);
    assert_eq!(list.1["items"][0]["name"], "dashboards");
    assert!(list.1["items"][0].get("token").is_none());
    assert_no_secret(&list.1, &[&token, &viewer_token, t]);
    let page = get(&app, t, "/api-tokens?limit=2&offset=2").await;
    assert_eq!(page.1["items"].as_array().unwrap().len(), 1);
    assert_eq!(page.1["items"][0]["name"], "tests");

    let revoked = call(&app, t, Method::DELETE, &format!("/api-tokens/{id}"), None).await;
    assert_eq!(revoked.0, StatusCode::NO_CONTENT);
    assert_error(
        &get(&app, &token, "/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_eq!(get(&app, t, "/api-tokens").await.1["total"], 2);
    let again = call(&app, t, Method::DELETE, &format!("/api-tokens/{id}"), None).await;
    assert_error(&again, StatusCode::NOT_FOUND, "not_found");

    let creates = audit_rows(&app, "api_token.create").await;
    // The harness's token was created by the CLI path.
    assert_eq!(creates.len(), 3);
    assert_eq!(creates[1].actor, "admin");
    assert_eq!(creates[1].target.as_deref(), Some(id.as_str()));
    let revokes = audit_rows(&app, "api_token.revoke").await;
    assert_eq!(revokes.len(), 1);
    for row in creates.iter().chain(&revokes) {
        let detail = row
            .detail
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default();
        assert!(!detail.contains(&token) && !detail.contains(&viewer_token));
    }
}

/// API token errors: empty name, bad ttl, unknown role are 400 naming the field; viewer and operator 403; unknown id 404.
#[actix_web::test]
async fn api_token_errors() {
    let app = spawn_app().await;
    let t = &app.admin_token;
    let cases = [
        (json!({"name": " "}), "name:"),
        (json!({"name": "x", "ttl_seconds": 1}), "ttl_seconds:"),
        (json!({"name": "x", "role": "superuser"}), "role:"),
    ];
    for (body, field) in cases {
        let got = call(&app, t, Method::POST, "/api-tokens", Some(body.clone())).await;
        let message = assert_error(&got, StatusCode::BAD_REQUEST, "validation_failed");
        assert!(message.starts_with(field), "{body}: {message}");
    }
    let missing = call(&app, t, Method::POST, "/api-tokens", Some(json!({}))).await;
    let message = assert_error(&missing, StatusCode::BAD_REQUEST, "bad_request");
    assert!(message.contains("name"), "{message}");
    let gone = call(&app, t, Method::DELETE, "/api-tokens/nope", None).await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");

    let (viewer, operator) = lesser_tokens(&app).await;
    for token in [&viewer, &operator] {
        let got = call(
            &app,
            token,
            Method::POST,
            "/api-tokens",
            Some(json!({"name": "mine"})),
        )
        .await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
        assert_error(
            &get(&app, token, "/api-tokens").await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        let got = call(&app, token, Method::DELETE, "/api-tokens/x", None).await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
    }
}

// ---------------------------------------------------------------------------
// Audit log and the rest
// ---------------------------------------------------------------------------

/// GET /audit lists newest first with actor, action, target, time and address; filters by actor, action and since; pages; admins only.
#[actix_web::test]
async fn audit_log_reads_and_filters() {
    let app = spawn_app().await;
    let t = &app.admin_token;
    // One failed login and two changes.
    let failed = client()
        .post(app.api("/auth/login"))
        .json(&json!({"username": "mallory", "password": "guess-guess"}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    flush_failed_logins(&app).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let before = chrono::Utc::now();
    call(&app, t, Method::POST, "/enrollment-tokens", Some(json!({}))).await;
    call(
        &app,
        t,
        Method::POST,
        "/users",
        Some(json!({"username": "frank", "password": "frank-password", "role": "viewer"})),
    )
    .await;

    let all = get(&app, t, "/audit").await;
    assert_eq!(all.0, StatusCode::OK, "{}", all.1);
    let actions: Vec<&str> = all.1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions[0], "user.create", "{actions:?}");
    assert_eq!(actions[1], "enrollment_token.create", "{actions:?}");
    assert!(actions.contains(&"login.failed"));
    let newest = &all.1["items"][0];
    assert_eq!(newest["actor"], "admin");
    assert_eq!(newest["source_addr"], "127.0.0.1");
    assert!(newest["target"].is_string());
    assert!(newest["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(newest["detail"]["username"], "frank");
    assert_no_secret(&all.1, &["frank-password", "guess-guess"]);

    let by_actor = get(&app, t, "/audit?actor=mallory").await;
    assert_eq!(by_actor.1["total"], 1);
    assert_eq!(by_actor.1["items"][0]["action"], "login.failed");
    let by_action = get(&app, t, "/audit?action=user.create").await;
    assert_eq!(by_action.1["total"], 1);
    let since = before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let recent = get(&app, t, &format!("/audit?since={since}")).await;
    assert_eq!(recent.1["total"], 2, "{}", recent.1);
    let page = get(&app, t, "/audit?limit=1&offset=1").await;
    assert_eq!(page.1["items"][0]["action"], "enrollment_token.create");
    let bad = get(&app, t, "/audit?since=yesterday").await;
    let message = assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(message.starts_with("since:"), "{message}");
    let bad = get(&app, t, "/audit?limit=0").await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed");

    // Admins only (issue 15 B.3): it shows addresses and names typed in failed logins.
    let (viewer, operator) = lesser_tokens(&app).await;
    for token in [&viewer, &operator] {
        let read = get(&app, token, "/audit").await;
        assert_error(&read, StatusCode::FORBIDDEN, "forbidden");
    }
}

/// Source group and schedule lists page with limit/offset and a total, like every list.
#[actix_web::test]
async fn per_host_lists_are_paged() {
    let app = spawn_app().await;
    let t = &app.admin_token;
    let host = create_host(&app, "pager").await;
    for name in ["a", "b", "c"] {
        let got = call(
            &app,
            t,
            Method::POST,
            &format!("/hosts/{host}/source-groups"),
            Some(json!({"name": name, "includes": ["/srv"]})),
        )
        .await;
        assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
    }
    for minute in [1, 2] {
        let got = call(
            &app,
            t,
            Method::POST,
            &format!("/hosts/{host}/schedules"),
            Some(json!({"cron_expr": format!("{minute} 2 * * *"), "source_groups": ["a"]})),
        )
        .await;
        assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
    }
    let groups = get(
        &app,
        t,
        &format!("/hosts/{host}/source-groups?limit=1&offset=1"),
    )
    .await;
    assert_eq!(groups.1["total"], 3);
    assert_eq!(groups.1["items"].as_array().unwrap().len(), 1);
    let schedules = get(&app, t, &format!("/hosts/{host}/schedules?limit=1")).await;
    assert_eq!(schedules.1["total"], 2);
    assert_eq!(schedules.1["items"].as_array().unwrap().len(), 1);
    let bad = get(&app, t, &format!("/hosts/{host}/schedules?offset=-1")).await;
    let message = assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(message.starts_with("offset:"), "{message}");
}

/// An unknown path under /api/v1 is a JSON 404 (any method); a path outside it is not the API's JSON.
#[actix_web::test]
async fn unknown_api_paths_are_json_404() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::GET, "/api/v1/nope"),
        (Method::POST, "/api/v1/hosts/x/nope"),
        (Method::GET, "/api/v1"),
        (Method::DELETE, "/api/v1/"),
    ] {
        let resp = client()
            .request(method.clone(), app.url(path))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{method} {path}");
    }
    let outside = client().get(app.url("/nope")).send().await.unwrap();
    assert_eq!(outside.status(), StatusCode::NOT_FOUND);
    let text = outside.text().await.unwrap();
    assert!(!text.contains("no such API route"), "{text}");
}

/// With the browser's session cookie, admin changes need the CSRF token (403 csrf_failed without it) and then work; reads do not need it.
#[actix_web::test]
async fn cookie_admin_changes_need_csrf() {
    let app = spawn_app().await;
    let browser = login(&app, "admin", &app.admin_password).await;
    let body = json!({"username": "henry", "password": "henry-password", "role": "viewer"});
    let refused = browser
        .post(&app, "/users")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error"]["code"], "csrf_failed");
    let created = browser
        .post(&app, "/users")
        .header("X-CSRF-Token", &browser.csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let token = browser
        .post(&app, "/enrollment-tokens")
        .header("X-CSRF-Token", &browser.csrf)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::CREATED);
    let list = browser.get(&app, "/users").send().await.unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    let rows = audit_rows(&app, "user.create").await;
    let by_browser: Vec<_> = rows.iter().filter(|r| r.actor == "admin").collect();
    assert_eq!(by_browser.len(), 1);
}
