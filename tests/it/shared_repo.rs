#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
//! Shared repositories (issue 12 §3): the `/repositories` API (CRUD,
//! roles, 400 naming the field, 409 on a name taken or a repository in
//! use, secrets never returned), attaching hosts by `repository_id`, and
//! with the real agent and the real restic three hosts backing up into
//! one repository while a prune is requested: every job succeeds, the
//! prune waits for the backups (its lease is exclusive), backups created
//! after it wait for it (`waiting_for` names it), and each host sees only
//! its own snapshots.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use restic_manager::auth::Role;
use serde_json::{json, Value};

use crate::common::api::{assert_error, call, get, user_with_token};
use crate::common::daemon::{self, InProcessAgent};
use crate::common::e2e::{self, start_job, wait_for_within, wait_online};
use crate::common::off_thread;
use crate::common::restic::TempRepo;
use crate::common::server::{spawn_app, TestApp};

async fn admin(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call(app, &app.admin_token, method, path, body).await
}

/// CRUD with roles: an operator creates, lists, reads, changes and deletes
/// a shared repository; a viewer reads but cannot write; bad input is a
/// 400 naming the field; a taken name and a repository in use are 409
/// (the latter naming the hosts); no answer carries a secret; a host is
/// attached by `repository_id` and an inline PUT gives it back a private
/// repository.
#[actix_web::test]
async fn repositories_api() {
    let app = spawn_app().await;
    let viewer = user_with_token(&app, "viewer-1", Role::Viewer, "viewer-password-1").await;
    let body = json!({"name": "fleet", "url": "/srv/restic/fleet", "password": "s3cret-pw",
                      "credential": "cr3d-secret", "username": "u"});

    for (field, broken) in [
        ("name", json!({"url": "/r", "password": "p"})),
        ("url", json!({"name": "n", "password": "p"})),
        ("password", json!({"name": "n", "url": "/r"})),
        ("url", json!({"name": "n", "url": " ", "password": "p"})),
        (
            "maintenance_host_id",
            json!({"name": "n", "url": "/r", "password": "p", "maintenance_host_id": "nope"}),
        ),
    ] {
        let got = admin(&app, Method::POST, "/repositories", Some(broken)).await;
        let message = assert_error(&got, StatusCode::BAD_REQUEST, "validation_failed");
        assert!(message.starts_with(&format!("{field}:")), "{message}");
    }
    let denied = call(
        &app,
        &viewer,
        Method::POST,
        "/repositories",
        Some(body.clone()),
    )
    .await;
    assert_eq!(denied.0, StatusCode::FORBIDDEN, "{}", denied.1);

    let (status, created) = admin(&app, Method::POST, "/repositories", Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "fleet");
    assert_eq!(created["password_set"], true);
    assert_eq!(created["credential_set"], true);
    assert_eq!(created["host_ids"], json!([]));
    let id = created["id"].as_str().unwrap().to_owned();
    let taken = admin(&app, Method::POST, "/repositories", Some(body.clone())).await;
    assert_error(&taken, StatusCode::CONFLICT, "conflict");

    let (status, list) = get(&app, &viewer, "/repositories").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 1);
    let (status, one) = get(&app, &viewer, &format!("/repositories/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["url"], "/srv/restic/fleet");

    // Attach two hosts; the second is also the maintenance host.
    let host_a = crate::common::api::create_host(&app, "shared-api-a").await;
    let host_b = crate::common::api::create_host(&app, "shared-api-b").await;
    let bad = admin(
        &app,
        Method::PUT,
        &format!("/hosts/{host_a}/repository"),
        Some(json!({"repository_id": "missing"})),
    )
    .await;
    let message = assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(message.starts_with("repository_id:"), "{message}");
    let mixed = admin(
        &app,
        Method::PUT,
        &format!("/hosts/{host_a}/repository"),
        Some(json!({"repository_id": id, "url": "/x"})),
    )
    .await;
    let message = assert_error(&mixed, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(message.starts_with("url:"), "{message}");
    for host in [&host_a, &host_b] {
        let (status, attached) = admin(
            &app,
            Method::PUT,
            &format!("/hosts/{host}/repository"),
            Some(json!({"repository_id": id})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{attached}");
        assert_eq!(attached["id"], id.as_str());
        assert_eq!(attached["name"], "fleet");
    }
    let (status, changed) = admin(
        &app,
        Method::PUT,
        &format!("/repositories/{id}"),
        Some(json!({"maintenance_host_id": host_b, "password": "n3w-pw"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["maintenance_host_id"], host_b.as_str());
    let mut hosts = vec![host_a.clone(), host_b.clone()];
    hosts.sort();
    assert_eq!(changed["host_ids"], json!(hosts));

    // A check asked of host A runs on the maintenance host B (both
    // offline) and takes B's rotation: the next check asked of B itself
    // reads the next subset.
    for asked in [&host_a, &host_b] {
        let (status, job) = admin(
            &app,
            Method::POST,
            &format!("/hosts/{asked}/jobs"),
            Some(json!({"kind": "check"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{job}");
        assert_eq!(job["host_id"], host_b.as_str(), "{job}");
        let id = job["id"].as_str().unwrap();
        let (status, _) = admin(&app, Method::POST, &format!("/jobs/{id}/cancel"), None).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let subsets: Vec<Vec<String>> = crate::common::agent::jobs_of(&app, &host_b)
        .await
        .into_iter()
        .map(|job| job.args)
        .collect();
    assert_eq!(
        subsets,
        [1, 2].map(|k| vec![format!("--read-data-subset={k}/30")])
    );
    let denied = call(
        &app,
        &viewer,
        Method::PUT,
        &format!("/repositories/{id}"),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(denied.0, StatusCode::FORBIDDEN);

    // In use: 409 naming the hosts.
    let in_use = admin(&app, Method::DELETE, &format!("/repositories/{id}"), None).await;
    let message = assert_error(&in_use, StatusCode::CONFLICT, "conflict");
    assert!(
        message.contains(&host_a) && message.contains(&host_b),
        "{message}"
    );

    // Inline PUT: host A gets a private repository of its own.
    let (status, private) = admin(
        &app,
        Method::PUT,
        &format!("/hosts/{host_a}/repository"),
        Some(json!({"url": "/srv/private", "password": "pw-private"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{private}");
    assert_eq!(private["name"], Value::Null);
    assert_ne!(private["id"], id.as_str());
    let (_, still) = get(&app, &viewer, &format!("/repositories/{id}")).await;
    assert_eq!(still["host_ids"], json!([host_b]));
    assert_eq!(
        still["url"], "/srv/restic/fleet",
        "the shared one is untouched"
    );

    // No answer ever carried a secret.
    for text in [
        created.to_string(),
        list.to_string(),
        changed.to_string(),
        one.to_string(),
    ] {
        for secret in ["s3cret-pw", "cr3d-secret", "n3w-pw"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(!text.contains("\"password\""), "{text}");
    }

    // Detach the last host (private repository), then delete.
    admin(
        &app,
        Method::PUT,
        &format!("/hosts/{host_b}/repository"),
        Some(json!({"url": "/srv/b", "password": "pw-b"})),
    )
    .await;
    let denied = call(
        &app,
        &viewer,
        Method::DELETE,
        &format!("/repositories/{id}"),
        None,
    )
    .await;
    assert_eq!(denied.0, StatusCode::FORBIDDEN);
    let (status, _) = admin(&app, Method::DELETE, &format!("/repositories/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let gone = get(&app, &viewer, &format!("/repositories/{id}")).await;
    assert_eq!(gone.0, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// A millisecond time of a job field.
fn ms(job: &Value, field: &str) -> i64 {
    let text = job[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} of {job}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_millis()
}

/// Three enrolled agents (three state dirs and host names) back up into
/// one local repository at once while a prune is requested: every job
/// succeeds, the prune (sent to the maintenance host) starts only after
/// the backups running when it was requested ended, backups created
/// after it start only after it ended and say they wait for it, and each
/// host lists only its own snapshots.
#[actix_web::test]
async fn three_hosts_one_repository_and_a_prune() {
    let app = spawn_app().await;
    let repo = Arc::new(TempRepo::new());
    let init = repo.clone();
    off_thread(move || init.init()).await;

    let work = tempfile::tempdir().unwrap();
    let mut hosts = Vec::new();
    let mut configs = Vec::new();
    for i in 0..3 {
        let dir = work.path().join(format!("agent-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = daemon::enroll(&app, &dir).await;
        config.hostname = Some(format!("shared-host-{i}"));
        hosts.push(config.host_id.clone());
        configs.push(config);
    }
    let shared = e2e::post(
        &app,
        "/repositories",
        json!({
            "name": "fleet", "url": repo.repo.to_string_lossy(), "password": repo.password,
            "maintenance_host_id": hosts[2],
        }),
    )
    .await;
    let repository_id = shared["id"].as_str().unwrap().to_owned();
    for (i, host) in hosts.iter().enumerate() {
        e2e::put(
            &app,
            &format!("/hosts/{host}/repository"),
            json!({"repository_id": repository_id}),
        )
        .await;
        let source = repo.slow_source(&format!("data-{i}"), 400 << 20);
        e2e::post(
            &app,
            &format!("/hosts/{host}/source-groups"),
            json!({"name": "data", "includes": [source.to_string_lossy()]}),
        )
        .await;
    }
    let agents: Vec<InProcessAgent> = configs.into_iter().map(InProcessAgent::start).collect();
    for host in &hosts {
        wait_online(&app, host).await;
    }

    let backup = json!({"kind": "backup", "source_group": "data"});
    let mut first = Vec::new();
    for host in &hosts {
        first.push(start_job(&app, host, backup.clone()).await);
    }
    // The prune is requested on host 0 and goes to the maintenance host.
    let prune = e2e::post(
        &app,
        &format!("/hosts/{}/jobs", hosts[0]),
        json!({"kind": "prune"}),
    )
    .await;
    assert_eq!(prune["host_id"], hosts[2].as_str(), "{prune}");
    let prune_id = prune["id"].as_str().unwrap().to_owned();
    let doubled = admin(
        &app,
        Method::POST,
        &format!("/hosts/{}/jobs", hosts[1]),
        Some(json!({"kind": "prune"})),
    )
    .await;
    assert_error(&doubled, StatusCode::CONFLICT, "conflict");
    let mut later = Vec::new();
    for host in &hosts {
        later.push(start_job(&app, host, backup.clone()).await);
    }

    // Watch the waits while everything runs.
    let mut waits: Vec<(String, String)> = Vec::new();
    let all: Vec<String> = first
        .iter()
        .chain([&prune_id])
        .chain(later.iter())
        .cloned()
        .collect();
    let finished = wait_for_within("every job to end", Duration::from_secs(300), async || {
        let mut done = Vec::new();
        for id in &all {
            let job = e2e::get(&app, &format!("/jobs/{id}")).await;
            if let Some(reason) = job["waiting_for"].as_str() {
                assert_eq!(job["status"], "queued", "{job}");
                waits.push((id.clone(), reason.to_owned()));
            }
            if e2e::is_terminal(&job) {
                done.push(job);
            }
        }
        (done.len() == all.len()).then_some(done)
    })
    .await;
    for job in &finished {
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["waiting_for"], Value::Null);
    }
    let job = |id: &str| finished.iter().find(|j| j["id"] == id).unwrap().clone();
    let prune = job(&prune_id);
    for id in &first {
        let b = job(id);
        assert!(
            ms(&prune, "dispatched_at") >= ms(&b, "finished_at"),
            "the prune went out before backup {id} ended: {prune} {b}"
        );
    }
    for id in &later {
        let b = job(id);
        assert!(
            ms(&b, "dispatched_at") >= ms(&prune, "finished_at"),
            "backup {id} went out before the prune ended: {b} {prune}"
        );
    }
    assert!(
        waits
            .iter()
            .any(|(id, reason)| later.contains(id) && reason.contains(&prune_id)),
        "a later backup said it waits for the prune: {waits:?}"
    );

    // Each host sees only its own two snapshots; restic holds all six.
    for (i, host) in hosts.iter().enumerate() {
        let own = wait_for_within(
            "two snapshots reported",
            Duration::from_secs(60),
            async || {
                let list = e2e::snapshots(&app, host).await;
                (list.len() == 2).then_some(list)
            },
        )
        .await;
        for snapshot in own {
            assert_eq!(
                snapshot["hostname"],
                format!("shared-host-{i}"),
                "{snapshot}"
            );
        }
    }
    let all_snapshots = off_thread(move || repo.snapshots()).await;
    assert_eq!(all_snapshots.len(), 6);
    for agent in agents {
        agent.stop().await;
    }
    app.stop().await;
}

/// A job of a host on a private repository takes no lease: its
/// `waiting_for` is null in the job API.
#[actix_web::test]
async fn private_jobs_never_wait() {
    let app = spawn_app().await;
    let host = crate::common::api::create_host(&app, "private-1").await;
    let job = e2e::post(
        &app,
        &format!("/hosts/{host}/jobs"),
        json!({"kind": "check"}),
    )
    .await;
    assert_eq!(job["waiting_for"], Value::Null);
    let one = e2e::get(&app, &format!("/jobs/{}", job["id"].as_str().unwrap())).await;
    assert_eq!(one["status"], "queued");
    assert_eq!(one["waiting_for"], Value::Null);
    app.stop().await;
}
