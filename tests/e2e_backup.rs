//! End to end with every real part: a server on a random port, the agent
//! daemon enrolled over HTTP and connected over a real WebSocket, and the
//! real `restic` against a repository in a temp dir. This is the README's
//! walk-through as a test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use restic_manager::agent::{self, EnrollOptions, Secret};
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(60);

async fn get(app: &common::server::TestApp, path: &str) -> Value {
    let resp = common::server::client()
        .get(app.api(path))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
    resp.json().await.unwrap()
}

async fn send(
    app: &common::server::TestApp,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    let resp = common::server::client()
        .request(method.clone(), app.api(path))
        .bearer_auth(&app.admin_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Polls `check` until it yields a value (the agent works asynchronously;
/// there is no event to await from outside the server).
async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run_job(app: &common::server::TestApp, host: &str, body: Value) -> Value {
    let job = send(
        app,
        reqwest::Method::POST,
        &format!("/hosts/{host}/jobs"),
        body,
    )
    .await;
    let id = job["id"].as_str().unwrap().to_string();
    wait_for("job to finish", async || {
        let job = get(app, &format!("/jobs/{id}")).await;
        matches!(
            job["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        )
        .then_some(job)
    })
    .await
}

/// Enrol → online → repository → init → source group → backup now → the
/// snapshot is listed with the group's tag, and restic itself sees it.
#[actix_web::test]
async fn enrol_init_backup_and_see_the_snapshot() {
    let app = common::server::spawn_app().await;
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("documents");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("report.txt"), "quarterly numbers\n").unwrap();
    std::fs::write(source.join("scratch.tmp"), "excluded\n").unwrap();
    let repo = work.path().join("repo");
    let password = "e2e-repo-password-1234";

    let token = app.enrollment_token().await;
    let mut config = agent::enroll(&EnrollOptions {
        server_url: app.base_url.clone(),
        token: Secret::new(token),
        config_path: work.path().join("agent.toml"),
        ca_file: None,
        force: false,
        allow_insecure: false,
    })
    .await
    .unwrap();
    config.state_dir = work.path().join("state");
    let host = config.host_id.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = actix_web::rt::spawn(agent::run(config, async move {
        // Err: the sender was dropped, which also means stop.
        let _ = stopped.await;
    }));

    wait_for("host online", async || {
        let h = get(&app, &format!("/hosts/{host}")).await;
        (h["status"] == "online").then_some(())
    })
    .await;

    send(
        &app,
        reqwest::Method::PUT,
        &format!("/hosts/{host}/repository"),
        json!({"url": repo.to_string_lossy(), "password": password}),
    )
    .await;
    let init = run_job(&app, &host, json!({"kind": "init"})).await;
    assert_eq!(init["status"], "succeeded", "{init}");

    send(
        &app,
        reqwest::Method::POST,
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

    stop.send(()).unwrap();
    daemon.await.unwrap().unwrap();
    app.stop().await;
}
