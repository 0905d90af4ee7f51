//! `POST /hosts/{id}/jobs` with `"kind": "restore"` (issue 11 §2) through
//! the real HTTP stack on either backend: every bad input answered 400
//! naming the field or 404, a good one queued with its snapshot, params
//! and audit row, and a restore from another host's repository sent with
//! that repository's settings (never stored with the job).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use reqwest::{Method, StatusCode};
use restic_manager::auth::Role;
use restic_manager::store;
use serde_json::{json, Value};

use crate::common::agent::{self as scripted, TestAgent};
use crate::common::api::{
    add_snapshot, assert_error, audit_rows, call, create_host, db, user_with_token,
};
use crate::common::server::{spawn_app, TestApp};

const FULL_ID: &str = "af4db64e47b173d8c60c76730f4428b80ca305e1b38b7d28fc8e066c29b1b4c8";
const SHORT_ID: &str = "af4db64e";

async fn post(app: &TestApp, host: &str, body: Value) -> (StatusCode, Value) {
    let path = format!("/hosts/{host}/jobs");
    call(app, &app.admin_token, Method::POST, &path, Some(body)).await
}

/// Bad restores: 400 naming the field (target, paths[i], overwrite,
/// snapshot_id, source_host_id, restore fields on another kind) or 404
/// (unknown snapshot, another host's snapshot, unknown source host);
/// a viewer is refused; nothing is created or audited.
#[actix_web::test]
async fn restore_bad_input() {
    let app = spawn_app().await;
    let web = create_host(&app, "web").await;
    let db_host = create_host(&app, "db").await;
    add_snapshot(&app, &web, FULL_ID).await;
    add_snapshot(
        &app,
        &db_host,
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    )
    .await;
    let ok = json!({"kind": "restore", "snapshot_id": SHORT_ID, "target": "/tmp/restore-1"});
    let with = |key: &str, value: Value| {
        let mut body = ok.clone();
        body[key] = value;
        body
    };
    let bad_request = [
        (with("target", json!("tmp/restore-1")), "target:"),
        (with("target", json!("/tmp/../etc")), "target:"),
        (with("paths", json!(["/etc/../root"])), "paths[0]:"),
        (with("paths", json!(["/etc", "/a\u{0}b"])), "paths[1]:"),
        (with("paths", json!(["/etc", ""])), "paths[1]:"),
        (with("paths", json!(["etc"])), "paths[0]:"),
        (with("overwrite", json!("sometimes")), "overwrite:"),
        (json!({"kind": "restore", "target": "/r"}), "snapshot_id:"),
        (
            json!({"kind": "restore", "snapshot_id": SHORT_ID}),
            "target:",
        ),
        (with("snapshot_id", json!("")), "snapshot_id:"),
        (with("source_host_id", json!(db_host)), "source_host_id:"),
        (
            json!({"kind": "check", "snapshot_id": SHORT_ID}),
            "snapshot_id:",
        ),
        (json!({"kind": "check", "target": "/r"}), "target:"),
        (with("source_group", json!("etc")), "source_group:"),
    ];
    for (body, field) in bad_request {
        let got = post(&app, &web, body.clone()).await;
        let message = assert_error(&got, StatusCode::BAD_REQUEST, "validation_failed");
        assert!(message.starts_with(field), "{body}: {message}");
    }
    let not_found = [
        with("snapshot_id", json!("deadbeef")),
        with("snapshot_id", json!("0123456789abcdef")), // a prefix of db's id
        with("snapshot_id", json!(&FULL_ID[..12])),     // a prefix: not accepted
        with("snapshot_id", json!("01234567")),         // db's snapshot, asked of web
        with("source_host_id", json!("no-such-host")),
    ];
    for body in not_found {
        let got = post(&app, &web, body.clone()).await;
        let message = assert_error(&got, StatusCode::NOT_FOUND, "not_found");
        assert!(message.contains("not found"), "{body}: {message}");
    }
    let viewer = user_with_token(&app, "vi", Role::Viewer, "vi-password-123").await;
    let path = format!("/hosts/{web}/jobs");
    let refused = call(&app, &viewer, Method::POST, &path, Some(ok.clone())).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    let (_, list) = crate::common::api::get(&app, &app.admin_token, "/jobs").await;
    assert_eq!(list["total"], 0);
    assert!(audit_rows(&app, "job.create").await.is_empty());
}

/// A restore of an offline host is queued like any job: 201, the full
/// snapshot id (given the short one), its params, and an audit row naming
/// host, snapshot, paths and target.
#[actix_web::test]
async fn restore_is_queued_and_audited() {
    let app = spawn_app().await;
    let web = create_host(&app, "web").await;
    add_snapshot(&app, &web, FULL_ID).await;
    let (status, job) = post(
        &app,
        &web,
        json!({"kind": "restore", "snapshot_id": SHORT_ID, "paths": ["/srv/a.txt", "/srv/b"],
               "target": "/", "overwrite": "if-changed", "verify": true, "source_host_id": web}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["kind"], "restore");
    assert_eq!(job["status"], "queued");
    assert_eq!(job["snapshot_id"], FULL_ID);
    assert_eq!(
        job["params"],
        json!({"paths": ["/srv/a.txt", "/srv/b"], "target": "/", "overwrite": "if-changed", "verify": true}),
        "the host's own repository: no source_host_id"
    );
    let audit = audit_rows(&app, "job.create").await;
    assert_eq!(audit.len(), 1);
    let detail = audit[0].detail.clone().unwrap();
    assert_eq!(detail["host_id"], web.as_str());
    assert_eq!(detail["snapshot_id"], FULL_ID);
    assert_eq!(detail["paths"], json!(["/srv/a.txt", "/srv/b"]));
    assert_eq!(detail["target"], "/");
    // The full id is accepted too; defaults fill in.
    let (status, job) = post(
        &app,
        &web,
        json!({"kind": "restore", "snapshot_id": FULL_ID, "target": "/tmp/r"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(
        job["params"],
        json!({"target": "/tmp/r", "overwrite": "always", "verify": false})
    );
}

/// A restore from another host's repository: the `command.run` the target
/// host's agent receives carries the snapshot, the restore parameters and
/// the source repository's URL and password (opened from the sealed row);
/// the job row and its API view do not hold the password.
#[actix_web::test]
async fn cross_host_restore_carries_the_source_repository() {
    let app = spawn_app().await;
    let source = scripted::enroll(&app, "source").await;
    let target = scripted::enroll(&app, "target").await;
    let password = "source-repo-password-7781";
    let (status, body) = call(
        &app,
        &app.admin_token,
        Method::PUT,
        &format!("/hosts/{}/repository", source.host_id),
        Some(json!({"url": "/srv/source-repo", "password": password})),
    )
    .await;
    assert!(status.is_success(), "{body}");
    add_snapshot(&app, &source.host_id, FULL_ID).await;
    let mut agent = TestAgent::connect(&app, &target).await.unwrap();
    let (config, _) = agent.hello("target").await;
    assert_eq!(config.repo_password, None, "the target has no repository");

    let (status, job) = post(
        &app,
        &target.host_id,
        json!({"kind": "restore", "snapshot_id": SHORT_ID, "source_host_id": source.host_id,
               "paths": ["/srv/a.txt"], "target": "/tmp/restore-2"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert!(!job.to_string().contains(password), "{job}");
    let run = agent.expect_command_run().await;
    assert_eq!(run.job_id, job["id"].as_str().unwrap());
    assert_eq!(run.snapshot_id.as_deref(), Some(FULL_ID));
    let restore = run.restore.unwrap();
    assert_eq!(restore.paths, ["/srv/a.txt"]);
    assert_eq!(restore.target, "/tmp/restore-2");
    assert_eq!(
        restore.source_host_id.as_deref(),
        Some(source.host_id.as_str())
    );
    let repository = restore.repository.unwrap();
    assert_eq!(repository.repo_url.as_deref(), Some("/srv/source-repo"));
    assert_eq!(repository.repo_password.as_deref(), Some(password));
    let id = run.job_id.clone();
    let (row, stored) = db(&app, move |conn| {
        use diesel::prelude::*;
        let stored: Option<String> = store::schema::jobs::table
            .find(&id)
            .select(store::schema::jobs::params)
            .get_result(conn)
            .unwrap();
        (store::jobs::get(conn, &id).unwrap().unwrap(), stored)
    })
    .await;
    assert!(row.params.unwrap().restore().unwrap().repository.is_none());
    assert!(!stored.unwrap().contains(password));
    agent.close().await;
}
