//! Restore drills end to end (issue 11 §4, §7) with every real part: the
//! server, the agent daemon in-process and the real `restic` (0.14 on
//! Debian). Before any catalog a drill is refused; after a backup is
//! catalogued a drill restores a sample with `--verify` and succeeds, the
//! next one samples other files; bad options are refused naming the
//! field; then one pack file of the repository is damaged and the next
//! drill fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::api::{call, login};
use crate::common::daemon::{self, InProcessAgent};
use crate::common::e2e::{host_jobs, post, put, run_job, wait_for, wait_online};
use crate::common::off_thread;
use crate::common::restic::TempRepo;
use crate::common::server::TestApp;

/// Files in the backed-up folder (more than one drill's default sample).
const FILES: usize = 240;

/// The sampled paths of a drill job (its stored parameters).
fn sampled(job: &Value) -> BTreeSet<String> {
    job["params"]["files"]
        .as_array()
        .unwrap_or_else(|| panic!("a drill job shows its sample: {job}"))
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect()
}

/// `POST /hosts/{host}/jobs` as admin, answer status and body.
async fn run_now(app: &TestApp, host: &str, body: Value) -> (StatusCode, Value) {
    call(
        app,
        &app.admin_token,
        Method::POST,
        &format!("/hosts/{host}/jobs"),
        Some(body),
    )
    .await
}

/// The biggest file under `<repo>/data/` (the pack holding the files'
/// contents; the tree pack of so small a backup is far smaller).
fn biggest_pack(repo: &Path) -> PathBuf {
    let mut packs = Vec::new();
    for dir in std::fs::read_dir(repo.join("data")).unwrap() {
        for pack in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = pack.unwrap().path();
            let len = std::fs::metadata(&path).unwrap().len();
            packs.push((len, path));
        }
    }
    packs.sort();
    packs.pop().expect("the backup wrote pack files").1
}

#[actix_web::test]
async fn drill_succeeds_rotates_and_fails_on_a_damaged_pack() {
    let app = crate::common::server::spawn_app().await;
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("documents");
    std::fs::create_dir_all(&source).unwrap();
    for i in 0..FILES {
        std::fs::write(
            source.join(format!("file-{i:03}.txt")),
            format!("drill sample {i}\n").repeat(i + 1),
        )
        .unwrap();
    }
    let repo = Arc::new(TempRepo::new());
    let init = repo.clone();
    off_thread(move || init.init()).await;

    let state = work.path().join("agent");
    std::fs::create_dir_all(&state).unwrap();
    let config = daemon::enroll(&app, &state).await;
    let host = config.host_id.clone();
    put(
        &app,
        &format!("/hosts/{host}/repository"),
        json!({"url": repo.repo.to_string_lossy(), "password": repo.password}),
    )
    .await;
    let agent = InProcessAgent::start(config);
    wait_online(&app, &host).await;
    post(
        &app,
        &format!("/hosts/{host}/source-groups"),
        json!({"name": "documents", "includes": [source.to_string_lossy()]}),
    )
    .await;

    // No catalog yet: refused, saying why.
    let (status, body) = run_now(&app, &host, json!({"kind": "drill"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.to_string().contains("catalog"), "{body}");

    let backup = run_job(
        &app,
        &host,
        json!({"kind": "backup", "source_group": "documents"}),
    )
    .await;
    assert_eq!(backup["status"], "succeeded", "{backup}");
    wait_for("the snapshot's catalog", async || {
        host_jobs(&app, &host)
            .await
            .into_iter()
            .find(|j| j["kind"] == "catalog" && j["status"] == "succeeded")
    })
    .await;

    // Bad options name their field and queue nothing.
    let jobs_before = host_jobs(&app, &host).await.len();
    for (body, field) in [
        (
            json!({"kind": "drill", "drill_sample_files": 0}),
            "drill_sample_files",
        ),
        (
            json!({"kind": "drill", "drill_sample_bytes": -5}),
            "drill_sample_bytes",
        ),
        (
            json!({"kind": "backup", "source_group": "documents", "drill_sample_files": 3}),
            "drill_sample_files",
        ),
    ] {
        let (status, answer) = run_now(&app, &host, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(answer.to_string().contains(field), "{body}: {answer}");
    }
    assert_eq!(host_jobs(&app, &host).await.len(), jobs_before);

    // A drill restores its sample (the default 100 files) and checks it.
    let first = run_job(
        &app,
        &host,
        json!({"kind": "drill", "source_group": "documents"}),
    )
    .await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let stats = &first["stats"];
    assert_eq!(stats["files"], 100, "{stats}");
    assert_eq!(stats["mismatches"], 0, "{stats}");
    let sample = sampled(&first);
    assert_eq!(sample.len(), 100);
    let expected_bytes: u64 = first["params"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["size"].as_u64().unwrap())
        .sum();
    assert!(expected_bytes > 0);
    assert_eq!(stats["bytes"], expected_bytes, "{stats}");
    for path in &sample {
        let name = Path::new(path).file_name().unwrap().to_string_lossy();
        let i: usize = name["file-".len().."file-".len() + 3].parse().unwrap();
        let on_disk = std::fs::metadata(source.join(&*name)).unwrap().len();
        assert_eq!(
            on_disk,
            (format!("drill sample {i}\n").len() * (i + 1)) as u64
        );
    }
    // The private folder is gone again.
    let leftovers: Vec<_> = walk_files(&state)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("file-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "restored files left behind: {leftovers:?}"
    );

    // The next drill samples other files.
    let second = run_job(
        &app,
        &host,
        json!({"kind": "drill", "source_group": "documents", "drill_sample_files": 50}),
    )
    .await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(second["stats"]["files"], 50, "{}", second["stats"]);
    assert!(
        sampled(&second).is_disjoint(&sample),
        "successive drills rotate through the files"
    );

    // Damage the pack holding the files' contents: the next drill fails.
    let pack = biggest_pack(&repo.repo);
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle - 512..middle + 512] {
        *b ^= 0xa5;
    }
    let mut perms = std::fs::metadata(&pack).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)] // restic makes packs read-only
    perms.set_readonly(false);
    std::fs::set_permissions(&pack, perms).unwrap();
    std::fs::write(&pack, &bytes).unwrap();
    let damaged = run_job(
        &app,
        &host,
        json!({"kind": "drill", "source_group": "documents", "drill_sample_files": 200}),
    )
    .await;
    assert_eq!(damaged["status"], "failed", "{damaged}");
    assert!(
        damaged["error"].as_str().is_some_and(|e| !e.is_empty()),
        "a failed drill says why: {damaged}"
    );
    // The host page says so: its last verified restore is the failed drill.
    let browser = login(&app, "admin", &app.admin_password).await;
    let html = browser
        .page(&app, &format!("/hosts/{host}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(r#"id="last-drill" data-status="failed""#),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            r#"href="/jobs/{}""#,
            damaged["id"].as_str().unwrap()
        )),
        "the line links the failed drill"
    );
    agent.stop().await;
}

/// Every regular file under `dir`.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if meta.is_file() {
            out.push(path);
        }
    }
    out
}
