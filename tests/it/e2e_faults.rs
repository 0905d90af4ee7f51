//! Faults end to end, with the real `restic-manager-agent` binary as its
//! own process (so that `kill -9` is real), the real server in-process and
//! the real `restic`:
//!
//! - the agent killed during a backup and restarted;
//! - the server stopped during a backup and started again on the same
//!   data dir and port;
//! - the TCP connection between them dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::agent_proc::{self, is_acked, processes_with_arg, EnrolledAgent};
use crate::common::e2e::{
    get, host_jobs, job_logs, post, put, run_job, snapshots, start_job, wait_for, wait_job,
    wait_online,
};
use crate::common::off_thread;
use crate::common::proxy::TcpProxy;
use crate::common::restic::TempRepo;
use crate::common::server::{spawn_app, TestApp};
use restic_manager::agent::journal::{JobState, RESTARTED_ERROR};
use restic_manager::agent::HooksConfig;
use restic_manager::protocol::JobKind;
use serde_json::{json, Value};

/// A server, an initialised repository, and a host enrolled with the agent
/// binary (through `server_url`) whose repository is set.
async fn setup(app: &TestApp, server_url: &str) -> (Arc<TempRepo>, EnrolledAgent) {
    let repo = Arc::new(TempRepo::new());
    let init = repo.clone();
    off_thread(move || init.init()).await;
    let agent = agent_proc::enroll(app, server_url, repo.dir.path()).await;
    put(
        app,
        &format!("/hosts/{}/repository", agent.host_id),
        json!({"url": repo.repo.to_string_lossy(), "password": repo.password}),
    )
    .await;
    (repo, agent)
}

/// Creates a source group without retries (a failed job stays one job).
async fn source_group(app: &TestApp, host: &str, name: &str, include: &str) {
    post(
        app,
        &format!("/hosts/{host}/source-groups"),
        json!({"name": name, "includes": [include], "excludes": [], "retry_max": 0}),
    )
    .await;
}

/// Waits until the agent has had every message acknowledged: the job's
/// record is finished and acked, and the outbox is empty.
async fn wait_all_acked(agent: &EnrolledAgent, job_id: &str) {
    wait_for("the agent's outbox to be acknowledged", async || {
        let acked = agent.journal_record(job_id).is_some_and(|r| is_acked(&r));
        (acked && agent.outbox_types().is_empty()).then_some(())
    })
    .await;
}

/// Backup jobs of the host.
async fn backups(app: &TestApp, host: &str) -> Vec<Value> {
    host_jobs(app, host)
        .await
        .into_iter()
        .filter(|job| job["kind"] == "backup")
        .collect()
}

/// `kill -9` of the agent while restic backs up a 1 TiB sparse file, then
/// a restart: the job ends `failed` with "agent restarted during the job",
/// reported once (one job row, one acknowledged record, log seqs unique);
/// no restic of the job keeps running and no lock is left, so a `check`
/// (which needs an exclusive lock) then succeeds.
#[actix_web::test]
async fn agent_killed_during_a_backup_reports_it_failed_once() {
    let app = spawn_app().await;
    let (repo, agent) = setup(&app, &app.base_url).await;
    let host = agent.host_id.clone();
    let source = repo.slow_source("huge", 1 << 40);
    let source_arg = source.to_string_lossy().into_owned();
    source_group(&app, &host, "huge", &source_arg).await;
    let process = agent.spawn();
    wait_online(&app, &host).await;

    let id = start_job(
        &app,
        &host,
        json!({"kind": "backup", "source_group": "huge"}),
    )
    .await;
    wait_for("the backup to run with its lock taken", async || {
        let job = get(&app, &format!("/jobs/{id}")).await;
        let locked = repo
            .lock_files()
            .iter()
            .any(|path| std::fs::metadata(path).is_ok_and(|m| m.len() > 0));
        (job["status"] == "running" && job["progress"].is_object() && locked).then_some(())
    })
    .await;
    let record = agent.journal_record(&id).unwrap();
    assert!(
        matches!(
            record.state,
            JobState::Running {
                restic: Some(_),
                ..
            }
        ),
        "restic's process is journaled: {record:?}"
    );
    assert!(!processes_with_arg(&source_arg).is_empty(), "restic runs");

    process.kill9().await;
    let process = agent.spawn();

    let job = wait_job(&app, &id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"], RESTARTED_ERROR, "{job}");
    wait_for("the leftover restic to be gone", async || {
        processes_with_arg(&source_arg).is_empty().then_some(())
    })
    .await;
    wait_all_acked(&agent, &id).await;

    // The clean-up ran before this job: check takes an exclusive lock.
    let check = run_job(&app, &host, json!({"kind": "check"})).await;
    assert_eq!(
        check["status"],
        "succeeded",
        "{check}\nagent log:\n{}",
        agent.log()
    );
    assert!(repo.lock_files().is_empty(), "{:?}", repo.lock_files());
    let log = agent.log();
    assert!(
        log.contains("stale repository locks removed"),
        "the restarted agent ran restic unlock; agent log:\n{log}"
    );
    // Whether restic was still running at the restart depends on timing
    // (it dies of SIGPIPE at its next output line): shown, not asserted.
    for line in log.lines().filter(|l| {
        l.contains("restic of the interrupted job")
            || l.contains("left running by the previous agent")
    }) {
        eprintln!("{line}");
    }

    assert_eq!(backups(&app, &host).await.len(), 1, "one job row");
    let records: Vec<_> = agent
        .journal_records()
        .into_iter()
        .filter(|r| r.kind() == JobKind::Backup)
        .collect();
    assert_eq!(records.len(), 1);
    let finished = records[0].finished().unwrap();
    assert_eq!(finished.error.as_deref(), Some(RESTARTED_ERROR));
    assert_eq!(
        job["finished_at"].as_str().unwrap()[..19],
        finished.finished_at.to_rfc3339()[..19],
        "the server keeps the one finish the agent reported"
    );
    let logs = job_logs(&app, &id).await;
    assert!(!logs.is_empty(), "the lines sent before the kill are kept");
    assert!(
        !agent.log().contains("panicked"),
        "agent log:\n{}",
        agent.log()
    );
    process.terminate().await;
    app.stop().await;
}

/// The server stops while a backup runs (held by a pre hook until the
/// server is down), the backup finishes while it is down, and the server
/// starts again on the same data dir and port: the agent reconnects and
/// its outbox delivers `job.finished` once — the job is `succeeded` with
/// restic's stats, the snapshot is projected, and the agent's outbox ends
/// empty with the job acknowledged.
#[actix_web::test]
async fn server_restart_during_a_backup_delivers_the_result_once() {
    let app = spawn_app().await;
    let (repo, agent) = setup(&app, &app.base_url).await;
    let host = agent.host_id.clone();
    let source = repo.source("docs", &[("a.txt", "written while the server was down\n")]);
    source_group(&app, &host, "docs", &source.to_string_lossy()).await;
    let release = repo.dir.path().join("release");
    agent.set_hooks(HooksConfig {
        pre: Some(format!(
            "while [ ! -e '{}' ]; do sleep 0.05; done",
            release.display()
        )),
        timeout_seconds: 120,
        ..HooksConfig::default()
    });
    let process = agent.spawn();
    wait_online(&app, &host).await;

    let id = start_job(
        &app,
        &host,
        json!({"kind": "backup", "source_group": "docs"}),
    )
    .await;
    wait_for("the backup to start", async || {
        let job = get(&app, &format!("/jobs/{id}")).await;
        (job["status"] == "running").then_some(())
    })
    .await;

    let stopping = Instant::now();
    app.stop().await;
    let stopped_in = stopping.elapsed();
    std::fs::write(&release, b"go").unwrap();
    wait_for(
        "the backup to finish while the server is down",
        async || {
            let record = agent.journal_record(&id)?;
            let finished = record.finished()?.clone();
            let queued = agent.outbox_types().contains(&"job.finished".to_owned());
            queued.then_some(finished)
        },
    )
    .await;

    let app = app.start_again().await;
    let job = wait_job(&app, &id).await;
    assert_eq!(
        job["status"],
        "succeeded",
        "{job}\nagent log:\n{}",
        agent.log()
    );
    let short = job["stats"]["snapshot_id"].as_str().unwrap().to_owned();
    assert!(job["stats"]["files_new"].as_u64().unwrap() >= 1, "{job}");
    wait_all_acked(&agent, &id).await;
    let projected = wait_for("the snapshot in the projection", async || {
        let items = snapshots(&app, &host).await;
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(projected.len(), 1);
    assert_eq!(projected[0]["short_id"], json!(short));

    let finished = agent
        .journal_record(&id)
        .unwrap()
        .finished()
        .unwrap()
        .clone();
    assert_eq!(
        job["finished_at"].as_str().unwrap()[..19],
        finished.finished_at.to_rfc3339()[..19]
    );
    assert_eq!(backups(&app, &host).await.len(), 1, "one job row");
    job_logs(&app, &id).await;
    assert_eq!(
        agent.log().matches("replaying the outbox").count(),
        1,
        "one replay (server stop took {stopped_in:?}); agent log:\n{}",
        agent.log()
    );
    process.terminate().await;
    app.stop().await;
}

/// Every TCP connection between agent and server is cut (a proxy drops
/// both sockets, no close frame): the agent reconnects after its back-off
/// (not at once), the host is online again, and a job dispatched
/// afterwards runs.
#[actix_web::test]
async fn dropped_connection_is_resumed() {
    let app = spawn_app().await;
    let proxy = TcpProxy::start(app.addr).await;
    let (repo, agent) = setup(&app, &proxy.url()).await;
    let host = agent.host_id.clone();
    let source = repo.source("docs", &[("a.txt", "after the reconnect\n")]);
    source_group(&app, &host, "docs", &source.to_string_lossy()).await;
    let process = agent.spawn();
    wait_online(&app, &host).await;

    let accepted = proxy.accepted();
    let cut = Instant::now();
    assert!(proxy.sever() >= 1, "the agent's connection was live");
    wait_for("the server to see the host go offline", async || {
        let h = get(&app, &format!("/hosts/{host}")).await;
        (h["status"] == "offline").then_some(())
    })
    .await;
    let reconnected_after = wait_for("the agent to reconnect", async || {
        (proxy.accepted() > accepted).then(|| cut.elapsed())
    })
    .await;
    // Back-off 1 s ±20 %: the agent waits before it reconnects.
    assert!(
        reconnected_after >= Duration::from_millis(750),
        "reconnected after {reconnected_after:?}"
    );
    wait_online(&app, &host).await;

    let job = run_job(
        &app,
        &host,
        json!({"kind": "backup", "source_group": "docs"}),
    )
    .await;
    assert_eq!(
        job["status"],
        "succeeded",
        "{job}\nagent log:\n{}",
        agent.log()
    );
    assert_eq!(repo.snapshots().len(), 1);
    process.terminate().await;
    app.stop().await;
}
