//! End to end with every real part: a server on a random port, the agent
//! daemon enrolled over HTTP and connected over a real WebSocket, and the
//! real `restic` against a repository in a temp dir. This is the README's
//! walk-through as a test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use crate::common::daemon::{self, InProcessAgent};
use crate::common::e2e::{get, post, put, run_job, wait_for, wait_online};
use serde_json::json;

/// Enrol → online → repository → init → source group → backup now → the
/// snapshot is listed with the group's tag, and restic itself sees it.
#[actix_web::test]
async fn enrol_init_backup_and_see_the_snapshot() {
    let app = crate::common::server::spawn_app().await;
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("documents");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("report.txt"), "quarterly numbers\n").unwrap();
    std::fs::write(source.join("scratch.tmp"), "excluded\n").unwrap();
    let repo = work.path().join("repo");
    let password = "e2e-repo-password-1234";

    let config = daemon::enroll(&app, work.path()).await;
    let host = config.host_id.clone();
    let agent = InProcessAgent::start(config);
    wait_online(&app, &host).await;

    put(
        &app,
        &format!("/hosts/{host}/repository"),
        json!({"url": repo.to_string_lossy(), "password": password}),
    )
    .await;
    let init = run_job(&app, &host, json!({"kind": "init"})).await;
    assert_eq!(init["status"], "succeeded", "{init}");

    post(
        &app,
        &format!("/hosts/{host}/source-groups"),
        json!({"name": "documents", "includes": [source.to_string_lossy()], "excludes": ["*.tmp"]}),
    )
    .await;
    let backup = run_job(
        &app,
        &host,
        json!({"kind": "backup", "source_group": "documents"}),
    )
    .await;
    assert_eq!(backup["status"], "succeeded", "{backup}");
    assert_eq!(backup["tag"], "documents");

    let logs = get(
        &app,
        &format!("/jobs/{}/logs", backup["id"].as_str().unwrap()),
    )
    .await;
    assert!(
        !logs["items"].as_array().unwrap().is_empty(),
        "no log lines stored"
    );

    let snapshots = wait_for("snapshot report", async || {
        let s = get(&app, &format!("/hosts/{host}/snapshots")).await;
        (!s["items"].as_array().unwrap().is_empty()).then_some(s)
    })
    .await;
    let snap = &snapshots["items"][0];
    assert_eq!(snap["tags"], json!(["documents"]), "{snap}");
    assert_eq!(snap["paths"], json!([source.to_string_lossy()]), "{snap}");

    // restic itself agrees, and the excluded file is not in the snapshot.
    let out = std::process::Command::new("restic")
        .args(["ls", "--json", "latest"])
        .env("RESTIC_REPOSITORY", &repo)
        .env("RESTIC_PASSWORD", password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(listing.contains("report.txt"));
    assert!(!listing.contains("scratch.tmp"));

    agent.stop().await;
    app.stop().await;
}
