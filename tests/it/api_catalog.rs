//! The snapshot catalog through the REST API with a scripted agent: a
//! report queues a `catalog` job, a folder of an uncatalogued snapshot is
//! listed live by the agent and cached, `catalog.chunk`s make the catalog
//! the tree and search answer from, a `catalog` job yields to other work,
//! and the errors (400 naming the field, 404, 409 `host_offline`, 504).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Method, StatusCode};
use restic_manager::auth::Role;
use restic_manager::protocol::{
    self, CatalogChunk, CatalogEntry, CatalogListing, CommandRun, FinishStatus, JobFinished,
    ServerToAgent, SnapshotInfo, SnapshotsReport,
};
use restic_manager::store;
use serde_json::json;

use crate::common::agent::{enroll, job_when, Enrolled, TestAgent};
use crate::common::api::{assert_error, call, get, user_with_token};
use crate::common::server::{spawn_app, spawn_app_with, TestApp};

pub(crate) const SNAP: &str = "a50085c3c3a8ae1afed2b4395d4ea9e2f19255e3401531a40aae20cb6f1b20f6";
const OTHER: &str = "b50085c3c3a8ae1afed2b4395d4ea9e2f19255e3401531a40aae20cb6f1b20f6";

pub(crate) fn entry(path: &str, kind: &str, size: Option<u64>) -> CatalogEntry {
    CatalogEntry {
        path: path.to_owned(),
        kind: kind.to_owned(),
        size,
        mtime: Some(chrono::Utc::now()),
        mode: Some(420),
    }
}

pub(crate) fn info(id: &str, hours_ago: i64) -> SnapshotInfo {
    SnapshotInfo {
        id: id.to_owned(),
        short_id: id[..8].to_owned(),
        time: chrono::Utc::now() - chrono::Duration::hours(hours_ago),
        hostname: "web-01".to_owned(),
        paths: vec!["/etc".to_owned()],
        tags: vec!["etc".to_owned()],
        size_bytes: None,
        file_count: None,
    }
}

/// A connected scripted agent that reported one snapshot; returns the
/// `catalog` job the server sent for it.
pub(crate) async fn agent_with_snapshot(app: &TestApp) -> (Enrolled, TestAgent, CommandRun) {
    let enrolled = enroll(app, "web-01").await;
    let mut agent = TestAgent::connect(app, &enrolled).await.unwrap();
    agent.hello("web-01").await;
    let id = agent
        .send(SnapshotsReport {
            snapshots: vec![info(SNAP, 1)],
        })
        .await;
    agent.expect_ack(&id).await;
    let run = agent.expect_command_run().await;
    assert_eq!(run.kind, protocol::JobKind::Catalog);
    (enrolled, agent, run)
}

/// A GET running in the background (the test plays the agent meanwhile).
fn get_later(
    app: &TestApp,
    token: &str,
    path: &str,
) -> tokio::task::JoinHandle<(StatusCode, serde_json::Value)> {
    let (url, token) = (app.api(path), token.to_owned());
    tokio::spawn(async move {
        let resp = crate::common::server::client()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (
            resp.status(),
            resp.json::<serde_json::Value>().await.unwrap(),
        )
    })
}

/// The next `catalog.list` the agent receives.
pub(crate) async fn next_list(agent: &mut TestAgent) -> protocol::CatalogList {
    agent
        .wait_for(|m| match m {
            ServerToAgent::CatalogList(list) => Some(list.clone()),
            _ => None,
        })
        .await
        .0
}

/// Runs a `catalog` job on the scripted agent: accepted, started, the
/// entries in chunks of two, finished with their count.
pub(crate) async fn run_catalog(agent: &mut TestAgent, run: &CommandRun, entries: &[CatalogEntry]) {
    agent
        .send(protocol::CommandResult {
            job_id: run.job_id.clone(),
            accepted: true,
            error: None,
        })
        .await;
    agent
        .send(protocol::JobStarted {
            job_id: run.job_id.clone(),
            kind: run.kind,
            started_at: chrono::Utc::now(),
        })
        .await;
    for (i, part) in entries.chunks(2).enumerate() {
        agent
            .send(CatalogChunk {
                job_id: run.job_id.clone(),
                snapshot_id: run.snapshot_id.clone().unwrap(),
                seq: i as u64 + 1,
                entries: part.to_vec(),
            })
            .await;
    }
    let mut stats = serde_json::Map::new();
    stats.insert("entries".to_owned(), json!(entries.len()));
    let id = agent
        .send(JobFinished {
            job_id: run.job_id.clone(),
            status: FinishStatus::Succeeded,
            exit_code: 0,
            finished_at: chrono::Utc::now(),
            stats: Some(stats),
            error: None,
        })
        .await;
    assert!(agent.expect_ack(&id).await.accepted);
}

fn etc() -> Vec<CatalogEntry> {
    vec![
        entry("/etc", "dir", None),
        entry("/etc/hosts", "file", Some(220)),
        entry("/etc/nginx", "dir", None),
        entry("/etc/nginx/nginx.conf", "file", Some(1000)),
        entry("/etc/zsh", "dir", None),
    ]
}

/// Browse before and after the catalog: live listing (cached), then the
/// catalog; search; the viewer may read both; bad input is a 400 naming
/// the field.
#[actix_web::test]
async fn tree_live_then_catalogued_and_search() {
    let app = spawn_app().await;
    let viewer = user_with_token(&app, "vera", Role::Viewer, "viewer-password-1").await;
    let (enrolled, mut agent, run) = agent_with_snapshot(&app).await;
    let host = enrolled.host_id.clone();
    let run = &run;
    assert_eq!(run.snapshot_id.as_deref(), Some(SNAP));
    let job = job_when(&app, &run.job_id, "the catalog job", |j| {
        j.kind == store::JobKind::Catalog
    })
    .await;
    assert_eq!(job.trigger, store::JobTrigger::Snapshot);

    // Not catalogued: the agent lists /etc live, in two frames.
    let tree = format!("/hosts/{host}/snapshots/{SNAP}/tree?path=/etc/");
    let request = get_later(&app, &viewer, &tree);
    let list = next_list(&mut agent).await;
    assert_eq!(
        (list.snapshot_id.as_str(), list.path.as_str()),
        (SNAP, "/etc")
    );
    let part = |entries, done| CatalogListing {
        request_id: list.request_id.clone(),
        entries,
        done,
        error: None,
    };
    agent
        .send(part(
            vec![
                entry("/etc/hosts", "file", Some(220)),
                entry("/etc/zsh", "dir", None),
            ],
            false,
        ))
        .await;
    agent
        .send(part(vec![entry("/etc/nginx", "dir", None)], true))
        .await;
    let (status, body) = request.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["catalogued"], false);
    assert_eq!(body["total"], 3);
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nginx", "zsh", "hosts"]);
    assert_eq!(body["items"][2]["path"], "/etc/hosts");
    assert_eq!(body["items"][2]["type"], "file");
    assert_eq!(body["items"][2]["size"], 220);
    assert!(body["items"][0]["size"].is_null());
    assert!(body["items"][2]["mtime"].as_str().unwrap().ends_with('Z'));

    // Cached: answered without the agent (it says nothing now), by short id too.
    let short = format!(
        "/hosts/{host}/snapshots/{}/tree?path=/etc&limit=1&offset=1",
        &SNAP[..8]
    );
    let (status, body) = get(&app, &viewer, &short).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["catalogued"].clone(), body["total"].clone()),
        (json!(false), json!(3))
    );
    assert_eq!(body["items"][0]["name"], "zsh");

    // The catalog job runs; then the catalog answers.
    run_catalog(&mut agent, run, &etc()).await;
    job_when(&app, &run.job_id, "the catalog job succeeded", |j| {
        j.status == store::JobStatus::Succeeded
    })
    .await;
    let (status, body) = get(
        &app,
        &viewer,
        &format!("/hosts/{host}/snapshots/{SNAP}/tree"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"items": [{"name": "etc", "path": "/etc", "type": "dir", "size": null, "mtime": body["items"][0]["mtime"]}], "total": 1, "catalogued": true})
    );
    let (_, body) = get(
        &app,
        &viewer,
        &format!("/hosts/{host}/snapshots/{SNAP}/tree?path=/etc/nginx"),
    )
    .await;
    assert_eq!(body["items"][0]["path"], "/etc/nginx/nginx.conf");

    let (status, body) = get(&app, &viewer, "/catalog/search?q=NGINX.c").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 1);
    let hit = &body["items"][0];
    assert_eq!(
        (
            hit["host_id"].as_str(),
            hit["snapshot_id"].as_str(),
            hit["path"].as_str()
        ),
        (
            Some(host.as_str()),
            Some(SNAP),
            Some("/etc/nginx/nginx.conf")
        )
    );
    assert_eq!(
        (hit["type"].clone(), hit["size"].clone()),
        (json!("file"), json!(1000))
    );
    assert!(hit["snapshot_time"].as_str().unwrap().ends_with('Z'));
    let (_, body) = get(
        &app,
        &viewer,
        &format!("/catalog/search?q=nginx&host_id={host}&limit=1"),
    )
    .await;
    assert_eq!(
        (
            body["total"].clone(),
            body["items"].as_array().unwrap().len()
        ),
        (json!(2), 1)
    );

    // Bad input names the field.
    for (path, field) in [
        ("/catalog/search".to_owned(), "q:"),
        ("/catalog/search?q=ng".to_owned(), "q:"),
        ("/catalog/search?q=nginx&limit=-1".to_owned(), "limit:"),
        ("/catalog/search?q=nginx&offset=x".to_owned(), "offset:"),
        (
            format!("/hosts/{host}/snapshots/{SNAP}/tree?path=etc"),
            "path:",
        ),
        (
            format!("/hosts/{host}/snapshots/{SNAP}/tree?path=/etc/../root"),
            "path:",
        ),
        (
            format!("/hosts/{host}/snapshots/{SNAP}/tree?limit=0"),
            "limit:",
        ),
    ] {
        let got = get(&app, &viewer, &path).await;
        let message = assert_error(&got, StatusCode::BAD_REQUEST, "validation_failed");
        assert!(message.starts_with(field), "{path}: {message}");
    }
    let short_q = assert_error(
        &get(&app, &viewer, "/catalog/search?q=ng").await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    );
    assert!(short_q.contains("at least 3 characters"), "{short_q}");
    assert_error(
        &get(
            &app,
            &viewer,
            &format!("/hosts/{host}/snapshots/{OTHER}/tree"),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &get(&app, &viewer, &format!("/hosts/nope/snapshots/{SNAP}/tree")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &get(&app, &viewer, "/catalog/search?q=nginx&host_id=nope").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Catalog jobs are the server's own.
    let got = call(
        &app,
        &app.admin_token,
        Method::POST,
        &format!("/hosts/{host}/jobs"),
        Some(json!({"kind": "catalog"})),
    )
    .await;
    assert!(assert_error(&got, StatusCode::BAD_REQUEST, "validation_failed").starts_with("kind:"));
}

/// A running `catalog` job yields to a job that arrives: the agent gets
/// `command.cancel` for it, the other job goes first, and a new `catalog`
/// job for the same snapshot follows it.
#[actix_web::test]
async fn catalog_job_yields_to_other_work() {
    let app = spawn_app().await;
    let (enrolled, mut agent, catalog) = agent_with_snapshot(&app).await;
    let catalog = &catalog;
    agent
        .send(protocol::CommandResult {
            job_id: catalog.job_id.clone(),
            accepted: true,
            error: None,
        })
        .await;
    agent
        .send(protocol::JobStarted {
            job_id: catalog.job_id.clone(),
            kind: catalog.kind,
            started_at: chrono::Utc::now(),
        })
        .await;
    agent
        .send(CatalogChunk {
            job_id: catalog.job_id.clone(),
            snapshot_id: SNAP.to_owned(),
            seq: 1,
            entries: etc(),
        })
        .await;
    job_when(&app, &catalog.job_id, "the catalog job runs", |j| {
        j.status == store::JobStatus::Running
    })
    .await;

    let (status, check) = call(
        &app,
        &app.admin_token,
        Method::POST,
        &format!("/hosts/{}/jobs", enrolled.host_id),
        Some(json!({"kind": "check"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{check}");
    let (cancel, _) = agent
        .wait_for(|m| match m {
            ServerToAgent::CommandCancel(cancel) => Some(cancel.clone()),
            ServerToAgent::CommandRun(run) => {
                panic!("{:?} went out before the catalog job yielded", run.kind)
            }
            _ => None,
        })
        .await;
    assert_eq!(cancel.job_id, catalog.job_id);
    let id = agent
        .send(JobFinished {
            job_id: catalog.job_id.clone(),
            status: FinishStatus::Cancelled,
            exit_code: 130,
            finished_at: chrono::Utc::now(),
            stats: None,
            error: Some("cancelled on request".to_owned()),
        })
        .await;
    agent.expect_ack(&id).await;
    let next = agent.expect_command_run().await;
    assert_eq!(
        (next.kind, next.job_id.as_str()),
        (protocol::JobKind::Check, check["id"].as_str().unwrap())
    );
    agent.run_job(&next, 0, FinishStatus::Succeeded).await;
    let again = agent.expect_command_run().await;
    assert_eq!(
        (again.kind, again.snapshot_id.as_deref()),
        (protocol::JobKind::Catalog, Some(SNAP))
    );
    assert_ne!(
        again.job_id, catalog.job_id,
        "a new job: the agent de-duplicates by id"
    );
    run_catalog(&mut agent, &again, &etc()).await;
    job_when(
        &app,
        &again.job_id,
        "the re-queued catalog job succeeded",
        |j| j.status == store::JobStatus::Succeeded,
    )
    .await;
    let host = enrolled.host_id.clone();
    let (_, body) = get(
        &app,
        &app.admin_token,
        &format!("/hosts/{host}/snapshots/{SNAP}/tree?path=/etc"),
    )
    .await;
    assert_eq!(
        (body["catalogued"].clone(), body["total"].clone()),
        (json!(true), json!(3)),
        "only the second job's entries"
    );
}

/// Without a connected agent an uncatalogued folder is 409 `host_offline`;
/// an agent that does not answer in time is 504 `agent_timeout`; an agent
/// error is 502 naming it.
#[actix_web::test]
async fn live_listing_errors() {
    let app = spawn_app_with(|c| c.live_list_timeout = std::time::Duration::from_millis(300)).await;
    let (enrolled, mut agent, _) = agent_with_snapshot(&app).await;
    let tree = format!(
        "/hosts/{}/snapshots/{SNAP}/tree?path=/etc",
        enrolled.host_id
    );
    let message = assert_error(
        &get(&app, &app.admin_token, &tree).await,
        StatusCode::GATEWAY_TIMEOUT,
        "agent_timeout",
    );
    assert!(message.contains("did not list /etc"), "{message}");
    let unanswered = next_list(&mut agent).await;

    let request = get_later(&app, &app.admin_token, &tree);
    let list = next_list(&mut agent).await;
    assert_ne!(list.request_id, unanswered.request_id);
    agent
        .send(CatalogListing {
            request_id: list.request_id,
            entries: vec![],
            done: true,
            error: Some("snapshot a50085c3 not found".to_owned()),
        })
        .await;
    let got = request.await.unwrap();
    let message = assert_error(&got, StatusCode::BAD_GATEWAY, "agent_error");
    assert!(message.contains("snapshot a50085c3 not found"), "{message}");

    agent.close().await;
    let message = crate::common::agent::eventually("the session to end", || {
        let (app, tree) = (&app, tree.clone());
        async move {
            let got = get(app, &app.admin_token, &tree).await;
            (got.0 == StatusCode::CONFLICT)
                .then(|| assert_error(&got, StatusCode::CONFLICT, "host_offline"))
        }
    })
    .await;
    assert!(message.contains("not connected"), "{message}");
}
