//! The writer's unit tests: transactions, buffering order, the log
//! backlog, and finishing a job with its follow-up.

use super::*;
use crate::ids::HostId;
use crate::protocol;
use crate::store::jobs::{self, FinishOutcome};
use crate::store::models::{NewHost, NewJob, NewSourceGroup};
use crate::store::{schedule_versions, source_groups, JobKind, JobStatus, JobTrigger};

fn host(id: &str, now: i64) -> NewHost {
    NewHost::new(id, id, format!("hash-{id}"), now)
}

fn line(job_id: &str, seq: u64) -> protocol::LogStream {
    protocol::LogStream {
        job_id: job_id.to_owned(),
        seq,
        ts: chrono::Utc::now(),
        stream: protocol::LogStreamKind::Stdout,
        payload: format!("line {seq}"),
    }
}

/// A `RunWrite` commits what its closure wrote when it returns Ok and
/// rolls all of it back when it returns Err; the reply is the closure's.
#[actix_web::test]
async fn run_write_is_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("t.db").display().to_string();
    let pool = store::connect(&url, 4).unwrap();
    let writer = Persistence::start(pool.clone(), Arc::new(Metrics::new()));
    let now = store::now_ms();
    let failed: Result<(), PersistError> = writer
        .send(RunWrite::new("a failing write", move |c| {
            hosts::insert(c, &host("h1", now))?;
            Err(PersistError::Database("refused after the insert".into()))
        }))
        .await
        .unwrap();
    assert!(failed.is_err());
    let mut c = pool.get().unwrap();
    assert!(hosts::get(&mut c, "h1").unwrap().is_none(), "rolled back");
    let written: Result<HostId, PersistError> = writer
        .send(RunWrite::new("a write", move |c| {
            let h = hosts::insert(c, &host("h2", now))?;
            Ok(h.id)
        }))
        .await
        .unwrap();
    assert_eq!(written.unwrap(), "h2");
    assert!(hosts::get(&mut c, "h2").unwrap().is_some(), "committed");
}

/// A paused session's wait ends when the writer counts lines out to
/// the low mark (woken, not polled), and at once if already there.
#[tokio::test]
async fn backlog_wait_is_woken_by_the_writer() {
    let backlog = Arc::new(LogBacklog::default());
    backlog.add(10);
    let waiter = tokio::spawn({
        let backlog = backlog.clone();
        async move { backlog.wait_down_to(4).await }
    });
    tokio::task::yield_now().await;
    backlog.done(3);
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "7 lines still wait");
    backlog.done(3);
    tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .expect("woken")
        .unwrap();
    backlog.wait_down_to(4).await;
    backlog.done(100);
    assert!(backlog.is_empty(), "never below zero");
}

/// Batched lines are counted out of the shared backlog once written,
/// and so are lines dropped for a bad seq.
#[actix_web::test]
async fn backlog_counts_down_as_lines_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("t.db").display().to_string();
    let pool = store::connect(&url, 4).unwrap();
    let now = store::now_ms();
    let job = {
        let mut c = pool.get().unwrap();
        hosts::insert(&mut c, &host("h1", now)).unwrap();
        let new = NewJob::new(
            store::new_id(),
            "h1",
            crate::store::JobKind::Check,
            JobTrigger::Manual,
            now,
        );
        jobs::insert(&mut c, &new).unwrap()
    };
    let backlog = Arc::new(LogBacklog::default());
    let writer =
        Persistence::start_with_backlog(pool.clone(), backlog.clone(), Arc::new(Metrics::new()));
    let mut lines: Vec<_> = (1..=3).map(|seq| line(&job.id, seq)).collect();
    lines.push(line(&job.id, u64::MAX));
    backlog.add(lines.len());
    writer.do_send(AppendLogs {
        host_id: "h1".into(),
        lines,
    });
    backlog.add(1);
    writer.do_send(AppendLogs {
        host_id: "h1".into(),
        lines: vec![line(&job.id, 4)],
    });
    writer.send(FlushAll).await.unwrap();
    assert_eq!(backlog.len(), 0);
    let mut c = pool.get().unwrap();
    let stored = crate::store::job_logs::list_after(&mut c, &job.id, 0, 100).unwrap();
    assert_eq!(
        stored.iter().map(|l| l.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
}

/// Buffered schedule pushes and acks land with the next flush, in
/// order with version bumps: a late ack of an older version is not
/// recorded.
#[actix_web::test]
async fn schedule_marks_are_buffered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("t.db").display().to_string();
    let pool = store::connect(&url, 4).unwrap();
    let now = store::now_ms();
    hosts::insert(&mut pool.get().unwrap(), &host("h1", now)).unwrap();
    let writer = Persistence::start(pool.clone(), Arc::new(Metrics::new()));
    let mark = |version| MarkSchedulePushed {
        host_id: "h1".into(),
        version,
        now,
    };
    let ack = |version| RecordScheduleAck {
        host_id: "h1".into(),
        version,
        now,
    };
    writer.do_send(mark(1));
    writer.do_send(ack(1));
    writer.send(FlushAll).await.unwrap();
    let bumped: PersistResult<i64> = writer
        .send(RunWrite::new("bumping", |c| {
            Ok(schedule_versions::bump(c, "h1")?)
        }))
        .await
        .unwrap();
    let bumped = bumped.unwrap();
    assert_eq!(bumped, 2);
    writer.do_send(ack(1));
    writer.send(FlushAll).await.unwrap();
    let versions = |pool: &Pool| {
        schedule_versions::get(&mut pool.get().unwrap(), "h1")
            .unwrap()
            .unwrap()
    };
    let v = versions(&pool);
    assert_eq!((v.version, v.pushed_version, v.acked_version), (2, 1, 1));
    writer.do_send(mark(2));
    writer.do_send(ack(2));
    writer.send(FlushAll).await.unwrap();
    let v = versions(&pool);
    assert_eq!((v.version, v.pushed_version, v.acked_version), (2, 2, 2));
}

/// A job's buffered log lines are durable when its `job.finished` is
/// acknowledged; lines a host sends for another host's job are dropped,
/// and another host cannot finish the job.
#[actix_web::test]
async fn finish_is_written_after_buffered_lines_and_hosts_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("t.db").display().to_string();
    let pool = store::connect(&url, 4).unwrap();
    let now = store::now_ms();
    let job = {
        let mut c = pool.get().unwrap();
        hosts::insert(&mut c, &host("h1", now)).unwrap();
        hosts::insert(&mut c, &host("h2", now)).unwrap();
        let new = NewJob::new(
            store::new_id(),
            "h1",
            crate::store::JobKind::Check,
            JobTrigger::Manual,
            now,
        );
        jobs::insert(&mut c, &new).unwrap()
    };
    let writer = Persistence::start(pool.clone(), Arc::new(Metrics::new()));
    writer.do_send(AppendLogs {
        host_id: "h1".into(),
        lines: (1..=3).map(|seq| line(&job.id, seq)).collect(),
    });
    writer.do_send(AppendLogs {
        host_id: "h2".into(),
        lines: vec![line(&job.id, 4)],
    });
    let report = protocol::JobFinished {
        job_id: job.id.to_string(),
        status: protocol::FinishStatus::Succeeded,
        exit_code: 3,
        finished_at: chrono::Utc::now(),
        stats: None,
        error: Some("some files could not be read".into()),
    };
    let foreign = writer
        .send(RecordJobFinished {
            host_id: "h2".into(),
            payload: report.clone(),
            now,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(foreign.outcome, FinishOutcome::NotFound);
    let outcome = writer
        .send(RecordJobFinished {
            host_id: "h1".into(),
            payload: report,
            now,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.follow_up, None, "a check has no follow-up");
    let FinishOutcome::Applied(done) = outcome.outcome else {
        panic!("expected the finish to apply, got {outcome:?}");
    };
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(
        done.warning.as_deref(),
        Some("some files could not be read")
    );
    assert_eq!(done.error, None);
    let mut c = pool.get().unwrap();
    let lines = crate::store::job_logs::list_after(&mut c, &job.id, 0, 100).unwrap();
    assert_eq!(
        lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

/// A backup's end and its follow-up commit together: a failure creates
/// the retry (due after the back-off), a success the retention forget; a
/// repeated report creates nothing more.
#[actix_web::test]
async fn finishing_a_backup_creates_its_follow_up_in_the_same_write() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("t.db").display().to_string();
    let pool = store::connect(&url, 4).unwrap();
    let now = store::now_ms();
    let (failed, succeeded) = {
        let mut c = pool.get().unwrap();
        hosts::insert(&mut c, &host("h1", now)).unwrap();
        let group = source_groups::insert(
            &mut c,
            &NewSourceGroup {
                id: "g1".into(),
                host_id: "h1".into(),
                name: "etc".into(),
                includes: vec!["/etc".to_owned()],
                excludes: Vec::new(),
                retention_policy: Some(serde_json::from_str(r#"{"keep_last":3}"#).unwrap()),
                retry_max: 1,
                retry_backoff_seconds: 60,
                created_at: now,
                updated_at: now,
                prune_after_forget: false,
                kind: "files".to_owned(),
                dump: None,
                dump_password_sealed: None,
                options: None,
            },
        )
        .unwrap();
        let backup = || crate::actors::followup::backup_job(&group, JobTrigger::Manual, now);
        let a: NewJob = backup();
        let b: NewJob = backup();
        (
            jobs::insert(&mut c, &a).unwrap(),
            jobs::insert(&mut c, &b).unwrap(),
        )
    };
    let writer = Persistence::start(pool.clone(), Arc::new(Metrics::new()));
    let report = |job_id: &str, status| protocol::JobFinished {
        job_id: job_id.to_owned(),
        status,
        exit_code: 1,
        finished_at: chrono::Utc::now(),
        stats: None,
        error: None,
    };
    let finish = |job_id: &str, status| RecordJobFinished {
        host_id: "h1".into(),
        payload: report(job_id, status),
        now,
    };
    let first = writer
        .send(finish(&failed.id, protocol::FinishStatus::Failed))
        .await
        .unwrap()
        .unwrap();
    assert!(first.outcome.applied());
    let retry = first.follow_up.expect("a retry");
    assert_eq!(
        (retry.kind, retry.trigger),
        (JobKind::Backup, JobTrigger::Retry)
    );
    assert_eq!(retry.first_attempt_id.as_deref(), Some(failed.id.as_str()));
    assert_eq!(retry.retry_at, Some(now + 60_000));
    let again = writer
        .send(finish(&failed.id, protocol::FinishStatus::Failed))
        .await
        .unwrap()
        .unwrap();
    assert!(!again.outcome.applied());
    assert_eq!(again.follow_up, None, "a repeated report creates nothing");

    let ok = writer
        .send(finish(&succeeded.id, protocol::FinishStatus::Succeeded))
        .await
        .unwrap()
        .unwrap();
    let forget = ok.follow_up.expect("a forget");
    assert_eq!(
        (forget.kind, forget.trigger),
        (JobKind::Forget, JobTrigger::Retention)
    );
    assert_eq!(forget.status, JobStatus::Queued);
    let mut c = pool.get().unwrap();
    let stored = jobs::get(&mut c, &forget.id).unwrap().expect("stored");
    assert_eq!(stored.tag.as_deref(), Some("etc"));
}

/// An armed failpoint fires after the finish transaction committed: the
/// caller gets an error, the test gets what was committed, and the
/// follow-up row is in the database.
#[actix_web::test]
async fn failpoint_fires_after_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("t.db").display().to_string();
    let pool = store::connect(&url, 4).unwrap();
    let now = store::now_ms();
    let job = {
        let mut c = pool.get().unwrap();
        hosts::insert(&mut c, &host("h1", now)).unwrap();
        let new = NewJob::new(
            store::new_id(),
            "h1",
            JobKind::Check,
            JobTrigger::Manual,
            now,
        );
        jobs::insert(&mut c, &new).unwrap()
    };
    let writer = Persistence::start(pool.clone(), Arc::new(Metrics::new()));
    let (reached, fired) = tokio::sync::oneshot::channel();
    writer
        .send(ArmFailpoint(Failpoint::AfterFinishCommit { reached }))
        .await
        .unwrap();
    let reply = writer
        .send(RecordJobFinished {
            host_id: "h1".into(),
            payload: protocol::JobFinished {
                job_id: job.id.to_string(),
                status: protocol::FinishStatus::Succeeded,
                exit_code: 0,
                finished_at: chrono::Utc::now(),
                stats: None,
                error: None,
            },
            now,
        })
        .await
        .unwrap();
    assert!(reply.is_err(), "the caller hears nothing good");
    let committed = fired.await.unwrap();
    assert!(committed.outcome.applied());
    let mut c = pool.get().unwrap();
    let stored = jobs::get(&mut c, &job.id).unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Succeeded);
}
