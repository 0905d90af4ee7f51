#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
//! A job's end and the job that follows it (retry, retention `forget`)
//! are one write: a server that dies right after that write, before it
//! acks, publishes or dispatches anything, still sends the follow-up to
//! the agent once it is back. The crash point is the writer's
//! `Failpoint::AfterFinishCommit`; in the flow before this change the
//! follow-up was a second write after a round trip through the session
//! and the scheduler, so dying there lost it for good (the agent's
//! re-sent `job.finished` finds the job finished and creates nothing).

use crate::common::agent::{db, enroll, finished_envelope, job_when, Enrolled, TestAgent};
use crate::common::server::{spawn_app, TestApp};
use restic_manager::actors::persistence::{ArmFailpoint, Failpoint};
use restic_manager::actors::NewJobRequest;
use restic_manager::protocol::{self, FinishStatus};
use restic_manager::store::{self, models, JobKind, JobStatus, JobTrigger};

/// Creates a source group on a host.
async fn add_group(
    app: &TestApp,
    host_id: &str,
    retention: Option<&str>,
    retry_max: i32,
) -> models::SourceGroup {
    let new = models::NewSourceGroup {
        id: store::new_id().into(),
        host_id: host_id.to_owned().into(),
        name: "etc".to_owned(),
        includes: vec!["/etc".to_owned()],
        excludes: Vec::new(),
        retention_policy: retention.map(|r| serde_json::from_str(r).unwrap()),
        retry_max,
        // No back-off: the retry is due as soon as it exists.
        retry_backoff_seconds: 0,
        created_at: store::now_ms(),
        updated_at: store::now_ms(),
        prune_after_forget: false,
        kind: "files".to_owned(),
        dump: None,
        dump_password_sealed: None,
        options: None,
    };
    db(app, move |c| store::source_groups::insert(c, &new)).await
}

/// Runs a backup of the host's group now and lets the agent start it.
async fn started_backup(app: &TestApp, agent: &mut TestAgent, host_id: &str) -> models::Job {
    let job = app
        .state
        .actors
        .create_job(NewJobRequest {
            host_id: host_id.to_owned(),
            kind: protocol::JobKind::Backup,
            source_group: Some("etc".to_owned()),
            requested_by: "admin".to_owned(),
            source_addr: None,
            restore: None,
            drill: None,
        })
        .await
        .expect("job created");
    let run = agent.expect_command_run().await;
    assert_eq!(run.job_id, job.id);
    agent
        .send(protocol::CommandResult {
            job_id: job.id.to_string(),
            accepted: true,
            error: None,
        })
        .await;
    agent
        .send(protocol::JobStarted {
            job_id: job.id.to_string(),
            kind: run.kind,
            started_at: chrono::Utc::now(),
        })
        .await;
    job_when(app, &job.id, "backup running", |j| {
        j.status == JobStatus::Running
    })
    .await
}

/// The agent finishes `job` with `status` while the writer is armed to
/// die right after the finish commit; the server is then stopped and
/// started again on the same data dir, and the agent reconnects. Returns
/// the new server, the reconnected agent and the follow-up row.
async fn crash_after_finish(
    app: TestApp,
    enrolled: &Enrolled,
    mut agent: TestAgent,
    job: &models::Job,
    status: FinishStatus,
) -> (TestApp, TestAgent, models::Job) {
    let (reached, crashed) = tokio::sync::oneshot::channel();
    app.state
        .actors
        .persistence
        .send(ArmFailpoint(Failpoint::AfterFinishCommit { reached }))
        .await
        .unwrap();
    agent
        .send_envelope(&finished_envelope(&job.id, status))
        .await;
    let committed = crashed.await.expect("the failpoint fired");
    assert!(committed.outcome.applied(), "the finish committed");
    let follow_up = committed
        .follow_up
        .expect("the follow-up committed with it");

    // What the crash left in the database: the finish and the follow-up.
    let id = follow_up.id.clone();
    let row = db(&app, move |c| store::jobs::get(c, &id))
        .await
        .expect("the follow-up row exists");
    assert_eq!(row.status, JobStatus::Queued);
    assert_eq!(row.dispatched_at, None, "nothing went out before the crash");

    agent.close().await;
    app.stop().await;
    let app = app.start_again().await;
    let mut agent = TestAgent::connect(&app, enrolled).await.expect("reconnect");
    agent.hello("web-01").await;
    (app, agent, row)
}

/// A failed backup whose server dies right after the finish commit: the
/// retry was written with it and goes to the agent after the restart.
#[actix_web::test]
async fn retry_survives_a_crash_after_the_finish_commit() {
    let app = spawn_app().await;
    let enrolled = enroll(&app, "web-01").await;
    add_group(&app, &enrolled.host_id, None, 1).await;
    let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
    agent.hello("web-01").await;
    let job = started_backup(&app, &mut agent, &enrolled.host_id).await;

    let (app, mut agent, retry) =
        crash_after_finish(app, &enrolled, agent, &job, FinishStatus::Failed).await;
    assert_eq!(retry.trigger, JobTrigger::Retry);
    assert_eq!(retry.attempt, 2);
    assert_eq!(retry.first_attempt_id.as_deref(), Some(job.id.as_str()));

    let run = agent.expect_command_run().await;
    assert_eq!(
        run.job_id, retry.id,
        "the retry is dispatched after the restart"
    );
    assert_eq!(run.kind, protocol::JobKind::Backup);
    let first = job_when(&app, &job.id, "first attempt failed", |j| {
        j.status == JobStatus::Failed
    })
    .await;
    assert_eq!(first.attempt, 1);
    agent.close().await;
}

/// A good backup whose server dies right after the finish commit: the
/// retention forget was written with it and goes to the agent after the
/// restart; the agent's re-sent report changes nothing more.
#[actix_web::test]
async fn forget_survives_a_crash_after_the_finish_commit() {
    let app = spawn_app().await;
    let enrolled = enroll(&app, "web-01").await;
    add_group(&app, &enrolled.host_id, Some(r#"{"keep_last":3}"#), 0).await;
    let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
    agent.hello("web-01").await;
    let job = started_backup(&app, &mut agent, &enrolled.host_id).await;

    let (app, mut agent, forget) =
        crash_after_finish(app, &enrolled, agent, &job, FinishStatus::Succeeded).await;
    assert_eq!(
        (forget.kind, forget.trigger),
        (JobKind::Forget, JobTrigger::Retention)
    );

    let run = agent.expect_command_run().await;
    assert_eq!(
        run.job_id, forget.id,
        "the forget is dispatched after the restart"
    );
    assert_eq!(run.tag.as_deref(), Some("etc"));
    assert_eq!(run.retention_policy.unwrap().keep_last, Some(3));

    // The agent never got its ack, so it reports the backup again: acked,
    // and no second forget.
    let replay = finished_envelope(&job.id, FinishStatus::Succeeded);
    agent.send_envelope(&replay).await;
    assert!(agent.expect_ack(&replay.id).await.accepted);
    let host_id = enrolled.host_id.clone();
    let forgets = db(&app, move |c| {
        store::jobs::list(
            c,
            &store::jobs::JobFilter {
                host_id: Some(host_id),
                kind: Some(JobKind::Forget),
                limit: 100,
                ..Default::default()
            },
        )
    })
    .await;
    assert_eq!(forgets.total, 1);
    agent.close().await;
}
