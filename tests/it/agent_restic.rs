//! The agent's job runner against the real `restic` and a temporary
//! repository: every job kind, the reports after a backup, a stale lock,
//! cancellation of a long backup, hooks and restic's own failures.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use crate::common::restic as restic_repo;

use std::path::Path;
use std::time::Duration;

use restic_manager::agent::config::HooksConfig;
use restic_manager::agent::restic::{self, ResticHost};
use restic_manager::agent::runner::{self, JobPlan, LogSink, StopReason};
use restic_manager::protocol::{
    AgentToServer, CommandRun, FinishStatus, JobFinished, JobKind, LockState, LogStreamKind,
    RetentionPolicy,
};
use restic_repo::TempRepo;
use tokio::sync::{mpsc, watch};

/// A job's result and every live message it sent.
struct Ran {
    finished: JobFinished,
    messages: Vec<AgentToServer>,
}

impl Ran {
    fn log_lines(&self) -> Vec<(u64, LogStreamKind, String)> {
        self.messages
            .iter()
            .filter_map(|message| match message {
                AgentToServer::LogStream(line) => {
                    Some((line.seq, line.stream, line.payload.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn log_text(&self) -> String {
        self.log_lines()
            .into_iter()
            .map(|(_, _, text)| text)
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn progress_count(&self) -> usize {
        self.messages
            .iter()
            .filter(|message| matches!(message, AgentToServer::JobProgress(_)))
            .count()
    }
}

fn command(job_id: &str, kind: JobKind) -> CommandRun {
    CommandRun {
        job_id: job_id.to_owned(),
        kind,
        args: Vec::new(),
        includes: Vec::new(),
        excludes: Vec::new(),
        tag: None,
        retention_policy: None,
        snapshot_id: None,
        restore: None,
        drill: None,
        dump: None,
    }
}

fn host(repo: &TempRepo) -> ResticHost {
    ResticHost::new(restic_repo::restic_binary(), repo.dir.path())
}

fn plan(repo: &TempRepo, run: CommandRun, hooks: HooksConfig) -> JobPlan {
    let invocation = host(repo).job(&run, &repo.settings()).expect("valid job");
    JobPlan {
        command: run,
        invocation,
        hooks,
        hook_shell: "/bin/sh".to_owned(),
        cancel_grace: Duration::from_secs(10),
    }
}

/// Runs a job to its end, optionally stopping it once `stop_when` says so
/// about a live message.
async fn run_with(plan: JobPlan, stop_when: Option<fn(&AgentToServer) -> bool>) -> Ran {
    let (tx, mut rx) = mpsc::channel(64);
    let (stop_tx, mut stop_rx) = watch::channel(None);
    let job_id = plan.command.job_id.clone();
    let job = tokio::spawn(async move {
        let mut sink = LogSink::new(job_id, tx);
        runner::run_job(plan, &mut sink, &mut stop_rx).await
    });
    let mut messages = Vec::new();
    while let Some(message) = rx.recv().await {
        if stop_when.is_some_and(|when| when(&message)) {
            stop_tx
                .send(Some(StopReason::Cancelled))
                .expect("job alive");
        }
        messages.push(message);
    }
    let finished = tokio::time::timeout(Duration::from_secs(120), job)
        .await
        .expect("job ends")
        .expect("job task");
    Ran { finished, messages }
}

async fn run(plan: JobPlan) -> Ran {
    run_with(plan, None).await
}

fn backup(job_id: &str, source: &Path, tag: &str) -> CommandRun {
    CommandRun {
        includes: vec![source.to_string_lossy().into_owned()],
        excludes: vec!["*.tmp".to_owned()],
        tag: Some(tag.to_owned()),
        ..command(job_id, JobKind::Backup)
    }
}

/// Log lines are numbered 1, 2, 3, … without gaps.
fn assert_seq_contiguous(ran: &Ran) {
    let seqs: Vec<u64> = ran.log_lines().iter().map(|(seq, _, _)| *seq).collect();
    assert!(!seqs.is_empty(), "no log lines");
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

/// init, then a tagged backup: succeeded, job.started first, progress,
/// contiguous log, the summary as stats; the reports parse the result.
#[tokio::test]
async fn init_then_tagged_backup() {
    let repo = TempRepo::new();
    let init = run(plan(
        &repo,
        command("init-1", JobKind::Init),
        HooksConfig::default(),
    ))
    .await;
    assert_eq!(
        init.finished.status,
        FinishStatus::Succeeded,
        "{:?}",
        init.finished
    );
    assert_eq!(init.finished.exit_code, 0);
    assert!(
        matches!(init.messages[0], AgentToServer::JobStarted(ref s) if s.kind == JobKind::Init)
    );
    assert!(
        init.log_text().contains("created restic repository"),
        "{}",
        init.log_text()
    );
    assert_seq_contiguous(&init);

    let source = repo.source(
        "data",
        &[
            ("a.txt", "hello"),
            ("sub/b.txt", "world"),
            ("skip.tmp", "x"),
        ],
    );
    let ran = run(plan(
        &repo,
        backup("backup-1", &source, "docs"),
        HooksConfig::default(),
    ))
    .await;
    assert_eq!(
        ran.finished.status,
        FinishStatus::Succeeded,
        "{:?}",
        ran.finished
    );
    assert_eq!(ran.finished.error, None);
    let stats = ran.finished.stats.as_ref().expect("backup stats");
    assert_eq!(stats["files_new"], 2, "{stats:?}");
    let snapshot_id = stats["snapshot_id"]
        .as_str()
        .expect("snapshot id")
        .to_owned();
    assert!(ran.progress_count() >= 1);
    assert_seq_contiguous(&ran);
    assert!(ran
        .log_lines()
        .iter()
        .any(|(_, stream, text)| *stream == LogStreamKind::Stdout && text.contains("\"summary\"")));

    // What the daemon reports after a backup.
    let restic = host(&repo);
    let settings = repo.settings();
    let limit = Duration::from_secs(60);
    let listed = runner::capture(&restic.snapshots(&settings).unwrap(), limit)
        .await
        .unwrap();
    let snapshots = restic::parse_snapshots(&listed.stdout).unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].short_id, snapshot_id);
    assert_eq!(snapshots[0].tags, ["docs"]);
    assert_eq!(snapshots[0].paths, [source.to_string_lossy().into_owned()]);
    let raw = runner::capture(&restic.stats(&settings, "raw-data").unwrap(), limit)
        .await
        .unwrap();
    let raw = restic::parse_stats(&raw.stdout).unwrap();
    assert!(raw.total_size > 0);
    assert_eq!(raw.snapshots_count, Some(1));
    let locks = runner::capture(&restic.list_locks(&settings).unwrap(), limit)
        .await
        .unwrap();
    assert_eq!(restic::lock_state(&locks.stdout), LockState::Unlocked);
    let version = runner::capture(&restic.version_invocation(), limit)
        .await
        .unwrap();
    assert!(
        restic::parse_version(&version.stdout).is_some(),
        "{}",
        version.stdout
    );
}

/// forget with a retention policy and a tag keeps what the policy says,
/// only within the tag.
#[tokio::test]
async fn forget_with_policy() {
    let repo = TempRepo::new();
    repo.init();
    let etc = repo.source("etc", &[("a.conf", "1")]);
    let home = repo.source("home", &[("h.txt", "1")]);
    for n in 0..3 {
        std::fs::write(etc.join("a.conf"), format!("version {n}")).unwrap();
        let ran = run(plan(
            &repo,
            backup(&format!("b{n}"), &etc, "etc"),
            HooksConfig::default(),
        ))
        .await;
        assert_eq!(ran.finished.status, FinishStatus::Succeeded);
    }
    let ran = run(plan(
        &repo,
        backup("h", &home, "home"),
        HooksConfig::default(),
    ))
    .await;
    assert_eq!(ran.finished.status, FinishStatus::Succeeded);
    assert_eq!(repo.snapshots().len(), 4);

    let forget = CommandRun {
        tag: Some("etc".to_owned()),
        retention_policy: Some(RetentionPolicy {
            keep_last: Some(1),
            ..RetentionPolicy::default()
        }),
        ..command("forget-1", JobKind::Forget)
    };
    let ran = run(plan(&repo, forget, HooksConfig::default())).await;
    assert_eq!(
        ran.finished.status,
        FinishStatus::Succeeded,
        "{:?}",
        ran.finished
    );
    let left = repo.snapshots();
    let tags: Vec<String> = left
        .iter()
        .map(|s| s["tags"][0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left.len(), 2, "{tags:?}");
    assert!(tags.contains(&"etc".to_owned()) && tags.contains(&"home".to_owned()));
}

/// check and prune succeed on a healthy repository and stream their text.
#[tokio::test]
async fn check_and_prune() {
    let repo = TempRepo::new();
    repo.init();
    let source = repo.source("data", &[("a.txt", "a")]);
    run(plan(
        &repo,
        backup("b", &source, "data"),
        HooksConfig::default(),
    ))
    .await;
    let check = run(plan(
        &repo,
        command("check-1", JobKind::Check),
        HooksConfig::default(),
    ))
    .await;
    assert_eq!(
        check.finished.status,
        FinishStatus::Succeeded,
        "{:?}",
        check.finished
    );
    assert!(
        check.log_text().contains("no errors were found"),
        "{}",
        check.log_text()
    );
    assert_eq!(check.finished.stats, None);
    let prune = run(plan(
        &repo,
        command("prune-1", JobKind::Prune),
        HooksConfig::default(),
    ))
    .await;
    assert_eq!(
        prune.finished.status,
        FinishStatus::Succeeded,
        "{:?}",
        prune.finished
    );
    assert_seq_contiguous(&prune);
}

/// A stale lock left by a killed restic makes check fail with restic's
/// message; unlock removes it and check passes again.
#[tokio::test]
async fn unlock_removes_stale_lock() {
    let repo = TempRepo::new();
    repo.init();
    repo.make_stale_lock();
    let check = run(plan(
        &repo,
        command("check-locked", JobKind::Check),
        HooksConfig::default(),
    ))
    .await;
    assert_eq!(check.finished.status, FinishStatus::Failed);
    assert_ne!(check.finished.exit_code, 0);
    let error = check.finished.error.clone().unwrap_or_default();
    assert!(error.contains("lock"), "{error}");

    let restic = host(&repo);
    let locks = runner::capture(
        &restic.list_locks(&repo.settings()).unwrap(),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(restic::lock_state(&locks.stdout), LockState::Locked);

    let unlock = run(plan(
        &repo,
        command("unlock-1", JobKind::Unlock),
        HooksConfig::default(),
    ))
    .await;
    assert_eq!(
        unlock.finished.status,
        FinishStatus::Succeeded,
        "{:?}",
        unlock.finished
    );
    assert!(repo.lock_files().is_empty(), "{:?}", repo.lock_files());
    let check = run(plan(
        &repo,
        command("check-2", JobKind::Check),
        HooksConfig::default(),
    ))
    .await;
    assert_eq!(
        check.finished.status,
        FinishStatus::Succeeded,
        "{:?}",
        check.finished
    );
}

/// Cancelling a long backup stops restic with SIGINT: the job ends
/// `cancelled` quickly and restic removed its lock.
#[tokio::test]
async fn cancel_long_backup() {
    let repo = TempRepo::new();
    repo.init();
    let source = repo.slow_source("big", 64 * 1024 * 1024 * 1024);
    let started = std::time::Instant::now();
    let ran = run_with(
        plan(
            &repo,
            backup("long-1", &source, "big"),
            HooksConfig::default(),
        ),
        Some(|message| matches!(message, AgentToServer::JobProgress(p) if p.bytes_done > 0)),
    )
    .await;
    assert_eq!(
        ran.finished.status,
        FinishStatus::Cancelled,
        "{:?}",
        ran.finished
    );
    assert_eq!(ran.finished.error.as_deref(), Some(runner::CANCELLED_ERROR));
    assert_eq!(ran.finished.stats, None);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert!(
        ran.log_text().contains("stopping restic"),
        "{}",
        ran.log_text()
    );
    assert!(
        repo.lock_files().is_empty(),
        "restic left its lock: {:?}",
        repo.lock_files()
    );
    assert!(repo.snapshots().is_empty());
}

/// A wrong password fails with restic's own message; a missing source
/// fails with its Fatal line.
#[tokio::test]
async fn restic_failures_carry_restics_message() {
    let repo = TempRepo::new();
    repo.init();
    let mut settings = repo.settings();
    settings.apply(&restic_manager::protocol::ConfigUpdate {
        repo_password: Some("not-the-password".to_owned()),
        ..Default::default()
    });
    let run_cmd = command("check-badpw", JobKind::Check);
    let invocation = host(&repo).job(&run_cmd, &settings).unwrap();
    let ran = run(JobPlan {
        command: run_cmd,
        invocation,
        hooks: HooksConfig::default(),
        hook_shell: "/bin/sh".to_owned(),
        cancel_grace: Duration::from_secs(10),
    })
    .await;
    assert_eq!(ran.finished.status, FinishStatus::Failed);
    let error = ran.finished.error.unwrap_or_default();
    assert!(error.contains("wrong password"), "{error}");

    let missing = repo.dir.path().join("does-not-exist");
    let ran = run(plan(
        &repo,
        backup("b-missing", &missing, "x"),
        HooksConfig::default(),
    ))
    .await;
    assert_eq!(ran.finished.status, FinishStatus::Failed);
    assert_eq!(ran.finished.exit_code, 1);
    let error = ran.finished.error.unwrap_or_default();
    assert!(error.starts_with("Fatal:"), "{error}");
}

/// A failing pre hook fails the job before restic runs, with its output
/// in the log; a post hook sees the outcome and its failure is a warning.
#[tokio::test]
async fn hooks_around_a_backup() {
    let repo = TempRepo::new();
    repo.init();
    let source = repo.source("data", &[("a.txt", "a")]);
    let failing = HooksConfig {
        pre: Some("echo dumping database; echo pg_dump: connection refused >&2; exit 2".to_owned()),
        ..HooksConfig::default()
    };
    let ran = run(plan(&repo, backup("hooked-1", &source, "data"), failing)).await;
    assert_eq!(ran.finished.status, FinishStatus::Failed);
    assert_eq!(
        ran.finished.error.as_deref(),
        Some("pre hook failed with exit code 2")
    );
    let log = ran.log_text();
    assert!(
        log.contains("dumping database") && log.contains("connection refused"),
        "{log}"
    );
    assert!(
        repo.snapshots().is_empty(),
        "restic must not run after a failed pre hook"
    );

    let marker = repo.dir.path().join("post-ran");
    let hooks = HooksConfig {
        pre: Some("echo ready".to_owned()),
        post: Some(format!(
            "echo $RESTIC_MANAGER_JOB_STATUS $RESTIC_MANAGER_EXIT_CODE > {}; exit 1",
            marker.display()
        )),
        ..HooksConfig::default()
    };
    let ran = run(plan(&repo, backup("hooked-2", &source, "data"), hooks)).await;
    assert_eq!(
        ran.finished.status,
        FinishStatus::Succeeded,
        "{:?}",
        ran.finished
    );
    assert_eq!(
        ran.finished.error.as_deref(),
        Some("warning: post hook failed with exit code 1")
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        "succeeded 0"
    );
    assert_eq!(repo.snapshots().len(), 1);
    assert_seq_contiguous(&ran);
}
