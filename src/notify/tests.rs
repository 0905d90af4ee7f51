//! Unit tests of the notification rules.

use super::*;
use crate::store::JobTrigger;

fn job(kind: JobKind, status: JobStatus) -> Job {
    Job {
        id: "j1".into(),
        host_id: "h1".into(),
        kind,
        status,
        trigger: JobTrigger::Schedule,
        source_group_id: Some("g1".into()),
        tag: Some("etc".into()),
        includes: Vec::new(),
        excludes: Vec::new(),
        retention_policy: None,
        args: Vec::new(),
        schedule_id: Some("s1".into()),
        scheduled_at: Some(1_000),
        attempt: 1,
        first_attempt_id: None,
        retry_at: None,
        created_at: 0,
        dispatched_at: None,
        accepted_at: None,
        started_at: None,
        finished_at: Some(5_000),
        exit_code: Some(1),
        error: Some("repository is locked".into()),
        warning: None,
        stats: None,
        progress: None,
        last_log_seq: 0,
        snapshot_id: None,
        params: None,
    }
}

/// A failure that will be retried notifies nothing; the last one starts
/// `job.failed` for the host and group.
#[test]
fn only_the_last_failure_notifies() {
    let failed = job(JobKind::Backup, JobStatus::Failed);
    let retry = job(JobKind::Backup, JobStatus::Queued);
    assert!(job_events(&failed, Some(&retry)).is_empty());
    let events = job_events(&failed, None);
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.name, JOB_FAILED);
    assert!(e.starts);
    assert_eq!(e.condition, "job.failed|h1|backup|etc");
    assert_eq!(e.detail["source_group"], "etc");
    assert!(e.detail["message"]
        .as_str()
        .unwrap_or("")
        .contains("repository is locked"));
}

/// A success ends the same condition, and the schedule's `run.missed`.
#[test]
fn success_recovers_job_and_run() {
    let events = job_events(&job(JobKind::Backup, JobStatus::Succeeded), None);
    let names: Vec<_> = events.iter().map(|e| (e.name, e.starts)).collect();
    assert_eq!(names, [(JOB_RECOVERED, false), (RUN_RECOVERED, false)]);
    assert_eq!(events[0].condition, "job.failed|h1|backup|etc");
    assert_eq!(events[1].condition, "run.missed|h1|s1");
}

/// Checks and drills have their own events; catalog jobs and cancelled
/// jobs none.
#[test]
fn kinds_map_to_their_events() {
    assert_eq!(
        job_events(&job(JobKind::Check, JobStatus::Failed), None)[0].name,
        CHECK_FAILED
    );
    assert_eq!(
        job_events(&job(JobKind::Drill, JobStatus::Failed), None)[0].name,
        DRILL_FAILED
    );
    assert!(job_events(&job(JobKind::Catalog, JobStatus::Failed), None).is_empty());
    assert!(job_events(&job(JobKind::Backup, JobStatus::Cancelled), None).is_empty());
}

#[test]
fn every_failure_has_a_recovery() {
    for (failure, recovery) in PAIRS {
        assert!(is_event(failure) && is_event(recovery));
        assert_eq!(failure_of(recovery), Some(*failure));
        assert_eq!(failure_of(failure), None);
    }
    assert!(!is_event("job.exploded"));
}

#[test]
fn payload_names_host_and_state() {
    let event = host_event("h1", true, 0);
    let body = payload(&event, "web-1", Some("Web 1"), None);
    assert_eq!(body["event"], "host.offline");
    assert_eq!(body["state"], "firing");
    assert_eq!(body["host"]["name"], "Web 1");
    assert_eq!(body["host"]["hostname"], "web-1");
    assert_eq!(body["occurred_at"], "1970-01-01T00:00:00.000Z");
    let back = payload(&host_event("h1", false, 60_000), "web-1", None, Some(0));
    assert_eq!(back["state"], "resolved");
    assert_eq!(back["since"], "1970-01-01T00:00:00.000Z");
    assert_eq!(
        one_line(&back),
        "host.online: web-1: the host's agent is back online"
    );
}

/// A health check's events: one condition per host and check, the check
/// named in the body, down starting it and up ending it.
#[test]
fn health_events_pair_per_check() {
    let down = health_event("h1", "web", true, 0);
    assert_eq!(down.name, HEALTH_DOWN);
    assert!(down.starts);
    assert_eq!(down.condition, "health.down|h1|web");
    let up = health_event("h1", "web", false, 60_000);
    assert_eq!(up.name, HEALTH_UP);
    assert!(!up.starts);
    assert_eq!(up.condition, down.condition);
    assert_ne!(health_event("h1", "db", true, 0).condition, down.condition);
    assert_eq!(failure_of(HEALTH_UP), Some(HEALTH_DOWN));
    assert!(is_event("health.down") && is_event("health.up"));
    let body = payload(&down, "web-1", None, None);
    assert_eq!(body["event"], "health.down");
    assert_eq!(
        one_line(&body),
        "health.down: web-1: the health check web fails"
    );
}
