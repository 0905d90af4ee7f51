//! Issue 19 §4: the server survives its PostgreSQL going away and coming
//! back. A throwaway cluster of the test's own (`scripts/pg-throwaway`) is
//! stopped while an agent's job runs: `/readyz` answers 503, the agent's
//! `job.finished` is not acked and its session ends with 1013 ("try again
//! later") instead of hanging; once the cluster is back, `/readyz` is 200
//! and the agent's reconnect and outbox replay record the job exactly once
//! as it ended, nothing lost.
//!
//! Needs PostgreSQL's binaries (`scripts/test` installs them); skipped
//! without them unless `CI` or `RESTIC_MANAGER_REQUIRE_POSTGRES` is set.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use restic_manager::config::DatabaseUrl;
use restic_manager::protocol::{self, FinishStatus};
use restic_manager::store::JobStatus;
use serde_json::json;

use crate::common::agent::{enroll, eventually, finished_envelope, job_when, run_now, TestAgent};
use crate::common::api::call;
use crate::common::server::{client, spawn_app_with, TestApp};
use crate::store::{announce, postgres_required};

/// A throwaway PostgreSQL cluster; removed when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    url: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-throwaway")
}

fn pg_installed() -> bool {
    let on_path = std::process::Command::new("sh")
        .args([
            "-c",
            "command -v initdb || ls /usr/lib/postgresql/*/bin/initdb",
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    on_path && cfg!(feature = "postgres")
}

/// Runs `scripts/pg-throwaway COMMAND DIR`; its output on success.
async fn pg_throwaway(command: &str, dir: &Path) -> String {
    let out = tokio::process::Command::new(script())
        .arg(command)
        .arg(dir.join("pg"))
        .output()
        .await
        .expect("run pg-throwaway");
    assert!(
        out.status.success(),
        "pg-throwaway {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("output")
        .trim()
        .to_owned()
}

impl Cluster {
    async fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = pg_throwaway("start", dir.path()).await;
        Cluster { dir, url }
    }

    async fn run(&self, command: &str) {
        pg_throwaway(command, self.dir.path()).await;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(script())
            .arg("stop")
            .arg(self.dir.path().join("pg"))
            .status();
    }
}

async fn readyz(app: &TestApp) -> StatusCode {
    client()
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .status()
}

#[actix_web::test]
async fn the_server_survives_a_postgresql_restart_and_loses_no_result() {
    if !pg_installed() {
        assert!(
            !postgres_required(),
            "PostgreSQL's binaries are required (CI or RESTIC_MANAGER_REQUIRE_POSTGRES is set)"
        );
        announce("pg_restart: skipped: PostgreSQL's binaries are not installed");
        return;
    }
    let cluster = Cluster::start().await;
    let url = cluster.url.clone();
    let app = spawn_app_with(move |config| {
        config.database_url = DatabaseUrl(url);
        // Requests fail within seconds while the database is away.
        config.pool.connection_timeout = Duration::from_secs(2);
    })
    .await;
    assert_eq!(readyz(&app).await, StatusCode::OK);

    let enrolled = enroll(&app, "pg-01").await;
    let mut agent = TestAgent::connect(&app, &enrolled).await.expect("connect");
    agent.hello("pg-01").await;
    let (status, _) = call(
        &app,
        &app.admin_token,
        reqwest::Method::POST,
        &format!("/hosts/{}/source-groups", enrolled.host_id),
        Some(json!({"name": "etc", "includes": ["/etc"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let job = run_now(
        &app,
        &enrolled.host_id,
        protocol::JobKind::Backup,
        Some("etc"),
    )
    .await;
    let run = agent.expect_command_run().await;
    assert_eq!(run.job_id, job.id.to_string());
    agent.start_job(&run).await;
    job_when(&app, &run.job_id, "running", |j| {
        j.status == JobStatus::Running
    })
    .await;

    // The database goes away while the job ends on the agent.
    cluster.run("halt").await;
    assert_eq!(readyz(&app).await, StatusCode::SERVICE_UNAVAILABLE);
    let finished = finished_envelope(&run.job_id, FinishStatus::Succeeded);
    agent.send_envelope(&finished).await;
    let (code, reason) = agent.expect_close().await;
    assert_eq!(code, Some(1013), "closed with try-again-later: {reason}");

    // Back: ready again, and the agent's replay is stored once.
    cluster.run("resume").await;
    eventually("/readyz 200 after the restart", || async {
        (readyz(&app).await == StatusCode::OK).then_some(())
    })
    .await;
    let mut agent = TestAgent::connect(&app, &enrolled)
        .await
        .expect("reconnect");
    agent.hello("pg-01").await;
    agent.send_envelope(&finished).await;
    let ack = agent.expect_ack(&finished.id).await;
    assert!(ack.accepted, "{ack:?}");
    agent.send_envelope(&finished).await; // a second replay changes nothing
    assert!(agent.expect_ack(&finished.id).await.accepted);
    let job = job_when(&app, &run.job_id, "succeeded", |j| {
        j.status == JobStatus::Succeeded
    })
    .await;
    assert_eq!(job.exit_code, Some(0));
    agent.close().await;
    app.stop().await;
}
