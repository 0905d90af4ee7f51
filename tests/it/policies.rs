//! Policies by label and bulk actions (issue 12 §1, §4) through the REST
//! API and scripted agents: CRUD with roles, 400s naming the field and
//! 409s naming hosts and policies; a host's effective configuration with
//! each item's origin; `schedule.set` pushed to the hosts a policy change
//! affects and not to the others; jobs of policy groups carrying the
//! group's paths; the repeatable label filter; bulk create and cancel with
//! one audit row each.

use chrono::{TimeZone, Utc};
use reqwest::{Method, StatusCode};
use restic_manager::auth::Role;
use restic_manager::protocol::{self, ServerToAgent};
use restic_manager::store::{JobKind, JobStatus};
use serde_json::{json, Value};

use crate::common::agent::{enroll, eventually, jobs_of, Enrolled, TestAgent};
use crate::common::api::{assert_error, audit_rows, call, get, user_with_token};
use crate::common::server::{spawn_app, TestApp};

pub(crate) async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    call(app, &app.admin_token, method, path, Some(body)).await
}

/// Enrols a host and gives it labels.
pub(crate) async fn labelled(app: &TestApp, hostname: &str, labels: Value) -> Enrolled {
    let host = enroll(app, hostname).await;
    set_labels(app, &host.host_id, labels).await;
    host
}

async fn set_labels(app: &TestApp, host: &str, labels: Value) -> (StatusCode, Value) {
    let got = send(
        app,
        Method::PATCH,
        &format!("/hosts/{host}"),
        json!({ "labels": labels }),
    )
    .await;
    got
}

/// A policy for `env=prod` with a group `etc` and a nightly backup of it.
fn prod_policy(name: &str, cron: &str) -> Value {
    json!({
        "name": name,
        "selector": {"labels": {"env": "prod"}},
        "source_groups": [{"name": "etc", "includes": ["/etc"], "excludes": ["*.tmp"],
                           "retention_policy": {"keep_daily": 7}}],
        "schedules": [{"cron_expr": cron, "enabled": true, "kind": "backup",
                       "source_groups": ["etc"]}],
    })
}

/// `GET /hosts/{host}/effective-config`, asserted 200.
pub(crate) async fn effective(app: &TestApp, host: &str) -> Value {
    let (status, body) = get(
        app,
        &app.admin_token,
        &format!("/hosts/{host}/effective-config"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Create, read, list, update and delete, each with its audit row; a
/// viewer reads but cannot write; bad input is 400 naming the field; a
/// taken name is 409.
#[actix_web::test]
async fn crud_roles_and_validation() {
    let app = spawn_app().await;
    let viewer = user_with_token(&app, "pviewer", Role::Viewer, "viewer-password").await;
    let prod = labelled(&app, "pol-01", json!({"env": "prod"})).await;
    labelled(&app, "pol-02", json!({"env": "dev"})).await;

    let (status, created) = send(
        &app,
        Method::POST,
        "/policies",
        prod_policy("base", "0 2 * * *"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["hosts_affected"], 1);
    assert_eq!(created["policy"]["name"], "base");
    assert_eq!(created["policy"]["hosts_matched"], 1);
    let id = created["policy"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["id"], id.as_str(), "the fields are at the top too");

    let (status, one) = get(&app, &viewer, &format!("/policies/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["host_ids"], json!([prod.host_id]));
    assert_eq!(one["schedules"][0]["kind"], "backup");
    assert_eq!(one["source_groups"][0]["excludes"], json!(["*.tmp"]));
    let (status, list) = get(&app, &viewer, "/policies").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 1);

    let denied = call(
        &app,
        &viewer,
        Method::POST,
        "/policies",
        Some(prod_policy("v", "0 2 * * *")),
    )
    .await;
    assert_eq!(denied.0, StatusCode::FORBIDDEN, "{}", denied.1);
    let denied = call(
        &app,
        &viewer,
        Method::DELETE,
        &format!("/policies/{id}"),
        None,
    )
    .await;
    assert_eq!(denied.0, StatusCode::FORBIDDEN, "{}", denied.1);

    let taken = send(&app, Method::POST, "/policies", json!({"name": "base"})).await;
    let message = assert_error(&taken, StatusCode::CONFLICT, "conflict");
    assert!(message.starts_with("name:"), "{message}");

    let mut bad_cron = prod_policy("x", "0 2 * *");
    bad_cron["name"] = json!("x");
    let cases = [
        (json!({"name": "  "}), "name:"),
        (bad_cron, "schedules[0].cron_expr:"),
        (
            json!({"name": "x", "schedules": [{"cron_expr": "0 2 * * *", "kind": "restore"}]}),
            "schedules[0].kind:",
        ),
        (
            json!({"name": "x", "source_groups": [{"name": "etc", "includes": ["/etc"]}],
                   "schedules": [{"cron_expr": "0 2 * * *", "source_groups": ["home"]}]}),
            "schedules[0].source_groups:",
        ),
        (
            json!({"name": "x", "source_groups": [{"name": "etc", "includes": []}]}),
            "source_groups[0].includes:",
        ),
        (
            json!({"name": "x", "source_groups": [{"name": "etc", "includes": ["/a"]},
                                                   {"name": "etc", "includes": ["/b"]}]}),
            "source_groups[1].name:",
        ),
        (
            json!({"name": "x", "selector": {"labels": {"a b": "c"}}}),
            "selector.labels:",
        ),
        (
            json!({"name": "x", "source_groups": [{"name": "db", "type": "dump",
                   "dump": {"driver": "postgres", "database": "shop"}}]}),
            "source_groups[0].type:",
        ),
        (
            json!({"name": "x", "repository_id": "nope"}),
            "repository_id:",
        ),
        (json!({"name": "x", "options": [1]}), "options:"),
    ];
    for (body, prefix) in cases {
        let got = send(&app, Method::POST, "/policies", body.clone()).await;
        assert_eq!(got.0, StatusCode::BAD_REQUEST, "{body}: {}", got.1);
        let message = got.1["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(prefix), "{body}: {message}");
    }

    let (status, changed) = send(
        &app,
        Method::PUT,
        &format!("/policies/{id}"),
        prod_policy("base", "0 3 * * *"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["hosts_affected"], 1);
    assert_eq!(changed["policy"]["schedules"][0]["cron_expr"], "0 3 * * *");
    let (status, same) = send(
        &app,
        Method::PUT,
        &format!("/policies/{id}"),
        prod_policy("base", "0 3 * * *"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(same["hosts_affected"], 0, "nothing changed");

    let (status, _) = call(
        &app,
        &app.admin_token,
        Method::DELETE,
        &format!("/policies/{id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = get(&app, &viewer, &format!("/policies/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(effective(&app, &prod.host_id).await["source_groups"]
        .as_array()
        .unwrap()
        .is_empty());
    for action in ["policy.create", "policy.update", "policy.delete"] {
        assert!(!audit_rows(&app, action).await.is_empty(), "{action}");
    }
}

/// The effective configuration lists the host's own items and the
/// policy's, each with its origin; a clash of group names is 409 naming
/// the host and the policy, whether it comes from a policy create, a host
/// label change or a host group create; the policy's rows cannot be
/// changed through the host's routes.
#[actix_web::test]
async fn effective_config_origins_and_conflicts() {
    let app = spawn_app().await;
    let host = labelled(&app, "pol-10", json!({"env": "prod"}))
        .await
        .host_id;
    let other = labelled(&app, "pol-11", json!({"env": "dev"}))
        .await
        .host_id;
    let (status, own) = send(
        &app,
        Method::POST,
        &format!("/hosts/{host}/source-groups"),
        json!({"name": "home", "includes": ["/home"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{own}");
    let (status, created) = send(
        &app,
        Method::POST,
        "/policies",
        prod_policy("base", "0 2 * * *"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    let config = effective(&app, &host).await;
    assert_eq!(config["policies"], json!(["base"]));
    let groups: Vec<(&str, &str)> = config["source_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["name"].as_str().unwrap(), g["origin"].as_str().unwrap()))
        .collect();
    assert_eq!(groups, [("etc", "policy:base"), ("home", "host")]);
    assert_eq!(config["schedules"][0]["origin"], "policy:base");
    assert_eq!(config["schedules"][0]["source_groups"], json!(["etc"]));

    // A second policy with a group `home` for prod hosts: 409.
    let clash = send(
        &app,
        Method::POST,
        "/policies",
        json!({"name": "homes", "selector": {"labels": {"env": "prod"}},
               "source_groups": [{"name": "home", "includes": ["/srv"]}]}),
    )
    .await;
    let message = assert_error(&clash, StatusCode::CONFLICT, "conflict");
    assert!(
        message.contains("pol-10") && message.contains("homes"),
        "{message}"
    );
    // The dev host has its own `etc`: making it prod clashes with `base`.
    send(
        &app,
        Method::POST,
        &format!("/hosts/{other}/source-groups"),
        json!({"name": "etc", "includes": ["/opt/etc"]}),
    )
    .await;
    let clash = set_labels(&app, &other, json!({"env": "prod"})).await;
    let message = assert_error(&clash, StatusCode::CONFLICT, "conflict");
    assert!(
        message.contains("pol-11") && message.contains("\"base\""),
        "{message}"
    );
    let (_, still) = get(&app, &app.admin_token, &format!("/hosts/{other}")).await;
    assert_eq!(still["labels"], json!({"env": "dev"}), "nothing changed");
    // A host group named like the policy's: 409 naming the policy.
    let clash = send(
        &app,
        Method::POST,
        &format!("/hosts/{host}/source-groups"),
        json!({"name": "etc", "includes": ["/x"]}),
    )
    .await;
    let message = assert_error(&clash, StatusCode::CONFLICT, "conflict");
    assert!(message.contains("base"), "{message}");
    // The policy's group is changed through the policy only.
    let gid = config["source_groups"][0]["id"].as_str().unwrap();
    let refused = call(
        &app,
        &app.admin_token,
        Method::DELETE,
        &format!("/hosts/{host}/source-groups/{gid}"),
        None,
    )
    .await;
    assert_eq!(refused.0, StatusCode::CONFLICT, "{}", refused.1);

    // Labels that stop matching take the policy's items away.
    let (status, _) = set_labels(&app, &host, json!({"env": "staging"})).await;
    assert_eq!(status, StatusCode::OK);
    let config = effective(&app, &host).await;
    assert_eq!(config["source_groups"].as_array().unwrap().len(), 1);
    assert!(config["schedules"].as_array().unwrap().is_empty());
}

/// The next `schedule.set` the agent receives (after its `config.update`);
/// no other `schedule.set` comes before it.
async fn next_set(agent: &mut TestAgent) -> protocol::ScheduleSet {
    let (set, skipped) = agent
        .wait_for(|m| match m {
            ServerToAgent::ScheduleSet(set) => Some(set.clone()),
            _ => None,
        })
        .await;
    assert!(
        skipped
            .iter()
            .all(|e| matches!(e.message, ServerToAgent::ConfigUpdate(_))),
        "{skipped:?}"
    );
    set
}

/// A connected agent gets `schedule.set` when a policy that matches it
/// changes, not when an unrelated one does; enrolling a host that matches
/// an every-host policy gives it the policy's schedule at its first
/// hello; a fire of the policy's schedule and a run-now of its group send
/// the group's paths.
#[actix_web::test]
async fn pushes_follow_policy_changes_and_jobs_use_policy_groups() {
    let app = spawn_app().await;
    let enrolled = labelled(&app, "pol-20", json!({"env": "prod"})).await;
    let host = enrolled.host_id.clone();
    let (status, created) = send(
        &app,
        Method::POST,
        "/policies",
        prod_policy("base", "0 2 * * *"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, unrelated) = send(
        &app,
        Method::POST,
        "/policies",
        json!({"name": "dev", "selector": {"labels": {"env": "dev"}},
               "source_groups": [{"name": "dev", "includes": ["/dev-data"]}],
               "schedules": [{"cron_expr": "0 1 * * *", "source_groups": ["dev"]}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{unrelated}");
    assert_eq!(unrelated["hosts_affected"], 0);

    let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
    let (_, set) = agent.hello("pol-20").await;
    assert_eq!(set.schedules.len(), 1);
    assert_eq!(set.schedules[0].cron_expr, "0 2 * * *");
    assert_eq!(set.schedules[0].source_groups[0].includes, ["/etc"]);
    let version = set.version;
    agent
        .send(protocol::ScheduleAck {
            version,
            applied_at: Utc::now(),
        })
        .await;

    // The unrelated policy changes: nothing for this host.
    let dev_id = unrelated["id"].as_str().unwrap();
    let (status, body) = send(
        &app,
        Method::PUT,
        &format!("/policies/{dev_id}"),
        json!({"name": "dev", "selector": {"labels": {"env": "dev"}},
               "source_groups": [{"name": "dev", "includes": ["/dev-data2"]}],
               "schedules": [{"cron_expr": "0 4 * * *", "source_groups": ["dev"]}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["hosts_affected"], 0);
    // The matching one changes: the next schedule.set is that change.
    let (status, body) = send(
        &app,
        Method::PUT,
        &format!("/policies/{id}"),
        prod_policy("base", "30 2 * * *"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["hosts_affected"], 1);
    let set = next_set(&mut agent).await;
    assert_eq!(set.version, version + 1, "one push, one version");
    assert_eq!(set.schedules[0].cron_expr, "30 2 * * *");
    let schedule_id = set.schedules[0].id.clone();
    agent
        .send(protocol::ScheduleAck {
            version: set.version,
            applied_at: Utc::now(),
        })
        .await;
    eventually("the ack recorded", || {
        let app = &app;
        let host = host.clone();
        async move {
            let (_, shown) = get(app, &app.admin_token, &format!("/hosts/{host}")).await;
            (shown["acked_schedule_version"] == set.version).then_some(())
        }
    })
    .await;

    // A fire of the policy's schedule backs up the policy's paths.
    agent
        .send(protocol::ScheduleFire {
            schedule_id,
            scheduled_at: Utc.with_ymd_and_hms(2026, 12, 1, 2, 30, 0).unwrap(),
            kind: Some(protocol::ScheduleKind::Backup),
        })
        .await;
    let run = agent.expect_command_run().await;
    assert_eq!(run.kind, JobKind::Backup);
    assert_eq!(run.includes, ["/etc"]);
    assert_eq!(run.excludes, ["*.tmp"]);
    assert_eq!(run.tag.as_deref(), Some("etc"));
    agent
        .run_job(&run, 0, protocol::FinishStatus::Succeeded)
        .await;
    // Run now of the policy's group.
    let (status, job) = send(
        &app,
        Method::POST,
        &format!("/hosts/{host}/jobs"),
        json!({"kind": "forget", "source_group": "etc"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let run = agent.expect_command_run().await;
    assert_eq!(run.kind, JobKind::Forget);
    assert_eq!(run.retention_policy.unwrap().keep_daily, Some(7));

    // A policy for every host; a host enrolled afterwards has it at hello.
    let (status, all) = send(
        &app,
        Method::POST,
        "/policies",
        json!({"name": "all", "selector": {},
               "source_groups": [{"name": "var", "includes": ["/var"]}],
               "schedules": [{"cron_expr": "0 5 * * *", "source_groups": ["var"]}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{all}");
    let set = next_set(&mut agent).await;
    assert_eq!(set.schedules.len(), 2);
    let late = enroll(&app, "pol-21").await;
    let mut agent2 = TestAgent::connect(&app, &late).await.unwrap();
    let (_, set) = agent2.hello("pol-21").await;
    assert_eq!(set.schedules.len(), 1);
    assert_eq!(set.schedules[0].source_groups[0].includes, ["/var"]);
}

/// `?label=` repeats and every one must match; paging as before.
#[actix_web::test]
async fn label_filter_repeats() {
    let app = spawn_app().await;
    labelled(&app, "lab-1", json!({"env": "prod", "role": "db"})).await;
    labelled(&app, "lab-2", json!({"env": "prod", "role": "web"})).await;
    labelled(&app, "lab-3", json!({"env": "dev", "role": "db"})).await;
    let names = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["hostname"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, body) = get(
        &app,
        &app.admin_token,
        "/hosts?label=env=prod&label=role=db",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), ["lab-1"]);
    let (_, body) = get(&app, &app.admin_token, "/hosts?label=env=prod&limit=1").await;
    assert_eq!(names(&body), ["lab-1"]);
    assert_eq!(body["total"], 2);
    let bad = get(&app, &app.admin_token, "/hosts?label=env").await;
    let message = assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(message.starts_with("label:"), "{message}");
}

/// Bulk create by selector and by ids: one job per host that has the
/// group, the others skipped with the reason, one audit row; bulk cancel
/// cancels the queued ones, one audit row; bad selections are 400.
#[actix_web::test]
async fn bulk_create_and_cancel() {
    let app = spawn_app().await;
    let a = labelled(&app, "bulk-1", json!({"env": "prod"}))
        .await
        .host_id;
    let b = labelled(&app, "bulk-2", json!({"env": "prod"}))
        .await
        .host_id;
    let c = labelled(&app, "bulk-3", json!({"env": "prod"}))
        .await
        .host_id;
    for host in [&a, &b] {
        let (status, _) = send(
            &app,
            Method::POST,
            &format!("/hosts/{host}/source-groups"),
            json!({"name": "etc", "includes": ["/etc"]}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, done) = send(
        &app,
        Method::POST,
        "/jobs/bulk",
        json!({"selector": {"labels": {"env": "prod"}}, "kind": "backup", "source_group": "etc"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{done}");
    assert_eq!(done["created"], 2);
    assert_eq!(done["skipped"].as_array().unwrap().len(), 1);
    assert_eq!(done["skipped"][0]["host_id"], c.as_str());
    assert!(done["skipped"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("etc"));
    let rows = audit_rows(&app, "job.bulk_create").await;
    assert_eq!(rows.len(), 1);
    let detail = rows[0].detail.clone().unwrap_or_default();
    assert!(detail.to_string().contains("\"created\":2"), "{detail:?}");

    let (status, done) = send(
        &app,
        Method::POST,
        "/jobs/bulk",
        json!({"host_ids": [a, "no-such-host"], "kind": "check"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{done}");
    assert_eq!(done["created"], 1);
    assert_eq!(done["skipped"][0]["host_id"], "no-such-host");
    // A bulk check and a run-now check share the host's rotation: each
    // reads the next subset.
    let (status, job) = send(
        &app,
        Method::POST,
        &format!("/hosts/{a}/jobs"),
        json!({"kind": "check"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let (status, done) = send(
        &app,
        Method::POST,
        "/jobs/bulk",
        json!({"host_ids": [a], "kind": "check"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{done}");
    let subsets: Vec<Vec<String>> = jobs_of(&app, &a)
        .await
        .into_iter()
        .filter(|j| j.kind == JobKind::Check)
        .map(|j| j.args)
        .collect();
    assert_eq!(
        subsets,
        [1, 2, 3].map(|k| vec![format!("--read-data-subset={k}/30")])
    );

    for (body, prefix) in [
        (
            json!({"kind": "backup", "source_group": "etc"}),
            "selector:",
        ),
        (
            json!({"selector": {}, "host_ids": [a], "kind": "check"}),
            "selector:",
        ),
        (json!({"selector": {}, "kind": "backup"}), "source_group:"),
        (json!({"selector": {}, "kind": "nope"}), "kind:"),
        (json!({"host_ids": [], "kind": "check"}), "host_ids:"),
    ] {
        let got = send(&app, Method::POST, "/jobs/bulk", body.clone()).await;
        let message = assert_error(&got, StatusCode::BAD_REQUEST, "validation_failed");
        assert!(message.starts_with(prefix), "{body}: {message}");
    }

    let (status, done) = send(
        &app,
        Method::POST,
        "/jobs/bulk-cancel",
        json!({"selector": {"labels": {"env": "prod"}}, "kind": "backup"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{done}");
    assert_eq!(done["cancelled"], 2, "the two queued backups");
    let (_, done) = send(
        &app,
        Method::POST,
        "/jobs/bulk-cancel",
        json!({"host_ids": [a]}),
    )
    .await;
    assert_eq!(done["cancelled"], 3, "the checks");
    assert_eq!(audit_rows(&app, "job.bulk_cancel").await.len(), 2);
    let jobs = eventually("every job cancelled", || {
        let app = &app;
        let a = a.clone();
        async move {
            let jobs = jobs_of(app, &a).await;
            jobs.iter()
                .all(|j| j.status == JobStatus::Cancelled)
                .then_some(jobs)
        }
    })
    .await;
    assert_eq!(jobs.len(), 4, "a backup and three checks");
}
