//! What job follows from what: the pure rules that turn a source group
//! into a backup or `forget` job and a finished backup into its follow-up
//! (a retry with back-off after a failure, the retention `forget` after a
//! success).
//!
//! No database and no actor here: the functions take rows and `now` and
//! return the [`NewJob`] to insert. The writer calls [`follow_up`] inside
//! the transaction that finishes a job (`persistence::jobs`), so a job's
//! end and its follow-up commit together and a crash cannot keep one
//! without the other; the scheduler builds fire jobs with [`backup_job`]
//! and run-now builds its `forget` with [`forget_job`]. The rules live in
//! `actors/` rather than `store/` because they are the scheduler's policy
//! (back-off, retention), not queries; the store stays free of it.

use std::time::Duration;

use crate::protocol;
use crate::store::job_params::JobParams;
use crate::store::models::{Job, NewJob, SourceGroup};
use crate::store::{self, JobKind, JobStatus, JobTrigger};

/// Longest back-off between retries (a misconfigured group cannot push a
/// retry into the far future or overflow).
pub const MAX_BACKOFF: Duration = Duration::from_secs(7 * 24 * 3600);

/// The stored retention policy, if it is set and not empty.
pub fn group_retention(group: &SourceGroup) -> Option<protocol::RetentionPolicy> {
    group
        .retention_policy
        .clone()
        .filter(|policy| !policy.is_empty())
}

/// A first-attempt backup job of `group`.
pub fn backup_job(group: &SourceGroup, trigger: JobTrigger, now: i64) -> NewJob {
    NewJob {
        // A dump group's database (no password: opened when sent).
        params: group
            .dump_spec()
            .map(|spec| JobParams::Dump(spec.without_password())),
        source_group_id: Some(group.id.clone()),
        tag: Some(group.name.clone()),
        includes: group.includes.clone(),
        excludes: group.excludes.clone(),
        retention_policy: group.retention_policy.clone(),
        // The group's restic options as flags (the agent checks them again).
        args: group
            .options
            .as_ref()
            .map(protocol::RunOptions::backup_args)
            .unwrap_or_default(),
        ..NewJob::new(
            store::new_id(),
            group.host_id.clone(),
            JobKind::Backup,
            trigger,
            now,
        )
    }
}

/// The argument that makes a group's `forget` prune as well.
pub const PRUNE_AFTER_FORGET_ARG: &str = "--prune";

/// The `forget` job of `group` with `policy` (after a good backup with
/// [`JobTrigger::Retention`], run now with [`JobTrigger::Manual`], or from
/// a forget schedule with [`JobTrigger::Schedule`]); with `--prune` when
/// the group says `prune_after_forget`.
pub fn forget_job(
    group: &SourceGroup,
    policy: &protocol::RetentionPolicy,
    trigger: JobTrigger,
    now: i64,
) -> NewJob {
    let mut args = if group.prune_after_forget {
        vec![PRUNE_AFTER_FORGET_ARG.to_owned()]
    } else {
        Vec::new()
    };
    // A forget (with prune, above all) moves data: the group's bandwidth
    // limits apply; its backup-only options do not.
    if let Some(options) = &group.options {
        args.extend(options.transfer_args());
    }
    NewJob {
        source_group_id: Some(group.id.clone()),
        tag: Some(group.name.clone()),
        retention_policy: Some(policy.clone()),
        args,
        ..NewJob::new(
            store::new_id(),
            group.host_id.clone(),
            JobKind::Forget,
            trigger,
            now,
        )
    }
}

/// The delay before retry number `n` (1-based): `backoff × 2^(n−1)`,
/// capped at [`MAX_BACKOFF`].
pub fn retry_delay(backoff_seconds: i32, n: i32) -> Duration {
    let base = u64::try_from(backoff_seconds.max(0)).unwrap_or(0);
    let exponent = u32::try_from((n - 1).clamp(0, 40)).unwrap_or(0);
    let seconds = base.saturating_mul(1u64 << exponent);
    Duration::from_secs(seconds).min(MAX_BACKOFF)
}

/// The retry of a failed attempt, or `None` when the group's retries are
/// spent. `job` is the failed attempt; `now` the failure time.
pub fn retry_of(job: &Job, group: &SourceGroup, now: i64) -> Option<NewJob> {
    let retries_done = job.attempt - 1;
    if retries_done >= group.retry_max {
        return None;
    }
    let n = retries_done + 1;
    let delay = i64::try_from(retry_delay(group.retry_backoff_seconds, n).as_millis())
        .unwrap_or(i64::MAX / 2);
    let mut new = NewJob::new(
        store::new_id(),
        job.host_id.clone(),
        job.kind,
        JobTrigger::Retry,
        now,
    );
    new.source_group_id = job.source_group_id.clone();
    new.tag = job.tag.clone();
    new.includes = job.includes.clone();
    new.excludes = job.excludes.clone();
    new.retention_policy = job.retention_policy.clone();
    new.args = job.args.clone();
    new.params = job.params.clone();
    new.schedule_id = job.schedule_id.clone();
    new.scheduled_at = job.scheduled_at;
    new.attempt = job.attempt + 1;
    new.first_attempt_id = Some(
        job.first_attempt_id
            .clone()
            .unwrap_or_else(|| job.id.clone()),
    );
    new.retry_at = Some(now.saturating_add(delay));
    Some(new)
}

/// The source group whose rules decide what follows `job`, if any: only
/// a backup that failed or succeeded has a follow-up.
pub fn group_to_ask(job: &Job) -> Option<&str> {
    let ends = matches!(job.status, JobStatus::Failed | JobStatus::Succeeded);
    (job.kind == JobKind::Backup && ends)
        .then_some(job.source_group_id.as_deref())
        .flatten()
}

/// The job that follows `job` (just made terminal) at `now`: its retry
/// when it failed and `group` has retries left, the retention `forget`
/// when it succeeded and `group` has a policy, else `None`. `group` is
/// the job's source group as it is now (`None`: deleted since).
pub fn follow_up(job: &Job, group: Option<&SourceGroup>, now: i64) -> Option<NewJob> {
    let group = group?;
    if group_to_ask(job) != Some(group.id.as_str()) {
        return None;
    }
    match job.status {
        JobStatus::Failed => retry_of(job, group, now),
        _ => group_retention(group)
            .map(|policy| forget_job(group, &policy, JobTrigger::Retention, now)),
    }
}

/// Whether a queued job may go out at `now` (a retry waits for its
/// `retry_at`).
pub fn is_due(retry_at: Option<i64>, now: i64) -> bool {
    retry_at.is_none_or(|at| at <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(retry_max: i32, backoff: i32) -> SourceGroup {
        SourceGroup {
            id: "g1".into(),
            host_id: "h1".into(),
            name: "etc".into(),
            includes: vec!["/etc".to_owned()],
            excludes: Vec::new(),
            retention_policy: Some(serde_json::from_str(r#"{"keep_daily":7}"#).unwrap()),
            retry_max,
            retry_backoff_seconds: backoff,
            created_at: 0,
            updated_at: 0,
            prune_after_forget: false,
            kind: "files".to_owned(),
            dump: None,
            dump_password_sealed: None,
            options: None,
        }
    }

    fn finished_job(status: JobStatus, attempt: i32, first: Option<&str>) -> Job {
        Job {
            id: format!("j{attempt}").into(),
            host_id: "h1".into(),
            kind: JobKind::Backup,
            status,
            trigger: JobTrigger::Schedule,
            source_group_id: Some("g1".into()),
            tag: Some("etc".into()),
            includes: vec!["/etc".to_owned()],
            excludes: Vec::new(),
            retention_policy: None,
            args: Vec::new(),
            schedule_id: Some("s1".into()),
            scheduled_at: Some(1_000),
            attempt,
            first_attempt_id: first.map(str::to_owned).map(Into::into),
            retry_at: None,
            created_at: 0,
            dispatched_at: None,
            accepted_at: None,
            started_at: None,
            finished_at: Some(5_000),
            exit_code: Some(1),
            error: Some("boom".into()),
            warning: None,
            stats: None,
            progress: None,
            last_log_seq: 0,
            snapshot_id: None,
            params: None,
        }
    }

    fn failed_job(attempt: i32, first: Option<&str>) -> Job {
        finished_job(JobStatus::Failed, attempt, first)
    }

    /// Back-off doubles per retry: 300 s, 600 s, 1200 s.
    #[test]
    fn backoff_doubles() {
        assert_eq!(retry_delay(300, 1), Duration::from_secs(300));
        assert_eq!(retry_delay(300, 2), Duration::from_secs(600));
        assert_eq!(retry_delay(300, 3), Duration::from_secs(1200));
        assert_eq!(retry_delay(i32::MAX, 40), MAX_BACKOFF);
        assert_eq!(retry_delay(-5, 1), Duration::ZERO);
    }

    /// Retries link to the first attempt, count attempts and stop at
    /// `retry_max`.
    #[test]
    fn retries_link_and_stop() {
        let g = group(2, 60);
        let first = retry_of(&failed_job(1, None), &g, 10_000).unwrap();
        assert_eq!(first.attempt, 2);
        assert_eq!(first.first_attempt_id.as_deref(), Some("j1"));
        assert_eq!(first.retry_at, Some(10_000 + 60_000));
        assert_eq!(first.trigger, JobTrigger::Retry);
        let second = retry_of(&failed_job(2, Some("j1")), &g, 20_000).unwrap();
        assert_eq!(second.attempt, 3);
        assert_eq!(second.first_attempt_id.as_deref(), Some("j1"));
        assert_eq!(second.retry_at, Some(20_000 + 120_000));
        assert!(retry_of(&failed_job(3, Some("j1")), &g, 30_000).is_none());
        assert!(retry_of(&failed_job(1, None), &group(0, 60), 1).is_none());
    }

    /// The forget job carries the group's tag and policy, and `--prune`
    /// when the group says `prune_after_forget`.
    #[test]
    fn forget_follows_retention() {
        let g = group(0, 0);
        let policy = group_retention(&g).unwrap();
        let job = forget_job(&g, &policy, JobTrigger::Retention, 7);
        assert_eq!(job.kind, JobKind::Forget);
        assert_eq!(job.trigger, JobTrigger::Retention);
        assert_eq!(job.tag.as_deref(), Some("etc"));
        assert_eq!(job.retention_policy, Some(policy.clone()));
        assert!(job.args.is_empty(), "no --prune unless the group asks");
        let pruning = SourceGroup {
            prune_after_forget: true,
            ..g.clone()
        };
        let job = forget_job(&pruning, &policy, JobTrigger::Schedule, 7);
        assert_eq!(job.args, [PRUNE_AFTER_FORGET_ARG]);
        let mut empty = g.clone();
        empty.retention_policy = Some(protocol::RetentionPolicy::default());
        assert!(group_retention(&empty).is_none());
    }

    /// A group's options become its backup's flags; its forget gets the
    /// bandwidth limits only (after `--prune`); a retry keeps them.
    #[test]
    fn options_become_job_args() {
        let mut g = group(1, 0);
        g.prune_after_forget = true;
        g.options = Some(protocol::RunOptions {
            limit_upload_kib: Some(512),
            one_file_system: Some(true),
            exclude_larger_than: Some("1G".to_owned()),
            ..protocol::RunOptions::default()
        });
        let backup = backup_job(&g, JobTrigger::Manual, 1);
        assert_eq!(
            backup.args,
            [
                "--limit-upload=512",
                "--one-file-system",
                "--exclude-larger-than=1G"
            ]
        );
        let policy = group_retention(&g).unwrap();
        let forget = forget_job(&g, &policy, JobTrigger::Retention, 1);
        assert_eq!(forget.args, ["--prune", "--limit-upload=512"]);
        let mut failed = failed_job(1, None);
        failed.args = backup.args.clone();
        let retry = retry_of(&failed, &g, 2).unwrap();
        assert_eq!(retry.args, backup.args);
        assert!(backup_job(&group(0, 0), JobTrigger::Manual, 1)
            .args
            .is_empty());
    }

    /// A failed backup is followed by its retry, a succeeded one by the
    /// group's forget; nothing follows without a group, for another
    /// group, for other kinds or statuses, or without a policy.
    #[test]
    fn what_follows_a_finished_job() {
        let g = group(1, 0);
        let retry = follow_up(&failed_job(1, None), Some(&g), 9).unwrap();
        assert_eq!(
            (retry.kind, retry.trigger),
            (JobKind::Backup, JobTrigger::Retry)
        );
        assert_eq!(retry.retry_at, Some(9), "back-off 0: due at once");
        let ok = finished_job(JobStatus::Succeeded, 1, None);
        let forget = follow_up(&ok, Some(&g), 9).unwrap();
        assert_eq!(
            (forget.kind, forget.trigger),
            (JobKind::Forget, JobTrigger::Retention)
        );
        assert_eq!(forget.retry_at, None);
        assert!(follow_up(&ok, None, 9).is_none(), "group deleted");
        let mut other = g.clone();
        other.id = "g2".into();
        assert!(follow_up(&ok, Some(&other), 9).is_none(), "not its group");
        let mut no_policy = g.clone();
        no_policy.retention_policy = None;
        assert!(follow_up(&ok, Some(&no_policy), 9).is_none());
        let cancelled = finished_job(JobStatus::Cancelled, 1, None);
        assert!(follow_up(&cancelled, Some(&g), 9).is_none());
        let mut check = failed_job(1, None);
        check.kind = JobKind::Check;
        assert!(follow_up(&check, Some(&g), 9).is_none());
        assert_eq!(group_to_ask(&check), None);
        assert_eq!(group_to_ask(&ok), Some("g1"));
    }

    /// A job is due without a `retry_at`, or once it has passed.
    #[test]
    fn due() {
        assert!(is_due(None, 5));
        assert!(is_due(Some(5), 5));
        assert!(!is_due(Some(6), 5));
    }
}
