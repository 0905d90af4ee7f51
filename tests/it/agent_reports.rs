//! Reports that do not hold the queue (issue 14 §5), the real agent
//! against the minimal WebSocket server of `agent_session`: restic's
//! `stats` is made slow by a wrapper script, and a job that arrives while
//! the reports after a backup are collected starts at once; the reports
//! are stopped and collected again after it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use restic_manager::protocol::{AgentToServer, FinishStatus};

use crate::agent_session::{backup_of, config, RunningAgent, TestServer};
use crate::common::restic::{restic_binary, TempRepo};

/// How long the wrapper makes every `restic stats` take.
const SLOW_STATS_SECONDS: u64 = 40;

/// A `restic` that sleeps before any `stats`, then runs the real one.
fn slow_stats_restic(dir: &Path) -> PathBuf {
    let path = dir.join("restic-slow-stats");
    let script = format!(
        "#!/bin/sh\ncase \" $* \" in *\" stats \"*) sleep {SLOW_STATS_SECONDS};; esac\nexec '{}' \"$@\"\n",
        restic_binary().display()
    );
    std::fs::write(&path, script).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}

/// After a backup the agent collects its reports (here stuck in a slow
/// `restic stats`); a `command.run` that arrives meanwhile starts and
/// finishes long before the stats could have ended, no `repo.stats` comes
/// before its end, and the agent says the reports were stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_arriving_during_reports_starts_first() {
    let token = "agent-token-reports-9c2d";
    let mut server = TestServer::start(token).await;
    let state = tempfile::tempdir().unwrap();
    let repo = TempRepo::new();
    repo.init();
    let source = repo.source("docs", &[("a.txt", "alpha")]);
    let mut config = config(&server, token, state.path());
    config.restic_binary = slow_stats_restic(repo.dir.path());
    let agent = RunningAgent::start(config);
    let mut conn = server.accept().await;
    conn.hello().await;
    conn.send(repo.config_update()).await;

    conn.send(backup_of("job-r1", &source, "docs")).await;
    loop {
        let envelope = conn.recv().await;
        if let AgentToServer::JobFinished(finished) = &envelope.message {
            assert_eq!(finished.job_id, "job-r1");
            assert_eq!(finished.status, FinishStatus::Succeeded, "{finished:?}");
            break;
        }
    }

    // The reports of job-r1 now wait in `restic stats`.
    let sent = Instant::now();
    conn.send(backup_of("job-r2", &source, "docs")).await;
    let mut seen = Vec::new();
    let finished = loop {
        let envelope = conn.recv().await;
        match envelope.message {
            AgentToServer::JobFinished(finished) if finished.job_id == "job-r2" => break finished,
            other => seen.push(other),
        }
    };
    let took = sent.elapsed();
    assert_eq!(finished.status, FinishStatus::Succeeded, "{finished:?}");
    assert!(
        took < Duration::from_secs(SLOW_STATS_SECONDS / 2),
        "the job waited for the reports: {took:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|m| matches!(m, AgentToServer::RepoStats(_))),
        "reports went out before the waiting job: {seen:?}"
    );
    let logs = agent.logs();
    agent.shutdown().await.unwrap();
    assert!(
        logs.text().contains("reports stopped"),
        "the reports were not stopped for the job"
    );
}
