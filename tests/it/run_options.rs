#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
//! Options per source group or policy (issue 12 §5) and a policy's shared
//! repository (§1/§3): 400s naming the key; options shown on the group,
//! the policy and the effective configuration (a group's own over its
//! policy's); the flags they become in `command.run.args`; with the real
//! agent and restic, `exclude_larger_than` leaves a big file out of the
//! snapshot and `compression` on a format-1 repository fails clearly; a
//! policy's `repository_id` reaches the matching hosts without one of their
//! own (`config.update` to them only), conflicts are 409, and it is taken
//! back when the policy stops matching.

use reqwest::{Method, StatusCode};
use restic_manager::protocol::{self, ServerToAgent};
use serde_json::{json, Value};

use crate::common::agent::{enroll, TestAgent};
use crate::common::api::{assert_error, call, get};
use crate::common::e2e::{self, run_job, wait_for};
use crate::common::restic::TempRepo;
use crate::common::server::{spawn_app, TestApp};
use crate::policies::{effective, labelled, send};

/// Bad options are 400 naming the key, on a host's group, a policy and a
/// policy's group; good ones are stored and shown, and a policy group's
/// copy on the host carries the policy's options under the group's own.
#[actix_web::test]
async fn options_are_validated_stored_and_merged() {
    let app = spawn_app().await;
    let host = labelled(&app, "opt-01", json!({"env": "prod"}))
        .await
        .host_id;
    let groups = format!("/hosts/{host}/source-groups");
    let group = |options: Value| json!({"name": "etc", "includes": ["/etc"], "options": options});
    let cases = [
        (json!({"verbose": true}), "options.verbose: unknown option"),
        (json!({"limit_upload_kib": 0}), "options.limit_upload_kib:"),
        (
            json!({"limit_download_kib": "fast"}),
            "options.limit_download_kib:",
        ),
        (
            json!({"one_file_system": "yes"}),
            "options.one_file_system:",
        ),
        (
            json!({"exclude_larger_than": "5 MB"}),
            "options.exclude_larger_than:",
        ),
        (json!({"compression": "best"}), "options.compression:"),
        (json!({"use_fs_snapshot": 1}), "options.use_fs_snapshot:"),
        (json!("max"), "options:"),
    ];
    for (options, prefix) in &cases {
        let got = send(&app, Method::POST, &groups, group(options.clone())).await;
        let message = assert_error(&got, StatusCode::BAD_REQUEST, "validation_failed");
        assert!(message.starts_with(prefix), "{options}: {message}");
    }
    let dump = send(
        &app,
        Method::POST,
        &groups,
        json!({"name": "db", "type": "dump", "dump": {"driver": "postgres", "database": "shop"},
               "options": {"one_file_system": true}}),
    )
    .await;
    let message = assert_error(&dump, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(message.starts_with("options.one_file_system:"), "{message}");
    for (body, prefix) in [
        (
            json!({"name": "p", "options": {"nice": 5}}),
            "options.nice: unknown option",
        ),
        (
            json!({"name": "p", "source_groups": [{"name": "a", "includes": ["/a"],
                   "options": {"compression": "fastest"}}]}),
            "source_groups[0].options.compression:",
        ),
    ] {
        let got = send(&app, Method::POST, "/policies", body.clone()).await;
        let message = assert_error(&got, StatusCode::BAD_REQUEST, "validation_failed");
        assert!(message.starts_with(prefix), "{body}: {message}");
    }

    let (status, own) = send(
        &app,
        Method::POST,
        &groups,
        group(json!({"limit_upload_kib": 2048, "one_file_system": true, "compression": null})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{own}");
    assert_eq!(
        own["options"],
        json!({"limit_upload_kib": 2048, "one_file_system": true})
    );
    let gid = own["id"].as_str().unwrap();
    let (status, changed) = send(
        &app,
        Method::PUT,
        &format!("{groups}/{gid}"),
        json!({"name": "etc", "includes": ["/etc"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["options"], Value::Null, "PUT replaces the options");

    let (status, policy) = send(
        &app,
        Method::POST,
        "/policies",
        json!({"name": "base", "selector": {"labels": {"env": "prod"}},
               "options": {"limit_upload_kib": 100, "exclude_caches": true},
               "source_groups": [
                   {"name": "home", "includes": ["/home"],
                    "options": {"limit_upload_kib": 50, "exclude_larger_than": "1G"}},
                   {"name": "srv", "includes": ["/srv"]}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{policy}");
    assert_eq!(
        policy["policy"]["options"],
        json!({"limit_upload_kib": 100, "exclude_caches": true})
    );
    assert_eq!(
        policy["policy"]["source_groups"][0]["options"],
        json!({"limit_upload_kib": 50, "exclude_larger_than": "1G"})
    );
    let config = effective(&app, &host).await;
    let by_name = |name: &str| {
        config["source_groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        by_name("home")["options"],
        json!({"limit_upload_kib": 50, "exclude_caches": true, "exclude_larger_than": "1G"})
    );
    assert_eq!(
        by_name("srv")["options"],
        json!({"limit_upload_kib": 100, "exclude_caches": true})
    );
    assert_eq!(by_name("etc")["options"], Value::Null);

    // Changing only the policy's options reaches the hosts' copies, and
    // only them: options travel in the next job's `command.run.args`, so
    // the host's schedule version stays (no needless `schedule.set`).
    let before = schedule_version(&app, &host).await;
    let id = policy["id"].as_str().unwrap();
    // The policy with `srv` backing up `srv_includes`.
    let path = format!("/policies/{id}");
    let put = |srv_includes: Value| {
        let body = json!({"name": "base", "selector": {"labels": {"env": "prod"}},
               "options": {"limit_upload_kib": 300},
               "source_groups": [
                   {"name": "home", "includes": ["/home"],
                    "options": {"limit_upload_kib": 50, "exclude_larger_than": "1G"}},
                   {"name": "srv", "includes": srv_includes}]});
        let (app, path) = (&app, &path);
        async move { send(app, Method::PUT, path, body).await }
    };
    let (status, changed) = put(json!(["/srv"])).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["hosts_affected"], 1);
    let config = effective(&app, &host).await;
    let srv = config["source_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "srv")
        .unwrap();
    assert_eq!(srv["options"], json!({"limit_upload_kib": 300}));
    assert_eq!(
        schedule_version(&app, &host).await,
        before,
        "options alone: no new version"
    );

    // A change schedule.set carries (the includes) bumps it.
    let (status, changed) = put(json!(["/srv", "/opt"])).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["hosts_affected"], 1);
    assert_eq!(schedule_version(&app, &host).await, before + 1);
}

/// A group's options reach the agent as flags in `command.run.args`: all
/// of them on a backup, the bandwidth limits only on its forget.
#[actix_web::test]
async fn options_become_command_run_args() {
    let app = spawn_app().await;
    let enrolled = enroll(&app, "opt-10").await;
    let host = enrolled.host_id.clone();
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/hosts/{host}/source-groups"),
        json!({"name": "data", "includes": ["/data"],
               "retention_policy": {"keep_last": 3},
               "options": {"limit_upload_kib": 512, "limit_download_kib": 1024,
                           "one_file_system": true, "exclude_caches": true,
                           "exclude_larger_than": "500M", "compression": "max"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
    agent.hello("opt-10").await;
    let (status, job) = send(
        &app,
        Method::POST,
        &format!("/hosts/{host}/jobs"),
        json!({"kind": "backup", "source_group": "data"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let run = agent.expect_command_run().await;
    assert_eq!(
        run.args,
        [
            "--limit-upload=512",
            "--limit-download=1024",
            "--one-file-system",
            "--exclude-caches",
            "--exclude-larger-than=500M",
            "--compression=max"
        ]
    );
    assert_eq!(job["id"], run.job_id.as_str());
    agent
        .run_job(&run, 0, protocol::FinishStatus::Succeeded)
        .await;
    // The retention forget that follows the good backup.
    let forget = agent.expect_command_run().await;
    assert_eq!(forget.kind, protocol::JobKind::Forget);
    assert_eq!(forget.args, ["--limit-upload=512", "--limit-download=1024"]);
}

/// With the real agent and restic: `exclude_larger_than` leaves the big
/// file out of the snapshot (the small one is in it); `compression: max`
/// on a format-1 repository fails the job with a message saying so.
#[actix_web::test]
async fn real_restic_honours_options() {
    let app = spawn_app().await;
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("data");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("small.txt"), "kept\n").unwrap();
    std::fs::write(source.join("big.bin"), vec![7_u8; 3 * 1024 * 1024]).unwrap();
    let fresh = TempRepo::new();

    let (host, agent) = e2e::online_agent(&app, work.path()).await;
    e2e::init_repository(&app, &host, &fresh.repo, &fresh.password).await;
    e2e::post(
        &app,
        &format!("/hosts/{host}/source-groups"),
        json!({"name": "data", "includes": [source.to_string_lossy()],
               "options": {"exclude_larger_than": "1M", "exclude_caches": true,
                           "limit_upload_kib": 100000}}),
    )
    .await;
    let backup = run_job(
        &app,
        &host,
        json!({"kind": "backup", "source_group": "data"}),
    )
    .await;
    assert_eq!(backup["status"], "succeeded", "{backup}");
    let out = fresh.restic(&["ls", "--json", "latest"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(listing.contains("small.txt"), "{listing}");
    assert!(!listing.contains("big.bin"), "the big file is excluded");

    // A format-1 repository cannot compress: the job says so.
    let old = TempRepo::new();
    let made = old.restic(&["init", "--repository-version", "1"]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    e2e::put(
        &app,
        &format!("/hosts/{host}/repository"),
        json!({"url": old.repo.to_string_lossy(), "password": old.password}),
    )
    .await;
    e2e::post(
        &app,
        &format!("/hosts/{host}/source-groups"),
        json!({"name": "packed", "includes": [source.to_string_lossy()],
               "options": {"compression": "max"}}),
    )
    .await;
    let refused = run_job(
        &app,
        &host,
        json!({"kind": "backup", "source_group": "packed"}),
    )
    .await;
    assert_eq!(refused["status"], "failed", "{refused}");
    let error = refused["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("options.compression needs a repository of format version 2"),
        "{refused}"
    );
    agent.stop().await;
    app.stop().await;
}

/// The host's schedule version as `GET /hosts/{id}` shows it.
async fn schedule_version(app: &TestApp, host: &str) -> i64 {
    let (status, body) = get(app, &app.admin_token, &format!("/hosts/{host}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["schedule_version"].as_i64().unwrap()
}

/// The next message of a kind, and what came before it.
async fn next_of(
    agent: &mut TestAgent,
    want: fn(&ServerToAgent) -> bool,
) -> (ServerToAgent, Vec<ServerToAgent>) {
    let (got, skipped) = agent.wait_for(|m| want(m).then(|| m.clone())).await;
    (got, skipped.into_iter().map(|e| e.message).collect())
}

/// The `config.update` among `messages`.
fn config_update(messages: &[ServerToAgent]) -> protocol::ConfigUpdate {
    messages
        .iter()
        .find_map(|m| match m {
            ServerToAgent::ConfigUpdate(c) => Some(c.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no config.update before schedule.set: {messages:?}"))
}

fn is_set(m: &ServerToAgent) -> bool {
    matches!(m, ServerToAgent::ScheduleSet(_))
}

/// A policy's repository goes to the matching hosts without one of their
/// own (config.update to them, not to the host with its own), a schedule
/// change sends no config.update, two policies giving different
/// repositories to one host are 409 naming both, and the repository is
/// taken back when the host stops matching.
#[actix_web::test]
async fn policy_repository_reaches_matching_hosts() {
    let app = spawn_app().await;
    let bare = labelled(&app, "rep-01", json!({"env": "prod"})).await;
    let owner = labelled(&app, "rep-02", json!({"env": "prod"})).await;
    let (status, _) = send(
        &app,
        Method::PUT,
        &format!("/hosts/{}/repository", owner.host_id),
        json!({"url": "/srv/own-repo", "password": "own-password"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, shared) = send(
        &app,
        Method::POST,
        "/repositories",
        json!({"name": "fleet", "url": "/srv/fleet-repo", "password": "fleet-password"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{shared}");
    let repo = shared["id"].as_str().unwrap().to_owned();
    let (status, other) = send(
        &app,
        Method::POST,
        "/repositories",
        json!({"name": "other", "url": "/srv/other-repo", "password": "other-password"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let other_repo = other["id"].as_str().unwrap().to_owned();

    let mut agent = TestAgent::connect(&app, &bare).await.unwrap();
    agent.hello("rep-01").await;
    let mut owner_agent = TestAgent::connect(&app, &owner).await.unwrap();
    owner_agent.hello("rep-02").await;

    let policy = |cron: &str, repository: Option<&str>| {
        json!({"name": "base", "selector": {"labels": {"env": "prod"}},
               "source_groups": [{"name": "etc", "includes": ["/etc"]}],
               "schedules": [{"cron_expr": cron, "source_groups": ["etc"]}],
               "repository_id": repository})
    };
    let (status, created) = send(
        &app,
        Method::POST,
        "/policies",
        policy("0 2 * * *", Some(repo.as_str())),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["hosts_affected"], 2,
        "groups on both, repository on one"
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, skipped) = next_of(&mut agent, is_set).await;
    let update = skipped
        .iter()
        .find_map(|m| match m {
            ServerToAgent::ConfigUpdate(c) => Some(c.clone()),
            _ => None,
        })
        .expect("config.update before schedule.set");
    assert_eq!(update.repo_url.as_deref(), Some("/srv/fleet-repo"));
    let (_, body) = get(
        &app,
        &app.admin_token,
        &format!("/hosts/{}/repository", bare.host_id),
    )
    .await;
    assert_eq!(body["id"], repo.as_str(), "{body}");
    let (_, body) = get(
        &app,
        &app.admin_token,
        &format!("/hosts/{}/repository", owner.host_id),
    )
    .await;
    assert_eq!(body["url"], "/srv/own-repo", "its own is kept: {body}");
    let (_, skipped) = next_of(&mut owner_agent, is_set).await;
    assert!(
        skipped
            .iter()
            .all(|m| !matches!(m, ServerToAgent::ConfigUpdate(_))),
        "no config.update for the host with its own repository: {skipped:?}"
    );

    // A schedule change: schedule.set alone.
    let (status, body) = send(
        &app,
        Method::PUT,
        &format!("/policies/{id}"),
        policy("0 4 * * *", Some(repo.as_str())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["hosts_affected"], 2);
    let (_, skipped) = next_of(&mut agent, is_set).await;
    assert!(
        skipped
            .iter()
            .all(|m| !matches!(m, ServerToAgent::ConfigUpdate(_))),
        "{skipped:?}"
    );

    // Another policy giving prod hosts another repository: 409.
    let clash = send(
        &app,
        Method::POST,
        "/policies",
        json!({"name": "elsewhere", "selector": {"labels": {"env": "prod"}},
               "repository_id": other_repo}),
    )
    .await;
    let message = assert_error(&clash, StatusCode::CONFLICT, "conflict");
    assert!(
        message.contains("rep-01")
            && message.contains("\"base\"")
            && message.contains("\"elsewhere\"")
            && !message.contains("rep-02"),
        "{message}"
    );
    let (_, list) = get(&app, &app.admin_token, "/policies").await;
    assert_eq!(list["total"], 1, "nothing stored");

    // Leaving the selector takes the repository back.
    let (status, _) = send(
        &app,
        Method::PATCH,
        &format!("/hosts/{}", bare.host_id),
        json!({"labels": {"env": "dev"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = get(
        &app,
        &app.admin_token,
        &format!("/hosts/{}/repository", bare.host_id),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // The agent is told (a config.update without a repository, which
    // cannot clear the one it holds), so the host's jobs are failed here
    // rather than run there without a lease.
    let (_, skipped) = next_of(&mut agent, is_set).await;
    assert_eq!(config_update(&skipped).repo_url, None);
    let job = run_job(&app, &bare.host_id, json!({"kind": "check"})).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .is_some_and(|e| e.contains("no repository any more")),
        "{job}"
    );
    // A policy that gives a repository only: coming back gets it again.
    let (status, body) = send(
        &app,
        Method::PUT,
        &format!("/policies/{id}"),
        json!({"name": "base", "selector": {"labels": {"env": "dev"}}, "repository_id": repo}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for("the repository back", async || {
        let (status, body) = get(
            &app,
            &app.admin_token,
            &format!("/hosts/{}/repository", bare.host_id),
        )
        .await;
        (status == StatusCode::OK && body["id"] == repo.as_str()).then_some(())
    })
    .await;
    // ... and its jobs go out again.
    let (_, skipped) = next_of(&mut agent, is_set).await;
    assert_eq!(
        config_update(&skipped).repo_url.as_deref(),
        Some("/srv/fleet-repo")
    );
    let (status, job) = send(
        &app,
        Method::POST,
        &format!("/hosts/{}/jobs", bare.host_id),
        json!({"kind": "check"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let run = agent.expect_command_run().await;
    assert_eq!(run.job_id, job["id"].as_str().unwrap());
    agent
        .run_job(&run, 0, protocol::FinishStatus::Succeeded)
        .await;
    // The repository cannot be deleted while a policy gives it.
    let refused = call(
        &app,
        &app.admin_token,
        Method::DELETE,
        &format!("/repositories/{repo}"),
        None,
    )
    .await;
    let message = assert_error(&refused, StatusCode::CONFLICT, "conflict");
    assert!(message.contains("policies \"base\""), "{message}");
    // Deleting the policy takes it back; the owner keeps its own.
    let (status, _) = call(
        &app,
        &app.admin_token,
        Method::DELETE,
        &format!("/policies/{id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = get(
        &app,
        &app.admin_token,
        &format!("/hosts/{}/repository", bare.host_id),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, body) = get(
        &app,
        &app.admin_token,
        &format!("/hosts/{}/repository", owner.host_id),
    )
    .await;
    assert_eq!(body["url"], "/srv/own-repo");
}
