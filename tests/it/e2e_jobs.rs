//! Every job kind end to end, with the real server (in-process, random
//! port), the real agent daemon (in-process, real WebSocket) and the real
//! `restic` on a temp repository: a backup on a schedule fire, a check on
//! a check schedule's fire, forget by a retention policy, prune, check,
//! unlock of a real stale lock, and the cancel of a long backup.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::common::agent_proc::processes_with_arg;
use crate::common::daemon::{self, InProcessAgent, ShiftedClock};
use crate::common::e2e::{
    get, host_jobs, job_logs, post, put, run_job, snapshots, start_job, wait_for, wait_for_within,
    wait_job, wait_online,
};
use crate::common::off_thread;
use crate::common::restic::TempRepo;
use crate::common::server::{spawn_app, TestApp};
use chrono::{DateTime, TimeDelta, Timelike, Utc};
use serde_json::{json, Value};

/// A server, an initialised repository set on one enrolled host, and
/// (once started) the host's agent.
struct Fixture {
    app: TestApp,
    repo: Arc<TempRepo>,
    host: String,
    config: Option<restic_manager::agent::AgentConfig>,
    agent: Option<InProcessAgent>,
    /// Holds the agent's config and state.
    _work: tempfile::TempDir,
}

impl Fixture {
    /// Server, repository (initialised by restic itself: `init` through
    /// the agent is covered by e2e_backup), enrolled host with the
    /// repository set; the agent is not started yet.
    async fn new() -> Self {
        let app = spawn_app().await;
        let repo = Arc::new(TempRepo::new());
        let init = repo.clone();
        off_thread(move || init.init()).await;
        let work = tempfile::tempdir().unwrap();
        let config = daemon::enroll(&app, work.path()).await;
        let host = config.host_id.clone();
        put(
            &app,
            &format!("/hosts/{host}/repository"),
            json!({"url": repo.repo.to_string_lossy(), "password": repo.password}),
        )
        .await;
        Self {
            app,
            repo,
            host,
            config: Some(config),
            agent: None,
            _work: work,
        }
    }

    /// [`new`](Self::new) with the agent running and online.
    async fn online() -> Self {
        let mut fixture = Self::new().await;
        fixture.start_agent(None).await;
        fixture
    }

    /// Starts the agent (with `clock` for its schedule, if given) and
    /// waits until the host is online.
    async fn start_agent(&mut self, clock: Option<ShiftedClock>) {
        let config = self.config.take().unwrap();
        self.agent = Some(match clock {
            Some(clock) => InProcessAgent::start_with_clock(config, Arc::new(clock)),
            None => InProcessAgent::start(config),
        });
        wait_online(&self.app, &self.host).await;
    }

    /// Starts the agent with its schedule clock 3 s before a whole minute
    /// and returns, finished, the first job a `* * * * *` schedule's fire
    /// created. If the machine is slow enough to apply the schedule after
    /// the shifted minute, the next minute fires instead: allow for it.
    async fn first_scheduled_job(&mut self) -> Value {
        let clock = ShiftedClock::before_next_minute(TimeDelta::seconds(3));
        self.start_agent(Some(clock)).await;
        let job = wait_for_within(
            "a job from the schedule",
            Duration::from_secs(90),
            async || {
                host_jobs(&self.app, &self.host)
                    .await
                    .into_iter()
                    .find(|job| job["trigger"] == "schedule")
            },
        )
        .await;
        wait_job(&self.app, job["id"].as_str().unwrap()).await
    }

    /// Creates a source group on the host.
    async fn source_group(&self, body: Value) -> Value {
        post(
            &self.app,
            &format!("/hosts/{}/source-groups", self.host),
            body,
        )
        .await
    }

    async fn run(&self, body: Value) -> Value {
        run_job(&self.app, &self.host, body).await
    }

    /// What restic itself lists for `tag`.
    async fn restic_snapshots(&self, tag: &str) -> Vec<Value> {
        let repo = self.repo.clone();
        let tag = tag.to_owned();
        off_thread(move || {
            repo.snapshots()
                .into_iter()
                .filter(|s| {
                    s["tags"]
                        .as_array()
                        .is_some_and(|t| t.contains(&json!(tag)))
                })
                .collect()
        })
        .await
    }

    async fn finish(self) {
        if let Some(agent) = self.agent {
            agent.stop().await;
        }
        self.app.stop().await;
    }
}

/// Bytes stored under `dir`, recursively.
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                dir_size(&entry.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// The job's restic summary snapshot id (short form in 0.14).
fn snapshot_id(job: &Value) -> String {
    job["stats"]["snapshot_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no snapshot id in {job}"))
        .to_owned()
}

/// Asserts that restic's output of the check `job` says it found no error.
async fn assert_check_found_no_error(app: &TestApp, job: &Value) {
    let logs = job_logs(app, job["id"].as_str().unwrap()).await;
    assert!(
        logs.iter().any(|l| l["payload"]
            .as_str()
            .unwrap()
            .contains("no errors were found")),
        "{logs:?}"
    );
}

/// Waits for a retention `forget` job other than those in `seen` and
/// returns it finished.
async fn retention_forget(app: &TestApp, host: &str, seen: &[&str]) -> Value {
    let id = wait_for("the retention forget job", async || {
        host_jobs(app, host).await.into_iter().find_map(|job| {
            let id = job["id"].as_str().unwrap().to_owned();
            (job["trigger"] == "retention" && !seen.contains(&id.as_str())).then_some(id)
        })
    })
    .await;
    wait_job(app, &id).await
}

/// A `* * * * *` schedule on the server fires on the agent's local cron
/// (its clock shifted to 3 s before a whole minute), the server turns the
/// fire into a backup of the schedule's group, and the snapshot appears
/// with the group's tag — in restic and in the server's projection.
#[actix_web::test]
async fn backup_runs_on_a_schedule_fire() {
    let mut fx = Fixture::new().await;
    let source = fx.repo.source("docs", &[("a.txt", "scheduled content\n")]);
    fx.source_group(
        json!({"name": "docs", "includes": [source.to_string_lossy()], "excludes": []}),
    )
    .await;
    let schedule = post(
        &fx.app,
        &format!("/hosts/{}/schedules", fx.host),
        json!({"cron_expr": "* * * * *", "enabled": true, "source_groups": ["docs"]}),
    )
    .await;
    let job = fx.first_scheduled_job().await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["kind"], "backup");
    assert_eq!(job["tag"], "docs");
    assert_eq!(job["schedule_id"], schedule["id"]);
    let scheduled_at: DateTime<Utc> = job["scheduled_at"].as_str().unwrap().parse().unwrap();
    assert_eq!((scheduled_at.second(), scheduled_at.nanosecond()), (0, 0));

    let short = snapshot_id(&job);
    let listed = fx.restic_snapshots("docs").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0]["id"].as_str().unwrap().starts_with(&short));
    let projected = wait_for("the snapshot in the server's projection", async || {
        let items = snapshots(&fx.app, &fx.host).await;
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(projected[0]["short_id"], json!(short), "{projected:?}");
    assert_eq!(projected[0]["tags"], json!(["docs"]));
    // One fire, one job (the next fire is a minute away).
    let scheduled = host_jobs(&fx.app, &fx.host)
        .await
        .into_iter()
        .filter(|job| job["trigger"] == "schedule")
        .count();
    assert_eq!(scheduled, 1);
    fx.finish().await;
}

/// A `* * * * *` schedule of kind `check` (issue 12 §2) fires on the
/// agent's local cron, and the server turns the fire into a `check` job
/// (not a backup, with the rotation's `--read-data-subset`); real restic
/// checks the repository (data backed up by restic itself) and the job
/// succeeds.
#[actix_web::test]
async fn check_runs_on_a_check_schedule_fire() {
    let mut fx = Fixture::new().await;
    let source = fx.repo.source("docs", &[("a.txt", "checked content\n")]);
    let repo = fx.repo.clone();
    off_thread(move || {
        let out = repo.restic(&["backup", &source.to_string_lossy()]);
        assert!(out.status.success(), "restic backup: {out:?}");
    })
    .await;
    let schedule = post(
        &fx.app,
        &format!("/hosts/{}/schedules", fx.host),
        json!({"cron_expr": "* * * * *", "kind": "check"}),
    )
    .await;
    assert_eq!(schedule["kind"], "check", "{schedule}");
    let job = fx.first_scheduled_job().await;
    assert_eq!(job["kind"], "check", "{job}");
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["schedule_id"], schedule["id"]);
    assert_check_found_no_error(&fx.app, &job).await;
    assert!(
        host_jobs(&fx.app, &fx.host)
            .await
            .iter()
            .all(|j| j["kind"] != "backup"),
        "a check schedule makes no backup"
    );
    fx.finish().await;
}

/// Two backups of a group with `keep_last: 1`: each is followed by the
/// retention forget, after which restic lists one snapshot for the tag
/// (the second) and so does the server's projection; prune then frees the
/// data only the forgotten snapshot used, and check finds no error.
#[actix_web::test]
async fn retention_forget_then_prune_and_check() {
    let fx = Fixture::online().await;
    let source = fx.repo.source("docs", &[("keep.txt", "kept in both\n")]);
    // 2 MiB only the first snapshot holds (random: neither compressed nor
    // deduplicated away).
    let mut noise = vec![0u8; 2 << 20];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").unwrap(),
        &mut noise,
    )
    .unwrap();
    std::fs::write(source.join("noise.bin"), &noise).unwrap();
    fx.source_group(json!({
        "name": "docs",
        "includes": [source.to_string_lossy()],
        "excludes": [],
        "retention_policy": {"keep_last": 1},
        "retry_max": 0,
    }))
    .await;

    let first = fx
        .run(json!({"kind": "backup", "source_group": "docs"}))
        .await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let forget = retention_forget(&fx.app, &fx.host, &[]).await;
    assert_eq!(forget["status"], "succeeded", "{forget}");
    assert_eq!(forget["kind"], "forget");
    assert_eq!(forget["tag"], "docs");
    let first_forget = forget["id"].as_str().unwrap().to_owned();

    std::fs::remove_file(source.join("noise.bin")).unwrap();
    std::fs::write(source.join("new.txt"), "only in the second\n").unwrap();
    let second = fx
        .run(json!({"kind": "backup", "source_group": "docs"}))
        .await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let forget = retention_forget(&fx.app, &fx.host, &[&first_forget]).await;
    assert_eq!(forget["status"], "succeeded", "{forget}");
    let logs = job_logs(&fx.app, forget["id"].as_str().unwrap()).await;
    assert!(!logs.is_empty(), "forget output is streamed");

    let kept = snapshot_id(&second);
    let listed = fx.restic_snapshots("docs").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0]["id"].as_str().unwrap().starts_with(&kept));
    wait_for("the projection after the forget", async || {
        let items = snapshots(&fx.app, &fx.host).await;
        (items.len() == 1 && items[0]["short_id"] == json!(kept)).then_some(())
    })
    .await;

    let data = fx.repo.repo.join("data");
    let before = dir_size(&data);
    let prune = fx.run(json!({"kind": "prune"})).await;
    assert_eq!(prune["status"], "succeeded", "{prune}");
    let after = dir_size(&data);
    assert!(
        after + (1 << 20) < before,
        "prune freed less than 1 MiB: {before} → {after}"
    );

    let check = fx.run(json!({"kind": "check"})).await;
    assert_eq!(check["status"], "succeeded", "{check}");
    assert_check_found_no_error(&fx.app, &check).await;
    fx.finish().await;
}

/// A real stale lock (a `restic backup` killed with SIGKILL while holding
/// it) makes `check` fail; the unlock job removes it, and check passes.
#[actix_web::test]
async fn unlock_removes_a_real_stale_lock() {
    let fx = Fixture::online().await;
    let repo = fx.repo.clone();
    off_thread(move || repo.make_stale_lock()).await;
    assert!(!fx.repo.lock_files().is_empty());

    let blocked = fx.run(json!({"kind": "check"})).await;
    assert_eq!(blocked["status"], "failed", "{blocked}");
    assert!(
        blocked["error"]
            .as_str()
            .unwrap()
            .contains("repository is already locked by PID"),
        "{blocked}"
    );

    let unlock = fx.run(json!({"kind": "unlock"})).await;
    assert_eq!(unlock["status"], "succeeded", "{unlock}");
    assert!(
        fx.repo.lock_files().is_empty(),
        "{:?}",
        fx.repo.lock_files()
    );
    let check = fx.run(json!({"kind": "check"})).await;
    assert_eq!(check["status"], "succeeded", "{check}");
    fx.finish().await;
}

/// A backup of a 1 TiB sparse file (hours of hashing) is cancelled once it
/// runs and reports progress: it ends `cancelled`, restic is gone, and it
/// removed its lock.
#[actix_web::test]
async fn cancel_a_long_backup() {
    let fx = Fixture::online().await;
    let source = fx.repo.slow_source("huge", 1 << 40);
    let source_arg = source.to_string_lossy().into_owned();
    fx.source_group(json!({"name": "huge", "includes": [source_arg], "excludes": []}))
        .await;
    let id = start_job(
        &fx.app,
        &fx.host,
        json!({"kind": "backup", "source_group": "huge"}),
    )
    .await;
    let running = wait_for("the backup to run and report progress", async || {
        let job = get(&fx.app, &format!("/jobs/{id}")).await;
        assert!(
            !crate::common::e2e::is_terminal(&job),
            "ended before the cancel: {job}"
        );
        (job["status"] == "running" && job["progress"].is_object()).then_some(job)
    })
    .await;
    assert!(running["progress"]["percent_done"].as_f64().unwrap() < 0.5);
    assert!(!processes_with_arg(&source_arg).is_empty(), "restic runs");

    let answer = post(&fx.app, &format!("/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(answer["outcome"], "cancel_requested", "{answer}");
    let job = wait_job(&fx.app, &id).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    assert!(job["stats"].is_null(), "{job}");
    assert!(
        processes_with_arg(&source_arg).is_empty(),
        "restic still runs"
    );
    assert!(
        fx.repo.lock_files().is_empty(),
        "{:?}",
        fx.repo.lock_files()
    );
    let logs = job_logs(&fx.app, &id).await;
    assert!(
        logs.iter()
            .any(|l| l["payload"] == "stopping restic: cancel requested"),
        "{logs:?}"
    );
    fx.finish().await;
}
