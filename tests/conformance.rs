#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
//! Black-box conformance with shared/API.md, pinned where our server once
//! deviated from it: the real server over HTTP, driven as a stranger who
//! read only the document would drive it.

mod common;

use common::api::*;
use common::server::spawn_app;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// `GET /me` answers "current user and role": the role the request acts
/// with, which for an API token with a lower role cap is the cap, not the
/// user's own role.
#[actix_web::test]
async fn me_names_the_role_the_request_acts_with() {
    let app = spawn_app().await;
    let (status, me) = get(&app, &app.admin_token, "/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["role"], "admin");
    assert_eq!(me["user"]["role"], "admin");

    let (status, created) = call(
        &app,
        &app.admin_token,
        Method::POST,
        "/api-tokens",
        Some(json!({"name": "read-only", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let capped = created["token"].as_str().unwrap();
    let (status, me) = get(&app, capped, "/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["role"], "viewer", "{me}");
    assert_eq!(me["user"]["username"], "admin");
    assert_error(
        &get(&app, capped, "/users").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    let browser = login(&app, "admin", &app.admin_password).await;
    let me: serde_json::Value = browser
        .get(&app, "/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "admin");
    assert_eq!(me["auth"], "session");
}

