#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
//! Schedule kinds (issue 12 §2) through the REST API and a scripted agent:
//! `kind` is stored, shown and validated (400 naming the field), a body
//! without it is a backup, `schedule.set` carries it, and a fire creates
//! the job of the stored kind: a check reading its rotating data subset,
//! a forget per group with `--prune` where the group asks, a drill before
//! any catalog recorded as a failed job with its reason (so not a missed
//! run, while a group-less check schedule can miss one). The real-restic
//! run of a check schedule is in `e2e_jobs`.

use chrono::{TimeZone, Utc};
use reqwest::{Method, StatusCode};
use restic_manager::protocol::{self, ScheduleKind};
use restic_manager::store::{JobKind, JobStatus, JobTrigger};
use serde_json::{json, Value};

use crate::common::agent::{enroll, eventually, jobs_of, missed_runs, tick, Enrolled, TestAgent};
use crate::common::api::{assert_error, call, get, login};
use crate::common::server::{client, spawn_app, TestApp};

/// POSTs `body` as the admin and returns the answer.
async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    call(app, &app.admin_token, Method::POST, path, Some(body)).await
}

/// Creates a schedule (201 expected) and returns it.
async fn schedule(app: &TestApp, host: &str, body: Value) -> Value {
    let (status, created) = post(app, &format!("/hosts/{host}/schedules"), body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// An enrolled host with a group `etc` (retention, `prune_after_forget`)
/// and a group `home` (no retention), and its agent, not yet connected.
async fn host_with_groups(app: &TestApp, hostname: &str) -> Enrolled {
    let enrolled = enroll(app, hostname).await;
    let groups = format!("/hosts/{}/source-groups", enrolled.host_id);
    let (status, etc) = post(
        app,
        &groups,
        json!({"name": "etc", "includes": ["/etc"], "retention_policy": {"keep_last": 2},
               "prune_after_forget": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{etc}");
    assert_eq!(etc["prune_after_forget"], true);
    let (status, home) = post(app, &groups, json!({"name": "home", "includes": ["/home"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{home}");
    assert_eq!(home["prune_after_forget"], false, "off by default");
    enrolled
}

/// `kind` over the API: absent → backup (an old body keeps working), each
/// kind stored and shown, an unknown one a 400 naming the field and the
/// kinds, groups refused for prune and check and required for backup,
/// a PUT changes the kind; the agent's `schedule.set` carries every kind.
#[actix_web::test]
async fn kinds_are_stored_validated_and_pushed() {
    let app = spawn_app().await;
    let enrolled = host_with_groups(&app, "kinds-01").await;
    let host = enrolled.host_id.clone();
    let base = format!("/hosts/{host}/schedules");

    let old_style = schedule(
        &app,
        &host,
        json!({"cron_expr": "0 2 * * *", "enabled": true, "source_groups": ["etc"]}),
    )
    .await;
    assert_eq!(old_style["kind"], "backup");

    let bad = post(
        &app,
        &base,
        json!({"cron_expr": "0 2 * * *", "kind": "restore", "source_groups": ["etc"]}),
    )
    .await;
    let message = assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(message.starts_with("kind: "), "{message}");
    assert!(
        message.contains("backup, forget, prune, check, drill"),
        "{message}"
    );
    let bad = post(
        &app,
        &base,
        json!({"cron_expr": "0 3 * * *", "kind": "check", "source_groups": ["etc"]}),
    )
    .await;
    let message = assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(message.starts_with("source_groups: "), "{message}");
    let bad = post(
        &app,
        &base,
        json!({"cron_expr": "0 3 * * *", "kind": "backup"}),
    )
    .await;
    let message = assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(message.starts_with("source_groups: "), "{message}");

    for kind in ["forget", "prune", "check", "drill"] {
        let created = schedule(&app, &host, json!({"cron_expr": "0 4 * * 0", "kind": kind})).await;
        assert_eq!(created["kind"], kind);
        assert_eq!(created["source_groups"], json!([]));
    }
    let one = format!("{base}/{}", old_style["id"].as_str().unwrap());
    let (status, changed) = call(
        &app,
        &app.admin_token,
        Method::PUT,
        &one,
        Some(json!({"cron_expr": "0 2 * * *", "kind": "drill", "source_groups": ["home"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["kind"], "drill");
    assert_eq!(changed["source_groups"], json!(["home"]));
    let (_, list) = get(&app, &app.admin_token, &base).await;
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["drill", "forget", "prune", "check", "drill"]);

    let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
    let (_, set) = agent.hello("kinds-01").await;
    let pushed: Vec<ScheduleKind> = set.schedules.iter().map(|s| s.kind).collect();
    use ScheduleKind::*;
    assert_eq!(pushed, [Drill, Forget, Prune, Check, Drill]);

    // The host page lists each schedule's kind, offers the kinds in its
    // forms, and says which group prunes after forgetting.
    let admin = login(&app, "admin", &app.admin_password).await;
    let resp = client()
        .get(app.url(&format!("/hosts/{host}")))
        .header("cookie", &admin.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains(r#"<td class="schedule-kind">check</td>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<select id="s-new-kind" name="kind">"#),
        "{html}"
    );
    assert!(html.contains(r#"<option value="prune""#), "{html}");
    assert!(html.contains(", then prune"), "{html}");
    assert!(html.contains(r#"name="prune_after_forget""#), "{html}");
}

/// Fires of each kind through a scripted agent: a check (fired by an
/// agent that names the kind) is a `check` with the rotation's subset, and
/// its replay creates nothing; a forget of every group forgets only `etc`
/// (the one with retention) with `--prune`; a drill fired by an agent from
/// before kinds (no `kind`) while no catalog exists is a failed job whose
/// error says so, never sent to the agent; a replay adds nothing.
#[actix_web::test]
async fn fires_create_the_job_of_the_stored_kind() {
    let app = spawn_app().await;
    let enrolled = host_with_groups(&app, "kinds-02").await;
    let host = enrolled.host_id.clone();
    let check = schedule(
        &app,
        &host,
        json!({"cron_expr": "0 4 * * *", "kind": "check"}),
    )
    .await;
    let forget = schedule(
        &app,
        &host,
        json!({"cron_expr": "0 5 * * *", "kind": "forget"}),
    )
    .await;
    let drill = schedule(
        &app,
        &host,
        json!({"cron_expr": "0 6 * * *", "kind": "drill"}),
    )
    .await;
    let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
    agent.hello("kinds-02").await;
    let at = Utc.with_ymd_and_hms(2026, 11, 23, 4, 0, 0).unwrap();
    let fire = |s: &Value, kind: Option<ScheduleKind>| protocol::ScheduleFire {
        schedule_id: s["id"].as_str().unwrap().to_owned(),
        scheduled_at: at,
        kind,
    };

    agent.send(fire(&check, Some(ScheduleKind::Check))).await;
    let run = agent.expect_command_run().await;
    assert_eq!(run.kind, JobKind::Check);
    assert_eq!(run.args, ["--read-data-subset=1/30"]);
    agent.send(fire(&check, Some(ScheduleKind::Check))).await; // replay
    agent
        .run_job(&run, 0, protocol::FinishStatus::Succeeded)
        .await;

    agent.send(fire(&forget, Some(ScheduleKind::Forget))).await;
    let run = agent.expect_command_run().await;
    assert_eq!(run.kind, JobKind::Forget);
    assert_eq!(run.tag.as_deref(), Some("etc"));
    assert_eq!(run.args, ["--prune"]);
    assert!(run.retention_policy.is_some());
    agent
        .run_job(&run, 0, protocol::FinishStatus::Succeeded)
        .await;

    agent.send(fire(&drill, None)).await;
    let drill_id = drill["id"].as_str().unwrap().to_owned();
    let failed = eventually("the refused drill job", || {
        let app = &app;
        let host = host.clone();
        let drill_id = drill_id.clone();
        async move {
            jobs_of(app, &host)
                .await
                .into_iter()
                .find(|j| j.schedule_id.as_deref() == Some(drill_id.as_str()))
        }
    })
    .await;
    assert_eq!(failed.kind, JobKind::Drill);
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.trigger, JobTrigger::Schedule);
    let error = failed.error.clone().unwrap_or_default();
    assert!(
        error.starts_with("drill schedule: ") && error.contains("catalog"),
        "{error}"
    );
    agent.send(fire(&drill, None)).await; // replay

    agent.send(fire(&check, None)).await; // replay from an agent before kinds
    let jobs = eventually("three jobs, the first two succeeded", || async {
        let jobs = jobs_of(&app, &host).await;
        (jobs.len() == 3 && jobs[..2].iter().all(|j| j.status == JobStatus::Succeeded))
            .then_some(jobs)
    })
    .await;
    let kinds: Vec<JobKind> = jobs.iter().map(|j| j.kind).collect();
    assert_eq!(kinds, [JobKind::Check, JobKind::Forget, JobKind::Drill]);
    assert!(jobs.iter().all(
        |j| j.trigger == JobTrigger::Schedule && j.scheduled_at == Some(at.timestamp_millis())
    ));
    assert_eq!(jobs[2].dispatched_at, None, "a refused drill is never sent");
}

/// Missed runs by kind: a check schedule has no source groups yet its
/// unfired time is a missed run (only a backup schedule without groups
/// fires nothing and is never "missed"); a drill schedule's fire that was
/// refused (no catalog) left its failed job, so that time is not missed.
#[actix_web::test]
async fn groupless_kinds_can_miss_a_run_and_a_refused_fire_is_not_missed() {
    let app = spawn_app().await;
    let enrolled = host_with_groups(&app, "kinds-03").await;
    let host = enrolled.host_id.clone();
    let check = schedule(
        &app,
        &host,
        json!({"cron_expr": "0 2 * * *", "kind": "check"}),
    )
    .await;
    let drill = schedule(
        &app,
        &host,
        json!({"cron_expr": "0 2 * * *", "kind": "drill"}),
    )
    .await;
    let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
    agent.hello("kinds-03").await;

    let cron: croner::Cron = "0 2 * * *".parse().unwrap();
    let now = chrono::Timelike::with_nanosecond(&Utc::now(), 0).unwrap();
    let t1 = cron.find_next_occurrence(&now, false).unwrap();
    agent
        .send(protocol::ScheduleFire {
            schedule_id: drill["id"].as_str().unwrap().to_owned(),
            scheduled_at: t1,
            kind: Some(ScheduleKind::Drill),
        })
        .await;
    eventually("the refused drill job", || async {
        let jobs = jobs_of(&app, &host).await;
        jobs.into_iter().find(|j| j.status == JobStatus::Failed)
    })
    .await;

    let grace =
        chrono::Duration::seconds(i64::try_from(app.config.missed_run_grace_seconds).unwrap());
    let report = tick(&app, t1 + grace + chrono::Duration::minutes(1)).await;
    assert_eq!(report.missed_runs_recorded, 1);
    let missed = missed_runs(&app).await;
    assert_eq!(missed.total, 1);
    assert_eq!(
        missed.items[0].schedule_id.as_str(),
        check["id"].as_str().unwrap()
    );
    assert_eq!(missed.items[0].scheduled_at, t1.timestamp_millis());
}

/// Creates policy `name` (a group `etc`, a schedule at 02:00) for hosts
/// labelled `env=<env>` and returns the id of its schedule on `host`.
async fn policy_schedule(app: &TestApp, name: &str, env: &str, host: &str) -> String {
    let (status, created) = post(
        app,
        "/policies",
        json!({"name": name, "selector": {"labels": {"env": env}},
               "source_groups": [{"name": "etc", "includes": ["/etc"]}],
               "schedules": [{"cron_expr": "0 2 * * *", "source_groups": ["etc"]}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, config) = get(
        app,
        &app.admin_token,
        &format!("/hosts/{host}/effective-config"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{config}");
    config["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["origin"] == format!("policy:{name}"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A schedule change on the writer's short path: the PUT's answer carries
/// the groups it linked (built from the write, not read back) and equals
/// what a GET reads; an unknown group is 400 naming it; a schedule a
/// policy manages is 409 naming the policy on PUT and DELETE; an unknown
/// schedule is 404.
#[actix_web::test]
async fn schedule_put_answers_from_the_write_and_refuses_policy_rows() {
    let app = spawn_app().await;
    let host = crate::policies::labelled(&app, "sk-put", json!({"env": "prod"}))
        .await
        .host_id;
    for name in ["b-home", "a-etc"] {
        let (status, body) = post(
            &app,
            &format!("/hosts/{host}/source-groups"),
            json!({"name": name, "includes": [format!("/{name}")]}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let own = schedule(
        &app,
        &host,
        json!({"cron_expr": "0 1 * * *", "source_groups": ["b-home"]}),
    )
    .await;
    assert_eq!(own["source_groups"], json!(["b-home"]));
    let sid = own["id"].as_str().unwrap();
    let path = format!("/hosts/{host}/schedules/{sid}");
    let put = |body: Value| {
        let path = path.clone();
        let app = &app;
        async move { call(app, &app.admin_token, Method::PUT, &path, Some(body)).await }
    };
    let (status, changed) =
        put(json!({"cron_expr": "0 3 * * *", "source_groups": ["b-home", "a-etc"]})).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["source_groups"], json!(["a-etc", "b-home"]));
    assert_eq!(changed["cron_expr"], "0 3 * * *");
    let (status, read) = get(&app, &app.admin_token, &path).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read, changed);

    let unknown = put(json!({"cron_expr": "0 3 * * *", "source_groups": ["a-etc", "nope"]})).await;
    let message = assert_error(&unknown, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(
        message.starts_with("source_groups: ") && message.contains("\"nope\""),
        "{message}"
    );

    let managed = policy_schedule(&app, "base", "prod", &host).await;
    let managed_path = format!("/hosts/{host}/schedules/{managed}");
    let body = json!({"cron_expr": "0 4 * * *", "source_groups": ["etc"]});
    for method in [Method::PUT, Method::DELETE] {
        let got = call(
            &app,
            &app.admin_token,
            method,
            &managed_path,
            Some(body.clone()),
        )
        .await;
        let message = assert_error(&got, StatusCode::CONFLICT, "conflict");
        assert!(message.contains("\"base\""), "{message}");
    }
    let missing = call(
        &app,
        &app.admin_token,
        Method::PUT,
        &format!("/hosts/{host}/schedules/no-such-schedule"),
        Some(body),
    )
    .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
}

/// PUTs in flight at once (issue 19: each one statement on PostgreSQL's
/// writer) each get their own answer: a change on each of three hosts,
/// and beside them an unknown group on one of those schedules, an unknown
/// schedule, an unknown host and a schedule a policy manages. The changes
/// stick (a GET reads each answer), each wrote one audit row, and the
/// refusals changed nothing.
#[actix_web::test]
async fn concurrent_schedule_puts_each_get_their_own_answer() {
    let app = spawn_app().await;
    let mut own = Vec::new();
    for i in 0..3 {
        let host = crate::policies::labelled(&app, &format!("sk-many-{i}"), json!({"env": "many"}))
            .await
            .host_id;
        let (status, body) = post(
            &app,
            &format!("/hosts/{host}/source-groups"),
            json!({"name": "own", "includes": ["/own"]}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let created = schedule(
            &app,
            &host,
            json!({"cron_expr": "0 1 * * *", "source_groups": ["own"]}),
        )
        .await;
        own.push((host, created["id"].as_str().unwrap().to_owned()));
    }
    let managed = policy_schedule(&app, "many", "many", &own[0].0).await;

    let path = |host: &str, sid: &str| format!("/hosts/{host}/schedules/{sid}");
    let change =
        |hour: usize| json!({"cron_expr": format!("0 {hour} * * *"), "source_groups": ["own"]});
    let mut puts: Vec<(String, Value, StatusCode)> = own
        .iter()
        .enumerate()
        .map(|(i, (host, sid))| (path(host, sid), change(10 + i), StatusCode::OK))
        .collect();
    puts.extend([
        (
            path(&own[1].0, &own[1].1),
            json!({"cron_expr": "0 5 * * *", "source_groups": ["own", "nope"]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            path(&own[2].0, "no-such-schedule"),
            change(6),
            StatusCode::NOT_FOUND,
        ),
        (
            path("no-such-host", &own[0].1),
            change(7),
            StatusCode::NOT_FOUND,
        ),
        (
            path(&own[0].0, &managed),
            json!({"cron_expr": "0 8 * * *", "source_groups": ["etc"]}),
            StatusCode::CONFLICT,
        ),
    ]);
    let answers = futures_util::future::join_all(puts.iter().map(|(path, body, _)| {
        call(
            &app,
            &app.admin_token,
            Method::PUT,
            path,
            Some(body.clone()),
        )
    }))
    .await;
    for ((path, _, expected), (status, body)) in puts.iter().zip(&answers) {
        assert_eq!(status, expected, "PUT {path}: {body}");
    }
    assert!(answers[3].1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("\"nope\""));
    assert!(answers[6].1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("\"many\""));

    for (i, (host, sid)) in own.iter().enumerate() {
        let (status, read) = get(&app, &app.admin_token, &path(host, sid)).await;
        assert_eq!(status, StatusCode::OK, "{read}");
        assert_eq!(
            read, answers[i].1,
            "host {i}: the answer is what was stored"
        );
        assert_eq!(read["cron_expr"], format!("0 {} * * *", 10 + i));
        assert_eq!(read["source_groups"], json!(["own"]));
    }
    let (status, audited) = get(&app, &app.admin_token, "/audit?action=schedule.update").await;
    assert_eq!(status, StatusCode::OK, "{audited}");
    assert_eq!(audited["total"], 3, "one audit row per change: {audited}");
    let mut targets: Vec<&str> = audited["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    targets.sort_unstable();
    let mut sids: Vec<&str> = own.iter().map(|(_, sid)| sid.as_str()).collect();
    sids.sort_unstable();
    assert_eq!(targets, sids);
    let (status, managed_row) = get(&app, &app.admin_token, &path(&own[0].0, &managed)).await;
    assert_eq!(status, StatusCode::OK, "{managed_row}");
    assert_eq!(
        managed_row["cron_expr"], "0 2 * * *",
        "the policy's row unchanged"
    );
}
