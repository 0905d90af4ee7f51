#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
//! Black-box conformance with docs/API.md, pinned where our server once
//! deviated from it: the real server over HTTP, driven as a stranger who
//! read only the document would drive it.

use crate::common::api::*;
use crate::common::server::spawn_app;
use reqwest::{Method, StatusCode};
use restic_manager::auth::Role;
use restic_manager::store::{self, models};
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

/// `GET /jobs/{id}/logs` is a list like every other: `{items, total}`,
/// where `total` counts the lines after `after_seq` whatever the `limit`.
#[actix_web::test]
async fn job_logs_answer_the_list_shape_with_a_total() {
    let app = spawn_app().await;
    let host = create_host(&app, "web").await;
    let (status, job) = call(
        &app,
        &app.admin_token,
        Method::POST,
        &format!("/hosts/{host}/jobs"),
        Some(json!({"kind": "check"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let job_id = id.clone();
    db(&app, move |conn| {
        let lines: Vec<models::NewJobLog> = (1..=12)
            .map(|seq| models::NewJobLog {
                job_id: job_id.clone().into(),
                seq,
                ts: store::now_ms(),
                stream: store::LogStream::Stdout,
                payload: format!("line {seq}"),
            })
            .collect();
        store::job_logs::insert_batch(conn, &lines).unwrap();
    })
    .await;

    let (status, page) = get(&app, &app.admin_token, &format!("/jobs/{id}/logs?limit=5")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    assert_eq!(page["total"], 12, "{page}");
    let (_, rest) = get(
        &app,
        &app.admin_token,
        &format!("/jobs/{id}/logs?after_seq=10&limit=1"),
    )
    .await;
    assert_eq!(rest["items"][0]["seq"], 11);
    assert_eq!(rest["total"], 2, "{rest}");
    let (_, none) = get(
        &app,
        &app.admin_token,
        &format!("/jobs/{id}/logs?after_seq=12"),
    )
    .await;
    assert_eq!(none, json!({"items": [], "total": 0}));
}

/// A schedule's `next_runs` are its cron times, on whole seconds
/// (`…T02:00:00.000Z`), not the cron time plus the request's fraction of
/// a second.
#[actix_web::test]
async fn schedule_next_runs_are_cron_times() {
    let app = spawn_app().await;
    let operator = user_with_token(&app, "olga", Role::Operator, "olga-password-1").await;
    let host = create_host(&app, "web").await;
    let (status, group) = call(
        &app,
        &operator,
        Method::POST,
        &format!("/hosts/{host}/source-groups"),
        Some(json!({"name": "etc", "includes": ["/etc"], "excludes": []})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let body = json!({"cron_expr": "30 2 * * *", "enabled": true, "source_groups": ["etc"]});
    let path = format!("/hosts/{host}/schedules");
    let (status, created) = call(&app, &operator, Method::POST, &path, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, listed) = get(&app, &operator, &path).await;
    for schedule in [&created, &listed["items"][0]] {
        let runs = schedule["next_runs"].as_array().unwrap();
        assert_eq!(runs.len(), 5, "{schedule}");
        for run in runs {
            let text = run.as_str().unwrap();
            assert!(text.ends_with("T02:30:00.000Z"), "{text}");
        }
    }
}
