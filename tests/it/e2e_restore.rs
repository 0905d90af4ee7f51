//! Restore end to end (issue 11 §2) with every real part: a server on a
//! random port, two agent daemons enrolled over HTTP (each its own state
//! directory) and the real `restic` (0.14 here): back up a folder, restore
//! two selected files into another folder on the same host and compare
//! bytes, restore into the second host from the first host's repository
//! (its password never reaches the second agent's disk), and an overwrite
//! mode restic 0.14 lacks refused naming the version needed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::sync::Arc;

use restic_manager::agent::restic::{parse_version, OVERWRITE_SINCE};
use serde_json::{json, Value};

use crate::common::daemon::{self, InProcessAgent};
use crate::common::e2e::{get, post, put, run_job, snapshots, wait_for, wait_online};
use crate::common::off_thread;
use crate::common::restic::{restic_binary, TempRepo};

/// `target` + the absolute `path` (restic restores a snapshot's path
/// under the target with its full path).
fn under(target: &Path, path: &Path) -> PathBuf {
    target.join(path.strip_prefix("/").unwrap())
}

/// Every byte of every file under `dir`, concatenated (to grep for a
/// secret).
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if meta.is_file() {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

fn restic_at_least(needed: (u32, u32, u32)) -> bool {
    let out = std::process::Command::new(restic_binary())
        .arg("version")
        .output()
        .unwrap();
    let version = parse_version(&String::from_utf8_lossy(&out.stdout)).unwrap();
    version.numbers >= needed
}

/// Back up a folder; restore two of its files on the same host and to a
/// second host from the first host's repository; compare bytes; check the
/// stats, the refusal of "if-newer" on old restic, and that the source
/// password is nowhere in the second agent's files.
#[actix_web::test]
async fn restore_same_host_and_from_another_hosts_repository() {
    let app = crate::common::server::spawn_app().await;
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("documents");
    std::fs::create_dir_all(source.join("sub")).unwrap();
    for i in 0..20 {
        std::fs::write(
            source.join(format!("file-{i}.txt")),
            format!("content {i}\n"),
        )
        .unwrap();
    }
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(source.join("sub/big.bin"), &big).unwrap();
    // The repository is made by restic itself (init through the agent is
    // covered by e2e_backup); its password is unique, to grep for.
    let repo = Arc::new(TempRepo::new());
    let init = repo.clone();
    off_thread(move || init.init()).await;
    let password = repo.password.clone();

    let first_dir = work.path().join("first");
    std::fs::create_dir_all(&first_dir).unwrap();
    let config = daemon::enroll(&app, &first_dir).await;
    let host = config.host_id.clone();
    put(
        &app,
        &format!("/hosts/{host}/repository"),
        json!({"url": repo.repo.to_string_lossy(), "password": password}),
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
    let backup = run_job(
        &app,
        &host,
        json!({"kind": "backup", "source_group": "documents"}),
    )
    .await;
    assert_eq!(backup["status"], "succeeded", "{backup}");
    let snapshot = wait_for("the snapshot report", async || {
        snapshots(&app, &host).await.into_iter().next()
    })
    .await;
    let short_id = snapshot["short_id"].as_str().unwrap().to_owned();

    // Same host: two selected files into another folder, verified.
    let picked = [source.join("file-3.txt"), source.join("sub/big.bin")];
    let target = work.path().join("restore-1");
    let restore = run_job(
        &app,
        &host,
        json!({"kind": "restore", "snapshot_id": short_id,
               "paths": picked.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>(),
               "target": target.to_string_lossy(), "verify": true}),
    )
    .await;
    assert_eq!(restore["status"], "succeeded", "{restore}");
    for path in &picked {
        assert_eq!(
            std::fs::read(under(&target, path)).unwrap(),
            std::fs::read(path).unwrap(),
            "{}",
            path.display()
        );
    }
    assert!(
        !under(&target, &source.join("file-4.txt")).exists(),
        "only the selected files are restored"
    );
    let stats = &restore["stats"];
    assert_eq!(stats["files_restored"], 2, "{stats}");
    assert_eq!(
        stats["bytes_restored"],
        big.len() + "content 3\n".len(),
        "{stats}"
    );
    assert_eq!(stats["errors"], 0, "{stats}");
    assert_eq!(stats["verified"], true, "{stats}");
    let logs = get(
        &app,
        &format!("/jobs/{}/logs", restore["id"].as_str().unwrap()),
    )
    .await;
    assert!(
        logs["items"].to_string().contains("restoring <Snapshot"),
        "restic's output is the job's log: {logs}"
    );

    // An overwrite mode restic 0.14 lacks is refused naming the version.
    let newer = run_job(
        &app,
        &host,
        json!({"kind": "restore", "snapshot_id": short_id, "target": work.path().join("restore-n").to_string_lossy(),
               "paths": [picked[0].to_string_lossy()], "overwrite": "if-newer"}),
    )
    .await;
    if restic_at_least(OVERWRITE_SINCE) {
        assert_eq!(newer["status"], "succeeded", "{newer}");
    } else {
        assert_eq!(newer["status"], "failed", "{newer}");
        let error = newer["error"].as_str().unwrap();
        assert!(
            error.contains("overwrite mode \"if-newer\" needs restic 0.17 or newer"),
            "{error}"
        );
    }

    // A second host, without a repository of its own, restores from the
    // first host's repository.
    let second_dir = work.path().join("second");
    std::fs::create_dir_all(&second_dir).unwrap();
    let config = daemon::enroll(&app, &second_dir).await;
    let second = config.host_id.clone();
    let second_agent = InProcessAgent::start(config);
    wait_online(&app, &second).await;
    let target2 = work.path().join("restore-2");
    let cross = run_job(
        &app,
        &second,
        json!({"kind": "restore", "snapshot_id": snapshot["id"], "source_host_id": host,
               "paths": [source.join("sub").to_string_lossy()],
               "target": target2.to_string_lossy()}),
    )
    .await;
    assert_eq!(cross["status"], "succeeded", "{cross}");
    assert_eq!(cross["host_id"], second.as_str());
    assert_eq!(
        std::fs::read(under(&target2, &source.join("sub/big.bin"))).unwrap(),
        big
    );
    assert_eq!(cross["stats"]["files_restored"], 1, "{}", cross["stats"]);
    assert_eq!(cross["stats"]["verified"], false);
    assert!(!cross.to_string().contains(&password), "{cross}");
    second_agent.stop().await;
    let on_disk = all_bytes(&second_dir);
    assert!(
        !on_disk
            .windows(password.len())
            .any(|w| w == password.as_bytes()),
        "the source repository's password is on the second agent's disk"
    );
    let jobs: Value = get(&app, &format!("/jobs?host_id={second}")).await;
    assert_eq!(jobs["items"][0]["params"]["source_host_id"], host.as_str());

    agent.stop().await;
    app.stop().await;
}
