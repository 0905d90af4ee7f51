//! Unit tests of `journal`, in their own file so the module reads as one idea.

use super::*;
use crate::protocol::CommandRun;
use crate::protocol::{JobKind, SnapshotsReport};

fn command(job_id: &str, kind: JobKind) -> CommandRun {
    CommandRun {
        job_id: job_id.to_owned(),
        kind,
        args: Vec::new(),
        includes: vec!["/etc".to_owned()],
        excludes: Vec::new(),
        tag: Some("etc".to_owned()),
        retention_policy: None,
        snapshot_id: None,
        restore: None,
        drill: None,
        dump: None,
    }
}

fn ts(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
}

fn finished(job_id: &str, at: DateTime<Utc>) -> JobFinished {
    JobFinished {
        job_id: job_id.to_owned(),
        status: FinishStatus::Succeeded,
        exit_code: 0,
        finished_at: at,
        stats: None,
        error: None,
    }
}

/// A queued job survives re-opening the journal and is found by id,
/// even with an id that is not a safe file name.
#[test]
fn jobs_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let record = JobRecord::queued(command("../../etc/passwd", JobKind::Backup), ts(0));
    Journal::open(dir.path()).unwrap().put_job(&record).unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    assert_eq!(
        journal.job("../../etc/passwd").unwrap(),
        Some(record.clone())
    );
    assert_eq!(journal.job("other").unwrap(), None);
    assert_eq!(journal.jobs().unwrap(), vec![record]);
    assert!(!dir.path().join("etc").exists());
}

/// Outbox entries are replayed in creation order until acknowledged,
/// across re-opens; an ack of a job.finished marks the job.
#[test]
fn outbox_until_ack() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let mut record = JobRecord::queued(command("j1", JobKind::Backup), ts(0));
    record.state = JobState::Running {
        started_at: ts(1),
        restic: None,
    };
    journal.put_job(&record).unwrap();
    let job_env = journal.finish_job(record, finished("j1", ts(5))).unwrap();
    let report = Envelope::new(AgentToServer::from(SnapshotsReport {
        snapshots: Vec::new(),
    }));
    journal.outbox_put(&report, ts(6)).unwrap();

    let journal = Journal::open(dir.path()).unwrap();
    let ids: Vec<String> = journal
        .outbox()
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, vec![job_env.id.clone(), report.id.clone()]);

    let acked = journal.acknowledge(&job_env.id).unwrap().unwrap();
    assert!(matches!(acked, AgentToServer::JobFinished(_)));
    assert_eq!(journal.acknowledge(&job_env.id).unwrap(), None);
    let record = journal.job("j1").unwrap().unwrap();
    assert!(matches!(
        record.state,
        JobState::Finished { acked: true, .. }
    ));

    let journal = Journal::open(dir.path()).unwrap();
    let ids: Vec<String> = journal
        .outbox()
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, vec![report.id]);
}

/// A job left running by a crash is reported failed on recovery and
/// listed with its restic process, with the unlock mark set; a queued
/// one is handed back to run; recovery is idempotent.
#[test]
fn recovery_after_crash() {
    let dir = tempfile::tempdir().unwrap();
    let process = ProcessIdentity {
        pid: 4242,
        boot_time: 1_700_000_000,
        start_ticks: 987_654,
    };
    {
        let journal = Journal::open(dir.path()).unwrap();
        let mut running = JobRecord::queued(command("run1", JobKind::Backup), ts(0));
        running.state = JobState::Running {
            started_at: ts(1),
            restic: None,
        };
        journal.put_job(&running).unwrap();
        journal.record_restic(&mut running, process).unwrap();
        journal
            .put_job(&JobRecord::queued(command("q1", JobKind::Check), ts(2)))
            .unwrap();
        // a crash mid-write leaves a temp file behind
        std::fs::write(dir.path().join("jobs").join(".tmp-x.json"), b"{").unwrap();
    }
    let journal = Journal::open(dir.path()).unwrap();
    assert!(!journal.unlock_needed());
    let recovery = journal.recover(ts(10)).unwrap();
    assert_eq!(recovery.queued.len(), 1);
    assert_eq!(recovery.queued[0].job_id(), "q1");
    assert_eq!(
        recovery.interrupted,
        vec![Interrupted {
            job_id: "run1".to_owned(),
            restic: Some(process),
        }]
    );
    assert!(journal.unlock_needed());
    let outbox = journal.outbox().unwrap();
    assert_eq!(outbox.len(), 1);
    let AgentToServer::JobFinished(report) = &outbox[0].message else {
        panic!("expected job.finished")
    };
    assert_eq!(report.job_id, "run1");
    assert_eq!(report.status, FinishStatus::Failed);
    assert_eq!(report.error.as_deref(), Some(RESTARTED_ERROR));
    assert_eq!(report.exit_code, EXIT_CODE_NOT_RUN);
    assert!(!dir.path().join("jobs").join(".tmp-x.json").exists());

    // Recovering again changes nothing and sends nothing twice; the
    // unlock mark stays until cleared.
    let again = Journal::open(dir.path()).unwrap();
    let recovery = again.recover(ts(20)).unwrap();
    assert_eq!(recovery.queued.len(), 1);
    assert!(recovery.interrupted.is_empty());
    assert_eq!(again.outbox().unwrap(), outbox);
    assert!(again.unlock_needed());
    again.set_unlock_needed(false).unwrap();
    again.set_unlock_needed(false).unwrap();
    assert!(!Journal::open(dir.path()).unwrap().unlock_needed());
}

/// Recording a process is only possible for a running job, and a
/// running record written before this field existed still reads.
#[test]
fn restic_process_is_recorded_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let process = ProcessIdentity {
        pid: 7,
        boot_time: 1,
        start_ticks: 2,
    };
    let mut queued = JobRecord::queued(command("q", JobKind::Backup), ts(0));
    journal.record_restic(&mut queued, process).unwrap();
    assert_eq!(queued.state, JobState::Queued);

    let old = r#"{"format":1,"command":{"job_id":"r","kind":"check"},"accepted_at":"2027-01-15T08:00:00Z","state":"running","started_at":"2027-01-15T08:00:01Z"}"#;
    let record: JobRecord = serde_json::from_str(old).unwrap();
    assert!(matches!(
        record.state,
        JobState::Running { restic: None, .. }
    ));
}

/// A crash between writing the finished record and its outbox entry is
/// repaired at recovery with the same envelope id.
#[test]
fn lost_outbox_entry_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let record = JobRecord::queued(command("j2", JobKind::Prune), ts(0));
    let envelope = journal.finish_job(record, finished("j2", ts(3))).unwrap();
    // Simulate the crash: the outbox file never made it to disk.
    std::fs::remove_file(journal.outbox_path(&envelope.id)).unwrap();
    assert!(journal.outbox().unwrap().is_empty());

    let journal = Journal::open(dir.path()).unwrap();
    journal.recover(ts(10)).unwrap();
    let outbox = journal.outbox().unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].id, envelope.id);
}

/// A corrupt entry is moved aside and does not stop the others.
#[test]
fn corrupt_entries_are_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    journal
        .put_job(&JobRecord::queued(command("ok", JobKind::Check), ts(0)))
        .unwrap();
    let bad = dir.path().join("jobs").join("bad.json");
    std::fs::write(&bad, b"{\"format\":1,").unwrap();
    let jobs = journal.jobs().unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(!bad.exists());
    assert!(dir.path().join("jobs").join("bad.corrupt").exists());
}

/// Pruning removes only acknowledged jobs that ended long enough ago;
/// the last check is found among finished jobs.
#[test]
fn prune_and_last_check() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let old = journal
        .finish_job(
            JobRecord::queued(command("old", JobKind::Check), ts(0)),
            finished("old", ts(1)),
        )
        .unwrap();
    journal.acknowledge(&old.id).unwrap();
    journal
        .finish_job(
            JobRecord::queued(command("unacked", JobKind::Backup), ts(0)),
            finished("unacked", ts(1)),
        )
        .unwrap();
    let mut failed = finished("new", ts(100));
    failed.status = FinishStatus::Failed;
    journal
        .finish_job(
            JobRecord::queued(command("new", JobKind::Check), ts(50)),
            failed,
        )
        .unwrap();
    assert_eq!(
        journal.last_check().unwrap(),
        Some((ts(100), FinishStatus::Failed))
    );
    assert_eq!(journal.prune(ts(50)).unwrap(), 1);
    assert_eq!(journal.job("old").unwrap(), None);
    assert!(journal.job("unacked").unwrap().is_some());
    assert!(journal.job("new").unwrap().is_some());
}
