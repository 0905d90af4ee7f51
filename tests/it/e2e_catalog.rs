//! The snapshot catalog end to end with every real part: the server, the
//! agent daemon in-process and the real `restic` (0.14 on Debian). A
//! backup of a few hundred files is catalogued by the job the server
//! queues by itself, browsed and searched from the catalog; with
//! `--catalog-keep 1` a second backup's catalog replaces the first, whose
//! folders are then listed live by the agent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use restic_manager::actors::events::{Event, EventFilter, Subscribe};
use restic_manager::store::JobStatus;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::common::daemon::{self, InProcessAgent};
use crate::common::e2e::{get, post, put, run_job, snapshots, wait_online, DEADLINE};
use crate::common::server::{spawn_app_with, TestApp};

/// Files per sub-folder of the backed-up tree.
const FILES: usize = 150;

/// `root/a/file-NNN.txt` and `root/b/deep/file-NNN.dat` (FILES each),
/// and `root/Report-Q4.TXT`.
fn make_tree(root: &Path) {
    for (dir, ext) in [("a", "txt"), ("b/deep", "dat")] {
        let dir = root.join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..FILES {
            std::fs::write(dir.join(format!("file-{i:03}.{ext}")), "x".repeat(i)).unwrap();
        }
    }
    std::fs::write(root.join("Report-Q4.TXT"), "quarterly numbers\n").unwrap();
}

/// Waits (on the server's own events, no polling) for the next `catalog`
/// job of `host` to succeed; returns it.
async fn catalogued(app: &TestApp, events: &mut mpsc::Receiver<Arc<Event>>, host: &str) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("a catalog job to succeed in time")
            .expect("the event stream stays open");
        if let Event::JobStatus {
            host_id,
            job_id,
            status,
            message,
        } = event.as_ref()
        {
            if host_id != host || !status.is_terminal() {
                continue;
            }
            let job = get(app, &format!("/jobs/{job_id}")).await;
            if job["kind"] == "catalog" {
                assert_eq!(*status, JobStatus::Succeeded, "{job} {message:?}");
                return job;
            }
        }
    }
}

/// The host's newest snapshot's full id.
async fn newest_snapshot(app: &TestApp, host: &str) -> String {
    snapshots(app, host).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn names(folder: &Value) -> Vec<String> {
    folder["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Backup → the catalog job the server queued succeeds → tree and search
/// answer from the catalog; a second backup with `--catalog-keep 1`
/// replaces it, and the first snapshot's folders come live from the
/// agent (then from the cache).
#[actix_web::test]
async fn backup_is_catalogued_browsed_and_searched() {
    let app = spawn_app_with(|c| c.catalog_keep = 1).await;
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("data");
    make_tree(&source);
    let root = source.to_string_lossy().into_owned();
    let config = daemon::enroll(&app, work.path()).await;
    let host = config.host_id.clone();
    let agent = InProcessAgent::start(config);
    wait_online(&app, &host).await;
    let repo = work.path().join("repo");
    put(
        &app,
        &format!("/hosts/{host}/repository"),
        json!({"url": repo.to_string_lossy(), "password": "catalog-e2e-password"}),
    )
    .await;
    assert_eq!(
        run_job(&app, &host, json!({"kind": "init"})).await["status"],
        "succeeded"
    );
    post(
        &app,
        &format!("/hosts/{host}/source-groups"),
        json!({"name": "data", "includes": [root]}),
    )
    .await;
    let mut events = app
        .state
        .actors
        .events
        .send(Subscribe {
            filter: EventFilter::Fleet,
        })
        .await
        .unwrap();

    let backup = run_job(
        &app,
        &host,
        json!({"kind": "backup", "source_group": "data"}),
    )
    .await;
    assert_eq!(backup["status"], "succeeded", "{backup}");
    let first = catalogued(&app, &mut events, &host).await;
    let entries = 2 * FILES + 4 + root.matches('/').count(); // files, a, b, deep, the report, the path's folders
    assert_eq!(first["stats"]["entries"], json!(entries), "{first}");
    assert_eq!(first["trigger"], "snapshot");
    let old = newest_snapshot(&app, &host).await;

    let folder = get(
        &app,
        &format!("/hosts/{host}/snapshots/{old}/tree?path={root}"),
    )
    .await;
    assert_eq!(folder["catalogued"], true);
    assert_eq!(names(&folder), ["a", "b", "Report-Q4.TXT"]);
    assert_eq!(folder["items"][2]["size"], 18);
    let a = get(
        &app,
        &format!("/hosts/{host}/snapshots/{old}/tree?path={root}/a&limit=1000"),
    )
    .await;
    assert_eq!(a["total"], FILES);
    assert_eq!(a["items"][7]["name"], "file-007.txt");
    assert_eq!(a["items"][7]["size"], 7);
    assert_eq!(a["items"][7]["type"], "file");
    let hits = get(&app, "/catalog/search?q=report-q4").await;
    assert_eq!(hits["total"], 1, "{hits}");
    assert_eq!(hits["items"][0]["path"], format!("{root}/Report-Q4.TXT"));
    assert_eq!(hits["items"][0]["snapshot_id"], old.as_str());
    assert_eq!(
        get(&app, "/catalog/search?q=deep/file-1").await["total"],
        50
    );

    // A second backup; its catalog replaces the first (keep 1).
    std::fs::write(source.join("Report-Q4.TXT"), "revised quarterly numbers\n").unwrap();
    std::fs::write(source.join("a/new.txt"), "new\n").unwrap();
    assert_eq!(
        run_job(
            &app,
            &host,
            json!({"kind": "backup", "source_group": "data"})
        )
        .await["status"],
        "succeeded"
    );
    catalogued(&app, &mut events, &host).await;
    let new = newest_snapshot(&app, &host).await;
    assert_ne!(new, old);
    let hits = get(&app, "/catalog/search?q=report-q4").await;
    assert_eq!(
        (
            hits["total"].clone(),
            hits["items"][0]["snapshot_id"].clone()
        ),
        (json!(1), json!(new.as_str()))
    );
    assert_eq!(hits["items"][0]["size"], 26);

    // The first snapshot is no longer catalogued: the agent lists it live.
    let live = get(
        &app,
        &format!("/hosts/{host}/snapshots/{old}/tree?path={root}/a&limit=5"),
    )
    .await;
    assert_eq!(live["catalogued"], false, "{live}");
    assert_eq!(live["total"], FILES, "new.txt is not in the first snapshot");
    assert_eq!(
        names(&live),
        [
            "file-000.txt",
            "file-001.txt",
            "file-002.txt",
            "file-003.txt",
            "file-004.txt"
        ]
    );
    agent.stop().await;
    let cached = get(
        &app,
        &format!("/hosts/{host}/snapshots/{old}/tree?path={root}/a&limit=5&offset=5"),
    )
    .await;
    assert_eq!(
        (cached["catalogued"].clone(), cached["total"].clone()),
        (json!(false), json!(FILES))
    );
    assert_eq!(cached["items"][0]["name"], "file-005.txt");
    app.stop().await;
}
