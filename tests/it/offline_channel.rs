//! `job.report` on the wire (issue 14 §6), with a scripted agent against
//! a real server: a backup the agent ran while the server was away is
//! recorded once however often it is reported, its lines and end land on
//! it, its retention `forget` follows, a late `schedule.fire` of the same
//! run adds no backup, and reports the server must not take are refused
//! in the `ack` with the reason.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use chrono::{TimeZone, Utc};
use serde_json::json;

use crate::common::agent::{
    db, enroll, finished_envelope, jobs_of, log_line, missed_runs, TestAgent,
};
use crate::common::e2e::{get, post};
use crate::common::server::spawn_app;
use restic_manager::protocol::{
    self, FinishStatus, JobKind, JobReport, ScheduleFire, ScheduleKind, ORIGIN_AGENT,
};
use restic_manager::store::models::NewMissedRun;
use restic_manager::store::{self, JobStatus, JobTrigger};

fn report(job_id: &str, schedule_id: &str) -> JobReport {
    JobReport {
        job_id: job_id.to_owned(),
        origin: ORIGIN_AGENT.to_owned(),
        kind: JobKind::Backup,
        schedule_id: schedule_id.to_owned(),
        scheduled_at: Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap(),
        tag: "etc".to_owned(),
        includes: vec!["/etc".to_owned()],
        excludes: vec![],
        started_at: Utc.with_ymd_and_hms(2026, 11, 23, 2, 10, 0).unwrap(),
    }
}

/// A report sent twice (a retry after a lost ack) is acked both times and
/// makes one running job (`trigger: agent`, linked to its group and
/// schedule; a missed run recorded for its fire goes); its lines and its `job.finished` (replayed too) land on it
/// once, the retention `forget` follows, and a late fire of the same run
/// creates no second backup.
#[actix_web::test]
async fn job_report_is_recorded_once_and_finishes_like_any_backup() {
    let app = spawn_app().await;
    let enrolled = enroll(&app, "web-1").await;
    let host = enrolled.host_id.clone();
    let group = post(
        &app,
        &format!("/hosts/{host}/source-groups"),
        json!({"name": "etc", "includes": ["/etc"], "retention_policy": {"keep_last": 3}}),
    )
    .await;
    let schedule = post(
        &app,
        &format!("/hosts/{host}/schedules"),
        json!({"cron_expr": "0 2 * * *", "enabled": true, "source_groups": ["etc"]}),
    )
    .await;
    let schedule_id = schedule["id"].as_str().unwrap().to_owned();
    let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
    agent.hello("web-1").await;

    let job_id = uuid::Uuid::new_v4().to_string();
    let sent = report(&job_id, &schedule_id);
    // Recorded as missed while the server could not know it ran.
    let missed = NewMissedRun {
        id: store::new_id(),
        host_id: host.clone(),
        schedule_id: schedule_id.clone(),
        scheduled_at: sent.scheduled_at.timestamp_millis(),
        detected_at: store::now_ms(),
    };
    assert!(db(&app, move |c| store::missed_runs::insert_ignore(c, &missed)).await);
    assert_eq!(missed_runs(&app).await.total, 1);
    for _ in 0..2 {
        let id = agent.send(sent.clone()).await;
        let ack = agent.expect_ack(&id).await;
        assert!(ack.accepted, "{ack:?}");
    }
    let jobs = jobs_of(&app, &host).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = &jobs[0];
    assert_eq!(job.id.as_str(), job_id);
    assert_eq!(job.trigger, JobTrigger::Agent);
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!(job.started_at, Some(sent.started_at.timestamp_millis()));
    assert_eq!(job.source_group_id.as_deref(), group["id"].as_str());
    assert_eq!(job.schedule_id.as_deref(), Some(schedule_id.as_str()));
    assert_eq!(job.scheduled_at, Some(sent.scheduled_at.timestamp_millis()));
    assert_eq!(job.tag.as_deref(), Some("etc"));
    assert_eq!(missed_runs(&app).await.total, 0, "it ran: no longer missed");

    for seq in [1, 2, 2, 3] {
        agent.send(log_line(&job_id, seq)).await;
    }
    let finished = finished_envelope(&job_id, FinishStatus::Succeeded);
    for _ in 0..2 {
        agent.send_envelope(&finished).await;
        assert!(agent.expect_ack(&finished.id).await.accepted);
    }
    let api_job = get(&app, &format!("/jobs/{job_id}")).await;
    assert_eq!(api_job["status"], "succeeded");
    assert_eq!(api_job["trigger"], "agent");
    assert_eq!(api_job["origin"], "agent");
    let logs = get(&app, &format!("/jobs/{job_id}/logs")).await;
    assert_eq!(logs["total"], 3, "{logs}");

    // A late fire of the same run (its schedule, its time).
    agent
        .send(ScheduleFire {
            schedule_id: schedule_id.clone(),
            scheduled_at: sent.scheduled_at,
            kind: Some(ScheduleKind::Backup),
        })
        .await;
    // The server reads nothing more until the fire is handled: the next
    // report's ack comes after it.
    let mut other = report(&uuid::Uuid::new_v4().to_string(), &schedule_id);
    other.origin = "server".to_owned();
    let id = agent.send(other).await;
    let ack = agent.expect_ack(&id).await;
    assert!(!ack.accepted);
    assert!(
        ack.reason.as_deref().unwrap().starts_with("origin:"),
        "{ack:?}"
    );

    let jobs = jobs_of(&app, &host).await;
    let backups: Vec<_> = jobs.iter().filter(|j| j.kind == JobKind::Backup).collect();
    assert_eq!(backups.len(), 1, "{jobs:?}");
    let forget = jobs
        .iter()
        .find(|j| j.kind == JobKind::Forget)
        .expect("the retention forget");
    assert_eq!(forget.trigger, JobTrigger::Retention);
    agent.close().await;
}

/// A report naming another host's job id, or a kind other than backup,
/// is refused in the `ack` and records nothing.
#[actix_web::test]
async fn job_report_of_another_hosts_job_or_kind_is_refused() {
    let app = spawn_app().await;
    let first = enroll(&app, "web-1").await;
    let second = enroll(&app, "web-2").await;
    let mut one = TestAgent::connect(&app, &first).await.unwrap();
    one.hello("web-1").await;
    let mut two = TestAgent::connect(&app, &second).await.unwrap();
    two.hello("web-2").await;

    let job_id = uuid::Uuid::new_v4().to_string();
    let id = one.send(report(&job_id, "no-such-schedule")).await;
    assert!(one.expect_ack(&id).await.accepted);
    let recorded = jobs_of(&app, &first.host_id).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        recorded[0].schedule_id, None,
        "unknown schedule: not linked"
    );
    assert_eq!(
        recorded[0].source_group_id, None,
        "unknown group: not linked"
    );

    let id = two.send(report(&job_id, "no-such-schedule")).await;
    let ack = two.expect_ack(&id).await;
    assert!(!ack.accepted);
    assert!(ack.reason.unwrap().contains("another host"));

    let mut prune = report(&uuid::Uuid::new_v4().to_string(), "s");
    prune.kind = protocol::JobKind::Prune;
    let id = two.send(prune).await;
    let ack = two.expect_ack(&id).await;
    assert!(!ack.accepted);
    assert!(ack.reason.unwrap().starts_with("kind:"));
    assert!(jobs_of(&app, &second.host_id).await.is_empty());
    one.close().await;
    two.close().await;
}
