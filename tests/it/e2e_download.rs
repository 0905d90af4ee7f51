//! Downloads end to end (issue 11 §3): a real server, the real agent
//! daemon and restic 0.14 behind `GET /hosts/{id}/snapshots/{sid}/download`:
//! a folder as a tar, a file as itself, two at once, the refusals (viewer,
//! bad path, unknown snapshot, path not in the snapshot, offline host),
//! a client that goes away (restic stops, no lock is left), and the cut at
//! `--max-download-bytes`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use restic_manager::auth::Role;
use restic_manager::config::ServerConfig;
use serde_json::json;

use crate::common::api::{assert_error, audit_rows, get as api_get, user_with_token};
use crate::common::daemon::InProcessAgent;
use crate::common::e2e::{init_repository, online_agent, post, run_job, snapshots, wait_for};
use crate::common::restic::TempRepo;
use crate::common::server::{client, spawn_app_with, TestApp};

/// A host with one backed-up folder `docs`.
struct Fixture {
    app: TestApp,
    agent: Option<InProcessAgent>,
    host: String,
    repo: TempRepo,
    source: PathBuf,
    snapshot_id: String,
}

/// Deterministic bytes that restic cannot compress away.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Server (adjusted), enrolled agent, initialised repository, a backup
/// of `docs` (a few files in folders, plus `big.bin` of `big` bytes), and
/// its snapshot reported.
async fn backed_up(adjust: impl FnOnce(&mut ServerConfig), big: usize) -> Fixture {
    let app = spawn_app_with(adjust).await;
    let repo = TempRepo::new();
    let source = repo.source(
        "docs",
        &[
            ("report.txt", "quarterly numbers\n"),
            ("nested/deeper/notes.md", "# notes\nline two\n"),
            ("nested/empty.txt", ""),
        ],
    );
    std::fs::write(source.join("blob.bin"), noise(300_000, 7)).unwrap();
    std::fs::write(source.join("big.bin"), noise(big, 11)).unwrap();
    let agent_dir = tempfile::tempdir().unwrap().keep();
    let (host, agent) = online_agent(&app, &agent_dir).await;
    init_repository(&app, &host, &repo.repo, &repo.password).await;
    post(
        &app,
        &format!("/hosts/{host}/source-groups"),
        json!({"name": "docs", "includes": [source.to_string_lossy()]}),
    )
    .await;
    let backup = run_job(
        &app,
        &host,
        json!({"kind": "backup", "source_group": "docs"}),
    )
    .await;
    assert_eq!(backup["status"], "succeeded", "{backup}");
    let snapshot_id = wait_for("the snapshot report", async || {
        let list = snapshots(&app, &host).await;
        list.first().map(|s| s["id"].as_str().unwrap().to_owned())
    })
    .await;
    Fixture {
        app,
        agent: Some(agent),
        host,
        repo,
        source,
        snapshot_id,
    }
}

impl Fixture {
    async fn stop_agent(&mut self) {
        if let Some(agent) = self.agent.take() {
            agent.stop().await;
        }
    }

    fn url(&self, snapshot: &str, path: &str) -> String {
        let mut url = reqwest::Url::parse(&self.app.api(&format!(
            "/hosts/{}/snapshots/{snapshot}/download",
            self.host
        )))
        .unwrap();
        url.query_pairs_mut().append_pair("path", path);
        url.to_string()
    }

    async fn request(&self, token: &str, snapshot: &str, path: &str) -> reqwest::Response {
        client()
            .get(self.url(snapshot, path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// An error answer as (status, JSON body).
    async fn refused(
        &self,
        token: &str,
        snapshot: &str,
        path: &str,
    ) -> (StatusCode, serde_json::Value) {
        let response = self.request(token, snapshot, path).await;
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    fn path_of(&self, relative: &str) -> String {
        self.source.join(relative).to_string_lossy().into_owned()
    }
}

/// Every file under `root`, as paths relative to it, sorted.
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The `restic dump` processes of `snapshot_id` still running (restic
/// runs as a child of this test process, the in-process agent's).
fn dump_processes(snapshot_id: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_dump = args.contains(&&b"dump"[..]);
        if is_dump && args.contains(&snapshot_id.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

/// A folder comes as a tar of exactly its files, a file as its bytes
/// (with Content-Length), two downloads at once both complete, and each
/// is audited with host, snapshot and path; the refusals name their cause.
#[actix_web::test]
async fn folder_file_two_at_once_and_refusals() {
    let mut f = backed_up(|_| {}, 1_000_000).await;
    let token = f.app.admin_token.clone();

    // The folder, as a tar; its files and bytes are the source's.
    let response = f
        .request(&token, &f.snapshot_id, &f.source.to_string_lossy())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-tar");
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"docs.tar\""
    );
    let tar_bytes = response.bytes().await.unwrap();
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("docs.tar"), &tar_bytes).unwrap();
    let extract = out.path().join("x");
    std::fs::create_dir_all(&extract).unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(out.path().join("docs.tar"))
        .arg("-C")
        .arg(&extract)
        .status()
        .unwrap();
    assert!(status.success(), "tar -xf failed");
    let root = extract.join(f.source.strip_prefix("/").unwrap());
    assert_eq!(files_under(&root), files_under(&f.source));
    for file in files_under(&f.source) {
        assert_eq!(
            std::fs::read(root.join(&file)).unwrap(),
            std::fs::read(f.source.join(&file)).unwrap(),
            "{file:?}"
        );
    }

    // One file, as itself, by its short snapshot id too.
    let short = &f.snapshot_id[..8];
    let response = f.request(&token, short, &f.path_of("blob.bin")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    assert_eq!(response.headers()["content-length"], "300000");
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"blob.bin\""
    );
    assert_eq!(response.bytes().await.unwrap().to_vec(), noise(300_000, 7));

    // Two at once: the big file and the folder, interleaved on one agent.
    let (big_path, nested_path) = (f.path_of("big.bin"), f.path_of("nested"));
    let (big, folder) = futures_util::join!(
        f.request(&token, &f.snapshot_id, &big_path),
        f.request(&token, &f.snapshot_id, &nested_path),
    );
    let (big, folder) = futures_util::join!(big.bytes(), folder.bytes());
    assert_eq!(big.unwrap().to_vec(), noise(1_000_000, 11));
    let folder = folder.unwrap();
    assert!(
        folder.len() >= 1024 && folder.len() % 512 == 0,
        "a tar: {}",
        folder.len()
    );

    // Audited: who, which host, snapshot and path; and how each ended.
    let started = audit_rows(&f.app, "snapshot.download").await;
    assert_eq!(started.len(), 4, "{started:?}");
    assert!(started
        .iter()
        .all(|row| row.target.as_deref() == Some(f.host.as_str())));
    let detail: serde_json::Value = started[1].detail.clone().unwrap();
    assert_eq!(detail["snapshot_id"], f.snapshot_id.as_str());
    assert_eq!(detail["path"], f.path_of("blob.bin").as_str());
    let ended = wait_for("four end rows", async || {
        let rows = audit_rows(&f.app, "snapshot.download.end").await;
        (rows.len() == 4).then_some(rows)
    })
    .await;
    for row in &ended {
        let detail: serde_json::Value = row.detail.clone().unwrap();
        assert_eq!(detail["outcome"], "complete", "{detail}");
    }

    // Refusals.
    let viewer = user_with_token(&f.app, "vera", Role::Viewer, "vera-password-1").await;
    let refused = f
        .refused(&viewer, &f.snapshot_id, &f.path_of("blob.bin"))
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    for bad in ["", "relative/path", "/etc/../root", "/a\0b"] {
        let refused = f.refused(&token, &f.snapshot_id, bad).await;
        let message = assert_error(&refused, StatusCode::BAD_REQUEST, "validation_failed");
        assert!(message.starts_with("path: "), "{bad:?}: {message}");
    }
    let (status, body) = api_get(
        &f.app,
        &token,
        &format!("/hosts/{}/snapshots/{}/download", f.host, f.snapshot_id),
    )
    .await;
    let message = assert_error(
        &(status, body),
        StatusCode::BAD_REQUEST,
        "validation_failed",
    );
    assert!(message.starts_with("path: required"), "{message}");
    let refused = f.refused(&token, "0123456789abcdef", "/etc").await;
    assert_error(&refused, StatusCode::NOT_FOUND, "not_found");
    let refused = f
        .refused(&token, &f.snapshot_id, &f.path_of("no-such-file"))
        .await;
    let message = assert_error(&refused, StatusCode::NOT_FOUND, "not_found");
    assert!(message.contains("not found in snapshot"), "{message}");

    // Offline: 409 host_offline.
    f.stop_agent().await;
    wait_for("host offline", async || {
        let host = crate::common::e2e::get(&f.app, &format!("/hosts/{}", f.host)).await;
        (host["status"] == "offline").then_some(())
    })
    .await;
    let refused = f
        .refused(&token, &f.snapshot_id, &f.path_of("blob.bin"))
        .await;
    assert_error(&refused, StatusCode::CONFLICT, "host_offline");
    assert!(f.repo.lock_files().is_empty(), "restic left a lock");
    f.app.stop().await;
}

/// A client that reads a little and goes away stops restic on the agent:
/// restic is blocked by back-pressure while the client does not read, is
/// gone after the client left, and leaves no lock behind.
#[actix_web::test]
async fn client_going_away_stops_restic() {
    let mut f = backed_up(|_| {}, 48 * 1024 * 1024).await;
    let mut response = f
        .request(&f.app.admin_token, &f.snapshot_id, &f.path_of("big.bin"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let first = response.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    assert_eq!(
        dump_processes(&f.snapshot_id).len(),
        1,
        "restic dump runs (held back by the unread response)"
    );
    drop(response);
    let ended = wait_for("the download's end row", async || {
        audit_rows(&f.app, "snapshot.download.end").await.pop()
    })
    .await;
    let detail: serde_json::Value = ended.detail.clone().unwrap();
    assert_eq!(detail["outcome"], "client_gone", "{detail}");
    wait_for("restic dump to stop", async || {
        dump_processes(&f.snapshot_id).is_empty().then_some(())
    })
    .await;
    assert!(f.repo.lock_files().is_empty(), "restic left a lock");
    f.stop_agent().await;
    f.app.stop().await;
}

/// A stream past `--max-download-bytes` is cut: the client gets at most
/// the limit and an incomplete transfer, and the audit row says `cut`.
#[actix_web::test]
async fn a_download_past_the_limit_is_cut() {
    let limit = 200_000;
    let mut f = backed_up(|c| c.max_download_bytes = limit, 1_000_000).await;
    let response = f
        .request(&f.app.admin_token, &f.snapshot_id, &f.path_of("big.bin"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers().get("content-length").is_none(),
        "no Content-Length for a file over the limit"
    );
    let mut response = response;
    let mut got = 0usize;
    let ended_in_error = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => got += chunk.len(),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(
        ended_in_error,
        "a cut stream must not end like a complete one"
    );
    assert!(got as u64 <= limit, "got {got} bytes, limit {limit}");
    let ended = wait_for("the download's end row", async || {
        audit_rows(&f.app, "snapshot.download.end").await.pop()
    })
    .await;
    let detail: serde_json::Value = ended.detail.clone().unwrap();
    assert_eq!(detail["outcome"], "cut", "{detail}");
    wait_for("restic dump to stop", async || {
        dump_processes(&f.snapshot_id).is_empty().then_some(())
    })
    .await;
    f.stop_agent().await;
    f.app.stop().await;
}
