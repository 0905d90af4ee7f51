//! When the server is away (issue 14 §6), end to end: the real agent
//! daemon (in-process, its schedule read from a shifted clock so a cron
//! time comes within seconds), the real server on a random port, real
//! restic. The server is stopped, the schedule fires on the agent, which
//! waits `offline_grace_seconds` and runs the backup itself, keeping its
//! log lines on disk; the server is started again on the same database,
//! and the job, its whole log and the snapshot appear exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::sync::Arc;

use chrono::{TimeDelta, Timelike};
use serde_json::{json, Value};

use crate::common::agent_proc::{is_acked, EnrolledAgent};
use crate::common::daemon::{self, InProcessAgent, ShiftedClock};
use crate::common::e2e::{get, host_jobs, job_logs, post, put, snapshots, wait_for, wait_job};
use crate::common::off_thread;
use crate::common::restic::{restic_binary, TempRepo};
use crate::common::server::spawn_app;
use restic_manager::agent::cron::Clock;
use restic_manager::agent::journal::JobState;
use restic_manager::agent::offline::spool::SPOOL_DIR;
use restic_manager::protocol::{FinishStatus, LogStream};

/// Files of `dir` (none when it is missing).
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

/// Whether any file under `dir` contains `needle`.
fn any_file_contains(dir: &Path, needle: &[u8]) -> bool {
    files(dir).into_iter().any(|path| {
        if path.is_dir() {
            return any_file_contains(&path, needle);
        }
        std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
    })
}

/// The server is stopped, a backup schedule fires on the agent, the
/// agent runs it itself after the grace (restic makes the snapshot, the
/// log lines are kept on disk, the password is never written in clear),
/// and once the server is back on the same database the job (`trigger`
/// and `origin` `agent`, linked to its schedule), its whole log (every
/// `seq` from 1, once) and the snapshot appear exactly once; the
/// retention `forget` follows as for any backup, and the agent's outbox
/// and log spool end empty.
#[actix_web::test]
async fn a_backup_runs_while_the_server_is_away_and_is_recorded_once() {
    let app = spawn_app().await;
    let repo = Arc::new(TempRepo::new());
    let init = repo.clone();
    off_thread(move || init.init()).await;
    let source = repo.source(
        "docs",
        &[
            ("a.txt", "written while the server was away\n"),
            ("b/c.txt", "more\n"),
        ],
    );

    let dir = tempfile::tempdir().unwrap();
    let mut config = daemon::enroll(&app, dir.path()).await;
    config.restic_binary = restic_binary();
    config.offline_grace_seconds = 1;
    let host = config.host_id.clone();
    let state_dir = config.state_dir.clone();
    let journal = EnrolledAgent {
        host_id: host.clone(),
        config_path: dir.path().join("agent.toml"),
        state_dir: state_dir.clone(),
        log_path: dir.path().join("agent.log"),
    };
    put(
        &app,
        &format!("/hosts/{host}/repository"),
        json!({"url": repo.repo.to_string_lossy(), "password": repo.password}),
    )
    .await;
    post(
        &app,
        &format!("/hosts/{host}/source-groups"),
        json!({"name": "docs", "includes": [source.to_string_lossy()], "excludes": [],
               "retry_max": 0, "retention_policy": {"keep_last": 5}}),
    )
    .await;

    // The agent's clock reads 25 s before a whole minute; the schedule is
    // due at that minute only (once a day), so it fires once, ~25 s from
    // now, after the server has stopped.
    let clock = ShiftedClock::before_next_minute(TimeDelta::seconds(25));
    let due = clock.now() + TimeDelta::seconds(25);
    let cron = format!("{} {} * * *", due.minute(), due.hour());
    let schedule = post(
        &app,
        &format!("/hosts/{host}/schedules"),
        json!({"cron_expr": cron, "enabled": true, "source_groups": ["docs"]}),
    )
    .await;
    let schedule_id = schedule["id"].as_str().unwrap().to_owned();

    let agent = InProcessAgent::start_with_clock(config, Arc::new(clock));
    wait_for("the agent to apply the schedule", async || {
        let h = get(&app, &format!("/hosts/{host}")).await;
        (h["status"] == "online"
            && h["acked_schedule_version"].as_i64() > Some(0)
            && h["acked_schedule_version"] == h["schedule_version"])
            .then_some(())
    })
    .await;
    app.stop().await;
    assert!(
        clock.now() < due,
        "the server took too long to stop: the fire would have reached it"
    );

    // Restic makes the snapshot while the server is down.
    let record = wait_for("the offline backup to finish", async || {
        journal
            .journal_records()
            .into_iter()
            .find(|record| record.finished().is_some())
    })
    .await;
    let job_id = record.job_id().to_owned();
    let finished = record.finished().unwrap().clone();
    assert_eq!(finished.status, FinishStatus::Succeeded, "{finished:?}");
    assert_eq!(record.command.tag.as_deref(), Some("docs"));
    let probe = repo.clone();
    let made = off_thread(move || probe.snapshots()).await;
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["tags"], json!(["docs"]));

    // Its log lines wait on disk, and no secret was written in clear.
    let spooled: Vec<LogStream> = files(&state_dir.join(SPOOL_DIR))
        .iter()
        .flat_map(|path| {
            std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str::<LogStream>(line).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!spooled.is_empty(), "no log line kept while offline");
    assert!(spooled.iter().all(|line| line.job_id == job_id));
    let seqs: Vec<u64> = spooled.iter().map(|line| line.seq).collect();
    assert_eq!(seqs, (1..=spooled.len() as u64).collect::<Vec<_>>());
    assert!(
        !any_file_contains(&state_dir, repo.password.as_bytes()),
        "the repository password is in the agent's state directory in clear"
    );
    assert!(state_dir.join("repository.sealed").exists());

    // The server comes back on the same database.
    let app = app.start_again().await;
    wait_for("the agent to report its job", async || {
        let (status, _) =
            crate::common::api::get(&app, &app.admin_token, &format!("/jobs/{job_id}")).await;
        status.is_success().then_some(())
    })
    .await;
    let job = wait_job(&app, &job_id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["trigger"], "agent", "{job}");
    assert_eq!(job["origin"], "agent", "{job}");
    assert_eq!(job["kind"], "backup");
    assert_eq!(job["tag"], "docs");
    assert_eq!(job["schedule_id"], json!(schedule_id));
    assert!(job["source_group_id"].is_string(), "{job}");
    assert_eq!(
        job["stats"]["snapshot_id"].as_str().unwrap(),
        made[0]["short_id"].as_str().unwrap()
    );

    wait_for(
        "the agent's outbox and log spool to be acknowledged",
        async || {
            let acked = journal
                .journal_record(&job_id)
                .is_some_and(|r| is_acked(&r));
            (acked
                && journal.outbox_types().is_empty()
                && files(&state_dir.join(SPOOL_DIR)).is_empty())
            .then_some(())
        },
    )
    .await;
    let logs = job_logs(&app, &job_id).await;
    let stored: Vec<(u64, String)> = logs
        .iter()
        .map(|l| {
            (
                l["seq"].as_u64().unwrap(),
                l["payload"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let kept: Vec<(u64, String)> = spooled.iter().map(|l| (l.seq, l.payload.clone())).collect();
    assert_eq!(stored, kept, "the job's whole log, each line once");

    let projected = wait_for("the snapshot in the projection", async || {
        let items = snapshots(&app, &host).await;
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(projected.len(), 1, "{projected:?}");
    assert_eq!(projected[0]["id"], made[0]["id"]);

    // Exactly one backup; its retention forget follows.
    let jobs = host_jobs(&app, &host).await;
    let backups: Vec<&Value> = jobs.iter().filter(|j| j["kind"] == "backup").collect();
    assert_eq!(backups.len(), 1, "{jobs:?}");
    let forget = wait_for("the retention forget", async || {
        host_jobs(&app, &host)
            .await
            .into_iter()
            .find(|j| j["kind"] == "forget" && j["trigger"] == "retention")
    })
    .await;
    let forget = wait_job(&app, forget["id"].as_str().unwrap()).await;
    assert_eq!(forget["status"], "succeeded", "{forget}");
    assert!(matches!(
        journal.journal_record(&job_id).unwrap().state,
        JobState::Finished { acked: true, .. }
    ));

    agent.stop().await;
    app.stop().await;
}
